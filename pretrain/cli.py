"""``m2d-pretrain``: prepare log-mel data, train M2D, export encoder weights. Input errors end in one line
(:class:`m2d_hear.cli_vocabulary.CommandGroup`)."""
from __future__ import annotations

import click

from m2d_hear.cli_vocabulary import CommandGroup

# name -> "module:click command", imported when used
COMMANDS = {
    "init": "pretrain.init_weights:init",
    "plot": "pretrain.plot_log:plot",
    "prepare": "pretrain.prepare:prepare",
    "train": "pretrain.train:train",
    "export": "pretrain.export:export",
}


@click.group(cls=CommandGroup, lazy_commands=COMMANDS)
@click.version_option(package_name="m2d-hear")
def main():
    """Pre-train Masked Modeling Duo (M2D) on audio files."""


if __name__ == "__main__":
    main()
