"""The roadmap's figures, drawn with matplotlib from a step table: ours beside the published one (figure,
draw_figure: bars by section, 95% intervals, seeds as dots, verdicts, GMACs), and our change of every step against
the published change (transfer_figure)."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure  # no pyplot: no global backend state, works headless and in notebooks
from matplotlib.ticker import MaxNLocator

from roadmap.kinds import kind_of
from roadmap.report.formatting import BOUNDS, STATUS_MARK, VERDICT_MARK
from roadmap.report.section import save_figure
from roadmap.steps import Roadmap

CAPPED = "train.max_steps_per_epoch cut the epochs short (a smoke run, not a full run)"

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
    ours, clipped = _bars(axes[0], table, y, colors, Bars(
        list(table["top1_mean"]), list(table["ci_low"]), list(table["ci_high"]),
        [list(d.values()) for d in table["seed_top1"]], list(table["gmacs"]), verdicts, capped,
        f"top-1 (%) on {dataset}", also))
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
    fig = Figure(figsize=(14 if paper else 8.5, 0.42 * n + 2.4))
    FigureCanvasAgg(fig)
    if paper:
        return fig, tuple(fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.25, 1]}))
    return fig, (fig.subplots(1, 1),)


@dataclass
class Bars:
    """What one axis draws, one entry per row of the table: a bar of `top1` with its whisker from `low` to `high`
    (NaN: none), the seeds' top-1 as dots, GMACs beside the number, a verdict mark ((text, color) or None) at the
    axis' right edge, and whether the row's runs were capped (dotted bar)."""
    top1: list[float]
    low: list[float]
    high: list[float]
    seeds: list[list[float]]
    gmacs: list[float]
    marks: list[tuple[str, str] | None]
    capped: list[bool]
    xlabel: str
    also: list[float] = field(default_factory=list)  # values the x axis must show besides the bars' (references)


def _bars(axis, table: pd.DataFrame, y: list[int], colors: dict, bars: Bars) -> tuple[tuple, int]:
    """Draw one axis' bars, a row of `table` at each y; return what fitting the x axis needs, (axis, left, right,
    [(end, texts right of it)]), and how many whisker ends were clipped to BOUNDS."""
    values, low, high, dots, gmacs, marks, capped, also = (bars.top1, bars.low, bars.high, bars.seeds, bars.gmacs,
                                                           bars.marks, bars.capped, bars.also)
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
    axis.set_xlabel(bars.xlabel)
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
    drawn = _bars(axis, table, y, colors, Bars(
        top1, [v - s if s else math.nan for v, s in zip(top1, std)],
        [v + s if s else math.nan for v, s in zip(top1, std)], [[]] * n, list(table["paper_gmacs"]), [None] * n,
        [False] * n,
        f"top-1 (%) on {roadmap.dataset or 'the published dataset'}"))
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
    note = (f"Right of each bar: top-1 (GMACs), then {kind_of(kind).change_footnote}; "
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
