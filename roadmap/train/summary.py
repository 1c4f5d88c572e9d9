"""A run's summary.json, assembled in one place: what the run is (the step as its roadmap describes it, the setting,
the network's cost: `describe`), how it ended (done, diverged or interrupted), its robustness and its results
(`summary_of`); and the record of a run that stopped with an error (`write_failure`): roadmap.record.RunRecord's
fields. The run store writes them (roadmap.store.write_summary / write_failure)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from roadmap import store
from roadmap.config import step_changes
from roadmap.kinds import kind_of
from roadmap.nets.identity import switches
from roadmap.nets.model import ModelConfig
from roadmap.nets.swin import ReferenceConfig
from roadmap.record import RunRecord
from roadmap.train.job import Job
from roadmap.train.preflight import Run


def summary_of(run: Run, job: Job, status: str, message: str | None, history: list[dict],
               robustness: dict | None = None) -> RunRecord:
    """The summary of a run that ended with `status` (done, diverged or interrupted) after the epochs of `history`;
    an interrupted run's holds no results (the same command resumes it)."""
    summary = {**describe(run, job), "status": status, "message": message, "epochs": len(history),
               "fingerprint": run.fingerprint, "run": run.id}
    if robustness is not None:
        summary["robustness"] = robustness
    if history and status != "interrupted":
        seconds = sum(m["train_seconds"] for m in history)
        summary.update(final_top1=history[-1]["val_top1"], final_top5=history[-1]["val_top5"],
                       best_top1=max(m["val_top1"] for m in history), best_top5=max(m["val_top5"] for m in history),
                       train_time=seconds,
                       img_s=sum(m["img_s"] * m["train_seconds"] for m in history) / max(1e-9, seconds))
    return summary


def describe(run: Run, job: Job) -> RunRecord:
    """What a summary says about the run besides its results: the step as its roadmap describes it, the setting,
    the network's cost."""
    cfg, s = run.cfg, run.step
    explore = cfg.get("explore")
    return {"step": s.name, "parent": s.parent, "order": s.order, "label": s.label, "section": s.section,
            "adopted": s.adopted, "roadmap": run.roadmap.name, "scale": cfg.scale.name, "seed": cfg.seed,
            "kind": run.kind,
            "explore": None if explore is None else {"sampler": explore.name, "budget": explore.get("budget")},
            "switches": switches(run.model_cfg) if isinstance(run.model_cfg, ModelConfig) else None,
            "changes": changes(run),
            "reference": {**dataclasses.asdict(run.model_cfg), "heads": run.model_cfg.heads,
                          "window": run.model_cfg.window} if isinstance(run.model_cfg, ReferenceConfig) else None,
            "dataset": cfg.data.name, "recipe": cfg.recipe.name,
            "resolution": cfg.data.resolution, "epochs_planned": cfg.train.epochs,
            "batch_size": cfg.train.batch_size, "precision": run.precision, "channels_last": run.channels_last,
            "compile": run.settings.train.compile, "cuda_graphs": run.cuda_graphs,
            "steps_per_epoch": job.steps_per_epoch,
            "full_steps_per_epoch": job.full_steps_per_epoch,
            "capped": job.capped, "params": job.params,
            "gmacs": round(job.gmacs, 4), "paper_top1": s.top1, "paper_top1_std": s.top1_std,
            "paper_top5": s.top5, "paper_gmacs": s.gmacs, "device": str(run.rt.device),
            "world_size": run.rt.world, "threads": torch.get_num_threads(), "torch": torch.__version__}


def changes(run: Run) -> list[str] | None:
    """What the run's step changes versus its parent (roadmap.config.step_changes), for a step of the roadmap's own
    path; None for other kinds, a reference network, the baseline, and where the parent's config does not compose
    (the report then holds only the data and capping fixed)."""
    s = run.step
    if kind_of(run.kind).network != "step" or s.parent is None or not isinstance(run.model_cfg, ModelConfig):
        return None
    try:
        return step_changes(s.name, s.parent, run.roadmap.name, run.cfg.scale.name)
    except Exception:  # a finished run's summary is written whatever its parent's config is
        return None


def write_failure(cfg: DictConfig, error: BaseException, create: bool = False) -> None:
    """Record a run that stopped with an error, so sweeps and reports show it (store.write_failure: never over a
    finished or resumable run)."""
    if int(os.environ.get("RANK", 0)) != 0:
        return
    try:
        run_dir = Path(cfg.run_dir)
    except OmegaConfBaseException:  # no run directory (runs_root=null): nowhere to record it; the error line says why
        return
    store.write_failure(run_dir, {
        "step": str(cfg.get("step")), "roadmap": cfg.roadmap.name, "scale": cfg.scale.name, "seed": cfg.seed,
        "kind": cfg.kind, "dataset": cfg.data.name, "message": f"{type(error).__name__}: {error}"}, create)
