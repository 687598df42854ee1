"""Overhead of the C ABI and of the Python binding as a share of a real image's wall clock:
ShapesWorld, vanilla and tree speculative decoding, argen's CPU model runtime, one thread.

    cargo build --release -p argen-ffi --example model_overhead
    python python/bench/model_overhead.py          # after `pip install ./python`

The Rust example (``crates/argen-ffi/examples/model_overhead.rs``, run here with ``--json``)
measures, per image, the engine's decoding wall clock (model forwards + the decoder driven
directly in Rust) and replays of the decoder on the run's recorded logits rows — driven directly
(the core) and through the C ABI. This script replays the same recorded rows through
``argen.Decoder`` (``poll()`` + ``handle_logits()``, NumPy rows): the forward is the same for every
path, so ``replay − core replay`` is what a binding adds per image. Whole replays on a shared
machine vary by about 10 % with the load, more than the bindings add; so the overhead is taken
from *per-action minima*: each action's poll + answer timed on its own, the fastest of all
repetitions and rounds per action, summed over the image (the Rust example does the same for the
core and the C ABI in lockstep). Rounds alternate the Rust example and the Python replays; whole
replays are the fastest over rounds and repetitions too.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess
import time

import numpy as np

import argen

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "target" / "release" / "examples" / "model_overhead"
MODEL = REPO / "fixtures" / "models" / "shapesworld"
ROUNDS = 3
REPS = 25


def py_replay(config, answers, vocab, per_action):
    """One replay through ``argen.Decoder``; adds each action's seconds (poll + answer;
    construction first) to ``per_action`` as a running minimum. Returns (seconds, tokens)."""
    t0 = time.perf_counter()
    dec = argen.Decoder(config, vocab)
    t1 = time.perf_counter()
    per_action[0] = min(per_action[0], t1 - t0)
    for i, r in enumerate(answers):
        if r.logits is not None:
            # Warm the rows into the cache first: the Rust lockstep's per-action minima are
            # warm too (the second path of each pair finds the rows cached).
            np.add.reduce(r.logits, axis=None)
        ta = time.perf_counter()
        a = dec.poll()
        assert a.kind != "done"
        if r.kind == "logits":
            dec.handle_logits(r.logits)
        elif r.kind == "verdict":
            dec.handle_verdict(r.value)
        elif r.kind == "score":
            dec.handle_score(r.value)
        else:
            dec.handle_reformulated()
        per_action[i + 1] = min(per_action[i + 1], time.perf_counter() - ta)
    assert dec.poll().kind == "done"
    return time.perf_counter() - t0, dec.tokens(dec.result_seq())


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    if not EXAMPLE.is_file():
        raise SystemExit(f"{EXAMPLE} missing: cargo build --release -p argen-ffi --example model_overhead")
    model = argen.Model(MODEL, threads=1)
    best = {}  # (method, prompt, seed) -> {"wall", "actions", "core", "c", "py"}: fastest runs
    recorded = {}
    methods = []
    for _ in range(ROUNDS):
        out = json.loads(subprocess.run([str(EXAMPLE), "--json"], check=True, capture_output=True,
                                        text=True).stdout)
        for m in out:
            if m["method"] not in methods:
                methods.append(m["method"])
            for img in m["images"]:
                key = (m["method"], img["prompt"], img["seed"])
                b = best.setdefault(key, {"actions": img["actions"]})
                for k in ("wall", "core", "c", "lockstep_core", "lockstep_c"):
                    b[k] = min(b.get(k, 1e9), img[k])
                if key not in recorded:
                    config = json.loads(img["config"])
                    g, answers = model.generate_recorded(prompt=img["prompt"], config=config,
                                                         seed=img["seed"])
                    recorded[key] = (config, answers, g.tokens)
                config, answers, tokens = recorded[key]
                per_action = b.setdefault("py_actions", [1e9] * (len(answers) + 1))
                for _ in range(REPS):
                    t, toks = py_replay(config, answers, 512, per_action)
                    assert np.array_equal(toks, tokens), key
                    b["py"] = min(b.get("py", 1e9), t)
                b["lockstep_py"] = sum(per_action)

    def mean(method, k):
        v = [b[k] for (m, _, _), b in best.items() if m == method]
        return sum(v) / len(v)

    print(f"CPU: {cpu_name()}; load average {os.getloadavg()[0]:.2f} (1 min)")
    n = len([k for k in best if k[0] == methods[0]])
    print(f"ShapesWorld, per-image means over {n} images, 1 thread, fastest of {ROUNDS} rounds")
    vanilla_wall = mean(methods[0], "wall")
    print("| path | method | image wall | actions | decoder replay (whole) | per-action minima "
          "| overhead / action | % of this image | % of a vanilla image |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method in methods:
        wall, actions = mean(method, "wall"), mean(method, "actions")
        base = mean(method, "lockstep_core")
        for name, whole, k in (("Rust core", "core", "lockstep_core"), ("C ABI", "c", "lockstep_c"),
                               ("Python", "py", "lockstep_py")):
            t = mean(method, k)
            over = t - base
            print(f"| {name} | {method} | {wall * 1e3:.1f} ms | {actions:.1f} "
                  f"| {mean(method, whole) * 1e3:.3f} ms | {t * 1e3:.3f} ms "
                  f"| {over / actions * 1e6:+.1f} µs "
                  f"| {over / wall * 100:+.3f} % | {over / vanilla_wall * 100:+.3f} % |")

if __name__ == "__main__":
    main()
