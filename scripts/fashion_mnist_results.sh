#!/usr/bin/env bash
# The README's Fashion-MNIST results, rerun by one command (CPU scale; the README gives each
# step's measured wall time):
#   scripts/fashion_mnist_results.sh [OUT] [STEP ...]   # default OUT=logs/fashion_mnist_results
# Steps (all by default, in this order):
#   cnn_full         the cnn arm on the full training set (experiment=fashion_mnist_cnn, 12 epochs)
#   arms             4 arms x seeds 0,1,2 at one budget: train fraction 0.1, 400 steps
#   data_efficiency  cnn and vit x train fractions 0.03, 0.3 x seed 0, 600 steps
#   lr_sensitivity   vit and hybrid x lr 3e-4, 3e-3, 1e-2 (33x) x seed 0, 400 steps
# and a convattn-report for each sweep (tables, curves, plots) under OUT/<step>/report.
# Full scale on a GPU or Slurm cluster: drop the narrowing overrides, e.g.
#   convattn-train experiment=data_efficiency trainer=gpu hydra/launcher=slurm
#   convattn-train experiment=lr_sensitivity trainer=gpu hydra/launcher=slurm
# Needs Debian's dataset-fashion-mnist (scripts/install_debian_packages.sh data) or data.root.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-logs/fashion_mnist_results}
shift || true
[ $# -gt 0 ] || set -- cnn_full arms data_efficiency lr_sensitivity
BIN=${VENV:-.venv}/bin
mkdir -p "$OUT"
common=(logger=csv callbacks.attention_maps=null profile=false)

sweep() {  # sweep NAME PRESET OVERRIDES...: one multirun, then its report
  local name=$1 preset=$2
  shift 2
  time "$BIN/convattn-train" experiment="$preset" "${common[@]}" "$@" \
    hydra.sweep.dir="$OUT/$name"
  "$BIN/convattn-report" "$OUT/$name" -o "$OUT/$name/report"
}

for step in "$@"; do
  case $step in
    cnn_full)
      time "$BIN/convattn-train" experiment=fashion_mnist_cnn "${common[@]}" \
        hydra.run.dir="$OUT/cnn_full" ;;
    arms)
      sweep arms data_efficiency model=cnn,vit,hybrid,cbam seed=0,1,2 \
        data.train_fraction=0.1 trainer.max_steps=400 trainer.val_check_interval=200 ;;
    data_efficiency)
      sweep data_efficiency data_efficiency model=cnn,vit seed=0 \
        data.train_fraction=0.03,0.3 trainer.max_steps=600 trainer.val_check_interval=200 ;;
    lr_sensitivity)
      sweep lr_sensitivity lr_sensitivity model=vit,hybrid seed=0 \
        recipe.optimizer.lr=3e-4,3e-3,1e-2 trainer.max_steps=400 trainer.val_check_interval=200 ;;
    *)
      echo "unknown step '$step'; valid: cnn_full arms data_efficiency lr_sensitivity" >&2
      exit 2 ;;
  esac
done
