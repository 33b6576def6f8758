"""Fine-tuning M2D on a task with the papers' recipes (EVAR ``finetune.py`` protocol).

``run_finetune(task_data, weights, out_dir, recipe=None, seeds=(43, 44, 45), ...)`` trains every round (fold) for
every seed and returns a :class:`FinetuneSummary`; ``m2d-eval finetune`` is its command line.
Modules: ``model`` (network), ``augment``, ``optim`` (optimisers, schedule), ``recipes``, ``data`` (loading and
batch order), ``trainer`` (one run), ``runner`` (rounds x seeds), ``losses``;
process-group set-up is :mod:`m2d_hear.distributed`.
"""
from .recipes import RECIPES, Recipe, recipe_for, task_recipe
from .runner import DEFAULT_SEEDS, FinetuneSummary, evaluate_finetune, run_finetune
from .trainer import FinetuneError, RoundResult, TrainOptions, train_round

__all__ = ["RECIPES", "Recipe", "recipe_for", "task_recipe", "DEFAULT_SEEDS", "FinetuneSummary", "run_finetune",
           "evaluate_finetune", "FinetuneError", "RoundResult", "TrainOptions", "train_round"]
