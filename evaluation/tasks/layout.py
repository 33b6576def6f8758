"""Checks shared by the dataset readers: required files, listed-but-absent audio, the listed rows themselves (none
at all, blank labels, a file listed twice), and the messages for them."""
from __future__ import annotations

import contextvars
import json
import os
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from evaluation.tasks.base import Clip, DatasetError, TaskData, relative_path

SHOW_FIRST = 5
DUPLICATES_FIX = "remove the repeated rows, or pass --allow-duplicates to keep every row (each counts as a clip)"

# What ``load_task(allow_duplicates=None)`` does: False unless a command runs under ``reading(allow_duplicates=True)``
# (the ``--allow-duplicates`` option, evaluation.cli_options).
ALLOW_DUPLICATES: contextvars.ContextVar[bool] = contextvars.ContextVar("allow_duplicates", default=False)


@contextmanager
def reading(allow_duplicates: bool) -> Iterator[None]:
    """Within this block, ``load_task`` calls that do not say otherwise use ``allow_duplicates``."""
    token = ALLOW_DUPLICATES.set(bool(allow_duplicates))
    try:
        yield
    finally:
        ALLOW_DUPLICATES.reset(token)


def shown(items: list[str]) -> str:
    """The first few items, then how many more."""
    more = f" and {len(items) - SHOW_FIRST} more" if len(items) > SHOW_FIRST else ""
    return ", ".join(items[:SHOW_FIRST]) + more


def check_rows(task: str, source: str, paths: list[Path], labels: list[tuple[str, ...]], rows: list[str], *,
               multilabel: bool, allow_duplicates: bool, fix: str) -> None:
    """Refuse listed rows that cannot make a task, naming the rows (``rows[i]`` says where ``paths[i]`` is listed,
    e.g. ``meta.csv:7``):

    - no row at all (a header and nothing below it);
    - a blank label: a single-label row without one, or an empty name among a row's labels (a multi-label row
      may have no labels at all, meaning none of the classes, but not every row);
    - a file listed more than once, unless ``allow_duplicates`` (then every row counts, as listed).
    """
    if not paths:
        raise DatasetError(f"{source}: no rows are listed (nothing below the header); {fix}")
    blank = [where for where, labs in zip(rows, labels)
             if any(not label.strip() for label in labs) or (not multilabel and not labs)]
    if blank:
        raise DatasetError(f"{task}: blank label in {len(blank)} of {len(paths)} rows ({shown(blank)}); "
                           f"give every row its label ({source})")
    if multilabel and not any(labels):
        raise DatasetError(f"{task}: every one of the {len(paths)} rows has no label ({shown(rows)}); "
                           f"give the rows their labels ({source})")
    if allow_duplicates:
        return
    where: dict[Path, list[str]] = defaultdict(list)
    for path, row in zip(paths, rows):
        where[Path(os.path.normpath(path))].append(row)
    base = Path(source) if Path(source).is_dir() else Path(source).parent
    repeated = [f"{relative_path(path, base)} at {' and '.join(rs)}" for path, rs in where.items() if len(rs) > 1]
    if repeated:
        raise DatasetError(f"{task}: {len(repeated)} file(s) listed more than once ({shown(repeated)}); "
                           f"{DUPLICATES_FIX} ({source})")


def line_numbers(path: Path, n_rows: int, comment: str | None = None) -> list[str]:
    """``<file>:<line>`` of each data row of a CSV with one header line (blank lines, and with ``comment`` lines
    starting with it, skipped as pandas does); ``<file> row <i>`` where that count does not match (quoted line
    breaks)."""
    with open(path, encoding="utf-8") as f:
        numbers = [n for n, line in enumerate(f, 1)
                   if (line.split(comment, 1)[0] if comment else line).strip()]
    if len(numbers) == n_rows + 1:
        return [f"{path.name}:{n}" for n in numbers[1:]]
    return [f"{path.name} row {i}" for i in range(1, n_rows + 1)]


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


def numbered_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, stripped line) of the non-empty lines of a text file."""
    with open(path, encoding="utf-8") as f:
        return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]


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
                     get: str, unit_sec: float, root: Path, split_source: Path, rows: list[str] | None = None,
                     allow_duplicates: bool = False, meta_files: list[Path] | None = None) -> TaskData:
    """A single-label accuracy task with fixed train/valid/test splits, from parallel lists of files, labels and
    splits (``rows``: where each is listed, for messages): the rows are checked (:func:`check_rows`), absent files
    are reported (or skipped), the vocabulary comes from train and is checked against the splits read from
    ``split_source``."""
    check_rows(task, str(split_source), paths, [(label,) for label in labels],
               rows if rows is not None else [str(p) for p in paths], multilabel=False,
               allow_duplicates=allow_duplicates, fix=get)
    present, missing = split_missing(task, paths, skip_missing, get)
    clips = [Clip(p, (label,), split) for p, label, split, ok in zip(paths, labels, splits, present) if ok]
    classes = vocabulary(clips, None)
    check_vocabulary(task, clips, classes, False, str(split_source))
    return TaskData(task, clips, classes, multilabel=False, metric="accuracy", unit_sec=unit_sec,
                    source=str(root), missing=missing, meta_files=list(meta_files or []))
