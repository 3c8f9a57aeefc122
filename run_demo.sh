#!/usr/bin/env bash
# Sets up, builds and runs the end-to-end demo: every standard-library program is compiled
# through the whole pipeline and run on the CPU reference interpreter (fixed length, varlen
# with a zero-length sequence, initial states).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)"
linac=build/tools/linac/linac
for op in gla simple_gla retention gsa; do
  src=library/ops/$op.lina
  echo "==================== $src"
  "$linac" "$src" --time-passes | grep '// time'
  "$linac" "$src"
  "$linac" run-reference "$src" --shape 2,100,4 --dims K=64,V=64,M=32 --initial-state --seed 1
  "$linac" run-reference "$src" --shape 1,0,4 --varlen 0,37,37,100 --dims K=64,V=64,M=32 --seed 2
done
echo "demo: the standard library compiled and ran on the CPU reference (no GPU backend yet)"
