"""``m2d-eval tasks``: which datasets are found under the data root, their sizes, and what is missing."""
from __future__ import annotations

from pathlib import Path

import click

from evaluation.cli_options import allow_duplicates_option
from evaluation.tasks import DatasetError, default_data_root, load_task
from evaluation.tasks.registry import PAPER_TASKS, TASK_NAMES, reader_module, task_folder


def survey(data_root: Path | None) -> list[dict]:
    """One entry per named task: status 'ok', 'incomplete' (files missing), 'broken' or 'absent'."""
    found = []
    for name in TASK_NAMES:
        folder = task_folder(name, data_root)
        entry = {"task": name, "folder": folder, "task_data": None, "message": ""}
        if not folder.exists():
            entry.update(status="absent", message=f"not found at {folder}; {reader_module(name).GET}")
        else:
            try:
                task = load_task(name, data_root=data_root, skip_missing=True)
                entry.update(status="incomplete" if task.missing else "ok", task_data=task)
            except DatasetError as err:
                entry.update(status="broken", message=str(err))
        found.append(entry)
    return found


def found_tasks(data_root: Path | None) -> list[str]:
    """The five paper tasks whose dataset folder exists under the data root (variants such as
    ``gtzan_hear10fold`` run only when named)."""
    return [name for name in PAPER_TASKS if task_folder(name, data_root).exists()]


@click.command()
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder holding the datasets [default: $M2D_DATA or ./data]")
@allow_duplicates_option
def tasks(data_root):
    """List the tasks found under the data root with their sizes and what is missing."""
    root = data_root if data_root is not None else default_data_root()
    click.echo(f"data root: {root.resolve()}")
    for entry in survey(data_root):
        task = entry["task_data"]
        if task is not None:
            click.echo(f"[{entry['status']}] {task.summary()}")
            if task.missing:
                first = ", ".join(str(p) for p in task.missing[:3])
                click.echo(f"    {len(task.missing)} listed files missing (e.g. {first}); "
                           "pass --skip-missing to evaluate without them")
        else:
            click.echo(f"[{entry['status']}] {entry['task']}: {entry['message']}")
