"""Beyond the roadmap's one path: each step's switches applied alone to the baseline (isolated) or removed from the
endpoint (leave_one_out). A step's switches are the model fields it changes versus the step it builds on."""

from __future__ import annotations

import dataclasses

from .model import ConfigError, ModelConfig
from .steps import Roadmap

ABLATIONS = ("isolated", "leave_one_out")


def ablated(kind: str, step: str, roadmap: Roadmap, configs) -> ModelConfig:
    """The network of `step` in ablation `kind`. `configs(name)` gives the cumulative ModelConfig of a step; the
    baseline step stands for the sweep's reference (the baseline itself, or the endpoint with nothing left out)."""
    baseline, endpoint = configs(roadmap.baseline), configs(roadmap.endpoint.name)
    if step == roadmap.baseline:
        return baseline if kind == "isolated" else endpoint
    info = roadmap.step(step)
    mine, parent = configs(step), configs(info.parent) if info.parent else baseline
    changed = {f.name for f in dataclasses.fields(ModelConfig) if getattr(mine, f.name) != getattr(parent, f.name)}
    if not changed:
        raise ConfigError(f"ablation={kind}: step {step} changes no switch of the network (only the recipe or "
                          f"training); nothing to ablate")
    if kind == "isolated":
        return dataclasses.replace(baseline, **{k: getattr(mine, k) for k in changed})
    # leave one out: undo the step's change where no later step changed the field again
    return dataclasses.replace(endpoint, **{k: getattr(parent, k) for k in changed
                                            if getattr(endpoint, k) == getattr(mine, k)})
