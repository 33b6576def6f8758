"""Which embedding splits train, validate and test the predictor, by the task's ``split_mode``.

* ``trainvaltest``: one run, train = ``train``, valid = ``valid``, test = ``test``.
* ``presplit_kfold`` / ``new_split_kfold``: one run per fold. Folds are sorted; for fold i, test = fold i,
  valid = fold i+1 (cyclic), train = the remaining k-2 folds. Scores are averaged over the k runs.
"""
from __future__ import annotations

from .errors import HearTaskError

KFOLD_MODES = ("presplit_kfold", "new_split_kfold")


def kfold_splits(folds: list[str]) -> list[dict[str, list[str]]]:
    """Leave-one-fold-out runs with the next fold as validation."""
    ordered = sorted(folds)
    if len(set(ordered)) != len(ordered):
        raise HearTaskError(f"fold names repeat in {folds}; each fold must be listed once in 'splits'")
    if len(ordered) < 3:
        raise HearTaskError(f"k-fold tasks need at least 3 folds (test, valid and train), got {ordered}")
    runs = []
    for i, test in enumerate(ordered):
        valid = ordered[(i + 1) % len(ordered)]
        runs.append({"train": [f for f in ordered if f not in (test, valid)], "valid": [valid], "test": [test]})
    return runs


def data_splits(metadata: dict, source: str = "task_metadata.json") -> list[dict[str, list[str]]]:
    """The list of ``{"train": [...], "valid": [...], "test": [...]}`` runs for a task."""
    mode = metadata.get("split_mode")
    if mode == "trainvaltest":
        return [{"train": ["train"], "valid": ["valid"], "test": ["test"]}]
    if mode in KFOLD_MODES:
        folds = metadata.get("splits")
        if not folds or not all(isinstance(f, str) for f in folds):
            raise HearTaskError(f"{source}: a {mode} task must list its folds in 'splits' (e.g. fold00, fold01...)")
        return kfold_splits(list(folds))
    raise HearTaskError(f"{source}: unknown split_mode {mode!r}; expected trainvaltest, presplit_kfold or "
                        "new_split_kfold (use a task folder made by hear-preprocess)")
