#!/usr/bin/env bash
# Build and run the fused-chunk skeleton check + timing sweep. Usage: bench/skeleton/run.sh [OUTDIR] [--quick]
# Needs nvcc (CUDA 12+) and a GPU of sm_90 (the -gencode below; set ARCH=80 for sm_80).
set -o pipefail
cd "$(dirname "$0")/../.."
OUTDIR=${1:-${OUT:-/tmp/skeleton}}
mkdir -p "$OUTDIR"
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
ARCH=${ARCH:-90a}
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null) (+ working tree)"
  echo "device: $(nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.sm --format=csv,noheader 2>/dev/null)"
  echo "nvcc: $($NVCC --version | tail -1)"
  echo "command: $NVCC -O3 -std=c++17 -gencode=arch=compute_$ARCH,code=sm_$ARCH -I codegen/device -Xptxas -v bench/skeleton/skeleton_bench.cu"
} | tee "$OUTDIR/header.txt"
$NVCC -O3 -std=c++17 -gencode=arch=compute_$ARCH,code=sm_$ARCH -I codegen/device -Xptxas -v \
  bench/skeleton/skeleton_bench.cu -o "$OUTDIR/skeleton_bench" > "$OUTDIR/ptxas.log" 2>&1 || { cat "$OUTDIR/ptxas.log"; exit 1; }
grep -A3 "Compiling entry function '_Z31lina_fused" "$OUTDIR/ptxas.log" | grep -E "entry|stack|Used" > "$OUTDIR/ptxas_summary.txt"
"$OUTDIR/skeleton_bench" $2 2>&1 | tee "$OUTDIR/bench.log"
rc=$?
rm -f "$OUTDIR/skeleton_bench"
exit $rc
