"""Speech Commands V2 (35 words, no background-noise class): official validation/testing lists, 1.0 s, accuracy.

Layout: ``speech_commands_v0.02/<word>/<file>.wav`` plus ``validation_list.txt`` and ``testing_list.txt``
(as unpacked from ``speech_commands_v0.02.tar.gz``); files not in either list are train.
"""
from __future__ import annotations

from pathlib import Path

from evaluation.tasks.base import DatasetError, TaskData
from evaluation.tasks.layout import fixed_split_task, numbered_lines, require, require_dir

FOLDER = "speech_commands_v0.02"
GET = ("download http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz and unpack it into "
       "speech_commands_v0.02/")
UNIT_SEC = 1.0


def read(root: Path, skip_missing: bool = False, allow_duplicates: bool = False) -> TaskData:
    root = Path(root).resolve()
    require_dir(root, "Speech Commands V2", GET)
    lists = {split: require(root / name, f"{split} list", GET)
             for split, name in (("valid", "validation_list.txt"), ("test", "testing_list.txt"))}
    listed: dict[str, str] = {}
    for split, list_file in lists.items():
        for n, entry in numbered_lines(list_file):
            if entry.count("/") != 1 or not entry.endswith(".wav"):
                raise DatasetError(f"{list_file}:{n}: expected '<word>/<file>.wav', got {entry!r}; {GET}")
            if entry in listed:
                raise DatasetError(f"{list_file}:{n}: {entry} is in both the validation and testing lists; {GET}")
            listed[entry] = split
    on_disk = {f"{p.parent.name}/{p.name}" for p in root.glob("[a-z]*/*.wav")}
    if not on_disk:
        raise DatasetError(f"{root}: no <word>/*.wav files found; {GET}")
    entries = sorted(on_disk | set(listed))
    paths = [root / e for e in entries]
    return fixed_split_task("spcv2", paths, [e.split("/")[0] for e in entries],
                            [listed.get(e, "train") for e in entries], skip_missing, GET, UNIT_SEC, root, root,
                            allow_duplicates=allow_duplicates, meta_files=list(lists.values()))
