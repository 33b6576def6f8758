"""Process-group helpers: one process, or several under ``torchrun`` (DDP; NCCL on GPUs, gloo on CPU)."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from m2d_hear.distributed import DistEnv
from m2d_hear.errors import InputError


def pick_device(device: str | None) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device is available here; use --device cpu")
    return dev


def setup(device: str | None = None) -> DistEnv:
    """Join the ``torchrun`` process group when ``WORLD_SIZE > 1`` (once per process), else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = pick_device(device)
    if world <= 1:
        return DistEnv(device=dev)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, local_rank, dev)


def all_gather_cat(x: torch.Tensor, info: DistEnv) -> torch.Tensor:
    """Concatenate equally shaped tensors of all processes along dim 0 (rank order)."""
    if not info.distributed:
        return x
    parts = [torch.empty_like(x) for _ in range(info.world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_objects(obj, info: DistEnv) -> list:
    if not info.distributed:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, info: DistEnv):
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistEnv) -> None:
    if info.distributed:
        dist.barrier()
