"""The mini benchmark builder: layouts, determinism, split disjointness, the pool's separation, resumption.

One tiny build (a few clips per split) is shared by the module; the checks on plans use the default scale
without rendering anything.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from evaluation.finetune.recipes import Recipe, task_recipe
from evaluation.mini import build, missing_requirements
from evaluation.mini.build import DONE, MiniBuildError
from evaluation.mini.plans import PLANNERS, SCALES, TASK_NAMES
from evaluation.mini.pool import POOL_LANGUAGES, overlap_report, plan_pool
from evaluation.mini.render import render_job
from evaluation.mini.speech import ESPEAK_ACCENTS
from evaluation.mini.suite import MINI_PROBE, MINI_PROBE_NOTE, TASK_SETTINGS
from m2d_hear.errors import InputError

BUILDABLE = [t for t in TASK_NAMES if not missing_requirements(t)]
pytestmark = pytest.mark.skipif(not BUILDABLE, reason="no mini-benchmark engine installed (pip install -e .[mini])")


def needs(task):
    return pytest.mark.skipif(task not in BUILDABLE, reason=f"{task}: {'; '.join(missing_requirements(task))}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini")
    report = build(out, scale="tiny", jobs=2, progress=False)
    return out, report


def rows(folder: Path) -> list[dict]:
    with open(folder / "meta.csv", newline="") as f:
        return list(csv.DictReader(f))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_layout_csv_and_task_json(tiny):
    out, report = tiny
    assert {r.name for r in report.results if r.status == "built"} == set(BUILDABLE)
    for task in BUILDABLE:
        folder = out / task
        info = json.loads((folder / "task.json").read_text())
        assert info["unit_sec"] > 0 and info["metric"] in ("accuracy", "mAP")
        assert {k: info[k] for k in TASK_SETTINGS} == TASK_SETTINGS   # how the benchmark is evaluated, as data
        assert info["multilabel"] == (task == "mini_tagging")
        table = rows(folder)
        column = "fold" if task == "mini_sounds" else "split"
        assert list(table[0]) == ["file_name", "label", column]
        assert len(table) == info["clips"] == len(PLANNERS[task](SCALES["tiny"]).clips)
        for row in table:
            wave, rate = sf.read(folder / row["file_name"], dtype="float32")
            assert rate == 16000 and wave.ndim == 1
            assert len(wave) == int(round(info["unit_sec"] * 16000))
            assert np.sqrt(np.mean(wave ** 2)) > 1e-3, row  # real audio, not silence
        if column == "split":
            assert {r["split"] for r in table} >= {"train", "test"}
        else:
            assert sorted({r["fold"] for r in table}) == info["folds"] and len(info["folds"]) >= 2
    if "mini_tagging" in BUILDABLE:
        labels = [r["label"].split(";") for r in rows(out / "mini_tagging")]
        assert any(len(x) > 1 for x in labels) and all(len(set(x)) == len(x) for x in labels)


def test_tasks_load_with_the_csv_task_reader(tiny):
    from evaluation.tasks import load_task

    out, _ = tiny
    for task in BUILDABLE:
        data = load_task(f"csv:{out / task / 'meta.csv'}")
        assert data.unit_sec == json.loads((out / task / "task.json").read_text())["unit_sec"]
        assert len(data.rounds()) == (3 if task == "mini_sounds" else 1)
        assert data.probe == MINI_PROBE and data.table_notes == {"linear": MINI_PROBE_NOTE}
        # the short recipe read back from task.json is the one `m2d-eval all` always used (same run folders)
        recipe = task_recipe(data)
        assert recipe == Recipe("mini", optimizer="adamw", lr=1e-3, epochs=2, warmup_epochs=1, batch_size=32,
                                mixup=0.0, freq_mask=15, time_mask=20, rrc=False, token_mask=0.0, source="ours",
                                reference="m2d-hear mini benchmark")
        assert recipe.key() == "56e46e65" and data.finetune["seeds"] == [43] and data.finetune["max_rounds"] == 1


def test_jobs_render_identically_in_another_process(tiny, tmp_path):
    """Re-render, in this process, a job that a worker process rendered: the bytes are identical. (Music excerpts
    depend on the batch they share with fluidsynth, so the unit of determinism is the job; speech and samples
    are also checked in reverse order, one clip at a time.)"""
    out, _ = tiny
    for task in BUILDABLE:
        plan = PLANNERS[task](SCALES["tiny"])
        job = next(j for j in plan.jobs(SCALES["tiny"].job_clips) if any(c.split in ("test", "1") for c in j))
        render_job([c.entry() for c in job], str(tmp_path / task))
        for clip in job:
            assert sha(tmp_path / task / clip.file) == sha(out / task / clip.file), (task, clip.file)
        if task in ("mini_kws", "mini_speaker", "mini_sounds"):
            for clip in reversed(job[:3]):
                render_job([clip.entry()], str(tmp_path / "single" / task))
                assert sha(tmp_path / "single" / task / clip.file) == sha(out / task / clip.file), clip.file


def test_plans_are_deterministic():
    for task in BUILDABLE:
        planner = PLANNERS[task]
        a, b = planner(SCALES["default"]), planner(SCALES["default"])
        assert [c.entry() for c in a.clips] == [c.entry() for c in b.clips]
        assert [c.entry() for c in a.clips] != [c.entry() for c in planner(SCALES["tiny"], seed=1).clips]


def _by_split(plan, key):
    out = defaultdict(set)
    for clip in plan.clips:
        for value in key(clip):
            out[clip.split].add(value)
    return out


def _parts(recipe):
    return [p for part in recipe["parts"] for p in _parts(part)] if recipe["src"] == "mix" else [recipe]


def _assert_disjoint(groups: dict[str, set]):
    names = sorted(groups)
    for i, a in enumerate(names):
        assert groups[a], a
        for b in names[i + 1:]:
            assert not groups[a] & groups[b], (a, b, sorted(groups[a] & groups[b])[:3])


@needs("mini_kws")
def test_kws_is_speaker_disjoint():
    plan = PLANNERS["mini_kws"](SCALES["default"])
    _assert_disjoint(_by_split(plan, lambda c: [f"{c.recipe['engine']}:{c.recipe['voice'].split('+')[-1]}"]))
    words = _by_split(plan, lambda c: c.labels)
    assert words["train"] == words["valid"] == words["test"] and len(words["train"]) == 10


@needs("mini_speaker")
def test_speaker_task_has_the_same_speakers_and_different_sentences_per_split():
    plan = PLANNERS["mini_speaker"](SCALES["default"])
    speakers = _by_split(plan, lambda c: c.labels)
    assert speakers["train"] == speakers["valid"] == speakers["test"] and len(speakers["train"]) == 16
    _assert_disjoint(_by_split(plan, lambda c: [c.recipe["text"]]))
    voices = {}
    for clip in plan.clips:  # one speaker = one engine voice and accent; rate/pitch vary per utterance
        voices.setdefault(clip.labels[0], set()).add((clip.recipe["engine"], clip.recipe["voice"]))
    assert all(len(v) == 1 for v in voices.values()) and len({next(iter(v)) for v in voices.values()}) == 16


@needs("mini_genre")
def test_genre_is_piece_disjoint_and_timbre_is_not_a_label():
    plan = PLANNERS["mini_genre"](SCALES["default"])
    _assert_disjoint(_by_split(plan, lambda c: [c.recipe["piece"]]))
    programs = defaultdict(set)
    for clip in plan.clips:
        programs[clip.labels[0]].add(clip.recipe["program"])
    assert len(programs) == 6 and all(len(p) >= 10 for p in programs.values())


@needs("mini_sounds")
def test_sounds_folds_are_pack_disjoint():
    plan = PLANNERS["mini_sounds"](SCALES["default"])
    assert plan.split_column == "fold"
    groups = _by_split(plan, lambda c: [c.file.split("/")[-1].rsplit("_", 2)[0].split("_")[0]])
    files = _by_split(plan, lambda c: [c.recipe["file"]])
    _assert_disjoint(files)
    folders = _by_split(plan, lambda c: [str(Path(c.recipe["file"]).parent if "hydrogen" in c.recipe["file"]
                                             else Path(c.recipe["file"]).parent.parent)])
    _assert_disjoint(folders)
    assert len(groups) == 5


@needs("mini_tagging")
def test_tagging_is_source_disjoint():
    plan = PLANNERS["mini_tagging"](SCALES["default"])
    for kind, key in (("speech", lambda r: f"{r['engine']}:{r['voice'].split('+')[-1]}"),
                      ("music", lambda r: r["piece"]), ("sample", lambda r: r["file"])):
        _assert_disjoint(_by_split(plan, lambda c: [key(r) for r in _parts(c.recipe) if r["src"] == kind]))
    tags = _by_split(plan, lambda c: c.labels)
    assert tags["train"] == tags["test"] and len(tags["train"]) == 11


@needs("mini_kws")
def test_pool_is_kept_apart_from_the_benchmark():
    pool = plan_pool(400, 4.0)
    bench = [PLANNERS[t](SCALES[s]) for s in SCALES for t in BUILDABLE]
    assert overlap_report(pool, bench) == []
    kinds = {c.recipe["src"] for c in pool.clips}
    assert "speech" in kinds and len(pool.clips) == 400
    # the check does find a shared voice, piece or sample
    leaky = plan_pool(40, 4.0)
    leaky.clips[0].recipe = bench[0].clips[0].recipe
    assert overlap_report(leaky, bench)


def test_resume_rebuilds_only_what_is_missing(tiny):
    out, _ = tiny
    task = BUILDABLE[0]
    folder = out / task
    files = sorted(r["file_name"] for r in rows(folder))
    before = {f: (sha(folder / f), os.stat(folder / f).st_mtime_ns) for f in files}
    again = build(out, scale="tiny", tasks=[task], jobs=1, progress=False)
    assert again.results[0].status == "cached"
    # a killed build: some clips and the done-marker missing
    (folder / DONE).unlink()
    (folder / "meta.csv").unlink()
    for f in files[:2]:
        (folder / f).unlink()
    resumed = build(out, scale="tiny", tasks=[task], jobs=1, progress=False)
    assert resumed.results[0].status == "built"
    for f in files:
        assert sha(folder / f) == before[f][0]
    untouched = [f for f in files if os.stat(folder / f).st_mtime_ns == before[f][1]]
    assert len(untouched) >= len(files) - 8  # jobs holding the deleted clips were re-rendered, not the others
    assert json.loads((folder / DONE).read_text())["files"] == {f: before[f][0] for f in files}


def test_a_cached_task_gets_new_settings_without_rendering_again(tiny):
    """A cache built by an older version (task.json without the evaluation settings) is brought up to date by the
    next build: only the metadata is rewritten, no clip is rendered and the done-marker stays."""
    out, _ = tiny
    task = BUILDABLE[0]
    folder = out / task
    info = json.loads((folder / "task.json").read_text())
    old = {k: v for k, v in info.items() if k not in TASK_SETTINGS}
    (folder / "task.json").write_text(json.dumps(old, indent=2) + "\n")
    clips = {f: os.stat(folder / f).st_mtime_ns for f in (r["file_name"] for r in rows(folder))}
    done = (folder / DONE).read_text()
    again = build(out, scale="tiny", tasks=[task], jobs=1, progress=False)
    assert again.results[0].status == "cached"
    assert json.loads((folder / "task.json").read_text()) == info
    assert {f: os.stat(folder / f).st_mtime_ns for f in clips} == clips and (folder / DONE).read_text() == done
    mtime = os.stat(folder / "task.json").st_mtime_ns
    build(out, scale="tiny", tasks=[task], jobs=1, progress=False)   # up to date: nothing is written
    assert os.stat(folder / "task.json").st_mtime_ns == mtime


def test_missing_engine_is_reported_not_crashed(monkeypatch, tmp_path):
    import importlib

    from evaluation.mini import speech

    build_module = importlib.import_module("evaluation.mini.build")

    monkeypatch.setattr(speech, "espeak_available", lambda: False)
    report = build_module.build(tmp_path, scale="tiny", tasks=["mini_kws"], progress=False)
    assert report.results[0].status == "skipped" and "espeakng-loader" in report.results[0].reason

    from click.testing import CliRunner
    from evaluation.cli import main

    result = CliRunner().invoke(main, ["mini", "build", "--scale", "tiny", "--tasks", "mini_kws",
                                       "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "espeakng-loader" in result.output and "Traceback" not in result.output


def test_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / BUILDABLE[0]).mkdir()
    (tmp_path / BUILDABLE[0] / "notes.txt").write_text("mine")
    with pytest.raises(MiniBuildError, match="not made by"):
        build(tmp_path, scale="tiny", tasks=[BUILDABLE[0]], progress=False)
    assert (tmp_path / BUILDABLE[0] / "notes.txt").is_file()


def test_cli_rejects_unknown_task(tmp_path):
    from click.testing import CliRunner
    from evaluation.cli import main

    result = CliRunner().invoke(main, ["mini", "build", "--tasks", "mini_nope", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "unknown task" in result.output


def test_no_clip_file_is_planned_twice():
    """Two clips planned to one file overwrite each other and are counted in two splits (this happened to the
    Essen songs of mini_genre, whose tune index was dropped from the file name)."""
    for task in BUILDABLE:
        for scale in ("tiny", "default"):
            files = [c.file for c in PLANNERS[task](SCALES[scale]).clips]
            assert len(files) == len(set(files)), (task, scale)


def test_no_audio_appears_twice_in_a_task(tiny):
    """No audio content (SHA-256 of the samples) appears twice within or across the splits of any task."""
    import soundfile as sf

    out, _ = tiny
    for task in BUILDABLE:
        seen: dict[str, str] = {}
        for row in rows(out / task):
            audio, _ = sf.read(out / task / row["file_name"], dtype="int16")
            digest = hashlib.sha256(audio.tobytes()).hexdigest()
            assert digest not in seen, f"{task}: {row['file_name']} has the same audio as {seen[digest]}"
            seen[digest] = row["file_name"]


def test_one_build_has_one_task_id_everywhere(tiny, tmp_path):
    """Two builds of the same plan (another machine, another folder, another time) give each task the same
    identity, so scores made elsewhere (e.g. the committed results) are recognised as the same task; editing a
    clip gives a new one."""
    from evaluation.tasks import load_task

    out, _ = tiny
    again = tmp_path / "again"
    build(again, scale="tiny", jobs=2, progress=False, tasks=BUILDABLE[:2])
    for task in BUILDABLE[:2]:
        a, b = (load_task(f"csv:{root / task / 'meta.csv'}") for root in (out, again))
        assert a.fingerprint() == b.fingerprint(), task
    clip = next((again / BUILDABLE[0]).rglob("*.wav"))
    os.utime(clip)   # touched: its data may have changed
    assert load_task(f"csv:{again / BUILDABLE[0] / 'meta.csv'}").fingerprint() != \
        load_task(f"csv:{out / BUILDABLE[0] / 'meta.csv'}").fingerprint()


@needs("mini_kws")
@needs("mini_sounds")   # the events need the sample packs
def test_the_varied_pool_adds_languages_and_events_and_stays_apart():
    pool = plan_pool(400, 4.0, variety="varied")
    bench = [PLANNERS[t](SCALES[s]) for s in SCALES for t in BUILDABLE]
    assert overlap_report(pool, bench) == [] and len(pool.clips) == 400 and pool.sources["variety"] == "varied"
    languages = {r["voice"].split("+")[0] for c in pool.clips for r in _parts(c.recipe) if r["src"] == "speech"}
    assert languages & set(POOL_LANGUAGES) and languages & set(ESPEAK_ACCENTS)
    events = [c for c in pool.clips if c.file.startswith("events/")]
    assert events and all([p["src"] for p in c.recipe["parts"]][-1] == "sample" for c in events)
    assert pool.sources["counts"]["languages"] > 0 and "variety" not in plan_pool(40, 4.0).sources
    # a benchmark sample hidden inside an event mixture is found
    sample = next(r for t in bench for c in t.clips for r in _parts(c.recipe) if r["src"] == "sample")
    events[0].recipe["parts"][-1] = sample
    assert any("used by the benchmark" in p for p in overlap_report(pool, bench))
    with pytest.raises(InputError, match="unknown pool variety"):
        plan_pool(40, 4.0, variety="noisy")


@needs("mini_kws")
def test_the_varied_pool_renders(tmp_path):
    report = build(tmp_path, pool_only=True, pool_clips=20, pool_variety="varied", jobs=1, progress=False)
    assert report.results[0].status == "built"
    info = json.loads((tmp_path / "pool" / "pool.json").read_text())
    assert info["variety"] == "varied" and info["clips"] == 20
    files = (tmp_path / "pool" / "files.csv").read_text().split()[1:]
    assert len(files) == 20 and all(sf.info(str(tmp_path / "pool" / f)).duration == pytest.approx(4.0) for f in files)
