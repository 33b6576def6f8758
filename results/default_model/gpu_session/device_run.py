"""The harness that ran the default model's GPU runs (2026-12-04, one H200, torch 2.11.0+cu130), kept as a record.

Opus pool (.pool/opus, from scripts/pool_to_opus.py) -> log-mels -> a speed check of the three runs side by side ->
the three runs, their epoch count sized to the time left -> fp16 encoder exports and logs in $OUT. Settings come
from the environment: the first call used the defaults (runs A, B, C; 238 epochs came out of the speed check), the
second KEYS=D FIXED_EPOCHS=238 WORKERS=8 THREADS=8 BUDGET=300 (the seed-1 run alone). Run on the GPU machine as
PYTHONPATH=<repo> python3 device_run.py. scripts/make_default_model.sh is the shipped run's recipe as one command.
"""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

T0 = time.time()
BUDGET = float(os.environ.get("BUDGET", 520))          # seconds from start until training must have ended
DEVICE = os.environ.get("DEVICE", "cuda")
BS = int(os.environ.get("BS", 512))
WORKERS = os.environ.get("WORKERS", "4")
THREADS = os.environ.get("THREADS", "4")
CAL_STEPS = int(os.environ.get("CAL_STEPS", 50))
MAX_EPOCHS = int(os.environ.get("MAX_EPOCHS", 3000))
POOL = Path(os.environ.get("POOL", ".pool/opus"))
WORK = Path(os.environ.get("WORK", "/tmp/m2dgpu"))
OUT = Path(os.environ.get("OUT", "/tmp/m2dgpu-out"))
MIN_DS = int(os.environ.get("MIN_DS", 10000))
PY = sys.executable

# name: (blr, mask ratio, seed)
CONFIGS = {"A": (7.5e-4, 0.5, 0), "B": (1.5e-3, 0.5, 0), "C": (7.5e-4, 0.6, 0), "D": (7.5e-4, 0.6, 1)}
CONFIGS = {k: CONFIGS[k] for k in os.environ.get("KEYS", "ABC")}
FIXED_EPOCHS = int(os.environ.get("FIXED_EPOCHS", 0))


def say(*parts):
    print(f"[{time.time() - T0:6.1f}s]", *parts, flush=True)


def run_name(key):
    blr, mr, seed = CONFIGS[key]
    return f"m2d_vit_tiny-80x208p16x16-gpu{key}-mr{round(mr * 10)}"


def train_cmd(key, out, epochs, extra=()):
    blr, mr, seed = CONFIGS[key]
    steps = epochs * (MIN_DS // BS)
    ema_init, ema_final = 1 - 1 / (0.067 * steps), 1 - 3 / steps
    warmup = max(1, round(epochs / 15))
    return [PY, "-m", "pretrain.cli", "train", "--data", str(WORK / "lms"), "--out", str(out), "--name", run_name(key),
            "--model", "m2d_vit_tiny", "--input-size", "80x208", "--patch-size", "16x16", "--mask-ratio", str(mr),
            "--decoder-dim", "192", "--decoder-depth", "4", "--decoder-heads", "3", "--epochs", str(epochs),
            "--warmup-epochs", str(warmup), "--batch-size", str(BS), "--blr", str(blr),
            "--ema-decay-init", f"{ema_init:.6f}", "--ema-decay", f"{ema_final:.6f}", "--min-ds-size", str(MIN_DS),
            "--norm-stats-samples", "2000", "--seed", str(seed), "--workers", WORKERS, "--checkpoint-minutes", "0",
            "--clip-grad", "3.0", "--no-progress", "--device", DEVICE, "--threads", THREADS, *extra]


def launch(cmds, logdir):
    logdir.mkdir(parents=True, exist_ok=True)
    procs = {}
    for key, cmd in cmds.items():
        say(key, " ".join(cmd[2:]))
        f = open(logdir / f"{key}.out", "w")
        procs[key] = (subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT), f)
    return procs


def wait(procs, deadline):
    while any(p.poll() is None for p, _ in procs.values()):
        if time.time() > deadline:
            for key, (p, _) in procs.items():
                if p.poll() is None:
                    say(f"{key}: past the deadline, SIGTERM")
                    p.terminate()
            deadline = float("inf")
        time.sleep(1)
    for key, (p, f) in procs.items():
        f.close()
        say(f"{key}: exit {p.returncode}")


def records(run_dir):
    path = run_dir / "log.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    import torch
    say("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(),
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
    # 1. log-mels
    subprocess.run([PY, "-m", "pretrain.cli", "prepare", str(POOL), str(WORK / "lms"), "--min-seconds", "2.08",
                    "--workers", str(min(16, os.cpu_count() or 1))], check=True, stdout=subprocess.DEVNULL)
    n = len((WORK / "lms" / "files.csv").read_text().splitlines()) - 1
    say(f"prepared {n} log-mel files")
    if FIXED_EPOCHS:
        return train_and_export(FIXED_EPOCHS)
    # 2. speed check: the three runs side by side for CAL_STEPS steps
    cal = WORK / "cal"
    t = time.time()
    procs = launch({k: train_cmd(k, cal, 1000, ["--steps", str(CAL_STEPS), "--log-every", "10", "--rank-every", "0",
                                                 "--save-freq", "100000"]) for k in CONFIGS}, cal / "out")
    wait(procs, t + 240)
    cal_wall = time.time() - t
    if any(p.returncode for p, _ in procs.values()):
        for k in CONFIGS:
            say(k, "output tail:\n" + (cal / "out" / f"{k}.out").read_text()[-3000:])
        raise SystemExit("speed check failed")
    rates, starts = [], []
    for k in CONFIGS:
        recs = [r for r in records(cal / run_name(k)) if "samples_per_s" in r]
        rates.append(sum(r["samples_per_s"] for r in recs[-2:]) / 2 / BS)
        first = recs[0]["time"] - t
        starts.append(first)
        say(f"{k}: steps/s (last 20 steps) {rates[-1]:.2f}; first log after {first:.1f}s; "
            f"loss {recs[0]['loss']:.3f} -> {recs[-1]['loss']:.3f}")
    rate, startup = min(rates), max(starts) + 5
    left = T0 + BUDGET - time.time()
    iters = MIN_DS // BS
    epochs = min(MAX_EPOCHS, int(0.9 * rate * (left - startup) / iters))
    say(f"speed check {cal_wall:.0f}s; {left:.0f}s left; {rate:.2f} steps/s each; -> {epochs} epochs "
        f"({epochs * iters} steps of batch {BS})")
    shutil.rmtree(cal)
    if epochs < 10:
        raise SystemExit("too little time left for a run")
    train_and_export(epochs)


def train_and_export(epochs):
    # 3. the runs
    runs = WORK / "runs"
    half = max(1, epochs // 2)
    extra = ["--log-every", "20", "--rank-every", str(max(1, epochs // 10)), "--save-freq", str(half)]
    procs = launch({k: train_cmd(k, runs, epochs, extra) for k in CONFIGS}, runs / "out")
    wait(procs, T0 + BUDGET)
    # 4. exports: the last epoch checkpoint of every run, and the half-way one of A and B
    for k in CONFIGS:
        run_dir = runs / run_name(k)
        ckpts = sorted(run_dir.glob("checkpoint-[0-9]*.pth"), key=lambda p: int(p.stem.split("-")[1]))
        chosen = ckpts[-1:] + ([c for c in ckpts if c.stem == f"checkpoint-{half}"] if k in "ABD" else [])
        for c in dict.fromkeys(chosen):
            ep = c.stem.split("-")[1]
            dest = OUT / f"{run_name(k)}-ep{ep}of{epochs}.pth"
            subprocess.run([PY, "-m", "pretrain.cli", "export", str(c), "--fp16", "--out", str(dest)], check=True,
                           stdout=subprocess.DEVNULL)
            say(f"exported {dest.name} ({dest.stat().st_size / 1e6:.1f} MB)")
    with tarfile.open(OUT / "logs.tar.gz", "w:gz") as tar:
        for k in CONFIGS:
            tar.add(runs / run_name(k) / "log.jsonl", arcname=f"{run_name(k)}/log.jsonl")
            tar.add(runs / "out" / f"{k}.out", arcname=f"{run_name(k)}/stdout.txt")
    say("done")


if __name__ == "__main__":
    main()
