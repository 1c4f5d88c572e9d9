"""The report's section on an exploration (`python -m roadmap.report` on a folder with `explore/` runs): how many
networks each sampler drew, trained and rejected; the population's EDFs, effects, interactions and top networks
(roadmap.explore.analysis); where the roadmap's choices disagree with it; the best network against the roadmap's
endpoint and baseline networks trained alike, paired by seed."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib
import optuna
import pandas as pd

from roadmap import store
from roadmap.explore import analysis as design_space
from roadmap.explore import study
from roadmap.explore.space import overrides
from roadmap.nets.identity import SWITCHES, network_id
from roadmap.report import stats
from roadmap.report.formatting import interval
from roadmap.report.runs import roadmap_of
from roadmap.report.section import Section, drawn
from roadmap.tables import markdown


def explore_section(group: pd.DataFrame, runs: pd.DataFrame, section: Section) -> tuple[str, list[Path]]:
    """A population of networks drawn from the design space: EDFs, per-switch effects (OLS with complexity as a
    covariate), interactions, the top networks, where the roadmap's own choices disagree with the population, and
    the best network against the roadmap's endpoints by seed. `section.suffix` names the files without the
    exploration's `_explore`."""
    out, suffix, title = section.out, section.suffix, section.title
    done = group[group["status"] == "done"]
    whole = [isinstance(s, dict) and set(SWITCHES) <= set(s) and math.isfinite(g) and math.isfinite(t)
             for s, g, t in zip(done["switches"], done["gmacs"], done["final_top1"])]
    if not all(whole):  # a damaged or foreign summary: the population's analysis needs all of them for every network
        warnings.warn(f"{title}: left out of the population, as their summaries do not give every switch, GMACs and "
                      f"top-1: {', '.join(done.loc[[not w for w in whole], 'run_dir'])}", stacklevel=2)
        done = done[whole]
    found = study.studies(store.folder_of(Path(group["run_dir"].iloc[0])))
    lines = [f"## {title}", "",
             f"Networks drawn from the design space, by exploration (random: uniform over the valid networks; "
             f"search: multivariate TPE; gp: Gaussian process; net: given networks, e.g. more seeds): "
             f"{'; '.join(_sampler_counts(group, found))}. {group['step'].nunique()} networks trained in all, "
             f"{int((group['status'] != 'done').sum())} runs failed or diverged. Top-1 on {section.dataset}. "
             f"Population members train on capped epochs (train.max_steps_per_epoch = scale.explore_steps"
             f"{_cut(group)}), by design: they compare with each other and with the networks trained alike below, "
             f"not with full runs.", ""]
    if done.empty:
        return "\n".join(lines + ["No finished run yet."]) + "\n", []
    samples = pd.concat([done[["step", "seed", "final_top1", "gmacs", "params"]].reset_index(drop=True),
                         pd.DataFrame(list(done["switches"])).reset_index(drop=True)], axis=1)
    samples = samples.rename(columns={"step": "id", "final_top1": "top1"})
    # the distributions and effects come from the uniform draws only (a search's or a hand-picked network's runs
    # would bias them); the top networks and the best from every trained network
    uniform = [isinstance(e, dict) and e.get("sampler") == "random" for e in done.get("explore", [])]
    population = samples[uniform] if any(uniform) else samples
    varied = [s for s in SWITCHES if population[s].astype(str).nunique() > 1]
    nets, all_nets = design_space.network_means(population, varied), design_space.network_means(samples, varied)
    if len(all_nets) > len(nets):
        lines += [f"Distributions and effects: the {len(nets)} networks drawn uniformly; top networks: all "
                  f"{len(all_nets)}.", ""]
    stem = out / f"explore{suffix}"
    written = drawn(stem, lambda: design_space.edf_figure(nets, varied, stem, title=f"{title}: EDF of top-1 error"))
    try:
        effects = design_space.main_effects(nets, varied)
        inter = design_space.interactions(nets, varied)
    except ValueError as e:  # too few networks for the linear model
        effects = inter = None
        lines += [f"Effects not estimated: {e}.", ""]
    roadmap_nets = _roadmap_networks(runs, group)
    choices = {k: v for k, v in (roadmap_nets[0][1] if roadmap_nets else {}).items() if k in varied}
    disagree = design_space.disagreements(nets, varied, choices) if effects is not None and choices else None
    top = design_space.top_networks(all_nets, varied)
    lines.append(design_space.markdown(nets, varied, effects, inter, top, disagree).replace("## Design space\n\n", ""))
    lines += _importances(found.get("random"), varied)
    written += drawn(out / f"explore_edf{suffix}", lambda: _study_figures(found, out, suffix, title))
    if not choices:
        lines.append("(No finished run of the roadmap's endpoint under this folder: no comparison of choices.)\n")
    lines += ["### The best network against the roadmap's endpoints", "",
              *_best_against(all_nets, done, roadmap_nets)]
    return "\n".join(lines) + "\n", written


def _sampler_counts(group: pd.DataFrame, found: dict) -> list[str]:
    """For each exploration (sampler), how many networks it drew, trained and rejected; for networks given by hand,
    how many were trained."""
    sampler_of = [str(e.get("sampler", "?")) if isinstance(e, dict) else "?"
                  for e in group.get("explore", [None] * len(group))]
    counts = []
    first = {"random": 0, "search": 1, "gp": 2}
    order = sorted(dict.fromkeys([*found, *sampler_of]), key=lambda n: (first.get(n, 3), n))
    for name in order:
        mine = group[[s == name for s in sampler_of]]
        if name not in found:  # networks given by hand (net), or a study's journal that is gone
            counts.append(f"{name}: {mine['step'].nunique()} networks trained ({(mine['status'] == 'done').sum()} "
                          f"finished runs)")
            continue
        trials = found[name].get_trials(deepcopy=False)
        c = study.counts(trials)
        elsewhere = len({t.user_attrs["network"] for t in trials if t.user_attrs.get("outcome") == "trained"}
                        - set(mine["step"]))  # a network another exploration had trained is not trained again
        counts.append(f"{name}: {c['trained']} networks from {len(trials)} draws ({c['invalid']} invalid, "
                      f"{c['repaired']} repaired, {c['over_budget']} over the complexity budget, {c['redrawn']} drawn "
                      f"again" + (f"; {elsewhere} of the networks trained before by another exploration" if elsewhere
                                  else "") + ")")
    return counts


def _cut(group: pd.DataFrame) -> str:
    """", 20 of 235 optimizer steps per epoch", from what the runs recorded (nothing where they did not)."""
    cut = sorted({(int(a), int(b)) for a, b in zip(group["steps_per_epoch"], group["full_steps_per_epoch"])
                  if a == a and b == b and a < b})
    return (": " + "; ".join(f"{a} of {b} optimizer steps per epoch" for a, b in cut)) if cut else ""


def _roadmap_networks(runs: pd.DataFrame, group: pd.DataFrame) -> list[tuple[str, dict, pd.DataFrame]]:
    """The roadmap's endpoint and baseline as members of the population: (step, its switches, the population's
    finished runs of that network). Only those compare fairly with the population's best, as they were trained like it
    (`+explore=net` with the step's switches trains them); the roadmap's own runs give the switches."""
    same = runs[(runs["scale"] == group["scale"].iloc[0]) & (runs["roadmap"] == group["roadmap"].iloc[0])
                & (runs["kind"] == "roadmap") & (runs["status"] == "done")]
    if same.empty:
        return []
    roadmap, done = roadmap_of(same), group[group["status"] == "done"]
    out = []
    for name in dict.fromkeys((roadmap.endpoint.name, roadmap.baseline)):
        step_runs = same[same["step"] == name]
        if len(step_runs):
            sw = step_runs["switches"].iloc[0]
            out.append((name, sw, done[done["step"] == network_id(sw)]))
    return out


BEST_VERDICT = {"helps": "best is better", "hurts": "best is worse"}  # the paired change is best − this
BEST_COLUMNS = ("network", "GMACs", "seeds", "top-1", "95% CI", "best − this (paired)", "95% CI", "verdict")


def _table(rows, columns) -> list[str]:
    """The lines of a Markdown table of these formatted cells, a "|" in a cell escaped."""
    return markdown(rows, columns)


def _best_against(nets: pd.DataFrame, done: pd.DataFrame, roadmap_nets: list[tuple[str, dict, pd.DataFrame]]):
    """The best network (most seeds among the best five, then mean top-1) beside the roadmap's endpoint and baseline
    networks trained like the population: mean, 95% interval, GMACs, and the best's change versus each, paired by
    seed. Commands train whichever of them still lacks seeds."""
    best = nets.sort_values("top1", ascending=False).head(5).sort_values(["seeds", "top1"], ascending=False).iloc[0]
    best_runs = done[done["step"] == best["id"]]
    runs_of = {"best: " + best["id"]: best_runs}
    runs_of.update({f"{name}'s network": r for name, _, r in roadmap_nets if len(r)})
    seeds = {name: dict(zip(r["seed"].astype(int), r["final_top1"].astype(float))) for name, r in runs_of.items()}
    first = next(iter(seeds))
    lines = ["Trained alike (the population's epochs and batches): the best network and the roadmap's endpoint and "
             "baseline networks.", ""]
    rows = []
    for name, r in runs_of.items():
        m = stats.mean_interval(list(seeds[name].values()))
        c = stats.paired_change(seeds[first], seeds[name]) if name != first else None
        rows.append([name, f"{r['gmacs'].iloc[0]:.4f}", f"{m['n']}", f"{m['mean']:.2f}",
                     interval(m['ci_low'], m['ci_high']), *(("", "", "") if c is None else
                     (f"{c['change']:+.2f}", interval(c['change_ci_low'], c['change_ci_high'], True),
                      f"{BEST_VERDICT.get(c['verdict'], c['verdict'])}"))])
    lines += _table(rows, BEST_COLUMNS)
    lines += ["", "Train them with more seeds (finished seeds are kept):", ""]
    for name, switches in [(first, best_runs["switches"].iloc[0]),
                           *((f"{name}'s network", sw) for name, sw, _ in roadmap_nets)]:
        lines += [f"    # {name}", f"    python run.py -m +explore=net {' '.join(overrides(switches))} seed=0,1,2"]
    if not roadmap_nets:
        lines += ["", "(No finished run of the roadmap's endpoint at this scale: its switches are not known here.)"]
    return lines


def _importances(population, switches) -> list[str]:
    """Optuna's PED-ANOVA importance of every switch in the uniform population (how much each switch's values
    separate the top networks from the rest), beside the OLS effects."""
    if population is None:
        return []
    nets = study.trained(population)
    try:
        imp = optuna.importance.get_param_importances(
            nets, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=list(switches))
    except (ValueError, RuntimeError) as e:
        return [f"Switch importances not computed: {e}.", ""]
    return ["### Switch importances (Optuna's PED-ANOVA over the uniform population's top 10%)", "",
            *_table([[f"{k}", f"{v:.3f}"] for k, v in imp.items()], ("switch", "importance")), ""]


def _study_figures(found: dict, out: Path, suffix: str, title: str) -> list[Path]:
    """Optuna's own plots of the studies: the EDF of top-1 by exploration, and the optimisation history of the
    model-based searches (random's for comparison)."""
    # optuna's matplotlib plots draw through pyplot (global figure state the report's own figures do without):
    # imported only where an exploration has studies to plot
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    nets = {name: study.trained(s) for name, s in found.items()}
    nets = {name: s for name, s in nets.items() if len(s.trials)}
    if not nets:
        return []
    written = []
    with warnings.catch_warnings(), matplotlib.rc_context():  # optuna's plots set the ggplot style for good: not
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # for the report's other figures
        for kind, draw in (("edf", lambda: ovm.plot_edf(list(nets.values()), target_name="top-1 (%)")),
                           ("history", lambda: ovm.plot_optimization_history(list(nets.values()),
                                                                             target_name="top-1 (%)"))):
            ax = draw()
            ax.set_title(f"{title}: {'EDF of top-1 by exploration' if kind == 'edf' else 'top-1 by trial'}",
                         fontsize="small")
            path = out / f"explore_{kind}{suffix}.png"
            ax.figure.set_size_inches(7, 4.2)
            ax.figure.savefig(path, dpi=130, bbox_inches="tight")
            plt.close(ax.figure)
            written.append(path)
    return written
