"""The training step as the trainer runs it, for the benchmarks that time or profile it (--profile, --variants): a
step's network at a scale set up as the trainer sets it up on this device (`trainer_setting`: precision, memory
format, the recipe's loss and optimizer), and one training step of it on a fixed random batch (`trainer_step`)."""

from __future__ import annotations

import dataclasses

import torch

from roadmap.bench.timing import device_of
from roadmap.config import compose
from roadmap.train import assemble_step, check

# batch per scale and device type when the scale's own batch does not suit one device: the paper's global 4096 at
# 224px is 128 on one GPU (as `make bench`), and CPUs get the bench's small CPU batches
DEVICE_BATCH = {("imagenet", "cuda"): 128, ("imagenet", "cpu"): 8, ("cifar", "cpu"): 64}


@dataclasses.dataclass
class Setting:
    """A step's network at a scale, set up as the trainer sets it up on this device (precision, memory format, the
    recipe's loss and optimizer), with random data of the scale's shape."""
    step: str
    scale: str
    model_cfg: object  # ModelConfig: the network the trainer would train (the scale's width, classes, drop path)
    recipe: object  # the run's recipe (optimizer, loss)
    global_batch: int  # the scale's batch, which the recipe's lr scales with
    device: torch.device
    precision: str  # bf16, fp16 or fp32, as the trainer resolves train.precision on this device
    channels_last: bool  # as the trainer resolves train.channels_last (auto: on for CUDA)
    batch: int
    resolution: int
    num_classes: int


def trainer_setting(step: str, scale: str, roadmap: str = "convnext_t", device=None, batch: int | None = None
                    ) -> Setting:
    """The trainer's setting of `step` at `scale` (its own resolution-independent checks: train.check)."""
    device = device_of(device)
    shape = compose([f"+step={step}", f"scale={scale}", f"roadmap={roadmap}"])
    cfg = compose([f"+step={step}", f"scale={scale}", f"roadmap={roadmap}", "data=synthetic",
                   f"data.resolution={shape.data.resolution}", f"data.num_classes={shape.data.num_classes}",
                   f"train.device={device.type}"])
    run = check(cfg)
    recipe = run.settings.recipe
    batch = batch or DEVICE_BATCH.get((scale, device.type), cfg.train.batch_size)
    return Setting(step, scale, run.model_cfg, recipe, cfg.train.batch_size, run.rt.device, run.precision,
                   bool(run.channels_last), batch, cfg.data.resolution, cfg.data.num_classes)


def trainer_step(model, s: Setting, *, channels_last: bool | None = None, compile_mode: str | None = None,
                 annotate: bool = False):
    """A function that runs one training step of `model` as the trainer's loop does: forward under the trainer's
    autocast, the recipe's loss, backward (loss scaling for fp16), the recipe's optimizer step; on one fixed random
    batch already on the device (the data loader is measured apart: `--loader`). compile_mode: None (eager),
    "default" or "reduce-overhead" (torch.compile with CUDA graphs). annotate: mark the forward, backward and
    optimizer phases for torch.profiler. The step is the trainer's own assembly (roadmap.train.assemble_step: the
    recipe's optimizer, a GradScaler, the trainer's autocast, the eager step)."""
    device = s.device
    cl = s.channels_last if channels_last is None else channels_last
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = model.to(device, memory_format=fmt).train()
    net = model
    if compile_mode is not None:
        net = torch.compile(model, mode=None if compile_mode == "default" else compile_mode)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(s.batch, model.config.in_channels if hasattr(model, "config") else 3, s.resolution,
                    s.resolution, generator=g).to(device).contiguous(memory_format=fmt)
    y = torch.randint(0, s.num_classes, (s.batch,), generator=g).to(device)
    train = assemble_step(model, s.recipe, batch_size=s.global_batch, precision=s.precision, device=device, net=net,
                          phase=torch.profiler.record_function if annotate else None).step
    graphs = compile_mode == "reduce-overhead"

    def step():
        if graphs:  # a new iteration: the previous one's graph outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        train(x, y)

    return step

