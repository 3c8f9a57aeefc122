#!/usr/bin/env bash
# One device call: the register-tile forward of the row-gated programs (simple GLA, retention,
# linear attention) before and after a change to lina/device/fused_chunk_skeleton.cuh, on the same
# GPU. "Before" is the tree in .device/ab/before.tar (carried; make it with
# `git archive --format=tar REV > .device/ab/before.tar`); "after" is the working tree. Then ncu per-kernel times of the
# segmented split, and the forward and register-tile backward GPU suites on the new header.
# Key rows go to stdout. Usage on the GPU machine: bench/run_row_gate_ab.sh OUTDIR
set -uo pipefail
out=${1:?output directory}
budget=${LINA_CALL_SECONDS:-560}
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
cat "$out/device.txt"
export LINA_BUILD_TARGETS="lina-bench lina_gpu_tests"
old=/tmp/lina-before
have_old=0
if [ -f .device/ab/before.tar ]; then
  mkdir -p "$old" && tar -xf .device/ab/before.tar -C "$old" && ln -sfn "$PWD/.device" "$old/.device"
  cp tools/lina-bench/main.cc "$old/tools/lina-bench/main.cc"  # the same bench options (--file, --tile)
  (cd "$old" && scripts/device_build.sh build-device > "$out/build_before.log" 2>&1) &
  have_old=1
fi
scripts/device_build.sh build-device > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
wait
[ "$have_old" = 1 ] && { [ -x "$old/build-device/tools/lina-bench/lina-bench" ] || { tail -20 "$out/build_before.log"; have_old=0; }; }
echo "build: $(elapsed) s"
short() { python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"): print(line[:300]); continue
    r = json.loads(line)
    print(r["which"], r["op"], "B%d_T%d_H%d" % (r["B"], r["T"], r["H"]), r["dims"], r["kernel"][:90], "tile", r["tile"],
          "median_ms", r["median_ms"], "min_ms", r["min_ms"])'; }
row() {  # which binary-dir op shape [lina-bench options]
  local which=$1 dir=$2 op=$3 shape=$4; shift 4
  local src=(--op "$op")
  [ "$op" = linear_attn ] && src=(--op linear_attn --file tests/programs/linear_attention.lina)
  local dims=K=128,V=128
  [ "$shape" = 8,1024,8 ] && dims=K=64,V=64
  (cd "$dir" && LINA_CACHE_DIR=$dir/.bench-cache timeout 40 build-device/tools/lina-bench/lina-bench "${src[@]}" --shape "$shape" \
    --dims $dims --reps 20 "$@" 2>&1 | sed "s/^{/{\"which\": \"$which\", /")
}
{
  for op in simple_gla retention linear_attn; do
    for shape in 2,16384,16 4,4096,64 8,2048,16; do
      [ "$have_old" = 1 ] && row before "$old" $op $shape
      row after "$PWD" $op $shape
    done
    row after-fused "$PWD" $op 2,16384,16 --strategy fused
    LINA_KIR_SEGMENT_CHUNKS=8 row after-split-seg8 "$PWD" $op 2,16384,16 --strategy split
    LINA_KIR_SEGMENT_CHUNKS=32 row after-split-seg32 "$PWD" $op 2,16384,16 --strategy split
    LINA_KIR_LOCAL_BLOCKS=3 row after-split-local3 "$PWD" $op 2,16384,16 --strategy split
  done
  for shape in 2,16384,16 4,4096,64 8,1024,8; do
    [ "$have_old" = 1 ] && row before "$old" gla $shape
    row after "$PWD" gla $shape
  done
} > "$out/lina_bench.jsonl"
short < "$out/lina_bench.jsonl"
echo "bench: $(elapsed) s"
if command -v ncu > /dev/null; then
  for dir in "$old" "$PWD"; do
    [ -x "$dir/build-device/tools/lina-bench/lina-bench" ] || continue
    echo "== ncu simple_gla split B2_T16384_H16_D128 ($dir)"
    (cd "$dir" && LINA_CACHE_DIR=$dir/.bench-cache timeout 90 ncu --csv --metrics gpu__time_duration.sum --launch-skip 6 --launch-count 9 \
      build-device/tools/lina-bench/lina-bench --op simple_gla --shape 2,16384,16 --dims K=128,V=128 --reps 3 --strategy split) \
      > "$out/ncu_split_$(basename "$dir").csv" 2> "$out/ncu_split_$(basename "$dir").err"
    python3 bench/ncu_kernel_times.py "$out/ncu_split_$(basename "$dir").csv" || tail -5 "$out/ncu_split_$(basename "$dir").err"
  done
fi
echo "ncu: $(elapsed) s"
left=$(( budget - $(elapsed) ))
if [ "$left" -gt 60 ]; then
  LINA_SUITE_TIMEOUT=$(( left - 20 )) timeout "$left" scripts/device_backward_suite.sh "$out/suite" build-device \
    'Library/LibraryForward*:VariantForward.*:SplitStrategy.*:Prefetch.*:Library/RegisterTileBackward.*' > "$out/suite.txt" 2>&1
  head -40 "$out/suite.txt"
  grep -E "FAIL|Failure|what\(\)" "$out/suite/backward_tests.log" 2>/dev/null | head -20
else
  echo "suites: no time left ($left s)"
fi
echo "total: $(elapsed) s"
