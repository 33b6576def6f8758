"""Fine-tune a task over its rounds (folds) and seeds; aggregate and record the scores.

Layout under ``out_dir``: ``<task>/<weights id>/<recipe name>-<recipe key>/seed<N>/<round>/`` (one run folder per
fold and seed, see :mod:`trainer`), plus ``summary.json`` beside the seed folders.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation.tasks.base import TaskData

from . import distributed as D
from .recipes import Recipe, recipe_for
from .trainer import FinetuneError, RoundResult, TrainOptions, train_round, write_json

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
        return {"task": self.task, "weights": self.weights, "metric": self.metric, "recipe": self.recipe.to_dict(),
                "rule": self.rule, "seed_scores": self.seed_scores, "mean": self.mean, "std": self.std,
                "results": [{k: v for k, v in r.to_dict().items() if k != "history"} for r in self.results]}


def weights_id(weights: str | Path) -> str:
    """``<parent folder>-<file stem>``, like EVAR's run ids."""
    p = Path(weights)
    return f"{p.parent.name}-{p.stem}" if p.parent.name else p.stem


def run_dir_for(out_dir: Path, task: str, weights: str | Path, recipe: Recipe, seed: int, rnd: str) -> Path:
    return Path(out_dir) / task / weights_id(weights) / f"{recipe.name}-{recipe.key()}" / f"seed{seed}" / rnd


def score_rows(summary: FinetuneSummary) -> list[dict]:
    """One row per (seed, round) in the shared ``scores.csv`` columns."""
    return [{"weights": summary.weights, "task": r.task, "protocol": PROTOCOL, "seed": r.seed, "fold": r.round,
             "metric": r.metric, "score": r.score} for r in summary.results]


def append_scores(rows: list[dict], path: str | Path) -> None:
    """Append rows to a scores CSV (the shared ``evaluation.scores`` writer when present)."""
    try:
        from evaluation.scores import append_rows  # the linear-probe engineer's shared writer
    except ImportError:
        append_rows = None
    if append_rows is not None:
        append_rows(rows, path)
        return
    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=["weights", "task", "protocol", "seed", "fold", "metric", "score"])
    frame.to_csv(path, mode="a", header=not path.exists() or path.stat().st_size == 0, index=False)


def run_finetune(task_data: TaskData, weights: str | Path, out_dir: str | Path, recipe: Recipe | None = None,
                 seeds=DEFAULT_SEEDS, opts: TrainOptions | None = None, resume: bool = False,
                 scores_csv: str | Path | None = None, rounds: list[str] | None = None,
                 info: D.DistInfo | None = None) -> FinetuneSummary:
    """Fine-tune ``weights`` on every round (fold) of ``task_data`` for each seed.

    recipe: default :func:`recipes.recipe_for` the task name. opts: how to run (device, workers, no-valid rule);
    its seed is replaced by each of ``seeds``. rounds: restrict to these round names (e.g. one fold).
    scores_csv: append one row per (seed, round) with protocol ``finetune``. Returns the per-seed means (a seed's
    score is the mean over its rounds) and every round's result.
    """
    recipe = recipe or recipe_for(task_data.name)
    opts = opts or TrainOptions()
    info = info or D.setup(opts.device)
    all_rounds = task_data.rounds()
    if rounds:
        unknown = set(rounds) - {r.name for r in all_rounds}
        if unknown:
            raise FinetuneError(f"task {task_data.name} has no round(s) {sorted(unknown)}; it has "
                                f"{[r.name for r in all_rounds]}")
        all_rounds = [r for r in all_rounds if r.name in rounds]
    results: list[RoundResult] = []
    seed_scores: dict[int, float] = {}
    for seed in seeds:
        run_opts = TrainOptions(**{**opts.__dict__, "seed": int(seed)})
        seed_results = []
        for rnd in all_rounds:
            result = train_round(task_data, rnd, weights, recipe, run_dir_for(out_dir, task_data.name, weights,
                                 recipe, seed, rnd.name), run_opts, resume=resume, info=info)
            seed_results.append(result)
        results.extend(seed_results)
        seed_scores[int(seed)] = float(np.mean([r.score for r in seed_results]))
    rule = results[0].rule if results else ""
    summary = FinetuneSummary(task_data.name, str(weights), task_data.metric, recipe, rule, seed_scores, results)
    if info.is_main:
        summary_path = Path(out_dir) / task_data.name / weights_id(weights) / f"{recipe.name}-{recipe.key()}"
        recorded = (summary_path / "summary.json").exists()  # a resumed, already recorded job: no duplicate rows
        write_json(summary.to_dict(), summary_path / "summary.json")
        if scores_csv is not None and not recorded:
            append_scores(score_rows(summary), scores_csv)
    return summary
