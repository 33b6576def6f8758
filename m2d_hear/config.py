"""Model configuration, and how it is encoded in checkpoint folder names.

The official releases encode the configuration in the name of the folder that holds the weight file::

    <model_cls>-<F>x<T>p<pf>x<pt>[p<sr>][p<extra>...]-<anything>
    m2d_vit_base-80x608p16x16-221006-mr7              -> 80x608 input, 16x16 patches, 16 kHz
    m2d_as_vit_base-80x608p16x16p32k-240413_enconly   -> the same at 32 kHz
    m2d_clap_vit_base-80x1001p16x16p16kpBpTI-2025     -> 16 kHz, extra tokens ['B', 'TI']

We parse the same convention (and write it for our own checkpoints), so the official runtime can read ours.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import InputError

SAMPLE_RATES = {"16k": 16000, "32k": 32000}

_SIZE = re.compile(r"^\d+x\d+$")


class ConfigNameError(InputError):
    """A folder or file name that does not follow the ``<model>-<F>x<T>p<pf>x<pt>[p<sr>]-...`` pattern."""


@dataclass(frozen=True)
class ModelConfig:
    """What an M2D encoder needs to know beyond its weights.

    ``input_size`` is (mel bins, frames of one chunk); ``patch_size`` is (frequency, time) in bins and frames.
    """

    model_cls: str = "m2d_vit_base"
    input_size: tuple[int, int] = (80, 608)
    patch_size: tuple[int, int] = (16, 16)
    sr: str = "16k"
    extra: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.sr not in SAMPLE_RATES:
            raise ConfigNameError(f"unknown sample-rate token {self.sr!r}; expected one of {sorted(SAMPLE_RATES)}")
        (n_mels, frames), (pf, pt) = self.input_size, self.patch_size
        if n_mels % pf:
            raise ConfigNameError(f"patch height {pf} does not divide the {n_mels} mel bins")
        if min(n_mels, frames, pf, pt) <= 0:
            raise ConfigNameError(f"sizes must be positive: input {self.input_size}, patch {self.patch_size}")

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATES[self.sr]

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patches along (frequency, time) for one full chunk."""
        return self.input_size[0] // self.patch_size[0], self.input_size[1] // self.patch_size[1]

    @property
    def unit_frames(self) -> int:
        """Width of one inference chunk, in spectrogram frames."""
        return self.input_size[1]

    @property
    def frame_ms(self) -> float:
        """Duration covered by one output frame (patch width x 10 ms hop)."""
        return self.patch_size[1] * 10.0

    def with_(self, **changes) -> "ModelConfig":
        return replace(self, **changes)

    def folder_name(self, suffix: str) -> str:
        """The official folder-name form, e.g. ``m2d_vit_base-80x608p16x16-<suffix>``."""
        spec = f"{self.input_size[0]}x{self.input_size[1]}p{self.patch_size[0]}x{self.patch_size[1]}"
        if self.sr != "16k" or self.extra:
            spec += f"p{self.sr}"
        for token in self.extra:
            spec += f"p{token}"
        return f"{self.model_cls}-{spec}-{suffix}"


def parse_config_name(name: str) -> ModelConfig:
    """Parse an official-style name such as ``m2d_vit_base-80x608p16x16p32k-240413``."""
    fields = name.split("-")
    if len(fields) < 2:
        raise ConfigNameError(
            f"{name!r} does not look like '<model>-<F>x<T>p<pf>x<pt>[p<sr>]-...' (e.g. m2d_vit_base-80x608p16x16-221006)")
    tokens = fields[1].split("p")
    if len(tokens) < 2 or not _SIZE.match(tokens[0]) or not _SIZE.match(tokens[1]):
        raise ConfigNameError(
            f"{name!r}: the field after the first '-' must be '<F>x<T>p<pf>x<pt>[p<sr>]', got {fields[1]!r}")
    input_size = tuple(int(v) for v in tokens[0].split("x"))
    patch_size = tuple(int(v) for v in tokens[1].split("x"))
    sr = tokens[2] if len(tokens) > 2 else "16k"
    return ModelConfig(model_cls=fields[0], input_size=input_size, patch_size=patch_size, sr=sr,
                       extra=tuple(tokens[3:]))


def config_for_file(path: str | Path, override: str | ModelConfig | None = None) -> ModelConfig:
    """The configuration of a weight file: ``override`` if given, else its parent folder's name, else its stem.

    This follows the official runtime, which reads the parent folder name (and falls back to the file stem).
    """
    if isinstance(override, ModelConfig):
        return override
    if override:
        return parse_config_name(override)
    path = Path(path)
    errors = []
    for candidate in (path.parent.name, path.stem):
        try:
            return parse_config_name(candidate)
        except ConfigNameError as err:
            errors.append(str(err))
    raise ConfigNameError(
        f"{path}: cannot tell the model configuration from the folder name {path.parent.name!r} or the file name "
        f"{path.stem!r}; put the file in a folder named like 'm2d_vit_base-80x608p16x16-221006' (the official "
        f"layout) or pass config='m2d_vit_base-80x608p16x16-x' explicitly (--config on the command line)")
