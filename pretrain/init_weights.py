"""``m2d-pretrain init``: write a randomly initialised encoder in the official encoder-only layout."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from m2d_hear.config import parse_config_name
from m2d_hear.export import random_encoder, save_encoder_only
from m2d_hear.vit import VIT_SIZES


def model_folder_name(model: str, input_size: str, patch_size: str, suffix: str) -> str:
    """``m2d_vit_base``, ``80x608``, ``16x16``, ``x`` -> ``m2d_vit_base-80x608p16x16-x`` (validated)."""
    name = f"{model}-{input_size}p{patch_size}-{suffix}"
    parse_config_name(name)
    return name


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", type=click.Choice([f"m2d_vit_{s}" for s in VIT_SIZES]), default="m2d_vit_base",
              show_default=True)
@click.option("--input-size", default="80x608", show_default=True, help="mel bins x frames of one chunk")
@click.option("--patch-size", default="16x16", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
def init(out_dir: Path, model: str, input_size: str, patch_size: str, seed: int):
    """Write a random-weight encoder to OUT_DIR/<official-style name>/weights_ep0.pth (a baseline, or a test)."""
    name = model_folder_name(model, input_size, patch_size, f"{date.today():%y%m%d}-random{seed}")
    encoder = random_encoder(parse_config_name(name), VIT_SIZES[model.rsplit("_", 1)[-1]], seed=seed)
    path = save_encoder_only(encoder, out_dir / name / "weights_ep0.pth")
    click.echo(str(path))
