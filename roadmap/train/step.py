"""The training step: forward, backward and optimizer step, run eagerly or captured once as a CUDA graph and
replayed (train.cuda_graphs).

A graph removes the per-kernel launch cost of the step (about a thousand small kernels at the cifar scale's 8x8
maps): the step is recorded after a few eager warm-up steps on a side stream (which initialise the optimizer's
state and cuDNN's choices), and every later batch is copied into the graph's static inputs and replayed. What it
needs: every batch of one shape (tensor datasets drop the last partial batch), an optimizer whose state and lr live
on the device (capturable AdamW, `recipe.optimizer`), no host syncs in the step (no loss scaling: fp16 is eager),
autocast without its weight cache; stochastic depth draws from the CUDA generator, which graphs support.

`assemble_step` is the one place where the step's parts (the recipe's optimizer, the GradScaler, autocast at the
run's precision, the eager or graphed step) are put together: the trainer and the benchmark both take their step
from it.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from typing import Callable

import torch

from roadmap.train import recipe as recipe_lib

WARMUP_STEPS = 3


def eager_step(net, criterion, opt, scaler, autocast, clip: float | None, params, phase=None) -> Callable:
    """step(x, y) -> loss: one optimizer step on a batch, with grad clipping and (fp16) loss scaling. `phase(name)`:
    a context around the forward, backward and optimizer parts (torch.profiler.record_function to label them)."""
    phase = phase or (lambda name: nullcontext())

    def step(x, y, zero_grad: bool = True):
        with phase("roadmap::forward"):
            with autocast:
                loss = criterion(net(x), y)
        with phase("roadmap::backward"):
            if zero_grad:
                opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
        with phase("roadmap::optimizer"):
            if clip:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, clip)
            scaler.step(opt)
            scaler.update()
        return loss.detach()

    return step


class GraphedStep:
    """A step function captured as one CUDA graph after WARMUP_STEPS eager steps (real training steps on the first
    batches, on a side stream), then replayed: the same sequence of optimizer steps as eager training."""

    def __init__(self, step: Callable, opt: torch.optim.Optimizer, warmup: int = WARMUP_STEPS):
        self.step, self.opt, self.warmup, self.done = step, opt, warmup, 0
        self.graph = self.x = self.y = self.loss = self.side = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.graph is None and self.done < self.warmup:
            side = self.side = self.side or torch.cuda.Stream()  # one warm-up stream for all warm-up steps
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loss = self.step(x, y)
            torch.cuda.current_stream().wait_stream(side)
            self.done += 1
            return loss
        if self.graph is None:
            self.x, self.y = x.clone(), y.clone()  # static inputs, in the batch's memory format
            self.graph = torch.cuda.CUDAGraph()
            self.opt.zero_grad(set_to_none=True)  # the graph's backward allocates (and then overwrites) the grads
            with torch.cuda.graph(self.graph):
                self.loss = self.step(self.x, self.y, zero_grad=False)
        else:
            self.x.copy_(x)
            self.y.copy_(y)
        self.graph.replay()  # capturing records the work without running it: the first replay runs this batch
        return self.loss


@dataclasses.dataclass
class AssembledStep:
    """One training step and the parts it holds."""
    step: Callable  # step(x, y) -> loss: one optimizer step (eager_step, or a GraphedStep around it)
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # loss scaling, enabled for fp16 only
    autocast: object  # the context forward passes run in (the evaluation's too): autocast, or nullcontext for fp32


#: the autocast dtype of each `train.precision` but fp32, which runs without autocast
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def assemble_step(model: torch.nn.Module, recipe, *, batch_size: int, precision: str, device: torch.device | str,
                  net: torch.nn.Module | None = None, graphs: bool = False, phase=None) -> AssembledStep:
    """The training step of `model` from the typed configs: `recipe` (settings.RecipeConfig: optimizer with its lr
    scaled to the global `batch_size`, loss, grad clipping), `precision` as resolved on the device (bf16, fp16 or
    fp32; fp16 scales the loss), `device` (the model's). `net`: what the forward pass calls (the model wrapped by DDP
    and/or torch.compile; default the model itself). `graphs`: a capturable optimizer, autocast without its weight
    cache and the step captured as one CUDA graph (GraphedStep). `phase`: as eager_step's."""
    device_type = torch.device(device).type
    opt = recipe_lib.optimizer(model, recipe, batch_size, capturable=graphs)
    scaler = torch.amp.GradScaler(device_type, enabled=precision == "fp16")
    dtype = AUTOCAST_DTYPES.get(precision)
    autocast = nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype,
                                                                   cache_enabled=not graphs)  # a graph holds no cache
    step = eager_step(net if net is not None else model, recipe_lib.loss_fn(recipe), opt, scaler, autocast,
                      recipe.grad_clip, list(model.parameters()), phase)
    return AssembledStep(GraphedStep(step, opt) if graphs else step, opt, scaler, autocast)
