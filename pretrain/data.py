"""Pre-training data: the ``files.csv`` list, memory-mapped log-mel crops, and a reproducible batch order (with,
optionally, M2D-X's background crops and their log-domain mixing).

All randomness of the data pipeline (file order, crop positions) is a function of ``(seed, epoch, position in the
epoch)`` and nothing else. So a resumed run reads exactly the crops an uninterrupted run would have read, and
``N`` processes with per-process batch ``b`` read exactly the crops of one process with batch ``N*b``: the global
batch of each step is one contiguous slice of the epoch's permutation and process ``r`` takes the ``r``-th part.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from m2d_hear.errors import InputError

FILE_LIST = "files.csv"


class DataError(InputError):
    """Missing or unusable pre-training data (list or ``.npy`` files)."""


def read_file_list(data_dir: str | Path, csv: str | Path | None = None) -> list[str]:
    """The sorted relative paths in ``csv`` (default ``DATA_DIR/files.csv``, one column ``file_name``)."""
    data_dir = Path(data_dir)
    csv = Path(csv) if csv else data_dir / FILE_LIST
    if not csv.is_file():
        raise DataError(f"{csv}: file list not found; run 'm2d-pretrain prepare SRC_DIR {data_dir}' first, "
                        "or pass --csv with a list of .npy files (column 'file_name')")
    try:
        frame = pd.read_csv(csv)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{csv}: not a readable CSV ({err}); it must have one column 'file_name'") from None
    if "file_name" not in frame.columns:
        raise DataError(f"{csv}: no 'file_name' column (found {list(frame.columns)}); "
                        "write one column 'file_name' with paths relative to the data folder")
    files = sorted(str(f) for f in frame["file_name"].dropna())
    if not files:
        raise DataError(f"{csv}: the list is empty; run 'm2d-pretrain prepare' on a folder with audio files")
    return files


def inflate(files: list[str], min_size: int) -> list[str]:
    """Repeat a short list until it has ``min_size`` entries (the official ``--min_ds_size``)."""
    if not files or len(files) >= min_size:
        return list(files)
    reps = -(-min_size // len(files))
    return (list(files) * reps)[:min_size]


def list_digest(files: list[str]) -> str:
    return hashlib.sha1("\n".join(files).encode()).hexdigest()[:16]


def load_lms(path: Path) -> np.ndarray:
    """Memory-map one ``(1, F, T)`` float32 log-mel file; raise :class:`DataError` naming it when unusable."""
    try:
        lms = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise DataError(f"{path}: listed in the file list but missing; re-run 'm2d-pretrain prepare' "
                        "or remove it from files.csv") from None
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{path}: not a readable .npy file ({err}); delete it and re-run 'm2d-pretrain prepare'") from None
    if lms.ndim == 2:
        lms = lms[None]
    if lms.ndim != 3 or lms.shape[0] != 1:
        raise DataError(f"{path}: expected a log-mel array of shape (1, mel bins, frames), got {lms.shape}; "
                        "re-create it with 'm2d-pretrain prepare'")
    return lms


def crop_into(out: np.ndarray, lms: np.ndarray, u: float) -> None:
    """Copy a crop of ``lms`` (1, F, T) into ``out`` (1, F, W): start ``int(u * (T - W))`` when ``T > W`` (uniform in
    ``[0, T - W - 1]`` as the official loader), zero right-padding (log domain) when ``T < W``."""
    width, frames = out.shape[-1], lms.shape[-1]
    if frames > width:
        start = min(int(u * (frames - width)), frames - width - 1)
        out[...] = lms[..., start:start + width]
    else:
        out[..., :frames] = lms
        out[..., frames:] = 0.0


class LogMelCrops(torch.utils.data.Dataset):
    """Map-style dataset whose items are whole batches: ``[(file index, u), ...] -> float32 [b, 1, F, W]``.

    Crops are raw log-mels (not normalised); the trainer normalises them on its device.
    """

    def __init__(self, data_dir: str | Path, files: list[str], input_size: tuple[int, int]):
        self.data_dir = Path(data_dir)
        self.files = files
        self.n_mels, self.width = input_size

    def __len__(self) -> int:
        return len(self.files)

    def path(self, index: int) -> Path:
        return self.data_dir / self.files[index]

    def read(self, index: int) -> np.ndarray:
        lms = load_lms(self.path(index))
        if lms.shape[1] != self.n_mels:
            raise DataError(f"{self.path(index)}: has {lms.shape[1]} mel bins but the model takes {self.n_mels}; "
                            "re-create the data with 'm2d-pretrain prepare' or fix --input-size")
        return lms

    def crops(self, items: list[tuple[int, float]]) -> torch.Tensor:
        """``[(file index, u), ...] -> float32 [b, 1, F, W]``."""
        out = np.empty((len(items), 1, self.n_mels, self.width), dtype=np.float32)
        for i, (index, u) in enumerate(items):
            crop_into(out[i], self.read(index), u)
        return torch.from_numpy(out)

    def __getitem__(self, batch: list[tuple]) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Items ``(index, u)`` give the crops; items ``(index, u, bg_index, bg_u)`` (a :class:`BatchOrder` with
        ``background=True``) give ``(crops, background crops)``."""
        crops = self.crops([item[:2] for item in batch])
        if not batch or len(batch[0]) == 2:
            return crops
        return crops, self.crops([item[2:] for item in batch])


def log_mix(clean: torch.Tensor, background: torch.Tensor, ratio: float) -> torch.Tensor:
    """Mix two raw log-mel crops in the power domain: ``log((1 - ratio) exp(clean) + ratio exp(background))``.

    M2D-X's background noise (docs/pretraining.md, ``--noise-ratio``): ``ratio`` is the background's weight. Both
    crops are raw log-mels of one training list, so they share its mean, and mixing before normalisation equals the
    official mixing of mean-subtracted crops up to that constant. Computed in float32, floored at float32 eps.
    """
    clean32, bg32 = clean.float(), background.float()
    power = (1.0 - ratio) * clean32.exp() + ratio * bg32.exp()
    return power.clamp_min(torch.finfo(torch.float32).eps).log().to(clean.dtype)


CROP_STREAM, BACKGROUND_STREAM = 0x4D32, 0x4247   # the random streams of the clean and the background crops


def epoch_order(n_items: int, seed: int, epoch: int,
                stream: int = CROP_STREAM) -> tuple[np.ndarray, np.ndarray]:
    """The epoch's permutation of item indices and one crop position ``u`` in [0, 1) per position, drawn from the
    random stream ``(seed, epoch, stream)``."""
    rng = np.random.default_rng([seed, epoch, stream])
    return rng.permutation(n_items), rng.random(n_items)


def background_order(n_items: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The background crops of an epoch (``--noise-ratio``): a second permutation and crop positions, from a stream
    of their own, so that turning background noise on leaves the clean crops of every step unchanged."""
    return epoch_order(n_items, seed, epoch, BACKGROUND_STREAM)


@dataclass
class BatchOrder(torch.utils.data.Sampler):
    """Yields this process's part of every global batch of an epoch, as lists of ``(index, u)``.

    Global batch ``i`` is positions ``[i*B, (i+1)*B)`` of the epoch permutation (``B = batch * world``, incomplete
    last batch dropped); process ``rank`` takes positions ``[i*B + rank*batch, i*B + (rank+1)*batch)``.
    ``start`` skips the first global batches (resuming inside an epoch). With ``background=True`` each item also
    names a background crop, ``(index, u, bg_index, bg_u)``, taken from :func:`background_order` at the same position.
    """

    n_items: int
    batch: int
    seed: int
    rank: int = 0
    world: int = 1
    epoch: int = 0
    start: int = 0
    background: bool = False

    def __post_init__(self):
        super().__init__()

    @property
    def global_batch(self) -> int:
        return self.batch * self.world

    def __len__(self) -> int:
        return self.n_items // self.global_batch - self.start

    @property
    def batches_per_epoch(self) -> int:
        return self.n_items // self.global_batch

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self):
        order, crop_u = epoch_order(self.n_items, self.seed, self.epoch)
        if self.background:
            bg_order, bg_u = background_order(self.n_items, self.seed, self.epoch)
        for i in range(self.start, self.batches_per_epoch):
            lo = i * self.global_batch + self.rank * self.batch
            if self.background:
                yield [(int(order[j]), float(crop_u[j]), int(bg_order[j]), float(bg_u[j]))
                       for j in range(lo, lo + self.batch)]
            else:
                yield [(int(order[j]), float(crop_u[j])) for j in range(lo, lo + self.batch)]


def mask_noise(seed: int, iteration: int, global_batch: int, n_tokens: int, rank: int, batch: int) -> torch.Tensor:
    """This process's rows of the global batch's masking noise for data iteration ``iteration`` ``[batch, N]``."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, iteration, 0x6D61736B]).generate_state(1)[0]))
    return torch.rand(global_batch, n_tokens, generator=gen)[rank * batch:(rank + 1) * batch]


def norm_stats(dataset: LogMelCrops, n_samples: int, seed: int) -> tuple[float, float]:
    """Mean and (unbiased) standard deviation + float32 eps of ``n_samples`` random crops of random files.

    As the official loader: files drawn with replacement, crops zero-padded like training inputs. Accumulated in
    float64 one crop at a time (Chan's parallel update), so memory stays at one crop.
    """
    rng = np.random.default_rng([seed, 0x6E6F726D])
    indices = rng.integers(0, len(dataset), size=n_samples)
    crop = np.empty((1, dataset.n_mels, dataset.width), dtype=np.float32)
    count, mean, m2 = 0, 0.0, 0.0
    for index, u in zip(indices, rng.random(n_samples)):
        crop_into(crop, dataset.read(int(index)), float(u))
        values = crop.astype(np.float64)
        n_b, mean_b = values.size, values.mean()
        m2_b = ((values - mean_b) ** 2).sum()
        delta = mean_b - mean
        total = count + n_b
        mean += delta * n_b / total
        m2 += m2_b + delta * delta * count * n_b / total
        count = total
    std = (m2 / max(count - 1, 1)) ** 0.5 + float(np.finfo(np.float32).eps)
    return float(mean), float(std)
