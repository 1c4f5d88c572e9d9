"""The training loop: one batch (`train_batch`), one epoch and its evaluation (`train_epoch`), and `fit`, which
trains to the last epoch writing metrics and a checkpoint after each, then the summary. A run that replaces another
writes aside until its first checkpoint; a signal during an epoch ends the run as `signals.Interrupted`."""

from __future__ import annotations

import itertools
import math
import random
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from roadmap import store
from roadmap.seeding import derive
from roadmap.train.job import Job
from roadmap.train.preflight import Run
from roadmap.train.resume import checkpoint_state
from roadmap.train.robustness import measure_robustness
from roadmap.train.signals import Interrupted, deferred_interrupts
from roadmap.train.summary import summary_of
from roadmap.train.tracking import make_tracker
from roadmap.train.validation import evaluate


def seed_epoch(seed: int, rank: int, epoch: int) -> None:
    """The random state of every epoch is a function of (seed, rank, epoch): a resumed run repeats it exactly."""
    s = derive(seed, "epoch", rank=rank, epoch=epoch)
    torch.manual_seed(s)
    random.seed(s)


def train_batch(run: Run, job: Job, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One optimizer step on a batch from the loader (MixUp/CutMix, memory format, step, schedule, EMA): its loss."""
    x, y = x.to(run.rt.device, non_blocking=True), y.to(run.rt.device, non_blocking=True)
    if job.mix is not None:
        x, y = job.mix(x, y)
    if run.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    loss = job.step(x, y)
    job.sched.step()
    if job.ema is not None:
        job.ema.update_parameters(job.model)
    return loss


def train_epoch(run: Run, job: Job, epoch: int, show_bar: bool) -> tuple[dict | None, str | None]:
    """One epoch of training and the evaluation after it: (metrics, None), or (None, why) when the loss is not
    finite."""
    s, rt = run.settings, run.rt
    seed_epoch(s.seed, rt.rank, epoch)
    loader = job.train_loader
    loader.set_epoch(epoch)
    job.net.train()
    t0 = time.perf_counter()
    loss_sum, seen, i = torch.zeros((), device=rt.device), 0, 0
    bar = tqdm(total=job.steps_per_epoch, desc=f"{run.step.name} {epoch + 1}/{s.train.epochs}",
               disable=not show_bar, leave=False)
    for i, (x, y) in enumerate(itertools.islice(loader, job.steps_per_epoch)):
        loss = train_batch(run, job, x, y)
        loss_sum += loss
        seen += len(x)
        if i % 50 == 0 or i == job.steps_per_epoch - 1:
            value = loss.item()
            if not math.isfinite(value):
                bar.close()
                return None, f"loss is {value} at epoch {epoch + 1}, step {i + 1}"
            bar.set_postfix(loss=f"{value:.3f}")
        bar.update()
    bar.close()
    train_seconds = time.perf_counter() - t0
    top1, top5 = evaluate(job.eval_model, job.val_loader, rt, job.autocast, run.channels_last)
    lr = float(job.opt.param_groups[0]["lr"])  # a device tensor when the step is a CUDA graph
    return {"epoch": epoch + 1, "train_loss": loss_sum.item() / max(1, i + 1), "lr": lr, "val_top1": top1,
            "val_top5": top5, "img_s": seen * rt.world / train_seconds, "train_seconds": train_seconds,
            "seconds": time.perf_counter() - t0}, None


def save_checkpoint(run: Run, job: Job, epoch: int, folder: Path) -> None:
    """What a resume needs after `epoch` (model, optimizer, schedule, scaler, EMA, fingerprint) into folder/last.pt."""
    store.save_checkpoint(folder, checkpoint_state(run, epoch, job.model, job.opt, job.sched, job.scaler, job.ema))


def fit(run: Run, job: Job, start_epoch: int, history: list[dict], replacing: bool = False) -> dict:
    """Train from `start_epoch` to the end, writing metrics and a checkpoint after every epoch, then the summary.
    A run that replaces another (`replacing`) writes its files aside until its first checkpoint, then moves them in
    (store.replace): stopped before that, it leaves the old run as it was."""
    out = open_files(run, history, replacing)
    tracker = make_tracker(run.cfg, run.step, run.rt.main)
    run.say(headline(run, job))
    status, message = train_epochs(run, job, tracker, start_epoch, history, out)
    return finish(run, job, tracker, history, status, message)


def open_files(run: Run, history: list[dict], replacing: bool) -> Path:
    """The run's config and the metrics it resumes with, written where its files go (returned): the run directory,
    or store.staging(run.dir) until a replacing run's first checkpoint."""
    out = run.dir
    if run.rt.main:
        out = store.staging(run.dir) if replacing else run.dir
        store.write_config(out, OmegaConf.to_yaml(run.cfg, resolve=True))
        store.write_metrics(out, [{**m, "run": run.id} for m in history])
        store.write_roadmap(run.dir, run.kind, run.roadmap.to_dict())
        if not replacing:
            store.clear_summary(run.dir)
    return out


def headline(run: Run, job: Job) -> str:
    """The run's first line: the network's cost, the data, the schedule, the device."""
    cfg, tc = run.cfg, run.settings.train
    return (f"[{run.step.name}] {job.params / 1e6:.2f}M params, {job.gmacs:.3f} GMACs at {cfg.data.resolution}px, "
            f"{cfg.data.name}, {plural(tc.epochs, 'epoch')} x {plural(job.steps_per_epoch, 'step')}"
            f"{' (capped)' if job.capped else ''} of {tc.batch_size} on "
            f"{run.rt.device} ({run.precision}{', CUDA graph' if run.cuda_graphs else ''}) -> {run.dir}")


def train_epochs(run: Run, job: Job, tracker, start_epoch: int, history: list[dict], out: Path
                 ) -> tuple[str, str | None]:
    """The epochs from `start_epoch`, each recorded (metrics line, checkpoint, history) as one block that signals
    wait for: (done, None), or (diverged, why)."""
    tc, rt, name = run.settings.train, run.rt, run.step.name
    status, message = "done", None
    show_bar = rt.main and (tc.progress is True or (tc.progress == "auto" and sys.stderr.isatty()))
    try:
        for epoch in range(start_epoch, tc.epochs):
            metrics, message = train_epoch(run, job, epoch, show_bar)
            if metrics is None:
                status = "diverged"
                break
            with deferred_interrupts():
                if rt.main:
                    store.append_metrics(out, {**metrics, "run": run.id})
                    save_checkpoint(run, job, epoch + 1, out)
                    if out != run.dir:
                        store.replace(run.dir)
                        out = run.dir
                history.append(metrics)
            tracker.log(metrics)
            run.say(f"[{name}] epoch {epoch + 1}/{tc.epochs}  loss {metrics['train_loss']:.4f}  top-1 "
                    f"{metrics['val_top1']:.2f}  top-5 {metrics['val_top5']:.2f}  lr {metrics['lr']:.2e}  "
                    f"{metrics['img_s']:.0f} img/s  {metrics['seconds']:.1f}s")
    except KeyboardInterrupt as e:
        interrupted(run, job, tracker, history, e.args[0] if e.args else "SIGINT", replaced=out == run.dir)
    except BaseException:
        if out != run.dir:  # the old run stays as it was
            store.discard_staging(run.dir)
        raise
    if out != run.dir:  # diverged in its first epoch: a finished run, which replaces the old one
        store.replace(run.dir)
    return status, message


def finish(run: Run, job: Job, tracker, history: list[dict], status: str, message: str | None) -> dict:
    """The summary of a run that trained to its end (done, with its robustness) or diverged, written and said."""
    robustness = None
    if status == "done" and run.settings.eval.robustness:
        try:
            robustness = measure_robustness(run, job)
        except KeyboardInterrupt as e:  # every epoch is in last.pt: the same command measures it again
            interrupted(run, job, tracker, history, e.args[0] if e.args else "SIGINT")
    summary = summary_of(run, job, status, message, history, robustness)
    if run.rt.main:
        store.write_summary(run.dir, summary)
    tracker.finish(summary)
    if status == "diverged":
        run.say(f"[{run.step.name}] diverged: {message}; summary.json says status 'diverged'", file=sys.stderr)
    else:
        run.say(f"[{run.step.name}] done: top-1 {summary.get('final_top1', float('nan')):.2f} "
                f"(best {summary.get('best_top1', float('nan')):.2f}) in {summary.get('train_time', 0):.0f}s "
                f"-> {run.dir}")
    return summary


def interrupted(run: Run, job: Job, tracker, history: list[dict], signal_name: str, replaced: bool = True):
    """A run stopped by a signal during an epoch: its summary says so (status interrupted, not finished: the same
    command resumes it from last.pt), and one line says where. A replacing run stopped before its first checkpoint
    (not `replaced`) writes nothing: the run it was to replace stays as it was."""
    kept = f"last.pt holds epoch {len(history)}" if history else "no epoch had finished"
    epoch = min(len(history) + 1, run.settings.train.epochs)  # the one in training: a signal may come after an
    #                                                         epoch was recorded, before the loop's next one began
    message = (f"{run.step.name} seed {run.settings.seed} stopped by {signal_name} during epoch {epoch}/"
               f"{run.settings.train.epochs} ({kept}); rerun the same command to resume -> {run.dir}")
    if not replaced:
        message = (f"{run.step.name} seed {run.settings.seed} stopped by {signal_name} during epoch 1/"
                   f"{run.settings.train.epochs} of the run replacing the one in {run.dir}, which is kept as it was; "
                   f"train.overwrite=true replaces it")
    summary = summary_of(run, job, "interrupted", message, history)
    if run.rt.main and replaced:
        store.write_summary(run.dir, summary)
    elif run.rt.main:
        store.discard_staging(run.dir)
    tracker.finish(summary)
    raise Interrupted(message, signal_name) from None


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
