#!/usr/bin/env bash
# The README's Fashion-MNIST results, rerun by one command (CPU scale, about 2 h on 2 cores):
#   scripts/fashion_mnist_results.sh [OUT] [STEP ...]   # default OUT=logs/fashion_mnist_results
# Steps:
#   cnn_full         the cnn arm on the full training set (experiment=fashion_mnist_cnn, 18 epochs)
#   arms             4 arms x seeds 0,1,2 at one budget: train fraction 0.1, 400 steps
#   data_efficiency  4 arms x train fractions 0.03, 0.3 x seed 0, 400 steps; its report adds the
#                    arms step's fraction-0.1 jobs, so the curves have three points
#   lr_sensitivity   vit and hybrid x lr 3e-4, 3e-3, 1e-2 (33x) x seed 0, 400 steps
#   arms_full        5 arms x seed 0 on the full training set, 4,000 steps each
#                    (experiment=fashion_mnist_arms), in two lanes of its own, one thread each:
#                    (resvit, vit) and (hybrid, cbam, cnn), balanced by measured cost (~1.5 h)
# Each sweep is followed by its convattn-report (tables, curves, plots) under OUT/<step>/report.
# With no STEP, the first four run in two lanes at once, one CPU thread each, balanced to finish
# together: (cnn_full, lr_sensitivity) and (arms, data_efficiency); then arms_full. Named steps
# run in order, with torch's default threads (arms_full always in its two lanes).
# Full scale on a GPU or Slurm cluster: drop the narrowing overrides, e.g.
#   convattn-train experiment=data_efficiency trainer=gpu hydra/launcher=slurm
#   convattn-train experiment=lr_sensitivity trainer=gpu hydra/launcher=slurm
# Needs Debian's dataset-fashion-mnist (scripts/install_debian_packages.sh data) or data.root.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-logs/fashion_mnist_results}
shift || true
BIN=${VENV:-.venv}/bin
STEPS=(cnn_full arms data_efficiency lr_sensitivity arms_full)
mkdir -p "$OUT"
common=(logger=csv callbacks.attention_maps=null profile=false)
budget=(trainer.max_steps=400 trainer.val_check_interval=200)

timed() {  # timed NAME CMD...: run CMD, append its wall time to OUT/wall_times.txt
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "$name $((SECONDS - start)) s" | tee -a "$OUT/wall_times.txt"
}

sweep() {  # sweep NAME PRESET OVERRIDES...: one multirun
  local name=$1 preset=$2
  shift 2
  timed "$name" "$BIN/convattn-train" experiment="$preset" "${common[@]}" "$@" \
    hydra.sweep.dir="$OUT/$name"
}

step() {
  case $1 in
    cnn_full)
      timed cnn_full "$BIN/convattn-train" experiment=fashion_mnist_cnn "${common[@]}" \
        hydra.run.dir="$OUT/cnn_full" ;;
    arms)
      sweep arms data_efficiency model=cnn,vit,hybrid,cbam seed=0,1,2 \
        data.train_fraction=0.1 "${budget[@]}"
      "$BIN/convattn-report" "$OUT/arms" -o "$OUT/arms/report" ;;
    data_efficiency)
      sweep data_efficiency data_efficiency model=cnn,vit,hybrid,cbam seed=0 \
        data.train_fraction=0.03,0.3 "${budget[@]}"
      local dirs=("$OUT/data_efficiency")
      [ -d "$OUT/arms" ] && dirs+=("$OUT/arms")
      "$BIN/convattn-report" "${dirs[@]}" -o "$OUT/data_efficiency/report" ;;
    lr_sensitivity)
      sweep lr_sensitivity lr_sensitivity model=vit,hybrid seed=0 \
        recipe.optimizer.lr=3e-4,3e-3,1e-2 "${budget[@]}"
      "$BIN/convattn-report" "$OUT/lr_sensitivity" -o "$OUT/lr_sensitivity/report" ;;
    arms_full)
      mkdir -p "$OUT/arms_full"
      OMP_NUM_THREADS=1 sweep arms_full/lane1 fashion_mnist_arms model=resvit,vit \
        > "$OUT/arms_full/lane1.log" 2>&1 &
      local first=$!
      OMP_NUM_THREADS=1 sweep arms_full/lane2 fashion_mnist_arms model=hybrid,cbam,cnn \
        > "$OUT/arms_full/lane2.log" 2>&1 &
      local status=0
      wait "$first" || status=$?
      wait $! || status=$?
      "$BIN/convattn-report" "$OUT/arms_full" -o "$OUT/arms_full/report"
      return "$status" ;;
  esac
}

lane() { for name in "$@"; do step "$name"; done; }

for name in "$@"; do  # refuse a typo before hours of training, not after
  [[ " ${STEPS[*]} " == *" $name "* ]] || { echo "unknown step '$name'; valid: ${STEPS[*]}" >&2; exit 2; }
done
if [ $# -gt 0 ]; then
  lane "$@"
  exit 0
fi

export OMP_NUM_THREADS=1
start=$SECONDS
lane cnn_full lr_sensitivity > "$OUT/lane1.log" 2>&1 &
first=$!
lane arms data_efficiency > "$OUT/lane2.log" 2>&1 &
second=$!
status=0
wait "$first" || status=$?
wait "$second" || status=$?
[ "$status" -eq 0 ] && { step arms_full || status=$?; }
echo "all steps $((SECONDS - start)) s (exit $status); logs: $OUT/lane1.log, $OUT/lane2.log" |
  tee -a "$OUT/wall_times.txt"
exit "$status"
