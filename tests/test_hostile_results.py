"""Hostile inputs for the results layer: names that collide while content differs, and concurrent writers.

- Two weight files with one label (same parent folder and file stem) run into one ``--out``: each gets its own
  embeddings, score rows, run record and fine-tuning runs, and the table shows both, suffixed by hash.
- Two CSV tasks with one name and the same relative paths but other audio: neither reuses the other's embeddings
  or rows, and the table gives each its own column.
- Several processes appending to one ``scores.csv`` at once keep every row.
"""
from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import m2d_hear
from evaluation.cli import main
from evaluation.embeddings import extract
from evaluation.scores import ScoreRow, append_scores, read_scores
from evaluation.tables import comparison, load_reference, summarize
from evaluation.tasks import load_task
from tests.fixtures import datasets as d
from tests.fixtures.checkpoints import tiny_encoder_state, write
from tests.fixtures.score_writer import append_many
from tests.fixtures.tiny_model import TINY_NAME

FAST = ["--workers", "0", "--max-epochs", "3", "--seeds", "42"]
pytestmark = pytest.mark.filterwarnings("ignore:the validation carve-out:RuntimeWarning")


def twin_weights(tmp_path):
    """Two different weight files with the same parent folder name and file stem, hence the same label."""
    a = write(tiny_encoder_state(TINY_NAME, seed=0), tmp_path / "run_a", TINY_NAME, "weights_enconly.pth")
    b = write(tiny_encoder_state(TINY_NAME, seed=1), tmp_path / "run_b", TINY_NAME, "weights_enconly.pth")
    assert a.read_bytes() != b.read_bytes()
    return a, b


def twin_tasks(tmp_path):
    """Two CSV tasks named ``meta`` with the same relative paths and file sizes but other audio in B."""
    a = d.make_csv_task(tmp_path / "A", per_class=3)
    b = d.make_csv_task(tmp_path / "B", per_class=3)
    for n, wav in enumerate(sorted((b.parent / "audio").glob("*.wav"))):
        ci = "abc".index(wav.name[0])
        size = wav.stat().st_size
        d.write_audio(wav, (ci + 1) % 3, 0.5, n + 9)   # another tone and noise; same rate, channels, length
        assert wav.stat().st_size == size
        twin = a.parent / "audio" / wav.name
        os.utime(wav, ns=(twin.stat().st_atime_ns, twin.stat().st_mtime_ns + 10**9))
    return a, b


def linear(task, weights, out):
    result = CliRunner().invoke(main, ["linear", "--task", str(task), "--weights", str(weights), "--out", str(out),
                                       *FAST], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reported(output: str) -> str:
    """The '<metric> NN.NN %' the command printed."""
    return re.search(r"(accuracy|mAP) \d+\.\d+ %", output).group(0)


def test_two_weight_files_with_one_label_get_their_own_embeddings_and_scores(tmp_path):
    a, b = twin_weights(tmp_path)
    meta = d.make_csv_task(tmp_path / "data", per_class=3, multilabel=True)   # mAP: scores rarely tie
    task = f"csv:{meta}"
    out = tmp_path / "out"
    first = linear(task, a, out)
    shared = linear(task, b, out)
    alone = linear(task, b, tmp_path / "alone")
    assert reported(first) != reported(alone)           # the two files do score differently here
    assert reported(shared) == reported(alone)          # B's own score, not A's
    scores = read_scores(out)
    assert scores.weights.nunique() == 1 and len(scores) == 2
    assert set(scores.weights_sha256) == {sha256(a), sha256(b)}
    b_row = scores[scores.weights_sha256 == sha256(b)].score.item()
    assert b_row == read_scores(tmp_path / "alone").score.item()
    assert len(list((out / "cache").glob("*/embeddings.npy"))) == 2   # one cache entry per weight file
    assert len(list((out / "runs").glob("*.json"))) == 2               # one run record per weight file
    table = (out / "tables" / "linear.md").read_text()
    label = f"{TINY_NAME}/weights_enconly"
    for w in (a, b):
        assert f"{label} [{sha256(w)[:6]}] (ours)" in table


def test_two_csv_tasks_with_one_name_do_not_share_embeddings(tmp_path):
    a, b = twin_tasks(tmp_path)
    task_a, task_b = load_task(f"csv:{a}"), load_task(f"csv:{b}")
    assert task_a.name == task_b.name
    assert [c.path.relative_to(a.parent) for c in task_a.clips] == [c.path.relative_to(b.parent) for c in task_b.clips]
    weights = write(tiny_encoder_state(TINY_NAME), tmp_path / "w", TINY_NAME, "weights_enconly.pth")
    model = m2d_hear.load_m2d(weights)
    torch.set_num_threads(1)
    emb_a = extract(model, task_a, weights, tmp_path / "cache", num_workers=0, progress=False)
    emb_b = extract(model, task_b, weights, tmp_path / "cache", num_workers=0, progress=False)
    fresh_b = extract(model, task_b, weights, tmp_path / "fresh", num_workers=0, progress=False)
    assert emb_b.folder != emb_a.folder
    np.testing.assert_array_equal(np.asarray(emb_b.matrix), np.asarray(fresh_b.matrix))
    assert not np.allclose(np.asarray(emb_a.matrix), np.asarray(emb_b.matrix))


def test_two_csv_tasks_with_one_name_keep_their_own_rows_and_columns(tmp_path):
    a, b = twin_tasks(tmp_path)
    weights = write(tiny_encoder_state(TINY_NAME), tmp_path / "w", TINY_NAME, "weights_enconly.pth")
    out = tmp_path / "out"
    linear(f"csv:{a}", weights, out)
    linear(f"csv:{b}", weights, out)
    linear(f"csv:{b}", weights, tmp_path / "alone")
    scores = read_scores(out)
    assert len(scores) == 2 and scores.task.nunique() == 1 and scores.task_id.nunique() == 2
    ids = {name: load_task(f"csv:{p}").fingerprint() for name, p in (("a", a), ("b", b))}
    assert set(scores.task_id) == set(ids.values())
    assert scores[scores.task_id == ids["b"]].score.item() == read_scores(tmp_path / "alone").score.item()
    summary = summarize(scores)
    assert len(summary) == 2 and set(summary.n_seeds) == {1}   # never averaged as one task
    table = (out / "tables" / "linear.md").read_text()
    assert f"meta [{ids['a'][:6]}]" in table and f"meta [{ids['b'][:6]}]" in table


def test_two_weight_files_with_one_label_get_their_own_finetuning_runs(tmp_path):
    from evaluation.finetune import Recipe, evaluate_finetune

    a, b = twin_weights(tmp_path)
    task = load_task(f"csv:{d.make_csv_task(tmp_path / 'data', classes=('a', 'b'), per_class=4)}")
    quick = Recipe("quick", "adamw", 2e-3, 1, 0, 4, 0.0, 0, 0, False, source="ours")
    torch.set_num_threads(1)
    out = tmp_path / "out"
    run_a = evaluate_finetune(task, a, out, device="cpu", seeds=(43,), recipe=quick, num_workers=0, progress=False)
    run_b = evaluate_finetune(task, b, out, device="cpu", seeds=(43,), recipe=quick, num_workers=0, progress=False)
    alone = evaluate_finetune(task, b, tmp_path / "alone", device="cpu", seeds=(43,), recipe=quick, num_workers=0,
                              progress=False)
    assert run_b.results[0].run_dir != run_a.results[0].run_dir   # resume never reuses A's finished run for B
    loss = [r.results[0].history[0]["train_loss"] for r in (run_a, run_b, alone)]
    assert loss[1] == pytest.approx(loss[2], rel=1e-4) and loss[0] != pytest.approx(loss[1], rel=1e-4)
    scores = read_scores(out)
    assert len(scores) == 2 and set(scores.weights_sha256) == {sha256(a), sha256(b)}


def rows(weights, sha, task="us8k", task_id="", scores=(0.2, 0.4, 0.6)):
    ids = {"task_id": task_id} if task_id else {}
    return [ScoreRow(weights, task, "linear", seed, "main", "accuracy", s, weights_sha256=sha, **ids)
            for seed, s in zip((42, 43, 44), scores)]


def test_table_suffixes_instead_of_merging_one_label(tmp_path):
    append_scores(tmp_path, rows("ckpt/weights", "aa" * 32, scores=(0.2, 0.2, 0.2)))
    append_scores(tmp_path, rows("ckpt/weights", "bb" * 32, scores=(0.8, 0.8, 0.8)))
    assert len(read_scores(tmp_path)) == 6   # another hash under the same label is kept, not replaced
    append_scores(tmp_path, rows("ckpt/weights", "aa" * 32, task="mini_x", task_id="cc" * 32))
    append_scores(tmp_path, rows("ckpt/weights", "aa" * 32, task="mini_x", task_id="dd" * 32, scores=(1, 1, 1)))
    scores = read_scores(tmp_path)
    assert len(scores) == 12
    summary = summarize(scores).set_index(["weights", "task"])
    assert summary.loc[("ckpt/weights [aaaaaa]", "us8k"), "mean"] == pytest.approx(20.0)
    assert summary.loc[("ckpt/weights [bbbbbb]", "us8k"), "mean"] == pytest.approx(80.0)
    # a model row is one weight file across every task of the protocol, so its suffix follows it everywhere
    assert summary.loc[("ckpt/weights [aaaaaa]", "mini_x [cccccc]"), "mean"] == pytest.approx(40.0)
    assert summary.loc[("ckpt/weights [aaaaaa]", "mini_x [dddddd]"), "mean"] == pytest.approx(100.0)
    table, _ = comparison(summarize(scores), load_reference(), "linear")
    models = list(table.model)
    assert "ckpt/weights [aaaaaa] (ours)" in models and "ckpt/weights [bbbbbb] (ours)" in models
    assert {"us8k", "mini_x [cccccc]", "mini_x [dddddd]"} <= set(table.columns)
    paper = table[table.model.str.contains("paper")].iloc[0]
    assert paper.us8k == "87.6 ± 0.2"


def test_concurrent_appends_keep_every_row(tmp_path):
    workers, per_worker = 4, 25
    ctx = mp.get_context("forkserver")   # workers fork from a server that imported the writer once
    ctx.set_forkserver_preload(["tests.fixtures.score_writer"])
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=append_many, args=(str(tmp_path), w, per_worker, barrier)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    scores = read_scores(tmp_path)
    assert len(scores) == workers * per_worker
    assert set(zip(scores.weights, scores.seed)) == {(f"w{w}", i) for w in range(workers) for i in range(per_worker)}


def test_rows_made_with_other_probe_settings_are_not_reused(tmp_path):
    """A second run into one --out with another probe setting (here fewer epochs) would find every row 'done' and
    print the first run's numbers as its own; it stops with one line naming the differing setting instead."""
    weights = write(tiny_encoder_state(TINY_NAME, seed=0), tmp_path / "run_a", TINY_NAME, "weights_enconly.pth")
    task = d.make_csv_task(tmp_path / "task")
    base = ["linear", "--task", f"csv:{task}", "--weights", str(weights), "--out", str(tmp_path / "out"),
            "--seed", "42", "--workers", "0"]
    first = CliRunner().invoke(main, [*base, "--max-epochs", "3"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, [*base, "--max-epochs", "3"])   # the same settings: reused, no error
    assert again.exit_code == 0, again.output
    other = CliRunner().invoke(main, [*base, "--max-epochs", "5"])
    assert other.exit_code == 1, other.output
    errors = [line for line in other.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "max_epochs 3 vs 5" in errors[0], other.output


def test_no_average_counts_a_task_twice(tmp_path):
    """A task shown under two identities ('us8k [..]' twice) would enter an average twice, also the paper's: with
    such columns no row gets an average; with one identity per task the average is the mean over tasks."""
    append_scores(tmp_path, rows("ckpt/weights", "aa" * 32, task_id="11" * 32, scores=(0.2, 0.2, 0.2)))
    append_scores(tmp_path, rows("ckpt/weights", "aa" * 32, task="vc1", task_id="ee" * 32, scores=(0.6, 0.6, 0.6)))
    table, _ = comparison(summarize(read_scores(tmp_path)), load_reference(), "linear")
    assert table.set_index("model").loc["ckpt/weights (ours)", "average"] == "40.0"
    append_scores(tmp_path, rows("ckpt/weights", "aa" * 32, task_id="ff" * 32, scores=(0.9, 0.9, 0.9)))
    table, _ = comparison(summarize(read_scores(tmp_path)), load_reference(), "linear")
    assert sum(c.startswith("us8k [") for c in table.columns) == 2
    assert "average" not in table.columns
