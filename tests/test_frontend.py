"""The log-mel front end against nnAudio (the official front end) and torchaudio."""
import numpy as np
import pytest
import torch

from m2d_hear.frontend import FRONT_ENDS, LogMelSpectrogram


@pytest.mark.parametrize("seconds,frames", [(1.0, 101), (5.0, 501), (8.2, 821), (10.0, 1001)])
def test_frame_counts(seconds, frames):
    lms = LogMelSpectrogram()(torch.zeros(1, int(seconds * 16000)) + 0.01)
    assert lms.shape == (1, 1, 80, frames)


def _signal(rate, seconds=2.0):
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(rate * seconds)) / rate
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.2 * torch.sin(2 * torch.pi * 3000 * t * (1 + t))
    return (tone + 0.05 * torch.randn(len(t), generator=g)).unsqueeze(0).float()


@pytest.mark.parametrize("sr", ["16k", "32k"])
def test_matches_nnaudio(sr):
    features = pytest.importorskip("nnAudio.features")
    cfg = FRONT_ENDS[sr]
    ref_spec = features.MelSpectrogram(sr=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.n_fft,
                                       hop_length=cfg.hop_length, n_mels=80, fmin=cfg.f_min, fmax=cfg.f_max,
                                       center=True, power=2, verbose=False)
    audio = _signal(cfg.sample_rate)
    ref = (ref_spec(audio) + torch.finfo().eps).log()
    ours = LogMelSpectrogram(cfg)(audio)[:, 0]
    assert ours.shape == ref.shape
    assert np.allclose(LogMelSpectrogram(cfg).mel_basis.numpy(), ref_spec.mel_basis.numpy(), atol=1e-7)
    assert (ours - ref).abs().max().item() < 5e-4  # float32 matmul-vs-conv1d rounding (measured 1.7e-4)
    assert (ours - ref).abs().mean().item() < 1e-5


def test_close_to_torchaudio_slaney():
    torchaudio = pytest.importorskip("torchaudio")
    cfg = FRONT_ENDS["16k"]
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=400, win_length=400, hop_length=160,
                                               f_min=50, f_max=8000, n_mels=80, power=2.0, center=True,
                                               pad_mode="reflect", norm="slaney", mel_scale="slaney")
    audio = _signal(16000)
    ref = torch.log(mel(audio) + torch.finfo().eps)
    ours = LogMelSpectrogram(cfg)(audio)[:, 0]
    assert (ours - ref).abs().mean().item() < 1e-4
