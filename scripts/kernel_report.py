#!/usr/bin/env python3
"""Static resource report of our CUDA kernels, no GPU needed.

Compiles cuda/kernels/*.cu for one architecture with `ptxas -v` (registers, spill bytes, stack,
static smem, barriers per kernel) and, when cuobjdump is available, disassembles the objects to
read each kernel's hottest loop: the innermost backward-branch loop with the most tensor-core
instructions (or the most instructions), counted by opcode class. Registers and the launch bound
give the CTAs per SM the register file allows (the smem limit depends on the launch; see each
kernel's header comment).

    python3 scripts/kernel_report.py [--arch 90] [--files flash_fwd.cu ...] [--match REGEX] [--md F] [--json F]
                                     [--spill-budget 'REGEX=BYTES' ...]

With --spill-budget, every kernel whose name matches a REGEX may spill (store) at most BYTES, kernels
matching none of them 0; the first matching budget applies. Exits 1 listing the kernels over budget,
and the wgmma kernels for which ptxas reports serialized wgmma or had to inject a warpgroup fence or
wait (its C75xx notes: the async pipeline is then not what the source says). CTest
cuda.spill_budget runs this on the flash and LoRA kernels.

cuobjdump is not part of our Debian toolchain; the script looks in $CUOBJDUMP, PATH,
/usr/local/cuda/bin and .venv (`.venv/bin/pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm`, NVIDIA's
wheels; cuobjdump -sass needs nvdisasm beside it).
Without it the loop columns are left out. Exits non-zero when a file fails to compile.
"""
import argparse
import collections
import concurrent.futures
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FILES = ["flash_fwd.cu", "flash_fwd_sm90.cu", "flash_bwd.cu", "flash_bwd_sm90.cu", "flash_decode.cu", "lora.cu"]
# Opcode classes counted in the hot loop (SASS mnemonics without modifiers).
LOOP_CLASSES = ["HMMA", "HGMMA", "LDSM", "LDGSTS", "LDS", "STS", "LDG", "STG", "LDL", "STL", "MUFU", "SHFL", "BAR",
                "FFMA", "FMUL", "FADD", "FMNMX"]
# Hopper register file: 64K 32-bit registers per SM, allocated per warp in units of 256.
REGS_PER_SM, REG_UNIT, MAX_WARPS_PER_SM, MAX_CTAS_PER_SM = 65536, 256, 64, 32
NVCC = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"  # --nvcc overrides


def find_cuobjdump():
    candidates = [os.environ.get("CUOBJDUMP"), shutil.which("cuobjdump"), "/usr/local/cuda/bin/cuobjdump"]
    candidates += glob.glob(os.path.join(ROOT, ".venv/lib/python3*/site-packages/nvidia/cu*/bin/cuobjdump"))
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def compile_file(path, arch, workdir):
    obj = os.path.join(workdir, os.path.basename(path) + ".o")
    cmd = [NVCC, "-I" + ROOT, "-O3", "-DNDEBUG", "-std=c++20", f"--generate-code=arch=compute_{arch},code=sm_{arch}",
           "-Xptxas", "-v", "-x", "cu", "-c", path, "-o", obj]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{path}: nvcc failed (rc {r.returncode}):\n{r.stderr[-3000:]}")
    return obj, r.stderr


def parse_ptxas(log):
    """{mangled name: resource dict} from ptxas -v output."""
    kernels, current = {}, None
    for line in log.splitlines():
        m = re.search(r"\((C75\d\d)\) (.*) in (?:the )?function '([^']+)'", line)
        if m:  # wgmma pipeline notes name their function themselves (and may precede its entry line)
            notes = kernels.setdefault(m.group(3), {}).setdefault("wgmma_notes", [])
            notes.append(f"{m.group(1)} {m.group(2).strip()}")
            continue
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            current = kernels.setdefault(m.group(1), {})
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            current["registers"] = int(m.group(1))
            b = re.search(r"used (\d+) barriers", line)
            s = re.search(r"(\d+) bytes smem", line)
            current["barriers"] = int(b.group(1)) if b else 0
            current["static_smem"] = int(s.group(1)) if s else 0
    return kernels


def run_cuobjdump(cuobjdump, flag, obj):
    r = subprocess.run([cuobjdump, flag, obj], capture_output=True, text=True)
    if r.returncode != 0:  # -sass runs nvdisasm, which must sit beside cuobjdump or on PATH
        raise RuntimeError(f"{cuobjdump} {flag} {obj} failed (rc {r.returncode}; is nvdisasm installed?):\n"
                           f"{r.stderr[-2000:]}")
    return r.stdout


def sass_functions(cuobjdump, obj):
    return parse_sass(run_cuobjdump(cuobjdump, "-sass", obj))


def parse_sass(text):
    """{mangled name: [(address, opcode, text), ...]} from cuobjdump -sass output."""
    funcs = {}
    for chunk in re.split(r"\n\s*Function : ", text)[1:]:
        name, body = chunk.split("\n", 1)
        ins = []
        for line in body.splitlines():
            m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)
            if not m:
                continue
            op = re.sub(r"^@!?U?P[T\d]+\s+", "", m.group(2)).split()
            if op:
                ins.append((int(m.group(1), 16), op[0], m.group(2)))
        funcs[name.strip()] = ins
    return funcs


def launch_bounds(cuobjdump, obj):
    return parse_launch_bounds(run_cuobjdump(cuobjdump, "-elf", obj))


def parse_launch_bounds(text):
    """{mangled name: max threads per block} from the EIATTR_MAX_THREADS of each .nv.info section."""
    bounds, section = {}, None
    for line in text.splitlines():
        m = re.match(r"\.nv\.info\.(\S+)\s*$", line)  # a section's contents start with its bare name
        if m:
            section = m.group(1)
        if section and "EIATTR_MAX_THREADS" in line:
            bounds[section] = None  # value on a following line
        elif section in bounds and bounds[section] is None and "Value:" in line:
            dims = [int(v, 16) for v in line.split("Value:")[1].split()]
            bounds[section] = dims[0] * dims[1] * dims[2]
    return {k: v for k, v in bounds.items() if v}


def hot_loop(ins):
    """Opcode counts of the innermost loop with the most HMMA + HGMMA (ties: most instructions)."""
    loops = []
    for addr, op, text in ins:
        if op.startswith("BRA"):
            m = re.search(r"0x([0-9a-f]+)", text)
            if m and int(m.group(1), 16) < addr:
                loops.append((int(m.group(1), 16), addr))
    best = None
    for lo, hi in loops:
        ops = collections.Counter(op.split(".")[0] for a, op, _ in ins if lo <= a <= hi)
        tensor = ops["HMMA"] + ops["HGMMA"]
        key = (tensor, sum(ops.values()) if not tensor else -(hi - lo))
        if best is None or key > best[0]:
            best = (key, ops)
    if best is None:
        return None
    ops = best[1]
    out = {c: ops[c] for c in LOOP_CLASSES}
    out["total"] = sum(ops.values())
    return out


def ctas_per_sm_by_regs(regs, threads):
    warps = (threads + 31) // 32
    regs_per_warp = (regs * 32 + REG_UNIT - 1) // REG_UNIT * REG_UNIT
    return min(REGS_PER_SM // (regs_per_warp * warps), MAX_WARPS_PER_SM // warps, MAX_CTAS_PER_SM)


def demangle(names):
    if not shutil.which("c++filt"):
        return {n: n for n in names}
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    short = [re.sub(r"lloco::cuda_kernels::(\w+::)?(\(anonymous namespace\)::)?", "", d) for d in out]
    short = [re.sub(r"\(.*\)$", "", s).replace("__nv_bfloat16", "bf16").replace("__half", "f16") for s in short]
    return dict(zip(names, short))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="90", help="SM architecture, e.g. 90 or 80")
    ap.add_argument("--nvcc", help="the nvcc to use (default: PATH, else /usr/local/cuda/bin/nvcc)")
    ap.add_argument("--files", nargs="*", default=DEFAULT_FILES, help="files under cuda/kernels (default: %(default)s)")
    ap.add_argument("--match", default="", help="only kernels whose demangled name matches this regex")
    ap.add_argument("--md", help="write the markdown table here")
    ap.add_argument("--json", help="write the rows as JSON here")
    ap.add_argument("--spill-budget", nargs="*", default=None, metavar="REGEX=BYTES",
                    help="fail when a kernel spills more than its budget (see the module doc)")
    args = ap.parse_args()
    global NVCC
    NVCC = args.nvcc or NVCC
    budgets = []
    for item in args.spill_budget or []:
        pattern, sep, limit = item.rpartition("=")
        if not sep or not limit.isdigit():
            sys.exit(f"kernel_report: --spill-budget wants REGEX=BYTES, got {item!r}")
        budgets.append((re.compile(pattern), int(limit)))
    cuobjdump = find_cuobjdump()
    paths = [os.path.join(ROOT, "cuda/kernels", f) for f in args.files]
    for p in paths:
        if not os.path.exists(p):
            sys.exit(f"kernel_report: no such file {p}")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            futures = {p: pool.submit(compile_file, p, args.arch, work) for p in paths}
            for i, p in enumerate(paths, 1):
                obj, log = futures[p].result()
                print(f"[{i}/{len(paths)}] compiled {os.path.basename(p)} for sm_{args.arch}", file=sys.stderr)
                res = parse_ptxas(log)
                sass = sass_functions(cuobjdump, obj) if cuobjdump else {}
                bounds = launch_bounds(cuobjdump, obj) if cuobjdump else {}
                names = demangle(list(res))
                for mangled, r in res.items():
                    if not re.search(args.match, names[mangled]):
                        continue
                    row = {"file": os.path.basename(p), "kernel": names[mangled], **r,
                           "max_threads": bounds.get(mangled)}
                    if row["max_threads"]:
                        row["ctas_per_sm_regs"] = ctas_per_sm_by_regs(r["registers"], row["max_threads"])
                    if mangled in sass:
                        row["loop"] = hot_loop(sass[mangled])
                    rows.append(row)
    md = render(rows, args.arch, cuobjdump is not None)
    print(md)
    if args.md:
        write_atomic(args.md, md)
    if args.json:
        write_atomic(args.json, json.dumps({"arch": args.arch, "kernels": rows}, indent=1))
    if args.spill_budget is not None:
        over = []
        for r in rows:
            limit = next((b for p, b in budgets if p.search(r["kernel"])), 0)
            if r.get("spill_stores", 0) > limit:
                over.append(f"  {r['file']}: {r['kernel']} spills {r['spill_stores']} bytes (budget {limit})")
            for note in r.get("wgmma_notes", []):
                over.append(f"  {r['file']}: {r['kernel']}: ptxas {note}")
        if over:
            print(f"kernel_report: {len(over)} finding(s) over the spill budgets or in the wgmma pipelines on "
                  f"sm_{args.arch}:", file=sys.stderr)
            print("\n".join(over), file=sys.stderr)
            sys.exit(1)
        print(f"kernel_report: all {len(rows)} kernels within their spill budgets on sm_{args.arch}", file=sys.stderr)


def render(rows, arch, with_sass):
    head = ["file", "kernel", "regs", "spill st/ld B", "stack B", "static smem B", "threads", "CTAs/SM (regs)"]
    if with_sass:
        head += ["loop instrs", "HMMA", "HGMMA", "LDSM", "LDL+STL", "MUFU", "instrs/HMMA"]
    lines = [f"sm_{arch}, `scripts/kernel_report.py`" + ("" if with_sass else " (no cuobjdump: loop columns left out)"),
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["file"], "`" + r["kernel"] + "`", r.get("registers", "?"),
                 f"{r.get('spill_stores', 0)}/{r.get('spill_loads', 0)}", r.get("stack", 0), r.get("static_smem", 0),
                 r.get("max_threads") or "-", r.get("ctas_per_sm_regs", "-")]
        if with_sass:
            lp = r.get("loop")
            if lp:
                per = f"{lp['total'] / lp['HMMA']:.2f}" if lp["HMMA"] else "-"
                cells += [lp["total"], lp["HMMA"], lp["HGMMA"], lp["LDSM"], lp["LDL"] + lp["STL"], lp["MUFU"], per]
            else:
                cells += ["-"] * 7
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        sys.exit(f"kernel_report: {e}")
