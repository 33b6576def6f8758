"""Reference encoders to evaluate beside a checkpoint: a randomly initialised encoder of the same shape."""
from __future__ import annotations

from pathlib import Path

from m2d_hear.checkpoint import read_checkpoint
from m2d_hear.export import random_encoder, save_encoder_only


def random_init_twin(weights: str | Path, folder: str | Path, seed: int = 0, trust_checkpoint: bool = False) -> Path:
    """Write (once) an encoder with the M2D random initialisation and the same configuration and size as
    ``weights``, in the official layout: ``folder/<model>-<FxT>p<patch>-random-init-s<seed>/weights_ep0.pth``."""
    ckpt = read_checkpoint(weights, trust_checkpoint=trust_checkpoint)
    name = ckpt.config.folder_name(f"random-init-s{seed}")
    path = Path(folder) / name / "weights_ep0.pth"
    if not path.is_file():
        save_encoder_only(random_encoder(ckpt.config, ckpt.vit_size, seed=seed), path)
    return path
