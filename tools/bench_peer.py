"""The PyTorch peer of `argen bench`: plain PyTorch (eager, CPU) generation on the same weights
and prompts, timed per image, so that `argen bench --peer` can report wall-clock ratios measured
in the same run.

What it runs is what a straightforward PyTorch implementation of LlamaGen sampling does
(tools/llamagen.py: the official architecture and parameter names, a static KV cache):

* vanilla: prefill the condition tokens for the conditional and unconditional rows (one batch of
  2), then one forward per image token with the KV cache; CFG `l_u + s·(l_c − l_u)`, temperature,
  softmax, `torch.multinomial`.

Timing covers token generation only (the VQ decode is excluded, as in argen's numbers); each image
is timed separately and the mean is reported. One warm-up image is not counted.

Usage (normally through `argen bench --peer`, which writes the spec file):
  python3 tools/bench_peer.py --spec SPEC.json --out RESULT.json
SPEC.json: {"model": DIR, "prompts": [{"class": 3} | {"caption": [T*D floats], "pad": 0}],
            "seeds": N, "threads": T, "cfg": 4.0, "temperature": 1.0}
RESULT.json: {"torch": VERSION, "threads": T, "results": [{"name": "vanilla", "images": K,
              "wall_per_image": SECONDS, "tokens_per_image": TOKENS, "target_forwards": F}]}
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llamagen as L  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def load_gpt(d):
    with open(os.path.join(d, "gpt.json")) as f:
        cfg = L.gpt_config_from_json(json.load(f))
    m = L.Transformer(cfg).eval()
    sd = load_file(os.path.join(d, "gpt.safetensors"))
    missing, unexpected = m.load_state_dict(sd, strict=False)
    # Buffers that are not stored (the null caption of a checkpoint trained without one) are the
    # only acceptable gaps.
    bad = [k for k in missing if not k.endswith("uncond_embedding")]
    if bad or unexpected:
        raise SystemExit(f"bench_peer: {d}/gpt.safetensors does not match tools/llamagen.py: "
                         f"missing {bad[:5]}, unexpected {list(unexpected)[:5]}")
    return cfg, m


def conditions(m, cfg, p):
    """(2, T, dim) condition embeddings: conditional row, then unconditional row."""
    if cfg.model_type == "c2i":
        ids = torch.tensor([int(p["class"]), cfg.num_classes])
        return m.cond_embeddings(ids)
    feat = torch.tensor(p["caption"], dtype=torch.float32).view(1, cfg.cls_token_num, cfg.caption_dim)
    feat = feat.expand(2, -1, -1).contiguous()
    return m.cond_embeddings(feat, force_drop_ids=torch.tensor([0, 1]))


def vanilla(m, cfg, cond, scale, temperature, gen):
    """One image by plain autoregressive sampling with CFG and a KV cache; returns the tokens."""
    T, N = cfg.cls_token_num, cfg.block_size
    S = T + N
    pos = torch.arange(T)
    mask = torch.tril(torch.ones(T, S, dtype=torch.bool), diagonal=0)[None, None].expand(2, 1, T, S)
    logits = m.forward_embeddings(cond, m.freqs_cis[pos], mask=mask, input_pos=pos)[:, -1]
    out = torch.empty(N, dtype=torch.long)
    for i in range(N):
        l = logits[1] + scale * (logits[0] - logits[1])
        if temperature == 0:
            tok = int(torch.argmax(l))
        else:
            probs = torch.softmax(l / temperature, dim=-1)
            tok = int(torch.multinomial(probs, 1, generator=gen))
        out[i] = tok
        if i + 1 == N:
            break
        p = T + i
        x = m.tok_embeddings(torch.tensor([[tok], [tok]]))
        mask = torch.zeros(2, 1, 1, S, dtype=torch.bool)
        mask[..., : p + 1] = True
        logits = m.forward_embeddings(x, m.freqs_cis[torch.tensor([p])], mask=mask,
                                      input_pos=torch.tensor([p]))[:, -1]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.spec) as f:
        spec = json.load(f)
    torch.set_num_threads(int(spec["threads"]))
    cfg, m = load_gpt(spec["model"])
    m.setup_caches(2, cfg.cls_token_num + cfg.block_size)
    scale, temp = float(spec["cfg"]), float(spec["temperature"])
    times = []
    with torch.inference_mode():
        gen = torch.Generator().manual_seed(0)
        vanilla(m, cfg, conditions(m, cfg, spec["prompts"][0]), scale, temp, gen)  # warm-up
        for p in spec["prompts"]:
            for seed in range(int(spec["seeds"])):
                gen = torch.Generator().manual_seed(seed)
                t = time.perf_counter()
                cond = conditions(m, cfg, p)
                vanilla(m, cfg, cond, scale, temp, gen)
                times.append(time.perf_counter() - t)
    res = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "results": [{
            "name": "vanilla",
            "images": len(times),
            "wall_per_image": sum(times) / len(times),
            "tokens_per_image": cfg.block_size,
            "target_forwards": cfg.block_size,
        }],
    }
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
