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
    # float32 rounding of two STFT algorithms (FFT vs conv1d), largest in the weakest bins: measured 2.6e-4 at 16 kHz;
    # against a float64 DFT ours is within 1e-4 (test_close_to_float64_reference)
    assert (ours - ref).abs().max().item() < 5e-4
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


def test_frames_do_not_depend_on_batch_or_length():
    """A clip's frames are bit-identical alone, inside a batch, or as the start of a longer clip (resumed and
    sharded extraction rely on this)."""
    front = LogMelSpectrogram()
    g = torch.Generator().manual_seed(1)
    clip = torch.rand(1, 33000, generator=g) * 2 - 1
    alone = front(clip)
    batch = torch.cat([torch.rand(5, 33000, generator=g), clip, torch.rand(2, 33000, generator=g)])
    assert torch.equal(front(batch)[5:6], alone)
    longer = front(torch.cat([clip, torch.rand(1, 64000, generator=g)], dim=1))
    # frames whose window lies inside the clip (the last two reach into the reflect padding)
    assert torch.equal(longer[..., :alone.shape[-1] - 2], alone[..., :-2])


def test_close_to_float64_reference():
    from m2d_hear.frontend import periodic_hann

    cfg = FRONT_ENDS["16k"]
    front = LogMelSpectrogram(cfg)
    audio = _signal(16000)
    padded = torch.nn.functional.pad(audio.double().unsqueeze(1), (200, 200), mode="reflect").squeeze(1)
    frames = padded.unfold(-1, 400, 160) * torch.from_numpy(periodic_hann(400))
    n, k = torch.arange(400, dtype=torch.float64), torch.arange(201, dtype=torch.float64)
    phase = 2 * torch.pi * torch.outer(n, k) / 400
    power = (frames @ torch.cos(phase)) ** 2 + (frames @ torch.sin(phase)) ** 2   # the DFT, in float64
    ref = torch.log(power @ front.mel_basis.double().T + torch.finfo().eps).transpose(1, 2)
    assert (front(audio)[:, 0].double() - ref).abs().max().item() < 1e-4
