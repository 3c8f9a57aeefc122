#!/usr/bin/env bash
# One device call: build, the tuner's GPU test, lina-only timings of the register-tile kernels
# (GSA's two-phase plan against its CIR kernels; fused against split at few long sequences),
# `linac tune` with its report and a launch that then consults the database, and the forward GPU
# suite in the time left. Every part has its own time limit so one slow part cannot starve the rest.
# Usage on the GPU machine, from the repository root: bench/run_kir_checks_and_tuner.sh OUTDIR [BUILD]
set -uo pipefail
out=${1:?output directory}
build=${2:-build-device}
budget=${LINA_CALL_SECONDS:-570}
start=$(date +%s)
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
scripts/device_build.sh "$build" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
bench="$build/tools/lina-bench/lina-bench"
linac="$build/tools/linac/linac"

timeout 90 "$build/tests/gpu/lina_gpu_tuner_tests" > "$out/tuner_test.txt" 2>&1
echo "tuner test: exit $? ($(grep -cE '^\[  PASSED' "$out/tuner_test.txt") passed)"

export LINA_CACHE_DIR=$(mktemp -d)
{
  for shape in 4,4096,64 8,2048,16; do
    for k in register simt; do
      timeout 60 "$bench" --op gsa --shape $shape --dims K=128,V=128,M=64 --reps 10 --kernels $k | sed "s/^{/{\"kernels\": \"$k\", /"
    done
  done
  for op in gla simple_gla retention; do
    for strategy in fused split auto; do
      timeout 60 "$bench" --op $op --shape 2,16384,16 --dims K=128,V=128 --reps 10 --strategy $strategy |
        sed "s/^{/{\"strategy\": \"$strategy\", /"
    done
  done
} 2>&1 | tee "$out/lina_bench.jsonl"
echo "bench: $(( $(date +%s) - start )) s"

# The tuner: report, record, then a launch at the same shape that leaves the schedule to lina.
{
  for spec in "gla K=128,V=128 4,4096,64" "simple_gla K=128,V=128 2,16384,16" "gsa K=128,V=128,M=64 8,2048,16"; do
    set -- $spec
    timeout 120 "$linac" tune "library/ops/$1.lina" --dims "$2" --shape "$3" --reps 20 --report
    LINA_TUNE_VERBOSE=1 timeout 60 "$bench" --op "$1" --shape "$3" --dims "$2" --reps 10
    LINA_TUNE=0 timeout 60 "$bench" --op "$1" --shape "$3" --dims "$2" --reps 10
  done
} > "$out/tune.txt" 2>&1
cat "$out/tune.txt" | grep -E '^@|candidates|"tool"|^lina: @' | cut -c1-300
cp "$LINA_CACHE_DIR"/tuning/*.json "$out/" 2>/dev/null
echo "tune: $(( $(date +%s) - start )) s"

left=$(( budget - ($(date +%s) - start) ))
if [ "$left" -gt 60 ]; then
  LINA_SUITE_TIMEOUT=$(( left - 20 )) timeout "$left" scripts/device_backward_suite.sh "$out/forward" "$build" \
    '-Library/LibraryBackward*:BackwardErrors.*' > "$out/forward_suite.txt" 2>&1
  cat "$out/forward_suite.txt" | head -40
else
  echo "forward suite: no time left ($left s)"
fi
echo "total: $(( $(date +%s) - start )) s"
