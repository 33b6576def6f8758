"""Audio projectors of the M2D-CLAP checkpoints (kept so CLAP audio embeddings can be computed)."""
from __future__ import annotations

import torch
from torch import nn

from .vit import Block


def mlp_projector(dim: int, hidden: int, out: int) -> nn.Sequential:
    """``audio_proj.0`` / ``audio_proj.2``: Linear -> ReLU -> Linear (the 2024 M2D-CLAP)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))


class SemanticProjector(nn.Module):
    """The 2025 M2D-CLAP projector: a learnt query token attends over the frame features.

    Keys: ``sem_token``, ``sem_blocks.N.*`` (single-head blocks, LayerNorm eps 1e-5) and ``norm``.
    """

    pools_itself = True

    def __init__(self, dim: int, depth: int, mlp_ratio: float):
        super().__init__()
        self.sem_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.sem_blocks = nn.ModuleList([Block(dim, 1, mlp_ratio, norm_layer=nn.LayerNorm) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.sem_token.expand(x.shape[0], -1, -1), x], dim=1)
        for blk in self.sem_blocks:
            x = blk(x)
        return self.norm(x[:, 0])


def projector_from_state(state: dict[str, torch.Tensor]) -> nn.Module | None:
    """Build the audio projector whose ``audio_proj.*`` keys are in ``state`` (None when there are none)."""
    if "audio_proj.0.weight" in state:
        hidden, dim = state["audio_proj.0.weight"].shape
        return mlp_projector(dim, hidden, state["audio_proj.2.weight"].shape[0])
    if "audio_proj.sem_token" in state:
        dim = state["audio_proj.sem_token"].shape[-1]
        depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("audio_proj.sem_blocks."))
        ratio = state["audio_proj.sem_blocks.0.mlp.fc1.weight"].shape[0] / dim
        return SemanticProjector(dim, depth, ratio)
    return None
