"""``m2d-eval table``: rebuild the result tables and chart from a results folder's scores.csv."""
from __future__ import annotations

from pathlib import Path

import click

from evaluation.tables import DEFAULT_PAPER_MODELS, write_tables


@click.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--paper-model", "paper_models", multiple=True, default=DEFAULT_PAPER_MODELS, show_default=True,
              help="paper row(s) shown beside ours, e.g. 'M2D/0.6' or 'M2D/0.7@Table 3'")
@click.option("--reference", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="folder of paper_*.csv [default: the paper numbers shipped in evaluation/reference]")
@click.option("--no-plot", is_flag=True, help="skip the bar chart")
def table(results_dir, paper_models, reference, no_plot):
    """Write RESULTS_DIR/tables/<protocol>.{md,csv,tex,png} from RESULTS_DIR/scores.csv."""
    written = write_tables(results_dir, reference=reference, paper_models=paper_models, plot=not no_plot)
    for path in written:
        if path.suffix == ".md":
            click.echo(path.read_text())
    click.echo("written: " + ", ".join(str(p) for p in written))
