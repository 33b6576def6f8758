"""``m2d-pretrain train``: pre-train M2D on the log-mel files written by ``m2d-pretrain prepare``.

The defaults are the paper's (M2D/0.7, ViT-Base, 80x608 input, 16x16 patches, 300 epochs, AdamW, blr 3e-4,
20 warm-up epochs, EMA 0.99995 -> 0.99999). The same command runs under ``torchrun`` (one process per GPU).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import click

from m2d_hear.cli_vocabulary import Alias, device_option, precision_from_amp, precision_option, workers_option
from m2d_hear.vit import VIT_SIZES

# Options that define a run: on --resume, those left at their default are taken from the checkpoint.
RUN_OPTIONS = (
    "model", "embed_dim", "depth", "input_size", "patch_size", "sr", "mask_ratio", "decoder_dim", "decoder_depth",
    "decoder_heads", "noise_ratio", "noise_target", "epochs", "batch_size", "accum_iter", "blr", "lr", "min_lr",
    "warmup_epochs", "weight_decay", "clip_grad", "ema_decay_init", "ema_decay", "seed", "min_ds_size",
    "norm_stats_samples", "norm_stats", "csv", "save_freq", "checkpoint_minutes", "log_every", "rank_every",
    "rank_clips",
)


def parse_size(text: str, what: str) -> list[int]:
    if not re.fullmatch(r"\d+x\d+", text or ""):
        raise click.BadParameter(f"{text!r}: use <height>x<width>, e.g. 80x608", param_hint=what)
    return [int(v) for v in text.split("x")]


def parse_stats(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        mean, std = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: use MEAN,STD, e.g. -7.1,4.2", param_hint="--norm-stats") from None
    if not std > 0:
        raise click.BadParameter("the standard deviation must be positive", param_hint="--norm-stats")
    return [mean, std]


def check(args: argparse.Namespace) -> None:
    if args.rank_every < 0:
        raise click.BadParameter("must be 0 (off) or more", param_hint="--rank-every")
    (n_mels, width), (pf, pt) = args.input_size, args.patch_size
    if n_mels % pf or width % pt:
        raise click.BadParameter(f"patch {pf}x{pt} must divide the input {n_mels}x{width}", param_hint="--patch-size")
    if not 0 < args.mask_ratio < 1:
        raise click.BadParameter("must be in (0, 1)", param_hint="--mask-ratio")
    if not 0 <= args.noise_ratio < 1:
        raise click.BadParameter("must be in [0, 1): the weight of the background in the mixture",
                                 param_hint="--noise-ratio")
    for name in ("ema_decay_init", "ema_decay"):
        if not 0 <= getattr(args, name) <= 1:
            raise click.BadParameter("must be in [0, 1]: the weight the target keeps at each step (1 - 1/N averages "
                                     "over about N steps)", param_hint="--" + name.replace("_", "-"))
    for name in ("epochs", "batch_size", "accum_iter", "save_freq", "log_every", "rank_clips"):
        if getattr(args, name) < 1:
            raise click.BadParameter("must be at least 1", param_hint="--" + name.replace("_", "-"))


@click.command()
@click.option("--data", "data", required=True, type=click.Path(exists=True, file_okay=False),
              help="folder written by 'm2d-pretrain prepare' (holds files.csv)")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="checkpoints go to OUT/<model>-<F>x<T>p<pf>x<pt>-<yymmdd>-mr<ratio>/")
@click.option("--csv", default=None, type=click.Path(dir_okay=False),
              help="file list (column file_name, relative to --data) [default: DATA/files.csv]")
@click.option("--name", default=None, help="run folder name under --out [default: the official pattern]")
@click.option("--resume", is_flag=True, help="continue the run from its latest checkpoint (options left at their "
              "defaults are taken from the checkpoint)")
@click.option("--resume-fallback", is_flag=True, help="--resume even when the latest checkpoint is damaged: continue "
              "from the newest readable one, set the damaged file aside and say how many steps are lost "
              "[default: stop, naming the damaged file]")
@click.option("--model", type=click.Choice([f"m2d_vit_{s}" for s in VIT_SIZES]), default="m2d_vit_base",
              show_default=True)
@click.option("--embed-dim", type=int, default=None, help="override the model's width (multiple of 64)")
@click.option("--depth", type=int, default=None, help="override the model's number of blocks")
@click.option("--input-size", default="80x608", show_default=True, help="mel bins x frames of one training crop")
@click.option("--patch-size", default="16x16", show_default=True)
@click.option("--sr", type=click.Choice(["16k", "32k"]), default="16k", show_default=True,
              help="sample rate the data was prepared at (recorded in the run name)")
@click.option("--mask-ratio", type=float, default=0.7, show_default=True)
@click.option("--decoder-dim", type=int, default=512, show_default=True, help="predictor width")
@click.option("--decoder-depth", type=int, default=8, show_default=True, help="predictor blocks")
@click.option("--decoder-heads", type=int, default=16, show_default=True, help="predictor attention heads")
@click.option("--noise-ratio", type=float, default=0.0, show_default=True,
              help="M2D-X background noise: the online encoder sees each crop mixed (power domain) with a random "
                   "other crop of the training list at this weight, the target encoder the clean crop; 0 = plain M2D")
@click.option("--noise-target", type=click.Choice(["clean", "mixture"]), default="clean", show_default=True,
              help="what the target encoder encodes under --noise-ratio: the clean crop (M2D-X's denoising) or the "
                   "online encoder's mixture (mixing as data augmentation only)")
@click.option("--epochs", type=int, default=300, show_default=True)
@click.option("--batch-size", type=int, default=512, show_default=True,
              help="the global batch: crops per iteration summed over all processes (each of N processes takes 1/N); "
                   "an optimizer step sees batch-size x accum-iter")
@click.option("--accum-iter", type=int, default=1, show_default=True, help="gradient accumulation iterations")
@click.option("--blr", type=float, default=3e-4, show_default=True, help="base lr: lr = blr x effective batch / 256")
@click.option("--lr", type=float, default=None, help="absolute learning rate (overrides --blr)")
@click.option("--min-lr", type=float, default=0.0, show_default=True)
@click.option("--warmup-epochs", type=float, default=20, show_default=True)
@click.option("--weight-decay", type=float, default=0.05, show_default=True)
@click.option("--clip-grad", type=float, default=3.0, show_default=True, help="gradient-norm clipping; 0 disables")
@click.option("--ema-decay-init", type=float, default=0.99995, show_default=True)
@click.option("--ema-decay", type=float, default=0.99999, show_default=True, help="final EMA rate")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--min-ds-size", type=int, default=10000, show_default=True,
              help="repeat a shorter file list up to this many entries per epoch")
@click.option("--norm-stats-samples", type=int, default=5000, show_default=True,
              help="random crops used to compute norm_stats at start")
@click.option("--norm-stats", default=None, help="MEAN,STD to use instead of computing them")
@workers_option(None, "data-loading processes per training process (0: load in the training process) "
                "[default: 0 on CPU, 8 on GPU]", name="num_workers", aliases=(Alias("--num-workers"),))
@click.option("--save-freq", type=int, default=50, show_default=True, help="write checkpoint-<epoch>.pth every N epochs")
@click.option("--checkpoint-minutes", type=float, default=30, show_default=True,
              help="also save checkpoint-last.pth (mid-epoch state) this often; 0 disables")
@precision_option("auto = bf16 autocast on a CUDA GPU (fp16 where bf16 is unsupported), fp32 on the CPU; fp16 "
                  "uses a gradient scaler",
                  aliases=(Alias("--amp", type=click.Choice(["auto", "none", "bf16", "fp16"]),
                                 convert=precision_from_amp),))
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (GPU)")
@click.option("--steps", type=int, default=0, help="stop once this many optimizer steps are done in total "
              "(the schedules still follow --epochs); the state is saved")
@device_option(help="under torchrun, cuda is each process's own GPU")
@click.option("--threads", type=int, default=0,
              help="CPU threads for torch [default: torch's choice]; on a busy shared CPU, fewer threads can be faster")
@click.option("--log-every", type=int, default=10, show_default=True, help="log.jsonl line every N optimizer steps")
@click.option("--rank-every", type=int, default=1, show_default=True,
              help="log the effective rank of --rank-clips fixed clips' embeddings every N epochs (a collapse check; "
              "0 disables)")
@click.option("--rank-clips", type=int, default=256, show_default=True,
              help="training files (their first frames) the effective rank is measured on")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--quiet", is_flag=True, help="no messages besides errors")
@click.pass_context
def train(ctx: click.Context, **options):
    """Pre-train M2D on DATA (log-mel .npy files) and write checkpoints under OUT/<run name>/.

    \b
    Examples:
      m2d-pretrain train --data data/lms --out runs                      # the paper's M2D/0.7 ViT-Base
      m2d-pretrain train --data data/lms --out runs --resume             # continue it
      m2d-pretrain train --data data/lms --out runs --resume-fallback    # ... past a damaged checkpoint-last.pth
      torchrun --nproc_per_node 4 -m pretrain.cli train --data data/lms --out runs --batch-size 2048  # 4 x 512
    """
    from .trainer import train as run_training

    args = namespace(options)
    defaulted = sorted(name for name in RUN_OPTIONS
                       if ctx.get_parameter_source(name) in (click.core.ParameterSource.DEFAULT, None))
    run_training(args, defaulted if args.resume else ())


def namespace(options: dict) -> argparse.Namespace:
    args = argparse.Namespace(**options)
    args.compile = args.__dict__.pop("compile_")
    precision = args.__dict__.pop("precision")
    args.amp = "none" if precision == "fp32" else precision   # the trainer's (and the checkpoints') name for it
    args.resume = args.resume or getattr(args, "resume_fallback", False)
    args.data, args.out = str(Path(args.data)), str(Path(args.out))
    args.input_size = parse_size(args.input_size, "--input-size")
    args.patch_size = parse_size(args.patch_size, "--patch-size")
    args.norm_stats = parse_stats(args.norm_stats)
    if args.num_workers is None:
        from m2d_hear.distributed import resolve_device

        args.num_workers = 8 if resolve_device(args.device).type == "cuda" else 0
    check(args)
    return args
