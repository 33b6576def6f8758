"""Cross-checks against the official eval kit itself, where it is installed (skipped otherwise).

The kit does not install on Python 3.11 with its pins; the README (HEAR section) shows the throwaway environment that
runs it (``pip install --no-deps heareval==2021.1.3`` + ``setuptools<81``, ``pytorch-lightning==1.9.5``,
``dcase_util``, ``sed_eval``, ``intervaltree``, ``torchinfo``, ``python-slugify``, ``pynvml``). Run these with that
environment's python: ``python -m pytest tests/test_hear_eval_kit.py``.
"""
import json
import math
import pickle
import random

import numpy as np
import pytest
import torch

heareval_score = pytest.importorskip("heareval.score", reason="the HEAR eval kit (heareval) is not installed")

from evaluation.hear import toy_tasks  # noqa: E402
from evaluation.hear.events import events_by_postprocessing, postprocessing_points  # noqa: E402
from evaluation.hear.metrics import SCORES  # noqa: E402


def _random_events(rng: random.Random, labels, n):
    out = []
    for _ in range(n):
        start = rng.choice([rng.uniform(0, 5000), round(rng.uniform(0, 5000), -1)])
        out.append({"label": rng.choice(labels), "start": start,
                    "end": start + rng.choice([rng.uniform(20, 1500), 200.0, 50.0])})
    return out


def test_event_scores_equal_the_kits():
    labels = ["a", "b", "c"]
    kit = {name: heareval_score.available_scores[name](label_to_idx={l: i for i, l in enumerate(labels)})
           for name in ["event_onset_200ms_fms", "event_onset_50ms_fms", "event_onset_offset_50ms_20perc_fms",
                        "segment_1s_er"]}
    rng = random.Random(1)
    for _ in range(100):
        files = [f"f{i}.wav" for i in range(rng.randint(1, 4))]
        ref = {f: _random_events(rng, labels, rng.randint(0, 6)) for f in files}
        est = {f: [dict(e, start=e["start"] + rng.uniform(-250, 250), end=e["end"] + rng.uniform(-300, 300))
                   for e in ref[f] if rng.random() < 0.7] + _random_events(rng, labels, rng.randint(0, 3))
               for f in files}
        for name, fn in kit.items():
            theirs, ours = fn(est, ref), SCORES[name](est, ref, labels)
            assert [k for k, _ in theirs] == [k for k, _ in ours]
            for (_, a), (_, b) in zip(theirs, ours):
                assert (math.isnan(a) and math.isnan(b)) or a == b, (name, theirs, ours)


def test_scene_scores_equal_the_kits():
    rng = np.random.default_rng(0)
    for case in range(40):
        n, c = int(rng.integers(5, 40)), int(rng.integers(2, 6))
        pred = rng.random((n, c)).astype(np.float32)
        target = np.zeros((n, c), np.float32)
        if case % 2:
            target[np.arange(n), rng.integers(0, c, n)] = 1
        else:
            target = (rng.random((n, c)) < 0.4).astype(np.float32)
        for name in ["top1_acc", "pitch_acc", "chroma_acc", "mAP", "d_prime", "aucroc"]:
            a = heareval_score.available_scores[name](label_to_idx={str(i): i for i in range(c)})(pred, target)
            b = SCORES[name](pred, target)
            assert (math.isnan(a) and math.isnan(b)) or a == b, (name, a, b)


def test_event_postprocessing_equals_the_kits():
    from heareval.predictions.task_predictions import get_events_for_all_files

    rng = np.random.default_rng(0)
    grid = {"median_filter_ms": [0, 120, 250], "min_duration": [0, 125, 250], "threshold": [0.3, 0.5]}
    labels = {0: "a", 1: "b", 2: "c"}
    for _ in range(20):
        files, times, probs = [], [], []
        for f in range(3):
            n, hop = int(rng.integers(2, 60)), float(rng.choice([40.0, 50.0, 160.0]))
            order = rng.permutation(n)
            files += [f"emb/test/f{f}.wav"] * n
            times += list((np.arange(n) * hop + 80.0)[order])
            probs.append(np.clip(np.cumsum(rng.normal(0, 0.3, (n, 3)), 0) * 0.3 + 0.5, 0, 1)[order])
        p = torch.tensor(np.concatenate(probs), dtype=torch.float32)
        theirs = get_events_for_all_files(p, files, torch.tensor(times), labels, grid)
        ours = events_by_postprocessing(p.numpy(), files, np.array(times), labels, postprocessing_points(grid))
        assert list(theirs) == list(ours)
        flat = lambda d: {f: [(e["label"], float(e["start"]), float(e["end"])) for e in ev] for f, ev in d.items()}
        assert all(flat(theirs[k]) == flat(ours[k]) for k in theirs)


def test_embedding_files_equal_the_kits(tmp_path):
    """The kit's own embeddings runner (with m2d_hear as the module) and hear-embed write the same files."""
    pytest.importorskip("tensorflow")
    from heareval.embeddings.task_embeddings import Embedding, task_embeddings

    from evaluation.hear.embed import embed_tasks
    from m2d_hear.config import parse_config_name
    from m2d_hear.export import random_encoder, save_encoder_only
    from m2d_hear.vit import ViTSize

    name = "m2d_vit_base-80x608p16x16-240101-random0"
    weights = save_encoder_only(random_encoder(parse_config_name(name), ViTSize(64, 1, 1)),
                                tmp_path / name / "weights_ep0.pth")
    toy_tasks.events_task(tmp_path / "tasks")
    toy_tasks.mix_task(tmp_path / "tasks")
    embed_tasks(weights, tmp_path / "tasks", tmp_path / "ours", hop_ms=40, device="cpu", progress=False,
                echo=lambda *_: None)
    kit_model = Embedding("m2d_hear", str(weights), {"timestamp_hop_ms": 40})
    for task in ["toy_events-v1-full", "toy_mix-v1-full"]:
        theirs, ours = tmp_path / "kit" / task, tmp_path / "ours" / task
        task_embeddings(kit_model, tmp_path / "tasks" / task, theirs)
        names = sorted(p.relative_to(theirs) for p in theirs.rglob("*") if p.is_file())
        assert names == sorted(p.relative_to(ours) for p in ours.rglob("*")
                               if p.is_file() and p.name not in (".m2d-embed.json", ".done.embeddings",
                                                                 "profile.embeddings.json"))
        event = task.startswith("toy_events")
        for rel in names:
            a, b = theirs / rel, ours / rel
            if rel.name.endswith("filename-timestamps.json"):
                strip = lambda rows, root: [(str(f)[len(str(root)):], t) for f, t in rows]
                assert strip(json.loads(a.read_text()), theirs) == strip(json.loads(b.read_text()), ours)
            elif event and rel.name.endswith(".target-labels.pkl"):  # label order within a timestamp may differ
                key = lambda rows: [sorted(r) for r in rows]
                assert key(pickle.load(open(a, "rb"))) == key(pickle.load(open(b, "rb")))
            elif event and rel.name.endswith(".target-labels.json"):
                assert [sorted(r) for r in json.loads(a.read_text())] == [sorted(r) for r in json.loads(b.read_text())]
            else:
                assert a.read_bytes() == b.read_bytes(), rel


def test_kit_predictions_runner_reads_hear_embed_output(tmp_path, monkeypatch):
    """The kit's predictions runner trains on our embedding folder unchanged and writes the keys we write."""
    pytest.importorskip("pytorch_lightning")
    from click.testing import CliRunner
    from heareval.predictions.runner import runner

    from evaluation.hear.embed import embed_tasks
    from evaluation.hear.predict import predict_task
    from m2d_hear.config import parse_config_name
    from m2d_hear.export import random_encoder, save_encoder_only
    from m2d_hear.vit import ViTSize

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # Lightning 1.9 checkpoints under torch >= 2.6
    monkeypatch.chdir(tmp_path)  # the kit writes logs/ under the working directory
    name = "m2d_vit_base-80x608p16x16-240101-random0"
    weights = save_encoder_only(random_encoder(parse_config_name(name), ViTSize(64, 1, 1)),
                                tmp_path / name / "weights_ep0.pth")
    toy_tasks.folds_task(tmp_path / "tasks")
    embed_tasks(weights, tmp_path / "tasks", tmp_path / "emb", device="cpu", progress=False, echo=lambda *_: None)
    task = tmp_path / "emb/toy_folds-v1-full"
    result = CliRunner().invoke(runner, [str(task), "--grid", "faster", "--grid-points", "1"])
    assert result.exit_code == 0, result.output[-2000:]
    theirs = json.loads((task / "test.predicted-scores.json").read_text())
    (task / "test.predicted-scores.json").rename(task / "kit.predicted-scores.json")
    ours = predict_task(task, "faster", 1, progress=False, echo=False)
    assert list(theirs) == list(ours)
    for fold in ["fold00", "fold01", "fold02", "aggregated_scores"]:
        assert list(theirs[fold]) == list(ours[fold])
    assert theirs["hparams"].keys() == ours["hparams"].keys()
