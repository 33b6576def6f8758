"""Device choice and process-group set-up, shared by pre-training and evaluation (the only copy in the project).

- :func:`resolve_device` turns a ``--device`` value into a ``torch.device``: ``'auto'`` (CUDA when available,
  else CPU), ``'cpu'``, ``'cuda'`` (this process's GPU: ``LOCAL_RANK`` under ``torchrun``, else 0) or ``'cuda:N'``.
  Asking for CUDA where PyTorch sees none is an :class:`~m2d_hear.errors.InputError` with a one-line message.
- :func:`init_distributed` joins the ``torchrun`` process group once per process (NCCL on GPUs, gloo on CPU) and
  returns this process's :class:`DistEnv`; without ``torchrun`` it is a single process (rank 0 of 1).
- The collectives (:func:`broadcast_object`, :func:`all_gather_cat`, :func:`gather_objects`,
  :func:`mean_over_processes`, :func:`barrier`, :func:`shutdown`) are no-ops for a single process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import InputError


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def local_rank() -> int:
    """This process's GPU slot on its node (``LOCAL_RANK`` set by ``torchrun``; 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def resolve_device(device: str | torch.device | None = "auto", option: str = "--device") -> torch.device:
    """``'auto'`` (or None / '') -> this process's GPU when CUDA is available, else CPU; ``'cpu'``; ``'cuda'`` ->
    this process's GPU (``LOCAL_RANK``); ``'cuda:N'`` -> GPU N. ``option`` names the setting in error messages."""
    if device is None or (isinstance(device, str) and device.strip() in ("", "auto")):
        return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError):
        raise InputError(f"{option} {device!r}: not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{option} {device}: no CUDA device is visible to PyTorch; use {option} cpu")
        if dev.index is None:
            dev = torch.device("cuda", local_rank())
        elif launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
            # every process would take GPU N; under torchrun each process has its own (LOCAL_RANK)
            raise InputError(f"{option} {device}: under torchrun each process uses its own GPU; give {option} "
                             "cuda (or auto), and choose the GPUs with CUDA_VISIBLE_DEVICES")
    return dev


def init_distributed(device: str | torch.device | None = "auto") -> DistEnv:
    """This process's place and device. Under ``torchrun`` with more than one process, join the process group
    (once per process; NCCL on GPUs, gloo on CPU); otherwise a single process. A group that is already initialised
    (by an earlier call or by the caller) is used as it is."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if dist.is_available() and dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), local_rank(), dev)
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistEnv(device=dev)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistEnv(rank, world, local_rank(), dev)


def dist_info() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# ------------------------------------------------------------------------------------------------ collectives
def broadcast_object(obj, env: DistEnv):
    """Rank 0's ``obj`` on every process."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=env.device if env.device.type == "cuda" else None)
    return box[0]


def all_gather_cat(x: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Concatenate equally shaped tensors of all processes along dim 0 (rank order)."""
    if not env.distributed:
        return x
    parts = [torch.empty_like(x) for _ in range(env.world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_objects(obj, env: DistEnv) -> list:
    """Every process's ``obj``, in rank order, on every process."""
    if not env.distributed:
        return [obj]
    out = [None] * env.world
    dist.all_gather_object(out, obj)
    return out


def mean_over_processes(value: float, env: DistEnv) -> float:
    if not env.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return float(t.item()) / env.world


def barrier(env: DistEnv | None = None) -> None:
    """Wait for every process of ``env`` (default: of the initialised group, if any)."""
    if (env is None or env.distributed) and dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown(env: DistEnv) -> None:
    if env.distributed and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
