"""UrbanSound8K, as unpacked from ``UrbanSound8K.tar.gz``: official 10 folds, leave-one-fold-out, 4.0 s, accuracy.

Layout: ``UrbanSound8K/metadata/UrbanSound8K.csv`` and ``UrbanSound8K/audio/fold1..10/<slice_file_name>``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from evaluation.tasks.base import Clip, DatasetError, TaskData
from evaluation.tasks.layout import check_rows, line_numbers, require, require_dir, shown, split_missing, vocabulary

FOLDER = "UrbanSound8K"
GET = "download UrbanSound8K.tar.gz from https://urbansounddataset.weebly.com/urbansound8k.html and unpack it"
UNIT_SEC = 4.0
COLUMNS = ("slice_file_name", "fold", "class")


def read(root: Path, skip_missing: bool = False, allow_duplicates: bool = False) -> TaskData:
    root = Path(root).resolve()
    require_dir(root, "UrbanSound8K", GET)
    meta = require(root / "metadata" / "UrbanSound8K.csv", "metadata CSV", GET)
    require_dir(root / "audio", "audio", GET)
    table = pd.read_csv(meta, dtype=str, keep_default_na=False)  # a blank class stays blank, not the label 'nan'
    absent = [c for c in COLUMNS if c not in table.columns]
    if absent:
        raise DatasetError(f"{meta}: columns {absent} missing (expected the official UrbanSound8K.csv); {GET}")
    rows = line_numbers(meta, len(table))
    bad = [where for where, f in zip(rows, table.fold) if not f.strip().isdigit()]
    if bad:
        raise DatasetError(f"{meta}: the fold is not a number in {len(bad)} rows ({shown(bad)}); {GET}")
    folds_of = [f"fold{int(f)}" for f in table.fold]
    paths = [root / "audio" / fold / name for name, fold in zip(table.slice_file_name, folds_of)]
    labels = [(label.strip(),) for label in table["class"]]
    check_rows("us8k", str(meta), paths, labels, rows, multilabel=False, allow_duplicates=allow_duplicates, fix=GET)
    present, missing = split_missing("us8k", paths, skip_missing, GET)
    clips = [Clip(p, label, fold) for p, label, fold, ok in zip(paths, labels, folds_of, present) if ok]
    folds = [f"fold{n}" for n in sorted({int(c.split[4:]) for c in clips})]
    if len(folds) < 2:
        raise DatasetError(f"{meta}: leave-one-fold-out needs at least 2 folds with audio, found {folds}")
    return TaskData("us8k", clips, vocabulary(clips, folds), multilabel=False, metric="accuracy",
                    unit_sec=UNIT_SEC, folds=folds, source=str(root), missing=missing, meta_files=[meta])
