"""Design-space exploration: networks drawn from the space of the roadmap's switches instead of walked along its
one path (Radosavovic et al., "On Network Design Spaces for Visual Recognition", ICCV 2019).

Hydra's Optuna sweeper draws the switches (conf/explore/: RandomSampler for a population, TPE for a search); this
module names each drawn network by a stable id, rejects invalid or over-budget ones before training (and records
them), and reports progress. The analysis of a population is in `design_space`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

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


def explore_dir(run_dir: Path) -> Path:
    """runs/<scale>/<roadmap>/explore, the folder of a population's networks."""
    return Path(run_dir).parent.parent


def record_rejection(run_dir: Path, model: dict, reason: str, sampler: str) -> None:
    """A drawn network that is not trained (invalid combination, over budget), for the report to count."""
    path = explore_dir(run_dir) / "rejected.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:  # one short line per write: appends from parallel jobs do not interleave
        f.write(json.dumps({"id": network_id(model), "switches": switches(model), "reason": reason,
                            "sampler": sampler}) + "\n")


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
    folder = explore_dir(run_dir)
    done = []
    for path in folder.glob("*/seed*/summary.json"):
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if s.get("status") == "done" and (s.get("explore") or {}).get("sampler") == sampler:
            done.append((s.get("final_top1", 0.0), s["step"]))
    rejected = folder / "rejected.jsonl"
    lines = [json.loads(line) for line in rejected.read_text().splitlines() if line.strip()] \
        if rejected.exists() else []
    n_rejected = len({r["id"] for r in lines if r.get("sampler") == sampler})  # a rerun draws them again
    best, trained = (max(done) if done else None), len({d[1] for d in done})
    text = f"{trained + n_rejected}/{planned} drawn: {trained} trained, {n_rejected} rejected"
    return text + (f"; best so far {best[1]} top-1 {best[0]:.2f}" if best else "")
