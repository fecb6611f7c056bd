#!/usr/bin/env python3
"""PyTorch scaled_dot_product_attention on the shapes of bench/cuda/attention_bench.cpp, per SDPA
backend (flash, cuDNN, memory-efficient), so our numbers have same-machine peers.

  python3 bench/peers/attention_peers.py --out attention_peers.json [--min-time 0.05]

Sweep: bf16, b * s = 16k tokens, s = 512 .. 16k, h * d = 2048 (hd 64 and 128), causal and not,
q/k/v stored [B, S, H, D] and passed as [B, H, S, D] views (the layout attention_bench uses).
TFLOP/s follows the flash-attention convention: fwd = 4 * b * s^2 * h * d, halved when causal;
fwd+bwd = 3.5x fwd. The backward is torch.autograd.grad of q, k, v for a random dout.
Decode: one query row, Tk = 4k / 32k / 128k, 32 query heads of dim 128, 32 or 8 kv heads
(enable_gqa), batch 1 and 8; GB/s counts the K and V bytes. SDPA's is_causal is top-left aligned,
so the decode rows use is_causal=False, which is what bottom-right causal means for one query row.
A backend that raises for a shape is recorded with its error and skipped. Timing: CUDA events,
warm-up calls first, repeated until --min-time seconds.
"""
import argparse
import json
import sys

import torch
import torch.nn.functional as F
from peer_timing import time_call
from torch.nn.attention import SDPBackend, sdpa_kernel

SWEEP_TOKENS = 16384
SWEEP_HIDDEN = 2048
BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}


def memcpy_gbps():
    """Device-to-device copy of 1 GiB, bytes read + written per second (as bench_util measures)."""
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda").fill_(1)
    b = torch.empty_like(a)
    s = time_call(lambda: b.copy_(a), 0.05)
    del a, b
    return 2 * (1 << 30) / s / 1e9


def bhsd(b, s, h, d, requires_grad=False):
    t = torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    return t.detach().requires_grad_(requires_grad)


def sweep(min_time):
    rows = []
    for d in (64, 128):
        h = SWEEP_HIDDEN // d
        for causal in (False, True):
            s = 512
            while s <= SWEEP_TOKENS:
                b = SWEEP_TOKENS // s
                fwd_flops = 4.0 * b * s * s * h * d / (2 if causal else 1)
                q, k, v = (bhsd(b, s, h, d, True) for _ in range(3))
                dout = bhsd(b, s, h, d)
                for name, backend in BACKENDS.items():
                    for pass_name, flops in (("fwd", fwd_flops), ("fwd_bwd", 3.5 * fwd_flops)):
                        row = {"backend": name, "pass": pass_name, "hd": d, "causal": int(causal), "seqlen": s,
                               "batch": b, "heads": h}
                        try:
                            with sdpa_kernel([backend]):
                                if pass_name == "fwd":
                                    def fn():
                                        with torch.no_grad():
                                            F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                                else:
                                    def fn():
                                        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                                        torch.autograd.grad(out, (q, k, v), dout)
                                sec = time_call(fn, min_time, max_calls=1000)
                            row.update(us=sec * 1e6, tflops=flops / sec / 1e12)
                        except Exception as e:  # a backend that does not take this shape
                            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
                        rows.append(row)
                del q, k, v, dout
                s *= 2
    return rows


def decode(min_time):
    rows = []
    hq, d = 32, 128
    for batch in (1, 8):
        for hkv in (32, 8):
            for tk in (4096, 32768, 131072):
                q = torch.randn(batch, hq, 1, d, device="cuda", dtype=torch.bfloat16)
                k = torch.randn(batch, hkv, tk, d, device="cuda", dtype=torch.bfloat16)
                v = torch.randn_like(k)
                kv_bytes = 2 * k.numel() * k.element_size()
                for name, backend in BACKENDS.items():
                    row = dict(backend=name, batch=batch, kv_heads=hkv, tk=tk)
                    try:
                        with sdpa_kernel([backend]), torch.no_grad():
                            sec = time_call(
                                lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=hkv != hq), min_time)
                        row.update(us=sec * 1e6, gbps=kv_bytes / sec / 1e9)
                    except Exception as e:
                        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
                    rows.append(row)
                del q, k, v
                torch.cuda.empty_cache()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--min-time", type=float, default=0.05, help="seconds of timed calls per row")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("attention_peers: no CUDA device visible to PyTorch; skipped")
        return 0
    result = dict(device=torch.cuda.get_device_name(0), torch=torch.__version__,
                  cudnn=torch.backends.cudnn.version(), memcpy_gbps=memcpy_gbps())
    result["sweep"] = sweep(args.min_time)
    result["decode"] = decode(args.min_time)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    failed = sum("error" in r for r in result["sweep"] + result["decode"])
    print(f"attention_peers: {len(result['sweep'])} sweep rows, {len(result['decode'])} decode rows "
          f"({failed} skipped by their backend) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
