#!/usr/bin/env bash
# A run tried for the default model (results/default_model/README.md, "Every run tried"): the shipped recipe's pool,
# model and optimiser, with 80 epochs (7,440 steps), 5 warm-up epochs and the paper's EMA schedule scaled to 7,440
# steps (0.998 -> 0.9996). Stopped by hand at step 4,088 (epoch 44) once its learning curve had flattened; rerunning
# this script resumes it. Run from the repository root after scripts/make_default_model.sh has built $RUN/lms.
set -euo pipefail
RUN="${RUN:-runs/default}"
NAME=m2d_vit_tiny-80x208p16x16-mini3k-mr7
OUT="${OUT:-runs/ep80-pool3k}"
RESUME=()
compgen -G "$OUT/$NAME/checkpoint-*.pth" > /dev/null && RESUME=(--resume)
m2d-pretrain train --data "$RUN/lms" --out "$OUT" --name "$NAME" --model m2d_vit_tiny --input-size 80x208 \
  --patch-size 16x16 --mask-ratio 0.7 --decoder-dim 192 --decoder-depth 4 --decoder-heads 3 \
  --epochs 80 --warmup-epochs 5 --batch-size 32 --blr 1.5e-3 --ema-decay-init 0.998 --ema-decay 0.9996 \
  --min-ds-size 3000 --norm-stats-samples 2000 --seed 0 --workers 0 --save-freq 8 --checkpoint-minutes 10 \
  --clip-grad 3.0 --log-every 10 --no-progress --threads 2 "${RESUME[@]}"
python scripts/mini_learning_curve.py "$OUT/$NAME" --epochs 8,16,24,32,40 --out "$OUT/curve"
