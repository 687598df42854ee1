"""Per-action cost of driving a decoder from Python (``argen.Decoder``: ``poll()`` +
``handle_logits()``) on the work of ``cargo run --release -p argen-ffi --example
decoder_overhead``, whose "core" time per image is the baseline: V = 16384, 256 tokens, two-way
CFG, top-k 1000, vanilla and tree speculative decoding, answered with fixed logits rows.

    python python/bench/decoder_overhead.py     # after `pip install ./python` (needs numpy)

Prints the fastest of nine wall clocks per image and per action.
"""

from __future__ import annotations

import time

import numpy as np

import argen

V = 16384
REPS = 9


def config(method):
    return {
        "base": {"seed": 3, "stream": 0, "seq": 0, "tokens": 256, "width": 16,
                 "sampler": {"temperature": 1.0, "top_k": 1000},
                 "guidance": {"two_way": {"scale": 4.0}}},
        "method": method,
    }


def image(cfg, logits):
    t0 = time.perf_counter()
    dec = argen.Decoder(cfg, V)
    actions = 0
    while True:
        a = dec.poll()
        if a.kind == "done":
            break
        actions += 1
        dec.handle_logits(logits[: a.logits_rows])
    return time.perf_counter() - t0, actions, dec.tokens(0)


def main():
    i = np.arange(64 * V, dtype=np.int64)
    logits = (((i * 7919) % 2003).astype(np.float32) / np.float32(200.0) - np.float32(5.0)).reshape(64, V)
    tree = {"speculative": {"shape": {"tree": {"total": 15, "depth": 4, "top_k": 3}},
                            "criterion": "exact", "draft_sampler": None}}
    for name, method in [("vanilla", "vanilla"), ("tree sd", tree)]:
        times = []
        for _ in range(REPS):
            t, actions, tokens = image(config(method), logits)
            times.append(t)
        med = min(times)
        print(f"{name:8} {actions:4} actions, {len(tokens)} tokens: Python {med * 1e3:8.2f} ms/image"
              f" ({med / actions * 1e6:.1f} µs/action including argen's own work)")


if __name__ == "__main__":
    main()
