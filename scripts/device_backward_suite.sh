#!/usr/bin/env bash
# The derived backward's GPU checks (tests/gpu/backward_test.cc) in parts that each fit one device
# call (10 minutes with the build):
#   1: both passes' kernels alone, the error test, GLA and retention in every configuration
#   2: simple GLA and GSA in every configuration
#   3: varlen with empty sequences, gates near 0 and -5, recomputed final states
# Usage on the GPU machine, from the repository root: scripts/device_backward_suite.sh PART OUTDIR [BUILD]
# Writes OUTDIR/backward_checks_PART.log (one line per check) and backward_tests_PART.log (gtest).
set -uo pipefail
part=${1:?part 1, 2 or 3}
out=${2:?output directory}
build=${3:-build-device}
case "$part" in
  1) filter='BackwardPassKernels.*:BackwardErrors.*:Library/LibraryBackward.FixedLength*/gla:Library/LibraryBackward.FixedLength*/retention' ;;
  2) filter='Library/LibraryBackward.FixedLength*/simple_gla:Library/LibraryBackward.FixedLength*/gsa' ;;
  3) filter='Library/LibraryBackward.Varlen*:Library/LibraryBackward.Gates*:Library/LibraryBackward.Recomputed*' ;;
  *) echo "part: expected 1, 2 or 3; got '$part'" >&2; exit 2 ;;
esac
mkdir -p "$out"
scripts/device_build.sh "$build" > "$out/build_$part.log" 2>&1 || { tail -30 "$out/build_$part.log"; exit 1; }
LINA_GPU_LOG="$out/backward_checks_$part.log" timeout "${LINA_SUITE_TIMEOUT:-480}" \
  "$build/tests/gpu/lina_gpu_tests" --gtest_filter="$filter" > "$out/backward_tests_$part.log" 2>&1
echo "gtest exit $?"
grep -E '^\[  (FAILED|     OK|  PASSED) ' "$out/backward_tests_$part.log"
echo "checks: $(grep -c PASS "$out/backward_checks_$part.log") pass, $(grep -c FAIL "$out/backward_checks_$part.log") fail"
grep FAIL "$out/backward_checks_$part.log" | head -20
