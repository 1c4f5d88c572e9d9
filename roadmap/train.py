"""Train and evaluate one roadmap step; resumable, one run directory per (scale, regime, step, seed).

runs/<scale>/<regime>/<step>/seed<k>/
    config.yaml     the resolved config
    metrics.jsonl   one line per epoch
    summary.json    written when the run ends: done, diverged or failed
    last.pt         model, optimizer, schedule, grad scaler and EMA after the last finished epoch
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from . import data as data_lib
from . import recipe as recipe_lib
from .config import checked_step, model_config
from .model import ConfigError, RoadmapNet, gmacs, num_params
from .tracking import make_tracker

FINISHED = ("done", "diverged")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_summary(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None


@dataclasses.dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(train_cfg) -> Runtime:
    """Device from train.device (auto: cuda, mps, cpu); torchrun's environment starts DDP (NCCL on GPU, gloo on
    CPU)."""
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", 1)) > 1 and \
            "SUBMITIT_EXECUTOR" in os.environ:  # several tasks of one SLURM job: submitit knows the rendezvous
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export()
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    name = train_cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name not in ("cuda", "mps", "cpu"):
        raise ConfigError(f"train.device={name!r}: must be one of auto, cuda, mps, cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device='cuda' but torch sees no CUDA device")
    device = torch.device(f"cuda:{local_rank}" if name == "cuda" else name)
    if name == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if name == "cuda" else "gloo")
    return Runtime(device, rank, world)


def fingerprint(cfg: DictConfig, model_cfg) -> dict:
    """What a run directory's checkpoint and summary must agree with to be resumed (plain JSON types)."""
    return json.loads(json.dumps({"model": dataclasses.asdict(model_cfg),
                                  "data": OmegaConf.to_container(cfg.data, resolve=True),
                                  "recipe": OmegaConf.to_container(cfg.recipe, resolve=True),
                                  "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size}))


def _differences(old: dict, new: dict, prefix="") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out


def load_checkpoint(path: Path, device) -> dict | None:
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ConfigError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); move it away or rerun "
                          f"with train.overwrite=true to start over") from None


def _seed_epoch(seed: int, rank: int, epoch: int) -> None:
    """The random state of every epoch is a function of (seed, rank, epoch): a resumed run repeats it exactly."""
    s = (seed * 1_000_003 + rank * 10_007 + epoch) % 2**63
    torch.manual_seed(s)
    random.seed(s)


@torch.no_grad()
def evaluate(model, loader, rt: Runtime, autocast, channels_last) -> tuple[float, float]:
    model.eval()
    counts = torch.zeros(3, device=rt.device)
    for x, y in loader:
        x, y = x.to(rt.device, non_blocking=True), y.to(rt.device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            logits = model(x)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top5 == y[:, None]
        counts += torch.stack([hits[:, 0].sum(), hits.any(dim=1).sum(), torch.tensor(len(y), device=rt.device)])
    if rt.world > 1:
        dist.all_reduce(counts)
    c1, c5, n = counts.tolist()
    return 100 * c1 / max(n, 1), 100 * c5 / max(n, 1)


def build_loaders(cfg, rt: Runtime, per_rank_batch: int):
    d, r = cfg.data, cfg.recipe
    if OmegaConf.is_missing(d, "root"):
        raise ConfigError(f"data.root is required for data={d.name}: data.root=/path/to/dataset")
    if d.kind == "folder":
        return data_lib.folder_loaders(d, r, per_rank_batch, rank=rt.rank, world=rt.world, seed=cfg.seed,
                                       workers=cfg.train.workers, pin_memory=rt.device.type == "cuda")
    if d.kind != "tensor":
        raise ConfigError(f"data.kind={d.kind!r}: must be tensor or folder")
    train_split, val_split = data_lib.load_tensor_dataset(d, rt.device)
    common = dict(seed=cfg.seed, rank=rt.rank, world=rt.world, norm=data_lib.normalize(d))
    train = data_lib.TensorLoader(train_split, per_rank_batch, train=True, augment=data_lib.train_augment(d, r),
                                  erasing=data_lib.erase(r), **common)
    val = data_lib.TensorLoader(val_split, per_rank_batch, train=False, **common)
    return train, val


def train(cfg: DictConfig) -> dict:
    """Train the step `cfg` asks for (or print the summary of a finished run) and return its summary."""
    step = checked_step(cfg)
    model_cfg = model_config(cfg)
    recipe_lib.check(cfg.recipe)
    tc = cfg.train
    for name, least in (("epochs", 1), ("batch_size", 1), ("max_steps_per_epoch", 1), ("workers", 0)):
        value = tc[name]
        if not (value is None and name == "max_steps_per_epoch") and not (
                isinstance(value, int) and not isinstance(value, bool) and value >= least):
            raise ConfigError(f"train.{name}={value!r}: must be an integer >= {least}")
    rt = setup_runtime(tc)
    if tc.batch_size % rt.world:
        raise ConfigError(f"train.batch_size={tc.batch_size} must be divisible by the {rt.world} processes")
    run_dir = Path(cfg.run_dir)
    say = print if rt.main else (lambda *a, **k: None)

    prints = fingerprint(cfg, model_cfg)
    previous = None if tc.overwrite else read_summary(run_dir)
    ckpt = None if tc.overwrite else load_checkpoint(run_dir / "last.pt", rt.device)
    for old in (previous, ckpt):
        if old is not None and "fingerprint" in old and old["fingerprint"] != prints:
            diff = "; ".join(_differences(old["fingerprint"], prints)[:3])
            raise ConfigError(f"{run_dir} holds a run with a different configuration ({diff}); use another "
                              f"runs_root or seed, or train.overwrite=true to replace it")
    if previous and previous.get("status") in FINISHED:
        say(f"[{step.name}] already finished ({previous['status']}) in {run_dir}: top-1 "
            f"{previous.get('final_top1')}; train.overwrite=true trains it again")
        return previous

    # Everything is checked: from here on the run directory is ours.
    torch.set_flush_denormal(True)  # tiny values (layer scale 1e-6, decayed weights) are 10x slower on CPUs
    torch.manual_seed(cfg.seed)
    model = RoadmapNet(model_cfg)
    params, macs = num_params(model), gmacs(model, cfg.data.resolution)
    device_type = rt.device.type
    precision = tc.precision if tc.precision != "auto" else ("bf16" if device_type == "cuda" else "fp32")
    if precision not in ("bf16", "fp16", "fp32"):
        raise ConfigError(f"train.precision={precision!r}: must be one of auto, bf16, fp16, fp32")
    channels_last = device_type == "cuda" if tc.channels_last == "auto" else bool(tc.channels_last)
    model = model.to(rt.device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    autocast = nullcontext() if precision == "fp32" else torch.autocast(
        device_type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    per_rank_batch = tc.batch_size // rt.world
    train_loader, val_loader = build_loaders(cfg, rt, per_rank_batch)
    steps_per_epoch = len(train_loader) if tc.max_steps_per_epoch is None else min(
        len(train_loader), tc.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size={tc.batch_size} is larger than the training set")
    opt = recipe_lib.optimizer(model, cfg.recipe, tc.batch_size)
    sched = recipe_lib.schedule(opt, cfg.recipe, tc.epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler(device_type, enabled=precision == "fp16")
    ema = recipe_lib.ema(model, cfg.recipe)
    criterion = recipe_lib.loss_fn(cfg.recipe)
    mix = data_lib.batch_mix(cfg.recipe, cfg.data.num_classes)

    start_epoch, history = 0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        start_epoch = ckpt["epoch"]
        history = [m for m in _read_metrics(run_dir) if m["epoch"] <= start_epoch]
        say(f"[{step.name}] resuming {run_dir} after epoch {start_epoch}/{tc.epochs}")
    net = model
    if rt.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rt.device] if device_type == "cuda"
                                                        else None)
    if tc.compile:
        net = torch.compile(net)
    eval_model = ema.module if ema is not None else model

    if rt.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in history))
        (run_dir / "summary.json").unlink(missing_ok=True)
    tracker = make_tracker(cfg, step, rt.main)
    base = {"step": step.name, "order": step.order, "label": step.label, "section": step.section,
            "adopted": step.adopted, "regime": cfg.regime.name, "scale": cfg.scale.name, "seed": cfg.seed,
            "ablation": cfg.get("ablation"), "dataset": cfg.data.name, "recipe": cfg.recipe.name,
            "resolution": cfg.data.resolution,
            "params": params, "gmacs": round(macs, 4), "paper_top1": step.top1, "paper_gmacs": step.gmacs,
            "device": str(rt.device), "world_size": rt.world, "torch": torch.__version__}
    say(f"[{step.name}] {params / 1e6:.2f}M params, {macs:.3f} GMACs at {cfg.data.resolution}px, "
        f"{cfg.data.name}, {tc.epochs} epochs x {steps_per_epoch} steps of {tc.batch_size} on {rt.device} "
        f"({precision}) -> {run_dir}")

    status, message = "done", None
    show_bar = rt.main and (tc.progress is True or (tc.progress == "auto" and sys.stderr.isatty()))
    for epoch in range(start_epoch, tc.epochs):
        _seed_epoch(cfg.seed, rt.rank, epoch)
        if hasattr(train_loader, "sampler") and hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        else:
            train_loader.epoch = epoch
        net.train()
        t0 = time.perf_counter()
        loss_sum, seen = torch.zeros((), device=rt.device), 0
        bar = tqdm(total=steps_per_epoch, desc=f"{step.name} {epoch + 1}/{tc.epochs}", disable=not show_bar,
                   leave=False)
        for i, (x, y) in enumerate(itertools.islice(train_loader, steps_per_epoch)):
            x, y = x.to(rt.device, non_blocking=True), y.to(rt.device, non_blocking=True)
            if mix is not None:
                x, y = mix(x, y)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                loss = criterion(net(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.recipe.grad_clip:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.recipe.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.detach()
            seen += len(x)
            if i % 50 == 0 or i == steps_per_epoch - 1:
                value = loss.item()
                if not math.isfinite(value):
                    status = "diverged"
                    message = f"loss is {value} at epoch {epoch + 1}, step {i + 1}"
                    break
                bar.set_postfix(loss=f"{value:.3f}")
            bar.update()
        bar.close()
        if status == "diverged":
            break
        train_seconds = time.perf_counter() - t0
        top1, top5 = evaluate(eval_model, val_loader, rt, autocast, channels_last)
        metrics = {"epoch": epoch + 1, "train_loss": loss_sum.item() / max(1, i + 1),
                   "lr": opt.param_groups[0]["lr"], "val_top1": top1, "val_top5": top5,
                   "img_s": seen * rt.world / train_seconds, "train_seconds": train_seconds,
                   "seconds": time.perf_counter() - t0}
        history.append(metrics)
        if rt.main:
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
            atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                         "scaler": scaler.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                         "epoch": epoch + 1, "fingerprint": prints}, run_dir / "last.pt")
        tracker.log(metrics)
        say(f"[{step.name}] epoch {epoch + 1}/{tc.epochs}  loss {metrics['train_loss']:.4f}  top-1 {top1:.2f}  "
            f"top-5 {top5:.2f}  lr {metrics['lr']:.2e}  {metrics['img_s']:.0f} img/s  {metrics['seconds']:.1f}s")

    summary = {**base, "status": status, "message": message, "epochs": len(history), "fingerprint": prints}
    if history:
        summary.update(final_top1=history[-1]["val_top1"], final_top5=history[-1]["val_top5"],
                       best_top1=max(m["val_top1"] for m in history), best_top5=max(m["val_top5"] for m in history),
                       train_time=sum(m["train_seconds"] for m in history),
                       img_s=sum(m["img_s"] * m["train_seconds"] for m in history)
                       / max(1e-9, sum(m["train_seconds"] for m in history)))
    if rt.main:
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    tracker.finish(summary)
    if status == "diverged":
        say(f"[{step.name}] diverged: {message}; summary.json says status 'diverged'", file=sys.stderr)
    else:
        say(f"[{step.name}] done: top-1 {summary.get('final_top1', float('nan')):.2f} "
            f"(best {summary.get('best_top1', float('nan')):.2f}) in {summary.get('train_time', 0):.0f}s -> {run_dir}")
    return summary


def _read_metrics(run_dir: Path) -> list[dict]:
    out = []
    try:
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                break  # a line cut by a kill
    except OSError:
        pass
    return out


def write_failure(cfg: DictConfig, error: BaseException) -> None:
    """Record a run that stopped with an error, so sweeps and reports show it."""
    run_dir = Path(cfg.run_dir)
    if run_dir.exists() and int(os.environ.get("RANK", 0)) == 0:
        summary = {"step": str(cfg.get("step")), "regime": cfg.regime.name, "scale": cfg.scale.name,
                   "seed": cfg.seed, "status": "failed", "message": f"{type(error).__name__}: {error}"}
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
