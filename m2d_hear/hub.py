"""The official M2D checkpoints by name: a registry of every release, a download cache, and name resolution.

``m2d_hear.load_model("m2d_vit_base-80x608p16x16-221006-mr7")`` and every ``--weights`` option accept a released
name (or ``NAME/FILE``, e.g. ``m2d_vit_base-80x608p16x16-221006-mr7/checkpoint-300.pth``) besides a file path:

- the release zip is downloaded once, on first use, with ``torch.hub.download_url_to_file`` (progress bar on
  stderr; ``https_proxy`` is honoured) into ``$M2D_HOME/checkpoints`` (default ``~/.cache/m2d-hear/checkpoints``);
  the download goes to a temporary ``.partial`` name, then to ``checkpoints/.<name>.download.zip`` (a name of our
  own, so a download that finished but was killed before its unzip is known as ours, unzipped on next use and
  deleted), and only a complete, valid zip is ever unzipped, so a broken download leaves nothing behind and the
  next call starts again from scratch;
- it is unzipped to ``checkpoints/<name>/`` (the folder name carries the configuration, see :mod:`m2d_hear.config`)
  and the downloaded zip is deleted (a zip saved by hand is kept); the SHA-256 of every weight file is recorded in
  ``checkpoints/<name>/sha256.json``;
- later loads use that folder without the network and check the file against the recorded SHA-256.

Offline or behind a firewall, download the zip another way and save it as ``checkpoints/<name>.zip`` (it is
unzipped on next use), or unzip it into ``checkpoints/``. Nothing here touches the network at import.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import InputError
from .fileio import locked, sha256_file, write_json

ENV_HOME = "M2D_HOME"
WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
CHECKSUM_FILE = "sha256.json"
RELEASES = "https://github.com/nttcslab/m2d/releases/download"


class WeightsDownloadError(InputError):
    """A release could not be downloaded or unpacked; the message names the URL and where to put the file by hand."""


class ChecksumError(InputError):
    """A cached weight file no longer matches the SHA-256 recorded when it was downloaded, or that record is
    damaged."""


class UnknownWeightsError(InputError):
    """Neither a file nor a released checkpoint name."""


@dataclass(frozen=True)
class Release:
    """One checkpoint published by the official project (github.com/nttcslab/m2d, README tables)."""

    name: str
    tag: str                     # the GitHub release that holds the zip
    group: str                   # the README table it is listed in
    description: str
    file: str | None = None      # the weight file inside the zip's folder, where the official project names it
    as2m_map: float | None = None  # AudioSet-2M mAP of the fine-tuned weights, as published

    @property
    def url(self) -> str:
        return f"{RELEASES}/{self.tag}/{self.name}.zip"


_AS, _AS32, _LS, _CLAP25 = "AudioSet, 16 kHz", "AudioSet, 32 kHz", "LibriSpeech (M2D-S)", "M2D-CLAP 2025"

RELEASE_LIST: tuple[Release, ...] = (
    Release("m2d_vit_base-80x608p16x16-221006-mr6", "v0.1.0", _AS,
            "M2D/0.6 (mask ratio 0.6), full training checkpoint"),
    Release("m2d_vit_base-80x608p16x16-221006-mr7", "v0.1.0", _AS,
            "M2D/0.7 (mask ratio 0.7), full training checkpoint", "checkpoint-300.pth"),
    Release("m2d_vit_base-80x608p16x16-221006-mr7_enconly", "v0.1.0", _AS,
            "M2D/0.7, encoder only", "checkpoint-300.pth"),
    Release("m2d_vit_base-80x608p16x16-220930-mr7_enconly", "v0.1.0", _AS,
            "M2D/0.7 (an earlier run), encoder only", "checkpoint-300.pth"),
    Release("m2d_vit_base-80x200p16x4-230529", "v0.1.0", _AS,
            "M2D/0.7 with 16x4 patches (40-ms frames), full training checkpoint", "checkpoint-300.pth"),
    Release("m2d_as_vit_base-80x608p16x16-240213", "v0.1.0", _AS,
            "M2D-AS (M2D-X with an AudioSet-label objective), full training checkpoint"),
    Release("m2d_clap_vit_base-80x608p16x16-240128", "v0.1.0", _AS,
            "M2D-CLAP (audio encoder with audio_proj; text side dropped on load)", "checkpoint-300.pth"),
    Release("m2d_vit_base-80x1001p16x16-221006-mr7_as_46ab246d", "v0.3.0", _AS,
            "M2D/0.7 fine-tuned on AudioSet-2M (EVAR layout)", "weights_ep69it3124-0.47929.pth", 0.479),
    Release("m2d_as_vit_base-80x1001p16x16-240213_AS-FT_enconly", "v0.3.0", _AS,
            "M2D-AS fine-tuned on AudioSet-2M, encoder only", "weights_ep69it3124-0.48494.pth", 0.485),
    Release("m2d_clap_vit_base-80x1001p16x16-240128_AS-FT_enconly", "v0.3.0", _AS,
            "M2D-CLAP fine-tuned on AudioSet-2M, encoder only", None, 0.485),
    Release("m2d_as_vit_base-80x608p16x16p32k-240413_enconly", "v0.1.0", _AS32,
            "M2D-AS at 32 kHz, encoder only"),
    Release("m2d_as_vit_base-80x1001p16x16p32k-240413_AS-FT_enconly", "v0.3.0", _AS32,
            "M2D-AS at 32 kHz fine-tuned on AudioSet-2M, encoder only", None, 0.480),
    Release("m2d_s_vit_base-80x608p80x2-230220", "v0.2.0", _LS,
            "M2D-S/0.6 for speech, 80x2 patches, 6-s input, full training checkpoint", "checkpoint-1000.pth"),
    Release("m2d_s_vit_base-80x512p80x2-230301", "v0.2.0", _LS,
            "M2D-S/0.6 for speech, 80x2 patches, 5-s input, full training checkpoint"),
    Release("m2d_s_vit_base-80x400p80x2-230201", "v0.2.0", _LS,
            "M2D-S/0.6 for speech, 80x2 patches, 4-s input, full training checkpoint"),
    Release("m2d_clap_vit_base-80x1001p16x16p16kpBpTI-2025", "v0.5.0", _CLAP25,
            "M2D-CLAP 2025 (semantic-token audio projector; BERT text encoder included, dropped on load)",
            "checkpoint-30.pth"),
)

REGISTRY: dict[str, Release] = {r.name: r for r in RELEASE_LIST}


# ------------------------------------------------------------------------------------------------ cache layout
def home() -> Path:
    """``$M2D_HOME``, else ``~/.cache/m2d-hear``."""
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    return Path.home() / ".cache" / "m2d-hear"


def checkpoints_dir() -> Path:
    return home() / "checkpoints"


def folder_of(name: str) -> Path:
    return checkpoints_dir() / name


def manual_zip_path(name: str) -> Path:
    """Where a zip downloaded by hand is picked up (and unzipped on next use; it is kept)."""
    return checkpoints_dir() / f"{name}.zip"


def download_zip_path(name: str) -> Path:
    """Where our own download of release ``name`` lies between a complete download and its unzip (then deleted)."""
    return checkpoints_dir() / f".{name}.download.zip"


# ----------------------------------------------------------------------------------------------- name lookups
def close_names(name: str, n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, list(REGISTRY), n=n, cutoff=0.6)


def parse_reference(weights: str | os.PathLike) -> tuple[Release, str | None] | None:
    """``NAME`` or ``NAME/FILE`` of a released checkpoint -> (release, file or None); anything else -> None."""
    parts = PurePosixPath(str(weights).replace(os.sep, "/")).parts
    if not parts or parts[0] not in REGISTRY or len(parts) > 2:
        return None
    return REGISTRY[parts[0]], (parts[1] if len(parts) == 2 else None)


def looks_like_name(weights: str | os.PathLike) -> bool:
    """A bare word without a folder or a weight-file suffix: meant as a checkpoint name, not a path."""
    text = str(weights)
    return bool(text) and "/" not in text and os.sep not in text and not text.endswith(WEIGHT_SUFFIXES) \
        and not text.endswith(".zip")


def resolve_weights(weights: str | os.PathLike, progress: bool = True) -> Path:
    """A weight argument -> the file to load.

    An existing file is returned as it is (a file inside the cache is checked against its recorded SHA-256). A
    released name (``NAME`` or ``NAME/FILE``) is downloaded on first use and its cached file returned. A bare word
    that is neither raises :class:`UnknownWeightsError` with the closest released names. Any other path is returned
    unchanged, for the reader to report.
    """
    path = Path(weights).expanduser()
    if path.is_file():
        _verify_if_cached(path)
        return path
    ref = parse_reference(weights)
    if ref is not None:
        release, file = ref
        return weight_file(release.name, file, progress=progress)
    if looks_like_name(weights):
        close = close_names(str(weights))
        hint = f"close names: {', '.join(close)}; " if close else ""
        raise UnknownWeightsError(
            f"{weights}: neither a weight file nor a released checkpoint name; {hint}"
            "`m2d-eval weights list` shows every released name")
    return path


# ------------------------------------------------------------------------------------------------- the cache
def is_cached(name: str) -> bool:
    return folder_of(name).is_dir()


def weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def weight_file(name: str, file: str | None = None, progress: bool = True) -> Path:
    """The cached weight file of release ``name`` (downloaded first if needed), checked against its SHA-256."""
    folder = ensure_downloaded(name, progress=progress)
    found = weight_files(folder)
    if file is not None:
        path = folder / file
        if not path.is_file():
            have = ", ".join(p.relative_to(folder).as_posix() for p in found) or "none"
            raise UnknownWeightsError(f"{name}/{file}: the release has no file {file!r}; its weight files: {have}")
    else:
        release = REGISTRY.get(name)
        preferred = folder / release.file if release and release.file else None
        if preferred is not None and preferred.is_file():
            path = preferred
        elif len(found) == 1:
            path = found[0]
        elif not found:
            raise WeightsDownloadError(f"{folder}: holds no weight file ({', '.join(WEIGHT_SUFFIXES)}); delete the "
                                       f"folder and run again to download {name} anew")
        else:
            have = ", ".join(p.relative_to(folder).as_posix() for p in found)
            raise UnknownWeightsError(f"{name}: the release holds several weight files ({have}); "
                                      f"pass {name}/<file> to choose one")
    verify(path)
    return path


def ensure_downloaded(name: str, progress: bool = True) -> Path:
    """The folder of release ``name`` in the cache, downloading and unzipping it first if it is not there."""
    folder = folder_of(name)
    if folder.is_dir():
        return folder
    release = REGISTRY.get(name)
    if release is None:
        close = close_names(name)
        hint = f"; close names: {', '.join(close)}" if close else ""
        raise UnknownWeightsError(f"{name}: not a released checkpoint name{hint}")
    with locked(folder, timeout=-1):  # a second process waits here, then finds the folder
        if folder.is_dir():
            return folder
        _remove_partials(name)
        zip_path = manual_zip_path(name)
        by_hand = zip_path.is_file()
        if not by_hand:
            zip_path = download_zip_path(name)
            if not zip_path.is_file():  # else a complete download whose unzip was killed: unzip it now
                _download(release, zip_path, progress)
        try:
            _unpack(release, zip_path, folder, by_hand)
        except WeightsDownloadError:
            if not by_hand:
                zip_path.unlink(missing_ok=True)
            raise
        if not by_hand:
            zip_path.unlink(missing_ok=True)
    return folder


def _remove_partials(name: str) -> None:
    """Leftovers of a killed download or unzip of ``name``; the download then restarts from scratch."""
    root = checkpoints_dir()
    if not root.is_dir():
        return
    for leftover in (list(root.glob(f"{name}.zip.*.partial")) + list(root.glob(f".{name}.download.zip.*.partial"))
                     + list(root.glob(f".{name}.unzip-*"))):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _one_line(err: BaseException) -> str:
    if getattr(err, "code", None) is not None and hasattr(err, "reason"):  # urllib's HTTPError
        return f"HTTP {err.code} {err.reason}"
    text = " ".join(str(getattr(err, "reason", None) or err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _download(release: Release, zip_path: Path, progress: bool) -> None:
    import http.client
    import urllib.error

    from torch.hub import download_url_to_file

    zip_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        download_url_to_file(release.url, str(zip_path), progress=progress)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        zip_path.unlink(missing_ok=True)
        raise WeightsDownloadError(
            f"{release.name}: could not download {release.url} ({_one_line(err)}); download it another way and "
            f"save it as {manual_zip_path(release.name)} (it is unzipped on next use), or unzip it into "
            f"{zip_path.parent}/") from None


def _safe_members(archive: zipfile.ZipFile, zip_path: Path) -> list[zipfile.ZipInfo]:
    members = []
    for info in archive.infolist():
        parts = PurePosixPath(info.filename).parts
        if info.filename.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", info.filename):
            raise WeightsDownloadError(f"{zip_path}: refuses to unzip a member outside its folder "
                                       f"({info.filename!r}); the file is not an official release")
        if not parts or parts[0] == "__MACOSX":
            continue
        members.append(info)
    return members


def _unpack(release: Release, zip_path: Path, folder: Path, by_hand: bool) -> None:
    """Check the zip completely, unzip it to a temporary folder, record SHA-256s, then move it into place."""
    source = f"{zip_path} (saved by hand)" if by_hand else f"the download of {release.url}"
    retry = (f"delete {zip_path} and save a complete copy of {release.url} there" if by_hand
             else "run again to download it anew")
    staging = folder.with_name(f".{folder.name}.unzip-{os.getpid()}")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"CRC error in {bad}")
            members = _safe_members(archive, zip_path)
            archive.extractall(staging, members)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, ValueError, NotImplementedError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise WeightsDownloadError(f"{release.name}: {source} is incomplete or not a valid zip "
                                   f"({_one_line(err)}); {retry}") from None
    try:
        inner = _release_folder(staging, release.name)
        if inner is None or not weight_files(inner):
            raise WeightsDownloadError(f"{release.name}: {source} holds no weight file "
                                       f"({', '.join(WEIGHT_SUFFIXES)}); {retry}")
        record_checksums(inner, release, source="download" if not by_hand else "zip saved by hand")
        os.replace(inner, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _release_folder(staging: Path, name: str) -> Path | None:
    """The unzipped folder that holds the weights: ``<name>/`` as released, else the only folder, else the top."""
    if (staging / name).is_dir():
        return staging / name
    if any(p.is_file() and p.suffix in WEIGHT_SUFFIXES for p in staging.iterdir()):
        return staging
    dirs = [p for p in staging.iterdir() if p.is_dir()]
    return dirs[0] if len(dirs) == 1 else None


# -------------------------------------------------------------------------------------------------- checksums
def record_checksums(folder: Path, release: Release | None, source: str) -> dict:
    record = {
        "name": release.name if release else folder.name,
        "url": release.url if release else None,
        "source": source,
        "recorded_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {p.relative_to(folder).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                  for p in weight_files(folder)},
    }
    write_json(folder / CHECKSUM_FILE, record)
    return record


_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) already checked in this process


def verify(path: Path) -> None:
    """Check a cached weight file against the SHA-256 recorded beside it (recording it first if there is none:
    a folder unzipped by hand into the cache)."""
    path = Path(path).resolve()
    root = checkpoints_dir().resolve()
    try:
        rel = path.relative_to(root)
    except ValueError:
        return
    folder = root / rel.parts[0]
    if len(rel.parts) < 2 or folder.name not in REGISTRY:
        return
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return
    record_path = folder / CHECKSUM_FILE
    name = path.relative_to(folder).as_posix()
    with locked(folder, timeout=-1):
        record = _read_record(record_path, folder) if record_path.is_file() else None
        if record is None:
            record = record_checksums(folder, REGISTRY[folder.name], source="unzipped by hand; recorded on first use")
        elif name not in record["files"]:  # a file added later: record it, keep the others' records
            record["files"][name] = {"sha256": sha256_file(path), "bytes": stat.st_size}
            write_json(record_path, record)
    expected = record["files"][name]["sha256"]
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: SHA-256 {actual[:16]}... differs from {expected[:16]}... recorded in {record_path} when it was "
            f"downloaded; the file is damaged or was changed: delete {folder} and run again to download it anew")
    _VERIFIED[key] = actual


def _read_record(record_path: Path, folder: Path) -> dict:
    """The checksum record ``sha256.json``; a damaged one (not JSON, or without its ``files`` of SHA-256s) raises
    :class:`ChecksumError` saying to delete the folder and download again."""
    try:
        record = json.loads(record_path.read_text())
        files = record["files"]
        if not isinstance(files, dict) or not all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                                                  for v in files.values()):
            raise ValueError("'files' is not a table of SHA-256s")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise ChecksumError(f"{record_path}: the checksum record is damaged ({_one_line(err)}); delete {folder} and "
                            "run again to download it anew") from None
    return record


def _verify_if_cached(path: Path) -> None:
    try:
        verify(path)
    except OSError:  # an unreadable file: the reader reports it
        return
