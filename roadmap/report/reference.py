"""The reference networks a roadmap was trained beside (`+reference=...`, summaries with section `reference`):
their top-1 over seeds, and the step they are compared with (the endpoint) against each of them seed by seed, the
paper's Swin-T versus ConvNeXt-T comparison at the proxy."""

from __future__ import annotations

import math
import warnings

import pandas as pd

from roadmap.report import comparison, stats
from roadmap.report.formatting import fmt, interval
from roadmap.report.step_stats import NO_CHANGE, step_table
from roadmap.steps import Roadmap, Step
from roadmap.tables import markdown as markdown_table

# the paired change is the compared step minus the reference: helps = the step is more accurate
VERDICTS = {"helps": "step better", "hurts": "reference better"}
COLUMNS = ("network", "top-1", "95% CI", "seeds", "params", "GMACs", "compared with", "change", "change 95% CI",
           "verdict", "published top-1", "published change")


def is_reference(runs: pd.DataFrame) -> pd.Series:
    """Which runs trained a reference network rather than a step."""
    return runs["section"] == "reference"


def reference_table(refs: pd.DataFrame, table: pd.DataFrame, roadmap: Roadmap) -> pd.DataFrame:
    """One row per reference network the runs `refs` trained: its statistics over seeds as the step table has them
    (step_stats.step_table), then the change of the step it is compared with (the roadmap's `parent` for it, the
    endpoint by default) versus it, by seed, with its 95% paired interval and verdict, and the published difference
    (`table`: the steps' table). A reference is trained alike: where its setting differs from the step's in more
    than the network, the change is left out (verdict `not comparable`, the reason in `unlike`)."""
    steps = []
    for name, g in refs.groupby("step", sort=True):
        parent = g["parent"].dropna().iloc[0] if g["parent"].notna().any() else roadmap.endpoint.name
        steps.append(roadmap.reference(name) or Step(name, parent=parent, label=str(g["label"].iloc[0]),
                                                     section="reference"))
    out = step_table(refs, steps)
    step_seeds = dict(zip(table["step"], table["seed_top1"]))
    step_settings = dict(zip(table["step"], table["setting"]))
    published = dict(zip(table["step"], table["paper_top1"]))
    for i, r in out.iterrows():  # step_table measures a row against its parent; here the parent against the row
        unlike = comparison.unlike(r["step"], r["setting"], r["compared_to"],
                                   step_settings.get(r["compared_to"], {}), comparison.FIXED_ALIKE)
        if unlike:
            warnings.warn(f"the comparison of {r['step']} with {r['compared_to']} is left out: {unlike}", stacklevel=2)
        change = {**NO_CHANGE, "verdict": comparison.NOT_COMPARABLE} if unlike else \
            stats.paired_change(step_seeds.get(r["compared_to"], {}), r["seed_top1"])
        for key, value in {**change, "unlike": unlike}.items():
            out.at[i, key] = value
        out.at[i, "paper_change"] = published.get(r["compared_to"], math.nan) - r["paper_top1"]
    return out


def agreement(refs: pd.DataFrame) -> dict:
    """What agreement.json says of each reference (`change` = the compared step minus the reference)."""
    keys = ("label", "seeds", "top1_mean", "ci_low", "ci_high", "compared_to", "change", "change_ci_low",
            "change_ci_high", "pairs", "verdict", "paper_top1", "paper_change")
    return {r["step"]: {k: r[k] for k in keys} for _, r in refs.iterrows()}


def markdown(refs: pd.DataFrame, title: str, dataset: str) -> str:
    """The section of results.md: each reference with the step compared with it."""
    lines = [f"### {title}: reference networks trained alike", "",
             f"Trained with the steps' recipe, data ({dataset}), epochs, batch and seeds, scaled as they are "
             f"(roadmap/nets/swin.py). Change: the compared step's top-1 minus the reference's, the mean of per-seed "
             f"differences with its 95% paired t interval; **step better** / **reference better** when that interval "
             f"excludes 0. Published: the same difference on ImageNet-1K.", ""]
    rows = []
    for r in refs.itertuples():
        ours = f"{r.top1_mean:.2f}" + (f" ± {r.top1_std:.2f}" if r.seeds > 1 else "") if r.seeds else r.status
        verdict = f"**{VERDICTS[r.verdict]}**" if r.verdict in VERDICTS else r.verdict
        params = "" if r.params is None or pd.isna(r.params) else f"{int(r.params):,}"
        rows.append([f"{r.label}", f"{ours}", interval(r.ci_low, r.ci_high), f"{r.seeds}", params, fmt(r.gmacs, 4),
                     f"{r.compared_to}", fmt(r.change, sign=True), interval(r.change_ci_low, r.change_ci_high, True),
                     f"{verdict}", fmt(r.paper_top1), fmt(r.paper_change, sign=True)])
    lines += markdown_table(rows, COLUMNS)
    unlike = [f"- {r.label}: change {comparison.NOT_COMPARABLE}: {r.unlike}." for r in refs.itertuples() if r.unlike]
    return "\n".join(lines + ([""] + unlike if unlike else [])) + "\n"
