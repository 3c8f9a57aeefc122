#!/usr/bin/env bash
# One device call for the register-tile backward (runtime/kir_backward.h) and the register-tile
# forward's newest parts: build; the register-tile backward's GPU checks; lina-bench forward +
# backward of GLA, simple GLA and retention (register tiles, and the derived passes at one shape);
# GSA's two-phase forward against its CIR kernels; the tuner's GPU test and a `linac tune`; then
# the forward GPU suite in the time left. Each part has its own time limit.
# Usage on the GPU machine, from the repository root: bench/run_kir_backward.sh OUTDIR [BUILD]
set -uo pipefail
out=${1:?output directory}
build=${2:-build-device}
budget=${LINA_CALL_SECONDS:-560}
start=$(date +%s)
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
scripts/device_build.sh "$build" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
bench="$build/tools/lina-bench/lina-bench"
export LINA_CACHE_DIR=$(mktemp -d)

LINA_SUITE_JOBS=12 LINA_SUITE_TIMEOUT=150 timeout 170 scripts/device_backward_suite.sh "$out/kir_backward" "$build" \
  'Library/RegisterTileBackward.*' > "$out/kir_backward_suite.txt" 2>&1
cat "$out/kir_backward_suite.txt" | head -40
echo "kir backward checks: $(( $(date +%s) - start )) s"

{
  for shape in 4,4096,64 8,2048,16 2,16384,16; do
    for op in gla simple_gla retention; do
      timeout 60 "$bench" --op $op --shape $shape --dims K=128,V=128 --reps 10 --backward
    done
  done
  for op in gla simple_gla retention; do
    timeout 60 "$bench" --op $op --shape 8,2048,16 --dims K=128,V=128 --reps 5 --backward --kernels simt | sed 's/^{/{"kernels": "simt", /'
  done
} 2>&1 | tee "$out/lina_train.jsonl" | cut -c1-400
echo "backward bench: $(( $(date +%s) - start )) s"

{
  for shape in 4,4096,64 8,2048,16; do
    for k in register simt; do
      timeout 60 "$bench" --op gsa --shape $shape --dims K=128,V=128,M=64 --reps 10 --kernels $k | sed "s/^{/{\"kernels\": \"$k\", /"
    done
  done
  for op in gla simple_gla retention; do
    for strategy in fused split; do
      timeout 60 "$bench" --op $op --shape 2,16384,16 --dims K=128,V=128 --reps 10 --strategy $strategy | sed "s/^{/{\"strategy\": \"$strategy\", /"
    done
  done
} 2>&1 | tee "$out/lina_forward.jsonl" | cut -c1-300
echo "forward bench: $(( $(date +%s) - start )) s"

timeout 90 "$build/tests/gpu/lina_gpu_tuner_tests" > "$out/tuner_test.txt" 2>&1
echo "tuner test: exit $? ($(grep -c '^\[       OK' "$out/tuner_test.txt") ok)"
timeout 100 "$build/tools/linac/linac" tune library/ops/gla.lina --dims K=128,V=128 --shape 4,4096,64 --reps 20 --report > "$out/tune.txt" 2>&1
LINA_TUNE_VERBOSE=1 timeout 30 "$bench" --op gla --shape 4,4096,64 --dims K=128,V=128 --reps 10 >> "$out/tune.txt" 2>&1
grep -E '^@|candidates|^lina: @' "$out/tune.txt"
cp "$LINA_CACHE_DIR"/tuning/*.json "$out/" 2>/dev/null
echo "tune: $(( $(date +%s) - start )) s"

left=$(( budget - ($(date +%s) - start) ))
if [ "$left" -gt 60 ]; then
  LINA_SUITE_TIMEOUT=$(( left - 20 )) timeout "$left" scripts/device_backward_suite.sh "$out/forward" "$build" \
    '-Library/LibraryBackward*:BackwardErrors.*:Library/RegisterTileBackward.*' > "$out/forward_suite.txt" 2>&1
  head -20 "$out/forward_suite.txt"
else
  echo "forward suite: no time left ($left s)"
fi
echo "total: $(( $(date +%s) - start )) s"
