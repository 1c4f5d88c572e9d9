"""Evaluation: a model's top-1 and top-5 on a loader, summed over the DDP processes."""

from __future__ import annotations

import torch
import torch.distributed as dist

from roadmap.train.runtime import Runtime


@torch.no_grad()
def evaluate(model, loader, rt: Runtime, autocast, channels_last) -> tuple[float, float]:
    """(top-1, top-5) in percent of `model` on `loader`, under `autocast`, over all processes."""
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
