"""Deterministic plans of the five mini tasks: which clip is made from what, and in which split.

Planning only lists and draws (seeded ``random.Random``, sorted inputs); rendering happens later in
``render.py``. Every task keeps its unit of identity apart between splits, as the real benchmarks do:

- ``mini_kws`` (like SPCV2): base voices (an eSpeak variant or a Flite voice) are split train/valid/test, so no
  voice speaks in two splits.
- ``mini_speaker`` (like VoxCeleb1 identification): the same speakers everywhere, different sentences per split.
- ``mini_genre`` (like GTZAN): pieces are split; all excerpts of a piece stay in one split.
- ``mini_sounds`` (like UrbanSound8K): folds are made of whole packs (drum kits / sample collections).
- ``mini_tagging`` (like AudioSet-20K): voices, pieces and packs are split train/test.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from . import music, speech
from .samples import Sample, scan_packs
from .text import KEYWORDS, SENTENCES

TASK_NAMES = ["mini_kws", "mini_speaker", "mini_genre", "mini_sounds", "mini_tagging"]


@dataclass(frozen=True)
class Scale:
    """How big each task is. ``default`` is the benchmark; ``tiny`` is for tests (a few clips per split)."""
    name: str
    kws_words: int
    kws_personas: tuple[int, int, int]         # personas in train/valid/test; each says every keyword once
    speakers: int
    speaker_sentences: tuple[int, int, int]    # sentences per speaker in train/valid/test
    genre_styles: int
    genre_pieces: tuple[int, int, int]         # pieces per style in train/valid/test
    genre_excerpts: int                        # excerpts per piece
    sounds_per_class: int                      # samples per (pack, class), at most
    sounds_variants: int                       # renderings per sample (gain, speed, onset)
    sounds_folds: int
    tagging_clips: tuple[int, int]             # train/test mixtures
    tagging_pieces: tuple[int, int]            # pieces per split used by the mixtures
    soundfonts: tuple[str, ...] | None = None  # restrict the soundfonts (None: all installed)
    sounds_groups: int | None = None           # use only this many packs (None: all)
    job_clips: int = 40                        # clips per rendering job


SCALES = {
    "default": Scale("default", 10, (36, 8, 12), 16, (12, 3, 5), 6, (18, 5, 7), 2, 4, 2, 5, (320, 160), (16, 8)),
    "tiny": Scale("tiny", 3, (2, 1, 2), 3, (2, 1, 1), 3, (2, 1, 1), 1, 1, 1, 3, (12, 8), (2, 2),
                  soundfonts=("TimGM6mb",), sounds_groups=6, job_clips=8),
}

# Packs kept out of the benchmark entirely, for the pre-training pool (plus every unlabelled pack).
POOL_PACKS = {"hydrogen:rumpf_kit_z01_h2", "hydrogen:VariBreaks", "hydrogen:Audiophob"}
SYNTHETIC_PACKS = {"lmms:shapes", "lmms:waveforms"}  # single-cycle oscillator waves: never used
SOUND_CLASSES = ["clap", "cowbell", "cymbal", "hand_drum", "hihat", "kick", "snare", "tom"]
DRUM_TAGS = ["cymbal", "hihat", "kick", "snare"]


@dataclass
class ClipPlan:
    file: str                 # path relative to the task folder
    labels: tuple[str, ...]
    split: str                # 'train' | 'valid' | 'test' or a fold number as text ('1'..)
    sec: float
    recipe: dict
    position: float = 0.0
    level_db: float = -3.0
    group: str = ""           # clips of one group render in the same job (shared piece / soundfont)

    def entry(self) -> dict:
        return {"file": self.file, "sec": self.sec, "position": self.position, "level_db": self.level_db,
                "recipe": self.recipe}


@dataclass
class TaskPlan:
    name: str
    kind: str                 # what it mirrors, for task.json
    unit_sec: float
    multilabel: bool
    metric: str
    split_column: str         # 'split' or 'fold'
    clips: list[ClipPlan] = field(default_factory=list)
    sources: dict = field(default_factory=dict)  # what the task uses, for the pool's separation check

    def jobs(self, job_clips: int) -> list[list[ClipPlan]]:
        """Clips grouped into rendering jobs: same-group clips together, then cut into chunks of ``job_clips``."""
        groups: dict[str, list[ClipPlan]] = {}
        for clip in self.clips:
            groups.setdefault(clip.group, []).append(clip)
        jobs = []
        for _, clips in sorted(groups.items()):
            jobs += [clips[i:i + job_clips] for i in range(0, len(clips), job_clips)]
        return jobs


# --- voices ---------------------------------------------------------------------------------------------------
def voice_partition(seed: int = 0) -> dict[str, list[str]]:
    """eSpeak variants and Flite voices -> 'pool' (pre-training only) and the benchmark splits of ``mini_kws``."""
    rng = random.Random(f"voices-{seed}")
    variants = list(speech.ESPEAK_VARIANTS)
    rng.shuffle(variants)
    n_pool = len(variants) * 3 // 10
    pool, bench = variants[:n_pool], [f"espeak:{v}" for v in variants[n_pool:]]
    if speech.flite_available():
        bench += [f"flite:{v}" for v in speech.FLITE_VOICES]
    bench.sort()
    rng.shuffle(bench)
    n_test, n_valid = len(bench) // 4, len(bench) * 15 // 100
    return {"pool": sorted(f"espeak:{v}" for v in pool), "test": sorted(bench[:n_test]),
            "valid": sorted(bench[n_test:n_test + n_valid]), "train": sorted(bench[n_test + n_valid:])}


def available_bases(bases: list[str]) -> list[str]:
    have_espeak, have_flite = speech.espeak_available(), speech.flite_available()
    return [b for b in bases if (b.startswith("espeak:") and have_espeak) or (b.startswith("flite:") and have_flite)]


def make_persona(base: str, rng: random.Random) -> speech.Persona:
    engine, voice = base.split(":", 1)
    speed = round(rng.uniform(0.9, 1.1), 2)
    if engine == "flite":
        return speech.Persona("flite", voice, rate=rng.randrange(80, 125), speed=speed)
    accent = rng.choice(speech.ESPEAK_ACCENTS)
    return speech.Persona("espeak", f"{accent}+{voice}", rate=rng.randrange(130, 215), pitch=rng.randrange(20, 80),
                          pitch_range=rng.randrange(30, 80), speed=speed)


# --- the five tasks -------------------------------------------------------------------------------------------
def plan_kws(scale: Scale, seed: int = 0) -> TaskPlan:
    rng = random.Random(f"mini_kws-{seed}")
    words = KEYWORDS[:scale.kws_words]
    plan = TaskPlan("mini_kws", "spoken keywords, speaker-disjoint splits (like Speech Commands V2)", 1.0, False,
                    "accuracy", "split")
    parts = voice_partition(seed)
    used = []
    for split, count in zip(("train", "valid", "test"), scale.kws_personas):
        bases = available_bases(parts[split])
        for i in range(count):
            base = bases[i % len(bases)]
            persona = make_persona(base, rng)
            used.append(base)
            for word in words:
                plan.clips.append(ClipPlan(f"{split}/{word}/{persona.name}.wav", (word,), split, 1.0,
                                           persona.recipe(word, rng.randrange(1 << 30)),
                                           position=rng.random(), level_db=rng.uniform(-12, -1), group=split))
    plan.sources = {"voices": sorted(set(used)), "texts": sorted(words)}
    return plan


def plan_speaker(scale: Scale, seed: int = 0) -> TaskPlan:
    rng = random.Random(f"mini_speaker-{seed}")
    plan = TaskPlan("mini_speaker", "speaker identification, sentence-disjoint splits (like VoxCeleb1)", 3.0,
                    False, "accuracy", "split")
    parts = voice_partition(seed)
    bases = available_bases(sorted(parts["train"] + parts["valid"] + parts["test"]))
    rng.shuffle(bases)
    sentences = list(SENTENCES)
    rng.shuffle(sentences)
    third = len(sentences) // 3
    by_split = {"train": sentences[:third], "valid": sentences[third:2 * third], "test": sentences[2 * third:]}
    for index in range(scale.speakers):
        persona = make_persona(bases[index % len(bases)], rng)
        label = f"spk{index:02d}"
        for split, count in zip(("train", "valid", "test"), scale.speaker_sentences):
            for j, text in enumerate(rng.sample(by_split[split], count)):
                # a speaker's voice and accent are fixed; rate, pitch and tape speed vary a little per utterance
                said = speech.Persona(persona.engine, persona.voice, max(60, int(persona.rate * rng.uniform(0.9, 1.1))),
                                      min(99, max(0, persona.pitch + rng.randrange(-6, 7))), persona.pitch_range,
                                      round(persona.speed + rng.uniform(-0.02, 0.02), 3))
                plan.clips.append(ClipPlan(f"{split}/{label}/{label}_{j:02d}.wav", (label,), split, 3.0,
                                           said.recipe(text, rng.randrange(1 << 30)), position=rng.random(),
                                           level_db=rng.uniform(-12, -1), group=split))
    plan.sources = {"voices": sorted({bases[i % len(bases)] for i in range(scale.speakers)}),
                    "texts": sorted(SENTENCES)}
    return plan


def _fonts(scale: Scale) -> list[str]:
    fonts = sorted(music.soundfonts())
    if scale.soundfonts:
        fonts = [f for f in fonts if f in scale.soundfonts] or fonts[:1]
    return fonts


def music_recipe(piece: str, rng: random.Random, program: int, soundfont: str, dur: float) -> dict:
    return {"src": "music", "piece": piece, "bpm": round(rng.uniform(80, 140), 1),
            "position": round(rng.uniform(0.05, 0.95), 3), "dur": dur, "transpose": rng.randrange(-5, 6),
            "velocity": rng.randrange(70, 111), "program": program, "soundfont": soundfont}


def tagging_pieces(scale: Scale, seed: int = 0) -> dict[str, list[str]]:
    """Pieces of the mixtures (train/test): fiddle tunes and Essen songs the genre task does not use."""
    genre = _genre_pieces(scale, _tiny_styles(scale), seed)
    taken = {p for style in genre.values() for split in style.values() for p in split}
    rest = []
    for style in ("reel", "jig", "hornpipe", "chinese_folk"):
        rest += [p for p in music.style_pieces(style)[:400] if p not in taken]
    random.Random(f"pieces-tagging-{seed}").shuffle(rest)
    n_train, n_test = scale.tagging_pieces
    return {"train": sorted(rest[:n_train]), "test": sorted(rest[n_train:n_train + n_test])}


def _tiny_styles(scale: Scale) -> list[str]:
    # the tiny scale keeps the fastest-parsing styles
    return ["reel", "jig", "chinese_folk"][:scale.genre_styles] if scale.name == "tiny" else music.BENCHMARK_STYLES


def piece_stem(piece: str) -> str:
    """A file-name stem that is unique per piece: ``essen:han1.abc#12`` -> ``han1_12``,
    ``corpus:bach/bwv66.6.mxl`` -> ``bach_bwv66.6`` (the extension goes, every other part stays)."""
    name = piece.split(":", 1)[1]
    name, _, index = name.partition("#")
    stem = name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name
    stem = stem.replace("/", "_")
    return f"{stem}_{index}" if index else stem


def plan_genre(scale: Scale, seed: int = 0) -> TaskPlan:
    rng = random.Random(f"mini_genre-{seed}")
    plan = TaskPlan("mini_genre", "music style, piece-disjoint splits (like GTZAN)", 5.0, False, "accuracy",
                    "split")
    fonts = _fonts(scale)
    styles = _tiny_styles(scale)
    pieces = _genre_pieces(scale, styles, seed)
    for style in styles:
        for split in ("train", "valid", "test"):
            for piece in pieces[style][split]:
                font = rng.choice(fonts)
                stem = piece_stem(piece)
                for k in range(scale.genre_excerpts):
                    plan.clips.append(ClipPlan(
                        f"{split}/{style}/{stem}_{k}.wav", (style,), split, 5.0,
                        music_recipe(piece, rng, rng.choice(music.ALL_PROGRAMS), font, 5.0),
                        level_db=rng.uniform(-12, -1), group=f"{font}"))
    plan.sources = {"pieces": sorted({p for s in styles for sp in pieces[s].values() for p in sp})}
    return plan


def _genre_pieces(scale: Scale, styles: list[str], seed: int) -> dict[str, dict[str, list[str]]]:
    out = {}
    for style in styles:
        candidates = music.style_pieces(style)
        random.Random(f"pieces-{style}-{seed}").shuffle(candidates)
        a, b, c = scale.genre_pieces
        out[style] = {"train": sorted(candidates[:a]), "valid": sorted(candidates[a:a + b]),
                      "test": sorted(candidates[a + b:a + b + c])}
    return out


def benchmark_pieces(seed: int = 0) -> set[str]:
    """Every piece a benchmark plan (``mini_genre``, ``mini_tagging``) uses at any scale: kept out of the pool."""
    reserved: set[str] = set()
    for scale in SCALES.values():
        for style in _genre_pieces(scale, _tiny_styles(scale), seed).values():
            for split in style.values():
                reserved.update(split)
        for split in tagging_pieces(scale, seed).values():
            reserved.update(split)
    return reserved


def sound_packs() -> tuple[dict[str, list[Sample]], dict[str, list[Sample]]]:
    """(benchmark fold groups, pool packs). Sonic Pi's drum families form one group."""
    bench: dict[str, list[Sample]] = {}
    pool: dict[str, list[Sample]] = {}
    for name, samples in scan_packs().items():
        if name in SYNTHETIC_PACKS:
            continue
        labelled = [s for s in samples if s.label in SOUND_CLASSES]
        if name in POOL_PACKS or not labelled:
            pool[name] = samples
            continue
        group = "sonic-pi" if name.startswith("sonic-pi:") else name
        bench.setdefault(group, []).extend(labelled)
    return bench, pool


def plan_sounds(scale: Scale, seed: int = 0) -> TaskPlan:
    rng = random.Random(f"mini_sounds-{seed}")
    plan = TaskPlan("mini_sounds", "drum and percussion classes, pack-disjoint folds (like UrbanSound8K)", 2.0,
                    False, "accuracy", "fold")
    groups, _ = sound_packs()
    if scale.sounds_groups:
        groups = {g: groups[g] for g in sorted(groups)[:scale.sounds_groups]}
    picked: dict[str, list[Sample]] = {}
    for group, samples in sorted(groups.items()):
        for cls in SOUND_CLASSES:
            members = [s for s in samples if s.label == cls]
            rng.shuffle(members)
            picked.setdefault(group, []).extend(members[:scale.sounds_per_class])
    # folds: whole packs, biggest first onto the fold with the fewest clips (ties -> lowest fold number)
    folds = {f: [] for f in range(1, scale.sounds_folds + 1)}
    for group in sorted(picked, key=lambda g: (-len(picked[g]), g)):
        target = min(folds, key=lambda f: (sum(len(picked[g]) for g in folds[f]), f))
        folds[target].append(group)
    for fold, members in folds.items():
        for group in sorted(members):
            for sample in picked[group]:
                for k in range(scale.sounds_variants):
                    recipe = {"src": "sample", "file": str(sample.path), "speed": round(rng.uniform(0.92, 1.08), 3),
                              "hits": [round(rng.uniform(0.0, 0.5), 3)], "sec": 2.0}
                    stem = f"{group}_{sample.path.stem}".replace(":", "-").replace(" ", "_")
                    plan.clips.append(ClipPlan(f"fold{fold}/{sample.label}/{stem}_{k}.wav", (sample.label,),
                                               str(fold), 2.0, recipe, level_db=rng.uniform(-12, -1),
                                               group=f"fold{fold}"))
    plan.sources = {"packs": sorted(picked), "files": sorted(str(s.path) for g in picked.values() for s in g)}
    return plan


def plan_tagging(scale: Scale, seed: int = 0) -> TaskPlan:
    rng = random.Random(f"mini_tagging-{seed}")
    plan = TaskPlan("mini_tagging", "multi-label tags of 1-3 source mixtures, source-disjoint (like AudioSet-20K)",
                    3.0, True, "mAP", "split")
    fonts = _fonts(scale)
    parts = voice_partition(seed)
    voices = {"train": available_bases(parts["train"] + parts["valid"]), "test": available_bases(parts["test"])}
    pieces = tagging_pieces(scale, seed)
    groups, _ = sound_packs()
    names = sorted(groups)
    for attempt in range(100):  # split packs so that every drum tag has samples on both sides
        order = list(names)
        random.Random(f"tagging-packs-{seed}-{attempt}").shuffle(order)
        cut = max(1, len(order) // 3)
        pack_split = {"test": sorted(order[:cut]), "train": sorted(order[cut:])}
        drums = {split: {tag: sorted((s for g in gs for s in groups[g] if s.label == tag), key=lambda s: str(s.path))
                         for tag in DRUM_TAGS} for split, gs in pack_split.items()}
        if all(drums[s][t] for s in drums for t in DRUM_TAGS):
            break
    tags = ["speech"] + sorted(music.PROGRAM_FAMILIES) + DRUM_TAGS
    for split, count in zip(("train", "test"), scale.tagging_clips):
        for i in range(count):
            k = rng.choices([1, 2, 3], weights=[3, 4, 3])[0]
            chosen = sorted(rng.sample(tags, k))
            font = rng.choice(fonts)
            recipes = []
            for tag in chosen:
                if tag == "speech":
                    persona = make_persona(rng.choice(voices[split]), rng)
                    recipes.append(persona.recipe(rng.choice(SENTENCES), rng.randrange(1 << 30)))
                elif tag in music.PROGRAM_FAMILIES:
                    recipes.append(music_recipe(rng.choice(pieces[split]), rng,
                                                rng.choice(music.PROGRAM_FAMILIES[tag]), font, 3.0))
                else:
                    sample = rng.choice(drums[split][tag])
                    hits = sorted(round(rng.uniform(0.0, 2.6), 3) for _ in range(rng.randrange(2, 7)))
                    recipes.append({"src": "sample", "file": str(sample.path),
                                    "speed": round(rng.uniform(0.92, 1.08), 3), "hits": hits, "sec": 3.0})
            recipe = {"src": "mix", "parts": recipes, "gains_db": [round(rng.uniform(-8, 0), 2) for _ in recipes],
                      "positions": [round(rng.random(), 3) for _ in recipes]}
            plan.clips.append(ClipPlan(f"{split}/mix_{split}_{i:04d}.wav", tuple(chosen), split, 3.0, recipe,
                                       level_db=rng.uniform(-12, -1), group=f"{split}-{font}"))
    plan.sources = {"voices": sorted(set(voices["train"] + voices["test"])),
                    "pieces": sorted(pieces["train"] + pieces["test"]), "packs": names,
                    "files": sorted(str(s.path) for d in drums.values() for ss in d.values() for s in ss),
                    "texts": sorted(SENTENCES)}
    return plan


PLANNERS = {"mini_kws": plan_kws, "mini_speaker": plan_speaker, "mini_genre": plan_genre,
            "mini_sounds": plan_sounds, "mini_tagging": plan_tagging}
