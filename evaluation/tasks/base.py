"""The task interface shared by every evaluation protocol (linear probe, fine-tuning, mini benchmark).

A task is a list of labelled audio clips with their split (or fold) plus the few protocol facts the
evaluators need: the class vocabulary, single- or multi-label, the metric and the clip length the
protocol crops or pads to. ``TaskData.rounds()`` turns fixed splits or leave-one-fold-out folds into
the train/valid/test rounds an evaluator iterates over. ``TaskData.fingerprint()`` is the task's identity
(what was evaluated, not what it is called): result rows and cached embeddings are keyed by it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from m2d_hear.errors import InputError

SPLITS = ("train", "valid", "test")
METRICS = ("accuracy", "mAP")


class DatasetError(InputError):
    """A dataset is missing, incomplete or malformed. The message is one line naming the path and the fix."""


@dataclass(frozen=True)
class Clip:
    """One labelled audio file."""

    path: Path                 # absolute path of an audio file (decoded by m2d_hear.audio.read_audio)
    labels: tuple[str, ...]    # one label for single-label tasks, zero or more for multi-label
    split: str                 # 'train' | 'valid' | 'test', or a fold name such as 'fold1'

    @property
    def label(self) -> str:
        """The single label of a single-label clip."""
        if len(self.labels) != 1:
            raise ValueError(f"{self.path}: expected exactly one label, got {list(self.labels)}")
        return self.labels[0]


@dataclass
class Round:
    """One train/valid/test evaluation round: a fold of a leave-one-fold-out task, or 'main'."""

    name: str                  # 'fold1'.. or 'main'
    train: list[Clip]
    valid: list[Clip] | None   # None where the task has no validation split (the caller carves one out)
    test: list[Clip]


@dataclass
class TaskData:
    """A task: its clips, label vocabulary and protocol constants."""

    name: str
    clips: list[Clip]
    classes: list[str]         # sorted label vocabulary
    multilabel: bool
    metric: str                # 'accuracy' or 'mAP'
    unit_sec: float            # clip length the protocol crops/pads to
    folds: list[str] | None = None   # fold names for leave-one-fold-out tasks, else None
    source: str = ""           # where the task was read from (a folder or a CSV), for messages and logs
    missing: list[Path] = field(default_factory=list)   # listed files absent (skipped with --skip-missing)
    class_names: dict[str, str] = field(default_factory=dict)   # label -> display name, where the dataset has one
    # Protocol settings the task itself asks for (from a csv task's task.json; empty: the protocols' own):
    probe: dict = field(default_factory=dict)         # LinearProbe parameters, e.g. {"lr": 1e-3, "batch_size": 32}
    finetune: dict = field(default_factory=dict)      # {"recipe": {Recipe fields}, "seeds", "max_rounds", ...}
    table_notes: dict[str, str] = field(default_factory=dict)   # protocol -> a line printed under its result table
    meta_files: list[Path] = field(default_factory=list)   # the metadata files the reader read (lists, CSVs, JSON)
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.metric not in METRICS:
            raise DatasetError(f"task {self.name}: metric must be one of {METRICS}, got {self.metric!r}")
        if not self.classes:
            raise DatasetError(f"task {self.name}: its training clips carry no class label ({len(self.clips)} clips "
                               f"read from {self.source or 'the task'}); label them")
        if not self.multilabel:
            bad = [c for c in self.clips if len(c.labels) != 1]
            if bad:
                raise DatasetError(f"task {self.name}: single-label task but {bad[0].path} has labels "
                                   f"{list(bad[0].labels)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> list[Clip]:
        """The clips of one split or fold, in task order."""
        return [c for c in self.clips if c.split == name]

    def class_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def rounds(self) -> list[Round]:
        """One Round per fold (test = that fold, train = the other folds, no valid) or one 'main' Round."""
        if self.folds:
            return [Round(name=f, train=[c for c in self.clips if c.split != f], valid=None,
                          test=self.split(f)) for f in self.folds]
        train, valid, test = self.split("train"), self.split("valid"), self.split("test")
        if not train or not test:
            raise DatasetError(f"task {self.name}: needs 'train' and 'test' clips, found "
                               f"{len(train)} train / {len(test)} test in {self.source or 'the task'}")
        return [Round(name="main", train=train, valid=valid or None, test=test)]

    def root(self) -> Path:
        """The folder clip paths are taken relative to: ``source`` itself, or its folder when it is a file."""
        base = Path(self.source)
        return base.parent if base.is_file() else base

    def fingerprint(self) -> str:
        """SHA-256 (hex) of what this task evaluates, computed once per instance and cheap (no audio is read).

        It covers the protocol facts (name, metric, multi-label, unit_sec, folds, classes), the content of each
        metadata file in ``meta_files``, and for every clip its path relative to :meth:`root`, labels, split, and
        the audio file's size and modification time (ns). Two tasks with the same name and relative paths but
        other audio, labels or splits therefore differ; the same files read from another location do not, as long
        as their modification times were kept (``cp -r`` without ``-p``, or extracting an archive again, gives
        a new id: the task is evaluated afresh). ``task.json``'s protocol settings are left out
        (:data:`PROTOCOL_SETTINGS`). The mini benchmark stamps a fixed modification time on its clips and lists
        their SHA-256 in ``.done.json``, so one build has one id on every machine.
        """
        if self._fingerprint is None:
            from m2d_hear.fileio import sha256_file

            root = self.root() if self.source else None
            h = hashlib.sha256()
            h.update(json.dumps({"name": self.name, "metric": self.metric, "multilabel": self.multilabel,
                                 "unit_sec": float(self.unit_sec), "folds": self.folds, "classes": self.classes},
                                sort_keys=True).encode())
            for meta in sorted(Path(m) for m in self.meta_files):
                h.update(f"\nmeta\t{relative_path(meta, root)}\t{_meta_digest(meta, sha256_file)}".encode())
            for clip in self.clips:
                try:
                    st = clip.path.stat()
                    stamp = f"{st.st_size}\t{st.st_mtime_ns}"
                except OSError:
                    stamp = "absent"
                h.update(f"\nclip\t{relative_path(clip.path, root)}\t{chr(31).join(clip.labels)}\t{clip.split}\t"
                         f"{stamp}".encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def summary(self) -> str:
        parts = [f"{s}={len(self.split(s))}" for s in (self.folds or SPLITS) if self.split(s)]
        kind = "multi-label" if self.multilabel else "single-label"
        return (f"{self.name}: {len(self.clips)} clips ({', '.join(parts)}), {self.num_classes} classes, "
                f"{kind}, {self.metric}, {self.unit_sec:g} s")


# task.json keys that say how to evaluate a task (the protocol settings, checked on their own), not what it is
PROTOCOL_SETTINGS = ("probe", "finetune", "table_notes")


def _meta_digest(path: Path, sha256_file) -> str:
    """SHA-256 of a metadata file; of a ``task.json``, without its protocol settings, so that rewording a table
    note or changing a recipe does not make the same data a new task."""
    if path.name == "task.json":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict):
            kept = {k: v for k, v in data.items() if k not in PROTOCOL_SETTINGS}
            return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
    return sha256_file(path)


def relative_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` (POSIX separators), or absolute when it lies outside it."""
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()
