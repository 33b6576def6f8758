"""Training one downstream predictor (one grid point on one split) and testing it: the kit's Lightning loop in
plain PyTorch.

Training: Adam on the loss, batches of ``batch_size`` rows in file order (the kit never shuffles: its train
loader's shuffle condition is never true; rows were shuffled once when the embeddings were written). Validation
after every ``check_val_every_n_epoch``-th epoch (epochs ``n-1, 2n-1, ...``, 0-based; none is forced at the end).
The monitored value is ``val_<primary score>`` (or ``val_loss`` when the task sets
``use_scoring_for_early_stopping: false``), maximised or minimised as the score says.

* checkpoint (Lightning ``ModelCheckpoint``, top 1): the first validation is always kept, later ones only when
  strictly better; a NaN counts as the worst value.
* early stopping (Lightning ``EarlyStopping``, ``min_delta=0``): stop after ``patience`` validations without a
  strict improvement, or at once on a non-finite value.
* event tasks: at every validation each post-processing point is scored on the primary score (NaN counts as 0), the
  best one (ties: the larger point) is used for that validation's scores and remembered for its epoch; the test
  uses the point of the best epoch.

Logged values go through float32, as Lightning's ``self.log`` does, so scores match the kit's JSON digit for digit
in form. The model is initialised after ``torch.manual_seed(seed)`` for every run (the kit seeds once per task and
lets the generator run on; per-run seeding makes interrupted runs resume to the same result).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from m2d_hear.errors import InputError

from .data import EmbeddingTask, SplitData
from .events import events_by_postprocessing, postprocessing_points
from .metrics import Score, primary_value, score_entries
from .models import PredictionHead


def f32(value: float) -> float:
    """A value as Lightning logs it: rounded to float32."""
    return float(np.float32(value))


@dataclass
class FitResult:
    """The outcome of training one grid point on one split."""

    hparams: dict
    state: dict
    epoch: int
    validation_score: float
    score_mode: str
    postprocessing: list = field(default_factory=list)  # [(name, value), ...] for event tasks
    time_in_min: float = 0.0


class Monitor:
    """Lightning's ``ModelCheckpoint`` (top 1) and ``EarlyStopping`` (``min_delta=0``) on one monitored value.

    ``update(value, epoch) -> (save, stop)``: save on the first validation and on every strict improvement (NaN is
    the worst value); stop on a non-finite value or after ``patience`` validations without strict improvement.
    """

    def __init__(self, mode: str, patience: int):
        self.maximize = mode == "max"
        self.patience = patience
        self.best = -math.inf if self.maximize else math.inf  # checkpoint's best (NaN stored as the worst)
        self.best_epoch = -1
        self.stop_best = self.best  # early stopping's best
        self.wait = 0

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b

    def update(self, value: float, epoch: int) -> tuple[bool, bool]:
        worst = -math.inf if self.maximize else math.inf
        as_checkpoint = worst if math.isnan(value) else value
        save = self.best_epoch < 0 or self._better(as_checkpoint, self.best)
        if save:
            self.best, self.best_epoch = as_checkpoint, epoch
        if not math.isfinite(value):
            return save, True
        if self._better(value, self.stop_best):
            self.stop_best, self.wait = value, 0
        else:
            self.wait += 1
        return save, self.wait >= self.patience


@dataclass
class Evaluation:
    loss: float
    entries: dict[str, float]  # {prefix}_score, {prefix}_{name}, ...
    monitored_postprocessing: tuple | None
    predictions: dict


class Runner:
    """Trains and tests heads for one task. ``scores`` in the task's ``evaluation`` order (first = primary)."""

    def __init__(self, task: EmbeddingTask, scores: list[Score], device: str = "cpu",
                 postprocessing_grid: dict | None = None, progress: bool = True):
        self.task = task
        self.scores = scores
        self.device = torch.device(device)
        self.use_scoring = task.metadata.get("use_scoring_for_early_stopping", True)
        self.postprocessing = postprocessing_points(postprocessing_grid) if task.is_event else []
        if task.is_event and not self.use_scoring and len(self.postprocessing) != 1:
            raise InputError(f"{task.path / 'task_metadata.json'}: without scoring for early stopping an event task "
                             "needs exactly one post-processing point in event_postprocessing_grid")
        self.progress = progress

    # ---------------------------------------------------------------------------------------------- helpers
    @property
    def monitor(self) -> tuple[str, str]:
        """(monitored key, "max" | "min")."""
        if self.use_scoring:
            return f"val_{self.scores[0].name}", "max" if self.scores[0].maximize else "min"
        return "val_loss", "min"

    def _batches(self, n: int, batch_size: int):
        return ((a, min(a + batch_size, n)) for a in range(0, n, batch_size))

    @torch.no_grad()
    def _outputs(self, model: PredictionHead, data: SplitData, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        model.eval()
        logits = [model.logits(torch.from_numpy(data.x[a:b]).to(self.device)).cpu()
                  for a, b in self._batches(len(data), batch_size)]
        logits = torch.cat(logits) if logits else torch.zeros(0, len(self.task.labels))
        return model.activation(logits), logits

    def evaluate(self, model: PredictionHead, data: SplitData, prefix: str, reference: dict, batch_size: int,
                 postprocessing: tuple | None = None) -> Evaluation:
        """Loss and scores of ``data`` (``prefix`` "val" or "test"). Event tasks: ``postprocessing`` fixes the
        point (test); None searches the grid (validation)."""
        probs, logits = self._outputs(model, data, batch_size)
        loss = float(model.loss(logits, data.y))
        entries: dict[str, float] = {}
        predictions = {"target": data.y, "prediction": probs, "prediction_logit": logits}
        chosen = None
        if prefix == "test" or self.use_scoring:
            if self.task.is_event:
                points = [postprocessing] if postprocessing is not None else self.postprocessing
                by_point = events_by_postprocessing(probs.numpy(), data.filenames, data.timestamps,
                                                    self.task.idx_to_label, points)
                ranked = []
                for point, predicted in by_point.items():
                    value = primary_value(self.scores[0](predicted, reference, self.task.labels))
                    ranked.append((0.0 if math.isnan(value) else value, point))
                ranked.sort(reverse=True)
                chosen = ranked[0][1]
                predicted = by_point[chosen]
                entries = score_entries(prefix, self.scores, predicted, reference, self.task.labels)
                predictions.update(target_events=reference, predicted_events=predicted,
                                   timestamp=torch.from_numpy(np.asarray(data.timestamps)))
            else:
                entries = score_entries(prefix, self.scores, probs.numpy(), data.y.numpy())
        entries = {f"{prefix}_loss": loss, **entries}
        return Evaluation(loss, {k: f32(v) for k, v in entries.items()}, chosen, predictions)

    # ------------------------------------------------------------------------------------------------- fit
    def fit(self, train: SplitData, valid: SplitData, valid_reference: dict, conf: dict, seed: int = 42,
            desc: str = "fit") -> FitResult:
        """Train ``conf`` on ``train``, select the checkpoint on ``valid``."""
        from .grid import hparams_json

        start = time.time()
        torch.manual_seed(seed)
        model = PredictionHead(train.x.parts[0].shape[1], len(self.task.labels),
                               self.task.metadata["prediction_type"], conf).to(self.device)
        optimizer = conf["optim"](model.parameters(), lr=conf["lr"])
        key, mode = self.monitor
        monitor = Monitor(mode, conf["patience"])
        best_state = None
        epoch_postprocessing: dict[int, tuple] = {}
        has_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
        every = conf["check_val_every_n_epoch"]
        bar = tqdm(range(conf["max_epochs"]), desc=desc, leave=False, disable=not self.progress)
        for epoch in bar:
            model.train()
            for a, b in self._batches(len(train), conf["batch_size"]):
                if has_norm and b - a == 1 and len(train) > 1:
                    continue  # BatchNorm cannot train on one row (the kit would crash here)
                x = torch.from_numpy(train.x[a:b]).to(self.device)
                loss = model.loss(model.logits(x), train.y[a:b].to(self.device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if (epoch + 1) % every:
                continue
            result = self.evaluate(model, valid, "val", valid_reference, conf["batch_size"])
            if result.monitored_postprocessing is not None:
                epoch_postprocessing[epoch] = result.monitored_postprocessing
            current = result.entries[key]
            bar.set_postfix({key: f"{current:.4f}"})
            save, stop = monitor.update(current, epoch)
            if save:
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if stop:
                break
        bar.close()
        if best_state is None:
            raise InputError(f"no validation ran: max_epochs {conf['max_epochs']} < check_val_every_n_epoch {every}")
        if self.task.is_event:
            chosen = epoch_postprocessing[monitor.best_epoch] if self.use_scoring else self.postprocessing[0]
            postprocessing = [list(p) for p in chosen]
        else:
            postprocessing = []
        return FitResult(hparams_json(conf), best_state, monitor.best_epoch, f32(monitor.best), mode, postprocessing,
                         (time.time() - start) / 60)

    # ------------------------------------------------------------------------------------------------ test
    def test(self, result: FitResult, conf: dict, test: SplitData, test_reference: dict) -> tuple[dict, dict]:
        """Scores of the best checkpoint on ``test`` (plus validation_score, epoch, time_in_min), and the
        predictions the kit pickles."""
        model = PredictionHead(test.x.parts[0].shape[1], len(self.task.labels),
                               self.task.metadata["prediction_type"], conf)
        model.load_state_dict(result.state)
        model.to(self.device)
        point = tuple(tuple(p) for p in result.postprocessing) if self.task.is_event else None
        ev = self.evaluate(model, test, "test", test_reference, conf["batch_size"], postprocessing=point)
        scores = {**ev.entries, "validation_score": result.validation_score, "epoch": result.epoch,
                  "time_in_min": result.time_in_min}
        return scores, ev.predictions
