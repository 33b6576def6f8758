"""Run folders: ``RUN_DIR/<model>-<F>x<T>p<pf>x<pt>[p32k]-<yymmdd>-mr<ratio>``, the official naming.

The folder name carries the configuration (so ``m2d_hear.load_model`` and the official runtime read it from there);
``mr7`` stands for mask ratio 0.7, ``mr75`` for 0.75.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

from m2d_hear.config import ModelConfig
from m2d_hear.errors import InputError

from .checkpointing import checkpoints_in


def ratio_token(mask_ratio: float) -> str:
    """0.7 -> '7', 0.75 -> '75', 0.6 -> '6' (the digits after the decimal point)."""
    text = f"{mask_ratio:.4f}".rstrip("0")
    if not text.startswith("0."):
        raise InputError(f"mask ratio must be in (0, 1), got {mask_ratio}")
    return text[2:]


def config_prefix(model: str, input_size, patch_size, sr: str = "16k") -> str:
    """The name without its date/suffix field, e.g. ``m2d_vit_base-80x608p16x16``."""
    return ModelConfig(model, tuple(input_size), tuple(patch_size), sr).folder_name("x")[:-2]


def run_name(model: str, input_size, patch_size, mask_ratio: float, sr: str = "16k", day: date | None = None) -> str:
    day = day or date.today()
    return f"{config_prefix(model, input_size, patch_size, sr)}-{day:%y%m%d}-mr{ratio_token(mask_ratio)}"


def find_run(out_dir: Path, model: str, input_size, patch_size, mask_ratio: float, sr: str = "16k",
             any_config: bool = False) -> Path | None:
    """The most recently written run folder of this configuration under ``out_dir`` that holds checkpoints.

    With ``any_config`` (the user gave no configuration), the only run folder under ``out_dir`` also qualifies.
    """
    if not out_dir.is_dir():
        return None
    runs = [p for p in out_dir.iterdir() if p.is_dir() and checkpoints_in(p)]
    prefix = config_prefix(model, input_size, patch_size, sr) + "-"
    suffix = f"-mr{ratio_token(mask_ratio)}"
    matching = [p for p in runs if p.name.startswith(prefix) and p.name.endswith(suffix)]
    if not matching and any_config and len(runs) == 1:
        matching = runs
    return max(matching, key=lambda p: max(c.stat().st_mtime for c in checkpoints_in(p)), default=None)
