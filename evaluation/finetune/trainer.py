"""One fine-tuning run: a task round (a fold, or the fixed split), one recipe, one seed.

Per epoch: train on every batch (augmentations, per-iteration cosine schedule), evaluate the selection split, keep
the checkpoint of the best epoch (strictly higher score, as EVAR), and write the last epoch's full training state.
At the end the best checkpoint is restored and tested.

Model selection (``rule``):

- ``valid``: the round's validation split (SPCV2, VC1, GTZAN);
- ``best-test``: no validation split (US8K folds, AS20K): the test split is evaluated every epoch and the best test
  score over epochs is reported. This is what the papers did ("following PANNs", EVAR ``finetune.py``), so it is the
  default for comparability; it is optimistic and tables must say so;
- ``carve``: no validation split: a seeded random 10 % of the training clips (retried until every class is present)
  becomes the validation split, drawn by the linear probe's rule (:mod:`evaluation.carve_out`); the sound
  alternative.

Files in the run folder, all written atomically by the main process:
``last.pth`` (model, optimiser, epoch, best so far, history: what ``resume`` continues from), ``<folder>/best.pth``
(the best epoch's weights in the EVAR fine-tuned layout, ``<folder>`` named like the official releases so that
``m2d_hear.load_m2d`` reads it), ``best.json``, ``history.csv``, ``log.txt``, and ``result.json`` once finished.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from evaluation.carve_out import carve_validation
from evaluation.metrics import score
from evaluation.tasks.base import Clip, DatasetError, Round, TaskData
from m2d_hear import distributed as D
from m2d_hear import fileio
from m2d_hear.audio import AudioError
from m2d_hear.checkpoint import refused_detail, safe_load
from m2d_hear.errors import InputError

from .augment import StepRandom, mixup, random_resized_crop, spec_augment
from .data import (
    ClipDataset,
    EvalBatches,
    TrainBatches,
    balanced_weights,
    label_matrix,
    make_loader,
)
from .losses import loss_multi_label, loss_single_label
from .model import FineTuneModel, build_model
from .optim import CosineSchedule, build_optimizer, set_lr
from .recipes import Recipe

log = logging.getLogger("evaluation.finetune")

RULES = ("valid", "best-test", "carve")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class FinetuneError(InputError):
    """A fine-tuning run that cannot start or continue; the message names the file and the fix."""


@dataclass
class TrainOptions:
    """How to run (not what to train: that is the :class:`Recipe`)."""

    seed: int = 43
    no_valid: str = "best-test"       # rule for rounds without a validation split: 'best-test' or 'carve'
    device: str | None = None         # 'cpu', 'cuda', 'cuda:1'; default: CUDA if available
    num_workers: int = 4              # decoding worker processes per loader (0: decode in the main process)
    precision: str = "auto"           # auto = bf16 autocast on CUDA, fp32 on CPU
    eval_batch_size: int | None = None
    carve_fraction: float = 0.1
    config: str | None = None         # model configuration override for renamed weight files
    trust_checkpoint: bool = False    # admit a weight file that needs full unpickling (it can run code)
    progress: bool = True

    def __post_init__(self):
        if self.no_valid not in ("best-test", "carve"):
            raise FinetuneError(f"no-valid rule must be 'best-test' or 'carve', got {self.no_valid!r}")
        if self.precision not in PRECISIONS:
            raise FinetuneError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


@dataclass
class RoundResult:
    task: str
    round: str
    seed: int
    metric: str
    score: float
    rule: str
    best_epoch: int
    best_selection_score: float
    epochs: int
    recipe: str
    recipe_source: str
    run_dir: str
    n_train: int = 0
    n_test: int = 0
    history: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------- splits & rule
def carve_valid(train: list[Clip], classes: list[str], multilabel: bool, seed: int, fraction: float):
    """The linear probe's carve-out (:func:`evaluation.carve_out.carve_validation`, drawn from
    ``RandomState(seed)``) of ``train``; returns (train, valid), each in task order."""
    n = len(train)
    if n >= 2:
        y = label_matrix(train, classes, multilabel, "train")
        keep, valid, _ = carve_validation(y, fraction, np.random.RandomState(seed))
    if n < 2 or len(keep) < 2:
        raise DatasetError(f"only {n} training clips: too few to carve a validation split")
    return [train[i] for i in np.sort(keep)], [train[i] for i in np.sort(valid)]


def selection_rule(rnd: Round, no_valid: str) -> str:
    return "valid" if rnd.valid else no_valid


# ---------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Holds the model, optimiser and loaders of one run."""

    def __init__(self, task: TaskData, rnd: Round, weights: str | Path, recipe: Recipe, opts: TrainOptions,
                 info: D.DistEnv):
        self.task, self.rnd, self.recipe, self.opts, self.info = task, rnd, recipe, opts, info
        self.rule = selection_rule(rnd, opts.no_valid)
        train, valid, test = rnd.train, rnd.valid, rnd.test
        if self.rule == "carve":
            train, valid = carve_valid(train, task.classes, task.multilabel, opts.seed, opts.carve_fraction)
        self.splits = {"train": train, "valid": valid or [], "test": test}

        torch.manual_seed(opts.seed)
        self.model = build_model(str(weights), task.num_classes, dur_frames=recipe.dur_frames,
                                 token_mask=recipe.token_mask, token_mask_variant=recipe.token_mask_variant,
                                 freeze_embed=recipe.freeze_embed, config=opts.config,
                                 trust_checkpoint=opts.trust_checkpoint).to(info.device)
        self.model.train()
        self.ddp = (torch.nn.parallel.DistributedDataParallel(self.model, broadcast_buffers=False)
                    if info.distributed else self.model)
        self.optimizer = build_optimizer(recipe.optimizer, self.model.trainable_parameters(), recipe.lr)
        self.schedule = CosineSchedule(recipe.lr, recipe.epochs, recipe.warmup_epochs)
        self.loss_fn = loss_multi_label if task.multilabel else loss_single_label

        dev = info.device
        precision = opts.precision
        if precision == "auto":
            precision = "bf16" if dev.type == "cuda" else "fp32"
        self.precision = precision
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and dev.type == "cuda" else None

        sr = self.model.config.sample_rate
        unit = int(round(sr * task.unit_sec))
        self.datasets = {name: ClipDataset(clips, label_matrix(clips, task.classes, task.multilabel, name), sr, unit)
                         for name, clips in self.splits.items()}
        weights_b = balanced_weights(self.datasets["train"].labels.numpy()) if recipe.balanced else None
        self.train_batches = TrainBatches(len(train), recipe.batch_size, opts.seed, info.rank, info.world,
                                          weights=weights_b, epoch_samples=recipe.epoch_samples)
        self.train_loader = make_loader(self.datasets["train"], self.train_batches, opts.num_workers,
                                        persistent=True)
        self.iters_per_epoch = len(self.train_batches)

    # ------------------------------------------------------------------------------------------- steps
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.info.device.type, dtype=self.autocast_dtype)

    def _augment(self, wave: torch.Tensor, y: torch.Tensor, rand: StepRandom):
        r = self.recipe
        if r.mixup > 0:
            wave_g = D.all_gather_cat(wave, self.info)
            y_g = D.all_gather_cat(y, self.info)
            wave, y = mixup(wave_g, y_g, r.mixup, rand)
        lms = self.model.normalized_lms(wave)
        if r.freq_mask > 0 or r.time_mask > 0:
            lms = spec_augment(lms, r.freq_mask, r.time_mask, rand)
        if r.rrc:
            lms = random_resized_crop(lms, rand)
        return lms, y

    def train_epoch(self, epoch: int) -> dict:
        self.model.train()
        self.train_batches.set_epoch(epoch)
        info, dev = self.info, self.info.device
        losses, wait, n_steps = [], 0.0, 0
        start = time.perf_counter()
        it = iter(self.train_loader)
        bar = tqdm(total=self.iters_per_epoch, desc=f"{self.task.name} {self.rnd.name} s{self.opts.seed} "
                   f"ep{epoch + 1}/{self.recipe.epochs}", leave=False,
                   disable=not (info.is_main and self.opts.progress))
        lr = 0.0
        for i in range(self.iters_per_epoch):
            t0 = time.perf_counter()
            wave, y, _ = next_batch(it)
            wait += time.perf_counter() - t0
            wave, y = wave.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            lr = self.schedule.for_step(epoch * self.iters_per_epoch + i, self.iters_per_epoch)
            set_lr(self.optimizer, lr)
            rand = StepRandom.for_step(self.opts.seed, epoch, i, len(wave) * info.world,
                                       offset=info.rank * len(wave), local=len(wave))
            lms, y = self._augment(wave, y, rand)
            with self._autocast():
                logits = self.ddp(lms, rand)
            loss = self.loss_fn(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FinetuneError(f"training loss became {value} at epoch {epoch + 1} step {i + 1}; lower --lr "
                                    f"(now {self.recipe.lr:g}) or use --precision fp32")
            losses.append(value)
            n_steps += 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}",
                            data_wait=f"{100 * wait / max(time.perf_counter() - start, 1e-9):.0f}%")
        bar.close()
        total = time.perf_counter() - start
        mean_loss = float(np.mean(losses))
        # each process saw its slice of every batch: report the global-batch loss
        mean_loss = D.mean_over_processes(mean_loss, info)
        return {"train_loss": mean_loss, "lr": lr, "train_s": total, "data_wait_s": wait, "steps": n_steps}

    @torch.no_grad()
    def predict(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Logits and targets of a whole split (gathered from all processes, in clip order)."""
        self.model.eval()
        ds = self.datasets[split]
        bs = self.opts.eval_batch_size or self.recipe.batch_size
        crop_seed = self.opts.seed if split == "valid" else None  # valid: random crops fixed per seed; test: start
        batches = EvalBatches(len(ds), bs, self.info.rank, self.info.world, crop_seed=crop_seed)
        loader = make_loader(ds, batches, min(self.opts.num_workers, len(batches)))
        idx_all, out_all = [], []
        it = iter(loader)
        for _ in range(len(batches)):
            wave, _, idx = next_batch(it)
            lms = self.model.normalized_lms(wave.to(self.info.device))
            with self._autocast():
                logits = self.model(lms)
            out_all.append(logits.float().cpu())
            idx_all.append(idx)
        local = (torch.cat(idx_all) if idx_all else torch.zeros(0, dtype=torch.long),
                 torch.cat(out_all) if out_all else torch.zeros(0, self.task.num_classes))
        parts = D.gather_objects(local, self.info)
        idx = torch.cat([p[0] for p in parts]).numpy()
        logits = torch.cat([p[1] for p in parts]).numpy()
        order = np.argsort(idx)
        self.model.train()
        return logits[order], ds.labels.numpy()[idx[order]]

    def evaluate(self, split: str) -> float:
        logits, targets = self.predict(split)
        return score(self.task.metric, targets, logits)

    # --------------------------------------------------------------------------------------- checkpoints
    def training_state(self, epoch: int, best: dict, history: list) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "epoch": epoch, "best": best, "history": history, "recipe": self.recipe.to_dict(),
                "recipe_key": self.recipe.key(), "seed": self.opts.seed, "round": self.rnd.name, "rule": self.rule}

    def load_training_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def read_training_state(path: Path, device) -> dict:
    """A ``last.pth`` written by :meth:`Trainer.training_state` (tensors and plain values only), read with the
    restricted unpickler (:func:`m2d_hear.checkpoint.safe_load`): a file holding anything else is refused, never
    run."""
    try:
        state = safe_load(path, map_location=device)
    except pickle.UnpicklingError as err:
        what = refused_detail(err, "objects beyond tensors and plain values")
        raise FinetuneError(f"{path}: holds {what}, which fine-tuning never writes, so it was not unpickled; "
                            "delete it to restart this round, or choose another --out") from None
    except Exception as err:  # noqa: BLE001 - truncated or damaged file
        raise FinetuneError(f"{path}: cannot be read ({type(err).__name__}); delete it to restart this round, or "
                            "choose another --out") from None
    if not isinstance(state, dict):
        raise FinetuneError(f"{path}: not a fine-tuning state (a {type(state).__name__}); delete it to restart this "
                            "round, or choose another --out")
    return state


def next_batch(it):
    """``next(it)``, turning a decoding error raised in a worker process back into its one-line message."""
    try:
        return next(it)
    except AudioError as err:
        raise AudioError(one_line(str(err))) from None


def one_line(message: str) -> str:
    """The original message of an exception re-raised by a DataLoader worker (its last line, prefix dropped)."""
    last = message.strip().splitlines()[-1] if message.strip() else message
    for marker in ("AudioError: ", "DatasetError: "):
        if marker in last:
            return last.split(marker, 1)[1]
    return last


def write_history(history: list, path: Path) -> None:
    import pandas as pd

    fileio.write_csv(path, pd.DataFrame(history), index=False)


# -------------------------------------------------------------------------------------------- one round
def best_weights_path(run_dir: Path, model: FineTuneModel, task: str, rnd: str, seed: int) -> Path:
    folder = model.export_config().folder_name(f"ft_{task}_{rnd}_s{seed}".replace("-", "_"))
    return run_dir / folder / "best.pth"


def train_round(task: TaskData, rnd: Round, weights: str | Path, recipe: Recipe, run_dir: str | Path,
                opts: TrainOptions | None = None, resume: bool = False, info: D.DistEnv | None = None,
                stop_after_epochs: int | None = None) -> RoundResult | None:
    """Fine-tune on one round and return its result (test score of the selected epoch).

    ``resume`` continues from ``last.pth`` (or returns the stored result of a finished run); without it an existing
    run folder is an error. ``stop_after_epochs`` ends the call after that many epochs in total (for tests and
    time-boxed jobs) and returns None, leaving a resumable run.
    """
    opts = opts or TrainOptions()
    info = info or D.init_distributed(opts.device)
    run_dir = Path(run_dir)
    result_path, last_path = run_dir / "result.json", run_dir / "last.pth"
    if result_path.exists():
        if not resume:
            raise FinetuneError(f"{run_dir}: this run has already finished; pass --resume to reuse its result or "
                                "choose another --out")
        return RoundResult(**json.loads(result_path.read_text()))
    if last_path.exists() and not resume:
        raise FinetuneError(f"{last_path}: an unfinished run is here; pass --resume to continue it or choose "
                            "another --out")
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    D.barrier(info)
    handler = None
    if info.is_main:
        handler = logging.FileHandler(run_dir / "log.txt")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        return _train_round(task, rnd, weights, recipe, run_dir, opts, resume, info, stop_after_epochs)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()


def _train_round(task, rnd, weights, recipe, run_dir, opts, resume, info, stop_after_epochs):
    trainer = Trainer(task, rnd, weights, recipe, opts, info)
    model = trainer.model
    last_path = run_dir / "last.pth"
    best_path = best_weights_path(run_dir, model, task.name, rnd.name, opts.seed)
    best = {"epoch": -1, "score": -math.inf}
    history: list[dict] = []
    start_epoch = 0
    if resume and last_path.exists():
        state = read_training_state(last_path, info.device)
        if state.get("recipe_key") != recipe.key() or state.get("seed") != opts.seed:
            raise FinetuneError(f"{last_path}: was written with another recipe or seed ({state.get('recipe')}, "
                                f"seed {state.get('seed')}); resume with the same settings or choose another --out")
        trainer.load_training_state(state)
        best, history, start_epoch = state["best"], state["history"], state["epoch"] + 1
        log.info(f"resumed after epoch {start_epoch} from {last_path}")
    n = {k: len(v) for k, v in trainer.splits.items()}
    log.info(f"{task.name} {rnd.name} seed {opts.seed}: train {n['train']}, valid {n['valid']}, test {n['test']}; "
             f"selection rule {trainer.rule}; {recipe.describe()}; precision {trainer.precision}; "
             f"{info.world} process(es) on {info.device}; {trainer.iters_per_epoch} steps per epoch")
    select_split = "valid" if trainer.rule in ("valid", "carve") else "test"
    for epoch in range(start_epoch, recipe.epochs):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            return None
        stats = trainer.train_epoch(epoch)
        t0 = time.perf_counter()
        value = trainer.evaluate(select_split)
        stats.update(epoch=epoch + 1, **{f"{select_split}_{task.metric}": value},
                     eval_s=time.perf_counter() - t0)
        history.append(stats)
        improved = value > best["score"]
        if improved:
            best = {"epoch": epoch + 1, "score": value}
        wait_pct = 100.0 * stats["data_wait_s"] / max(stats["train_s"], 1e-9)
        log.info(f"epoch {epoch + 1}/{recipe.epochs}: loss {stats['train_loss']:.5f}, lr {stats['lr']:.3g}, "
                 f"{select_split} {task.metric} {value:.5f} (best {best['score']:.5f} @ {best['epoch']}), "
                 f"{stats['train_s']:.1f} s training, data wait {stats['data_wait_s']:.1f} s = {wait_pct:.0f}% "
                 f"of step time, {stats['train_s'] / max(stats['steps'], 1):.3f} s/step")
        if info.is_main:
            if improved:
                fileio.torch_save(model.evar_state(), best_path)
                fileio.write_json(run_dir / "best.json",
                                  {**best, "rule": trainer.rule, "split": select_split, "weights": str(best_path)},
                                  indent=1)
            write_history(history, run_dir / "history.csv")
            fileio.torch_save(trainer.training_state(epoch, best, history), last_path)
        D.barrier(info)

    # restore the best epoch and test it
    model.load_evar_state(torch.load(best_path, map_location=info.device, weights_only=True))
    if trainer.rule == "best-test":
        final = best["score"]
    else:
        final = trainer.evaluate("test")
    log.info(f"{task.name} {rnd.name} seed {opts.seed}: test {task.metric} {final:.5f} "
             f"(epoch {best['epoch']} chosen by {trainer.rule})")
    result = RoundResult(task.name, rnd.name, opts.seed, task.metric, float(final), trainer.rule, best["epoch"],
                         float(best["score"]), recipe.epochs, recipe.name, recipe.source, str(run_dir),
                         len(trainer.splits["train"]), len(trainer.splits["test"]), history)
    if info.is_main:
        fileio.write_json(run_dir / "result.json", result.to_dict(), indent=1)
    D.barrier(info)
    return result
