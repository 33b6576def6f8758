"""Build the mini benchmark (and the pre-training pool) into a cache folder: deterministic, resumable, parallel.

Layout of ``CACHE_DIR`` (default ``$M2D_CACHE/mini`` or ``~/.cache/m2d-hear/mini``)::

    mini_kws/meta.csv            file_name,label,split   (EVAR-style; file_name relative to the CSV's folder)
    mini_kws/task.json           {"unit_sec", "multilabel", "metric", ..., "probe", "finetune", "table_notes"}
    mini_kws/train/yes/....wav   16 kHz mono 16-bit PCM
    mini_sounds/meta.csv         file_name,label,fold    (leave-one-fold-out)
    mini_tagging/meta.csv        labels joined by ';'
    pool/files.csv, pool/pool.json, pool/<kind>/pool_NNNNN.wav

A task is finished when its ``.done.json`` (plan hash and per-file SHA-256) exists; a finished task whose plan is
unchanged is skipped, except that its metadata files (``meta.csv``, ``task.json``) are rewritten where they differ
from what this version writes (e.g. new evaluation settings from ``suite.py``): no audio is rendered again. Clips
are written atomically one by one, so a killed build resumes with the jobs whose files are missing. A folder built
from another plan (another ``--scale`` or seed) is rebuilt from scratch.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
import warnings
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from m2d_hear.errors import InputError
from m2d_hear.fileio import sha256_file, write_text

from . import music, speech
from .plans import PLANNERS, SCALES, TASK_NAMES, TaskPlan, sound_packs
from .render import render_job
from .suite import TASK_SETTINGS

PLAN_VERSION = 1
DONE = ".done.json"
PLAN_MARK = ".plan"
INSTALL_HINT = "run `pip install -e .[mini]` and `sudo bash scripts/install_system_deps.sh`"


class MiniBuildError(InputError):
    """The mini benchmark cannot be built (missing engine, failed render, unusable cache folder)."""


def default_cache_dir() -> Path:
    root = os.environ.get("M2D_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "m2d-hear") / "mini"


def missing_requirements(task: str) -> list[str]:
    """Why ``task`` cannot be built here (empty when it can)."""
    need = []
    if task in {"mini_kws", "mini_speaker", "mini_tagging", "pool"} and not speech.espeak_available():
        need.append("eSpeak NG (pip install espeakng-loader)")
    if task in {"mini_genre", "mini_tagging"}:
        if not music.music21_available():
            need.append("music21 (pip install music21)")
        if not music.fluidsynth_available():
            need.append("fluidsynth and a GM soundfont (apt-get install fluidsynth timgm6mb-soundfont)")
    if task in {"mini_sounds", "mini_tagging"} and len(sound_packs()[0]) < 3:
        need.append("drum sample packs (apt-get install hydrogen-drumkits lmms-common sonic-pi-samples)")
    return need


def plan_hash(plan: TaskPlan) -> str:
    body = {"version": PLAN_VERSION, "name": plan.name, "unit_sec": plan.unit_sec, "multilabel": plan.multilabel,
            "metric": plan.metric, "split_column": plan.split_column,
            "clips": [[c.file, list(c.labels), c.split, c.entry()] for c in plan.clips]}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass
class TaskResult:
    name: str
    folder: Path | None
    status: str                      # 'built' | 'cached' | 'skipped'
    clips: int = 0
    seconds: float = 0.0
    reason: str = ""


@dataclass
class BuildReport:
    out_dir: Path
    results: list[TaskResult] = field(default_factory=list)
    seconds: float = 0.0

    def source(self, task: str) -> str:
        """The ``csv:`` source string the task loader takes for a built task."""
        return f"csv:{self.out_dir / task / 'meta.csv'}"

    def summary(self) -> str:
        lines = []
        for r in self.results:
            if r.status == "skipped":
                lines.append(f"  {r.name:13s} SKIPPED: {r.reason}")
            else:
                lines.append(f"  {r.name:13s} {r.status:6s} {r.clips:5d} clips  {r.seconds:6.1f} s  {r.folder}")
        lines.append(f"  total {self.seconds:.1f} s")
        return "\n".join(lines)


def _prepare_folder(folder: Path, digest: str) -> bool:
    """True when the folder already holds this finished plan; wipes a folder holding another plan."""
    done = folder / DONE
    if done.is_file():
        try:
            if json.loads(done.read_text()).get("plan") == digest:
                return True
        except (OSError, ValueError):
            pass
    mark = folder / PLAN_MARK
    if folder.exists() and any(folder.iterdir()):
        if not mark.is_file():
            raise MiniBuildError(f"{folder} exists and was not made by `m2d-eval mini build`; pass another --out "
                                 "or remove it")
        if mark.read_text().strip() != digest:
            shutil.rmtree(folder)  # another scale/seed/version: our own cache, rebuilt from scratch
    folder.mkdir(parents=True, exist_ok=True)
    write_text(mark, digest)
    return False


def _meta_csv(plan: TaskPlan) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file_name", "label", plan.split_column])
    for clip in sorted(plan.clips, key=lambda c: c.file):
        writer.writerow([clip.file, ";".join(clip.labels), clip.split])
    return buf.getvalue()


def _metadata(plan: TaskPlan, extra: dict) -> dict[str, str]:
    """File name -> text of the metadata files of a finished task (``meta.csv``, ``task.json``) or of the pool
    (``files.csv``, ``pool.json``)."""
    if plan.name == "pool":
        info = {"name": "pool", "clips": len(plan.clips), "clip_sec": plan.unit_sec, "sample_rate": 16000,
                "counts": plan.sources.get("counts", {}), "voices": plan.sources.get("voices", []),
                "packs": plan.sources.get("packs", []), **extra}
        if "variety" in plan.sources:  # absent for the standard pool, whose pool.json predates the option
            info["variety"] = plan.sources["variety"]
        return {"files.csv": "file_name\n" + "".join(f"{c.file}\n" for c in sorted(plan.clips, key=lambda c: c.file)),
                "pool.json": json.dumps(info, indent=2) + "\n"}
    classes = sorted({label for c in plan.clips if c.split in ("train", "1", "2", "3", "4", "5")
                      for label in c.labels} | {label for c in plan.clips for label in c.labels})
    info = {"name": plan.name, "description": plan.kind, "unit_sec": plan.unit_sec,
            "multilabel": plan.multilabel, "metric": plan.metric, "sample_rate": 16000,
            "split_column": plan.split_column, "classes": classes, "clips": len(plan.clips), **extra}
    if plan.split_column == "fold":
        info["folds"] = sorted({c.split for c in plan.clips}, key=int)
    info.update(TASK_SETTINGS)
    return {"meta.csv": _meta_csv(plan), "task.json": json.dumps(info, indent=2) + "\n"}


def _write_metadata(plan: TaskPlan, folder: Path, extra: dict) -> list[str]:
    """Write the metadata files that differ from what the plan and the settings give; returns their names. A
    finished task whose plan is unchanged gets new settings this way, with no audio rendered again."""
    changed = []
    for name, text in _metadata(plan, extra).items():
        path = folder / name
        if not path.is_file() or path.read_text() != text:
            write_text(path, text)
            changed.append(name)
    return changed


# Every clip's modification time: a task's identity (TaskData.fingerprint) covers each file's size and mtime, and
# the content of .done.json (each clip's SHA-256), so one build gives the same task id on every machine.
CLIP_MTIME = 1767225600  # 2026-01-01 00:00 UTC


def _stamp(plan: TaskPlan, folder: Path) -> None:
    for clip in plan.clips:
        path = folder / clip.file
        if path.stat().st_mtime != CLIP_MTIME:
            os.utime(path, (CLIP_MTIME, CLIP_MTIME))


def _finish(plan: TaskPlan, folder: Path, digest: str, extra: dict) -> None:
    _write_metadata(plan, folder, extra)
    _stamp(plan, folder)
    files = {c.file: sha256_file(folder / c.file) for c in sorted(plan.clips, key=lambda c: c.file)}
    write_text(folder / DONE, json.dumps({"plan": digest, "files": files}, indent=1) + "\n")


def build(out_dir: str | Path | None = None, scale: str = "default", tasks: list[str] | None = None,
          pool: bool = False, pool_only: bool = False, pool_clips: int = 3000, pool_sec: float = 4.0,
          jobs: int | None = None, seed: int = 0, progress: bool = True, pool_variety: str = "standard") -> BuildReport:
    """Build the requested tasks (all five by default) and optionally the pool; see the module docstring."""
    start = time.time()
    out = Path(out_dir) if out_dir else default_cache_dir()
    if scale not in SCALES:
        raise MiniBuildError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    names = [] if pool_only else list(tasks or TASK_NAMES)
    unknown = [n for n in names if n not in PLANNERS]
    if unknown:
        raise MiniBuildError(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASK_NAMES)}")
    if pool or pool_only:
        names.append("pool")
    report = BuildReport(out)
    plans: dict[str, TaskPlan] = {}
    for name in names:
        need = missing_requirements(name)
        if need:
            report.results.append(TaskResult(name, None, "skipped", reason="needs " + "; ".join(need) +
                                              f" ({INSTALL_HINT})"))
            continue
        if name == "pool":
            from .pool import overlap_report, plan_pool

            plans[name] = plan_pool(pool_clips, pool_sec, seed, pool_variety)
            bench = [PLANNERS[t](SCALES[s], seed) for s in SCALES for t in TASK_NAMES if not missing_requirements(t)]
            problems = overlap_report(plans[name], bench)
            if problems:
                raise MiniBuildError(f"the pool would share material with the benchmark: {problems[0]}")
        else:
            plans[name] = PLANNERS[name](SCALES[scale], seed)
    job_clips = SCALES[scale].job_clips

    def extra_info(name: str) -> dict:
        return {"scale": scale if name != "pool" else None, "seed": seed}

    pending: dict[str, list[list]] = {}
    digests: dict[str, str] = {}
    started: dict[str, float] = {}
    for name, plan in plans.items():
        repeated = sorted(f for f, n in Counter(c.file for c in plan.clips).items() if n > 1)
        if repeated:  # two clips would overwrite one file and count twice: a planner bug, never built
            raise MiniBuildError(f"{name}: {len(repeated)} files are planned more than once (e.g. {repeated[0]})")
        folder = out / name
        digests[name] = plan_hash(plan)
        if _prepare_folder(folder, digests[name]):
            try:
                _write_metadata(plan, folder, extra_info(name))
                _stamp(plan, folder)
            except OSError as err:  # e.g. a read-only copy of a cache built elsewhere: usable, with its old metadata
                warnings.warn(f"{folder}: could not update its metadata files ({err.strerror or err}); the task "
                              "keeps the ones it was built with", RuntimeWarning, stacklevel=2)
            report.results.append(TaskResult(name, folder, "cached", len(plan.clips)))
            continue
        todo = [job for job in plan.jobs(job_clips if name != "pool" else 40)
                if not all((folder / c.file).is_file() for c in job)]
        pending[name] = todo
        started[name] = time.time()
    total = sum(len(job) for todo in pending.values() for job in todo)
    workers = max(1, min(jobs or min(2, os.cpu_count() or 1), 2 * len([j for t in pending.values() for j in t]) or 1))
    bar = tqdm(total=total, desc="mini build", unit="clip", disable=not progress or total == 0)
    remaining = {name: len(todo) for name, todo in pending.items()}

    def job_done(name: str, n: int) -> None:
        bar.update(n)
        remaining[name] -= 1
        if remaining[name] == 0:
            _finish(plans[name], out / name, digests[name], extra_info(name))
            report.results.append(TaskResult(name, out / name, "built", len(plans[name].clips),
                                             time.time() - started[name]))

    for name in [n for n, r in remaining.items() if r == 0]:  # every file present, only the metadata missing
        remaining[name] = 1
        job_done(name, 0)
    # music jobs are the slowest: start them first so the two workers finish together
    order = sorted(((name, job) for name, todo in pending.items() for job in todo),
                   key=lambda nj: (0 if nj[1][0].recipe.get("src") in ("music", "mix") else 1))
    try:
        if workers == 1:
            for name, job in order:
                render_job([c.entry() for c in job], str(out / name))
                job_done(name, len(job))
        elif order:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as executor:
                futures = {executor.submit(render_job, [c.entry() for c in job], str(out / name)): (name, len(job))
                           for name, job in order}
                not_done = set(futures)
                while not_done:
                    finished, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                    for future in finished:
                        future.result()  # re-raises a worker's error
                        job_done(*futures[future])
    except (speech.SpeechError, music.MusicError, RuntimeError, OSError) as err:
        raise MiniBuildError(f"mini build failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
                             f" (finished clips are kept; rerun to resume)") from err
    finally:
        bar.close()
    order_names = {n: i for i, n in enumerate(names)}
    report.results.sort(key=lambda r: order_names.get(r.name, 99))
    report.seconds = time.time() - start
    return report


def mini_task_sources(cache_dir: str | Path | None = None, scale: str = "default", progress: bool = True) -> list[str]:
    """Build the five tasks if needed (cached builds return at once) and return their ``csv:`` sources."""
    report = build(cache_dir, scale=scale, progress=progress)
    return [report.source(task) for task in TASK_NAMES if (report.out_dir / task / "meta.csv").is_file()]
