"""Losses of the fine-tuning protocol (EVAR ``finetune.py``); the scores are ``evaluation.metrics``."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def loss_single_label(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-mean(y * log_softmax(logits))`` over all N x C entries (soft targets after mixup), as EVAR computes it."""
    return -(targets * F.log_softmax(logits, dim=-1)).mean()


def loss_multi_label(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets)
