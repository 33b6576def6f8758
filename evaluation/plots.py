"""Bar chart of our scores against the paper's, per task (matplotlib, Agg backend, no display needed)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd


def bar_chart(numeric: pd.DataFrame, path: str | Path, title: str = "", tasks=None,
              task_titles: dict[str, str] | None = None) -> Path:
    """Grouped bars: one group per task, one bar per model (ours and paper), 95 % CI as error bars.

    ``numeric`` has columns model, kind ('ours'/'paper'), task, mean, ci95 (as written by ``tables.comparison``).
    ``tasks``: the groups in order (default: as they first appear); ``task_titles``: axis labels by task name.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from m2d_hear.fileio import atomic_path

    tasks = list(tasks) if tasks is not None else list(dict.fromkeys(numeric.task))
    task_titles = task_titles or {}
    models = list(dict.fromkeys(numeric.model))
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(tasks) * max(1, len(models)) ** 0.5 + 2),
                                    3.4 + 0.22 * len(models)))
    for i, model in enumerate(models):
        g = numeric[numeric.model == model].set_index("task")
        xs, ys, errs = [], [], []
        for j, t in enumerate(tasks):
            if t in g.index:
                xs.append(j + (i - (len(models) - 1) / 2) * width)
                ys.append(float(g.loc[t, "mean"]))
                ci = pd.to_numeric(g.loc[t, "ci95"], errors="coerce")
                errs.append(0.0 if ci is None or math.isnan(ci) else float(ci))
        kind = numeric[numeric.model == model].kind.iloc[0]
        ax.bar(xs, ys, width, yerr=errs, capsize=2, label=model, hatch="//" if kind == "paper" else None,
               alpha=0.75 if kind == "paper" else 1.0)
    ax.set_xticks(range(len(tasks)), [task_titles.get(t, t) for t in tasks])
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 100)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1, frameon=False)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
