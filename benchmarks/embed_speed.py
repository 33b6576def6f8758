"""Scene-embedding throughput of ViT-Base M2D on 10-s clips, beside FLOPs per clip and the machine's matmul rate.

    python benchmarks/embed_speed.py [--device cpu|cuda] [--batch 8] [--repeats 3]
        [--official-repo PATH]   # also time the official portable runtime in the same run (needs einops, nnAudio)

Prints a table and saves ``results/bench/embed_speed_<device>.json``. On CUDA it also times the opt-in bf16 path
and reports its deviation from fp32. Weights are random (a ViT-Base in the official layout): speed does not depend
on their values.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import m2d_hear
from m2d_hear.config import parse_config_name
from m2d_hear.export import random_encoder, save_encoder_only
from m2d_hear.vit import VIT_SIZES

NAME = "m2d_vit_base-80x608p16x16-bench-random"
ROOT = Path(__file__).resolve().parents[1]


def vit_flops(tokens: int, dim: int, depth: int, patch_area: int, mlp_ratio: float = 4.0) -> float:
    """Forward FLOPs (2 per multiply-add) of one ViT pass over ``tokens`` patches plus CLS."""
    n = tokens + 1
    per_block = 2 * n * dim * dim * (4 + 2 * mlp_ratio) + 2 * 2 * n * n * dim
    return depth * per_block + 2 * tokens * patch_area * dim


def flops_per_clip(seconds: float, unit: int = 608, patch: int = 16, n_freq: int = 5) -> float:
    frames = 1 + int(seconds * 16000) // 160
    total, start = 0.0, 0
    while start < frames:
        width = min(unit, frames - start)
        total += vit_flops(n_freq * -(-width // patch), 768, 12, 256)
        start += unit
    front_end = 2 * frames * 400 * 402 + 2 * frames * 201 * 80
    return total + front_end


def matmul_rate(device: str, n: int = 2048, seconds: float = 3.0) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    _sync(device)
    return 2 * n ** 3 * count / (time.perf_counter() - start)


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def clips_per_second(fns: dict, audio, repeats: int, device: str) -> dict[str, float]:
    """Best-of-``repeats`` clips/s of each function, timed in alternation (A, B, A, B, ...) after one warm-up each,
    so that a change in the machine's load or clock during the run affects all of them alike."""
    best = {name: float("inf") for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            fn(audio)  # warm-up
        _sync(device)
        for _ in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn(audio)
                _sync(device)
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: audio.shape[0] / seconds for name, seconds in best.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--official-repo", help="checkout of nttcslab/m2d to time its portable runtime too")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    device = args.device
    if device.startswith("cuda"):  # fp32 means fp32: compare against the official runtime without TF32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / NAME / "weights.pth"
        save_encoder_only(random_encoder(parse_config_name(NAME), VIT_SIZES["base"]), weights)
        ours = m2d_hear.load_model(str(weights), device=device)
        audio = (torch.rand(args.batch, int(args.seconds * 16000), generator=torch.Generator().manual_seed(0))
                 * 2 - 1).to(device)
        result = {
            "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor()
            or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
            "clip_seconds": args.seconds, "date": time.strftime("%Y-%m-%d"),
            "gflops_per_clip": flops_per_clip(args.seconds) / 1e9,
            "matmul_fp32_gflops": matmul_rate(device) / 1e9,
        }
        timed = {"ours_fp32_clips_per_s": ours.scene_embeddings}
        if args.official_repo:
            sys.path.insert(0, str(Path(args.official_repo) / "examples"))
            import portable_m2d

            official = portable_m2d.PortableM2D(str(weights)).to(device)
            timed["official_fp32_clips_per_s"] = official.get_scene_embeddings
        result.update(clips_per_second(timed, audio, args.repeats, device))
        if args.official_repo:
            with torch.inference_mode():
                diff = (official.get_scene_embeddings(audio) - ours.scene_embeddings(audio)).abs().max().item()
            result["ours_vs_official_max_abs"] = diff
        if device.startswith("cuda"):
            with torch.inference_mode():
                ref = ours.scene_embeddings(audio)
                ours.autocast_dtype = torch.bfloat16
                low = ours.scene_embeddings(audio)
            result.update(clips_per_second({"ours_bf16_clips_per_s": ours.scene_embeddings}, audio, args.repeats,
                                           device))
            result["bf16_vs_fp32_max_abs"] = (low - ref).abs().max().item()
            result["bf16_vs_fp32_max_rel"] = result["bf16_vs_fp32_max_abs"] / ref.abs().max().item()
            result["bf16_vs_fp32_min_cosine"] = torch.nn.functional.cosine_similarity(low, ref).min().item()

    fps = result["ours_fp32_clips_per_s"] * result["gflops_per_clip"]
    result["ours_fp32_gflops_achieved"] = fps
    result["ours_fraction_of_matmul_rate"] = fps / result["matmul_fp32_gflops"]
    for key, value in result.items():
        print(f"{key:>30}: {value:.4g}" if isinstance(value, float) else f"{key:>30}: {value}")
    out = args.out or ROOT / "results" / "bench" / f"embed_speed_{device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
