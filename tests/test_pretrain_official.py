"""A paper-configuration checkpoint written by ``m2d-pretrain train`` loads in the official runtime (opt-in).

ViT-Base, 80x608 input, 16x16 patches, 8-block 512-d predictor: one optimizer step on two generated clips, then the
checkpoint (and its encoder-only export) must give the same embeddings in the official ``portable_m2d.py`` as in
``m2d_hear.load_model``. The official code cannot be shipped or downloaded here; point ``M2D_OFFICIAL_REPO`` at a
checkout of github.com/nttcslab/m2d (needs ``pip install einops nnAudio``):

    M2D_OFFICIAL_REPO=~/src/m2d pytest tests/test_pretrain_official.py -s

It writes a 1.7 GB checkpoint (weights + AdamW state) and takes about a minute on a laptop CPU.

``M2D_OFFICIAL_TRAINER`` (a checkout with ``patch_m2d.diff`` applied to facebookresearch/mae ``efb2a80``, README
section 1 of the official repository) enables the second test: the official pre-training model ``M2DViT``, given our
model's weights and the same random state, computes the same loss and gradients, and the same EMA update.
"""
import os
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import m2d_hear
from pretrain.cli import main
from tests.fixtures.datasets import write_audio

REPO = os.environ.get("M2D_OFFICIAL_REPO")
TRAINER = os.environ.get("M2D_OFFICIAL_TRAINER")


@pytest.mark.skipif(not REPO, reason="set M2D_OFFICIAL_REPO to an nttcslab/m2d checkout to compare")
def test_paper_config_checkpoint_loads_in_official_runtime(tmp_path):
    sys.path.insert(0, str(Path(REPO) / "examples"))
    import portable_m2d

    for n in range(2):
        write_audio(tmp_path / "src" / f"{n}.wav", n, seconds=7.0 + n, n=n)
    runner = CliRunner()
    result = runner.invoke(main, ["prepare", str(tmp_path / "src"), str(tmp_path / "data"), "-j", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "runs"),
                                  "--batch-size", "2", "--epochs", "1", "--min-ds-size", "0", "--lr", "1e-4",
                                  "--warmup-epochs", "0", "--norm-stats-samples", "10", "--no-progress"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("m2d_vit_base-80x608p16x16-") and run.name.endswith("-mr7")
    ckpt = run / "checkpoint-1.pth"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert len(state["model"]) == 401 and state["epoch"] == 1 and state["step"] == 1
    result = runner.invoke(main, ["export", str(ckpt)])
    assert result.exit_code == 0, result.output
    enconly = Path(result.output.strip())

    for path in (ckpt, enconly):
        official = portable_m2d.PortableM2D(str(path))
        ours = m2d_hear.load_model(str(path))
        assert official.backbone.norm_stats.tolist() == ours.encoder.norm_stats.tolist() != [-7.1, 4.2]
        for seconds in (0.5, 6.08, 13.3):
            audio = torch.rand(2, int(seconds * 16000), generator=torch.Generator().manual_seed(3)) * 2 - 1
            with torch.no_grad():
                a, b = official.encode(audio), ours.encode(audio)
            diff = (a - b).abs().max().item()
            print(f"{path.parent.name}/{path.name} {seconds:5.2f} s: {tuple(a.shape)} max |official - ours| = {diff:.2e}")
            assert a.shape == b.shape and diff < 1e-4


@pytest.mark.skipif(not TRAINER, reason="set M2D_OFFICIAL_TRAINER to a patched nttcslab/m2d + MAE tree to compare")
def test_objective_equals_official_m2dvit():
    sys.path.insert(0, TRAINER)
    from m2d import models_mae

    from pretrain.model import build_pretrain_model

    torch.manual_seed(0)
    ours = build_pretrain_model("m2d_vit_base", (80, 608), (16, 16), norm_stats=(-7.0, 4.0))
    theirs = models_mae.m2d_vit_base(img_size=[80, 608], patch_size=[16, 16], norm_stats=[-7.0, 4.0],
                                     norm_pix_loss=True, loss_type="norm_mse")
    theirs.load_state_dict(ours.state_dict(), strict=True)  # every key and shape is the official one
    x = torch.randn(2, 1, 80, 608)
    torch.manual_seed(7)  # both draw the masking noise as torch.rand(B, N) from the global generator
    loss_theirs = theirs(x, mask_ratio=0.7)[0]
    torch.manual_seed(7)
    loss_ours = ours(x)
    print(f"loss official {loss_theirs.item():.7f} ours {loss_ours.item():.7f}")
    assert abs(loss_theirs.item() - loss_ours.item()) < 1e-6
    loss_theirs.backward()
    loss_ours.backward()
    grads = {n: p.grad for n, p in ours.named_parameters()}
    for name, p in theirs.named_parameters():
        assert (p.grad is None) == (grads[name] is None), name
        if p.grad is not None:
            torch.testing.assert_close(grads[name], p.grad, rtol=1e-5, atol=1e-7, msg=name)
    theirs.update_target_network(0.99)
    ours.update_target(0.99)
    official = theirs.state_dict()
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, official[key], rtol=0, atol=1e-7, msg=key)
