"""Embeddings equal the official portable runtime's, for every checkpoint layout (opt-in).

The official code cannot be shipped or downloaded here. Point ``M2D_OFFICIAL_REPO`` at a checkout of
github.com/nttcslab/m2d (it needs ``pip install einops nnAudio``) to run this comparison:

    M2D_OFFICIAL_REPO=~/src/m2d pytest tests/test_official_runtime.py
"""
import os
import sys
from pathlib import Path

import pytest
import torch

import m2d_hear
from m2d_hear.vit import VIT_SIZES
from tests.fixtures import checkpoints as ck

REPO = os.environ.get("M2D_OFFICIAL_REPO")
pytestmark = pytest.mark.skipif(not REPO, reason="set M2D_OFFICIAL_REPO to an nttcslab/m2d checkout to compare")

BASE = VIT_SIZES["base"]
WRITERS = {
    "full": lambda d, n: ck.write_full_checkpoint(d, n, size=BASE),
    "enconly": lambda d, n: ck.write_encoder_only(d, n, size=BASE),
    "enconly_no_stats": lambda d, n: ck.write_encoder_only(d, n, with_norm_stats=False, size=BASE),
    "evar": lambda d, n: ck.write_evar_finetuned(d, n, flat=False, size=BASE),
    "runtime": lambda d, n: ck.write_runtime_wrapped(d, n, size=BASE),
    "clap": lambda d, n: ck.write_clap(d, n, size=BASE),
}
NAMES = ["m2d_vit_base-80x608p16x16-221006-mr7", "m2d_vit_base-80x1001p16x16-221006-mr7_as",
         "m2d_vit_base-80x200p16x4-230529", "m2d_s_vit_base-80x608p80x2-230301",
         "m2d_as_vit_base-80x608p16x16p32k-240413_enconly"]


@pytest.fixture(scope="module")
def portable():
    sys.path.insert(0, str(Path(REPO) / "examples"))
    import portable_m2d

    return portable_m2d


@pytest.mark.parametrize("fmt", sorted(WRITERS))
@pytest.mark.parametrize("name", NAMES)
def test_equal_to_official(portable, tmp_path, fmt, name):
    path = WRITERS[fmt](tmp_path, name)
    official = portable.PortableM2D(str(path))
    ours = m2d_hear.load_model(str(path))
    rate = ours.sample_rate
    for seconds in (0.5, 6.08, 10.0, 13.3):
        audio = torch.rand(2, int(seconds * rate), generator=torch.Generator().manual_seed(3)) * 2 - 1
        with torch.no_grad():
            a, b = official.encode(audio), ours.encode(audio)
            ta, tsa = official.get_timestamp_embeddings(audio)
        tb, tsb = m2d_hear.get_timestamp_embeddings(audio, ours)
        assert a.shape == b.shape
        assert (a - b).abs().max().item() < 1e-4
        assert (official.get_scene_embeddings(audio) - m2d_hear.get_scene_embeddings(audio, ours)).abs().max() < 1e-4
        assert (ta - tb).abs().max().item() < 1e-4 and (tsa - tsb).abs().max().item() < 1e-3
