"""Scores and losses of the fine-tuning protocol (EVAR ``finetune.py``)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def loss_single_label(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-mean(y * log_softmax(logits))`` over all N x C entries (soft targets after mixup), as EVAR computes it."""
    return -(targets * F.log_softmax(logits, dim=-1)).mean()


def loss_multi_label(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets)


def accuracy(scores: np.ndarray, targets: np.ndarray) -> float:
    return float((scores.argmax(-1) == targets.argmax(-1)).mean())


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro mAP over the classes that have at least one positive (sklearn's average precision per class)."""
    from sklearn.metrics import average_precision_score

    present = targets.sum(0) > 0
    if not present.any():
        raise ValueError("no positive labels in the evaluation set: mAP is undefined")
    return float(np.mean(average_precision_score(targets[:, present], scores[:, present], average=None)))


def score(metric: str, scores: np.ndarray, targets: np.ndarray) -> float:
    if metric == "accuracy":
        return accuracy(scores, targets)
    if metric == "mAP":
        return mean_average_precision(scores, targets)
    raise ValueError(f"unknown metric {metric!r}")
