"""The EVAR linear probe (TorchMLPClassifier2 with no hidden layer) as a scikit-learn-style estimator.

Protocol (eval_protocols.md A.2 and D):

* ``StandardScaler`` fitted on all training embeddings (before any validation carve-out);
* without a validation set, a random 10 % of the training rows is carved out with sklearn ``train_test_split``,
  retried (up to 100 times) until the carve-out holds every class (every label column with a positive)
  (:func:`evaluation.carve_out.carve_validation`, shared with fine-tuning's ``carve`` rule);
* one ``nn.Linear(D, C)`` with PyTorch's default initialisation;
* Adam (lr 3e-5, betas (0.9, 0.999), eps 1e-8, weight decay 1e-8), no schedule; batches of ``min(200, n_train)``
  shuffled each epoch, where ``n_train`` counts the rows given to ``fit`` (as in EVAR);
* loss ``-mean(onehot * log_softmax(logits))`` over all N x C entries (single-label) or BCE on sigmoid
  (multi-label);
* up to 200 epochs; after each, the validation accuracy (mAP for multi-label) is computed; a score ``>=`` the best so
  far (which starts at 0) is an improvement, so ties move the best epoch later; training stops at the 20th
  consecutive epoch without one; the best epoch's weights are restored.
"""
from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler

from evaluation.carve_out import carve_validation
from evaluation.metrics import accuracy, mean_average_precision


def onehot_loss(logits: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """EVAR's single-label loss: ``-mean(onehot * log_softmax(logits))`` over all N x C entries."""
    return -(onehot * F.log_softmax(logits, dim=-1)).mean()


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """EVAR's multi-label loss: binary cross-entropy on ``sigmoid(logits)``."""
    return F.binary_cross_entropy(torch.sigmoid(logits), targets)


SMALL_PROBLEM = 1 << 22   # floats in the training matrix below which CPU training runs on one thread


@contextmanager
def cpu_threads_for(device: torch.device, n_values: int):
    """One intra-op thread for small problems on CPU: tiny kernels on a busy machine are many times slower when
    several OpenMP threads compete for the cores; large problems keep torch's setting."""
    if device.type != "cpu" or n_values >= SMALL_PROBLEM:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class EarlyStopping:
    """EVAR's rule: ``>=`` the best (initially 0) is an improvement; stop at the ``patience``-th epoch after the
    best without a new one; remembers the best epoch's state."""

    def __init__(self, patience: int = 20):
        self.patience = patience
        self.best_value = 0.0
        self.best_epoch: int | None = None
        self.best_state = None
        self.wait = 0

    def step(self, epoch: int, value: float, model: torch.nn.Module) -> bool:
        """Record one epoch's validation score; True when training should stop."""
        if value >= self.best_value:
            self.best_value, self.best_epoch = value, epoch
            self.best_state = copy.deepcopy(model.state_dict())
            self.wait = 1
            return False
        if self.wait >= self.patience:
            return True
        self.wait += 1
        return False


class LinearProbe:
    """A linear classifier trained by the EVAR linear-evaluation protocol.

    Args:
        lr, weight_decay, betas, eps: Adam settings (EVAR's M2D config: 3e-5, 1e-8, (0.9, 0.999), 1e-8).
        max_epochs, patience: epochs and early-stopping patience (200, 20).
        batch_size: ``"auto"`` = min(200, n_train), or an int.
        valid_fraction: share of training rows carved out when ``fit`` gets no validation set.
        standardize: fit a StandardScaler on the training rows.
        seed: seeds the carve-out, the initialisation and the batch order.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
        multilabel: None infers it from ``y`` (2-D binary matrix = multi-label).

    ``y`` is a vector of class labels (any sortable values) or a binary [N, C] matrix for multi-label tasks.
    """

    def __init__(self, lr: float = 3e-5, weight_decay: float = 1e-8, betas=(0.9, 0.999), eps: float = 1e-8,
                 max_epochs: int = 200, patience: int = 20, batch_size="auto", valid_fraction: float = 0.1,
                 standardize: bool = True, seed: int | None = 42, device: str = "auto",
                 multilabel: bool | None = None):
        self.lr = lr
        self.weight_decay = weight_decay
        self.betas = betas
        self.eps = eps
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.valid_fraction = valid_fraction
        self.standardize = standardize
        self.seed = seed
        self.device = device
        self.multilabel = multilabel

    # sklearn-style parameter access
    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in ("lr", "weight_decay", "betas", "eps", "max_epochs", "patience",
                                             "batch_size", "valid_fraction", "standardize", "seed", "device",
                                             "multilabel")}

    def set_params(self, **params) -> "LinearProbe":
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"unknown parameter {k!r}")
            setattr(self, k, v)
        return self

    # ------------------------------------------------------------------------------------------------ helpers
    def _device(self) -> torch.device:
        from m2d_hear.distributed import resolve_device

        return resolve_device(self.device)

    def _targets(self, y) -> np.ndarray:
        """Labels -> one-hot (single-label) or the binary matrix itself (multi-label), float32."""
        if self.multilabel_:
            y = np.asarray(y, dtype=np.float32)
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError(f"multi-label targets must be [N, {len(self.classes_)}], got {y.shape}")
            return y
        index = {c: i for i, c in enumerate(self.classes_)}
        unknown = sorted({v for v in np.asarray(y).tolist() if v not in index}, key=str)
        if unknown:
            raise ValueError(f"labels {unknown[:5]} were not seen in training")
        onehot = np.zeros((len(y), len(self.classes_)), dtype=np.float32)
        onehot[np.arange(len(y)), [index[v] for v in np.asarray(y).tolist()]] = 1.0
        return onehot

    def _transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected embeddings [N, {self.n_features_in_}], got {X.shape}")
        return self.scaler_.transform(X).astype(np.float32) if self.scaler_ is not None else X

    def _metric(self, targets: np.ndarray, scores: np.ndarray) -> float:
        return mean_average_precision(targets, scores) if self.multilabel_ else accuracy(targets, scores)

    @torch.no_grad()
    def _logits(self, X: np.ndarray, chunk: int = 4096) -> np.ndarray:
        self.model_.eval()
        device = next(self.model_.parameters()).device
        outs = [self.model_(torch.from_numpy(X[i:i + chunk]).to(device)).float().cpu()
                for i in range(0, len(X), chunk)]
        return torch.cat(outs).numpy() if outs else np.zeros((0, len(self.classes_)), np.float32)

    # ---------------------------------------------------------------------------------------------- training
    def fit(self, X, y, X_valid=None, y_valid=None, classes=None) -> "LinearProbe":
        """Train on ``X, y``; validate on ``X_valid, y_valid`` or on a carve-out of ``X``.

        ``classes``: the full class list for single-label tasks (default: the sorted labels of ``y``).
        """
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or len(X) < 2:
            raise ValueError(f"expected at least 2 training embeddings [N, D], got {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("training embeddings contain NaN or inf")
        y_arr = np.asarray(y)
        self.multilabel_ = (y_arr.ndim == 2) if self.multilabel is None else bool(self.multilabel)
        if self.multilabel_:
            self.classes_ = np.arange(y_arr.shape[1]) if classes is None else np.asarray(classes)
        else:
            self.classes_ = np.asarray(sorted(set(y_arr.tolist())) if classes is None else list(classes))
        self.n_features_in_ = X.shape[1]
        rng = np.random.RandomState(self.seed)
        if self.seed is not None:
            torch.manual_seed(self.seed)
        generator = torch.Generator()
        generator.manual_seed(int(rng.randint(0, 2**31 - 1)) if self.seed is not None else torch.seed())

        self.scaler_ = StandardScaler().fit(X) if self.standardize else None
        Xs, Ys = self._transform(X), self._targets(y_arr)
        self.valid_covers_all_classes_ = True
        if X_valid is None:
            train, valid, covered = carve_validation(Ys, self.valid_fraction, rng)
            Xt, Xv, Yt, Yv = Xs[train], Xs[valid], Ys[train], Ys[valid]
            if not covered:
                warnings.warn("the validation carve-out misses some classes after 100 tries; continuing with the "
                              "last split (too few examples of a class)", RuntimeWarning, stacklevel=2)
            self.valid_covers_all_classes_ = covered
        else:
            Xt, Yt, Xv, Yv = Xs, Ys, self._transform(X_valid), self._targets(y_valid)

        device = self._device()
        with cpu_threads_for(device, Xt.size):
            self._train(Xt, Yt, Xv, Yv, len(X), device, generator)
        return self

    def _train(self, Xt, Yt, Xv, Yv, n_rows, device, generator):
        self.model_ = torch.nn.Linear(Xt.shape[1], len(self.classes_)).to(device)
        optimizer = torch.optim.Adam(self.model_.parameters(), lr=self.lr, betas=tuple(self.betas), eps=self.eps,
                                     weight_decay=self.weight_decay)
        loss_fn = bce_loss if self.multilabel_ else onehot_loss
        batch = min(200, n_rows) if self.batch_size == "auto" else int(self.batch_size)
        Xt_t, Yt_t = torch.from_numpy(np.ascontiguousarray(Xt)).to(device), torch.from_numpy(Yt).to(device)
        stopper = EarlyStopping(self.patience)
        self.history_ = []
        for epoch in range(self.max_epochs):
            self.model_.train()
            order = torch.randperm(len(Xt_t), generator=generator).to(device)
            total = 0.0
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                optimizer.zero_grad()
                loss = loss_fn(self.model_(Xt_t[idx]), Yt_t[idx])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            value = self._metric(Yv, self._logits(Xv))
            self.history_.append({"epoch": epoch, "train_loss": total / len(order), "valid_score": value})
            if stopper.step(epoch, value, self.model_):
                break
        self.model_.load_state_dict(stopper.best_state)
        self.best_epoch_ = stopper.best_epoch
        self.best_valid_score_ = stopper.best_value
        self.n_epochs_ = len(self.history_)

    # --------------------------------------------------------------------------------------------- inference
    def decision_function(self, X) -> np.ndarray:
        """Logits [N, C]."""
        return self._logits(self._transform(X))

    def predict_proba(self, X) -> np.ndarray:
        """Softmax probabilities (single-label) or per-class sigmoids (multi-label)."""
        logits = torch.from_numpy(self.decision_function(X))
        return (torch.sigmoid(logits) if self.multilabel_ else torch.softmax(logits, dim=-1)).numpy()

    def predict(self, X) -> np.ndarray:
        """Class labels (single-label) or a binary [N, C] matrix at probability 0.5 (multi-label)."""
        proba = self.predict_proba(X)
        return (proba >= 0.5).astype(int) if self.multilabel_ else self.classes_[proba.argmax(axis=1)]

    def score(self, X, y) -> float:
        """Accuracy (single-label) or macro mAP (multi-label) on ``X, y``."""
        return self._metric(self._targets(np.asarray(y)), self.decision_function(X))
