"""m2d_hear: the Masked Modeling Duo (M2D) audio encoder, its checkpoints, and the HEAR 2021 API.

    >>> import m2d_hear, torch
    >>> model = m2d_hear.load_model("m2d_vit_base-80x608p16x16-221006-mr7/checkpoint-300.pth")
    >>> m2d_hear.get_scene_embeddings(torch.zeros(2, 160000), model).shape
    torch.Size([2, 3840])
"""
from .checkpoint import CheckpointError, read_checkpoint
from .config import ModelConfig, parse_config_name
from .hear import get_scene_embeddings, get_timestamp_embeddings, load_model
from .runtime import M2D, load_m2d
from .vit import ViTEncoder

__all__ = [
    "M2D", "CheckpointError", "ModelConfig", "ViTEncoder", "get_scene_embeddings", "get_timestamp_embeddings",
    "load_m2d", "load_model", "parse_config_name", "read_checkpoint",
]
__version__ = "0.1.0"
