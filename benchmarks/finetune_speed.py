"""Seconds per fine-tuning epoch for each task's recipe at the full dataset size.

For every recipe this measures, with a ViT-Base M2D encoder (random weights; speed does not depend on them):

- training steps (mixup, log-mel, SpecAugment, random resized crop, structured token masking, forward, backward,
  optimiser step) at the recipe's input length, at two batch sizes, fitted as ``step = fixed + per_sample x batch``
  (the fixed part is mostly the optimiser update of 85M parameters);
- one evaluation forward pass, per sample;
- decoding one clip of the task's length from a WAV file (what each loader worker does per sample).

and extrapolates to an epoch at the recipe's batch size: ``steps x fixed + train clips x per_sample + evaluated
clips x eval s/sample`` (evaluated = the selection split each epoch). On a CPU these are *estimates from measured
step times*. With ``--device cuda`` the same code measures at the recipe's own batch size (and half of it) instead.

    python benchmarks/finetune_speed.py                 # CPU, batches 2 and 6, every recipe
    python benchmarks/finetune_speed.py --device cuda   # on a GPU, at the recipes' batch sizes

Writes ``results/bench/finetune_speed.{json,md,png}``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from m2d_hear.audio import fit_length, read_audio
from m2d_hear.config import parse_config_name
from m2d_hear.vit import VIT_SIZES, build_encoder

from evaluation.finetune.augment import StepRandom, mixup, random_resized_crop, spec_augment
from evaluation.finetune.model import FineTuneModel
from evaluation.finetune.optim import build_optimizer
from evaluation.finetune.recipes import RECIPES

# Full dataset sizes: (task recipe, unit_sec, classes, train clips per round, clips evaluated per epoch, rounds,
# multilabel, where the counts come from).
TASKS = [
    ("as20k", 10.0, 527, 22160, 20383, 1, True,
     "official balanced_train / eval segment lists (fewer are downloadable); no valid: test evaluated each epoch"),
    ("spcv2", 1.0, 35, 84843, 9981, 1, False, "EVAR metadata asserts: 84,843 train / 9,981 valid / 11,005 test"),
    ("vc1", 8.2, 1251, 138361, 6904, 1, False, "iden_split.txt: 138,361 train / 6,904 valid / 8,251 test"),
    ("us8k", 4.0, 10, 7859, 873, 10, False, "8,732 clips in 10 folds: ~7,859 train / ~873 test per fold"),
    ("gtzan", 30.0, 10, 443, 197, 1, False, "fault-filtered split: 443 train / 197 valid / 290 test"),
    ("esc50", 5.0, 50, 1600, 400, 5, False, "2,000 clips in 5 folds: 1,600 train / 400 test per fold"),
    ("as2m", 10.0, 527, 200000, 20383, 1, True, "200,000 balanced draws per epoch (recipe) / eval 20,383"),
]


def measure(fn, repeats: int, sync) -> float:
    """The fastest of ``repeats`` timed calls after a warm-up: on a shared machine the minimum is the timing least
    inflated by other jobs."""
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_task(task, device, batches, eval_batch, repeats, wav_dir):
    name, unit_sec, n_classes, n_train, n_eval, rounds, multilabel, note = task
    recipe = RECIPES[name]
    cfg = parse_config_name("m2d_vit_base-80x608p16x16-bench")
    torch.manual_seed(0)
    encoder = build_encoder(cfg.input_size, cfg.patch_size, VIT_SIZES["base"])
    model = FineTuneModel(encoder, cfg, n_classes, dur_frames=recipe.dur_frames, token_mask=recipe.token_mask,
                          freeze_embed=recipe.freeze_embed).to(device)
    opt = build_optimizer(recipe.optimizer, model.trainable_parameters(), recipe.lr * 1e-3)
    samples = int(round(16000 * unit_sec))
    batches = batches or (recipe.batch_size // 2, recipe.batch_size)
    eb = eval_batch or recipe.batch_size
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    step_no = [0]
    current = {}

    def train_step():
        wave, y = current["wave"], current["y"]
        b = len(wave)
        model.train()
        rand = StepRandom.for_step(0, 0, step_no[0], b)
        step_no[0] += 1
        x, t = mixup(wave, y, recipe.mixup, rand)
        lms = model.normalized_lms(x)
        lms = spec_augment(lms, recipe.freq_mask, recipe.time_mask, rand)
        if recipe.rrc:
            lms = random_resized_crop(lms, rand)
        logits = model(lms, rand)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, t) if multilabel else \
            -(t * torch.log_softmax(logits, -1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    eval_wave = (0.1 * torch.randn(eb, samples)).to(device)

    @torch.no_grad()
    def eval_step():
        model.eval()
        model(model.normalized_lms(eval_wave))

    step_s = []
    for b in batches:
        current["wave"] = (0.1 * torch.randn(b, samples)).to(device)
        current["y"] = torch.eye(n_classes)[torch.arange(b) % n_classes].to(device)
        step_s.append(measure(train_step, repeats, sync))
    (b1, b2), (t1, t2) = batches, step_s
    per_sample = max((t2 - t1) / (b2 - b1), 0.0)
    fixed = max(t1 - per_sample * b1, 0.0)
    if per_sample == 0.0:  # timing noise: fall back to the plain per-sample time of the larger batch
        per_sample, fixed = t2 / b2, 0.0
    eval_s = measure(eval_step, repeats, sync) / eb
    path = Path(wav_dir) / f"{name}.wav"
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(samples + 8000)).astype(np.float32), 16000)
    decode_s = measure(lambda: fit_length(read_audio(path, 16000), samples), max(3, repeats), lambda: None)
    n_steps = -(-n_train // recipe.batch_size)
    epoch_s = n_steps * fixed + n_train * per_sample + n_eval * eval_s
    train_s = (fixed + per_sample * recipe.batch_size) / recipe.batch_size
    return {"task": name, "recipe_source": recipe.source, "unit_sec": unit_sec, "input_frames": 1 + samples // 160,
            "dur_frames": recipe.dur_frames, "token_mask": recipe.token_mask, "batches_measured": list(batches),
            "step_s_measured": step_s, "step_fixed_s": fixed, "step_per_sample_s": per_sample,
            "eval_batch_measured": eb, "recipe_batch": recipe.batch_size, "train_s_per_sample": train_s,
            "eval_s_per_sample": eval_s, "decode_s_per_clip": decode_s, "train_clips": n_train,
            "eval_clips_per_epoch": n_eval, "epoch_s": epoch_s, "epochs": recipe.epochs, "rounds": rounds,
            "run_h_per_seed": epoch_s * recipe.epochs * rounds / 3600, "counts": note}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs=2, default=None,
                        help="two training batch sizes measured [CPU: 2 6, GPU: half the recipe's and the recipe's]")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--eval-batch", type=int, default=None, help="eval batch measured [CPU: 4, GPU: recipe]")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", nargs="*", default=[t[0] for t in TASKS])
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()
    device = torch.device(args.device)
    cpu = device.type == "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batches or ((2, 6) if cpu else None)
    eval_batch = args.eval_batch or (4 if cpu else None)
    rows = []
    with tempfile.TemporaryDirectory() as wav_dir:
        for task in TASKS:
            if task[0] not in args.tasks:
                continue
            row = bench_task(task, device, batch, eval_batch, args.repeats, wav_dir)
            rows.append(row)
            print(f"{row['task']:6s} steps {row['step_s_measured']} s at batches {row['batches_measured']}; train "
                  f"{row['train_s_per_sample']:.3f} s/sample at batch {row['recipe_batch']}, eval "
                  f"{row['eval_s_per_sample']:.3f} s/sample, decode {1000 * row['decode_s_per_clip']:.1f} ms/clip "
                  f"-> {row['epoch_s'] / 3600:.2f} h/epoch", flush=True)
    kind = (f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, load "
            f"{os.getloadavg()[0]:.1f})" if cpu else torch.cuda.get_device_name(device))
    label = ("ESTIMATE from measured CPU step times (per-sample time x clips; no GPU was available)" if cpu
             else f"measured on {kind} at the recipes' batch sizes")
    meta = {"device": kind, "label": label, "torch": torch.__version__, "encoder": "ViT-Base 16x16 (85M)",
            "precision": "fp32", "batches_measured": batch, "eval_batch_measured": eval_batch}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "finetune_speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["# Fine-tuning speed: seconds per epoch at full dataset size", "", f"**{label}.** Device: {kind}; "
             f"ViT-Base encoder, fp32; training steps measured at batches {batch or 'recipe/2, recipe'} and fitted as "
             f"fixed + per-sample cost, extrapolated to the recipe's batch; eval at batch {eval_batch or 'recipe'}.",
             "", "| task | recipe | frames | batch | step fixed s | train s/sample | eval s/sample | decode ms/clip | "
             "train clips | eval clips/epoch | s/epoch | epochs x rounds | h per seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['recipe_source']} | {r['dur_frames'] or r['input_frames']} | "
                     f"{r['recipe_batch']} | {r['step_fixed_s']:.2f} | "
                     f"{r['train_s_per_sample']:.3f} | {r['eval_s_per_sample']:.3f} | "
                     f"{1000 * r['decode_s_per_clip']:.1f} | {r['train_clips']} | {r['eval_clips_per_epoch']} | "
                     f"{r['epoch_s']:.0f} | {r['epochs']} x {r['rounds']} | {r['run_h_per_seed']:.0f} |")
    lines += ["", "Clip counts: " + "; ".join(f"{r['task']}: {r['counts']}" for r in rows) + ".", "",
              "Command: `python benchmarks/finetune_speed.py" + ("" if cpu else f" --device {args.device}")
              + (f" --threads {args.threads}" if args.threads else "") + "`"]
    (out / "finetune_speed.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.bar([r["task"] for r in rows], [r["epoch_s"] / 3600 for r in rows])
        ax.set_ylabel("hours per epoch")
        ax.set_yscale("log")
        ax.set_title(("CPU estimate: " if cpu else "measured: ") + "fine-tuning epoch, ViT-Base", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "finetune_speed.png", dpi=120)
    except Exception as err:  # noqa: BLE001 - the figure is optional
        print(f"(no figure: {err})")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
