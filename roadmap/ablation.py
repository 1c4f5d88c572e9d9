"""Beyond the paper's one path: each switch applied alone to the baseline (isolated) or removed from ConvNeXt
(leave_one_out). A step's switches are the model fields it changes versus the step it builds on."""

from __future__ import annotations

import dataclasses

from .model import ModelConfig
from .steps import get_step, steps

ABLATIONS = ("isolated", "leave_one_out")
# the trunk of the roadmap after its baseline: the decisions ConvNeXt keeps
ABLATION_STEPS = ("stage_ratio", "patchify_stem", "depthwise_conv", "widen", "inverted_bottleneck",
                  "move_up_dwconv", "kernel_7", "gelu", "fewer_activations", "fewer_norms", "layer_norm",
                  "separate_downsampling")


def ablated(kind: str, step: str, regime: str, configs) -> ModelConfig:
    """The network of `step` in ablation `kind`. `configs(name)` gives the cumulative ModelConfig of a step; the
    baseline step stands for the sweep's reference (the baseline itself, or ConvNeXt with nothing left out)."""
    names = [s.name for s in steps(regime)]
    baseline, endpoint = configs(names[1]), configs(names[-1])
    info = get_step(step, regime)
    if info.parent is None:
        return baseline if kind == "isolated" else endpoint
    mine, parent = configs(step), configs(info.parent)
    changed = {f.name for f in dataclasses.fields(ModelConfig) if getattr(mine, f.name) != getattr(parent, f.name)}
    if kind == "isolated":
        return dataclasses.replace(baseline, **{k: getattr(mine, k) for k in changed})
    # leave one out: undo the step's change where no later step changed the field again
    return dataclasses.replace(endpoint, **{k: getattr(parent, k) for k in changed
                                            if getattr(endpoint, k) == getattr(mine, k)})
