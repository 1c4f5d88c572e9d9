"""python -m roadmap.report RUNS_DIR [--out DIR] [--wandb]: the roadmap's tables and figures from what runs wrote.

Needs no network, no training and no Hydra: reads every summary.json under RUNS_DIR (and the roadmap.json the runs
wrote next to them) with pandas and writes
    results.csv      one row per run, with its step's statistics
    steps.csv        one row per step: mean, std, n, 95% interval, paired change vs the step it modifies, verdict
    results.md       the same per step, and the agreement with the published numbers
    agreement.json   Spearman / Kendall with bootstrap intervals, sign agreement of the changes
    roadmap.png/pdf  our bars (95% intervals, seeds as dots, verdicts) beside the published figure
    transfer.png/pdf our paired change of every step against the published change
Ablation sweeps (isolated, leave_one_out) get their own table and figure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import pandas as pd

from . import stats
from .steps import Roadmap, Step

STATUS_MARK = {"diverged": "diverged", "failed": "failed", "missing": "not run"}
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                 "imagefolder": "image folder", "synthetic": "synthetic data"}
VERDICT_MARK = {"helps": ("▲", "forestgreen"), "hurts": ("▼", "crimson"), "unresolved": ("●", "gray"),
                "1 seed": ("", "gray"), "no pair": ("", "gray"), "": ("", "gray")}


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
        s.setdefault("roadmap", s.get("regime", "unknown"))  # summaries written before roadmaps were configuration
        s.setdefault("ablation", None)
        rows.append(s)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["ablation"] = df["ablation"].fillna("roadmap")
    return df


def _float(x) -> float:
    return math.nan if x is None or pd.isna(x) else float(x)


def _optional(x) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def roadmap_of(runs: pd.DataFrame) -> Roadmap:
    """The roadmap the runs belong to: the roadmap.json written next to their step folders, else what their
    summaries say about their steps (in their roadmap order)."""
    for run_dir in runs["run_dir"]:
        path = Path(run_dir).parent.parent / "roadmap.json"
        if path.exists():
            try:
                return Roadmap.from_dict(json.loads(path.read_text()))
            except ValueError as e:
                warnings.warn(f"ignoring {path}: {e}", stacklevel=2)
    first = runs.sort_values("order", na_position="last").drop_duplicates("step")
    known = set(first["step"])
    steps = {r.step: {"parent": r.get("parent") if r.get("parent") in known else None,
                      "label": r.get("label") or r.step, "section": r.get("section") or "",
                      "branch": r.get("adopted") is False, "top1": _optional(r.get("paper_top1")),
                      "gmacs": _optional(r.get("paper_gmacs"))}
             for _, r in first.iterrows()}
    return Roadmap.from_dict({"name": runs["roadmap"].iloc[0], "steps": steps})


def ordered_steps(roadmap: Roadmap, runs: pd.DataFrame) -> list[Step]:
    """The roadmap's steps in order, with every step the runs trained that the roadmap does not list (a user's
    own) placed right after its parent (after the parent's earlier children)."""
    order = list(roadmap.steps)
    extra = runs[~runs["step"].isin(roadmap.names())].drop_duplicates("step")
    pending = [Step(name=r["step"], parent=r.get("parent"), label=r.get("label") or r["step"],
                    section=r.get("section") or "", top1=_optional(r.get("paper_top1")),
                    top1_std=_optional(r.get("paper_top1_std")), gmacs=_optional(r.get("paper_gmacs")))
               for _, r in extra.iterrows()]
    while pending:
        placed = False
        for s in list(pending):
            names = [o.name for o in order]
            if s.parent in names:
                at = names.index(s.parent) + 1
                while at < len(order) and order[at].parent == s.parent and order[at].order is None:
                    at += 1  # after the parent's earlier user children
                order.insert(at, s)
                pending.remove(s)
                placed = True
        if not placed:  # parent unknown: at the end
            order += pending
            break
    return order


def step_table(runs: pd.DataFrame, steps: list[Step], reference: str | None = None) -> pd.DataFrame:
    """One row per step: the statistics of its finished seeds and its paired change versus the step it modifies
    (or versus `reference`, for ablations), with the published numbers."""
    done = runs[runs["status"] == "done"]
    by_seed = {name: dict(zip(g["seed"].astype(int), g["final_top1"].astype(float)))
               for name, g in done.groupby("step")}
    rows = []
    for i, s in enumerate(steps):
        mine = by_seed.get(s.name, {})
        ran = runs[runs["step"] == s.name]
        status = "done" if mine else (ran["status"].iloc[0] if len(ran) else "missing")
        first = done[done["step"] == s.name].head(1)
        compared = reference if reference is not None else s.parent
        if compared == s.name:
            compared = None
        change = stats.paired_change(mine, by_seed.get(compared, {})) if compared else \
            {"change": math.nan, "change_ci_low": math.nan, "change_ci_high": math.nan, "pairs": 0, "verdict": ""}
        summary = stats.mean_interval(list(mine.values()))
        rows.append({
            "order": i, "step": s.name, "label": s.label, "section": s.section, "adopted": s.adopted,
            "status": status, "seeds": summary["n"], "top1_mean": summary["mean"], "top1_std": summary["std"],
            "ci_low": summary["ci_low"], "ci_high": summary["ci_high"], "seed_top1": mine,
            "params": int(first["params"].iloc[0]) if len(first) else None,
            "gmacs": float(first["gmacs"].iloc[0]) if len(first) else math.nan,
            "compared_to": compared, **change,
            "paper_top1": _float(s.top1), "paper_top1_std": _float(s.top1_std), "paper_gmacs": _float(s.gmacs)})
    table = pd.DataFrame(rows)
    paper = dict(zip(table["step"], table["paper_top1"]))
    table["paper_change"] = [paper[r.step] - paper.get(r.compared_to, math.nan) if r.compared_to else math.nan
                             for r in table.itertuples()]
    return table


def agreement(table: pd.DataFrame) -> dict:
    """How well the steps agree with the published ones: rank correlation of the per-step means (with bootstrap
    intervals over the paired seeds), and sign agreement of the changes along the adopted path."""
    seeds = {r.step: r.seed_top1 for r in table.itertuples() if r.seed_top1}
    paper = {r.step: r.paper_top1 for r in table.itertuples() if not math.isnan(r.paper_top1)}
    out = stats.rank_agreement(seeds, paper)
    path = table[table["adopted"] & table["compared_to"].notna()]
    out.update(stats.sign_agreement(list(zip(path["change"], path["paper_change"], path["verdict"]))))
    return out


def _fmt(x, digits=2, sign=False):
    if x is None or pd.isna(x):
        return ""
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _interval(low, high, sign=False):
    return "" if pd.isna(low) else f"[{_fmt(low, sign=sign)}, {_fmt(high, sign=sign)}]"


def markdown(table: pd.DataFrame, title: str, dataset: str, roadmap: Roadmap, agree: dict | None) -> str:
    reference = roadmap.dataset or "published"
    lines = [f"## {title}", "",
             f"Ours: top-1 on {dataset}, mean ± std over seeds, with the 95% t interval of the mean. Change: versus "
             f"the step each one modifies, the mean of per-seed differences (same seed, same data order) with its "
             f"95% paired t interval; **helps** / **hurts** when that interval excludes 0, unresolved otherwise. "
             f"Published: {reference} top-1 and GMACs at 224x224" + (f" ({roadmap.source})." if roadmap.source
                                                                      else "."), "",
             "| # | step | section | ours top-1 | 95% CI | seeds | change | change 95% CI | verdict | params | GMACs "
             "| published top-1 | published change | published GMACs | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        ours = (f"{r.top1_mean:.2f}" + (f" ± {r.top1_std:.2f}" if r.seeds > 1 else "") if r.seeds
                else STATUS_MARK.get(r.status, r.status))
        paper = "" if pd.isna(r.paper_top1) else f"{r.paper_top1:.2f}" + (
            f" ± {r.paper_top1_std:.2f}" if not pd.isna(r.paper_top1_std) else "")
        name = r.step if r.adopted else f"{r.step} (branch)"
        verdict = f"**{r.verdict}**" if r.verdict in ("helps", "hurts") else r.verdict
        lines.append(f"| {r.order} | {name} | {r.section} | {ours} | {_interval(r.ci_low, r.ci_high)} | {r.seeds} | "
                     f"{_fmt(r.change, sign=True)} | {_interval(r.change_ci_low, r.change_ci_high, True)} | {verdict} | "
                     f"{'' if r.params is None or pd.isna(r.params) else f'{int(r.params):,}'} | "
                     f"{_fmt(r.gmacs, 4)} | {paper} | {_fmt(r.paper_change, sign=True)} | {_fmt(r.paper_gmacs, 3)} | "
                     f"{r.status} |")
    if agree is not None:
        lines += ["", *agreement_markdown(agree, reference)]
    return "\n".join(lines) + "\n"


def agreement_markdown(a: dict, reference: str) -> list[str]:
    def corr(key):
        low, high = a[f"{key}_ci"]
        return _fmt(a[key]) + (f" (95% CI {_fmt(low)} to {_fmt(high)})" if not math.isnan(low) else "")

    ranks = (f"- Rank correlation of our per-step mean top-1 with the {reference} top-1, over {len(a['steps'])} "
             f"steps: Spearman ρ = {corr('spearman')}, Kendall τ = {corr('kendall')}; intervals from a bootstrap "
             f"over seeds ({a['resamples']} resamples of the seed numbers, paired across steps; fewest seeds per "
             f"step: {a['seeds_min']}).") if not math.isnan(a["spearman"]) else \
        f"- Rank correlation: not defined over {len(a['steps'])} trained step(s) with a {reference} number."
    return ["### Agreement with the published roadmap", "", ranks,
            f"- Changes along the adopted path with the published sign: {a['sign_agree']} of {a['sign_total']}; of "
            f"the resolved ones (helps/hurts): {a['resolved_agree']} of {a['resolved_total']}."]


def figure(table: pd.DataFrame, path_stem: Path, title: str, dataset: str, roadmap: Roadmap) -> list[Path]:
    """The published roadmap figure, twice: ours (left: mean, 95% interval, every seed as a dot, verdict by each bar)
    and the published one (right). One bar per step grouped by section, GMACs by each bar, branches hatched."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global backend state, works headless and in notebooks

    n = len(table)
    paper = table["paper_top1"].notna().any()  # ablations and users' roadmaps may have no published numbers
    fig = Figure(figsize=(14 if paper else 8, 0.42 * n + 2.4))
    ax, axp = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.25, 1]}) if paper else \
        (fig.subplots(1, 1), None)
    y = list(range(n))[::-1]
    sections = list(dict.fromkeys([*roadmap.sections, *table["section"]]))
    colors = {sec: matplotlib.colormaps["tab10"](i % 10) for i, sec in enumerate(sections)}

    def bars(axis, values, low, high, dots, gmacs, marks, kind):
        points = [v for v in values if v == v] + [v for v in low if v == v] + [v for v in high if v == v] + \
            [d for ds in dots for d in ds]
        lo, hi = (min(points), max(points)) if points else (0, 1)
        pad = max(0.5, (hi - lo) * 0.25)
        left = lo - pad
        for yi, r, v, a, b, ds, g, mark in zip(y, table.itertuples(), values, low, high, dots, gmacs, marks):
            color = colors.get(r.section, "gray")
            if v != v:
                axis.text(left + pad * 0.1, yi, STATUS_MARK.get(r.status, r.status), va="center", fontsize=9,
                          color="crimson", fontweight="bold")
                continue
            axis.barh(yi, v - left, left=left, color=color, alpha=0.8 if r.adopted else 0.35,
                      hatch=None if r.adopted else "///", edgecolor="black", linewidth=0.5)
            if a == a:
                axis.errorbar(v, yi, xerr=[[v - a], [b - v]], fmt="none", ecolor="black", capsize=3, lw=1)
            if len(ds) > 1:
                axis.scatter(ds, [yi + 0.18 * ((k % 3) - 1) for k in range(len(ds))], s=9, color="black",
                             zorder=3, alpha=0.7)
            end = max([v, b if b == b else v, *ds])
            macs = "" if g != g else (f"  ({g:.3g} GMACs)" if g >= 0.1 else f"  ({g * 1000:.3g} MMACs)")
            axis.text(end + pad * 0.05, yi, f"{v:.2f}{macs}", va="center", fontsize=8)
            if mark:
                axis.text(0.995, yi, mark[0], transform=axis.get_yaxis_transform(), ha="right", va="center",
                          fontsize=8, color=mark[1])
        axis.set_xlim(left, hi + pad * 2.2)
        axis.set_xlabel(kind)
        axis.grid(axis="x", alpha=0.3)

    verdicts = [None if not r.verdict else (f"{VERDICT_MARK[r.verdict][0]} {r.change:+.2f}".strip()
                                            if r.change == r.change else r.verdict, VERDICT_MARK[r.verdict][1])
                for r in table.itertuples()]
    bars(ax, list(table["top1_mean"]), list(table["ci_low"]), list(table["ci_high"]),
         [list(d.values()) for d in table["seed_top1"]],
         list(table["gmacs"]), verdicts, f"top-1 (%) on {dataset}")
    ax.set_title(f"This reproduction: {dataset}, {int(table['seeds'].max() or 0)} seed(s)", fontsize=11)
    if paper:
        std = list(table["paper_top1_std"].fillna(0.0))
        paper_top1 = list(table["paper_top1"])
        bars(axp, paper_top1, [v - s if s else math.nan for v, s in zip(paper_top1, std)],
             [v + s if s else math.nan for v, s in zip(paper_top1, std)], [[]] * n, list(table["paper_gmacs"]),
             [None] * n, f"top-1 (%) on {roadmap.dataset or 'the published dataset'}")
        for ref in roadmap.marks:
            axp.axvline(ref["top1"], color="gray", ls="--", lw=1)
            axp.text(ref["top1"], n - 0.4, f" {ref['label']} {ref['top1']}", color="gray", fontsize=8)
        axp.set_title(f"Published: {roadmap.source or roadmap.name}", fontsize=9)
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
    fig.text(0.01, 0.005, "Right of each bar: change versus the step it modifies (mean of per-seed differences); "
             "▲ helps / ▼ hurts: its 95% interval excludes 0; ● unresolved.  Whiskers: 95% interval of the mean; "
             "dots: seeds.", fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return _save(fig, path_stem)


def transfer_figure(table: pd.DataFrame, path_stem: Path, title: str, dataset: str, roadmap: Roadmap,
                    agree: dict) -> list[Path]:
    """Our paired change of every step (with its 95% interval) against the published change: steps in the upper
    right and lower left quadrants move the same way on both datasets."""
    from matplotlib.figure import Figure

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
    return _save(fig, path_stem)


def _save(fig, path_stem: Path) -> list[Path]:
    written = []
    for ext in ("png", "pdf"):
        path = path_stem.with_suffix(f".{ext}")
        fig.savefig(path, dpi=130, bbox_inches="tight")
        written.append(path)
    return written


def ablation_steps(roadmap: Roadmap, runs: pd.DataFrame) -> list[Step]:
    """The rows of an ablation figure: the reference (the baseline entry of these sweeps), then every trained
    step, relabelled as what it adds to the baseline (isolated) or removes from the endpoint (leave_one_out)."""
    kind = runs["ablation"].iloc[0]
    trained = set(runs["step"])
    reference = Step(roadmap.baseline, label="baseline" if kind == "isolated" else f"{roadmap.endpoint.name} "
                     "(all switches)", section="reference")
    prefix = "+ " if kind == "isolated" else "− "
    return [reference] + [Step(s.name, parent=roadmap.baseline, label=prefix + s.label, section=s.section)
                          for s in roadmap.steps if s.name in trained and s.name != roadmap.baseline and s.parent
                          and s.adopted]


def explore_section(group: pd.DataFrame, runs: pd.DataFrame, out: Path, suffix: str, title: str,
                    dataset: str) -> tuple[str, list[Path]]:
    """A population of networks drawn from the design space: EDFs, per-switch effects (OLS with complexity as a
    covariate), interactions, the top networks, where the roadmap's own choices disagree with the population, and
    the best network against the roadmap's endpoints by seed."""
    from . import design_space
    from .explore import SWITCHES

    done = group[group["status"] == "done"]
    folder = Path(group["run_dir"].iloc[0]).parent.parent
    path = folder / "rejected.jsonl"
    rejected = pd.read_json(path, lines=True) if path.exists() and path.stat().st_size else pd.DataFrame()
    rejected = rejected.reindex(columns=["id", "reason", "sampler"]).fillna({"sampler": "?"}).drop_duplicates("id")
    sampler_of = [e.get("sampler", "?") if isinstance(e, dict) else "?"
                  for e in group.get("explore", [None] * len(group))]
    counts = []
    for sampler in dict.fromkeys([*sampler_of, *rejected["sampler"]]):
        mine = group[[s == sampler for s in sampler_of]]
        no = rejected[rejected["sampler"] == sampler]
        over = int(no["reason"].str.startswith("over budget").sum())
        counts.append(f"{sampler}: {mine['step'].nunique()} networks trained ({(mine['status'] == 'done').sum()} "
                      f"finished runs), {len(no)} rejected before training ({len(no) - over} invalid combinations, "
                      f"{over} over the complexity budget)")
    lines = [f"## {title}", "",
             f"Networks drawn from the design space, by sampler (random: uniform; search: TPE; net: given networks, "
             f"e.g. more seeds): {'; '.join(counts)}. {group['step'].nunique()} networks trained in all, "
             f"{len(group) - len(done)} runs failed or diverged. Top-1 on {dataset}.", ""]
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
    written = design_space.edf_figure(nets, varied, out / f"explore{suffix}", title=f"{title}: EDF of top-1 error")
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
    if not choices:
        lines.append("(No finished run of the roadmap's endpoint under this folder: no comparison of choices.)\n")
    lines += ["### The best network against the roadmap's endpoints", "",
              *_best_against(all_nets, done, roadmap_nets)]
    return "\n".join(lines) + "\n", written


def _roadmap_networks(runs: pd.DataFrame, group: pd.DataFrame) -> list[tuple[str, dict, pd.DataFrame]]:
    """The roadmap's endpoint and baseline as members of the population: (step, its switches, the population's
    finished runs of that network). Only those compare fairly with the population's best, as they were trained like it
    (`+explore=net` with the step's switches trains them); the roadmap's own runs give the switches."""
    from .explore import network_id

    same = runs[(runs["scale"] == group["scale"].iloc[0]) & (runs["roadmap"] == group["roadmap"].iloc[0])
                & (runs["ablation"] == "roadmap") & (runs["status"] == "done")]
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
             "baseline networks.", "",
             "| network | GMACs | seeds | top-1 | 95% CI | best − this (paired) | 95% CI | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in runs_of.items():
        m = stats.mean_interval(list(seeds[name].values()))
        c = stats.paired_change(seeds[first], seeds[name]) if name != first else None
        lines.append(f"| {name} | {r['gmacs'].iloc[0]:.4f} | {m['n']} | {m['mean']:.2f} | "
                     f"{_interval(m['ci_low'], m['ci_high'])} | " + ("| | |" if c is None else
                     f"{c['change']:+.2f} | {_interval(c['change_ci_low'], c['change_ci_high'], True)} | "
                     f"{BEST_VERDICT.get(c['verdict'], c['verdict'])} |"))
    lines += ["", "Train them with more seeds (finished seeds are kept):", ""]
    for name, switches in [(first, best_runs["switches"].iloc[0]),
                           *((f"{name}'s network", sw) for name, sw, _ in roadmap_nets)]:
        lines += [f"    # {name}", f"    python run.py -m +explore=net {_overrides(switches)} seed=0,1,2"]
    if not roadmap_nets:
        lines += ["", "(No finished run of the roadmap's endpoint at this scale: its switches are not known here.)"]
    return lines


def _overrides(switches: dict) -> str:
    """The command-line overrides that select a network with these switches."""
    from .explore import SWITCHES

    return " ".join(f"model.{k}={_override(switches[k])}" for k in SWITCHES)


def _override(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def report(runs_dir: Path, out: Path) -> list[Path]:
    runs = load_runs(runs_dir)
    if runs.empty:
        raise SystemExit(f"error: no summary.json under {runs_dir}; train with `python run.py +step=...` first")
    out.mkdir(parents=True, exist_ok=True)
    written, md, per_step = [], ["# Roadmap results", "", f"From {len(runs)} runs under `{runs_dir}`.", ""], []
    several = len(runs[["scale", "roadmap"]].drop_duplicates()) > 1
    for (scale, name, ablation), group in runs.groupby(["scale", "roadmap", "ablation"], sort=True):
        suffix = (f"_{scale}_{name}" if several else "") + ("" if ablation == "roadmap" else f"_{ablation}")
        dataset = DATASET_NAMES.get(group["dataset"].iloc[0], group["dataset"].iloc[0])
        roadmap = roadmap_of(group)
        title = f"{roadmap.title or name}: {scale} scale" + (
            "" if ablation == "roadmap" else " — design-space exploration" if ablation == "explore" else
            f" — {ablation.replace('_', '-')} ablation")
        if ablation == "explore":
            text, files = explore_section(group, runs, out, suffix.removesuffix("_explore"), title, dataset)
            md.append(text)
            written += files
            continue
        if ablation == "roadmap":
            table = step_table(group, ordered_steps(roadmap, group))
            agree = agreement(table)
            (out / f"agreement{suffix}.json").write_text(json.dumps(agree, indent=1) + "\n")
            written += [out / f"agreement{suffix}.json"]
            written += figure(table, out / f"roadmap{suffix}", title, dataset, roadmap)
            written += transfer_figure(table, out / f"transfer{suffix}", title, dataset, roadmap, agree)
        else:
            table = step_table(group, ablation_steps(roadmap, group), reference=roadmap.baseline)
            table[["paper_top1", "paper_top1_std", "paper_gmacs", "paper_change"]] = math.nan
            agree = None
            written += figure(table, out / f"roadmap{suffix}", title, dataset, roadmap)
        md.append(markdown(table, title, dataset, roadmap, agree))
        per_step.append(table.assign(scale=scale, roadmap=name, ablation=ablation))
    if not per_step:  # only explorations
        runs.drop(columns=["switches"], errors="ignore").to_csv(out / "results.csv", index=False)
        (out / "results.md").write_text("\n".join(md))
        return [out / "results.csv", out / "results.md", *written]
    steps = pd.concat(per_step, ignore_index=True)
    columns = ["step", "scale", "roadmap", "ablation", "ci_low", "ci_high", "compared_to", "change",
               "change_ci_low", "change_ci_high", "pairs", "verdict"]
    runs.merge(steps[columns], on=["step", "scale", "roadmap", "ablation"], how="left").drop(
        columns=["seed_top1"], errors="ignore").to_csv(out / "results.csv", index=False)
    steps.drop(columns=["seed_top1"]).to_csv(out / "steps.csv", index=False)
    (out / "results.md").write_text("\n".join(md))
    return [out / "results.csv", out / "results.md", out / "steps.csv", *written]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roadmap.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUNS_DIR/report)")
    parser.add_argument("--wandb", action="store_true", help="also log the figures, tables and agreement to wandb")
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
    """Figures as images, the per-run and per-step tables, and the agreement numbers in the run summary."""
    from .tracking import import_wandb

    wandb = import_wandb()
    run = wandb.init(project="roadmap", job_type="report")
    run.log({p.stem: wandb.Image(str(p)) for p in paths if p.suffix == ".png"})
    run.log({p.stem: wandb.Table(dataframe=pd.read_csv(p)) for p in paths if p.suffix == ".csv"})
    for p in paths:
        if p.suffix == ".json":
            values = json.loads(p.read_text())
            run.summary.update({f"{p.stem}/{k}": v for k, v in values.items() if not isinstance(v, list) or
                                k.endswith("_ci")})
    run.finish()


if __name__ == "__main__":
    sys.exit(main())
