"""Fine-tune a task over its rounds (folds) and seeds; aggregate and record the scores.

Layout under ``out_dir``: ``<task>-t<task id>/<weights id>/<recipe name>-<recipe key>[-carve]/seed<N>/<round>/``
(one run folder per fold and seed, see :mod:`trainer`), plus ``summary.json`` beside the seed folders. The task id
is 8 hex digits of :meth:`TaskData.fingerprint` and the weights id ends with 8 hex digits of the weight file's
SHA-256, so a finished run is reused (``resume``) only for the same task data and the same weights, never for
another file or dataset that shares their names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation.scores import ScoreRow, append_scores, weights_label
from evaluation.tasks.base import TaskData
from m2d_hear import distributed as D
from m2d_hear.fileio import sha256_file, write_json

from .recipes import Recipe, task_recipe
from .trainer import FinetuneError, RoundResult, TrainOptions, train_round

DEFAULT_SEEDS = (43, 44, 45)
PROTOCOL = "finetune"


@dataclass
class FinetuneSummary:
    task: str
    weights: str
    metric: str
    recipe: Recipe
    rule: str
    seed_scores: dict[int, float]            # seed -> mean over rounds
    results: list[RoundResult] = field(default_factory=list)
    task_id: str = ""                        # TaskData.fingerprint() of the task fine-tuned on
    weights_sha256: str = ""

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.seed_scores.values())))

    @property
    def std(self) -> float:
        values = list(self.seed_scores.values())
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    def line(self) -> str:
        rule = {"best-test": "best test epoch (papers' rule)", "valid": "best valid epoch",
                "carve": "best epoch on a 10% train carve-out"}.get(self.rule, self.rule)
        return (f"{self.task}: fine-tuning {self.metric} {100 * self.mean:.2f} ± {100 * self.std:.2f} (std over "
                f"{len(self.seed_scores)} seeds; {rule}; recipe {self.recipe.name} [{self.recipe.source}])")

    def to_dict(self) -> dict:
        return {"task": self.task, "task_id": self.task_id, "weights": self.weights,
                "weights_sha256": self.weights_sha256, "metric": self.metric, "recipe": self.recipe.to_dict(),
                "rule": self.rule, "seed_scores": self.seed_scores, "mean": self.mean, "std": self.std,
                "results": [{k: v for k, v in r.to_dict().items() if k != "history"} for r in self.results]}


def weights_id(weights: str | Path) -> str:
    """``<parent folder>-<file stem>-<8 hex digits of its SHA-256>``: EVAR's run id made unique to the content."""
    p = Path(weights)
    name = f"{p.parent.name}-{p.stem}" if p.parent.name else p.stem
    return f"{name}-{sha256_file(p)[:8]}" if p.is_file() else name


def task_dir(out_dir: Path, task: str, task_id: str = "") -> Path:
    """``out_dir/<task>-t<8 hex digits of the task id>`` (``out_dir/<task>`` without an id)."""
    return Path(out_dir) / (f"{task}-t{task_id[:8]}" if task_id else task)


def recipe_dir(out_dir: Path, task: str, weights: str | Path, recipe: Recipe, no_valid: str = "best-test",
               task_id: str = "") -> Path:
    """The folder of one (task, weights, recipe) job; the carve-out rule gets its own folder."""
    name = f"{recipe.name}-{recipe.key()}" + ("-carve" if no_valid == "carve" else "")
    return task_dir(out_dir, task, task_id) / weights_id(weights) / name


def run_dir_for(out_dir: Path, task: str, weights: str | Path, recipe: Recipe, seed: int, rnd: str,
                no_valid: str = "best-test", task_id: str = "") -> Path:
    return recipe_dir(out_dir, task, weights, recipe, no_valid, task_id) / f"seed{seed}" / rnd


def protocol_for(rule: str) -> str:
    """``finetune`` for the papers' selection (valid split, or best test epoch without one); the validation
    carve-out gets its own protocol name so that tables never mix the two rules."""
    return PROTOCOL + "-carve" if rule == "carve" else PROTOCOL


def score_rows(summary: "FinetuneSummary", run_file: str = "") -> list[dict]:
    """One row per (seed, round) in the shared ``scores.csv`` columns."""
    rows = []
    for r in summary.results:
        rows.append({"weights": weights_label(summary.weights), "task": r.task, "protocol": protocol_for(r.rule),
                     "seed": r.seed, "fold": r.round, "metric": r.metric, "score": r.score,
                     "weights_sha256": summary.weights_sha256, "task_id": summary.task_id,
                     "best_epoch": r.best_epoch, "n_train": r.n_train, "n_test": r.n_test, "run": run_file})
    return rows


def run_finetune(task_data: TaskData, weights: str | Path, out_dir: str | Path, recipe: Recipe | None = None,
                 seeds=DEFAULT_SEEDS, opts: TrainOptions | None = None, resume: bool = False,
                 scores_dir: str | Path | None = None, rounds: list[str] | None = None,
                 info: D.DistEnv | None = None) -> FinetuneSummary:
    """Fine-tune ``weights`` on every round (fold) of ``task_data`` for each seed.

    recipe: default the task's own (:func:`recipes.task_recipe`). opts: how to run (device, workers, no-valid rule);
    its seed is replaced by each of ``seeds``. rounds: restrict to these round names (e.g. one fold).
    scores_dir: append one row per (seed, round) to ``scores_dir/scores.csv`` (protocol ``finetune``, or
    ``finetune-carve`` under the carve-out rule). Returns the per-seed means (a seed's
    score is the mean over its rounds) and every round's result.
    """
    recipe = recipe or task_recipe(task_data)
    opts = opts or TrainOptions()
    info = info or D.init_distributed(opts.device)
    all_rounds = task_data.rounds()
    if rounds:
        unknown = set(rounds) - {r.name for r in all_rounds}
        if unknown:
            raise FinetuneError(f"task {task_data.name} has no round(s) {sorted(unknown)}; it has "
                                f"{[r.name for r in all_rounds]}")
        all_rounds = [r for r in all_rounds if r.name in rounds]
    results: list[RoundResult] = []
    seed_scores: dict[int, float] = {}
    task_id = task_data.fingerprint()
    for seed in seeds:
        run_opts = TrainOptions(**{**opts.__dict__, "seed": int(seed)})
        seed_results = []
        for rnd in all_rounds:
            run_dir = run_dir_for(out_dir, task_data.name, weights, recipe, seed, rnd.name, opts.no_valid, task_id)
            result = train_round(task_data, rnd, weights, recipe, run_dir, run_opts, resume=resume, info=info)
            seed_results.append(result)
        results.extend(seed_results)
        seed_scores[int(seed)] = float(np.mean([r.score for r in seed_results]))
    rule = results[0].rule if results else ""
    summary = FinetuneSummary(task_data.name, str(weights), task_data.metric, recipe, rule, seed_scores, results,
                              task_id=task_id, weights_sha256=sha256_file(weights))
    if info.is_main:
        summary_path = recipe_dir(out_dir, task_data.name, weights, recipe, opts.no_valid, task_id)
        write_json(summary_path / "summary.json", summary.to_dict(), indent=1)
        if scores_dir is not None:
            run_file = summary_path / "summary.json"
            try:
                run_file = run_file.resolve().relative_to(Path(scores_dir).resolve())
            except ValueError:
                pass
            append_scores(scores_dir, [ScoreRow(**row) for row in score_rows(summary, str(run_file))])
    return summary


def task_defaults(task_data: TaskData, seeds=None, rounds: list[str] | None = None,
                  num_workers: int | None = None) -> tuple:
    """``(seeds, rounds, num_workers)`` with what is not given (empty / None) taken from the task's own settings
    (``task_data.finetune``: ``seeds``; ``max_rounds`` = only the first rounds; ``num_workers``; the mini
    benchmark's task.json sets them), else :data:`DEFAULT_SEEDS`, every round and None (the caller's default).
    ``m2d-eval finetune`` and :func:`evaluate_finetune` (``m2d-eval all``) both default through this."""
    own = task_data.finetune
    seeds = seeds or own.get("seeds") or DEFAULT_SEEDS
    if not rounds and own.get("max_rounds"):
        rounds = [r.name for r in task_data.rounds()[:int(own["max_rounds"])]]
    if num_workers is None and own.get("num_workers") is not None:
        num_workers = int(own["num_workers"])
    return seeds, (list(rounds) if rounds else None), num_workers


def evaluate_finetune(task_data: TaskData, weights: str | Path, out_dir: str | Path, device: str | None = None,
                      seeds=None, resume: bool = True, recipe: Recipe | None = None,
                      rounds: list[str] | None = None, **options) -> FinetuneSummary:
    """The ``m2d-eval all`` hook: fine-tune with the task's recipe, runs under ``out_dir/finetune``, rows appended
    to ``out_dir/scores.csv``. ``resume`` defaults to True so that a re-run of ``all`` continues or reuses runs;
    ``options`` are :class:`TrainOptions` fields (``num_workers``, ``no_valid``, ``precision`` ...).

    What is not given comes from the task's own settings (``task_data.finetune``: ``seeds``, ``max_rounds`` = only
    the first rounds, ``num_workers``; the mini benchmark's task.json sets them), else the defaults."""
    seeds, rounds, num_workers = task_defaults(task_data, seeds, rounds, options.get("num_workers"))
    if num_workers is not None:
        options["num_workers"] = num_workers
    opts = TrainOptions(device=device, **options)
    return run_finetune(task_data, weights, Path(out_dir) / "finetune", recipe=recipe, seeds=seeds, opts=opts,
                        resume=resume, scores_dir=out_dir, rounds=rounds)
