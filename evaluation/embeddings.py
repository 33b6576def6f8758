"""Clip embeddings for the linear probe, cached on disk and resumable.

A clip's embedding is ``M2D.scene_embeddings`` (the time mean of the frame features) of the clip cropped or
zero-padded to the task's ``unit_sec``: a random crop for training and validation use, from the start for testing
(EVAR). The random offset of each clip is drawn from a generator seeded by (crop seed, the clip's path relative to
the task folder), so it is the same whatever the order, batch or rank that processes it. Leave-one-fold-out tasks
embed each clip both ways (random crop when it is in a training fold, start crop when it is the test fold); EVAR
instead re-draws the training crops for every fold, which only matters for clips longer than ``unit_sec``.

Cache layout, under ``<cache_root>/<task>-t<task id>-w<weights sha256>-<key>/`` (8 hex digits of each hash):
``meta.json`` (everything the key was made of), ``shards/shard-NNNNN.npy`` (rows of one block of ``shard_size``
entries, written atomically as each block finishes) and, once every shard exists, ``embeddings.npy`` (all rows) and
``done.json``. The key hashes the checkpoint file's content, the model configuration, the task's identity
(:meth:`TaskData.fingerprint`: its metadata files' content and each audio file's path, size and mtime, so another
task with the same name and relative paths but other audio is another entry), the clip list, the crop settings
and, for a ``--precision bf16/fp16`` run only, the autocast dtype; a killed run resumes at the first missing
shard. Under ``torchrun`` each rank extracts the shards ``s % world_size == rank`` and rank 0 merges them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from evaluation.tasks.base import Clip, TaskData
from m2d_hear.audio import AudioError, fit_length, read_audio
from m2d_hear.distributed import barrier, dist_info
from m2d_hear.errors import InputError
from m2d_hear.fileio import atomic_path, save_npy, sha256_file, write_text

CACHE_VERSION = 2   # bump when the embedding procedure or the cache key changes (2: keyed by the task identity)
RANDOM, START = "random", "start"


@dataclass(frozen=True)
class CropSettings:
    """How clips are cut to the protocol length before embedding."""

    unit_sec: float
    sample_rate: int = 16000
    seed: int = 42   # EVAR extracts once with seed 42; the probe seeds then vary on the same embeddings

    @property
    def unit_samples(self) -> int:
        return int(self.sample_rate * self.unit_sec)


def crop_offset(length: int, unit: int, seed: int, key: str) -> int:
    """A uniformly random start in ``[0, length - unit]`` fixed by (seed, key); 0 if the clip is not longer."""
    if length <= unit:
        return 0
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int(np.random.default_rng(int.from_bytes(digest[:8], "little")).integers(0, length - unit + 1))


def clip_key(clip: Clip, task: TaskData) -> str:
    """The clip's path relative to the task folder (absolute if outside it), used for crop seeds and cache keys."""
    base = Path(task.source)
    base = base.parent if base.suffix else base
    try:
        return str(clip.path.relative_to(base))
    except ValueError:
        return str(clip.path)


def entries_for(task: TaskData) -> list[tuple[Clip, str]]:
    """(clip, crop mode) pairs to embed: test clips from the start, others randomly; both for fold tasks."""
    if task.folds:
        return [(c, m) for c in task.clips for m in (RANDOM, START)]
    return [(c, START if c.split == "test" else RANDOM) for c in task.clips]


file_hash = sha256_file   # sha256 of a file's content, memoised (m2d_hear.fileio)


def cache_meta(task: TaskData, weights: str | Path, model, crop: CropSettings) -> dict:
    entries = entries_for(task)
    clips_hash = hashlib.sha256("\n".join(f"{clip_key(c, task)}|{m}" for c, m in entries).encode()).hexdigest()
    autocast = getattr(model, "autocast_dtype", None)   # --precision bf16/fp16: other embeddings, another entry
    return {"version": CACHE_VERSION, "weights_sha256": file_hash(weights), "weights": str(weights),
            "model_config": repr(model.config), "flat_features": bool(getattr(model, "flat_features", False)),
            "embedding_dim": int(model.scene_embedding_size), "task": task.name, "task_id": task.fingerprint(),
            "clips_sha256": clips_hash,
            "n_entries": len(entries), "crop": asdict(crop),
            **({"autocast": str(autocast).removeprefix("torch.")} if autocast is not None else {})}


def cache_dir_for(cache_root: str | Path, meta: dict) -> Path:
    keyed = {k: v for k, v in meta.items() if k != "weights"}   # content, not location, decides
    key = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_root) / f"{meta['task']}-t{meta['task_id'][:8]}-w{meta['weights_sha256'][:8]}-{key}"


class CroppedClips(Dataset):
    """Decodes, resamples and crops entries in DataLoader workers; errors come back as messages, not crashes."""

    def __init__(self, items: list[tuple[int, Path, str, str]], crop: CropSettings):
        self.items = items   # (row index, path, mode, key)
        self.crop = crop

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        row, path, mode, key = self.items[i]
        try:
            wave = read_audio(path, self.crop.sample_rate)
        except AudioError as err:
            return row, None, str(err)
        unit = self.crop.unit_samples
        offset = crop_offset(len(wave), unit, self.crop.seed, key) if mode == RANDOM else 0
        return row, torch.from_numpy(np.ascontiguousarray(fit_length(wave, unit, offset))), None


def _collate(batch):
    return batch


def _worker_init(_):
    torch.set_num_threads(1)


class ClipEmbeddings:
    """Cached embeddings of one task: ``get(clips, mode)`` returns the rows for those clips."""

    def __init__(self, task: TaskData, matrix: np.ndarray, folder: Path):
        self.task, self.matrix, self.folder = task, matrix, folder
        self.index = {(c.path, m): i for i, (c, m) in enumerate(entries_for(task))}

    def get(self, clips: list[Clip], mode: str) -> np.ndarray:
        if self.task.folds is None:
            # fixed splits hold one row per clip, with the crop its split implies
            return self.matrix[[self.index[(c.path, START if c.split == "test" else RANDOM)] for c in clips]]
        return self.matrix[[self.index[(c.path, mode)] for c in clips]]

    def train(self, clips):
        return self.get(clips, RANDOM)

    def test(self, clips):
        return self.get(clips, START)


def extract(model, task: TaskData, weights: str | Path, cache_root: str | Path, crop: CropSettings | None = None,
            batch_size: int = 16, num_workers: int = 2, shard_size: int = 256, device: str | torch.device = "cpu",
            progress: bool = True, rank: int | None = None, world_size: int | None = None) -> ClipEmbeddings:
    """Embed every entry of ``task`` (or load them from the cache) and return them.

    ``model``: an :class:`m2d_hear.M2D`; ``weights``: its weight file (hashed for the cache key). Decoding and
    resampling run in ``num_workers`` worker processes (0 = in this process). ``rank``/``world_size`` default to
    the torch.distributed group, if one is initialised.
    """
    crop = crop or CropSettings(task.unit_sec, model.sample_rate)
    if crop.sample_rate != model.sample_rate:
        raise ValueError(f"crop sample rate {crop.sample_rate} differs from the model's {model.sample_rate}")
    meta = cache_meta(task, weights, model, crop)
    folder = cache_dir_for(cache_root, meta)
    merged = folder / "embeddings.npy"
    if (folder / "done.json").is_file() and merged.is_file():
        return ClipEmbeddings(task, np.load(merged, mmap_mode="r"), folder)
    d_rank, d_world = dist_info()
    rank = d_rank if rank is None else rank
    world_size = d_world if world_size is None else world_size
    folder.mkdir(parents=True, exist_ok=True)
    if rank == 0 and not (folder / "meta.json").is_file():
        write_text(folder / "meta.json", json.dumps(meta, indent=1, default=str))
    entries = entries_for(task)
    n_shards = max(1, -(-len(entries) // shard_size))
    shard_path = [folder / "shards" / f"shard-{s:05d}.npy" for s in range(n_shards)]
    mine = [s for s in range(n_shards) if s % world_size == rank and not shard_path[s].is_file()]
    if mine:
        _extract_shards(model, task, entries, mine, shard_path, shard_size, crop, batch_size, num_workers, device,
                        progress, desc=f"embed {task.name}" + (f" [rank {rank}]" if world_size > 1 else ""))
    if world_size > 1:
        barrier()
    if rank == 0:
        absent = [p for p in shard_path if not p.is_file()]
        if absent:
            raise RuntimeError(f"{len(absent)} embedding shards missing in {folder} (first {absent[0].name}); "
                               "run every rank to completion, then rerun to merge")
        rows, dim = merge_shards(shard_path, merged)
        write_text(folder / "done.json", json.dumps({"rows": rows, "dim": dim}, indent=1, default=str))
    if world_size > 1:
        barrier()
    if not merged.is_file():   # ranks without a process group: rank 0 merges when it finishes
        return None
    return ClipEmbeddings(task, np.load(merged, mmap_mode="r"), folder)


def merge_shards(shards: list[Path], path: Path) -> tuple[int, int]:
    """Concatenate shard files into one .npy through a memory map (never two copies in memory), atomically."""
    shapes = [np.load(p, mmap_mode="r").shape for p in shards]
    rows, dim = sum(s[0] for s in shapes), shapes[0][1]
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
        start = 0
        for p, (n, _) in zip(shards, shapes):
            out[start:start + n] = np.load(p, mmap_mode="r")
            start += n
        out.flush()
        del out
    return rows, dim


@torch.no_grad()
def _extract_shards(model, task, entries, shards, shard_path, shard_size, crop, batch_size, num_workers, device,
                    progress, desc):
    model = model.to(device).eval()
    items = []
    for s in shards:
        for row in range(s * shard_size, min((s + 1) * shard_size, len(entries))):
            clip, mode = entries[row]
            items.append((row, clip.path, mode, clip_key(clip, task)))
    loader = DataLoader(CroppedClips(items, crop), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_collate, worker_init_fn=_worker_init if num_workers else None,
                        persistent_workers=False)
    pending: dict[int, dict[int, np.ndarray]] = {s: {} for s in shards}
    with tqdm(total=len(items), desc=desc, unit="clip", disable=not progress, mininterval=2.0) as bar:
        for batch in loader:
            for row, wave, error in batch:
                if error is not None:
                    raise AudioError(f"{error} (task {task.name}; finished shards are kept, rerun to resume)")
            waves = torch.stack([w for _, w, _ in batch]).to(device)
            emb = model.scene_embeddings(waves).float().cpu().numpy()
            if not np.isfinite(emb).all():
                bad = [str(entries[r][0].path) for (r, _, _), e in zip(batch, emb) if not np.isfinite(e).all()]
                raise InputError(f"non-finite embeddings for {bad[:3]}; check the weights file")
            for (row, _, _), e in zip(batch, emb):
                s = row // shard_size
                pending[s][row] = e
                expected = min((s + 1) * shard_size, len(entries)) - s * shard_size
                if len(pending[s]) == expected:
                    rows = pending.pop(s)
                    save_npy(shard_path[s], np.stack([rows[r] for r in sorted(rows)]).astype(np.float32))
            bar.update(len(batch))
