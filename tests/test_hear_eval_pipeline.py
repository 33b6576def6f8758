"""HEAR tasks end to end with a tiny random M2D: hear-embed -> hear-predict -> hear-leaderboard.

The embedding files are read the way the eval kit reads them (memmap with the shape from
``<split>.embedding-dimensions.json``, pickled label lists, filename-timestamps), and their row order is checked
against the kit's ``random.Random(0)`` shuffle.
"""
import csv
import json
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

import m2d_hear
from evaluation.cli import main
from evaluation.hear import toy_tasks
from evaluation.hear.leaderboard import COLUMNS
from m2d_hear.config import parse_config_name
from m2d_hear.export import random_encoder, save_encoder_only
from m2d_hear.vit import ViTSize

TASKS = ["toy_events-v1-full", "toy_folds-v1-full", "toy_mix-v1-full", "toy_tones-v1-full"]


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    name = "m2d_vit_base-80x608p16x16-240101-random0"
    encoder = random_encoder(parse_config_name(name), ViTSize(embed_dim=64, depth=1, num_heads=1), seed=0)
    return save_encoder_only(encoder, tmp_path_factory.mktemp("ckpt") / name / "weights_ep0.pth")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, weights):
    root = tmp_path_factory.mktemp("hear")
    toy_tasks.all_tasks(root / "tasks")
    ok("hear-embed", "--tasks-dir", root / "tasks", "--weights", weights, "--out", root / "emb", "--no-progress")
    return root


@pytest.fixture(scope="module")
def predicted(embedded):
    ok("hear-predict", embedded / "emb", "--grid", "faster", "--grid-points", "3", "--no-progress")
    return embedded


def read_split(task: Path, split: str):
    """What the kit's SplitMemmapDataset reads."""
    dims = tuple(json.load(open(task / f"{split}.embedding-dimensions.json")))
    emb = np.memmap(task / f"{split}.embeddings.npy", dtype=np.float32, mode="r", shape=dims)
    labels = pickle.load(open(task / f"{split}.target-labels.pkl", "rb"))
    return dims, emb, labels


# ---------------------------------------------------------------------------------------------------- embed
def test_embedding_files_in_the_kits_layout(embedded):
    tasks, emb = embedded / "tasks", embedded / "emb"
    assert sorted(p.name for p in emb.iterdir()) == TASKS
    for name in TASKS:
        out, src = emb / name, tasks / name
        meta = json.loads((src / "task_metadata.json").read_text())
        event = meta["embedding_type"] == "event"
        for copied in ["task_metadata.json", "labelvocabulary.csv"] + [f"{s}.json" for s in meta["splits"]]:
            assert (out / copied).read_bytes() == (src / copied).read_bytes()
        assert (out / ".done.embeddings").is_file()
        assert set(json.loads((out / "profile.embeddings.json").read_text())) == {
            "time_elapsed", "gpu_max_mem", "gpu_device_name"}
        prng = random.Random(0)  # one generator per task, through the splits in metadata order
        for split in meta["splits"]:
            clips = json.loads((src / f"{split}.json").read_text())
            files = [out / split / f"{c}.embedding.npy" for c in clips]
            prng.shuffle(files)
            dims, rows, labels = read_split(out, split)
            raw = (out / f"{split}.embeddings.npy").read_bytes()
            assert len(raw) == dims[0] * dims[1] * 4 and not raw.startswith(b"\x93NUMPY")  # no .npy header
            per_clip = [np.load(f) for f in files]
            assert all(a.dtype == np.float32 and a.ndim == (2 if event else 1) for a in per_clip)
            assert np.array_equal(rows, np.concatenate(per_clip) if event else np.stack(per_clip))
            expected = []
            for f in files:
                lab = json.loads(Path(str(f).replace("embedding.npy", "target-labels.json")).read_text())
                expected += lab if event else [lab]
            assert labels == expected and len(labels) == dims[0]
            if event:
                pairs = json.loads((out / f"{split}.filename-timestamps.json").read_text())
                assert [p[0] for p in pairs] == [str(f)[: -len(".embedding.npy")] for f in files
                                                 for _ in range(len(np.load(f)))]
                assert len(pairs) == dims[0]


def test_scene_embedding_is_the_hear_api_output(embedded, weights):
    model = m2d_hear.load_model(str(weights))
    wave, rate = sf.read(embedded / "tasks/toy_tones-v1-full/16000/test/test_mid_1.wav", dtype="float32")
    expected = m2d_hear.get_scene_embeddings(torch.from_numpy(wave)[None], model)[0].numpy()
    got = np.load(embedded / "emb/toy_tones-v1-full/test/test_mid_1.wav.embedding.npy")
    assert got.shape == (model.scene_embedding_size,) == (5 * 64,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_event_timestamps_are_40ms_and_labelled_by_covering_events(embedded):
    out = embedded / "emb/toy_events-v1-full/test"
    times = json.loads((out / "test_0.wav.timestamps.json").read_text())
    labels = json.loads((out / "test_0.wav.target-labels.json").read_text())
    assert times[0] == 80.0 and np.allclose(np.diff(times), 40.0) and times[-1] <= 2000.0
    assert np.load(out / "test_0.wav.embedding.npy").shape == (len(times), 320)
    events = json.loads((embedded / "tasks/toy_events-v1-full/test.json").read_text())["test_0.wav"]
    for t, lab in zip(times, labels):
        assert sorted(lab) == sorted(e["label"] for e in events if e["start"] <= t < e["end"] + 0.0001)
    assert any(labels) and not all(labels)


def test_embed_skips_finished_tasks_and_resumes_clips(embedded, weights):
    task = embedded / "emb/toy_tones-v1-full"
    before = (task / "train.embeddings.npy").read_bytes()
    kept = task / "train/train_low_0.wav.embedding.npy"
    kept_mtime = kept.stat().st_mtime_ns
    out = ok("hear-embed", "--tasks-dir", embedded / "tasks", "--weights", weights, "--out", embedded / "emb",
             "--task", "toy_tones-v1-full", "--no-progress")
    assert "already embedded" in out and kept.stat().st_mtime_ns == kept_mtime
    # an interrupted run: the task is not done and one clip is missing -> only that clip is recomputed
    (task / ".done.embeddings").unlink()
    (task / "train/train_high_2.wav.embedding.npy").unlink()
    ok("hear-embed", "--tasks-dir", embedded / "tasks", "--weights", weights, "--out", embedded / "emb",
       "--task", "toy_tones-v1-full", "--no-progress")
    assert (task / "train/train_high_2.wav.embedding.npy").is_file() and (task / ".done.embeddings").is_file()
    assert kept.stat().st_mtime_ns == kept_mtime
    assert (task / "train.embeddings.npy").read_bytes() == before


def test_embed_restarts_a_task_left_by_another_run(tmp_path, weights):
    toy_tasks.folds_task(tmp_path / "tasks")
    args = ["hear-embed", "--tasks-dir", tmp_path / "tasks", "--weights", weights, "--out", tmp_path / "emb",
            "--no-progress"]
    ok(*args)
    task = tmp_path / "emb/toy_folds-v1-full"
    (task / ".done.embeddings").unlink()
    (task / "fold00/stale.txt").write_text("from another run")
    out = ok(*args[:-1], "--hop-ms", "80", "--no-progress")
    assert "afresh" in out and not (task / "fold00/stale.txt").exists() and (task / ".done.embeddings").is_file()


# -------------------------------------------------------------------------------------------------- predict
def test_predicted_scores_have_the_kits_keys(predicted):
    emb = predicted / "emb"
    tones = json.loads((emb / "toy_tones-v1-full/test.predicted-scores.json").read_text())
    assert list(tones) == ["test", "hparams", "postprocessing", "score_mode", "embedding_path"]
    assert list(tones["test"]) == ["test_loss", "test_score", "test_top1_acc", "test_mAP", "test_d_prime",
                                   "test_aucroc", "validation_score", "epoch", "time_in_min"]
    assert tones["score_mode"] == "max" and tones["postprocessing"] == []
    assert tones["hparams"]["max_epochs"] == 10 and "xavier" in tones["hparams"]["initialization"]
    assert tones["test"]["test_score"] >= 2 / 3  # 3 tone classes, chance is 1/3
    # test_score is the top-1 accuracy of the pickled test predictions
    pred = pickle.load(open(emb / "toy_tones-v1-full/test.predictions.pkl", "rb"))
    assert set(pred) == {"target", "prediction", "prediction_logit"}
    accuracy = float((pred["prediction"].argmax(1) == pred["target"].argmax(1)).float().mean())
    assert tones["test"]["test_score"] == pytest.approx(accuracy)

    folds = json.loads((emb / "toy_folds-v1-full/test.predicted-scores.json").read_text())
    assert list(folds)[:4] == ["fold00", "fold01", "fold02", "aggregated_scores"]
    agg = folds["aggregated_scores"]
    assert agg["test_score_mean"] == pytest.approx(np.mean([folds[f"fold0{i}"]["test_score"] for i in range(3)]))
    assert agg["test_score_std"] == pytest.approx(np.std([folds[f"fold0{i}"]["test_score"] for i in range(3)],
                                                         ddof=1))
    assert all((emb / f"toy_folds-v1-full/fold0{i}.predictions.pkl").is_file() for i in range(3))

    events = json.loads((emb / "toy_events-v1-full/test.predicted-scores.json").read_text())
    assert list(events["test"])[:8] == [
        "test_loss", "test_score", "test_event_onset_200ms_fms", "test_event_onset_200ms_fms_f_measure",
        "test_event_onset_200ms_fms_precision", "test_event_onset_200ms_fms_recall", "test_segment_1s_er",
        "test_segment_1s_er_error_rate"]
    assert [p[0] for p in events["postprocessing"]] == ["median_filter_ms", "min_duration"]
    pred = pickle.load(open(emb / "toy_events-v1-full/test.predictions.pkl", "rb"))
    assert {"target_events", "predicted_events", "timestamp"} <= set(pred)
    assert set(pred["predicted_events"]) == set(pred["target_events"]) == {"test_0.wav", "test_1.wav", "test_2.wav"}

    mix = json.loads((emb / "toy_mix-v1-full/test.predicted-scores.json").read_text())
    assert list(mix["test"])[1:5] == ["test_score", "test_mAP", "test_d_prime", "test_aucroc"]
    for name in TASKS:
        done = json.loads((emb / name / "prediction-done.json").read_text())
        assert set(done) == {"time", "embedding_path", "embedding_size", "grid_points", "gpus", "gpu_max_mem",
                             "gpu_device_name", "in_memory", "deterministic"}
        assert done["grid_points"] == 3 and done["embedding_size"] == 320


def test_predict_skips_done_tasks_and_resumes_from_checkpoints(predicted):
    task = predicted / "emb/toy_tones-v1-full"
    before = json.loads((task / "test.predicted-scores.json").read_text())
    assert "already predicted" in ok("hear-predict", task, "--grid", "faster", "--grid-points", "3")
    (task / "prediction-done.json").unlink()
    (task / "test.predicted-scores.json").unlink()
    ok("hear-predict", task, "--grid", "faster", "--grid-points", "3", "--no-progress")
    assert "reusing" in (task / "prediction.log").read_text()
    after = json.loads((task / "test.predicted-scores.json").read_text())
    assert after["test"] == before["test"] and after["hparams"] == before["hparams"]


# ---------------------------------------------------------------------------------------------- leaderboard
def test_leaderboard_row(predicted, tmp_path):
    board = tmp_path / "board"
    for name, task_name, mode in [("toy_folds-v1-full", "tfds_gtzan", "full"),
                                  ("toy_tones-v1-full", "speech_commands", "5h")]:
        shutil.copytree(predicted / "emb" / name, board / name)
        meta = json.loads((board / name / "task_metadata.json").read_text())
        (board / name / "task_metadata.json").write_text(json.dumps({**meta, "task_name": task_name, "mode": mode}))
    shutil.copytree(predicted / "emb/toy_mix-v1-full", board / "toy_mix-v1-full")  # not a leaderboard task
    out = ok("hear-leaderboard", board, "--model-name", "Tiny M2D", "--url", "https://example.org",
             "--date", "2026-01-02", "--out", tmp_path / "row.csv")
    assert "toy_mix-v1-full" in out and "not a HEAR leaderboard task" in out
    header, row = list(csv.reader(open(tmp_path / "row.csv")))
    assert header == COLUMNS and len(row) == len(COLUMNS) == 22
    cells = dict(zip(header, row))
    assert cells["Model"] == "Tiny M2D" and cells["URL"] == "https://example.org"
    assert cells["Submission Date"] == "2026-01-02"
    folds = json.loads((board / "toy_folds-v1-full/test.predicted-scores.json").read_text())
    tones = json.loads((board / "toy_tones-v1-full/test.predicted-scores.json").read_text())
    assert float(cells["GTZAN Genre"]) == pytest.approx(folds["aggregated_scores"]["test_score_mean"], abs=1e-9)
    assert float(cells["Speech commands 5h"]) == pytest.approx(tones["test"]["test_score"], abs=1e-9)
    assert [c for c in COLUMNS[3:] if cells[c]] == ["GTZAN Genre", "Speech commands 5h"]


# --------------------------------------------------------------------------------------------------- errors
def one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    message = result.output.strip().splitlines()[-1]  # notes may come first; the error is one line
    assert message.startswith("Error: "), result.output
    for needle in needles:
        assert needle in message, message


def test_bad_task_folders_give_one_line_errors(tmp_path, weights):
    def embed(tasks):
        return run("hear-embed", "--tasks-dir", tasks, "--weights", weights, "--out", tmp_path / "emb",
                   "--no-progress")

    folder = toy_tasks.folds_task(tmp_path / "rate")
    (folder / "16000").rename(folder / "48000")
    one_line_error(embed(tmp_path / "rate"), "16000", "fold00")

    folder = toy_tasks.folds_task(tmp_path / "stereo")
    clip = folder / "16000/fold01/f1_low_0.wav"
    sf.write(clip, np.zeros((1600, 2), np.float32), 16000)
    one_line_error(embed(tmp_path / "stereo"), str(clip), "channels")

    folder = toy_tasks.folds_task(tmp_path / "corrupt")
    clip = folder / "16000/fold00/f0_high_1.wav"
    clip.write_bytes(b"RIFF not really a wav file")
    one_line_error(embed(tmp_path / "corrupt"), str(clip))

    folder = toy_tasks.folds_task(tmp_path / "nolabels")
    (folder / "fold02.json").unlink()
    one_line_error(embed(tmp_path / "nolabels"), "fold02.json")

    one_line_error(run("hear-embed", "--tasks-dir", tmp_path / "rate", "--weights", weights, "--out", tmp_path / "e",
                       "--task", "no_such_task"), "no_such_task")
    one_line_error(run("hear-embed", "--tasks-dir", tmp_path / "stereo", "--weights", weights, "--out",
                       tmp_path / "e", "--hop-ms", "30"), "--hop-ms 30", "40")


def test_predict_on_missing_or_damaged_embeddings(tmp_path, embedded):
    raw = toy_tasks.tones_task(tmp_path / "tasks")
    one_line_error(run("hear-predict", raw, "--no-progress"), "train.embedding-dimensions.json", "hear-embed")
    task = tmp_path / "damaged"
    shutil.copytree(embedded / "emb/toy_mix-v1-full", task)
    for stale in ["prediction-done.json", "test.predicted-scores.json"]:
        (task / stale).unlink(missing_ok=True)
    shutil.rmtree(task / "predict-checkpoints", ignore_errors=True)
    data = (task / "valid.embeddings.npy").read_bytes()
    (task / "valid.embeddings.npy").write_bytes(data[:-4])
    one_line_error(run("hear-predict", task, "--grid", "faster", "--grid-points", "1", "--no-progress"),
                   "valid.embeddings.npy", "bytes")
    one_line_error(run("hear-leaderboard", tmp_path / "tasks"), "no HEAR leaderboard task")


def test_event_task_monitoring_the_loss_like_maestro(embedded, tmp_path):
    """use_scoring_for_early_stopping false: val_loss is monitored, the single post-processing point is used,
    and task_specific_param_grid overrides the grid."""
    task = tmp_path / "toy_events-v1-full"
    shutil.copytree(embedded / "emb/toy_events-v1-full", task,
                    ignore=shutil.ignore_patterns("predict-checkpoints", "prediction*", "*.predict*"))
    meta = json.loads((task / "task_metadata.json").read_text())
    meta.update(use_scoring_for_early_stopping=False,
                evaluation=["event_onset_50ms_fms", "event_onset_offset_50ms_20perc_fms"],
                evaluation_params={"event_postprocessing_grid": {"median_filter_ms": [150], "min_duration": [50]},
                                   "task_specific_param_grid": {"max_epochs": [3], "check_val_every_n_epoch": [1]}})
    (task / "task_metadata.json").write_text(json.dumps(meta))
    ok("hear-predict", task, "--grid", "faster", "--grid-points", "2", "--memmap", "--no-progress")
    scores = json.loads((task / "test.predicted-scores.json").read_text())
    assert scores["score_mode"] == "min" and scores["hparams"]["max_epochs"] == 3
    assert scores["postprocessing"] == [["median_filter_ms", 150], ["min_duration", 50]]
    assert scores["test"]["test_score"] == scores["test"]["test_event_onset_50ms_fms"]
    assert "test_event_onset_offset_50ms_20perc_fms_recall" in scores["test"]
    assert scores["test"]["validation_score"] > 0  # a loss, not a score
