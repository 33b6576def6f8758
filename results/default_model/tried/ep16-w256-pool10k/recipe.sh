#!/usr/bin/env bash
# A run tried for the default model (results/default_model/README.md, "Every run tried"): a wider encoder, 256-d
# instead of 192-d (12 blocks, 4 heads of 64, about 9.5 M parameters, about 19 MB in fp16), on the 10,000-clip pool,
# 16 epochs of 312 steps planned (4,992 steps), 2 warm-up epochs, the paper's EMA schedule scaled to 4,992 steps
# (0.9971 -> 0.9994); predictor and optimiser as the shipped recipe. Stopped after epoch 8. Run from the repository
# root.
set -euo pipefail
CACHE="${CACHE:-runs/pool10k}"
OUT="${OUT:-runs/ep16-w256-pool10k}"
NAME=m2d_vit_tiny-80x208p16x16-mini10kw256-mr7
m2d-eval mini pool --out "$CACHE" --pool-clips 10000 --pool-sec 4.0 --seed 0
m2d-pretrain prepare "$CACHE/pool" "$OUT/lms" --min-seconds 2.08
RESUME=()
compgen -G "$OUT/$NAME/checkpoint-*.pth" > /dev/null && RESUME=(--resume)
m2d-pretrain train --data "$OUT/lms" --out "$OUT" --name "$NAME" --model m2d_vit_tiny --embed-dim 256 --depth 12 \
  --input-size 80x208 --patch-size 16x16 --mask-ratio 0.7 --decoder-dim 192 --decoder-depth 4 --decoder-heads 3 \
  --epochs 16 --warmup-epochs 2 --batch-size 32 --blr 1.5e-3 --ema-decay-init 0.9971 --ema-decay 0.9994 \
  --min-ds-size 10000 --norm-stats-samples 2000 --seed 0 --workers 0 --save-freq 2 --checkpoint-minutes 10 \
  --clip-grad 3.0 --log-every 10 --no-progress --threads 2 "${RESUME[@]}"
python scripts/mini_learning_curve.py "$OUT/$NAME" --epochs 4,8 --out "$OUT/curve"
