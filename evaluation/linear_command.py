"""``m2d-eval linear``: the EVAR linear probe of one weight file on one task."""
from __future__ import annotations

from pathlib import Path

import click

from evaluation.cli_options import task_source_options
from evaluation.linear_eval import DEFAULT_SEEDS, evaluate_linear
from evaluation.tables import DEFAULT_PAPER_MODELS, write_tables
from evaluation.tasks import load_task
from m2d_hear.cli_vocabulary import (Alias, device_option, embed_batch_size_option, precision_option, seeds_option,
    workers_option)

DEFAULT_OUT = Path("results") / "m2d-eval"


PRECISION_HELP = ("auto = fp32, the official numerics; bf16/fp16 (opt-in GPU speed-ups) are cached apart and their "
                  "rows labelled <weights>+bf16 / +fp16")


def common_options(f, precision_help: str = PRECISION_HELP):
    """Options shared by ``linear`` and ``all``."""
    options = [
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
                     show_default=True, help="results folder (scores.csv, runs/, tables/)"),
        seeds_option(default=DEFAULT_SEEDS, help="probe seed, run on the same cached embeddings"),
        click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="folder holding the datasets [default: $M2D_DATA or ./data]"),
        click.option("--skip-missing", is_flag=True, help="evaluate without listed audio files that are absent"),
        click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="embedding cache folder [default: OUT/cache]"),
        device_option(),
        precision_option(precision_help),
        embed_batch_size_option(16, aliases=(Alias("--batch-size"),)),
        workers_option(2, "audio decoding worker processes (0: decode in this process)"),
        click.option("--max-epochs", default=200, show_default=True, type=click.IntRange(1),
                     help="probe epochs (the protocol uses 200; fewer only for quick smoke runs)"),
        click.option("--paper-model", "paper_models", multiple=True, default=DEFAULT_PAPER_MODELS,
                     show_default=True, help="paper row(s) shown beside ours, e.g. 'M2D/0.6' or 'M2D/0.7@Table 3'"),
    ]
    for decorate in reversed(options):
        f = decorate(f)
    return f


@click.command()
@task_source_options
@common_options
def linear(task_name, weights, config_name, trust_checkpoint, task_path, out, seeds, data_root, skip_missing, cache,
           device, precision, embed_batch_size, workers, max_epochs, paper_models):
    """Linear evaluation (EVAR protocol) of WEIGHTS on one task; appends to OUT/scores.csv and rebuilds tables."""
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weight file not found")
    task = load_task(task_name, data_root=data_root, path=task_path, skip_missing=skip_missing)
    click.echo(task.summary() + (f" [{len(task.missing)} listed files missing, skipped]" if task.missing else ""))
    record = evaluate_linear(task, weights, out, seeds=seeds, cache_root=cache, device=device,
                             batch_size=embed_batch_size, num_workers=workers,
                             probe_params={"max_epochs": max_epochs}, trust_checkpoint=trust_checkpoint,
                             config=config_name, precision=precision)
    tables = write_tables(out, paper_models=paper_models) if record else []
    if record:   # under torchrun only rank 0 reports
        report(out, [record], tables)


def report(out: Path, records: list[dict], tables: list[Path]) -> None:
    for record in records:
        scores = [r["score"] for r in record["results"]]
        if scores:
            click.echo(f"{record['weights_label']} {record['task']['name']}: {record['task']['metric']} "
                       f"{100 * sum(scores) / len(scores):.2f} % (mean of {len(scores)} seed x fold runs; "
                       f"embedding {record['seconds']['embedding']} s, probe {record['seconds']['probe']} s)")
    click.echo(f"scores: {out / 'scores.csv'}")
    click.echo(f"run configurations: {out / 'runs'}")
    shown = [p for p in tables if p.suffix in (".md", ".png")]
    click.echo("tables: " + ", ".join(str(p) for p in shown))
