"""Convert an official LlamaGen checkpoint (.pt) to safetensors + config JSON, names unchanged.

  python3 tools/convert_llamagen.py gpt c2i_B_256.pt out/gpt --preset GPT-B --model-type c2i \
      --image-size 256 [--dtype bf16]
  python3 tools/convert_llamagen.py vq vq_ds16_c2i.pt out/vq [--dtype f32]

Writes <out>.safetensors and <out>.json (the JSON argen_model::GptConfig / VqConfig read),
atomically: both are written to temporary files beside them and renamed into place only when
both are complete (tools/atomic_io.py); an output path equal to the checkpoint is refused.
The state dict is taken from the "model" key (official checkpoints), else "ema", "module",
"state_dict", else the object itself. Inference-irrelevant buffers are dropped: KV caches
(`*.kv_cache.*`), `freqs_cis`, `causal_mask`, and for the VQ the encoder (`encoder.*`),
`quant_conv.*` (but not `post_quant_conv.*`, which the decoder needs) and
`quantize.codebook_used`. Every other name is kept exactly. The VQ's JSON is read off the
decoder's tensor shapes (codebook, z_channels, ch, decoder_ch_mult, num_res_blocks), so it
always matches the weights.
"""
import argparse
import json
import os
import sys

from functools import reduce
from math import gcd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from atomic_io import OutputError, Outputs  # noqa: E402

DROP_ALWAYS = (".kv_cache.", "freqs_cis", "causal_mask")


def dropped(kind, name):
    """Whether tensor `name` of a `kind` checkpoint is left out of the conversion.

    Prefixes are matched at the start of the name only: `quant_conv.` must not match
    `post_quant_conv.` (the decoder's input projection)."""
    if any(d in name for d in DROP_ALWAYS):
        return True
    if kind == "vq":
        return (name.startswith("encoder.") or name.startswith("quant_conv.")
                or name == "quantize.codebook_used")
    return False


def vq_config_from_shapes(shapes):
    """The VQ JSON for a converted state dict, from its tensor shapes (name -> shape tuple)."""
    n, e = shapes["quantize.embedding.weight"]
    z = shapes["post_quant_conv.weight"][0]
    levels = 0
    while f"decoder.conv_blocks.{levels}.res.0.conv2.weight" in shapes:
        levels += 1
    if levels == 0:
        raise ValueError("no decoder.conv_blocks.*: not a LlamaGen VQ checkpoint")
    res = 0
    while f"decoder.conv_blocks.0.res.{res}.conv2.weight" in shapes:
        res += 1
    # conv_blocks[i] is level levels-1-i (lowest resolution first); its width is ch·mult.
    widths = [shapes[f"decoder.conv_blocks.{levels - 1 - lvl}.res.0.conv2.weight"][0]
              for lvl in range(levels)]
    ch = reduce(gcd, widths)
    mult = [w // ch for w in widths]
    return {"codebook_size": n, "codebook_embed_dim": e, "codebook_l2_norm": True,
            "encoder_ch_mult": mult, "decoder_ch_mult": mult, "z_channels": z, "ch": ch,
            "num_res_blocks": res - 1}

DTYPE_NAMES = ("bf16", "f16", "f32")


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
    ap.add_argument("--preset", default="GPT-B")
    ap.add_argument("--model-type", default="c2i", choices=["c2i", "t2i"])
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--downsample", type=int, default=16)
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--dtype", default="f32", choices=DTYPE_NAMES)
    a = ap.parse_args()
    import torch
    import llamagen as L
    from safetensors.torch import save_file

    if a.preset not in L.GPT_PRESETS:
        sys.exit(f"convert_llamagen.py: error: unknown --preset {a.preset}; "
                 f"choose from {', '.join(sorted(L.GPT_PRESETS))}")
    dtypes = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
    outputs = Outputs(inputs=[a.checkpoint])
    try:
        outputs.check(a.out + ".safetensors", a.out + ".json")
    except OutputError as e:
        sys.exit(f"convert_llamagen.py: error: {e}")
    sd = state_dict_of(torch.load(a.checkpoint, map_location="cpu", weights_only=False))
    out = {}
    for k, v in sd.items():
        if dropped(a.kind, k):
            continue
        t = v.detach().contiguous()
        if t.is_floating_point():
            t = t.to(dtypes[a.dtype])
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
        cj = vq_config_from_shapes({k: tuple(v.shape) for k, v in out.items()})
    with outputs:
        save_file(out, outputs.path(a.out + ".safetensors"))
        outputs.write_text(a.out + ".json", json.dumps(cj, indent=1, sort_keys=True))
    print(f"wrote {a.out}.safetensors ({len(out)} tensors) and {a.out}.json")


if __name__ == "__main__":
    main()
