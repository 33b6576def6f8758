#!/usr/bin/env bash
# The exact recipe of the shipped default model (m2d_hear/weights/): pool -> log-mels -> M2D pre-training -> export
# -> learning curve. Resumable: rerun the script after an interruption and training continues from the run folder's
# latest checkpoint (checkpoint-last.pth is written every 10 minutes). Seed 0 throughout.
#
#   bash scripts/make_default_model.sh            # RUN=runs/default, cache in $M2D_CACHE or ~/.cache/m2d-hear
#
# Time on a 2-core x86-64 CPU: about 64-85 min of training (1.2-1.6 steps/s, depending on what else shares the CPU),
# the pool (10,000 clips) and its log-mels about 11 min, the learning curve about 2 min per evaluated epoch.
# Measurements: results/default_model/.
#
# Deviations from the paper's ViT-Base recipe, forced by a CPU budget of a few thousand steps, are documented in
# results/default_model/README.md: ViT-Tiny encoder, 80x208 input (the 2023 code's default), a 4-block 192-d
# predictor (8 blocks, the official depth, scored level with it), 6,240 steps of batch 32, mask ratio 0.5 (the
# paper uses 0.6-0.7; 0.5 scored best here with one seed per ratio; three seeds of 0.5 span 2.2 points), and the
# paper's EMA schedule scaled to that step count (0.9976 -> 0.9995: the target's averaging horizon starts at ~7 % of
# the run and ends at ~1/3 of it, as 0.99995 -> 0.99999 does over the paper's ~300k steps; the paper's rates
# themselves would leave the target at its random initialisation). The pool is the mini benchmark's varied pool
# (--pool-variety varied: speech in 24 other languages and sound events over a background beside the standard pool's
# speech, music and samples). No --noise-ratio: M2D-X's background noise scored lower on this recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${M2D_CACHE:-$HOME/.cache/m2d-hear}/mini"
RUN="${RUN:-runs/default}"
NAME=m2d_vit_tiny-80x208p16x16-mini10kvaried-mr5
EPOCHS=20

m2d-eval mini pool --out "$CACHE" --pool-clips 10000 --pool-sec 4.0 --pool-variety varied --seed 0
m2d-pretrain prepare "$CACHE/pool" "$RUN/lms" --min-seconds 2.08
RESUME=()
compgen -G "$RUN/$NAME/checkpoint-*.pth" > /dev/null && RESUME=(--resume)   # a run that saved a checkpoint
m2d-pretrain train --data "$RUN/lms" --out "$RUN" --name "$NAME" --model m2d_vit_tiny --input-size 80x208 \
  --patch-size 16x16 --mask-ratio 0.5 --decoder-dim 192 --decoder-depth 4 --decoder-heads 3 \
  --epochs "$EPOCHS" --warmup-epochs 2 --batch-size 32 --blr 1.5e-3 --ema-decay-init 0.9976 --ema-decay 0.9995 \
  --min-ds-size 10000 --norm-stats-samples 2000 --seed 0 --workers 0 --save-freq 2 --checkpoint-minutes 10 \
  --clip-grad 3.0 --log-every 10 --no-progress --threads 2 "${RESUME[@]}"
m2d-pretrain export "$RUN/$NAME/checkpoint-$EPOCHS.pth" --fp16 --out "m2d_hear/weights/$NAME/weights_ep$EPOCHS.pth"
mkdir -p results/default_model
cp "$RUN/$NAME/log.jsonl" results/default_model/log.jsonl
m2d-pretrain plot "$RUN/$NAME" --out results/default_model/loss.png
# linear-probe scores (and effective rank) on the mini benchmark along the run, beside the two baselines
python scripts/mini_learning_curve.py "$RUN/$NAME" --epochs 4,8,12,16,20 --out "$RUN/curve"
cp "$RUN/curve/curve.csv" "$RUN/curve/curve.png" results/default_model/
