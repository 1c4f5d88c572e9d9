"""The training recipe: optimizer, learning-rate schedule, loss and EMA, all from torch."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .model import ConfigError

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step")


def check(recipe) -> None:
    if recipe.optimizer not in OPTIMIZERS:
        raise ConfigError(f"recipe.optimizer={recipe.optimizer!r}: must be one of {', '.join(OPTIMIZERS)}")
    if recipe.schedule not in SCHEDULES:
        raise ConfigError(f"recipe.schedule={recipe.schedule!r}: must be one of {', '.join(SCHEDULES)}")
    if not 0 <= recipe.warmup < 1:
        raise ConfigError(f"recipe.warmup={recipe.warmup!r}: must be a fraction of training in [0, 1)")
    if recipe.lr <= 0:
        raise ConfigError(f"recipe.lr={recipe.lr!r}: must be positive")


def optimizer(model: nn.Module, recipe, batch_size: int) -> torch.optim.Optimizer:
    """lr scaled linearly from recipe.lr_batch to the global batch; no weight decay on norms and biases (1-d
    tensors) unless recipe.decay_norm_and_bias."""
    lr = recipe.lr * batch_size / recipe.lr_batch
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 or recipe.decay_norm_and_bias else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    device = next(model.parameters()).device.type
    fused = device in ("cuda", "cpu")  # one kernel for all parameters instead of a loop over them
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(recipe.betas), fused=fused)
    return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, fused=fused)


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
