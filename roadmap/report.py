"""python -m roadmap.report RUNS_DIR [--out DIR]: the roadmap table and figure from the runs' summary.json files.

Needs no network and no training: reads every summary.json under RUNS_DIR with pandas and writes
results.csv (one row per run), results.md (one row per step) and roadmap.png/.pdf (the paper's Figure 2 beside
ours). Ablation sweeps (isolated, leave_one_out) get their own table and figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import pandas as pd

from .steps import SECTIONS, references, steps

STATUS_MARK = {"diverged": "diverged", "failed": "failed", "missing": "not run"}
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                 "imagefolder": "image folder", "synthetic": "synthetic data"}


def load_runs(runs_dir: Path) -> pd.DataFrame:
    """One row per run directory with a readable summary.json; unreadable ones are warned about and skipped."""
    rows = []
    for path in sorted(Path(runs_dir).rglob("summary.json")):
        try:
            s = json.loads(path.read_text())
            if not isinstance(s, dict) or "step" not in s or "status" not in s:
                raise ValueError("not a run summary")
        except (OSError, ValueError) as e:
            warnings.warn(f"skipping {path}: unreadable summary ({e})", stacklevel=2)
            continue
        s.pop("fingerprint", None)
        s["run_dir"] = str(path.parent)
        s.setdefault("ablation", None)
        rows.append(s)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["ablation"] = df["ablation"].fillna("roadmap")
    return df


def step_table(runs: pd.DataFrame, regime: str) -> pd.DataFrame:
    """One row per roadmap step in order: mean ± std top-1 over finished seeds, status, paper numbers."""
    rows = []
    for s in steps(regime):
        mine = runs[runs["step"] == s.name] if not runs.empty else runs
        done = mine[mine["status"] == "done"] if not mine.empty else mine
        status = "done" if len(done) else (mine["status"].iloc[0] if len(mine) else "missing")
        top1 = done["final_top1"].astype(float) if len(done) else pd.Series(dtype=float)
        rows.append({
            "order": s.order, "step": s.name, "label": s.label, "section": s.section, "adopted": s.adopted,
            "status": status, "seeds": len(done),
            "top1_mean": top1.mean() if len(top1) else float("nan"),
            "top1_std": top1.std(ddof=1) if len(top1) > 1 else float("nan"),
            "params": int(done["params"].iloc[0]) if len(done) else None,
            "gmacs": float(done["gmacs"].iloc[0]) if len(done) else float("nan"),
            "paper_top1": s.top1, "paper_top1_std": s.top1_std, "paper_gmacs": s.gmacs})
    table = pd.DataFrame(rows)
    by_name = table.set_index("step")
    order = steps(regime)
    previous = [s.parent or (order[i - 1].name if i else None) for i, s in enumerate(order)]
    table["compared_to"] = previous
    table["change"] = [r.top1_mean - by_name.loc[p, "top1_mean"] if p else float("nan")
                       for r, p in zip(table.itertuples(), previous)]
    table["paper_change"] = [r.paper_top1 - by_name.loc[p, "paper_top1"] if p else float("nan")
                             for r, p in zip(table.itertuples(), previous)]
    return table


def _fmt(x, digits=2, sign=False):
    if x is None or pd.isna(x):
        return ""
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def markdown(table: pd.DataFrame, title: str, dataset: str) -> str:
    lines = [f"## {title}", "",
             f"Ours: top-1 on {dataset} (mean ± std over seeds). Paper: ImageNet-1K top-1 (Tables 10/11) and GMACs "
             f"at 224x224. Change: versus the step each one modifies.", "",
             "| # | step | section | ours top-1 | seeds | change | params | GMACs | paper top-1 | paper change "
             "| paper GMACs | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        ours = (f"{r.top1_mean:.2f}" + (f" ± {r.top1_std:.2f}" if r.seeds > 1 else "") if r.seeds
                else STATUS_MARK.get(r.status, r.status))
        paper = "" if pd.isna(r.paper_top1) else f"{r.paper_top1:.2f}" + (
            f" ± {r.paper_top1_std:.2f}" if not pd.isna(r.paper_top1_std) else "")
        name = r.step if r.adopted else f"{r.step} (branch)"
        lines.append(f"| {r.order} | {name} | {r.section} | {ours} | {r.seeds} | {_fmt(r.change, sign=True)} | "
                     f"{'' if r.params is None or pd.isna(r.params) else f'{int(r.params):,}'} | "
                     f"{_fmt(r.gmacs, 4)} | {paper} | {_fmt(r.paper_change, sign=True)} | {r.paper_gmacs:.3f} | "
                     f"{r.status} |")
    return "\n".join(lines) + "\n"


def figure(table: pd.DataFrame, path_stem: Path, title: str, dataset: str, regime: str) -> list[Path]:
    """Figure 2 of the paper, twice: our top-1 (left) and the paper's ImageNet top-1 (right), same steps, one bar
    per step grouped by section, GMACs by each bar, branches hatched, failed steps marked."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global backend state, works headless and in notebooks

    n = len(table)
    paper = table["paper_top1"].notna().any()  # ablations have no paper counterpart: one panel
    fig = Figure(figsize=(13 if paper else 7.5, 0.42 * n + 2.2))
    ax, axp = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.15, 1]}) if paper else \
        (fig.subplots(1, 1), None)
    y = list(range(n))[::-1]
    colors = {sec: matplotlib.colormaps["tab10"](i) for i, sec in enumerate(SECTIONS)}

    def bars(axis, values, errors, gmacs, kind):
        finite = [v for v in values if v == v]
        lo = min(finite) if finite else 0
        hi = max(finite) if finite else 1
        pad = max(0.5, (hi - lo) * 0.25)
        left = lo - pad
        for yi, r, v, e, g in zip(y, table.itertuples(), values, errors, gmacs):
            color = colors.get(r.section, "gray")
            if v == v:
                axis.barh(yi, v - left, left=left, color=color, alpha=0.85 if r.adopted else 0.35,
                          hatch=None if r.adopted else "///", edgecolor="black", linewidth=0.5,
                          xerr=e if e == e and e else None, capsize=3)
                macs = f"{g:.3g} GMACs" if g >= 0.1 else f"{g * 1000:.3g} MMACs"
                axis.text(v + pad * 0.05 + (e if e == e and e else 0), yi, f"{v:.2f}  ({macs})", va="center",
                          fontsize=8)
            else:
                axis.text(left + pad * 0.1, yi, STATUS_MARK.get(r.status, r.status), va="center", fontsize=9,
                          color="crimson", fontweight="bold")
        axis.set_xlim(left, hi + pad * 1.6)
        axis.set_xlabel(kind)
        axis.grid(axis="x", alpha=0.3)

    bars(ax, list(table["top1_mean"]), list(table["top1_std"]), list(table["gmacs"]), f"top-1 (%) on {dataset}")
    ax.set_title(f"This reproduction: {dataset}", fontsize=11)
    if paper:
        paper_std = [s if s is not None and s == s else float("nan") for s in table["paper_top1_std"]]
        bars(axp, list(table["paper_top1"]), paper_std, list(table["paper_gmacs"]), "top-1 (%) on ImageNet-1K")
        for ref in references(regime):
            axp.axvline(ref["top1"], color="gray", ls="--", lw=1)
            axp.text(ref["top1"], n - 0.4, f" {ref['model']} {ref['top1']}", color="gray", fontsize=8)
        axp.set_title("The paper (Liu et al. 2022, Fig. 2)", fontsize=11)
    right = axp if paper else ax
    ax.set_yticks(y, [r.label if r.adopted else f"{r.label} (not adopted)" for r in table.itertuples()])
    previous = None
    for yi, r in zip(y, table.itertuples()):
        if r.section != previous:
            for axis in (ax, axp) if paper else (ax,):
                axis.axhline(yi + 0.5, color="black", lw=0.6)
            right.text(1.01, yi, r.section, transform=right.get_yaxis_transform(), fontsize=8, va="center",
                       color=colors.get(r.section, "gray"), fontweight="bold")
            previous = r.section
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    written = []
    for ext in ("png", "pdf"):
        path = path_stem.with_suffix(f".{ext}")
        fig.savefig(path, dpi=130, bbox_inches="tight")
        written.append(path)
    return written


def report(runs_dir: Path, out: Path) -> list[Path]:
    runs = load_runs(runs_dir)
    if runs.empty:
        raise SystemExit(f"error: no summary.json under {runs_dir}; train with `python run.py +step=...` first")
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.csv"]
    runs.to_csv(written[0], index=False)
    groups = list(runs.groupby(["scale", "regime", "ablation"], sort=True))
    md = ["# Roadmap results", "", f"From {len(runs)} runs under `{runs_dir}`.", ""]
    several = len(runs[["scale", "regime"]].drop_duplicates()) > 1
    for (scale, regime, ablation), group in groups:
        suffix = (f"_{scale}_{regime}" if several else "") + ("" if ablation == "roadmap" else f"_{ablation}")
        dataset = DATASET_NAMES.get(group["dataset"].iloc[0], group["dataset"].iloc[0])
        title = (f"Modernizing a ConvNet, {regime}: {scale} scale" +
                 ("" if ablation == "roadmap" else f" — {ablation.replace('_', '-')} ablation"))
        table = step_table(group, regime)
        if ablation != "roadmap":
            table = ablation_table(table, ablation)
        md.append(markdown(table, title, dataset))
        written += figure(table, out / f"roadmap{suffix}", title, dataset, regime)
    (out / "results.md").write_text("\n".join(md))
    written.insert(1, out / "results.md")
    return written


def ablation_table(table: pd.DataFrame, ablation: str) -> pd.DataFrame:
    """Ablations compare every switch with one reference: the baseline (isolated) or ConvNeXt (leave_one_out),
    which is the baseline step's row of these sweeps."""
    from .ablation import ABLATION_STEPS

    base = table.iloc[1]
    keep = table[table["step"].isin(ABLATION_STEPS) | (table["order"] == base["order"])].copy()
    reference = "baseline" if ablation == "isolated" else "ConvNeXt (all switches)"
    keep.loc[keep["order"] == base["order"], "label"] = reference
    keep.loc[keep["order"] != base["order"], "label"] = [
        ("+ " if ablation == "isolated" else "− ") + lbl for lbl in keep.loc[keep["order"] != base["order"], "label"]]
    keep["compared_to"] = base["step"]
    keep["change"] = keep["top1_mean"] - base["top1_mean"]
    keep["adopted"] = True
    keep[["paper_top1", "paper_top1_std", "paper_change"]] = float("nan")  # the paper has no such runs
    return keep


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roadmap.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUNS_DIR/report)")
    parser.add_argument("--wandb", action="store_true", help="also log the figures and table to wandb")
    args = parser.parse_args(argv)
    if not args.runs_dir.is_dir():
        print(f"error: {args.runs_dir} is not a directory", file=sys.stderr)
        return 2
    out = args.out or args.runs_dir / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.formatwarning = lambda msg, *a, **k: f"warning: {msg}\n"
        written = report(args.runs_dir, out)
    if args.wandb:
        log_to_wandb(written)
    for path in written:
        print(path)
    return 0


def log_to_wandb(paths: list[Path]) -> None:
    import wandb

    run = wandb.init(project="roadmap", job_type="report")
    run.log({p.stem: wandb.Image(str(p)) for p in paths if p.suffix == ".png"})
    run.log({"results": wandb.Table(dataframe=pd.read_csv(paths[0]))})
    run.finish()


if __name__ == "__main__":
    sys.exit(main())
