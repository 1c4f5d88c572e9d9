"""One model's training and inference throughput on a device (`measure`), and on a CUDA device the peak memory it
allocated: the number behind every row of the networks benchmark, and what the loader benchmark compares a loader's
img/s with. The training step itself (`training_step`) is also what `memory` runs in a process of its own to measure a
network's peak resident memory on a CPU."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from roadmap.bench.timing import timed

_COMPILED: dict[int, torch.nn.Module] = {}


def training_step(model, *, batch: int, resolution: int, num_classes: int, device, precision: str,
                  channels_last: bool, net=None):
    """(step, x): a function that runs one training step of `model` (forward through `net`, default the model,
    under bf16 autocast unless fp32; cross entropy; backward; AdamW step) on one fixed random batch x on `device`.
    The model is moved to the device and memory format first."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=fmt)
    net = model if net is None else net
    x = torch.randn(batch, 3, resolution, resolution, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, num_classes, (batch,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = nullcontext() if precision == "fp32" else torch.autocast(torch.device(device).type,
                                                                        dtype=torch.bfloat16)

    def step():
        with autocast:
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step.optimizer, step.autocast = opt, autocast
    return step, x


def measure(model, *, batch: int, resolution: int, num_classes: int, device, precision: str, channels_last: bool,
            compile_model: bool, warmup: int, iters: int) -> dict:
    """Training and inference throughput of one model (compiled once when compile_model); on CUDA also the peak
    memory the training steps allocated (peak_gpu_mb; a CPU's peak resident memory is measured apart: memory)."""
    net = None
    if compile_model:  # compiled once per model: later rounds reuse the compiled graphs
        if id(model) not in _COMPILED:
            _COMPILED[id(model)] = torch.compile(model)
        net = _COMPILED[id(model)]
    train_step, x = training_step(model, batch=batch, resolution=resolution, num_classes=num_classes, device=device,
                                  precision=precision, channels_last=channels_last, net=net)

    def infer():
        with torch.no_grad(), train_step.autocast:
            model(x)  # eager: compiling an inference graph too would double the compile time

    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_s = timed(train_step, device, warmup, iters)
    memory = {"peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20} if device.type == "cuda" else {}
    model.eval()
    infer_s = timed(infer, device, warmup, iters)
    train_step.optimizer.zero_grad(set_to_none=True)
    return {"train_step_ms": 1000 * train_s, "train_img_s": batch / train_s, "infer_img_s": batch / infer_s,
            **memory}
