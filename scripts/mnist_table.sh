#!/usr/bin/env bash
# Reproduce docs/mnist/: train every model x distortion of the STN paper's comparison on this machine
# (the most important models first), then evaluate them. Re-running skips finished runs and resumes
# interrupted ones. About 80 minutes on a 2-core CPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_venv.sh
train=(.venv/bin/stn_train mnist-table --epochs 30 --lr 0.003 --runs runs/mnist --no-progress)
"${train[@]}" --models cnn st-cnn-affine cnn-wide
"${train[@]}" --models fcn st-fcn-affine
"${train[@]}" --models st-cnn-projective st-cnn-tps st-fcn-projective st-fcn-tps
.venv/bin/stn_evaluate mnist --runs runs/mnist --output docs/mnist --ship weights
