"""Peak memory and time of ``hear-embed`` on one long clip of an event task, for several clip durations.

    python benchmarks/hear_embed_long.py [--durations 10,60,300,600] [--hop-ms 40] [--depth 12] [--device cpu]

Each duration runs in a fresh process: a one-clip HEAR event task (tone bursts in noise, 16 kHz) is embedded by the
real ``embed_tasks`` path with a randomly initialised 768-wide ViT (ViT-Base; ``--depth`` below 12 keeps the
per-pass activation memory of ViT-Base but runs faster). Reported per duration: wall seconds, peak resident memory
of the process (``ru_maxrss``), its growth over the loaded model, and the size of the clip's own output (timestamps
x 3840 x 4 bytes), which any runner must hold. Bounded embedding means the growth tracks the output size, not the
duration squared or the number of chunks. Saves ``results/bench/hear_embed_long-<device>.json``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(seconds: float, hop_ms: float, depth: int, device: str, queue) -> None:
    import numpy as np
    import torch

    from evaluation.hear.embed import embed_tasks
    from evaluation.hear.toy_tasks import RATE, noise, tone, write_task
    from m2d_hear.config import parse_config_name
    from m2d_hear.export import random_encoder, save_encoder_only
    from m2d_hear.hear import load_model
    from m2d_hear.vit import ViTSize

    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        name = "m2d_vit_base-80x608p16x16-bench-random"
        weights = save_encoder_only(random_encoder(parse_config_name(name), ViTSize(768, depth, 12)),
                                    tmp / name / "weights_ep0.pth")
        rng = np.random.default_rng(0)
        wave = noise(seconds, rng)
        events = []
        for k in range(int(seconds // 5)):
            a = int((5 * k + 1) * RATE)
            wave[a:a + RATE] += tone(400.0, 1.0, rng)
            events.append({"label": "low", "start": 5000.0 * k + 1000, "end": 5000.0 * k + 2000})
        meta = {"task_name": "long_clip", "embedding_type": "event", "prediction_type": "multilabel",
                "split_mode": "trainvaltest", "sample_duration": seconds, "evaluation": ["event_onset_200ms_fms"]}
        write_task(tmp / "tasks", "long_clip-v1-full", meta, ["low"], {"test": {"clip.wav": (wave, events)}})
        load_model(str(weights), timestamp_hop_ms=hop_ms, device=device)  # warm the loader, measure the base
        base = _rss_mb()
        start = time.perf_counter()
        embed_tasks(weights, tmp / "tasks", tmp / "emb", hop_ms=hop_ms, device=device, progress=False,
                    echo=lambda *_: None)
        elapsed = time.perf_counter() - start
        rows, dim = json.loads((tmp / "emb/long_clip-v1-full/test.embedding-dimensions.json").read_text())
        gpu = torch.cuda.max_memory_allocated() / 2 ** 20 if device.startswith("cuda") else None
    queue.put({"seconds": seconds, "wall_s": elapsed, "peak_rss_mb": _rss_mb(), "rss_growth_mb": _rss_mb() - base,
               "timestamps": rows, "dim": dim, "output_mb": rows * dim * 4 / 2 ** 20, "gpu_peak_mb": gpu})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", default="10,60,300,600", help="clip durations in seconds, comma-separated")
    parser.add_argument("--hop-ms", type=float, default=40.0)
    parser.add_argument("--depth", type=int, default=12, help="ViT blocks (12 = ViT-Base)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    print(f"{'clip s':>7} {'wall s':>8} {'peak RSS MB':>12} {'growth MB':>10} {'output MB':>10} {'timestamps':>10}")
    for seconds in (float(s) for s in args.durations.split(",")):
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(seconds, args.hop_ms, args.depth, args.device, queue))
        proc.start()
        row = queue.get()
        proc.join()
        rows.append(row)
        print(f"{row['seconds']:7.0f} {row['wall_s']:8.1f} {row['peak_rss_mb']:12.0f} {row['rss_growth_mb']:10.0f} "
              f"{row['output_mb']:10.1f} {row['timestamps']:10d}")
    out = ROOT / "results" / "bench" / f"hear_embed_long-{args.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": "python benchmarks/hear_embed_long.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "model": f"random ViT, 768-d, {args.depth} blocks, 80x608p16x16", "hop_ms": args.hop_ms,
        "machine": platform.platform(), "processor": platform.processor(), "rows": rows}, indent=2))
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
