"""Design-space exploration: networks drawn from the space of the roadmap's switches instead of walked along its
one path (Radosavovic et al., "On Network Design Spaces for Visual Recognition", ICCV 2019).

This module is the space: the switches a population varies (`explore.space` in conf/explore_space.yaml), a
network's stable id, the repair that maps a draw to the nearest valid network, and the complexity budget. The Optuna
study that draws from it is `roadmap.explore.study` (run by the Hydra sweeper in hydra_plugins/roadmap_explore); the analysis
of a population is `roadmap.explore.analysis`, the report's section on it `roadmap.report.explore`.
"""

from __future__ import annotations

import dataclasses
import json

import torch
from omegaconf import DictConfig, OmegaConf

from roadmap.config import roadmap_of, step_model_config
from roadmap.errors import ConfigError
from roadmap.nets.identity import SWITCHES
from roadmap.nets.model import ModelConfig, RoadmapNet, gmacs

def check_space(space: dict) -> dict:
    """explore.space as {switch: [values]}, or a one-line ConfigError: only switches of SWITCHES, each with a
    non-empty list of distinct values (a switch left out keeps the config's model value)."""
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"explore.space={space!r}: must map switches ({', '.join(SWITCHES)}) to lists of values")
    for name, values in space.items():
        if name not in SWITCHES:
            raise ConfigError(f"explore.space.{name}: not a switch of the design space; switches: "
                              f"{', '.join(SWITCHES)}")
        if not isinstance(values, (list, tuple)) or not values or len({json.dumps(v) for v in values}) < len(values):
            raise ConfigError(f"explore.space.{name}={values!r}: must be a non-empty list of distinct values")
    return {k: list(v) for k, v in space.items()}


def encode(value):
    """A switch value as an Optuna categorical choice (None, bool, int, float or str): depths [3,3,9,3] -> "3-3-9-3"."""
    return "-".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value


def decode(name: str, value):
    """The inverse of `encode` for switch `name`."""
    return [int(v) for v in value.split("-")] if name == "depths" and isinstance(value, str) else value


def overrides(values: dict) -> list[str]:
    """The command-line overrides that select a network with these switches."""
    return [f"model.{k}={_override(values[k])}" for k in SWITCHES]


def _override(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def repair(values: dict) -> dict:
    """The nearest valid network to a draw: each rule of ModelConfig a draw breaks is mended by setting the one switch
    that only matters under it to the value the rule needs (every other switch is kept as drawn):
      activations='one' needs conv_position='first'                  -> activations='all'
      zero_init_residual=true needs norms='all'                       -> zero_init_residual=false
      stride_conv='first' with conv_position='middle', norm='layer' and downsampling='in_block' (a strided Linear)
                                                                      -> stride_conv='spatial'
    Valid networks come back unchanged. Used by the model-based samplers (TPE, GP), whose space stays a fixed
    product; the random sampler rejects instead, which keeps its draws uniform over the valid networks."""
    v = dict(values)
    if v.get("activations") == "one" and v.get("conv_position") != "first":
        v["activations"] = "all"
    if v.get("zero_init_residual") and v.get("norms") != "all":
        v["zero_init_residual"] = False
    if (v.get("stride_conv") == "first" and v.get("conv_position") == "middle" and v.get("norm") == "layer"
            and v.get("downsampling") == "in_block"):
        v["stride_conv"] = "spatial"
    return v


def admitted(cfg: DictConfig) -> ModelConfig:
    """A drawn network, checked before training: an invalid combination of switches, or a network over the
    exploration's budget, is refused with a one-line error (the study's sweeper never launches one; a network given
    by hand with `+explore=net` may be one)."""
    model = ModelConfig.from_dict(OmegaConf.to_container(cfg.model, resolve=True))
    check_budget(model, budget_gmacs(cfg), cfg.data.resolution)
    return model


def budget_gmacs(cfg: DictConfig) -> float | None:
    """explore.budget in GMACs at the scale's resolution: a number, or `endpoint` (explore.budget_factor times the
    roadmap's endpoint network at this scale's width and classes), or null (no budget)."""
    budget = cfg.explore.get("budget")  # checked by settings.ExploreConfig
    if budget is None:
        return None
    if budget != "endpoint":
        return float(budget)
    end = step_model_config(roadmap_of(cfg).endpoint.name, cfg.roadmap.name, cfg.data.num_classes)
    with torch.device("meta"):
        net = RoadmapNet(dataclasses.replace(end, width_multiplier=cfg.model.width_multiplier))
    return float(cfg.explore.get("budget_factor", 1.0)) * gmacs(net, cfg.data.resolution)


def cost(model: ModelConfig, resolution: int) -> float:
    """The network's GMACs at `resolution` (shapes only, on the meta device)."""
    with torch.device("meta"):
        net = RoadmapNet(model)
    return gmacs(net, resolution, model.in_channels)


def check_budget(model: ModelConfig, budget: float | None, resolution: int) -> float:
    """The network's GMACs at the scale's resolution; a ConfigError when it exceeds the budget."""
    macs = cost(model, resolution)
    if budget is not None and macs > budget:
        raise ConfigError(f"over budget: {macs:.4f} GMACs > {budget:.4f} at {resolution}px")
    return macs
