"""``m2d-eval linear``: the EVAR linear probe of one weight file on one task."""
from __future__ import annotations

from pathlib import Path

import click

from evaluation.cli_options import task_source_options
from evaluation.linear_eval import DEFAULT_SEEDS, evaluate_linear
from evaluation.tables import DEFAULT_PAPER_MODELS, write_tables
from evaluation.tasks import load_task

DEFAULT_OUT = Path("results") / "m2d-eval"


def parse_seeds(_ctx, _param, value: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in value.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give comma-separated integers, e.g. 42,43,44") from None
    if not seeds:
        raise click.BadParameter("at least one seed")
    return seeds


def common_options(f):
    """Options shared by ``linear`` and ``all``."""
    options = [
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
                     show_default=True, help="results folder (scores.csv, runs/, tables/)"),
        click.option("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), show_default=True, callback=parse_seeds,
                     help="probe seeds, run on the same cached embeddings"),
        click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="folder holding the datasets [default: $M2D_DATA or ./data]"),
        click.option("--skip-missing", is_flag=True, help="evaluate without listed audio files that are absent"),
        click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="embedding cache folder [default: OUT/cache]"),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ..."),
        click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1),
                     help="clips per encoder pass"),
        click.option("--workers", default=2, show_default=True, type=click.IntRange(0),
                     help="audio decoding worker processes"),
        click.option("--max-epochs", default=200, show_default=True, type=click.IntRange(1),
                     help="probe epochs (the protocol uses 200; fewer only for quick smoke runs)"),
        click.option("--paper-model", "paper_models", multiple=True, default=DEFAULT_PAPER_MODELS,
                     show_default=True, help="paper row(s) shown beside ours, e.g. 'M2D/0.6' or 'M2D/0.7@Table 3'"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command()
@task_source_options
@common_options
def linear(task_name, weights, trust_checkpoint, task_path, out, seeds, data_root, skip_missing, cache, device,
           batch_size, workers, max_epochs, paper_models):
    """Linear evaluation (EVAR protocol) of WEIGHTS on one task; appends to OUT/scores.csv and rebuilds tables."""
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weight file not found")
    task = load_task(task_name, data_root=data_root, path=task_path, skip_missing=skip_missing)
    click.echo(task.summary() + (f" [{len(task.missing)} listed files missing, skipped]" if task.missing else ""))
    record = evaluate_linear(task, weights, out, seeds=seeds, cache_root=cache, device=device,
                             batch_size=batch_size, num_workers=workers,
                             probe_params={"max_epochs": max_epochs}, trust_checkpoint=trust_checkpoint)
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
