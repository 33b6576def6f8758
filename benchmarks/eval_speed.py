"""Linear-evaluation cost per task: embedding throughput, audio decoding, probe time; and an estimate of
``m2d-eval all`` (linear probe part) on the full datasets on one GPU.

    python benchmarks/eval_speed.py [--device cpu] [--clips 4] [--probe-rows 2000] [--gpu-tflops 50]

Measured here (on --device): seconds per clip of ``M2D.scene_embeddings`` for a ViT-Base (random weights, the
official 80x608p16x16 geometry) at each task's clip length; decoding + resampling per clip on one core (44.1 kHz
and 16 kHz sources); probe seconds per epoch for ``--probe-rows`` rows of 3840-d embeddings and each task's class
count. Counted: FLOPs per clip (torch FlopCounterMode).

Estimated, and labelled so: the full-dataset time on one GPU = max(embedding FLOPs / (--gpu-tflops x 1e12),
decoding time / --gpu-workers) + probe time (FLOPs of 200 epochs x 3 seeds x folds at --gpu-tflops, plus
--step-overhead-ms per optimizer step). The assumptions are written into the JSON. Saves
``results/bench/eval_speed-<device>.json`` and a PNG of the estimate per task.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.flop_counter import FlopCounterMode

import m2d_hear
from evaluation.probe import LinearProbe
from m2d_hear.audio import read_audio
from m2d_hear.config import parse_config_name
from m2d_hear.export import random_encoder, save_encoder_only
from m2d_hear.vit import VIT_SIZES

ROOT = Path(__file__).resolve().parents[1]
NAME = "m2d_vit_base-80x608p16x16-bench-random"

# Full dataset sizes (eval_protocols.md A.1): entries embedded, probe rows per round, rounds, classes.
# US8K: each clip is embedded twice (random crop as train, start crop as test); 10 rounds of 7,859 train rows.
# AS20K: the README example of EVAR, 42,118 clips present (train ~ 21,000); sizes depend on the download.
TASKS = {
    "us8k": dict(unit_sec=4.0, entries=2 * 8732, train=7859, valid=0, rounds=10, classes=10, source_rate=44100),
    "vc1": dict(unit_sec=8.2, entries=153516, train=138361, valid=6904, rounds=1, classes=1251, source_rate=16000),
    "gtzan": dict(unit_sec=30.0, entries=930, train=443, valid=197, rounds=1, classes=10, source_rate=22050),
    "spcv2": dict(unit_sec=1.0, entries=105829, train=84843, valid=9981, rounds=1, classes=35, source_rate=16000),
    "as20k": dict(unit_sec=10.0, entries=42118, train=21000, valid=0, rounds=1, classes=527, source_rate=44100),
}
SEEDS, EPOCHS = 3, 200


def time_embedding(model, seconds: float, clips: int, device) -> tuple[float, float]:
    """(seconds per clip, FLOPs per clip) of scene_embeddings on a batch of ``clips``."""
    audio = torch.randn(clips, int(16000 * seconds), device=device) * 0.1
    with torch.no_grad():
        model.scene_embeddings(audio[:1])   # warm-up
        with FlopCounterMode(display=False) as counter:
            model.scene_embeddings(audio[:1])
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        model.scene_embeddings(audio)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - t) / clips, float(counter.get_total_flops())


def time_decoding(folder: Path, seconds: float, rate: int, n: int = 3) -> float:
    """Seconds per clip to decode a ``rate`` WAV of ``seconds`` and resample it to 16 kHz (one process)."""
    path = folder / f"clip_{rate}_{seconds}.wav"
    sf.write(str(path), (np.random.default_rng(0).standard_normal(int(rate * seconds)) * 0.1).astype(np.float32),
             rate, subtype="PCM_16")
    read_audio(path, 16000)
    t = time.perf_counter()
    for _ in range(n):
        read_audio(path, 16000)
    return (time.perf_counter() - t) / n


def time_probe(rows: int, classes: int, dim: int, epochs: int, device: str) -> float:
    """Seconds per probe epoch (train + validation pass) for ``rows`` training rows."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, dim)).astype(np.float32)
    y = rng.integers(0, classes, rows)
    LinearProbe(max_epochs=1, device=device).fit(X[:50], y[:50] % 2)   # warm-up (imports, allocator)
    t = time.perf_counter()
    LinearProbe(max_epochs=epochs, patience=epochs, device=device).fit(X, y, X[:rows // 10], y[:rows // 10],
                                                                      classes=list(range(classes)))
    return (time.perf_counter() - t) / epochs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clips", type=int, default=4, help="clips per timed batch")
    ap.add_argument("--probe-rows", type=int, default=2000)
    ap.add_argument("--probe-epochs", type=int, default=3)
    ap.add_argument("--gpu-tflops", type=float, default=50.0,
                    help="assumed sustained fp32 GPU rate for the estimate (TFLOP/s)")
    ap.add_argument("--gpu-workers", type=int, default=8, help="assumed decoding worker processes on a GPU host")
    ap.add_argument("--step-overhead-ms", type=float, default=1.0, help="assumed per-step overhead of the probe")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    args = ap.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = save_encoder_only(random_encoder(parse_config_name(NAME), VIT_SIZES["base"]),
                                    tmp / NAME / "weights.pth")
        model = m2d_hear.load_m2d(weights).to(device)
        dim = model.scene_embedding_size
        report = {"device": str(device), "machine": platform.processor() or platform.machine(),
                  "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "embedding_dim": dim,
                  "assumptions": {"gpu_tflops": args.gpu_tflops, "gpu_decode_workers": args.gpu_workers,
                                  "probe_step_overhead_ms": args.step_overhead_ms, "seeds": SEEDS,
                                  "probe_epochs_upper_bound": EPOCHS},
                  "tasks": {}}
        print(f"{'task':6} {'s/clip':>8} {'GFLOP/clip':>10} {'decode s':>9} {'probe s/ep':>10} "
              f"{'est. GPU min':>12}")
        for name, t in TASKS.items():
            sec_clip, flops = time_embedding(model, t["unit_sec"], args.clips, device)
            decode = time_decoding(tmp, t["unit_sec"], t["source_rate"])
            probe_epoch = time_probe(args.probe_rows, t["classes"], dim, args.probe_epochs, args.device)
            embed_gpu = t["entries"] * flops / (args.gpu_tflops * 1e12)
            decode_gpu_host = t["entries"] * decode / args.gpu_workers
            rows = t["train"] + t["valid"]
            steps = -(-t["train"] // 200)
            probe_flops = 6 * rows * dim * t["classes"] * EPOCHS * SEEDS * t["rounds"]
            probe_gpu = probe_flops / (args.gpu_tflops * 1e12) + steps * EPOCHS * SEEDS * t["rounds"] * \
                args.step_overhead_ms / 1000
            total = max(embed_gpu, decode_gpu_host) + probe_gpu
            report["tasks"][name] = {
                **t, "measured": {"seconds_per_clip": sec_clip, "decode_seconds_per_clip_one_core": decode,
                                  "probe_seconds_per_epoch": probe_epoch, "probe_rows": args.probe_rows},
                "counted": {"flops_per_clip": flops},
                "cpu_extrapolation_hours": {
                    "embedding": t["entries"] * sec_clip / 3600,
                    "probe_upper_bound": probe_epoch * rows / args.probe_rows * EPOCHS * SEEDS * t["rounds"] / 3600},
                "estimate_one_gpu_seconds": {"embedding_compute": embed_gpu, "decoding": decode_gpu_host,
                                             "probe_upper_bound": probe_gpu, "total": total},
            }
            print(f"{name:6} {sec_clip:8.3f} {flops / 1e9:10.1f} {decode:9.4f} {probe_epoch:10.3f} {total / 60:12.1f}")
        total = sum(v["estimate_one_gpu_seconds"]["total"] for v in report["tasks"].values())
        report["estimate_one_gpu_total_hours"] = total / 3600
        print(f"estimate (not measured on a GPU): m2d-eval all --no-finetune on the five full datasets, one GPU: "
              f"{total / 3600:.2f} h")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"eval_speed-{device.type}.json"
    path.write_text(json.dumps(report, indent=1))
    plot(report, args.out / f"eval_speed-{device.type}.png")
    print(f"saved {path}")


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["tasks"])
    est = [report["tasks"][n]["estimate_one_gpu_seconds"] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bottom = np.zeros(len(names))
    for key, label in (("embedding_compute", "embedding (FLOPs / assumed rate)"),
                       ("probe_upper_bound", "probe, 200 epochs x 3 seeds (upper bound)")):
        vals = np.array([e[key] / 60 for e in est])
        ax.bar(names, vals, bottom=bottom, label=label)
        bottom += vals
    ax.set_ylabel("minutes (estimate)")
    ax.set_title(f"m2d-eval all, linear part, one GPU at {report['assumptions']['gpu_tflops']:g} TFLOP/s: ESTIMATE",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
