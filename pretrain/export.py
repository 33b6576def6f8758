"""``m2d-pretrain export``: turn a training checkpoint into an encoder-only weight file (the official layout).

The output is a bare state dict with ``cls_token, pos_embed, norm_stats, patch_embed.*, blocks.*, norm.*`` (what the
official ``to_encoder_only_weight.py`` writes), in a folder named like the run with ``_enconly`` appended, so that
``m2d_hear.load_model`` and the official runtime read the configuration from the folder name.
"""
from __future__ import annotations

from pathlib import Path

import click
import torch

from m2d_hear.checkpoint import CheckpointError, build_encoder_from, read_checkpoint
from m2d_hear.export import save_encoder_only


def default_output(checkpoint: Path) -> Path:
    """``RUN/<name>/checkpoint-300.pth`` -> ``RUN/<name>_enconly/checkpoint-300.pth``."""
    return checkpoint.parent.parent / f"{checkpoint.parent.name}_enconly" / checkpoint.name


def export_encoder(checkpoint: Path, out: Path | None = None, fp16: bool = False, config: str | None = None,
                   trust_checkpoint: bool = False) -> Path:
    """Write the online encoder of ``checkpoint`` (any layout ``m2d_hear`` reads) to ``out``; returns the path.
    ``trust_checkpoint`` admits a checkpoint that needs full unpickling; the output never does."""
    ckpt = read_checkpoint(checkpoint, config, trust_checkpoint)
    encoder = build_encoder_from(ckpt)
    out = out or default_output(Path(checkpoint))
    if out.resolve() == Path(checkpoint).resolve():
        raise CheckpointError(f"{out}: the output would overwrite the checkpoint; pass another --out")
    return save_encoder_only(encoder, out, torch.float16 if fp16 else None)


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="output file [default: <run>_enconly/<same file name> beside the run folder]")
@click.option("--fp16", is_flag=True, help="store float16 tensors (half the size; norm_stats stays float32)")
@click.option("--config", default=None, help="configuration name when the folder name does not carry it, "
              "e.g. m2d_vit_base-80x608p16x16-x")
@click.option("--trust-checkpoint", is_flag=True,
              help="read a CHECKPOINT that holds more than tensors, containers and argparse.Namespace with full "
              "unpickling, which can run code of the file's choosing; only for files you trust [default: refuse]; "
              "the exported file loads without it")
def export(checkpoint: Path, out: Path | None, fp16: bool, config: str | None, trust_checkpoint: bool):
    """Write the encoder of CHECKPOINT (RUN/<name>/checkpoint-N.pth) as an encoder-only weight file."""
    path = export_encoder(checkpoint, out, fp16, config, trust_checkpoint)
    click.echo(str(path))
