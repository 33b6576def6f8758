"""Hostile model inputs: weight files whose unpickling would run code, non-finite weights, audio at the wrong scale
or of the wrong kind, a planted fine-tuning ``last.pth`` and a planted HEAR label pickle.

Each "would run code" file plants an object whose ``__reduce__`` creates a marker file; the tests check that the
marker never appears unless the caller opted in (``trust_checkpoint=True`` / ``--trust-checkpoint``).
"""
from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import m2d_hear
from m2d_hear import audio as audio_mod
from m2d_hear.audio import AudioError, AudioScaleWarning
from m2d_hear.checkpoint import CheckpointError, UnsafeCheckpointError, UnsafeLoadWarning
from tests.fixtures import checkpoints as ck

NAME = "m2d_vit_base-80x608p16x16-221006-mr7"


def _touch(path: str) -> str:
    Path(path).touch()
    return "ran"


class Planted:
    """Unpickling this object calls ``_touch(marker)``: stands for any code a hostile file could run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "code-ran"


@pytest.fixture
def planted_zip(tmp_path, marker):
    """A torch.save (zip) checkpoint holding a good encoder and a planted object."""
    state = ck.tiny_encoder_state(NAME)
    path = tmp_path / "zip" / NAME / "weights.pth"
    path.parent.mkdir(parents=True)
    torch.save({"model": state, "extra": Planted(marker)}, path)
    return path


@pytest.fixture
def planted_pickle(tmp_path, marker):
    """A plain (non-zip) pickle holding a good encoder and a planted object."""
    path = tmp_path / "plain" / NAME / "weights.pth"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:
        pickle.dump({"model": ck.tiny_encoder_state(NAME), "extra": Planted(marker)}, f)
    return path


# ------------------------------------------------------------------------------ 10. loading never runs code
def test_zip_checkpoint_needing_full_unpickling_is_refused_without_running_it(planted_zip, marker):
    for load in (m2d_hear.load_model, m2d_hear.load_m2d, m2d_hear.read_checkpoint):
        with pytest.raises(CheckpointError) as err:
            load(str(planted_zip))
        assert not marker.exists(), "loading ran the file's code"
        message = str(err.value)
        assert isinstance(err.value, UnsafeCheckpointError) and one_line(message) and str(planted_zip) in message
        assert "_touch" in message and "trust_checkpoint=True" in message and "--trust-checkpoint" in message
    with pytest.warns(UnsafeLoadWarning):   # the opt-in loads it (and, being full unpickling, runs its code)
        model = m2d_hear.load_model(str(planted_zip), trust_checkpoint=True)
    assert marker.exists() and model.encoder.embed_dim == ck.TINY.embed_dim


def test_trusted_block_for_runners_that_pass_no_options(planted_zip, marker):
    from m2d_hear.checkpoint import trusted_checkpoints

    with trusted_checkpoints(), pytest.warns(UnsafeLoadWarning):
        m2d_hear.load_model(str(planted_zip))   # what `m2d-eval validate --trust-checkpoint` does for the validator
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafeCheckpointError):   # the block ends the trust
        m2d_hear.load_model(str(planted_zip))
    assert not marker.exists()


def test_plain_pickle_is_never_unpickled(planted_pickle, marker):
    for trust in (False, True):
        with pytest.raises(CheckpointError) as err:
            m2d_hear.load_model(str(planted_pickle), trust_checkpoint=trust)
        assert not marker.exists(), "loading ran the file's code"
        assert "not a PyTorch checkpoint" in str(err.value)
        assert one_line(str(err.value)) and str(planted_pickle) in str(err.value)


def test_legacy_torch_format_still_loads_safely(tmp_path):
    path = tmp_path / NAME / "legacy.pth"
    path.parent.mkdir()
    torch.save(ck.tiny_encoder_state(NAME), path, _use_new_zipfile_serialization=False)
    assert m2d_hear.load_model(str(path)).encoder.embed_dim == ck.TINY.embed_dim


def test_default_weights_variable_is_read_safely(planted_zip, marker, monkeypatch):
    monkeypatch.setenv("M2D_DEFAULT_WEIGHTS", str(planted_zip))
    with pytest.raises(CheckpointError):
        m2d_hear.load_model()
    assert not marker.exists(), "loading ran the file's code"


def test_two_shipped_default_files_are_an_error_not_a_silent_pick(tmp_path, monkeypatch):
    """A stale export left beside the shipped default (another epoch, another run name) must not be chosen
    silently by file-name order: the default is one file, or a one-line error naming them all."""
    from m2d_hear import default
    from m2d_hear.errors import InputError

    monkeypatch.delenv("M2D_DEFAULT_WEIGHTS", raising=False)
    monkeypatch.setattr(default, "WEIGHTS_DIR", tmp_path)
    first = tmp_path / NAME / "weights_ep20.pth"
    first.parent.mkdir()
    torch.save(ck.tiny_encoder_state(NAME), first)
    assert default.default_weight_file() == first
    assert m2d_hear.load_model().encoder.embed_dim == ck.TINY.embed_dim
    stale = tmp_path / NAME / "weights_ep40.pth"
    torch.save(ck.tiny_encoder_state(NAME), stale)
    for load in (default.default_weight_file, m2d_hear.load_model):
        with pytest.raises(InputError) as err:
            load()
        msg = str(err.value)
        assert one_line(msg) and "weights_ep20.pth" in msg and "weights_ep40.pth" in msg
        assert "M2D_DEFAULT_WEIGHTS" in msg


def test_finetune_weights_are_read_safely(planted_zip, marker):
    from evaluation.finetune.model import build_model

    with pytest.raises(CheckpointError):
        build_model(str(planted_zip), 2)
    assert not marker.exists(), "loading ran the file's code"


def test_every_command_taking_weights_offers_the_opt_in():
    from evaluation.all_command import all_
    from evaluation.finetune_command import finetune
    from evaluation.hear.embed import hear_embed
    from evaluation.hear_validate import validate
    from evaluation.linear_command import linear
    from pretrain.export import export

    for command in (linear, finetune, all_, hear_embed, validate, export):
        assert "trust_checkpoint" in [p.name for p in command.params], command.name


def test_export_refuses_then_opts_in_and_writes_a_safe_file(planted_zip, marker, tmp_path):
    from pretrain.cli import main

    out = tmp_path / "out" / f"{NAME}_enconly" / "weights.pth"
    result = CliRunner().invoke(main, ["export", str(planted_zip), "--out", str(out)])
    assert result.exit_code == 1 and "--trust-checkpoint" in result.output and one_line(result.output)
    assert not marker.exists() and not out.exists()
    with pytest.warns(UnsafeLoadWarning):
        result = CliRunner().invoke(main, ["export", str(planted_zip), "--out", str(out), "--trust-checkpoint"])
    assert result.exit_code == 0, result.output
    marker.unlink()
    assert m2d_hear.load_model(str(out)).encoder.embed_dim == ck.TINY.embed_dim   # no trust needed any more
    assert not marker.exists()


def test_hear_embed_refuses_in_one_line(planted_zip, marker, tmp_path):
    from evaluation.cli import main

    task = tmp_path / "tasks" / "some_task"
    task.mkdir(parents=True)
    (task / "task_metadata.json").write_text("{}")
    result = CliRunner().invoke(main, ["hear-embed", "--tasks-dir", str(tmp_path / "tasks"), "--weights",
                                       str(planted_zip), "--out", str(tmp_path / "emb"), "--device", "cpu"])
    assert result.exit_code == 1 and "--trust-checkpoint" in result.output
    assert one_line(result.output) and "Traceback" not in result.output
    assert not marker.exists()


# ------------------------------------------------------------------------------------ 4. non-finite weights
@pytest.mark.parametrize("key,value", [
    ("blocks.1.attn.qkv.weight", float("nan")),
    ("pos_embed", float("inf")),
    ("norm_stats", float("nan")),
])
def test_non_finite_tensors_are_refused_naming_file_and_tensor(tmp_path, key, value):
    state = ck.tiny_encoder_state(NAME)
    state[key].view(-1)[1] = value
    state["norm.weight"][0] = float("nan")   # a later bad tensor: the first one in file order is named
    path = tmp_path / NAME / "weights.pth"
    path.parent.mkdir()
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        m2d_hear.load_model(str(path))
    message = str(err.value)
    assert one_line(message) and message.startswith(f"{path}: tensor {key} ") and "NaN/inf" in message


def test_non_finite_safetensors_and_zero_std_are_refused(tmp_path):
    from safetensors.torch import save_file

    state = ck.tiny_encoder_state(NAME)
    state["blocks.0.mlp.fc2.weight"][3, 3] = float("nan")
    path = tmp_path / NAME / "w.safetensors"
    path.parent.mkdir()
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"tensor blocks\.0\.mlp\.fc2\.weight holds 1 NaN/inf"):
        m2d_hear.load_m2d(path)
    state = ck.tiny_encoder_state(NAME, norm_stats=(-6.0, 0.0))
    path = tmp_path / NAME / "zero_std.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="norm_stats has standard deviation 0"):
        m2d_hear.load_m2d(path)


# ------------------------------------------------------------------------------- 3. audio at the wrong scale
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return m2d_hear.load_model(str(ck.write_encoder_only(tmp_path_factory.mktemp("w"), NAME)))


@pytest.fixture
def fresh_scale_warning(monkeypatch):
    monkeypatch.setattr(audio_mod, "_scale_warned", False)


ENTRY_POINTS = {
    "encode": lambda audio, model: model.encode(audio),
    "get_scene_embeddings": m2d_hear.get_scene_embeddings,
    "get_timestamp_embeddings": m2d_hear.get_timestamp_embeddings,
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_int16_scale_float_audio_warns_once_with_its_peak(model, entry, fresh_scale_warning):
    fn = ENTRY_POINTS[entry]
    audio = torch.zeros(2, 16000)
    audio[1, 100] = -32767.0
    with torch.no_grad():
        with pytest.warns(AudioScaleWarning, match=r"peak 32767 .*divide int16 values by 32768"):
            fn(audio, model)
        with warnings.catch_warnings():
            warnings.simplefilter("error", AudioScaleWarning)   # once per process
            fn(audio, model)
            fn(torch.rand(1, 16000) * 2 - 1, model)   # in-scale audio never warns


def test_audio_in_scale_does_not_warn(model, fresh_scale_warning):
    with warnings.catch_warnings():
        warnings.simplefilter("error", AudioScaleWarning)
        with torch.no_grad():
            model.encode(torch.rand(1, 16000) * 2 - 1)


@pytest.mark.parametrize("bad,match", [
    (torch.tensor([[0.0, float("nan")] * 8000]), "NaN or inf"),
    (torch.tensor([[0.0, float("inf")] * 8000]), "NaN or inf"),
    (torch.zeros(1, 16000, dtype=torch.int16), "must be float .*32768"),
    (torch.zeros(1, 1, 16000), r"got shape \(1, 1, 16000\)"),
    (torch.zeros(16000), r"\[n_sounds, n_samples\]"),
    (torch.zeros(2, 0), "empty"),
])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_bad_audio_is_rejected_by_encode_and_the_hear_functions(model, entry, bad, match):
    with torch.no_grad(), pytest.raises(AudioError, match=match):
        ENTRY_POINTS[entry](bad, model)


def test_fine_hop_timestamps_check_audio_too(model):
    fine = m2d_hear.load_model(model.checkpoint_path, timestamp_hop_ms=40)
    with torch.no_grad(), pytest.raises(AudioError, match="NaN or inf"):
        fine.timestamp_embeddings(torch.full((1, 16000), float("nan")))


# --------------------------------------------------------------------- 11. fine-tuning resume reads safely
def test_finetune_resume_refuses_a_planted_last_pth(tmp_path, marker):
    import soundfile as sf

    from evaluation.finetune import Recipe, TrainOptions, train_round
    from evaluation.finetune.trainer import FinetuneError
    from evaluation.tasks.base import Clip, TaskData
    from m2d_hear.config import parse_config_name
    from m2d_hear.export import random_encoder, save_encoder_only
    from m2d_hear.vit import ViTSize

    name = "m2d_vit_test-80x64p16x16-x"
    weights = save_encoder_only(random_encoder(parse_config_name(name), ViTSize(64, 1, 1), seed=0),
                                tmp_path / name / "weights.pth")
    clips = []
    for i, split in enumerate(["train", "train", "valid", "valid", "test", "test"]):
        path = tmp_path / "audio" / f"{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, (0.1 * np.sin(np.arange(4000) * (0.05 + 0.2 * (i % 2)))).astype(np.float32), 16000)
        clips.append(Clip(path, (("a", "b")[i % 2],), split))
    task = TaskData("tiny", clips, ["a", "b"], False, "accuracy", 0.25)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"recipe_key": "x", "seed": 43, "payload": Planted(marker)}, run_dir / "last.pth")
    recipe = Recipe("tiny", "sgd", 0.05, 1, 0, 2, 0.0, 0, 0, False, 0.0, None, source="ours")
    opts = TrainOptions(seed=43, num_workers=0, progress=False, device="cpu")
    with pytest.raises(FinetuneError) as err:
        train_round(task, task.rounds()[0], weights, recipe, run_dir, opts, resume=True)
    assert not marker.exists(), "resuming ran the file's code"
    assert one_line(str(err.value)) and "last.pth" in str(err.value) and "_touch" in str(err.value)


# ------------------------------------------------------------------ 12. HEAR label pickles read restrictedly
def _embedding_task(folder: Path, labels_pickle: bytes, rows: int = 2) -> Path:
    folder.mkdir(parents=True)
    meta = {"task_name": "t", "embedding_type": "scene", "prediction_type": "multilabel", "split_mode": "trainvaltest",
            "splits": ["train"], "evaluation": ["mAP"]}
    (folder / "task_metadata.json").write_text(json.dumps(meta))
    (folder / "labelvocabulary.csv").write_text("idx,label\n0,dog\n1,7\n")
    (folder / "train.embedding-dimensions.json").write_text(json.dumps([rows, 3]))
    (folder / "train.embeddings.npy").write_bytes(np.zeros((rows, 3), np.float32).tobytes())
    (folder / "train.target-labels.pkl").write_bytes(labels_pickle)
    return folder


def test_planted_label_pickle_is_refused(tmp_path, marker):
    from evaluation.hear.data import load_splits, read_task
    from evaluation.hear.errors import HearTaskError

    task = read_task(_embedding_task(tmp_path / "t", pickle.dumps([["dog"], [Planted(marker)]])))
    with pytest.raises(HearTaskError) as err:
        load_splits(task, ["train"])
    assert not marker.exists(), "reading the labels ran the file's code"
    assert one_line(str(err.value)) and "train.target-labels.pkl" in str(err.value) and "_touch" in str(err.value)


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_normal_label_pickles_load(tmp_path, protocol):
    from evaluation.hear.data import load_splits, read_label_pickle, read_task

    task = read_task(_embedding_task(tmp_path / "t", pickle.dumps([["dog", 7], [7]], protocol=protocol)))
    assert load_splits(task, ["train"]).y.tolist() == [[1.0, 1.0], [0.0, 1.0]]
    plain = {"a": ["x", 1, 2.5], "b": ({"y"}, frozenset({3}), None, True)}
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(plain, protocol=protocol))
    assert read_label_pickle(path) == plain
