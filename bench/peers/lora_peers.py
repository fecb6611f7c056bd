#!/usr/bin/env python3
"""Unmerged LoRA in PyTorch and peft on the shapes of bench/cuda/lora_bench.cpp (LLaMA-2-7B
attention projections 4096 x 4096, bf16, rank 8, alpha 16), for same-machine peers.

  python3 bench/peers/lora_peers.py --out lora_peers.json [--min-time 0.05]

qkvo: the four projections at 1, 16 and 2048 tokens. base = four F.linear; torch = four
F.linear(x, W) + s * F.linear(F.linear(x, A), B) (what peft's LoRA Linear computes); peft = four
peft lora.Linear layers (adapter weights kept bf16: autocast_adapter_dtype=False). overhead_% =
(LoRA - base) / base.
Multi-adapter, one projection: 2048 rows in equal segments over 1 / 8 / 64 adapters (SGMV) and 16
rows with 16 adapters (BGMV). torch_delta = the delta alone as a loop over segments (a gather +
bmm for BGMV); peft = peft's mixed-batch forward (adapter_names per sample; base GEMM included).
Timing: CUDA events after warm-up, repeated until --min-time seconds.
"""
import argparse
import json
import sys

import torch
import torch.nn.functional as F
from peer_timing import time_call

HIDDEN, RANK, ALPHA = 4096, 8, 16
SCALE = ALPHA / RANK


def normal(*shape, std=1.0):
    return torch.randn(*shape, device="cuda", dtype=torch.bfloat16) * std


class Projections(torch.nn.Module):
    def __init__(self):
        super().__init__()
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            setattr(self, name, torch.nn.Linear(HIDDEN, HIDDEN, bias=False))

    def forward(self, x):
        return [self.q_proj(x), self.k_proj(x), self.v_proj(x), self.o_proj(x)]


def peft_model(adapters):
    """Projections wrapped by peft with `adapters` LoRA adapters a0, a1, ... (random B: nonzero deltas)."""
    from peft import LoraConfig, get_peft_model
    base = Projections().to(device="cuda", dtype=torch.bfloat16)
    cfg = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, init_lora_weights=False,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    model = get_peft_model(base, cfg, adapter_name="a0", autocast_adapter_dtype=False)
    for i in range(1, adapters):
        model.add_adapter(f"a{i}", cfg)
    return model.to(device="cuda", dtype=torch.bfloat16).eval()


def qkvo(min_time, have_peft):
    rows = []
    weights = [normal(HIDDEN, HIDDEN, std=0.02) for _ in range(4)]
    a = [normal(RANK, HIDDEN, std=0.02) for _ in range(4)]
    b = [normal(HIDDEN, RANK, std=0.02) for _ in range(4)]
    model = peft_model(1) if have_peft else None
    for n in (1, 16, 2048):
        x = normal(n, HIDDEN)
        with torch.no_grad():
            base = time_call(lambda: [F.linear(x, w) for w in weights], min_time)
            lora = time_call(lambda: [F.linear(x, w) + SCALE * F.linear(F.linear(x, a_), b_)
                                      for w, a_, b_ in zip(weights, a, b)], min_time)
            row = dict(tokens=n, base_us=base * 1e6, torch_us=lora * 1e6, torch_overhead_pct=100 * (lora - base) / base)
            if model is not None:
                p = time_call(lambda: model(x), min_time)
                row.update(peft_us=p * 1e6, peft_overhead_pct=100 * (p - base) / base)
        rows.append(row)
    return rows


def multi(min_time, have_peft):
    rows = []
    w = normal(HIDDEN, HIDDEN, std=0.02)
    for kind, rows_total, adapters in (("sgmv", 2048, 1), ("sgmv", 2048, 8), ("sgmv", 2048, 64), ("bgmv", 16, 16)):
        per = rows_total // adapters
        x = normal(rows_total, HIDDEN)
        a = normal(adapters, RANK, HIDDEN, std=0.02)
        b = normal(adapters, HIDDEN, RANK, std=0.02)
        ids = torch.arange(adapters, device="cuda")
        with torch.no_grad():
            base = time_call(lambda: F.linear(x, w), min_time)
            if kind == "bgmv":  # one adapter per row: gather the adapters, two batched products
                def delta():
                    t = torch.bmm(a[ids], x.unsqueeze(2))  # [N, r, 1]
                    return SCALE * torch.bmm(b[ids], t).squeeze(2)
            else:
                def delta():
                    y = torch.empty_like(x)
                    for s in range(adapters):
                        seg = x[s * per:(s + 1) * per]
                        y[s * per:(s + 1) * per] = SCALE * F.linear(F.linear(seg, a[s]), b[s])
                    return y
            d = time_call(delta, min_time)
            row = dict(kind=kind, rows=rows_total, adapters=adapters, base_us=base * 1e6, torch_delta_us=d * 1e6,
                       torch_vs_linear_pct=100 * d / base)
            if have_peft:
                layer = peft_model(adapters).base_model.model.q_proj
                xs = x.view(adapters, per, HIDDEN)  # peft mixes adapters per sample (dim 0)
                names = [f"a{i}" for i in range(adapters)]
                p = time_call(lambda: layer(xs, adapter_names=names), min_time)
                row.update(peft_us=p * 1e6, peft_overhead_pct=100 * (p - base) / base)
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--min-time", type=float, default=0.05, help="seconds of timed calls per row")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("lora_peers: no CUDA device visible to PyTorch; skipped")
        return 0
    try:
        import peft
        peft_version = peft.__version__
    except ImportError:
        peft_version = None
    result = dict(device=torch.cuda.get_device_name(0), torch=torch.__version__, peft=peft_version)
    result["qkvo"] = qkvo(args.min_time, peft_version is not None)
    result["multi"] = multi(args.min_time, peft_version is not None)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"lora_peers: {len(result['qkvo'])} qkvo rows, {len(result['multi'])} multi-adapter rows "
          f"(peft {peft_version}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
