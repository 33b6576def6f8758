"""``m2d-pretrain plot``: the loss (and learning-rate) curve of a run, from its ``log.jsonl``, and under it the
effective rank of the collapse watch where the log has it."""
from __future__ import annotations

import json
from pathlib import Path

import click


def read_log(path: Path) -> list[dict]:
    """Every record of ``log.jsonl``: training steps (with ``loss``) and effective ranks (``effective_rank``)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_log(log: Path, out: Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log)
    rows = [r for r in records if "loss" in r and "step" in r]
    ranks = [r for r in records if "effective_rank" in r and "step" in r]
    if not rows:
        raise click.ClickException(f"{log}: no training steps logged yet")
    steps = [r["step"] for r in rows]
    if ranks:
        fig, (loss_ax, rank_ax) = plt.subplots(2, 1, figsize=(7, 5.4), sharex=True, height_ratios=(2, 1))
        rank_ax.plot([r["step"] for r in ranks], [r["effective_rank"] for r in ranks], color="tab:green",
                     marker="o", ms=3, lw=1.2, label="effective rank of the probe clips' embeddings")
        rank_ax.axhline(ranks[-1]["random_init_rank"], color="gray", ls=":", lw=1, label="random init")
        rank_ax.set_ylabel("effective rank")
        rank_ax.set_xlabel("optimizer step")
        rank_ax.legend(fontsize=7, loc="lower right")
    else:
        fig, loss_ax = plt.subplots(figsize=(7, 3.6))
    loss_ax.plot(steps, [r["loss"] for r in rows], color="tab:blue", lw=1.2, label="M2D loss (2 - 2 cos)")
    loss_ax.set_xlabel("" if ranks else "optimizer step")
    loss_ax.set_ylabel("loss")
    lr_ax = loss_ax.twinx()
    lr_ax.plot(steps, [r.get("lr", float("nan")) for r in rows], color="tab:orange", lw=0.8, ls="--", label="lr")
    lr_ax.set_ylabel("learning rate")
    loss_ax.set_title(title or log.parent.name, fontsize=9)
    fig.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="PNG [default: RUN_DIR/loss.png]")
def plot(run_dir: Path, out: Path | None):
    """Plot RUN_DIR/log.jsonl (loss and learning rate per optimizer step; the effective rank below) to a PNG."""
    log = run_dir / "log.jsonl"
    if not log.is_file():
        raise click.ClickException(f"{log}: no log; is RUN_DIR a run folder written by 'm2d-pretrain train'?")
    click.echo(str(plot_log(log, out or run_dir / "loss.png")))
