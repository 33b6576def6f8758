"""Errors keep bugs visible: an input error (m2d_hear.errors.InputError, a missing file, an unwritable folder)
ends a command in one line, and every other exception -- a bug in our own code -- keeps its traceback, whatever
its class (ValueError included) and whichever command it comes from."""
from __future__ import annotations

import errno

import pytest
from click.testing import CliRunner

import evaluation.hear.embed as hear_embed
import evaluation.linear_command as linear_command
import pretrain.trainer as trainer
from evaluation.cli import main as eval_main
from m2d_hear.errors import InputError, user_message
from pretrain.cli import main as pretrain_main
from tests.fixtures import datasets as d


class ShapeBug(ValueError):
    """Stands for a bug of ours that happens to be a ValueError."""


def raise_(err):
    def f(*_args, **_kwargs):
        raise err
    return f


@pytest.fixture
def weights(tmp_path):
    from tests.fixtures.checkpoints import write_encoder_only

    from tests.fixtures.tiny_model import TINY_NAME

    return write_encoder_only(tmp_path / "w", TINY_NAME)


def assert_bug_kept(result, err_type):
    """The command did not turn the exception into a one-line message: click's runner holds the exception itself."""
    assert isinstance(result.exception, err_type), (result.exception, result.output)
    assert "Error:" not in result.output, result.output


def assert_one_line(result, text):
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and text in errors[0], result.output
    assert isinstance(result.exception, SystemExit)


def test_user_message_names_only_input_errors():
    assert user_message(InputError("x.csv: blank label; fill it")) == "x.csv: blank label; fill it"
    assert user_message(FileNotFoundError(errno.ENOENT, "No such file", "/d/x.wav")).startswith("/d/x.wav")
    assert "read-only" in user_message(OSError(errno.EROFS, "Read-only file system", "/out/s.csv"))
    for bug in (ValueError("shape"), RuntimeError("x"), KeyError("k"), TypeError("t"), OSError(errno.EIO, "io")):
        assert user_message(bug) is None


def test_a_value_error_inside_linear_keeps_its_traceback(tmp_path, monkeypatch, weights):
    task = d.make_csv_task(tmp_path / "task")
    monkeypatch.setattr(linear_command, "evaluate_linear", raise_(ShapeBug("mat1 and mat2 shapes cannot be multiplied")))
    result = CliRunner().invoke(eval_main, ["linear", "--task", f"csv:{task}", "--weights", str(weights),
                                            "--out", str(tmp_path / "out")])
    assert_bug_kept(result, ShapeBug)


def test_an_input_error_inside_linear_is_one_line(tmp_path, monkeypatch, weights):
    task = d.make_csv_task(tmp_path / "task")
    monkeypatch.setattr(linear_command, "evaluate_linear", raise_(InputError("clip.wav: stereo; mix it down")))
    result = CliRunner().invoke(eval_main, ["linear", "--task", f"csv:{task}", "--weights", str(weights),
                                            "--out", str(tmp_path / "out")])
    assert_one_line(result, "clip.wav: stereo; mix it down")


def test_a_value_error_inside_hear_embed_keeps_its_traceback(tmp_path, monkeypatch, weights):
    (tmp_path / "tasks").mkdir()
    monkeypatch.setattr(hear_embed, "embed_tasks", raise_(ShapeBug("bad reshape")))
    result = CliRunner().invoke(eval_main, ["hear-embed", "--tasks-dir", str(tmp_path / "tasks"), "--weights",
                                            str(weights), "--out", str(tmp_path / "emb")])
    assert_bug_kept(result, ShapeBug)


def test_a_value_error_inside_pretraining_keeps_its_class_and_traceback(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setattr(trainer.Trainer, "setup", raise_(ShapeBug("view size is not compatible")))
    result = CliRunner().invoke(pretrain_main, ["train", "--data", str(tmp_path / "data"), "--out",
                                                str(tmp_path / "runs"), "--device", "cpu"])
    assert_bug_kept(result, ShapeBug)


def test_a_training_error_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setattr(trainer.Trainer, "setup", raise_(trainer.TrainingError("runs/x already holds checkpoints")))
    result = CliRunner().invoke(pretrain_main, ["train", "--data", str(tmp_path / "data"), "--out",
                                                str(tmp_path / "runs"), "--device", "cpu"])
    assert_one_line(result, "runs/x already holds checkpoints")


def test_every_project_error_class_is_an_input_error():
    from evaluation.finetune.trainer import FinetuneError
    from evaluation.hear.errors import HearTaskError
    from evaluation.mini.build import MiniBuildError
    from evaluation.tasks.base import DatasetError
    from m2d_hear.audio import AudioError
    from m2d_hear.checkpoint import CheckpointError
    from m2d_hear.config import ConfigNameError
    from pretrain.checkpointing import ResumeError
    from pretrain.data import DataError

    for cls in (FinetuneError, HearTaskError, MiniBuildError, DatasetError, AudioError, CheckpointError,
                ConfigNameError, ResumeError, DataError, trainer.TrainingError):
        assert issubclass(cls, InputError), cls
