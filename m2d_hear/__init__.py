"""m2d_hear: the Masked Modeling Duo (M2D) audio encoder, its checkpoints, and the HEAR 2021 API.

    >>> import m2d_hear, torch
    >>> model = m2d_hear.load_model("m2d_vit_base-80x608p16x16-221006-mr7/checkpoint-300.pth")
    >>> m2d_hear.get_scene_embeddings(torch.zeros(2, 160000), model).shape
    torch.Size([2, 3840])
"""
from __future__ import annotations

import importlib

# public name -> submodule; imported on first use, so that light submodules (errors, fileio, config) used by the
# command-line tools and worker processes do not pull in torch
_EXPORTS = {
    "CheckpointError": "checkpoint", "read_checkpoint": "checkpoint",
    "ModelConfig": "config", "parse_config_name": "config",
    "get_scene_embeddings": "hear", "get_timestamp_embeddings": "hear", "load_model": "hear",
    "M2D": "runtime", "load_m2d": "runtime",
    "ViTEncoder": "vit",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:   # looked up each time (not cached here), so it is always the submodule's attribute
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
