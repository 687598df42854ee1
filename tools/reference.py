"""Golden reference outputs for argen's Rust model runtime (tiny random configurations).

Writes, under fixtures/model/<case>/:
  gpt.json, gpt.safetensors (f32), gpt.bf16.safetensors, gpt.f16.safetensors
  drafter.safetensors (EAGLE-style drafter), vq.json, vq.safetensors (c2i case only)
  golden.safetensors: inputs and PyTorch outputs (see the keys below)

Usage: python3 tools/reference.py [--out fixtures/model]
The models are tools/llamagen.py's (official LlamaGen architecture and names).
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llamagen as L  # noqa: E402
from safetensors.torch import save_file  # noqa: E402


def randomize(module: torch.nn.Module, gen: torch.Generator, std=0.15):
    """Random weights everywhere (the official init zeroes `output`); norm gains near 1."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm.weight") or ".norm" in name and name.endswith("weight") and p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(std * torch.randn(p.shape, generator=gen))
        for name, b in module.named_buffers():
            if name.endswith("uncond_embedding"):
                b.copy_(torch.randn(b.shape, generator=gen))


def round_to(module, dtype):
    """A copy of module's weights rounded to dtype and back to f32."""
    with torch.no_grad():
        for p in list(module.parameters()) + list(module.buffers()):
            if p.is_floating_point():
                p.copy_(p.to(dtype).to(torch.float32))


def full_mask(S, T, pad):
    """Causal mask over S rows whose first T are condition tokens; keys < pad masked (left
    padding, as the official emb_masks), each row still sees itself."""
    m = torch.tril(torch.ones(S, S, dtype=torch.bool))
    m[:, :pad] = False
    m |= torch.eye(S, dtype=torch.bool)
    return m


def gpt_golden(model: L.Transformer, cfg: L.ModelArgs, gen, batch_cond, pad):
    T = cfg.cls_token_num
    N = cfg.block_size - 1  # image tokens fed (the last one is never an input)
    B = 2
    tokens = torch.randint(0, cfg.vocab_size, (B, N), generator=gen)
    cond = model.cond_embeddings(batch_cond)
    h = torch.cat([cond, model.tok_embeddings(tokens)], dim=1)
    S = T + N
    freqs = model.freqs_cis[:S]
    mask = full_mask(S, T, pad)[None, None].expand(B, 1, S, S)
    logits, hidden = model.forward_embeddings(h, freqs, mask=mask, return_hidden=True)
    return tokens, logits, hidden


def drafter_golden(model: L.Transformer, drafter: L.Drafter, cfg, gen):
    B, N = 2, cfg.block_size - 1
    tokens = torch.randint(0, cfg.vocab_size, (B, N), generator=gen)
    feats = torch.randn(B, N, cfg.dim, generator=gen)
    T = cfg.cls_token_num
    freqs = model.freqs_cis[T:T + N]
    hid = drafter(model.tok_embeddings(tokens), feats, freqs)
    logits = model.output(hid)
    return tokens, feats, hid, logits


def write_case(out, name, cfg: L.ModelArgs, seed, vq_cfg=None, fc_bias=True, pad=0):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = L.Transformer(cfg).eval()
    randomize(model, gen)
    drafter = L.Drafter(cfg, fc_bias=fc_bias).eval()
    randomize(drafter, gen)
    gj = L.gpt_config_to_json(cfg)
    g = {}
    with torch.no_grad():
        if cfg.model_type == "c2i":
            cond = torch.tensor([3, cfg.num_classes])  # a class, then the null class (CFG)
            g["classes"] = cond.to(torch.int64)
        else:
            cap = torch.randn(1, cfg.cls_token_num, cfg.caption_dim, generator=gen)
            cond = torch.cat([cap, model.cls_embedding.uncond_embedding[None]])
            g["caption"] = cap[0].contiguous()
            g["pad"] = torch.tensor([pad], dtype=torch.int64)
        tokens, logits, hidden = gpt_golden(model, cfg, gen, cond, pad)
        g["tokens"] = tokens.to(torch.int64)
        g["logits"] = logits.contiguous()
        g["hidden"] = hidden.contiguous()
        dt, df, dh, dl = drafter_golden(model, drafter, cfg, gen)
        g["draft_tokens"] = dt.to(torch.int64)
        g["draft_features"] = df.contiguous()
        g["draft_hidden"] = dh.contiguous()
        g["draft_logits"] = dl.contiguous()
        for tag, dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
            m2 = L.Transformer(cfg).eval()
            m2.load_state_dict(model.state_dict())
            round_to(m2, dtype)
            _, lg, _ = gpt_golden(m2, cfg, torch.Generator().manual_seed(0), cond, pad)
            # Same tokens as above; the null caption is the rounded model's own.
            T = cfg.cls_token_num
            cond2 = cond
            if cfg.model_type == "t2i":
                cond2 = torch.cat([cond[:1], m2.cls_embedding.uncond_embedding[None]])
            h = torch.cat([m2.cond_embeddings(cond2), m2.tok_embeddings(tokens)], dim=1)
            S = h.shape[1]
            mask = full_mask(S, T, pad)[None, None].expand(2, 1, S, S)
            g[f"logits_{tag}"] = m2.forward_embeddings(h, m2.freqs_cis[:S], mask=mask).contiguous()
    L.save_model(model, os.path.join(d, "gpt.safetensors"), gj, os.path.join(d, "gpt.json"))
    for tag, dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        L.save_model(model, os.path.join(d, f"gpt.{tag}.safetensors"), gj, os.path.join(d, "gpt.json"), dtype=dtype)
    L.save_model(drafter, os.path.join(d, "drafter.safetensors"), gj, os.path.join(d, "gpt.json"))
    if vq_cfg is not None:
        vq = L.VQModel(vq_cfg).eval()
        randomize(vq, gen, std=0.1)
        with torch.no_grad():
            vq.quantize.embedding.weight.copy_(torch.randn(vq.quantize.embedding.weight.shape, generator=gen))
            f = 2 ** (len(vq_cfg.decoder_ch_mult) - 1)
            gh, gw = 3, 4
            codes = torch.randint(0, vq_cfg.codebook_size, (gh * gw,), generator=gen)
            pix = vq.decode_code(codes, shape=(1, vq_cfg.codebook_embed_dim, gh, gw))
        g["vq_codes"] = codes.to(torch.int64)
        g["vq_pixels"] = pix[0].contiguous()
        L.save_model(vq, os.path.join(d, "vq.safetensors"), L.vq_config_to_json(vq_cfg), os.path.join(d, "vq.json"),
                     drop_prefixes=("encoder.", "quant_conv.", "quantize.codebook_used"))
    from atomic_io import Outputs
    with Outputs() as out:
        save_file({k: v.contiguous() for k, v in g.items()}, out.path(os.path.join(d, "golden.safetensors")))
    print("wrote", d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "model"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    # c2i: 3 heads of 16 (odd head count), no GQA, 4x4 grid, class table with a null row.
    c2i = L.ModelArgs(dim=48, n_layer=2, n_head=3, multiple_of=32, vocab_size=64, num_classes=10,
                      block_size=16, cls_token_num=1, model_type="c2i")
    vq = L.VQArgs(codebook_size=32, codebook_embed_dim=8, decoder_ch_mult=[1, 2], encoder_ch_mult=[1, 2],
                  z_channels=32, ch=32, num_res_blocks=1)
    write_case(a.out, "c2i_tiny", c2i, seed=1, vq_cfg=vq)
    # t2i: head_dim 20 (not a power of two), GQA (2 query heads per kv head), ffn multiplier,
    # 6 caption tokens of which 2 are left padding, 3x3 grid.
    t2i = L.ModelArgs(dim=40, n_layer=2, n_head=2, n_kv_head=1, multiple_of=16, ffn_dim_multiplier=1.3,
                      vocab_size=50, caption_dim=12, block_size=9, cls_token_num=6, model_type="t2i")
    write_case(a.out, "t2i_tiny", t2i, seed=2, fc_bias=False, pad=2)


if __name__ == "__main__":
    main()
