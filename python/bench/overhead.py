"""Per-call cost of the Python binding on one LlamaGen-sized step: process a two-way-CFG row pair
(V = 16384, top-k 1000) and draw one token — the same work as
`cargo run --release -p argen-ffi --example overhead`, whose "core directly" time is the baseline.

    python python/bench/overhead.py          # after `pip install ./python` (needs numpy)

Prints the median time per step over many repetitions, for a NumPy array (DLPack) and, when
torch is importable, a PyTorch tensor.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import argen

V = 16384
REPS = 2000


def bench(logits) -> float:
    s = argen.Sampler(V, 1)
    job = argen.ProcessJob(0, 0, uncond=1, cfg_scale=4.0, top_k=1000)
    keys = [argen.Key(1, 0, argen.PURPOSE_SAMPLE, p) for p in range(REPS)]
    times = []
    for key in keys:
        t0 = time.perf_counter()
        s.process(logits, job)
        s.sample(0, key)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    i = np.arange(2 * V)
    logits = (((i * 7919) % 2003).astype(np.float32) / np.float32(200.0) - np.float32(5.0)).reshape(2, V)
    print(f"step: two-way CFG + top-k 1000 + keyed draw, V = {V}, median of {REPS}")
    print(f"python, numpy array:  {bench(logits) * 1e6:8.2f} us")
    try:
        import torch
    except Exception:
        return
    print(f"python, torch tensor: {bench(torch.from_numpy(logits)) * 1e6:8.2f} us")


if __name__ == "__main__":
    main()
