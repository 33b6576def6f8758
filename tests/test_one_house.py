"""One house: a single device resolver and process-group set-up (m2d_hear.distributed), a single temporary-file-then-
rename writer (m2d_hear.fileio). The source scans fail when a second copy appears in the project's packages."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import click
import pytest
import torch

from m2d_hear import distributed as D
from m2d_hear import fileio
from m2d_hear.errors import InputError, user_message

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("m2d_hear", "pretrain", "evaluation")
SCRIPTS = ("benchmarks", "scripts")
DISTRIBUTED = "m2d_hear/distributed.py"
FILEIO = "m2d_hear/fileio.py"


def sources(*folders: str) -> dict[str, str]:
    return {str(p.relative_to(REPO)): p.read_text(encoding="utf-8")
            for folder in folders for p in sorted((REPO / folder).rglob("*.py"))}


def hits(pattern: str, folders, allowed=()) -> list[str]:
    rx = re.compile(pattern)
    return [f"{name}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}"
            for name, text in sources(*folders).items() if name not in allowed for m in rx.finditer(text)]


# ------------------------------------------------------------------------------------------------ source scans
@pytest.mark.parametrize("pattern", [
    r"\binit_process_group\(",                                   # joining the process group
    r"\btorch\.cuda\.set_device\(",                              # picking this process's GPU
    r"[\"']cuda[\"']\s+if\s+torch\.cuda\.is_available\(\)",      # 'auto' -> cuda / cpu
    r"torch\.cuda\.is_available\(\)\s+else\s+[\"']cpu[\"']",
    r"\bdef\s+(resolve_device|pick_device|init_distributed|dist_info|setup_distributed)\b",
    r"\bos\.environ(\.get)?[\[(]\s*[\"'](LOCAL_RANK|WORLD_SIZE|RANK)[\"']",
])
def test_one_device_resolver_and_process_group_setup(pattern):
    found = hits(pattern, PACKAGES, allowed={DISTRIBUTED})
    assert found == [], f"use m2d_hear.distributed (resolve_device / init_distributed), not a copy: {found}"


def test_old_distributed_modules_are_gone():
    assert not (REPO / "pretrain" / "distributed.py").exists()
    assert not (REPO / "evaluation" / "finetune" / "distributed.py").exists()
    assert hits(r"from \. import distributed\b|(pretrain|evaluation\.finetune)\.distributed\b",
                PACKAGES + SCRIPTS + ("tests",)) == []


def test_one_atomic_writer():
    """Temporary-file-then-rename lives in m2d_hear.fileio only (hub.py moves an unpacked folder into place)."""
    pattern = r"\bos\.(replace|rename)\(|\bshutil\.move\(|\b\w*tmp\w*\.(replace|rename)\(|\.with_suffix\([^)]*\.tmp"
    found = hits(pattern, PACKAGES + SCRIPTS, allowed={FILEIO, "m2d_hear/hub.py"})
    assert found == [], f"write through m2d_hear.fileio (atomic_path, write_text, write_json, ...): {found}"
    hub = (REPO / "m2d_hear" / "hub.py").read_text(encoding="utf-8")
    assert re.findall(pattern, hub) == [("replace", "")]   # the folder move, nothing else
    assert re.findall(r"os\.replace\(([^)]*)\)", hub) == ["inner, folder"]


# ------------------------------------------------------------------------------------------------ the resolver
@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


@pytest.fixture
def fake_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_auto_and_cpu_without_cuda(no_cuda):
    for value in ("auto", None, "", "cpu", torch.device("cpu")):
        assert D.resolve_device(value) == torch.device("cpu")


@pytest.mark.parametrize("value", ["cuda", "cuda:1", torch.device("cuda", 0)])
def test_cuda_without_cuda_is_a_one_line_input_error(no_cuda, value):
    with pytest.raises(InputError) as err:
        D.resolve_device(value)
    message = user_message(err.value)
    assert message is not None and "no CUDA device" in message and "--device cpu" in message
    assert len(str(err.value).splitlines()) == 1


def test_a_bad_device_name_is_an_input_error(no_cuda):
    with pytest.raises(InputError, match="not a device"):
        D.resolve_device("gpu0")


def test_cuda_means_this_process_gpu(fake_cuda, monkeypatch):
    assert D.resolve_device("auto") == torch.device("cuda", 0)
    assert D.resolve_device("cuda") == torch.device("cuda", 0)
    assert D.resolve_device("cuda:2") == torch.device("cuda", 2)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert D.resolve_device("auto") == torch.device("cuda", 3)
    assert D.resolve_device("cuda") == torch.device("cuda", 3)
    assert D.resolve_device("cuda:1") == torch.device("cuda", 1)   # an explicit GPU is kept
    assert D.resolve_device("cpu") == torch.device("cpu")


def test_init_distributed_alone_is_a_single_process(no_cuda, monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    env = D.init_distributed("auto")
    assert env == D.DistEnv() and env.is_main and not env.distributed
    assert D.init_distributed("cpu") == env   # idempotent
    assert D.dist_info() == (0, 1)
    x = torch.arange(3.0)
    assert D.broadcast_object({"a": 1}, env) == {"a": 1}
    assert D.all_gather_cat(x, env) is x
    assert D.gather_objects(5, env) == [5]
    assert D.mean_over_processes(2.5, env) == 2.5
    D.barrier(env)
    D.barrier()
    D.shutdown(env)


def test_a_world_of_one_does_not_join_a_group(no_cuda, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert D.init_distributed("cpu") == D.DistEnv()
    assert not torch.distributed.is_initialized()


def test_hear_predict_gpus_use_the_resolver(no_cuda):
    from evaluation.hear.predict import gpus_device

    assert gpus_device(None) == ("cpu", None)
    assert gpus_device("[]") == ("cpu", [])
    with pytest.raises(click.ClickException, match="no CUDA device"):
        gpus_device("[0]")
    with pytest.raises(click.BadParameter):
        gpus_device("['a']")


def test_hear_predict_gpus_pick_the_first_listed_gpu(fake_cuda):
    from evaluation.hear.predict import gpus_device

    assert gpus_device("[1, 0]") == ("cuda:1", [1, 0])
    assert gpus_device("2") == ("cuda:0", 2)


def test_probe_device_uses_the_resolver(no_cuda):
    from evaluation.probe import LinearProbe

    assert LinearProbe(device="auto")._device() == torch.device("cpu")
    with pytest.raises(InputError):
        LinearProbe(device="cuda")._device()


# ------------------------------------------------------------------------------------------------ the writer
def test_write_pickle_is_atomic(tmp_path):
    path = tmp_path / "sub" / "x.pkl"
    fileio.write_pickle(path, {"a": [1, 2]})
    assert pickle.loads(path.read_bytes()) == {"a": [1, 2]}

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        fileio.write_pickle(path, Unpicklable())
    assert pickle.loads(path.read_bytes()) == {"a": [1, 2]}   # the old file stays
    assert [p.name for p in path.parent.iterdir()] == ["x.pkl"]   # no temporary file is left


def test_export_atomic_save_is_fileio(tmp_path):
    from m2d_hear.export import atomic_save

    atomic_save({"w": torch.ones(2)}, tmp_path / "w.pth")
    assert torch.equal(torch.load(tmp_path / "w.pth", weights_only=True)["w"], torch.ones(2))
