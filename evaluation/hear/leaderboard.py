"""``m2d-eval hear-leaderboard``: one row of the HEAR leaderboard CSV from ``test.predicted-scores.json`` files.

The leaderboard (``docs/leaderboard.csv`` of hearbenchmark/hear-benchmark, the site's repository) has the columns
``Model, URL, Submission Date`` and one column per HEAR 2021 task; each cell is the raw primary test score in
[0, 1]: ``test_score`` for train/valid/test tasks, ``aggregated_scores.test_score_mean`` for k-fold tasks; empty
when the task was not run. Submission is a pull request that appends the row. Scores are written with at most
nine decimals, as the existing rows are.

Tasks are recognised by ``task_name`` and ``mode`` in their ``task_metadata.json`` (hear-preprocess names);
``beehive_states_fold1`` and other non-leaderboard tasks are reported and left out.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
from pathlib import Path

import click

from evaluation.tasks.layout import read_json
from m2d_hear.fileio import write_text

from .errors import HearTaskError

TASK_COLUMNS = [
    "Beehive", "Beijing Opera", "CREMA-D", "DCASE 2016", "ESC-50", "FSD50K", "GTZAN Genre", "GTZAN Music/Speech",
    "Gunshot", "Libricount", "Maestro 5h", "Mridangam Stroke", "Mridangam Tonic", "NSynth Pitch 50h",
    "NSynth Pitch 5h", "Speech commands 5h", "Speech commands full", "Vocal Imitation", "VoxLingua107 top 10",
]
COLUMNS = ["Model", "URL", "Submission Date", *TASK_COLUMNS]

# (task_name, mode) of the HEAR 2021 task folders -> leaderboard column
TASKS = {
    ("beehive_states_fold0", "full"): "Beehive",
    ("beijing_opera", "full"): "Beijing Opera",
    ("tfds_crema_d", "full"): "CREMA-D",
    ("dcase2016_task2", "full"): "DCASE 2016",
    ("esc50", "full"): "ESC-50",
    ("fsd50k", "full"): "FSD50K",
    ("tfds_gtzan", "full"): "GTZAN Genre",
    ("tfds_gtzan_music_speech", "full"): "GTZAN Music/Speech",
    ("gunshot_triangulation", "full"): "Gunshot",
    ("libricount", "full"): "Libricount",
    ("maestro", "5h"): "Maestro 5h",
    ("mridangam_stroke", "full"): "Mridangam Stroke",
    ("mridangam_tonic", "full"): "Mridangam Tonic",
    ("nsynth_pitch", "50h"): "NSynth Pitch 50h",
    ("nsynth_pitch", "5h"): "NSynth Pitch 5h",
    ("speech_commands", "5h"): "Speech commands 5h",
    ("speech_commands", "full"): "Speech commands full",
    ("vocal_imitation", "full"): "Vocal Imitation",
    ("vox_lingua_top10", "full"): "VoxLingua107 top 10",
}


def primary_test_score(scores: dict, source: str) -> float:
    """``test_score`` of a train/valid/test task, ``aggregated_scores.test_score_mean`` of a k-fold task."""
    if "aggregated_scores" in scores:
        value = scores["aggregated_scores"].get("test_score_mean")
    else:
        value = scores.get("test", {}).get("test_score")
    if not isinstance(value, (int, float)):
        raise HearTaskError(f"{source}: no test_score (or aggregated test_score_mean) in it; re-run hear-predict")
    return float(value)


def format_score(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def collect(folders: list[Path], echo=print) -> dict[str, float]:
    """Leaderboard column -> primary test score, from embedding task folders with predictions."""
    cells: dict[str, float] = {}
    origin: dict[str, Path] = {}
    for folder in folders:
        meta_path = folder / "task_metadata.json"
        scores_path = folder / "test.predicted-scores.json"
        meta = read_json(meta_path, "pass embedding task folders written by hear-embed")
        mode = meta.get("mode") or folder.name.rsplit("-", 1)[-1]  # hear-preprocess names end in -<mode>
        key = (meta.get("task_name"), mode)
        column = TASKS.get(key)
        if column is None:
            echo(f"note: {folder.name} ({key[0]}, mode {key[1]}) is not a HEAR leaderboard task; left out")
            continue
        scores = read_json(scores_path, f"run `m2d-eval hear-predict {folder}` first")
        if column in cells:
            raise HearTaskError(f"{folder} and {origin[column]} both give the {column!r} column; pass only one")
        cells[column] = primary_test_score(scores, str(scores_path))
        origin[column] = folder
    return cells


def leaderboard_row(cells: dict[str, float], model_name: str, url: str, date: str) -> list[str]:
    return [model_name, url, date, *(format_score(cells[c]) if c in cells else "" for c in TASK_COLUMNS)]


def to_csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


@click.command("hear-leaderboard")
@click.argument("emb_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--model-name", default="M2D", show_default=True, help="Team/institution and model, e.g. 'NTT M2D'.")
@click.option("--url", default="", help="Link to the code or paper.")
@click.option("--date", default=None, help="Submission date (default: today, YYYY-MM-DD).")
@click.option("--out", default="leaderboard_row.csv", show_default=True, type=click.Path(dir_okay=False),
              help="CSV with the leaderboard header and the row.")
def hear_leaderboard(emb_dirs, model_name, url, date, out):
    """Write the HEAR leaderboard row of a model from its predicted test scores (EMB_DIRS: embedding task
    folders, or folders holding them)."""
    from .predict import task_folders

    cells = collect(task_folders(emb_dirs), echo=click.echo)
    if not cells:
        raise click.ClickException("no HEAR leaderboard task among the folders given; nothing to write")
    row = leaderboard_row(cells, model_name, url, date or _dt.date.today().isoformat())
    text = to_csv([COLUMNS, row])
    out = write_text(out, text)
    click.echo(to_csv([row]).rstrip("\n"))
    missing = [c for c in TASK_COLUMNS if c not in cells]
    click.echo(f"wrote {out} ({len(cells)} of {len(TASK_COLUMNS)} tasks"
               + (f"; empty: {', '.join(missing)})" if missing else ")"))
