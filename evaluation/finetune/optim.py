"""Optimisers and the learning-rate schedule of the M2D fine-tuning recipes.

Optimisers (one parameter group, no layer-wise decay, as in EVAR's ``finetune.py``):

- ``sgd``: SGD, momentum 0.9, weight decay 0;
- ``adamw``: AdamW, betas (0.9, 0.95), eps 1e-8, weight decay 1e-4, amsgrad;
- ``lars``: timm's ``Lars``, momentum 0.9, weight decay 0. Note that timm's LARS adapts the step by the trust ratio
  only for groups with weight decay (``always_adapt=False``), so with the published weight decay 0 it steps like
  SGD with momentum; we keep that behaviour because it is what the published AS2M run used.

Schedule (timm ``CosineLRScheduler(t_initial=epochs, lr_min=1e-7, warmup_t=warmup, warmup_lr_init=0)`` stepped every
iteration with the fractional epoch ``t = epoch + iter / iters_per_epoch``, after the optimiser step):

- ``t < warmup``: ``lr = lr_peak * t / warmup`` (linear from 0);
- ``warmup <= t < epochs``: ``lr = lr_min + (lr_peak - lr_min) (1 + cos(pi t / epochs)) / 2`` (the cosine is not
  shifted by the warm-up);
- ``t >= epochs``: ``lr_min``.

Because the scheduler is stepped after each optimiser step, the very first step uses ``lr = 0`` and step ``s > 0``
uses the value at the fractional epoch of step ``s - 1``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from m2d_hear.errors import InputError

OPTIMIZERS = ("sgd", "adamw", "lars")
LR_MIN = 1e-7


def build_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    params = list(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=0.0)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-4, amsgrad=True)
    if name == "lars":
        from timm.optim import Lars

        return Lars(params, lr=lr, momentum=0.9, weight_decay=0.0)
    raise InputError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class CosineSchedule:
    """Cosine learning rate with linear warm-up, in (fractional) epochs."""

    lr: float
    epochs: int
    warmup_epochs: float
    lr_min: float = LR_MIN
    warmup_lr_init: float = 0.0

    def at(self, t: float) -> float:
        """The learning rate at fractional epoch ``t``."""
        if t < self.warmup_epochs:
            return self.warmup_lr_init + t * (self.lr - self.warmup_lr_init) / self.warmup_epochs
        if t >= self.epochs:
            return self.lr_min
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * t / self.epochs))

    def for_step(self, step: int, iters_per_epoch: int) -> float:
        """The learning rate used by global optimiser step ``step`` (0-based)."""
        if step == 0:
            return self.warmup_lr_init if self.warmup_epochs > 0 else self.lr
        prev = step - 1
        return self.at(prev // iters_per_epoch + (prev % iters_per_epoch) / iters_per_epoch)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
