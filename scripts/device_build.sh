#!/usr/bin/env bash
# Builds lina on the GPU machine (no network, no lit/FileCheck there): unpacks the Debian
# packages carried in .device/debs (bison, flex, GoogleTest), then configures and builds.
# Usage (from the repository root): scripts/device_build.sh [BUILD_DIR]
# LINA_BUILD_TARGETS="a b": build only those targets (a short device call).
set -euo pipefail
build=${1:-build-device}
for f in .device/debs/*.deb; do dpkg -x "$f" /; done
if [ -d /usr/src/googletest ] && [ ! -f /usr/lib/x86_64-linux-gnu/libgtest.a ] && [ ! -f /usr/lib/libgtest.a ]; then
  cmake -S /usr/src/googletest -B /tmp/gtest-build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build /tmp/gtest-build -j 16 >/dev/null
  cmake --install /tmp/gtest-build --prefix /usr >/dev/null
fi
# The Python extension against the machine's Python (pybind11 from pip there).
python_flags=(-DLINA_BUILD_PYTHON=OFF)
if pybind_dir=$(python3 -m pybind11 --cmakedir 2>/dev/null); then
  python_flags=(-DLINA_BUILD_PYTHON=ON -DPython_EXECUTABLE="$(command -v python3)" -Dpybind11_DIR="$pybind_dir")
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINA_REQUIRE_LIT=OFF "${python_flags[@]}" >/dev/null
cmake --build "$build" -j 16 ${LINA_BUILD_TARGETS:+--target $LINA_BUILD_TARGETS}
