"""Writing encoder weights in the official layouts, so the official runtime and ours both read them."""
from __future__ import annotations

from pathlib import Path

import torch

from .config import ModelConfig
from .fileio import torch_save
from .vit import ViTEncoder, ViTSize, build_encoder


def encoder_state(encoder: ViTEncoder, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The encoder-only state dict (``cls_token``, ``pos_embed``, ``norm_stats``, ``patch_embed``, ``blocks``,
    ``norm``), as the official ``to_encoder_only_weight.py`` writes it; ``dtype`` casts floating tensors."""
    state = {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() and k != "norm_stats" else v for k, v in state.items()}
    return state


def atomic_save(obj, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename: a killed write never leaves half a file,
    a failed one leaves no temporary file and names ``path`` (:func:`m2d_hear.fileio.torch_save`)."""
    return torch_save(obj, path)


def random_encoder(config: ModelConfig, size: ViTSize, seed: int = 0) -> ViTEncoder:
    """A randomly initialised encoder (the M2D/MAE initialisation), e.g. for a random-weights baseline."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        encoder = build_encoder(config.input_size, config.patch_size, size)
        encoder.init_weights()
    finally:
        torch.random.set_rng_state(generator_state)
    return encoder


def save_encoder_only(encoder: ViTEncoder, path: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write an encoder-only weight file (a bare state dict) atomically."""
    return atomic_save(encoder_state(encoder, dtype), path)
