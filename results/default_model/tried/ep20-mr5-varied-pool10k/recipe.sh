#!/usr/bin/env bash
# A run tried for the default model (results/default_model/README.md, "Every run tried"): the CPU recipe of the
# default shipped from 2026-12-03 to 2026-12-04 (m2d_vit_tiny-80x208p16x16-mini10kvaried-mr5, mini average 68.2):
# the varied 10,000-clip pool, ViT-Tiny, mask ratio 0.5, 20 epochs of 312 steps of batch 32 (6,240 steps), blr 1.5e-3,
# 2 warm-up epochs, EMA 0.9976 -> 0.9995, 4-block predictor, seed 0; about 70-85 min of training on a 2-core CPU.
# log.jsonl, loss.png and curve.csv/png beside this file are that run's. Run from the repository root; resumable.
set -euo pipefail
CACHE="${CACHE:-runs/poolvar10k}"
OUT="${OUT:-runs/ep20-mr5-varied-pool10k}"
NAME=m2d_vit_tiny-80x208p16x16-mini10kvaried-mr5
m2d-eval mini pool --out "$CACHE" --pool-clips 10000 --pool-sec 4.0 --pool-variety varied --seed 0
m2d-pretrain prepare "$CACHE/pool" "$OUT/lms" --min-seconds 2.08
RESUME=()
compgen -G "$OUT/$NAME/checkpoint-*.pth" > /dev/null && RESUME=(--resume)
m2d-pretrain train --data "$OUT/lms" --out "$OUT" --name "$NAME" --model m2d_vit_tiny --input-size 80x208 \
  --patch-size 16x16 --mask-ratio 0.5 --decoder-dim 192 --decoder-depth 4 --decoder-heads 3 \
  --epochs 20 --warmup-epochs 2 --batch-size 32 --blr 1.5e-3 --ema-decay-init 0.9976 --ema-decay 0.9995 \
  --min-ds-size 10000 --norm-stats-samples 2000 --seed 0 --workers 0 --save-freq 2 --checkpoint-minutes 10 \
  --clip-grad 3.0 --log-every 10 --no-progress --threads 2 "${RESUME[@]}"
m2d-pretrain export "$OUT/$NAME/checkpoint-20.pth" --fp16 --out "$OUT/${NAME}_enconly/weights_ep20.pth"
python scripts/mini_learning_curve.py "$OUT/$NAME" --epochs 4,8,12,16,20 --out "$OUT/curve"
