"""The training recipe: optimizer, learning-rate schedule, loss and EMA, all from torch (its values are checked by
`settings.RecipeConfig`)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def optimizer(model: nn.Module, recipe, batch_size: int, capturable: bool = False) -> torch.optim.Optimizer:
    """lr scaled linearly from recipe.lr_batch to the global batch; no weight decay on norms and biases (1-d
    tensors) unless recipe.decay_norm_and_bias. `capturable`: AdamW that a CUDA graph can hold (state and lr as
    device tensors, which the schedule updates in place)."""
    lr = recipe.lr * batch_size / recipe.lr_batch
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 or recipe.decay_norm_and_bias else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    device = next(model.parameters()).device
    fused = device.type in ("cuda", "cpu")  # one kernel for all parameters instead of a loop over them
    if recipe.optimizer == "adamw":
        if capturable:
            return torch.optim.AdamW(groups, lr=torch.tensor(lr, device=device), betas=tuple(recipe.betas),
                                     fused=True, capturable=True)
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(recipe.betas), fused=fused)
    if capturable:
        raise ValueError("only AdamW is captured in a CUDA graph")
    return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, fused=fused)


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict) -> None:
    """A checkpoint's optimizer state, loaded without changing how this optimizer runs: a checkpoint says where
    training stands, not whether it is captured in a CUDA graph (an eager run resumed with graphs, or the reverse).
    torch's load_state_dict takes the saved groups whole; this keeps each group's capturable/fused flags and the kind
    of its lr (a device tensor for a graph, a float otherwise), and moves step counters to the parameters' device
    where a capturable or fused AdamW needs them."""
    how = [{k: g[k] for k in ("capturable", "fused", "foreach") if k in g} for g in opt.param_groups]
    lr_tensors = [g["lr"] if isinstance(g["lr"], torch.Tensor) else None for g in opt.param_groups]
    opt.load_state_dict(state)
    for group, flags, lr in zip(opt.param_groups, how, lr_tensors):
        group.update(flags)
        saved = group["lr"]
        if lr is not None:  # the same tensor object as before, holding the saved value
            group["lr"] = lr.fill_(float(saved))
        elif isinstance(saved, torch.Tensor):
            group["lr"] = saved.item()
        if group.get("capturable") or group.get("fused"):
            for p in group["params"]:
                st = opt.state.get(p, {})
                if isinstance(st.get("step"), torch.Tensor):
                    st["step"] = st["step"].to(device=p.device, dtype=torch.float32)


def schedule(opt: torch.optim.Optimizer, recipe, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-iteration linear warmup, then cosine to min_lr or x gamma at the milestones (fractions of training)."""
    warmup = int(recipe.warmup * total_steps)
    base = opt.param_groups[0]["lr"]
    floor = min(recipe.min_lr / base, 1.0) if base > 0 else 0.0
    milestones = [int(m * total_steps) for m in recipe.milestones]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if recipe.schedule == "step":
            return recipe.gamma ** sum(step >= m for m in milestones)
        t = (step - warmup) / max(1, total_steps - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def ema(model: nn.Module, recipe) -> AveragedModel | None:
    if not recipe.ema:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema), use_buffers=True)


def loss_fn(recipe) -> nn.Module:
    """Cross entropy with label smoothing; takes class indices or the soft targets of MixUp/CutMix."""
    return nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
