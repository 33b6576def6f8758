"""Reading audio files for the model: decode with soundfile, mix to mono, resample, check; and the one check of
waveform tensors given to the model (:func:`check_waveform`).

Every failure is an :class:`AudioError` whose message names the file (or the problem) and the fix.
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .errors import InputError


class AudioError(InputError):
    """Audio that cannot be used: an unreadable or empty file, or a file or tensor holding NaN/inf, or a tensor of
    the wrong type, shape or dtype."""


class AudioScaleWarning(UserWarning):
    """Float audio outside [-1, 1] (e.g. int16 PCM values cast to float), warned once per process."""


_scale_warned = False


def _caller_level() -> int:
    """``stacklevel`` of the first frame outside m2d_hear and torch (the user's call of ``encode`` or a HEAR
    function), however many wrappers (``torch.no_grad`` decorators, HEAR helpers) stand between."""
    import sys

    here, torch_dir = str(Path(__file__).parent), str(Path(torch.__file__).parent)
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith((here, torch_dir)):
        frame, level = frame.f_back, level + 1
    return level


def check_waveform(audio, device: torch.device | None = None) -> torch.Tensor:
    """The one check of waveforms given to the model (``M2D.encode`` and the HEAR functions).

    ``audio`` must be a float ``torch.Tensor`` ``[n_sounds, n_samples]`` with samples, finite values and (when
    given) on ``device``; it is returned as float32. A peak above 1 (audio not scaled to [-1, 1], e.g. int16 PCM
    cast to float) gives one :class:`AudioScaleWarning` per process, naming the peak: M2D's log-mel statistics
    assume full scale = 1, so such audio gives embeddings unlike any the model was trained on.
    """
    global _scale_warned
    if not isinstance(audio, torch.Tensor):
        raise AudioError(f"audio must be a torch.Tensor [n_sounds, n_samples], got {type(audio).__name__}")
    if audio.ndim != 2:
        raise AudioError(f"audio must be [n_sounds, n_samples] (mono, batched), got shape {tuple(audio.shape)}; "
                         "mix multi-channel audio down and add a batch dimension")
    if not audio.is_floating_point():
        raise AudioError(f"audio must be float in [-1, 1], got {audio.dtype}; divide integer PCM by its full scale "
                         "(32768 for int16)")
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise AudioError(f"audio is empty (shape {tuple(audio.shape)})")
    if device is not None and audio.device != device:
        raise AudioError(f"audio is on {audio.device} but the model is on {device}; move one of them")
    peak = float(audio.detach().abs().max())   # NaN propagates through max, so one pass checks both
    if not math.isfinite(peak):
        raise AudioError("audio contains NaN or inf; clean the input (e.g. torch.nan_to_num) before embedding")
    if peak > 1.0 and not _scale_warned:
        _scale_warned = True
        hint = ("it looks like integer PCM cast to float: divide int16 values by 32768" if peak > 2.0 else
                "e.g. resampling overshoot or a mix above full scale; harmless if small")
        warnings.warn(f"audio peak {peak:g} is outside [-1, 1], the scale M2D expects ({hint}); embeddings of "
                      "audio at another scale are not comparable (warned once per process)", AudioScaleWarning,
                      stacklevel=_caller_level())
    return audio.to(torch.float32)


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
