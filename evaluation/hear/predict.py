"""``m2d-eval hear-predict``: the eval kit's prediction protocol on embedding task folders.

For each task: the first ``--grid-points`` configurations of the shuffled grid (:mod:`.grid`) are trained on the
first split run (:mod:`.splits`) and ranked by their best validation score (stable order on ties); the best one is
retrained on every other run (k-fold tasks); each run's best checkpoint is tested. Written into the task folder,
with the kit's names and keys:

* ``test.predicted-scores.json``: per test split (``test`` or ``foldNN``) ``{test_loss, test_score,
  test_<score>[_<part>]..., validation_score, epoch, time_in_min}``; for k-fold tasks ``aggregated_scores``
  (``<key>_mean``, ``<key>_std`` over folds, sample std); then ``hparams``, ``postprocessing`` (event tasks),
  ``score_mode``, ``embedding_path``;
* ``<test split>.predictions.pkl``: target / prediction / prediction_logit tensors (+ events for event tasks);
* ``prediction.log``; ``prediction-done.json`` (a task that has it is skipped).

Every trained grid point is saved under ``predict-checkpoints/`` as it finishes, so an interrupted run resumes
without retraining what was done.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
import torch
from tqdm.auto import tqdm

from m2d_hear import fileio
from m2d_hear.cli_vocabulary import Alias, device_option
from m2d_hear.distributed import resolve_device
from m2d_hear.errors import InputError

from .data import EmbeddingTask, load_splits, read_task
from .errors import HearTaskError
from .events import DEFAULT_POSTPROCESSING_GRID
from .grid import describe, grid_points, hparams_json
from .metrics import get_score
from .splits import data_splits
from .train import FitResult, Runner

STATE_DIR = "predict-checkpoints"


def task_folders(paths: list[str | Path]) -> list[Path]:
    """Each path is an embedding task folder, or a folder of them (every subfolder with task_metadata.json)."""
    folders: list[Path] = []
    for p in map(Path, paths):
        if (p / "task_metadata.json").is_file():
            folders.append(p)
        elif p.is_dir():
            found = sorted(d for d in p.iterdir() if (d / "task_metadata.json").is_file())
            if not found:
                raise HearTaskError(f"{p}: no task_metadata.json in it or in its subfolders; pass the folders "
                                    "written by `m2d-eval hear-embed`")
            folders += found
        else:
            raise HearTaskError(f"{p}: no such folder; pass the folders written by `m2d-eval hear-embed`")
    return folders


class Log:
    """Lines to ``prediction.log`` (and, unless quiet, the console)."""

    def __init__(self, path: Path, echo: bool = True):
        self.path, self.echo = path, echo

    def __call__(self, message: str) -> None:
        line = f"predict - {time.strftime('%Y-%m-%d %H:%M:%S')} - {message}"
        with open(self.path, "a") as f:
            f.write(line + "\n")
        if self.echo:
            tqdm.write(line)


def _cached_fit(path: Path, hparams: dict) -> FitResult | None:
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged cache entry is retrained, never trusted
        return None
    if saved.get("hparams") != hparams:
        return None
    return FitResult(**saved)


def _save_fit(path: Path, result: FitResult) -> None:
    fileio.torch_save(dict(vars(result)), path)


def embedding_size(task: EmbeddingTask) -> int:
    sizes = {split: task.dims(split)[1] for split in task.metadata["splits"]}
    if len(set(sizes.values())) != 1:
        raise HearTaskError(f"{task.path}: embedding sizes differ between splits {sizes}; re-embed the task")
    return next(iter(sizes.values()))


def predict_task(path: str | Path, grid: str = "default", n_points: int = 8, device: str = "cpu",
                 in_memory: bool = True, progress: bool = True, echo: bool = True) -> dict:
    """Run the protocol on one embedding task folder; returns what ``test.predicted-scores.json`` holds."""
    task = read_task(path)
    meta = task.metadata
    try:
        scores = [get_score(name) for name in meta["evaluation"]]
    except ValueError as err:
        raise HearTaskError(f"{task.path / 'task_metadata.json'}: {err}") from None
    if any(s.event_based != task.is_event for s in scores):
        raise HearTaskError(f"{task.path / 'task_metadata.json'}: scores {meta['evaluation']} do not fit a "
                            f"{meta['embedding_type']} task")
    embedding_size(task)  # the same dimension in every split, or a clear error
    runs = data_splits(meta, str(task.path / "task_metadata.json"))
    confs = grid_points(grid, meta, n_points)
    pp_grid = (meta.get("evaluation_params") or {}).get("event_postprocessing_grid", DEFAULT_POSTPROCESSING_GRID)
    runner = Runner(task, scores, device, pp_grid, progress)
    for split in meta["splits"]:  # every split file is there and readable before any training
        load_splits(task, [split], in_memory=False)
    log = Log(task.path / "prediction.log", echo)
    log(f"Computing predictions for {task.path.name} (grid {grid}, {n_points} points, device {device})")
    state_dir = task.path / STATE_DIR
    state_dir.mkdir(exist_ok=True)

    def fit(run: dict, conf: dict, cache: Path, desc: str, data=None) -> FitResult:
        hp = hparams_json(conf)
        result = _cached_fit(cache, hp)
        if result is not None:
            log(f"{desc}: reusing {cache.name} (validation score {result.validation_score})")
            return result
        train, valid, reference = data if data is not None else _fit_data(run)
        result = runner.fit(train, valid, reference, conf, desc=desc)
        _save_fit(cache, result)
        log(f"{desc}: {describe(conf)} -> best validation {result.validation_score} at epoch {result.epoch}")
        return result

    def _fit_data(run: dict):
        return (load_splits(task, run["train"], in_memory, with_meta=False),
                load_splits(task, run["valid"], in_memory), task.reference(run["valid"]))

    first = runs[0]
    first_data = None
    results = []
    for i, conf in enumerate(tqdm(confs, desc=f"{task.path.name} grid", disable=not progress)):
        cache = state_dir / f"{'|'.join(first['test'])}-grid{i:02d}.pt"
        if first_data is None and _cached_fit(cache, hparams_json(conf)) is None:
            first_data = _fit_data(first)
        results.append(fit(first, conf, cache, f"grid point {i + 1}/{len(confs)}", first_data))
    first_data = None
    order = sorted(range(len(results)), key=lambda k: results[k].validation_score,
                   reverse=results[0].score_mode == "max")
    best_index = order[0]
    best_conf, best = confs[best_index], results[best_index]
    log(f"Best grid point {best_index + 1}: validation {best.validation_score}; {describe(best_conf)}")

    run_results = [best]
    for r, run in enumerate(tqdm(runs[1:], desc=f"{task.path.name} folds", disable=not progress), start=2):
        cache = state_dir / f"{'|'.join(run['test'])}-best.pt"
        run_results.append(fit(run, best_conf, cache, f"split {r}/{len(runs)} (test {'|'.join(run['test'])})"))

    test_results: dict = {}
    for run, result in zip(runs, run_results):
        name = "|".join(run["test"])
        test = load_splits(task, run["test"], in_memory)
        scores_, predictions = runner.test(result, best_conf, test, task.reference(run["test"]))
        test_results[name] = scores_
        fileio.write_pickle(task.path / f"{name}.predictions.pkl", predictions)
        log(f"test {name}: {json.dumps(scores_)}")
    if len(test_results) > 1:
        test_results["aggregated_scores"] = aggregate(test_results)
    test_results.update({
        "hparams": best.hparams,
        "postprocessing": best.postprocessing,
        "score_mode": run_results[-1].score_mode,
        "embedding_path": str(task.path),
    })
    fileio.write_text(task.path / "test.predicted-scores.json", json.dumps(test_results, indent=4))
    log(f"Final Test Results: {json.dumps(test_results)}")
    return test_results


def aggregate(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """``<key>_mean`` and ``<key>_std`` (pandas: sample std) of every key over the folds."""
    import pandas as pd

    table = pd.DataFrame.from_dict(results, orient="index")
    out = {}
    for column in table:
        out[f"{column}_mean"] = float(table[column].mean())
        out[f"{column}_std"] = float(table[column].std())
    return out


def gpus_device(gpus: str | None) -> tuple[str, object]:
    """``--gpus`` as the kit takes it (a JSON list such as ``[0]``, or an int count) -> (torch device, parsed);
    the device itself comes from :func:`m2d_hear.distributed.resolve_device`. ``--gpus`` is the old spelling of
    ``--device``, kept hidden for one release."""
    if gpus is None:
        return "cpu", None
    try:
        parsed = json.loads(gpus)
    except json.JSONDecodeError:
        raise click.BadParameter(f"{gpus!r} is not JSON; use --device cuda:0 instead", param_hint="--gpus") from None
    ids = parsed if isinstance(parsed, list) else list(range(int(parsed or 0)))
    if not ids:
        return "cpu", parsed
    if not isinstance(ids[0], int) or ids[0] < 0:
        raise click.BadParameter(f"{gpus!r}: GPU ids are non-negative integers; use --device cuda:0 instead",
                                 param_hint="--gpus")
    try:
        return str(resolve_device(f"cuda:{ids[0]}", option="--gpus")), parsed
    except InputError:
        message = "--gpus was given but no CUDA device is visible to PyTorch; use --device cpu"
        raise click.ClickException(message) from None


@click.command("hear-predict")
@click.argument("emb_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--grid", type=click.Choice(["default", "fast", "faster"]), default="default", show_default=True,
              help="The kit's hyper-parameter grid.")
@click.option("--grid-points", type=click.IntRange(min=1), default=8, show_default=True,
              help="How many shuffled grid points to try on the first split.")
@device_option(aliases=(Alias("--gpus", type=str, convert=lambda gpus: gpus_device(gpus)[0]),))
@click.option("--in-memory/--memmap", default=True, show_default=True,
              help="Load embeddings into memory, or read them from the memmaps batch by batch.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def hear_predict(emb_dirs, grid, grid_points, device, in_memory, progress):
    """Train and test the HEAR downstream predictor on embedding task folders (EMB_DIRS: task folders, or folders
    holding them), writing test.predicted-scores.json as the eval kit does."""
    device = resolve_device(device)
    parsed_gpus = [device.index] if device.type == "cuda" else None   # recorded as the kit's "gpus"
    device = str(device)
    folders = task_folders(emb_dirs)
    for folder in tqdm(folders, desc="tasks", disable=not progress or len(folders) == 1):
        done = folder / "prediction-done.json"
        if done.exists():
            click.echo(f"{folder}: already predicted ({done.name} exists); skipping")
            continue
        start = time.time()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        result = predict_task(folder, grid, grid_points, device, in_memory, progress)
        task = read_task(folder)
        gpu_mem = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.startswith("cuda") else None
        fileio.write_text(done, json.dumps({
            "time": time.time() - start, "embedding_path": str(folder), "embedding_size": embedding_size(task),
            "grid_points": grid_points, "gpus": parsed_gpus, "gpu_max_mem": gpu_mem,
            "gpu_device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
            "in_memory": in_memory, "deterministic": True}, indent=4))
        key = "aggregated_scores" if "aggregated_scores" in result else next(iter(result))
        score = result[key].get("test_score_mean", result[key].get("test_score"))
        click.echo(f"{folder.name}: test {task.metadata['evaluation'][0]} = {score:.6f}")
