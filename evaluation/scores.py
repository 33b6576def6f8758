"""``scores.csv``: one row per (weights, task, protocol, seed, fold) with its metric and score.

Every evaluator (linear probe, fine-tuning, mini benchmark) appends rows here with :func:`append_scores`; tables
are built from these rows only. Writes are atomic (write a temporary file, then rename), and a row with the same
key replaces the old one, so a rerun after a crash neither loses nor duplicates results.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

SCORES_FILE = "scores.csv"
KEY = ["weights", "task", "protocol", "seed", "fold"]


@dataclass
class ScoreRow:
    weights: str        # label of the weights: '<parent folder>/<file stem>' (EVAR style) or a given name
    task: str
    protocol: str       # 'linear', 'finetune', ...
    seed: int
    fold: str           # 'main' for fixed splits, else the held-out fold
    metric: str         # 'accuracy' or 'mAP'
    score: float        # fraction in [0, 1]
    weights_sha256: str = ""
    n_train: int = 0
    n_test: int = 0
    best_epoch: int = -1
    run: str = ""       # the run's configuration JSON, relative to the results folder


COLUMNS = [f.name for f in fields(ScoreRow)]


def weights_label(path: str | Path) -> str:
    """``.../m2d_vit_base-80x608p16x16-221006-mr7/checkpoint-300.pth`` -> ``m2d_vit_base-...-mr7/checkpoint-300``."""
    path = Path(path)
    return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem


def read_scores(folder: str | Path) -> pd.DataFrame:
    """All rows of ``folder/scores.csv`` (empty frame with the columns if none)."""
    path = Path(folder) / SCORES_FILE
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    df = pd.read_csv(path, dtype={"weights": str, "task": str, "protocol": str, "fold": str})
    missing = [c for c in ("weights", "task", "protocol", "seed", "fold", "metric", "score") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} missing; not a scores.csv written by m2d-eval")
    return df


def append_scores(folder: str | Path, rows: list[ScoreRow]) -> Path:
    """Add ``rows`` to ``folder/scores.csv`` (replacing rows with the same key) atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SCORES_FILE
    new = pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)
    old = read_scores(folder)
    df = pd.concat([old, new], ignore_index=True) if len(old) else new
    df["seed"] = df["seed"].astype(int)
    df = df.drop_duplicates(subset=KEY, keep="last")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def done_keys(folder: str | Path) -> set[tuple]:
    """Keys (weights, task, protocol, seed, fold) already in ``scores.csv``."""
    df = read_scores(folder)
    return {(str(w), str(t), str(p), int(s), str(f)) for w, t, p, s, f in df[KEY].itertuples(index=False)}
