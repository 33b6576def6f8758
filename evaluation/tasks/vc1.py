"""VoxCeleb1 speaker identification: the official ``iden_split.txt`` (1/2/3 = train/valid/test), 8.2 s, accuracy.

Layout: ``VoxCeleb1/wav/idXXXXX/<video>/<n>.wav`` (dev and test zips unpacked into one ``wav/``) and
``VoxCeleb1/iden_split.txt``.
"""
from __future__ import annotations

from pathlib import Path

from evaluation.tasks.base import DatasetError, TaskData
from evaluation.tasks.layout import fixed_split_task, numbered_lines, require, require_dir

FOLDER = "VoxCeleb1"
GET = ("get the VoxCeleb1 dev+test wav zips from https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox1.html "
       "(unzip both into VoxCeleb1/wav) and iden_split.txt from "
       "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/iden_split.txt")
UNIT_SEC = 8.2
SPLIT_CODES = {"1": "train", "2": "valid", "3": "test"}


def read(root: Path, skip_missing: bool = False, allow_duplicates: bool = False) -> TaskData:
    root = Path(root).resolve()
    require_dir(root, "VoxCeleb1", GET)
    split_file = require(root / "iden_split.txt", "identification split list", GET)
    require_dir(root / "wav", "wav", GET)
    paths, labels, splits, rows = [], [], [], []
    for n, line in numbered_lines(split_file):
        parts = line.split()
        if len(parts) != 2 or parts[0] not in SPLIT_CODES or parts[1].count("/") != 2:
            raise DatasetError(f"{split_file}:{n}: expected '<1|2|3> idXXXXX/<video>/<n>.wav', got {line!r}; "
                               "use the official iden_split.txt")
        paths.append(root / "wav" / parts[1])
        labels.append(parts[1].split("/")[0])
        splits.append(SPLIT_CODES[parts[0]])
        rows.append(f"{split_file.name}:{n}")
    return fixed_split_task("vc1", paths, labels, splits, skip_missing, GET, UNIT_SEC, root, split_file, rows,
                            allow_duplicates, meta_files=[split_file])
