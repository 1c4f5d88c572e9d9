"""A step table: one row per step of a roadmap (or of an ablation) with the statistics of its finished seeds, its
paired change versus the step it is compared with and the published numbers; roadmap.report.stats computes them,
roadmap.report.comparison says which runs are pooled and which steps compare."""

from __future__ import annotations

import math
import warnings

import pandas as pd

from roadmap.report import comparison, stats
from roadmap.report.formatting import as_float
from roadmap.steps import Step

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
    changes = {name: next((c for c in g["changes"] if isinstance(c, list)), None)
               for name, g in done.groupby("step")} if "changes" in done else {}
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
        unlike = comparison.unlike(s.name, settings.get(s.name, {}), compared, settings.get(compared, {}), fixed,
                                   changes.get(s.name)) if compared else ""
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
            "paper_top1": as_float(s.top1), "paper_top1_std": as_float(s.top1_std), "paper_gmacs": as_float(s.gmacs)})
    table = pd.DataFrame(rows)
    left = table[table["unlike"] != ""]
    if len(left):
        warnings.warn(f"the change{'s' if len(left) > 1 else ''} of {', '.join(left['step'])} "
                      f"{'are' if len(left) > 1 else 'is'} left out: {'; '.join(left['unlike'])}", stacklevel=2)
    paper = dict(zip(table["step"], table["paper_top1"]))
    table["paper_change"] = [paper[r.step] - paper.get(r.compared_to, math.nan) if r.compared_to else math.nan
                             for r in table.itertuples()]
    return table
