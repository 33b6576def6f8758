"""Data for fine-tuning: clips decoded in worker processes, and batch orders that depend only on (seed, epoch).

Each training epoch draws one permutation of the training clips (or, for class-balanced sampling, weighted draws
without replacement) from a generator seeded with (seed, epoch); the global batches are cut from it and each process
takes its contiguous slice of every global batch. Random crop offsets are drawn the same way. So a run resumed at an
epoch boundary sees exactly the batches of an uninterrupted run, and N processes see exactly what one process sees.

Crops follow EVAR: clips longer than the task's ``unit_sec`` are cropped (a random start for train and valid, the
start for test); shorter ones are zero-padded at the end. Valid crops are drawn once per seed (not per epoch), so
model selection compares epochs on the same audio.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from evaluation.tasks.base import Clip, DatasetError
from m2d_hear.audio import fit_length, read_audio
from m2d_hear.errors import InputError


def label_matrix(clips: Sequence[Clip], classes: Sequence[str], multilabel: bool, split: str) -> np.ndarray:
    """``[n, C]`` float32 one-hot (single-label) or multi-hot rows in class order."""
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(clips), len(classes)), dtype=np.float32)
    for row, clip in enumerate(clips):
        for label in clip.labels:
            col = index.get(label)
            if col is None:
                if multilabel:
                    continue  # a class absent from the training split carries no column
                raise DatasetError(f"{clip.path}: its {split} label {label!r} never occurs in the training split; "
                                   "fix the metadata or drop the clip")
            y[row, col] = 1.0
    return y


class ClipDataset(Dataset):
    """Decodes ``clips`` at ``sample_rate`` and crops/pads them to ``unit_samples``.

    Items are addressed by ``(index, crop_seed)`` keys from the batch samplers below; ``crop_seed < 0`` means
    "crop from the start".
    """

    def __init__(self, clips: Sequence[Clip], labels: np.ndarray, sample_rate: int, unit_samples: int):
        self.clips = list(clips)
        self.labels = torch.from_numpy(labels)
        self.sample_rate = sample_rate
        self.unit_samples = unit_samples

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int]):
        index, crop_seed = key
        wave = read_audio(self.clips[index].path, self.sample_rate)
        offset = 0
        if crop_seed >= 0 and len(wave) > self.unit_samples:
            offset = int(np.random.default_rng(crop_seed).integers(0, len(wave) - self.unit_samples + 1))
        wave = fit_length(wave, self.unit_samples, offset)
        return torch.from_numpy(np.ascontiguousarray(wave)), self.labels[index], index


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """AudioSet-style sample weights (AudioMAE rule, used for AS2M): label weight ``1000 / (count + 0.01)``,
    sample weight ``(sum of its labels' weights) ** (1 / 1.5)``."""
    label_weight = 1000.0 / (labels.sum(0) + 0.01)
    sample = (labels * label_weight).sum(1)
    return np.power(sample, 1.0 / 1.5)


class TrainBatches:
    """Per-epoch training batches of ``global_batch`` clips; this process gets its slice of each.

    A trailing partial batch is kept when it still has at least 2 samples per process (BatchNorm needs 2), cut to
    a multiple of the world size.
    """

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world: int = 1,
                 weights: np.ndarray | None = None, epoch_samples: int | None = None):
        if global_batch % world:
            raise InputError(f"batch size {global_batch} is not divisible by {world} processes")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.rank, self.world = rank, world
        self.weights = weights
        self.epoch_samples = min(epoch_samples or n, n)
        self.epoch = 0
        if self.n_batches() == 0:
            raise DatasetError(f"only {n} training clips: too few for one batch of at least {2 * world}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Clip indices of one epoch and their crop seeds."""
        rng = np.random.default_rng([self.seed, epoch, 1])
        if self.weights is not None:
            p = self.weights / self.weights.sum()
            idx = rng.choice(self.n, size=self.epoch_samples, replace=False, p=p)
        else:
            idx = rng.permutation(self.n)
        crop_seeds = rng.integers(0, 2**31 - 1, size=len(idx))
        return idx, crop_seeds

    def sizes(self) -> list[int]:
        """Global batch sizes of an epoch."""
        total = self.epoch_samples
        full, rest = divmod(total, self.global_batch)
        rest -= rest % self.world
        return [self.global_batch] * full + ([rest] if rest >= 2 * self.world else [])

    def n_batches(self) -> int:
        return len(self.sizes())

    def __len__(self) -> int:
        return self.n_batches()

    def global_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        idx, seeds = self.order(epoch)
        out, start = [], 0
        for size in self.sizes():
            out.append([(int(i), int(s)) for i, s in zip(idx[start:start + size], seeds[start:start + size])])
            start += size
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.global_batches(self.epoch):
            local = len(batch) // self.world
            yield batch[self.rank * local:(self.rank + 1) * local]


class EvalBatches:
    """Sequential evaluation batches over this process's contiguous share of ``n`` clips."""

    def __init__(self, n: int, batch_size: int, rank: int = 0, world: int = 1, crop_seed: int | None = None):
        per = -(-n // world)
        self.start, self.stop = min(n, rank * per), min(n, (rank + 1) * per)
        self.batch_size = batch_size
        self.crop_seeds = (np.random.default_rng([crop_seed, 2]).integers(0, 2**31 - 1, size=n)
                           if crop_seed is not None else np.full(n, -1))

    def __len__(self) -> int:
        return -(-(self.stop - self.start) // self.batch_size)

    def __iter__(self):
        for s in range(self.start, self.stop, self.batch_size):
            yield [(i, int(self.crop_seeds[i])) for i in range(s, min(s + self.batch_size, self.stop))]


def make_loader(dataset: ClipDataset, batch_sampler, num_workers: int, persistent: bool = False) -> DataLoader:
    """A loader decoding in ``num_workers`` processes (0 decodes in this process); ``persistent`` keeps the
    workers between epochs (the training loader)."""
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers,
                      persistent_workers=persistent and num_workers > 0, pin_memory=torch.cuda.is_available(),
                      prefetch_factor=4 if num_workers > 0 else None)
