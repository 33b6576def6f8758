"""The built-in default: `m2d-eval all` on a fresh machine runs the mini benchmark end to end (tiny scale)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

import m2d_hear
from evaluation.baselines import LogMelStats
from evaluation.cli import main
from evaluation.mini import missing_requirements
from evaluation.mini.plans import TASK_NAMES
from evaluation.mini.suite import MINI_PROBE, MINI_PROBE_NOTE
from tests.fixtures.tiny_model import tiny_weights


@pytest.mark.slow
def test_all_falls_back_to_the_mini_benchmark_with_a_random_twin(tmp_path):
    missing = [need for task in TASK_NAMES for need in missing_requirements(task)]
    if missing:
        pytest.skip(f"mini benchmark engines not installed: {missing}")
    weights = tiny_weights(tmp_path / "w")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "all", "--weights", str(weights), "--data-root", str(tmp_path / "no-data"), "--out", str(out),
        "--mini-dir", str(tmp_path / "mini"), "--mini-scale", "tiny", "--seeds", "42", "--max-epochs", "3",
        "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "running the built-in mini benchmark" in result.output
    scores = pd.read_csv(out / "scores.csv")
    tasks = {"mini_kws", "mini_speaker", "mini_genre", "mini_sounds", "mini_tagging"}
    assert set(scores.task) == tasks
    assert scores.weights.nunique() == 3 and scores.weights.str.contains("random-init").any()  # the twin
    stats_rows = scores[scores.weights == LogMelStats.label]   # the spectral-statistics baseline, probe only
    assert set(stats_rows.task) == tasks and set(stats_rows.protocol) == {"linear"}
    assert f"{LogMelStats.label} (ours)" in (out / "tables" / "linear.md").read_text()
    assert set(scores.protocol) == {"linear", "finetune"}
    finetuned = scores[scores.protocol == "finetune"]
    assert set(finetuned.fold.astype(str)) <= {"main", "fold1"}  # the short fine-tune: first round only
    assert not finetuned.weights.str.contains("random-init").any()  # the twin: linear probe only by default
    for name in ("linear.md", "linear.png", "finetune.md"):
        assert (out / "tables" / name).is_file()
    # the mini benchmark's probe settings (MINI_PROBE) are used, recorded in each run and named under the table
    run = json.loads(next((out / "runs").glob("*__mini_kws__linear.json")).read_text())
    assert {k: run["probe"][k] for k in MINI_PROBE} == MINI_PROBE
    assert MINI_PROBE_NOTE in (out / "tables" / "linear.md").read_text()
    assert MINI_PROBE_NOTE not in (out / "tables" / "finetune.md").read_text()
    # --finetune-baseline on the same folder: finished runs are reused, only the twin's fine-tunes run
    again = CliRunner().invoke(main, [
        "all", "--weights", str(weights), "--data-root", str(tmp_path / "no-data"), "--out", str(out),
        "--mini-dir", str(tmp_path / "mini"), "--mini-scale", "tiny", "--seeds", "42", "--max-epochs", "3",
        "--workers", "0", "--finetune-baseline"])
    assert again.exit_code == 0, again.output
    rescored = pd.read_csv(out / "scores.csv")
    assert len(rescored[rescored.protocol == "linear"]) == len(scores[scores.protocol == "linear"])
    twin_ft = rescored[(rescored.protocol == "finetune") & rescored.weights.str.contains("random-init")]
    assert set(twin_ft.task) == tasks
    assert set(rescored[rescored.weights == LogMelStats.label].protocol) == {"linear"}  # never fine-tuned
    twin = next((out / "baselines").glob("*/weights_ep0.pth"))
    assert m2d_hear.load_m2d(twin).encoder.embed_dim == m2d_hear.load_m2d(weights).encoder.embed_dim


def test_default_model_is_shipped_and_loads():
    model = m2d_hear.load_model()
    assert model.config.input_size == (80, 208) and model.encoder.embed_dim == 192
    assert model.scene_embedding_size == 5 * 192
