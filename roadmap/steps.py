"""The roadmap itself: step order, labels, sections and the paper's numbers, read from `paper.csv`.

This file and `paper.csv` are the one source of truth for which steps exist and in what order; the switches of each
step live in `conf/step/<name>.yaml`.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

from .model import ConfigError

DATA = Path(__file__).with_name("paper.csv")
REFERENCES = Path(__file__).with_name("references.csv")
REGIMES = ("r50", "r200")
SECTIONS = ("training techniques", "macro design", "ResNeXt", "inverted bottleneck", "large kernel", "micro design")


@dataclass(frozen=True)
class Step:
    regime: str
    order: int  # position in the roadmap figure
    name: str  # the conf/step/<name>.yaml that builds it
    parent: str | None  # the step it changes (None for the baselines)
    label: str  # text under its bar
    section: str  # group of the figure
    adopted: bool  # False for the kernel-size branches the roadmap does not keep
    top1: float  # paper's ImageNet-1K top-1
    top1_std: float | None  # paper's std over 3 seeds (Table 10), None where it gives a single run
    gmacs: float  # paper's multiply-adds at 224x224, in billions


@functools.cache
def _table() -> tuple[Step, ...]:
    with DATA.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return tuple(Step(regime=r["regime"], order=int(r["order"]), name=r["step"], parent=r["parent"] or None,
                      label=r["label"], section=r["section"], adopted=r["adopted"] == "true", top1=float(r["top1"]),
                      top1_std=float(r["top1_std"]) if r["top1_std"] else None, gmacs=float(r["gmacs"]))
                 for r in rows)


def check_regime(regime: str) -> str:
    if regime not in REGIMES:
        raise ConfigError(f"regime={regime!r}: must be one of {', '.join(REGIMES)}")
    return regime


def steps(regime: str = "r50") -> list[Step]:
    """Every step of a regime, in roadmap order."""
    check_regime(regime)
    return sorted((s for s in _table() if s.regime == regime), key=lambda s: s.order)


def step_names(regime: str = "r50") -> list[str]:
    return [s.name for s in steps(regime)]


def get_step(name: str, regime: str = "r50") -> Step:
    """The step `name` of `regime`, or a one-line error that lists the regime's steps."""
    for s in steps(regime):
        if s.name == name:
            return s
    raise ConfigError(f"step={name!r} is not a step of regime {regime}; its steps: {', '.join(step_names(regime))}")


def references(regime: str = "r50") -> list[dict]:
    """The paper's reference transformer for a regime (Swin-T / Swin-B)."""
    check_regime(regime)
    with REFERENCES.open(encoding="utf-8") as f:
        return [{"model": r["model"], "top1": float(r["top1"]), "gmacs": float(r["gmacs"])}
                for r in csv.DictReader(f) if r["regime"] == regime]
