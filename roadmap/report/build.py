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
import textwrap
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from roadmap.report import comparison

from roadmap.report import stats

from roadmap import store
from roadmap.ablation import read_invalid
from roadmap.errors import ReportError  # report.ReportError: one class, also under `python -m`
from roadmap.steps import Roadmap, Step

STATUS_MARK = {"diverged": "diverged", "failed": "failed", "missing": "not run", "invalid": "not built",
               "left out": "left out"}
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                 "imagefolder": "image folder", "synthetic": "synthetic data"}
DATA_LABELS = {"dataset": lambda v: DATASET_NAMES.get(v, v), "resolution": lambda v: f"{v}px"}  # in titles
VERDICT_MARK = {"helps": ("▲", "forestgreen"), "hurts": ("▼", "crimson"), "unresolved": ("●", "gray"),
                "1 seed": ("", "gray"), "no pair": ("", "gray"), comparison.NOT_COMPARABLE: ("", "gray"),
                "": ("", "gray")}
BOUNDS = (0.0, 100.0)  # top-1 is a percentage: drawn intervals are clipped to it
# what every summary may lack (a failed run's has only step, roadmap, scale, seed, status and message; summaries
# written before runs recorded their steps per epoch lack those and count as not capped)
DEFAULTS = {"seed": math.nan, "order": math.nan, "parent": None, "label": None, "section": None, "adopted": None, "dataset": None,
            "final_top1": math.nan, "params": math.nan, "gmacs": math.nan, "paper_top1": math.nan,
            "paper_top1_std": math.nan, "paper_gmacs": math.nan, "message": None, "steps_per_epoch": math.nan,
            "full_steps_per_epoch": math.nan, "capped": False}
NUMBERS = ("seed", "order", "final_top1", "params", "gmacs", "img_s", "paper_top1", "paper_top1_std", "paper_gmacs",
           "steps_per_epoch", "full_steps_per_epoch")  # what a summary gives as numbers: anything else is no number


def load_runs(runs_dir: Path) -> pd.DataFrame:
    """One row per run directory with a readable summary.json (the run store warns about unreadable ones). Every
    column of DEFAULTS is there (missing values filled), `capped` is a bool, `kind` says what the run is, `setting`
    what the summary itself records of the run's data, training and network (comparison.setting)."""
    rows = []
    for run_dir, s in store.summaries(runs_dir):
        s.pop("fingerprint", None)
        s["run_dir"] = str(run_dir)
        s["setting"] = comparison.setting(s)
        s.setdefault("roadmap", s.get("regime", "unknown"))  # summaries written before roadmaps were configuration
        s.setdefault("scale", "unknown")
        rows.append(s)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for key, value in DEFAULTS.items():
        if key not in df:
            df[key] = value
    for key in [k for k in NUMBERS if k in df]:
        df[key] = pd.to_numeric(df[key], errors="coerce")
    df["capped"] = df["capped"].map(lambda c: bool(c) if isinstance(c, (bool, np.bool_)) else False)
    return df


def _text(x, default: str = "") -> str:
    return default if x is None or (isinstance(x, float) and math.isnan(x)) or x == "" else str(x)


def dataset_of(runs: pd.DataFrame) -> str:
    """The dataset the runs trained on, by its name (failed runs record none)."""
    known = runs["dataset"].dropna()
    return DATASET_NAMES.get(known.iloc[0], known.iloc[0]) if len(known) else "unknown data"


def _float(x) -> float:
    return math.nan if x is None or pd.isna(x) else float(x)


def _optional(x) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def roadmap_of(runs: pd.DataFrame) -> Roadmap:
    """The roadmap the runs belong to: the roadmap.json written next to their step folders, else what their
    summaries say about their steps (in their roadmap order). Each folder's roadmap.json is read once."""
    folders = runs.assign(folder=[store.folder_of(Path(d)) for d in runs["run_dir"]]).drop_duplicates("folder")
    for run_dir, kind, folder in zip(folders["run_dir"], folders["kind"], folders["folder"]):
        node = store.read_roadmap(Path(run_dir), kind)
        if node is not None:
            try:
                return Roadmap.from_dict(node)
            except ValueError as e:
                warnings.warn(f"ignoring the roadmap.json of {folder}: {e}", stacklevel=2)
    first = runs.sort_values("order", na_position="last").drop_duplicates("step")
    known = set(first["step"])
    steps = {r.step: {"parent": r.get("parent") if r.get("parent") in known else None,
                      "label": _text(r.get("label"), r.step), "section": _text(r.get("section")),
                      "branch": r.get("adopted") in (False,), "top1": _optional(r.get("paper_top1")),
                      "gmacs": _optional(r.get("paper_gmacs"))}
             for _, r in first.iterrows()}
    return Roadmap.from_dict({"name": runs["roadmap"].iloc[0], "steps": steps})


def ordered_steps(roadmap: Roadmap, runs: pd.DataFrame) -> list[Step]:
    """The roadmap's steps in order, with every step the runs trained that the roadmap does not list (a user's
    own) placed right after its parent (after the parent's earlier children)."""
    order = list(roadmap.steps)
    extra = runs[~runs["step"].isin(roadmap.names())].drop_duplicates("step")
    pending = [Step(name=r["step"], parent=_text(r.get("parent")) or None, label=_text(r.get("label"), r["step"]),
                    section=_text(r.get("section")), top1=_optional(r.get("paper_top1")),
                    top1_std=_optional(r.get("paper_top1_std")), gmacs=_optional(r.get("paper_gmacs")))
               for _, r in extra.iterrows()]
    while pending:
        placed = False
        for s in list(pending):
            names = [o.name for o in order]
            if s.parent in names:
                at = names.index(s.parent) + 1
                while at < len(order) and order[at].parent == s.parent and order[at].order is None:
                    at += 1  # after the parent's earlier user children
                order.insert(at, s)
                pending.remove(s)
                placed = True
        if not placed:  # parent unknown: at the end
            order += pending
            break
    return order


NO_CHANGE = {"change": math.nan, "change_ci_low": math.nan, "change_ci_high": math.nan, "pairs": 0}


def step_table(runs: pd.DataFrame, steps: list[Step], reference: str | None = None,
               invalid: dict[str, str] | None = None, fixed=comparison.FIXED_IN_ROADMAP) -> pd.DataFrame:
    """One row per step: the statistics of its finished seeds and its paired change versus the step it modifies
    (or versus `reference`, for ablations), with the published numbers. `invalid` ({step: why}) names the steps that
    could not be built (status `invalid`, the reason in `note`); `capped` says whether any run of the step had its
    epochs cut short by train.max_steps_per_epoch. `setting` is the step's (its runs' most common,
    comparison.setting); where it differs from the compared step's in a key of `fixed`, the change is left out
    (verdict `not comparable`, the reason in `unlike`). Runs with a `left_out` reason do not count (a step with no
    other run is `left out`)."""
    invalid = invalid or {}
    if "capped" not in runs:
        runs = runs.assign(capped=False)
    left = set(runs.loc[runs["left_out"] != "", "step"]) if "left_out" in runs else set()
    runs = runs[runs["left_out"] == ""] if "left_out" in runs else runs
    done = runs[runs["status"] == "done"]
    by_seed = {name: dict(zip(g["seed"].astype(int), g["final_top1"].astype(float)))
               for name, g in done.groupby("step")}
    settings = {name: comparison.common(g["setting"]) for name, g in done.groupby("step")} if "setting" in done \
        else {}
    rows = []
    for i, s in enumerate(steps):
        mine = by_seed.get(s.name, {})
        ran = runs[runs["step"] == s.name]
        status = "done" if mine else (ran["status"].iloc[0] if len(ran) else "left out" if s.name in left else
                                      "invalid" if s.name in invalid else "missing")
        first = done[done["step"] == s.name].head(1)
        compared = reference if reference is not None else s.parent
        if compared == s.name:
            compared = None
        unlike = comparison.unlike(s.name, settings.get(s.name, {}), compared, settings.get(compared, {}), fixed) \
            if compared else ""
        change = stats.paired_change(mine, by_seed.get(compared, {})) if compared and not unlike else \
            {**NO_CHANGE, "verdict": comparison.NOT_COMPARABLE if unlike else ""}
        summary = stats.mean_interval(list(mine.values()))
        rows.append({
            "order": i, "step": s.name, "label": s.label, "section": s.section, "adopted": s.adopted,
            "status": status, "note": invalid.get(s.name, "") if not len(ran) else "",
            "capped": bool(ran["capped"].any()), "seeds": summary["n"], "top1_mean": summary["mean"],
            "top1_std": summary["std"], "ci_low": summary["ci_low"], "ci_high": summary["ci_high"], "seed_top1": mine,
            "params": int(first["params"].iloc[0]) if len(first) and pd.notna(first["params"].iloc[0]) else None,
            "gmacs": float(first["gmacs"].iloc[0]) if len(first) else math.nan,
            "img_s": float(done.loc[done["step"] == s.name, "img_s"].mean()) if mine and "img_s" in done else math.nan,
            "compared_to": compared, **change, "unlike": unlike, "setting": settings.get(s.name, {}),
            "paper_top1": _float(s.top1), "paper_top1_std": _float(s.top1_std), "paper_gmacs": _float(s.gmacs)})
    table = pd.DataFrame(rows)
    left = table[table["unlike"] != ""]
    if len(left):
        warnings.warn(f"the change{'s' if len(left) > 1 else ''} of {', '.join(left['step'])} "
                      f"{'are' if len(left) > 1 else 'is'} left out: {'; '.join(left['unlike'])}", stacklevel=2)
    paper = dict(zip(table["step"], table["paper_top1"]))
    table["paper_change"] = [paper[r.step] - paper.get(r.compared_to, math.nan) if r.compared_to else math.nan
                             for r in table.itertuples()]
    return table


def agreement(table: pd.DataFrame) -> dict:
    """How well the steps agree with the published ones: rank correlation of the per-step means (with bootstrap
    intervals over the paired seeds), and sign agreement of the changes along the adopted path."""
    seeds = {r.step: r.seed_top1 for r in table.itertuples() if r.seed_top1}
    paper = {r.step: r.paper_top1 for r in table.itertuples() if not math.isnan(r.paper_top1)}
    out = stats.rank_agreement(seeds, paper)
    path = table[table["adopted"] & table["compared_to"].notna()]
    out.update(stats.sign_agreement(list(zip(path["change"], path["paper_change"], path["verdict"]))))
    return out


def _fmt(x, digits=2, sign=False):
    if x is None or pd.isna(x):
        return ""
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def interval(low, high, sign=False):
    """An interval as the tables print it: "[low, high]" (empty where there is none)."""
    return "" if pd.isna(low) else f"[{_fmt(low, sign=sign)}, {_fmt(high, sign=sign)}]"


CHANGE_VERSUS = {  # what a table's change is measured against, by the kind of sweep
    "roadmap": "the step each one modifies",
    "isolated": "the baseline (the reference row): what the step's switches do on their own",
    "leave_one_out": "the endpoint with every step (the reference row): what leaving the step's switches out does "
                     "(negative: the step helps)"}
CAPPED = "train.max_steps_per_epoch cut the epochs short (a smoke run, not a full run)"


def _name(r) -> str:
    marks = [m for m, on in (("branch", not r.adopted), ("capped", getattr(r, "capped", False))) if on]
    return r.step + (f" ({', '.join(marks)})" if marks else "")


def markdown(table: pd.DataFrame, title: str, dataset: str, roadmap: Roadmap, agree: dict | None,
             kind: str = "roadmap", runs: pd.DataFrame | None = None) -> str:
    """The section of results.md for one table; `runs` (the table's runs) adds the notes on capped runs and on runs
    that did not finish."""
    reference = roadmap.dataset or "published"
    lines = [f"## {title}", "",
             f"Ours: top-1 on {dataset}, mean ± std over seeds, with the 95% t interval of the mean. Change: versus "
             f"{CHANGE_VERSUS.get(kind, CHANGE_VERSUS['roadmap'])}, the mean of per-seed differences (same seed, "
             f"same data order) with its 95% paired t interval; **helps** / **hurts** when that interval excludes 0, "
             f"unresolved otherwise." + ("" if kind != "roadmap" else
                                         f" Published: {reference} top-1 and GMACs at 224x224" +
                                         (f" ({roadmap.source})." if roadmap.source else ".")), "",
             "| # | step | section | ours top-1 | 95% CI | seeds | change | change 95% CI | verdict | params | GMACs "
             "| published top-1 | published change | published GMACs | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        ours = (f"{r.top1_mean:.2f}" + (f" ± {r.top1_std:.2f}" if r.seeds > 1 else "") if r.seeds
                else STATUS_MARK.get(r.status, r.status))
        paper = "" if pd.isna(r.paper_top1) else f"{r.paper_top1:.2f}" + (
            f" ± {r.paper_top1_std:.2f}" if not pd.isna(r.paper_top1_std) else "")
        verdict = f"**{r.verdict}**" if r.verdict in ("helps", "hurts") else r.verdict
        note = getattr(r, "note", "")
        status = f"{STATUS_MARK.get(r.status, r.status)}: {note}" if note else r.status
        lines.append(f"| {r.order} | {_name(r)} | {r.section} | {ours} | {interval(r.ci_low, r.ci_high)} | "
                     f"{r.seeds} | {_fmt(r.change, sign=True)} | {interval(r.change_ci_low, r.change_ci_high, True)} "
                     f"| {verdict} | {'' if r.params is None or pd.isna(r.params) else f'{int(r.params):,}'} | "
                     f"{_fmt(r.gmacs, 4)} | {paper} | {_fmt(r.paper_change, sign=True)} | {_fmt(r.paper_gmacs, 3)} | "
                     f"{status.replace('|', '/')} |")
    notes = _notes(table, runs)
    if notes:
        lines += ["", *notes]
    if agree is not None:
        lines += ["", *agreement_markdown(agree, reference)]
    return "\n".join(lines) + "\n"


def _notes(table: pd.DataFrame, runs: pd.DataFrame | None) -> list[str]:
    """One line each under a table: capped runs, intervals beyond [0, 100], changes left out, runs that did not
    finish, runs left out (`left_out` in `runs`: why)."""
    lines = []
    outside = int(((table["ci_low"] < BOUNDS[0]) | (table["ci_high"] > BOUNDS[1])).sum())
    if outside:
        lines.append(f"- {outside} step(s) have a 95% t interval reaching beyond [0, 100] (few seeds, large spread): "
                     f"shown here as computed, clipped to [0, 100] in the figure.")
    lines += [f"- {r.step}: change {comparison.NOT_COMPARABLE}: {r.unlike}." for r in table.itertuples()
              if getattr(r, "unlike", "")]
    if runs is None or runs.empty:
        return lines
    left = runs[runs["left_out"] != ""] if "left_out" in runs else runs.iloc[:0]
    runs = runs.drop(left.index)
    capped = runs[runs["capped"]] if "capped" in runs else runs.iloc[:0]
    if len(capped):
        cut = sorted({(int(a), int(b)) for a, b in zip(capped["steps_per_epoch"], capped["full_steps_per_epoch"])
                      if a == a and b == b})
        of = f" ({'; '.join(f'{a} of {b} optimizer steps per epoch' for a, b in cut)})" if cut else ""
        lines.append(f"- **capped**: {len(capped)} of {len(runs)} runs ({capped['step'].nunique()} step(s), marked "
                     f"(capped)) are capped smoke runs: train.max_steps_per_epoch cut their epochs short{of}. They "
                     f"are not full runs.")
    unfinished = runs[runs["status"].isin(["failed", "diverged", "interrupted"])].assign(
        why=lambda d: d["message"].map(_text))
    for (step, status, why), g in unfinished.groupby(["step", "status", "why"], sort=True):
        seeds = ", ".join(comparison.seed_text(k) for k in sorted(g["seed"]))
        lines.append(f"- {step}, seed{'s' if len(g) > 1 else ''} {seeds}: {status}" + (f": {why}" if why else ""))
    for (step, why), g in left.sort_values(["step", "seed"]).groupby(["step", "left_out"], sort=False):
        seeds = ", ".join(comparison.seed_text(k) for k in g["seed"])
        lines.append(f"- {step}, seed{'s' if len(g) > 1 else ''} {seeds}: left out: {why}")
    return lines


def agreement_markdown(a: dict, reference: str) -> list[str]:
    def corr(key):
        low, high = a[f"{key}_ci"]
        return _fmt(a[key]) + (f" (95% CI {_fmt(low)} to {_fmt(high)})" if not math.isnan(low) else "")

    ranks = (f"- Rank correlation of our per-step mean top-1 with the {reference} top-1, over {len(a['steps'])} "
             f"steps: Spearman ρ = {corr('spearman')}, Kendall τ = {corr('kendall')}; intervals from a bootstrap "
             f"over seeds ({a['resamples']} resamples of the seed numbers, paired across steps; fewest seeds per "
             f"step: {a['seeds_min']}).") if not math.isnan(a["spearman"]) else \
        f"- Rank correlation: not defined over {len(a['steps'])} trained step(s) with a {reference} number."
    return ["### Agreement with the published roadmap", "", ranks,
            f"- Changes along the adopted path with the published sign: {a['sign_agree']} of {a['sign_total']}; of "
            f"the resolved ones (helps/hurts): {a['resolved_agree']} of {a['resolved_total']}."]


FOOTNOTE_CHANGE = {
    "roadmap": "the change versus the step it modifies (mean of per-seed differences)",
    "isolated": "the change versus the baseline, the first row (mean of per-seed differences): what the step's "
                "switches do on their own",
    "leave_one_out": "the change versus the endpoint with every step, the first row (mean of per-seed differences): "
                     "what leaving the step's switches out does (▼: the step helps)"}


def figure(table: pd.DataFrame, path_stem: Path, title: str, dataset: str, roadmap: Roadmap,
           kind: str = "roadmap", references: pd.DataFrame | None = None) -> list[Path]:
    """The published roadmap figure, twice: ours (left: mean, 95% interval, every seed as a dot, verdict by each bar;
    the reference networks trained alike as lines with their 95% interval) and the published one (right, with the
    references' published lines), written as .png and .pdf. `kind` says what the changes are measured against."""
    return save_figure(draw_figure(table, title, dataset, roadmap, kind, references), path_stem)


def draw_figure(table: pd.DataFrame, title: str, dataset: str, roadmap: Roadmap, kind: str = "roadmap",
                references: pd.DataFrame | None = None):
    """The matplotlib Figure of `figure`: one bar per step grouped by section, GMACs by each bar, branches hatched,
    capped runs dotted and labelled. Every bar's numbers and change sit in room the x axis leaves for them, measured
    with the renderer, so no two texts overlap."""
    import matplotlib

    n = len(table)
    paper = table["paper_top1"].notna().any()  # ablations and users' roadmaps may have no published numbers
    fig, axes = _figure_axes(n, paper)
    y = list(range(n))[::-1]
    sections = list(dict.fromkeys([*roadmap.sections, *table["section"]]))
    colors = {sec: matplotlib.colormaps["tab10"](i % 10) for i, sec in enumerate(sections)}
    capped = list(table["capped"]) if "capped" in table else [False] * n
    verdicts = [None if not r.verdict else (f"{VERDICT_MARK[r.verdict][0]} {r.change:+.2f}".strip()
                                            if r.change == r.change else r.verdict, VERDICT_MARK[r.verdict][1])
                for r in table.itertuples()]
    trained = references[references["top1_mean"].notna()] if references is not None else None
    also = [] if trained is None else [v for c in ("top1_mean", "ci_low", "ci_high") for v in trained[c] if v == v]
    ours, clipped = _bars(axes[0], table, y, colors, list(table["top1_mean"]), list(table["ci_low"]),
                          list(table["ci_high"]), [list(d.values()) for d in table["seed_top1"]],
                          list(table["gmacs"]), verdicts, f"top-1 (%) on {dataset}", capped, also)
    for r in () if trained is None else trained.itertuples():
        _reference_line(axes[0], r, n)
    layouts = [ours]
    axes[0].set_title(f"This reproduction: {dataset}, {int(table['seeds'].max() or 0)} seed(s)", fontsize=11)
    if paper:
        published, more = _published_bars(axes[1], table, y, colors, roadmap)
        layouts.append(published)
        clipped += more
    _label_rows(axes, table, y, colors, capped)
    fig.suptitle(title, fontsize=12)
    _fit(fig, layouts, _footnote(fig, table, kind, clipped, capped))
    return fig


def _figure_axes(n: int, paper: bool):
    """A Figure for n bars and its axes: ours, and where there are published numbers theirs beside it (same y)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend state, works headless and in notebooks

    fig = Figure(figsize=(14 if paper else 8.5, 0.42 * n + 2.4))
    FigureCanvasAgg(fig)
    if paper:
        return fig, tuple(fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.25, 1]}))
    return fig, (fig.subplots(1, 1),)


def _bars(axis, table: pd.DataFrame, y: list[int], colors: dict, values, low, high, dots, gmacs, marks, xlabel: str,
          capped, also=()) -> tuple[tuple, int]:
    """Draw one axis' bars, a row of `table` at each y; return what fitting the x axis needs, (axis, left, right,
    [(end, texts right of it)]), and how many whisker ends were clipped to BOUNDS. `also`: values the x axis must
    show besides the bars' (reference lines)."""
    ends = [*low, *high]
    clip = [(x if x != x else min(max(x, BOUNDS[0]), BOUNDS[1])) for x in ends]
    clipped = sum(a != b for a, b in zip(clip, ends) if a == a)
    low, high = clip[:len(low)], clip[len(low):]
    points = [v for v in [*values, *low, *high, *also] if v == v] + [d for ds in dots for d in ds]
    lo, hi = (min(points), max(points)) if points else (0, 1)
    pad = max(0.5, (hi - lo) * 0.25)
    left = max(BOUNDS[0], lo - pad)
    rows = []
    for yi, r, v, a, b, ds, g, mark, cap in zip(y, table.itertuples(), values, low, high, dots, gmacs, marks, capped):
        if v != v:
            _status_text(axis, r, left, yi)
            continue
        axis.barh(yi, v - left, left=left, color=colors.get(r.section, "gray"), alpha=0.8 if r.adopted else 0.35,
                  hatch="///" if not r.adopted else "..." if cap else None, edgecolor="black", linewidth=0.5)
        if a == a:
            axis.errorbar(v, yi, xerr=[[max(0.0, v - a)], [max(0.0, b - v)]], fmt="none", ecolor="black",
                          capsize=3, lw=1)
        if len(ds) > 1:
            axis.scatter(ds, [yi + 0.18 * ((k % 3) - 1) for k in range(len(ds))], s=9, color="black",
                         zorder=3, alpha=0.7)
        end = max([v, b if b == b else v, *ds])
        macs = "" if g != g else (f"  ({g:.3g} GMACs)" if g >= 0.1 else f"  ({g * 1000:.3g} MMACs)")
        texts = [axis.annotate(f"{v:.2f}{macs}", (end, yi), xytext=(3, 0), textcoords="offset points",
                               va="center", fontsize=8)]
        if mark:
            texts.append(axis.text(0.995, yi, mark[0], transform=axis.get_yaxis_transform(), ha="right",
                                   va="center", fontsize=8, color=mark[1]))
        rows.append((end, texts))
    axis.set_xlabel(xlabel)
    axis.grid(axis="x", alpha=0.3)
    return (axis, left, hi + pad, rows), clipped


def _status_text(axis, r, left: float, yi: float) -> None:
    """In place of the bar of a step without a number: its status (and for a network not built, why)."""
    status = STATUS_MARK.get(r.status, r.status)
    if r.status == "invalid":
        status += (": changes no switch of the network" if "changes no switch" in r.note else
                   ": not a valid network (results.md says why)")
    axis.annotate(status, (left, yi), xytext=(4, 0), textcoords="offset points", va="center",
                  fontsize=9, color="crimson", fontweight="bold")


def _published_bars(axis, table: pd.DataFrame, y: list[int], colors: dict, roadmap: Roadmap) -> tuple[tuple, int]:
    """The published numbers' bars (whiskers: ± their std where published), the roadmap's reference lines and the
    source as the title; what `_bars` returns."""
    n = len(table)
    std = list(table["paper_top1_std"].fillna(0.0))
    top1 = list(table["paper_top1"])
    drawn = _bars(axis, table, y, colors, top1, [v - s if s else math.nan for v, s in zip(top1, std)],
                  [v + s if s else math.nan for v, s in zip(top1, std)], [[]] * n, list(table["paper_gmacs"]),
                  [None] * n, f"top-1 (%) on {roadmap.dataset or 'the published dataset'}", [False] * n)
    for ref in roadmap.published_lines:
        axis.axvline(ref["top1"], color="gray", ls="--", lw=1)
        axis.text(ref["top1"], n - 0.4, f" {ref['label']} {ref['top1']}", color="gray", fontsize=8)
    axis.set_title(f"Published: {roadmap.source or roadmap.name}", fontsize=9)
    return drawn


def _reference_line(axis, r, n: int) -> None:
    """A reference network trained alike across our bars: its mean top-1, its 95% interval as a band."""
    axis.axvline(r.top1_mean, color="purple", ls="--", lw=1)
    if r.ci_low == r.ci_low:
        axis.axvspan(r.ci_low, r.ci_high, color="purple", alpha=0.12, lw=0)
    axis.text(r.top1_mean, n - 0.4, f" {r.label} trained alike {r.top1_mean:.2f}", color="purple", fontsize=8)


def _label_rows(axes: tuple, table: pd.DataFrame, y: list[int], colors: dict, capped: list[bool]) -> None:
    """The steps' labels left of the bars; above each section's first step a line across the axes, and the section's
    name right of the last axis."""
    axes[0].set_yticks(y, [r.label + (" (not adopted)" if not r.adopted else "") + (" (capped)" if cap else "")
                           for r, cap in zip(table.itertuples(), capped)])
    previous = None
    for yi, r in zip(y, table.itertuples()):
        if r.section != previous:
            for axis in axes:
                axis.axhline(yi + 0.5, color="black", lw=0.6)
            axes[-1].text(1.01, yi, r.section, transform=axes[-1].get_yaxis_transform(), fontsize=8, va="center",
                          color=colors.get(r.section, "gray"), fontweight="bold")
            previous = r.section


def _footnote(fig, table: pd.DataFrame, kind: str, clipped: int, capped: list[bool]) -> float:
    """Write the legend of the marks at the foot of the figure; return the fraction of its height it takes."""
    note = (f"Right of each bar: top-1 (GMACs), then {FOOTNOTE_CHANGE.get(kind, FOOTNOTE_CHANGE['roadmap'])}; "
            f"▲ helps / ▼ hurts: its 95% interval excludes 0; ● unresolved. Whiskers: 95% t interval of the mean, "
            f"clipped to [0, 100]" + (f" ({clipped} end(s) reach beyond it)" if clipped else "") + "; dots: seeds."
            + (" Hatched: a branch the roadmap does not adopt." if not table["adopted"].all() else "")
            + (" Dotted bars, (capped): " + CAPPED + "." if any(capped) else ""))
    note = textwrap.fill(note, width=int(fig.get_figwidth() * 15))
    fig.text(0.01, 0.005, note, fontsize=8, va="bottom")
    return (note.count("\n") + 1) * 11.5 / (fig.get_figheight() * 72) + 0.01


def _fit(fig, layouts: list[tuple], bottom: float) -> None:
    """Lay the figure out above `bottom`, measure the texts right of each bar and widen the x axis where they need
    room, until nothing moves (4 rounds at most)."""
    from matplotlib.ticker import MaxNLocator

    for _ in range(4):
        fig.tight_layout(rect=(0, bottom, 1, 1))
        moved = False
        for axis, left, right_end, rows in layouts:
            need = max([right_end, *(_room(fig, axis, left, end, texts) for end, texts in rows)])
            if abs(need - axis.get_xlim()[1]) > 1e-3 * max(1.0, need - left):
                axis.set_xlim(left, need)
                top = min(need, BOUNDS[1])  # no tick beyond 100%: the room there is for the texts
                axis.set_xticks([t for t in MaxNLocator(nbins=8).tick_values(left, top) if left <= t <= top])
                axis.set_xlim(left, need)
                moved = True
        if not moved:
            break


def _room(fig, axis, left: float, end: float, texts) -> float:
    """The right end of the x axis that leaves the texts starting at `end` (the numbers, then the change at the
    axis' right edge) room in one row."""
    renderer = fig.canvas.get_renderer()
    width = axis.get_window_extent(renderer).width
    used = sum(t.get_window_extent(renderer).width for t in texts) + (3 + 6 * len(texts)) * fig.dpi / 72
    free = max(0.25, (width * 0.995 - used) / width)  # the fraction of the axis the bar may take
    return left + (end - left) / free


def transfer_figure(table: pd.DataFrame, path_stem: Path, title: str, dataset: str, roadmap: Roadmap,
                    agree: dict) -> list[Path]:
    """Our paired change of every step (with its 95% interval) against the published change: steps in the upper
    right and lower left quadrants move the same way on both datasets."""
    from matplotlib.figure import Figure

    rows = table[table["change"].notna() & table["paper_change"].notna()]
    fig = Figure(figsize=(10.5, 7))
    ax = fig.subplots()
    xs, ys = list(rows["paper_change"]), list(rows["change"]) + list(rows["change_ci_low"].dropna()) + \
        list(rows["change_ci_high"].dropna())
    xr = max([abs(v) for v in xs] + [0.5]) * 1.25
    yr = max([abs(v) for v in ys] + [0.5]) * 1.15
    ax.set_xlim(-xr, xr)
    ax.set_ylim(-yr, yr)
    scale_note = ""
    if yr > 10:  # one step's large change or interval would flatten all others: linear within ±2 points, log beyond
        ax.set_yscale("symlog", linthresh=2, linscale=2)
        ticks = [t for t in (1, 2, 5, 10, 20, 50, 100) if t < yr]
        ax.set_yticks([-t for t in ticks[::-1]] + [0] + ticks, [f"{-t:g}" for t in ticks[::-1]] + ["0"] +
                      [f"+{t:g}" for t in ticks])
        scale_note = "; log beyond ±2"
    for (sx, sy), color in (((1, 1), "forestgreen"), ((-1, -1), "forestgreen"), ((1, -1), "crimson"),
                            ((-1, 1), "crimson")):
        ax.fill_between([0, sx * xr], 0, sy * yr, color=color, alpha=0.06, lw=0)
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(0, color="black", lw=0.8)
    for r in rows.itertuples():
        symbol, color = VERDICT_MARK.get(r.verdict, ("", "gray"))
        if not pd.isna(r.change_ci_low):
            ax.errorbar(r.paper_change, r.change, yerr=[[r.change - r.change_ci_low], [r.change_ci_high - r.change]],
                        fmt="none", ecolor=color, alpha=0.6, capsize=2)
        ax.scatter([r.paper_change], [r.change], color=color, marker="o" if r.adopted else "s", s=30, zorder=3)
        ax.annotate(str(r.order), (r.paper_change, r.change), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax.text(0.98, 0.98, "transfers", transform=ax.transAxes, ha="right", va="top", color="forestgreen")
    ax.text(0.02, 0.02, "transfers", transform=ax.transAxes, ha="left", va="bottom", color="forestgreen")
    ax.text(0.02, 0.98, "does not transfer", transform=ax.transAxes, ha="left", va="top", color="crimson")
    ax.text(0.98, 0.02, "does not transfer", transform=ax.transAxes, ha="right", va="bottom", color="crimson")
    ax.set_xlabel(f"published change of top-1 ({roadmap.dataset or 'published'}, points)")
    ax.set_ylabel(f"our paired change ({dataset}, points, 95% CI{scale_note})")
    rho = "" if math.isnan(agree["spearman"]) else f"Spearman ρ {agree['spearman']:.2f}, Kendall τ " \
                                                    f"{agree['kendall']:.2f} (per-step means); "
    ax.set_title(f"{title}\n{rho}same sign {agree['sign_agree']}/{agree['sign_total']} "
                 f"(resolved {agree['resolved_agree']}/{agree['resolved_total']}). Green: helps, red: hurts, gray: "
                 f"unresolved; squares: branches", fontsize=9)
    ax.grid(alpha=0.3)
    key = "\n".join(f"{r.order}  {r.label}" for r in rows.itertuples())
    ax.text(1.02, 1.0, key, transform=ax.transAxes, va="top", fontsize=8, family="monospace")
    fig.tight_layout()
    return save_figure(fig, path_stem)


def save_figure(fig, path_stem: Path) -> list[Path]:
    written = []
    for ext in ("png", "pdf"):
        path = path_stem.with_suffix(f".{ext}")
        fig.savefig(path, dpi=130, bbox_inches="tight")
        written.append(path)
    return written


def _change_label(label: str) -> str:
    """A step's label as a change, without the network the roadmap reaches with it ("sep. d.s. conv = ConvNeXt-T"
    names the endpoint, which no ablation row is)."""
    return label.split(" = ", 1)[0]


def ablation_steps(roadmap: Roadmap, runs: pd.DataFrame) -> list[Step]:
    """The rows of an ablation figure: the reference (the `baseline` entry of these sweeps), then every step the sweep
    varies (ablation.trunk), trained or not, relabelled as what it adds to the baseline (isolated) or removes from
    the endpoint (leave_one_out), then any other step the runs trained."""
    from roadmap.ablation import trunk

    kind = runs["kind"].iloc[0]
    base, end = roadmap.get(roadmap.baseline), roadmap.endpoint
    if kind == "isolated":
        label, prefix = f"baseline: {base.label if base else roadmap.baseline}", "+ "
    else:
        label, prefix = f"{end.label.split(' = ', 1)[1] if ' = ' in end.label else end.name} (every step)", "− "
    rows = [Step(roadmap.baseline, label=label, section="reference")]
    rows += [Step(s.name, parent=roadmap.baseline, label=prefix + _change_label(s.label), section=s.section)
             for s in trunk(roadmap)]
    extra = runs[~runs["step"].isin({s.name for s in rows})].drop_duplicates("step")  # e.g. a branch, a user's step
    position = {name: i for i, name in enumerate(roadmap.names())}
    for r in sorted(extra.itertuples(), key=lambda r: (position.get(r.step, len(position)), r.step)):
        s = roadmap.get(r.step)
        rows.append(Step(r.step, parent=roadmap.baseline, section=s.section if s else _text(r.section),
                         label=prefix + _change_label(s.label if s else _text(r.label, r.step)),
                         branch=bool(s and s.branch)))
    return rows


def _strict(value):
    """`value` with every NaN or infinity as None: json.dumps(..., allow_nan=False) then writes null, and the file
    is JSON any parser reads."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def drawn(stem: Path, draw) -> list[Path]:
    """The files `draw()` writes, or none and a warning line when it fails: one figure never costs the tables or the
    other figures of the report."""
    try:
        return draw()
    except Exception as e:  # any failure of one figure (matplotlib's, or a bug): the report goes on without it
        warnings.warn(f"{stem.name}.png/.pdf not written: {type(e).__name__}: {e}", stacklevel=2)
        return []


def roadmap_group(group: pd.DataFrame, roadmap: Roadmap, out: Path, suffix: str, title: str, dataset: str,
                  bench: pd.DataFrame | None, device: str | None, runs: pd.DataFrame | None = None
                  ) -> tuple[pd.DataFrame, list[str], list[Path]]:
    """A roadmap's own runs (`group`, the runs that count; `runs`: with those left out, for the notes): the step
    table, the reference networks trained beside it, agreement.json, the roadmap, transfer, speed and robustness
    figures; the table (references last), the Markdown and the paths written. `bench`: read_bench's rows of the
    benchmark of `device`."""
    from roadmap.report import reference as reference_report
    from roadmap.report.robustness import robustness_section
    from roadmap.report.speed import speed_section

    runs = group if runs is None else runs
    refs_runs, all_refs = group[reference_report.is_reference(group)], runs[reference_report.is_reference(runs)]
    group, runs = group[~reference_report.is_reference(group)], runs[~reference_report.is_reference(runs)]
    table = step_table(runs, ordered_steps(roadmap, group))
    refs = reference_report.reference_table(all_refs, table, roadmap) if len(all_refs) else None
    agree = agreement(table)
    both = table if refs is None else pd.concat([table, refs.assign(order=len(table) + np.arange(len(refs)))],
                                                ignore_index=True)
    robust_text, robust_files, robust = robustness_section(both, pd.concat([group, refs_runs]), roadmap.baseline,
                                                           out, suffix, title, dataset)
    if not robust.empty:
        both = both.merge(robust.drop(columns=["order", "label", "adopted", "section", "clean_top1"]), on="step",
                          how="left")
        agree["robustness"] = {v: list(robust.loc[robust["corrupted_verdict"] == v, "step"])
                               for v in ("helps", "hurts")}
    md = [markdown(table, title, dataset, roadmap, agree, runs=runs)]
    if refs is not None:
        agree["references"] = reference_report.agreement(refs)
        md.append(reference_report.markdown(refs, title, dataset))
    path = out / f"agreement{suffix}.json"
    path.write_text(json.dumps(_strict(agree), indent=1, allow_nan=False) + "\n")
    stem = out / f"roadmap{suffix}"
    written = [path, *drawn(stem, lambda: figure(table, stem, title, dataset, roadmap, references=refs)),
               *drawn(out / f"transfer{suffix}", lambda: transfer_figure(table, out / f"transfer{suffix}", title,
                                                                          dataset, roadmap, agree))]
    text, files = speed_section(both, bench, device, out, suffix, title, dataset)
    return both, [*md, text, robust_text], written + files + robust_files


class Group(NamedTuple):
    """The runs of one table: a roadmap's runs of one kind at one scale whose top-1 is measured on the same data."""
    scale: str
    roadmap: str
    kind: str
    data: dict  # what of the data (comparison.MEASURED_ON) the runs of scale, roadmap and kind differ in, if any
    runs: pd.DataFrame  # `left_out`: why a finished run does not count ("" where it does)

    @property
    def counted(self) -> pd.DataFrame:
        return self.runs[self.runs["left_out"] == ""]


def groups(runs: pd.DataFrame) -> list[Group]:
    """The runs (load_runs) split into what compares like with like (roadmap.report.comparison): by scale, roadmap and kind,
    then by the data their top-1 is measured on, with the runs that do not count left out; a warning line for each
    mix found."""
    out = []
    for (scale, name, kind), group in runs.groupby(["scale", "roadmap", "kind"], sort=True):
        where = f"{scale}/{name}" + ("" if kind == "roadmap" else f" ({kind})")
        parts, mix = comparison.by_data(group)
        if mix:
            warnings.warn(f"{where}: the runs {mix}", stacklevel=2)
        for data, part in parts:
            why, lines = comparison.left_out(part)
            for line in lines:
                warnings.warn(f"{where}: {line}", stacklevel=2)
            out.append(Group(scale, name, kind, data, part.assign(left_out=why)))
    return out


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
    from roadmap.report.speed import read_bench

    runs_dir = Path(runs_dir)
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
    written, md, per_step = [], ["# Roadmap results", "", f"From {len(runs)} runs under `{runs_dir}`.", ""], []
    several = len(runs[["scale", "roadmap"]].drop_duplicates()) > 1
    table_of = pd.Series(-1, index=runs.index)  # which table each run is in
    for i, g in enumerate(tables):
        scale, name, kind, group = g.scale, g.roadmap, g.kind, g.counted
        table_of[g.runs.index] = i
        data = {k: DATA_LABELS[k](v) for k, v in g.data.items()}
        suffix = (f"_{scale}_{name}" if several else "") + "".join(
            f"_{v}" + ("px" if k == "resolution" else "") for k, v in g.data.items()) + (
            "" if kind == "roadmap" else f"_{kind}")
        dataset = dataset_of(group)
        roadmap = roadmap_of(group)
        title = f"{roadmap.title or name}: {scale} scale" + "".join(f", {v}" for v in data.values()) + (
            "" if kind == "roadmap" else " — design-space exploration" if kind == "explore" else
            f" — {kind.replace('_', '-')} ablation")
        if kind == "explore":
            from roadmap.report.explore import explore_section

            text, files = explore_section(group, runs, out, suffix.removesuffix("_explore"), title, dataset)
            md.append(text)
            written += files
            continue
        if kind == "roadmap":
            table, text, files = roadmap_group(group, roadmap, out, suffix, title, dataset, bench_rows,
                                               None if bench is None else Path(bench).name, g.runs)
            md += text
            written += files
        else:
            table = step_table(g.runs, ablation_steps(roadmap, group), reference=roadmap.baseline,
                               invalid=read_invalid(store.folder_of(Path(group["run_dir"].iloc[0])), kind),
                               fixed=comparison.FIXED_ALIKE)
            table[["paper_top1", "paper_top1_std", "paper_gmacs", "paper_change"]] = math.nan
            stem = out / f"roadmap{suffix}"
            written += drawn(stem, lambda: figure(table, stem, title, dataset, roadmap, kind=kind))
            md.append(markdown(table, title, dataset, roadmap, None, kind=kind, runs=g.runs))
        per_step.append(table.assign(scale=scale, roadmap=name, kind=kind, _table=i, **g.data))
    left = pd.concat([g.runs["left_out"] for g in tables])
    runs = runs.assign(_table=table_of, **({"left_out": left.reindex(runs.index).fillna("")} if (left != "").any()
                                           else {}))
    if "robustness" in runs:  # one number per run in the CSV; the corruptions' table is in the summaries
        runs = runs.assign(corrupted_top1=runs["robustness"].map(
            lambda r: r["mean_top1"] if isinstance(r, dict) else math.nan)).drop(columns=["robustness"])
    runs = runs.drop(columns=["reference", "setting"], errors="ignore")  # a reference network's settings
    if not per_step:  # only explorations
        runs.drop(columns=["switches", "_table"], errors="ignore").to_csv(out / "results.csv", index=False)
        (out / "results.md").write_text("\n".join(md))
        return [out / "results.csv", out / "results.md", *written]
    steps = pd.concat(per_step, ignore_index=True)
    columns = ["step", "scale", "roadmap", "kind", "_table", "ci_low", "ci_high", "compared_to", "change",
               "change_ci_low", "change_ci_high", "pairs", "verdict"]
    runs.merge(steps[columns], on=["step", "scale", "roadmap", "kind", "_table"], how="left").drop(
        columns=["seed_top1", "_table"], errors="ignore").to_csv(out / "results.csv", index=False)
    steps.drop(columns=["seed_top1", "setting", "_table"]).to_csv(out / "steps.csv", index=False)
    (out / "results.md").write_text("\n".join(md))
    return [out / "results.csv", out / "results.md", out / "steps.csv", *written]


def main(argv=None) -> int:
    """The command line: 0 when the report is written, 2 with a one-line `error: ...` on bad input. Every warning is
    one line, each said once, after the report."""
    parser = argparse.ArgumentParser(prog="python -m roadmap.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUNS_DIR/report)")
    parser.add_argument("--bench", type=Path, default=None, help="a `make bench` CSV (benchmarks/bench_*.csv): "
                        "its img/s of every step's published network join the accuracy-against-speed figure")
    parser.add_argument("--wandb", action="store_true", help="also log the figures, tables and agreement to wandb "
                        "(its run folder goes into the output folder)")
    args = parser.parse_args(argv)
    out = args.out or args.runs_dir / "report"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                written = report(args.runs_dir, out, args.bench)
            finally:
                for message in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
                    print(f"warning: {message}", file=sys.stderr)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.wandb:
        log_to_wandb(written, out)
    for path in written:
        print(path)
    return 0


def log_to_wandb(paths: list[Path], out: Path | None = None) -> None:
    """Figures as images, the per-run and per-step tables, and the agreement numbers in the run summary. wandb's
    run folder goes into `out` (default: the folder of the first path), beside the report."""
    from roadmap.train.tracking import import_wandb

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
