#!/usr/bin/env bash
# One command for a GPU machine that has nvcc, cmake, ninja and a C++ compiler but none of Debian's
# -dev libraries: unpacks the carried packages (.carry/debs, made HERE by scripts/carry_deps.sh),
# builds the CUDA tests and benchmarks for sm_90, runs them and prints a short table.
#   bash scripts/gpu_check.sh [OUT_DIR]      (default: $OUT, else ./gpu_check_out)
# Writes to OUT_DIR (at most 7 files): summary.txt, build.log, tests.log, sanitizer.log and the
# benchmark JSONs. Exits non-zero when the build or any test fails.
# Env: GPU_CHECK_ARCHS (default 90), GPU_CHECK_SANITIZER=0 to skip compute-sanitizer,
#      GPU_CHECK_BENCH=0 to skip benchmarks, GPU_CHECK_JOBS (default: all cores).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT_DIR=${1:-${OUT:-$ROOT/gpu_check_out}}
mkdir -p "$OUT_DIR"
BUILD=$ROOT/build-gpu
TMP=$(mktemp -d)
ARCHS=${GPU_CHECK_ARCHS:-90}
JOBS=${GPU_CHECK_JOBS:-$(nproc)}
SUMMARY=$OUT_DIR/summary.txt
: > "$SUMMARY"
say() { echo "$@" | tee -a "$SUMMARY"; }

# ---- environment ---------------------------------------------------------------------------------
P=$ROOT/.carry/prefix
if [[ ! -d $P/usr ]]; then
  scripts/carry_deps.sh --unpack || { say "FAIL: no carried packages (run scripts/carry_deps.sh here, carry .carry/debs)"; exit 1; }
fi
export CMAKE_PREFIX_PATH=$P/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
export LD_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# pkg-config sees only the carried .pc files; the sysroot maps their /usr paths into the prefix.
export PKG_CONFIG_LIBDIR=$P/usr/lib/x86_64-linux-gnu/pkgconfig:$P/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$P
PKGCONF=$(command -v pkg-config || echo "$P/usr/bin/pkgconf")
# Debian's package configs declare policy ranges starting below 3.5, which CMake >= 4 rejects without this.
export CMAKE_POLICY_VERSION_MINIMUM=3.5
command -v nvcc >/dev/null || [[ ! -x /usr/local/cuda/bin/nvcc ]] || export PATH=/usr/local/cuda/bin:$PATH
GEN=Ninja
command -v ninja >/dev/null || GEN="Unix Makefiles"
say "== lloco gpu_check $(date -u +%FT%TZ)"
say "gpu:   $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
say "nvcc:  $(nvcc --version 2>/dev/null | tail -1)"
say "cmake: $(cmake --version | head -1); c++: $(c++ --version 2>/dev/null | head -1); generator: $GEN; archs: $ARCHS"

# ---- build ---------------------------------------------------------------------------------------
TESTS=(test_philox test_cuda_kernels test_cuda_fused test_cuda_allocator test_cuda_op_table)
BENCHES=(cuda_gemm_bench cuda_memory_bench cuda_allocator_bench)
t0=$(date +%s)
{
  cmake -S . -B "$BUILD" -G "$GEN" -DCMAKE_BUILD_TYPE=Release -DLLOCO_CUDA=ON -DLLOCO_CUDA_ARCHS="$ARCHS" \
    -DLLOCO_BUILD_TESTS=ON -DLLOCO_BUILD_BENCH=ON -DPKG_CONFIG_EXECUTABLE="$PKGCONF" &&
    cmake --build "$BUILD" -j "$JOBS" --target "${TESTS[@]}" "${BENCHES[@]}"
} > "$OUT_DIR/build.log" 2>&1
rc=$?
say "build: rc=$rc in $(( $(date +%s) - t0 )) s"
if [[ $rc -ne 0 ]]; then
  say "FAIL: build failed; last lines of build.log:"
  grep -E "error|Error|FAILED" "$OUT_DIR/build.log" | head -20 | tee -a "$SUMMARY"
  tail -15 "$OUT_DIR/build.log" | tee -a "$SUMMARY"
  exit 1
fi

# ---- tests ---------------------------------------------------------------------------------------
status=0
: > "$OUT_DIR/tests.log"
for t in "${TESTS[@]}"; do
  bin=$(find "$BUILD/tests" -name "$t" -type f -perm -u+x | head -1)
  echo "===== $t" >> "$OUT_DIR/tests.log"
  timeout 300 "$bin" --gtest_output="xml:$TMP/$t.xml" >> "$OUT_DIR/tests.log" 2>&1 || status=1
done
say "tests: done in $(( $(date +%s) - t0 )) s since start"
if [[ "${GPU_CHECK_SANITIZER:-1}" != 0 ]] && command -v compute-sanitizer >/dev/null; then
  # memcheck over the kernel suites, both at once to bound the time: out-of-bounds and misaligned
  # accesses fail the run (rc 9); rc 124 is the time limit, reported but not a failure.
  for t in test_cuda_kernels test_cuda_fused; do
    bin=$(find "$BUILD/tests" -name "$t" -type f -perm -u+x | head -1)
    ( timeout "${GPU_CHECK_SANITIZER_TIMEOUT:-150}" compute-sanitizer --tool memcheck --error-exitcode 9 "$bin" \
        --gtest_brief=1 > "$TMP/$t.memcheck" 2>&1
      echo "memcheck $t rc=$?" >> "$TMP/sanitizer_rc" ) &
  done
  wait
  cat "$TMP"/*.memcheck > "$OUT_DIR/sanitizer.log" 2>/dev/null
  say "sanitizer: done in $(( $(date +%s) - t0 )) s since start"
fi

# ---- benchmarks ----------------------------------------------------------------------------------
if [[ "${GPU_CHECK_BENCH:-1}" != 0 ]]; then
  for b in "${BENCHES[@]}"; do
    bin=$(find "$BUILD/bench" -name "$b" -type f -perm -u+x | head -1)
    timeout 240 "$bin" --benchmark_out="$OUT_DIR/$b.json" --benchmark_out_format=json >> "$OUT_DIR/tests.log" 2>&1 ||
      echo "$b failed or timed out" >> "$TMP/bench_fail"
  done
  say "benchmarks: done in $(( $(date +%s) - t0 )) s since start"
fi

# ---- summary table -------------------------------------------------------------------------------
python3 - "$TMP" "$OUT_DIR" "${TESTS[*]}" "${BENCHES[*]}" <<'PY' | tee -a "$SUMMARY"
import json, os, sys, xml.etree.ElementTree as ET
tmp, out, tests, benches = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
bad = 0
print("\n== tests (CUDA vs CPU backend)")
print(f"{'binary':24s} {'passed':>7s} {'failed':>7s} {'skipped':>8s}")
tot = [0, 0, 0]
for t in tests:
    path = os.path.join(tmp, t + ".xml")
    if not os.path.exists(path):
        print(f"{t:24s} {'no result (crash or timeout: see tests.log)':>24s}"); bad = 1; continue
    p = f = s = 0
    for case in ET.parse(path).iter("testcase"):
        if case.find("failure") is not None: f += 1
        elif case.get("result") == "skipped" or case.find("skipped") is not None: s += 1
        else: p += 1
    tot = [tot[0] + p, tot[1] + f, tot[2] + s]
    bad |= f > 0
    print(f"{t:24s} {p:7d} {f:7d} {s:8d}")
sr = os.path.join(tmp, "sanitizer_rc")
if os.path.exists(sr):
    print("\n== compute-sanitizer memcheck"); print(open(sr).read().strip())
def load(name):
    path = os.path.join(out, name + ".json")
    return json.load(open(path))["benchmarks"] if os.path.exists(path) else []
gemm = load("cuda_gemm_bench")
if gemm:
    print("\n== GEMM (TFLOP/s; frac = fraction of a same-run 8192^3 bf16 cublasGemmEx)")
    print(f"{'benchmark':40s} {'us':>10s} {'TFLOP/s':>9s} {'frac':>6s}")
    for b in gemm:
        print(f"{b['name']:40s} {b['real_time']:10.1f} {b.get('TFLOP/s', 0):9.1f} {b.get('frac_square', 0):6.2f}")
    print(f"square cublasGemmEx baseline: {gemm[0].get('square_TFLOP/s', 0):.1f} TFLOP/s")
mem = load("cuda_memory_bench")
if mem:
    print("\n== memory-bound kernels (GB/s; frac = fraction of a same-run device-to-device cudaMemcpy)")
    print(f"{'benchmark':40s} {'us':>10s} {'GB/s':>8s} {'frac':>6s}")
    for b in mem:
        print(f"{b['name']:40s} {b['real_time']:10.1f} {b.get('GB/s', 0):8.0f} {b.get('frac_memcpy', 0):6.2f}")
    print(f"cudaMemcpy baseline: {mem[0].get('memcpy_GB/s', 0):.0f} GB/s")
for b in load("cuda_allocator_bench"):
    print(f"\n== allocator: {b['name']}: {b.get('ns_per_alloc_free', 0) * 1e9:.0f} ns per alloc+free, "
          f"cudaMalloc calls in steady-state loop: {b.get('cuda_mallocs_in_loop', -1):.0f} "
          f"(total {b.get('cuda_mallocs_total', -1):.0f})")
if os.path.exists(os.path.join(tmp, "bench_fail")):
    print("\n" + open(os.path.join(tmp, "bench_fail")).read().strip())
print(f"\n{tot[0]} passed, {tot[1]} failed, {tot[2]} skipped")
sys.exit(1 if bad else 0)
PY
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
[[ -f $TMP/bench_fail ]] && status=1
if grep -q ": Failure" "$OUT_DIR/tests.log"; then
  say ""
  say "== first test failures (full output in tests.log)"
  grep -A4 ": Failure" "$OUT_DIR/tests.log" | head -60 | tee -a "$SUMMARY"
fi
grep -q "rc=9" "$TMP/sanitizer_rc" 2>/dev/null && status=1
rm -rf "$TMP"
exit $status
