#!/usr/bin/env bash
# A run tried for the default model (results/default_model/README.md, "Every run tried"): mask ratio 0.5 and blr 1.5e-3 (lr 3e-3, the CPU recipe's blr: its lr scaled linearly with the batch).
# Otherwise the shipped recipe (scripts/make_default_model.sh: every second clip of the varied pool as 17 kbit/s Opus,
# 238 epochs of 19 steps of batch 512, 16 warm-up epochs, EMA 0.996699 -> 0.999337, on one GPU). Run from the
# repository root; log.jsonl, loss.png and curve.csv/png beside this file are that run's.
set -euo pipefail
CACHE="${M2D_CACHE:-$HOME/.cache/m2d-hear}/mini"
OUT="${OUT:-runs/gpu-ep238-b512-mr5-blr15}"
NAME=m2d_vit_tiny-80x208p16x16-mini5kopus-b512-mr5-blr15
m2d-eval mini pool --out "$CACHE" --pool-clips 10000 --pool-sec 4.0 --pool-variety varied --seed 0
python scripts/pool_to_opus.py "$CACHE/pool" "$OUT/opus" --every 2 --level 0.96
m2d-pretrain prepare "$OUT/opus" "$OUT/lms" --min-seconds 2.08
RESUME=()
compgen -G "$OUT/$NAME/checkpoint-*.pth" > /dev/null && RESUME=(--resume)
m2d-pretrain train --data "$OUT/lms" --out "$OUT" --name "$NAME" --model m2d_vit_tiny --input-size 80x208 \
  --patch-size 16x16 --mask-ratio 0.5 --decoder-dim 192 --decoder-depth 4 --decoder-heads 3 \
  --epochs 238 --warmup-epochs 16 --batch-size 512 --blr 1.5e-3 --ema-decay-init 0.996699 --ema-decay 0.999337 \
  --min-ds-size 10000 --norm-stats-samples 2000 --seed 0 --workers 4 --threads 4 --save-freq 119 \
  --checkpoint-minutes 0 --clip-grad 3.0 --log-every 20 --rank-every 23 --no-progress --device "${DEVICE:-cuda}" \
  "${RESUME[@]}"
python scripts/mini_learning_curve.py "$OUT/$NAME" --epochs 119,238 --out "$OUT/curve"
