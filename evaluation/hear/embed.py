"""``m2d-eval hear-embed``: embeddings of HEAR task folders, written exactly in the eval kit's on-disk format.

Input, per task (hear-preprocess output): ``task_metadata.json``, ``labelvocabulary.csv``, ``<split>.json`` and
``<rate>/<split>/<file>.wav`` at the model's rate. Output ``OUT/<task folder name>/``:

* copies of ``task_metadata.json``, ``labelvocabulary.csv`` and every ``<split>.json``;
* per clip ``<split>/<file>.embedding.npy`` (``np.save``: ``[dim]`` for scene tasks, ``[timestamps, dim]`` for
  event tasks) and ``<split>/<file>.target-labels.json`` (the clip's labels; for event tasks, per timestamp the
  labels of the events covering it, ``start <= t < end + 0.0001`` ms), plus ``<file>.timestamps.json`` (ms) for
  event tasks;
* per split ``<split>.embedding-dimensions.json`` (``[rows, dim]``), ``<split>.embeddings.npy`` (a raw float32
  memmap **without** an .npy header; read it with ``np.memmap(..., shape=tuple(dims))``; rows in the order of
  ``random.Random(0)`` shuffling the split's file list, one generator for all splits of a task in metadata order),
  ``<split>.target-labels.pkl`` (label lists in the same order), ``<split>.filename-timestamps.json`` (event tasks:
  ``[[<split dir>/<file>, ms], ...]``);
* ``profile.embeddings.json`` (seconds, peak GPU memory in GB or null, device name) and ``.done.embeddings``.

Clips are read in batches of ``max(1, int(0.7 * 120 / sample_duration * 16000 / rate))`` (1 when the duration is
null), as the kit does; clips of unequal length in one batch are embedded length by length. Every per-clip file is
written atomically and kept, so a killed run resumes where it stopped; a finished task (``.done.embeddings``) is
skipped. An output task folder left by a run with other weights, another hop or another source folder
is started afresh.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path

import click
import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

from evaluation.tasks.layout import read_json
from m2d_hear import fileio
from m2d_hear.cli_vocabulary import device_option, embedding_precision, precision_option
from m2d_hear.distributed import resolve_device

from ..cli_options import config_option, trust_checkpoint_option, weights_option
from .errors import HearTaskError

GET = "use a task folder made by hear-preprocess (the HEAR 2021 task tarballs)"
MARKER = ".m2d-embed.json"


# -------------------------------------------------------------------------------------------------- reading
def read_task_metadata(task_dir: Path) -> dict:
    from .data import check_metadata

    path = task_dir / "task_metadata.json"
    meta = check_metadata(read_json(path, GET), path)
    if "sample_duration" not in meta:
        raise HearTaskError(f"{path}: missing sample_duration (seconds, or null for variable length); {GET}")
    if not (task_dir / "labelvocabulary.csv").is_file():
        raise HearTaskError(f"{task_dir / 'labelvocabulary.csv'}: missing; {GET}")
    return meta


def batch_size_for(sample_duration: float | None, sample_rate: int) -> int:
    """The kit's clips per batch: bounded so that a batch holds about 84 s of 16-kHz audio."""
    if sample_duration is None:
        return 1
    return max(1, int(0.7 * (120 / sample_duration) * (16000 / sample_rate)))


def load_clip(path: Path, sample_rate: int) -> np.ndarray:
    """A HEAR clip as float32 mono at ``sample_rate``; wrong rate, several channels or bad audio raise."""
    from m2d_hear.audio import read_audio

    if not path.is_file():
        raise HearTaskError(f"{path}: missing; the task folder is incomplete: re-extract the task tarball")
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - read_audio below reports an undecodable file with its own message
        info = None
    if info is not None and info.samplerate != sample_rate:
        raise HearTaskError(f"{path}: {info.samplerate} Hz, but the model takes {sample_rate} Hz; use the task's "
                            f"{sample_rate}/ folder (HEAR tarballs come per rate) or resample with hear-preprocess")
    if info is not None and info.channels != 1:
        raise HearTaskError(f"{path}: {info.channels} channels; HEAR task audio is mono: mix it down "
                            "(hear-preprocess does) before embedding")
    return read_audio(path, sample_rate)


def event_labels_at(events: list[dict], timestamps: list[float], source: str) -> list[list]:
    """Per timestamp (ms), the labels of the events with ``start <= t < end + 0.0001`` (identical events count
    once, as in the kit's interval tree)."""
    unique = []
    for e in events:
        try:
            key = (float(e["start"]), float(e["end"]), e["label"])
        except (KeyError, TypeError, ValueError):
            raise HearTaskError(f"{source}: event {e!r} needs label, start and end (ms); {GET}") from None
        if key[1] + 0.0001 <= key[0]:
            raise HearTaskError(f"{source}: event {e!r} ends before it starts; fix the label file")
        if key not in unique:
            unique.append(key)
    if not unique:
        return [[] for _ in timestamps]
    starts = np.array([u[0] for u in unique])
    stops = np.array([u[1] for u in unique]) + 0.0001
    t = np.asarray(timestamps, dtype=np.float64)[:, None]
    covered = (starts[None, :] <= t) & (t < stops[None, :])
    return [[unique[j][2] for j in np.flatnonzero(row)] for row in covered]


# -------------------------------------------------------------------------------------------------- writing
def write_split_memmap(out_task: Path, split: str, split_data: dict, metadata: dict, prng: random.Random) -> None:
    """Pool a split's per-clip files into the kit's memmap, label pickle and (event) filename-timestamps."""
    outdir = out_task / split
    files = [outdir / f"{name}.embedding.npy" for name in split_data]
    prng.shuffle(files)
    event = metadata["embedding_type"] == "event"
    rows, dim = 0, None
    for f in files:
        shape = np.load(f, mmap_mode="r").shape
        if len(shape) != (2 if event else 1):
            raise HearTaskError(f"{f}: shape {shape} does not fit a {metadata['embedding_type']} task; re-embed")
        rows += shape[0] if event else 1
        if dim is not None and shape[-1] != dim:
            raise HearTaskError(f"{f}: dimension {shape[-1]} differs from other clips ({dim}); re-embed the task")
        dim = shape[-1]
    fileio.write_text(out_task / f"{split}.embedding-dimensions.json", json.dumps((rows, dim)))
    labels: list = []
    filename_timestamps: list = []
    with fileio.atomic_path(out_task / f"{split}.embeddings.npy") as tmp:
        memmap = np.memmap(tmp, dtype=np.float32, mode="w+", shape=(rows, dim))
        idx = 0
        for f in files:
            emb = np.load(f).astype(np.float32, copy=False)
            base = str(f)[: -len(".embedding.npy")]
            lbl = json.loads(Path(base + ".target-labels.json").read_text())
            if event:
                times = json.loads(Path(base + ".timestamps.json").read_text())
                if not (len(times) == len(lbl) == emb.shape[0]):
                    raise HearTaskError(f"{f}: {emb.shape[0]} embeddings, {len(lbl)} label rows, {len(times)} "
                                        "timestamps; re-embed the task")
                memmap[idx: idx + emb.shape[0]] = emb
                labels += lbl
                filename_timestamps += [(base, t) for t in times]
                idx += emb.shape[0]
            else:
                memmap[idx] = emb
                labels.append(lbl)
                idx += 1
        memmap.flush()
        del memmap
    fileio.write_pickle(out_task / f"{split}.target-labels.pkl", labels)
    if event:
        fileio.write_text(out_task / f"{split}.filename-timestamps.json", json.dumps(filename_timestamps, indent=4))


# ------------------------------------------------------------------------------------------------ embedding
def _clip_done(outdir: Path, name: str, event: bool) -> bool:
    base = outdir / name
    needed = [".embedding.npy", ".target-labels.json"] + ([".timestamps.json"] if event else [])
    return all(Path(f"{base}{suffix}").is_file() for suffix in needed)


def _embed_batch(model, waves: list[np.ndarray], event: bool, device: torch.device):
    """Embeddings (and timestamps) per clip; clips of one length go through the model together."""
    from m2d_hear.hear import get_scene_embeddings, get_timestamp_embeddings

    out: list = [None] * len(waves)
    by_length: dict[int, list[int]] = {}
    for i, w in enumerate(waves):
        by_length.setdefault(len(w), []).append(i)
    for indices in by_length.values():
        audio = torch.from_numpy(np.stack([waves[i] for i in indices])).to(device)
        with torch.no_grad():
            if event:
                emb, ts = get_timestamp_embeddings(audio, model)
                emb, ts = emb.cpu().numpy(), ts.cpu().numpy()
                for k, i in enumerate(indices):
                    out[i] = (emb[k], ts[k])
            else:
                emb = get_scene_embeddings(audio, model).cpu().numpy()
                for k, i in enumerate(indices):
                    out[i] = (emb[k], None)
    return out


def embed_task(model, task_dir: Path, out_task: Path, progress: bool = True) -> None:
    """Embed one task into ``out_task`` (resuming clips already written)."""
    metadata = read_task_metadata(task_dir)
    device = next(model.parameters()).device
    rate = int(model.sample_rate)
    event = metadata["embedding_type"] == "event"
    out_task.mkdir(parents=True, exist_ok=True)
    shutil.copy(task_dir / "task_metadata.json", out_task)
    shutil.copy(task_dir / "labelvocabulary.csv", out_task)
    batch = batch_size_for(metadata["sample_duration"], rate)
    prng = random.Random(0)
    for split in metadata["splits"]:
        split_path = task_dir / f"{split}.json"
        split_data = read_json(split_path, GET)
        if not isinstance(split_data, dict) or not split_data:
            raise HearTaskError(f"{split_path}: expected a non-empty {{file: labels}} object; {GET}")
        shutil.copy(split_path, out_task)
        audio_dir = task_dir / str(rate) / split
        if not audio_dir.is_dir():
            have = sorted(p.name for p in task_dir.iterdir() if p.is_dir() and p.name.isdigit())
            raise HearTaskError(f"{audio_dir}: missing (audio folders here: {', '.join(have) or 'none'}); the model "
                                f"needs the {rate} Hz version of the task: download that tarball or run "
                                "hear-preprocess at this rate")
        outdir = out_task / split
        outdir.mkdir(exist_ok=True)
        todo = [name for name in split_data if not _clip_done(outdir, name, event)]
        bar = tqdm(total=len(split_data), initial=len(split_data) - len(todo), unit="clip", disable=not progress,
                   desc=f"{task_dir.name}/{split} (batch {batch})")
        for start in range(0, len(todo), batch):
            names = todo[start:start + batch]
            waves = [load_clip(audio_dir / name, rate) for name in names]
            for name, (emb, ts) in zip(names, _embed_batch(model, waves, event, device)):
                base = outdir / name
                if event:
                    times = ts.tolist()
                    labels = event_labels_at(split_data[name], times, f"{split_path} ({name})")
                    fileio.write_text(Path(f"{base}.timestamps.json"), json.dumps(times))
                    fileio.write_text(Path(f"{base}.target-labels.json"), json.dumps(labels, indent=4))
                else:
                    labels = split_data[name]
                    if metadata["prediction_type"] == "multiclass" and len(labels) != 1:
                        raise HearTaskError(f"{split_path}: {name} has {len(labels)} labels but the task is "
                                            "multiclass (exactly one label per clip)")
                    fileio.write_text(Path(f"{base}.target-labels.json"), json.dumps(labels))
                fileio.save_npy(Path(f"{base}.embedding.npy"), np.asarray(emb, dtype=np.float32))
            bar.update(len(names))
        bar.close()
        write_split_memmap(out_task, split, split_data, metadata, prng)


def _run_signature(weights: Path, hop_ms: float | None, model) -> dict:
    stat = weights.stat()
    return {"weights": str(weights.resolve()), "weights_size": stat.st_size, "weights_mtime_ns": stat.st_mtime_ns,
            "hop_ms": hop_ms, "sample_rate": int(model.sample_rate),
            "embedding_size": int(model.scene_embedding_size)}


def check_hop(model, hop_ms: float | None) -> None:
    """Fail before any work when the hop cannot be made by shifting the spectrogram by whole frames."""
    if hop_ms is None or hop_ms >= model.config.frame_ms:
        return
    if hop_ms <= 0:
        raise HearTaskError(f"--hop-ms {hop_ms:g}: the hop must be positive")
    patch_t = model.config.patch_size[1]
    shifts = math.ceil(model.config.frame_ms / hop_ms)
    if patch_t % shifts:
        good = ", ".join(f"{model.config.frame_ms / k:g}" for k in range(1, patch_t + 1) if patch_t % k == 0)
        raise HearTaskError(f"--hop-ms {hop_ms:g}: this model's timestamps come in steps of "
                            f"{model.config.frame_ms:g} ms / k with k dividing {patch_t}; use one of {good}")


def task_dirs(tasks_dir: Path, task: str) -> list[Path]:
    if task == "all":
        found = sorted(p for p in tasks_dir.iterdir() if (p / "task_metadata.json").is_file())
        if not found:
            raise HearTaskError(f"{tasks_dir}: no task folder (with task_metadata.json) in it; {GET}")
        return found
    path = tasks_dir / task
    if not (path / "task_metadata.json").is_file():
        raise HearTaskError(f"{path}: not a HEAR task folder (no task_metadata.json); check --task; {GET}")
    return [path]


def embed_tasks(weights: str | Path, tasks_dir: str | Path, out: str | Path, task: str = "all",
                hop_ms: float | None = 40.0, device: str | None = None, progress: bool = True,
                echo=print, trust_checkpoint: bool = False, config: str | None = None,
                precision: str = "auto") -> list[Path]:
    """Embed the tasks; returns the output task folders (already finished ones included).
    ``trust_checkpoint``: admit a weight file that needs full unpickling (see :mod:`m2d_hear.checkpoint`);
    ``config``: the configuration of a renamed weight file; ``precision``: auto is fp32 (the official numerics),
    bf16/fp16 an opt-in autocast (see :func:`m2d_hear.hear.load_model`)."""
    from m2d_hear.hear import load_model

    weights, tasks_dir, out = Path(weights), Path(tasks_dir), Path(out)
    tasks = task_dirs(tasks_dir, task)
    device = str(resolve_device(device))
    precision = embedding_precision(precision)
    model = load_model(str(weights), config=config, timestamp_hop_ms=hop_ms, device=device, precision=precision,
                       trust_checkpoint=trust_checkpoint).eval()
    check_hop(model, hop_ms)
    signature = _run_signature(weights, hop_ms, model)
    # recorded only when given, so that an output of a run without them stays valid
    signature.update({k: v for k, v in (("config", config), ("precision", precision)) if v not in (None, "fp32")})
    done = []
    for task_dir in tasks:
        out_task = out / task_dir.name
        done.append(out_task)
        marker = out_task / MARKER
        task_signature = {**signature, "task": str(task_dir.resolve())}
        if (out_task / ".done.embeddings").exists():
            echo(f"{task_dir.name}: already embedded (.done.embeddings); skipping")
            if marker.is_file() and json.loads(marker.read_text()) != task_signature:
                echo(f"note: {out_task} was embedded with other weights, hop, source or precision ({marker.name}); "
                     "use another --out to embed with these")
            continue
        if out_task.exists():
            previous = json.loads(marker.read_text()) if marker.is_file() else None
            if previous != task_signature:
                echo(f"{out_task}: partial output of another run; starting this task afresh")
                shutil.rmtree(out_task)
        out_task.mkdir(parents=True, exist_ok=True)
        fileio.write_text(marker, json.dumps(task_signature))
        start = time.time()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        embed_task(model, task_dir, out_task, progress)
        elapsed = time.time() - start
        gpu_mem = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.startswith("cuda") else None
        name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
        fileio.write_text(out_task / "profile.embeddings.json",
                          json.dumps({"time_elapsed": elapsed, "gpu_max_mem": gpu_mem, "gpu_device_name": name},
                                     indent=4))
        (out_task / ".done.embeddings").touch()
        echo(f"{task_dir.name}: embedded in {elapsed:.1f} s -> {out_task}")
    return done


@click.command("hear-embed")
@click.option("--tasks-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of HEAR task folders (hear-preprocess output).")
@weights_option()
@config_option
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Embedding folder; each task goes to OUT/<task folder name>/.")
@click.option("--task", default="all", show_default=True, help="A task folder name, or 'all'.")
@click.option("--hop-ms", type=float, default=40.0, show_default=True,
              help="Timestamp hop for event tasks: 160/k ms with k dividing the patch width (160, 80, 40, 20...).")
@device_option()
@precision_option("auto = fp32, the official numerics")
@click.option("--progress/--no-progress", default=True, show_default=True)
@trust_checkpoint_option
def hear_embed(tasks_dir, weights, config_name, out, task, hop_ms, device, precision, progress, trust_checkpoint):
    """Compute HEAR embeddings of every task folder with m2d_hear, in the eval kit's on-disk format."""

    if hop_ms > 50:
        click.echo(f"note: a {hop_ms:g} ms hop is above HEAR's suggested 50 ms for event tasks")
    embed_tasks(weights, tasks_dir, out, task, hop_ms, device, progress, echo=click.echo,
                trust_checkpoint=trust_checkpoint, config=config_name, precision=precision)
