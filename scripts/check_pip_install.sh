#!/usr/bin/env bash
# The install a new user does, checked in CI: build a wheel with `pip wheel .` on a machine where
# CMake may not use a CUDA toolkit (the headers come from PyPI's nvidia wheels), install it into a
# fresh venv, and from outside the source tree, with no CUDA folder in LD_LIBRARY_PATH: import lina,
# print its version and GPU status, run the console tools, and run the CPU tests against the
# installed package. LINA_SKIP_PIP_CHECK=1 skips it (e.g. without PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${LINA_SKIP_PIP_CHECK:-0}" = "1" ]; then
  echo "check_pip_install: skipped (LINA_SKIP_PIP_CHECK=1)"
  exit 0
fi
src=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
/usr/bin/python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check pytest numpy
# No toolkit for CMake: cuda.h and nvrtc.h must come from the build requirements' nvidia wheels.
CMAKE_ARGS="-DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
  "$work/venv/bin/pip" wheel -v --disable-pip-version-check --no-deps -w "$work/dist" . > "$work/wheel.log" 2>&1 ||
  { tail -30 "$work/wheel.log"; exit 1; }
grep -o "CUDA headers: .*" "$work/wheel.log" | head -1
grep -q "CUDA headers: from Python packages" "$work/wheel.log" ||
  { echo "check_pip_install: the wheel did not take the CUDA headers from PyPI's nvidia wheels"; exit 1; }
"$work/venv/bin/pip" install -q --disable-pip-version-check "$work"/dist/lina-*.whl
echo "check_pip_install: wheel $(basename "$work"/dist/lina-*.whl) built and installed in $(( $(date +%s) - start )) s"
cd "$work"
run() { env -u LD_LIBRARY_PATH -u PYTHONPATH PATH="$work/venv/bin:/usr/bin:/bin" "$@"; }
run python -c "import lina; print('import lina:', lina.__version__, tuple(lina.cuda_available()))"
run lina --version
run linac --version
run lina-run --version
run linac "$src/tests/programs/rwkv6.lina" --emit=rir > /dev/null
run env LINA_SOURCE_DIR="$src" python -m pytest -q -p no:cacheprovider "$src/python/tests/test_cpu.py" \
  "$src/python/tests/test_bad_inputs.py" -k "not cli"
echo "check_pip_install: passed in $(( $(date +%s) - start )) s"
