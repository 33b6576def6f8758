"""Optimisers and the per-iteration cosine schedule with linear warm-up of the fine-tuning recipes."""
import math

import pytest
import torch

from evaluation.finetune.optim import CosineSchedule, build_optimizer
from evaluation.finetune.recipes import RECIPES, Recipe, recipe_for


def test_schedule_has_the_published_shape():
    s = CosineSchedule(lr=0.5, epochs=200, warmup_epochs=5)
    iters = 10
    lrs = [s.for_step(k, iters) for k in range(200 * iters)]
    assert lrs[0] == lrs[1] == 0.0                         # warm-up starts at 0 (steps 0 and 1, as timm's)
    warm = lrs[1:5 * iters + 1]
    assert all(b > a for a, b in zip(warm, warm[1:]))      # linear rise ...
    assert lrs[26] == pytest.approx(0.5 * 25 / 50)         # ... step k uses the value at step k-1's epoch
    peak = max(lrs)
    assert 0.49 < peak <= 0.5
    after = lrs[5 * iters + 1:]
    assert all(b <= a for a, b in zip(after, after[1:]))   # then a monotone cosine decay
    assert s.at(100) == pytest.approx(1e-7 + 0.5 * (0.5 - 1e-7))  # half-way down at half the epochs (not shifted)
    assert lrs[-1] < 1e-4 and s.at(200) == 1e-7 and s.at(250) == 1e-7


def test_schedule_matches_timm_cosine_scheduler_stepped_per_iteration():
    from timm.scheduler import CosineLRScheduler

    epochs, warmup, iters = 6, 2, 7
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.3)
    sched = CosineLRScheduler(opt, t_initial=epochs, lr_min=1e-7, warmup_t=warmup, warmup_lr_init=0)
    ours = CosineSchedule(0.3, epochs, warmup)
    for epoch in range(epochs):
        for it in range(iters):
            used = opt.param_groups[0]["lr"]  # what the optimiser step of this iteration uses
            assert used == pytest.approx(ours.for_step(epoch * iters + it, iters), abs=1e-12)
            sched.step(epoch + it / iters)


def test_optimizers_follow_the_recipes():
    params = [torch.nn.Parameter(torch.randn(3, 3))]
    sgd = build_optimizer("sgd", params, 0.5)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["weight_decay"] == 0
    adamw = build_optimizer("adamw", params, 5e-4)
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.defaults["betas"] == (0.9, 0.95) and adamw.defaults["weight_decay"] == 1e-4
    assert adamw.defaults["amsgrad"] is True
    lars = build_optimizer("lars", params, 2.0)
    assert type(lars).__name__ == "Lars" and lars.defaults["momentum"] == 0.9
    with pytest.raises(ValueError):
        build_optimizer("rmsprop", params, 1.0)


def test_published_recipes_and_overrides():
    as20k, vc1, spc = RECIPES["as20k"], RECIPES["vc1"], RECIPES["spcv2"]
    assert (as20k.optimizer, as20k.lr, as20k.batch_size, as20k.mixup, as20k.freq_mask, as20k.time_mask,
            as20k.rrc, as20k.token_mask, as20k.dur_frames) == ("sgd", 0.5, 64, 0.3, 30, 192, True, 0.5, 1001)
    assert (vc1.optimizer, vc1.lr, vc1.epochs, vc1.mixup, vc1.rrc, vc1.token_mask, vc1.dur_frames) == \
        ("adamw", 5e-4, 50, 0.0, False, 0.0, 821)
    assert (spc.batch_size, spc.time_mask, spc.dur_frames) == (128, 48, None)
    assert RECIPES["esc50"].freeze_embed and RECIPES["as2m"].optimizer == "lars"
    assert all(RECIPES[t].source == "published" for t in ("as20k", "spcv2", "vc1", "esc50", "as2m"))
    assert RECIPES["us8k"].source == "ours" and RECIPES["gtzan"].source == "ours"
    assert recipe_for("csvtask").name == "default"
    quick = as20k.override(epochs=2, lr=None)
    assert quick.epochs == 2 and quick.lr == 0.5 and quick.source == "ours" and quick.key() != as20k.key()
    assert as20k.override() is as20k
    with pytest.raises(ValueError):
        as20k.override(nonsense=1)
    with pytest.raises(ValueError):
        Recipe("bad", optimizer="adam")
    assert math.isfinite(CosineSchedule(1.0, 1, 0).for_step(0, 1))
