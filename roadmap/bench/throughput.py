"""One model's training and inference throughput and peak memory on a device (`measure`): the number behind every row
of the networks benchmark, and what the loader benchmark compares a loader's img/s with."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from roadmap.bench.timing import timed

_COMPILED: dict[int, torch.nn.Module] = {}


def activation_bytes(model, x) -> int:
    """Bytes of the tensors autograd saves for backward during one forward: the activation memory of training."""
    total = 0
    seen = {p.untyped_storage().data_ptr() for p in model.parameters()}  # weights are not activations

    def pack(t):
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t.detach()  # t itself, saved in the graph that made it, is a cycle through C++ that gc never frees

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).float().sum()
    return total


def measure(model, *, batch: int, resolution: int, num_classes: int, device, precision: str, channels_last: bool,
            compile_model: bool, warmup: int, iters: int) -> dict:
    """Training and inference throughput and peak memory of one model (compiled once when compile_model)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    net = model
    if compile_model:  # compiled once per model: later rounds reuse the compiled graphs
        if id(model) not in _COMPILED:
            _COMPILED[id(model)] = torch.compile(model)
        net = _COMPILED[id(model)]
    x = torch.randn(batch, 3, resolution, resolution, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, num_classes, (batch,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = nullcontext() if precision == "fp32" else torch.autocast(device.type, dtype=torch.bfloat16)

    def train_step():
        with autocast:
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad(), autocast:
            model(x)  # eager: compiling an inference graph too would double the compile time

    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_s = timed(train_step, device, warmup, iters)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:  # weights, grads, two AdamW moments, and the activations saved for backward
        with autocast:
            peak = 4 * sum(p.numel() * p.element_size() for p in model.parameters()) + activation_bytes(model, x)
    model.eval()
    infer_s = timed(infer, device, warmup, iters)
    opt.zero_grad(set_to_none=True)
    return {"train_step_ms": 1000 * train_s, "train_img_s": batch / train_s, "infer_img_s": batch / infer_s,
            "peak_mem_mb": peak / 2**20}

