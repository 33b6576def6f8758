"""scripts/pool_to_opus.py: the default model's recipe packs every K-th pool clip as Ogg Opus, and
`m2d-pretrain prepare` reads the .ogg files back as log-mels."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "pool_to_opus.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=REPO)


def make_pool(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for source in ("music", "speech"):
        for i in range(3):
            path = root / source / f"pool_{source}_{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            t = np.arange(16000) / 16000
            sf.write(path, 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) + 0.01 * rng.standard_normal(16000), 16000)
            paths.append(path)
    return sorted(paths)


def test_every_kth_clip_round_trips(tmp_path):
    wavs = make_pool(tmp_path / "pool")
    out = tmp_path / "opus"
    result = run(tmp_path / "pool", out, "--every", "2")
    assert result.returncode == 0, result.stderr
    written = sorted(out.rglob("*.ogg"))
    assert [p.relative_to(out).with_suffix(".wav") for p in written] == \
        [w.relative_to(tmp_path / "pool") for w in wavs[::2]]
    assert not list(out.rglob("*tmp*"))
    for ogg, wav in zip(written, wavs[::2]):
        decoded, sr = sf.read(ogg)
        original, _ = sf.read(wav)
        assert sr == 16000 and len(decoded) == len(original)
        # a lossy copy of the same tone: the spectra peak at the same frequency
        assert np.argmax(np.abs(np.fft.rfft(decoded))) == np.argmax(np.abs(np.fft.rfft(original)))
    before = {p: p.stat().st_mtime_ns for p in written}
    assert run(tmp_path / "pool", out, "--every", "2").returncode == 0      # an interrupted run continues
    assert {p: p.stat().st_mtime_ns for p in sorted(out.rglob("*.ogg"))} == before

    lms = tmp_path / "lms"
    prep = subprocess.run([sys.executable, "-m", "pretrain.cli", "prepare", str(out), str(lms), "--workers", "0",
                           "--min-seconds", "2.08"], capture_output=True, text=True, cwd=REPO)
    assert prep.returncode == 0, prep.stderr
    arrays = [np.load(p) for p in sorted(lms.rglob("*.npy"))]
    assert len(arrays) == 3 and all(a.shape[:2] == (1, 80) and np.isfinite(a).all() for a in arrays)


def test_bad_input_is_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(empty, tmp_path / "out")
    assert result.returncode != 0 and "no .wav files" in result.stderr and "Traceback" not in result.stderr
    pool = tmp_path / "pool"
    make_pool(pool)
    (pool / "music" / "pool_music_0.wav").write_bytes(b"RIFF not audio")
    result = run(pool, tmp_path / "out")
    assert result.returncode != 0 and "pool_music_0.wav" in result.stderr and "Traceback" not in result.stderr
    (pool / "music" / "pool_music_0.wav").unlink()
    sf.write(pool / "music" / "pool_music_0.wav", np.zeros(4410), 44100)
    result = run(pool, tmp_path / "out")
    assert result.returncode != 0 and "pool_music_0.wav" in result.stderr and "44100 Hz" in result.stderr
    assert "Traceback" not in result.stderr and not list((tmp_path / "out").rglob("*tmp*"))
    for bad in (("--every", "0"), ("--level", "1.5")):
        result = run(pool, tmp_path / "out", *bad)
        assert result.returncode == 2 and bad[0] in result.stderr and "Traceback" not in result.stderr
