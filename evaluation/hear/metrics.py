"""The HEAR 2021 score functions, by the names task metadata lists in ``evaluation``.

Scene scores take ``predictions`` (probabilities, ``[n, n_labels]``) and ``targets`` (one- or multi-hot, same
shape). Event scores take ``{filename: [{"label", "start", "end"}, ...]}`` dicts (times in milliseconds) for the
predicted and the reference events. Definitions follow the eval kit (``heareval/score.py``, 2021.1.3), which
delegates event scoring to sed_eval 0.2.1; the sed_eval rules are re-implemented here:

* event-based (``event_onset_*``): per file, a reference and an estimated event match when their labels are equal,
  the onsets differ by at most the collar and, when offsets are evaluated, the offsets differ by at most
  ``max(collar, percentage * reference length)``; the number of hits is the size of a maximum one-to-one matching.
  Counts are pooled over files; precision is NaN without estimates, recall NaN without references, F = 0 when both
  are 0. Returns ``(("f_measure", F), ("precision", P), ("recall", R))``.
* segment-based (``segment_1s_er``): per file, both event lists become activity rolls on a 1-s grid (onset floored,
  offset ceiled) as long as the later of the two last offsets; per segment S = min(Nref, Nsys) - Ntp,
  D = max(0, Nref - Nsys), I = max(0, Nsys - Nref); ER = (S + D + I) / Nref pooled over segments and files.

Only files present in the predictions are scored (the kit iterates over them), so a file with no frames is not
counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from evaluation.metrics import mean_average_precision

Events = dict[str, list[dict]]
EPS = float(np.spacing(1))  # sed_eval's eps in the rate denominators


# ----------------------------------------------------------------------------------------------- scene scores
def _check_2d(predictions: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    if predictions.ndim != 2 or targets.shape != predictions.shape:
        raise ValueError(f"scores need predictions and targets of one shape [n, labels], got "
                         f"{predictions.shape} and {targets.shape}")
    if len(targets) == 0:
        raise ValueError("scores need at least one example")
    return predictions, targets


def top1_accuracy(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of rows whose arg-max prediction is the arg-max (the single label) of the target."""
    predictions, targets = _check_2d(predictions, targets)
    return float(np.mean(predictions.argmax(1) == targets.argmax(1)))


def chroma_accuracy(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Top-1 accuracy after mapping label indices to pitch classes (index mod 12): octave errors count as right."""
    predictions, targets = _check_2d(predictions, targets)
    return float(np.mean(predictions.argmax(1) % 12 == targets.argmax(1) % 12))


def kit_mean_average_precision(predictions: np.ndarray, targets: np.ndarray) -> float:
    """The kit's ``mAP``: scikit-learn's macro average precision, where a label without a positive scores 0
    (:func:`evaluation.metrics.mean_average_precision` with ``no_positive="zero"``; note the kit's argument
    order, predictions first)."""
    predictions, targets = _check_2d(predictions, targets)
    return mean_average_precision(targets, predictions, no_positive="zero")


def d_prime(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes of ``sqrt(2) * Phi^-1(AUC_c)``; NaN when some class's AUC is undefined."""
    from scipy import stats
    from sklearn.metrics import roc_auc_score

    predictions, targets = _check_2d(predictions, targets)
    try:
        auc = roc_auc_score(targets, predictions, average=None)
    except ValueError:
        return math.nan
    return float(np.mean(stats.norm().ppf(auc) * np.sqrt(2.0)))


def aucroc(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Macro ROC AUC; NaN when some class has only positives or only negatives."""
    from sklearn.metrics import roc_auc_score

    predictions, targets = _check_2d(predictions, targets)
    try:
        return float(roc_auc_score(targets, predictions, average="macro"))
    except ValueError:
        return math.nan


# ----------------------------------------------------------------------------------------------- event scores
def _seconds(events: list[dict]) -> list[tuple[str, float, float]]:
    """(label, onset s, offset s) as sed_eval sees them (labels as stripped strings, ms divided by 1000)."""
    return [(str(e["label"]).strip(), e["start"] / 1000.0, e["end"] / 1000.0) for e in events]


def _max_matching(hits: np.ndarray) -> int:
    """Size of a maximum one-to-one matching in a boolean ``[n_ref, n_est]`` hit matrix."""
    if not hits.any():
        return 0
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    return int((maximum_bipartite_matching(csr_matrix(hits), perm_type="column") >= 0).sum())


def event_hits(ref: list[tuple[str, float, float]], est: list[tuple[str, float, float]], t_collar: float,
               evaluate_offset: bool = False, percentage_of_length: float = 0.5) -> np.ndarray:
    """Boolean ``[n_ref, n_est]``: same label, onsets within the collar and (optionally) offsets within
    ``max(collar, percentage * reference length)``; times in seconds."""
    if not ref or not est:
        return np.zeros((len(ref), len(est)), dtype=bool)
    r_label, r_on, r_off = (np.array(x, dtype=object if i == 0 else np.float64) for i, x in enumerate(zip(*ref)))
    e_label, e_on, e_off = (np.array(x, dtype=object if i == 0 else np.float64) for i, x in enumerate(zip(*est)))
    hits = (r_label[:, None] == e_label[None, :]) & (np.abs(r_on[:, None] - e_on[None, :]) <= t_collar)
    if evaluate_offset:
        tolerance = np.maximum(t_collar, percentage_of_length * (r_off - r_on))
        hits &= np.abs(r_off[:, None] - e_off[None, :]) <= tolerance[:, None]
    return hits


def event_counts(predicted: Events, reference: Events, t_collar: float, evaluate_offset: bool = False,
                 percentage_of_length: float = 0.5) -> tuple[int, int, int]:
    """Pooled ``(hits, n_estimated, n_reference)`` of the event-based (onset[-offset]) matching, over the files
    in ``predicted``; ``t_collar`` in seconds."""
    n_tp = n_sys = n_ref = 0
    for filename, est_events in predicted.items():
        ref = _seconds(reference.get(filename, []))
        est = _seconds(est_events)
        n_tp += _max_matching(event_hits(ref, est, t_collar, evaluate_offset, percentage_of_length))
        n_sys += len(est)
        n_ref += len(ref)
    return n_tp, n_sys, n_ref


def f_measure_from_counts(n_tp: int, n_sys: int, n_ref: int) -> tuple[tuple[str, float], ...]:
    """sed_eval's overall F-measure, precision and recall (NaN precision without estimates, NaN recall without
    references; F = 0 when both are 0)."""
    precision = math.nan if n_sys == 0 else n_tp / n_sys
    recall = math.nan if n_ref == 0 else n_tp / n_ref
    if precision == 0 and recall == 0:
        f = 0.0
    else:
        f = 2 * precision * recall / (precision + recall)
    return (("f_measure", float(f)), ("precision", float(precision)), ("recall", float(recall)))


def _roll(events: list[tuple[str, float, float]], labels: list[str], resolution: float, length: int) -> np.ndarray:
    roll = np.zeros((length, len(labels)))
    index = {label: i for i, label in enumerate(labels)}
    for label, onset, offset in events:
        if label not in index:
            raise ValueError(f"event label {label!r} is not in the label vocabulary")
        start = int(math.floor(onset * 1 / float(resolution)))
        stop = int(math.ceil(offset * 1 / float(resolution)))
        roll[start:stop, index[label]] = 1
    return roll


def segment_counts(predicted: Events, reference: Events, labels: list[str],
                   resolution: float = 1.0) -> dict[str, int]:
    """Pooled segment-based counts ``{"S", "D", "I", "Nref", "Nsys", "Ntp"}`` over the files in ``predicted``."""
    labels = [str(label).strip() for label in labels]
    totals = dict.fromkeys(("S", "D", "I", "Nref", "Nsys", "Ntp"), 0)
    for filename, est_events in predicted.items():
        ref = _seconds(reference.get(filename, []))
        est = _seconds(est_events)
        last = max([off for _, _, off in ref] + [off for _, _, off in est] + [0])
        length = int(math.ceil(last * 1 / float(resolution)))
        ref_roll, est_roll = _roll(ref, labels, resolution, length), _roll(est, labels, resolution, length)
        n_ref, n_sys = ref_roll.sum(1), est_roll.sum(1)
        n_tp = ((ref_roll + est_roll) > 1).sum(1)
        totals["S"] += int((np.minimum(n_ref, n_sys) - n_tp).sum())
        totals["D"] += int(np.maximum(0, n_ref - n_sys).sum())
        totals["I"] += int(np.maximum(0, n_sys - n_ref).sum())
        totals["Nref"] += int(n_ref.sum())
        totals["Nsys"] += int(n_sys.sum())
        totals["Ntp"] += int(n_tp.sum())
    return totals


def segment_error_rate(predicted: Events, reference: Events, labels: list[str],
                       resolution: float = 1.0) -> float:
    """Segment-based error rate ``S/Nref + D/Nref + I/Nref`` (sed_eval adds eps to Nref)."""
    c = segment_counts(predicted, reference, labels, resolution)
    return float(c["S"] / (c["Nref"] + EPS) + c["D"] / (c["Nref"] + EPS) + c["I"] / (c["Nref"] + EPS))


# -------------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Score:
    """A named score. ``compute(predictions, targets, labels)``; ``maximize`` False for error rates."""

    name: str
    compute: Callable
    maximize: bool = True
    event_based: bool = False

    def __call__(self, predictions, targets, labels: list[str] | None = None):
        return self.compute(predictions, targets, labels)

    def __str__(self) -> str:
        return self.name


def primary_value(value) -> float:
    """The value a score is optimised on: the first entry of a tuple score, else the float itself."""
    return float(value[0][1]) if isinstance(value, tuple) else float(value)


def _scene(fn: Callable) -> Callable:
    return lambda predictions, targets, labels=None: fn(predictions, targets)


def _event_fms(t_collar: float, evaluate_offset: bool = False, percentage_of_length: float = 0.5) -> Callable:
    def compute(predicted, reference, labels=None):
        return f_measure_from_counts(*event_counts(predicted, reference, t_collar, evaluate_offset,
                                                   percentage_of_length))
    return compute


def _segment_er(predicted, reference, labels):
    return (("error_rate", segment_error_rate(predicted, reference, labels, 1.0)),)


SCORES: dict[str, Score] = {s.name: s for s in [
    Score("top1_acc", _scene(top1_accuracy)),
    Score("pitch_acc", _scene(top1_accuracy)),
    Score("chroma_acc", _scene(chroma_accuracy)),
    Score("mAP", _scene(kit_mean_average_precision)),
    Score("d_prime", _scene(d_prime)),
    Score("aucroc", _scene(aucroc)),
    Score("event_onset_200ms_fms", _event_fms(0.2), event_based=True),
    Score("event_onset_50ms_fms", _event_fms(0.05), event_based=True),
    Score("event_onset_offset_50ms_20perc_fms", _event_fms(0.05, True, 0.2), event_based=True),
    Score("segment_1s_er", _segment_er, maximize=False, event_based=True),
]}


def get_score(name: str) -> Score:
    try:
        return SCORES[name]
    except KeyError:
        raise ValueError(f"unknown HEAR score {name!r}; known: {', '.join(SCORES)}") from None


def score_entries(prefix: str, scores: list[Score], predictions, targets, labels=None) -> dict[str, float]:
    """All values the kit logs for ``scores``: ``{prefix}_score`` (the first score's primary value), then per
    score ``{prefix}_{name}`` and, for tuple scores, ``{prefix}_{name}_{part}`` for every part."""
    entries: dict[str, float] = {}
    for score in scores:
        value = score(predictions, targets, labels)
        entries[f"{prefix}_{score.name}"] = primary_value(value)
        if isinstance(value, tuple):
            for part, part_value in value:
                entries[f"{prefix}_{score.name}_{part}"] = float(part_value)
    return {f"{prefix}_score": entries[f"{prefix}_{scores[0].name}"], **entries}
