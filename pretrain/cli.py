"""``m2d-pretrain``: prepare log-mel data, train M2D, export encoder weights. Input errors end in one line
(:class:`m2d_hear.cli_vocabulary.CommandGroup`)."""
from __future__ import annotations

import click

from m2d_hear.cli_vocabulary import CommandGroup

from .export import export
from .init_weights import init
from .plot_log import plot
from .prepare import prepare
from .train import train


@click.group(cls=CommandGroup, commands=[init, plot, prepare, train, export])
@click.version_option(package_name="m2d-hear")
def main():
    """Pre-train Masked Modeling Duo (M2D) on audio files."""


if __name__ == "__main__":
    main()
