"""Resuming a run from its directory: the summary and checkpoint found there, taken only where they belong to this
configuration (older fingerprints upgraded: roadmap.record.upgraded_fingerprint), the history of
the epochs last.pt holds, and the training state restored from it (checkpoints from before named layers too). What a
checkpoint holds is written here as well (`checkpoint_state`), so saving and restoring stay one format."""

from __future__ import annotations

from roadmap import record, store
from roadmap.errors import ConfigError
from roadmap.nets.legacy import upgrade_state_dict
from roadmap.settings import differences
from roadmap.train import recipe as recipe_lib
from roadmap.train.preflight import Run


def previous_state(run: Run) -> tuple[dict | None, dict | None]:
    """The run directory's summary and checkpoint, if they belong to this configuration."""
    if run.settings.train.overwrite:
        return None, None
    previous = store.read_summary(run.dir)
    ckpt = store.load_checkpoint(run.dir, run.rt.device)
    if ckpt is not None:
        check_checkpoint(run, ckpt)
    for old, name in ((previous, "summary.json"), (ckpt, "last.pt")):
        if old is None or "fingerprint" not in old:
            continue
        if not isinstance(old["fingerprint"], dict):
            raise ConfigError(f"{run.dir / name} is damaged (its fingerprint is {old['fingerprint']!r:.40}); move it "
                              f"away or rerun with train.overwrite=true to start over")
        before = record.upgraded_fingerprint(old["fingerprint"], (previous or {}).get("precision", run.precision))
        if before != run.fingerprint:
            diff = "; ".join(differences(before, run.fingerprint)[:3])
            raise ConfigError(f"{run.dir} holds a run with a different configuration ({diff}); use another "
                              f"runs_root or seed, or train.overwrite=true to replace it")
    return previous, ckpt


CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "scaler", "epoch")


def check_checkpoint(run: Run, ckpt) -> None:
    """A last.pt that loads but is not a checkpoint of a run with this many epochs: a one-line error."""
    path = store.checkpoint_path(run.dir)
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt] if isinstance(ckpt, dict) else ["everything"]
    epoch = ckpt.get("epoch") if isinstance(ckpt, dict) else None
    why = (f"it lacks {', '.join(missing)}" if missing else
           None if isinstance(epoch, int) and 1 <= epoch <= run.settings.train.epochs else f"its epoch is {epoch!r}")
    if why:
        raise ConfigError(f"checkpoint {path} is not a checkpoint of this run ({why}); move it away or rerun with "
                          f"train.overwrite=true to start over")


def resumed_history(run: Run, ckpt: dict | None) -> list[dict]:
    """The metrics of the epochs last.pt holds (lines of the same run, up to its epoch), or a one-line error where
    metrics.jsonl does not hold each of them once: the files of two runs (a run replaced part-way, a file copied or
    edited by hand) are never resumed as one."""
    if ckpt is None:
        return []
    epoch = ckpt["epoch"]
    history = [m for m in store.read_metrics(run.dir) if isinstance(m, dict) and m.get("run") == ckpt.get("run")
               and isinstance(m.get("epoch"), int) and m["epoch"] <= epoch]
    if [m["epoch"] for m in history] != list(range(1, epoch + 1)):
        raise ConfigError(f"{run.dir}: last.pt holds epoch {epoch} but metrics.jsonl has its epochs "
                          f"{[m['epoch'] for m in history]}: the files are of different runs or damaged; rerun "
                          f"with train.overwrite=true to start over")
    run.id = ckpt.get("run") or run.id  # checkpoints from before run ids: the run goes on under a new one
    return history


def checkpoint_state(run: Run, epoch: int, model, opt, sched, scaler, ema) -> dict:
    """What last.pt holds after `epoch`: the training state, the fingerprint and the run's id."""
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(), "ema": ema.state_dict() if ema is not None else None, "epoch": epoch,
            "fingerprint": run.fingerprint, "run": run.id}


def restore(run: Run, ckpt: dict, model, opt, sched, scaler, ema) -> None:
    """The training state from the run's checkpoint; one line where it does not fit (a last.pt edited or copied
    from another network)."""
    try:
        model.load_state_dict(upgrade_state_dict(model, ckpt["model"]))  # checkpoints from before named layers too
        recipe_lib.load_optimizer_state(opt, ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        if ema is not None:
            ema.load_state_dict(upgrade_state_dict(model, ckpt["ema"], "module."))
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"checkpoint {store.checkpoint_path(run.dir)} does not fit this run's network or "
                          f"optimizer ({why[:200]}); move it away or rerun with train.overwrite=true to start over"
                          ) from None
