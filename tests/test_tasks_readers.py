"""Dataset readers on tiny fixtures in each original download layout, including broken layouts."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from evaluation.tasks import DatasetError, load_task
from evaluation.tasks.gtzan import hear_folds
from tests.fixtures import datasets as d


def splits(task):
    return Counter(c.split for c in task.clips)


# ------------------------------------------------------------------------------------------------------- US8K
def test_us8k_folds_leave_one_out(tmp_path):
    d.make_us8k(tmp_path, folds=3, per_fold=1)
    task = load_task("us8k", data_root=tmp_path)
    assert (task.metric, task.unit_sec, task.multilabel) == ("accuracy", 4.0, False)
    assert task.folds == ["fold1", "fold2", "fold3"]
    assert task.classes == ["dog_bark", "siren", "street_music"]
    rounds = task.rounds()
    assert [r.name for r in rounds] == task.folds
    for r in rounds:
        assert r.valid is None and len(r.test) == 3 and len(r.train) == 6
        assert {c.split for c in r.test} == {r.name} and r.name not in {c.split for c in r.train}
        assert all(c.path.is_file() and c.path.parent.name == c.split for c in r.test)


def test_us8k_missing_file_stops_unless_skipped(tmp_path):
    root = d.make_us8k(tmp_path)
    gone = sorted((root / "audio" / "fold2").glob("*.wav"))[0]
    gone.unlink()
    with pytest.raises(DatasetError, match=r"us8k: 1 of 9 listed audio files are missing .*" + gone.name
                       + r".*--skip-missing"):
        load_task("us8k", data_root=tmp_path)
    task = load_task("us8k", data_root=tmp_path, skip_missing=True)
    assert len(task.clips) == 8 and task.missing == [gone]


def test_us8k_missing_metadata_names_the_file_and_source(tmp_path):
    root = d.make_us8k(tmp_path)
    (root / "metadata" / "UrbanSound8K.csv").unlink()
    with pytest.raises(DatasetError, match=r"UrbanSound8K.csv: metadata CSV not found; download UrbanSound8K"):
        load_task("us8k", data_root=tmp_path)
    with pytest.raises(DatasetError, match=r"UrbanSound8K: UrbanSound8K folder not found"):
        load_task("us8k", data_root=tmp_path / "elsewhere")


def test_explicit_path_overrides_data_root(tmp_path):
    root = d.make_us8k(tmp_path / "somewhere")
    assert len(load_task("us8k", data_root=tmp_path / "nothing", path=root).clips) == 9


def test_unknown_task_name():
    with pytest.raises(DatasetError, match="unknown task 'esc51'"):
        load_task("esc51")


# -------------------------------------------------------------------------------------------------------- VC1
def test_vc1_official_split_codes(tmp_path):
    d.make_vc1(tmp_path, speakers=3, per_split=(2, 1, 1))
    task = load_task("vc1", data_root=tmp_path)
    assert splits(task) == {"train": 6, "valid": 3, "test": 3}
    assert task.classes == ["id10001", "id10002", "id10003"] and task.unit_sec == 8.2
    (r,) = task.rounds()
    assert r.name == "main" and len(r.valid) == 3


def test_vc1_malformed_split_line(tmp_path):
    root = d.make_vc1(tmp_path)
    with open(root / "iden_split.txt", "a") as f:
        f.write("4 id10001/x/00001.wav\n")
    with pytest.raises(DatasetError, match=r"iden_split.txt:13: expected '<1\|2\|3> idXXXXX"):
        load_task("vc1", data_root=tmp_path)


# ------------------------------------------------------------------------------------------------------ GTZAN
@pytest.mark.parametrize("layout,suffix,split_dir", [("genres", ".wav", "."), ("genres", ".au", "GTZAN_split"),
                                                     ("genres_original", ".wav", ".")])
def test_gtzan_layouts(tmp_path, layout, suffix, split_dir):
    d.make_gtzan(tmp_path, layout=layout, suffix=suffix, split_dir=split_dir)
    task = load_task("gtzan", data_root=tmp_path)
    assert splits(task) == {"train": 6, "valid": 3, "test": 3}
    assert task.classes == ["blues", "classical", "metal"] and task.unit_sec == 30.0
    assert all(c.path.suffix == suffix and c.path.is_file() for c in task.clips)


def test_gtzan_missing_split_lists_say_where_to_get_them(tmp_path):
    d.make_gtzan(tmp_path, lists=False)
    with pytest.raises(DatasetError, match=r"train_filtered.txt.*jongpillee/music_dataset_split"):
        load_task("gtzan", data_root=tmp_path)


def test_gtzan_wrong_split_lists(tmp_path):
    root = d.make_gtzan(tmp_path)
    test_list = root / "test_filtered.txt"
    first_train = (root / "train_filtered.txt").read_text().splitlines()[0]
    test_list.write_text(test_list.read_text() + first_train + "\n")
    with pytest.raises(DatasetError, match=r"also listed in train_filtered.txt"):
        load_task("gtzan", data_root=tmp_path)
    test_list.write_text("jazz/jazz.00001.wav\n")   # a genre never seen in train: not this dataset's lists
    (root / "genres" / "jazz").mkdir()
    d.write_audio(root / "genres" / "jazz" / "jazz.00001.wav", 4)
    with pytest.raises(DatasetError, match=r"\['jazz'\] occur in valid/test but not in train"):
        load_task("gtzan", data_root=tmp_path)


def test_gtzan_hear10fold(tmp_path):
    d.make_gtzan(tmp_path, genres=("blues", "rock"), per_genre=20, lists=False, seconds=0.05)
    task = load_task("gtzan_hear10fold", data_root=tmp_path)
    assert task.folds == [f"fold{i:02d}" for i in range(10)] and task.name == "gtzan_hear10fold"
    per_fold = Counter(c.split for c in task.clips)
    assert set(per_fold.values()) == {4}
    assert all({c.label for c in task.split(f)} == {"blues", "rock"} for f in task.folds)
    again = load_task("gtzan_hear10fold", data_root=tmp_path)
    assert [c.split for c in again.clips] == [c.split for c in task.clips]


def test_hear_fold_rule_matches_hear_preprocess():
    """hear-preprocess: sorted keys, random.Random('split_k_folds').shuffle, np.array_split into k."""
    import random

    import numpy as np

    keys = [f"k{i:02d}" for i in range(23)]
    labels = {k: "a" for k in keys}
    shuffled = sorted(keys)
    random.Random("split_k_folds").shuffle(shuffled)
    expected = {k: f"fold{j:02d}" for j, part in enumerate(np.array_split(shuffled, 5)) for k in part}
    assert hear_folds(list(reversed(keys)), labels, 5) == expected


# ------------------------------------------------------------------------------------------------------ SPCV2
def test_spcv2_lists_and_no_background_noise(tmp_path):
    d.make_spcv2(tmp_path)
    task = load_task("spcv2", data_root=tmp_path)
    assert splits(task) == {"train": 6, "valid": 3, "test": 3}
    assert task.classes == ["down", "go", "yes"] and task.unit_sec == 1.0
    assert not any("_background_noise_" in str(c.path) for c in task.clips)


def test_spcv2_listed_file_missing(tmp_path):
    root = d.make_spcv2(tmp_path)
    (root / "testing_list.txt").write_text((root / "testing_list.txt").read_text() + "go/ffff_nohash_9.wav\n")
    with pytest.raises(DatasetError, match=r"spcv2: 1 of 13 listed audio files are missing .*ffff_nohash_9.wav"):
        load_task("spcv2", data_root=tmp_path)
    assert len(load_task("spcv2", data_root=tmp_path, skip_missing=True).missing) == 1


# ------------------------------------------------------------------------------------------------------ AS20K
@pytest.mark.parametrize("prefix", ["", "Y"])
def test_as20k_present_clips_only(tmp_path, prefix):
    d.make_as20k(tmp_path, per_split=(6, 4), absent=(2, 1), prefix=prefix)
    task = load_task("as20k", data_root=tmp_path)
    assert (task.multilabel, task.metric, task.unit_sec) == (True, "mAP", 10.0)
    assert splits(task) == {"train": 6, "test": 4} and len(task.missing) == 3
    assert task.classes == sorted(m for m, _ in d.AS_CLASSES)
    assert task.class_names["/m/09x0r"] == "Speech"
    assert any(len(c.labels) == 2 for c in task.clips)
    (r,) = task.rounds()
    assert r.valid is None


def test_as20k_without_audio(tmp_path):
    root = d.make_as20k(tmp_path)
    for f in (root / "eval_segments").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="no audio found for the listed segments"):
        load_task("as20k", data_root=tmp_path)


# ------------------------------------------------------------------------------------------- generic sources
def test_csv_split_fold_and_multilabel(tmp_path):
    task = load_task(f"csv:{d.make_csv_task(tmp_path / 's')}")
    assert splits(task) == {"train": 3, "valid": 3, "test": 3} and task.unit_sec == 0.5 and task.folds is None
    task = load_task(f"csv:{d.make_csv_task(tmp_path / 'f', folds=3)}")
    assert task.folds == ["fold1", "fold2", "fold3"] and len(task.rounds()) == 3
    task = load_task(f"csv:{d.make_csv_task(tmp_path / 'm', multilabel=True)}")
    assert task.multilabel and task.metric == "mAP" and any(len(c.labels) == 2 for c in task.clips)


def test_csv_settings_from_task_json_and_errors(tmp_path):
    path = d.make_csv_task(tmp_path, header=False)
    with pytest.raises(DatasetError, match="unit_sec is not given"):
        load_task(f"csv:{path}")
    (path.parent / "task.json").write_text(json.dumps({"unit_sec": 2.0, "name": "toy"}))
    task = load_task(f"csv:{path}")
    assert task.unit_sec == 2.0 and task.name == "toy"
    path.write_text(path.read_text().replace(",train", ",training"))
    with pytest.raises(DatasetError, match=r"split values \['training'\] are not train/valid/test"):
        load_task(f"csv:{path}")
    with pytest.raises(DatasetError, match="task CSV not found"):
        load_task(f"csv:{tmp_path / 'none.csv'}")


def test_hear_task_folders(tmp_path):
    task = load_task(f"hear:{d.make_hear_task(tmp_path / 'a')}")
    assert splits(task) == {"train": 6, "valid": 2, "test": 4} and task.metric == "accuracy"
    task = load_task(f"hear:{d.make_hear_task(tmp_path / 'b', kfold=3)}")
    assert task.folds == ["fold00", "fold01", "fold02"] and len(task.rounds()) == 3
    folder = d.make_hear_task(tmp_path / "c")
    (folder / "task_metadata.json").unlink()
    with pytest.raises(DatasetError, match="task_metadata.json: task_metadata.json not found"):
        load_task(f"hear:{folder}")


def test_one_json_reader_for_task_and_hear_folders(tmp_path):
    """Every reader of a task folder's JSON (csv task.json, hear: sources, hear-embed, hear-predict's embedding
    folders, hear-leaderboard) raises the same DatasetError, naming the file and the fix."""
    from evaluation.hear.data import read_task
    from evaluation.hear.embed import read_task_metadata
    from evaluation.hear.leaderboard import collect

    folder = d.make_hear_task(tmp_path / "h")
    (folder / "task_metadata.json").write_text("{not json")
    readers = [lambda: load_task(f"hear:{folder}"), lambda: read_task_metadata(folder), lambda: read_task(folder),
               lambda: collect([folder])]
    for read in readers:
        with pytest.raises(DatasetError, match=r"task_metadata.json: not valid JSON \(.* at line 1\); \w+"):
            read()
    (folder / "task_metadata.json").unlink()
    for read in readers:
        with pytest.raises(DatasetError, match=r"task_metadata.json: task_metadata.json not found; \w+"):
            read()
    path = d.make_csv_task(tmp_path / "c", header=False)
    (path.parent / "task.json").write_text("[1,")
    with pytest.raises(DatasetError, match=r"task.json: not valid JSON .*; fix or remove it"):
        load_task(f"csv:{path}")


def test_task_json_carries_the_tasks_own_protocol_settings(tmp_path):
    path = d.make_csv_task(tmp_path)
    assert (load_task(f"csv:{path}").probe, load_task(f"csv:{path}").finetune) == ({}, {})
    own = {"probe": {"lr": 1e-3}, "finetune": {"recipe": {"name": "short", "epochs": 2}, "seeds": [43],
                                               "max_rounds": 1},
           "table_notes": {"linear": "probed with lr 1e-3"}}
    (path.parent / "task.json").write_text(json.dumps(own))
    task = load_task(f"csv:{path}")
    assert (task.probe, task.finetune, task.table_notes) == (own["probe"], own["finetune"], own["table_notes"])
    for bad in ({"probe": [1]}, {"table_notes": {"linear": 3}}):
        (path.parent / "task.json").write_text(json.dumps(bad))
        with pytest.raises(DatasetError, match=f"task.json: '{next(iter(bad))}' must be a JSON object"):
            load_task(f"csv:{path}")
