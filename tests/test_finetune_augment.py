"""Fine-tuning augmentations do what they claim (shapes, label sums, mask structure and ratio, slicing)."""
import numpy as np
import pytest
import torch

from evaluation.finetune.augment import (CropParams, StepRandom, crop_params, mixup, random_resized_crop,
                                         resized_crop_one, spec_augment, structured_mask_counts,
                                         structured_token_mask)


def rand(step=0, batch=8, offset=0, local=None, seed=1):
    return StepRandom.for_step(seed, 0, step, batch, offset, local)


def test_mixup_mixes_each_sample_with_a_partner_and_labels_still_sum_to_one():
    x = torch.randn(8, 100)
    y = torch.eye(4)[torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])]
    xm, ym = mixup(x, y, 0.3, rand())
    assert xm.shape == x.shape and ym.shape == y.shape
    torch.testing.assert_close(ym.sum(1), torch.ones(8))
    # each row is lam * own + (1 - lam) * partner with the same lam for waveform and label
    r = rand()
    lam = r.rng.beta(0.3, 0.3, size=8).astype(np.float32)
    partner = r.rng.permutation(8)
    expect = x * torch.from_numpy(lam)[:, None] + x[partner] * (1 - torch.from_numpy(lam))[:, None]
    torch.testing.assert_close(xm, expect)
    lam_t = torch.from_numpy(lam)[:, None]
    torch.testing.assert_close(ym, y * lam_t + y[partner] * (1 - lam_t))
    assert len(np.unique(lam)) == 8  # per-sample lambdas


def test_mixup_off_and_global_batch_slicing():
    x, y = torch.randn(8, 50), torch.eye(8)
    xm, ym = mixup(x, y, 0.0, rand())
    assert torch.equal(xm, x) and torch.equal(ym, y)
    full_x, full_y = mixup(x, y, 0.5, rand())
    parts = [mixup(x, y, 0.5, rand(offset=4 * k, local=4)) for k in range(2)]
    torch.testing.assert_close(torch.cat([p[0] for p in parts]), full_x)
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), full_y)


def test_spec_augment_one_band_in_frequency_and_time_shared_by_the_batch():
    lms = torch.randn(4, 1, 80, 200) + 10  # no natural zeros
    out = spec_augment(lms, 30, 48, rand(step=3))
    assert out.shape == lms.shape
    zero = out == 0
    assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[3])  # same masks for the whole batch
    rows = zero[0, 0].all(dim=1).nonzero().flatten()
    cols = zero[0, 0].all(dim=0).nonzero().flatten()
    assert len(rows) <= 30 and len(cols) <= 48
    if len(rows):
        assert (rows.diff() == 1).all()  # one contiguous band
    if len(cols):
        assert (cols.diff() == 1).all()
    masked = zero[0, 0]
    explained = masked.clone()
    explained[rows] = False
    explained[:, cols] = False
    assert not explained.any()  # nothing masked outside the two bands
    assert torch.equal(spec_augment(lms, 0, 0, rand()), lms)
    widths = [(spec_augment(lms, 30, 48, rand(step=s)) == 0)[0, 0].all(dim=0).sum().item() for s in range(40)]
    assert max(widths) > 20  # the widths really vary up to the limit


def test_random_resized_crop_shape_ranges_and_identity_crop():
    lms = torch.randn(3, 1, 80, 100)
    out = random_resized_crop(lms.clone(), rand(batch=3))
    assert out.shape == lms.shape and torch.isfinite(out).all()
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = crop_params(rng, (80, 100))
        assert 48 <= p.height <= 80 and 60 <= p.width <= 150
        assert 0 <= p.top <= 80 - p.height and 0 <= p.left <= 150 - p.width
    # cutting exactly the input's place on the 1.0 x 1.5 canvas gives the input back
    identity = CropParams(top=0, left=25, height=80, width=100)
    torch.testing.assert_close(resized_crop_one(lms[0], identity), lms[0], atol=1e-5, rtol=1e-5)
    # a crop wider than the input shrinks it in time and shows the zero canvas at the sides
    wide = resized_crop_one(torch.ones(1, 80, 100), CropParams(0, 0, 80, 150))
    assert wide[0, :, 0].abs().max() < 1e-6 and wide[0, :, 50].min() > 0.99


def test_random_resized_crop_slices_match_the_global_batch():
    lms = torch.randn(4, 1, 16, 40)
    full = random_resized_crop(lms.clone(), rand(batch=4))
    halves = [random_resized_crop(lms[2 * k:2 * k + 2].clone(), rand(batch=4, offset=2 * k, local=2))
              for k in range(2)]
    torch.testing.assert_close(torch.cat(halves), full)


@pytest.mark.parametrize("grid", [(5, 62), (5, 38), (5, 7)])
def test_structured_mask_drops_whole_rows_and_columns_at_about_the_ratio(grid):
    n_f, n_t = grid
    fractions = []
    for step in range(300):
        r = rand(step=step, batch=4)
        keep = structured_token_mask(grid, 0.5, r)
        assert keep.shape[0] == 4
        for row in keep.numpy():
            kept = np.zeros(n_f * n_t, dtype=bool)
            kept[row] = True
            kept = kept.reshape(n_f, n_t)
            rows = np.flatnonzero(kept.any(1))
            cols = np.flatnonzero(kept.any(0))
            # the kept tokens are exactly the grid of surviving rows x surviving columns
            assert kept.sum() == len(rows) * len(cols) and kept[np.ix_(rows, cols)].all()
        fractions.append(1 - keep.shape[1] / (n_f * n_t))
    assert 0.40 < np.mean(fractions) < 0.56
    assert max(fractions) > 0.5 and min(fractions) < 0.5


def test_structured_mask_positions_differ_per_sample_and_counts_follow_the_rule():
    keeps = [structured_token_mask((5, 62), 0.5, rand(step=s, batch=6)) for s in range(20)]
    assert any(len({tuple(r) for r in k.tolist()}) > 1 for k in keeps)
    rng = np.random.default_rng(0)
    for _ in range(100):
        rows, cols = structured_mask_counts(rng, (5, 62), 0.5)
        assert 0 <= rows <= 3 and 0 <= cols <= 31
    # the 'official' variant keeps the flagged rows/columns first (the official code's selection)
    off = structured_token_mask((5, 62), 0.5, rand(step=2, batch=2), variant="official")
    ours = structured_token_mask((5, 62), 0.5, rand(step=2, batch=2))
    assert off.shape == ours.shape
    with pytest.raises(ValueError):
        structured_token_mask((5, 62), 0.5, rand(), variant="nope")


def test_structured_mask_slices_match_the_global_batch():
    full = structured_token_mask((5, 20), 0.5, rand(batch=4))
    halves = [structured_token_mask((5, 20), 0.5, rand(batch=4, offset=2 * k, local=2)) for k in range(2)]
    assert torch.equal(torch.cat(halves), full)
