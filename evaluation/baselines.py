"""Reference models to evaluate beside a checkpoint: a randomly initialised encoder of the same shape, and the
log-mel statistics that a task may already be solved by."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from m2d_hear.checkpoint import read_checkpoint
from m2d_hear.export import random_encoder, save_encoder_only
from m2d_hear.fileio import write_text
from m2d_hear.frontend import FRONT_ENDS, LogMelSpectrogram


def random_init_twin(weights: str | Path, folder: str | Path, seed: int = 0, trust_checkpoint: bool = False,
                     config: str | None = None) -> Path:
    """Write (once) an encoder with the M2D random initialisation and the same configuration and size as
    ``weights``, in the official layout: ``folder/<model>-<FxT>p<patch>-random-init-s<seed>/weights_ep0.pth``.
    ``config``: the configuration of a renamed ``weights`` file (see :func:`m2d_hear.checkpoint.read_checkpoint`)."""
    ckpt = read_checkpoint(weights, config, trust_checkpoint=trust_checkpoint)
    name = ckpt.config.folder_name(f"random-init-s{seed}")
    path = Path(folder) / name / "weights_ep0.pth"
    if not path.is_file():
        save_encoder_only(random_encoder(ckpt.config, ckpt.vit_size, seed=seed), path)
    return path


class LogMelStats(torch.nn.Module):
    """The spectral-statistics baseline: the mean and standard deviation over time of each band of the log-mel
    spectrogram (the models' own front end: 80 bands -> 160 values per clip). It stands in for an M2D model in the
    linear evaluation (``scene_embeddings``, ``sample_rate``, ``scene_embedding_size``), so it gets exactly the
    probe, seeds and crops the models get. A task that this scores well on is solved by spectral statistics."""

    label = "baseline: log-mel mean+std"
    spec = {"baseline": "logmel-mean-std", "version": 1}

    def __init__(self, sr: str = "16k"):
        super().__init__()
        self.frontend = LogMelSpectrogram(FRONT_ENDS[sr])
        self.sample_rate = FRONT_ENDS[sr].sample_rate
        self.scene_embedding_size = 2 * FRONT_ENDS[sr].n_mels
        self.config = {**self.spec, "sr": sr}
        self.norm_stats = (0.0, 1.0)

    @torch.no_grad()
    def scene_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        lms = self.frontend(audio)[:, 0]                     # [B, n_mels, frames]
        return torch.cat([lms.mean(-1), lms.std(-1)], dim=-1)

    def spec_file(self, folder: str | Path) -> Path:
        """A small JSON file describing this baseline: what the evaluation hashes and records as its 'weights'."""
        path = Path(folder) / "logmel-mean-std" / "baseline.json"
        text = json.dumps(self.config, sort_keys=True) + "\n"
        if not path.is_file() or path.read_text() != text:
            write_text(path, text)
        return path
