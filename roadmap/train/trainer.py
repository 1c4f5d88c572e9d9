"""Train and evaluate one roadmap step; resumable, one run directory per (scale, roadmap, kind, step, seed), laid
out and written by `roadmap.store`. `train(cfg)` is the order of things: check (preflight), take the run's lock,
find what its directory holds (resume), then either the finished run's summary or build (job) and fit (loop)."""

from __future__ import annotations

from omegaconf import DictConfig

from roadmap import store
from roadmap.train.job import build
from roadmap.train.loop import fit
from roadmap.train.preflight import Run, check
from roadmap.train.resume import previous_state, resumed_history
from roadmap.train.robustness import measure_robustness


def train(cfg: DictConfig) -> dict:
    """Train the step `cfg` asks for (or print the summary of a finished run) and return its summary."""
    run = check(cfg)
    with store.lock(run.dir, run.rt.main):
        if run.rt.main:
            store.discard_staging(run.dir)  # what a replacing run killed before its first checkpoint left
        previous, ckpt = previous_state(run)
        if previous and previous.get("status") in store.FINISHED:
            return finished(run, previous, ckpt)
        history = resumed_history(run, ckpt)
        job = build(run, ckpt)
        start_epoch = len(history)
        if ckpt is not None:
            run.say(f"[{run.step.name}] resumed after epoch {start_epoch}/{run.settings.train.epochs} from "
                    f"{run.dir / 'last.pt'}")
        replacing = run.settings.train.overwrite and store.holds_run(run.dir)
        return fit(run, job, start_epoch, history, replacing)


def finished(run: Run, previous: dict, ckpt: dict | None) -> dict:
    """A finished run's summary, said in one line; a run finished before robustness was measured gets it now, from
    its last.pt."""
    capped = (f", capped at {previous.get('steps_per_epoch')} steps per epoch (a smoke run)"
              if previous.get("capped") else "")
    run.say(f"[{run.step.name}] already finished ({previous['status']}{capped}) in {run.dir}: top-1 "
            f"{previous.get('final_top1')}; train.overwrite=true trains it again")
    if previous["status"] == "done" and "robustness" not in previous and ckpt is not None and \
            run.settings.eval.robustness:
        previous["robustness"] = measure_robustness(run, build(run, ckpt))
        if run.rt.main:
            store.write_summary(run.dir, previous)
    return previous
