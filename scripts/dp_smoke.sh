#!/usr/bin/env bash
# Data-parallel fine-tuning on one device: `lloco finetune` alone, then as two ranks of `lloco launch`
# sharing the device (the socket group; CUDA gradients are staged through host memory), on the tiny
# fixture AutoCompressor. The two adapters must agree within 1e-6 (on a CPU they are bit-identical).
#   bash scripts/dp_smoke.sh LLOCO_BINARY OUT_DIR [DEVICE]     (DEVICE: cpu (default) or cuda:0)
# Run by scripts/gpu_check.sh on the GPU machine; prints one "data-parallel: ..." line, exits non-zero
# when a command fails or the adapters differ.
set -euo pipefail
LLOCO=$1
OUT=$2
DEVICE=${3:-cpu}
F="$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures"
rm -rf "$OUT"
mkdir -p "$OUT"
"$LLOCO" compress --encoder "$F/compress/tiny_ac" --docs "$F/compress/docs_ids.jsonl" --ids-field ids \
  --segment-length 5 --out "$OUT/store" --device "$DEVICE" --quiet
ARGS=(finetune --model "$F/compress/tiny_ac" --store "$OUT/store" --qa "$F/compress/qa_ids.jsonl"
      --prompt-ids-field prompt_ids --answer-ids-field answer_ids --steps 4 --batch-size 1 --grad-accum 2
      --lr 1e-2 --device "$DEVICE" --quiet)
"$LLOCO" "${ARGS[@]}" --out "$OUT/single"
LLOCO_DIST_BACKEND=socket "$LLOCO" launch --nproc 2 --no-bind-devices "${ARGS[@]}" --out "$OUT/dp"
python3 - "$OUT/single/adapter_model.safetensors" "$OUT/dp/adapter_model.safetensors" "$DEVICE" <<'PY'
import json, struct, sys
from array import array

def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{path}: {name} is {info['dtype']}"
        a, b = info["data_offsets"]
        out[name] = array("f", raw[8 + n + a:8 + n + b])
    return out

x, y = tensors(sys.argv[1]), tensors(sys.argv[2])
assert x.keys() == y.keys(), "the adapters hold different tensors"
worst = max((abs(p - q) for k in x for p, q in zip(x[k], y[k])), default=0.0)
print(f"data-parallel on {sys.argv[3]}: {len(x)} LoRA tensors, max |single - 2 ranks| = {worst:.3g}")
sys.exit(0 if worst <= 1e-6 else 1)
PY
