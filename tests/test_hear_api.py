"""The HEAR 2021 API: shapes, timestamps, bad input, and the official validator run for real."""
import subprocess
import sys

import pytest
import torch

import m2d_hear
from tests.fixtures import checkpoints as ck

NAME = "m2d_vit_base-80x608p16x16-221006-mr7"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return str(ck.write_encoder_only(tmp_path_factory.mktemp("w"), NAME))


@pytest.fixture(scope="module")
def model(weights):
    return m2d_hear.load_model(weights)


def test_attributes_and_shapes(model):
    assert model.sample_rate == 16000 and isinstance(model, torch.nn.Module)
    assert model.scene_embedding_size == model.timestamp_embedding_size == 5 * 64
    audio = torch.rand(3, 16000 * 10) * 2 - 1
    scene = m2d_hear.get_scene_embeddings(audio, model)
    emb, ts = m2d_hear.get_timestamp_embeddings(audio, model)
    assert scene.dtype == emb.dtype == ts.dtype == torch.float32
    assert scene.shape == (3, 320) and emb.shape == (3, 63, 320) and ts.shape == (3, 63)
    assert torch.allclose(scene, emb.mean(1), atol=1e-5)  # scene = mean over frames


def test_timestamps_official_grid(model):
    emb, ts = m2d_hear.get_timestamp_embeddings(torch.zeros(2, 16000 * 10), model)
    step = 10000 / 63
    assert torch.allclose(ts[0], torch.arange(63) * step, atol=1e-3)
    assert ts.max() <= 10000


@pytest.mark.parametrize("hop_ms", [40.0, 50.0])
def test_fine_hop_is_regular_within_clip_and_real_outputs(weights, hop_ms):
    fine = m2d_hear.load_model(weights, timestamp_hop_ms=hop_ms)
    audio = torch.rand(2, int(16000 * 2.74)) * 2 - 1
    emb, ts = m2d_hear.get_timestamp_embeddings(audio, fine)
    diffs = ts[0, 1:] - ts[0, :-1]
    assert torch.allclose(diffs, torch.full_like(diffs, 40.0), atol=1e-3)  # 50 ms -> 4 shifts of 40 ms
    assert ts[0, 0] == pytest.approx(80.0) and ts.max() <= 2740
    base, _ = m2d_hear.get_timestamp_embeddings(audio, m2d_hear.load_model(weights))
    assert torch.allclose(emb[:, ::4][:, :base.shape[1]], base[:, :emb[:, ::4].shape[1]], atol=1e-5)


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(16000), r"\[n_sounds, n_samples\]"),
    (torch.zeros(1, 2, 16000), r"got shape \(1, 2, 16000\)"),
    (torch.zeros(1, 16000, dtype=torch.int16), "must be float"),
    (torch.zeros(2, 0), "empty"),
    (torch.tensor([[0.0, float("nan")] * 8000]), "NaN or inf"),
    (torch.tensor([[0.0, float("inf")] * 8000]), "NaN or inf"),
    ([[0.0] * 16000], "torch.Tensor"),
])
def test_bad_audio_is_a_clear_error(model, bad, match):
    for fn in (m2d_hear.get_scene_embeddings, m2d_hear.get_timestamp_embeddings):
        with pytest.raises(ValueError, match=match):
            fn(bad, model)


def test_very_short_audio_is_padded_to_one_window(model):
    emb, ts = m2d_hear.get_timestamp_embeddings(torch.rand(2, 100) - 0.5, model)
    assert emb.shape == (2, 1, 320) and ts.max() <= 100 / 16
    assert m2d_hear.get_scene_embeddings(torch.rand(1, 1) - 0.5, model).shape == (1, 320)


def test_default_model_without_path(monkeypatch, weights):
    monkeypatch.setenv("M2D_DEFAULT_WEIGHTS", weights)
    assert m2d_hear.load_model().encoder.embed_dim == 64


def _validator(args):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_official_hear_validator_16k(weights):
    out = _validator([sys.executable, "-m", "hearvalidator.validate", "m2d_hear", "-m", weights, "-d", "cpu"])
    assert "Looks good!" in out


@pytest.mark.slow
def test_hear_validator_32k_via_m2d_eval(tmp_path):
    weights = ck.write_encoder_only(tmp_path, "m2d_as_vit_base-80x608p16x16p32k-240413_enconly")
    out = _validator([sys.executable, "-m", "evaluation.cli", "validate", str(weights)])
    assert "admitting 32000" in out and "HEAR validator passed" in out
