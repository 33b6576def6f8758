"""Small waveform helpers for the mini benchmark builder: rate change, placement, levels, atomic 16-bit WAV."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from m2d_hear.fileio import atomic_path

SAMPLE_RATE = 16_000  # every generated file is 16 kHz mono 16-bit PCM, the M2D models' rate


def to_rate(wave: np.ndarray, rate: int, new_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (deterministic, no torch in the worker processes)."""
    if rate == new_rate:
        return wave.astype(np.float32, copy=False)
    ratio = Fraction(new_rate, rate)
    return resample_poly(wave, ratio.numerator, ratio.denominator).astype(np.float32)


def change_speed(wave: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch and formants shift with it), like a tape speed change."""
    if abs(factor - 1.0) < 1e-3:
        return wave
    ratio = Fraction(factor).limit_denominator(50)
    return resample_poly(wave, ratio.denominator, ratio.numerator).astype(np.float32)


def read_mono(path: str | Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a sample file to mono float32 at ``rate``."""
    data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    return to_rate(data.mean(axis=1), file_rate, rate)


def trim_silence(wave: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """Drop leading and trailing samples quieter than ``threshold`` times the peak."""
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak == 0.0:
        return wave[:0]
    loud = np.nonzero(np.abs(wave) > threshold * peak)[0]
    return wave[loud[0]:loud[-1] + 1]


def place(wave: np.ndarray, n: int, position: float) -> np.ndarray:
    """A length-``n`` buffer holding ``wave``; ``position`` in [0, 1] spreads the free room before/after it.

    A source longer than ``n`` is cut at the end (with a 10 ms fade-out so the cut does not click)."""
    out = np.zeros(n, np.float32)
    if len(wave) >= n:
        out[:] = wave[:n]
        fade = min(n, SAMPLE_RATE // 100)
        out[n - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return out
    start = int(round(position * (n - len(wave))))
    out[start:start + len(wave)] = wave
    return out


def peak_normalize(wave: np.ndarray, level_db: float) -> np.ndarray:
    peak = float(np.abs(wave).max())
    if peak == 0.0:
        return wave
    return (wave * (10.0 ** (level_db / 20.0) / peak)).astype(np.float32)


def is_silent(wave: np.ndarray) -> bool:
    return wave.size == 0 or float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) < 1e-4


def write_wav(path: Path, wave: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM atomically: a killed build never leaves a half-written file under the final name."""
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(wave, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
