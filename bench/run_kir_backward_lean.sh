#!/usr/bin/env bash
# The shortest useful device call for the register-tile backward: build, its GPU checks, then
# lina-bench rows (fwd+bwd on register tiles; the derived passes at one shape; GSA's forward on
# register tiles against its CIR kernels) and the tuner's GPU test while time is left.
# Usage on the GPU machine, from the repository root: bench/run_kir_backward_lean.sh OUTDIR [BUILD]
set -uo pipefail
out=${1:?output directory}
build=${2:-build-device}
budget=${LINA_CALL_SECONDS:-380}
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
mkdir -p "$out"
export LINA_BUILD_TARGETS="lina_gpu_tests lina-bench lina_gpu_tuner_tests"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
scripts/device_build.sh "$build" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(elapsed) s"
export LINA_CACHE_DIR=$(mktemp -d)
LINA_SUITE_JOBS=14 LINA_SUITE_TIMEOUT=110 timeout 125 scripts/device_backward_suite.sh "$out/kir_backward" "$build" \
  'Library/RegisterTileBackward.*' > "$out/kir_backward_suite.txt" 2>&1
head -12 "$out/kir_backward_suite.txt"
grep -h "^bwd" "$out/kir_backward/backward_checks.log" 2>/dev/null | cut -c1-200 | head -60
echo "checks: $(elapsed) s"
bench="$build/tools/lina-bench/lina-bench"
run() { [ "$(elapsed)" -lt "$budget" ] && timeout 30 "$bench" "$@"; }
{
  for shape in 4,4096,64 8,2048,16 2,16384,16; do
    for op in gla simple_gla retention; do run --op $op --shape $shape --dims K=128,V=128 --reps 10 --backward; done
  done
  run --op gla --shape 8,2048,16 --dims K=128,V=128 --reps 3 --backward --kernels simt | sed 's/^{/{"kernels": "simt", /'
  for k in register simt; do
    run --op gsa --shape 4,4096,64 --dims K=128,V=128,M=64 --reps 10 --kernels $k | sed "s/^{/{\"kernels\": \"$k\", /"
  done
} 2>&1 | tee "$out/lina_bench.jsonl" | cut -c1-360
echo "lina-bench: $(elapsed) s"
if [ "$(elapsed)" -lt "$budget" ]; then
  timeout 50 "$build/tests/gpu/lina_gpu_tuner_tests" > "$out/tuner_test.txt" 2>&1
  echo "tuner test: exit $? ($(grep -c '^\[       OK' "$out/tuner_test.txt") ok)"
fi
echo "total: $(elapsed) s"
