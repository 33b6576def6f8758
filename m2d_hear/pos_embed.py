"""Fixed 2-D sine-cosine positional embeddings in the MAE/M2D convention.

For a grid of ``F'`` frequency rows and ``T'`` time columns, token ``n = f * T' + t`` (frequency-major) gets
``concat(sincos_1d(t, D/2), sincos_1d(f, D/2))``: the first half encodes the *time* index, the second half the
*frequency* index. Row 0 of the table is reserved for the CLS token and is all zeros. Values are computed in
float64 and cast to float32, which reproduces the tables stored in the official checkpoints exactly.
"""
from __future__ import annotations

import numpy as np
import torch


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """``[len(positions), dim]``: all sines first, then all cosines."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding dimension must be even, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.outer(positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(dim: int, grid: tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """``[1, (1 if cls_token) + F'*T', dim]`` float32 table for a ``(F', T')`` grid."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding dimension must be divisible by 4, got {dim}")
    n_freq, n_time = grid
    time_idx, freq_idx = np.meshgrid(np.arange(n_time), np.arange(n_freq))  # both [F', T'], frequency-major
    table = np.concatenate([sincos_1d(dim // 2, time_idx), sincos_1d(dim // 2, freq_idx)], axis=1)
    if cls_token:
        table = np.concatenate([np.zeros((1, dim)), table], axis=0)
    return torch.from_numpy(table.astype(np.float32)).unsqueeze(0)
