"""Robustness per step, the argument of the paper's Section 4 (Table 8, ImageNet-C) at the proxy: from what every run
measured after training (summary `robustness`, roadmap.train.robustness), each step's mean top-1 on corrupted images with
its 95% interval and its paired change versus the step it modifies (verdicts as for clean top-1), and its mCE
(Hendrycks & Dietterich) against the roadmap's baseline, seed by seed; a table and robustness.png/.pdf."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from roadmap.report import stats
from roadmap.report.formatting import VERDICT_MARK, fmt, interval
from roadmap.report.reference import VERDICTS as REFERENCE_VERDICTS
from roadmap.report.section import Section, drawn, save_figure
from roadmap.tables import markdown

COLUMNS = ("#", "step", "clean top-1", "corrupted top-1", "95% CI", "change", "change 95% CI", "verdict", "mCE",
           "mCE 95% CI")

def _records(group: pd.DataFrame) -> dict:
    """{step: {seed: robustness record}} of the finished runs that measured it."""
    if "robustness" not in group:
        return {}
    done = group[(group["status"] == "done") & group["robustness"].map(lambda r: isinstance(r, dict))]
    out: dict = {}
    for r in done.itertuples():
        out.setdefault(r.step, {})[int(r.seed)] = r.robustness
    return out


def _errors(record: dict) -> dict:
    return {c: [100 - v for v in values] for c, values in record["top1"].items()}


def robustness_table(table: pd.DataFrame, group: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """One row per step of `table` (the step table, reference networks last) with robustness measured: mean
    corrupted top-1 (95% interval), its paired change versus the step `table` compares it with (for a reference: that
    step's minus the reference's, as the reference table has it), the verdict, mCE versus `baseline` (the mean over
    seeds of each seed's mCE against the baseline's run of that seed, 95% interval), and each corruption's top-1
    (mean over severities and seeds) as `top1:<corruption>`. Empty when no run measured robustness."""
    records = _records(group)
    corrupted = {step: {k: r["mean_top1"] for k, r in seeds.items()} for step, seeds in records.items()}
    base = records.get(baseline, {})
    rows = []
    for r in table.itertuples():
        mine = records.get(r.step)
        if not mine:
            continue
        summary = stats.mean_interval(list(corrupted[r.step].values()))
        pair = (corrupted[r.step], corrupted.get(r.compared_to, {}))
        if r.section == "reference":  # as the reference table has it: the step compared with it minus it
            pair = pair[::-1]
        change = {} if not r.compared_to else stats.paired_change(*pair) if not getattr(r, "unlike", "") else \
            {"verdict": r.verdict}  # not comparable: as the clean change
        mce = stats.mean_interval([stats.mean_corruption_error(_errors(rec), _errors(base[k]))
                                   for k, rec in mine.items() if k in base])
        names = [c for c in next(iter(mine.values()))["top1"] if all(c in rec["top1"] for rec in mine.values())]
        rows.append({"order": r.order, "step": r.step, "label": r.label, "adopted": r.adopted, "section": r.section,
                     "clean_top1": r.top1_mean, "corrupted_top1": summary["mean"],
                     "corrupted_ci_low": summary["ci_low"], "corrupted_ci_high": summary["ci_high"],
                     "corrupted_seeds": summary["n"], "corrupted_change": change.get("change", math.nan),
                     "corrupted_change_ci_low": change.get("change_ci_low", math.nan),
                     "corrupted_change_ci_high": change.get("change_ci_high", math.nan),
                     "corrupted_verdict": change.get("verdict", ""), "mce": mce["mean"], "mce_ci_low": mce["ci_low"],
                     "mce_ci_high": mce["ci_high"],
                     **{f"top1:{c}": float(np.mean([np.mean(rec["top1"][c]) for rec in mine.values()]))
                        for c in names}})
    return pd.DataFrame(rows)


def robustness_figure(rows: pd.DataFrame, title: str, dataset: str, baseline: str):
    """Left: every step's clean and corrupted top-1 (95% interval), the verdict of its corrupted change and its mCE;
    right: its top-1 under each corruption (mean over severities and seeds)."""
    names = [c.removeprefix("top1:") for c in rows.columns if c.startswith("top1:")]
    n = len(rows)
    fig = Figure(figsize=(15, 0.42 * n + 2.6))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.1, 1]})
    y = np.arange(n)[::-1]
    # whiskers where the interval has a width (one seed has none, equal seeds one of 0): never below 0, as a
    # mean computed apart from its interval can lie a rounding error outside it
    low = (rows["corrupted_top1"] - rows["corrupted_ci_low"]).clip(lower=0)
    high = (rows["corrupted_ci_high"] - rows["corrupted_top1"]).clip(lower=0)
    whisker = ((low + high) > 0).to_numpy()
    left.scatter(rows["clean_top1"], y, marker="o", facecolors="none", edgecolors="black")
    left.scatter(rows["corrupted_top1"], y, marker="o", color="tab:blue")
    if whisker.any():
        left.errorbar(rows["corrupted_top1"][whisker], y[whisker], xerr=[low[whisker], high[whisker]], fmt="none",
                      ecolor="tab:blue", capsize=3)
    for yi, r in zip(y, rows.itertuples()):
        symbol, color = VERDICT_MARK.get(r.corrupted_verdict, ("", "gray"))
        text = f"{symbol} {r.corrupted_change:+.2f}".strip() if r.corrupted_change == r.corrupted_change else ""
        text += f"  mCE {r.mce:.1f}" if r.mce == r.mce else ""
        left.text(0.995, yi, text, transform=left.get_yaxis_transform(), ha="right", va="center", fontsize=8,
                  color=color)
    span = pd.concat([rows["clean_top1"], rows["corrupted_ci_low"], rows["corrupted_top1"]]).dropna()
    low_end, high_end = max(0.0, span.min() - 1), min(100.0, span.max() + 1)
    left.set_xticks([t for t in MaxNLocator(nbins=6).tick_values(low_end, high_end) if low_end <= t <= high_end])
    left.set_xlim(low_end, high_end + (high_end - low_end) * 0.6)  # room on the right for the changes and mCE
    left.set_yticks(y, [r.label + ("" if r.adopted else " (not adopted)") for r in rows.itertuples()])
    left.set_xlabel(f"top-1 (%) on {dataset}")
    left.grid(axis="x", alpha=0.3)
    bare = "" if whisker.all() else "; no whisker: one seed, or every seed equal"
    left.set_title(f"○ clean, ● corrupted top-1 (mean of every corruption and severity, 95% CI{bare}); right: its "
                   f"change vs the step modified\n(▲/▼: 95% CI excludes 0; a reference: the step compared minus "
                   f"it) and mCE (vs {baseline} = 100)", fontsize=9)
    grid = rows[[f"top1:{c}" for c in names]].to_numpy(dtype=float)
    image = right.imshow(grid, aspect="auto", cmap="viridis", extent=(-0.5, len(names) - 0.5, -0.5, n - 0.5))
    middle = np.nanmean(grid) if np.isfinite(grid).any() else 0.0  # dark cells get white numbers
    for i, yi in enumerate(y):
        for j, value in enumerate(grid[i]):
            right.text(j, yi, f"{value:.1f}", ha="center", va="center", fontsize=7,
                       color="white" if value < middle else "black")
    right.set_xticks(range(len(names)), [c.replace("_", " ") for c in names], rotation=30, ha="right", fontsize=8)
    right.set_title("top-1 (%) under each corruption, mean of its 3 severities", fontsize=9)
    right.grid(False)
    fig.colorbar(image, ax=right, fraction=0.04)
    fig.suptitle(f"{title}: robustness to corruptions", fontsize=12)
    fig.tight_layout()
    return fig


def robustness_section(table: pd.DataFrame, group: pd.DataFrame, baseline: str,
                       section: Section) -> tuple[str, list[Path], pd.DataFrame]:
    """The section of results.md, robustness<suffix>.png/.pdf and the rows (empty when no run measured it)."""
    rows = robustness_table(table, group, baseline)
    if rows.empty:
        return "", [], rows
    title, stem = section.title, section.stem("robustness")
    written = drawn(stem, lambda: save_figure(robustness_figure(rows, title, section.dataset, baseline), stem))
    images = sorted({int(r["images"]) for seeds in _records(group).values() for r in seeds.values()})
    lines = [f"### {title}: robustness to corruptions", "",
             f"Top-1 on corrupted copies of {', '.join(map(str, images))} validation images: "
             f"{len([c for c in rows.columns if c.startswith('top1:')])} corruptions in the manner of ImageNet-C "
             f"(roadmap/data/corruptions.py), each at 3 severities, the same images for every run. Corrupted: the mean over "
             f"all of them, mean over seeds with its 95% t interval; change: versus the step each one modifies, "
             f"paired by seed (for a reference network: the step compared with it minus it); **helps** / **hurts** "
             f"when its 95% interval excludes 0. mCE (Hendrycks & Dietterich): "
             f"per corruption the errors summed over severities divided by {baseline}'s, averaged over corruptions, "
             f"seed by seed (lower is more robust; {baseline} = 100).", ""]
    cells = []
    for r in rows.itertuples():
        verdict = (REFERENCE_VERDICTS if r.section == "reference" else {}).get(r.corrupted_verdict,
                                                                              r.corrupted_verdict)
        verdict = f"**{verdict}**" if r.corrupted_verdict in ("helps", "hurts") else verdict
        row = [f"{r.order}", f"{r.step}", fmt(r.clean_top1), fmt(r.corrupted_top1),
               interval(r.corrupted_ci_low, r.corrupted_ci_high), fmt(r.corrupted_change, sign=True),
               interval(r.corrupted_change_ci_low, r.corrupted_change_ci_high, True), f"{verdict}", fmt(r.mce, 1),
               interval(r.mce_ci_low, r.mce_ci_high)]
        cells.append(row)
    lines += markdown(cells, COLUMNS)
    return "\n".join(lines) + "\n", written, rows
