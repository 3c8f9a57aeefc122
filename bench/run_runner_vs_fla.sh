#!/usr/bin/env bash
# One device call: build; the register-tile backward's GPU checks and the model runner's tests,
# while fla's Triton caches warm (the runner's models, and the training side by side); then,
# one at a time on the GPU: lina-run on random 340M checkpoints (each row run twice, the second
# timed, so NVRTC compiles are out of it), fla's HF generate on the same checkpoints
# (bench/runner_vs_fla.py: parity and speed), and retention's fwd+bwd against fla's.
# Usage on the GPU machine, from the repository root: bench/run_runner_vs_fla.sh OUTDIR [BUILD]
set -uo pipefail
out=${1:?output directory}
build=${2:-build-device}
start=$(date +%s)
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
# LINA_WITH_TRAINING=1 adds the register-tile backward checks and retention's fwd+bwd against fla.
training=${LINA_WITH_TRAINING:-0}
targets="lina_gpu_model_tests lina-run _lina"
[ "$training" = 1 ] && targets="lina_gpu_tests $targets"
export LINA_BUILD_TARGETS=${LINA_BUILD_TARGETS:-$targets}
scripts/device_build.sh "$build" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl > /dev/null 2>&1
export PYTHONPATH="$PWD/$build/python:/tmp/site" PYTHONUNBUFFERED=1
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)" >> "$out/device.txt" 2>&1
export LINA_CACHE_DIR=$(mktemp -d)
run=$build/tools/lina-run/lina-run
models=${LINA_RUNNER_MODELS:-gla retnet gsa}
for m in $models; do $run --init library/models/$m-340M.json --out /tmp/$m-340M --seed 1 > /dev/null 2>&1 & done
wait
echo "init: $(( $(date +%s) - start )) s"
for m in $models; do
  timeout ${LINA_FLA_WARM_TIMEOUT:-240} python3 bench/runner_vs_fla.py /tmp/$m-340M $run warm > "$out/fla_warm_$m.log" 2>&1 &
done
jobs=${LINA_FLA_WARM_JOBS:-4}
[ "$training" = 1 ] && for i in $(seq 0 $((jobs - 1))); do
  LINA_FLA_WARM="$i/$jobs" timeout 200 python3 bench/train_side_by_side.py retention,sdpa B4_T4096_H64_D128,B8_T2048_H16_D128 \
    > "$out/train_warm_$i.log" 2>&1 &
done
LINA_GPU_LOG=$out/model_runner_checks.log timeout 200 "$build/tests/gpu/lina_gpu_model_tests" > "$out/model_runner_tests.txt" 2>&1 &
[ "$training" = 1 ] && LINA_SUITE_JOBS=3 LINA_SUITE_TIMEOUT=200 timeout 220 scripts/device_backward_suite.sh "$out/kir_backward" "$build" \
  'Library/RegisterTileBackward.*' > "$out/kir_backward_suite.txt" 2>&1
wait
[ "$training" = 1 ] && head -40 "$out/kir_backward_suite.txt"
grep -E "^\[  (FAILED|     OK|  SKIPPED) |Failure" "$out/model_runner_tests.txt" | head -20
for f in "$out"/fla_warm_*.log; do tail -n 1 "$f"; done
echo "checks + warm-up: $(( $(date +%s) - start )) s"
ids=$(python3 -c "import random; random.seed(0); print(','.join(str(random.randrange(3, 32000)) for _ in range(2048)))")
short=$(echo "$ids" | cut -d, -f1-128)
{
  for m in $models; do
    echo "== $m-340M"
    # NVRTC compiles land in LINA_CACHE_DIR on a short run of each batch size first.
    for b in 1 4 32; do timeout 60 $run --model /tmp/$m-340M --token-ids $short --batch $b --max-new-tokens 3 > /dev/null 2>&1; done
    timeout 60 $run --model /tmp/$m-340M --token-ids $ids --max-new-tokens 1 > /dev/null 2>&1
    for args in "--token-ids $ids --max-new-tokens 2" "--token-ids $short --max-new-tokens 256" \
                "--token-ids $short --max-new-tokens 256 --gemv 0" \
                "--token-ids $short --batch 4 --max-new-tokens 256" "--token-ids $short --batch 32 --max-new-tokens 256"; do
      timeout 60 $run --model /tmp/$m-340M $args --stop-at-eos 0 | tail -1
    done
  done
} 2>&1 | tee "$out/lina_run.txt"
echo "lina-run: $(( $(date +%s) - start )) s"
for m in $models; do
  timeout ${LINA_FLA_TIMEOUT:-170} python3 bench/runner_vs_fla.py /tmp/$m-340M $run > "$out/runner_vs_fla_$m.jsonl" 2> "$out/runner_vs_fla_$m.err"
  cat "$out/runner_vs_fla_$m.jsonl"; grep -E "Error|error" "$out/runner_vs_fla_$m.err" | tail -n 3
done
echo "fla generate: $(( $(date +%s) - start )) s"
[ "$training" = 1 ] && timeout 120 python3 bench/train_side_by_side.py retention,sdpa B4_T4096_H64_D128,B8_T2048_H16_D128 | tee "$out/train_side_by_side.jsonl"
echo "total: $(( $(date +%s) - start )) s"
