"""``m2d-eval``: every evaluation command. Each sub-command lives in its own module and is imported lazily."""
from __future__ import annotations

import importlib

import click

from m2d_hear.errors import user_message

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


class LazyGroup(click.Group):
    """Sub-commands (``lazy_commands``: name -> ``"module:attribute"``) are imported only when used, so ``--help``
    and light commands start fast. An input error (:class:`m2d_hear.errors.InputError`, a missing file, an
    unwritable or full output folder) ends in one line; any other exception is a bug and keeps its traceback."""

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

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as err:  # noqa: BLE001 - re-raised unless it is the user's to fix
            message = user_message(err)
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=LazyGroup, lazy_commands=COMMANDS)
@click.version_option(package_name="m2d-hear")
def main():
    """Evaluate M2D representations (EVAR linear probe and fine-tuning, HEAR tasks, result tables)."""


if __name__ == "__main__":
    main()
