"""Hostile inputs: label lists that cannot make a task, damaged pre-training checkpoints, audio folders that
``prepare`` cannot convert cleanly, unwritable or full output folders and a missing optional extra.

Each case ends in one line naming the file (or rows) and the fix, never in a traceback, a silent fallback or a
plausible-looking result; no temporary file is left behind.
"""
from __future__ import annotations

import csv
import errno
import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from evaluation.cli import main as eval_main
from evaluation.tasks import DatasetError, load_task
from pretrain.checkpointing import LAST
from pretrain.cli import main as pretrain_main
from tests.fixtures import datasets as d


def one_line_error(result, *expected: str) -> str:
    """The command failed with exit status 1 and one line (click's ``Error: ...``) holding every expected text."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob(".*.tmp*"))


# ---------------------------------------------------------------------------------------------------- 2. labels
def rewrite_csv(path: Path, change) -> Path:
    """Rewrite the data rows of a ``make_csv_task`` CSV (``[file_name, label, split]`` lists) with ``change``."""
    lines = path.read_text().splitlines()
    comment, header, rows = lines[0], lines[1], [line.split(",") for line in lines[2:]]
    rows = change(rows)
    path.write_text("\n".join([comment, header] + [",".join(r) for r in rows]) + "\n")
    return path


def test_all_blank_labels_are_refused_not_one_class(tmp_path):
    path = rewrite_csv(d.make_csv_task(tmp_path), lambda rows: [[f, "", s] for f, _, s in rows])
    with pytest.raises(DatasetError, match=r"blank label in 9 of 9 rows \(meta.csv:3, meta.csv:4, .* and 4 more\)"):
        load_task(f"csv:{path}")


def test_some_blank_labels_are_refused_not_an_extra_class(tmp_path):
    path = rewrite_csv(d.make_csv_task(tmp_path),
                       lambda rows: [[f, "" if f.endswith(("a_1.wav", "c_0.wav")) else label, s]
                                     for f, label, s in rows])
    with pytest.raises(DatasetError, match=r"blank label in 2 of 9 rows \(meta.csv:4, meta.csv:9\)"):
        load_task(f"csv:{path}")


def test_multilabel_rows_may_be_empty_but_not_all_of_them(tmp_path):
    path = d.make_csv_task(tmp_path, multilabel=True)
    rewrite_csv(path, lambda rows: [[f, "" if f.endswith("a_1.wav") else labels, s] for f, labels, s in rows])
    task = load_task(f"csv:{path}")  # a multi-label row without labels: none of the classes
    assert task.multilabel and [c.labels for c in task.clips if c.path.name == "a_1.wav"] == [()]
    path.write_text("# unit_sec=0.5, multilabel=true\n" + path.read_text().split("\n", 1)[1])
    rewrite_csv(path, lambda rows: [[f, "", s] for f, _, s in rows])
    with pytest.raises(DatasetError, match=r"every one of the 9 rows has no label"):
        load_task(f"csv:{path}")


def test_duplicate_rows_are_refused_unless_allowed(tmp_path):
    path = rewrite_csv(d.make_csv_task(tmp_path), lambda rows: rows + [rows[0]])
    with pytest.raises(DatasetError, match=r"1 file\(s\) listed more than once \(audio/a_0.wav at meta.csv:3 and "
                                           r"meta.csv:12\); .*--allow-duplicates"):
        load_task(f"csv:{path}")
    assert len(load_task(f"csv:{path}", allow_duplicates=True).clips) == 10  # counted as listed, on request


def test_the_allow_duplicates_flag_reaches_the_reader(tmp_path):
    path = rewrite_csv(d.make_csv_task(tmp_path), lambda rows: rows + [rows[4]])
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not a checkpoint")  # the task is read before the weights
    for command in ("linear", "finetune"):
        args = [command, "--task", f"csv:{path}", "--weights", str(weights), "--out", str(tmp_path / "out")]
        one_line_error(CliRunner().invoke(eval_main, args), "audio/b_1.wav at meta.csv:7 and meta.csv:12",
                       "--allow-duplicates")
        allowed = CliRunner().invoke(eval_main, args + ["--allow-duplicates"])
        assert "listed more than once" not in allowed.output and "10 clips" in allowed.output, allowed.output
    assert "--allow-duplicates" in CliRunner().invoke(eval_main, ["all", "--help"]).output
    assert len(load_task(f"csv:{path}", allow_duplicates=True).clips) == 10
    with pytest.raises(DatasetError):  # the command's choice did not outlive it
        load_task(f"csv:{path}")


@pytest.mark.parametrize("settings, key", [
    ([1, 2], "JSON object"),
    ({"probe": {"learning_rate": 1e-3}}, "probe.learning_rate"),
    ({"finetune": {"seeds": ["a"]}}, "finetune.seeds"),
    ({"finetune": {"seeds": 43}}, "finetune.seeds"),
    ({"finetune": {"max_rounds": "two"}}, "finetune.max_rounds"),
    ({"finetune": {"num_workers": 1.5}}, "finetune.num_workers"),
    ({"finetune": {"recipe": {"name": "x", "learning_rate": 1}}}, "finetune.recipe.learning_rate"),
    ({"finetune": {"recipe": [1]}}, "finetune.recipe"),
])
def test_a_bad_task_json_is_one_line_when_read(tmp_path, settings, key):
    """Protocol settings of a task.json are checked when the task is read, not where they are used (a TypeError in
    LinearProbe(**params), a ValueError in int(), an AttributeError in settings.update)."""
    path = d.make_csv_task(tmp_path)
    (path.parent / "task.json").write_text(json.dumps(settings))
    with pytest.raises(DatasetError) as err:
        load_task(f"csv:{path}")
    message = str(err.value)
    assert "task.json" in message and key in message and len(message.splitlines()) == 1, message


def test_a_good_task_json_with_protocol_settings_is_read(tmp_path):
    from evaluation.mini.suite import TASK_SETTINGS

    path = d.make_csv_task(tmp_path)
    (path.parent / "task.json").write_text(json.dumps(TASK_SETTINGS))
    task = load_task(f"csv:{path}")
    assert task.finetune["seeds"] == [43] and task.probe == TASK_SETTINGS["probe"]


def test_a_header_without_rows_is_one_line(tmp_path):
    path = d.make_csv_task(tmp_path)
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")
    with pytest.raises(DatasetError, match=r"meta.csv: no rows are listed \(nothing below the header\)"):
        load_task(f"csv:{path}")
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    result = CliRunner().invoke(eval_main, ["linear", "--task", f"csv:{path}", "--weights", str(weights)])
    one_line_error(result, "no rows are listed")


def test_us8k_blank_class_is_not_the_class_nan(tmp_path):
    root = d.make_us8k(tmp_path)
    meta = root / "metadata" / "UrbanSound8K.csv"
    rows = list(csv.reader(meta.open()))
    rows[2][-1] = ""
    with open(meta, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(DatasetError, match=r"us8k: blank label in 1 of 9 rows \(UrbanSound8K.csv:3\)"):
        load_task("us8k", data_root=tmp_path)


def test_vc1_line_listed_twice_is_not_counted_twice(tmp_path):
    root = d.make_vc1(tmp_path)
    split = root / "iden_split.txt"
    lines = split.read_text().splitlines()
    split.write_text("\n".join(lines + ["", lines[1]]) + "\n")  # a blank line, then line 2 again (line 14)
    with pytest.raises(DatasetError, match=r"vc1: 1 file\(s\) listed more than once \(wav/id10001/vid1x01abc/"
                                           r"00002.wav at iden_split.txt:2 and iden_split.txt:14\)"):
        load_task("vc1", data_root=tmp_path)
    assert len(load_task("vc1", data_root=tmp_path, allow_duplicates=True).clips) == len(lines) + 1


def test_gtzan_file_listed_twice_in_one_list_is_a_duplicate_not_a_split_conflict(tmp_path):
    """A repeat within one split list goes to the duplicate check (which honours --allow-duplicates); only a file in
    two different lists is the inconsistent-lists error."""
    root = d.make_gtzan(tmp_path)
    train = root / "train_filtered.txt"
    lines = train.read_text().splitlines()
    train.write_text("\n".join(lines + [lines[0]]) + "\n")
    with pytest.raises(DatasetError, match=r"gtzan: 1 file\(s\) listed more than once .*train_filtered.txt:1 and "
                                           rf"train_filtered.txt:{len(lines) + 1}\).*--allow-duplicates") as err:
        load_task("gtzan", data_root=tmp_path)
    assert "also listed in" not in str(err.value)
    assert len(load_task("gtzan", data_root=tmp_path, allow_duplicates=True).clips) == 12 + 1


def test_tasks_survey_shows_duplicates_unless_allowed(tmp_path):
    split = d.make_vc1(tmp_path) / "iden_split.txt"
    split.write_text(split.read_text() + split.read_text().splitlines()[0] + "\n")
    result = CliRunner().invoke(eval_main, ["tasks", "--data-root", str(tmp_path)])
    assert "[broken] vc1: vc1: 1 file(s) listed more than once" in result.output, result.output
    result = CliRunner().invoke(eval_main, ["tasks", "--data-root", str(tmp_path), "--allow-duplicates"])
    assert "[ok] vc1: 13 clips" in result.output, result.output


def test_as20k_segment_listed_twice_is_named(tmp_path):
    root = d.make_as20k(tmp_path)
    listing = root / "balanced_train_segments.csv"
    lines = listing.read_text().splitlines()
    listing.write_text("\n".join(lines + [lines[3]]) + "\n")  # the first segment again
    with pytest.raises(DatasetError, match=r"as20k: 1 file\(s\) listed more than once .* at "
                                           r"balanced_train_segments.csv:4 and balanced_train_segments.csv:12"):
        load_task("as20k", data_root=tmp_path)


def test_as20k_without_any_label_is_refused(tmp_path):
    root = d.make_as20k(tmp_path)
    for name in ("balanced_train_segments.csv", "eval_segments.csv"):
        listing = root / name
        listing.write_text("".join(line.rsplit(",", 1)[0].split(', "')[0] + ', ""\n' if not line.startswith("#")
                                   else line + "\n" for line in listing.read_text().splitlines()))
    with pytest.raises(DatasetError, match=r"as20k: every one of the \d+ rows has no label"):
        load_task("as20k", data_root=tmp_path)


def test_hear_blank_label_is_named(tmp_path):
    folder = d.make_hear_task(tmp_path)
    listing = json.loads((folder / "train.json").read_text())
    listing["train_1.wav"] = [""]
    (folder / "train.json").write_text(json.dumps(listing))
    with pytest.raises(DatasetError, match=r"toy_task: blank label in 1 of 12 rows \(train.json:train_1.wav\)"):
        load_task(f"hear:{folder}")


# ---------------------------------------------------------------------------------------------------- 7. resume
TINY_RUN = ["--model", "m2d_vit_tiny", "--embed-dim", "64", "--depth", "2", "--input-size", "80x64",
            "--decoder-dim", "32", "--decoder-depth", "1", "--decoder-heads", "2", "--min-ds-size", "0",
            "--norm-stats-samples", "16", "--no-progress", "--quiet", "--threads", "1", "--log-every", "1",
            "--epochs", "10", "--batch-size", "4", "--save-freq", "5", "--name", "run"]


@pytest.fixture(scope="module")
def lms_data(tmp_path_factory):
    """8 log-mel files: 2 steps of batch 4 per epoch."""
    root = tmp_path_factory.mktemp("pretrain")
    for n in range(8):
        d.write_audio(root / "src" / f"c{n}.wav", n % 4, seconds=0.3, n=n)
    result = prepare(root / "src", root / "data")
    assert result.exit_code == 0, result.output
    return root / "data"


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def train(data: Path, out: Path, *extra):
    return CliRunner().invoke(pretrain_main, ["train", "--data", str(data), "--out", str(out), *TINY_RUN, *extra])


def log_steps(run: Path) -> list[int]:
    """The steps of the log's training records (the collapse watch's effective-rank records aside)."""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if "loss" in r]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_last_checkpoint_stops_resume_unless_told_to_fall_back(lms_data, tmp_path, restore_threads,
                                                                         damage):
    result = train(lms_data, tmp_path, "--steps", "15")  # checkpoint-5.pth at step 10, checkpoint-last.pth at 15
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert log_steps(run) == list(range(1, 16))
    last = run / LAST
    content = last.read_bytes()
    damaged = content[: len(content) // 2] if damage == "truncated" else b"\x00garbage" * 64
    last.write_bytes(damaged)

    result = train(lms_data, tmp_path, "--resume", "--steps", "17")
    one_line_error(result, f"{last}: damaged checkpoint, cannot be read", "past checkpoint-5.pth (step 10)",
                   "--resume-fallback", "lose 5 logged steps (log.jsonl reaches step 15)")
    assert last.read_bytes() == damaged and log_steps(run) == list(range(1, 16))  # nothing touched

    result = train(lms_data, tmp_path, "--resume-fallback", "--steps", "12")
    assert result.exit_code == 0, result.output
    assert "5 logged steps (log.jsonl reaches step 15) are lost" in result.output
    # steps 11-15, and the effective-rank lines at the ends of epochs 6 and 7 (steps 12 and 14)
    assert f"{run / 'log.jsonl'}: removed 7 line(s) after step 10" in result.output
    assert (run / (LAST + ".damaged")).read_bytes() == damaged  # set aside, not overwritten
    assert log_steps(run) == list(range(1, 13))


def test_a_damaged_older_epoch_checkpoint_is_named_but_not_fallen_back_from(lms_data, tmp_path, restore_threads):
    assert train(lms_data, tmp_path, "--steps", "13").exit_code == 0
    run = tmp_path / "run"
    (run / "checkpoint-5.pth").write_bytes(b"")
    result = train(lms_data, tmp_path, "--resume", "--steps", "14")
    assert result.exit_code == 0, result.output
    assert f"{run / 'checkpoint-5.pth'}: damaged checkpoint" in result.output and "older than" in result.output
    assert log_steps(run) == list(range(1, 15))


def test_log_lines_past_the_checkpoint_are_not_dropped_silently(lms_data, tmp_path, restore_threads):
    assert train(lms_data, tmp_path, "--steps", "3").exit_code == 0  # checkpoint-last.pth at step 3
    run = tmp_path / "run"
    with open(run / "log.jsonl", "a") as f:  # a crash after two more logged steps, and half a line
        f.write('{"step": 4}\n{"step": 5}\n{"st')
    result = train(lms_data, tmp_path, "--resume", "--steps", "4")
    assert result.exit_code == 0, result.output
    assert f"{run / 'log.jsonl'}: removed 2 line(s) after step 3, the step the run continues from, and 1 " \
           "unreadable line(s); kept 5" in result.output  # steps 1-3, and the effective ranks at steps 0 and 2
    assert log_steps(run) == [1, 2, 3, 4]


# --------------------------------------------------------------------------------------------------- 8. prepare
def prepare(src: Path, data: Path):
    return CliRunner().invoke(pretrain_main, ["prepare", str(src), str(data), "-j", "1"])


def test_prepare_exits_nonzero_after_converting_the_rest(tmp_path):
    src, data = tmp_path / "src", tmp_path / "data"
    for n in range(3):
        d.write_audio(src / f"ok{n}.wav", n, seconds=0.2, n=n)
    d.corrupt(src / "bad.wav")
    result = prepare(src, data)
    one_line_error(result, "1 file(s) could not be converted", str(data / "failed.csv"))
    assert "converted 3, skipped 0 already done, failed 1" in result.output
    assert sorted(p.name for p in data.glob("*.npy")) == ["ok0.npy", "ok1.npy", "ok2.npy"]
    assert str(src / "bad.wav") in (data / "failed.csv").read_text()


def test_prepare_refuses_two_sources_with_one_output(tmp_path):
    src, data = tmp_path / "src", tmp_path / "data"
    d.write_audio(src / "a" / "x.wav", 0, seconds=0.2)
    d.write_audio(src / "a" / "x.flac", 1, seconds=0.2)
    d.write_audio(src / "a" / "y.wav", 2, seconds=0.2)
    result = prepare(src, data)
    one_line_error(result, f"{src / 'a' / 'x.flac'} and {src / 'a' / 'x.wav'} would both be converted to "
                           f"{data / 'a' / 'x.npy'}", "rename or remove one")
    assert not list(data.rglob("*.npy"))  # stopped before converting anything


# ---------------------------------------------- 9. read-only or full output folders, a missing optional extra
def fail_writes(monkeypatch, folder: Path, pattern: str, code: int) -> None:
    """Files under ``folder`` whose name matches ``pattern`` cannot be written, as on a read-only or full disk
    (tests run as root, where chmod does not stop a write): opening one for writing raises ``OSError(code)``, or
    with ``ENOSPC`` it is created but every write to it fails (``/dev/full``)."""
    import builtins
    import os
    from fnmatch import fnmatch

    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full to fill a disk")
    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        path = Path(os.fspath(file)) if isinstance(file, (str, os.PathLike)) else None
        if (path is not None and set(mode) & set("wax+") and path.is_relative_to(folder)
                and fnmatch(path.name, pattern)):
            if code != errno.ENOSPC:
                raise OSError(code, os.strerror(code), str(path))
            real_open(path, "wb").close()
            return real_open("/dev/full", mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)


WRITE_ERRORS = [pytest.param(errno.EROFS, "read-only file system", id="read-only"),
                pytest.param(errno.EACCES, "permission denied", id="no-permission"),
                pytest.param(errno.ENOSPC, "no space left on the device", id="full-disk")]


@pytest.mark.parametrize("code,message", WRITE_ERRORS)
def test_prepare_unwritable_output_is_one_line_without_temp_files(tmp_path, monkeypatch, code, message):
    src, data = tmp_path / "src", tmp_path / "data"
    d.write_audio(src / "a.wav", 0, seconds=0.2)
    d.write_audio(src / "b.wav", 1, seconds=0.2)
    fail_writes(monkeypatch, data, "*.npy*", code)
    result = prepare(src, data)
    one_line_error(result, f"{data / 'a.npy'}: {message}")
    assert temp_files(tmp_path) == [] and not list(data.rglob("*.npy"))


@pytest.mark.parametrize("code,message", WRITE_ERRORS)
def test_train_unwritable_checkpoint_is_one_line_without_temp_files(lms_data, tmp_path, monkeypatch,
                                                                    restore_threads, code, message):
    fail_writes(monkeypatch, tmp_path, "*.pth*", code)
    result = train(lms_data, tmp_path, "--epochs", "1")
    one_line_error(result, f"{tmp_path / 'run' / 'checkpoint-1.pth'}: {message}")
    assert temp_files(tmp_path) == [] and not list(tmp_path.rglob("*.pth"))


def test_train_full_disk_for_the_log_is_one_line(lms_data, tmp_path, monkeypatch, restore_threads):
    fail_writes(monkeypatch, tmp_path, "log.jsonl", errno.ENOSPC)
    result = train(lms_data, tmp_path, "--epochs", "1")
    one_line_error(result, f"{tmp_path / 'run' / 'log.jsonl'}: no space left on the device")


@pytest.mark.parametrize("missing", ["hearvalidator", "tensorflow"])
def test_validate_without_the_optional_validator_says_what_to_install(tmp_path, monkeypatch, missing):
    import builtins

    real_import = builtins.__import__

    def import_(name, *args, **kwargs):
        if name.split(".")[0] == missing:
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", import_)
    for module in [m for m in sys.modules if m.split(".")[0] in ("hearvalidator", missing)]:
        monkeypatch.delitem(sys.modules, module)  # imported by an earlier test: import it afresh
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    result = CliRunner().invoke(eval_main, ["validate", str(weights)])
    one_line_error(result, f"module {missing!r} is not installed", "pip install 'm2d-hear[test]'")
