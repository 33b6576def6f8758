"""``m2d-pretrain prepare / train / export`` end to end, on a tiny generated corpus and a tiny model.

Budget: about a minute of CPU in all (the loss-falls run is the longest, ~300 steps of a 64-d, 2-block ViT).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import m2d_hear
from pretrain.checkpointing import LAST
from pretrain.cli import main
from pretrain.model import build_pretrain_model
from tests.fixtures.datasets import corrupt, write_audio

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "m2d_vit_tiny", "--embed-dim", "64", "--depth", "2", "--input-size", "80x64",
        "--decoder-dim", "32", "--decoder-depth", "1", "--decoder-heads", "2", "--min-ds-size", "0",
        "--norm-stats-samples", "40", "--no-progress", "--quiet", "--threads", "1", "--log-every", "1"]


@pytest.fixture
def one_thread():
    """CLI runs in this process set torch's thread count; put it back afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def cli(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """24 short tones (16/22.05/44.1 kHz, some stereo, wav and flac) converted once by ``prepare``."""
    root = tmp_path_factory.mktemp("corpus")
    for n in range(24):
        write_audio(root / "src" / f"set{n % 2}" / f"clip{n:02d}.{'flac' if n % 4 == 0 else 'wav'}",
                    label_index=n % 6, seconds=0.4 + 0.1 * (n % 5), n=n)
    result = CliRunner().invoke(main, ["prepare", str(root / "src"), str(root / "data"), "-j", "1"])
    assert result.exit_code == 0, result.output
    return root


def train_args(data, out, *extra):
    return ["train", "--data", data, "--out", out, *TINY, *extra]


def state_of(path: Path) -> dict:
    """Checkpoints hold tensors, plain values and the args Namespace only: they load with weights_only."""
    import argparse

    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def log_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def steps_of(run: Path) -> list[dict]:
    """The training-step records of the log (the effective-rank records aside)."""
    return [r for r in log_of(run) if "loss" in r]


def run_dir_of(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


# ---------------------------------------------------------------------------------------------------- prepare
def test_prepare_converts_pads_and_reports_a_corrupt_file(tmp_path):
    src, data = tmp_path / "src", tmp_path / "data"
    write_audio(src / "a" / "short.wav", 0, seconds=0.3, n=1)  # 22.05 kHz, shorter than 6.1 s
    write_audio(src / "a" / "stereo.wav", 1, seconds=7.0, n=2)  # 44.1 kHz stereo, longer
    write_audio(src / "b" / "c.flac", 2, seconds=1.0, n=0)
    corrupt(src / "b" / "broken.wav")
    (src / "notes.txt").write_text("not audio")
    result = CliRunner().invoke(main, ["prepare", str(src), str(data), "-j", "2"])
    assert result.exit_code == 1, result.output  # the others are converted, then the failure is the exit status
    assert "converted 3" in result.output and "failed 1" in result.output
    assert f"Error: 1 file(s) could not be converted (listed in {data / 'failed.csv'})" in result.output
    assert f"FAILED {src / 'b' / 'broken.wav'}" in result.output
    short = np.load(data / "a" / "short.npy")
    assert short.dtype == np.float32 and short.shape == (1, 80, 611)  # padded to 6.1 s: 1 + 97600 // 160
    assert np.load(data / "a" / "stereo.npy").shape == (1, 80, 1 + 7 * 16000 // 160)
    assert np.isfinite(short).all() and short[..., :25].mean() > short[..., 200:].mean()  # tone, then zero pad
    listed = (data / "files.csv").read_text().split()
    assert listed == ["file_name", "a/short.npy", "a/stereo.npy", "b/c.npy"]
    assert "broken.wav" in (data / "failed.csv").read_text()
    # the log-mel is the m2d_hear front end's
    from m2d_hear.audio import read_audio
    from m2d_hear.frontend import LogMelSpectrogram

    wave = read_audio(src / "b" / "c.flac", 16000)
    wave = np.pad(wave, (0, 97600 - len(wave)))
    expected = LogMelSpectrogram()(torch.from_numpy(wave)[None])[0].numpy()
    np.testing.assert_allclose(np.load(data / "b" / "c.npy"), expected, atol=1e-5)

    # resumable: the done files are skipped; fixing the broken one converts only it
    write_audio(src / "b" / "broken.wav", 3, seconds=0.5, n=0)
    result = CliRunner().invoke(main, ["prepare", str(src), str(data), "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "converted 1, skipped 3" in result.output and "failed 0" in result.output
    assert not (data / "failed.csv").exists()


def test_prepare_refuses_an_empty_folder(tmp_path):
    (tmp_path / "src").mkdir()
    result = CliRunner().invoke(main, ["prepare", str(tmp_path / "src"), str(tmp_path / "data")])
    assert result.exit_code != 0 and "no audio files" in result.output


# ------------------------------------------------------------------------------------------------------ train
def test_loss_falls_and_checkpoint_loads_in_m2d_hear(corpus, tmp_path, one_thread):
    out = tmp_path / "runs"
    cli(*train_args(corpus / "data", out, "--epochs", "100", "--batch-size", "8", "--lr", "1e-3",
                    "--warmup-epochs", "3", "--save-freq", "50"))
    run = run_dir_of(out)
    assert run.name.startswith("m2d_vit_tiny-80x64p16x16-") and run.name.endswith("-mr7")
    log = steps_of(run)
    assert [r["step"] for r in log] == list(range(1, 301))  # 24 files / batch 8 = 3 steps x 100 epochs
    assert set(log[0]) >= {"step", "epoch", "loss", "lr", "ema", "samples_per_s"}
    first, last = np.mean([r["loss"] for r in log[:20]]), np.mean([r["loss"] for r in log[-20:]])
    assert first > 1.0 and last < 0.5 * first, (first, last)
    assert log[-1]["ema"] == pytest.approx(0.99999) and log[0]["ema"] == pytest.approx(0.99995)
    assert {p.name for p in run.glob("checkpoint-*.pth")} == {"checkpoint-50.pth", "checkpoint-100.pth"}

    ckpt = state_of(run / "checkpoint-100.pth")
    assert ckpt["epoch"] == 100 and ckpt["step"] == 300 and set(ckpt) >= {"model", "optimizer", "scaler", "args"}
    assert ckpt["args"].input_size == [80, 64] and ckpt["args"].mask_ratio == 0.7
    model = build_pretrain_model("m2d_vit_tiny", (80, 64), (16, 16), 32, 1, 2, embed_dim=64, depth=2)
    model.load_state_dict(ckpt["model"])
    mean, std = model.norm_stats.tolist()
    assert -20 < mean < 0 and 1 < std < 10  # computed from the data, not the default -7.1/4.2

    loaded = m2d_hear.load_model(str(run / "checkpoint-100.pth"))
    lms = torch.randn(3, 1, 80, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encoder(lms), model.encode(lms), rtol=0, atol=1e-6)
        audio = torch.rand(2, 63 * 160) * 0.2 - 0.1  # exactly 64 frames: one chunk
        tokens = model.encode((loaded.frontend(audio) - mean) / std)
        ours = tokens.reshape(2, 5, 4, 64).permute(0, 2, 1, 3).reshape(2, 4, 320)  # b (f t) d -> b t (f d)
        torch.testing.assert_close(loaded.encode(audio), ours, rtol=0, atol=1e-5)

    # export: encoder-only, official key set, same embeddings; fp16 variant close
    path = Path(cli("export", run / "checkpoint-100.pth").output.strip())
    assert path == out / f"{run.name}_enconly" / "checkpoint-100.pth"
    exported = torch.load(path, weights_only=True)
    assert set(exported) == {k for k in ckpt["model"] if k.split(".")[0] in
                             ("cls_token", "pos_embed", "norm_stats", "patch_embed", "blocks", "norm")}
    with torch.no_grad():
        torch.testing.assert_close(m2d_hear.load_model(str(path)).encode(audio), loaded.encode(audio))
        half = Path(cli("export", run / "checkpoint-100.pth", "--fp16", "--out", tmp_path / run.name / "h.pth")
                    .output.strip())
        assert torch.load(half, weights_only=True)["blocks.0.attn.qkv.weight"].dtype == torch.float16
        assert (m2d_hear.load_model(str(half)).encode(audio) - loaded.encode(audio)).abs().max() < 1e-2


def test_resume_equals_uninterrupted_run(corpus, tmp_path, one_thread):
    common = ["--epochs", "4", "--batch-size", "4", "--accum-iter", "2", "--lr", "1e-3", "--warmup-epochs", "1",
              "--save-freq", "2", "--seed", "5"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    cli(*train_args(corpus / "data", whole, *common, "--steps", "5"))  # 6 iterations = 3 steps per epoch
    cli(*train_args(corpus / "data", parts, *common, "--steps", "2"))  # stops inside epoch 1
    run = run_dir_of(parts)
    assert state_of(run / LAST)["epoch_iteration"] == 4
    result = cli("train", "--data", corpus / "data", "--out", parts, "--resume", "--steps", "5", "--threads", "1",
                 "--no-progress", "--quiet")  # the run's options come from its checkpoint
    a, b = state_of(run_dir_of(whole) / LAST), state_of(run / LAST)
    assert a["step"] == b["step"] == 5 and a["epoch"] == b["epoch"] == 1 and b["epoch_iteration"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert not (run / "checkpoint-2.pth").exists()  # epoch 2 is not finished
    assert [r["step"] for r in steps_of(run)] == [1, 2, 3, 4, 5]
    assert result.exit_code == 0


def test_background_noise_run_resumes_with_its_ratio_and_differs_from_plain(corpus, tmp_path, one_thread):
    """--noise-ratio is a run option: a resumed run takes it from its checkpoint and equals an uninterrupted one."""
    common = ["--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--warmup-epochs", "1", "--seed", "5",
              "--rank-every", "0"]
    whole, parts, plain = tmp_path / "whole", tmp_path / "parts", tmp_path / "plain"
    cli(*train_args(corpus / "data", whole, *common, "--noise-ratio", "0.3", "--steps", "4"))
    cli(*train_args(corpus / "data", parts, *common, "--noise-ratio", "0.3", "--steps", "2"))
    cli(*train_args(corpus / "data", plain, *common, "--steps", "4"))
    cli("train", "--data", corpus / "data", "--out", parts, "--resume", "--steps", "4", "--threads", "1",
        "--no-progress", "--quiet")
    a, b = state_of(run_dir_of(whole) / LAST), state_of(run_dir_of(parts) / LAST)
    assert b["args"].noise_ratio == 0.3 and b["step"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert [r["loss"] for r in steps_of(run_dir_of(whole))] == [r["loss"] for r in steps_of(run_dir_of(parts))]
    losses_plain = [r["loss"] for r in steps_of(run_dir_of(plain))]
    assert losses_plain != [r["loss"] for r in steps_of(run_dir_of(whole))]
    # --noise-target mixture: the target encodes the mixture too, another loss again; resumed with that setting
    both = tmp_path / "both"
    cli(*train_args(corpus / "data", both, *common, "--noise-ratio", "0.3", "--noise-target", "mixture",
                    "--steps", "2"))
    cli("train", "--data", corpus / "data", "--out", both, "--resume", "--steps", "4", "--threads", "1",
        "--no-progress", "--quiet")
    assert state_of(run_dir_of(both) / LAST)["args"].noise_target == "mixture"
    losses_both = [r["loss"] for r in steps_of(run_dir_of(both))]
    assert len(losses_both) == 4 and losses_both[0] != steps_of(run_dir_of(whole))[0]["loss"]
    assert losses_both[0] != losses_plain[0]
    for bad in ("1.0", "-0.1"):
        result = cli(*train_args(corpus / "data", tmp_path / "o", "--noise-ratio", bad), ok=False)
        assert result.exit_code != 0 and "--noise-ratio" in result.output and "[0, 1)" in result.output


def test_ema_rates_outside_0_1_are_refused(corpus, tmp_path):
    for option in ("--ema-decay-init", "--ema-decay"):
        for bad in ("-0.5", "1.5", "nan"):
            result = cli(*train_args(corpus / "data", tmp_path / "o", option, bad), ok=False)
            assert result.exit_code == 2 and option in result.output and "[0, 1]" in result.output
            assert "Traceback" not in result.output


def make_trainer(data, out, *extra):
    from pretrain.train import namespace, train as command
    from pretrain.trainer import Trainer

    ctx = command.make_context("train", [str(a) for a in train_args(data, out, *extra)[1:]])
    return Trainer(namespace(dict(ctx.params)))


def test_the_global_batch_is_split_evenly_across_processes(corpus, tmp_path):
    from m2d_hear.distributed import DistEnv
    from pretrain.train import namespace, train as command
    from pretrain.trainer import Trainer, TrainingError

    args = train_args(corpus / "data", tmp_path, "--batch-size", "5")[1:]
    ctx = command.make_context("train", [str(a) for a in args])
    with pytest.raises(TrainingError, match="--batch-size 5 is the global batch, which 2 processes must split"):
        Trainer(namespace(dict(ctx.params)), env=DistEnv(rank=1, world=2)).setup()


def test_in_the_loop_target_changes_only_by_ema(corpus, tmp_path, one_thread):
    torch.set_num_threads(1)
    trainer = make_trainer(corpus / "data", tmp_path, "--batch-size", "4", "--accum-iter", "2", "--epochs", "2",
                           "--ema-decay-init", "0.9", "--ema-decay", "0.99", "--lr", "1e-2", "--warmup-epochs", "0")
    trainer.setup()
    model, batches = trainer.model, iter(trainer.loader)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.set_lr(0.0)
    trainer.iteration_step(next(batches), 0)  # first micro-batch: gradients accumulate, nothing moves
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.target_parameters())
    trainer.iteration_step(next(batches), 1)  # second: AdamW step, then EMA with the rate of iteration 1
    tau = 0.9 + (0.99 - 0.9) * 1 / (trainer.total_iters - 1)
    after = model.state_dict()
    assert not torch.equal(after["blocks.0.attn.qkv.weight"], before["blocks.0.attn.qkv.weight"])
    for key, value in after.items():
        if key.startswith("target_"):
            online = after[key.replace("target_blocks", "blocks").replace("target_norm", "norm")]
            torch.testing.assert_close(value, tau * before[key] + (1 - tau) * online, rtol=0, atol=1e-6)
        elif key in ("pos_embed", "decoder_pos_embed", "norm_stats"):
            assert torch.equal(value, before[key])
    assert trainer.step == 1 and trainer.iteration == 2


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_runs(corpus, tmp_path, one_thread, amp):
    cli(*train_args(corpus / "data", tmp_path, "--batch-size", "8", "--epochs", "1", "--amp", amp))
    state = state_of(run_dir_of(tmp_path) / "checkpoint-1.pth")
    assert (state["scaler"] is not None) == (amp == "fp16")
    assert all(v.dtype == torch.float32 for v in state["model"].values())  # master weights stay fp32
    log = steps_of(run_dir_of(tmp_path))
    assert len(log) == 3 and all(np.isfinite(r["loss"]) for r in log)


def test_ctrl_c_saves_the_state_and_resume_finishes(corpus, tmp_path, one_thread, monkeypatch):
    import signal

    from pretrain.trainer import Trainer

    original, calls = Trainer.iteration_step, []

    def interrupted(self, batch, epoch_iter):
        out = original(self, batch, epoch_iter)
        calls.append(epoch_iter)
        if len(calls) == 4:
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C in the middle of the 4th step
        return out

    monkeypatch.setattr(Trainer, "iteration_step", interrupted)
    args = train_args(corpus / "data", tmp_path / "r", "--epochs", "3", "--batch-size", "4", "--save-freq", "3")
    cli(*args)
    run = run_dir_of(tmp_path / "r")
    state = state_of(run / LAST)
    assert (state["step"], state["epoch"], state["epoch_iteration"]) == (4, 0, 4) and len(calls) == 4
    monkeypatch.undo()
    cli(*args, "--resume", "--checkpoint-minutes", "1e-9")  # now also a mid-epoch state after every step
    state = state_of(run / LAST)
    assert (state["step"], state["epoch"], state["epoch_iteration"]) == (17, 2, 5)
    assert state_of(run / "checkpoint-3.pth")["step"] == 18


def test_effective_rank_is_logged_each_epoch_and_leaves_training_unchanged(corpus, tmp_path, one_thread):
    common = ["--epochs", "4", "--batch-size", "8", "--lr", "1e-3", "--warmup-epochs", "1", "--save-freq", "4"]
    cli(*train_args(corpus / "data", tmp_path / "off", *common, "--rank-every", "0"))
    cli(*train_args(corpus / "data", tmp_path / "on", *common, "--rank-every", "2", "--rank-clips", "10"))
    off, on = run_dir_of(tmp_path / "off"), run_dir_of(tmp_path / "on")
    assert [r["loss"] for r in steps_of(on)] == [r["loss"] for r in steps_of(off)]  # measuring draws no randomness
    a, b = state_of(off / "checkpoint-4.pth")["model"], state_of(on / "checkpoint-4.pth")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not [r for r in log_of(off) if "effective_rank" in r]
    ranks = [r for r in log_of(on) if "effective_rank" in r]
    assert [(r["epoch"], r["step"]) for r in ranks] == [(0, 0), (2, 6), (4, 12)]
    assert all(r["rank_clips"] == 10 and r["random_init_rank"] == ranks[0]["effective_rank"] for r in ranks)
    assert all(1.0 < r["effective_rank"] <= 10.0 for r in ranks)
    assert ranks[1]["effective_rank"] != ranks[0]["effective_rank"]  # measured on the trained encoder

    # the reference is re-measured on resume (the same seed builds the same random init), not taken from the log
    cli(*train_args(corpus / "data", tmp_path / "on", *common, "--rank-every", "2", "--rank-clips", "10",
                    "--resume", "--epochs", "6"))
    again = [r for r in log_of(on) if "effective_rank" in r]
    assert again[:3] == ranks and again[3]["epoch"] == 6
    assert again[3]["random_init_rank"] == pytest.approx(ranks[0]["effective_rank"], rel=1e-6)

    # m2d-pretrain plot: the loss, and a panel for the rank under it where the log has it (a taller figure)
    heights = {}
    for name, run in (("on", on), ("off", off)):
        png = Path(cli("plot", run).output.strip())
        header = png.read_bytes()[:24]
        assert png == run / "loss.png" and header[:8] == b"\x89PNG\r\n\x1a\n"
        heights[name] = int.from_bytes(header[20:24], "big")
    assert heights["on"] > 1.4 * heights["off"]


def test_a_collapsing_representation_is_warned_about(corpus, tmp_path, one_thread, monkeypatch):
    import pretrain.trainer

    monkeypatch.setattr(pretrain.trainer, "COLLAPSE_FRACTION", 100.0)  # any rank counts as a collapse here
    result = CliRunner().invoke(main, [str(a) for a in train_args(corpus / "data", tmp_path, "--epochs", "1",
                                                                  "--batch-size", "8")])
    assert result.exit_code == 0, result.output
    assert "warning: epoch 1: the effective rank of the embeddings fell to" in result.output
    assert "of the random init's" in result.output and "--ema-decay-init" in result.output


def test_rank_probe_measures_collapse_and_spread():
    from pretrain.collapse import RankProbe, probe_indices
    from pretrain.data import LogMelCrops

    assert probe_indices(5, 256).tolist() == [0, 1, 2, 3, 4]
    assert probe_indices(1000, 4).tolist() == [0, 333, 666, 999]

    class Clips(LogMelCrops):  # 32 files of random log-mels, without a folder
        def __init__(self):
            self.n_mels, self.width, self.files = 80, 64, [f"{i}.npy" for i in range(32)]

        def read(self, index):
            return np.random.default_rng(index).normal(size=(1, 80, 96)).astype(np.float32)

    model = build_pretrain_model("m2d_vit_tiny", (80, 64), (16, 16), 32, 1, 2, embed_dim=64, depth=2)
    probe = RankProbe(Clips(), 32, 0.0, 1.0, batch_size=5)
    spread = probe.measure(model.train(), torch.device("cpu"))
    assert model.training and 8.0 < spread <= 32.0
    with torch.no_grad():
        model.norm.weight.zero_()  # every token the same vector: the embeddings collapse to one point
    assert probe.measure(model, torch.device("cpu")) == pytest.approx(0.0, abs=1.0)


def test_train_errors_are_one_line(corpus, tmp_path, one_thread):
    result = cli(*train_args(tmp_path, tmp_path / "o", "--epochs", "1"), ok=False)
    assert result.exit_code != 0 and "files.csv" in result.output and "m2d-pretrain prepare" in result.output
    result = cli(*train_args(corpus / "data", tmp_path / "o", "--batch-size", "64"), ok=False)
    assert result.exit_code != 0 and "lower --batch-size" in result.output
    result = cli(*train_args(corpus / "data", tmp_path / "o", "--resume"), ok=False)
    assert result.exit_code != 0 and "no checkpoint" in result.output
    cli(*train_args(corpus / "data", tmp_path / "o", "--epochs", "1", "--batch-size", "8"))
    result = cli(*train_args(corpus / "data", tmp_path / "o", "--epochs", "1", "--batch-size", "8"), ok=False)
    assert result.exit_code != 0 and "--resume" in result.output
    result = cli("export", tmp_path / "nothing.pth", ok=False)
    assert result.exit_code != 0 and "nothing.pth" in result.output
    bad = corpus / "data_bad"
    bad.mkdir(exist_ok=True)
    (bad / "files.csv").write_text("file_name\nmissing.npy\n")
    result = cli(*train_args(bad, tmp_path / "o2", "--batch-size", "1"), ok=False)
    assert result.exit_code != 0 and "missing.npy" in result.output and "Traceback" not in result.output
    (bad / "files.csv").write_text("file_name\nbroken.npy\n")
    (bad / "broken.npy").write_bytes(b"not numpy")  # read in a loader worker; norm_stats given, so not before
    result = cli(*train_args(bad, tmp_path / "o3", "--batch-size", "1", "--workers", "1", "--norm-stats", "-7,4"),
                 ok=False)
    assert result.exit_code != 0 and "broken.npy: not a readable .npy file" in result.output
    assert len(result.output.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------ distributed
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_equals_one_process(corpus, tmp_path):
    # the same command, --batch-size 8 (the global batch) included: each of the two processes takes 4 crops
    common = ["--epochs", "3", "--lr", "1e-3", "--warmup-epochs", "1", "--steps", "4", "--seed", "2",
              "--batch-size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    one = subprocess.run([sys.executable, "-m", "pretrain.cli", *train_args(corpus / "data", tmp_path / "one"),
                          *common], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    for attempt in range(2):
        out = tmp_path / ("two" if attempt == 0 else "two-again")
        two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                              "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                              "-m", "pretrain.cli", *train_args(corpus / "data", out), *common],
                             env=env, capture_output=True, text=True, timeout=300)
        # Under pytest (never when run by hand), about 1 run in 4 loses a gloo process to an abort in PyTorch's
        # C++ teardown ('terminate called without an active exception', exit -6); the same command then runs
        # through. That one signature is tried again once; any other failure, or a second abort, fails the test.
        if two.returncode == 0 or "terminate called without an active exception" not in two.stderr:
            break
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = state_of(run_dir_of(tmp_path / "one") / LAST), state_of(run_dir_of(out) / LAST)
    assert a["step"] == b["step"] == 4
    assert len(list(out.rglob("*.pth"))) == 1  # only rank 0 wrote
    for key, value in a["model"].items():
        other = b["model"][key]
        if key.endswith("attn.qkv.bias"):
            # The key bias gets a zero gradient in exact arithmetic (softmax ignores a shift shared by all keys), so
            # Adam turns pure rounding noise into lr-sized steps there: compare only the query and value biases.
            third = value.shape[0] // 3
            value, other = torch.cat([value[:third], value[2 * third:]]), torch.cat([other[:third], other[2 * third:]])
        torch.testing.assert_close(other, value, rtol=0, atol=5e-6, msg=key)
    torch.manual_seed(2)  # the runs' initial weights: training moved them much more than the runs differ
    init = build_pretrain_model("m2d_vit_tiny", (80, 64), (16, 16), 32, 1, 2, embed_dim=64, depth=2).state_dict()
    for key, moved in (("blocks.0.attn.qkv.weight", 1e-4), ("mask_token", 1e-4), ("target_blocks.1.mlp.fc2.weight", 1e-5)):
        assert (init[key] - a["model"][key]).abs().max() > moved, key
