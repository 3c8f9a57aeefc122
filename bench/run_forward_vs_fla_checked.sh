#!/usr/bin/env bash
# One device call: the same-run forward table against fla 0.6.0 and SDPA for OPS
# (bench/run_side_by_side.sh), then as much of the forward GPU suite as the call has time for.
# fla's wheels come from .device/whl (shared/device/prep.sh fla). Key rows go to stdout.
# Usage on the GPU machine: bench/run_forward_vs_fla_checked.sh OUTDIR [OPS]
set -uo pipefail
out=${1:?output directory}
ops=${2:-gla,simple_gla,retention,linear_attn,sdpa}
budget=${LINA_CALL_SECONDS:-520}
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
cat "$out/device.txt"
export LINA_BUILD_TARGETS="_lina lina_gpu_tests"
scripts/device_build.sh build-device > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl > "$out/pip.log" 2>&1 || tail -5 "$out/pip.log"
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
echo "build: $(elapsed) s"
LINA_FLA_WARM_JOBS=${LINA_FLA_WARM_JOBS:-14} LINA_FLA_WARM_TIMEOUT=${LINA_FLA_WARM_TIMEOUT:-170} \
  LINA_BENCH_TIMEOUT=${LINA_BENCH_TIMEOUT:-240} bench/run_side_by_side.sh build-device "$out/s" "$ops" > "$out/side_by_side.txt" 2>&1
grep -v '^{' "$out/side_by_side.txt" | head -5
python3 - "$out/s/side_by_side.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        print({k: v for k, v in r.items() if k not in ("device",)})
PY
echo "side by side: $(elapsed) s"
left=$(( budget - $(elapsed) ))
if [ "$left" -gt 45 ]; then
  LINA_SUITE_TIMEOUT=$(( left - 15 )) timeout "$left" scripts/device_backward_suite.sh "$out/suite" build-device \
    'SplitStrategy.*:Library/LibraryForward.FixedLengthAllConfigs*:Library/LibraryForward.VarlenWithEmptySequence*:VariantForward.*' \
    > "$out/suite.txt" 2>&1
  tail -4 "$out/suite.txt"
  grep -E "FAIL|Failure|what\(\)" "$out/suite/backward_tests.log" 2>/dev/null | head -10
else
  echo "suite: no time left ($left s)"
fi
echo "total: $(elapsed) s"
