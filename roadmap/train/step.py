"""The training step: forward, backward and optimizer step, run eagerly or captured once as a CUDA graph and
replayed (train.cuda_graphs).

A graph removes the per-kernel launch cost of the step (about a thousand small kernels at the cifar scale's 8x8
maps): the step is recorded after a few eager warm-up steps on a side stream (which initialise the optimizer's
state and cuDNN's choices), and every later batch is copied into the graph's static inputs and replayed. What it
needs: every batch of one shape (tensor datasets drop the last partial batch), an optimizer whose state and lr live
on the device (capturable AdamW, `recipe.optimizer`), no host syncs in the step (no loss scaling: fp16 is eager),
autocast without its weight cache; stochastic depth draws from the CUDA generator, which graphs support.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch

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
