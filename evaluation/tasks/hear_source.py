"""A HEAR 2021 scene task folder (hear-preprocess output): ``hear:/path/to/<task>-<version>-<mode>``.

Reads ``task_metadata.json``, ``<split>.json`` label files and the audio under ``<rate>/<split>/`` (16000 preferred;
any rate is resampled on read). ``trainvaltest`` tasks give train/valid/test; k-fold tasks give folds
``fold00``.. evaluated leave-one-fold-out. The primary metric is the first of ``evaluation``: ``top1_acc`` maps to
accuracy, ``mAP`` to mAP (others fall back to mAP for multi-label, accuracy otherwise).
"""
from __future__ import annotations

from pathlib import Path

import soundfile as sf

from evaluation.tasks.base import Clip, DatasetError, TaskData
from evaluation.tasks.layout import (check_rows, check_vocabulary, read_json, require_dir, split_missing,
                                       vocabulary)

GET = "use a task folder produced by hear-preprocess (e.g. from the HEAR 2021 task tarballs)"
METRICS = {"top1_acc": "accuracy", "mAP": "mAP"}


def audio_root(folder: Path) -> Path:
    rates = sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()),
                   key=lambda p: (p.name != "16000", int(p.name)))
    if not rates:
        raise DatasetError(f"{folder}: no audio folder such as 16000/ found; {GET}")
    return rates[0]


def read(folder: Path, skip_missing: bool = False, allow_duplicates: bool = False) -> TaskData:
    folder = Path(folder).resolve()
    require_dir(folder, "HEAR task", GET)
    meta = read_json(folder / "task_metadata.json", GET)
    if meta.get("embedding_type", "scene") != "scene":
        raise DatasetError(f"{folder}: {meta.get('embedding_type')} tasks are not supported (scene tasks only)")
    multilabel = meta.get("prediction_type") == "multilabel"
    first = (meta.get("evaluation") or [""])[0]
    metric = METRICS.get(first, "mAP" if multilabel else "accuracy")
    mode = meta.get("split_mode", "trainvaltest")
    splits = meta.get("splits") or (["train", "valid", "test"] if mode == "trainvaltest" else None)
    if not splits:
        raise DatasetError(f"{folder / 'task_metadata.json'}: no 'splits' listed; {GET}")
    audio = audio_root(folder)
    paths, labels, split_of, rows = [], [], [], []
    for split in splits:
        for name, labs in read_json(folder / f"{split}.json", GET).items():
            paths.append(audio / split / name)
            labels.append(tuple(str(x) for x in labs))
            split_of.append(split)
            rows.append(f"{split}.json:{name}")
    name = str(meta.get("task_name", folder.name))
    check_rows(name, str(folder), paths, labels, rows, multilabel=multilabel, allow_duplicates=allow_duplicates,
               fix=GET)
    present, missing = split_missing(name, paths, skip_missing, f"re-extract the HEAR task folder {folder}")
    clips = [Clip(p, lab, s) for p, lab, s, ok in zip(paths, labels, split_of, present) if ok]
    folds = None if mode == "trainvaltest" else list(splits)
    unit_sec = meta.get("sample_duration")
    if unit_sec is None:  # variable-length clips: the longest one
        unit_sec = max((sf.info(str(c.path)).duration for c in clips), default=1.0)
    classes = vocabulary(clips, folds)
    check_vocabulary(name, clips, classes, multilabel, str(folder))
    return TaskData(name, clips, classes, multilabel=multilabel, metric=metric, unit_sec=float(unit_sec),
                    folds=folds, source=str(folder), missing=missing,
                    meta_files=[folder / "task_metadata.json"] + [folder / f"{s}.json" for s in splits])
