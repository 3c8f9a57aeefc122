#!/usr/bin/env bash
# Side-by-side forward benchmark in one run on the GPU machine: lina (lina-bench) and fla +
# PyTorch SDPA (fla_forward.py), same shapes, same device. Usage: bench/run_forward.sh BUILD OUTDIR
set -uo pipefail
build=${1:-build}
out=${2:-.}
export LINA_CACHE_DIR=$(mktemp -d)  # cold first: the first lina call compiles with NVRTC
for shape in "4,4096,64" "8,2048,16"; do
  for op in gla simple_gla retention gsa; do
    dims=K=128,V=128
    [ "$op" = gsa ] && dims=$dims,M=64
    "$build/tools/lina-bench/lina-bench" --op "$op" --shape "$shape" --dims "$dims" --reps 10
  done
done | tee "$out/lina_forward.jsonl"
# A second process with the same cache: the NVRTC step is replaced by a disk load.
"$build/tools/lina-bench/lina-bench" --op gla --shape 8,2048,16 --dims K=128,V=128 --reps 5 | tee "$out/lina_cached.jsonl"
[ "${LINA_BENCH_SKIP_FLA:-0}" = 1 ] || timeout 420 python3 bench/fla_forward.py | tee "$out/fla_forward.jsonl"
