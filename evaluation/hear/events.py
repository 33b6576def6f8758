"""Frame predictions -> sound events, the eval kit's post-processing for event tasks.

Per file, frames are ordered by timestamp; the class probabilities are median-filtered along time over
``round(median_filter_ms / mean hop)`` frames (scipy ``median_filter``, reflect mode; no filter when that rounds to
0), thresholded (``> threshold``, 0.5 by default), and every run of consecutive active frames of a label becomes an
event from the first to the last frame's timestamp, kept when it lasts at least ``min_duration`` ms.

The post-processing grid (``evaluation_params.event_postprocessing_grid`` of the task, else the kit's default
``{"median_filter_ms": [250], "min_duration": [125, 250]}``) is searched at every validation; each point is a tuple
of ``(name, value)`` pairs in sorted-name order, which is also how ``test.predicted-scores.json`` records it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_POSTPROCESSING_GRID = {"median_filter_ms": [250], "min_duration": [125, 250]}
Postprocessing = tuple  # ((name, value), ...)


def postprocessing_points(grid: dict[str, list]) -> list[Postprocessing]:
    """Every point of the grid as ``((name, value), ...)``, in scikit-learn ``ParameterGrid`` order."""
    from sklearn.model_selection import ParameterGrid

    return [tuple(point.items()) for point in ParameterGrid(grid)]


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) indices of each run of consecutive True values."""
    idx = np.flatnonzero(active)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    return list(zip(starts.tolist(), ends.tolist()))


def frames_to_events(timestamps: np.ndarray, probabilities: np.ndarray, idx_to_label: dict[int, str],
                     threshold: float = 0.5, median_filter_ms: float = 150, min_duration: float = 60.0) -> list[dict]:
    """Events ``[{"label", "start", "end"}]`` (ms) of one file from ``probabilities[frame, label]``.

    ``timestamps`` must be sorted ascending (ms), one per frame.
    """
    from scipy.ndimage import median_filter

    probabilities = np.asarray(probabilities)
    timestamps = np.asarray(timestamps)
    if median_filter_ms and len(timestamps) > 1:
        width = int(round(median_filter_ms / np.mean(np.diff(timestamps))))
        if width:
            probabilities = median_filter(probabilities, size=(width, 1))
    active = probabilities > threshold
    events = []
    for label in range(active.shape[1]):
        for first, last in _runs(active[:, label]):
            start, end = timestamps[first], timestamps[last]
            if end - start >= min_duration:
                events.append({"label": idx_to_label[label], "start": start, "end": end})
    events.sort(key=lambda e: e["start"])
    return events


def group_frames(probabilities: np.ndarray, filenames: list[str],
                 timestamps: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split pooled frame rows by file (keyed on the file's base name, as the reference labels are): returns
    ``{name: (sorted timestamps, probabilities in that order)}``; a repeated timestamp keeps its last row."""
    rows: dict[str, dict[float, int]] = {}
    for i, (filename, t) in enumerate(zip(filenames, np.asarray(timestamps).tolist())):
        rows.setdefault(Path(filename).name, {})[float(t)] = i
    grouped = {}
    for name, by_time in rows.items():
        times = np.array(sorted(by_time))
        grouped[name] = (times, probabilities[[by_time[t] for t in times]])
    return grouped


def events_by_postprocessing(probabilities: np.ndarray, filenames: list[str], timestamps: np.ndarray,
                             idx_to_label: dict[int, str], points: list[Postprocessing]
                             ) -> dict[Postprocessing, dict[str, list[dict]]]:
    """For each post-processing point, ``{file name: events}`` for all files in the pooled frames."""
    grouped = group_frames(np.asarray(probabilities), filenames, timestamps)
    return {point: {name: frames_to_events(times, probs, idx_to_label, **dict(point))
                    for name, (times, probs) in grouped.items()}
            for point in points}
