"""An installed m2d-hear (a wheel in a fresh virtual environment, not the editable checkout) has what
``m2d-eval table`` needs, the papers' reference numbers included (package data read with importlib.resources)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from evaluation.scores import ScoreRow, append_scores

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installs_and_its_table_command_prints_the_paper_rows(tmp_path):
    # build from a copy of the sources, so that the build leaves nothing (build/, *.egg-info) in the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("m2d_hear", "pretrain", "evaluation"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # the installed copy must be what runs: no PYTHONPATH into the checkout, nothing from the calling shell's pip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV", "PIP_TARGET",
                                                             "PIP_PREFIX", "PIP_USER")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    def run(*cmd, cwd=tmp_path):
        done = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    # the installed setuptools builds it (the `test` extra requires it): no download, no build isolation
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", src, "-w", tmp_path / "dist")
    wheel = next((tmp_path / "dist").glob("m2d_hear-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"evaluation/reference/paper_linear.csv", "evaluation/reference/paper_finetune.csv"} <= names
    # a fresh environment that sees the installed torch & co. (not reinstalled), and the wheel without its deps
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python, bindir = env_dir / "bin" / "python", env_dir / "bin"
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel)
    where = Path(run(python, "-c", "import evaluation; print(evaluation.__file__)").strip())
    assert env_dir in where.parents, f"evaluation imported from {where}, not from the wheel"

    results = tmp_path / "results"
    append_scores(results, [ScoreRow("mine/weights", "us8k", "linear", seed, f"fold{f}", "accuracy", 0.8 + f / 100)
                            for seed in (42, 43) for f in (1, 2)])
    out = run(bindir / "m2d-eval", "table", results, "--no-plot")   # run from outside the checkout
    assert "mine/weights (ours)" in out
    assert "M2D/0.7 (paper: TASLP 2024 Table V)" in out and "87.6 ± 0.2" in out   # the paper's US8K number
    assert (results / "tables" / "linear.md").is_file()
