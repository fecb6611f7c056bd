#!/usr/bin/env bash
# Set up, build and run the whole test suite (CTest). test_cuda_* skip with a message without a GPU;
# the same suites run as test_simt_* (ctest names simt.*) on the simt CPU executor everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh "$@"
ctest --test-dir "${LLOCO_BUILD_DIR:-build}" --output-on-failure --parallel "${LLOCO_JOBS:-$(nproc)}" --timeout 900
