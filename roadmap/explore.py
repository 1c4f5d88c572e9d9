"""Design-space exploration: networks drawn from the space of the roadmap's switches instead of walked along its
one path (Radosavovic et al., "On Network Design Spaces for Visual Recognition", ICCV 2019).

Hydra's Optuna sweeper draws the switches (conf/explore/: RandomSampler for a population, TPE for a search); this
module names each drawn network by a stable id, admits or rejects it before training (an invalid combination, or
over the budget; rejections are recorded next to the population) and reports progress. The analysis of a
population, and the report's section on it, is in `design_space`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from . import store
from .config import roadmap_of, step_model_config
from .errors import ConfigError
from .model import ModelConfig, RoadmapNet, gmacs

# the switches a population varies: every design decision of ModelConfig but the ConvNeXt V2 GRN (outside the
# roadmaps) and the sizes a scale sets (classes, input channels, width multiplier, stochastic depth)
SCALE_FIELDS = ("num_classes", "in_channels", "width_multiplier", "drop_path")
SWITCHES = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name not in SCALE_FIELDS + ("grn",))


class Rejected(ConfigError):
    """A drawn network that is not trained (an invalid combination of switches, or over the budget)."""


def switches(model: ModelConfig | dict) -> dict:
    """The design switches of a network as plain JSON values (depths as a list)."""
    values = dataclasses.asdict(model) if isinstance(model, ModelConfig) else dict(model)
    return {k: list(values[k]) if k == "depths" else values[k] for k in SWITCHES}


def network_id(model) -> str:
    """A stable name for a network from its switches alone: the same in every process and on every machine."""
    text = json.dumps(switches(model), sort_keys=True)
    return "net-" + hashlib.sha1(text.encode()).hexdigest()[:10]


def record_rejection(run_dir: Path, model: dict, reason: str, sampler: str) -> None:
    """A drawn network that is not trained (invalid combination, over budget), for the report to count."""
    store.record(run_dir, "explore", {"id": network_id(model), "switches": switches(model), "reason": reason,
                                      "sampler": sampler})


def admitted(cfg: DictConfig) -> ModelConfig:
    """A drawn network, checked before training: an invalid combination of switches, or a network over the
    exploration's budget, is recorded in the population's rejected.jsonl and refused with a one-line error."""
    raw = OmegaConf.to_container(cfg.model, resolve=True)
    try:
        model = ModelConfig.from_dict(raw)
        check_budget(model, budget_gmacs(cfg), cfg.data.resolution)
    except ConfigError as e:
        record_rejection(Path(cfg.run_dir), raw, str(e), cfg.explore.name)
        raise Rejected(f"{cfg.step} rejected: {e}; {progress(Path(cfg.run_dir), cfg.explore.samples, cfg.explore.name)}"
                       ) from None
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


def check_budget(model: ModelConfig, budget: float | None, resolution: int) -> float:
    """The network's GMACs at the scale's resolution; a ConfigError when it exceeds the budget."""
    with torch.device("meta"):  # shapes only
        net = RoadmapNet(model)
    cost = gmacs(net, resolution, model.in_channels)
    if budget is not None and cost > budget:
        raise ConfigError(f"over budget: {cost:.4f} GMACs > {budget:.4f} at {resolution}px")
    return cost


def progress(run_dir: Path, planned: int, sampler: str) -> str:
    """'k/N drawn: t trained, r rejected; best <id> <top1>' over the networks this sampler drew (the population's
    folder holds every exploration's networks)."""
    folder = store.folder_of(run_dir)
    done = [(s.get("final_top1", 0.0), s["step"]) for _, s in store.summaries(folder)
            if s.get("status") == "done" and (s.get("explore") or {}).get("sampler") == sampler]
    rejected = store.records(folder, "explore")
    n_rejected = len({r["id"] for r in rejected if r.get("sampler") == sampler})  # a rerun draws them again
    best, trained = (max(done) if done else None), len({d[1] for d in done})
    text = f"{trained + n_rejected}/{planned} drawn: {trained} trained, {n_rejected} rejected"
    return text + (f"; best so far {best[1]} top-1 {best[0]:.2f}" if best else "")
