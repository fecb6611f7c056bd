#!/usr/bin/env python3
"""Our attention (attention_bench's Google Benchmark JSON) next to PyTorch SDPA's backends
(bench/peers/attention_peers.py JSON) from the same machine: a markdown table and a PNG of TFLOP/s
against sequence length (matplotlib; without it only the table is written).

  python3 bench/plot_attention.py --ours attention_bench.json --peers attention_peers.json \
      --md attention_compare.md [--png attention_compare.png] [--brief]

--brief prints a short version (hd 128 at s = 2k and 16k, decode at batch 1) to stdout.
Either input may be missing or empty; its columns then show '-'.
"""
import argparse
import json
import os
import re
import sys

PEERS = ("flash", "cudnn", "efficient")
SWEEP_RE = re.compile(r"^BM_attention_(fwd_bwd|fwd)/hd:(\d+)/causal:(\d+)/seqlen:(\d+)")
DECODE_RE = re.compile(r"^BM_attention_decode/batch:(\d+)/kv_heads:(\d+)/tk:(\d+)")


def load(path):
    if not path or not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    with open(path) as f:
        return json.load(f)


def ours_tables(doc):
    """{(pass, hd, causal, seqlen): TFLOP/s}, {(batch, kv_heads, tk): GB/s}, memcpy GB/s, paths."""
    sweep, decode, memcpy, paths = {}, {}, None, {}
    for b in (doc or {}).get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        name = b["name"]
        m = SWEEP_RE.match(name)
        if m and "TFLOP/s" in b:
            key = (m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)))
            sweep[key] = b["TFLOP/s"]
            if "path" in b.get("label", ""):
                paths[key] = b["label"]
        m = DECODE_RE.match(name)
        if m and "GB/s" in b:
            decode[(int(m.group(1)), int(m.group(2)), int(m.group(3)))] = b["GB/s"]
            memcpy = b.get("memcpy_GB/s", memcpy)
    return sweep, decode, memcpy, paths


def peer_tables(doc):
    sweep, decode = {}, {}
    for r in (doc or {}).get("sweep", []):
        if "tflops" in r:
            sweep[(r["backend"], r["pass"], r["hd"], r["causal"], r["seqlen"])] = r["tflops"]
    for r in (doc or {}).get("decode", []):
        if "gbps" in r:
            decode[(r["backend"], r["batch"], r["kv_heads"], r["tk"])] = r["gbps"]
    return sweep, decode


def fmt(x, digits=0):
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def sweep_lines(ours, peers, seqlens=None, hds=None):
    keys = sorted({k for k in ours} | {k[1:] for k in peers}, key=lambda k: (k[0] != "fwd", k[1], k[2], k[3]))
    lines = ["| pass | hd | causal | seqlen | ours | flash | cuDNN | mem-eff | ours/flash | ours/cuDNN |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for k in keys:
        if (seqlens and k[3] not in seqlens) or (hds and k[1] not in hds):
            continue
        o = ours.get(k)
        p = {name: peers.get((name,) + k) for name in PEERS}
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {fmt(o, 1)} | {fmt(p['flash'], 1)} | "
                     f"{fmt(p['cudnn'], 1)} | {fmt(p['efficient'], 1)} | {ratio(o, p['flash'])} | "
                     f"{ratio(o, p['cudnn'])} |")
    return lines


def decode_lines(ours, peers, memcpy, batches=None):
    keys = sorted(set(ours) | {k[1:] for k in peers})
    lines = ["| batch | kv heads | Tk | ours GB/s | flash | cuDNN | mem-eff | ours/memcpy | ours/best SDPA |",
             "|---|---|---|---|---|---|---|---|---|"]
    for k in keys:
        if batches and k[0] not in batches:
            continue
        o = ours.get(k)
        p = {name: peers.get((name,) + k) for name in PEERS}
        best = max((v for v in p.values() if v is not None), default=None)
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {fmt(o)} | {fmt(p['flash'])} | {fmt(p['cudnn'])} | "
                     f"{fmt(p['efficient'])} | {ratio(o, memcpy)} | {ratio(o, best)} |")
    return lines


def plot(path, ours, peers, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_attention: matplotlib not available; table only", file=sys.stderr)
        return False
    panels = [(p, hd, c) for p in ("fwd", "fwd_bwd") for hd in (64, 128) for c in (0, 1)]
    fig, axes = plt.subplots(2, 4, figsize=(18, 8), sharex=True)
    for ax, (p, hd, c) in zip(axes.flat, panels):
        series = [("ours", {k[3]: v for k, v in ours.items() if k[:3] == (p, hd, c)})]
        for name in PEERS:
            series.append((f"SDPA {name}", {k[4]: v for k, v in peers.items() if k[:4] == (name, p, hd, c)}))
        for label, pts in series:
            if pts:
                xs = sorted(pts)
                ax.plot(xs, [pts[x] for x in xs], marker="o", label=label, linewidth=2.5 if label == "ours" else 1.2)
        ax.set_xscale("log", base=2)
        ticks = [512 << i for i in range(6)]
        ax.set_xticks(ticks, [f"{t // 1024}k" if t >= 1024 else str(t) for t in ticks])
        ax.set_ylim(bottom=0)
        ax.set_title(f"{p}, hd {hd}, {'causal' if c else 'non-causal'}")
        ax.set_xlabel("sequence length (b * s = 16k)")
        ax.set_ylabel("TFLOP/s")
        ax.grid(True, alpha=0.3)
    axes.flat[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", help="attention_bench --benchmark_out JSON")
    ap.add_argument("--peers", help="attention_peers.py JSON")
    ap.add_argument("--md", required=True, help="markdown file to write")
    ap.add_argument("--png", help="plot to write (needs matplotlib)")
    ap.add_argument("--brief", action="store_true", help="print a short table to stdout")
    args = ap.parse_args()
    ours_doc, peers_doc = load(args.ours), load(args.peers)
    o_sweep, o_decode, memcpy, paths = ours_tables(ours_doc)
    p_sweep, p_decode = peer_tables(peers_doc)
    device = (peers_doc or {}).get("device") or (ours_doc or {}).get("context", {}).get("host_name", "?")
    memcpy = memcpy or (peers_doc or {}).get("memcpy_gbps")
    title = f"attention, bf16, {device}"
    if peers_doc:
        title += f" (torch {peers_doc.get('torch')}, cuDNN {peers_doc.get('cudnn')})"
    md = [f"# {title}", "",
          "TFLOP/s, flash-attention convention (fwd 4*b*s^2*h*d, halved when causal; fwd+bwd 3.5x fwd); "
          "b * s = 16k tokens, h * d = 2048.", ""]
    md += sweep_lines(o_sweep, p_sweep)
    if paths:
        md += ["", "Paths taken by our op: " + ", ".join(sorted(set(paths.values())))]
    md += ["", f"Decode: 1 query row, 32 query heads of dim 128; GB/s of K + V; same-run device copy "
               f"{fmt(memcpy)} GB/s.", ""]
    md += decode_lines(o_decode, p_decode, memcpy)
    with open(args.md, "w") as f:
        f.write("\n".join(md) + "\n")
    wrote_png = bool(args.png) and plot(args.png, o_sweep, p_sweep, title)
    if args.brief:
        print(f"{title}: TFLOP/s, hd 128, s = 2k and 16k (all shapes: {os.path.basename(args.md)})")
        print("\n".join(sweep_lines(o_sweep, p_sweep, seqlens={2048, 16384}, hds={128})))
        if paths:
            print("our paths: " + ", ".join(sorted(set(paths.values()))))
        print("decode, batch 1 (GB/s):")
        print("\n".join(decode_lines(o_decode, p_decode, memcpy, batches={1})))
    if args.png and not wrote_png:
        print("plot_attention: no plot written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
