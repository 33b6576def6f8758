"""The M2D pre-training objective, schedules and data order, checked on tiny models (no files except in the last
tests). End-to-end runs of the commands are in ``test_pretrain_cli.py``."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pretrain.data import BatchOrder, LogMelCrops, crop_into, inflate, log_mix, mask_noise, norm_stats
from pretrain.model import M2DPretrainModel, build_pretrain_model, m2d_loss, split_tokens
from pretrain.runs import ratio_token, run_name
from pretrain.schedules import ema_decay, learning_rate, param_groups


def tiny(**kw) -> M2DPretrainModel:
    torch.manual_seed(kw.pop("seed", 0))
    cfg = dict(input_size=(80, 64), patch_size=(16, 16), embed_dim=64, depth=2, num_heads=1, decoder_dim=32,
               decoder_depth=1, decoder_heads=2)
    cfg.update(kw)
    return M2DPretrainModel(**cfg)


# ----------------------------------------------------------------------------------------------------- model
def test_paper_model_has_the_official_keys_and_sizes():
    with torch.device("meta"):
        model = build_pretrain_model("m2d_vit_base", (80, 608), (16, 16))
    state = model.state_dict()
    groups = {}
    for key in state:
        top = key.split(".")[0]
        groups[top] = groups.get(top, 0) + 1
    assert groups == {"cls_token": 1, "pos_embed": 1, "norm_stats": 1, "patch_embed": 2, "blocks": 144, "norm": 2,
                      "mask_token": 1, "decoder_embed": 2, "decoder_pos_embed": 1, "decoder_blocks": 96,
                      "decoder_norm": 2, "decoder_pred": 2, "target_blocks": 144, "target_norm": 2}
    assert len(state) == 401  # the 400 tensors of a 2022 checkpoint + norm_stats
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["pos_embed"] == (1, 191, 768) and shapes["decoder_pos_embed"] == (1, 191, 512)
    assert shapes["mask_token"] == (1, 1, 512) and shapes["decoder_pred.weight"] == (768, 512)
    assert shapes["blocks.0.attn.qkv.weight"] == (2304, 768) and shapes["decoder_blocks.0.attn.qkv.weight"] == (1536, 512)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert abs(trainable / 1e6 - 111.26) < 0.01  # m2d_spec.md 11(g)
    assert {n.split(".")[0] for n in frozen} == {"target_blocks", "target_norm", "pos_embed", "decoder_pos_embed",
                                                 "norm_stats"}


def test_target_is_initialised_independently_not_copied():
    model = tiny()
    for online, target in zip(model.blocks.parameters(), model.target_blocks.parameters()):
        if online.ndim == 2:  # weights are random; biases/LN start at 0/1 in both
            assert not torch.equal(online, target)
    assert model.target_norm.weight.eq(1).all() and model.target_norm.bias.eq(0).all()
    # MAE init: xavier-uniform linear weights, zero biases
    w = model.decoder_pred.weight
    bound = math.sqrt(6 / (w.shape[0] + w.shape[1]))
    assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound and model.decoder_pred.bias.eq(0).all()


def test_split_tokens_counts_and_order():
    noise = torch.rand(3, 190)
    visible, masked = split_tokens(noise, 0.7)
    assert visible.shape == (3, 57) and masked.shape == (3, 133)
    visible6, _ = split_tokens(noise, 0.6)
    assert visible6.shape == (3, 76)
    for b in range(3):
        assert set(visible[b].tolist()) == set(torch.topk(noise[b], 57, largest=False).indices.tolist())
        assert sorted(visible[b].tolist() + masked[b].tolist()) == list(range(190))
    with pytest.raises(ValueError, match="visible"):
        split_tokens(noise, 0.999)


def test_online_sees_only_visible_and_target_only_masked_patches():
    model = tiny()
    lms = torch.randn(2, 1, 80, 64)
    noise = torch.rand(2, model.num_patches)
    seen = {}

    def grab(name):
        def hook(module, inputs):
            seen[name] = inputs[0].detach().clone()
        return hook

    handles = [model.blocks[0].register_forward_pre_hook(grab("online")),
               model.target_blocks[0].register_forward_pre_hook(grab("target")),
               model.decoder_blocks[0].register_forward_pre_hook(grab("predictor"))]
    out = model.masked_prediction(lms, noise)
    for h in handles:
        h.remove()
    tokens = model.embed(lms).detach()  # all patch tokens with positions, frequency-major
    n, n_keep = model.num_patches, int(model.num_patches * 0.3)
    cls = (model.cls_token + model.pos_embed[:, :1]).detach()
    assert seen["online"].shape == (2, 1 + n_keep, 64) and seen["target"].shape == (2, 1 + n - n_keep, 64)
    assert seen["predictor"].shape == (2, 1 + n, 32)
    for b in range(2):
        visible = torch.argsort(noise[b])[:n_keep]
        masked = torch.argsort(noise[b])[n_keep:]
        assert torch.equal(out.visible_ids[b], visible) and torch.equal(out.masked_ids[b], masked)
        torch.testing.assert_close(seen["online"][b, 1:], tokens[b, visible])
        torch.testing.assert_close(seen["target"][b, 1:], tokens[b, masked])
        torch.testing.assert_close(seen["online"][b, 0], cls[0, 0])
        torch.testing.assert_close(seen["target"][b, 0], cls[0, 0])
    assert not set(out.visible_ids[0].tolist()) & set(out.masked_ids[0].tolist())
    assert not torch.equal(out.visible_ids[0].sort().values, out.visible_ids[1].sort().values)  # per-sample masks
    assert out.prediction.shape == out.target.shape == (2, n - n_keep, 64)


def test_predictor_puts_tokens_back_in_place():
    """With no predictor blocks, slot n of the predictor holds (encoded token or mask token) + position n."""
    model = tiny(decoder_depth=0)
    lms = torch.randn(2, 1, 80, 64)
    noise = torch.rand(2, model.num_patches)
    seen = {}
    hooks = [model.norm.register_forward_hook(lambda m, i, o: seen.__setitem__("latent", o.detach())),
             model.decoder_norm.register_forward_pre_hook(lambda m, i: seen.__setitem__("slots", i[0].detach()))]
    out = model.masked_prediction(lms, noise)
    for h in hooks:
        h.remove()
    pos = model.decoder_pos_embed[0].detach()
    embedded = model.decoder_embed(seen["latent"]).detach()
    for b in range(2):
        slots = seen["slots"][b]
        torch.testing.assert_close(slots[0], embedded[b, 0] + pos[0])  # CLS first
        for j, n in enumerate(out.visible_ids[b].tolist()):
            torch.testing.assert_close(slots[1 + n], embedded[b, 1 + j] + pos[1 + n])
        for n in out.masked_ids[b].tolist():
            torch.testing.assert_close(slots[1 + n], model.mask_token[0, 0].detach() + pos[1 + n])
        expected = model.decoder_pred(model.decoder_norm(slots[1 + out.masked_ids[b]]))
        torch.testing.assert_close(out.prediction[b], expected)


def test_loss_formula_and_gradients():
    model = tiny()
    pred, target = torch.randn(2, 5, 64), torch.randn(2, 5, 64)
    standard = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True, unbiased=True) + 1e-6).sqrt()
    expected = (pred / pred.norm(dim=-1, keepdim=True) - standard / standard.norm(dim=-1, keepdim=True)).pow(2).sum(-1)
    torch.testing.assert_close(m2d_loss(pred, target), expected.mean())
    assert m2d_loss(3 * standard + 0.0, target).item() == pytest.approx(0.0, abs=1e-5)
    assert m2d_loss(target.mean(-1, keepdim=True) + standard, target).item() > 0.01  # prediction is not centred
    loss = model(torch.randn(4, 1, 80, 64))
    assert 1.5 < loss.item() < 2.5  # about 2 for random networks
    loss.backward()
    assert all(p.grad is None for p in model.target_parameters())
    assert model.pos_embed.grad is None and model.norm_stats.grad is None
    assert model.mask_token.grad is not None and model.patch_embed.proj.weight.grad is not None


def test_ema_update_matches_formula_and_touches_only_target():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.update_target(0.9)
    after = model.state_dict()
    for key, value in after.items():
        if key.startswith("target_"):
            online = before[key.replace("target_blocks", "blocks").replace("target_norm", "norm")]
            torch.testing.assert_close(value, 0.9 * before[key] + 0.1 * online, rtol=0, atol=1e-6)
        else:
            assert torch.equal(value, before[key]), key


def test_encode_is_the_online_encoder():
    model = tiny()
    lms = torch.randn(2, 1, 80, 64)
    from m2d_hear.vit import ViTEncoder

    plain = ViTEncoder((80, 64), (16, 16), 64, 2, 1)
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if k.split(".")[0] in ("cls_token", "pos_embed", "patch_embed", "blocks", "norm",
                                                  "norm_stats")})
    torch.testing.assert_close(model.encode(lms), plain(lms))


# ------------------------------------------------------------------------------------------------ schedules
def test_learning_rate_warmup_then_half_cosine():
    assert learning_rate(0, 1.0, 20, 300) == 0
    assert learning_rate(10, 1.0, 20, 300) == pytest.approx(0.5)
    assert learning_rate(20, 1.0, 20, 300) == pytest.approx(1.0)
    assert learning_rate(160, 1.0, 20, 300) == pytest.approx(0.5)
    assert learning_rate(300, 1.0, 20, 300, min_lr=0.1) == pytest.approx(0.1)


def test_ema_schedule_is_linear_over_all_iterations():
    assert ema_decay(0, 1000, 0.99995, 0.99999) == 0.99995
    assert ema_decay(999, 1000, 0.99995, 0.99999) == pytest.approx(0.99999)
    assert ema_decay(500, 1001, 0.99995, 0.99999) == pytest.approx(0.99997)


def test_weight_decay_groups():
    model = tiny()
    no_decay, decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    plain = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0
    assert {"cls_token", "mask_token", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight"} <= decayed
    assert {"patch_embed.proj.bias", "blocks.0.norm1.weight", "decoder_pred.bias", "norm.bias"} <= plain
    assert not any(n.startswith(("target_", "pos_embed", "decoder_pos_embed", "norm_stats")) for n in decayed | plain)


def test_run_name_follows_official_pattern():
    from datetime import date

    assert run_name("m2d_vit_base", (80, 608), (16, 16), 0.7, day=date(2022, 10, 6)) == \
        "m2d_vit_base-80x608p16x16-221006-mr7"
    assert run_name("m2d_vit_small", (80, 608), (16, 16), 0.75, sr="32k", day=date(2024, 4, 13)) == \
        "m2d_vit_small-80x608p16x16p32k-240413-mr75"
    assert ratio_token(0.6) == "6"


# ----------------------------------------------------------------------------------------------------- data
def test_crop_and_pad():
    lms = np.arange(1 * 2 * 10, dtype=np.float32).reshape(1, 2, 10)
    out = np.empty((1, 2, 4), np.float32)
    starts = set()
    for u in np.linspace(0, 0.9999, 50):
        crop_into(out, lms, u)
        start = int(out[0, 0, 0])
        starts.add(start)
        assert np.array_equal(out, lms[..., start:start + 4])
    assert starts == set(range(0, 6))  # uniform over [0, T - W - 1] as torch.randint(T - W)
    wide = np.empty((1, 2, 13), np.float32)
    crop_into(wide, lms, 0.5)
    assert np.array_equal(wide[..., :10], lms) and not wide[..., 10:].any()


def test_target_encodes_the_clean_crop_under_background_noise():
    """M2D-X's denoising: the online encoder sees the mixture, the target the clean crop, with one shared mask."""
    model = tiny()
    clean, mixed = torch.randn(2, 1, 80, 64), torch.randn(2, 1, 80, 64)
    noise = torch.rand(2, model.num_patches)
    seen = {}
    hooks = [model.blocks[0].register_forward_pre_hook(lambda m, i: seen.__setitem__("online", i[0].detach())),
             model.target_blocks[0].register_forward_pre_hook(lambda m, i: seen.__setitem__("target", i[0].detach()))]
    out = model.masked_prediction(mixed, noise, target_lms=clean)
    for h in hooks:
        h.remove()
    for b in range(2):
        torch.testing.assert_close(seen["online"][b, 1:], model.embed(mixed).detach()[b, out.visible_ids[b]])
        torch.testing.assert_close(seen["target"][b, 1:], model.embed(clean).detach()[b, out.masked_ids[b]])
    # the target of the pair is the plain run's target on the clean crops; the prediction is that of the mixture
    plain_clean, plain_mixed = model.masked_prediction(clean, noise), model.masked_prediction(mixed, noise)
    torch.testing.assert_close(out.target, plain_clean.target)
    torch.testing.assert_close(out.prediction, plain_mixed.prediction)
    torch.testing.assert_close(model(mixed, noise, target_lms=clean), m2d_loss(out.prediction, out.target))


def test_log_mix_weights_the_two_crops_in_the_power_domain():
    clean = torch.tensor([[0.0, -12.0, 3.0]])  # raw log-mels: log(mel + eps) >= log(float32 eps) = -15.9
    background = torch.tensor([[0.0, 2.0, -15.0]])
    torch.testing.assert_close(log_mix(clean, background, 0.0), clean)
    expected = torch.log(0.8 * clean.exp() + 0.2 * background.exp())
    torch.testing.assert_close(log_mix(clean, background, 0.2), expected)
    assert log_mix(clean, background, 0.2)[0, 0] == 0.0  # equal levels stay where they are
    assert math.isclose(log_mix(clean, background, 0.2)[0, 1].item(), math.log(0.2) + 2.0, rel_tol=1e-5)
    floor = log_mix(torch.full((3,), -200.0), torch.full((3,), -200.0), 0.5)  # below the front end's floor: floored
    assert torch.isfinite(floor).all() and torch.equal(floor, torch.full((3,), math.log(torch.finfo(torch.float32).eps)))


def test_background_crops_leave_the_clean_order_unchanged():
    plain = list(BatchOrder(50, 8, seed=3))
    with_bg = list(BatchOrder(50, 8, seed=3, background=True))
    assert [[item[:2] for item in batch] for batch in with_bg] == plain
    bg = [item[2:] for batch in with_bg for item in batch]
    assert bg != [item for batch in plain for item in batch]  # a stream of its own
    assert bg == [item[2:] for batch in BatchOrder(50, 8, seed=3, background=True) for item in batch]  # reproducible
    ranks = [list(BatchOrder(50, 4, seed=3, rank=r, world=2, background=True)) for r in range(2)]
    assert all(batch == ranks[0][i] + ranks[1][i] for i, batch in enumerate(with_bg))


def test_dataset_returns_background_crops_when_asked(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(tmp_path / f"{i}.npy", rng.standard_normal((1, 80, 100)).astype(np.float32))
    ds = LogMelCrops(tmp_path, [f"{i}.npy" for i in range(3)], (80, 64))
    clean = ds[[(0, 0.1), (2, 0.9)]]
    pair = ds[[(0, 0.1, 1, 0.5), (2, 0.9, 0, 0.0)]]
    assert isinstance(clean, torch.Tensor) and isinstance(pair, tuple)
    assert torch.equal(pair[0], clean)
    expected = np.empty((1, 80, 64), np.float32)
    crop_into(expected, np.load(tmp_path / "1.npy"), 0.5)
    assert torch.equal(pair[1][0], torch.from_numpy(expected))


def test_inflate_repeats_the_list():
    assert inflate(["a", "b", "c"], 7) == ["a", "b", "c", "a", "b", "c", "a"]
    assert inflate(["a", "b"], 0) == ["a", "b"]


def test_processes_share_one_global_batch_order():
    """Two processes with batch b read, together, exactly the batches of one process with batch 2b."""
    single = list(BatchOrder(50, 8, seed=3))
    ranks = [list(BatchOrder(50, 4, seed=3, rank=r, world=2)) for r in range(2)]
    assert len(single) == len(ranks[0]) == 6
    for i, batch in enumerate(single):
        assert batch == ranks[0][i] + ranks[1][i]
    order = BatchOrder(50, 8, seed=3)
    order.set_epoch(0, start=2)
    assert list(order) == single[2:]
    order.set_epoch(1)
    assert list(order) != single
    noise = mask_noise(3, 17, 8, 20, 0, 8)
    assert torch.equal(torch.cat([mask_noise(3, 17, 8, 20, r, 4) for r in range(2)]), noise)
    assert not torch.equal(mask_noise(3, 18, 8, 20, 0, 8), noise)


def test_norm_stats_equal_stacked_computation(tmp_path):
    rng = np.random.default_rng(0)
    files = []
    for i, frames in enumerate((30, 64, 100)):
        np.save(tmp_path / f"{i}.npy", (rng.standard_normal((1, 80, frames)) * 3 - 7).astype(np.float32))
        files.append(f"{i}.npy")
    ds = LogMelCrops(tmp_path, files, (80, 64))
    mean, std = norm_stats(ds, 20, seed=1)
    # the same draws, stacked as the official loader does
    draw = np.random.default_rng([1, 0x6E6F726D])
    idx = draw.integers(0, 3, size=20)
    crops = []
    for i, u in zip(idx, draw.random(20)):
        out = np.empty((1, 80, 64), np.float32)
        crop_into(out, np.load(tmp_path / files[i]), u)
        crops.append(out)
    stacked = torch.from_numpy(np.stack(crops))
    assert mean == pytest.approx(stacked.mean().item(), abs=1e-5)
    assert std == pytest.approx(stacked.std().item() + np.finfo(np.float32).eps, rel=1e-5)
