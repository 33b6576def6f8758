"""``m2d-eval all``: every task found, linear probe then fine-tuning (when available), then the tables."""
from __future__ import annotations

import importlib
from pathlib import Path

import click

from evaluation.cli_errors import one_line_errors
from evaluation.linear_command import common_options, report
from evaluation.linear_eval import evaluate_linear
from evaluation.tables import write_tables
from evaluation.tasks import load_task
from evaluation.tasks_command import found_tasks

FINETUNE_HOOK = "evaluation.finetune:evaluate_finetune"


def finetune_hook():
    """The fine-tuning entry point ``evaluation.finetune.evaluate_finetune(task, weights, out_dir, **options)``,
    or None while that module (or function) does not exist."""
    module_name, attr = FINETUNE_HOOK.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            return None
        raise
    return getattr(module, attr, None)


def default_weights() -> Path:
    from m2d_hear.default import default_weight_file

    return default_weight_file()


@click.command(name="all")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="M2D weight file [default: the project's default model, m2d_hear.default.default_weight_file()]")
@click.option("--tasks", "task_names", multiple=True,
              help="tasks to run (repeatable; names, csv:... or hear:...) [default: every task found]")
@click.option("--no-finetune", is_flag=True, help="linear probe only")
@common_options
def all_(weights, task_names, no_finetune, out, seeds, data_root, skip_missing, cache, device, batch_size, workers,
         max_epochs, paper_models):
    """Evaluate WEIGHTS on every task found: linear probe, fine-tuning (if available), tables."""
    with one_line_errors():
        weights = weights or default_weights()
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: weight file not found")
        names = list(task_names) or found_tasks(data_root)
        if not names:
            raise FileNotFoundError("no tasks found under the data root; see `m2d-eval tasks` for the expected "
                                    "layouts, or pass --data-root / --tasks csv:... ")
        import m2d_hear

        model = m2d_hear.load_m2d(weights)
        hook = None if no_finetune else finetune_hook()
        if not no_finetune and hook is None:
            click.echo(f"fine-tuning skipped: {FINETUNE_HOOK} is not available")
        records = []
        for name in names:
            task = load_task(name, data_root=data_root, skip_missing=skip_missing)
            click.echo(task.summary() + (f" [{len(task.missing)} listed files missing, skipped]"
                                         if task.missing else ""))
            records.append(evaluate_linear(task, weights, out, seeds=seeds, cache_root=cache, model=model,
                                           device=device, batch_size=batch_size, num_workers=workers,
                                           probe_params={"max_epochs": max_epochs}))
            if hook is not None:
                hook(task, weights, out, device=None if device == "auto" else device)
        records = [r for r in records if r]
        tables = write_tables(out, paper_models=paper_models) if records else []
    if records:   # under torchrun only rank 0 has results to report
        report(out, records, tables)
