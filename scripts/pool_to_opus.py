"""Pack every K-th clip of a rendered pre-training pool as Ogg Opus, so that it can travel to a GPU machine.

    python scripts/pool_to_opus.py POOL_DIR OUT_DIR [--every 2] [--level 0.96]

POOL_DIR is the folder `m2d-eval mini pool` writes (<source>/<name>.wav); OUT_DIR gets <source>/<name>.ogg for the
clips at positions 0, K, 2K, ... of the sorted file list (every source keeps its share). `--level` is libsndfile's
Opus compression level (0 = best quality, 1 = smallest): 0.96 gives about 17 kbit/s for the mini pool's 16 kHz
clips, 8.5 kB per 4 s clip. `m2d-pretrain prepare OUT_DIR ...` reads the .ogg files back. Already written files
are kept, so an interrupted run continues.
"""
import argparse
from pathlib import Path

import soundfile as sf

from m2d_hear.fileio import atomic_path

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pool", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--level", type=float, default=0.96)
    args = parser.parse_args()
    if args.every < 1:
        parser.error(f"--every {args.every}: must be 1 or more (1 keeps every clip)")
    if not 0.0 <= args.level <= 1.0:
        parser.error(f"--level {args.level}: must be between 0 (best quality) and 1 (smallest)")
    wavs = sorted(args.pool.rglob("*.wav"))
    if not wavs:
        raise SystemExit(f"{args.pool}: no .wav files; render the pool with 'm2d-eval mini pool' first")
    chosen = wavs[::args.every]
    total = 0
    for wav in chosen:
        dest = (args.out / wav.relative_to(args.pool)).with_suffix(".ogg")
        if not dest.exists():
            try:
                audio, sr = sf.read(wav, dtype="float32")
            except (sf.LibsndfileError, RuntimeError) as err:
                raise SystemExit(f"{wav}: cannot be read ({err}); render the pool again or delete the file") from None
            if sr not in OPUS_RATES:
                rates = ", ".join(map(str, OPUS_RATES))
                raise SystemExit(f"{wav}: {sr} Hz, which Opus cannot store (it takes {rates}); resample the pool "
                                 "to 16 kHz first")
            with atomic_path(dest) as tmp:
                sf.write(tmp, audio, sr, format="OGG", subtype="OPUS", compression_level=args.level)
        total += dest.stat().st_size
    print(f"{len(chosen)} of {len(wavs)} clips -> {args.out} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
