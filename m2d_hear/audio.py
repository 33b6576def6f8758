"""Reading audio files for the model: decode with soundfile, mix to mono, resample, check.

Every failure is an :class:`AudioError` whose message names the file and the fix.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .errors import InputError


class AudioError(InputError):
    """An audio file that cannot be used: unreadable, empty, or holding NaN/inf."""


@lru_cache(maxsize=16)
def _resampler(orig: int, new: int):
    import torchaudio

    return torchaudio.transforms.Resample(orig, new)


def resample(wave: np.ndarray, orig_rate: int, rate: int) -> np.ndarray:
    """Band-limited (sinc) resampling of a mono float32 signal with torchaudio."""
    if orig_rate == rate:
        return wave
    return _resampler(orig_rate, rate)(torch.from_numpy(np.ascontiguousarray(wave))).numpy()


def read_audio(path: str | Path, sample_rate: int, mono: bool = True) -> np.ndarray:
    """Decode ``path`` to float32 in [-1, 1] at ``sample_rate``; channels are averaged when ``mono``.

    Raises :class:`AudioError` for a missing, corrupt or empty file, or one containing NaN/inf.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found; check the dataset folder (nothing is downloaded)")
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # noqa: BLE001 - soundfile raises several types for broken files
        raise AudioError(f"{path}: cannot decode audio ({str(err).strip() or type(err).__name__}); "
                         "the file is corrupt or not audio: re-extract it from the dataset archive") from None
    if wave.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no samples; re-extract it or remove it from the list")
    if not np.isfinite(wave).all():
        raise AudioError(f"{path}: contains NaN or inf samples; re-encode or remove the file")
    wave = wave.mean(axis=1) if mono else wave.T
    return resample(wave, rate, sample_rate).astype(np.float32, copy=False)


def fit_length(wave: np.ndarray, n_samples: int, offset: int = 0) -> np.ndarray:
    """Crop ``wave[offset:offset + n_samples]`` or zero-pad at the end to exactly ``n_samples``."""
    wave = wave[offset:offset + n_samples]
    if len(wave) < n_samples:
        wave = np.pad(wave, (0, n_samples - len(wave)))
    return wave
