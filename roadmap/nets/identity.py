"""A network's identity by its design switches: which ModelConfig fields are design decisions (the rest a scale
sets), their plain-JSON values, and a stable id from them (the step name of a drawn network, conf/explore)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from roadmap.nets.model import ModelConfig

# the switches a population varies: every design decision of ModelConfig but the ConvNeXt V2 GRN (outside the
# roadmaps) and the sizes a scale sets (classes, input channels, width multiplier, stochastic depth)
SCALE_FIELDS = ("num_classes", "in_channels", "width_multiplier", "drop_path")
SWITCHES = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name not in SCALE_FIELDS + ("grn",))


def switches(model: ModelConfig | dict) -> dict:
    """The design switches of a network as plain JSON values (depths as a list)."""
    values = dataclasses.asdict(model) if isinstance(model, ModelConfig) else dict(model)
    return {k: list(values[k]) if k == "depths" else values[k] for k in SWITCHES}


def network_id(model) -> str:
    """A stable name for a network from its switches alone: the same in every process and on every machine."""
    text = json.dumps(switches(model), sort_keys=True)
    return "net-" + hashlib.sha1(text.encode()).hexdigest()[:10]
