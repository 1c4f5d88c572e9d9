"""The runs of a folder as one table, and what they belong to: every summary.json under it as a row (load_runs, with the
run record's DEFAULTS for what a summary lacks), the dataset they trained on, the roadmap they belong to and its
steps in order with the runs' own steps placed, and the runs split into what compares like with like (groups)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from roadmap import record, store
from roadmap.kinds import kind_of
from roadmap.report import comparison
from roadmap.report.formatting import as_text, optional_float
from roadmap.steps import Roadmap, Step

DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                 "imagefolder": "image folder", "synthetic": "synthetic data"}
DATA_LABELS = {"dataset": lambda v: DATASET_NAMES.get(v, v), "resolution": lambda v: f"{v}px"}  # in titles


def load_runs(runs_dir: Path) -> pd.DataFrame:
    """One row per run directory with a readable summary.json (the run store warns about unreadable ones). Every column
    of the run record's DEFAULTS is there (missing values filled), `capped` is a bool, `kind` says what the run is,
    `setting` what the summary itself records of the run's data, training and network (comparison.setting)."""
    rows = []
    for run_dir, s in store.summaries(runs_dir):
        s.pop("fingerprint", None)
        s["run_dir"] = str(run_dir)
        s["setting"] = comparison.setting(s)
        if s.get("robustness") is not None and not measured_robustness(s["robustness"]):
            warnings.warn(f"ignoring the robustness record of {run_dir}: not {{mean_top1, images, top1: {{corruption: "
                          f"[top-1 per severity]}}}} as numbers", stacklevel=2)
            s["robustness"] = None
        rows.append(s)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for key, value in record.DEFAULTS.items():
        if key not in df:
            df[key] = value
    for key in [k for k in record.NUMBERS if k in df]:
        df[key] = pd.to_numeric(df[key], errors="coerce")
    df["capped"] = df["capped"].map(lambda c: bool(c) if isinstance(c, (bool, np.bool_)) else False)
    return df


def measured_robustness(record) -> bool:
    """Whether a summary's `robustness` is a record the report can read (roadmap.train.robustness): numbers for its
    mean_top1 and images, and for each corruption a list of top-1 per severity."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    return (isinstance(record, dict) and number(record.get("mean_top1")) and number(record.get("images"))
            and isinstance(record.get("top1"), dict) and len(record["top1"]) > 0
            and all(isinstance(v, list) and v and all(map(number, v)) for v in record["top1"].values()))


def dataset_of(runs: pd.DataFrame) -> str:
    """The dataset the runs trained on, by its name (failed runs record none)."""
    known = runs["dataset"].dropna()
    return DATASET_NAMES.get(known.iloc[0], known.iloc[0]) if len(known) else "unknown data"


def roadmap_of(runs: pd.DataFrame) -> Roadmap:
    """The roadmap the runs belong to: the roadmap.json written next to their step folders, else what their
    summaries say about their steps (in their roadmap order). Each folder's roadmap.json is read once."""
    folders = runs.assign(folder=[store.folder_of(Path(d)) for d in runs["run_dir"]]).drop_duplicates("folder")
    for run_dir, kind, name in zip(folders["run_dir"], folders["kind"], folders["roadmap"]):
        node = store.read_roadmap(Path(run_dir), kind)
        if node is not None:
            try:
                roadmap = Roadmap.from_dict(node)
            except ValueError as e:
                warnings.warn(f"ignoring {store.roadmap_file(Path(run_dir), kind)}: {e}", stacklevel=2)
                continue
            if roadmap.name == name or name == "unknown":  # an old summary that does not say its roadmap
                return roadmap
            warnings.warn(f"ignoring {store.roadmap_file(Path(run_dir), kind)}: it is roadmap {roadmap.name}'s, and "
                          f"runs of roadmap {name} are under it (moved or copied there)", stacklevel=2)
    first = runs.sort_values("order", na_position="last").drop_duplicates("step")
    known = set(first["step"])
    steps = {r.step: {"parent": r.get("parent") if r.get("parent") in known else None,
                      "label": as_text(r.get("label"), r.step), "section": as_text(r.get("section")),
                      "branch": r.get("adopted") in (False,), "top1": optional_float(r.get("paper_top1")),
                      "gmacs": optional_float(r.get("paper_gmacs"))}
             for _, r in first.iterrows()}
    return Roadmap.from_dict({"name": runs["roadmap"].iloc[0], "steps": steps})


def ordered_steps(roadmap: Roadmap, runs: pd.DataFrame) -> list[Step]:
    """The roadmap's steps in order, with every step the runs trained that the roadmap does not list (a user's
    own) placed right after its parent (after the parent's earlier children)."""
    order = list(roadmap.steps)
    extra = runs[~runs["step"].isin(roadmap.names())].drop_duplicates("step")
    pending = [Step(name=r["step"], parent=as_text(r.get("parent")) or None,
                    label=as_text(r.get("label"), r["step"]),
                    section=as_text(r.get("section")), top1=optional_float(r.get("paper_top1")),
                    top1_std=optional_float(r.get("paper_top1_std")), gmacs=optional_float(r.get("paper_gmacs")))
               for _, r in extra.iterrows()]
    while pending:
        placed = False
        for s in list(pending):
            names = [o.name for o in order]
            if s.parent in names:
                at = names.index(s.parent) + 1
                while at < len(order) and order[at].parent == s.parent and order[at].order is None:
                    at += 1  # after the parent's earlier user children
                order.insert(at, s)
                pending.remove(s)
                placed = True
        if not placed:  # parent unknown: at the end
            order += pending
            break
    return order


class Group(NamedTuple):
    """The runs of one table: a roadmap's runs of one kind at one scale whose top-1 is measured on the same data."""
    scale: str
    roadmap: str
    kind: str
    data: dict  # what of the data (comparison.MEASURED_ON) the runs of scale, roadmap and kind differ in, if any
    runs: pd.DataFrame  # `left_out`: why a finished run does not count ("" where it does)

    @property
    def counted(self) -> pd.DataFrame:
        return self.runs[self.runs["left_out"] == ""]


def groups(runs: pd.DataFrame) -> list[Group]:
    """The runs (load_runs) split into what compares like with like (roadmap.report.comparison): by scale, roadmap
    and kind, then by the data their top-1 is measured on, with the runs that do not count left out; a warning line
    for each mix found."""
    out = []
    for (scale, name, kind), group in runs.groupby(["scale", "roadmap", "kind"], sort=True):
        where = f"{scale}/{name}" + ("" if kind_of(kind).folder is None else f" ({kind})")
        parts, mix = comparison.by_data(group)
        if mix:
            warnings.warn(f"{where}: the runs {mix}", stacklevel=2)
        for data, part in parts:
            why, lines = comparison.left_out(part)
            for line in lines:
                warnings.warn(f"{where}: {line}", stacklevel=2)
            out.append(Group(scale, name, kind, data, part.assign(left_out=why)))
    return out
