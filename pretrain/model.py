"""The M2D pre-training model: online encoder, predictor and EMA target encoder in one module.

It extends :class:`m2d_hear.vit.ViTEncoder` (as the official ``M2DViT`` extends the MAE model), so its state dict
has the official top-level keys: the encoder's ``cls_token, pos_embed, patch_embed.*, blocks.*, norm.*,
norm_stats``, the predictor's ``mask_token, decoder_embed.*, decoder_pos_embed, decoder_blocks.*, decoder_norm.*,
decoder_pred.*`` and the target's ``target_blocks.*, target_norm.*``.

One training example (``m2d_spec.md`` sections 2.5-4):

1. patch tokens + positions; a per-sample random permutation (``argsort`` of uniform noise) splits them into
   ``int(N * (1 - mask_ratio))`` visible tokens and the masked rest;
2. the online encoder (CLS + visible tokens) -> the predictor, which puts the encoded tokens and a shared mask token
   back in place, adds its own positions and predicts the target representation of each masked token;
3. the target encoder (the shared patch embedding, positions and CLS; its own blocks and norm, EMA of the online
   ones, never trained) encodes only the masked tokens, without gradient;
4. loss = mean over masked tokens of ``2 - 2 cos(prediction, standardised target)``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from m2d_hear.errors import InputError
from m2d_hear.pos_embed import sincos_2d
from m2d_hear.vit import VIT_SIZES, Block, LayerNorm, ViTEncoder, init_mae_weights


class MaskedPrediction(NamedTuple):
    prediction: torch.Tensor  # [B, n_masked, D], in the order of ``masked_ids``
    target: torch.Tensor  # [B, n_masked, D], the target encoder's output (not standardised)
    visible_ids: torch.Tensor  # [B, n_visible] token indices (frequency-major) seen by the online encoder
    masked_ids: torch.Tensor  # [B, n_masked] token indices seen by the target encoder


def split_tokens(noise: torch.Tensor, mask_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample unstructured masking: ``argsort(noise)``; the first ``int(N * (1 - r))`` indices stay visible."""
    n_tokens = noise.shape[1]
    n_keep = int(n_tokens * (1 - mask_ratio))
    if not 0 < n_keep < n_tokens:
        raise InputError(f"mask ratio {mask_ratio} leaves {n_keep} of {n_tokens} patches visible; "
                         "it must leave at least one visible and one masked patch")
    order = torch.argsort(noise, dim=1)
    return order[:, :n_keep], order[:, n_keep:]


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``x[b, ids[b]]`` for every sample: ``[B, N, D], [B, K] -> [B, K, D]``."""
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def m2d_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos`` between the prediction and the per-token standardised target (unbiased variance + 1e-6)."""
    prediction, target = prediction.float(), target.float()
    target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + 1e-6).sqrt()
    cos = (F.normalize(prediction, dim=-1) * F.normalize(target, dim=-1)).sum(dim=-1)
    return (2 - 2 * cos).mean()


class M2DPretrainModel(ViTEncoder):
    """Masked Modeling Duo for pre-training. ``forward(lms, noise)`` returns the loss.

    Args:
        input_size, patch_size, embed_dim, depth, num_heads, mlp_ratio: the encoder (see ``ViTEncoder``).
        decoder_dim, decoder_depth, decoder_heads: the predictor (512, 8, 16 in the paper).
        mask_ratio: the default fraction of masked patches (0.7 in the paper).
        norm_stats: (mean, std) of the training log-mels, stored with the weights.
    """

    def __init__(self, input_size=(80, 608), patch_size=(16, 16), embed_dim=768, depth=12, num_heads=12,
                 mlp_ratio=4.0, decoder_dim=512, decoder_depth=8, decoder_heads=16, mask_ratio=0.7,
                 norm_stats: tuple[float, float] | None = None):
        super().__init__(input_size, patch_size, embed_dim, depth, num_heads, mlp_ratio)
        self.mask_ratio = mask_ratio
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_embed = nn.Linear(embed_dim, decoder_dim)
        self.decoder_pos_embed = nn.Parameter(sincos_2d(decoder_dim, self.grid_size), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(decoder_dim, decoder_heads, mlp_ratio) for _ in range(decoder_depth)])
        self.decoder_norm = LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, embed_dim)
        self.target_blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.target_norm = LayerNorm(embed_dim)
        if norm_stats is not None:
            self.norm_stats.data = torch.tensor([float(norm_stats[0]), float(norm_stats[1])])
        self.init_weights()

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    def init_weights(self) -> None:
        """Everything from scratch (section 2.7); the target gets its own random weights, not a copy."""
        super().init_weights()
        nn.init.normal_(self.mask_token, std=0.02)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred,
                       self.target_blocks, self.target_norm):
            module.apply(init_mae_weights)
        for p in self.target_parameters():
            p.requires_grad_(False)

    # ----------------------------------------------------------------------------------------------- target
    def target_parameters(self) -> list[nn.Parameter]:
        return [*self.target_blocks.parameters(), *self.target_norm.parameters()]

    def ema_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(target tensors, online tensors) in matching order: ``target_blocks``/``blocks``, ``target_norm``/``norm``."""
        target = self.target_parameters()
        online = [*self.blocks.parameters(), *self.norm.parameters()]
        return [p.data for p in target], [p.data for p in online]

    @torch.no_grad()
    def update_target(self, decay: float) -> None:
        """``target <- decay * target + (1 - decay) * online`` for the target blocks and norm."""
        target, online = self.ema_pairs()
        torch._foreach_lerp_(target, online, 1.0 - decay)  # = decay * target + (1 - decay) * online, one pass

    # ---------------------------------------------------------------------------------------------- forward
    def predict(self, latent: torch.Tensor, visible_ids: torch.Tensor, masked_ids: torch.Tensor) -> torch.Tensor:
        """Predictor: encoded CLS + visible tokens -> predictions for the masked tokens, ``[B, n_masked, D]``."""
        y = self.decoder_embed(latent)
        batch, n_masked = masked_ids.shape
        ids = torch.cat([visible_ids, masked_ids], dim=1)  # token index of each sequence slot
        tokens = torch.cat([y[:, 1:], self.mask_token.expand(batch, n_masked, -1).to(y.dtype)], dim=1)
        restore = torch.argsort(ids, dim=1)  # back to frequency-major order
        tokens = gather_tokens(tokens, restore)
        y = torch.cat([y[:, :1], tokens], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            y = blk(y)
        y = self.decoder_pred(self.decoder_norm(y))
        return gather_tokens(y[:, 1:], masked_ids)

    def masked_prediction(self, lms: torch.Tensor, noise: torch.Tensor | None = None,
                          mask_ratio: float | None = None, target_lms: torch.Tensor | None = None
                          ) -> MaskedPrediction:
        """Run the three networks on normalised log-mel crops ``[B, 1, F, T]`` (``T`` = the trained width).

        ``noise`` ``[B, N]`` decides the mask (smallest values stay visible); uniform random when None.
        ``target_lms``: what the target encoder encodes instead of ``lms`` (M2D-X's denoising: ``lms`` is the crop
        mixed with background noise, ``target_lms`` the clean crop); the same patches are masked in both.
        """
        x = self.embed(lms)
        if x.shape[1] != self.num_patches:
            raise ValueError(f"pre-training inputs must be {self.input_size[0]}x{self.input_size[1]} crops, "
                             f"got {tuple(lms.shape[-2:])}")
        if noise is None:
            noise = torch.rand(x.shape[:2], device=x.device)
        visible_ids, masked_ids = split_tokens(noise.to(x.device), self.mask_ratio if mask_ratio is None else mask_ratio)
        latent = self.forward_tokens(gather_tokens(x, visible_ids))
        prediction = self.predict(latent, visible_ids, masked_ids)
        with torch.no_grad():
            x_target = x if target_lms is None else self.embed(target_lms)
            target = self.forward_tokens(gather_tokens(x_target, masked_ids), self.target_blocks,
                                         self.target_norm)[:, 1:]
        return MaskedPrediction(prediction, target, visible_ids, masked_ids)

    def forward(self, lms: torch.Tensor, noise: torch.Tensor | None = None,
                mask_ratio: float | None = None, target_lms: torch.Tensor | None = None) -> torch.Tensor:
        """The M2D loss for a batch of normalised log-mel crops (``target_lms``: see :meth:`masked_prediction`)."""
        out = self.masked_prediction(lms, noise, mask_ratio, target_lms)
        return m2d_loss(out.prediction, out.target)

    def encode(self, lms: torch.Tensor) -> torch.Tensor:
        """The online encoder alone (what an exported checkpoint computes): ``[B, 1, F, T] -> [B, N, D]``."""
        return ViTEncoder.forward(self, lms)


def build_pretrain_model(model: str, input_size, patch_size, decoder_dim=512, decoder_depth=8, decoder_heads=16,
                         mask_ratio=0.7, norm_stats=None, embed_dim: int | None = None,
                         depth: int | None = None) -> M2DPretrainModel:
    """``model`` is ``m2d_vit_<tiny|small|base|large>``; ``embed_dim``/``depth`` override its width/depth (a custom
    width uses 64-d heads, which is what ``m2d_hear`` assumes when it loads a width that the name does not give)."""
    size_name = model.rsplit("_", 1)[-1]
    if not model.startswith("m2d_vit_") or size_name not in VIT_SIZES:
        raise InputError(f"unknown model {model!r}; use one of {', '.join('m2d_vit_' + s for s in VIT_SIZES)}")
    size = VIT_SIZES[size_name]
    heads = size.num_heads
    if embed_dim and embed_dim != size.embed_dim:
        if embed_dim % 64:
            raise InputError(f"--embed-dim {embed_dim} must be a multiple of 64 (heads of 64 dimensions)")
        heads = embed_dim // 64
    if decoder_dim % decoder_heads:
        raise InputError(f"--decoder-dim {decoder_dim} is not divisible by --decoder-heads {decoder_heads}")
    return M2DPretrainModel(tuple(input_size), tuple(patch_size), embed_dim or size.embed_dim, depth or size.depth,
                            heads, size.mlp_ratio, decoder_dim, decoder_depth, decoder_heads, mask_ratio, norm_stats)
