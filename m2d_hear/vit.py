"""The M2D Vision Transformer encoder for log-mel spectrograms.

Parameter names follow timm's ``VisionTransformer`` (``patch_embed.proj``, ``blocks.N.attn.qkv`` ...) so the
official checkpoints load as they are. Unlike timm, the encoder owns an unchecked patch embedding (any input width
works), keeps tokens in frequency-major order (token ``n = f * T' + t``), and truncates its positional table for
inputs narrower than the trained width, as the official runtime does.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .pos_embed import sincos_2d

LayerNorm = partial(nn.LayerNorm, eps=1e-6)

DEFAULT_NORM_STATS = (-7.1, 4.2)  # dataset mean/std of AudioSet log-mels, used by the 2022 official weights


@dataclass(frozen=True)
class ViTSize:
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0


# Standard ViT widths; every one keeps a head dimension of 64.
VIT_SIZES = {
    "tiny": ViTSize(192, 12, 3),
    "small": ViTSize(384, 12, 6),
    "base": ViTSize(768, 12, 12),
    "large": ViTSize(1024, 24, 16),
}


def size_from_model_name(model_cls: str) -> ViTSize | None:
    """``m2d_vit_base`` -> base, ``m2d_as_vit_small`` -> small; None for unknown names."""
    for name, size in VIT_SIZES.items():
        if model_cls.endswith(f"vit_{name}"):
            return size
    return None


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided convolution; ``[B, 1, F, T] -> [B, F'*T', D]`` frequency-major."""

    def __init__(self, patch_size: tuple[int, int], embed_dim: int, in_chans: int = 1):
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection (q, k, v order, split per head)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dimension {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (timm ``Block`` layout, no LayerScale or drop-path)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, norm_layer=LayerNorm):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_mae_weights(module: nn.Module) -> None:
    """MAE/M2D initialisation: xavier-uniform Linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class ViTEncoder(nn.Module):
    """The M2D online encoder.

    Args:
        input_size: (mel bins, frames) of one trained chunk, e.g. (80, 608).
        patch_size: (frequency, time) patch size, e.g. (16, 16), (16, 4) or (80, 2).
        embed_dim, depth, num_heads, mlp_ratio: the transformer's shape.
    """

    def __init__(self, input_size=(80, 608), patch_size=(16, 16), embed_dim=768, depth=12, num_heads=12,
                 mlp_ratio=4.0):
        super().__init__()
        self.input_size = tuple(input_size)
        self.patch_size = tuple(patch_size)
        self.grid_size = (self.input_size[0] // self.patch_size[0], self.input_size[1] // self.patch_size[1])
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(self.patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(sincos_2d(embed_dim, self.grid_size), requires_grad=False)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = LayerNorm(embed_dim)
        self.norm_stats = nn.Parameter(torch.tensor(DEFAULT_NORM_STATS), requires_grad=False)

    @property
    def num_freq_patches(self) -> int:
        return self.grid_size[0]

    def init_weights(self) -> None:
        """Random initialisation for pre-training from scratch (the MAE/M2D scheme)."""
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        self.blocks.apply(init_mae_weights)
        self.norm.apply(init_mae_weights)

    def pos_embed_for(self, n_tokens: int) -> torch.Tensor:
        """Positional rows (without CLS) for ``n_tokens`` patches; truncated in time for a narrow input."""
        pos = self.pos_embed[:, 1:]
        if n_tokens == pos.shape[1]:
            return pos
        n_freq = self.grid_size[0]
        frames = n_tokens // n_freq
        if n_tokens % n_freq or frames > self.grid_size[1]:
            raise ValueError(f"{n_tokens} patches do not fit the trained grid {self.grid_size} (frequency x time); "
                             f"inputs must have {self.input_size[0]} mel bins and at most {self.input_size[1]} frames")
        return pos.reshape(1, n_freq, self.grid_size[1], -1)[:, :, :frames].reshape(1, n_freq * frames, -1)

    def embed(self, lms: torch.Tensor) -> torch.Tensor:
        """Patch tokens plus positions, ``[B, 1, F, T] -> [B, F'*T', D]``, without CLS."""
        x = self.patch_embed(lms)
        return x + self.pos_embed_for(x.shape[1])

    def forward_tokens(self, x: torch.Tensor, blocks: nn.ModuleList | None = None,
                       norm: nn.Module | None = None) -> torch.Tensor:
        """Prepend CLS to embedded tokens, run the blocks and the final norm; returns ``[B, 1 + N, D]``.

        ``blocks`` and ``norm`` default to this encoder's; the pre-training target encoder passes its own.
        """
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in (self.blocks if blocks is None else blocks):
            x = blk(x)
        return (self.norm if norm is None else norm)(x)

    def forward(self, lms: torch.Tensor) -> torch.Tensor:
        """Encode normalised log-mel chunks ``[B, 1, F, T<=trained width]`` into patch features ``[B, N, D]``."""
        return self.forward_tokens(self.embed(lms))[:, 1:]

    def resize_pos_embed(self, frames: int) -> None:
        """Re-grid the positional table for inputs of ``frames`` frames (bicubic in time, for fine-tuning)."""
        new_time = frames // self.patch_size[1]
        if new_time == self.grid_size[1]:
            return
        n_freq, old_time = self.grid_size
        pos = self.pos_embed.data
        grid = pos[:, 1:].reshape(1, n_freq, old_time, -1).permute(0, 3, 1, 2)
        if new_time < old_time:
            grid = grid[..., :new_time]
        else:
            grid = F.interpolate(grid, size=(n_freq, new_time), mode="bicubic", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, n_freq * new_time, -1)
        self.pos_embed = nn.Parameter(torch.cat([pos[:, :1], grid], dim=1), requires_grad=False)
        self.input_size = (self.input_size[0], frames)
        self.grid_size = (n_freq, new_time)


def build_encoder(input_size, patch_size, size: ViTSize) -> ViTEncoder:
    return ViTEncoder(input_size, patch_size, size.embed_dim, size.depth, size.num_heads, size.mlp_ratio)

