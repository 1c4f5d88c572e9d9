"""How well a roadmap's steps agree with the published ones: rank correlation of the per-step means with bootstrap
intervals over seeds, sign agreement of the changes along the adopted path (agreement, written to agreement.json),
and the same in words for results.md (agreement_markdown)."""

from __future__ import annotations

import math

import pandas as pd

from roadmap.report import stats
from roadmap.report.formatting import fmt

def agreement(table: pd.DataFrame) -> dict:
    """How well the steps agree with the published ones: rank correlation of the per-step means (with bootstrap
    intervals over the paired seeds), and sign agreement of the changes along the adopted path."""
    seeds = {r.step: r.seed_top1 for r in table.itertuples() if r.seed_top1}
    paper = {r.step: r.paper_top1 for r in table.itertuples() if not math.isnan(r.paper_top1)}
    out = stats.rank_agreement(seeds, paper)
    path = table[table["adopted"] & table["compared_to"].notna()]
    out.update(stats.sign_agreement(list(zip(path["change"], path["paper_change"], path["verdict"]))))
    return out


def agreement_markdown(a: dict, reference: str) -> list[str]:
    """The lines of results.md on `a` (what agreement returns); `reference`: whose numbers they are compared with."""
    def corr(key):
        low, high = a[f"{key}_ci"]
        return fmt(a[key]) + (f" (95% CI {fmt(low)} to {fmt(high)})" if not math.isnan(low) else "")

    ranks = (f"- Rank correlation of our per-step mean top-1 with the {reference} top-1, over {len(a['steps'])} "
             f"steps: Spearman ρ = {corr('spearman')}, Kendall τ = {corr('kendall')}; intervals from a bootstrap "
             f"over seeds ({a['resamples']} resamples of the seed numbers, paired across steps; fewest seeds per "
             f"step: {a['seeds_min']}).") if not math.isnan(a["spearman"]) else \
        f"- Rank correlation: not defined over {len(a['steps'])} trained step(s) with a {reference} number."
    return ["### Agreement with the published roadmap", "", ranks,
            f"- Changes along the adopted path with the published sign: {a['sign_agree']} of {a['sign_total']}; of "
            f"the resolved ones (helps/hurts): {a['resolved_agree']} of {a['resolved_total']}."]
