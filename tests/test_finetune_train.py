"""Fine-tuning runs on a tiny model and an easy fixture: learning, model selection, resume, torchrun (gloo), CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from m2d_hear import distributed as D
from m2d_hear.config import parse_config_name
from m2d_hear.export import random_encoder, save_encoder_only
from m2d_hear.vit import ViTSize

from evaluation.finetune import Recipe, TrainOptions, evaluate_finetune, run_finetune, train_round
from evaluation.finetune.trainer import FinetuneError, Trainer
from evaluation.metrics import accuracy
from evaluation.tasks.base import Clip, TaskData

REPO = Path(__file__).resolve().parents[1]
NAME = "m2d_vit_test-80x64p16x16-x"
ALL_AUGMENTATIONS = Recipe("tiny", "sgd", 0.05, 2, 1, 4, 0.3, 8, 8, True, 0.5, None, source="ours")
LEARNS = Recipe("learns", "adamw", 2e-3, 3, 0, 4, 0.0, 0, 0, False, 0.0, None, source="ours")


def make_weights(folder: Path) -> Path:
    enc = random_encoder(parse_config_name(NAME), ViTSize(64, 2, 1), seed=0)
    return save_encoder_only(enc, Path(folder) / NAME / "weights.pth")


def make_easy_task(folder: Path, n=(12, 8, 4), seconds=0.5) -> TaskData:
    """Two classes: a low tone and a high tone (random pitch within the class) with a little noise."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    clips, sr = [], 16000
    for split, count in zip(("train", "valid", "test"), n):
        for i in range(count):
            label = ("low", "high")[i % 2]
            freq = (250 if label == "low" else 2500) * (1 + 0.2 * rng.random())
            t = np.arange(int(sr * seconds)) / sr
            wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(len(t))
            path = folder / f"{split}_{i}.wav"
            sf.write(path, wave.astype(np.float32), sr)
            clips.append(Clip(path, (label,), split))
    return TaskData("easy", clips, ["high", "low"], False, "accuracy", seconds)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these tiny models are faster so on the shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    return make_weights(root / "w"), make_easy_task(root / "easy")


def model_state(path: Path) -> dict:
    from m2d_hear.checkpoint import safe_load

    state = safe_load(path)   # last.pth and best weights hold tensors and plain values only
    return state["model"] if "model" in state else state


def test_a_few_epochs_raise_the_validation_score(setup):
    weights, task = setup
    trainer = Trainer(task, task.rounds()[0], weights, LEARNS, TrainOptions(seed=43, num_workers=0, progress=False),
                      D.init_distributed("cpu"))
    before = trainer.evaluate("valid")
    after = []
    for epoch in range(3):
        trainer.train_epoch(epoch)
        after.append(trainer.evaluate("valid"))
    assert before <= 0.75
    assert max(after) >= 0.9 and max(after) > before


def test_best_checkpoint_is_the_one_restored(setup, tmp_path, monkeypatch):
    weights, task = setup
    scripted = iter([0.3, 0.9, 0.6])  # validation scores of epochs 1-3: epoch 2 must be chosen
    snapshots = []
    real_evaluate, real_train = Trainer.evaluate, Trainer.train_epoch

    def train_epoch(self, epoch):
        stats = real_train(self, epoch)
        snapshots.append({k: v.clone() for k, v in self.model.state_dict().items()})
        return stats

    def evaluate(self, split):
        return next(scripted) if split == "valid" else real_evaluate(self, split)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    opts = TrainOptions(seed=44, num_workers=0, progress=False)
    recipe = ALL_AUGMENTATIONS.override(epochs=3)
    result = train_round(task, task.rounds()[0], weights, recipe, tmp_path / "run", opts)
    assert result.best_epoch == 2 and result.rule == "valid" and result.best_selection_score == 0.9
    best_file = next((tmp_path / "run").glob("*/best.pth"))
    best = Trainer(task, task.rounds()[0], weights, recipe, opts, D.init_distributed("cpu"))
    best.model.load_evar_state(torch.load(best_file, weights_only=True))
    for key, value in best.model.state_dict().items():
        assert torch.equal(value, snapshots[1][key]), key
    assert not all(torch.equal(v, snapshots[2][k]) for k, v in best.model.state_dict().items())
    last = model_state(tmp_path / "run" / "last.pth")
    assert all(torch.equal(v, snapshots[2][k]) for k, v in last.items())
    logits, targets = best.predict("test")  # the reported test score is the best epoch's, not the last one's
    assert result.score == pytest.approx(accuracy(targets, logits))
    assert json.loads((tmp_path / "run" / "best.json").read_text())["epoch"] == 2


def test_resume_matches_an_uninterrupted_run(setup, tmp_path):
    weights, task = setup
    opts = TrainOptions(seed=45, num_workers=2, progress=False)  # decoding in worker processes
    rnd = task.rounds()[0]
    full = train_round(task, rnd, weights, ALL_AUGMENTATIONS, tmp_path / "full", opts)
    assert train_round(task, rnd, weights, ALL_AUGMENTATIONS, tmp_path / "cut", opts, stop_after_epochs=1) is None
    assert (tmp_path / "cut" / "last.pth").exists() and not (tmp_path / "cut" / "result.json").exists()
    with pytest.raises(FinetuneError, match="--resume"):
        train_round(task, rnd, weights, ALL_AUGMENTATIONS, tmp_path / "cut", opts)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "last.pth").write_bytes((tmp_path / "cut" / "last.pth").read_bytes())
    with pytest.raises(FinetuneError, match="another recipe"):  # another recipe cannot continue this run
        train_round(task, rnd, weights, ALL_AUGMENTATIONS.override(lr=0.1), tmp_path / "other", opts, resume=True)
    resumed = train_round(task, rnd, weights, ALL_AUGMENTATIONS, tmp_path / "cut", opts, resume=True)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    assert resumed.score == full.score and resumed.best_epoch == full.best_epoch
    a, b = model_state(tmp_path / "full" / "last.pth"), model_state(tmp_path / "cut" / "last.pth")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = (tmp_path / "cut" / "log.txt").read_text()
    assert "resumed after epoch 1" in log and "data wait" in log and "% of step time" in log


DDP_SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from tests.test_finetune_train import ALL_AUGMENTATIONS, make_easy_task
from evaluation.finetune import TrainOptions, train_round
task = make_easy_task(Path({data!r}))
train_round(task, task.rounds()[0], {weights!r}, ALL_AUGMENTATIONS, {out!r},
            TrainOptions(seed=43, device="cpu", num_workers=0, progress=False))
"""


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(setup, tmp_path):
    weights, task = setup
    one = train_round(task, task.rounds()[0], weights, ALL_AUGMENTATIONS, tmp_path / "one",
                      TrainOptions(seed=43, device="cpu", num_workers=0, progress=False))
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(repo=str(REPO), data=str(Path(task.clips[0].path).parent),
                                        weights=str(weights), out=str(tmp_path / "two")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script)], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "result.json").read_text())
    assert two["score"] == pytest.approx(one.score)
    for h1, h2 in zip(one.history, two["history"]):
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-4, abs=1e-6)
    a, b = model_state(tmp_path / "one" / "last.pth"), model_state(tmp_path / "two" / "last.pth")
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=2e-5, rtol=1e-4, msg=key)


def test_folds_use_the_best_test_rule_and_rows_reach_scores_csv(tmp_path):
    from tests.fixtures.datasets import make_us8k

    from evaluation.tasks import load_task

    weights = make_weights(tmp_path / "w")
    task = load_task("us8k", path=make_us8k(tmp_path / "data", classes=("a", "b"), folds=2, per_fold=3))
    quick = LEARNS.override(epochs=1)
    summary = run_finetune(task, weights, tmp_path / "out" / "finetune", recipe=quick, seeds=(43,),
                           opts=TrainOptions(num_workers=0, progress=False), scores_dir=tmp_path / "out")
    assert [r.round for r in summary.results] == ["fold1", "fold2"]
    assert all(r.rule == "best-test" for r in summary.results)
    carve = evaluate_finetune(task, weights, tmp_path / "out", device="auto", seeds=(43,), recipe=quick,
                              rounds=["fold2"], num_workers=0, progress=False, no_valid="carve")  # the `all` hook
    assert carve.results[0].rule == "carve" and carve.results[0].n_train == 5
    rows = pd.read_csv(tmp_path / "out" / "scores.csv", dtype={"fold": str})
    assert set(zip(rows.protocol, rows.fold)) == {("finetune", "fold1"), ("finetune", "fold2"),
                                                  ("finetune-carve", "fold2")}
    assert (rows.weights == f"{NAME}/weights").all() and rows.score.between(0, 1).all()
    assert summary.mean == pytest.approx(np.mean([r.score for r in summary.results]))


def test_cli_runs_and_reports_bad_input_in_one_line(setup, tmp_path):
    from tests.fixtures.datasets import corrupt, make_csv_task

    from evaluation.cli import main

    weights, _ = setup
    meta = make_csv_task(tmp_path / "data", classes=("a", "b"), per_class=4)
    runner = CliRunner()
    args = ["finetune", "--task", f"csv:{meta}", "--weights", str(weights), "--out", str(tmp_path / "out"),
            "--seed", "43", "--epochs", "1", "--batch-size", "2", "--optimizer", "adamw", "--lr", "1e-3",
            "--workers", "0", "--no-progress"]
    ok = runner.invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert "fine-tuning accuracy" in ok.output and (tmp_path / "out" / "scores.csv").exists()
    again = runner.invoke(main, args)
    assert again.exit_code != 0 and "--resume" in again.output and "Traceback" not in again.output
    assert runner.invoke(main, args + ["--resume"]).exit_code == 0
    missing = runner.invoke(main, args[:4] + [str(tmp_path / "nope.pth")] + args[5:])
    assert missing.exit_code != 0 and "nope.pth" in missing.output and len(missing.output.strip().splitlines()) == 1
    bad = corrupt(next((meta.parent / "audio").glob("a_0.wav")))
    broken = runner.invoke(main, args[:6] + [str(tmp_path / "out2")] + args[7:])
    last = broken.output.strip().splitlines()[-1]
    assert broken.exit_code != 0 and last.startswith("Error: ") and str(bad) in last
    assert "Traceback" not in broken.output


def test_carve_rule_is_the_linear_probes_carve_out():
    """Fine-tuning's ``carve`` rule draws the rows the linear probe's carve-out draws for RandomState(seed),
    covers every class and keeps task order."""
    from evaluation.carve_out import carve_validation
    from evaluation.finetune.data import label_matrix
    from evaluation.finetune.trainer import carve_valid
    from evaluation.tasks.base import DatasetError

    labels = ["a"] * 20 + ["b"] * 15 + ["c"] * 3
    train = [Clip(Path(f"/x/{i}.wav"), (label,), "train") for i, label in enumerate(labels)]
    for seed in (43, 44):
        kept, valid = carve_valid(train, ["a", "b", "c"], False, seed, 0.1)
        _, expected, covered = carve_validation(label_matrix(train, ["a", "b", "c"], False, "train"), 0.1,
                                                np.random.RandomState(seed))
        assert covered and [c.path.stem for c in valid] == [str(i) for i in sorted(expected)]
        assert len(valid) == 4 and {c.label for c in valid} == {"a", "b", "c"}   # ceil(0.1 * 38) rows
        assert kept == [c for c in train if c not in valid]
    with pytest.raises(DatasetError, match="too few to carve"):
        carve_valid(train[:2], ["a"], False, 43, 0.1)


def test_cli_defaults_to_the_tasks_own_seeds_rounds_and_workers(tmp_path, monkeypatch):
    """``m2d-eval finetune`` takes the task's ``finetune`` settings (as ``evaluate_finetune`` does) where the
    command line gives none, and the command line wins where it does."""
    from tests.fixtures.datasets import make_csv_task

    import evaluation.finetune as F
    from evaluation.cli import main

    meta = make_csv_task(tmp_path / "data", classes=("a", "b"), per_class=3, folds=3)
    (meta.parent / "task.json").write_text(json.dumps(
        {"finetune": {"seeds": [7, 8], "max_rounds": 2, "num_workers": 0}}))
    weights = make_weights(tmp_path / "w")
    calls = []

    def fake_run(task, weights, out_dir, recipe=None, seeds=None, opts=None, rounds=None, **kw):
        calls.append((tuple(seeds), rounds, opts.num_workers))
        return F.FinetuneSummary(task.name, str(weights), task.metric, recipe, "best-test", {7: 0.5})

    monkeypatch.setattr(F, "run_finetune", fake_run)
    base = ["finetune", "--task", f"csv:{meta}", "--weights", str(weights), "--out", str(tmp_path / "out"),
            "--no-progress"]
    runner = CliRunner()
    result = runner.invoke(main, base)
    assert result.exit_code == 0, result.output
    given = runner.invoke(main, base + ["--seed", "43", "--fold", "fold3", "--workers", "2"])
    assert given.exit_code == 0, given.output
    assert calls == [((7, 8), ["fold1", "fold2"], 0), ((43,), ["fold3"], 2)]


def test_outputs_are_written_by_fileio_itself_not_thin_wrappers():
    """One way to write a file: m2d_hear.fileio's functions, called directly (a local ``write_json(obj, path)`` had
    the reverse argument order of ``fileio.write_json(path, obj)``)."""
    import evaluation.embeddings as E
    import evaluation.finetune.runner as R
    import evaluation.finetune.trainer as T
    import evaluation.hear.embed as H
    import evaluation.mini.build as B
    from m2d_hear import fileio

    wrappers = [(T, "write_json"), (E, "atomic_npy"), (E, "atomic_json"), (H, "_save_npy"), (H, "_save_json"),
                (B, "_write_text"), (B, "_sha256")]
    assert [f"{m.__name__}.{n}" for m, n in wrappers if hasattr(m, n)] == []
    assert R.write_json is fileio.write_json
