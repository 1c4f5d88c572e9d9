"""Seeds as evidence: confidence intervals, paired changes, per-step verdicts and rank agreement with the published
numbers. Every interval and test comes from scipy.stats; this module only decides what is compared with what.

Seeds are paired: seed k of a step and seed k of the step it changes share their initial draw of data order, so a
step's change is judged on the per-seed differences.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
VERDICTS = ("helps", "hurts", "unresolved", "1 seed", "no pair")


def _t_interval(values, confidence: float) -> tuple[float, float]:
    """Student-t interval of the mean; (nan, nan) under two values, (mean, mean) when all values are equal (the mean
    as mean_interval computes it, which can differ from the values by a rounding error)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    if np.ptp(values) == 0:
        return float(values.mean()), float(values.mean())
    ci = stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def mean_interval(values, confidence: float = CONFIDENCE) -> dict:
    """mean, std (ddof 1), n and the t interval of the mean of one step's seeds."""
    values = np.asarray(values, dtype=float)
    low, high = _t_interval(values, confidence)
    return {"mean": float(values.mean()) if len(values) else math.nan,
            "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
            "n": len(values), "ci_low": low, "ci_high": high}


def paired_change(mine: dict, parent: dict, confidence: float = CONFIDENCE) -> dict:
    """The change from `parent` to `mine` ({seed: top1} each) as the mean of per-seed differences over the seeds
    both have, with its t interval (a paired t interval) and a verdict. Without a common seed the change is the
    difference of the means (verdict `no pair`)."""
    seeds = sorted(set(mine) & set(parent))
    diffs = [mine[s] - parent[s] for s in seeds]
    if diffs:
        change = float(np.mean(diffs))
    elif mine and parent:
        change = float(np.mean(list(mine.values())) - np.mean(list(parent.values())))
    else:
        change = math.nan
    low, high = _t_interval(diffs, confidence)
    return {"change": change, "change_ci_low": low, "change_ci_high": high, "pairs": len(seeds),
            "verdict": verdict(low, high, len(seeds)) if mine and parent else ""}


def verdict(low: float, high: float, pairs: int) -> str:
    """helps / hurts when the interval of the change excludes 0, unresolved otherwise; 1 seed or no pair when there
    is nothing to pair."""
    if pairs == 0:
        return "no pair"
    if pairs == 1:
        return "1 seed"
    if low > 0:
        return "helps"
    if high < 0:
        return "hurts"
    return "unresolved"


def _correlations(ours, paper) -> tuple[float, float]:
    if len(ours) < 3 or np.ptp(ours) == 0 or np.ptp(paper) == 0:
        return math.nan, math.nan
    return float(stats.spearmanr(ours, paper).statistic), float(stats.kendalltau(ours, paper).statistic)


def rank_agreement(seeds: dict, paper: dict, confidence: float = CONFIDENCE, resamples: int = 2000,
                   seed: int = 0) -> dict:
    """Spearman rho and Kendall tau between our per-step mean top-1 (`seeds`: {step: {seed: top1}}) and the
    published top-1 (`paper`: {step: top1}), over the steps that have both; each with a percentile interval from a
    bootstrap over seeds. Seeds are paired across steps (seed k shares its data order everywhere), so a bootstrap
    sample draws seed numbers and every step averages its runs of the drawn seeds (a step that ran none of them
    keeps its mean)."""
    names = [s for s in seeds if s in paper and seeds[s] and paper[s] is not None and not math.isnan(paper[s])]
    means = np.array([np.mean(list(seeds[s].values())) for s in names])
    published = np.array([paper[s] for s in names], dtype=float)
    rho, tau = _correlations(means, published)
    out = {"spearman": rho, "spearman_ci": [math.nan, math.nan], "kendall": tau, "kendall_ci": [math.nan, math.nan],
           "steps": names, "seeds_min": int(min((len(seeds[s]) for s in names), default=0)),
           "confidence": confidence, "resamples": resamples}
    drawn_from = np.array(sorted({k for s in names for k in seeds[s]}))
    if math.isnan(rho) or len(drawn_from) < 2:
        return out
    ran = np.array([[k in seeds[s] for k in drawn_from] for s in names])  # steps x seed numbers
    top1 = np.array([[seeds[s].get(k, 0.0) for k in drawn_from] for s in names])
    published_ranks = stats.rankdata(published)

    def statistic(drawn, axis=-1):  # drawn: resamples x seed numbers, the bootstrap's batch at once
        times = (drawn[..., None] == drawn_from).sum(axis=-2)  # how often each seed number was drawn
        runs = times @ ran.T
        m = np.where(runs > 0, (times @ top1.T) / np.maximum(runs, 1), means)  # no run of the drawn seeds: its mean
        # Spearman's rho is Pearson's r of the ranks
        rho = stats.pearsonr(stats.rankdata(m, axis=-1), published_ranks, axis=-1).statistic
        tau = stats.kendalltau(m, np.broadcast_to(published, m.shape), axis=-1).statistic
        return np.nan_to_num(np.stack([rho, tau]))  # all steps tied in a resample: no rank order (0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about degenerate resamples; the percentiles stand
        ci = stats.bootstrap((drawn_from,), statistic, n_resamples=resamples, vectorized=True, method="percentile",
                             confidence_level=confidence, rng=np.random.default_rng(seed)).confidence_interval
    out["spearman_ci"], out["kendall_ci"] = ([float(ci.low[i]), float(ci.high[i])] for i in (0, 1))
    return out


def sign_agreement(changes: list[tuple[float, float, str]]) -> dict:
    """How many step changes have the published change's sign: over all (ours, paper, verdict) triples with both
    numbers, and over the resolved ones (verdict helps/hurts)."""
    both = [(o, p, v) for o, p, v in changes if not (math.isnan(o) or math.isnan(p))]
    resolved = [(o, p, v) for o, p, v in both if v in ("helps", "hurts")]
    return {"sign_agree": int(sum(np.sign(o) == np.sign(p) for o, p, _ in both)), "sign_total": len(both),
            "resolved_agree": int(sum((v == "helps") == (p > 0) for _, p, v in resolved)),
            "resolved_total": len(resolved)}


def mean_corruption_error(errors: dict, baseline: dict) -> float:
    """mCE as Hendrycks & Dietterich define it, in %: for every corruption c, the network's top-1 errors summed over
    the severities divided by the baseline network's (CE_c), then the mean over the corruptions. `errors` and
    `baseline` map each corruption to its errors (%) at severities 1, 2, ...; a corruption one of them lacks does not
    count; nan when none is shared."""
    ratios = [sum(errors[c]) / sum(baseline[c]) for c in errors
              if c in baseline and len(errors[c]) == len(baseline[c]) and sum(baseline[c]) > 0]
    return 100 * float(np.mean(ratios)) if ratios else math.nan
