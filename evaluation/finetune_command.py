"""``m2d-eval finetune``: fine-tune a weight file on one task with the papers' recipe (or overrides).

Several GPUs: ``torchrun --nproc_per_node=4 -m evaluation.cli finetune --task as20k --weights W`` (DDP;
``--batch-size`` is the global batch, split across the processes, so a recipe means the same on any number of GPUs).
"""
from __future__ import annotations

from pathlib import Path

import click

from evaluation.cli_options import task_source_options
from m2d_hear.cli_vocabulary import device_option, precision_option, seeds_option, workers_option

DEFAULT_OUT = Path("results") / "m2d-eval"
DEFAULT_WORKERS = 4


def _recipe_names():
    from evaluation.finetune.recipes import RECIPES

    return sorted(RECIPES)


@click.command()
@task_source_options
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder holding the datasets [default: $M2D_DATA or ./data]")
@click.option("--skip-missing", is_flag=True, help="train without listed audio files that are absent")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="results folder: scores.csv, and runs under OUT/finetune/")
@seeds_option(help="seed, one run each", default_help="the task's own, else 43, 44, 45")
@click.option("--fold", "folds", multiple=True,
              help="only these rounds (e.g. fold1; repeatable) [default: the task's own (its first max_rounds), "
                   "else all]")
@click.option("--recipe", "recipe_name", default=None,
              help="recipe to start from [default: the task's own (its task.json's, else the recipe of its "
                   "name); 'default' = EVAR config defaults]")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw", "lars"]), default=None)
@click.option("--lr", type=float, default=None)
@click.option("--epochs", type=click.IntRange(1), default=None)
@click.option("--warmup-epochs", type=click.FloatRange(0), default=None)
@click.option("--batch-size", type=click.IntRange(2), default=None,
              help="the global batch: clips per optimizer step summed over all processes [default: the recipe's]")
@click.option("--mixup", type=click.FloatRange(0), default=None, help="Beta(a, a) parameter; 0 disables")
@click.option("--freq-mask", type=click.IntRange(0), default=None, help="SpecAugment frequency mask width")
@click.option("--time-mask", type=click.IntRange(0), default=None, help="SpecAugment time mask width")
@click.option("--rrc/--no-rrc", default=None, help="random resized crop")
@click.option("--token-mask", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="structured token masking ratio (>0 switches to flat features)")
@click.option("--token-mask-variant", type=click.Choice(["rows_cols", "official"]), default=None)
@click.option("--dur-frames", type=click.IntRange(1), default=None,
              help="encode each clip as one sequence of this many frames")
@click.option("--freeze-embed/--no-freeze-embed", default=None, help="freeze the patch embedding")
@click.option("--no-valid", "no_valid", type=click.Choice(["best-test", "carve"]), default="best-test",
              show_default=True,
              help="selection without a validation split: best test epoch (papers' rule) or a 10% train carve-out")
@click.option("--resume", is_flag=True, help="continue killed runs (and reuse finished ones) under OUT")
@device_option()
@workers_option(None, "audio decoding worker processes per loader (0: decode in this process) "
                      "[default: the task's own, else 4]")
@precision_option("auto = bf16 autocast on a CUDA GPU, fp32 on the CPU (the papers trained in fp32)")
@click.option("--eval-batch-size", type=click.IntRange(1), default=None,
              help="clips per forward pass in each process when scoring the validation and test splits "
                   "[default: the recipe's batch size]")
@click.option("--progress/--no-progress", default=True, show_default=True)
def finetune(task_name, weights, config_name, trust_checkpoint, task_path, data_root, skip_missing, out, seeds, folds,
             recipe_name, optimizer, lr, epochs, warmup_epochs, batch_size, mixup, freq_mask, time_mask, rrc,
             token_mask, token_mask_variant, dur_frames, freeze_embed, no_valid, resume, device, workers, precision,
             eval_batch_size, progress):
    """Fine-tune WEIGHTS on TASK (EVAR protocol, the papers' per-task recipe); appends to OUT/scores.csv."""
    from m2d_hear.distributed import init_distributed

    from evaluation.finetune import RECIPES, TrainOptions, run_finetune, task_recipe
    from evaluation.finetune.runner import task_defaults
    from evaluation.tasks import load_task

    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weight file not found; check the path, or give a released name "
                                "(m2d-eval weights list)")
    if recipe_name is not None and recipe_name not in RECIPES:
        raise click.BadParameter(f"{recipe_name!r}; use one of {', '.join(_recipe_names())}", param_hint="--recipe")
    task = load_task(task_name, data_root=data_root, path=task_path, skip_missing=skip_missing)
    recipe = RECIPES[recipe_name] if recipe_name else task_recipe(task)
    recipe = recipe.override(optimizer=optimizer, lr=lr, epochs=epochs, warmup_epochs=warmup_epochs,
                             batch_size=batch_size, mixup=mixup, freq_mask=freq_mask, time_mask=time_mask,
                             rrc=rrc, token_mask=token_mask, token_mask_variant=token_mask_variant,
                             dur_frames=dur_frames, freeze_embed=freeze_embed)
    seeds, rounds, workers = task_defaults(task, seeds, list(folds), workers)
    opts = TrainOptions(no_valid=no_valid, device=None if device == "auto" else device,
                        num_workers=DEFAULT_WORKERS if workers is None else workers,
                        precision=precision, eval_batch_size=eval_batch_size, config=config_name,
                        progress=progress, trust_checkpoint=trust_checkpoint)
    info = init_distributed(opts.device)
    if info.is_main:
        click.echo(task.summary() + (f" [{len(task.missing)} listed files missing, skipped]"
                                     if task.missing else ""))
        click.echo(recipe.describe())
    summary = run_finetune(task, weights, out / "finetune", recipe=recipe, seeds=seeds, opts=opts,
                           resume=resume, scores_dir=out, rounds=rounds, info=info)
    if info.is_main:
        click.echo(summary.line())
        from evaluation.finetune.runner import task_dir

        click.echo(f"scores: {out / 'scores.csv'}; runs: {task_dir(out / 'finetune', task.name, task.fingerprint())}")
