"""HEAR evaluation pieces on hand-computed cases: scores, event post-processing, grid, splits, head, stopping rule."""
import math

import numpy as np
import pytest
import torch

from evaluation.hear.errors import HearTaskError
from evaluation.hear.events import events_by_postprocessing, frames_to_events, postprocessing_points
from evaluation.hear.grid import grid_points, task_grid
from evaluation.hear.metrics import (SCORES, event_counts, f_measure_from_counts, score_entries,
                                     segment_counts)
from evaluation.hear.models import PredictionHead
from evaluation.hear.splits import data_splits
from evaluation.hear.train import Monitor


# ------------------------------------------------------------------------------------------------ scene scores
def test_top1_and_chroma_accuracy():
    pred = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    target = np.eye(3)[[1, 1, 2, 0]]
    assert SCORES["top1_acc"](pred, target) == 0.5
    assert SCORES["pitch_acc"](pred, target) == 0.5
    # 14 pitch classes: index 13 vs 1 is an octave error (13 % 12 == 1): right for chroma, wrong for pitch
    pred14 = np.zeros((2, 14))
    pred14[0, 13] = pred14[1, 5] = 1
    target14 = np.zeros((2, 14))
    target14[0, 1] = target14[1, 6] = 1
    assert SCORES["pitch_acc"](pred14, target14) == 0.0
    assert SCORES["chroma_acc"](pred14, target14) == 0.5


@pytest.mark.filterwarnings("ignore:No positive class found")
def test_kit_map_is_scikit_learn_macro_average_precision():
    """The kit's mAP (heareval: ``average_precision_score(targets, predictions, average="macro")``) is the shared
    definition with the kit's rule for a label without positives (AP 0), to the last bit."""
    from sklearn.metrics import average_precision_score

    from evaluation.metrics import mean_average_precision

    rng = np.random.default_rng(0)
    for trial in range(20):
        pred = rng.random((30, 6))
        target = (rng.random((30, 6)) < 0.3).astype(float)
        target[:, trial % 6] = 0  # one label without positives
        expected = average_precision_score(target, pred, average="macro")
        assert SCORES["mAP"](pred, target) == expected
        assert mean_average_precision(target, pred, no_positive="zero") == expected
        assert mean_average_precision(target, pred) > expected   # EVAR's rule leaves that label out
    onehot = np.eye(4)[rng.integers(0, 4, 25)]
    scores = rng.random((25, 4))
    assert SCORES["mAP"](scores, onehot) == average_precision_score(onehot, scores, average="macro")


@pytest.mark.filterwarnings("ignore:Only one class")
def test_map_dprime_aucroc_by_hand():
    # class 0: positives score 0.9, 0.4; negatives 0.6, 0.1 -> AP = (1 + 2/3) / 2, AUC = 3/4
    # class 1: perfectly ranked -> AP = 1, AUC = 1
    pred = np.array([[0.9, 0.2], [0.4, 0.1], [0.6, 0.8], [0.1, 0.7]])
    target = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    assert SCORES["mAP"](pred, target) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert SCORES["aucroc"](pred, target) == pytest.approx((0.75 + 1) / 2)
    # d' per class = sqrt(2) * Phi^-1(AUC): Phi^-1(0.75) = 0.6744897502; AUC 1 -> inf
    assert SCORES["d_prime"](pred, target) == math.inf
    pred_half = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]])
    assert SCORES["d_prime"](pred_half, target) == pytest.approx(math.sqrt(2) * 0.6744897502, abs=1e-6)
    # a class without positives: AUC undefined -> NaN, as in the kit
    assert math.isnan(SCORES["aucroc"](pred, np.array([[1, 0]] * 4)))
    assert math.isnan(SCORES["d_prime"](pred, np.array([[1, 0]] * 4)))


def test_score_entries_keys_follow_the_kit():
    pred, target = np.eye(2), np.eye(2)
    entries = score_entries("test", [SCORES["top1_acc"], SCORES["mAP"]], pred, target)
    assert list(entries) == ["test_score", "test_top1_acc", "test_mAP"]
    ref = {"a.wav": [{"label": "x", "start": 0, "end": 500}]}
    entries = score_entries("val", [SCORES["event_onset_200ms_fms"], SCORES["segment_1s_er"]], ref, ref, ["x"])
    assert list(entries) == ["val_score", "val_event_onset_200ms_fms", "val_event_onset_200ms_fms_f_measure",
                             "val_event_onset_200ms_fms_precision", "val_event_onset_200ms_fms_recall",
                             "val_segment_1s_er", "val_segment_1s_er_error_rate"]
    assert entries["val_score"] == 1.0 and entries["val_segment_1s_er"] == 0.0


# ------------------------------------------------------------------------------------------------ event scores
def ev(label, start, end):
    return {"label": label, "start": start, "end": end}


def test_event_onset_matching_hits_and_misses():
    ref = {"a.wav": [ev("x", 1000, 2000), ev("x", 1100, 1500), ev("y", 3000, 3500)],
           "b.wav": [ev("y", 0, 400)]}
    est = {"a.wav": [ev("x", 1190, 2100),   # within 200 ms of both x onsets: one hit (one-to-one)
                     ev("y", 3300, 3400),   # 300 ms late: miss at 200 ms
                     ev("x", 5000, 5100)],  # no reference: false alarm
           "b.wav": [ev("x", 0, 400)]}      # right time, wrong label: miss
    assert event_counts(est, ref, 0.2) == (1, 4, 4)
    (_, f), (_, p), (_, r) = SCORES["event_onset_200ms_fms"](est, ref, ["x", "y"])
    assert (f, p, r) == (0.25, 0.25, 0.25)
    # at 50 ms the x estimate (90 ms from the 1100 onset) misses too
    assert SCORES["event_onset_50ms_fms"](est, ref)[0] == ("f_measure", 0.0)
    # a file only in the reference is not scored (the kit iterates over predicted files)
    assert event_counts({"a.wav": est["a.wav"]}, ref, 0.2) == (1, 3, 3)


def test_event_onset_offset_rule():
    ref = {"a.wav": [ev("x", 1000, 2000)]}  # 1 s long: offset tolerance max(50 ms, 20 % of 1 s) = 200 ms
    score = SCORES["event_onset_offset_50ms_20perc_fms"]
    assert score({"a.wav": [ev("x", 1040, 2150)]}, ref)[0][1] == 1.0   # onset 40 ms, offset 150 ms: hit
    assert score({"a.wav": [ev("x", 1040, 2350)]}, ref)[0][1] == 0.0   # offset 350 ms off: miss
    assert SCORES["event_onset_50ms_fms"]({"a.wav": [ev("x", 1040, 2350)]}, ref)[0][1] == 1.0  # onset only: hit
    assert score({"a.wav": [ev("x", 1060, 2000)]}, ref)[0][1] == 0.0   # onset 60 ms off: miss


def test_event_f_measure_edge_cases_follow_sed_eval():
    assert f_measure_from_counts(0, 0, 0)[0][1] != f_measure_from_counts(0, 0, 0)[0][1]  # NaN
    f, p, r = (v for _, v in f_measure_from_counts(0, 0, 3))  # no estimates: precision NaN -> F NaN
    assert math.isnan(p) and r == 0.0 and math.isnan(f)
    assert [v for _, v in f_measure_from_counts(0, 2, 3)] == [0.0, 0.0, 0.0]
    assert f_measure_from_counts(2, 4, 2)[0][1] == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_segment_error_rate_by_hand():
    ref = {"a.wav": [ev("x", 1000, 2000), ev("x", 1100, 1500), ev("y", 3000, 3500)]}
    est = {"a.wav": [ev("x", 1190, 2100), ev("y", 3300, 3400), ev("x", 5000, 5100)]}
    # 1-s segments 0..5: ref x in seg 1, y in seg 3; est x in segs 1-2 and 5, y in seg 3 -> 2 insertions / 2 refs
    assert segment_counts(est, ref, ["x", "y"]) == {"S": 0, "D": 0, "I": 2, "Nref": 2, "Nsys": 4, "Ntp": 2}
    assert SCORES["segment_1s_er"](est, ref, ["x", "y"]) == (("error_rate", 1.0),)
    # wrong label in the right segment: one substitution, not a deletion plus an insertion
    sub = SCORES["segment_1s_er"]({"a.wav": [ev("y", 0, 900)]}, {"a.wav": [ev("x", 0, 900)]}, ["x", "y"])
    assert sub[0][1] == pytest.approx(1.0)
    assert not SCORES["segment_1s_er"].maximize


# --------------------------------------------------------------------------------------------- post-processing
def test_frames_to_events_threshold_runs_and_min_duration():
    t = np.arange(10) * 100.0
    p = np.zeros((10, 2))
    p[1:4, 0] = 0.9   # 100..300 ms: 200 ms long
    p[6, 0] = 0.9     # one frame: 0 ms long
    p[:, 1] = 0.5     # exactly the threshold: not active (> 0.5 is)
    labels = {0: "a", 1: "b"}
    assert frames_to_events(t, p, labels, median_filter_ms=0, min_duration=0) == [
        {"label": "a", "start": 100.0, "end": 300.0}, {"label": "a", "start": 600.0, "end": 600.0}]
    assert frames_to_events(t, p, labels, median_filter_ms=0, min_duration=125) == [
        {"label": "a", "start": 100.0, "end": 300.0}]
    # a 300 ms median filter (3 frames at 100 ms) removes the isolated frame and keeps the run
    assert frames_to_events(t, p, labels, median_filter_ms=300, min_duration=0) == [
        {"label": "a", "start": 100.0, "end": 300.0}]


def test_events_grouped_by_file_and_sorted_by_time():
    probs = np.array([[0.9], [0.1], [0.9], [0.9]])
    files = ["emb/test/b.wav", "emb/test/a.wav", "emb/test/b.wav", "emb/test/b.wav"]
    times = np.array([200.0, 0.0, 0.0, 100.0])
    points = postprocessing_points({"median_filter_ms": [0], "min_duration": [0, 250]})
    assert points == [(("median_filter_ms", 0), ("min_duration", 0)), (("median_filter_ms", 0), ("min_duration", 250))]
    out = events_by_postprocessing(probs, files, times, {0: "x"}, points)
    assert out[points[0]] == {"b.wav": [{"label": "x", "start": 0.0, "end": 200.0}], "a.wav": []}
    assert out[points[1]] == {"b.wav": [], "a.wav": []}


# ---------------------------------------------------------------------------------------------- grid, splits
def test_default_grid_points_are_the_kits():
    points = [(c["hidden_layers"], c["lr"], c["initialization"].__name__[7]) for c in grid_points("default", {}, 8)]
    assert points == [(1, 1e-4, "n"), (2, 1e-3, "u"), (1, 1e-3, "n"), (1, 3.2e-4, "n"), (2, 3.2e-4, "n"),
                      (2, 3.2e-4, "u"), (2, 3.2e-3, "n"), (2, 3.2e-3, "u")]
    assert all(c["max_epochs"] == 500 and c["check_val_every_n_epoch"] == 3 and c["patience"] == 20
               and c["hidden_dim"] == 1024 and c["batch_size"] == 1024 for c in grid_points("default", {}, 16))
    assert len(grid_points("faster", {}, 1000)) == 64
    assert {c["max_epochs"] for c in grid_points("fast", {}, 1000)} == {10, 50}


def test_task_specific_grid_overrides():
    assert task_grid("default", {"task_name": "dcase2016_task2"})["check_val_every_n_epoch"] == [10]
    meta = {"task_name": "maestro", "evaluation_params": {"task_specific_param_grid": {"max_epochs": [50]}}}
    assert task_grid("default", meta)["max_epochs"] == [50]
    with pytest.raises(ValueError, match="unknown grid"):
        task_grid("huge", {})


def test_kfold_rule_valid_is_next_fold():
    runs = data_splits({"split_mode": "new_split_kfold", "splits": ["fold02", "fold00", "fold01", "fold03"]})
    assert [(r["test"], r["valid"], r["train"]) for r in runs] == [
        (["fold00"], ["fold01"], ["fold02", "fold03"]), (["fold01"], ["fold02"], ["fold00", "fold03"]),
        (["fold02"], ["fold03"], ["fold00", "fold01"]), (["fold03"], ["fold00"], ["fold01", "fold02"])]
    assert data_splits({"split_mode": "trainvaltest"}) == [{"train": ["train"], "valid": ["valid"], "test": ["test"]}]
    with pytest.raises(HearTaskError, match="split_mode"):
        data_splits({"split_mode": "random"})


# ------------------------------------------------------------------------------------------- head, stopping
def test_prediction_head_layout_and_outputs():
    conf = grid_points("default", {}, 2)[1]  # 2 hidden layers
    head = PredictionHead(12, 3, "multiclass", conf)
    kinds = [type(m).__name__ for m in head.hidden]
    assert kinds == ["Linear", "BatchNorm1d", "Dropout", "ReLU"] * 2
    assert head.hidden[0].weight.shape == (1024, 12) and head.projection.weight.shape == (3, 1024)
    head.eval()
    assert torch.allclose(head(torch.randn(5, 12)).sum(1), torch.ones(5))
    linear = PredictionHead(12, 3, "multilabel", {**conf, "hidden_layers": 0})
    assert isinstance(linear.hidden, torch.nn.Identity) and isinstance(linear.activation, torch.nn.Sigmoid)
    with pytest.raises(ValueError, match="exactly one label"):
        head.loss(torch.zeros(2, 3), torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))


def test_monitor_checkpoint_and_early_stopping():
    m = Monitor("max", patience=2)
    steps = [m.update(v, e) for e, v in enumerate([0.5, 0.7, 0.7, 0.6])]
    # saves on the first and the strictly better value; a tie does not reset patience; stops after 2 misses
    assert steps == [(True, False), (True, False), (False, False), (False, True)]
    assert (m.best, m.best_epoch) == (0.7, 1)
    m = Monitor("min", patience=5)
    assert m.update(float("nan"), 2) == (True, True)  # first check always saved; non-finite stops
    assert m.best == math.inf
    m = Monitor("max", patience=5)
    m.update(0.4, 0)
    assert m.update(float("nan"), 1) == (False, True)
