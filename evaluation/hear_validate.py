"""``m2d-eval validate``: run the official HEAR 2021 validator (``hearvalidator``) on a weight file.

The PyPI validator 2021.0.2 predates 32 kHz models, which HEAR later admitted; for those we run the same checks with
32000 added to its list of accepted rates (and say so).
"""
from __future__ import annotations

import sys

import click

from evaluation.cli_options import trust_checkpoint_option
from evaluation.weights_command import resolve_weights_option
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


def run_validator(weights: str, device: str = "cpu", trust_checkpoint: bool = False) -> None:
    """Validate ``m2d_hear`` with ``weights`` through the official validator; raises SystemExit on failure.
    ``trust_checkpoint``: admit a weight file that needs full unpickling, also in the validator's own
    ``m2d_hear.load_model(path)`` call (see :func:`m2d_hear.checkpoint.trusted_checkpoints`)."""
    from contextlib import nullcontext

    from m2d_hear.checkpoint import trusted_checkpoints
    from m2d_hear.hear import load_model

    hv = import_validator()   # a missing validator is reported before any work
    rate = load_model(weights, trust_checkpoint=trust_checkpoint).sample_rate   # an unsafe file fails here

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
