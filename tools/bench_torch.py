"""PyTorch eager CPU baseline for docs/runtime-performance.md.

Loads the GPT-B-shaped random checkpoint written by `cargo bench -p argen-cpu --bench decode`
($TMPDIR/argen-bench/gpt-b.safetensors) into tools/llamagen.py's Transformer and measures the
same things: decode step at batch 2 (CFG) with a KV cache, and n query tokens per CFG row.
  python3 tools/bench_torch.py [--threads 2] [--dtype f32|bf16]
"""
import argparse, os, sys, tempfile, time
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llamagen as L
from safetensors.torch import load_file

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--dtype", default="f32")
a = ap.parse_args()
torch.set_num_threads(a.threads)
cfg = L.ModelArgs(**L.GPT_PRESETS["GPT-B"], model_type="c2i", block_size=256)
m = L.Transformer(cfg).eval()
sd = load_file(os.path.join(tempfile.gettempdir(), "argen-bench", "gpt-b.safetensors"))
m.load_state_dict(sd, strict=False)
dt = torch.float32 if a.dtype == "f32" else torch.bfloat16
m = m.to(dt)
S = 1 + 256 + 64
m.setup_caches(2, S, dtype=dt)
with torch.inference_mode():
    cond = m.cond_embeddings(torch.tensor([207, 1000])).to(dt)
    pos = torch.tensor([0])
    mask = torch.zeros(2, 1, 1, S, dtype=torch.bool); mask[..., 0] = True
    m.forward_embeddings(cond, m.freqs_cis[pos].to(dt), mask=mask, input_pos=pos)
    times = []
    for k in range(24):
        p = 1 + k
        x = m.tok_embeddings(torch.tensor([[k * 37 % 16384]] * 2))
        mask = torch.zeros(2, 1, 1, S, dtype=torch.bool); mask[..., : p + 1] = True
        t = time.perf_counter()
        m.forward_embeddings(x, m.freqs_cis[torch.tensor([p])].to(dt), mask=mask, input_pos=torch.tensor([p]))
        times.append(time.perf_counter() - t)
    times = sorted(times[4:])
    print(f"torch {a.dtype} threads={a.threads}: decode step batch 2 median {times[len(times)//2]*1e3:.2f} ms")
    for n in [1, 2, 4, 8, 16, 32, 64]:
        p0 = 25
        idx = torch.arange(p0, p0 + n)
        x = m.tok_embeddings(torch.tensor([[i * 11 % 16384 for i in range(n)]] * 2))
        mask = torch.zeros(2, 1, n, S, dtype=torch.bool)
        for i in range(n):
            mask[..., i, : p0 + i + 1] = True
        best = 1e9
        for _ in range(3):
            t = time.perf_counter()
            m.forward_embeddings(x, m.freqs_cis[idx].to(dt), mask=mask, input_pos=idx)
            best = min(best, time.perf_counter() - t)
        print(f"| {n} | {best*1e3:.2f} ms |")
