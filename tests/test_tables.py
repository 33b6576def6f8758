"""Tables from scores.csv: fold mean then seed mean ± CI, paper rows, tasks without a paper number, several
weights, Markdown/CSV/LaTeX/PNG, and ``m2d-eval table``."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from evaluation.cli import main
from evaluation.scores import ScoreRow, append_scores, done_keys, read_scores, row_key
from evaluation.tables import comparison, load_reference, summarize, to_latex, to_markdown, write_tables


def rows(weights, task, scores_by_seed, protocol="linear", metric="accuracy"):
    out = []
    for seed, per_fold in scores_by_seed.items():
        for i, s in enumerate(per_fold):
            fold = f"fold{i + 1}" if len(per_fold) > 1 else "main"
            out.append(ScoreRow(weights, task, protocol, seed, fold, metric, s))
    return out


@pytest.fixture
def results(tmp_path):
    append_scores(tmp_path, rows("ours/pretrained", "us8k", {42: [0.8, 0.9], 43: [0.85, 0.85], 44: [0.9, 0.9]}))
    append_scores(tmp_path, rows("ours/pretrained", "mini_kw", {42: [0.5], 43: [0.6], 44: [0.7]}))
    append_scores(tmp_path, rows("ours/random", "us8k", {42: [0.3, 0.4], 43: [0.3, 0.3], 44: [0.35, 0.35]}))
    append_scores(tmp_path, rows("ours/pretrained", "spcv2", {43: [0.9], 44: [0.92]}, protocol="finetune"))
    return tmp_path


def test_append_replaces_same_key(tmp_path):
    append_scores(tmp_path, rows("w", "us8k", {42: [0.1]}))
    append_scores(tmp_path, rows("w", "us8k", {42: [0.2], 43: [0.3]}))
    df = read_scores(tmp_path)
    assert len(df) == 2 and df[df.seed == 42].score.item() == 0.2


def test_scores_written_before_the_identity_columns_still_read(tmp_path):
    """An old scores.csv (no task_id column, empty hashes) reads with '' for unknown; a keyed rerun of the same
    label key replaces its legacy row, and the legacy row never counts as done for a keyed run."""
    (tmp_path / "scores.csv").write_text(
        "weights,task,protocol,seed,fold,metric,score,weights_sha256,n_train,n_test,best_epoch,run\n"
        "w,us8k,linear,42,main,accuracy,0.5,,10,5,3,runs/x.json\n"
        "w,us8k,linear,43,main,accuracy,0.6,,10,5,3,runs/x.json\n")
    old = read_scores(tmp_path)
    assert list(old.task_id) == ["", ""] and list(old.weights_sha256) == ["", ""]
    assert row_key("w", "ab" * 32, "us8k", "cd" * 32, "linear", 42, "main") not in done_keys(tmp_path)
    assert summarize(old).set_index("weights").loc["w", "mean"] == pytest.approx(55.0)
    append_scores(tmp_path, [ScoreRow("w", "us8k", "linear", 42, "main", "accuracy", 0.7,
                                      weights_sha256="ab" * 32, task_id="cd" * 32)])
    df = read_scores(tmp_path).set_index("seed")
    assert len(df) == 2 and df.loc[42, "score"] == 0.7 and df.loc[43, "weights_sha256"] == ""
    assert row_key("w", "ab" * 32, "us8k", "cd" * 32, "linear", 42, "main") in done_keys(tmp_path)
    # the legacy seed-43 row and the keyed seed-42 row may be other weights: shown apart, not averaged
    assert set(summarize(read_scores(tmp_path)).weights) == {"w [ababab]", "w [unknown]"}


def test_summary_is_fold_mean_then_seed_mean_and_ci(results):
    s = summarize(read_scores(results)).set_index(["weights", "protocol", "task"])
    us8k = s.loc[("ours/pretrained", "linear", "us8k")]
    # per-seed fold means 85, 85, 90 -> mean 86.67, CI = t(0.975, 2) * std / sqrt(3)
    assert us8k["mean"] == pytest.approx(86.6667, abs=1e-3)
    assert us8k.ci95 == pytest.approx(4.302653 * 2.886751 / math.sqrt(3), rel=1e-4)
    assert (us8k.n_seeds, us8k.n_folds) == (3, 2)
    assert s.loc[("ours/pretrained", "finetune", "spcv2")].n_seeds == 2


def test_comparison_with_paper_rows_missing_numbers_and_two_weights(results):
    summary = summarize(read_scores(results))
    table, numeric = comparison(summary, load_reference(), "linear", paper_models=("M2D/0.7", "M2D/0.6"))
    assert list(table.columns) == ["model", "us8k", "mini_kw", "average"]
    models = list(table.model)
    assert models[:2] == ["ours/pretrained (ours)", "ours/random (ours)"]
    assert models[2] == "M2D/0.7 (paper: TASLP 2024 Table V)"
    assert models[3] == "M2D/0.6 (paper: Interspeech 2024 Table 3)"
    paper = table.set_index("model").loc[models[2]]
    assert paper.us8k == "87.6 ± 0.2" and paper.mini_kw == "" and paper.average == ""
    assert table.set_index("model").loc["ours/random (ours)"].mini_kw == ""
    assert table.set_index("model").loc["ours/pretrained (ours)"].average == f"{(86.6667 + 60) / 2:.1f}"
    md = to_markdown(table)
    assert "| Model |" not in md and "| model | US8K | mini_kw | Average |" in md and "| – |" in md
    tex = to_latex(table, "caption with 95 % and a_b")
    assert r"87.6 $\pm$ 0.2" in tex and r"95 \%" in tex and r"a\_b" in tex and "--" in tex
    assert set(numeric.kind) == {"ours", "paper"} and "TASLP" in numeric[numeric.kind == "paper"].source.iloc[0]


def test_finetune_table_uses_table_vi(results):
    table, _ = comparison(summarize(read_scores(results)), load_reference(), "finetune")
    assert table.set_index("model").loc["M2D/0.7 (paper: TASLP 2024 Table VI)"].spcv2 == "98.4 ± 0.1"


def test_reference_csvs_carry_citations():
    ref = load_reference()
    assert {"Table V", "Table VI", "Table 3", "Table 4"} <= set(ref.table)
    assert ref.source.str.contains("TASLP 2024|Interspeech 2024").all()
    m2d = ref[(ref.model == "M2D/0.7") & (ref.table == "Table V")].set_index("task")
    assert m2d.loc["vc1", "score"] == 73.4 and m2d.loc["gtzan", "ci95"] == 2.7


def test_table_command_writes_every_format(results):
    result = CliRunner().invoke(main, ["table", str(results), "--paper-model", "M2D/0.7"])
    assert result.exit_code == 0, result.output
    out = results / "tables"
    for name in ("linear.md", "linear.csv", "linear.tex", "linear.png", "finetune.md", "finetune.png",
                 "summary.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert "87.6 ± 0.2" in result.output
    assert pd.read_csv(out / "summary.csv").shape[0] == 4


def test_table_command_without_scores(tmp_path):
    result = CliRunner().invoke(main, ["table", str(tmp_path)])
    assert result.exit_code == 1 and "no scores yet" in result.output


def test_notes_recorded_by_the_runs_go_under_their_table(results):
    import json

    (results / "runs").mkdir()
    note = "Toy tasks: probed with other settings."
    (results / "runs" / "a.json").write_text(json.dumps({"table_note": note}))
    (results / "runs" / "b.json").write_text(json.dumps({"probe": {}}))
    scores = read_scores(results)
    scores["run"] = scores["run"].astype(object)
    scores.loc[scores.task == "mini_kw", "run"] = "runs/a.json"
    scores.loc[scores.task == "us8k", "run"] = "runs/b.json"
    scores.loc[scores.protocol == "finetune", "run"] = "runs/absent.json"   # a record that is gone adds nothing
    scores.to_csv(results / "scores.csv", index=False)
    write_tables(results, plot=False)
    assert (results / "tables" / "linear.md").read_text().rstrip().endswith(note)
    assert note not in (results / "tables" / "finetune.md").read_text()


def test_committed_tables_are_rebuilt_identically(tmp_path):
    """``results/m2d-eval`` (the README's mini-benchmark figures): its scores.csv and run records rebuild the
    committed tables byte for byte, the mini benchmark's probe note included (read from the run records)."""
    import shutil
    from pathlib import Path

    committed = Path(__file__).resolve().parent.parent / "results" / "m2d-eval"
    shutil.copy(committed / "scores.csv", tmp_path / "scores.csv")
    shutil.copytree(committed / "runs", tmp_path / "runs")
    write_tables(tmp_path, plot=False)
    for name in ("linear.md", "linear.csv", "linear.tex", "finetune.md", "finetune.csv", "finetune.tex",
                 "summary.csv"):
        assert (tmp_path / "tables" / name).read_text() == (committed / "tables" / name).read_text(), name
    assert "Mini tasks: linear probe with Adam lr 0.001" in (tmp_path / "tables" / "linear.md").read_text()
