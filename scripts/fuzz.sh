#!/usr/bin/env bash
# Runs the fuzz targets under libFuzzer (clang, ASan + UBSan, coverage-guided), from the seed
# corpus (the library's programs, tests/programs, the lit RIR/CIR inputs, tests/fuzz/crashes).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET | -runs=N] [TARGETS]   (default: 60, "dsl ir")
# Prints libFuzzer's final line per target (inputs run, coverage, corpus size). A finding is
# written to build-fuzz/findings/<target>/ and fails the run; add it to tests/fuzz/crashes/<target>/
# once fixed. LINA_FUZZ_JOBS=N runs N workers per target (libFuzzer -fork); LINA_FUZZ_SEED=S fixes
# libFuzzer's seed (with -runs=N, a deterministic run: what CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-60}
targets=${2:-"dsl ir"}
build=build-fuzz
if ! command -v clang++ > /dev/null; then echo "fuzz.sh: clang++ not found (apt-get install clang)"; exit 2; fi
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" -DLINA_BUILD_FUZZERS=ON -DLINA_BUILD_PYTHON=OFF \
  -DLINA_REQUIRE_LIT=OFF > "$build.configure.log" 2>&1 || { tail -20 "$build.configure.log"; exit 1; }
ninja -C "$build" $(for t in $targets; do echo lina_fuzz_$t; done) > "$build.build.log" 2>&1 || { tail -30 "$build.build.log"; exit 1; }
case "$limit" in -runs=*) budget=$limit ;; *) budget="-max_total_time=$limit" ;; esac
status=0
for t in $targets; do
  corpus=$build/corpus/$t findings=$build/findings/$t
  mkdir -p "$corpus" "$findings"
  if [ "$t" = dsl ]; then seeds="library/ops tests/programs tests/fuzz/crashes/dsl"; else seeds="tests/lit/rir tests/lit/cir tests/fuzz/crashes/ir"; fi
  jobs=${LINA_FUZZ_JOBS:-1}
  fork=""; [ "$jobs" -gt 1 ] && fork="-fork=$jobs -ignore_crashes=0"
  [ -n "${LINA_FUZZ_SEED:-}" ] && fork="$fork -seed=$LINA_FUZZ_SEED"
  start=$(date +%s)
  if ! "$build/tests/fuzz/lina_fuzz_$t" $budget $fork -max_len=8192 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$findings/" "$corpus" $seeds > "$build/fuzz_$t.log" 2>&1; then
    status=1
    echo "== $t: FINDING (see $build/fuzz_$t.log and $findings)"
    grep -E "ERROR|SUMMARY|Test unit written" "$build/fuzz_$t.log" | head -5
  fi
  echo "== $t: $(( $(date +%s) - start )) s"
  grep -E "^stat::|DONE|INITED" "$build/fuzz_$t.log" | tail -8
done
exit $status
