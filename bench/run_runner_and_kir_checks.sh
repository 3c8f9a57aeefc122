#!/usr/bin/env bash
# One device call: build; the register-tile backward's GPU checks and the GPU model runner's
# tests (against the CPU runner) side by side; then lina-run on random 340M checkpoints
# (library/models/*-340M.json): decode tok/s at batch 1 and 32, prefill tok/s of a 2048-token
# prompt, with and without CUDA graphs.
# Usage on the GPU machine, from the repository root: bench/run_runner_and_kir_checks.sh OUTDIR [BUILD]
set -uo pipefail
out=${1:?output directory}
build=${2:-build-device}
start=$(date +%s)
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
git rev-parse HEAD >> "$out/device.txt" 2>/dev/null
export LINA_BUILD_TARGETS=${LINA_BUILD_TARGETS:-"lina_gpu_tests lina_gpu_tuner_tests lina_gpu_model_tests lina-bench lina-run"}
scripts/device_build.sh "$build" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
export LINA_CACHE_DIR=$(mktemp -d)
run=$build/tools/lina-run/lina-run
# Random 340M checkpoints, written while the checks run.
( for m in ${LINA_RUNNER_MODELS:-gla retnet gsa}; do
    $run --init library/models/$m-340M.json --out /tmp/$m-340M --seed 1 > /dev/null 2>&1
  done ) &
init=$!
LINA_GPU_LOG=$out/model_runner_checks.log timeout 200 "$build/tests/gpu/lina_gpu_model_tests" > "$out/model_runner_tests.txt" 2>&1 &
tests=$!
if [ "${LINA_SKIP_KIR:-0}" != 1 ]; then
  LINA_SUITE_JOBS=6 LINA_SUITE_TIMEOUT=150 timeout 170 scripts/device_backward_suite.sh "$out/kir_backward" "$build" \
    'Library/RegisterTileBackward.*' > "$out/kir_backward_suite.txt" 2>&1
  head -30 "$out/kir_backward_suite.txt"
fi
wait $tests
grep -E "^\[  (FAILED|     OK|  SKIPPED) |Failure|error" "$out/model_runner_tests.txt" | head -40
cat "$out/model_runner_checks.log" 2>/dev/null
echo "checks: $(( $(date +%s) - start )) s"
wait $init
ids=$(python3 -c "import random; random.seed(0); print(','.join(str(random.randrange(3, 32000)) for _ in range(2048)))")
short=$(echo "$ids" | cut -d, -f1-128)
{
  for m in ${LINA_RUNNER_MODELS:-gla retnet gsa}; do
    [ -d /tmp/$m-340M ] || { echo "$m: no checkpoint"; continue; }
    echo "== $m-340M"
    timeout 60 $run --model /tmp/$m-340M --token-ids "$ids" --max-new-tokens 8 --stop-at-eos 0 | tail -1
    timeout 60 $run --model /tmp/$m-340M --token-ids "$short" --max-new-tokens 256 --stop-at-eos 0 | tail -1
    timeout 60 $run --model /tmp/$m-340M --token-ids "$short" --max-new-tokens 256 --stop-at-eos 0 --graphs 0 | tail -1
    timeout 90 $run --model /tmp/$m-340M --token-ids "$short" --batch 32 --max-new-tokens 256 --stop-at-eos 0 | tail -1
  done
} 2>&1 | tee "$out/lina_run.txt"
echo "total: $(( $(date +%s) - start )) s"
