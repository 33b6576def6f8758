#!/usr/bin/env bash
# A run tried for the default model (results/default_model/README.md, "Every run tried"): the shipped recipe
# (scripts/make_default_model.sh: the varied 10,000-clip pool, 20 epochs of 312 steps, 2 warm-up epochs,
# EMA 0.9976 -> 0.9995, mask ratio 0.5, 4-block predictor, seed 0) with every crop mixed on the fly with another
# random crop of the pool (--noise-ratio 0.2 --noise-target mixture: background weight 0.2 in the power domain), and
# both the online and the target encoder seeing that mixture: mixing as data augmentation only, no denoising. The
# background crops have a random stream of their own, so the initialisation, clean crops and masks are the shipped
# run's: a paired comparison with seed 0. Run from the repository root.
set -euo pipefail
CACHE="${CACHE:-runs/poolvar10k}"
OUT="${OUT:-runs/ep20-mr5-mix2-varied-pool10k}"
NAME=m2d_vit_tiny-80x208p16x16-mini10kvaried-mr5-mix2
m2d-eval mini pool --out "$CACHE" --pool-clips 10000 --pool-sec 4.0 --pool-variety varied --seed 0
m2d-pretrain prepare "$CACHE/pool" "$OUT/lms" --min-seconds 2.08
RESUME=()
compgen -G "$OUT/$NAME/checkpoint-*.pth" > /dev/null && RESUME=(--resume)
m2d-pretrain train --data "$OUT/lms" --out "$OUT" --name "$NAME" --model m2d_vit_tiny --input-size 80x208 \
  --patch-size 16x16 --mask-ratio 0.5 --decoder-dim 192 --decoder-depth 4 --decoder-heads 3 \
  --noise-ratio 0.2 --noise-target mixture \
  --epochs 20 --warmup-epochs 2 --batch-size 32 --blr 1.5e-3 --ema-decay-init 0.9976 --ema-decay 0.9995 \
  --min-ds-size 10000 --norm-stats-samples 2000 --seed 0 --workers 0 --save-freq 2 --checkpoint-minutes 10 \
  --clip-grad 3.0 --log-every 10 --no-progress --threads 2 "${RESUME[@]}"
python scripts/mini_learning_curve.py "$OUT/$NAME" --epochs 4,8,12,16,20 --out "$OUT/curve"
