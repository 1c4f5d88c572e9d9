"""A step table as a section of results.md: what its numbers mean, one line per step (ours, the change and its
verdict, the published numbers, the status), then notes on capped, unfinished and left-out runs, and for a roadmap
its agreement with the published one."""

from __future__ import annotations

import pandas as pd

from roadmap.kinds import kind_of
from roadmap.report import comparison
from roadmap.report.formatting import BOUNDS, STATUS_MARK, as_text, fmt, interval
from roadmap.report.paper_agreement import agreement_markdown
from roadmap.steps import Roadmap
from roadmap.tables import markdown as markdown_table

COLUMNS = ("#", "step", "section", "ours top-1", "95% CI", "seeds", "change", "change 95% CI", "verdict", "params",
           "GMACs", "published top-1", "published change", "published GMACs", "status")


def _name(r) -> str:
    """A step in the table: its name, marked where it is a branch or its runs were capped."""
    marks = [m for m, on in (("branch", not r.adopted), ("capped", getattr(r, "capped", False))) if on]
    return r.step + (f" ({', '.join(marks)})" if marks else "")


def markdown(table: pd.DataFrame, title: str, dataset: str, roadmap: Roadmap, agree: dict | None,
             kind: str = "roadmap", runs: pd.DataFrame | None = None) -> str:
    """The section of results.md for one table; `runs` (the table's runs) adds the notes on capped runs and on runs
    that did not finish."""
    reference = roadmap.dataset or "published"
    lines = [f"## {title}", "",
             f"Ours: top-1 on {dataset}, mean ± std over seeds, with the 95% t interval of the mean. Change: versus "
             f"{kind_of(kind).change_versus}, the mean of per-seed differences (same seed, "
             f"same data order) with its 95% paired t interval; **helps** / **hurts** when that interval excludes 0, "
             f"unresolved otherwise." + ("" if kind_of(kind).report != "roadmap" else
                                         f" Published: {reference} top-1 and GMACs at 224x224" +
                                         (f" ({roadmap.source})." if roadmap.source else ".")), ""]
    rows = []
    for r in table.itertuples():
        ours = (f"{r.top1_mean:.2f}" + (f" ± {r.top1_std:.2f}" if r.seeds > 1 else "") if r.seeds
                else STATUS_MARK.get(r.status, r.status))
        paper = "" if pd.isna(r.paper_top1) else f"{r.paper_top1:.2f}" + (
            f" ± {r.paper_top1_std:.2f}" if not pd.isna(r.paper_top1_std) else "")
        verdict = f"**{r.verdict}**" if r.verdict in ("helps", "hurts") else r.verdict
        note = getattr(r, "note", "")
        status = f"{STATUS_MARK.get(r.status, r.status)}: {note}" if note else r.status
        rows.append([f"{r.order}", _name(r), f"{r.section}", ours, interval(r.ci_low, r.ci_high), f"{r.seeds}",
                     fmt(r.change, sign=True), interval(r.change_ci_low, r.change_ci_high, True), f"{verdict}",
                     "" if r.params is None or pd.isna(r.params) else f"{int(r.params):,}", fmt(r.gmacs, 4), paper,
                     fmt(r.paper_change, sign=True), fmt(r.paper_gmacs, 3), status.replace("|", "/")])
    lines += markdown_table(rows, COLUMNS)
    notes = table_notes(table, runs)
    if notes:
        lines += ["", *notes]
    if agree is not None:
        lines += ["", *agreement_markdown(agree, reference)]
    return "\n".join(lines) + "\n"


def table_notes(table: pd.DataFrame, runs: pd.DataFrame | None) -> list[str]:
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
        why=lambda d: d["message"].map(as_text))
    for (step, status, why), g in unfinished.groupby(["step", "status", "why"], sort=True):
        seeds = ", ".join(comparison.seed_text(k) for k in sorted(g["seed"]))
        lines.append(f"- {step}, seed{'s' if len(g) > 1 else ''} {seeds}: {status}" + (f": {why}" if why else ""))
    for (step, why), g in left.sort_values(["step", "seed"]).groupby(["step", "left_out"], sort=False):
        seeds = ", ".join(comparison.seed_text(k) for k in g["seed"])
        lines.append(f"- {step}, seed{'s' if len(g) > 1 else ''} {seeds}: left out: {why}")
    return lines
