"""``m2d-pretrain prepare``: convert a folder of audio files into the log-mel ``.npy`` files pre-training reads.

As the official ``wav_to_lms.py``: each file is decoded, mixed to mono, resampled to the model rate, zero-padded to
at least ``--min-seconds`` (6.1 s, so every file gives at least one 608-frame crop), and turned into a natural-log
mel spectrogram saved as float32 ``(1, 80, frames)`` under the same relative path with ``.npy``.
``DATA_DIR/files.csv`` (one column ``file_name``) then lists every ``.npy`` under DATA_DIR.

A file that cannot be decoded is listed in ``DATA_DIR/failed.csv`` and the others are converted; the command then
exits with status 1. Two sources that would give the same output (``x.wav`` beside ``x.flac``) stop it before any
conversion. An output that cannot be written (read-only folder, full disk) stops it at once, with one line.
"""
from __future__ import annotations

import multiprocessing
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click
import numpy as np

from m2d_hear.cli_vocabulary import Alias, workers_option
from m2d_hear.fileio import save_npy, write_csv

from .data import FILE_LIST, DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
FAILED_LIST = "failed.csv"

_FRONTEND = {}


def find_audio(src_dir: Path, suffixes=AUDIO_SUFFIXES) -> list[str]:
    """Relative paths (posix, sorted) of the audio files under ``src_dir``."""
    return sorted(p.relative_to(src_dir).as_posix() for p in src_dir.rglob("*")
                  if p.suffix.lower() in suffixes and p.is_file())


def output_path(data_dir: Path, rel: str) -> Path:
    return data_dir / Path(rel).with_suffix(".npy")


def check_outputs_distinct(src_dir: Path, data_dir: Path, files: list[str]) -> None:
    """Raise :class:`DataError` naming the sources when two of them would be written to the same ``.npy``
    (``x.wav`` beside ``x.flac``): one would silently replace the other."""
    sources: dict[Path, list[str]] = defaultdict(list)
    for rel in files:
        sources[output_path(data_dir, rel)].append(rel)
    clashes = [(out, rels) for out, rels in sources.items() if len(rels) > 1]
    if clashes:
        out, rels = clashes[0]
        more = f" (and {len(clashes) - 1} more such groups)" if len(clashes) > 1 else ""
        raise DataError(f"{' and '.join(str(src_dir / r) for r in rels)} would both be converted to {out}{more}; "
                        "rename or remove one of them, then run the command again")


def log_mel_of(wave: np.ndarray, sr: str) -> np.ndarray:
    """float32 ``(1, 80, 1 + samples // hop)`` natural-log mel spectrogram."""
    import torch

    from m2d_hear.frontend import FRONT_ENDS, LogMelSpectrogram

    if sr not in _FRONTEND:
        torch.set_num_threads(1)
        _FRONTEND[sr] = LogMelSpectrogram(FRONT_ENDS[sr])
    with torch.no_grad():
        lms = _FRONTEND[sr](torch.from_numpy(np.ascontiguousarray(wave))[None])
    return lms[0].numpy().astype(np.float32, copy=False)


def convert_one(job: tuple[str, str, str, str, float]) -> tuple[str, str | None]:
    """Convert one file; returns ``(relative path, None)`` or ``(relative path, reason)`` when it cannot be decoded.
    An ``OSError`` writing the output (read-only folder, full disk) is raised: no other file could be written."""
    rel, src_dir, data_dir, sr, min_seconds = job
    try:
        from m2d_hear.audio import read_audio
        from m2d_hear.config import SAMPLE_RATES

        rate = SAMPLE_RATES[sr]
        wave = read_audio(Path(src_dir) / rel, rate)
        min_samples = int(rate * min_seconds)
        if len(wave) < min_samples:
            wave = np.pad(wave, (0, min_samples - len(wave)))
        lms = log_mel_of(wave, sr)
        if not np.isfinite(lms).all():
            return rel, "the log-mel has NaN/inf values; re-encode the file"
    except Exception as err:  # noqa: BLE001 - every failure is reported at the end, the rest goes on
        reason = str(err).strip() or type(err).__name__
        prefix = str(Path(src_dir) / rel) + ": "
        return rel, reason[len(prefix):] if reason.startswith(prefix) else reason
    save_npy(output_path(Path(data_dir), rel), lms)
    return rel, None


def write_file_list(data_dir: Path) -> int:
    """Write ``DATA_DIR/files.csv`` listing every ``.npy`` under DATA_DIR (sorted, relative); returns the count."""
    import pandas as pd

    files = sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*.npy") if not p.name.startswith("."))
    write_csv(data_dir / FILE_LIST, pd.DataFrame({"file_name": files}))
    return len(files)


def prepare_folder(src_dir: Path, data_dir: Path, sr: str = "16k", min_seconds: float = 6.1, jobs: int = 0,
                   progress: bool = True) -> tuple[int, int, list[tuple[str, str]]]:
    """Convert every audio file under ``src_dir`` not yet converted; returns (converted, skipped, failures)."""
    from tqdm import tqdm

    files = find_audio(src_dir)
    check_outputs_distinct(src_dir, data_dir, files)
    data_dir.mkdir(parents=True, exist_ok=True)
    todo = [f for f in files if not output_path(data_dir, f).exists()]
    skipped = len(files) - len(todo)
    jobs = jobs or min(len(os.sched_getaffinity(0)), 8)
    work = [(f, str(src_dir), str(data_dir), sr, min_seconds) for f in todo]
    failures = []
    with tqdm(total=len(work), desc="log-mel", unit="file", disable=not progress) as bar:  # closed on errors too
        if jobs <= 1 or len(work) <= 1:
            results = map(convert_one, work)
            for rel, reason in results:
                if reason:
                    failures.append((rel, reason))
                bar.update()
        else:
            # forkserver: a forked copy of a process whose torch already ran OpenMP threads can deadlock
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("forkserver")) as pool:
                try:
                    for rel, reason in pool.map(convert_one, work,
                                                chunksize=max(1, min(32, len(work) // (4 * jobs)))):
                        if reason:
                            failures.append((rel, reason))
                        bar.update()
                except BaseException:
                    pool.shutdown(cancel_futures=True)  # an output that cannot be written: do not try the others
                    raise
    return len(todo) - len(failures), skipped, failures


@click.command()
@click.argument("src_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sr", type=click.Choice(["16k", "32k"]), default="16k", show_default=True,
              help="sample rate of the model (the front end follows it)")
@click.option("--min-seconds", type=float, default=6.1, show_default=True,
              help="zero-pad shorter waveforms to this length (as the official converter)")
@workers_option(None, "conversion worker processes (0: convert in this process) [default: CPUs, at most 8]",
                aliases=(Alias("--jobs", "-j", type=int, convert=lambda jobs: jobs or None),))   # old -j 0: the default
def prepare(src_dir: Path, data_dir: Path, sr: str, min_seconds: float, workers: int | None):
    """Convert every audio file under SRC_DIR (wav, flac, ogg, mp3; any rate, stereo mixed down) into a log-mel
    .npy under DATA_DIR with the same relative path, and write DATA_DIR/files.csv.

    Files already converted are skipped, so an interrupted run continues where it stopped. A file that cannot be
    read is listed at the end (and in DATA_DIR/failed.csv) without stopping the others; the exit status is then 1.
    Two sources that would give the same .npy (x.wav beside x.flac) stop the command before it converts anything.
    """
    src_dir, data_dir = src_dir.resolve(), data_dir.resolve()
    if data_dir == src_dir:
        raise click.ClickException("DATA_DIR must differ from SRC_DIR")
    if not find_audio(src_dir):
        raise click.ClickException(f"{src_dir}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found under it")
    jobs = 0 if workers is None else max(1, workers)   # prepare_folder: 0 = CPUs (at most 8), 1 = this process
    converted, skipped, failures = prepare_folder(src_dir, data_dir, sr, min_seconds, jobs)
    total = write_file_list(data_dir)
    failed_csv = data_dir / FAILED_LIST
    if failures:
        import pandas as pd

        write_csv(failed_csv, pd.DataFrame({"file": [str(src_dir / f) for f, _ in failures],
                                            "reason": [r for _, r in failures]}))
    elif failed_csv.exists():
        failed_csv.unlink()
    click.echo(f"converted {converted}, skipped {skipped} already done, failed {len(failures)}; "
               f"{data_dir / FILE_LIST} lists {total} files")
    for rel, reason in failures:
        click.echo(f"FAILED {src_dir / rel}: {reason}", err=True)
    if failures:
        raise click.ClickException(f"{len(failures)} file(s) could not be converted (listed in {failed_csv}); fix or "
                                   "remove them and run the same command again to convert only those")
