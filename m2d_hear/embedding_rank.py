"""Effective rank of a set of embeddings: the collapse check shared by pre-training and evaluation."""
from __future__ import annotations

import numpy as np


def effective_rank(embeddings) -> float:
    """Roy & Vetterli's effective rank of a set of embeddings ``[N, D]``: exp of the entropy of the normalised
    singular values of the centred matrix. 1 for embeddings on a line; up to min(N, D) when every direction is
    used equally. A pre-trained encoder whose effective rank falls far below its random twin's has collapsed."""
    x = np.asarray(embeddings, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    s = np.linalg.svd(x, compute_uv=False)
    if not s.any():
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))
