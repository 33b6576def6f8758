"""``m2d-eval``: every evaluation command. Each sub-command lives in its own module and is imported lazily."""
from __future__ import annotations

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


@click.group(cls=CommandGroup, lazy_commands=COMMANDS)
@click.version_option(package_name="m2d-hear")
def main():
    """Evaluate M2D representations (EVAR linear probe and fine-tuning, HEAR tasks, result tables)."""


if __name__ == "__main__":
    main()
