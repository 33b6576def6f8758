"""The fine-tuning network: M2D encoder (trainable) + clip pooling + BatchNorm/Linear head.

- Clip feature: the time mean of the frequency-stacked frame features (``F' x D``, 3840-d for ViT-Base 16x16), or,
  with structured token masking, the mean of all (kept) patch tokens (``D``, 768-d): the official "flat features".
- Head: ``BatchNorm1d(affine=False)`` then ``Linear`` initialised N(0, 0.01) with zero bias (EVAR's ``TaskHead``).
  In a multi-process run the batch statistics are those of the global batch (:class:`GlobalBatchNorm1d`).
- Input length: with ``dur_frames`` the positional table is re-gridded once (bicubic when longer than the
  pre-training width, trimmed when shorter) and each clip is encoded as one sequence; without it, clips are encoded
  in chunks of the trained width, as at inference.

The model takes normalised log-mel spectrograms; :meth:`FineTuneModel.normalized_lms` makes them from waveforms, and
the trainer applies the spectrogram augmentations in between.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from m2d_hear.checkpoint import build_encoder_from, read_checkpoint
from m2d_hear.config import ModelConfig
from m2d_hear.frontend import FRONT_ENDS, LogMelSpectrogram
from m2d_hear.vit import ViTEncoder

from .augment import StepRandom, structured_token_mask

# Key prefixes of an EVAR fine-tuned state dict (what the official runtime and m2d_hear.load_m2d read).
EVAR_BACKBONE = "module.ar.runtime.backbone."
EVAR_HEAD_NORM = "module.head.norm."
EVAR_HEAD_LINEAR = "module.head.mlp.mlp.0."


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` whose training statistics span all processes of a distributed run.

    torch's ``SyncBatchNorm`` refuses CPU tensors; this one all-reduces sums with autograd, so a run of N processes
    with batch B/N each normalises exactly like one process with batch B (and updates the running statistics the
    same way: biased variance to normalise, unbiased variance for the running estimate).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        count = torch.tensor([float(x.shape[0])], device=x.device, dtype=x.dtype)
        stats = torch.cat([x.sum(0), (x * x).sum(0), count])
        stats = all_reduce(stats)
        d = x.shape[1]
        n = stats[-1]
        mean = stats[:d] / n
        var = (stats[d:2 * d] / n - mean * mean).clamp_min(0)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / max(float(n) - 1, 1.0))
        out = (x - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        return out


class TaskHead(nn.Module):
    """BatchNorm1d without affine parameters, then a Linear layer initialised N(0, 0.01), bias 0."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = GlobalBatchNorm1d(dim, affine=False)
        self.linear = nn.Linear(dim, num_classes)
        nn.init.normal_(self.linear.weight, mean=0.0, std=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


class FineTuneModel(nn.Module):
    """Encoder + head for fine-tuning.

    Args:
        encoder: the (pre-trained) ViT encoder; fully trainable except ``pos_embed``/``norm_stats``.
        config: its model configuration (front end, patch size).
        num_classes: output logits.
        dur_frames: encode each clip as one sequence of this many frames (positional table re-gridded), or None
            for chunked encoding at the trained width.
        token_mask: ratio of structured token masking in training (0 disables); implies flat features.
        token_mask_variant: ``'rows_cols'`` or ``'official'`` (see :func:`augment.structured_token_mask`).
        flat_features: mean of all tokens (D) instead of the time mean of frequency-stacked frames (F' x D).
        freeze_embed: freeze the patch embedding (the ESC-50 recipe).
    """

    def __init__(self, encoder: ViTEncoder, config: ModelConfig, num_classes: int, dur_frames: int | None = None,
                 token_mask: float = 0.0, token_mask_variant: str = "rows_cols", flat_features: bool = False,
                 freeze_embed: bool = False):
        super().__init__()
        self.config = config
        self.frontend = LogMelSpectrogram(FRONT_ENDS[config.sr])
        self.encoder = encoder
        if dur_frames:
            encoder.resize_pos_embed(dur_frames)
        self.dur_frames = dur_frames
        self.token_mask = float(token_mask)
        self.token_mask_variant = token_mask_variant
        self.flat_features = bool(flat_features or token_mask > 0)
        if freeze_embed:
            for p in encoder.patch_embed.parameters():
                p.requires_grad_(False)
        self.freeze_embed = freeze_embed
        n_freq = encoder.num_freq_patches
        self.feature_dim = encoder.embed_dim if self.flat_features else encoder.embed_dim * n_freq
        self.head = TaskHead(self.feature_dim, num_classes)

    # ------------------------------------------------------------------------------------------ front end
    @torch.no_grad()
    def normalized_lms(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, samples]`` -> ``[B, 1, 80, frames]`` log-mel normalised by the encoder's ``norm_stats``."""
        mean, std = self.encoder.norm_stats
        return (self.frontend(audio.float()) - mean) / std

    # ------------------------------------------------------------------------------------------- features
    def _encode_chunk(self, chunk: torch.Tensor, rand: StepRandom | None) -> torch.Tensor:
        enc = self.encoder
        tokens = enc.embed(chunk)  # [B, F'*t, D] with positions
        n_freq = enc.num_freq_patches
        n_time = tokens.shape[1] // n_freq
        if self.training and self.token_mask > 0 and rand is not None:
            keep = structured_token_mask((n_freq, n_time), self.token_mask, rand, self.token_mask_variant)
            keep = keep.to(tokens.device)
            tokens = torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        out = enc.forward_tokens(tokens)[:, 1:]
        if self.flat_features:
            return out
        b, _, d = out.shape
        return out.reshape(b, n_freq, n_time, d).permute(0, 2, 1, 3).reshape(b, n_time, n_freq * d)

    def features(self, lms: torch.Tensor, rand: StepRandom | None = None) -> torch.Tensor:
        """Normalised log-mel ``[B, 1, F, T]`` -> clip features ``[B, feature_dim]``.

        ``rand`` supplies the token-mask draws in training (ignored in eval mode).
        """
        unit = self.encoder.input_size[1]
        patch_t = self.encoder.patch_size[1]
        frames = lms.shape[-1]
        n_chunks = math.ceil(frames / unit)
        pad = (patch_t - frames % unit % patch_t) % patch_t
        if pad:
            lms = nn.functional.pad(lms, (0, pad))
        outs = [self._encode_chunk(lms[..., i * unit:(i + 1) * unit], rand) for i in range(n_chunks)]
        x = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        return x.mean(dim=1)

    def forward(self, lms: torch.Tensor, rand: StepRandom | None = None) -> torch.Tensor:
        """Normalised log-mel -> logits."""
        return self.head(self.features(lms, rand))

    # ----------------------------------------------------------------------------------------- state I/O
    def evar_state(self) -> dict[str, torch.Tensor]:
        """The state dict in the EVAR fine-tuned layout (readable by ``m2d_hear.load_m2d`` and the official code)."""
        out = {}
        for key, value in self.state_dict().items():
            value = value.detach().cpu().clone()
            if key.startswith("encoder."):
                out[EVAR_BACKBONE + key[len("encoder."):]] = value
            elif key.startswith("head.norm."):
                out[EVAR_HEAD_NORM + key[len("head.norm."):]] = value
            elif key.startswith("head.linear."):
                out[EVAR_HEAD_LINEAR + key[len("head.linear."):]] = value
        return out

    def load_evar_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`evar_state` (strict)."""
        mapped = {}
        for key, value in state.items():
            for prefix, ours in ((EVAR_BACKBONE, "encoder."), (EVAR_HEAD_NORM, "head.norm."),
                                 (EVAR_HEAD_LINEAR, "head.linear.")):
                if key.startswith(prefix):
                    mapped[ours + key[len(prefix):]] = value
                    break
        self.load_state_dict(mapped, strict=True)

    def export_config(self) -> ModelConfig:
        """The configuration that describes this model's positional grid (for the export folder name)."""
        return self.config.with_(input_size=tuple(self.encoder.input_size))

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]


def build_model(weights: str, num_classes: int, dur_frames: int | None = None, token_mask: float = 0.0,
                token_mask_variant: str = "rows_cols", freeze_embed: bool = False, flat_features: bool = False,
                config: str | ModelConfig | None = None, trust_checkpoint: bool = False) -> FineTuneModel:
    """Read a weight file (any format ``m2d_hear`` reads) and put a fresh head on its encoder;
    ``trust_checkpoint`` admits a file that needs full unpickling (see :mod:`m2d_hear.checkpoint`)."""
    ckpt = read_checkpoint(weights, config, trust_checkpoint)
    encoder = build_encoder_from(ckpt)
    return FineTuneModel(encoder, ckpt.config, num_classes, dur_frames=dur_frames, token_mask=token_mask,
                         token_mask_variant=token_mask_variant, flat_features=flat_features,
                         freeze_embed=freeze_embed)
