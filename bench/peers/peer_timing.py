"""CUDA-event timing shared by the peer benchmark scripts (run beside our Google Benchmarks)."""
import torch


def time_call(fn, min_time, max_calls=5000):
    """Mean seconds per call: 2 warm-up calls, then doubling batches of calls until min_time has
    elapsed (or max_calls were made)."""
    fn()
    fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    calls, elapsed, batch = 0, 0.0, 1
    while elapsed < min_time and calls < max_calls:
        start.record()
        for _ in range(batch):
            fn()
        stop.record()
        stop.synchronize()
        elapsed += start.elapsed_time(stop) * 1e-3
        calls += batch
        batch *= 2
    return elapsed / calls
