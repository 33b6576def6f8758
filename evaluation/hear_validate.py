"""``m2d-eval validate``: run the official HEAR 2021 validator (``hearvalidator``) on a weight file.

The PyPI validator 2021.0.2 predates 32 kHz models, which HEAR later admitted; for those we run the same checks with
32000 added to its list of accepted rates (and say so).
"""
from __future__ import annotations

import sys

import click

from m2d_hear.errors import InputError

INSTALL = "pip install 'm2d-hear[test]' (or: pip install hearvalidator==2021.0.2 tensorflow-cpu)"


class MissingValidator(InputError):
    """The optional HEAR validator (``hearvalidator`` and the tensorflow it imports) is not installed."""


def import_validator():
    """``hearvalidator.validate``, or :class:`MissingValidator` saying what to install."""
    try:
        import hearvalidator.validate as hv  # imports tensorflow
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in ("hearvalidator", "tensorflow"):
            raise  # another missing module is a broken installation of ours: keep its traceback
        raise MissingValidator(f"m2d-eval validate needs the official HEAR validator, but the module {err.name!r} "
                               f"is not installed; {INSTALL}") from None
    return hv


def run_validator(weights: str, device: str = "cpu") -> None:
    """Validate ``m2d_hear`` with ``weights`` through the official validator; raises SystemExit on failure."""
    hv = import_validator()

    from m2d_hear.hear import load_model

    validator = hv.ValidateModel("m2d_hear", weights, device=device)
    rate = load_model(weights).sample_rate
    if rate not in validator.ACCEPTABLE_SAMPLE_RATE:
        click.echo(f"note: hearvalidator 2021.0.2 predates {rate} Hz models; admitting {rate} for this run")
        validator.ACCEPTABLE_SAMPLE_RATE = [*validator.ACCEPTABLE_SAMPLE_RATE, rate]
    validator()


@click.command()
@click.argument("weights", type=click.Path(exists=True, dir_okay=False))
@click.option("--device", default="cpu", show_default=True)
def validate(weights: str, device: str):
    """Check that m2d_hear with WEIGHTS passes the official HEAR 2021 validator."""
    run_validator(weights, device)
    click.echo(f"HEAR validator passed: m2d_hear with {weights} on {device}")
    sys.exit(0)
