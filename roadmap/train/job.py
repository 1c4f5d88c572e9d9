"""The objects a run trains with (`Job`) and how they are built from a checked run: the network, the loaders, the
step (`step.assemble_step`), the schedule and EMA, restored from the run's checkpoint when there is one."""

from __future__ import annotations

import dataclasses

import torch

from roadmap import data as data_lib
from roadmap.errors import ConfigError
from roadmap.nets import swin as reference
from roadmap.nets.model import gmacs, num_params
from roadmap.seeding import derive
from roadmap.settings import RunSettings
from roadmap.train import recipe as recipe_lib
from roadmap.train.preflight import Run
from roadmap.train.resume import restore
from roadmap.train.runtime import Runtime
from roadmap.train.step import assemble_step


@dataclasses.dataclass
class Job:
    """The objects a run trains with."""
    model: torch.nn.Module  # the plain model (its state is what is saved)
    net: torch.nn.Module  # what the forward pass calls: the model, wrapped by DDP and/or torch.compile
    step: object  # step(x, y) -> loss: one optimizer step (step.eager_step, or a step.GraphedStep)
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
    train_loader, val_loader = build_loaders(s, rt, tc.batch_size // rt.world)
    steps_per_epoch = len(train_loader) if tc.max_steps_per_epoch is None else min(
        len(train_loader), tc.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size={tc.batch_size} is larger than the training set")
    ema = recipe_lib.ema(model, s.recipe)  # a copy of the plain model, before DDP wraps it
    net = model
    if rt.world > 1:  # DDP's broadcast of rank 0's weights: the restore below loads the same last.pt in every process
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rt.device] if rt.device.type == "cuda"
                                                        else None)
    if tc.compile:
        net = torch.compile(net)
    parts = assemble_step(model, s.recipe, batch_size=tc.batch_size, precision=run.precision, device=rt.device,
                          net=net, graphs=run.cuda_graphs)
    sched = recipe_lib.schedule(parts.opt, s.recipe, tc.epochs * steps_per_epoch)
    if ckpt is not None:
        restore(run, ckpt, model, parts.opt, sched, parts.scaler, ema)
    if rt.device.type == "cuda" and s.data.kind == "tensor":
        train_loader = data_lib.Prefetched(train_loader, rt.device)
    return Job(model, net, parts.step, parts.opt, sched, parts.scaler, ema,
               data_lib.batch_mix(s.recipe, s.data.num_classes), train_loader, val_loader, steps_per_epoch,
               parts.autocast, params, macs)


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
