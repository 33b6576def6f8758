"""A generic task from an EVAR-style metadata CSV: ``csv:/path/meta.csv``.

Columns ``file_name,label,split`` (split = train/valid/test) or ``file_name,label,fold`` (leave-one-fold-out);
``file_name`` is relative to the CSV's folder; multi-label rows join labels with ``;`` (an empty label means none;
a single-label row needs its label). A file listed twice stops the reader unless ``allow_duplicates``.
Protocol facts come from an optional first line ``# unit_sec=4.0[, multilabel=true][, metric=mAP][, name=x]`` or
from a sibling ``task.json`` with the same keys (the JSON wins). ``unit_sec`` is required. A ``task.json`` may also
carry the protocol settings the task asks for (JSON objects, see :class:`TaskData`): ``probe`` (linear-probe
parameters), ``finetune`` (a recipe and the run's seeds / rounds / loader workers) and ``table_notes`` (protocol ->
a line for the result table); the mini benchmark writes them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from evaluation.tasks.base import SPLITS, Clip, DatasetError, TaskData
from evaluation.tasks.layout import (check_rows, check_vocabulary, line_numbers, read_json, require, split_missing,
                                       vocabulary)

HELP = ("a task CSV needs columns file_name,label and split (train/valid/test) or fold, and unit_sec given by a "
        "first line '# unit_sec=4.0' or a task.json beside it")
MULTI_SEP = ";"


def parse_bool(value) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")


def read_settings(path: Path) -> dict:
    """Settings from the CSV's leading comment line and a sibling task.json."""
    settings: dict = {}
    with open(path, encoding="utf-8") as f:
        first = f.readline().strip()
    if first.startswith("#"):
        for item in first[1:].replace(";", ",").split(","):
            if "=" in item:
                key, value = item.split("=", 1)
                settings[key.strip()] = value.strip()
    side = path.parent / "task.json"
    if side.is_file():
        given = read_json(side, "fix or remove it")
        if not isinstance(given, dict):
            raise DatasetError(f"{side}: must be a JSON object ({{\"unit_sec\": ...}}), got a "
                               f"{type(given).__name__}; fix or remove it")
        check_protocol_settings(side, given)
        settings.update(given)
    return settings


FINETUNE_RUN_KEYS = ("recipe", "seeds", "max_rounds", "num_workers")


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_protocol_settings(side: Path, given: dict) -> None:
    """The task.json's ``probe`` and ``finetune`` settings, checked when read: an unknown key or a value of the
    wrong kind raises a one-line :class:`DatasetError` naming the file and the key (not a traceback at run time)."""
    def bad(key: str, what: str):
        raise DatasetError(f"{side}: {key} {what}; fix or remove it")

    for key in ("probe", "finetune", "table_notes"):
        if key in given and not isinstance(given[key], dict):
            bad(repr(key), "must be a JSON object")
    probe = given.get("probe", {})
    if probe:
        from evaluation.probe import LinearProbe

        known = LinearProbe().get_params()
        for key in probe:
            if key not in known:
                bad(f"probe.{key}", f"is not a linear-probe setting (known: {', '.join(sorted(known))})")
    finetune = given.get("finetune", {})
    for key in finetune:
        if key not in FINETUNE_RUN_KEYS:
            bad(f"finetune.{key}", f"is not a fine-tune setting (known: {', '.join(FINETUNE_RUN_KEYS)})")
    seeds = finetune.get("seeds")
    if seeds is not None and not (isinstance(seeds, list) and seeds and all(_is_int(s, 0) for s in seeds)):
        bad("finetune.seeds", f"must be a list of non-negative integers, got {seeds!r}")
    if finetune.get("max_rounds") is not None and not _is_int(finetune["max_rounds"], 1):
        bad("finetune.max_rounds", f"must be an integer >= 1, got {finetune['max_rounds']!r}")
    if finetune.get("num_workers") is not None and not _is_int(finetune["num_workers"], 0):
        bad("finetune.num_workers", f"must be an integer >= 0, got {finetune['num_workers']!r}")
    recipe = finetune.get("recipe")
    if recipe is not None:
        if not isinstance(recipe, dict):
            bad("finetune.recipe", "must be a JSON object of recipe fields")
        from dataclasses import fields

        from evaluation.finetune.recipes import Recipe

        known = [f.name for f in fields(Recipe)]
        for key in recipe:
            if key not in known:
                bad(f"finetune.recipe.{key}", f"is not a recipe field (known: {', '.join(known)})")


def read(path: Path, skip_missing: bool = False, allow_duplicates: bool = False) -> TaskData:
    path = Path(path).resolve()
    require(path, "task CSV", HELP)
    settings = read_settings(path)
    try:
        table = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DatasetError(f"{path}: cannot parse the CSV ({str(err).splitlines()[0]}); {HELP}") from None
    has = set(table.columns)
    if not {"file_name", "label"} <= has or not ({"split", "fold"} & has):
        raise DatasetError(f"{path}: columns are {sorted(has)}; {HELP}")
    if "unit_sec" not in settings:
        raise DatasetError(f"{path}: unit_sec is not given; {HELP}")
    try:
        unit_sec = float(settings["unit_sec"])
    except ValueError:
        raise DatasetError(f"{path}: unit_sec={settings['unit_sec']!r} is not a number") from None
    multilabel = parse_bool(settings.get("multilabel", any(MULTI_SEP in v for v in table.label)))
    metric = settings.get("metric", "mAP" if multilabel else "accuracy")
    if metric not in ("accuracy", "mAP"):
        raise DatasetError(f"{path}: metric must be 'accuracy' or 'mAP', got {metric!r}")
    if "split" in has:
        bad = sorted(set(table.split) - set(SPLITS))
        if bad:
            raise DatasetError(f"{path}: split values {bad} are not train/valid/test; {HELP}")
        splits, folds = list(table.split), None
    else:
        splits = [v if v.startswith("fold") else f"fold{v}" for v in table.fold]
        folds = sorted(set(splits), key=lambda s: (len(s), s))
    name = str(settings.get("name", path.stem))
    paths = [path.parent / file_name for file_name in table.file_name]
    if multilabel:
        labels = [tuple(x.strip() for x in v.split(MULTI_SEP) if x.strip()) for v in table.label]
    else:
        labels = [(v.strip(),) for v in table.label]
    check_rows(name, str(path), paths, labels, line_numbers(path, len(table), comment="#"), multilabel=multilabel,
               allow_duplicates=allow_duplicates, fix=HELP)
    present, missing = split_missing(name, paths, skip_missing, f"check the file_name column of {path}")
    clips = [Clip(p, lab, s) for p, lab, s, ok in zip(paths, labels, splits, present) if ok]
    classes = vocabulary(clips, folds)
    check_vocabulary(name, clips, classes, multilabel, str(path))
    protocol = {}
    for key in ("probe", "finetune", "table_notes"):
        value = settings.get(key, {})
        if not isinstance(value, dict) or (key == "table_notes" and not all(isinstance(v, str)
                                                                           for v in value.values())):
            raise DatasetError(f"{path.parent / 'task.json'}: {key!r} must be a JSON object"
                               + (" of strings" if key == "table_notes" else "") + "; fix or remove it")
        protocol[key] = value
    return TaskData(name, clips, classes, multilabel=multilabel, metric=metric, unit_sec=unit_sec, folds=folds,
                    source=str(path), missing=missing, **protocol,
                    meta_files=[path] + [m for m in (path.parent / "task.json", path.parent / ".done.json")
                                         if m.is_file()])   # .done.json: the mini benchmark's file hashes
