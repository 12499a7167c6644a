#!/usr/bin/env bash
# What only a GPU can show, in one command (run it on a machine with CUDA):
#   scripts/gpu_check.sh [OUT]          # default OUT=logs/gpu_check
# 1. one GPU, bf16-mixed (trainer=gpu): a short digits run, its activations' dtype, test accuracy;
# 2. one GPU, fp32 (trainer=gpu trainer.precision=32-true): TF32 matmul precision is "high";
# 3. two GPUs, DDP + SyncBatchNorm (trainer=ddp trainer.devices=2), when 2 are visible;
# 4. the resume tests on the GPU: SIGTERM mid-epoch + restart equals the uninterrupted run
#    (deterministic cuBLAS), and the 2-rank mid-epoch resume when 2 GPUs are visible;
# 5. the CUDA-only tests (per-device RNG state, host-sync-free augmentation, explain on GPU).
# Prints one table row per check: status, seconds, what it measured. Exit 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-logs/gpu_check}
BIN=${VENV:-.venv}/bin
mkdir -p "$OUT"
export CUBLAS_WORKSPACE_CONFIG=:4096:8  # deterministic cuBLAS for trainer.deterministic=true
export PYTHONPATH="$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
GPUS=$("$BIN/python" -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -lt 1 ]; then
  echo "No CUDA device visible to torch: nothing to check here." >&2
  exit 2
fi
ROWS="$OUT/rows.tsv"
printf "check\tstatus\tseconds\tmeasured\n" >"$ROWS"
failed=0
SHORT=(trainer.max_epochs=3 logger=csv profile=false callbacks.attention_maps=null)

row() {  # row NAME RC SECONDS MEASURED
  local status=ok
  [ "$2" -eq 0 ] || { status="FAILED (exit $2, see $OUT/$1.log)"; failed=1; }
  printf "%s\t%s\t%s\t%s\n" "$1" "$status" "$3" "$4" >>"$ROWS"
}

run() {  # run NAME COMMAND...: log to OUT/NAME.log, time it
  local name=$1 start rc
  shift
  start=$(date +%s)
  "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  echo "$rc $(($(date +%s) - start))"
}

test_acc() {  # the test accuracy in a run dir's metrics.json
  "$BIN/python" -c "import json,sys; m=json.load(open(sys.argv[1]))['metrics']; \
print(f\"test/acc {100 * m['test/acc']:.2f} %\")" "$1/metrics.json" 2>/dev/null || echo "-"
}

read -r rc secs < <(run bf16 "$BIN/convattn-train" trainer=gpu "${SHORT[@]}" \
  hydra.run.dir="$OUT/bf16" "+callbacks.probe._target_=helpers.probes.ActivationDtypes" \
  "+callbacks.probe.out=$OUT/bf16_dtypes.json")
row "1 GPU bf16-mixed" "$rc" "$secs" "$(test_acc "$OUT/bf16"); activations $(cat "$OUT/bf16_dtypes.json" 2>/dev/null)"

read -r rc secs < <(run fp32 "$BIN/convattn-train" trainer=gpu trainer.precision=32-true \
  "${SHORT[@]}" hydra.run.dir="$OUT/fp32")
tf32=$(grep -o "float32 matmul precision: [a-z]*" "$OUT/fp32.log" | head -1)
[ -n "$tf32" ] || [ "$rc" -ne 0 ] || rc=3  # trained, but without TF32
row "1 GPU fp32 (TF32)" "$rc" "$secs" "$(test_acc "$OUT/fp32"); ${tf32:-no TF32 line in the log}"

if [ "$GPUS" -ge 2 ]; then
  read -r rc secs < <(run ddp "$BIN/convattn-train" trainer=ddp trainer.devices=2 \
    "${SHORT[@]}" hydra.run.dir="$OUT/ddp")
  row "2 GPUs DDP + SyncBN" "$rc" "$secs" "$(test_acc "$OUT/ddp")"
else
  row "2 GPUs DDP + SyncBN" 0 0 "skipped: $GPUS GPU visible"
fi

read -r rc secs < <(run resume "$BIN/python" -m pytest -q -p no:cacheprovider \
  tests/test_resume.py::test_sigterm_mid_epoch_and_restart_equals_an_uninterrupted_run)
row "resume on GPU (1 rank)" "$rc" "$secs" "$(tail -1 "$OUT/resume.log")"

if [ "$GPUS" -ge 2 ]; then
  read -r rc secs < <(CONVATTN_DDP_TRAINER=ddp CUDA_VISIBLE_DEVICES=0,1 run resume_ddp \
    "$BIN/python" -m pytest -q -p no:cacheprovider tests/test_ddp.py -k "resume or nan")
  row "2 GPUs: mid-epoch resume, NaN stop" "$rc" "$secs" "$(tail -1 "$OUT/resume_ddp.log")"
fi

read -r rc secs < <(run cuda_tests "$BIN/python" -m pytest -q -p no:cacheprovider \
  tests/test_batch_augment.py::test_transform_runs_on_the_batch_device \
  tests/test_batch_augment.py::test_training_transform_never_syncs_with_the_host_on_cuda \
  tests/test_explain.py::test_explain_and_deletion_run_on_cuda_and_return_cpu_results \
  tests/test_resume.py::test_cuda_rng_state_is_this_devices_own)
row "CUDA-only tests" "$rc" "$secs" "$(tail -1 "$OUT/cuda_tests.log")"

echo
"$BIN/python" -c "import torch; print(f'{torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} visible, torch {torch.__version__}')"
column -t -s $'\t' "$ROWS"
exit "$failed"
