"""The PyTorch peer of `argen bench`: plain PyTorch (eager, CPU) generation on the same weights
and prompts, timed per image, so that `argen bench --peer` can report wall-clock ratios measured
in the same run.

What it runs is what a straightforward PyTorch implementation of LlamaGen sampling does
(tools/llamagen.py: the official architecture and parameter names, a static KV cache):

* vanilla: prefill the condition tokens for the conditional and unconditional rows (one batch of
  2), then one forward per image token with the KV cache; CFG `l_u + s·(l_c − l_u)`, temperature,
  softmax, `torch.multinomial`.
* exact chain γ=4 (only when the model directory has ``drafter.safetensors``): EAGLE-style
  speculative decoding as a plain PyTorch implementation writes it (Li et al., ICML 2024; the
  acceptance rule of Leviathan et al., ICML 2023). Each round feeds the newly committed tokens with
  the target's features to the drafter (KV cache), drafts γ = 4 tokens one by one from the CFG
  drafter distribution q, verifies them in one target pass of γ + 1 inputs (CFG pair, static KV
  cache, positions overwritten on rejection), accepts draft k with probability min(1, p/q), samples
  a rejection from norm(max(0, p − q)) and otherwise a bonus token from p. Same row name as
  argen's ``exact chain γ=4``.

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
    S = m.layers[0].attention.k_cache.shape[2]  # the static cache's length
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


def load_drafter(d, cfg):
    path = os.path.join(d, "drafter.safetensors")
    if not os.path.isfile(path):
        return None
    dr = L.Drafter(cfg, fc_bias=True).eval()
    sd = load_file(path)
    missing, unexpected = dr.load_state_dict(sd, strict=False)
    if "fc.bias" in missing:
        dr = L.Drafter(cfg, fc_bias=False).eval()
        missing, unexpected = dr.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise SystemExit(f"bench_peer: {path} does not match tools/llamagen.py: "
                         f"missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}")
    return dr


def guided(logits, scale, temperature):
    """CFG over the (cond, uncond) rows of (2, V) logits, then the sampling distribution."""
    l = logits[1] + scale * (logits[0] - logits[1])
    if temperature == 0:
        p = torch.zeros_like(l)
        p[torch.argmax(l)] = 1.0
        return p
    return torch.softmax(l / temperature, dim=-1)


def causal(n_q, first, S):
    """(2, 1, n_q, S) mask: query i (at position first + i) sees keys 0 ..= first + i."""
    k = torch.arange(S)[None, :]
    q = first + torch.arange(n_q)[:, None]
    return (k <= q)[None, None].expand(2, 1, n_q, S)


def speculative(m, dr, cfg, cond, scale, temperature, gen, gamma=4):
    """One image by EAGLE chain speculative decoding with exact acceptance; returns the tokens
    and the number of target passes (prefill included)."""
    T, N = cfg.cls_token_num, cfg.block_size
    S = m.layers[0].attention.k_cache.shape[2]  # T + N + gamma + 1 (see main)
    pos = torch.arange(T)
    logits, hid = m.forward_embeddings(cond, m.freqs_cis[pos], mask=causal(T, 0, S), input_pos=pos,
                                       return_hidden=True)
    passes = 1
    out = []
    p = guided(logits[:, -1], scale, temperature)
    out.append(int(torch.multinomial(p, 1, generator=gen)))
    # Tokens committed but not yet fed to the drafter start at position `a`; `feats` holds the
    # target features that predicted them (rows: positions a-1 .. P-1).
    a, feats = T, hid[:, -1:]
    while len(out) < N:
        P = T + len(out) - 1  # position of the last committed token
        new = torch.tensor(out[a - T:], dtype=torch.long)
        x_pos = torch.arange(a, P + 1)
        h = dr(m.tok_embeddings(new[None].expand(2, -1)), feats, m.freqs_cis[x_pos],
               mask=causal(len(x_pos), a, S), input_pos=x_pos)[:, -1:]
        g = min(gamma, N - len(out))  # no drafts past the last image token
        drafts, qs = [], []
        for k in range(g):
            q = guided(m.output(h)[:, -1].float(), scale, temperature)
            d = int(torch.multinomial(q, 1, generator=gen))
            drafts.append(d)
            qs.append(q)
            if k + 1 < g:
                dp = torch.tensor([P + 1 + k])
                h = dr(m.tok_embeddings(torch.tensor([[d], [d]])), h, m.freqs_cis[dp],
                       mask=causal(1, P + 1 + k, S), input_pos=dp)
        inputs = torch.tensor([out[-1]] + drafts, dtype=torch.long)
        v_pos = torch.arange(P, P + g + 1)
        vl, vh = m.forward_embeddings(m.tok_embeddings(inputs[None].expand(2, -1)), m.freqs_cis[v_pos],
                                      mask=causal(g + 1, P, S), input_pos=v_pos, return_hidden=True)
        passes += 1
        accepted, nxt = 0, None
        for k in range(g):
            pk = guided(vl[:, k], scale, temperature)
            d = drafts[k]
            if float(torch.rand((), generator=gen)) * float(qs[k][d]) < float(pk[d]):
                accepted += 1
                continue
            r = torch.clamp(pk - qs[k], min=0)
            nxt = int(torch.multinomial(r / r.sum() if r.sum() > 0 else pk, 1, generator=gen))
            break
        if nxt is None:
            nxt = int(torch.multinomial(guided(vl[:, g], scale, temperature), 1, generator=gen))
        a = P + 1
        feats = vh[:, :accepted + 1]
        out.extend(drafts[:accepted] + [nxt])
    return torch.tensor(out[:N]), passes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.spec) as f:
        spec = json.load(f)
    torch.set_num_threads(int(spec["threads"]))
    cfg, m = load_gpt(spec["model"])
    dr = load_drafter(spec["model"], cfg)
    gamma = 4
    m.setup_caches(2, cfg.cls_token_num + cfg.block_size + gamma + 1)
    if dr is not None:
        dr.setup_caches(2, cfg.cls_token_num + cfg.block_size + gamma + 1)
    scale, temp = float(spec["cfg"]), float(spec["temperature"])
    times, spec_times, spec_passes = [], [], []
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
        if dr is not None:
            speculative(m, dr, cfg, conditions(m, cfg, spec["prompts"][0]), scale, temp,
                        torch.Generator().manual_seed(0), gamma)  # warm-up
            for p in spec["prompts"]:
                for seed in range(int(spec["seeds"])):
                    gen = torch.Generator().manual_seed(seed)
                    t = time.perf_counter()
                    cond = conditions(m, cfg, p)
                    _, passes = speculative(m, dr, cfg, cond, scale, temp, gen, gamma)
                    spec_times.append(time.perf_counter() - t)
                    spec_passes.append(passes)
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
    if spec_times:
        res["results"].append({
            "name": "exact chain γ=4",
            "images": len(spec_times),
            "wall_per_image": sum(spec_times) / len(spec_times),
            "tokens_per_image": cfg.block_size,
            "target_forwards": sum(spec_passes) / len(spec_passes),
        })
    from atomic_io import write_json
    write_json(a.out, res, indent=1)


if __name__ == "__main__":
    main()
