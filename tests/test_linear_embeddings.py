"""Clip-embedding extraction: crops, the on-disk cache and its key, resumption after a kill, worker decoding,
errors naming the file, and sharding across two gloo ranks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import m2d_hear
from evaluation.embeddings import RANDOM, START, CropSettings, clip_key, crop_offset, entries_for, extract
from evaluation.tasks import load_task
from m2d_hear.audio import AudioError, fit_length, read_audio
from tests.fixtures import datasets as d
from tests.fixtures.tiny_model import CountingModel, tiny_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def model(weights):
    return m2d_hear.load_m2d(weights)


@pytest.fixture
def short_task(tmp_path):
    """Clips of 0.5 s with unit_sec 0.25: train/valid rows are random crops, test rows start crops."""
    return load_task(f"csv:{d.make_csv_task(tmp_path, per_class=3, unit_sec=0.25, seconds=0.5)}")


def test_crop_offsets_are_fixed_per_clip_and_in_range():
    offsets = {crop_offset(8000, 4000, 42, f"clip{i}.wav") for i in range(50)}
    assert len(offsets) > 40 and min(offsets) >= 0 and max(offsets) <= 4000
    assert crop_offset(8000, 4000, 42, "a.wav") == crop_offset(8000, 4000, 42, "a.wav")
    assert crop_offset(8000, 4000, 43, "a.wav") != crop_offset(8000, 4000, 42, "a.wav")
    assert crop_offset(3000, 4000, 42, "a.wav") == 0


def test_rows_are_the_cropped_clips(tmp_path, short_task, model, weights):
    emb = extract(model, short_task, weights, tmp_path / "cache", num_workers=0, progress=False)
    unit = int(0.25 * 16000)
    for clip in short_task.clips:
        wave = read_audio(clip.path, 16000)
        mode = START if clip.split == "test" else RANDOM
        offset = crop_offset(len(wave), unit, 42, clip_key(clip, short_task)) if mode == RANDOM else 0
        want = model.scene_embeddings(torch.from_numpy(fit_length(wave, unit, offset))[None])[0].detach().numpy()
        np.testing.assert_allclose(emb.get([clip], mode)[0], want, rtol=1e-4, atol=1e-5)
    offsets = [crop_offset(len(read_audio(c.path, 16000)), unit, 42, clip_key(c, short_task))
               for c in short_task.clips if c.split != "test"]
    assert any(o > 0 for o in offsets)   # some training crops do not start at 0


def test_fold_tasks_embed_both_crops(tmp_path):
    task = load_task("us8k", path=d.make_us8k(tmp_path))
    modes = [m for _, m in entries_for(task)]
    assert len(modes) == 2 * len(task.clips) and modes.count(RANDOM) == modes.count(START)


def test_cache_hit_key_and_workers(tmp_path, short_task, model, weights):
    first = extract(model, short_task, weights, tmp_path / "cache", num_workers=2, progress=False)
    counting = CountingModel(model, fail_after=0)   # any forward pass would raise: must come from the cache
    again = extract(counting, short_task, weights, tmp_path / "cache", num_workers=0, progress=False)
    np.testing.assert_array_equal(first.matrix, again.matrix)
    # a copy of the weights elsewhere has the same content, hence the same cache entry
    copy = tmp_path / "copy" / weights.parent.name / weights.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(weights.read_bytes())
    assert extract(counting, short_task, copy, tmp_path / "cache", progress=False).folder == first.folder
    other = extract(model, short_task, weights, tmp_path / "cache", crop=CropSettings(0.25, 16000, seed=7),
                    num_workers=0, progress=False)
    assert other.folder != first.folder
    assert (first.folder / "meta.json").is_file() and (first.folder / "done.json").is_file()


def test_killed_run_resumes_from_finished_shards(tmp_path, short_task, model, weights):
    reference = extract(model, short_task, weights, tmp_path / "ref", num_workers=0, progress=False)
    killed = CountingModel(model, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        extract(killed, short_task, weights, tmp_path / "cache", batch_size=2, shard_size=2, num_workers=0,
                progress=False)
    shards = sorted((tmp_path / "cache").glob("*/shards/shard-*.npy"))
    assert len(shards) == 2 and not list((tmp_path / "cache").glob("*/embeddings.npy"))
    resumed = CountingModel(model)
    emb = extract(resumed, short_task, weights, tmp_path / "cache", batch_size=2, shard_size=2, num_workers=0,
                  progress=False)
    assert resumed.calls == 3   # 9 clips in batches of 2: 5 passes, 2 of them already done
    np.testing.assert_allclose(emb.matrix, reference.matrix, rtol=1e-5, atol=1e-6)


def test_corrupt_audio_names_the_file(tmp_path, short_task, model, weights):
    bad = d.corrupt(short_task.clips[4].path)
    with pytest.raises(AudioError, match=f"{bad.name}: cannot decode audio.*rerun to resume"):
        extract(model, short_task, weights, tmp_path / "cache", num_workers=1, progress=False)


def _rank_main(rank, world, init_file, task_csv, weights, cache):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        task = load_task(f"csv:{task_csv}")
        extract(m2d_hear.load_m2d(weights), task, weights, cache, shard_size=2, num_workers=0, progress=False)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_share_the_shards(tmp_path, short_task, model, weights):
    import torch.multiprocessing as mp

    task_csv = short_task.source
    # spawn (fork deadlocks in OpenMP once torch has run): each rank imports torch afresh, hence "slow"
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), task_csv, str(weights), str(tmp_path / "dist")),
             nprocs=2, join=True)
    single = extract(model, short_task, weights, tmp_path / "single", shard_size=2, num_workers=0, progress=False)
    merged = extract(CountingModel(model, fail_after=0), short_task, weights, tmp_path / "dist", progress=False)
    np.testing.assert_allclose(merged.matrix, single.matrix, rtol=1e-5, atol=1e-6)
