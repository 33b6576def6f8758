"""Running the linear-evaluation protocol on one task: embeddings (cached) -> probe per seed and round -> scores.

EVAR's ``2pass_lineareval.py``: embeddings are extracted once (crop seed 42) and the probe is trained with seeds
42, 43, 44 on the same embeddings; a seed's score is the mean over folds. Each finished (seed, round) is appended
to ``scores.csv`` at once, and rows already there are skipped, so a killed run resumes where it stopped. Rows,
cached embeddings and the run record are keyed by the weight file's SHA-256 and the task's fingerprint as well as
by their names, so another weight file or task that happens to share a label is evaluated, never reused.
"""
from __future__ import annotations

import json
import platform
import re
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation.embeddings import CropSettings, extract
from evaluation.probe import LinearProbe
from evaluation.scores import ScoreRow, append_scores, done_keys, row_key, weights_label
from evaluation.tasks.base import TaskData
from m2d_hear.cli_vocabulary import embedding_precision
from m2d_hear.distributed import init_distributed
from m2d_hear.errors import InputError
from m2d_hear.fileio import locked, sha256_file, write_text

PROTOCOL = "linear"
DEFAULT_SEEDS = (42, 43, 44)


def targets(task: TaskData, clips) -> np.ndarray:
    """Class labels (single-label) or a binary [N, C] matrix over ``task.classes`` (labels outside it dropped)."""
    if not task.multilabel:
        return np.asarray([c.label for c in clips], dtype=object)
    index = task.class_index()
    y = np.zeros((len(clips), len(task.classes)), dtype=np.float32)
    for i, c in enumerate(clips):
        for label in c.labels:
            if label in index:
                y[i, index[label]] = 1.0
    return y


def run_file(out_dir: Path, weights: str, task: str, weights_sha256: str = "", task_id: str = "") -> Path:
    """``runs/<label>@w<sha>-t<task id>__<task>__linear.json``: one record per weights and task identity."""
    safe = re.sub(r"[^\w.@+-]+", "_", weights.replace("/", "__"))   # e.g. a baseline's label with spaces
    ids = f"@w{weights_sha256[:8]}-t{task_id[:8]}" if weights_sha256 or task_id else ""
    return out_dir / "runs" / f"{safe}{ids}__{task}__{PROTOCOL}.json"


def probe_settings(params: dict) -> dict:
    """The probe's settings as its run record stores them (JSON types), the seed aside."""
    settings = json.loads(json.dumps(LinearProbe(**params).get_params(), default=str))
    return {k: v for k, v in settings.items() if k != "seed"}


def check_same_probe(record_path: Path, settings: dict, out_dir: Path) -> None:
    """Rows already in ``scores.csv`` are reused only if they were made with the same probe settings; otherwise
    the old and new scores would stand in one table as if they were one protocol."""
    if not record_path.is_file():
        return
    stored = json.loads(record_path.read_text()).get("probe", {})
    differ = sorted(k for k in settings if k != "device" and k in stored and stored[k] != settings[k])
    if differ:
        shown = ", ".join(f"{k} {stored[k]} vs {settings[k]}" for k in differ)
        raise InputError(f"{out_dir / 'scores.csv'} already holds linear scores of these weights on this task made "
                         f"with other probe settings ({shown}; {record_path.name}); use another --out, or delete "
                         "those rows and the run record to replace them")


def evaluate_linear(task: TaskData, weights: str | Path, out_dir: str | Path, seeds=DEFAULT_SEEDS,
                    cache_root: str | Path | None = None, model=None, device: str = "auto", batch_size: int = 16,
                    num_workers: int = 2, weights_name: str | None = None, probe_params: dict | None = None,
                    progress: bool = True, log=print, trust_checkpoint: bool = False, config: str | None = None,
                    precision: str = "auto") -> dict:
    """Linear evaluation of ``weights`` on ``task``; returns the run record (also saved as JSON).

    The probe takes ``task.probe`` (settings the task asks for, e.g. the mini benchmark's), then ``probe_params``
    on top. The task's table note for this protocol is recorded as ``table_note`` while its settings hold; the
    tables print it. ``trust_checkpoint``: admit a weight file that needs full unpickling (see
    :mod:`m2d_hear.checkpoint`); ``config``: the configuration of a renamed weight file. ``precision`` (``--precision``)
    of the encoder passes: auto is fp32, the official numerics; bf16/fp16 autocast embeddings are cached apart and
    their rows labelled ``<weights>+bf16`` / ``+fp16``."""
    import m2d_hear
    from m2d_hear.hear import PRECISIONS

    out_dir, weights = Path(out_dir), Path(weights)
    cache_root = Path(cache_root) if cache_root else out_dir / "cache"
    precision = embedding_precision(precision)
    # under torchrun only the embedding extraction is sharded across ranks; rank 0 then trains the probes and
    # writes the results
    env = init_distributed(device)
    dev = env.device
    started = time.time()
    if model is None:
        model = m2d_hear.load_m2d(weights, config=config, trust_checkpoint=trust_checkpoint)
    autocast = hasattr(model, "autocast_dtype")   # an M2D encoder (not a statistics baseline)
    if autocast:
        model.autocast_dtype = PRECISIONS[precision]
    label = (weights_name or weights_label(weights)) + (f"+{precision}" if autocast and precision != "fp32" else "")
    crop = CropSettings(task.unit_sec, model.sample_rate)
    t0 = time.time()
    emb = extract(model, task, weights, cache_root, crop=crop, batch_size=batch_size, num_workers=num_workers,
                  device=dev, progress=progress)
    embed_sec = time.time() - t0
    if emb is None or not env.is_main:   # other ranks only extract their shards
        return {}
    params = {**task.probe, **(probe_params or {})}
    note = task.table_notes.get(PROTOCOL, "") if all(params[k] == v for k, v in task.probe.items()) else ""
    weights_sha, task_id = sha256_file(weights), task.fingerprint()
    done = done_keys(out_dir)
    rounds = task.rounds()
    record_path = run_file(out_dir, label, task.name, weights_sha, task_id)
    jobs = [(s, r) for s in seeds for r in rounds]
    reused = [(s, r) for s, r in jobs if row_key(label, weights_sha, task.name, task_id, PROTOCOL, s, r.name) in done]
    if reused:
        check_same_probe(record_path, probe_settings(params), out_dir)
    results = []
    t0 = time.time()
    for seed, rnd in tqdm(jobs, desc=f"probe {task.name}", unit="run", disable=not progress):
        if row_key(label, weights_sha, task.name, task_id, PROTOCOL, seed, rnd.name) in done:
            continue
        Xtr, ytr = emb.train(rnd.train), targets(task, rnd.train)
        Xva, yva = (emb.train(rnd.valid), targets(task, rnd.valid)) if rnd.valid else (None, None)
        Xte, yte = emb.test(rnd.test), targets(task, rnd.test)
        probe = LinearProbe(seed=int(seed), device=str(dev), multilabel=task.multilabel, **params)
        probe.fit(Xtr, ytr, Xva, yva, classes=None if task.multilabel else task.classes)
        value = probe.score(Xte, yte)
        row = ScoreRow(weights=label, task=task.name, protocol=PROTOCOL, seed=int(seed), fold=rnd.name,
                       metric=task.metric, score=float(value), weights_sha256=weights_sha, task_id=task_id,
                       n_train=len(rnd.train), n_test=len(rnd.test), best_epoch=int(probe.best_epoch_),
                       run=str(record_path.relative_to(out_dir)))
        append_scores(out_dir, [row])
        results.append({**asdict(row), "epochs": probe.n_epochs_, "best_valid": probe.best_valid_score_,
                        "valid": "given" if rnd.valid else "10% carve-out",
                        "valid_covers_all_classes": probe.valid_covers_all_classes_})
    probe_sec = time.time() - t0
    record = {
        "protocol": PROTOCOL, "weights": str(weights.resolve()), "weights_label": label,
        "weights_sha256": weights_sha, "model_config": repr(model.config),
        "embedding_dim": int(model.scene_embedding_size), "norm_stats": list(model.norm_stats),
        "task": {"name": task.name, "id": task_id, "source": task.source, "clips": len(task.clips),
                 "classes": len(task.classes),
                 "multilabel": task.multilabel, "metric": task.metric, "unit_sec": task.unit_sec,
                 "folds": task.folds, "missing_files": len(task.missing),
                 "splits": {r.name: {"train": len(r.train), "valid": len(r.valid or []), "test": len(r.test)}
                            for r in rounds}},
        "crop": asdict(crop), "cache": str(emb.folder),
        "probe": {**probe_settings(params), "seed": list(map(int, seeds))},
        **({"table_note": note} if note else {}),
        "device": str(dev), "precision": precision if autocast else None, "batch_size": batch_size,
        "num_workers": num_workers,
        "seconds": {"embedding": round(embed_sec, 2), "probe": round(probe_sec, 2),
                    "total": round(time.time() - started, 2)},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
    }
    keep = {(r["seed"], r["fold"]) for r in results}
    with locked(record_path):   # another run of the same weights and task may finish at the same time
        previous = json.loads(record_path.read_text()) if record_path.is_file() else {}
        if (previous.get("weights_sha256"), previous.get("task", {}).get("id")) != (weights_sha, task_id):
            previous = {}   # a record of other weights or another task under this name: never merged
        record["results"] = [r for r in previous.get("results", []) if (r["seed"], r["fold"]) not in keep] + results
        write_text(record_path, json.dumps(record, indent=1, default=str))
    return record
