"""Like with like: which runs the report pools into a step's numbers and which steps it compares. Every run's summary
records what defines it besides its seed (roadmap.train.trainer.describe): the data its top-1 is measured on, its training
and its network's switches. From those alone (no Hydra, no conf/):

- the data (dataset, resolution) is what a top-1 means: runs on other data go to tables of their own;
- a step's seeds are pooled only when they agree on everything but the seed: the step keeps its most common setting,
  and a run that differs from it is left out, as are two runs of one step and seed with different results;
- a step and the step it is compared with differ only in what a step may change: a step of the roadmap what its
  runs record that it changes (`changes`: its switches, and its training where it changes it, as Bag of Tricks'
  steps do), never its data or whether its epochs were capped (no step makes a smoke run; runs that do not record
  `changes` may differ in network and training); a step of an ablation, or a reference network, only its network
  (they are trained alike). Where they differ in more, the change is left out.

A key a summary does not record (an older run, a run that failed before it trained) agrees with any value.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import pandas as pd

MEASURED_ON = ("dataset", "resolution")  # what a top-1 is measured on
TRAINING = ("recipe", "epochs_planned", "batch_size", "steps_per_epoch", "precision")
CAPPED = ("capped",)  # train.max_steps_per_epoch cut the epochs short: a smoke run
FIXED_IN_ROADMAP = MEASURED_ON + CAPPED  # what a step and its parent never differ in
FIXED_ALIKE = MEASURED_ON + CAPPED + TRAINING  # ablations and reference networks: trained alike
NOT_COMPARABLE = "not comparable"  # the verdict of a change left out


def _recorded(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def setting(summary: dict) -> dict:
    """What a run summary records of the run's data, training and network ({key: value}, switches by their name, a
    reference network as `reference`); keys it does not record are absent."""
    keys = (*MEASURED_ON, *TRAINING, *CAPPED)
    out = {k: summary[k] for k in keys if _recorded(summary.get(k))}
    switches = summary.get("switches")
    out.update(switches if isinstance(switches, dict) else {})
    if isinstance(summary.get("reference"), dict):
        out["reference"] = summary["reference"]
    return out


def _text(value) -> str:
    return json.dumps(value, sort_keys=True)


def differences(a: dict, b: dict, keys=None) -> list[str]:
    """The keys (of `keys`, default all) both settings record with different values."""
    return [k for k in a if k in b and (keys is None or k in keys) and _text(a[k]) != _text(b[k])]


def common(settings) -> dict:
    """The most common of some settings (the first seen of equally common ones); {} for none."""
    counts = Counter(_text(s) for s in settings)
    return json.loads(counts.most_common(1)[0][0]) if counts else {}


def seed_text(seed) -> str:
    """A seed as text: an integer, or `?` where the summary gives none."""
    return str(int(seed)) if _recorded(seed) and float(seed).is_integer() else "?"


def name(run) -> str:
    """A run as the warnings name it: <step>/seed<k>."""
    return f"{run['step']}/seed{seed_text(run['seed'])}"


def names(runs: pd.DataFrame, most: int = 6) -> str:
    """Runs as a list a line can hold: the first `most`, then how many more."""
    listed = [name(r) for _, r in runs.iterrows()]
    return ", ".join(listed[:most]) + (f" and {len(listed) - most} more" if len(listed) > most else "")


def _value(v) -> str:
    return _text(v) if isinstance(v, (dict, list)) else str(v)


def by_data(group: pd.DataFrame) -> tuple[list[tuple[dict, pd.DataFrame]], str]:
    """The runs of `group` split by the data their top-1 is measured on, each part with the values it differs from
    the others in (most runs first; a run that does not record them joins the first part it agrees with), and a
    line naming the mix (empty when there is one part)."""
    data = [{k: s[k] for k in MEASURED_ON if k in s} for s in group["setting"]]
    parts = [json.loads(t) for t, _ in Counter(_text(d) for d in data if len(d) == len(MEASURED_ON)).most_common()]
    where = []
    for d in data:
        at = next((i for i, p in enumerate(parts) if not differences(d, p)), None)
        if at is None:
            parts.append(d)
            at = len(parts) - 1
        where.append(at)
    where = pd.Series(where, index=group.index)
    keys = [k for k in MEASURED_ON if len({_text(p.get(k)) for p in parts}) > 1]
    split = [({k: p.get(k) for k in keys}, group[where == i]) for i, p in enumerate(parts)]
    if len(split) < 2:
        return split, ""
    mix = " and ".join(f"{k} (" + "; ".join(f"{_value(p[k])}: {names(runs)}" for p, runs in split) + ")"
                       for k in keys)
    return split, f"differ in {mix}; each has tables of its own and no change is measured across them"


def _odd(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of one step that differ from its most common setting; all that differ from another run where no
    setting is more common than a different one (then none is the step's)."""
    counts = Counter(_text(s) for s in runs["setting"]).most_common()
    usual = json.loads(counts[0][0])
    tied = any(n == counts[0][1] and differences(json.loads(s), usual) for s, n in counts[1:])
    return runs[[any(differences(s, o) for o in (runs["setting"] if tied else [usual])) for s in runs["setting"]]]


def _mix(runs: pd.DataFrame, keys) -> str:
    """`key (value: runs; value: runs)` for each key, the runs by the value they record."""
    def holding(key, value):
        return runs[[_text(s.get(key)) == value for s in runs["setting"]]]

    return " and ".join(f"{k} (" + "; ".join(f"{_value(json.loads(v))}: {names(holding(k, v))}" for v in
                                            dict.fromkeys(_text(s[k]) for s in runs["setting"] if k in s)) + ")"
                        for k in keys)


def left_out(group: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """Why each finished run is left out of its step's numbers ("" where it counts), and a line for each mix: a run
    without a top-1 or seed, a run whose setting differs from its step's most common one, one step and seed twice."""
    why = pd.Series("", index=group.index, dtype=object)
    lines = []
    done = group[group["status"] == "done"]
    for i, r in done.iterrows():
        missing = [k for k, ok in (("final_top1", math.isfinite(r["final_top1"])),
                                   ("seed", _recorded(r["seed"]) and float(r["seed"]).is_integer())) if not ok]
        if missing:
            why[i] = f"its summary says done but gives no {' and no '.join(missing)} (a number)"
            lines.append(f"{name(r)} ({r['run_dir']}): {why[i]}; left out")
    for step, runs in done[why[done.index] == ""].groupby("step", sort=False):
        odd = _odd(runs)
        if len(odd):
            mix = _mix(runs, dict.fromkeys(k for s in odd["setting"] for o in runs["setting"]
                                           for k in differences(s, o)))
            for i, s in odd["setting"].items():
                others = [o for j, o in runs["setting"].items() if j != i]
                differ = list(dict.fromkeys(k for o in others for k in differences(s, o)))
                theirs = ["/".join(dict.fromkeys(_value(o[k]) for o in others if k in differences(s, o)))
                          for k in differ]
                why[i] = (f"its {' and '.join(f'{k} {_value(s[k])}' for k in differ)} differ"
                          f"{'s' if len(differ) == 1 else ''} from the other runs of {step} ({', '.join(theirs)})")
            lines.append(f"the runs of {step} differ in {mix}; {names(odd)} left out of {step}'s numbers")
        for seed, same in runs[why[runs.index] == ""].groupby("seed"):
            if len(same) < 2:
                continue
            dirs = "; ".join(f"{r['run_dir']}: {r['final_top1']:g}" for _, r in same.iterrows())
            times = "twice" if len(same) == 2 else f"{len(same)} times"
            if same["final_top1"].nunique() > 1:
                why[same.index] = f"the same step and seed is in the tree {times}, with different results"
                lines.append(f"{name(same.iloc[0])} is in the tree {times} with different results ({dirs}); left "
                             f"out")
            else:
                why[same.index[1:]] = f"a copy of {same['run_dir'].iloc[0]}"
                lines.append(f"{name(same.iloc[0])} is in the tree {times} with the same result ({dirs}); counted "
                             f"once")
    return why, lines


def unlike(step: str, mine: dict, compared: str, theirs: dict, fixed, changes=None) -> str:
    """Why `step` is not compared with `compared` (their settings differ in a key of `fixed`), or "". `changes`: what
    the step's runs record that it changes (roadmap.config.step_changes); where they do, every other key is fixed."""
    keys = [k for k in differences(theirs, mine, fixed if changes is None else None) if k not in (changes or ())]
    if not keys:
        return ""
    values = ", ".join(f"{k} ({compared}: {_value(theirs[k])}; {step}: {_value(mine[k])})" for k in keys)
    return f"{step} and {compared} differ in {values}, beyond what {step} changes"
