"""``m2d-eval validate``: run the official HEAR 2021 validator (``hearvalidator``) on a weight file.

The PyPI validator 2021.0.2 predates 32 kHz models, which HEAR later admitted; for those we run the same checks with
32000 added to its list of accepted rates (and say so).
"""
from __future__ import annotations

import sys

import click

from evaluation.cli_options import trust_checkpoint_option
from evaluation.weights_command import resolve_weights_option


def run_validator(weights: str, device: str = "cpu", trust_checkpoint: bool = False) -> None:
    """Validate ``m2d_hear`` with ``weights`` through the official validator; raises SystemExit on failure.
    ``trust_checkpoint``: admit a weight file that needs full unpickling, also in the validator's own
    ``m2d_hear.load_model(path)`` call (see :func:`m2d_hear.checkpoint.trusted_checkpoints`)."""
    from contextlib import nullcontext

    from m2d_hear.checkpoint import trusted_checkpoints
    from m2d_hear.hear import load_model

    rate = load_model(weights, trust_checkpoint=trust_checkpoint).sample_rate   # an unsafe file fails here, fast
    import hearvalidator.validate as hv  # imports tensorflow

    validator = hv.ValidateModel("m2d_hear", weights, device=device)
    if rate not in validator.ACCEPTABLE_SAMPLE_RATE:
        click.echo(f"note: hearvalidator 2021.0.2 predates {rate} Hz models; admitting {rate} for this run")
        validator.ACCEPTABLE_SAMPLE_RATE = [*validator.ACCEPTABLE_SAMPLE_RATE, rate]
    with trusted_checkpoints() if trust_checkpoint else nullcontext():
        validator()


@click.command()
@click.argument("weights", type=click.Path(dir_okay=False), callback=resolve_weights_option)
@click.option("--device", default="cpu", show_default=True)
@trust_checkpoint_option
def validate(weights: str, device: str, trust_checkpoint: bool):
    """Check that m2d_hear with WEIGHTS passes the official HEAR 2021 validator."""
    run_validator(str(weights), device, trust_checkpoint)
    click.echo(f"HEAR validator passed: m2d_hear with {weights} on {device}")
    sys.exit(0)
