"""The unlabelled pre-training pool: speech, rendered music, samples and a few mixtures, kept apart from the
mini benchmark.

How it is kept apart (checked by :func:`overlap_report` before anything is rendered, and by the tests):

- speech: only eSpeak NG variants reserved for the pool by ``plans.voice_partition`` (30 % of the variants; no
  benchmark task uses them), no Flite voice; the texts are word sequences drawn from ``text.POOL_WORDS``, which
  shares no word with the keywords, so no keyword and no benchmark sentence is ever spoken in the pool;
- music: pieces of styles the benchmark never uses (strathspeys, clogs, German Essen songs, Monteverdi madrigals)
  and pieces of the benchmark styles that neither ``mini_genre`` nor ``mini_tagging`` uses, at any scale;
- samples: only packs that no benchmark task uses (three reserved Hydrogen kits and the unlabelled LMMS and
  Sonic Pi collections: loops, basses, instruments, effects...; the synthetic oscillator shapes are never used).

Two varieties: ``standard`` and ``varied`` (the shipped default model's pool, 10,000 clips), which moves a quarter
of the pool to two kinds the standard pool lacks: speech in other languages (the same pool-only eSpeak variants
speaking the pool's words with the phonology of :data:`POOL_LANGUAGES`) and sound events over a background (a pool
sample's hits over pool speech or pool music).
"""
from __future__ import annotations

import random
from dataclasses import replace

from m2d_hear.errors import InputError

from . import music, speech
from .plans import (TASK_NAMES, ClipPlan, TaskPlan, benchmark_pieces, make_persona, music_recipe, sound_packs,
                    voice_partition)
from .text import KEYWORDS, POOL_WORDS, SENTENCES

# the share of each kind of clip, per variety (kinds whose sources are not installed are dropped, the rest scaled up)
SHARES = {"standard": {"speech": 0.4, "music": 0.3, "samples": 0.2, "mix": 0.1},
          "varied": {"speech": 0.25, "languages": 0.15, "music": 0.25, "samples": 0.15, "mix": 0.1, "events": 0.1}}
VARIETIES = tuple(SHARES)
# eSpeak NG languages in Latin script (they read the pool's words with their own letter-to-sound rules)
POOL_LANGUAGES = ("de", "fr", "es", "it", "pt", "nl", "sv", "da", "pl", "cs", "fi", "hu", "tr", "ro", "hr", "id",
                  "sw", "vi", "eu", "ca", "cy", "et", "lv", "lt")


def plan_pool(n_clips: int = 3000, clip_sec: float = 4.0, seed: int = 0, variety: str = "standard") -> TaskPlan:
    """``n_clips`` unlabelled clips of ``clip_sec`` seconds, composed as :data:`SHARES` gives for ``variety``:
    speech, speech in other languages, music, samples, speech over music (mix) and sample hits over speech or
    music (events)."""
    if variety not in VARIETIES:
        raise InputError(f"unknown pool variety {variety!r}; choose one of {', '.join(VARIETIES)}")
    rng = random.Random(f"pool-{seed}")
    plan = TaskPlan("pool", "unlabelled pre-training pool", clip_sec, False, "", "split")
    voices = voice_partition(seed)["pool"] if speech.espeak_available() else []
    pieces = pool_pieces(seed) if music.music21_available() and music.fluidsynth_available() else []
    _, packs = sound_packs()
    samples = sorted((s for ss in packs.values() for s in ss), key=lambda s: str(s.path))
    fonts = sorted(music.soundfonts())
    installed = {"speech": voices, "languages": voices, "music": pieces, "samples": samples,
                 "mix": voices and pieces, "events": samples and (voices or pieces)}
    shares = {kind: share if installed[kind] else 0 for kind, share in SHARES[variety].items()}
    total = sum(shares.values())
    if total == 0:
        raise InputError("no pool source is installed: pip install espeakng-loader (see scripts/"
                           "install_system_deps.sh for music and samples)")
    counts = {k: int(round(n_clips * v / total)) for k, v in shares.items()}
    counts["speech" if voices else next(k for k, v in shares.items() if v)] += n_clips - sum(counts.values())

    def speech_recipe(language: str | None = None):
        persona = make_persona(rng.choice(voices), rng)
        if language:
            persona = replace(persona, voice=f"{language}+{persona.voice.split('+')[-1]}")
        words = " ".join(rng.choice(POOL_WORDS) for _ in range(rng.randrange(5, 15)))
        return persona.recipe(words, rng.randrange(1 << 30))

    def pool_music_recipe(piece, font):
        return music_recipe(piece, rng, rng.choice(music.ALL_PROGRAMS), font, clip_sec)

    index = 0

    def add(recipe, group):
        nonlocal index
        plan.clips.append(ClipPlan(f"{group.split('-')[0]}/pool_{index:05d}.wav", (), "train", clip_sec, recipe,
                                   position=rng.random(), level_db=rng.uniform(-12, -1), group=group))
        index += 1

    for _ in range(counts["speech"]):
        add(speech_recipe(), "speech")
    # three excerpts per piece (parsing dominates the music cost); one soundfont per piece
    piece_font = {}
    for i in range(counts["music"]):
        piece = pieces[(i // 3) % len(pieces)]
        font = piece_font.setdefault(piece, rng.choice(fonts))
        add(pool_music_recipe(piece, font), f"music-{font}")
    def sample_recipe():
        sample = rng.choice(samples)
        n_hits = rng.randrange(1, 9)
        hits = sorted(round(rng.uniform(0.0, clip_sec - 0.2), 3) for _ in range(n_hits))
        return {"src": "sample", "file": str(sample.path), "speed": round(rng.uniform(0.9, 1.1), 3),
                "hits": hits if n_hits > 1 else [0.0], "sec": clip_sec}

    for _ in range(counts.get("languages", 0)):
        add(speech_recipe(rng.choice(POOL_LANGUAGES)), "speech")
    for _ in range(counts["samples"]):
        add(sample_recipe(), "samples")
    for i in range(counts["mix"]):
        piece = pieces[-1 - (i // 3) % len(pieces)]
        font = piece_font.setdefault(piece, rng.choice(fonts))
        add({"src": "mix", "parts": [speech_recipe(), pool_music_recipe(piece, font)],
             "gains_db": [0.0, round(rng.uniform(-15, -3), 2)], "positions": [rng.random(), 0.0]}, f"mix-{font}")
    for i in range(counts.get("events", 0)):
        if voices and (not pieces or rng.random() < 0.5):
            background, group = speech_recipe(), "events"
        else:
            piece = pieces[(i * 7) % len(pieces)]
            font = piece_font.setdefault(piece, rng.choice(fonts))
            background, group = pool_music_recipe(piece, font), f"events-{font}"
        add({"src": "mix", "parts": [background, sample_recipe()], "gains_db": [round(rng.uniform(-12, 0), 2), 0.0],
             "positions": [rng.random(), 0.0]}, group)
    plan.sources = {"voices": sorted(voices), "pieces": sorted(pieces), "packs": sorted(packs),
                    "files": sorted(str(s.path) for s in samples), "counts": counts}
    if variety != "standard":
        plan.sources["variety"] = variety
    return plan


def pool_pieces(seed: int = 0) -> list[str]:
    """Pieces no benchmark scale uses: pool-only styles plus benchmark-style pieces outside every benchmark plan."""
    reserved = benchmark_pieces(seed)
    pieces = [p for style in music.POOL_ONLY_STYLES for p in music.style_pieces(style)]
    for style in music.BENCHMARK_STYLES:
        pieces += [p for p in music.style_pieces(style) if p not in reserved]
    rng = random.Random(f"pool-pieces-{seed}")
    rng.shuffle(pieces)
    return pieces[:1500]


def _recipes(recipe: dict):
    if recipe["src"] == "mix":
        for part in recipe["parts"]:
            yield from _recipes(part)
    else:
        yield recipe


def overlap_report(pool: TaskPlan, benchmark: list[TaskPlan]) -> list[str]:
    """Everything the pool shares with the benchmark's material (empty when it is kept apart)."""
    voices, pieces, files, packs = set(), set(), set(), set()
    for task in benchmark:
        for clip in task.clips:
            for r in _recipes(clip.recipe):
                if r["src"] == "speech":
                    voices.add(f"{r['engine']}:{r['voice'].split('+')[-1]}")
                elif r["src"] == "music":
                    pieces.add(r["piece"])
                else:
                    files.add(r["file"])
        packs.update(task.sources.get("packs", []))
    problems = []
    bench_texts = {s.lower() for s in SENTENCES} | set(KEYWORDS)
    for clip in pool.clips:
        for r in _recipes(clip.recipe):
            if r["src"] == "speech":
                base = f"{r['engine']}:{r['voice'].split('+')[-1]}"
                if base in voices:
                    problems.append(f"{clip.file}: voice {base} is used by the benchmark")
                words = set(r["text"].lower().split())
                if words & set(KEYWORDS) or r["text"].lower() in bench_texts:
                    problems.append(f"{clip.file}: text {r['text']!r} overlaps the benchmark texts")
            elif r["src"] == "music" and r["piece"] in pieces:
                problems.append(f"{clip.file}: piece {r['piece']} is used by the benchmark")
            elif r["src"] == "sample" and r["file"] in files:
                problems.append(f"{clip.file}: sample {r['file']} is used by the benchmark")
    shared_packs = set(pool.sources.get("packs", [])) & packs
    problems += [f"pack {p} is used by both the pool and the benchmark" for p in sorted(shared_packs)]
    return problems


__all__ = ["SHARES", "VARIETIES", "POOL_LANGUAGES", "plan_pool", "pool_pieces", "overlap_report", "TASK_NAMES"]
