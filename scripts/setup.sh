#!/usr/bin/env bash
# Installs what lina needs to build and test, only what is missing (idempotent):
# a C++20 compiler (and clang for the libFuzzer run), CMake, Ninja, Bison, Flex, GoogleTest, LLVM 14 (lit, FileCheck, and the
# libraries of the CPU backend), OpenBLAS (the CPU model engine's projections), nlohmann-json,
# sentencepiece (the C++ runner's tokenizer and its test), and for
# the Python package Debian's Python 3 with headers, pybind11, numpy and pytest.
set -euo pipefail

packages=(g++ clang cmake ninja-build bison flex libgtest-dev llvm-14-tools llvm-14-dev libopenblas-dev nlohmann-json3-dev libsentencepiece-dev sentencepiece
          python3 python3-dev pybind11-dev python3-numpy
          python3-pytest)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q "${missing[@]}" >/dev/null
  }
fi
