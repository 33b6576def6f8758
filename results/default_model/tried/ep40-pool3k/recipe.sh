#!/usr/bin/env bash
# A run tried for the default model (results/default_model/README.md, "Every run tried"): the default shipped from
# 2026-12-03 until it was replaced the same day (m2d_vit_tiny-80x208p16x16-mini3k-mr7, mini linear average 65.3):
# the standard 3,000-clip pool, 40 epochs of 93 steps (3,720 steps), 3 warm-up epochs, EMA 0.996 -> 0.9992.
# Run from the repository root.
set -euo pipefail
CACHE="${CACHE:-runs/pool3k}"
OUT="${OUT:-runs/ep40-pool3k}"
NAME=m2d_vit_tiny-80x208p16x16-mini3k-mr7
m2d-eval mini pool --out "$CACHE" --pool-clips 3000 --pool-sec 4.0 --seed 0
m2d-pretrain prepare "$CACHE/pool" "$OUT/lms" --min-seconds 2.08
RESUME=()
compgen -G "$OUT/$NAME/checkpoint-*.pth" > /dev/null && RESUME=(--resume)
m2d-pretrain train --data "$OUT/lms" --out "$OUT" --name "$NAME" --model m2d_vit_tiny --input-size 80x208 \
  --patch-size 16x16 --mask-ratio 0.7 --decoder-dim 192 --decoder-depth 4 --decoder-heads 3 \
  --epochs 40 --warmup-epochs 3 --batch-size 32 --blr 1.5e-3 --ema-decay-init 0.996 --ema-decay 0.9992 \
  --min-ds-size 3000 --norm-stats-samples 2000 --seed 0 --workers 0 --save-freq 4 --checkpoint-minutes 10 \
  --clip-grad 3.0 --log-every 10 --no-progress --threads 2 "${RESUME[@]}"
python scripts/mini_learning_curve.py "$OUT/$NAME" --epochs 4,8,16,24,32,40 --out "$OUT/curve"
