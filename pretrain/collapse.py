"""Collapse watch: the effective rank of the online encoder's clip embeddings on a fixed set of training crops.

M2D's loss says nothing about collapse (a target that maps everything to one point is perfectly predictable), so
the trainer measures the representation itself: before the first step (the random-init reference) and after every
``--rank-every`` epochs, it embeds the same ``--rank-clips`` crops (each file's first frames, as short clips are
padded at their end), spread evenly over the file list, the way the runtime embeds a clip (tokens -> one frame per
patch column, frequency patches concatenated -> mean over time), and logs the effective rank
(:func:`m2d_hear.embedding_rank.effective_rank`) to ``log.jsonl``. A rank far below the random-init reference is
the collapse that ruined the first default model (docs/pretraining.md).
"""
from __future__ import annotations

import numpy as np
import torch

from m2d_hear.embedding_rank import effective_rank
from m2d_hear.runtime import frequency_concat

from .data import LogMelCrops, crop_into

# A rank below this fraction of the random-init reference is reported as a likely collapse. Measured on the default
# model's 256 probe clips (docs/pretraining.md#collapse): the collapsed first default model 0.49; the shipped run
# 0.69 at epoch 4 (its earliest kept checkpoint) and 1.08 at its end.
COLLAPSE_FRACTION = 0.6


def probe_indices(n_files: int, n_clips: int) -> np.ndarray:
    """``n_clips`` distinct indices spread evenly over ``n_files`` (all of them when there are fewer)."""
    if n_clips >= n_files:
        return np.arange(n_files)
    return np.unique(np.linspace(0, n_files - 1, n_clips).round().astype(int))


class RankProbe:
    """The fixed probe set of one run and the measurement on it."""

    def __init__(self, dataset: LogMelCrops, n_clips: int, mean: float, std: float, batch_size: int = 64):
        indices = probe_indices(len(dataset), n_clips)
        crops = np.empty((len(indices), 1, dataset.n_mels, dataset.width), dtype=np.float32)
        for row, index in zip(crops, indices):
            crop_into(row, dataset.read(int(index)), 0.0)  # the first frames (short clips are padded at the end)
        self.crops = (torch.from_numpy(crops) - mean) / std
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.crops)

    @torch.no_grad()
    def measure(self, model, device: torch.device, autocast_dtype: torch.dtype | None = None) -> float:
        """Effective rank of ``model``'s clip embeddings of the probe crops (the model's mode is restored)."""
        was_training = model.training
        model.eval()
        parts = []
        try:
            for batch in self.crops.split(self.batch_size):
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    tokens = model.encode(batch.to(device))
                parts.append(frequency_concat(tokens.float(), model.grid_size[0]).mean(1).cpu())
        finally:
            model.train(was_training)
        return effective_rank(torch.cat(parts).numpy())
