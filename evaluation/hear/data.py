"""Reading an embedding task folder written in the eval kit's format (by ``hear-embed`` or the kit itself).

Per split: ``<split>.embedding-dimensions.json`` ``[rows, dim]``, ``<split>.embeddings.npy`` (a raw float32
memmap without header, read with that shape), ``<split>.target-labels.pkl`` (a list of label lists, one per row)
and, for event tasks, ``<split>.filename-timestamps.json`` (``[[path, ms], ...]``, one per row). Plus
``task_metadata.json``, ``labelvocabulary.csv`` (``idx,label``) and ``<split>.json`` (reference labels/events).

The label pickle is read with a restricted unpickler (:func:`read_label_pickle`) that builds only built-in
containers, strings and numbers, so a hostile file cannot run code.
"""
from __future__ import annotations

import builtins
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evaluation.tasks.layout import read_json

from .errors import HearTaskError

FIX = "run `m2d-eval hear-embed` (or the eval kit's embeddings runner) for this task first"


def _require(path: Path) -> Path:
    if not path.is_file():
        raise HearTaskError(f"{path}: missing; {FIX}")
    return path


# Globals a pickle of built-in containers, strings and numbers may name: sets are pickled as ``set(list)`` below
# protocol 4. Everything else (str, int, float, list, tuple, dict, None, bool) has its own opcodes.
_LABEL_GLOBALS = {("builtins", "set"), ("builtins", "frozenset"), ("__builtin__", "set"),
                  ("__builtin__", "frozenset")}


class _LabelUnpickler(pickle.Unpickler):
    """Builds built-in containers, strings and numbers only; any other global (a class, a function) is refused
    before it is looked up, so nothing of the file's choosing runs."""

    def find_class(self, module, name):
        if (module, name) in _LABEL_GLOBALS:
            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("it holds a persistent id")


def _plain(value, depth: int = 0) -> bool:
    if isinstance(value, (str, int, float)) or value is None:
        return True
    if depth > 8:
        return False
    if isinstance(value, dict):
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_plain(v, depth + 1) for v in value)
    return False


def read_label_pickle(path: Path):
    """Unpickle ``path`` admitting only built-in containers, strings and numbers; anything else, or a damaged
    file, is a :class:`HearTaskError` naming the file."""
    data = _require(path).read_bytes()
    try:
        value = _LabelUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as err:
        raise HearTaskError(f"{path}: refused: {err}, but a label file holds only lists of strings and numbers "
                            f"(unpickling anything else could run code); {FIX}") from None
    except Exception as err:  # noqa: BLE001 - truncated or not a pickle
        raise HearTaskError(f"{path}: not a readable label pickle ({type(err).__name__}); {FIX}") from None
    if not _plain(value):
        raise HearTaskError(f"{path}: holds {type(value).__name__} data beyond built-in containers, strings and "
                            f"numbers; {FIX}")
    return value


def read_label_lists(path: Path) -> list:
    """A ``<split>.target-labels.pkl``: one list of labels (strings or numbers) per embedding row."""
    labels = read_label_pickle(path)
    if not isinstance(labels, (list, tuple)) or not all(isinstance(row, (list, tuple)) for row in labels):
        raise HearTaskError(f"{path}: expected a list of label lists (one per embedding row), got "
                            f"{type(labels).__name__}; {FIX}")
    return list(labels)


@dataclass
class EmbeddingTask:
    """An embedding task folder: its metadata and label vocabulary."""

    path: Path
    metadata: dict
    labels: list[str]  # by index

    @property
    def label_to_idx(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def idx_to_label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def is_event(self) -> bool:
        return self.metadata["embedding_type"] == "event"

    def dims(self, split: str) -> tuple[int, int]:
        path = self.path / f"{split}.embedding-dimensions.json"
        dims = read_json(path, FIX)
        if not (isinstance(dims, list) and len(dims) == 2 and all(isinstance(d, int) and d >= 0 for d in dims)):
            raise HearTaskError(f"{path}: expected [rows, dim], got {dims!r}; {FIX}")
        return dims[0], dims[1]

    def reference(self, splits: list[str]) -> dict:
        """The ``<split>.json`` label files of ``splits``, merged (file names are unique across splits)."""
        merged: dict = {}
        for split in splits:
            part = read_json(self.path / f"{split}.json", FIX)
            overlap = set(part) & set(merged)
            if overlap:
                raise HearTaskError(f"{self.path / f'{split}.json'}: file {sorted(overlap)[0]} also appears in another "
                                    "split; split files must be disjoint")
            merged.update(part)
        return merged


REQUIRED_KEYS = ("task_name", "embedding_type", "prediction_type", "split_mode", "splits", "evaluation")


def check_metadata(metadata: dict, source: Path) -> dict:
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    if missing:
        raise HearTaskError(f"{source}: missing {', '.join(missing)}; use a task folder made by hear-preprocess")
    if metadata["embedding_type"] not in ("scene", "event"):
        raise HearTaskError(f"{source}: embedding_type must be scene or event, got {metadata['embedding_type']!r}")
    if metadata["prediction_type"] not in ("multiclass", "multilabel"):
        raise HearTaskError(f"{source}: prediction_type must be multiclass or multilabel, "
                            f"got {metadata['prediction_type']!r}")
    if not metadata["evaluation"]:
        raise HearTaskError(f"{source}: 'evaluation' lists no score; the first one is the primary score")
    return metadata


def read_vocabulary(path: Path) -> list[str]:
    """``labelvocabulary.csv`` (``idx,label``) -> labels by index; indices must be 0..n-1."""
    import pandas as pd

    try:
        table = pd.read_csv(_require(path))
    except (ValueError, pd.errors.ParserError) as err:
        raise HearTaskError(f"{path}: cannot parse ({err}); it must be a CSV with columns idx,label") from None
    if not {"idx", "label"} <= set(table.columns) or len(table) == 0:
        raise HearTaskError(f"{path}: expected columns idx,label and at least one row")
    idx = table["idx"].tolist()
    if sorted(idx) != list(range(len(idx))):
        raise HearTaskError(f"{path}: idx must be 0..{len(idx) - 1}, each once")
    labels = [""] * len(idx)
    for i, label in zip(idx, table["label"].astype(str)):
        labels[i] = label
    return labels


def read_task(path: str | Path) -> EmbeddingTask:
    path = Path(path)
    if not path.is_dir():
        raise HearTaskError(f"{path}: not a folder; pass embedding task folders written by hear-embed")
    metadata = check_metadata(read_json(path / "task_metadata.json", FIX), path / "task_metadata.json")
    return EmbeddingTask(path, metadata, read_vocabulary(path / "labelvocabulary.csv"))


class Rows:
    """Row-concatenation of several ``[n_i, d]`` arrays (memmaps or in memory), sliced without copying all."""

    def __init__(self, parts: list[np.ndarray]):
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, _ = index.indices(len(self))
        pieces = []
        for part, lo in zip(self.parts, self.offsets[:-1]):
            a, b = max(start - lo, 0), min(stop - lo, len(part))
            if a < b:
                pieces.append(part[a:b])
        if not pieces:
            return np.zeros((0, self.parts[0].shape[1]), np.float32)
        if len(pieces) == 1:  # a writable copy when it comes from a read-only memmap
            return pieces[0] if type(pieces[0]) is np.ndarray else np.array(pieces[0], dtype=np.float32)
        return np.concatenate(pieces).astype(np.float32, copy=False)


@dataclass
class SplitData:
    """Embeddings, multi-hot targets, and (event tasks) the file and timestamp of every row."""

    x: Rows
    y: torch.Tensor
    filenames: list[str] | None = None
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)


def _split_part(task: EmbeddingTask, split: str, in_memory: bool, with_meta: bool):
    rows, dim = task.dims(split)
    emb_path = _require(task.path / f"{split}.embeddings.npy")
    expected = rows * dim * 4
    if emb_path.stat().st_size != expected:
        raise HearTaskError(f"{emb_path}: {emb_path.stat().st_size} bytes, but {split}.embedding-dimensions.json "
                            f"says {rows}x{dim} float32 ({expected} bytes); {FIX}")
    emb = np.memmap(emb_path, dtype=np.float32, mode="r", shape=(rows, dim)) if rows else np.zeros((0, dim), np.float32)
    if in_memory:
        emb = np.array(emb)
        if not np.isfinite(emb).all():
            raise HearTaskError(f"{emb_path}: holds NaN or inf embeddings; check the model and audio, then re-embed")
    labels_path = task.path / f"{split}.target-labels.pkl"
    labels = read_label_lists(labels_path)
    if len(labels) != rows:
        raise HearTaskError(f"{labels_path}: {len(labels)} label rows for {rows} embeddings; {FIX}")
    filenames = timestamps = None
    if with_meta and task.is_event:
        pairs = read_json(task.path / f"{split}.filename-timestamps.json", FIX)
        if len(pairs) != rows:
            raise HearTaskError(f"{task.path / f'{split}.filename-timestamps.json'}: {len(pairs)} rows for {rows} "
                                f"embeddings; {FIX}")
        filenames = [p[0] for p in pairs]
        timestamps = np.array([p[1] for p in pairs], dtype=np.float64)
    return emb, labels, filenames, timestamps


def targets(labels: list[list], task: EmbeddingTask, source: str) -> torch.Tensor:
    """Multi-hot ``[rows, n_labels]`` float targets; multiclass rows must hold exactly one label."""
    lookup = task.label_to_idx
    y = torch.zeros(len(labels), len(lookup))
    multiclass = task.metadata["prediction_type"] == "multiclass"
    for i, row in enumerate(labels):
        if multiclass and len(row) != 1:
            raise HearTaskError(f"{source}: row {i} has {len(row)} labels but the task is multiclass "
                                "(exactly one label per example)")
        for label in row:
            try:
                y[i, lookup[str(label)]] = 1.0
            except KeyError:
                raise HearTaskError(f"{source}: label {label!r} is not in labelvocabulary.csv") from None
    return y


def load_splits(task: EmbeddingTask, splits: list[str], in_memory: bool = True, with_meta: bool = True) -> SplitData:
    """The rows of ``splits`` concatenated in order (the kit's ``ConcatDataset``), never shuffled."""
    parts, ys, filenames, timestamps = [], [], [], []
    dims = set()
    for split in splits:
        emb, labels, names, times = _split_part(task, split, in_memory, with_meta)
        dims.add(emb.shape[1])
        parts.append(emb)
        ys.append(targets(labels, task, str(task.path / f"{split}.target-labels.pkl")))
        if names is not None:
            filenames += names
            timestamps.append(times)
    if len(dims) > 1:
        raise HearTaskError(f"{task.path}: splits {splits} have different embedding sizes {sorted(dims)}; re-embed")
    return SplitData(Rows(parts), torch.cat(ys), filenames if task.is_event and with_meta else None,
                     np.concatenate(timestamps) if timestamps else None)
