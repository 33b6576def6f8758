#!/usr/bin/env bash
# A run tried for the default model (results/default_model/README.md, "Every run tried"): the shipped recipe
# (scripts/make_default_model.sh: the varied 10,000-clip pool, 20 epochs of 312 steps, 2 warm-up epochs,
# EMA 0.9976 -> 0.9995, mask ratio 0.5, 4-block predictor, seed 0) with M2D-X's background noise at the ratio of the
# official M2D-S recipes (--noise-ratio 0.2): the online encoder sees each crop mixed with another crop of the pool,
# the target encoder the clean crop. The background crops come from a random stream of their own, so the
# initialisation, clean crops and masks are the shipped run's: a paired comparison with seed 0. Stopped after
# epoch 8 of 20 (the run itself was stopped with SIGTERM at step 2,566; its log.jsonl runs to there):
# --steps 2496 ends at checkpoint-8.pth, the last checkpoint evaluated. Run from the repository root.
set -euo pipefail
CACHE="${CACHE:-runs/poolvar10k}"
OUT="${OUT:-runs/ep8of20-mr5-bg2-varied-pool10k}"
NAME=m2d_vit_tiny-80x208p16x16-mini10kvaried-mr5-bg2
m2d-eval mini pool --out "$CACHE" --pool-clips 10000 --pool-sec 4.0 --pool-variety varied --seed 0
m2d-pretrain prepare "$CACHE/pool" "$OUT/lms" --min-seconds 2.08
RESUME=()
compgen -G "$OUT/$NAME/checkpoint-*.pth" > /dev/null && RESUME=(--resume)
m2d-pretrain train --data "$OUT/lms" --out "$OUT" --name "$NAME" --model m2d_vit_tiny --input-size 80x208 \
  --patch-size 16x16 --mask-ratio 0.5 --decoder-dim 192 --decoder-depth 4 --decoder-heads 3 --noise-ratio 0.2 \
  --epochs 20 --warmup-epochs 2 --batch-size 32 --blr 1.5e-3 --ema-decay-init 0.9976 --ema-decay 0.9995 \
  --min-ds-size 10000 --norm-stats-samples 2000 --seed 0 --workers 0 --save-freq 2 --checkpoint-minutes 10 \
  --clip-grad 3.0 --log-every 10 --no-progress --threads 2 --steps 2496 "${RESUME[@]}"
python scripts/mini_learning_curve.py "$OUT/$NAME" --epochs 4,8 --out "$OUT/curve"
