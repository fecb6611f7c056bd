#!/usr/bin/env bash
# One command for a GPU machine that has nvcc, cmake, ninja, a C++ compiler and python3 with PyTorch
# (+ peft) but none of Debian's -dev libraries: unpacks the carried packages (.carry/debs, made HERE
# by scripts/carry_deps.sh), builds the CUDA tests and benchmarks for sm_90, runs the tests, the
# compute-sanitizer checks and the benchmarks, measures PyTorch peers, and prints a short summary.
#   bash scripts/gpu_check.sh [OUT_DIR]      (default: $OUT, else ./gpu_check_out)
# Fits one 10-minute call: the PyTorch peers run while the (niced) build compiles, the sanitizer
# runs beside the tests, and every later step is cut to the time left of GPU_CHECK_BUDGET.
# Writes to OUT_DIR (8 files): summary.txt, build.log, tests.log (tests and benchmark output),
# sanitizer.log, attention_compare.md (+ .png with matplotlib), lloco_latency.svg, bench_json.tar.gz
# (every JSON).
# Exits 2 at once without a GPU; non-zero when a build, a test or the sanitizer fails.
# Env: GPU_CHECK_ARCHS (default 90a), GPU_CHECK_JOBS (default: all cores), GPU_CHECK_BUDGET (seconds,
#      default 540), GPU_CHECK_SANITIZER=0 / GPU_CHECK_BENCH=0 / GPU_CHECK_PEERS=0 to skip a part,
#      GPU_CHECK_PYTHON (default python3, for the peers and the plot), GPU_CHECK_BUILD_DIR (build-gpu),
#      GPU_CHECK_TESTS=0 (no tests and no sanitizer), GPU_CHECK_BENCHES="llama_bench ..." (a subset),
#      GPU_CHECK_DP=0 (no data-parallel smoke: scripts/dp_smoke.sh, two ranks sharing the GPU).
#      LLOCO_NCCL_LIBRARY (libnccl.so.2 for test_cuda_nccl; default: $GPU_CHECK_PYTHON's nvidia-nccl wheel).
#      A follow-up call on the still-warm machine (build dir kept) can finish what the first one ran
#      out of time for, e.g. GPU_CHECK_TESTS=0 GPU_CHECK_PEERS=0 GPU_CHECK_BENCHES=llama_bench.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
T_START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-540}
OUT_DIR=${1:-${OUT:-$ROOT/gpu_check_out}}
mkdir -p "$OUT_DIR"
BUILD=${GPU_CHECK_BUILD_DIR:-$ROOT/build-gpu}
TMP=$(mktemp -d)
mkdir -p "$TMP/json"
ARCHS=${GPU_CHECK_ARCHS:-90a}
JOBS=${GPU_CHECK_JOBS:-$(nproc)}
PY=${GPU_CHECK_PYTHON:-python3}
SUMMARY=$OUT_DIR/summary.txt
: > "$SUMMARY"
say() { echo "$@" | tee -a "$SUMMARY"; }
elapsed() { echo $(( $(date +%s) - T_START )); }
# Seconds left for a step: its own cap, cut to the budget left (at least 5 s so it can report).
cap() { local left=$(( BUDGET - $(elapsed) - 20 )); (( left < 5 )) && left=5; echo $(( $1 < left ? $1 : left )); }
bin_of() { find "$BUILD/$1" -name "$2" -type f -perm -u+x 2>/dev/null | head -1; }

# ---- a GPU, or stop now ---------------------------------------------------------------------------
GPU=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
if [[ -z $GPU ]]; then
  say "FAIL: no NVIDIA GPU visible (nvidia-smi missing, timed out or listed none); gpu_check needs one."
  say "      The CUDA code still builds without a GPU: cmake -DLLOCO_CUDA_ARCHS=90a and the usual targets."
  rm -rf "$TMP"
  exit 2
fi

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
# NCCL (dlopen'ed by test_cuda_nccl) comes with PyTorch's nvidia-nccl wheel: its library for the run
# and, when the toolkit lacks nccl.h, its header for the build. Left unset when the wheel is absent.
if [[ -z ${LLOCO_NCCL_LIBRARY:-} ]]; then
  NCCL_PKG=$("$PY" -c "import glob, os, nvidia; print(next(os.path.dirname(os.path.dirname(f)) for p in nvidia.__path__
                       for f in sorted(glob.glob(os.path.join(p, '*', 'lib', 'libnccl.so.2')))))" 2>/dev/null)
  if [[ -n $NCCL_PKG ]]; then
    export LLOCO_NCCL_LIBRARY=$NCCL_PKG/lib/libnccl.so.2
    [[ -f $NCCL_PKG/include/nccl.h ]] && export LLOCO_NCCL_ROOT=$NCCL_PKG
  fi
fi
say "== lloco gpu_check $(date -u +%FT%TZ)"
say "gpu:   $GPU"
say "nvcc:  $(nvcc --version 2>/dev/null | tail -1)"
say "cmake: $(cmake --version | head -1); c++: $(c++ --version 2>/dev/null | head -1); generator: $GEN; archs: $ARCHS"
say "nccl:  ${LLOCO_NCCL_LIBRARY:-no nvidia-nccl wheel for $PY (libnccl.so.2 from the loader path, else NCCL tests skip)}"

# ---- PyTorch peers, on the otherwise idle GPU while the build compiles ---------------------------
PEERS_PID=
if [[ "${GPU_CHECK_PEERS:-1}" != 0 ]] && "$PY" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  (
    timeout 200 "$PY" bench/peers/attention_peers.py --out "$TMP/json/attention_peers.json" || echo "attention_peers rc=$?"
    timeout 100 "$PY" bench/peers/lora_peers.py --out "$TMP/json/lora_peers.json" || echo "lora_peers rc=$?"
  ) > "$TMP/peers.log" 2>&1 &
  PEERS_PID=$!
  JOBS=$(( JOBS > 4 ? JOBS - 2 : JOBS ))  # two cores for the peers' kernel launches
else
  echo "peers skipped: GPU_CHECK_PEERS=0 or $PY cannot use torch.cuda" > "$TMP/peers.log"
fi

# ---- build (keeps going past a failing target so everything else still runs) ---------------------
TESTS=(test_philox test_cuda_kernels test_cuda_fused test_cuda_allocator test_cuda_op_table test_cuda_wgmma_probe
       test_cuda_flash_fwd test_cuda_flash_bwd test_cuda_decode test_cuda_attention_dispatch test_cuda_lora
       test_cuda_llama test_cuda_llama_lora test_cuda_compress test_cuda_bert test_cuda_nccl)
BENCHES=(cuda_gemm_bench cuda_memory_bench cuda_allocator_bench attention_bench lora_bench llama_bench lloco_latency_bench)
[[ -n ${GPU_CHECK_BENCHES:-} ]] && read -ra BENCHES <<< "$GPU_CHECK_BENCHES"
if [[ ${GPU_CHECK_TESTS:-1} == 0 ]]; then
  TESTS=()
  GPU_CHECK_SANITIZER=0
fi
APPS=()
[[ ${GPU_CHECK_TESTS:-1} != 0 && ${GPU_CHECK_DP:-1} != 0 ]] && APPS=(lloco)  # the data-parallel smoke below
ABSENT=()
PRESENT=()
for t in "${TESTS[@]}"; do
  if [[ -f tests/cuda/$t.cpp ]]; then PRESENT+=("$t"); else ABSENT+=("$t"); fi
done
TESTS=("${PRESENT[@]}")
KEEP_GOING=(-k 0)
[[ $GEN == Ninja ]] || KEEP_GOING=(-k)
t0=$(date +%s)
{
  cmake -S . -B "$BUILD" -G "$GEN" -DCMAKE_BUILD_TYPE=Release -DLLOCO_CUDA=ON -DLLOCO_CUDA_ARCHS="$ARCHS" \
    -DLLOCO_BUILD_TESTS=ON -DLLOCO_BUILD_BENCH=ON -DPKG_CONFIG_EXECUTABLE="$PKGCONF" &&
    nice -n 10 cmake --build "$BUILD" -j "$JOBS" --target "${TESTS[@]}" "${BENCHES[@]}" "${APPS[@]}" -- "${KEEP_GOING[@]}"
} > "$OUT_DIR/build.log" 2>&1
rc=$?
status=0
say "build: rc=$rc in $(( $(date +%s) - t0 )) s"
if [[ $rc -ne 0 ]]; then
  status=1
  say "FAIL: build failed; first errors (build.log has all); whatever did build runs below:"
  grep -E "error|FAILED" "$OUT_DIR/build.log" | head -12 | cut -c1-240 | tee -a "$SUMMARY"
  if ! grep -q "Build files have been written" "$OUT_DIR/build.log"; then
    tail -15 "$OUT_DIR/build.log" | tee -a "$SUMMARY"
    rm -rf "$TMP"
    exit 1
  fi
fi
if [[ -n $PEERS_PID ]]; then
  wait "$PEERS_PID"
  say "peers: done at $(elapsed) s"
fi

# ---- tests, with compute-sanitizer beside them ---------------------------------------------------
# memcheck over the kernel suites; memcheck + racecheck over the flash suites on their smaller
# cases (the filters below). rc 9 = errors found (a failure); rc 124 = out of time (reported only).
declare -A RACE_FILTER=(
  [test_cuda_flash_fwd]="FlashFwdTest.BothLayoutsOnOneShape:FlashFwdTest.KeylessBatch*:FlashFwdTest.Varlen*:FlashFwdTest.Wgmma*"
  [test_cuda_flash_bwd]="FlashBwdTest.TokenMajorStrides"
  [test_cuda_decode]="FlashDecodeTest.CausalRowsWithoutKeys:FlashDecodeTest.GenericHeadDims"
)
SAN_PIDS=()
if [[ "${GPU_CHECK_SANITIZER:-1}" != 0 ]] && command -v compute-sanitizer >/dev/null; then
  san_t=$(cap 200)
  sanitize() {  # tool binary filter
    local bin
    bin=$(bin_of tests "$2")
    [[ -n $bin ]] || { echo "$1 $2: not built" >> "$TMP/sanitizer_rc"; return; }
    timeout "$san_t" compute-sanitizer --tool "$1" --error-exitcode 9 "$bin" --gtest_brief=1 \
      --gtest_filter="$3" > "$TMP/$2.$1" 2>&1
    local r=$?
    local n
    n=$(grep -oE "\[  PASSED  \] [0-9]+ test" "$TMP/$2.$1" | grep -oE "[0-9]+" | head -1)
    echo "$1 $2 rc=$r (${n:-0} tests passed; filter $3)" >> "$TMP/sanitizer_rc"
  }
  for t in test_cuda_kernels test_cuda_fused; do sanitize memcheck "$t" "*" & SAN_PIDS+=($!); done
  for t in "${!RACE_FILTER[@]}"; do
    [[ -f tests/cuda/$t.cpp ]] || continue
    sanitize memcheck "$t" "*" & SAN_PIDS+=($!)
    sanitize racecheck "$t" "${RACE_FILTER[$t]}" & SAN_PIDS+=($!)
  done
fi
: > "$OUT_DIR/tests.log"
for t in "${TESTS[@]}"; do
  bin=$(bin_of tests "$t")
  echo "===== $t" >> "$OUT_DIR/tests.log"
  if [[ -z $bin ]]; then
    echo "not built" >> "$OUT_DIR/tests.log"
    continue
  fi
  timeout "$(cap 150)" "$bin" --gtest_output="xml:$TMP/$t.xml" >> "$OUT_DIR/tests.log" 2>&1 || status=1
done
say "tests: done at $(elapsed) s"
if (( ${#SAN_PIDS[@]} )); then
  wait "${SAN_PIDS[@]}"
  cat "$TMP"/*.memcheck "$TMP"/*.racecheck > "$OUT_DIR/sanitizer.log" 2>/dev/null
  say "sanitizer: done at $(elapsed) s"
fi

# ---- data parallelism: two ranks of `lloco launch` sharing the GPU (socket group, host-staged) -----
if (( ${#APPS[@]} )); then
  LL=$(find "$BUILD/apps" -maxdepth 1 -name lloco -type f -perm -u+x 2>/dev/null | head -1)
  if [[ -z $LL ]]; then
    say "data-parallel: lloco not built"
    status=1
  else
    echo "===== dp_smoke" >> "$OUT_DIR/tests.log"
    timeout "$(cap 120)" bash scripts/dp_smoke.sh "$LL" "$TMP/dp" cuda:0 >> "$OUT_DIR/tests.log" 2>&1
    rc=$?
    say "$(grep -h "^data-parallel on" "$OUT_DIR/tests.log" | tail -1) (rc=$rc)"
    (( rc )) && status=1
  fi
fi

# ---- benchmarks (alone on the GPU) ---------------------------------------------------------------
if [[ "${GPU_CHECK_BENCH:-1}" != 0 ]]; then
  declare -A BENCH_CAP=([cuda_gemm_bench]=60 [cuda_memory_bench]=40 [cuda_allocator_bench]=20
                        [attention_bench]=150 [lora_bench]=40 [llama_bench]=150 [lloco_latency_bench]=150)
  for b in "${BENCHES[@]}"; do
    bin=$(bin_of bench "$b")
    echo "===== $b" >> "$OUT_DIR/tests.log"
    if [[ -z $bin ]]; then
      echo "$b: not built" >> "$TMP/bench_fail"
      continue
    fi
    if [[ $b == llama_bench ]]; then
      args=(--json "$TMP/json/$b.json")
    elif [[ $b == lloco_latency_bench ]]; then  # LLoCO's latency figure: 7B shape, 4k..128k documents
      args=(--device cuda --json "$TMP/json/$b.json" --svg "$OUT_DIR/lloco_latency.svg")
    else
      args=(--benchmark_out="$TMP/json/$b.json" --benchmark_out_format=json)
    fi
    timeout "$(cap "${BENCH_CAP[$b]}")" "$bin" "${args[@]}" >> "$OUT_DIR/tests.log" 2>&1 ||
      echo "$b failed or ran out of time (rc $?)" >> "$TMP/bench_fail"
  done
  say "benchmarks: done at $(elapsed) s"
fi

# ---- summary -------------------------------------------------------------------------------------
cat "$TMP/peers.log" >> "$OUT_DIR/tests.log"
python3 - "$TMP" "${TESTS[*]}" "${ABSENT[*]:-}" <<'PY' | tee -a "$SUMMARY"
import json, os, re, sys, xml.etree.ElementTree as ET
tmp, tests, absent = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
bad = 0
print("\n== tests (CUDA vs CPU backend and references)")
print(f"{'binary':30s} {'passed':>7s} {'failed':>7s} {'skipped':>8s}")
tot = [0, 0, 0]
for t in tests:
    path = os.path.join(tmp, t + ".xml")
    if not os.path.exists(path):
        print(f"{t:30s} no result (not built, crash or timeout: see build.log / tests.log)"); bad = 1; continue
    p = f = s = 0
    for case in ET.parse(path).iter("testcase"):
        if case.find("failure") is not None: f += 1
        elif case.get("result") == "skipped" or case.find("skipped") is not None: s += 1
        else: p += 1
    tot = [tot[0] + p, tot[1] + f, tot[2] + s]
    bad |= f > 0
    print(f"{t:30s} {p:7d} {f:7d} {s:8d}")
if absent:
    print("absent (no source in tests/cuda): " + " ".join(absent))
sr = os.path.join(tmp, "sanitizer_rc")
if os.path.exists(sr):
    print("\n== compute-sanitizer (rc 9 = errors, 124 = out of time)")
    print(open(sr).read().strip())

def load(name):
    path = os.path.join(tmp, "json", name + ".json")
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None

def bench(name):
    return (load(name) or {}).get("benchmarks", [])

gemm = bench("cuda_gemm_bench")
if gemm:
    print("\n== GEMM (TFLOP/s; frac = fraction of a same-run 8192^3 bf16 cublasGemmEx)")
    print(f"{'benchmark':40s} {'us':>10s} {'TFLOP/s':>9s} {'frac':>6s}")
    for b in gemm:
        print(f"{b['name']:40s} {b['real_time']:10.1f} {b.get('TFLOP/s', 0):9.1f} {b.get('frac_square', 0):6.2f}")
    print(f"square cublasGemmEx baseline: {gemm[0].get('square_TFLOP/s', 0):.1f} TFLOP/s")
mem = bench("cuda_memory_bench")
if mem:
    print("\n== memory-bound kernels (GB/s; frac = fraction of a same-run device-to-device cudaMemcpy)")
    print(f"{'benchmark':40s} {'us':>10s} {'GB/s':>8s} {'frac':>6s}")
    for b in mem:
        print(f"{b['name']:40s} {b['real_time']:10.1f} {b.get('GB/s', 0):8.0f} {b.get('frac_memcpy', 0):6.2f}")
    print(f"cudaMemcpy baseline: {mem[0].get('memcpy_GB/s', 0):.0f} GB/s")
for b in bench("cuda_allocator_bench"):
    print(f"\n== allocator: {b['name']}: {b.get('ns_per_alloc_free', 0) * 1e9:.0f} ns per alloc+free, "
          f"cudaMalloc calls in steady-state loop: {b.get('cuda_mallocs_in_loop', -1):.0f} "
          f"(total {b.get('cuda_mallocs_total', -1):.0f})")

lora, peers = bench("lora_bench"), load("lora_peers") or {}
if lora:
    print("\n== LoRA r8, 4096x4096 bf16 (us; overhead = (LoRA - base) / base; torch/peft: same-run PyTorch peers)")
    pq = {r["tokens"]: r for r in peers.get("qkvo", [])}
    pm = {(r["kind"], r["adapters"]): r for r in peers.get("multi", [])}
    print(f"{'benchmark':36s} {'us':>9s} {'base us':>8s} {'ours %':>7s} {'torch %':>8s} {'peft %':>7s} {'GB/s':>6s}")
    for b in lora:
        n = b["name"].split("/manual_time")[0]
        if b.get("error_occurred"):
            print(f"{n:36s} error: {b.get('error_message', '?')[:120]}"); continue
        arg = int(n.split(":")[-1])
        if n.startswith("BM_decode_lora_path"):  # fused vs composed, overhead over the same-run GEMM
            ours, tp, pp = b.get("overhead_%", 0), None, None
        elif n.startswith("BM_qkvo"):
            r = pq.get(arg, {})
            ours, tp, pp = b.get("overhead_%", 0), r.get("torch_overhead_pct"), r.get("peft_overhead_pct")
        else:
            r = pm.get(("bgmv" if "bgmv" in n else "sgmv", arg), {})
            ours, tp, pp = b.get("vs_linear_%", 0), r.get("torch_vs_linear_pct"), r.get("peft_overhead_pct")
        f = lambda x: "-" if x is None else f"{x:.0f}"
        print(f"{n:36s} {b['real_time']:9.1f} {b.get('base_us', 0):8.1f} {ours:7.0f} {f(tp):>8s} {f(pp):>7s} "
              f"{b.get('GB/s', 0):6.0f}")
    print("sgmv/bgmv rows: ours % and torch % = delta alone / one base projection; peft % = mixed-batch overhead")
    print("decode_lora_path rows: path 0 = fused one-launch kernel, 1 = shrink + expand + GEMM adding onto it "
          "(ours % = overhead)")

def by_kernel(name):
    """{(hd, causal, seqlen): {kernel arg: TFLOP/s}} of attention_bench's BM_<name> runs."""
    out = {}
    for b in bench("attention_bench"):
        m = re.match(rf"BM_{name}/hd:(\d+)/causal:(\d+)/seqlen:(\d+)/kernel:(\d+)", b["name"])
        if m and not b.get("error_occurred"):
            out.setdefault(tuple(int(x) for x in m.groups()[:3]), {})[int(m.group(4))] = b.get("TFLOP/s", 0)
    return out

kernels = by_kernel("flash_fwd_kernel")
if kernels:
    print("\n== flash fwd kernels (TFLOP/s, bf16, b*s = 16k, launcher called directly; auto = its own choice)")
    print("   (mma 64 / 128: query-tile rows; wgmma n64 / n128: key-tile columns, n128 the default; hd64 is n128 in both)")
    print(f"{'hd':>3s} {'causal':>6s} {'seqlen':>6s} {'mma 64':>7s} {'mma 128':>8s} {'wg n64':>7s} {'wg n128':>8s} {'auto':>6s}")
    for (hd, c, s), r in sorted(kernels.items()):
        print(f"{hd:3d} {c:6d} {s:6d} {r.get(1, 0):7.1f} {r.get(2, 0):8.1f} {r.get(4, 0):7.1f} {r.get(3, 0):8.1f} "
              f"{r.get(0, 0):6.1f}")
bwd_kernels = by_kernel("flash_bwd_kernel")
if bwd_kernels:
    print("\n== flash bwd kernels (TFLOP/s = 2.5x fwd FLOPs / time of prep + main + convert, bf16, b*s = 16k)")
    print(f"{'hd':>3s} {'causal':>6s} {'seqlen':>6s} {'mma':>6s} {'wgmma':>6s} {'auto':>6s}")
    for (hd, c, s), r in sorted(bwd_kernels.items()):
        print(f"{hd:3d} {c:6d} {s:6d} {r.get(1, 0):6.1f} {r.get(2, 0):6.1f} {r.get(0, 0):6.1f}")

llama = load("llama_bench")
if llama:
    print(f"\n== LLaMA-2-7B shape, bf16, batch 1 (device copy {llama['memcpy_GB/s']:.0f} GB/s, "
          f"square GEMM {llama['square_TFLOP/s']:.0f} TFLOP/s)")
    print(f"{'context':>8s} {'prefill ms':>11s} {'tok/s':>8s} {'TFLOP/s':>8s} | {'ms/token':>9s} {'floor W':>8s} "
          f"{'floor W+KV':>11s} {'floor/ours':>10s}")
    for r in llama["runs"]:
        print(f"{r['context']:8d} {r['prefill_ms']:11.1f} {r['prefill_tokens_per_s']:8.0f} {r['prefill_TFLOP/s']:8.1f} | "
              f"{r['decode_ms_per_token']:9.2f} {r['floor_weights_ms']:8.2f} {r['floor_weights_kv_ms']:11.2f} "
              f"{r['floor_weights_kv_ms'] / r['decode_ms_per_token']:10.2f}")
latency = load("lloco_latency_bench")
if latency:
    print("\n== LLoCO latency: the document as tokens vs its summary vectors (7B shape, bf16, batch 1; x = baseline / LLoCO)")
    print(f"{'doc tok':>8s} {'base TTFT':>10s} {'ms/tok':>8s} | {'LLoCO TTFT':>10s} {'ms/tok':>8s} | {'TTFT x':>7s} {'decode x':>8s}")
    for r in latency["rows"]:
        b, l = r["baseline"], r["lloco"]
        if "error" in b or "error" in l:
            print(f"{r['document_tokens']:8d} failed: {(b.get('error') or l.get('error'))[:90]}"
                  + (f" | LLoCO {l['ttft_ms']:.1f} ms, {l['decode_ms_per_token']:.2f} ms/tok" if "error" not in l else ""))
            continue
        print(f"{r['document_tokens']:8d} {b['ttft_ms']:10.1f} {b['decode_ms_per_token']:8.2f} | {l['ttft_ms']:10.1f} "
              f"{l['decode_ms_per_token']:8.2f} | {b['ttft_ms'] / l['ttft_ms']:7.2f} {b['decode_ms_per_token'] / l['decode_ms_per_token']:8.2f}")
if os.path.exists(os.path.join(tmp, "bench_fail")):
    print("\n" + open(os.path.join(tmp, "bench_fail")).read().strip())
print(f"\n{tot[0]} passed, {tot[1]} failed, {tot[2]} skipped")
sys.exit(1 if bad else 0)
PY
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
if [[ -f $TMP/json/attention_bench.json || -f $TMP/json/attention_peers.json ]]; then
  say ""
  "$PY" bench/plot_attention.py --ours "$TMP/json/attention_bench.json" --peers "$TMP/json/attention_peers.json" \
    --md "$OUT_DIR/attention_compare.md" --png "$OUT_DIR/attention_compare.png" --brief 2>&1 | tee -a "$SUMMARY"
fi
[[ -f $TMP/bench_fail ]] && status=1
if grep -q "no CUDA device" "$OUT_DIR/tests.log"; then
  say "FAIL: tests or benchmarks skipped with 'no CUDA device' although nvidia-smi lists a GPU (driver/runtime mismatch?)"
  status=1
fi
if grep -q ": Failure" "$OUT_DIR/tests.log"; then
  say ""
  say "== first test failures (full output in tests.log)"
  grep -A4 ": Failure" "$OUT_DIR/tests.log" | head -60 | tee -a "$SUMMARY"
fi
grep -q "rc=9" "$TMP/sanitizer_rc" 2>/dev/null && status=1
(cd "$TMP" && tar -czf "$OUT_DIR/bench_json.tar.gz" json peers.log)
say "total: $(elapsed) s, exit $status"
rm -rf "$TMP"
exit $status
