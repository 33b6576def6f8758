"""Checks shared by the dataset readers: required files, listed-but-absent audio, and the messages for both."""
from __future__ import annotations

import json
from pathlib import Path

from evaluation.tasks.base import Clip, DatasetError, TaskData

SHOW_FIRST = 5


def require(path: Path, what: str, get: str) -> Path:
    """Return ``path`` if it exists, else raise a one-line :class:`DatasetError` saying what it is and where to get it."""
    if not path.exists():
        raise DatasetError(f"{path}: {what} not found; {get}")
    return path


def read_json(path: Path, hint: str, what: str | None = None):
    """The parsed JSON file ``path``. A missing file or invalid JSON raises a one-line :class:`DatasetError` naming
    the file (``what``, default its name) and ending with ``hint``, the fix. The one JSON reader of the dataset and
    HEAR readers."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: {what or path.name} not found; {hint}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); {hint}") from None


def require_dir(path: Path, what: str, get: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} folder not found; {get}")
    return path


def missing_message(task: str, missing: list[Path], total: int, get: str) -> str:
    shown = ", ".join(str(p) for p in missing[:SHOW_FIRST])
    more = f" and {len(missing) - SHOW_FIRST} more" if len(missing) > SHOW_FIRST else ""
    return (f"{task}: {len(missing)} of {total} listed audio files are missing ({shown}{more}); {get}, "
            "or pass --skip-missing to evaluate without them")


def split_missing(task: str, paths: list[Path], skip_missing: bool, get: str) -> tuple[list[bool], list[Path]]:
    """Which of ``paths`` exist; raise unless ``skip_missing`` when some do not. Returns (present flags, missing)."""
    present = [p.is_file() for p in paths]
    missing = [p for p, ok in zip(paths, present) if not ok]
    if missing and not skip_missing:
        raise DatasetError(missing_message(task, missing, len(paths), get))
    return present, missing


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines of a text file."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def vocabulary(clips, folds: list[str] | None) -> list[str]:
    """Sorted labels of the train split (of every clip for leave-one-fold-out tasks, where each is train once)."""
    source = clips if folds else [c for c in clips if c.split == "train"]
    return sorted({label for c in source for label in c.labels})


def check_vocabulary(task: str, clips, classes: list[str], multilabel: bool, source: str) -> None:
    """A single-label valid/test clip whose class never occurs in train means a wrong split list."""
    if multilabel:
        return
    known = set(classes)
    unknown = sorted({c.label for c in clips if c.label not in known})
    if unknown:
        raise DatasetError(f"{task}: classes {unknown[:SHOW_FIRST]} occur in valid/test but not in train "
                           f"({source}); the split lists do not match this dataset")


def fixed_split_task(task: str, paths: list[Path], labels: list[str], splits: list[str], skip_missing: bool,
                     get: str, unit_sec: float, root: Path, split_source: Path) -> TaskData:
    """A single-label accuracy task with fixed train/valid/test splits, from parallel lists of files, labels and
    splits: absent files are reported (or skipped), the vocabulary comes from train and is checked against the
    splits read from ``split_source``."""
    present, missing = split_missing(task, paths, skip_missing, get)
    clips = [Clip(p, (label,), split) for p, label, split, ok in zip(paths, labels, splits, present) if ok]
    classes = vocabulary(clips, None)
    check_vocabulary(task, clips, classes, False, str(split_source))
    return TaskData(task, clips, classes, multilabel=False, metric="accuracy", unit_sec=unit_sec,
                    source=str(root), missing=missing)
