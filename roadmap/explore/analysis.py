"""A population of trained networks sampled from a design space, analysed in the manner of Radosavovic et al., "On
Network Design Spaces for Visual Recognition" (ICCV 2019): error EDFs, per-switch effects with confidence intervals,
pairwise interactions, the best networks, and where the population disagrees with the roadmap's choices.

Pure analysis (pandas, scipy, statsmodels, matplotlib). Every switch is categorical (kernel_size too); None is its
own level, "none". Effects come from one OLS of top-1 on all switches (treatment-coded against each switch's most
frequent level) plus the complexity covariate, so each is "points of top-1, the other switches held fixed".
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

from roadmap.tables import markdown as markdown_table

BASE_COLUMNS = ("id", "seed", "top1", "gmacs", "params")
EFFECT_COLUMNS = ["switch", "level", "reference", "effect", "ci_low", "ci_high", "p_value", "n", "verdict"]
INTERACTION_COLUMNS = ["a", "b", "f", "p_value", "df"]
DISAGREEMENT_COLUMNS = ["switch", "roadmap", "population_best", "difference", "ci_low", "ci_high", "verdict"]


def _level(value) -> str:
    """A switch value as a level name: None/NaN -> "none", 7.0 -> "7", 1e-6 -> "1e-06", [3, 3, 9, 3] -> "3-3-9-3"."""
    if isinstance(value, (list, tuple)):
        return "-".join(_level(v) for v in value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "none"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _key(level: str):
    """Sort order of levels: numbers numerically first, then the rest alphabetically."""
    try:
        return (0, float(level), level)
    except ValueError:
        return (1, 0.0, level)


def _check(frame, switches, required) -> pd.DataFrame:
    """A copy of `frame` with its switches as level names, after rejecting bad input."""
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise ValueError("design space: the population is empty (no finished runs)")
    switches = list(switches)
    if len(set(switches)) != len(switches) or set(switches) & set(BASE_COLUMNS):
        raise ValueError(f"design space: switches must be distinct and not one of {BASE_COLUMNS}, got {switches}")
    missing = [c for c in [*required, *switches] if c not in frame.columns]
    if missing:
        raise ValueError(f"design space: missing column(s) {missing}; have {list(frame.columns)}")
    for c in set(required) - {"id"}:
        if not np.isfinite(pd.to_numeric(frame[c], errors="coerce").astype(float)).all():
            raise ValueError(f"design space: column {c!r} must hold finite numbers")
    out = frame.copy()
    for s in switches:
        out[s] = [_level(v) for v in out[s].tolist()]
    return out


def network_means(samples, switches=None) -> pd.DataFrame:
    """One row per network id: switches, gmacs, params, top1 (mean over seeds), seeds (runs), error = 100 - top1.
    `switches` defaults to every column besides id, seed, top1, gmacs and params; they must be constant per id."""
    switches = [c for c in samples.columns if c not in BASE_COLUMNS] if switches is None else list(switches)
    d = _check(samples, switches, ("id", "top1", "gmacs", "params"))
    groups = d.groupby("id", sort=True)
    varying = [c for c in [*switches, "gmacs", "params"] if (groups[c].nunique(dropna=False) > 1).any()]
    if varying:
        raise ValueError(f"design space: {varying} differ between runs of one network id (pass switches=...?)")
    out = groups[[*switches, "gmacs", "params"]].first()
    out["top1"] = groups["top1"].mean()
    out["seeds"] = groups.size()
    out["error"] = 100.0 - out["top1"]
    return out.reset_index()


def edf(values) -> tuple[np.ndarray, np.ndarray]:
    """The empirical distribution function: sorted distinct values x and F(x) = fraction of values <= x."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("design space: edf needs a non-empty array of finite values")
    cdf = stats.ecdf(x).cdf
    return cdf.quantiles, cdf.probabilities


def _design(nets, switches, covariate):
    """The data and right-hand side of the main-effects model: switches with >= 2 levels, plus the covariate."""
    d = _check(nets, switches, ("top1", *([covariate] if covariate else [])))
    data = pd.DataFrame({"y": d["top1"].astype(float).to_numpy()})
    terms, references, counts, rhs = {}, {}, {}, []
    for i, s in enumerate(switches):
        count = d[s].value_counts()
        if len(count) < 2:
            continue
        reference = sorted(count.index, key=lambda lv: (-count[lv], _key(lv)))[0]
        data[f"x{i}"] = d[s].to_numpy()  # internal names: any switch name works in the formula
        terms[s], references[s], counts[s] = f"C(x{i}, Treatment(reference={reference!r}))", reference, count
        rhs.append(terms[s])
    if covariate and d[covariate].nunique() > 1:
        data["covariate"] = d[covariate].astype(float).to_numpy()
        rhs.append("covariate")
    return data, terms, references, counts, rhs


def _fit(data, rhs):
    model = smf.ols("y ~ " + (" + ".join(rhs) or "1"), data)
    n, k = model.exog.shape
    if n <= k:
        raise ValueError(f"design space: the main-effects model has {k} parameters, so it needs at least {k + 1} "
                         f"networks (better several times that); got {n}")
    if np.linalg.matrix_rank(model.exog) < k:
        raise ValueError("design space: switches are confounded in this population (singular design); sample them "
                         "independently")
    return model.fit()


def main_effects(nets, switches, covariate="gmacs", confidence=0.95) -> pd.DataFrame:
    """Per non-reference level of each switch: its effect on top-1 versus the switch's reference level with the
    other switches and the covariate held fixed (OLS), its CI, p-value, n and verdict."""
    data, terms, references, counts, rhs = _design(nets, switches, covariate)
    fit = _fit(data, rhs)
    ci = fit.conf_int(alpha=1 - confidence)
    rows = []
    for s, term in terms.items():
        for level in sorted(counts[s].index, key=_key):
            if level == references[s]:
                continue
            name = f"{term}[T.{level}]"
            low, high = ci.loc[name]
            rows.append(dict(switch=s, level=level, reference=references[s], effect=fit.params[name], ci_low=low,
                             ci_high=high, p_value=fit.pvalues[name], n=int(counts[s][level]),
                             verdict="better" if low > 0 else "worse" if high < 0 else "unresolved"))
    out = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    out.attrs.update(confidence=confidence, covariate=covariate if "covariate" in data else None)
    return out


def interactions(nets, switches, covariate="gmacs", top=5) -> pd.DataFrame:
    """F tests of each pair's interaction C(a):C(b) added to the main-effects model; the `top` strongest."""
    data, terms, _, _, rhs = _design(nets, switches, covariate)
    base = _fit(data, rhs)
    rows = []
    for a, b in itertools.combinations(terms, 2):
        try:
            full = smf.ols("y ~ " + " + ".join([*rhs, f"{terms[a]}:{terms[b]}"]), data).fit()
            if full.df_resid < 1 or full.df_model <= base.df_model:  # nothing left to test with, or to test
                continue
            f, p, df = full.compare_f_test(base)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if np.isfinite(f):
            rows.append(dict(a=a, b=b, f=float(f), p_value=float(p), df=int(df)))
    out = pd.DataFrame(rows, columns=INTERACTION_COLUMNS)
    return out.sort_values(["p_value", "f"], ascending=[True, False]).head(top).reset_index(drop=True)


def top_networks(nets, switches, k=10) -> pd.DataFrame:
    """The k best networks by mean top-1: id, switches, params, gmacs, top1, seeds."""
    d = _check(nets, switches, ("id", "top1", "params", "gmacs"))
    if "seeds" not in d:
        d["seeds"] = 1
    d = d.sort_values(["top1", "id"], ascending=[False, True], kind="stable")
    return d[["id", *switches, "params", "gmacs", "top1", "seeds"]].head(k).reset_index(drop=True)


def disagreements(nets, switches, choices: dict, covariate="gmacs", confidence=0.95) -> pd.DataFrame:
    """For each switch the roadmap decided (`choices`: switch -> adopted value): the population's preferred level
    and the difference roadmap minus preferred with its CI (a contrast of the main-effects fit). "disagrees" when
    the roadmap's choice is resolved worse, "agrees" when it is the preferred level, else "unresolved"."""
    data, terms, references, counts, rhs = _design(nets, switches, covariate)
    fit = _fit(data, rhs)
    names = list(fit.params.index)
    rows = []
    for s in [s for s in switches if s in choices]:
        chosen, nan = _level(choices[s]), float("nan")
        row = dict(switch=s, roadmap=chosen, difference=nan, ci_low=nan, ci_high=nan)
        if s not in terms:  # a single level in the population: nothing to compare
            only = _level(nets[s].iloc[0])
            rows.append(row | dict(population_best=only, verdict="agrees" if chosen == only else "not sampled"))
            continue
        effect = {lv: 0.0 if lv == references[s] else fit.params[f"{terms[s]}[T.{lv}]"] for lv in counts[s].index}
        best = max(sorted(effect, key=_key), key=effect.get)
        row["population_best"] = best
        if chosen not in effect:
            rows.append(row | dict(verdict="not sampled"))
        elif chosen == best:
            rows.append(row | dict(difference=0.0, verdict="agrees"))
        else:
            contrast = np.zeros(len(names))
            for level, sign in ((chosen, 1.0), (best, -1.0)):
                if level != references[s]:
                    contrast[names.index(f"{terms[s]}[T.{level}]")] = sign
            test = fit.t_test(contrast)
            low, high = np.asarray(test.conf_int(alpha=1 - confidence)).ravel()
            rows.append(row | dict(difference=float(np.ravel(test.effect)[0]), ci_low=low, ci_high=high,
                                   verdict="disagrees" if high < 0 else "unresolved"))
    return pd.DataFrame(rows, columns=DISAGREEMENT_COLUMNS)


def _edf_curve(ax, values, label, **style):
    x, f = edf(values)
    ax.step(np.r_[x[0], x], np.r_[0.0, f], where="post", label=label, **style)


def make_edf_figure(nets, switches, title=""):
    """The EDF figure (a matplotlib Figure, not saved): the whole population, then one panel per switch."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    d = _check(nets, switches, ("top1",))
    error = 100.0 - d["top1"].astype(float)
    panels = 1 + len(switches)
    ncols = min(4, panels)
    nrows = math.ceil(panels / ncols)
    fig = Figure(figsize=(3.6 * ncols, 2.9 * nrows), layout="constrained")
    first = fig.add_subplot(nrows, ncols, 1)
    _edf_curve(first, error, f"all (n={len(d)})", color="black")
    first.set_title("all networks")
    for i, s in enumerate(switches, start=2):
        ax = fig.add_subplot(nrows, ncols, i, sharex=first, sharey=first)
        for level in sorted(d[s].unique(), key=_key):
            mask = (d[s] == level).to_numpy()
            _edf_curve(ax, error[mask], f"{level} (n={mask.sum()})")
        ax.set_title(s)
    for i, ax in enumerate(fig.axes):
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="lower right")
        ax.set_xlabel("top-1 error (%)")
        if i % ncols == 0:
            ax.set_ylabel("cumulative fraction")
    if title:
        fig.suptitle(title)
    return fig


def edf_figure(nets, switches, path_stem, title="") -> list[Path]:
    """Writes the EDF figure to path_stem.png and path_stem.pdf; returns both paths."""
    fig = make_edf_figure(nets, switches, title)
    paths = [Path(f"{path_stem}.png"), Path(f"{path_stem}.pdf")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        fig.savefig(path, dpi=130)
    return paths


def _table(frame, columns: dict) -> list[str]:
    """Markdown table lines; `columns` maps a header to a function of the row (a dict)."""
    if frame is None or len(frame) == 0:
        return ["_none_"]
    cell = lambda f, r: str(f(r))  # noqa: E731
    return markdown_table([[cell(f, r) for f in columns.values()] for r in frame.to_dict("records")], list(columns))


def _p(p):
    return "" if pd.isna(p) else f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _ci(r):
    return "" if pd.isna(r["ci_low"]) else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"


def _col(name, fmt="{}"):
    """A table column: the row's `name`, formatted (blank when missing)."""
    return lambda r: "" if pd.isna(r[name]) else fmt.format(r[name])


def markdown(nets, switches, effects, inter, top, disagree) -> str:
    """A Markdown section: population size, main effects, interactions, top networks, roadmap vs population."""
    runs = int(nets["seeds"].sum()) if "seeds" in nets else len(nets)
    attrs = effects.attrs if effects is not None else {}
    covariate = attrs.get("covariate")
    lines = ["## Design space", "",
             f"Population: {len(nets)} networks, {runs} runs; switches: {', '.join(switches)}. Effects: OLS of top-1 "
             f"on every switch (categorical, versus its most frequent level)"
             + (f" and {covariate}" if covariate else "") + f", {attrs.get('confidence', 0.95):.0%} CIs.", "",
             "### Main effects (points of top-1)", "",
             *_table(effects, {"switch": _col("switch"), "level": _col("level"), "vs": _col("reference"),
                               "effect": _col("effect", "{:+.2f}"), "CI": _ci, "p": lambda r: _p(r["p_value"]),
                               "n": _col("n"), "verdict": _col("verdict")}),
             "", "### Interactions (F test of a:b added to the main effects)", "",
             *_table(inter, {"a": _col("a"), "b": _col("b"), "F": _col("f", "{:.2f}"), "df": _col("df"),
                             "p": lambda r: _p(r["p_value"])}),
             "", "### Top networks", "",
             *_table(top, {"id": _col("id"), **{s: _col(s) for s in switches},
                           "params (M)": lambda r: f"{r['params'] / 1e6:.2f}", "GMACs": _col("gmacs", "{:.3f}"),
                           "top-1": _col("top1", "{:.2f}"), "seeds": _col("seeds")}),
             "", "### Roadmap's choices vs the population", "",
             *_table(disagree, {"switch": _col("switch"), "roadmap": _col("roadmap"),
                                "population best": _col("population_best"),
                                "roadmap − best": _col("difference", "{:+.2f}"), "CI": _ci,
                                "verdict": _col("verdict")})]
    return "\n".join(lines) + "\n"
