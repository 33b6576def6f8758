"""The M2D pre-training loop (``m2d_spec.md`` sections 5-6), for one process or one of many under torchrun.

Per data iteration ``i`` (global, counted from the start of training) of epoch ``e``:

- every ``accum_iter`` iterations the learning rate is set from the fractional epoch ``e + i_e / iters_per_epoch``
  (linear warm-up, then half cosine);
- a batch of raw log-mel crops is normalised with the model's ``norm_stats`` on the training device, masked with
  noise drawn from ``(seed, i)`` and the loss divided by ``accum_iter`` is back-propagated (DDP averages gradients
  over processes on the last micro-batch only); with ``--noise-ratio`` the online encoder sees each crop mixed with
  a background crop of the same list and the target encoder the clean crop (M2D-X; or the mixture too, with
  ``--noise-target mixture``);
- on the last micro-batch: optional gradient clipping (after unscaling), an AdamW step, then the target EMA with the
  rate ``ema_decay(i)``, linear from ``--ema-decay-init`` to ``--ema-decay`` over all iterations.

Only rank 0 writes (checkpoints, ``log.jsonl``, the progress bar).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from m2d_hear import distributed as D
from m2d_hear.errors import InputError
from m2d_hear.fileio import write_text

from .checkpointing import (FORMAT, LAST, ResumeError, ResumePoint, epoch_checkpoint, resume_point, save_checkpoint,
    set_rng_state)
from .collapse import COLLAPSE_FRACTION, RankProbe
from .data import (BatchOrder, DataError, LogMelCrops, inflate, list_digest, log_mix, mask_noise, norm_stats,
                   read_file_list)
from .model import build_pretrain_model
from .runs import find_run, run_name
from .schedules import absolute_lr, build_optimizer, ema_decay, learning_rate

LOG_FILE = "log.jsonl"


class TrainingError(InputError):
    """A run that cannot start or continue (bad options, diverged loss, nothing to resume)."""


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def log_step(line: str) -> int | None:
    """The ``step`` of one ``log.jsonl`` line, or None for a line that is not a log record."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record.get("step", 0) if isinstance(record, dict) else None


def last_logged_step(path: Path) -> int | None:
    """The highest step ``log.jsonl`` records, or None without a log."""
    if not path.is_file():
        return None
    steps = [log_step(line) for line in path.read_text().splitlines()]
    return max((s for s in steps if s is not None), default=None)


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop stops at the next optimizer step, after writing ``checkpoint-last.pth``."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test runner thread)
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Builds everything from the run's arguments (see ``pretrain.train``) and runs the loop."""

    def __init__(self, args: argparse.Namespace, env: D.DistEnv | None = None, defaulted=()):
        self.args = args
        self.defaulted = set(defaulted)  # options the user left at their defaults (taken from the checkpoint)
        self.env = env or D.init_distributed(args.device)
        self.device = self.env.device
        self.amp_dtype = autocast_dtype(args.amp, self.device)
        self.stop = StopFlag()

    # ------------------------------------------------------------------------------------------------ set-up
    def setup(self) -> None:
        self.run_dir, state = self._locate_run()
        a, env = self.args, self.env
        self.noise_ratio = getattr(a, "noise_ratio", 0.0) or 0.0   # absent from runs older than the option
        self.noise_target = getattr(a, "noise_target", "clean") or "clean"
        files = read_file_list(a.data, a.csv)
        self.file_info = {"n_files": len(files), "digest": list_digest(files)}
        self.dataset = LogMelCrops(a.data, inflate(files, a.min_ds_size), a.input_size)
        if a.batch_size % env.world:
            raise TrainingError(f"--batch-size {a.batch_size} is the global batch, which {env.world} processes must "
                                f"split evenly; use a multiple of {env.world}")
        # --batch-size is the global batch: each process takes its 1/world share (docs/cli.md)
        self.order = BatchOrder(len(self.dataset), a.batch_size // env.world, a.seed, env.rank, env.world,
                                background=self.noise_ratio > 0)
        self.iters_per_epoch = self.order.batches_per_epoch
        if self.iters_per_epoch < 1:
            raise TrainingError(
                f"{len(self.dataset)} training files (after --min-ds-size {a.min_ds_size}) make no full global batch "
                f"of {self.order.global_batch}; lower --batch-size or raise --min-ds-size")
        self.total_iters = self.iters_per_epoch * a.epochs
        self.eff_batch = self.order.global_batch * a.accum_iter
        self.base_lr = a.lr if a.lr else absolute_lr(a.blr, self.eff_batch)

        torch.manual_seed(a.seed)
        np.random.seed(a.seed)
        random.seed(a.seed)
        stats = self._norm_stats(state)
        self.model = build_pretrain_model(a.model, a.input_size, a.patch_size, a.decoder_dim, a.decoder_depth,
                                          a.decoder_heads, a.mask_ratio, stats, a.embed_dim, a.depth)
        self.model.to(self.device)
        self.rank_probe, self.rank_reference = None, None
        if a.rank_every and self.env.is_main:
            # the same seed builds the same random init on a resumed run: its rank is the reference either way
            self.rank_probe = RankProbe(LogMelCrops(a.data, files, a.input_size), a.rank_clips, *stats)
            self.rank_reference = self.rank_probe.measure(self.model, self.device, self.amp_dtype)
        self.optimizer = build_optimizer(self.model, self.base_lr, a.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.epoch, self.epoch_iter, self.iteration, self.step = 0, 0, 0, 0
        if state is not None:
            self._restore(state)
        mean, std = self.model.norm_stats.tolist()
        self.mean, self.std = mean, std
        net = self.model
        if env.distributed:
            net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False)
        self.net = torch.compile(net) if a.compile else net
        self.ddp = net if env.distributed else None
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=None, sampler=self.order, num_workers=a.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=a.num_workers > 0,
            prefetch_factor=4 if a.num_workers > 0 else None)

    def _locate_run(self) -> tuple[Path, dict | None]:
        a = self.args
        out = Path(a.out)
        if a.resume:
            config_given = not {"model", "input_size", "patch_size", "mask_ratio", "sr"} <= self.defaulted
            run_dir = out / a.name if a.name else find_run(out, a.model, a.input_size, a.patch_size, a.mask_ratio,
                                                           a.sr, any_config=not config_given)
            try:
                point = resume_point(run_dir) if run_dir is not None and run_dir.is_dir() else None
            except ResumeError as err:
                raise TrainingError(str(err)) from None
            if point is None:
                where = run_dir or out
                raise TrainingError(f"--resume: no checkpoint found in {where}; start without --resume, or pass "
                                    "--name <run folder> (and the run's --model/--input-size/...) under --out")
            self._check_damaged(run_dir, point)
            state = point.state
            saved = state.get("args")
            if state.get("format") != FORMAT and "batch_size" in self.defaulted and self.env.world > 1:
                # written when --batch-size meant the batch of each process: taken as it is, it would divide the
                # global batch (and the learning rate) by the number of processes
                raise TrainingError(f"{point.path} was written when --batch-size meant the batch of each process "
                                    f"({getattr(saved, 'batch_size', '?')}); resume with --batch-size set to the "
                                    f"global batch, that value times the number of processes of that run")
            for name in self.defaulted:
                if hasattr(saved, name):
                    setattr(a, name, getattr(saved, name))
            self.resumed_from = point.path
            return run_dir, state
        run_dir = out / (a.name or run_name(a.model, a.input_size, a.patch_size, a.mask_ratio, a.sr))
        if run_dir.is_dir() and any(run_dir.glob("checkpoint-*.pth")):
            raise TrainingError(f"{run_dir} already holds checkpoints; add --resume to continue that run, or choose "
                                "another --out or --name")
        self.resumed_from = None
        return run_dir, None

    def _check_damaged(self, run_dir: Path, point: ResumePoint) -> None:
        """Stop when a damaged checkpoint may hold training past ``point`` unless ``--resume-fallback`` was given;
        then set the damaged files aside (``<name>.damaged``) and say how many logged steps are lost."""
        for bad, reason in point.damaged_older:
            self._warn(f"warning: {reason}; it is older than {point.path.name}, which the run resumes from")
        if not point.damaged_newer:
            return
        step = point.state["step"]
        logged = last_logged_step(run_dir / LOG_FILE)
        lost = (f"{logged - step} logged steps (log.jsonl reaches step {logged})" if logged and logged > step
                else "the steps it held")
        if not getattr(self.args, "resume_fallback", False):
            raise TrainingError(f"{point.damaged_newer[0][1]}; it may hold training past {point.path.name} (step "
                                f"{step}). Restore it, or pass --resume-fallback to resume from {point.path.name} and "
                                f"lose {lost}")
        for bad, reason in point.damaged_newer:
            if self.env.is_main:
                bad.replace(bad.with_name(bad.name + ".damaged"))
            self._warn(f"warning: {reason}; set aside as {bad.name}.damaged")
        self._warn(f"warning: --resume-fallback: resuming from {point.path} at step {step}; {lost} are lost and "
                   "will be trained again")

    def _norm_stats(self, state: dict | None) -> tuple[float, float]:
        a = self.args
        if state is not None:
            return tuple(state["model"]["norm_stats"].tolist())
        if a.norm_stats:
            return tuple(a.norm_stats)
        stats = None
        if self.env.is_main:
            self._say(f"computing norm_stats from {a.norm_stats_samples} random crops ...")
            stats = norm_stats(self.dataset, a.norm_stats_samples, a.seed)
        return D.broadcast_object(stats, self.env)

    def _restore(self, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError) as err:
            raise TrainingError(f"{self.resumed_from}: does not match this run's model/optimizer ({str(err)[:300]}); "
                                "resume with the options of the original run") from None
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.epoch_iter = state["epoch"], state["epoch_iteration"]
        self.iteration, self.step = state["iteration"], state["step"]
        set_rng_state(state["rng"])
        if state.get("data") != self.file_info:
            self._say(f"warning: the file list differs from the one of {self.resumed_from.name} "
                      f"({state.get('data')} vs {self.file_info}); the data order will not match the original run")
        self._say(f"resumed from {self.resumed_from} (epoch {self.epoch}, iteration {self.epoch_iter} of "
                  f"{self.iters_per_epoch}, step {self.step})")

    # ------------------------------------------------------------------------------------------------ output
    def _say(self, text: str) -> None:
        if self.env.is_main and not self.args.quiet:
            print(text, flush=True)

    def _warn(self, text: str) -> None:
        """Data lost or set aside: said on stderr, even with --quiet."""
        if self.env.is_main:
            print(text, file=sys.stderr, flush=True)

    def _save(self, path: Path, epoch: int, epoch_iter: int) -> None:
        if self.env.is_main:
            save_checkpoint(path, self.model, self.optimizer, self.scaler if self.scaler.is_enabled() else None,
                            self.args, epoch=epoch, epoch_iteration=epoch_iter, iteration=self.iteration,
                            step=self.step, data=self.file_info)
        self.last_save = time.monotonic()

    def _start_log(self) -> None:
        """Open ``log.jsonl`` for appending; drop (and say so) the lines past the step the run starts from, which
        the checkpoint does not hold and training redoes, and a line cut short by a kill."""
        self.log_path = self.run_dir / LOG_FILE
        if not self.env.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.log_path.exists():
            return
        kept, past, torn = [], 0, 0
        for line in self.log_path.read_text().splitlines():
            step = log_step(line)
            if step is None:
                torn += bool(line.strip())
            elif step <= self.step:
                kept.append(line)
            else:
                past += 1
        if past or torn:
            write_text(self.log_path, "".join(line + "\n" for line in kept))
            parts = ([f"{past} line(s) after step {self.step}, the step the run continues from"] if past else []) \
                + ([f"{torn} unreadable line(s)"] if torn else [])
            self._warn(f"{self.log_path}: removed {', and '.join(parts)}; kept {len(kept)}")

    def _log(self, record: dict) -> None:
        if self.env.is_main:
            try:
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as err:  # a full disk: name the file
                err.filename = err.filename or str(self.log_path)
                raise

    def _track_rank(self, epoch: int) -> None:
        """Log the effective rank of the probe clips' embeddings (``pretrain.collapse``); warn on a collapse."""
        if self.rank_probe is None:
            return
        rank = self.rank_reference if epoch == 0 else \
            self.rank_probe.measure(self.model, self.device, self.amp_dtype)
        self._log({"step": self.step, "epoch": epoch, "effective_rank": rank, "random_init_rank": self.rank_reference,
                   "rank_clips": len(self.rank_probe), "time": time.time()})
        if epoch == 0:
            return
        self._say(f"epoch {epoch}: effective rank {rank:.1f} of {len(self.rank_probe)} probe clips' embeddings "
                  f"(random init {self.rank_reference:.1f})")
        if rank < COLLAPSE_FRACTION * self.rank_reference:
            self._warn(f"warning: epoch {epoch}: the effective rank of the embeddings fell to {rank:.1f}, "
                       f"{rank / self.rank_reference:.0%} of the random init's {self.rank_reference:.1f}: the "
                       "representation may be collapsing; a slower EMA start (--ema-decay-init closer to 1), a lower "
                       "--blr ended it in the default model's runs (docs/pretraining.md#collapse)")

    # -------------------------------------------------------------------------------------------------- loop
    def set_lr(self, epoch_float: float) -> float:
        a = self.args
        lr = learning_rate(epoch_float, self.base_lr, a.warmup_epochs, a.epochs, a.min_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def iteration_step(self, batch: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
                       epoch_iter: int) -> tuple[torch.Tensor, bool]:
        """One data iteration on this process's part of the global batch; returns (loss, optimizer stepped).

        ``batch`` is ``(clean, background)`` under ``--noise-ratio``: the online encoder then sees the mixture and
        the target encoder the clean crops (M2D-X's denoising), or the mixture too (``--noise-target mixture``)."""
        a = self.args
        update = (epoch_iter + 1) % a.accum_iter == 0
        target = None
        if isinstance(batch, (tuple, list)):
            clean, background = (t.to(self.device, non_blocking=True) for t in batch)
            x = (log_mix(clean, background, self.noise_ratio) - self.mean) / self.std
            target = (clean - self.mean) / self.std if self.noise_target == "clean" else None
        else:
            x = (batch.to(self.device, non_blocking=True) - self.mean) / self.std
        noise = mask_noise(a.seed, self.iteration, self.order.global_batch, self.model.num_patches,
                           self.env.rank, self.order.batch).to(self.device, non_blocking=True)
        sync = self.ddp.no_sync() if (self.ddp is not None and not update) else contextlib.nullcontext()
        with sync:
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                loss = self.net(x, noise, target_lms=target)
            self.scaler.scale(loss / a.accum_iter).backward()
        if update:
            if a.clip_grad and a.clip_grad > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.trainable, a.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.model.update_target(ema_decay(self.iteration, self.total_iters, a.ema_decay_init, a.ema_decay))
            self.step += 1
        self.iteration += 1
        return loss.detach(), update

    def _stop_now(self) -> bool:
        """Whether a stop was requested (Ctrl-C/SIGTERM). Processes agree on it every 10 steps (a collective that
        would otherwise synchronise every step); a single process looks at its flag every step."""
        if not self.env.distributed:
            return self.stop.requested
        if self.step % 10:
            return False
        t = torch.tensor([1.0 if self.stop.requested else 0.0], device=self.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def run(self) -> Path:
        """Train until ``--epochs`` (or ``--steps``); returns the run folder."""
        self._bar = None
        try:
            return self._run()
        finally:
            if self._bar is not None:  # an error ends the bar's line before its message
                self._bar.close()

    def _run(self) -> Path:
        from tqdm import tqdm

        a = self.args
        self._start_log()
        self._say(f"run folder {self.run_dir}; {len(self.dataset)} items/epoch, {self.iters_per_epoch} iterations "
                  f"of global batch {self.order.global_batch} x accum {a.accum_iter}; lr {self.base_lr:.3g}; "
                  f"norm_stats {self.mean:.4f} {self.std:.4f}; device {self.device}, {self.env.world} process(es)")
        if a.warmup_epochs >= a.epochs:
            self._say(f"warning: --warmup-epochs {a.warmup_epochs} >= --epochs {a.epochs}: the learning rate only "
                      "warms up (it never reaches --blr's value nor decays); lower --warmup-epochs")
        if self.step == 0:
            self._track_rank(0)
        self.last_save = time.monotonic()
        window_loss, window_n, window_start = torch.zeros((), device=self.device), 0, time.perf_counter()
        window_samples = 0
        with self.stop:
            for epoch in range(self.epoch, a.epochs):
                start = self.epoch_iter if epoch == self.epoch else 0
                self.order.set_epoch(epoch, start)
                self.optimizer.zero_grad(set_to_none=True)
                bar = tqdm(total=self.iters_per_epoch, initial=start, desc=f"epoch {epoch + 1}/{a.epochs}",
                           unit="it", disable=not (self.env.is_main and a.progress), dynamic_ncols=True)
                self._bar = bar
                for epoch_iter, batch in enumerate(self.loader, start=start):
                    if epoch_iter % a.accum_iter == 0:
                        lr = self.set_lr(epoch + epoch_iter / self.iters_per_epoch)
                    tau = ema_decay(self.iteration, self.total_iters, a.ema_decay_init, a.ema_decay)
                    loss, updated = self.iteration_step(batch, epoch_iter)
                    window_loss += loss
                    window_n += 1
                    window_samples += self.order.global_batch
                    bar.update()
                    if not updated:
                        continue
                    finished_steps = a.steps and self.step >= a.steps
                    if self.step % a.log_every == 0 or finished_steps:
                        mean_loss = D.mean_over_processes(float(window_loss) / window_n, self.env)
                        if not math.isfinite(mean_loss):
                            raise TrainingError(f"the loss became {mean_loss} at step {self.step}; lower --blr, use "
                                                "--precision fp32, or resume from the previous checkpoint with "
                                                "--clip-grad")
                        now = time.perf_counter()
                        record = {"step": self.step, "epoch": round(epoch + (epoch_iter + 1) / self.iters_per_epoch, 5),
                                  "iteration": self.iteration, "loss": mean_loss, "lr": lr, "ema": tau,
                                  "samples_per_s": window_samples / max(now - window_start, 1e-9), "time": time.time()}
                        self._log(record)
                        bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", refresh=False)
                        window_loss.zero_()
                        window_n, window_samples, window_start = 0, 0, now
                    mid = epoch_iter + 1 < self.iters_per_epoch
                    due = a.checkpoint_minutes > 0 and time.monotonic() - self.last_save > a.checkpoint_minutes * 60
                    stop = finished_steps or self._stop_now()
                    if mid and (due or stop):
                        self._save(self.run_dir / LAST, epoch, epoch_iter + 1)
                    if stop and mid:
                        bar.close()
                        self._say(f"stopped at step {self.step}; state saved in {self.run_dir / LAST}")
                        return self.run_dir
                    if stop:
                        break
                bar.close()
                self.epoch, self.epoch_iter = epoch + 1, 0
                done = epoch + 1 == a.epochs or (a.steps and self.step >= a.steps) or self.stop.requested
                if (epoch + 1) % a.save_freq == 0 or done:
                    self._save(epoch_checkpoint(self.run_dir, epoch + 1), epoch + 1, 0)
                if a.rank_every and ((epoch + 1) % a.rank_every == 0 or done):
                    self._track_rank(epoch + 1)
                if done and epoch + 1 < a.epochs:
                    self._say(f"stopped at step {self.step} (end of epoch {epoch + 1})")
                    return self.run_dir
        self._say(f"finished {a.epochs} epochs; checkpoint {epoch_checkpoint(self.run_dir, a.epochs)}")
        return self.run_dir


def train(args: argparse.Namespace, defaulted=()) -> Path:
    """Run (or resume) a pre-training run; returns its folder. ``defaulted``: options to take from the checkpoint
    when resuming."""
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    env = D.init_distributed(args.device)
    try:
        trainer = Trainer(args, env, defaulted)
        trainer.setup()
        return trainer.run()
    except DataError as err:
        # a DataLoader worker's error arrives with its traceback in the message: keep the error's own last line
        lines = [line for line in str(err).splitlines() if line.strip()]
        message = lines[-1] if len(lines) > 1 else str(err)
        raise TrainingError(re.sub(r"^[\w.]*(Error|Exception): ", "", message)) from None
    finally:
        D.shutdown(env)
