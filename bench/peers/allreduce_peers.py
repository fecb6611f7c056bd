#!/usr/bin/env python3
"""PyTorch gloo all_reduce on CPU, the peer of build/bench/collective_bench (same message sizes,
same calls per timed block), for one world size per run:

  .venv/bin/python bench/peers/allreduce_peers.py --world 2 --out allreduce_gloo_w2.json [--trials 3] [--repeats 5]
  build/bench/collective_bench --world 2 --peers allreduce_gloo_w2.json

W processes (torch.multiprocessing spawn) join a gloo group over loopback TCP (file:// rendezvous in
a temp dir, GLOO_SOCKET_IFNAME=lo unless set). For every f32 size from 4 KiB to 64 MiB (x4 steps):
one checked all_reduce(SUM), 3 warm-up calls, then `repeats` blocks of iters(size) calls, each after
a barrier and timed on rank 0; a trial reports the median block, and the best of `trials` trials (a
fresh group each) is written: {"world", "sizes" (bytes), "seconds" (per call), "iters", "torch"}.
"""
import argparse
import json
import os
import queue as queue_module
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

MIN_BYTES, MAX_BYTES = 4 << 10, 64 << 20
WARMUP_CALLS = 3


def message_sizes():
    sizes, b = [], MIN_BYTES
    while b <= MAX_BYTES:
        sizes.append(b)
        b *= 4
    return sizes


def iters_for(nbytes):
    """Calls per timed block: about 256 MiB of payload, 5 to 500 calls (collective_bench's rule)."""
    return max(5, min(500, (256 << 20) // nbytes))


def rank_main(rank, world, init_file, repeats, result_queue):
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=world)
    seconds = []
    for nbytes in message_sizes():
        n = nbytes // 4
        check = torch.full((n,), float(rank + 1), dtype=torch.float32)
        dist.all_reduce(check, op=dist.ReduceOp.SUM)
        expected = world * (world + 1) // 2
        if not bool((check == expected).all()):
            raise RuntimeError(f"all_reduce of {nbytes} bytes: expected every element {expected}")
        t = torch.zeros(n, dtype=torch.float32)
        for _ in range(WARMUP_CALLS):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        iters, blocks = iters_for(nbytes), []
        for _ in range(repeats):
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(iters):
                dist.all_reduce(t, op=dist.ReduceOp.SUM)
            blocks.append((time.perf_counter() - t0) / iters)
        seconds.append(statistics.median_high(blocks))
    dist.barrier()
    if rank == 0:
        result_queue.put(seconds)
    dist.destroy_process_group()


def run_trial(world, repeats):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="allreduce_peers_") as tmp:
        procs = [ctx.Process(target=rank_main, args=(r, world, os.path.join(tmp, "rendezvous"), repeats, queue))
                 for r in range(world)]
        for p in procs:
            p.start()
        seconds, deadline = None, time.monotonic() + 600
        while seconds is None:
            try:
                seconds = queue.get(timeout=1)
            except queue_module.Empty:
                failed = [(r, p.exitcode) for r, p in enumerate(procs) if p.exitcode not in (None, 0)]
                if failed or time.monotonic() > deadline:
                    for p in procs:
                        p.kill()
                    raise RuntimeError(f"ranks failed (rank, exit status): {failed or 'timed out after 600 s'}")
        for p in procs:
            p.join()
        bad = [(r, p.exitcode) for r, p in enumerate(procs) if p.exitcode != 0]
        if bad:
            raise RuntimeError(f"ranks exited with status {bad}")
    return seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if args.world < 2 or args.trials < 1 or args.repeats < 1:
        sys.exit(f"--world must be >= 2 and --trials, --repeats >= 1, got {args.world}, {args.trials}, {args.repeats}")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    trials = [run_trial(args.world, args.repeats) for _ in range(args.trials)]
    best = [min(column) for column in zip(*trials)]
    sizes = message_sizes()
    out = {"world": args.world, "sizes": sizes, "seconds": best, "iters": [iters_for(b) for b in sizes],
           "trials": args.trials, "repeats": args.repeats, "torch": torch.__version__}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    for b, s in zip(sizes, best):
        print(f"W={args.world} {b:>10} B  {s * 1e6:12.1f} us  algbw {b / s / 1e9:6.2f} GB/s")


if __name__ == "__main__":
    main()
