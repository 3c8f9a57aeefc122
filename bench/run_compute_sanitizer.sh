#!/usr/bin/env bash
# One device call for #20: NVIDIA's compute-sanitizer (memcheck, racecheck, synccheck, initcheck)
# over every library program's kernels as the runtime launches them, forward and derived backward,
# at two shapes (a fixed-length batch with an initial state, and a varlen batch with an empty
# sequence), through `linac check` (which also compares the results with the reference).
# Usage on the GPU machine: bench/run_compute_sanitizer.sh OUTDIR
set -uo pipefail
out=${1:?output directory}
budget=${LINA_CALL_SECONDS:-540}
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv > "$out/device.txt" 2>&1
cat "$out/device.txt"
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
[ -x "$sanitizer" ] || { echo "compute-sanitizer not found"; exit 1; }
"$sanitizer" --version | tail -1
LINA_BUILD_TARGETS="linac" scripts/device_build.sh build-device > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
linac=build-device/tools/linac/linac
echo "build: $(elapsed) s"
export LINA_CACHE_DIR=$(mktemp -d)
shapes=("--shape 2,130,2 --initial-state" "--shape 1,200,2 --varlen 0,70,70,200")
summary="$out/summary.txt"
: > "$summary"
for tool in memcheck synccheck initcheck racecheck; do
  for prog in gla simple_gla retention gsa; do
    dims="K=64,V=64"; [ "$prog" = gsa ] && dims="K=64,V=64,M=32"
    for i in 0 1; do
      for pass in forward backward; do
        left=$(( budget - $(elapsed) ))
        [ "$left" -lt 20 ] && { echo "$tool $prog shape$i $pass: no time left" | tee -a "$summary"; continue; }
        extra=""; [ "$pass" = backward ] && extra="--backward"
        log="$out/${tool}_${prog}_shape${i}_${pass}.log"
        timeout "$left" "$sanitizer" --tool "$tool" --error-exitcode 99 --print-limit 20 \
          $linac check library/ops/$prog.lina ${shapes[$i]} --dims $dims --dtype bf16 $extra > "$log" 2>&1
        rc=$?
        errors=$(grep -oE "ERROR SUMMARY: [0-9]+ error|RACECHECK SUMMARY: [0-9]+ hazard" "$log" | tail -1)
        checks=$(grep -cE "^ *(ok|PASS)|max rel" "$log")
        echo "$tool $prog shape$i $pass: rc=$rc ${errors:-no summary} (check lines: $checks)" | tee -a "$summary"
      done
    done
  done
done
echo "total: $(elapsed) s"
