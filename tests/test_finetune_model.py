"""The fine-tuning network: head, pooling, flat features, one-sequence input, frozen patch embedding, export."""
import pytest
import torch

import m2d_hear
from m2d_hear.config import parse_config_name
from m2d_hear.export import random_encoder, save_encoder_only
from m2d_hear.vit import ViTSize

from evaluation.finetune.augment import StepRandom
from evaluation.finetune.model import FineTuneModel, build_model

NAME = "m2d_vit_test-80x64p16x16-x"
SIZE = ViTSize(64, 2, 1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    enc = random_encoder(parse_config_name(NAME), SIZE, seed=0)
    return save_encoder_only(enc, tmp_path_factory.mktemp("w") / NAME / "weights.pth")


def test_head_and_feature_dimensions(weights):
    torch.manual_seed(0)
    stacked = build_model(weights, 7)
    assert stacked.feature_dim == 5 * 64 and not stacked.flat_features
    norm, linear = stacked.head.norm, stacked.head.linear
    assert not norm.affine and norm.weight is None
    assert abs(linear.weight.std().item() - 0.01) < 0.002 and linear.bias.abs().max() == 0
    flat = build_model(weights, 7, token_mask=0.5)
    assert flat.feature_dim == 64 and flat.flat_features
    lms = torch.randn(3, 1, 80, 51)
    assert stacked(lms).shape == (3, 7) and flat(lms).shape == (3, 7)


def test_pooling_is_the_time_mean_of_frames_or_the_token_mean(weights):
    model = build_model(weights, 2).eval()
    lms = torch.randn(2, 1, 80, 150)  # 3 chunks of the 64-frame trained width (the last one short)
    ref = m2d_hear.load_m2d(weights)
    torch.testing.assert_close(model.features(lms), ref.encode_lms(lms).mean(1), atol=1e-5, rtol=1e-5)
    flat = build_model(weights, 2, flat_features=True).eval()
    ref_flat = m2d_hear.load_m2d(weights, flat_features=True)
    torch.testing.assert_close(flat.features(lms), ref_flat.encode_lms(lms).mean(1), atol=1e-5, rtol=1e-5)


def test_token_masking_only_in_training(weights):
    model = build_model(weights, 2, token_mask=0.5)
    lms = torch.randn(4, 1, 80, 64)
    model.eval()
    a, b = model.features(lms, StepRandom.for_step(0, 0, 0, 4)), model.features(lms)
    torch.testing.assert_close(a, b)
    model.train()
    masked = [model.features(lms, StepRandom.for_step(0, 0, s, 4)) for s in range(3)]
    assert not torch.allclose(masked[0], b) and not torch.allclose(masked[0], masked[1])


def test_dur_frames_resamples_or_trims_positions_and_encodes_one_sequence(weights):
    longer = build_model(weights, 2, dur_frames=161)   # 10 time patches > 4 trained
    assert longer.encoder.pos_embed.shape == (1, 1 + 5 * 10, 64) and longer.encoder.input_size == (80, 161)
    feats = longer.eval().features(torch.randn(2, 1, 80, 161))
    assert feats.shape == (2, 320)
    shorter = build_model(weights, 2, dur_frames=33)   # 2 time patches < 4: trimmed, not interpolated
    original = random_encoder(parse_config_name(NAME), SIZE, seed=0).pos_embed
    kept = original[:, 1:].reshape(1, 5, 4, 64)[:, :, :2].reshape(1, 10, 64)
    torch.testing.assert_close(shorter.encoder.pos_embed[:, 1:], kept)
    assert longer.export_config().input_size == (80, 161)


def test_freeze_embed_keeps_the_patch_embedding(weights):
    model = build_model(weights, 2, freeze_embed=True)
    frozen = {id(p) for p in model.encoder.patch_embed.parameters()}
    trainable = model.trainable_parameters()
    assert frozen.isdisjoint({id(p) for p in trainable})
    assert any(p is model.encoder.cls_token for p in trainable)
    assert all(not p.requires_grad for p in (model.encoder.pos_embed, model.encoder.norm_stats))


def test_evar_layout_export_round_trips_and_loads_with_m2d_hear(weights, tmp_path):
    model = build_model(weights, 3, token_mask=0.5, dur_frames=161)
    with torch.no_grad():
        model.head.norm.running_mean.add_(0.5)
    state = model.evar_state()
    assert "module.head.mlp.mlp.0.weight" in state and "module.ar.runtime.backbone.pos_embed" in state
    path = tmp_path / model.export_config().folder_name("ft") / "best.pth"
    path.parent.mkdir()
    torch.save(state, path)
    again = build_model(weights, 3, token_mask=0.5, dur_frames=161)
    again.load_evar_state(torch.load(path, weights_only=True))
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    loaded = m2d_hear.load_m2d(path)  # the official-style reader sees a fine-tuned, flat-feature model
    assert loaded.flat_features and loaded.config.input_size == (80, 161)
    assert isinstance(again, FineTuneModel)
