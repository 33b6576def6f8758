"""Training checkpoints: the official layout plus what an exact resume needs.

A checkpoint is ``{'model', 'optimizer', 'scaler', 'epoch', 'args'}`` as the official trainer writes it (``epoch``
counts finished epochs; ``args`` is an ``argparse.Namespace``), plus:

- ``iteration``: data iterations done since the start (the EMA schedule position), ``epoch_iteration``: iterations
  done inside ``epoch`` (a mid-epoch checkpoint resumes there), ``step``: optimizer steps done;
- ``rng``: torch, CUDA, numpy and Python generator states;
- ``data``: the number and digest of the training files, to warn when a resume sees another corpus.

Epoch checkpoints are ``checkpoint-<epoch>.pth``; ``checkpoint-last.pth`` is overwritten with mid-epoch states
(periodically, on ``--steps`` and on Ctrl-C). All are written atomically.
"""
from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

import numpy as np
import torch

from m2d_hear.checkpoint import safe_load
from m2d_hear.errors import InputError
from m2d_hear.export import atomic_save

LAST = "checkpoint-last.pth"
FORMAT = "m2d-hear-pretrain/1"
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
    return atomic_save(state, path)


def load_training_state(path: Path) -> dict:
    """Read a full checkpoint written by this trainer (tensors, plain values and the args Namespace only)."""
    try:
        state = safe_load(path)
    except Exception as err:  # noqa: BLE001
        raise ResumeError(f"{path}: cannot read the checkpoint ({type(err).__name__}: {err}); delete it to resume "
                          "from the previous one") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ResumeError(f"{path}: not a checkpoint of 'm2d-pretrain train' (no resume state); "
                          "start a new run in another --out folder")
    return state


def checkpoints_in(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.glob("checkpoint-*.pth") if _EPOCH_FILE.match(p.name) or p.name == LAST)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint of ``run_dir`` that is furthest into training (by its iteration count)."""
    best, best_key = None, None
    for path in checkpoints_in(run_dir):
        try:
            meta = safe_load(path, mmap=True)
        except Exception:  # noqa: BLE001 - a broken file is skipped; an older checkpoint is used
            continue
        key = (meta.get("iteration", -1), path.name != LAST)
        if best_key is None or key > best_key:
            best, best_key = path, key
    return best
