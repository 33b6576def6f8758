"""The validation carve-out: a random share of the training rows held out for model selection where a task has no
validation split. One rule for the linear probe (``evaluation.probe``) and fine-tuning's ``carve`` rule
(``evaluation.finetune.trainer``): EVAR's, scikit-learn ``train_test_split`` (``ceil(fraction * n)`` rows) drawn
from the given ``RandomState``, retried until the carve-out holds every class that has a positive.
"""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def carve_validation(Y: np.ndarray, fraction: float, rng: np.random.RandomState,
                     attempts: int = 100) -> tuple[np.ndarray, np.ndarray, bool]:
    """Row indices ``(train, valid, covered)`` of a random ``fraction`` of the rows of ``Y`` (one-hot or multi-hot
    ``[N, C]``) as validation, redrawn up to ``attempts`` times until it covers every class column with a positive
    in ``Y``; ``covered`` is False when no draw did (the last one is returned). The indices come in
    ``train_test_split``'s shuffled order, which the probe keeps (its batches follow it)."""
    Y = np.asarray(Y)
    needed = Y.sum(axis=0) > 0
    rows = np.arange(len(Y))
    for _ in range(attempts):
        train, valid = train_test_split(rows, test_size=fraction, random_state=rng)
        if np.array_equal(Y[valid].sum(axis=0) > 0, needed):
            return train, valid, True
    return train, valid, False
