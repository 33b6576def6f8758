"""Click options shared by the ``m2d-eval`` commands: the weights a command runs (``--weights``, ``--config``,
``--trust-checkpoint``) and the tasks it reads (``linear``, ``finetune``, ``all``, ``tasks``). The vocabulary
shared with ``m2d-pretrain`` (``--seed``, ``--workers``, ``--precision``, ``--device``...) is
:mod:`m2d_hear.cli_vocabulary`."""
from __future__ import annotations

from pathlib import Path

import click

from evaluation.weights_command import resolve_weights_option
from m2d_hear.cli_vocabulary import option

TASK_HELP = "us8k, vc1, gtzan, gtzan_hear10fold, spcv2, as20k, csv:/path/meta.csv or hear:/path/task_folder"


TRUST_HELP = ("read a weight file that holds more than tensors, containers and argparse.Namespace with full "
              "unpickling, which can run code of the file's choosing; only for files you trust [default: refuse]")

trust_checkpoint_option = click.option("--trust-checkpoint", is_flag=True, help=TRUST_HELP)

WEIGHTS_HELP = "M2D weight file (official layouts or ours), or a released name (m2d-eval weights list)"


def weights_option(required: bool = True, help: str = WEIGHTS_HELP, aliases=()):
    """``--weights``: a weight file or a released name, resolved to the file (downloaded once)."""
    return option("--weights", required=required, type=click.Path(dir_okay=False, path_type=Path),
                  callback=resolve_weights_option, help=help, aliases=aliases)


config_option = click.option(
    "--config", "config_name", default=None,
    help="model configuration name for a weight file whose folder name does not carry it (a renamed file), "
         "e.g. m2d_vit_base-80x608p16x16-x [default: read from the folder name]")


def _allow_duplicates(ctx: click.Context, _param, value: bool) -> bool:
    # every task the command reads (load_task) keeps repeated rows while the command runs
    from evaluation.tasks.layout import reading

    ctx.with_resource(reading(allow_duplicates=value))
    return value


allow_duplicates_option = click.option(
    "--allow-duplicates", is_flag=True, expose_value=False, callback=_allow_duplicates,
    help="keep a file listed more than once in a task's lists as that many clips [default: stop with an error]")


def task_source_options(f):
    """``--task``, ``--weights``, ``--config``, ``--trust-checkpoint``, ``--path`` and ``--allow-duplicates``."""
    options = [
        click.option("--task", "task_name", required=True, help=TASK_HELP),
        weights_option(),
        config_option,
        trust_checkpoint_option,
        click.option("--path", "task_path", type=click.Path(path_type=Path), default=None,
                     help="the dataset folder itself (overrides --data-root)"),
        allow_duplicates_option,
    ]
    for decorate in reversed(options):
        f = decorate(f)
    return f
