"""The eval kit's downstream predictor: an MLP on frozen embeddings.

``hidden_layers`` x [Linear(hidden_dim) -> hidden_norm -> Dropout -> ReLU] (norm after the ReLU when
``norm_after_activation``), then a Linear projection to the labels. Every Linear weight is initialised with the
configured xavier function, gain ``calculate_gain("linear")`` for the first layer and ``"relu"`` after a hidden
layer; biases keep PyTorch's default. No input normalisation. Multiclass: softmax outputs, cross-entropy on the
logits against the single label; multilabel: sigmoid outputs, ``BCEWithLogitsLoss``.
"""
from __future__ import annotations

import torch
from torch import nn


class OneHotCrossEntropy(nn.Module):
    """Cross-entropy on logits with one-hot targets (each row must hold exactly one label)."""

    def __init__(self):
        super().__init__()
        self.loss = nn.CrossEntropyLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not torch.all(target.sum(1) == 1):
            raise ValueError("multiclass targets must have exactly one label per row")
        return self.loss(logits, target.argmax(1))


class PredictionHead(nn.Module):
    """MLP head; ``forward`` gives probabilities, ``logits`` the pre-activation outputs."""

    def __init__(self, n_features: int, n_labels: int, prediction_type: str, conf: dict):
        super().__init__()
        layers: list[nn.Module] = []
        dim, last_activation = n_features, "linear"
        init = conf["initialization"]
        for _ in range(conf["hidden_layers"]):
            linear = nn.Linear(dim, conf["hidden_dim"])
            init(linear.weight, gain=nn.init.calculate_gain(last_activation))
            layers.append(linear)
            if not conf["norm_after_activation"]:
                layers.append(conf["hidden_norm"](conf["hidden_dim"]))
            layers += [nn.Dropout(conf["dropout"]), nn.ReLU()]
            if conf["norm_after_activation"]:
                layers.append(conf["hidden_norm"](conf["hidden_dim"]))
            dim, last_activation = conf["hidden_dim"], "relu"
        self.hidden = nn.Sequential(*layers) if layers else nn.Identity()
        self.projection = nn.Linear(dim, n_labels)
        init(self.projection.weight, gain=nn.init.calculate_gain(last_activation))
        if prediction_type == "multilabel":
            self.activation: nn.Module = nn.Sigmoid()
            self.loss: nn.Module = nn.BCEWithLogitsLoss()
        elif prediction_type == "multiclass":
            self.activation = nn.Softmax(dim=-1)
            self.loss = OneHotCrossEntropy()
        else:
            raise ValueError(f"unknown prediction_type {prediction_type!r}; expected multiclass or multilabel")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.hidden(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.logits(x))
