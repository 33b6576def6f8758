"""``m2d-pretrain``: prepare log-mel data, train M2D, export encoder weights."""
from __future__ import annotations

import click

from m2d_hear.errors import user_message

from .export import export
from .init_weights import init
from .plot_log import plot
from .prepare import prepare
from .train import train


class Commands(click.Group):
    """An input error (:class:`m2d_hear.errors.InputError`, a missing file, an unwritable or full output folder)
    ends in one line; any other exception is a bug and keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as err:  # noqa: BLE001 - re-raised unless it is the user's to fix
            message = user_message(err)
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=Commands, commands=[init, plot, prepare, train, export])
@click.version_option(package_name="m2d-hear")
def main():
    """Pre-train Masked Modeling Duo (M2D) on audio files."""


if __name__ == "__main__":
    main()
