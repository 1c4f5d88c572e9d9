"""Beyond the roadmap's one path: each step's switches applied alone to the baseline (isolated) or removed from the
endpoint (leave_one_out). A step's switches are the model fields it changes versus the step it builds on."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from roadmap import store
from roadmap.errors import ConfigError
from roadmap.kinds import kind_of
from roadmap.steps import Roadmap, Step

if TYPE_CHECKING:  # torch-free at run time: the report reads the ablations through this module
    from roadmap.nets.model import ModelConfig


def trunk(roadmap: Roadmap) -> list[Step]:
    """The steps an ablation varies besides its reference: every adopted step that changes a parent, but the
    baseline itself (its entry would be the reference network again)."""
    return [s for s in roadmap.steps if s.parent and s.adopted and s.name != roadmap.baseline]


def sweep_steps(steps: dict, baseline: str) -> str:
    """The +step list of an ablation sweep (conf/sweep/isolated.yaml, leave_one_out.yaml): `baseline` (the
    reference: the baseline itself, or the endpoint with nothing left out), then every step of `trunk`, each once, so
    every run directory holds one network."""
    roadmap = Roadmap.from_dict({"name": "sweep", "steps": dict(steps), "baseline": baseline})
    return ",".join(["baseline"] + [s.name for s in trunk(roadmap)])


def ablated(kind: str, step: str, roadmap: Roadmap, configs) -> ModelConfig:
    """The network of `step` in ablation `kind`. `configs(name)` gives the cumulative ModelConfig of a step; the
    baseline step stands for the sweep's reference (the baseline itself, or the endpoint with nothing left out).
    A step that changes no switch, or whose switches do not make a valid network in this ablation, is a one-line
    ConfigError that names the ablation and the step."""
    baseline, endpoint = configs(roadmap.baseline), configs(roadmap.endpoint.name)
    from_baseline = kind_of(kind).start == "baseline"
    if step == roadmap.baseline:
        return baseline if from_baseline else endpoint
    info = roadmap.step(step)
    mine, parent = configs(step), configs(info.parent) if info.parent else baseline
    changed = sorted(f.name for f in dataclasses.fields(mine)
                     if getattr(mine, f.name) != getattr(parent, f.name))
    if not changed:
        raise ConfigError(f"ablation={kind}: step {step} changes no switch of the network (only the recipe or "
                          f"training); nothing to ablate")
    if from_baseline:
        values, how = {k: getattr(mine, k) for k in changed}, "applied alone to the baseline"
        start = baseline
    else:  # leave one out: undo the step's change where no later step changed the field again
        values = {k: getattr(parent, k) for k in changed if getattr(endpoint, k) == getattr(mine, k)}
        how, start = "removed from the endpoint", endpoint
    try:
        return dataclasses.replace(start, **values)
    except ConfigError as e:
        raise ConfigError(f"ablation={kind}: step {step}'s switches ({', '.join(changed)}) {how} are not a valid "
                          f"network: {e}") from None


def read_invalid(folder: Path, kind: str) -> dict[str, str]:
    """{step: why} for the steps an ablation sweep could not build (what its runs recorded in the run store; the
    last reason for each step)."""
    return {r["step"]: r["reason"] for r in store.records(folder, kind)}
