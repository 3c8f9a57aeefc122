#!/usr/bin/env bash
# One device call: the model runner's GPU tests, lina-run's decode rows on a random GLA-340M, and
# Nsight Compute kernel times of a decode step (batch 1 and 32, without graphs) and of the
# segmented register-tile split (simple GLA at B2_T16384_H16_D128).
# Usage on the GPU machine, from the repository root: bench/run_decode_profile.sh OUTDIR [BUILD]
set -uo pipefail
out=${1:?output directory}
build=${2:-build-device}
start=$(date +%s)
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$out/device.txt" 2>&1
cat "$out/device.txt"
export LINA_BUILD_TARGETS="lina-run lina-bench lina_gpu_model_tests _lina"
scripts/device_build.sh "$build" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
export LINA_CACHE_DIR=$(mktemp -d)
run=$build/tools/lina-run/lina-run
bench/runner_decode_rows.sh "$build" "$out"
short=$(python3 -c "import random; random.seed(0); print(','.join(str(random.randrange(3, 32000)) for _ in range(128)))")
echo "runner: $(( $(date +%s) - start )) s"
# lina.Runner on the GPU engine (python/tests/test_runner_gpu.py), with pytest where the machine has it.
if python3 -m pytest --version > /dev/null 2>&1; then
  PYTHONPATH=$build/python LINA_SOURCE_DIR=$PWD timeout 120 python3 -m pytest -q -p no:cacheprovider python/tests/test_runner_gpu.py 2>&1 | tail -15
else
  PYTHONPATH=$build/python LINA_SOURCE_DIR=$PWD timeout 120 python3 - <<'PY' 2>&1 | tail -15
import os, sys, tempfile, types, re
class Raises:
    def __init__(self, exc, match): self.exc, self.match = exc, match
    def __enter__(self): return self
    def __exit__(self, t, v, tb):
        assert t is not None and issubclass(t, self.exc), f"expected {self.exc.__name__}"
        assert re.search(self.match, str(v)), f"{v!r} does not match {self.match!r}"
        return True
sys.modules["pytest"] = types.SimpleNamespace(mark=types.SimpleNamespace(skipif=lambda *a, **k: None),
    fixture=lambda **k: (lambda f: f), raises=lambda e, match="": Raises(e, match))
sys.path.insert(0, "python/tests")
import lina, test_runner_gpu as t
for m in ["gla", "retnet", "gsa"]:
    d = os.path.join(tempfile.mkdtemp(), m)
    lina.init_checkpoint(os.path.join("library", "models", f"{m}-tiny.json"), d, dtype="fp32", seed=5)
    for f in (t.test_gpu_matches_cpu, t.test_gpu_errors):
        f(d); print("PASS", f.__name__, m)
PY
fi
# A decode step is ~150-220 launches: skip the prefill and the first steps, profile 400.
for b in 1 32; do
  echo "== ncu decode batch $b (400 launches after the first 800)"
  timeout 120 ncu --csv --metrics gpu__time_duration.sum --launch-skip 800 --launch-count 400 \
    $run --model /tmp/gla-340M --token-ids $short --batch $b --max-new-tokens 12 --graphs 0 --stop-at-eos 0 \
    > "$out/ncu_decode_b$b.csv" 2> "$out/ncu_decode_b$b.err"
  python3 bench/ncu_kernel_times.py "$out/ncu_decode_b$b.csv" 14 || tail -3 "$out/ncu_decode_b$b.err"
done
echo "== ncu simple_gla split B2_T16384_H16_D128"
timeout 90 ncu --csv --metrics gpu__time_duration.sum --kernel-name regex:simple_gla --launch-skip 3 --launch-count 6 \
  "$build/tools/lina-bench/lina-bench" --op simple_gla --shape 2,16384,16 --dims K=128,V=128 --reps 2 --strategy split \
  > "$out/ncu_split.csv" 2> "$out/ncu_split.err"
python3 bench/ncu_kernel_times.py "$out/ncu_split.csv" || tail -3 "$out/ncu_split.err"
echo "total: $(( $(date +%s) - start )) s"
