"""Training checkpoints: the official layout plus what an exact resume needs.

A checkpoint is ``{'model', 'optimizer', 'scaler', 'epoch', 'args'}`` as the official trainer writes it (``epoch``
counts finished epochs; ``args`` is an ``argparse.Namespace``), plus:

- ``iteration``: data iterations done since the start (the EMA schedule position), ``epoch_iteration``: iterations
  done inside ``epoch`` (a mid-epoch checkpoint resumes there), ``step``: optimizer steps done;
- ``rng``: torch, CUDA, numpy and Python generator states;
- ``data``: the number and digest of the training files, to warn when a resume sees another corpus.

Epoch checkpoints are ``checkpoint-<epoch>.pth``; ``checkpoint-last.pth`` is overwritten with mid-epoch states
(periodically, on ``--steps`` and on Ctrl-C). All are written atomically (:mod:`m2d_hear.fileio`). A resume never
passes over a damaged checkpoint silently (:func:`resume_point`).
"""
from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from m2d_hear.checkpoint import safe_load
from m2d_hear.errors import InputError
from m2d_hear.fileio import torch_save

LAST = "checkpoint-last.pth"
FORMAT = "m2d-hear-pretrain/2"     # /2: args.batch_size is the global batch (it was per process in /1)
FORMATS = ("m2d-hear-pretrain/1", FORMAT)
_EPOCH_FILE = re.compile(r"^checkpoint-(\d+)\.pth$")


class ResumeError(InputError):
    """No usable checkpoint to resume from."""


def rng_state() -> dict:
    """Generator states as tensors and plain Python values, so the checkpoint loads with ``weights_only=True``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.random.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.random.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def epoch_checkpoint(run_dir: Path, epoch: int) -> Path:
    return run_dir / f"checkpoint-{epoch}.pth"


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer, scaler, args: argparse.Namespace, *,
                    epoch: int, epoch_iteration: int, iteration: int, step: int, data: dict) -> Path:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        "args": args,
        "epoch_iteration": epoch_iteration,
        "iteration": iteration,
        "step": step,
        "rng": rng_state(),
        "data": data,
        "format": FORMAT,
    }
    return torch_save(state, path)


class DamagedCheckpoint(ResumeError):
    """A checkpoint file that cannot be read (truncated, overwritten, not a torch file)."""


def _read(path: Path, **kwargs) -> dict:
    try:
        state = safe_load(path, **kwargs)
    except Exception as err:  # noqa: BLE001 - whatever torch says, the file cannot be resumed from
        text = str(err).strip()
        reason = text.splitlines()[0].split(". ")[0][:200] if text else type(err).__name__  # torch's first sentence
        raise DamagedCheckpoint(f"{path}: damaged checkpoint, cannot be read ({reason})") from None
    if not isinstance(state, dict):
        raise DamagedCheckpoint(f"{path}: damaged checkpoint, holds a {type(state).__name__} instead of a training "
                                "state")
    return state


def load_training_state(path: Path) -> dict:
    """Read a full checkpoint written by this trainer (tensors, plain values and the args Namespace only); raises
    :class:`DamagedCheckpoint` for a file that cannot be read, :class:`ResumeError` for another program's file."""
    state = _read(path)
    if state.get("format") not in FORMATS:
        raise ResumeError(f"{path}: not a checkpoint of 'm2d-pretrain train' (no resume state); "
                          "start a new run in another --out folder")
    return state


def checkpoints_in(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.glob("checkpoint-*.pth") if _EPOCH_FILE.match(p.name) or p.name == LAST)


@dataclass
class ResumePoint:
    """Where a run continues: the newest readable checkpoint, and the damaged files passed over on the way."""

    path: Path
    state: dict
    damaged_newer: list[tuple[Path, str]] = field(default_factory=list)   # may have held later training
    damaged_older: list[tuple[Path, str]] = field(default_factory=list)   # epoch checkpoints before ``path``


def resume_point(run_dir: Path) -> ResumePoint | None:
    """The checkpoint of ``run_dir`` that is furthest into training (by its iteration count), fully read, or None
    when there is none. A damaged file is never skipped silently: it is listed in ``damaged_newer`` unless it is an
    epoch checkpoint that the chosen one has passed (``damaged_older``); the caller decides whether to go on. Raises
    :class:`DamagedCheckpoint` when no checkpoint can be read."""
    readable, damaged = [], []
    for path in checkpoints_in(run_dir):
        try:
            meta = _read(path, mmap=True)
        except DamagedCheckpoint as err:
            damaged.append((path, str(err)))
            continue
        readable.append(((meta.get("iteration", -1), path.name != LAST), path))
    for _, path in sorted(readable, key=lambda item: item[0], reverse=True):
        try:
            state = load_training_state(path)
        except DamagedCheckpoint as err:
            damaged.append((path, str(err)))
            continue
        point = ResumePoint(path, state)
        for bad, reason in damaged:
            match = _EPOCH_FILE.match(bad.name)
            older = match is not None and int(match.group(1)) <= state["epoch"]
            (point.damaged_older if older else point.damaged_newer).append((bad, reason))
        return point
    if damaged:
        raise DamagedCheckpoint(f"{damaged[0][1]}; no other checkpoint of {run_dir} can be read either: restore "
                                "it, or start a new run in another --out folder")
    return None
