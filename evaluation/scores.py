"""``scores.csv``: one row per (weights, task, protocol, seed, fold) with its metric and score.

Every evaluator (linear probe, fine-tuning, mini benchmark) appends rows here with :func:`append_scores`; tables
are built from these rows only.

A row is keyed by what was evaluated, not only by names: besides the weights label and task name its key holds
``weights_sha256`` (the weight file's content hash) and ``task_id`` (:meth:`TaskData.fingerprint`, the task's
metadata and audio files), so two weight files with one label, or two tasks with one name, never replace or
resume each other's rows. Files written before these columns existed still read: a missing hash is the empty
string, "unknown"; such a legacy row never counts as done for a keyed run, and a new row with the same label key
replaces it.

Each append is a read-modify-write under an inter-process lock (``scores.csv.lock``): the file is re-read inside
the lock and replaced atomically, so concurrent writers (several ``m2d-eval`` runs into one ``--out``) keep every
row, and a rerun after a crash neither loses nor duplicates results.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from m2d_hear.errors import InputError
from m2d_hear.fileio import locked, write_csv

SCORES_FILE = "scores.csv"
LABEL_KEY = ["weights", "task", "protocol", "seed", "fold"]
KEY = ["weights", "weights_sha256", "task", "task_id", "protocol", "seed", "fold"]
IDENTITY = ("weights_sha256", "task_id")   # '' = unknown (rows written before they were recorded)


@dataclass
class ScoreRow:
    weights: str        # label of the weights: '<parent folder>/<file stem>' (EVAR style) or a given name
    task: str
    protocol: str       # 'linear', 'finetune', ...
    seed: int
    fold: str           # 'main' for fixed splits, else the held-out fold
    metric: str         # 'accuracy' or 'mAP'
    score: float        # fraction in [0, 1]
    weights_sha256: str = ""   # SHA-256 of the weight file's content
    task_id: str = ""          # TaskData.fingerprint(): metadata content, each clip's path, size and mtime
    n_train: int = 0
    n_test: int = 0
    best_epoch: int = -1
    run: str = ""       # the run's configuration JSON, relative to the results folder


COLUMNS = [f.name for f in fields(ScoreRow)]
STR_COLUMNS = ("weights", "task", "protocol", "fold", "metric") + IDENTITY + ("run",)


def weights_label(path: str | Path) -> str:
    """``.../m2d_vit_base-80x608p16x16-221006-mr7/checkpoint-300.pth`` -> ``m2d_vit_base-...-mr7/checkpoint-300``."""
    path = Path(path)
    return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem


def row_key(weights: str, weights_sha256: str, task: str, task_id: str, protocol: str, seed: int,
            fold: str) -> tuple:
    """The key of one result, in :data:`KEY` order, as :func:`done_keys` returns it."""
    return (str(weights), str(weights_sha256), str(task), str(task_id), str(protocol), int(seed), str(fold))


def read_scores(folder: str | Path) -> pd.DataFrame:
    """All rows of ``folder/scores.csv`` (empty frame with the columns if none); absent identity columns are ''."""
    path = Path(folder) / SCORES_FILE
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    df = pd.read_csv(path, dtype={c: str for c in STR_COLUMNS})
    missing = [c for c in ("weights", "task", "protocol", "seed", "fold", "metric", "score") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: columns {missing} missing; not a scores.csv written by m2d-eval")
    for column in IDENTITY:
        df[column] = df[column].fillna("") if column in df.columns else ""
    return df


def _supersedes(new: pd.DataFrame, old: pd.DataFrame) -> list[bool]:
    """For each old row: is it replaced by a new row? Same label key, and each identity equal or unknown ('')."""
    by_label: dict[tuple, list[tuple[str, str]]] = {}
    for r in new.itertuples(index=False):
        by_label.setdefault((r.weights, r.task, r.protocol, int(r.seed), r.fold), []).append(
            (r.weights_sha256, r.task_id))
    out = []
    for r in old.itertuples(index=False):
        ids = by_label.get((r.weights, r.task, r.protocol, int(r.seed), r.fold), ())
        out.append(any(r.weights_sha256 in (sha, "") and r.task_id in (tid, "") for sha, tid in ids))
    return out


def append_scores(folder: str | Path, rows: list[ScoreRow]) -> Path:
    """Add ``rows`` to ``folder/scores.csv`` under its lock: re-read, replace rows they supersede, write atomically.

    A new row replaces an old one with the same :data:`KEY`, and a legacy row (unknown hash or task id) with the
    same label key; rows of other weights or task identities under the same names are kept.
    """
    folder = Path(folder)
    path = folder / SCORES_FILE
    new = pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)
    for column in STR_COLUMNS:
        new[column] = new[column].astype(str)
    new["seed"] = new["seed"].astype(int)
    new = new.drop_duplicates(subset=KEY, keep="last")
    with locked(path):
        old = read_scores(folder)
        if len(old):
            old = old[[not s for s in _supersedes(new, old)]]
        df = pd.concat([old, new], ignore_index=True) if len(old) else new
        df["seed"] = df["seed"].astype(int)
        columns = COLUMNS + [c for c in df.columns if c not in COLUMNS]   # keep columns we do not know
        write_csv(path, df[columns])
    return path


def done_keys(folder: str | Path) -> set[tuple]:
    """Keys (:data:`KEY`: weights, weights_sha256, task, task_id, protocol, seed, fold) already in ``scores.csv``.

    Legacy rows carry '' for an unknown hash, so they never match the key of a run that knows its hashes."""
    df = read_scores(folder)
    return {row_key(*values) for values in df[KEY].itertuples(index=False)}
