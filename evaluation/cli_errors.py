"""The input errors every evaluation command turns into a one-line ``click.ClickException``."""
from __future__ import annotations

from contextlib import contextmanager

import click

from evaluation.tasks.base import DatasetError
from m2d_hear.audio import AudioError
from m2d_hear.checkpoint import CheckpointError
from m2d_hear.config import ConfigNameError

INPUT_ERRORS = (DatasetError, AudioError, CheckpointError, ConfigNameError, FileNotFoundError)


@contextmanager
def one_line_errors():
    try:
        yield
    except INPUT_ERRORS as err:
        raise click.ClickException(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
