"""The HEAR 2021 API: ``load_model``, ``get_scene_embeddings``, ``get_timestamp_embeddings``.

Audio is a float32 tensor ``[n_sounds, n_samples]`` on the model's device, mono, in [-1, 1]. Embeddings equal the
official M2D runtime's: scene = mean of the frame embeddings; timestamps (ms) = ``i * duration / n_frames``.
``load_model(path, timestamp_hop_ms=40)`` gives a finer, interleaved timestamp grid (see
:meth:`m2d_hear.runtime.M2D.shifted_frame_embeddings`). Audio shorter than one FFT window is zero-padded at the end
to one window (25 ms); empty, non-finite, integer or wrongly shaped audio raises :class:`m2d_hear.audio.AudioError`
(a ``ValueError``) naming the problem, and audio outside [-1, 1] warns once per process with its peak: the same
check as :meth:`M2D.encode`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .default import default_weight_file
from .errors import InputError
from .runtime import M2D, load_m2d

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_model(model_file_path: str = "", config: str | None = None, timestamp_hop_ms: float | None = None,
               device: str | None = None, precision: str = "fp32", trust_checkpoint: bool = False,
               **kwargs) -> M2D:
    """Load an M2D weight file as a HEAR model.

    Args:
        model_file_path: a weight file in any official layout or ours, or a released checkpoint name such as
            ``m2d_vit_base-80x608p16x16-221006-mr7`` (downloaded once, see :mod:`m2d_hear.hub`). Empty: the project's
            default model (``m2d_hear.default``), pre-trained by ``m2d-pretrain`` and shipped in the package.
        config: override of the configuration normally read from the parent folder name.
        timestamp_hop_ms: timestamp hop for ``get_timestamp_embeddings``; None keeps the official frame rate
            (160 ms for 16x16 patches).
        device: move the model there (HEAR runners move it themselves).
        precision: ``fp32`` (default, the official numerics) or ``bf16``/``fp16`` autocast of the transformer,
            an opt-in speed-up for GPUs; embeddings are returned in float32 either way.
        trust_checkpoint: read a weight file (or ``$M2D_DEFAULT_WEIGHTS``) that holds more than tensors, plain
            containers and argparse.Namespace with full unpickling, which can run code of the file's choosing.
            Without it such a file is refused (:class:`m2d_hear.checkpoint.UnsafeCheckpointError`). HEAR runners
            pass it as a model option, e.g. ``--model-options '{"trust_checkpoint": true}'``.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    path = Path(model_file_path) if model_file_path else default_weight_file()
    model = load_m2d(path, config=config, trust_checkpoint=trust_checkpoint, **kwargs)
    model.timestamp_hop_ms = timestamp_hop_ms
    model.autocast_dtype = PRECISIONS[precision]
    return model.to(device) if device else model


def _checked(audio, model: M2D) -> torch.Tensor:
    """:meth:`M2D.check_audio`, then zero-padding of audio shorter than one FFT window."""
    audio = model.check_audio(audio)
    n_fft = model.frontend.config.n_fft
    if audio.shape[1] < n_fft:
        audio = torch.nn.functional.pad(audio, (0, n_fft - audio.shape[1]))
    return audio


@torch.no_grad()
def get_scene_embeddings(audio: torch.Tensor, model: M2D) -> torch.Tensor:
    """``[n_sounds, scene_embedding_size]`` float32 clip embeddings."""
    return model.scene_embeddings(_checked(audio, model)).float()


@torch.no_grad()
def get_timestamp_embeddings(audio: torch.Tensor, model: M2D) -> tuple[torch.Tensor, torch.Tensor]:
    """``([n_sounds, n_timestamps, timestamp_embedding_size], [n_sounds, n_timestamps])``, timestamps in ms."""
    n_samples = audio.shape[-1] if isinstance(audio, torch.Tensor) and audio.ndim == 2 else None
    checked = _checked(audio, model)
    emb, ts = model.timestamp_embeddings(checked)
    if n_samples is not None and checked.shape[-1] != n_samples:  # padded short input: keep times inside the clip
        ts = ts.clamp(max=n_samples / model.sample_rate * 1000.0)
    return emb.float(), ts.float()
