"""``m2d-eval validate``: run the official HEAR 2021 validator (``hearvalidator``) on a weight file.

The PyPI validator 2021.0.2 predates 32 kHz models, which HEAR later admitted; for those we run the same checks with
32000 added to its list of accepted rates (and say so).
"""
from __future__ import annotations

import sys

import click

from evaluation.cli_options import config_option, trust_checkpoint_option, weights_option
from m2d_hear.cli_vocabulary import Alias, device_option, embedding_precision, precision_option
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


def run_validator(weights: str, device: str = "cpu", trust_checkpoint: bool = False, config: str | None = None,
                  precision: str = "fp32") -> None:
    """Validate ``m2d_hear`` with ``weights`` through the official validator; raises SystemExit on failure.
    ``trust_checkpoint``: admit a weight file that needs full unpickling, also in the validator's own
    ``m2d_hear.load_model(path)`` call (see :func:`m2d_hear.checkpoint.trusted_checkpoints`). ``config`` (a renamed
    weight file's configuration) and ``precision`` other than fp32 reach that call too: the validator then checks
    the HEAR API of ``m2d_hear`` with ``load_model`` bound to them."""
    from contextlib import nullcontext

    from m2d_hear.checkpoint import trusted_checkpoints
    from m2d_hear.hear import load_model

    hv = import_validator()   # a missing validator is reported before any work
    options = {k: v for k, v in (("config", config), ("precision", precision)) if v not in (None, "fp32")}
    rate = load_model(weights, trust_checkpoint=trust_checkpoint, **options).sample_rate   # an unsafe file fails here

    validator = hv.ValidateModel("m2d_hear", weights, device=device)
    if options:
        validator.import_model = lambda: setattr(validator, "module", _bound_api(options))
    if rate not in validator.ACCEPTABLE_SAMPLE_RATE:
        click.echo(f"note: hearvalidator 2021.0.2 predates {rate} Hz models; admitting {rate} for this run")
        validator.ACCEPTABLE_SAMPLE_RATE = [*validator.ACCEPTABLE_SAMPLE_RATE, rate]
    with trusted_checkpoints() if trust_checkpoint else nullcontext():
        validator()


def _bound_api(options: dict):
    """The HEAR API of ``m2d_hear`` with ``load_model`` taking ``options``, as the module the validator checks."""
    import functools
    import types

    import m2d_hear

    return types.SimpleNamespace(load_model=functools.partial(m2d_hear.load_model, **options),
                                 get_scene_embeddings=m2d_hear.get_scene_embeddings,
                                 get_timestamp_embeddings=m2d_hear.get_timestamp_embeddings)


@click.command()
@weights_option(required=False, aliases=(Alias("weights", argument=True),))
@config_option
@device_option()
@precision_option("auto = fp32, the official numerics")
@trust_checkpoint_option
def validate(weights, config_name: str | None, device: str, precision: str, trust_checkpoint: bool):
    """Check that m2d_hear with --weights passes the official HEAR 2021 validator."""
    from m2d_hear.distributed import resolve_device

    if weights is None:
        raise click.UsageError("give the weights to validate: --weights FILE or a released name")
    device = str(resolve_device(device))
    run_validator(str(weights), device, trust_checkpoint, config_name, embedding_precision(precision))
    click.echo(f"HEAR validator passed: m2d_hear with {weights} on {device}")
    sys.exit(0)
