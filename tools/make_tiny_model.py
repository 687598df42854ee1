"""A tiny, self-consistent random model directory for end-to-end tests of the `argen` CLI.

Writes fixtures/model/tiny/: gpt.json + gpt.safetensors (c2i, vocab 32, 4x4 token grid),
drafter.safetensors (EAGLE-style), vq.json + vq.safetensors (32 codes, 8x8 px images) — the
layout `argen generate --model DIR` reads. Random weights: the images are noise; the directory
exists to exercise every code path (loading, every decoding method, PNG output).

Usage: python3 tools/make_tiny_model.py [--out fixtures/model/tiny]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llamagen as L  # noqa: E402
from reference import randomize  # noqa: E402


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "model", "tiny"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(7)
    cfg = L.ModelArgs(dim=32, n_layer=2, n_head=2, multiple_of=32, vocab_size=32, num_classes=10,
                      block_size=16, cls_token_num=1, model_type="c2i")
    model = L.Transformer(cfg).eval()
    randomize(model, gen)
    drafter = L.Drafter(cfg, fc_bias=True).eval()
    randomize(drafter, gen)
    vq_cfg = L.VQArgs(codebook_size=32, codebook_embed_dim=8, decoder_ch_mult=[1, 2], encoder_ch_mult=[1, 2],
                      z_channels=32, ch=32, num_res_blocks=1)
    vq = L.VQModel(vq_cfg).eval()
    randomize(vq, gen, std=0.1)
    with torch.no_grad():
        vq.quantize.embedding.weight.copy_(torch.randn(vq.quantize.embedding.weight.shape, generator=gen))
    gj = L.gpt_config_to_json(cfg)
    L.save_model(model, os.path.join(a.out, "gpt.safetensors"), gj, os.path.join(a.out, "gpt.json"),
                 dtype=torch.float16)
    L.save_model(drafter, os.path.join(a.out, "drafter.safetensors"), gj, os.path.join(a.out, "gpt.json"),
                 dtype=torch.float16)
    L.save_model(vq, os.path.join(a.out, "vq.safetensors"), L.vq_config_to_json(vq_cfg),
                 os.path.join(a.out, "vq.json"), dtype=torch.float16,
                 drop_prefixes=("encoder.", "quant_conv.", "quantize.codebook_used"))
    print("wrote", a.out)


if __name__ == "__main__":
    main()
