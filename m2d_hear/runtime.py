"""The M2D inference runtime: audio -> log-mel -> chunked ViT encoding -> frame and clip embeddings.

Encoding follows the official portable runtime exactly:

1. log-mel (``frontend``), normalised with the checkpoint's scalar ``norm_stats``;
2. zero-pad the *normalised* spectrogram on the right to a multiple of the patch width only;
3. cut it into independent chunks of the trained width (the last may be shorter and then uses the truncated
   positional table); each chunk gets its own CLS token, which is dropped from the output;
4. per chunk, concatenate the frequency tokens of each time step (``b (f t) d -> b t (f d)``), then concatenate the
   chunks in time. A clip embedding is the mean over frames.

All full-width chunks of all clips in a batch go through the encoder together (bounded by ``max_chunks``), then
the short last chunks of all clips together.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from .audio import check_waveform
from .checkpoint import Checkpoint, build_encoder_from, read_checkpoint
from .clap import projector_from_state
from .config import ModelConfig
from .errors import InputError
from .frontend import FRONT_ENDS, LogMelSpectrogram
from .vit import ViTEncoder


def frequency_concat(tokens: torch.Tensor, n_freq: int) -> torch.Tensor:
    """Encoder tokens ``[N, n_freq * t, D]`` (frequency-major) -> frames ``[N, t, n_freq * D]``: the frequency
    patches of each time step concatenated, as the official runtime arranges its features."""
    n, _, d = tokens.shape
    return tokens.reshape(n, n_freq, -1, d).permute(0, 2, 1, 3).reshape(n, -1, n_freq * d)


class M2D(nn.Module):
    """An M2D encoder with its front end; also a HEAR 2021 model (``sample_rate``, embedding sizes).

    Args:
        encoder: the ViT encoder (holding ``norm_stats``).
        config: the model configuration (chunk width, patch size, sample rate).
        flat_features: return all tokens (``[B, N, D]``) instead of frequency-stacked frames; used by CLAP and
            models fine-tuned with structured token masking.
        max_chunks: at most this many chunks per encoder pass, which bounds memory for long audio.
    """

    def __init__(self, encoder: ViTEncoder, config: ModelConfig, flat_features: bool = False, max_chunks: int = 64,
                 audio_proj: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.frontend = LogMelSpectrogram(FRONT_ENDS[config.sr])
        self.encoder = encoder
        self.flat_features = flat_features
        self.max_chunks = max_chunks
        self.audio_proj = audio_proj
        self.timestamp_hop_ms: float | None = None
        # Opt-in reduced precision for the transformer (e.g. torch.bfloat16 on a GPU); the front end stays fp32.
        self.autocast_dtype: torch.dtype | None = None
        self.sample_rate = config.sample_rate
        dim = encoder.embed_dim
        self.scene_embedding_size = dim if flat_features else dim * encoder.num_freq_patches
        self.timestamp_embedding_size = self.scene_embedding_size

    # ----------------------------------------------------------------------------------------------- front end
    @property
    def norm_stats(self) -> tuple[float, float]:
        mean, std = self.encoder.norm_stats.tolist()
        return mean, std

    def check_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """The input check shared by every audio entry point (see :func:`m2d_hear.audio.check_waveform`): a float
        ``[B, samples]`` tensor on the model's device, finite; returned as float32; warns once if not in [-1, 1]."""
        return check_waveform(audio, self.encoder.norm_stats.device)

    def to_normalized_lms(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, samples] -> [B, 1, 80, frames]`` log-mel normalised by the model's statistics."""
        audio = self.check_audio(audio)
        mean, std = self.encoder.norm_stats
        return (self.frontend(audio) - mean) / std

    # ------------------------------------------------------------------------------------------------- encoder
    def _encode_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        """``[N, 1, F, w] -> [N, tokens, D]`` in passes of at most ``max_chunks``."""
        with torch.autocast(chunks.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            parts = [self.encoder(chunks[i:i + self.max_chunks]) for i in range(0, len(chunks), self.max_chunks)]
        out = torch.cat(parts) if len(parts) > 1 else parts[0]
        return out.float()

    def _arrange(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-chunk ``[N, F'*t, D]`` (frequency-major) -> ``[N, t, F'*D]``, or unchanged for flat features."""
        if self.flat_features:
            return tokens
        return frequency_concat(tokens, self.encoder.num_freq_patches)

    def encode_lms(self, lms: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel ``[B, 1, F, T]`` -> ``[B, frames, F'*D]`` (or ``[B, tokens, D]`` if flat)."""
        batch, frames = lms.shape[0], lms.shape[-1]
        unit, patch_t = self.config.unit_frames, self.config.patch_size[1]
        n_chunks = math.ceil(frames / unit)
        pad = (patch_t - frames % unit % patch_t) % patch_t
        if pad:
            lms = torch.nn.functional.pad(lms, (0, pad))
        n_full = min(lms.shape[-1] // unit, n_chunks)
        outputs = []
        if n_full:
            full = lms[..., :n_full * unit].unflatten(-1, (n_full, unit)).permute(0, 3, 1, 2, 4)
            enc = self._arrange(self._encode_chunks(full.reshape(batch * n_full, *full.shape[2:])))
            outputs.append(enc.reshape(batch, n_full * enc.shape[1], enc.shape[2]))
        if n_chunks > n_full:
            outputs.append(self._arrange(self._encode_chunks(lms[..., n_full * unit:(n_full + 1) * unit])))
        return torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, samples]`` waveform -> frame features (see :meth:`encode_lms`)."""
        return self.encode_lms(self.to_normalized_lms(audio))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.encode(audio)

    # -------------------------------------------------------------------------------------------- embeddings
    def scene_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """Clip embeddings ``[B, D]``: the mean over frames (over all tokens for flat features)."""
        return self.encode(audio).mean(dim=1)

    def frame_embeddings(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The official frame-level output and its timestamps (ms), ``i * duration / frames``."""
        x = self.encode(audio)
        if self.flat_features:  # average the frequency tokens of each time step
            n_freq = self.encoder.num_freq_patches
            x = self._tokens_to_frames(x, n_freq)
        duration_ms = audio.shape[-1] / self.sample_rate * 1000.0
        steps = torch.arange(x.shape[1], dtype=torch.float64, device=x.device) * (duration_ms / x.shape[1])
        return x, steps.to(torch.float32).unsqueeze(0).expand(x.shape[0], -1)

    def _tokens_to_frames(self, tokens: torch.Tensor, n_freq: int) -> torch.Tensor:
        """Flat tokens of concatenated chunks -> ``[B, frames, D]`` (mean over frequency per frame)."""
        unit_t = self.encoder.grid_size[1]
        frames = []
        start = 0
        while start < tokens.shape[1]:
            chunk = tokens[:, start:start + n_freq * unit_t]
            frames.append(chunk.reshape(chunk.shape[0], n_freq, -1, chunk.shape[-1]).mean(1))
            start += chunk.shape[1]
        return torch.cat(frames, dim=1)

    def shifted_frame_embeddings(self, audio: torch.Tensor, hop_ms: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame embeddings at a hop finer than one patch, by encoding time-shifted copies and interleaving.

        The spectrogram is shifted by ``k * patch_width / n`` frames for ``k = 0..n-1`` (``n = ceil(frame_ms /
        hop_ms)``); each copy is encoded exactly like the default path and their frames are interleaved, so every
        output is a real encoder output for a 160-ms (16x16) window, centred on its timestamp. Costs ``n`` passes.
        """
        patch_t = self.config.patch_size[1]
        n_shifts = max(1, math.ceil(self.config.frame_ms / hop_ms))
        if patch_t % n_shifts:
            raise InputError(f"a {hop_ms} ms hop needs {n_shifts} shifts, which do not divide the patch width "
                             f"{patch_t} frames; choose a hop of frame_ms / k with k dividing {patch_t}")
        step = patch_t // n_shifts
        lms = self.to_normalized_lms(audio)
        shifted = []
        for k in range(n_shifts):
            x = self.encode_lms(lms[..., k * step:])
            if self.flat_features:
                x = self._tokens_to_frames(x, self.encoder.num_freq_patches)
            shifted.append(x)
        frames = min(x.shape[1] for x in shifted)
        x = torch.stack([s[:, :frames] for s in shifted], dim=2).flatten(1, 2)  # frame j, shift k -> j*n + k
        front = self.frontend.config
        frame_hop_ms = 1000.0 * front.hop_length / front.sample_rate
        centres = patch_t * frame_hop_ms / 2 + step * frame_hop_ms * torch.arange(x.shape[1], dtype=torch.float64)
        duration_ms = audio.shape[-1] / self.sample_rate * 1000.0
        keep = int((centres <= duration_ms).sum())
        x = x[:, :max(keep, 1)]
        ts = centres[:max(keep, 1)].clamp(max=duration_ms).to(torch.float32).to(x.device)
        return x, ts.unsqueeze(0).expand(x.shape[0], -1)

    def timestamp_embeddings(self, audio: torch.Tensor, hop_ms: float | None = None):
        hop_ms = self.timestamp_hop_ms if hop_ms is None else hop_ms
        if hop_ms is None or hop_ms >= self.config.frame_ms:
            return self.frame_embeddings(audio)
        return self.shifted_frame_embeddings(audio, hop_ms)

    def clap_audio_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """M2D-CLAP audio embeddings (needs a CLAP checkpoint with ``audio_proj``)."""
        if self.audio_proj is None:
            raise InputError("this checkpoint has no audio_proj: it is not an M2D-CLAP model")
        x = self.encode(audio)
        # Both projectors pool over the set of tokens (no positions), so token order does not matter and the
        # frequency-stacked frames can be viewed as tokens.
        x = x.reshape(x.shape[0], -1, self.encoder.embed_dim)
        if not getattr(self.audio_proj, "pools_itself", False):
            x = x.mean(dim=1)
        return self.audio_proj(x)

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, flat_features: bool | None = None, **kwargs) -> "M2D":
        encoder = build_encoder_from(ckpt)
        projector = projector_from_state(ckpt.projector_state)
        if projector is not None:
            projector.load_state_dict({k[len("audio_proj."):]: v.float() for k, v in ckpt.projector_state.items()})
        if flat_features is None:  # heads fine-tuned with token masking take 768-d flat features
            head_w = ckpt.head_state.get("mlp.mlp.0.weight")
            flat_features = head_w is not None and head_w.shape[-1] == encoder.embed_dim
        model = cls(encoder, ckpt.config, flat_features=flat_features, audio_proj=projector, **kwargs)
        model.checkpoint_path = str(ckpt.path)
        return model.eval()


def load_m2d(path: str | Path, config: str | ModelConfig | None = None, trust_checkpoint: bool = False,
             **kwargs) -> M2D:
    """Load any supported weight file (see :mod:`m2d_hear.checkpoint`) as an :class:`M2D` in eval mode.

    ``trust_checkpoint=True`` admits a file that only full unpickling can read (it can run the file's code)."""
    return M2D.from_checkpoint(read_checkpoint(path, config, trust_checkpoint), **kwargs)
