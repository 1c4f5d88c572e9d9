"""python -m roadmap.report RUNS_DIR [--out DIR] [--bench CSV] [--wandb]: the roadmap's tables and figures
from what runs wrote.

Needs no network and no training: reads every summary.json under RUNS_DIR (and the roadmap.json the runs wrote next
to them) with pandas and writes
    results.csv      one row per run, with its step's statistics
    steps.csv        one row per step: mean, std, n, 95% interval, paired change vs the step it modifies, verdict
    results.md       the same per step, and the agreement with the published numbers
    agreement.json   Spearman / Kendall with bootstrap intervals, sign agreement of the changes (strict JSON: null
                     where a number is not defined)
    roadmap.png/pdf  our bars (95% intervals, seeds as dots, verdicts) beside the published figure
    transfer.png/pdf our paired change of every step against the published change
    speed.png/pdf    every step's top-1 against its measured img/s (its runs'; with --bench, its published network's
                     on the benchmark's device), GMACs as the marker's area, the Pareto front marked
    robustness.png/pdf  every step's top-1 on corrupted images (paired change, verdict, mCE vs the baseline) and
                     under each corruption, where the runs measured it (eval.robustness)
Ablation sweeps (isolated, leave_one_out) get their own table and figure, with a row for every step of the sweep; a
step whose ablated network is not valid is listed with the reason (what the sweep recorded in invalid.jsonl). Runs
whose epochs train.max_steps_per_epoch cut short are marked `capped`.
Like with like (roadmap.report.comparison): runs on other data get tables of their own, a step's seeds are pooled only when
their summaries agree on everything but the seed, and a change is measured only where a step and the step it is
compared with differ in no more than a step may change; each mix is a warning line, and the runs and changes left out
are listed under their table. One figure that fails is a warning line; the rest of the report is written.
Bad input (a missing or empty folder, an --out that cannot be written, an unreadable --bench, nothing comparable
left) is a one-line error and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path

import pandas as pd

from roadmap.errors import ConfigError, OneLineParser, ReportError, path_argument  # ReportError: one class, also under `python -m`
from roadmap.kinds import kind_of
from roadmap.report.ablation import ablation_section
from roadmap.report.roadmap_section import roadmap_section
from roadmap.report.runs import DATA_LABELS, Group, dataset_of, groups, load_runs, roadmap_of
from roadmap.report.section import Section
from roadmap.report.speed import read_bench
from roadmap.steps import Roadmap

STEP_COLUMNS = ["step", "scale", "roadmap", "kind", "_table", "ci_low", "ci_high", "compared_to", "change",
                "change_ci_low", "change_ci_high", "pairs", "verdict"]  # what results.csv adds to each run


def output_folder(out: Path) -> Path:
    """`out`, checked before any work: a one-line ReportError when it is a file, lies under a file or cannot be
    written."""
    out = Path(out)
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise ReportError(f"--out {out}: " + ("a file, not a folder" if existing == out else
                                              f"{existing} is a file, not a folder"))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ReportError(f"--out {out}: {existing} is not writable")
    return out


def report(runs_dir: Path, out: Path, bench: Path | None = None) -> list[Path]:
    """Every table and figure of the runs under `runs_dir`, written into `out`; the paths written. `bench`: a
    `make bench` CSV whose speeds the accuracy-against-speed figure adds. Bad input (a folder without a run summary,
    an `out` that cannot be written, an unreadable `bench`, nothing comparable left) is a ReportError, before
    anything is written."""
    runs_dir = Path(runs_dir)
    out, bench_rows, runs, tables = _checked(runs_dir, out, bench)
    written, md, per_step = [], ["# Roadmap results", "", f"From {len(runs)} runs under `{runs_dir}`.", ""], []
    several = len(runs[["scale", "roadmap"]].drop_duplicates()) > 1
    table_of = pd.Series(-1, index=runs.index)  # which table each run is in
    for i, g in enumerate(tables):
        table_of[g.runs.index] = i
        roadmap = roadmap_of(g.counted)
        section = _section(g, roadmap, out, several)
        if kind_of(g.kind).report == "explore":
            # imported here for start-up time: this section needs Optuna, statsmodels and torch (through
            # roadmap.explore.study), which only a folder with explorations pays for; `from roadmap import report` in
            # a notebook stays light (and without tqdm's notebook warning that importing Optuna prints there)
            from roadmap.report.explore import explore_section

            text, files = explore_section(g.counted, runs, section)
            md.append(text)
            written += files
            continue
        if kind_of(g.kind).report == "roadmap":
            table, text, files = roadmap_section(g, roadmap, section, bench_rows,
                                                 None if bench is None else Path(bench).name)
        else:
            table, text, files = ablation_section(g, roadmap, section)
        md += text
        written += files
        per_step.append(table.assign(scale=g.scale, roadmap=g.roadmap, kind=g.kind, _table=i, **g.data))
    left = pd.concat([g.runs["left_out"] for g in tables])
    runs = runs.assign(_table=table_of, **({"left_out": left.reindex(runs.index).fillna("")} if (left != "").any()
                                           else {}))
    return _write_tables(runs, per_step, md, out) + written


def _checked(runs_dir: Path, out: Path, bench: Path | None) -> tuple[Path, pd.DataFrame | None, pd.DataFrame,
                                                                      list[Group]]:
    """The report's input, checked before anything is written: the output folder (made), the benchmark's rows, the
    runs and their tables with runs that count; a ReportError for what is wrong."""
    if not runs_dir.is_dir():
        raise ReportError(f"{runs_dir} is not a directory")
    out = output_folder(out)
    bench_rows = None if bench is None else read_bench(Path(bench))
    runs = load_runs(runs_dir)
    if runs.empty:
        raise ReportError(f"no summary.json under {runs_dir}; train with `python run.py +step=...` first")
    tables = [g for g in groups(runs) if len(g.counted)]
    if (runs["status"] == "done").any() and not any((g.counted["status"] == "done").any() for g in tables):
        raise ReportError(f"nothing comparable under {runs_dir}: every finished run is left out (the warnings say "
                          f"why)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"--out {out}: cannot make it ({e.strerror})") from None
    return out, bench_rows, runs, tables


def _section(g: Group, roadmap: Roadmap, out: Path, several: bool) -> Section:
    """Where the table of `g` goes: its files' suffix (scale and roadmap where the report has several, the data
    where its scale and roadmap have several, the kind of sweep; an exploration's files without it), its title and
    its dataset."""
    data, kind = {k: DATA_LABELS[k](v) for k, v in g.data.items()}, kind_of(g.kind)
    suffix = (f"_{g.scale}_{g.roadmap}" if several else "") + "".join(
        f"_{v}" + ("px" if k == "resolution" else "") for k, v in g.data.items()) + kind.files
    title = f"{roadmap.title or g.roadmap}: {g.scale} scale" + "".join(f", {v}" for v in data.values()) + kind.title
    return Section(out, suffix, title, dataset_of(g.counted))


def _write_tables(runs: pd.DataFrame, per_step: list[pd.DataFrame], md: list[str], out: Path) -> list[Path]:
    """results.csv (one row per run, with its step's interval, change and verdict), steps.csv (one row per step of
    every table; none when every table is an exploration) and results.md; their paths."""
    if "robustness" in runs:  # one number per run in the CSV; the corruptions' table is in the summaries
        runs = runs.assign(corrupted_top1=runs["robustness"].map(
            lambda r: r["mean_top1"] if isinstance(r, dict) else math.nan)).drop(columns=["robustness"])
    runs = runs.drop(columns=["reference", "setting"], errors="ignore")  # a reference network's settings
    if not per_step:  # only explorations
        runs.drop(columns=["switches", "_table"], errors="ignore").to_csv(out / "results.csv", index=False)
        (out / "results.md").write_text("\n".join(md))
        return [out / "results.csv", out / "results.md"]
    steps = pd.concat(per_step, ignore_index=True)
    runs.merge(steps[STEP_COLUMNS], on=["step", "scale", "roadmap", "kind", "_table"], how="left").drop(
        columns=["seed_top1", "_table"], errors="ignore").to_csv(out / "results.csv", index=False)
    steps.drop(columns=["seed_top1", "setting", "_table"]).to_csv(out / "steps.csv", index=False)
    (out / "results.md").write_text("\n".join(md))
    return [out / "results.csv", out / "results.md", out / "steps.csv"]


def main(argv=None) -> int:
    """The command line: 0 when the report is written, 2 with a one-line `error: ...` on bad input. Every warning is
    one line, each said once, after the report."""
    parser = OneLineParser(prog="python -m roadmap.report", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir", type=path_argument)
    parser.add_argument("--out", type=path_argument, default=None, help="output folder (default: RUNS_DIR/report)")
    parser.add_argument("--bench", type=path_argument, default=None, help="a `make bench` CSV "
                        "(benchmarks/bench_*.csv): its img/s of every step's published network join the "
                        "accuracy-against-speed figure")
    parser.add_argument("--wandb", action="store_true", help="also log the figures, tables and agreement to wandb "
                        "(its run folder goes into the output folder)")
    args = parser.parse_args(argv)
    out = args.out or args.runs_dir / "report"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if args.wandb:
                    wandb_ready()
                written = report(args.runs_dir, out, args.bench)
            finally:
                for message in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
                    print(f"warning: {message}", file=sys.stderr)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a table it writes: a folder by that name in --out, a full disk
        print(f"error: --out {out}: cannot write {e.filename} ({e.strerror or type(e).__name__})", file=sys.stderr)
        return 2
    if args.wandb:
        log_to_wandb(written, out)
    for path in written:
        print(path)
    return 0


def wandb_ready() -> None:
    """--wandb checked before any work, as a run's logger=wandb is: a ReportError without the wandb package, or
    without a login where wandb would go online (WANDB_MODE)."""
    from roadmap.train.tracking import import_wandb, logged_in

    try:
        wandb = import_wandb()
    except ConfigError as e:
        raise ReportError(f"--wandb: {e}") from None
    if os.environ.get("WANDB_MODE", "online") == "online" and not logged_in(wandb):
        raise ReportError("--wandb needs `wandb login` or WANDB_API_KEY; WANDB_MODE=offline needs no account")


def log_to_wandb(paths: list[Path], out: Path | None = None) -> None:
    """Figures as images, the per-run and per-step tables, and the agreement numbers in the run summary. wandb's
    run folder goes into `out` (default: the folder of the first path), beside the report."""
    from roadmap.train.tracking import import_wandb  # wandb is optional: only --wandb needs it (and this import)

    wandb = import_wandb()
    folder = Path(out) if out is not None else Path(paths[0]).parent
    run = wandb.init(project="roadmap", job_type="report", dir=str(folder), reinit="finish_previous")
    run.log({p.stem: wandb.Image(str(p)) for p in paths if p.suffix == ".png"})
    run.log({p.stem: wandb.Table(dataframe=pd.read_csv(p)) for p in paths if p.suffix == ".csv"})
    for p in paths:
        if p.suffix == ".json":
            values = json.loads(p.read_text())
            run.summary.update({f"{p.stem}/{k}": v for k, v in values.items() if not isinstance(v, list) or
                                k.endswith("_ci")})
    run.finish()
