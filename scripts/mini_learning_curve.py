"""Mini-benchmark linear-probe scores of every saved epoch of a pre-training run, beside its random-init twin.

    python scripts/mini_learning_curve.py runs/default/m2d_vit_tiny-80x208p16x16-mini5kopus-b512-mr6 \
        --epochs 119,238 --out results/default_model/curve

Each checkpoint (``checkpoint-<epoch>.pth``, the online encoder) gets the same linear evaluation as ``m2d-eval all``
on the mini benchmark (the probe settings its task.json gives, seeds 42-44), and so do two baselines: a randomly
initialised encoder of the same shape (the twin) and the log-mel mean+std statistics. Writes ``curve.csv`` (one
row per epoch or baseline and task: the score and the effective rank of the task's clip embeddings, a collapse
check) and ``curve.png`` under ``--out``; the evaluation runs, scores and embedding cache go there too, so a killed
run resumes where it stopped.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import m2d_hear
from evaluation.baselines import LogMelStats, random_init_twin
from evaluation.linear_eval import evaluate_linear
from evaluation.mini import mini_task_sources
from evaluation.scores import read_scores
from evaluation.tasks.registry import load_task
from m2d_hear.embedding_rank import effective_rank


def score_of(record: dict, out: Path) -> float:
    """Mean test score in % over the seeds and folds of the record's weights and task, from ``out/scores.csv``
    (rows of an earlier, resumed run included)."""
    scores = read_scores(out)
    rows = scores[(scores.weights_sha256 == record["weights_sha256"]) & (scores.task_id == record["task"]["id"])
                  & (scores.protocol == record["protocol"])]
    return 100.0 * float(rows.score.mean())


def evaluate(weights: Path, label: str, sources: list[str], out: Path, model=None) -> dict[str, tuple[float, float]]:
    """task -> (linear-probe score in %, effective rank of the task's clip embeddings)."""
    model = model or m2d_hear.load_m2d(weights)
    scores = {}
    for source in sources:
        task = load_task(source)
        record = evaluate_linear(task, weights, out, model=model, weights_name=label, num_workers=0,
                                 progress=False, log=lambda *a: None)   # the task's own probe settings
        embeddings = np.load(Path(record["cache"]) / "embeddings.npy", mmap_mode="r")
        scores[task.name] = (score_of(record, out), effective_rank(embeddings))
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="pre-training run folder holding checkpoint-<epoch>.pth")
    parser.add_argument("--epochs", default=None, help="comma-separated epochs [default: every saved checkpoint]")
    parser.add_argument("--mini-dir", default=None, help="mini benchmark cache [default: as m2d-eval all]")
    parser.add_argument("--out", type=Path, default=Path("results/default_model/curve"))
    args = parser.parse_args(argv)

    if args.epochs:
        epochs = [int(e) for e in args.epochs.split(",")]
    else:
        epochs = sorted(int(p.stem.split("-")[1]) for p in args.run.glob("checkpoint-[0-9]*.pth"))
    missing = [e for e in epochs if not (args.run / f"checkpoint-{e}.pth").is_file()]
    if missing:
        raise SystemExit(f"{args.run}: no checkpoint-<epoch>.pth for epochs {missing}; "
                         "train with --save-freq 1 or choose saved epochs")
    sources = mini_task_sources(args.mini_dir, progress=False)
    rows = []
    # the run folder's name gives the configuration, as for any weight file (m2d_vit_tiny-80x208p16x16-...)
    twin = random_init_twin(args.run / f"checkpoint-{epochs[0]}.pth", args.out / "baselines")
    stats = LogMelStats()
    for model, weights, name in ((None, twin, "random-init twin"),
                                 (stats, stats.spec_file(args.out / "baselines"), LogMelStats.label)):
        for task, (score, erank) in evaluate(weights, name, sources, args.out, model).items():
            rows.append({"epoch": 0, "model": name, "task": task, "score": score, "erank": erank})
    for epoch in epochs:
        label = f"{args.run.name}/checkpoint-{epoch}"
        for task, (score, erank) in evaluate(args.run / f"checkpoint-{epoch}.pth", label, sources, args.out).items():
            rows.append({"epoch": epoch, "model": "pre-trained", "task": task, "score": score, "erank": erank})
        done = pd.DataFrame([r for r in rows if r["epoch"] == epoch and r["model"] == "pre-trained"])
        print(f"epoch {epoch}: " + ", ".join(f"{r.task} {r.score:.1f}" for r in done.itertuples())
              + f"; average {done.score.mean():.1f}; effective rank {done.erank.mean():.1f}", flush=True)
    table = pd.DataFrame(rows).sort_values(["epoch", "task"], kind="stable")
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "curve.csv", index=False)
    plot(table, args.out / "curve.png")
    print(f"saved {args.out / 'curve.csv'} and curve.png")


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    trained = table[table.model == "pre-trained"]
    twin = table[table.model == "random-init twin"]
    stats = table[table.model == LogMelStats.label]
    for i, (task, part) in enumerate(trained.groupby("task")):
        line, = ax.plot(part.epoch, part.score, marker="o", label=task, color=f"C{i}")
        ref = twin[twin.task == task]
        if len(ref):
            ax.axhline(ref.score.iloc[0], color=line.get_color(), linestyle=":", linewidth=1)
    avg = trained.groupby("epoch").score.mean()
    ax.plot(avg.index, avg.values, color="black", linewidth=2, marker="s", label="average")
    if len(twin):
        ax.axhline(twin.score.mean(), color="black", linestyle=":", linewidth=2)
    if len(stats):
        ax.axhline(stats.score.mean(), color="black", linestyle="--", linewidth=1.5)
    ax.set_xlabel("pre-training epoch")
    ax.set_ylabel("linear probe, % (dotted: random twin;\ndashed: log-mel mean+std average)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
