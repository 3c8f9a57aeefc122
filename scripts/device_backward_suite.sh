#!/usr/bin/env bash
# The derived backward's GPU checks (tests/gpu/backward_test.cc) in one device call: every test
# runs as its own process, JOBS at a time (the reference backward in double and the NVRTC
# compiles are CPU work; the GPU is shared). Kernel-cache writes are atomic, so the processes
# share one cache.
# Usage on the GPU machine, from the repository root:
#   scripts/device_backward_suite.sh OUTDIR [BUILD] [GTEST_FILTER]
# Writes OUTDIR/backward_checks.log (one line per check, grouped by test) and
# OUTDIR/backward_tests.log (each test's gtest result). LINA_SUITE_JOBS (default 14) and
# LINA_SUITE_TIMEOUT (seconds per test, default 420) tune it.
set -uo pipefail
out=${1:?output directory}
build=${2:-build-device}
filter=${3:-'Library/LibraryBackward*:BackwardErrors.*'}
jobs=${LINA_SUITE_JOBS:-14}
mkdir -p "$out"
scripts/device_build.sh "$build" > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
binary="$build/tests/gpu/lina_gpu_tests"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# gtest lists "Suite." lines and indented "  Test  # GetParam() = ..." lines.
"$binary" --gtest_list_tests --gtest_filter="$filter" |
  awk '/^[^ ]/ {suite = $1} /^  / {print suite $1}' > "$work/tests"
echo "$(wc -l < "$work/tests") tests, $jobs at a time"
run_one() {
  local test=$1 work=$2 binary=$3 slug
  slug=$(echo "$test" | tr '/.' '__')
  LINA_GPU_LOG="$work/$slug.checks" timeout "${LINA_SUITE_TIMEOUT:-420}" \
    "$binary" --gtest_filter="$test" > "$work/$slug.gtest" 2>&1
  echo "$test exit $?" >> "$work/exits"
}
export -f run_one
# Longest first: the fixed-length tests at 4096 dominate.
sort -r "$work/tests" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} "$work" "$binary"
: > "$out/backward_checks.log"
: > "$out/backward_tests.log"
while read -r test; do
  slug=$(echo "$test" | tr '/.' '__')
  { echo "== $test"; cat "$work/$slug.checks" 2>/dev/null; } >> "$out/backward_checks.log"
  { echo "== $test"; grep -E '^\[  (FAILED|     OK|  SKIPPED) |Failure|ratio|error|what\(\)' "$work/$slug.gtest"; } >> "$out/backward_tests.log"
done < "$work/tests"
sort "$work/exits" >> "$out/backward_tests.log"
echo "tests: $(grep -c '^\[       OK ' "$out/backward_tests.log") ok, $(grep -vc ' exit 0$' "$work/exits") nonzero exits"
grep -v ' exit 0$' "$work/exits"
echo "checks: $(grep -c ' PASS' "$out/backward_checks.log") pass, $(grep -c ' FAIL' "$out/backward_checks.log") fail"
grep ' FAIL' "$out/backward_checks.log" | head -30
