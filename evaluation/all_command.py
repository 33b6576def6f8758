"""``m2d-eval all``: every task found, linear probe then fine-tuning, then the tables."""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import click

from evaluation.cli_options import allow_duplicates_option, config_option, trust_checkpoint_option, weights_option
from evaluation.finetune import evaluate_finetune
from evaluation.linear_command import common_options, report
from evaluation.linear_eval import evaluate_linear
from evaluation.tables import write_tables
from evaluation.tasks import load_task
from evaluation.tasks_command import found_tasks
from m2d_hear.cli_vocabulary import Alias, option


def default_weights() -> Path:
    from m2d_hear.default import default_weight_file

    return default_weight_file()


def choose_tasks(task_names, benchmark: str, data_root, mini_dir, mini_scale="default") -> tuple[list[str], str]:
    """The task sources to run and which benchmark they form (``paper``, ``mini`` or ``custom``)."""
    if task_names:
        return list(task_names), "custom"
    found = [] if benchmark == "mini" else found_tasks(data_root)
    if found:
        return found, "paper"
    if benchmark == "paper":
        raise FileNotFoundError("no tasks found under the data root: none of the paper's five datasets is there; "
                                "see `m2d-eval tasks` for the expected layouts, or pass --data-root / --task csv:...")
    from evaluation.mini import mini_task_sources

    click.echo("no paper datasets under the data root: running the built-in mini benchmark "
               "(built once into the cache; `m2d-eval mini build` builds it alone)")
    sources = mini_task_sources(mini_dir, scale=mini_scale)
    if not sources:
        raise FileNotFoundError("the mini benchmark could not be built; run `m2d-eval mini build` for details")
    return sources, "mini"


@click.command(name="all")
@weights_option(required=False, help="M2D weight file or released name [default: the project's default model, "
                                     "m2d_hear.default.default_weight_file()]")
@config_option
@trust_checkpoint_option
@option("--task", "task_names", multiple=True, aliases=(Alias("--tasks", multiple=True),),
        help="task to run (repeatable; names, csv:... or hear:...) [default: every task found]")
@click.option("--benchmark", type=click.Choice(["auto", "paper", "mini"]), default="auto", show_default=True,
              help="auto: the paper's tasks found under the data root, else the built-in mini benchmark")
@click.option("--baseline/--no-baseline", default=None,
              help="also evaluate two baselines with the same probe: a randomly initialised encoder of the same shape "
                   "and the log-mel mean+std statistics [default: on for mini]")
@click.option("--mini-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="mini benchmark cache [default: $M2D_CACHE/mini or ~/.cache/m2d-hear/mini]")
@click.option("--mini-scale", type=click.Choice(["default", "tiny"]), default="default", hidden=True,
              help="tiny: a few clips per split (tests)")
@click.option("--no-finetune", is_flag=True, help="linear probe only")
@click.option("--finetune-baseline", is_flag=True,
              help="fine-tune the random-init twin too [default: the twin gets the linear probe only]")
@partial(common_options, precision_help="auto = fp32 for the linear probe's embeddings (the official numerics), "
         "bf16 autocast on a CUDA GPU for fine-tuning; bf16/fp16 embeddings are cached apart and their rows labelled "
         "<weights>+bf16 / +fp16")
@allow_duplicates_option
def all_(weights, config_name, trust_checkpoint, task_names, benchmark, baseline, mini_dir, mini_scale, no_finetune,
         finetune_baseline, out, seeds, data_root, skip_missing, cache, device, precision, embed_batch_size, workers,
         max_epochs, paper_models):
    """Evaluate WEIGHTS on every task found: linear probe, fine-tuning, tables.

    With no dataset under the data root (a fresh machine) it runs the built-in mini benchmark, with the default
    model beside two baselines under the same probe: a randomly initialised encoder of the same shape and the
    log-mel mean+std statistics.
    """
    start = time.time()
    weights = weights or default_weights()
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weight file not found")
    names, kind = choose_tasks(task_names, benchmark, data_root, mini_dir, mini_scale)
    # (weight file, model or None to load it from the file, fine-tune it too)
    models = [(weights, None, not no_finetune)]
    if baseline or (baseline is None and kind == "mini"):
        from evaluation.baselines import LogMelStats, random_init_twin

        stats = LogMelStats()
        twin = random_init_twin(weights, Path(out) / "baselines", trust_checkpoint=trust_checkpoint,
                                config=config_name)
        models += [(twin, None, finetune_baseline and not no_finetune),
                   (stats.spec_file(Path(out) / "baselines"), stats, False)]
    # TrainOptions fields, passed only when set (--config only for WEIGHTS: the twin's folder name carries its own)
    finetune_options = {"trust_checkpoint": True} if trust_checkpoint else {}
    if precision != "auto":
        finetune_options["precision"] = precision
    import m2d_hear

    tasks = []   # read (and fingerprinted) once for every model
    for name in names:
        tasks.append(load_task(name, data_root=data_root, skip_missing=skip_missing))
        click.echo(tasks[-1].summary() + (f" [{len(tasks[-1].missing)} listed files missing, skipped]"
                                          if tasks[-1].missing else ""))
    records = []
    for weight_file, model, finetune_it in models:
        config = config_name if weight_file == weights else None
        model = model or m2d_hear.load_m2d(weight_file, config=config, trust_checkpoint=trust_checkpoint)
        for task in tasks:
            # a task's own probe and fine-tune settings (the mini tasks' task.json) apply inside these two
            records.append(evaluate_linear(task, weight_file, out, seeds=seeds, cache_root=cache, model=model,
                                           device=device, batch_size=embed_batch_size, num_workers=workers,
                                           weights_name=getattr(model, "label", None), precision=precision,
                                           probe_params={"max_epochs": max_epochs}))
            if finetune_it:
                evaluate_finetune(task, weight_file, out, device=None if device == "auto" else device,
                                  **finetune_options, **({"config": config} if config else {}))
    records = [r for r in records if r]
    tables = write_tables(out, paper_models=paper_models) if records else []
    if records:   # under torchrun only rank 0 has results to report
        report(out, records, tables)
        click.echo(f"m2d-eval all: {len(records)} task runs in {time.time() - start:.0f} s")
