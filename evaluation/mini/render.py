"""Turn clip recipes into audio files. Runs inside the builder's worker processes.

A recipe is a JSON-able dict, so a clip is a pure function of it (the builder hashes the recipes to know whether
a cached build is current). Kinds:

- ``{"src": "speech", ...}`` (see :meth:`speech.Persona.recipe`)
- ``{"src": "music", "piece", "bpm", "position", "dur", "transpose", "velocity", "program", "soundfont"}``
- ``{"src": "sample", "file", "speed", "hits": [onset seconds...]}``: one recording, played at each onset
- ``{"src": "mix", "parts": [recipe...], "gains_db": [...], "positions": [...]}``: sources summed

A clip entry is ``{"file": relative path, "sec": clip length, "position": 0-1, "level_db": peak level,
"recipe": {...}}``; the source is placed inside the clip (``wave.place``) and the clip peak-normalised.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import music, speech
from .wave import SAMPLE_RATE, change_speed, is_silent, peak_normalize, place, read_mono, trim_silence, write_wav


class RenderError(RuntimeError):
    """A clip rendered to silence or a source could not be read."""


def _primitives(recipe: dict) -> list[dict]:
    return [p for part in recipe["parts"] for p in _primitives(part)] if recipe["src"] == "mix" else [recipe]


def _key(recipe: dict) -> str:
    return repr(sorted(recipe.items()))


def _render_sources(recipes: list[dict], sample_root: Path | None) -> dict[str, np.ndarray]:
    """Render every distinct primitive recipe once; music is batched per soundfont."""
    out: dict[str, np.ndarray] = {}
    by_font: dict[str, list[dict]] = {}
    scores: dict[str, music.ScoreNotes] = {}
    for r in recipes:
        k = _key(r)
        if k in out:
            continue
        if r["src"] == "speech":
            out[k] = speech.synthesize(r)
        elif r["src"] == "sample":
            path = Path(r["file"]) if sample_root is None else sample_root / r["file"]
            try:
                wave = trim_silence(read_mono(path))
            except Exception as err:  # noqa: BLE001 - soundfile raises several types
                raise RenderError(f"{path}: cannot read sample ({err}); reinstall its Debian package") from None
            wave = change_speed(wave, r["speed"])
            n = int(round(r["sec"] * SAMPLE_RATE))
            track = np.zeros(n, np.float32)
            for onset in r["hits"]:
                a = int(round(onset * SAMPLE_RATE))
                seg = wave[:max(0, n - a)]
                track[a:a + len(seg)] += seg
            out[k] = track
        elif r["src"] == "music":
            by_font.setdefault(r["soundfont"], []).append(r)
            out[k] = None  # placeholder, filled below
        else:
            raise RenderError(f"unknown recipe kind {r['src']!r}")
    fonts = music.soundfonts()
    for font, items in sorted(by_font.items()):
        if font not in fonts:
            raise RenderError(f"soundfont {font} is not installed; run scripts/install_system_deps.sh")
        batch = []
        for r in items:
            if r["piece"] not in scores:
                scores[r["piece"]] = music.load_piece(r["piece"])
            notes, dur = music.excerpt(scores[r["piece"]], r)
            batch.append((notes, dur, r["program"]))
        for r, wave in zip(items, music.render_excerpts(batch, fonts[font])):
            out[_key(r)] = wave
    return out


def _assemble(recipe: dict, sources: dict[str, np.ndarray], n: int) -> np.ndarray:
    if recipe["src"] != "mix":
        return sources[_key(recipe)]
    total = np.zeros(n, np.float32)
    for part, gain_db, position in zip(recipe["parts"], recipe["gains_db"], recipe["positions"]):
        wave = _assemble(part, sources, n)
        peak = float(np.abs(wave).max()) if wave.size else 0.0
        if peak > 0:
            total += place(wave, n, position) * (10.0 ** (gain_db / 20.0) / peak)
    return total


def render_job(clips: list[dict], out_dir: str, sample_root: str | None = None) -> list[str]:
    """Render and write every clip of one job (files written atomically); returns the written relative paths."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    recipes = [p for c in clips for p in _primitives(c["recipe"])]
    sources = _render_sources(recipes, Path(sample_root) if sample_root else None)
    written = []
    for clip in clips:
        n = int(round(clip["sec"] * SAMPLE_RATE))
        wave = place(_assemble(clip["recipe"], sources, n), n, clip["position"])
        if is_silent(wave):
            raise RenderError(f"{clip['file']}: rendered silence from {clip['recipe']}")
        write_wav(Path(out_dir) / clip["file"], peak_normalize(wave, clip["level_db"]))
        written.append(clip["file"])
    return written
