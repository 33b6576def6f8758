"""Drum and sample packs installed by Debian, and the sound-source class each file name implies.

A *pack* is one recording source: a Hydrogen drum kit folder, the LMMS sample folders, or the Sonic Pi sample set.
Splits and folds are made by pack, so one recording (or its numbered takes ``hit1``, ``hit2``...) never crosses a
split. Labels come from file names only; files whose name names no class stay unlabelled (pool material).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import soundfile as sf

HYDROGEN_DIR = Path("/usr/share/hydrogen/data/drumkits")
LMMS_DIR = Path("/usr/share/lmms/samples")
SONIC_PI_DIR = Path("/usr/share/sonic-pi/samples")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aif", ".aiff"}

# (class, pattern on the lower-cased file stem with separators turned into spaces); the first match wins, so more
# specific names come first (a "ride cup" is a cymbal, a "floor tom" a tom, a "snare rim" a snare...).
CLASS_PATTERNS: list[tuple[str, re.Pattern]] = [(c, re.compile(p)) for c, p in [
    ("clap", r"\b(clap|handclap|hand clap)"),
    ("cowbell", r"\b(cowbell|cb2?|mc cb)\b|cowbell|agogo"),
    ("hand_drum", r"\b(bongo|conga|djembe|cajon|tabla|dununba|kenkeni|sangban)"),
    ("cymbal", r"\b(crash|ride|china|splash|cymbal|cym|cc|rc|rd2?|cra)\b|crash|ride|cymbal|splash"),
    ("hihat", r"\b(hh|hhat|hihat|hi hat|hat|chh|ohh|hh2|hh3|ho|closehihat|openhat|pedalhihat)\b|^hh|hihat|hat"),
    ("tom", r"\b(tom|toms|tm|tm2|floortom|ft|t)\b|tom"),
    ("snare", r"\b(snare|sn|sn3|sd|jsnare|snr)\b|snare"),
    ("kick", r"\b(kick|bd|bassdrum|bass drum|k)\b|kick|bassdrum"),
]]


@dataclass(frozen=True)
class Sample:
    pack: str        # e.g. "hydrogen:ColomboAcousticDrumkit", "lmms", "sonic-pi"
    path: Path       # absolute path of the audio file
    label: str | None

    @property
    def key(self) -> str:
        """A stable identifier (pack + file name) used in recipes and manifests."""
        return f"{self.pack}/{self.path.name}"


def label_for(stem: str) -> str | None:
    """The drum class a sample's file stem names, or None."""
    text = re.sub(r"[_\-.]+", " ", stem.lower())
    text = re.sub(r"(?<=[a-z])(?=\d)", " ", text)  # "snare01" -> "snare 01", "bd1" -> "bd 1"
    for name, pattern in CLASS_PATTERNS:
        if pattern.search(text):
            return name
    return None


def _readable(path: Path) -> bool:
    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - a few packaged files have broken headers (e.g. lmms drums/kick04.ogg)
        return False
    return info.frames > 0


def _audio_files(folder: Path) -> list[Path]:
    """Decodable audio files under ``folder``, sorted; files soundfile cannot open are left out."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file() and _readable(p))


@lru_cache(maxsize=4)
def scan_packs(hydrogen_dir: Path = HYDROGEN_DIR, lmms_dir: Path = LMMS_DIR,
               sonic_pi_dir: Path = SONIC_PI_DIR) -> dict[str, list[Sample]]:
    """Every installed pack -> its samples (sorted by path). Missing packs are simply absent.

    Packs: each Hydrogen kit (``hydrogen:<kit>``), each LMMS sample folder (``lmms:<folder>``; only ``drums`` holds
    one-shot hits whose names carry a class) and each Sonic Pi sample family (``sonic-pi:<prefix>``).
    """
    packs: dict[str, list[Sample]] = {}
    if hydrogen_dir.is_dir():
        for kit in sorted(p for p in hydrogen_dir.iterdir() if p.is_dir()):
            files = [f for f in _audio_files(kit) if "empty" not in f.stem.lower()]
            if files:
                packs[f"hydrogen:{kit.name}"] = [Sample(f"hydrogen:{kit.name}", f, label_for(f.stem)) for f in files]
    if lmms_dir.is_dir():
        for folder in sorted(p for p in lmms_dir.iterdir() if p.is_dir()):
            files = _audio_files(folder)
            if files:
                name = f"lmms:{folder.name}"
                packs[name] = [Sample(name, f, label_for(f.stem) if folder.name == "drums" else None) for f in files]
    if sonic_pi_dir.is_dir():
        families: dict[str, list[Path]] = {}
        for f in _audio_files(sonic_pi_dir):
            families.setdefault(f.stem.split("_")[0], []).append(f)
        for family, files in sorted(families.items()):
            name = f"sonic-pi:{family}"
            packs[name] = [Sample(name, f, _sonic_pi_label(f.stem)) for f in files]
    return packs


def _sonic_pi_label(stem: str) -> str | None:
    family = stem.split("_")[0]
    if family == "tabla":
        return "hand_drum"
    if family in {"bd", "sn", "drum", "elec"}:
        return label_for(stem)
    return None
