"""``m2d-eval linear``, ``all`` and ``tasks`` end to end on tiny datasets in their original layouts."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from evaluation.cli import main
from tests.fixtures import datasets as d
from tests.fixtures.tiny_model import tiny_weights

FAST = ["--workers", "0", "--max-epochs", "3"]
# a few clips per class cannot give a 10 % carve-out holding every class; the probe warns and goes on
pytestmark = pytest.mark.filterwarnings("ignore:the validation carve-out:RuntimeWarning")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights"))


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def test_linear_us8k_scores_tables_and_resume(tmp_path, weights):
    d.make_us8k(tmp_path / "data", folds=3)
    out = tmp_path / "res"
    result = run("linear", "--task", "us8k", "--weights", weights, "--data-root", tmp_path / "data", "--out", out,
                 "--seeds", "42,43", *FAST)
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 6 and set(scores.fold) == {"fold1", "fold2", "fold3"} and set(scores.seed) == {42, 43}
    assert set(scores.protocol) == {"linear"} and set(scores.metric) == {"accuracy"}
    assert scores.score.between(0, 1).all() and (scores.n_test == 3).all()
    assert scores.weights.iloc[0] == f"{weights.parent.name}/{weights.stem}"
    record = json.loads((out / scores.run.iloc[0]).read_text())
    assert record["task"]["folds"] == ["fold1", "fold2", "fold3"] and record["crop"]["unit_sec"] == 4.0
    assert record["probe"]["lr"] == 3e-5 and record["probe"]["max_epochs"] == 3
    assert record["weights_sha256"] == scores.weights_sha256.iloc[0] and len(record["results"]) == 6
    md = (out / "tables" / "linear.md").read_text()
    assert "| US8K |" in md and "(ours)" in md and "87.6 ± 0.2" in md and "TASLP 2024 Table V" in md
    assert (out / "tables" / "linear.png").stat().st_size > 1000
    assert "\\pm" in (out / "tables" / "linear.tex").read_text()
    assert "scores: " in result.output and "tables: " in result.output
    # a rerun finds every (seed, fold) done and the embeddings cached: nothing is recomputed (--seeds 42,43 above
    # is the old spelling of these)
    before = (out / "scores.csv").stat().st_mtime_ns
    again = run("linear", "--task", "us8k", "--weights", weights, "--data-root", tmp_path / "data", "--out", out,
                "--seed", "42", "--seed", "43", *FAST)
    assert again.exit_code == 0 and (out / "scores.csv").stat().st_mtime_ns == before
    # one more seed adds only its rows
    run("linear", "--task", "us8k", "--weights", weights, "--data-root", tmp_path / "data", "--out", out,
        "--seed", "44", *FAST)
    assert len(pd.read_csv(out / "scores.csv")) == 9


def test_all_runs_every_task_found_and_fine_tunes_each(tmp_path, weights, monkeypatch):
    data = tmp_path / "data"
    d.make_gtzan(data, seconds=0.3)
    d.make_spcv2(data, seconds=0.3)
    d.make_as20k(data, per_split=(9, 6), absent=(1, 1), seconds=0.3)
    calls = []
    monkeypatch.setattr("evaluation.all_command.evaluate_finetune",
                        lambda task, w, out, device=None: calls.append(task.name))
    out = tmp_path / "res"
    result = run("all", "--weights", weights, "--data-root", data, "--out", out, "--seeds", "42", *FAST)
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores.task) == {"gtzan", "spcv2", "as20k"} and calls == ["gtzan", "spcv2", "as20k"]
    assert set(scores[scores.task == "as20k"].metric) == {"mAP"}
    table = pd.read_csv(out / "tables" / "linear.csv")
    assert set(table[table.kind == "ours"].task) == {"gtzan", "spcv2", "as20k"}
    md = (out / "tables" / "linear.md").read_text()
    assert md.index("SPCV2") < md.index("GTZAN") < md.index("AS20K")
    assert "[2 listed files missing, skipped]" in result.output   # AudioSet reports what it lacks


def test_precision_and_config(tmp_path, weights):
    """--precision bf16 embeds under autocast into a cache entry of its own, its rows labelled <weights>+bf16 beside
    the fp32 ones; a renamed weight file needs --config, and with it scores as the original."""
    path = d.make_csv_task(tmp_path / "data", per_class=4, seconds=0.3, unit_sec=0.3)
    out = tmp_path / "res"
    base = ["linear", "--task", f"csv:{path}", "--out", out, "--seed", "42", *FAST]
    assert run(*base, "--weights", weights).exit_code == 0
    result = run(*base, "--weights", weights, "--precision", "bf16")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out / "scores.csv")
    label = f"{weights.parent.name}/{weights.stem}"
    assert sorted(scores.weights) == [label, f"{label}+bf16"]
    assert len(list((out / "cache").iterdir())) == 2
    record = json.loads((out / scores.run[scores.weights == f"{label}+bf16"].iloc[0]).read_text())
    assert record["precision"] == "bf16" and json.loads((out / scores.run.iloc[0]).read_text())["precision"] == "fp32"
    renamed = tmp_path / "renamed" / "weights.pth"
    renamed.parent.mkdir()
    renamed.write_bytes(weights.read_bytes())
    result = run(*base, "--weights", renamed, "--out", tmp_path / "r")
    assert result.exit_code == 1 and "--config" in result.output
    result = run(*base, "--weights", renamed, "--out", tmp_path / "r", "--config", weights.parent.name)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "r" / "scores.csv").score.tolist() == scores.score[scores.weights == label].tolist()


def test_bad_inputs_give_one_line_errors(tmp_path, weights):
    data = tmp_path / "data"
    root = d.make_vc1(data, seconds=0.3)
    base = ["linear", "--task", "vc1", "--data-root", data, "--out", tmp_path / "res", "--seeds", "42", *FAST]
    result = run(*base, "--weights", tmp_path / "nope.pth")
    assert result.exit_code == 1 and "nope.pth: weight file not found" in result.output
    wav = sorted((root / "wav").rglob("*.wav"))
    d.corrupt(wav[1])
    result = run(*base, "--weights", weights)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{wav[1]}: cannot decode audio" in result.output
    wav[1].unlink()
    result = run(*base, "--weights", weights)
    assert result.exit_code == 1 and "1 of 12 listed audio files are missing" in result.output
    assert "--skip-missing" in result.output
    result = run(*base, "--weights", weights, "--skip-missing")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "res" / "scores.csv")) == 1
    result = run("all", "--weights", weights, "--data-root", tmp_path / "empty", "--out", tmp_path / "x",
                 "--benchmark", "paper")
    assert result.exit_code == 1 and "no tasks found under the data root" in result.output


def test_tasks_command_reports_found_missing_and_absent(tmp_path):
    data = tmp_path / "data"
    d.make_us8k(data)
    root = d.make_spcv2(data)
    (root / "testing_list.txt").write_text((root / "testing_list.txt").read_text() + "go/gone_nohash_0.wav\n")
    result = run("tasks", "--data-root", data)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert any(line.startswith("[ok] us8k: 9 clips") for line in lines)
    assert any(line.startswith("[incomplete] spcv2") for line in lines)
    assert any("1 listed files missing" in line and "gone_nohash_0.wav" in line for line in lines)
    assert any(line.startswith("[absent] vc1: not found") and "iden_split.txt" in line for line in lines)


def test_a_tasks_own_probe_settings_and_table_note(tmp_path, weights, monkeypatch):
    """Settings a task's task.json asks for (as the mini benchmark's do) reach the probe in `linear` and `all`,
    and its note goes under the linear table; options given by the caller win (and the note then goes)."""
    path = d.make_csv_task(tmp_path / "data", per_class=4, seconds=0.3, unit_sec=0.3)
    note = "Toy task: probed with Adam lr 0.01 and batches of 4."
    (path.parent / "task.json").write_text(json.dumps({
        "name": "toy", "probe": {"lr": 0.01, "batch_size": 4},
        "finetune": {"recipe": {"name": "toy", "optimizer": "adamw", "lr": 1e-3, "epochs": 1, "batch_size": 4},
                     "seeds": [7], "max_rounds": 1, "num_workers": 0},
        "table_notes": {"linear": note}}))
    out = tmp_path / "res"
    assert run("linear", "--task", f"csv:{path}", "--weights", weights, "--out", out, "--seeds", "42",
               *FAST).exit_code == 0
    record = json.loads(next((out / "runs").glob("*__toy__linear.json")).read_text())
    assert (record["probe"]["lr"], record["probe"]["batch_size"], record["probe"]["max_epochs"]) == (0.01, 4, 3)
    assert record["table_note"] == note and note in (out / "tables" / "linear.md").read_text()
    calls = []
    monkeypatch.setattr("evaluation.finetune.runner.run_finetune",
                        lambda task, w, out_dir, **kw: calls.append((kw["recipe"], kw["seeds"], kw["rounds"],
                                                                     kw["opts"].num_workers)))
    result = run("all", "--tasks", f"csv:{path}", "--weights", weights, "--out", tmp_path / "all", "--seeds", "42",
                 "--no-baseline", *FAST)
    assert result.exit_code == 0, result.output
    assert note in (tmp_path / "all" / "tables" / "linear.md").read_text()
    assert calls == [(None, [7], ["main"], 0)]   # the recipe comes from the task inside run_finetune

    from evaluation.finetune.recipes import task_recipe
    from evaluation.linear_eval import evaluate_linear
    from evaluation.tasks import load_task

    task = load_task(f"csv:{path}")
    assert task_recipe(task).name == "toy" and task_recipe(task).lr == 1e-3
    record = evaluate_linear(task, weights, tmp_path / "own", seeds=(42,), num_workers=0, progress=False,
                             probe_params={"max_epochs": 2, "lr": 3e-5})
    assert record["probe"]["lr"] == 3e-5 and "table_note" not in record
