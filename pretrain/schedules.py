"""Per-iteration schedules of M2D pre-training (``m2d_spec.md`` sections 5-6) and the optimizer's groups."""
from __future__ import annotations

import math

import torch
from torch import nn


def learning_rate(epoch: float, base_lr: float, warmup_epochs: float, epochs: float, min_lr: float = 0.0) -> float:
    """Linear warm-up from 0 over ``warmup_epochs``, then a half-cycle cosine to ``min_lr`` at ``epochs``.

    ``epoch`` is fractional (``iteration / iterations_per_epoch + epoch``), so the rate changes every iteration.
    """
    if epoch < warmup_epochs:
        return base_lr * epoch / warmup_epochs
    span = max(epochs - warmup_epochs, 1e-12)
    progress = min((epoch - warmup_epochs) / span, 1.0)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ema_decay(iteration: int, total_iterations: int, decay_init: float, decay_final: float) -> float:
    """The target EMA rate, linear in the data-iteration index from ``decay_init`` to ``decay_final``."""
    if total_iterations <= 1:
        return decay_final
    return decay_init + (decay_final - decay_init) * iteration / (total_iterations - 1)


def absolute_lr(blr: float, effective_batch: int) -> float:
    """``lr = blr * effective batch / 256`` (the MAE/M2D scaling rule)."""
    return blr * effective_batch / 256


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decay on weights (and the 3-D ``cls_token``/``mask_token``), none on biases and other
    1-D tensors; frozen tensors (target encoder, positions, ``norm_stats``) are left out."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.05) -> torch.optim.AdamW:
    """AdamW, betas (0.9, 0.95), as the paper; the fused kernel (several times faster on CPU) where torch has it."""
    groups = param_groups(model, weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))
