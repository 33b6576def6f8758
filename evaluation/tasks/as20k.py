"""AudioSet-20K: the balanced train segments (train) and eval segments (test), multi-label, 10 s, macro mAP.

Layout (``AudioSet/``): ``balanced_train_segments/*.wav`` and ``eval_segments/*.wav`` whose file stem starts with the
YouTube id (``<ytid>_<start>...``, optionally prefixed ``Y``), and the official ``balanced_train_segments.csv``,
``eval_segments.csv`` and ``class_labels_indices.csv``. AudioSet is never complete (videos disappear), so only clips
present are used and the number missing is reported in ``TaskData.missing``. No validation split: the probe
carves one out of train.
"""
from __future__ import annotations

import csv
from pathlib import Path

from evaluation.tasks.base import Clip, DatasetError, TaskData
from evaluation.tasks.layout import check_rows, require, require_dir

FOLDER = "AudioSet"
GET = ("get the segment CSVs and class_labels_indices.csv from https://research.google.com/audioset/download.html "
       "and the clips of balanced_train_segments and eval_segments (your own download; file names start with the "
       "YouTube id)")
UNIT_SEC = 10.0
SUBSETS = {"balanced_train_segments": "train", "eval_segments": "test"}
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
YTID_LEN = 11


def read_segments(path: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """An official segment CSV -> (YouTube id, MIDs, line number) per segment, in file order."""
    segments = []
    with open(path, encoding="utf-8") as f:
        reader = csv.reader(f, skipinitialspace=True)
        for row in reader:
            if not row or row[0].startswith("#"):
                continue
            if len(row) != 4:
                raise DatasetError(f"{path}:{reader.line_num}: expected 'YTID, start, end, \"labels\"', got {row!r}; "
                                   f"{GET}")
            segments.append((row[0], tuple(m.strip() for m in row[3].split(",") if m.strip()), reader.line_num))
    if not segments:
        raise DatasetError(f"{path}: no segments listed; {GET}")
    return segments


def read_class_labels(path: Path) -> dict[str, str]:
    """``class_labels_indices.csv`` -> {MID: display name}."""
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"mid", "display_name"} <= set(rows[0]):
        raise DatasetError(f"{path}: expected columns index,mid,display_name; {GET}")
    return {r["mid"]: r["display_name"] for r in rows}


def ytid_of(stem: str, known) -> str | None:
    for candidate in (stem[:YTID_LEN], stem[1:YTID_LEN + 1] if stem.startswith("Y") else None):
        if candidate and candidate in known:
            return candidate
    return None


def read(root: Path, skip_missing: bool = False, allow_duplicates: bool = False) -> TaskData:
    root = Path(root).resolve()
    require_dir(root, "AudioSet", GET)
    names = read_class_labels(require(root / "class_labels_indices.csv", "class_labels_indices.csv", GET))
    clips, missing = [], []
    for subset, split in SUBSETS.items():
        listing = require(root / f"{subset}.csv", f"{subset}.csv", GET)
        segments = read_segments(listing)
        folder = require_dir(root / subset, subset, GET)
        known = {ytid for ytid, _, _ in segments}
        found: dict[str, Path] = {}
        for path in sorted(folder.iterdir()):
            ytid = ytid_of(path.stem, known) if path.suffix.lower() in AUDIO_SUFFIXES else None
            if ytid is not None and ytid not in found:
                found[ytid] = path
        # a YouTube id listed twice is one file counted twice: the shared check names both lines
        check_rows("as20k", str(listing), [folder / ytid for ytid, _, _ in segments], [m for _, m, _ in segments],
                   [f"{listing.name}:{n}" for _, _, n in segments], multilabel=True,
                   allow_duplicates=allow_duplicates, fix=GET)
        for ytid, mids, n in segments:
            unknown = [m for m in mids if m not in names]
            if unknown:
                raise DatasetError(f"{listing}:{n}: {ytid} has labels {unknown} absent from class_labels_indices.csv; "
                                   f"{GET}")
            if ytid in found:
                clips.append(Clip(found[ytid], mids, split))
            else:
                missing.append(folder / ytid)
    if not any(c.split == "train" for c in clips) or not any(c.split == "test" for c in clips):
        raise DatasetError(f"{root}: no audio found for the listed segments in balanced_train_segments/ and "
                           f"eval_segments/ (file names must start with the YouTube id); {GET}")
    classes = sorted({m for c in clips if c.split == "train" for m in c.labels})
    return TaskData("as20k", clips, classes, multilabel=True, metric="mAP", unit_sec=UNIT_SEC,
                    source=str(root), missing=missing, class_names={m: names[m] for m in classes},
                    meta_files=[root / "class_labels_indices.csv"] + [root / f"{s}.csv" for s in SUBSETS])
