#!/usr/bin/env bash
# The split strategy against the fused walk, and what `auto` picks, on the GPU machine: lina's
# forward for GLA, retention and GSA at shapes from few long sequences (where one CTA per
# (sequence, head, tile) leaves SMs idle) to many. One JSON line per run (lina-bench).
# Usage: bench/run_split.sh BUILD OUTDIR
set -uo pipefail
build=${1:-build}
out=${2:-.}
export LINA_CACHE_DIR=$(mktemp -d)
for shape in "1,32768,16" "1,16384,4" "2,8192,16" "8,2048,16" "4,4096,64"; do
  for op in gla retention gsa; do
    dims=K=128,V=128
    [ "$op" = gsa ] && dims=$dims,M=64
    for strategy in fused split auto; do
      "$build/tools/lina-bench/lina-bench" --op "$op" --shape "$shape" --dims "$dims" --reps 10 --strategy "$strategy" \
        | sed "s/^{/{\"strategy\": \"$strategy\", /"
    done
  done
done | tee "$out/lina_split.jsonl"
