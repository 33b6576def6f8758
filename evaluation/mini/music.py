"""Music for the mini benchmark: scores from the music21 corpus rendered by fluidsynth with GM soundfonts.

A *piece* is identified by a string: ``corpus:<path inside music21's corpus>`` for one-piece files, or
``essen:<book>.abc#<n>`` for the n-th tune (0-based) of an Essen folk-song book (the books are split as text, so a
single tune parses in a fraction of a second instead of the whole book's minutes).

Timbre never carries a style label: the GM program, the soundfont, the tempo and a transposition are drawn at
random per excerpt by the planners, independently of the style. Excerpts are rendered many at a time by one
fluidsynth run (loading a compressed soundfont takes seconds): each excerpt gets its own time slot, followed by
all-notes-off/all-sound-off and a silent gap, and the slots are cut apart afterwards.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .midi import TICKS_PER_SECOND, Note, midi_events_bytes
from .wave import SAMPLE_RATE


class MusicError(RuntimeError):
    """music21 or fluidsynth is missing, or a piece cannot be parsed or rendered."""


# GM programs by instrument family (also the tags of the mixture-tagging task)
PROGRAM_FAMILIES: dict[str, list[int]] = {
    "piano": [0, 1, 2, 4, 6],
    "organ": [16, 17, 19, 21],
    "guitar": [24, 25, 26, 27],
    "strings": [40, 41, 42, 48, 49],
    "brass": [56, 57, 60, 61],
    "woodwind": [65, 68, 71, 73, 74],
}
ALL_PROGRAMS = sorted(p for ps in PROGRAM_FAMILIES.values() for p in ps)

SOUNDFONT_CANDIDATES = [  # Debian packages: timgm6mb-soundfont, musescore-general-soundfont-small, fluid-soundfont-gm
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
]
SLOT_GAP_SEC = 2.0
# Slots start on a 0.1 s grid (a whole number of MIDI ticks and of fluidsynth's 64-sample blocks at 16 kHz).
# fluidsynth carries some state from slot to slot (reverb tails, voice filters), so an excerpt's samples depend on
# the batch it is rendered in: the builder keeps batches fixed (one job = one fixed list of clips), which makes a
# build, and a resumed build, reproduce the same files.
SLOT_GRID_SEC = 0.1
RENDER_TIMEOUT_SEC = 600


def soundfonts() -> dict[str, Path]:
    """Installed GM soundfonts: name -> path (sorted by name)."""
    return {p.stem: p for p in sorted(SOUNDFONT_CANDIDATES, key=lambda p: p.stem) if p.is_file()}


def fluidsynth_available() -> bool:
    return shutil.which("fluidsynth") is not None and bool(soundfonts())


def music21_available() -> bool:
    try:
        import music21  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def _corpus_files(folder: str, pattern: str) -> list[str]:
    root = _corpus_root()
    return sorted(str(p.relative_to(root)) for p in (root / folder).glob("*") if re.search(pattern, p.name))


@lru_cache(maxsize=None)
def _essen_tunes(book: str) -> list[str]:
    text = (_corpus_root() / "essenFolksong" / book).read_text(encoding="latin-1")
    parts = re.split(r"(?m)^(?=X:)", text)
    return [p for p in parts if p.startswith("X:") and "K:" in p]


def _ryans(kind: str) -> list[str]:
    return [f"corpus:{p}" for p in _corpus_files("ryansMammoth", rf"{kind}\d*\.abc$")]


def _essen(books: list[str]) -> list[str]:
    return [f"essen:{b}#{i}" for b in books for i in range(len(_essen_tunes(b)))]


def style_pieces(style: str) -> list[str]:
    """All candidate pieces of a style, sorted (a fresh list; the scan is cached)."""
    return list(_style_pieces(style))


@lru_cache(maxsize=None)
def _style_pieces(style: str) -> tuple[str, ...]:
    return tuple(_scan_style(style))


def _scan_style(style: str) -> list[str]:
    """All candidate pieces of a style, sorted. Styles in ``BENCHMARK_STYLES`` feed the genre task; the others
    (and the pieces of benchmark styles that no benchmark task uses) feed the pre-training pool."""
    if style == "chorale":
        return [f"corpus:{p}" for p in _corpus_files("bach", r"^bwv\d+\.\d+\.mxl$")]
    if style == "renaissance":  # the shorter half of the Palestrina movements (parsing time grows with length)
        root = _corpus_root()
        return [f"corpus:{p}" for p in _corpus_files("palestrina", r"\.krn$") if (root / p).stat().st_size <= 4200]
    if style in {"reel", "jig", "hornpipe", "strathspey", "clog"}:
        return _ryans(style.capitalize())
    if style == "chinese_folk":
        return _essen(["han1.abc", "han2.abc"])
    if style == "german_folk":
        return _essen(["altdeu10.abc", "altdeu20.abc"])
    if style == "madrigal":
        return [f"corpus:{p}" for p in _corpus_files("monteverdi", r"\.mxl$")]
    raise MusicError(f"unknown music style {style!r}")


BENCHMARK_STYLES = ["chorale", "renaissance", "reel", "jig", "hornpipe", "chinese_folk"]
POOL_ONLY_STYLES = ["strathspey", "clog", "german_folk", "madrigal"]


@dataclass(frozen=True)
class ScoreNotes:
    notes: list[tuple[float, float, int, int]]  # (onset, duration) in quarter notes, MIDI pitch, part index
    length: float                                 # quarter notes


@lru_cache(maxsize=512)
def load_piece(piece: str) -> ScoreNotes:
    """Parse a piece into a flat note list (chords split into notes, grace notes dropped)."""
    from music21 import converter, corpus

    try:
        if piece.startswith("corpus:"):
            score = corpus.parse(piece[len("corpus:"):])
        elif piece.startswith("essen:"):
            book, index = piece[len("essen:"):].split("#")
            score = converter.parse(_essen_tunes(book)[int(index)], format="abc")
        else:
            raise MusicError(f"unknown piece id {piece!r}")
    except MusicError:
        raise
    except Exception as err:  # noqa: BLE001 - music21 raises many types
        raise MusicError(f"music21 cannot parse {piece}: {err}") from None
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    notes: list[tuple[float, float, int, int]] = []
    for index, part in enumerate(parts[:8]):
        for element in part.flatten().notes:
            duration = float(element.duration.quarterLength)
            if duration <= 0:
                continue
            onset = float(element.offset)
            for pitch in element.pitches:
                notes.append((onset, duration, int(pitch.midi), index))
    if not notes:
        raise MusicError(f"{piece} holds no notes")
    notes.sort()
    return ScoreNotes(notes, max(o + d for o, d, _, _ in notes))


def excerpt(score: ScoreNotes, recipe: dict) -> tuple[list[Note], float]:
    """Notes (seconds, relative to the excerpt start) of a music recipe, and the excerpt length in seconds.

    Recipe keys: ``bpm`` (quarter notes per minute), ``position`` (0-1, where in the piece the excerpt starts),
    ``dur`` (seconds), ``transpose`` (semitones), ``velocity``."""
    sec_per_ql = 60.0 / recipe["bpm"]
    total = score.length * sec_per_ql
    dur = float(recipe["dur"])
    start = recipe["position"] * max(0.0, total - dur)
    picked = []
    for onset, length, pitch, part in score.notes:
        t0, t1 = onset * sec_per_ql - start, (onset + length) * sec_per_ql - start
        if t1 <= 0 or t0 >= dur:
            continue
        picked.append(Note(max(0.0, t0), min(dur, t1) + 0.05, pitch + recipe["transpose"],
                           recipe["velocity"], channel=part))
    if not picked and start > 0:  # the window fell on a rest: take the opening instead
        return excerpt(score, {**recipe, "position": 0.0})
    return picked, dur


def render_excerpts(items: list[tuple[list[Note], float, int]], soundfont: Path,
                    rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Render (notes, seconds, GM program) excerpts with one fluidsynth run; mono float32 at ``rate`` each."""
    if shutil.which("fluidsynth") is None:
        raise MusicError("fluidsynth is not installed; run scripts/install_system_deps.sh")
    slots, all_notes, programs_at = [], [], []
    t = 0.0
    for notes, dur, program in items:
        slots.append((t, dur))
        all_notes += [Note(n.start + t, n.end + t, n.pitch, n.velocity, n.channel) for n in notes]
        programs_at.append((t, program))
        t = math.ceil((t + dur + SLOT_GAP_SEC) / SLOT_GRID_SEC - 1e-9) * SLOT_GRID_SEC
    data = _slotted_midi(all_notes, programs_at, slots)
    with tempfile.TemporaryDirectory(prefix="m2d-mini-fs-") as tmp:
        mid, raw = Path(tmp) / "in.mid", Path(tmp) / "out.raw"
        mid.write_bytes(data)
        cmd = ["fluidsynth", "-ni", "-q", "-r", str(rate), "-g", "0.5", "-T", "raw", "-O", "float",
               "-o", "synth.dynamic-sample-loading=1", "-o", "synth.cpu-cores=1", "-F", str(raw), str(soundfont),
               str(mid)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=RENDER_TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            raise MusicError(f"fluidsynth did not finish within {RENDER_TIMEOUT_SEC} s ({soundfont})") from None
        if proc.returncode != 0 or not raw.exists():
            raise MusicError(f"fluidsynth failed with {soundfont}: {proc.stderr.decode(errors='replace').strip()}")
        stereo = np.fromfile(raw, np.float32)
    mono = stereo.reshape(-1, 2).mean(axis=1)
    out = []
    for start, dur in slots:
        a, b = int(round(start * rate)), int(round((start + dur) * rate))
        clip = mono[a:b]
        out.append(np.pad(clip, (0, (b - a) - len(clip))).astype(np.float32))
    return out


def _slotted_midi(notes: list[Note], programs_at, slots) -> bytes:
    """One MIDI file: each slot starts with its program on every melodic channel and ends, half-way through the
    gap that follows it, with all-notes-off and all-sound-off (a sustained organ would otherwise never stop)."""

    events = []
    for (start, program), (_, dur) in zip(programs_at, slots):
        tick = round(start * TICKS_PER_SECOND)
        for channel in range(16):
            if channel != 9:
                events.append((tick, 0, bytes([0xC0 | channel, program])))
        end = round((start + dur + SLOT_GAP_SEC / 2) * TICKS_PER_SECOND)
        for channel in range(16):
            events.append((end, 3, bytes([0xB0 | channel, 123, 0])))
            events.append((end, 3, bytes([0xB0 | channel, 120, 0])))
    for n in notes:
        channel = n.channel if n.channel < 9 else n.channel + 1
        on = round(n.start * TICKS_PER_SECOND)
        off = max(on + 1, round(n.end * TICKS_PER_SECOND))
        pitch = min(127, max(0, n.pitch))
        events.append((on, 2, bytes([0x90 | channel, pitch, min(127, max(1, n.velocity))])))
        events.append((off, 1, bytes([0x80 | channel, pitch, 0])))
    return midi_events_bytes(events)
