"""Resolve a task name or a generic source (``csv:``/``hear:``) to a :class:`TaskData`.

Each dataset reader lives in its own module and exposes
``read(root, skip_missing=False, allow_duplicates=False, **kw) -> TaskData`` plus ``FOLDER`` (its folder name under
the data root) and ``GET`` (where users download it).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from evaluation.tasks.base import DatasetError, TaskData
from evaluation.tasks.layout import ALLOW_DUPLICATES

# task name -> (module, reader keyword arguments)
READERS = {
    "us8k": ("evaluation.tasks.us8k", {}),
    "vc1": ("evaluation.tasks.vc1", {}),
    "gtzan": ("evaluation.tasks.gtzan", {}),
    "gtzan_hear10fold": ("evaluation.tasks.gtzan", {"hear10fold": True}),
    "spcv2": ("evaluation.tasks.spcv2", {}),
    "as20k": ("evaluation.tasks.as20k", {}),
}
TASK_NAMES = tuple(READERS)
# The five tasks of the paper's linear-evaluation table (TASLP 2024 Table V), in table order.
PAPER_TASKS = ("us8k", "vc1", "gtzan", "spcv2", "as20k")


def default_data_root() -> Path:
    """``$M2D_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("M2D_DATA") or "data")


def reader_module(name: str):
    if name not in READERS:
        raise DatasetError(f"unknown task {name!r}: use one of {', '.join(TASK_NAMES)}, "
                           "csv:/path/meta.csv or hear:/path/to/task_folder")
    return importlib.import_module(READERS[name][0])


def task_folder(name: str, data_root: str | Path | None = None) -> Path:
    """The folder a named task is read from under the data root."""
    root = Path(data_root) if data_root is not None else default_data_root()
    return root / reader_module(name).FOLDER


def load_task(name: str, data_root: str | Path | None = None, path: str | Path | None = None,
              skip_missing: bool = False, allow_duplicates: bool | None = None) -> TaskData:
    """Read a task from its original download layout.

    name: a task name (``us8k``, ``vc1``, ``gtzan``, ``gtzan_hear10fold``, ``spcv2``, ``as20k``) or a generic
    source ``csv:/path/meta.csv`` / ``hear:/path/to/task_folder``.
    data_root: folder holding the datasets (default ``$M2D_DATA`` or ``./data``); path: the dataset folder itself
    (overrides ``data_root``). skip_missing: drop listed files that are absent instead of stopping.
    allow_duplicates: keep a file listed more than once as that many clips instead of stopping (default: as the
    enclosing ``evaluation.tasks.layout.reading`` block says, i.e. the command's ``--allow-duplicates``, else no).
    Every reader refuses a list with no rows and rows with a blank label (``evaluation.tasks.layout.check_rows``).
    """
    if allow_duplicates is None:
        allow_duplicates = ALLOW_DUPLICATES.get()
    options = {"skip_missing": skip_missing, "allow_duplicates": allow_duplicates}
    if name.startswith("csv:"):
        from evaluation.tasks import csv_source
        return csv_source.read(Path(name[4:]), **options)
    if name.startswith("hear:"):
        from evaluation.tasks import hear_source
        return hear_source.read(Path(name[5:]), **options)
    module = reader_module(name)
    kwargs = READERS[name][1]
    folder = Path(path) if path is not None else task_folder(name, data_root)
    return module.read(folder, **options, **kwargs)
