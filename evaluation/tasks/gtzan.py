"""GTZAN genre: the fault-filtered artist split (443/197/290 clips), 30 s, accuracy; and the HEAR 10-fold variant.

Audio layouts accepted (``.wav`` or the original ``.au``):
``GTZAN/genres/<genre>/<genre>.000NN.{wav,au}`` (genres.tar.gz), ``GTZAN/genres_original/...`` or
``GTZAN/Data/genres_original/...`` (the common Kaggle copy).
Split lists ``{train,valid,test}_filtered.txt`` (lines such as ``blues/blues.00029.wav``) from the public
jongpillee/music_dataset_split repository, in ``GTZAN/`` or ``GTZAN/GTZAN_split/``.

``gtzan_hear10fold`` follows HEAR's ``tfds_gtzan`` task: all 1000 clips in 10 folds made by hear-preprocess's
``new_split_kfold`` rule (sorted split keys shuffled by ``random.Random("split_k_folds")``, retried with
``split_k_folds_retry_<i>`` until every fold holds every genre, then ``np.array_split`` into 10). HEAR's split keys
are TFDS record ids, which a raw download does not have, so we key by file stem (``blues.00000``): the protocol is
HEAR's but the fold membership is not the official one. For HEAR's exact folds use its preprocessed task folder
with ``hear:/path/to/tfds_gtzan-1.0.0-full``.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from evaluation.tasks.base import Clip, DatasetError, TaskData
from evaluation.tasks.layout import fixed_split_task, numbered_lines, require_dir, vocabulary

FOLDER = "GTZAN"
GET_AUDIO = ("unpack genres.tar.gz (http://marsyas.info/downloads/datasets.html) into GTZAN/ so that "
             "GTZAN/genres/<genre>/ exists (or the Kaggle GTZAN copy's genres_original)")
GET_SPLIT = ("get train_filtered.txt, valid_filtered.txt and test_filtered.txt from "
             "https://github.com/jongpillee/music_dataset_split (folder GTZAN_split) and put them in GTZAN/")
GET = f"{GET_AUDIO}; {GET_SPLIT}"
UNIT_SEC = 30.0
AUDIO_DIRS = ("genres", "genres_original", "Data/genres_original")
SPLIT_DIRS = (".", "GTZAN_split")
SUFFIXES = (".wav", ".au")
HEAR_FOLDS = 10
HEAR_SEED_RETRIES = 1000


def audio_dir(root: Path) -> Path:
    for name in AUDIO_DIRS:
        if (root / name).is_dir():
            return root / name
    raise DatasetError(f"{root}: no audio folder ({' or '.join(AUDIO_DIRS)}) found; {GET_AUDIO}")


def resolve(audio: Path, entry: str) -> Path:
    """``blues/blues.00029.wav`` -> the file present under ``audio`` with a .wav or .au suffix."""
    stem = entry.rsplit(".", 1)[0] if entry.endswith(SUFFIXES) else entry
    for suffix in SUFFIXES:
        if (audio / (stem + suffix)).is_file():
            return audio / (stem + suffix)
    return audio / entry


def split_lists(root: Path) -> dict[str, Path]:
    for folder in SPLIT_DIRS:
        found = {s: root / folder / f"{s}_filtered.txt" for s in ("train", "valid", "test")}
        if all(p.is_file() for p in found.values()):
            return found
    absent = [f"{s}_filtered.txt" for s in ("train", "valid", "test") if not (root / f"{s}_filtered.txt").is_file()]
    raise DatasetError(f"{root}: split list(s) {', '.join(absent)} not found; {GET_SPLIT}")


def read(root: Path, skip_missing: bool = False, allow_duplicates: bool = False,
         hear10fold: bool = False) -> TaskData:
    root = Path(root).resolve()
    require_dir(root, "GTZAN", GET_AUDIO)
    audio = audio_dir(root)
    if hear10fold:
        return read_hear10fold(root, audio)
    paths, labels, splits, rows = [], [], [], []
    seen: dict[str, str] = {}
    lists = split_lists(root)
    for split, list_file in lists.items():
        for n, entry in numbered_lines(list_file):
            parts = entry.split("/")
            if len(parts) != 2 or not parts[1].startswith(parts[0] + "."):
                raise DatasetError(f"{list_file}:{n}: expected '<genre>/<genre>.000NN.wav', got {entry!r}; "
                                   f"{GET_SPLIT}")
            if entry in seen and seen[entry] != split:  # a repeat within one list is check_rows' (--allow-duplicates)
                raise DatasetError(f"{list_file}:{n}: {entry} is also listed in {seen[entry]}_filtered.txt; "
                                   f"the split lists are inconsistent: {GET_SPLIT}")
            seen[entry] = split
            paths.append(resolve(audio, entry))
            labels.append(parts[0])
            splits.append(split)
            rows.append(f"{list_file.name}:{n}")
    return fixed_split_task("gtzan", paths, labels, splits, skip_missing, GET_AUDIO, UNIT_SEC, root, root, rows,
                            allow_duplicates, meta_files=list(lists.values()))


def all_clips(audio: Path) -> list[tuple[Path, str]]:
    """Every clip under the audio folder as (path, genre), one per stem (.wav preferred over .au)."""
    found: dict[str, tuple[Path, str]] = {}
    for genre_dir in sorted(p for p in audio.iterdir() if p.is_dir()):
        for suffix in reversed(SUFFIXES):  # .au first, so a .wav of the same stem replaces it
            for path in sorted(genre_dir.glob(f"*{suffix}")):
                found[path.stem] = (path, genre_dir.name)
    return [found[k] for k in sorted(found)]


def hear_folds(keys: list[str], labels: dict[str, str], n_folds: int = HEAR_FOLDS) -> dict[str, str]:
    """hear-preprocess's ``new_split_kfold`` assignment: split key -> ``foldNN``."""
    keys = sorted(keys)
    seeds = ["split_k_folds"] + [f"split_k_folds_retry_{i}" for i in range(HEAR_SEED_RETRIES - 1)]
    n_labels = len(set(labels.values()))
    for seed in seeds:
        shuffled = list(keys)
        random.Random(seed).shuffle(shuffled)
        assignment = {k: f"fold{j:02d}" for j, part in enumerate(np.array_split(shuffled, n_folds)) for k in part}
        per_fold: dict[str, set] = {}
        for k, fold in assignment.items():
            per_fold.setdefault(fold, set()).add(labels[k])
        if len(per_fold) == n_folds and all(len(v) == n_labels for v in per_fold.values()):
            return assignment
    raise DatasetError(f"cannot split {len(keys)} clips into {n_folds} folds that each hold all {n_labels} "
                       "genres; the GTZAN folder is incomplete")


def read_hear10fold(root: Path, audio: Path) -> TaskData:
    items = all_clips(audio)
    if not items:
        raise DatasetError(f"{audio}: no .wav or .au files under <genre>/ folders; {GET_AUDIO}")
    labels = {p.stem: genre for p, genre in items}
    folds = hear_folds(list(labels), labels)
    clips = [Clip(p, (genre,), folds[p.stem]) for p, genre in items]
    fold_names = [f"fold{j:02d}" for j in range(HEAR_FOLDS)]
    return TaskData("gtzan_hear10fold", clips, vocabulary(clips, fold_names), multilabel=False,
                    metric="accuracy", unit_sec=UNIT_SEC, folds=fold_names, source=str(root))
