"""The run record: what a run's summary.json holds, as one schema. The trainer fills it (roadmap.train.summary), the
run store reads and upgrades it (roadmap.store.summaries), the report's columns come from it (roadmap.report.runs).
A field added to summaries is added here first; `upgraded` and `upgraded_fingerprint` are the one place an older
summary's (or checkpoint's fingerprint's) format becomes today's."""

from __future__ import annotations

import math
from typing import Any, TypedDict, get_type_hints


class RunRecord(TypedDict, total=False):
    # what the run is: the step as its roadmap describes it (a failed run's record has only the first six and kind,
    # dataset, status and message)
    step: str
    roadmap: str
    scale: str
    seed: int
    kind: str  # roadmap.kinds.KINDS
    dataset: str
    parent: str | None
    order: int | None
    label: str
    section: str
    adopted: bool | None
    explore: dict | None  # an exploration's sampler and budget
    switches: dict | None  # the network's design switches (a RoadmapNet)
    changes: list | None  # what the step changes versus its parent, as setting keys (roadmap.config.step_changes)
    reference: dict | None  # a reference network's configuration (Swin)
    # the setting: what a comparison holds equal (roadmap.report.comparison)
    recipe: str
    resolution: int
    epochs_planned: int
    batch_size: int
    precision: str
    channels_last: bool
    compile: Any
    cuda_graphs: bool
    steps_per_epoch: int
    full_steps_per_epoch: int
    capped: bool
    # the network's cost and the published numbers of its step
    params: int
    gmacs: float
    paper_top1: float | None
    paper_top1_std: float | None
    paper_top5: float | None
    paper_gmacs: float | None
    # where it ran
    device: str
    world_size: int
    threads: int
    torch: str
    # how it ended, and its results (none for an interrupted or failed run)
    status: str  # done, diverged, interrupted or failed
    message: str | None
    epochs: int
    fingerprint: dict  # what a resumed run must equal (roadmap.train.preflight.fingerprint)
    run: str
    robustness: dict
    final_top1: float
    final_top5: float
    best_top1: float
    best_top5: float
    train_time: float
    img_s: float


FIELDS = tuple(RunRecord.__annotations__)
# what a table of records (the report's) fills in where a record lacks it: a failed run's has few fields; records
# written before runs recorded their steps per epoch lack those and count as not capped
DEFAULTS = {"seed": math.nan, "order": math.nan, "parent": None, "label": None, "section": None, "adopted": None,
            "dataset": None, "final_top1": math.nan, "params": math.nan, "gmacs": math.nan, "paper_top1": math.nan,
            "paper_top1_std": math.nan, "paper_gmacs": math.nan, "message": None, "steps_per_epoch": math.nan,
            "full_steps_per_epoch": math.nan, "capped": False}
# the fields that hold a text where a record gives them (a run store skips a summary that holds something else there)
TEXTS = tuple(k for k, t in get_type_hints(RunRecord).items() if t in (str, str | None))
# the fields that hold a mapping where a record gives them (a run store skips a summary that holds something else)
MAPPINGS = tuple(k for k, t in get_type_hints(RunRecord).items() if t == dict | None)
# the fields a table of records reads as numbers (a missing or odd value is NaN)
NUMBERS = ("seed", "order", "final_top1", "params", "gmacs", "img_s", "paper_top1", "paper_top1_std", "paper_gmacs",
           "steps_per_epoch", "full_steps_per_epoch")


def upgraded(record: dict, kind_by_path: str) -> RunRecord:
    """An older summary in today's format: `kind` was `ablation` (None for the roadmap's own runs; a failed run's
    may say neither: `kind_by_path`, where its directory is), `roadmap` was `regime` (before roadmaps were
    configuration); a summary without a scale says so."""
    if "kind" not in record:
        record["kind"] = (record.pop("ablation") or "roadmap") if "ablation" in record else kind_by_path
    if "roadmap" not in record:
        record["roadmap"] = record.pop("regime", "unknown")
    record.setdefault("scale", "unknown")
    return record


def checked(record, kind_by_path: str, kinds) -> RunRecord:
    """A summary read from JSON, upgraded, or a ValueError saying why it is no run's: the report groups and names
    runs by their step, status, kind (one of `kinds`), scale and roadmap, and reads its texts and mappings as such."""
    if not isinstance(record, dict) or not isinstance(record.get("step"), str) or \
            not isinstance(record.get("status"), str):
        raise ValueError("not a run summary: no step and status as texts")
    record = upgraded(record, kind_by_path)
    for fields, kind, what in ((TEXTS, str, "text"), (MAPPINGS, dict, "a mapping")):
        wrong = [k for k in fields if not isinstance(record.get(k), kind)
                 and (k in ("scale", "roadmap") or record.get(k) is not None)]
        if wrong:
            raise ValueError(f"not a run summary: its {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not "
                             f"{what}")
    if record["kind"] not in kinds:
        raise ValueError(f"not a run summary: kind {record['kind']!r} is none of {', '.join(kinds)}")
    return record


def upgraded_fingerprint(old: dict, precision: str) -> dict:
    """A fingerprint (a summary's or a checkpoint's) written before the cap on steps per epoch and the precision were
    part of it: no cap (the default then), and `precision` (what its summary recorded; a checkpoint alone does not
    say: the resuming run's, assumed unchanged)."""
    return {"max_steps_per_epoch": None, "precision": precision, **old}
