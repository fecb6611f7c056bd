#!/usr/bin/env bash
# The CPU stand-in for compute-sanitizer memcheck: builds the CUDA suites on the simt executor
# (test_simt_*) with AddressSanitizer + UBSan (CMAKE_BUILD_TYPE=San) and runs them. Device memory is
# host memory there and the caching allocator poisons every byte it has not handed out, so a kernel
# that reads or writes past a tensor, or uses a freed block, stops with the kernel's stack.
#   scripts/simt_memcheck.sh [ctest -R regex]      (default: every simt suite)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${LLOCO_SIMT_MEMCHECK_DIR:-build-simt-san}"
FILTER="${1:-^simt\.}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=San -DLLOCO_CUDA=ON -DLLOCO_BUILD_BENCH=OFF >/dev/null
mapfile -t targets < <(cmake --build "$BUILD_DIR" --target help | sed -n 's/^\(test_simt_[a-z_0-9]*\):.*/\1/p')
[[ ${#targets[@]} -gt 0 ]] || { echo "simt_memcheck: no test_simt_* targets (is the CUDA toolkit installed?)" >&2; exit 1; }
cmake --build "$BUILD_DIR" --parallel "${LLOCO_JOBS:-$(nproc)}" --target "${targets[@]}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
ctest --test-dir "$BUILD_DIR" -R "$FILTER" --output-on-failure --parallel "${LLOCO_JOBS:-$(nproc)}"
