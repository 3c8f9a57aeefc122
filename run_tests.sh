#!/usr/bin/env bash
# Sets up, builds and runs every test: lit + FileCheck, GoogleTest and pytest in the release build,
# then the same suites under AddressSanitizer + UndefinedBehaviorSanitizer, a wheel installed into
# a fresh venv, and a short fuzz run. GPU tests (label `gpu`) skip cleanly on a machine without one.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
scripts/setup_torch.sh || echo "setup_torch: failed; the tests that need torch will skip"  # .venv-torch for the Python tests
test_python=/usr/bin/python3
.venv-torch/bin/python -c "import torch, pytest" 2>/dev/null && test_python=$PWD/.venv-torch/bin/python
jobs=$(nproc)
stage() { echo "== $1 (at ${SECONDS} s)"; }  # each stage's start, to see where CI's time goes
stage setup-done
for preset in default asan; do
  stage "$preset build"
  cmake --preset "$preset" -DPython_EXECUTABLE=/usr/bin/python3 -DLINA_TEST_PYTHON="$test_python" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  stage "$preset tests"
  ctest --preset "$preset" -j "$jobs"
done
# The install a user does: `pip wheel .` without a CUDA toolkit, into a fresh venv, imported with no
# CUDA folder in the loader path, the console tools and the CPU tests against the installed package.
stage "pip install"
scripts/check_pip_install.sh
# A short, deterministic libFuzzer run of the fuzz targets (clang; fixed seed and input count).
stage fuzz
LINA_FUZZ_SEED=1 scripts/fuzz.sh -runs=20000
stage done
