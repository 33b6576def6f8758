"""``m2d-pretrain plot``: the loss (and learning-rate) curve of a run, from its ``log.jsonl``."""
from __future__ import annotations

import json
from pathlib import Path

import click


def read_log(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if "loss" in r and "step" in r]


def plot_log(log: Path, out: Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log)
    if not rows:
        raise click.ClickException(f"{log}: no training steps logged yet")
    steps = [r["step"] for r in rows]
    fig, loss_ax = plt.subplots(figsize=(7, 3.6))
    loss_ax.plot(steps, [r["loss"] for r in rows], color="tab:blue", lw=1.2, label="M2D loss (2 - 2 cos)")
    loss_ax.set_xlabel("optimizer step")
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
    """Plot RUN_DIR/log.jsonl (loss and learning rate per optimizer step) to a PNG."""
    log = run_dir / "log.jsonl"
    if not log.is_file():
        raise click.ClickException(f"{log}: no log; is RUN_DIR a run folder written by 'm2d-pretrain train'?")
    click.echo(str(plot_log(log, out or run_dir / "loss.png")))
