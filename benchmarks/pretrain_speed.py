"""Pre-training speed: samples/s and peak memory of M2D training steps (default: the paper's ViT-Base 80x608).

Each measurement runs in its own process (so peak memory is that run's) on a synthetic log-mel corpus written to a
temporary folder, through the whole trainer (data loader, normalisation, masking, forward/backward, AdamW, EMA):

    python benchmarks/pretrain_speed.py                                   # CPU, batch 4, fp32
    python benchmarks/pretrain_speed.py --device cuda --batch-size 128 --amp bf16 [--compile]

On CUDA it also reports the model FLOP utilisation (MFU): training FLOPs per sample (counted with
``torch.utils.flop_counter`` on one step) x samples/s / the GPU's peak dense bf16 FLOP/s (``--peak-tflops``,
989 for an H100 SXM).

Comparison with the official trainer: set ``M2D_OFFICIAL_TRAINER`` to an nttcslab/m2d checkout with
``patch_m2d.diff`` applied to facebookresearch/mae ``efb2a80`` (README section 1). Its own training-loop function
(``train_one_epoch_m2dx``), dataset, model and loss scaler are then timed the same way on the same corpus. On a
machine without CUDA its unconditional ``torch.cuda.synchronize()`` is replaced by a no-op (nothing else changes;
its ``torch.cuda.amp`` autocast and scaler disable themselves, so both sides run fp32 on CPU).

Results go to ``results/bench/pretrain_speed-<device>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "results" / "bench"


def make_corpus(folder: Path, n_files: int, n_mels: int = 80, seed: int = 0) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n_files):
        frames = int(rng.integers(700, 1001))
        lms = (rng.standard_normal((1, n_mels, frames)) * 4.2 - 7.1).astype(np.float32)
        np.save(folder / f"{i:04d}.npy", lms)
        names.append(f"{i:04d}.npy")
    (folder / "files.csv").write_text("file_name\n" + "\n".join(names) + "\n")
    return folder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------------- workers
def training_flops_per_sample(model, batch, device) -> float:
    """Forward + backward FLOPs of one training step, per sample (matmuls and convolutions)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, 1, *model.input_size, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def worker_ours(a) -> dict:
    import torch

    from pretrain.train import namespace
    from pretrain.train import train as train_command
    from pretrain.trainer import Trainer

    torch.set_num_threads(a.threads) if a.threads else None
    # the command's own parser fills every option, so the benchmark follows the CLI as it changes
    argv = ["--data", a.data, "--out", a.out, "--name", "bench", "--model", a.model, "--input-size", a.input_size,
            "--decoder-dim", a.decoder_dim, "--decoder-depth", a.decoder_depth, "--decoder-heads", a.decoder_heads,
            "--epochs", 1000, "--batch-size", a.batch_size, "--norm-stats-samples", 20,
            "--min-ds-size", a.batch_size * (a.warmup + a.steps),  # the 32-file corpus, repeated
            "--workers", a.num_workers, "--save-freq", 10**6, "--checkpoint-minutes", 0,
            "--precision", "fp32" if a.amp == "none" else a.amp, "--steps", a.warmup + a.steps, "--device", a.device,
            "--threads", a.threads, "--log-every", 1, "--rank-every", 0, "--no-progress", "--quiet"]
    argv += ["--compile"] if a.compile else []
    options = dict(train_command.make_context("train", [str(v) for v in argv]).params)
    trainer = Trainer(namespace(options))
    trainer.setup()
    flops = training_flops_per_sample(trainer.model, min(a.batch_size, 2), trainer.device)
    trainer.optimizer.zero_grad(set_to_none=True)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.args.checkpoint_minutes = 0
    trainer._save = lambda *args, **kw: None  # time training, not the 1.7 GB checkpoint write
    run = trainer.run()
    log = [r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "loss" in r]
    timed = log[a.warmup:]
    # samples/s over the timed steps: total samples / total time (the log's windows are one step each)
    seconds = sum(a.batch_size / r["samples_per_s"] for r in timed)
    result = {"samples_per_s": a.batch_size * len(timed) / seconds,
              "step_s_median": statistics.median(a.batch_size / r["samples_per_s"] for r in timed),
              "peak_rss_mb": peak_rss_mb(), "train_flops_per_sample": flops,
              "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)}
    if trainer.device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def worker_official(a) -> dict:
    import torch

    repo = Path(os.environ["M2D_OFFICIAL_TRAINER"])
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    torch.set_num_threads(a.threads) if a.threads else None
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *args, **kw: None  # the official loop calls it unconditionally
    import audio_dataset
    import timm.optim.optim_factory as optim_factory
    from m2d import models_mae
    from m2d.engine_pretrain_m2d import train_one_epoch_m2dx
    from util.misc import NativeScalerWithGradNormCount

    device = torch.device("cuda" if a.device.startswith("cuda") else "cpu")
    torch.manual_seed(0)
    files = audio_dataset.get_files(Path(a.data) / "files.csv")
    n_iter = a.warmup + a.steps
    files = audio_dataset.inflate_files(files, a.batch_size * n_iter)
    ds = audio_dataset.MixedSpecDataset(base_folder=a.data, files_main=files, files_bg_noise=[],
                                        crop_size=[80, int(a.input_size.split("x")[1])], noise_ratio=0.0,
                                        random_crop=True, n_norm_calc=40)

    def loader(iterations):  # as its train_audio.py (shuffled, drop_last), one process, `iterations` batches
        sampler = torch.utils.data.RandomSampler(ds, num_samples=a.batch_size * iterations)
        return torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=a.batch_size, num_workers=a.num_workers,
                                           pin_memory=device.type == "cuda", drop_last=True)
    model = models_mae.__dict__[a.model](img_size=[int(v) for v in a.input_size.split("x")], patch_size=[16, 16],
                                         decoder_depth=a.decoder_depth, norm_pix_loss=True, loss_type="norm_mse",
                                         target_layers=None, norm_stats=ds.norm_stats).to(device)
    args = argparse.Namespace(accum_iter=1, clip_grad=3.0, mask_ratio=0.7, model=a.model, lr=3e-4 * a.batch_size / 256,
                              min_lr=0.0, warmup_epochs=20, epochs=1000, loss_off=0.0)
    groups = optim_factory.param_groups_weight_decay(model, 0.05)
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))
    scaler = NativeScalerWithGradNormCount()
    ema = lambda step: 0.99995  # noqa: E731 - the schedule's value does not change the cost
    autocast = {"dtype": torch.bfloat16} if a.amp == "bf16" else {}
    # warm-up epoch of `warmup` iterations, then a timed epoch of `steps` iterations
    train_one_epoch_m2dx(model, None, loader(a.warmup), optimizer, device, 0, scaler, ema, autocast_args=autocast,
                         args=args)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    train_one_epoch_m2dx(model, None, loader(a.steps), optimizer, device, 1, scaler, ema, autocast_args=autocast,
                         args=args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {"samples_per_s": a.batch_size * a.steps / seconds, "peak_rss_mb": peak_rss_mb(),
              "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    if device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


# ------------------------------------------------------------------------------------------------------ main
def run_worker(kind: str, a, data: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--data", str(data), "--out", str(out)]
    for key in ("model", "input_size", "batch_size", "steps", "warmup", "device", "amp", "threads", "num_workers",
                "decoder_dim", "decoder_depth", "decoder_heads"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(a, key))]
    if a.compile:
        cmd.append("--compile")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="m2d_vit_base")
    p.add_argument("--input-size", default="80x608")
    p.add_argument("--decoder-dim", type=int, default=512)
    p.add_argument("--decoder-depth", type=int, default=8)
    p.add_argument("--decoder-heads", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=8, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=2, help="alternate ours/official this many times (median kept)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16", "auto"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--peak-tflops", type=float, default=989.0, help="GPU peak dense bf16 TFLOP/s for the MFU")
    p.add_argument("--worker", choices=["ours", "official"], help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        result = worker_ours(a) if a.worker == "ours" else worker_official(a)
        print(json.dumps(result))
        return

    official = os.environ.get("M2D_OFFICIAL_TRAINER")
    if official and (a.model not in ("m2d_vit_base", "m2d_vit_large") or (a.decoder_dim, a.decoder_heads) != (512, 16)):
        print(f"the official code has no {a.model} with a {a.decoder_dim}-d predictor: timing ours only")
        official = None
    runs = {"ours": [], "official": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_corpus(Path(tmp) / "lms", 32)
        for r in range(a.rounds):
            for kind in ["ours", "official"] if official else ["ours"]:
                res = run_worker(kind, a, data, Path(tmp) / f"{kind}{r}")
                runs[kind].append(res)
                print(f"round {r + 1} {kind:8s}: {res['samples_per_s']:.3f} samples/s, "
                      f"peak RSS {res['peak_rss_mb']:.0f} MB" +
                      (f", peak CUDA {res['peak_cuda_mb']:.0f} MB" if "peak_cuda_mb" in res else ""), flush=True)
    summary = {}
    for kind, results in runs.items():
        if not results:
            continue
        best = {"samples_per_s_median": statistics.median(r["samples_per_s"] for r in results),
                "samples_per_s_runs": [r["samples_per_s"] for r in results],
                "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
                "trainable_params": results[0]["trainable_params"]}
        if "peak_cuda_mb" in results[0]:
            best["peak_cuda_mb"] = max(r["peak_cuda_mb"] for r in results)
        if "train_flops_per_sample" in results[0]:
            best["train_gflops_per_sample"] = results[0]["train_flops_per_sample"] / 1e9
            if a.device.startswith("cuda"):
                best["mfu"] = best["samples_per_s_median"] * results[0]["train_flops_per_sample"] / (a.peak_tflops * 1e12)
        summary[kind] = best
    import torch

    record = {"benchmark": "pretrain_speed", "model": a.model, "input_size": a.input_size,
              "decoder": [a.decoder_dim, a.decoder_depth, a.decoder_heads], "batch_size": a.batch_size,
              "steps": a.steps, "warmup": a.warmup, "rounds": a.rounds, "device": a.device, "amp": a.amp,
              "compile": a.compile, "threads": a.threads or torch.get_num_threads(), "num_workers": a.num_workers,
              "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "load_avg_at_end": os.getloadavg(), "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name() if a.device.startswith("cuda") else None,
              "official_trainer": official or None, "results": summary,
              "command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:])}
    if "official" in summary:
        record["ours_over_official"] = summary["ours"]["samples_per_s_median"] / summary["official"]["samples_per_s_median"]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tag = "" if (a.model, a.input_size, a.decoder_dim, a.decoder_depth) == ("m2d_vit_base", "80x608", 512, 8) else \
        f"-{a.model}-{a.input_size}-dec{a.decoder_dim}x{a.decoder_depth}"
    out = OUT_DIR / f"pretrain_speed-{a.device.split(':')[0]}{tag}.json"
    from m2d_hear.fileio import write_json

    write_json(out, record, indent=2)
    print(json.dumps(summary, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
