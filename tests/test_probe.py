"""The EVAR linear probe and the metrics, against hand-computed cases and on (non-)separable embeddings."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evaluation.carve_out import carve_validation
from evaluation.metrics import accuracy, mean_average_precision, mean_ci95
from evaluation.probe import EarlyStopping, LinearProbe, bce_loss, onehot_loss


# ----------------------------------------------------------------------------------------------------- metrics
def test_accuracy_by_hand():
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert accuracy([1, 0, 0, 0], scores) == 0.75
    assert accuracy(np.eye(2)[[1, 0, 0, 0]], scores) == 0.75


def test_map_by_hand():
    # class 0: positives ranked 1st and 3rd -> AP = (1/1 + 2/3) / 2; class 1: positive ranked 2nd -> AP = 1/2;
    # class 2 has no positive and is left out of the mean.
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.1, 0.5], [0.8, 0.7, 0.5], [0.7, 0.9, 0.5], [0.1, 0.2, 0.5]])
    assert mean_average_precision(y, s) == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)
    # the HEAR kit's rule: the class without a positive counts as AP 0
    assert mean_average_precision(y, s, no_positive="zero") == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 3)
    with pytest.raises(ValueError, match="no class has a positive"):
        mean_average_precision(np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="no_positive must be one of"):
        mean_average_precision(y, s, no_positive="nan")


def test_ci95_student_t():
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
    assert math.isnan(mean_ci95([5.0])[1])


# -------------------------------------------------------------------------------------------------- pieces
def test_losses_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    onehot = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # -mean over N x C = -(log 1/2 + log 3/4) / 4
    assert onehot_loss(logits, onehot).item() == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 4)
    target = torch.tensor([[1.0, 0.0]])
    assert bce_loss(torch.tensor([[0.0, math.log(3.0)]]), target).item() == pytest.approx(
        -(math.log(0.5) + math.log(0.25)) / 2, rel=1e-6)


def test_early_stopping_rule():
    model = torch.nn.Linear(1, 1)
    stopper = EarlyStopping(patience=3)
    values = [0.5, 0.7, 0.7, 0.6, 0.6, 0.6, 0.9]   # the tie at epoch 2 moves the best epoch later
    stopped_at = next(i for i, v in enumerate(values) if stopper.step(i, v, model))
    assert stopper.best_epoch == 2 and stopper.best_value == 0.7
    assert stopped_at == 5   # the 3rd epoch after the best without a new best; epoch 6's 0.9 is never seen


def test_carve_out_covers_every_class():
    rng = np.random.RandomState(0)
    Y = np.eye(4)[np.r_[np.zeros(40, int), np.ones(40, int), [2, 2, 3, 3]]]
    train, valid, ok = carve_validation(Y, 0.1, rng)
    assert ok and (Y[valid].sum(0) > 0).all() and len(valid) == 9
    assert sorted(np.r_[train, valid]) == list(range(len(Y)))


def test_carve_out_draws_the_rows_evars_train_test_split_of_the_arrays_drew():
    """The shared index-based carve-out draws exactly what the probe's former ``train_test_split(X, Y, ...)``
    retry loop drew (same rows, same order, same generator state after), so probe numbers do not change."""
    from sklearn.model_selection import train_test_split

    def former(X, Y, fraction, rng, attempts=100):
        needed = Y.sum(axis=0) > 0
        for _ in range(attempts):
            Xt, Xv, Yt, Yv = train_test_split(X, Y, test_size=fraction, random_state=rng)
            if np.array_equal(Yv.sum(axis=0) > 0, needed):
                return Xt, Xv, Yt, Yv, True
        return Xt, Xv, Yt, Yv, False

    for seed in range(5):
        Y = np.eye(6)[np.r_[np.random.RandomState(seed).randint(0, 4, 50), [4, 5, 5]]].astype(np.float32)
        X = np.random.RandomState(seed + 10).standard_normal((len(Y), 3)).astype(np.float32)
        a, b = np.random.RandomState(seed), np.random.RandomState(seed)
        Xt, Xv, Yt, Yv, ok = former(X, Y, 0.1, a)
        train, valid, covered = carve_validation(Y, 0.1, b)
        assert ok == covered
        for x, y in ((Xt, X[train]), (Xv, X[valid]), (Yt, Y[train]), (Yv, Y[valid])):
            np.testing.assert_array_equal(x, y)
        assert a.randint(1 << 30) == b.randint(1 << 30)


def test_one_epoch_equals_hand_computed_adam_step():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    lr, wd = 1e-2, 1e-3
    probe = LinearProbe(lr=lr, weight_decay=wd, max_epochs=1, standardize=False, seed=7, device="cpu")
    probe.fit(X, y, X_valid=X[:3], y_valid=y[:3])
    torch.manual_seed(7)
    init = torch.nn.Linear(3, 3)
    W, b = init.weight.detach().numpy().astype(np.float64), init.bias.detach().numpy().astype(np.float64)
    logits = X @ W.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(3)[y]
    # d/dlogits of -mean(onehot * log_softmax) over N x C entries = (p - onehot) / (N * C); Adam adds wd * W
    gW = (p - onehot).T @ X / (8 * 3) + wd * W
    gb = (p - onehot).sum(0) / (8 * 3) + wd * b
    # Adam's first step: m_hat = g, v_hat = g^2 -> update lr * g / (|g| + eps)
    W1 = W - lr * gW / (np.abs(gW) + 1e-8)
    b1 = b - lr * gb / (np.abs(gb) + 1e-8)
    np.testing.assert_allclose(probe.model_.weight.detach().numpy(), W1, atol=1e-6)
    np.testing.assert_allclose(probe.model_.bias.detach().numpy(), b1, atol=1e-6)


# ------------------------------------------------------------------------------------------- whole protocol
def clusters(n_per_class, n_classes, dim, spread, noise_seed, centre_seed=0):
    centres = np.random.default_rng(centre_seed).standard_normal((n_classes, dim)) * spread
    y = np.repeat(np.arange(n_classes), n_per_class)
    noise = np.random.default_rng(noise_seed).standard_normal((len(y), dim))
    return (centres[y] + noise).astype(np.float32), y


def test_separable_embeddings_reach_near_perfect_accuracy():
    X, y = clusters(60, 4, 256, 2.0, noise_seed=1)
    Xte, yte = clusters(30, 4, 256, 2.0, noise_seed=2)
    probe = LinearProbe(seed=42, device="cpu").fit(X, y)   # the protocol's defaults: lr 3e-5, 200 epochs
    assert probe.score(Xte, yte) >= 0.95
    assert probe.predict(Xte[::30]).tolist() == [0, 1, 2, 3]
    assert probe.predict_proba(Xte).sum(1) == pytest.approx(np.ones(len(Xte)), abs=1e-5)


def test_shuffled_labels_stay_near_chance():
    X, y = clusters(60, 4, 256, 2.0, noise_seed=1)
    Xte, yte = clusters(60, 4, 256, 2.0, noise_seed=2)
    rng = np.random.default_rng(3)
    probe = LinearProbe(seed=42, device="cpu").fit(X, rng.permutation(y))
    assert probe.score(Xte, rng.permutation(yte)) < 0.45   # chance is 0.25


def test_multilabel_probe_and_seeds():
    rng = np.random.default_rng(0)
    Y = (rng.random((200, 3)) < 0.4).astype(np.float32)
    X = (Y @ rng.standard_normal((3, 256)) * 2 + rng.standard_normal((200, 256))).astype(np.float32)
    a = LinearProbe(seed=42, device="cpu").fit(X[:150], Y[:150])
    assert a.multilabel_ and a.score(X[150:], Y[150:]) > 0.8   # chance: about 0.4, the positive rate
    b = LinearProbe(seed=42, device="cpu").fit(X[:150], Y[:150])
    c = LinearProbe(seed=43, device="cpu").fit(X[:150], Y[:150])
    assert np.array_equal(a.decision_function(X), b.decision_function(X))
    assert not np.array_equal(a.decision_function(X), c.decision_function(X))
    assert a.predict(X[:2]).shape == (2, 3)


def test_bad_inputs():
    probe = LinearProbe(device="cpu", max_epochs=1).fit(np.eye(4), [0, 1, 0, 1], np.eye(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"expected embeddings \[N, 4\]"):
        probe.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="not seen in training"):
        probe.score(np.eye(4), [0, 1, 2, 1])
    with pytest.raises(ValueError, match="NaN or inf"):
        LinearProbe().fit(np.full((3, 2), np.nan), [0, 1, 0])
