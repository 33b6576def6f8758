"""Task metrics: accuracy (argmax match) and macro mean average precision, as the EVAR linear evaluation uses them
(the one mAP definition of the project; the HEAR eval kit's scores use it with the kit's rule for classes without
positives); and the summary statistic of repeated runs (mean and 95 % confidence interval)."""
from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.metrics import average_precision_score


def _as_indices(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(int)


def accuracy(y_true, scores) -> float:
    """Fraction of rows whose highest score is the true class. ``y_true``: class indices [N] or one-hot [N, C]."""
    scores = np.asarray(scores)
    if len(scores) == 0:
        raise ValueError("accuracy of an empty set")
    return float((scores.argmax(axis=1) == _as_indices(y_true)).mean())


def average_precision_per_class(y_true, scores) -> np.ndarray:
    """sklearn average precision of each class column; NaN for a column without positives."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    if y_true.shape != scores.shape or y_true.ndim != 2:
        raise ValueError(f"mAP needs binary targets and scores of one shape [N, C], got {y_true.shape} and "
                         f"{scores.shape}")
    if len(y_true) == 0:
        raise ValueError("mAP of an empty set")
    ap = np.full(y_true.shape[1], np.nan)
    for c in range(y_true.shape[1]):
        if y_true[:, c].any():
            ap[c] = average_precision_score(y_true[:, c], scores[:, c])
    return ap


# What a class without a positive example counts as in the macro mean.
NO_POSITIVE_RULES = {
    "skip": "left out of the mean (EVAR; an error when no class has a positive)",
    "zero": "AP 0, as scikit-learn's average_precision_score(average='macro') scores it (the HEAR eval kit)",
}


def mean_average_precision(y_true, scores, no_positive: str = "skip") -> float:
    """Macro mAP: the unweighted mean of per-class average precision.

    ``y_true``: binary targets [N, C]; ``scores``: scores of the same shape. ``no_positive`` is the rule for a class
    without a positive in ``y_true`` (see ``NO_POSITIVE_RULES``): ``"skip"`` (EVAR's linear probe and our
    fine-tuning) or ``"zero"`` (the HEAR 2021 eval kit, which calls scikit-learn's macro average).
    """
    if no_positive not in NO_POSITIVE_RULES:
        raise ValueError(f"no_positive must be one of {list(NO_POSITIVE_RULES)}, got {no_positive!r}")
    ap = average_precision_per_class(y_true, scores)
    if no_positive == "zero":
        return float(np.nan_to_num(ap, nan=0.0).mean())
    if np.isnan(ap).all():
        raise ValueError("mAP is undefined: no class has a positive example")
    return float(np.nanmean(ap))


METRICS = {"accuracy": accuracy, "mAP": mean_average_precision}


def score(metric: str, y_true, scores) -> float:
    try:
        return METRICS[metric](y_true, scores)
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; use one of {list(METRICS)}") from None


def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of the two-sided 95 % confidence interval of the mean.

    EVAR's code computes no interval (its README shows "mean ± std"), and the TASLP 2024 paper labels its
    ± values "95 % CI" without giving the formula. We use the Student-t interval of the mean over runs:
    ``t(0.975, n-1) * s / sqrt(n)`` with ``s`` the sample standard deviation (ddof=1). For n = 3 runs this is
    2.48 s. One run gives a half-width of NaN (undefined).
    """
    values = np.asarray(list(values), dtype=float)
    if values.size == 0:
        raise ValueError("no values")
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan
    from scipy.stats import t

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = float(t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
    return mean, half
