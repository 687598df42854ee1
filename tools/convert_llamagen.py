"""Convert an official LlamaGen checkpoint (.pt) to safetensors + config JSON, names unchanged.

  python3 tools/convert_llamagen.py gpt c2i_B_256.pt out/gpt --preset GPT-B --model-type c2i \
      --image-size 256 [--dtype bf16]
  python3 tools/convert_llamagen.py vq vq_ds16_c2i.pt out/vq [--dtype f32]

Writes <out>.safetensors and <out>.json (the JSON argen_model::GptConfig / VqConfig read).
The state dict is taken from the "model" key (official checkpoints), else "ema", "module",
"state_dict", else the object itself. Inference-irrelevant buffers are dropped: KV caches
(`*.kv_cache.*`), `freqs_cis`, `causal_mask`, and for the VQ the encoder, `quant_conv` and
`quantize.codebook_used`. Every other name is kept exactly.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llamagen as L  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def state_dict_of(obj):
    if isinstance(obj, dict):
        for k in ("model", "ema", "module", "state_dict"):
            if k in obj and isinstance(obj[k], dict):
                return obj[k]
    return obj


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["gpt", "vq", "drafter"])
    ap.add_argument("checkpoint")
    ap.add_argument("out", help="output path without extension")
    ap.add_argument("--preset", default="GPT-B", choices=sorted(L.GPT_PRESETS))
    ap.add_argument("--model-type", default="c2i", choices=["c2i", "t2i"])
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--downsample", type=int, default=16)
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    a = ap.parse_args()

    sd = state_dict_of(torch.load(a.checkpoint, map_location="cpu", weights_only=False))
    drop = (".kv_cache.", "freqs_cis", "causal_mask")
    if a.kind == "vq":
        drop = drop + ("encoder.", "quant_conv.", "quantize.codebook_used")
    out = {}
    for k, v in sd.items():
        if any(d in k or k.startswith(d) for d in drop):
            continue
        t = v.detach().contiguous()
        if t.is_floating_point():
            t = t.to(DTYPES[a.dtype])
        out[k] = t
    if a.kind in ("gpt", "drafter"):
        grid = a.image_size // a.downsample
        cfg = L.ModelArgs(**L.GPT_PRESETS[a.preset], model_type=a.model_type, num_classes=a.num_classes,
                          block_size=grid * grid, cls_token_num=1 if a.model_type == "c2i" else 120)
        cj = L.gpt_config_to_json(cfg)
        if a.kind == "gpt" and "cls_embedding.embedding_table.weight" in out:
            rows = out["cls_embedding.embedding_table.weight"].shape[0]
            if rows == cfg.num_classes:
                cj["class_dropout_prob"] = 0.0
    else:
        emb = out["quantize.embedding.weight"]
        cfg = L.VQArgs(codebook_size=emb.shape[0], codebook_embed_dim=emb.shape[1])
        cj = L.vq_config_to_json(cfg)
    save_file(out, a.out + ".safetensors")
    with open(a.out + ".json", "w") as f:
        json.dump(cj, f, indent=1, sort_keys=True)
    print(f"wrote {a.out}.safetensors ({len(out)} tensors) and {a.out}.json")


if __name__ == "__main__":
    main()
