#!/usr/bin/env bash
# Configures and builds lloco into build/ (Release). Extra arguments go to CMake, e.g.
#   scripts/build.sh -DLLOCO_CUDA=OFF        CPU only even where nvcc exists
#   scripts/build.sh -DCMAKE_BUILD_TYPE=San  AddressSanitizer + UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${LLOCO_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${LLOCO_BUILD_TYPE:-Release}" "$@"
cmake --build "$BUILD_DIR" --parallel "${LLOCO_JOBS:-$(nproc)}"
