"""The eval kit's hyper-parameter grids for the downstream predictor, and its choice of grid points.

``default``: 1 or 2 hidden layers of 1024 with BatchNorm and dropout 0.1, Adam at 4 learning rates, xavier
uniform/normal initialisation, patience 20 validations, validation every 3 epochs, at most 500 epochs, batch 1024
(16 combinations). ``fast`` changes max_epochs to {10, 50} and the validation cadence to {3, 10}; ``faster`` uses
hidden_layers {0, 1}, hidden_dim {64, 128}, patience {1, 3}, 10 epochs, validation every epoch.

A task may override entries: the kit's own table (``dcase2016_task2`` validates every 10 epochs), then
``evaluation_params.task_specific_param_grid`` in the task metadata. The grid is expanded in scikit-learn
``ParameterGrid`` order, shuffled by Python's ``random`` seeded with 42 (the kit's ``seed_everything(42)``), and
the first ``n`` points are tried.
"""
from __future__ import annotations

import copy
import random

import torch

from m2d_hear.errors import InputError

PARAM_GRID: dict[str, list] = {
    "hidden_layers": [1, 2],
    "hidden_dim": [1024],
    "dropout": [0.1],
    "lr": [3.2e-3, 1e-3, 3.2e-4, 1e-4],
    "patience": [20],
    "max_epochs": [500],
    "check_val_every_n_epoch": [3],
    "batch_size": [1024],
    "hidden_norm": [torch.nn.BatchNorm1d],
    "norm_after_activation": [False],
    "embedding_norm": [torch.nn.Identity],
    "initialization": [torch.nn.init.xavier_uniform_, torch.nn.init.xavier_normal_],
    "optim": [torch.optim.Adam],
}

GRIDS: dict[str, dict[str, list]] = {
    "default": PARAM_GRID,
    "fast": {**PARAM_GRID, "max_epochs": [10, 50], "check_val_every_n_epoch": [3, 10]},
    "faster": {**PARAM_GRID, "hidden_layers": [0, 1], "hidden_dim": [64, 128], "patience": [1, 3],
               "max_epochs": [10], "check_val_every_n_epoch": [1]},
}

TASK_SPECIFIC_PARAM_GRID: dict[str, dict[str, list]] = {
    "dcase2016_task2": {"check_val_every_n_epoch": [10]},  # sed_eval is slow (the kit's comment)
}

SEED = 42


def task_grid(grid: str, metadata: dict) -> dict[str, list]:
    """The named grid with the task's overrides applied."""
    if grid not in GRIDS:
        raise InputError(f"unknown grid {grid!r}; choose one of {', '.join(GRIDS)}")
    final = copy.copy(GRIDS[grid])
    final.update(TASK_SPECIFIC_PARAM_GRID.get(metadata.get("task_name"), {}))
    final.update((metadata.get("evaluation_params") or {}).get("task_specific_param_grid", {}))
    return final


def grid_points(grid: str, metadata: dict, n: int) -> list[dict]:
    """The first ``n`` configurations of the shuffled grid, exactly as the kit orders them."""
    from sklearn.model_selection import ParameterGrid

    confs = list(ParameterGrid(task_grid(grid, metadata)))
    random.Random(SEED).shuffle(confs)
    return confs[:n]


def describe(conf: dict) -> str:
    """A short human-readable form of a configuration (for progress and logs)."""
    init = getattr(conf["initialization"], "__name__", str(conf["initialization"]))
    return (f"hidden_layers={conf['hidden_layers']} hidden_dim={conf['hidden_dim']} lr={conf['lr']:g} "
            f"init={init} patience={conf['patience']} max_epochs={conf['max_epochs']} "
            f"val_every={conf['check_val_every_n_epoch']}")


def serialize_value(value):
    """JSON form of a hyper-parameter, as the kit writes it: str/int/float/bool kept, anything else ``str()``."""
    return value if isinstance(value, (str, int, float)) else str(value)


def hparams_json(conf: dict) -> dict:
    return {k: serialize_value(v) for k, v in conf.items()}
