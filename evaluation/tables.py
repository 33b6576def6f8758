"""Result tables: our measured scores (mean ± 95 % CI over seeds, in %) beside the paper's numbers.

``summarize`` reduces ``scores.csv`` rows: per (weights, task, protocol, seed) the mean over folds, then per
(weights, task, protocol) the mean and 95 % CI over seeds (:func:`evaluation.metrics.mean_ci95`). ``comparison``
lays the summary out with rows = our weights then the selected paper models, columns = tasks; tasks without a paper
number (e.g. mini-benchmark tasks) get an empty paper cell. ``write_tables`` writes Markdown, CSV and LaTeX plus a
bar chart for each protocol found; under the Markdown table go the notes the runs recorded (``table_note`` of a
run record, from the task's own settings, e.g. the mini benchmark's probe).

Rows are grouped by identity, not by name: within a protocol, a weights label whose rows carry more than one
``weights_sha256`` becomes one row per hash, labelled ``label [ab12cd]`` (``[unknown]`` for rows written before the
hash was recorded), and a task name with more than one ``task_id`` becomes one column per identity the same way;
scores of different weights or task data are never averaged together.
"""
from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import pandas as pd

from evaluation.metrics import mean_ci95
from evaluation.plots import bar_chart
from evaluation.scores import read_scores
from m2d_hear.fileio import locked, write_csv, write_text

# Column order: the paper's task order first, then any other task alphabetically.
TASK_ORDER = ["esc50", "us8k", "spcv2", "vc1", "voxforge", "cremad", "gtzan", "gtzan_hear10fold", "nsynth", "surge",
              "as2m", "as20k"]
TASK_TITLES = {"esc50": "ESC-50", "us8k": "US8K", "spcv2": "SPCV2", "vc1": "VC1", "voxforge": "VoxForge",
               "cremad": "CREMA-D", "gtzan": "GTZAN", "gtzan_hear10fold": "GTZAN (HEAR 10-fold)",
               "nsynth": "NSynth", "surge": "Surge", "as2m": "AS2M", "as20k": "AS20K", "average": "Average"}
DEFAULT_PAPER_MODELS = ("M2D/0.7",)
REPORT_DIR = "tables"


REFERENCE_COLUMNS = ["source", "table", "protocol", "model", "task", "metric", "score", "ci95"]


def reference_files(folder: str | Path | None = None) -> list:
    """The ``paper_*.csv`` files of ``folder``, or by default the paper numbers shipped as package data in
    ``evaluation/reference/`` (read through ``importlib.resources``, so an installed copy finds them too)."""
    root = Path(folder) if folder else resources.files("evaluation") / "reference"
    return sorted((p for p in root.iterdir() if p.name.startswith("paper_") and p.name.endswith(".csv")),
                  key=lambda p: p.name)


def load_reference(folder: str | Path | None = None) -> pd.DataFrame:
    frames = []
    for path in reference_files(folder):
        with path.open("rb") as f:
            frames.append(pd.read_csv(f))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REFERENCE_COLUMNS)


UNKNOWN = "unknown"   # the suffix of rows whose hash was not recorded
SUFFIX_MIN = 6        # hex digits of a distinguishing suffix (more where 6 do not tell the hashes apart)


def suffixes(ids) -> dict[str, str]:
    """A short distinguishing tag for each distinct id: its first hex digits, or ``unknown`` for ''."""
    known = sorted({i for i in ids if i})
    n = SUFFIX_MIN
    while n < 64 and len({i[:n] for i in known}) < len(known):
        n += 2
    return {i: (i[:n] if i else UNKNOWN) for i in set(ids)}


def _display_names(scores: pd.DataFrame, name: str, ident: str) -> pd.Series:
    """``name`` of each row, with `` [tag]`` appended where, within its protocol, that name has several ``ident``."""
    shown = scores[name].astype(str).copy()
    for _, g in scores.groupby(["protocol", name], sort=False):
        ids = list(g[ident])
        if len(set(ids)) > 1:
            tags = suffixes(ids)
            shown.loc[g.index] = [f"{n} [{tags[i]}]" for n, i in zip(g[name], ids)]
    return shown


def base_task(task: str) -> str:
    """The task name of a (possibly suffixed) column: ``us8k [ab12cd]`` -> ``us8k``."""
    return task.split(" [", 1)[0]


def task_title(task: str) -> str:
    base = base_task(task)
    return TASK_TITLES.get(base, base) + task[len(base):]


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows (weights, protocol, task, metric, n_seeds, n_folds, mean, ci95, weights_sha256, task_id, task_name)
    with mean and CI in %; ``weights``/``task`` carry a distinguishing suffix where one name has several
    identities (``task_name`` is the task without it)."""
    cols = ["weights", "protocol", "task", "metric", "n_seeds", "n_folds", "mean", "ci95", "weights_sha256",
            "task_id", "task_name"]
    if scores.empty:
        return pd.DataFrame(columns=cols)
    scores = scores.reset_index(drop=True).copy()
    for column in ("weights_sha256", "task_id"):
        scores[column] = scores[column].fillna("").astype(str) if column in scores.columns else ""
    scores["task_name"] = scores["task"].astype(str)
    scores["weights"] = _display_names(scores, "weights", "weights_sha256")
    scores["task"] = _display_names(scores, "task", "task_id")
    group = ["weights", "weights_sha256", "protocol", "task", "task_id", "task_name", "metric"]
    per_seed = (scores.groupby(group + ["seed"], sort=False)
                .agg(score=("score", "mean"), n_folds=("fold", "nunique")).reset_index())
    out = []
    for (w, sha, p, t, tid, name, m), g in per_seed.groupby(group, sort=False):
        mean, ci = mean_ci95(g.score * 100.0)
        out.append([w, p, t, m, len(g), int(g.n_folds.max()), mean, ci, sha, tid, name])
    return pd.DataFrame(out, columns=cols)


def ordered_tasks(tasks) -> list[str]:
    """The paper's task order first, then others alphabetically; suffixed columns sit beside their task."""
    tasks = list(dict.fromkeys(tasks))
    rank = {t: i for i, t in enumerate(TASK_ORDER)}
    return sorted(tasks, key=lambda t: (rank.get(base_task(t), len(rank)), base_task(t), t))


def fmt(mean, ci) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    if ci is None or (isinstance(ci, float) and math.isnan(ci)) or ci == "":
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {float(ci):.1f}"


def paper_rows(reference: pd.DataFrame, protocol: str, models) -> list[tuple[str, pd.DataFrame]]:
    """For each requested model, its rows from the first paper table that has it for this protocol."""
    ref = reference[reference.protocol == protocol]
    rows = []
    for model in models:
        name, _, table = model.partition("@")
        hit = ref[(ref.model == name) & ((ref.table == table) if table else True)]
        if hit.empty:
            continue
        first = hit.iloc[0]
        hit = hit[(hit.source == first.source) & (hit.table == first.table)]
        venue = "TASLP 2024" if "TASLP" in first.source else "Interspeech 2024"
        rows.append((f"{name} (paper: {venue} {first.table})", hit))
    return rows


def comparison(summary: pd.DataFrame, reference: pd.DataFrame, protocol: str,
               paper_models=DEFAULT_PAPER_MODELS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(display table of strings, numeric long table) for one protocol."""
    ours = summary[summary.protocol == protocol]
    tasks = ordered_tasks(ours.task)
    # an average needs one column per task: a task shown under two identities ('us8k [ab12cd]', 'us8k [ef34..]')
    # would be counted twice, so no row gets an average then
    averaged = len(tasks) > 1 and len({base_task(t) for t in tasks}) == len(tasks)
    records, numeric = [], []
    for w, g in ours.groupby("weights", sort=False):
        by_task = {r.task: r for r in g.itertuples()}
        row = {"model": f"{w} (ours)"}
        for t in tasks:
            r = by_task.get(t)
            row[t] = fmt(r.mean, r.ci95) if r is not None else ""
            if r is not None:
                numeric.append({"model": w, "kind": "ours", "task": t, "metric": r.metric, "mean": r.mean,
                                "ci95": r.ci95, "n_seeds": r.n_seeds, "n_folds": r.n_folds, "source": "measured"})
        if averaged and all(t in by_task for t in tasks):
            row["average"] = f"{sum(by_task[t].mean for t in tasks) / len(tasks):.1f}"
        records.append(row)
    for label, hit in paper_rows(reference, protocol, paper_models):
        by_task = {r.task: r for r in hit.itertuples()}
        row = {"model": label}
        for t in tasks:
            r = by_task.get(base_task(t))
            row[t] = fmt(r.score, r.ci95) if r is not None else ""
            if r is not None:
                numeric.append({"model": label, "kind": "paper", "task": t, "metric": r.metric, "mean": r.score,
                                "ci95": r.ci95, "n_seeds": "", "n_folds": "", "source": f"{r.source}, {r.table}"})
        if averaged and all(base_task(t) in by_task for t in tasks):
            row["average"] = f"{sum(by_task[base_task(t)].score for t in tasks) / len(tasks):.1f}"
        records.append(row)
    columns = ["model"] + tasks + (["average"] if any("average" in r for r in records) else [])
    table = pd.DataFrame(records, columns=columns).fillna("")
    return table, pd.DataFrame(numeric)


def to_markdown(table: pd.DataFrame) -> str:
    heads = [task_title(c) for c in table.columns]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(["---"] + ["---:"] * (len(heads) - 1)) + "|"]
    lines += ["| " + " | ".join(str(v) if v != "" else "–" for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("±", r"$\pm$")):
        s = s.replace(a, b)
    return s


def to_latex(table: pd.DataFrame, caption: str) -> str:
    heads = [task_title(c) for c in table.columns]
    lines = [r"\begin{table}[t]", r"\centering", f"\\caption{{{_tex(caption)}}}",
             r"\begin{tabular}{l" + "r" * (len(heads) - 1) + "}", r"\hline",
             " & ".join(_tex(h) for h in heads) + r" \\", r"\hline"]
    lines += [" & ".join(_tex(str(v)) if v != "" else "--" for v in row) + r" \\"
              for row in table.itertuples(index=False)]
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


CAPTIONS = {
    "linear": "Linear evaluation (EVAR protocol): accuracy or mAP in %, mean ± 95 % CI over probe seeds; "
              "paper rows from the cited table.",
    "finetune": "Fine-tuning: accuracy or mAP in %, mean ± 95 % CI over seeds; paper rows from the cited table.",
}


def write_tables(results_dir: str | Path, reference: str | Path | None = None,
                 paper_models=DEFAULT_PAPER_MODELS, plot: bool = True) -> list[Path]:
    """Write ``tables/<protocol>.{md,csv,tex,png}`` and ``tables/summary.csv`` under ``results_dir``.

    Runs under the lock of the tables folder and reads ``scores.csv`` inside it, so when several runs finish at
    once the last writer's tables hold every row; each file is replaced atomically."""
    results_dir = Path(results_dir)
    out = results_dir / REPORT_DIR
    with locked(out):
        scores = read_scores(results_dir)
        if scores.empty:
            raise FileNotFoundError(f"{results_dir / 'scores.csv'}: no scores yet; run m2d-eval linear or all first")
        summary = summarize(scores)
        ref = load_reference(reference)
        out.mkdir(parents=True, exist_ok=True)
        written = [write_csv(out / "summary.csv", summary)]
        for protocol in summary.protocol.unique():
            table, numeric = comparison(summary, ref, protocol, paper_models)
            caption = CAPTIONS.get(protocol, f"{protocol}: scores in %, mean ± 95 % CI over seeds.")
            notes = run_notes(results_dir, scores[scores.protocol == protocol])
            md = write_text(out / f"{protocol}.md",
                            f"{caption}\n\n" + to_markdown(table) + _sources_note(numeric, notes))
            written += [md, write_csv(out / f"{protocol}.csv", numeric),
                        write_text(out / f"{protocol}.tex", to_latex(table, caption))]
            if plot and not numeric.empty:
                tasks = ordered_tasks(numeric.task)
                written.append(bar_chart(numeric, out / f"{protocol}.png", title=f"{protocol}: ours vs paper",
                                         tasks=tasks, task_titles={t: task_title(t) for t in tasks}))
    return written


def run_notes(results_dir: Path, scores: pd.DataFrame) -> list[str]:
    """The ``table_note`` lines of the run records that ``scores`` rows point to (column ``run``), in row order
    without repeats: notes a task asks to print under its results (the mini benchmark's probe settings). Runs whose
    record is absent or unreadable add nothing."""
    notes: list[str] = []
    runs = scores["run"].dropna().astype(str) if "run" in scores else []
    for run in dict.fromkeys(runs):
        try:
            note = json.loads((results_dir / run).read_text()).get("table_note") if run else None
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(note, str) and note and note not in notes:
            notes.append(note)
    return notes


def _sources_note(numeric: pd.DataFrame, notes=()) -> str:
    if numeric.empty or "kind" not in numeric:
        return ""
    sources = sorted(set(numeric[numeric.kind == "paper"].source))
    ours = numeric[numeric.kind == "ours"]
    lines = ["", "Measured rows: " + (", ".join(sorted({f"{r.task}: {r.n_seeds} seeds x {r.n_folds} fold(s)"
                                                         for r in ours.itertuples()})) or "none") + "."]
    lines += [f"Paper numbers: {s}." for s in sources]
    lines += list(notes)
    return "\n".join(lines) + "\n"
