"""``m2d-eval``: every evaluation command. Each sub-command lives in its own module and is imported lazily."""
from __future__ import annotations

import importlib

import click

from m2d_hear.cli_vocabulary import CommandGroup

# name -> "module:click command". Add a line here to register a new sub-command.
COMMANDS = {
    "validate": "evaluation.hear_validate:validate",
    "finetune": "evaluation.finetune_command:finetune",
    "tasks": "evaluation.tasks_command:tasks",
    "linear": "evaluation.linear_command:linear",
    "all": "evaluation.all_command:all_",
    "table": "evaluation.table_command:table",
    "hear-embed": "evaluation.hear.embed:hear_embed",
    "hear-predict": "evaluation.hear.predict:hear_predict",
    "hear-leaderboard": "evaluation.hear.leaderboard:hear_leaderboard",
    "mini": "evaluation.mini.cli:mini",
    "weights": "evaluation.weights_command:weights",
}


class LazyGroup(CommandGroup):
    """Sub-commands (``lazy_commands``: name -> ``"module:attribute"``) are imported only when used, so ``--help``
    and light commands start fast; input errors end in one line (:class:`m2d_hear.cli_vocabulary.CommandGroup`)."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module, attr = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS)
@click.version_option(package_name="m2d-hear")
def main():
    """Evaluate M2D representations (EVAR linear probe and fine-tuning, HEAR tasks, result tables)."""


if __name__ == "__main__":
    main()
