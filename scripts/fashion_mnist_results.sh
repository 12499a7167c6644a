#!/usr/bin/env bash
# The README's Fashion-MNIST results, rerun by one command (CPU scale; about 2 h on 2 cores):
#   scripts/fashion_mnist_results.sh [OUT]           # default OUT=logs/fashion_mnist_results
# 1. the cnn arm on the full training set (experiment=fashion_mnist_cnn, 12 epochs)
# 2. data efficiency, narrowed: cnn and vit x train fractions 0.03, 0.3 x seed 0, 600 steps
# 3. lr sensitivity, narrowed: cnn and vit x lr 3e-4, 3e-3 x seed 0, 600 steps
# and a convattn-report for each sweep (tables, curves, plots) under OUT/.
# Full scale on a GPU or Slurm cluster: drop the narrowing overrides, e.g.
#   convattn-train experiment=data_efficiency trainer=gpu hydra/launcher=slurm
#   convattn-train experiment=lr_sensitivity trainer=gpu hydra/launcher=slurm
# Needs Debian's dataset-fashion-mnist (scripts/install_debian_packages.sh data) or data.root.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-logs/fashion_mnist_results}
BIN=${VENV:-.venv}/bin
mkdir -p "$OUT"
common=(logger=csv callbacks.attention_maps=null)
narrow=(model=cnn,vit seed=0 trainer.max_steps=600 trainer.val_check_interval=200 profile=false)

time "$BIN/convattn-train" experiment=fashion_mnist_cnn "${common[@]}" \
  hydra.run.dir="$OUT/cnn_full"

time "$BIN/convattn-train" experiment=data_efficiency "${common[@]}" "${narrow[@]}" \
  data.train_fraction=0.03,0.3 hydra.sweep.dir="$OUT/data_efficiency"
"$BIN/convattn-report" "$OUT/data_efficiency" -o "$OUT/data_efficiency/report"

time "$BIN/convattn-train" experiment=lr_sensitivity "${common[@]}" "${narrow[@]}" \
  recipe.optimizer.lr=3e-4,3e-3 hydra.sweep.dir="$OUT/lr_sensitivity"
"$BIN/convattn-report" "$OUT/lr_sensitivity" -o "$OUT/lr_sensitivity/report"
