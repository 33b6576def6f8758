#!/usr/bin/env bash
# A variant tried for the default model (results/default_model/README.md, "Every run tried"): no new training. The
# weights of epochs 12, 14, 16, 18 and 20 of the seed-2 run (tried/ep20-mr5-seed2-varied-pool10k/recipe.sh, run
# first) are averaged tensor by tensor (a uniform average of the late checkpoints, as in stochastic weight
# averaging) and the average gets the same mini-benchmark evaluation as the run's own epochs. Run from the
# repository root.
set -euo pipefail
RUN="${RUN:-runs/ep20-mr5-seed2-varied-pool10k}"
OUT="${OUT:-runs/avg12-20-mr5-seed2-varied-pool10k}"
NAME=m2d_vit_tiny-80x208p16x16-mini10kvaried-mr5-seed2
mkdir -p "$OUT/$NAME"
python - "$RUN/$NAME" "$OUT/$NAME/checkpoint-20.pth" <<'PY'
import sys
from pathlib import Path
from m2d_hear.fileio import torch_save
from pretrain.checkpointing import epoch_checkpoint, load_training_state   # no code of the file's choosing
run, out = Path(sys.argv[1]), sys.argv[2]
ckpts = [load_training_state(epoch_checkpoint(run, e)) for e in (12, 14, 16, 18, 20)]
averaged = dict(ckpts[-1])   # epoch 20's metadata (args, norm_stats) with the averaged tensors
averaged["model"] = {k: (sum(c["model"][k].float() for c in ckpts) / len(ckpts) if v.is_floating_point() else v)
                     for k, v in ckpts[-1]["model"].items()}
torch_save(averaged, out)   # atomic: a killed run leaves no half-written checkpoint
PY
python scripts/mini_learning_curve.py "$OUT/$NAME" --epochs 20 --out "$OUT/curve"
