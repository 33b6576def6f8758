"""Tiny synthetic HEAR task folders in the exact hear-preprocess layout, for tests and for trying the pipeline.

Sounds are tones in noise, so even a random encoder gives separable embeddings:

* ``toy_tones-v1-full``: scene, multiclass (low / mid / high tone), ``trainvaltest``;
* ``toy_mix-v1-full``: scene, multilabel (any subset of low / high), ``trainvaltest``;
* ``toy_folds-v1-full``: scene, multiclass, ``new_split_kfold`` with 3 folds;
* ``toy_events-v1-full``: event, multilabel tone bursts with onsets and offsets (ms), ``trainvaltest``.

    python -m evaluation.hear.toy_tasks OUT_DIR     # writes all four under OUT_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000
TONES = {"low": 400.0, "mid": 1500.0, "high": 4000.0}


def tone(freq: float, seconds: float, rng: np.random.Generator, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return amplitude * np.sin(2 * np.pi * freq * (1 + 0.02 * rng.standard_normal()) * t + rng.uniform(0, 6.28))


def noise(seconds: float, rng: np.random.Generator, level: float = 0.02) -> np.ndarray:
    return level * rng.standard_normal(int(seconds * RATE))


def write_task(root: Path, name: str, metadata: dict, labels: list[str], splits: dict[str, dict],
               rate: int = RATE) -> Path:
    """``splits``: {split: {file name: (waveform, labels or events)}} -> ``root/name`` in the HEAR layout."""
    folder = Path(root) / name
    meta = {"version": "v1", "mode": "full", "default_mode": "full", "download_urls": [], "tmp_dir": "_workdir",
            **metadata, "splits": list(splits)}
    (folder / str(rate)).mkdir(parents=True, exist_ok=True)
    (folder / "task_metadata.json").write_text(json.dumps(meta, indent=4))
    rows = "".join(f"{i},{label}\n" for i, label in enumerate(sorted(labels)))
    (folder / "labelvocabulary.csv").write_text("idx,label\n" + rows)
    for split, clips in splits.items():
        audio = folder / str(rate) / split
        audio.mkdir(parents=True, exist_ok=True)
        for file, (wave, _) in clips.items():
            sf.write(audio / file, np.clip(wave, -1, 1).astype(np.float32), rate, subtype="PCM_16")
        (folder / f"{split}.json").write_text(json.dumps({f: lab for f, (_, lab) in clips.items()}, indent=4))
    return folder


def _scene_clips(prefix: str, classes: list[str], per_class: int, rng, seconds: float = 1.0) -> dict:
    clips = {}
    for label in classes:
        for k in range(per_class):
            clips[f"{prefix}_{label}_{k}.wav"] = (tone(TONES[label], seconds, rng) + noise(seconds, rng), [label])
    return clips


def tones_task(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    classes = ["low", "mid", "high"]
    splits = {s: _scene_clips(s, classes, n, rng) for s, n in (("train", 4), ("valid", 2), ("test", 2))}
    meta = {"task_name": "toy_tones", "embedding_type": "scene", "prediction_type": "multiclass",
            "split_mode": "trainvaltest", "sample_duration": 1.0,
            "evaluation": ["top1_acc", "mAP", "d_prime", "aucroc"],
            "max_task_duration_by_split": {"train": None, "valid": None, "test": None}}
    return write_task(root, "toy_tones-v1-full", meta, classes, splits)


def mix_task(root: Path, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    subsets = [[], ["low"], ["high"], ["high", "low"]]
    splits = {}
    for split, repeat in (("train", 3), ("valid", 2), ("test", 2)):
        clips = {}
        for r in range(repeat):
            for k, subset in enumerate(subsets):
                wave = noise(1.0, rng) + sum((tone(TONES[lab], 1.0, rng) for lab in subset), np.zeros(RATE))
                clips[f"{split}_{k}_{r}.wav"] = (wave, list(subset))
        splits[split] = clips
    meta = {"task_name": "toy_mix", "embedding_type": "scene", "prediction_type": "multilabel",
            "split_mode": "trainvaltest", "sample_duration": 1.0, "evaluation": ["mAP", "d_prime", "aucroc"],
            "max_task_duration_by_split": {"train": None, "valid": None, "test": None}}
    return write_task(root, "toy_mix-v1-full", meta, ["high", "low"], splits)


def folds_task(root: Path, seed: int = 2, n_folds: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    classes = ["low", "high"]
    splits = {f"fold{i:02d}": _scene_clips(f"f{i}", classes, 3, rng) for i in range(n_folds)}
    meta = {"task_name": "toy_folds", "embedding_type": "scene", "prediction_type": "multiclass",
            "split_mode": "new_split_kfold", "nfolds": n_folds, "sample_duration": 1.0,
            "evaluation": ["top1_acc", "mAP"], "max_task_duration_by_fold": None}
    return write_task(root, "toy_folds-v1-full", meta, classes, splits)


def events_task(root: Path, seed: int = 3, seconds: float = 2.0) -> Path:
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", 6), ("valid", 3), ("test", 3)):
        clips = {}
        for k in range(n):
            wave = noise(seconds, rng)
            events = []
            for label in ("low", "high"):
                start = float(rng.uniform(0.1, seconds - 0.8))
                length = float(rng.uniform(0.4, 0.7))
                a, b = int(start * RATE), int((start + length) * RATE)
                wave[a:b] += tone(TONES[label], (b - a) / RATE, rng)[: b - a]
                events.append({"label": label, "start": round(start * 1000, 1),
                               "end": round((start + length) * 1000, 1)})
            clips[f"{split}_{k}.wav"] = (wave, events)
        splits[split] = clips
    meta = {"task_name": "toy_events", "embedding_type": "event", "prediction_type": "multilabel",
            "split_mode": "trainvaltest", "sample_duration": seconds,
            "evaluation": ["event_onset_200ms_fms", "segment_1s_er"],
            "max_task_duration_by_split": {"train": None, "valid": None, "test": None}}
    return write_task(root, "toy_events-v1-full", meta, ["high", "low"], splits)


def all_tasks(root: Path) -> list[Path]:
    return [tones_task(root), mix_task(root), folds_task(root), events_task(root)]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m evaluation.hear.toy_tasks OUT_DIR")
    for path in all_tasks(Path(sys.argv[1])):
        print(path)
