#!/usr/bin/env bash
# The exact recipe of the shipped default model (m2d_hear/weights/): pool -> log-mels -> M2D pre-training -> export.
# Measured: the training step took 37 min wall on the 2-core CPU machine, shared with other jobs for part of it
# (about 90 s per epoch when free; 2026-11-26); pool and log-mels add about 5 min; seed 0 throughout.
#
#   bash scripts/make_default_model.sh            # RUN=runs/default, cache in $M2D_CACHE or ~/.cache/m2d-hear
#
# Deviations from the paper's ViT-Base recipe, all forced by a ~500-step CPU budget, are documented in the README
# ("The default model"): ViT-Tiny encoder, 80x208 input (the 2023 code's default), a 4-block 192-d predictor,
# 1,488 steps of batch 32, a shorter EMA horizon (0.995 -> 0.9999 instead of 0.99995 -> 0.99999: with ~1,500 steps
# the paper's rates would leave the target encoder at its random initialisation) and a higher base learning rate.
# An earlier default (3 epochs, EMA 0.99 -> 0.999, blr 3e-3) collapsed; see results/default_model/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${M2D_CACHE:-$HOME/.cache/m2d-hear}/mini"
RUN="${RUN:-runs/default}"
NAME=m2d_vit_tiny-80x208p16x16-mini3k-mr7
EPOCHS="${EPOCHS:-16}"

m2d-eval mini pool --out "$CACHE" --pool-clips 3000 --pool-sec 4.0 --seed 0
m2d-pretrain prepare "$CACHE/pool" "$RUN/lms" --min-seconds 2.08
m2d-pretrain train --data "$RUN/lms" --out "$RUN" --name "$NAME" --model m2d_vit_tiny --input-size 80x208 \
  --patch-size 16x16 --mask-ratio 0.7 --decoder-dim 192 --decoder-depth 4 --decoder-heads 3 \
  --epochs "$EPOCHS" --warmup-epochs 2 --batch-size 32 --blr 1.5e-3 --ema-decay-init 0.995 --ema-decay 0.9999 \
  --min-ds-size 3000 --norm-stats-samples 2000 --seed 0 --workers 0 --save-freq 1 --clip-grad 3.0 \
  --log-every 10 --no-progress
m2d-pretrain export "$RUN/$NAME/checkpoint-$EPOCHS.pth" --fp16 --out "m2d_hear/weights/$NAME/weights_ep$EPOCHS.pth"
mkdir -p results/default_model
cp "$RUN/$NAME/log.jsonl" results/default_model/log.jsonl
m2d-pretrain plot "$RUN/$NAME" --out results/default_model/loss.png
# linear-probe scores on the mini benchmark along the run, beside the random-init twin (about 2 min per epoch)
python scripts/mini_learning_curve.py "$RUN/$NAME" --epochs 2,4,8,12,16 --out "$RUN/curve"
cp "$RUN/curve/curve.csv" "$RUN/curve/curve.png" results/default_model/
