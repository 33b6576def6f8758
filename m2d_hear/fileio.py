"""Writing files so that a reader never sees half of one, and so that concurrent writers lose nothing.

- :func:`atomic_path` yields a temporary path beside the target; the target is replaced only if the block
  succeeds, and the temporary file is removed otherwise (a killed or failed write leaves the old file, never an
  empty or partial one).
- :func:`write_bytes`, :func:`write_text`, :func:`write_json`, :func:`write_pickle`, :func:`write_csv` (a pandas
  frame), :func:`save_npy` and :func:`torch_save` are the everyday forms of it; anything else (a memory map, a
  sound file) is written to the path :func:`atomic_path` yields. This is the project's only temporary-file-then-
  rename code (``tests/test_one_house.py`` keeps it so).
- :func:`locked` holds an exclusive inter-process lock (``<file>.lock``, via the ``filelock`` package) for a
  read-modify-write of a shared file such as ``scores.csv``: re-read the file under the lock, then write it.
- :func:`sha256_file` is the content hash that identifies a file (weights, for result keys and caches), memoised
  per (path, inode, size, mtime, ctime) so a large file is read once per process.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator

from filelock import FileLock


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder; on success it replaces ``path``, on any error it is deleted.

    An ``OSError`` of the write (a read-only folder, a full disk) names ``path``, not the temporary file, so that
    :func:`m2d_hear.errors.user_message` tells the user which output failed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is None or str(err.filename) == str(tmp):
            err.filename = str(path)
        raise
    finally:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def write_pickle(path: str | Path, obj) -> Path:
    import pickle

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(obj, f)
    return Path(path)


def write_csv(path: str | Path, frame, **kwargs) -> Path:
    """A pandas DataFrame as CSV (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def save_npy(path: str | Path, array) -> Path:
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
    return Path(path)


class _RecordingWriter:
    """A file for ``torch.save`` that keeps the ``OSError`` of a failed write: torch reports a full disk as a bare
    ``RuntimeError`` ("unexpected pos ..."), which says nothing of the cause."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data):
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self):
        return self.file.flush()


def torch_save(obj, path: str | Path) -> Path:
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            writer = _RecordingWriter(f)
            try:
                torch.save(obj, writer)
            except RuntimeError:
                if writer.error is not None:
                    raise writer.error from None
                raise
    return Path(path)


@contextmanager
def locked(path: str | Path, timeout: float = 600.0) -> Iterator[Path]:
    """Hold the exclusive lock of ``path`` (a ``<name>.lock`` file beside it) across processes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(path.name + ".lock")), timeout=timeout):
        yield path


_SHA256: dict[tuple, str] = {}


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's content; memoised while the file's path, inode, size, mtime and ctime stay the same."""
    path = Path(path)
    st = path.stat()
    memo = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if memo not in _SHA256:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA256[memo] = h.hexdigest()
    return _SHA256[memo]
