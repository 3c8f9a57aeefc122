#!/usr/bin/env bash
# One device call for the register-tile forward work not yet seen on a GPU: GSA's two-phase plan
# (register tiles against its CIR kernels), the segmented split against the fused walk at few long
# walks (B2_T16384_H16), then the forward GPU suite (every register-tile configuration against the
# reference) in the time left. lina only (no fla): the same-run ratios come from
# bench/run_side_by_side.sh. Key rows go to stdout (files under OUT may not come back).
# LINA_WITH_RUNNER=1 first runs the model runner's GPU tests and lina-run's decode rows on a
# random GLA-340M (bench/run_runner_vs_fla.sh has the fla side).
# Usage on the GPU machine, from the repository root: bench/run_kir_forward_checks.sh OUTDIR [BUILD]
set -uo pipefail
out=${1:?output directory}
build=${2:-build-device}
budget=${LINA_CALL_SECONDS:-560}
start=$(date +%s)
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
cat "$out/device.txt"; echo "commit $(git rev-parse --short HEAD 2>/dev/null)"
runner=${LINA_WITH_RUNNER:-0}
export LINA_BUILD_TARGETS="lina-bench linac lina_gpu_tests"
[ "$runner" = 1 ] && LINA_BUILD_TARGETS="$LINA_BUILD_TARGETS lina-run lina_gpu_model_tests"
scripts/device_build.sh "$build" > "$out/build.log" 2>&1 ||
  { tail -40 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
bench="$build/tools/lina-bench/lina-bench"
export LINA_CACHE_DIR=$(mktemp -d)
if [ "$runner" = 1 ]; then
  bench/runner_decode_rows.sh "$build" "$out"
  echo "runner: $(( $(date +%s) - start )) s"
fi
short() { python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"): print(line[:300]); continue
    r = json.loads(line)
    print(r.get("kernels", r.get("strategy", "")), r["op"], "B%d_T%d_H%d" % (r["B"], r["T"], r["H"]), r["dims"],
          r["kernel"][:70], "median_ms", r["median_ms"], "min_ms", r["min_ms"])'; }
{
  for shape in 4,4096,64 8,2048,16 2,16384,16 8,1024,8; do
    dims=K=128,V=128,M=64
    [ $shape = 8,1024,8 ] && dims=K=64,V=64,M=64
    for k in register simt; do
      timeout 60 "$bench" --op gsa --shape $shape --dims $dims --reps 10 --kernels $k 2>&1 | sed "s/^{/{\"kernels\": \"$k\", /"
    done
  done
  for op in simple_gla retention gla; do
    for strategy in fused split auto; do
      timeout 60 "$bench" --op $op --shape 2,16384,16 --dims K=128,V=128 --reps 10 --strategy $strategy 2>&1 |
        sed "s/^{/{\"strategy\": \"$strategy\", /"
    done
  done
} > "$out/lina_bench.jsonl"
short < "$out/lina_bench.jsonl"
echo "bench: $(( $(date +%s) - start )) s"
left=$(( budget - ($(date +%s) - start) ))
if [ "$left" -gt 60 ]; then
  LINA_SUITE_TIMEOUT=$(( left - 20 )) timeout "$left" scripts/device_backward_suite.sh "$out/forward" "$build" \
    'Library/LibraryForward*:VariantForward.*:SplitStrategy.*:Prefetch.*:GpuErrors.*' > "$out/forward_suite.txt" 2>&1
  head -40 "$out/forward_suite.txt"
  grep -E "FAIL|Failure|what\(\)" "$out/forward/backward_tests.log" 2>/dev/null | head -20
else
  echo "forward suite: no time left ($left s)"
fi
echo "total: $(( $(date +%s) - start )) s"
