"""Train and evaluate one roadmap step; resumable, one run directory per (scale, roadmap, kind, step, seed), laid
out and written by `roadmap.store`.
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
import uuid
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from roadmap.data import datasets as data_lib
from roadmap.train import step as graphs_lib
from roadmap.train import recipe as recipe_lib
from roadmap.nets import swin as reference
from roadmap import store
from roadmap.config import model_config, roadmap_of, step_of
from roadmap.errors import ConfigError
from roadmap.nets.model import ModelConfig, gmacs, num_params, upgrade_state_dict
from roadmap.nets.swin import ReferenceConfig
from roadmap.seeding import derive
from roadmap.settings import IMAGE_CHANNELS, RunSettings, differences, validate
from roadmap.steps import Roadmap, Step
from roadmap.train.tracking import make_tracker


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM (a scheduler): its one line says where and how to resume."""

    def __init__(self, message: str, signal_name: str):
        super().__init__(message)
        self.exit_code = 143 if signal_name == "SIGTERM" else 130  # 128 + the signal's number, as shells report


def sigterm_interrupts() -> None:
    """Let SIGTERM stop a run as Ctrl-C does (KeyboardInterrupt in the main thread), where nothing else handles it
    (submitit's jobs keep their own handler, which requeues them)."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, handler)


@contextmanager
def deferred_interrupts():
    """SIGINT and SIGTERM wait until the block is done (an epoch's metrics line, checkpoint and history stay in step),
    then stop the run as they would have."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    old = {s: signal.signal(s, lambda signum, frame: caught.append(signal.Signals(signum).name))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if caught:
        raise KeyboardInterrupt(*([] if caught[0] == "SIGINT" else [caught[0]]))


@dataclasses.dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1
    gpu_lock: object = None  # this run's hold on its GPU, when runs side by side share the machine's GPUs

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(train_cfg, runs_root=".") -> Runtime:
    """Device from train.device (auto: cuda, mps, cpu); torchrun's environment starts DDP (NCCL on GPU, gloo on
    CPU). Runs side by side on a machine with several GPUs (the parallel launcher) each take a free GPU of their
    own (store.claim_gpu)."""
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", 1)) > 1 and \
            "SUBMITIT_EXECUTOR" in os.environ:  # several tasks of one SLURM job: submitit knows the rendezvous
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export()
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    name = device_name(train_cfg.device)
    device, held = torch.device(f"cuda:{local_rank}" if name == "cuda" else name), None
    if name == "cuda" and world == 1 and torch.cuda.device_count() > 1 and runs_at_once() > 1:
        index, held = store.claim_gpu(runs_root, torch.cuda.device_count())
        device = torch.device(f"cuda:{index}")
    if name == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if name == "cuda" else "gloo")
    torch.set_num_threads(threads(train_cfg.threads, runs_at_once()))
    return Runtime(device, rank, world, held)


def device_name(setting: str) -> str:
    """train.device as a device torch has here (auto: cuda, else mps, else cpu), or a one-line error naming what is."""
    available = [name for name, ok in (("cuda", torch.cuda.is_available()), ("mps", torch.backends.mps.is_available()),
                                       ("cpu", True)) if ok]
    if setting == "auto":
        return available[0]
    if setting not in available:
        raise ConfigError(f"train.device={setting}: torch sees no {setting.upper()} device here; available: auto, "
                          f"{', '.join(available)}")
    return setting


def threads(setting: int | str, runs_at_once: int = 1) -> int:
    """train.threads: a number, or auto: OMP_NUM_THREADS where it is set (as schedulers set it per task), else the
    cores this process may use shared among the runs side by side (conf/hydra/launcher/parallel.yaml) and the
    processes of each (torchrun's local ranks)."""
    if setting != "auto":
        return setting
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    cores = len(os.sched_getaffinity(0))
    return max(1, cores // (int(os.environ.get("LOCAL_WORLD_SIZE", 1)) * runs_at_once))


def runs_at_once() -> int:
    """How many runs the sweep's launcher runs side by side on this machine: the parallel launcher's n_jobs
    (-1: one per core, as joblib counts), else 1."""
    from hydra.core.hydra_config import HydraConfig

    n = HydraConfig.get().launcher.get("n_jobs") if HydraConfig.initialized() else None
    if not isinstance(n, int) or n == 0:
        return 1
    cores = len(os.sched_getaffinity(0))
    return min(cores, n if n > 0 else max(1, cores + 1 + n))


def fingerprint(cfg: DictConfig, model_cfg, precision: str) -> dict:
    """What a run computes, which a run directory's checkpoint and summary must agree with to be resumed or taken
    as finished (plain JSON types): the network, the data (dataset, size, resolution, augmentation), the recipe, the
    epochs, the global batch, the cap on steps per epoch (a 5-step smoke run is not the full run) and the precision
    as trained (bf16 is not fp32). Recorded in the summary but not compared: the device, the process count,
    channels_last, torch.compile and the torch version, which change speed and rounding, not what is trained."""
    return json.loads(json.dumps({"model": dataclasses.asdict(model_cfg),
                                  "data": OmegaConf.to_container(cfg.data, resolve=True),
                                  "recipe": OmegaConf.to_container(cfg.recipe, resolve=True),
                                  "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size,
                                  "max_steps_per_epoch": cfg.train.max_steps_per_epoch, "precision": precision}))


def upgraded(old: dict, summary: dict | None, precision: str) -> dict:
    """A fingerprint written before the cap and the precision were part of it: no cap (the default then), and the
    precision its summary recorded (a checkpoint alone does not say: assumed unchanged)."""
    old = dict(old)
    old.setdefault("max_steps_per_epoch", None)
    old.setdefault("precision", (summary or {}).get("precision", precision))
    return old


def _seed_epoch(seed: int, rank: int, epoch: int) -> None:
    """The random state of every epoch is a function of (seed, rank, epoch): a resumed run repeats it exactly."""
    s = derive(seed, "epoch", rank=rank, epoch=epoch)
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


def build_loaders(s: RunSettings, rt: Runtime, per_rank_batch: int):
    d, r = s.data, s.recipe
    if d.kind == "folder":
        return data_lib.folder_loaders(d, r, per_rank_batch, rank=rt.rank, world=rt.world, seed=s.seed,
                                       workers=s.train.workers, device=rt.device)
    train_split, val_split = data_lib.load_tensor_dataset(d, rt.device)
    classes = 1 + max((int(split.labels.max()) for split in (train_split, val_split) if len(split.labels)),
                      default=-1)
    if classes > d.num_classes:
        raise ConfigError(f"data.num_classes={d.num_classes}: {d.name} has {classes} classes (labels 0 to "
                          f"{classes - 1}); must be >= {classes}")
    common = dict(seed=s.seed, rank=rt.rank, world=rt.world, norm=data_lib.normalize(d))
    train = data_lib.TensorLoader(train_split, per_rank_batch, train=True, augment=data_lib.batch_augment(d, r),
                                  **common)
    val = data_lib.TensorLoader(val_split, per_rank_batch, train=False, **common)
    return train, val


@dataclasses.dataclass
class Run:
    """Everything a run is, checked, before anything is written."""
    cfg: DictConfig
    settings: RunSettings  # train, data, recipe, ... as checked values
    step: Step
    roadmap: Roadmap
    model_cfg: ModelConfig | ReferenceConfig  # a roadmap network, or a reference network (roadmap.nets.swin)
    rt: Runtime
    dir: Path
    kind: str  # roadmap, isolated, leave_one_out or explore (roadmap.store.KINDS)
    fingerprint: dict
    precision: str  # bf16, fp16 or fp32, as trained
    channels_last: bool
    cuda_graphs: bool  # the training step captured as a CUDA graph
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:12])  # this run's identity: in its last.pt
    #   and every metrics line, so the files of two runs (one that replaced another, a kill part-way) are told apart

    def say(self, *args, **kwargs):
        if self.rt.main:
            print(*args, **kwargs)


def network(cfg: DictConfig, kind: str) -> ModelConfig | ReferenceConfig:
    """The run's network; a drawn network is checked against its exploration (valid, within the budget), and a step
    an ablation sweep cannot build is recorded next to the sweep's runs (the report lists it with the reason) before
    its error stops the run."""
    if kind == "explore":
        from roadmap.explore.space import admitted

        return admitted(cfg)
    try:
        return model_config(cfg)
    except ConfigError as e:
        if kind != "roadmap":
            store.record(Path(cfg.run_dir), kind, {"step": cfg.step, "reason": str(e)})
        raise


def check(cfg: DictConfig) -> Run:
    """Every value the run needs, validated (one-line ConfigError otherwise); starts the process group."""
    settings = validate(cfg)
    roadmap = roadmap_of(cfg)
    step = step_of(cfg, roadmap)
    store.check_writable(cfg.runs_root, cfg.run_dir)
    model_cfg = network(cfg, settings.kind)
    tc = settings.train
    rt = setup_runtime(tc, cfg.runs_root)
    if tc.batch_size % rt.world:
        raise ConfigError(f"train.batch_size={tc.batch_size} must be divisible by the {rt.world} processes")
    runnable(settings, model_cfg, rt.world)
    cuda = rt.device.type == "cuda"
    precision = {"auto": "bf16" if cuda else "fp32", "mixed": "fp16" if cuda else "bf16"}.get(tc.precision,
                                                                                            tc.precision)
    channels_last = cuda if tc.channels_last == "auto" else tc.channels_last
    return Run(cfg, settings, step, roadmap, model_cfg, rt, Path(cfg.run_dir), settings.kind,
               fingerprint(cfg, model_cfg, precision), precision, channels_last, cuda_graphs(settings, rt, precision))


BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)


def runnable(s: RunSettings, model_cfg: ModelConfig | ReferenceConfig, world: int) -> None:
    """What the settings imply for the network, refused in one line before anything is written: it takes the data's
    channels, a BatchNorm network trains on at least 2 images per process (one value per channel is no batch
    statistic; the training loaders never make a last partial batch), and a batch goes through it at the data's
    resolution (shapes only, on the meta device)."""
    channels = getattr(model_cfg, "in_channels", IMAGE_CHANNELS)  # reference networks take RGB
    if channels != IMAGE_CHANNELS:
        raise ConfigError(f"model.in_channels={channels}: the data gives the network {IMAGE_CHANNELS}-channel images "
                          f"(grayscale is repeated); must be {IMAGE_CHANNELS}")
    with torch.device("meta"):
        net = reference.network(model_cfg)
    batch = s.train.batch_size // world
    if batch < 2 and any(isinstance(m, BATCH_NORMS) for m in net.modules()):
        per = f" over {world} processes" if world > 1 else ""
        raise ConfigError(f"train.batch_size={s.train.batch_size}{per}: this network has BatchNorm, which needs at "
                          f"least 2 images per process in training; must be >= {2 * world}")
    r = s.data.resolution
    try:
        net.train()(torch.zeros(2, channels, r, r, device="meta"))
    except RuntimeError as e:
        why = str(e).splitlines()[0]
        raise ConfigError(f"data.resolution={r}: this network cannot take {r}x{r} images ({why})") from None


GRAPHS_BY_DEFAULT = False  # train.cuda_graphs=auto: set from the trainer's eager-vs-graph measurement on a GPU


def cuda_graphs(s: RunSettings, rt: Runtime, precision: str) -> bool:
    """train.cuda_graphs: true where the step cannot be captured is a one-line error saying why; prefer trains such
    a step eagerly and says why in one line (a sweep asks every step for graphs: the SGD step trains eager); auto is
    GRAPHS_BY_DEFAULT where it can. What the step itself rules out is named before the device."""
    why = ("only AdamW is captured, not recipe.optimizer=sgd" if s.recipe.optimizer != "adamw" else
           "data.kind=folder batches are made by workers (tensor datasets only)" if s.data.kind != "tensor" else
           "train.compile=true compiles the step instead" if s.train.compile else
           "the device is not CUDA" if rt.device.type != "cuda" else
           "DDP runs are not captured" if rt.world > 1 else
           "fp16 loss scaling syncs with the host (use bf16)" if precision == "fp16" else None)
    if s.train.cuda_graphs is True and why:
        raise ConfigError(f"train.cuda_graphs=true: {why}")
    if s.train.cuda_graphs == "prefer" and why:
        if rt.main:
            print(f"train.cuda_graphs=prefer: {why}; this run trains eager")
        return False
    return why is None and (s.train.cuda_graphs in (True, "prefer") or
                            (s.train.cuda_graphs == "auto" and GRAPHS_BY_DEFAULT))


def previous_state(run: Run) -> tuple[dict | None, dict | None]:
    """The run directory's summary and checkpoint, if they belong to this configuration."""
    if run.settings.train.overwrite:
        return None, None
    previous = store.read_summary(run.dir)
    ckpt = store.load_checkpoint(run.dir, run.rt.device)
    if ckpt is not None:
        _check_checkpoint(run, ckpt)
    for old, name in ((previous, "summary.json"), (ckpt, "last.pt")):
        if old is None or "fingerprint" not in old:
            continue
        if not isinstance(old["fingerprint"], dict):
            raise ConfigError(f"{run.dir / name} is damaged (its fingerprint is {old['fingerprint']!r:.40}); move it "
                              f"away or rerun with train.overwrite=true to start over")
        before = upgraded(old["fingerprint"], previous, run.precision)
        if before != run.fingerprint:
            diff = "; ".join(differences(before, run.fingerprint)[:3])
            raise ConfigError(f"{run.dir} holds a run with a different configuration ({diff}); use another "
                              f"runs_root or seed, or train.overwrite=true to replace it")
    return previous, ckpt


CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "scaler", "epoch")


def _check_checkpoint(run: Run, ckpt) -> None:
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


@dataclasses.dataclass
class Job:
    """The objects a run trains with."""
    model: torch.nn.Module  # the plain model (its state is what is saved)
    net: torch.nn.Module  # what the forward pass calls: the model, wrapped by DDP and/or torch.compile
    step: object  # step(x, y) -> loss: one optimizer step (graphs.eager_step or graphs.GraphedStep)
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: torch.nn.Module | None
    mix: object
    train_loader: object
    val_loader: object
    steps_per_epoch: int  # as trained: the loader's length, or train.max_steps_per_epoch when that is shorter
    autocast: object
    params: int
    gmacs: float

    @property
    def full_steps_per_epoch(self) -> int:
        return len(self.train_loader)

    @property
    def capped(self) -> bool:
        """train.max_steps_per_epoch cut the epoch short: a smoke run, not the full one."""
        return self.steps_per_epoch < self.full_steps_per_epoch

    @property
    def eval_model(self):
        return self.ema.module if self.ema is not None else self.model


def build(run: Run, ckpt: dict | None) -> Job:
    """Model, data, optimizer and schedule; restored from the checkpoint when there is one."""
    s, tc, rt = run.settings, run.settings.train, run.rt
    torch.set_flush_denormal(True)  # tiny values (layer scale 1e-6, decayed weights) are 10x slower on CPUs
    torch.manual_seed(derive(s.seed, "init"))
    model = reference.network(run.model_cfg)
    params, macs = num_params(model), gmacs(model, s.data.resolution)
    model = model.to(rt.device, memory_format=torch.channels_last if run.channels_last else torch.contiguous_format)
    device_type = rt.device.type
    autocast = nullcontext() if run.precision == "fp32" else torch.autocast(  # a graph holds no weight cache
        device_type, dtype=torch.bfloat16 if run.precision == "bf16" else torch.float16,
        cache_enabled=not run.cuda_graphs)
    train_loader, val_loader = build_loaders(s, rt, tc.batch_size // rt.world)
    steps_per_epoch = len(train_loader) if tc.max_steps_per_epoch is None else min(
        len(train_loader), tc.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size={tc.batch_size} is larger than the training set")
    opt = recipe_lib.optimizer(model, s.recipe, tc.batch_size, capturable=run.cuda_graphs)
    sched = recipe_lib.schedule(opt, s.recipe, tc.epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler(device_type, enabled=run.precision == "fp16")
    ema = recipe_lib.ema(model, s.recipe)
    if ckpt is not None:
        restore(run, ckpt, model, opt, sched, scaler, ema)
    net = model
    if rt.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rt.device] if device_type == "cuda"
                                                        else None)
    if tc.compile:
        net = torch.compile(net)
    step = graphs_lib.eager_step(net, recipe_lib.loss_fn(s.recipe), opt, scaler, autocast, s.recipe.grad_clip,
                                 list(model.parameters()))
    if run.cuda_graphs:
        step = graphs_lib.GraphedStep(step, opt)
    if device_type == "cuda" and s.data.kind == "tensor":
        train_loader = data_lib.Prefetched(train_loader, rt.device)
    return Job(model, net, step, opt, sched, scaler, ema,
               data_lib.batch_mix(s.recipe, s.data.num_classes), train_loader, val_loader, steps_per_epoch,
               autocast, params, macs)


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
    _seed_epoch(s.seed, rt.rank, epoch)
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
    store.save_checkpoint(folder, {"model": job.model.state_dict(), "optimizer": job.opt.state_dict(),
                                    "scheduler": job.sched.state_dict(), "scaler": job.scaler.state_dict(),
                                    "ema": job.ema.state_dict() if job.ema is not None else None, "epoch": epoch,
                                    "fingerprint": run.fingerprint, "run": run.id})


def describe(run: Run, job: Job) -> dict:
    """What a summary says about the run besides its results: the step as its roadmap describes it, the setting,
    the network's cost."""
    from roadmap.explore.space import switches

    cfg, s = run.cfg, run.step
    explore = cfg.get("explore")
    return {"step": s.name, "parent": s.parent, "order": s.order, "label": s.label, "section": s.section,
            "adopted": s.adopted, "roadmap": run.roadmap.name, "scale": cfg.scale.name, "seed": cfg.seed,
            "kind": run.kind,
            "explore": None if explore is None else {"sampler": explore.name, "budget": explore.get("budget")},
            "switches": switches(run.model_cfg) if isinstance(run.model_cfg, ModelConfig) else None,
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


def train(cfg: DictConfig) -> dict:
    """Train the step `cfg` asks for (or print the summary of a finished run) and return its summary."""
    run = check(cfg)
    with store.lock(run.dir, run.rt.main):
        if run.rt.main:
            store.discard_staging(run.dir)  # what a replacing run killed before its first checkpoint left
        previous, ckpt = previous_state(run)
        if previous and previous.get("status") in store.FINISHED:
            capped = (f", capped at {previous.get('steps_per_epoch')} steps per epoch (a smoke run)"
                      if previous.get("capped") else "")
            run.say(f"[{run.step.name}] already finished ({previous['status']}{capped}) in {run.dir}: top-1 "
                    f"{previous.get('final_top1')}; train.overwrite=true trains it again")
            if previous["status"] == "done" and "robustness" not in previous and ckpt is not None and \
                    run.settings.eval.robustness:  # a run finished before robustness was measured: from last.pt
                previous["robustness"] = robustness(run, build(run, ckpt))
                if run.rt.main:
                    store.write_summary(run.dir, previous)
            return previous
        history = resumed_history(run, ckpt)
        job = build(run, ckpt)
        start_epoch = len(history)
        if ckpt is not None:
            run.say(f"[{run.step.name}] resumed after epoch {start_epoch}/{run.settings.train.epochs} from "
                    f"{run.dir / 'last.pt'}")
        replacing = run.settings.train.overwrite and store.holds_run(run.dir)
        return fit(run, job, start_epoch, history, replacing)


def fit(run: Run, job: Job, start_epoch: int, history: list[dict], replacing: bool = False) -> dict:
    """Train from `start_epoch` to the end, writing metrics and a checkpoint after every epoch, then the summary.
    A run that replaces another (`replacing`) writes its files aside until its first checkpoint, then moves them in
    (store.replace): stopped before that, it leaves the old run as it was."""
    cfg, tc, rt = run.cfg, run.settings.train, run.rt
    out = run.dir  # where the run's files go: store.staging(run.dir) until a replacing run's first checkpoint
    if rt.main:
        out = store.staging(run.dir) if replacing else run.dir
        store.write_config(out, OmegaConf.to_yaml(cfg, resolve=True))
        store.write_metrics(out, [{**m, "run": run.id} for m in history])
        store.write_roadmap(run.dir, run.kind, run.roadmap.to_dict())
        if not replacing:
            store.clear_summary(run.dir)
    tracker = make_tracker(cfg, run.step, rt.main)
    name = run.step.name
    run.say(f"[{name}] {job.params / 1e6:.2f}M params, {job.gmacs:.3f} GMACs at {cfg.data.resolution}px, "
            f"{cfg.data.name}, {plural(tc.epochs, 'epoch')} x {plural(job.steps_per_epoch, 'step')}"
            f"{' (capped)' if job.capped else ''} of {tc.batch_size} on "
            f"{rt.device} ({run.precision}{', CUDA graph' if run.cuda_graphs else ''}) -> {run.dir}")
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

    summary = {**describe(run, job), "status": status, "message": message, "epochs": len(history),
               "fingerprint": run.fingerprint, "run": run.id}
    if status == "done" and run.settings.eval.robustness:
        try:
            summary["robustness"] = robustness(run, job)
        except KeyboardInterrupt as e:  # every epoch is in last.pt: the same command measures it again
            interrupted(run, job, tracker, history, e.args[0] if e.args else "SIGINT")
    if history:
        seconds = sum(m["train_seconds"] for m in history)
        summary.update(final_top1=history[-1]["val_top1"], final_top5=history[-1]["val_top5"],
                       best_top1=max(m["val_top1"] for m in history), best_top5=max(m["val_top5"] for m in history),
                       train_time=seconds,
                       img_s=sum(m["img_s"] * m["train_seconds"] for m in history) / max(1e-9, seconds))
    if rt.main:
        store.write_summary(run.dir, summary)
    tracker.finish(summary)
    if status == "diverged":
        run.say(f"[{name}] diverged: {message}; summary.json says status 'diverged'", file=sys.stderr)
    else:
        run.say(f"[{name}] done: top-1 {summary.get('final_top1', float('nan')):.2f} "
                f"(best {summary.get('best_top1', float('nan')):.2f}) in {summary.get('train_time', 0):.0f}s "
                f"-> {run.dir}")
    return summary


def robustness(run: Run, job: Job) -> dict:
    """The final model's top-1 on corrupted validation images (roadmap.train.robustness), with its one line."""
    from roadmap.train import robustness as robustness_lib

    record = robustness_lib.measure(run, job, evaluate)
    run.say(f"[{run.step.name}] {robustness_lib.describe(record)}")
    return record


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
    summary = {**describe(run, job), "status": "interrupted", "message": message, "epochs": len(history),
               "fingerprint": run.fingerprint, "run": run.id}
    if run.rt.main and replaced:
        store.write_summary(run.dir, summary)
    elif run.rt.main:
        store.discard_staging(run.dir)
    tracker.finish(summary)
    raise Interrupted(message, signal_name) from None


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def write_failure(cfg: DictConfig, error: BaseException, create: bool = False) -> None:
    """Record a run that stopped with an error, so sweeps and reports show it (store.write_failure: never over a
    finished or resumable run)."""
    if int(os.environ.get("RANK", 0)) == 0:
        store.write_failure(Path(cfg.run_dir), {
            "step": str(cfg.get("step")), "roadmap": cfg.roadmap.name, "scale": cfg.scale.name, "seed": cfg.seed,
            "kind": cfg.kind, "dataset": cfg.data.name, "message": f"{type(error).__name__}: {error}"}, create)
