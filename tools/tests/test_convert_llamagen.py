"""tools/convert_llamagen.py on a VQ state dict laid out exactly like the official LlamaGen VQ
(every encoder, quant_conv, quantize, post_quant_conv and decoder name), then loaded by argen.

Run from the repository root after `cargo build --release -p argen-cli`:

    python3 -m unittest discover -s tools/tests -v

With PyTorch installed (CI) the state dict is the official-architecture `llamagen.VQModel`'s own,
saved with torch.save and converted by the script's command line, and argen's decoded image is
compared with PyTorch's; without it, the hand-written official name list is converted through the
same functions (`dropped`, `vq_config_from_shapes`) and saved with safetensors' numpy API.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_llamagen as C  # noqa: E402

try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False

# A small VQ with the official structure: 2 levels, ch 32, 1 ResNet block per encoder level.
CODEBOOK, EMBED, Z, CH, MULT, RES = 32, 8, 32, 32, [1, 2], 1
TINY = os.path.join(ROOT, "fixtures", "model", "tiny")


def official_vq_shapes():
    """Every tensor of the official VQModel (vq_model.py) for the small config above."""
    s = {}

    def conv(n, cin, cout, k):
        s[n + ".weight"] = (cout, cin, k, k)
        s[n + ".bias"] = (cout,)

    def norm(n, c):
        s[n + ".weight"] = (c,)
        s[n + ".bias"] = (c,)

    def res(n, cin, cout):
        norm(n + ".norm1", cin)
        conv(n + ".conv1", cin, cout, 3)
        norm(n + ".norm2", cout)
        conv(n + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(n + ".nin_shortcut", cin, cout, 1)

    def attn(n, c):
        norm(n + ".norm", c)
        for x in ("q", "k", "v", "proj_out"):
            conv(f"{n}.{x}", c, c, 1)

    nl = len(MULT)
    conv("encoder.conv_in", 3, CH, 3)
    in_mult = [1] + MULT
    for i in range(nl):
        cin, cout = CH * in_mult[i], CH * MULT[i]
        for j in range(RES):
            res(f"encoder.conv_blocks.{i}.res.{j}", cin, cout)
            cin = cout
            if i == nl - 1:
                attn(f"encoder.conv_blocks.{i}.attn.{j}", cin)
        if i != nl - 1:
            conv(f"encoder.conv_blocks.{i}.downsample.conv", cin, cin, 3)
    c = CH * MULT[-1]
    res("encoder.mid.0", c, c)
    attn("encoder.mid.1", c)
    res("encoder.mid.2", c, c)
    norm("encoder.norm_out", c)
    conv("encoder.conv_out", c, Z, 3)
    conv("quant_conv", Z, EMBED, 1)
    s["quantize.embedding.weight"] = (CODEBOOK, EMBED)
    s["quantize.codebook_used"] = (65536,)
    conv("post_quant_conv", EMBED, Z, 1)
    block_in = CH * MULT[-1]
    conv("decoder.conv_in", Z, block_in, 3)
    res("decoder.mid.0", block_in, block_in)
    attn("decoder.mid.1", block_in)
    res("decoder.mid.2", block_in, block_in)
    for i, lvl in enumerate(reversed(range(nl))):
        cout = CH * MULT[lvl]
        for j in range(RES + 1):
            res(f"decoder.conv_blocks.{i}.res.{j}", block_in, cout)
            block_in = cout
            if lvl == nl - 1:
                attn(f"decoder.conv_blocks.{i}.attn.{j}", block_in)
        if lvl != 0:
            conv(f"decoder.conv_blocks.{i}.upsample.conv", block_in, block_in, 3)
    norm("decoder.norm_out", block_in)
    conv("decoder.conv_out", block_in, 3, 3)
    return s


def argen_bin():
    b = os.environ.get("ARGEN_BIN", os.path.join(ROOT, "target", "release", "argen"))
    if not os.path.exists(b):
        raise unittest.SkipTest(f"{b} is missing: build it with cargo build --release -p argen-cli")
    return b


def model_dir(tmp, vq_safetensors, vq_json):
    """A model directory: the tiny GPT (vocabulary 32, 4×4 tokens) and the converted VQ."""
    d = os.path.join(tmp, "model")
    os.makedirs(d)
    for f in ("gpt.json", "gpt.safetensors"):
        shutil.copy(os.path.join(TINY, f), d)
    shutil.copy(vq_safetensors, os.path.join(d, "vq.safetensors"))
    shutil.copy(vq_json, os.path.join(d, "vq.json"))
    return d


def decode(d, tmp, tokens):
    t = os.path.join(tmp, "tokens.json")
    with open(t, "w") as f:
        json.dump(tokens, f)
    out = os.path.join(tmp, "out.png")
    r = subprocess.run([argen_bin(), "decode", "--model", d, "--tokens", t, "--out", out],
                       capture_output=True, text=True)
    return r, out


class ConvertVq(unittest.TestCase):
    def test_name_filter_keeps_post_quant_conv(self):
        self.assertFalse(C.dropped("vq", "post_quant_conv.weight"))
        self.assertFalse(C.dropped("vq", "post_quant_conv.bias"))
        self.assertTrue(C.dropped("vq", "quant_conv.weight"))
        self.assertTrue(C.dropped("vq", "encoder.conv_in.weight"))
        self.assertTrue(C.dropped("vq", "quantize.codebook_used"))
        self.assertFalse(C.dropped("vq", "decoder.conv_in.weight"))
        self.assertFalse(C.dropped("gpt", "quant_conv.weight"))
        self.assertTrue(C.dropped("gpt", "layers.0.attention.kv_cache.k_cache"))

    def test_config_is_read_off_the_shapes(self):
        shapes = {k: v for k, v in official_vq_shapes().items() if not C.dropped("vq", k)}
        cfg = C.vq_config_from_shapes(shapes)
        self.assertEqual((cfg["codebook_size"], cfg["codebook_embed_dim"], cfg["z_channels"],
                          cfg["ch"], cfg["decoder_ch_mult"], cfg["num_res_blocks"]),
                         (CODEBOOK, EMBED, Z, CH, MULT, RES))

    @unittest.skipIf(HAVE_TORCH, "covered by the PyTorch end-to-end test")
    def test_converted_names_load_in_argen(self):
        from safetensors.numpy import save_file
        rng = np.random.default_rng(7)
        shapes = official_vq_shapes()
        kept = {k: (rng.standard_normal(v) * 0.05).astype(np.float32)
                for k, v in shapes.items() if not C.dropped("vq", k)}
        self.assertIn("post_quant_conv.weight", kept)
        self.assertFalse(any(k.startswith(("encoder.", "quant_conv.")) for k in kept))
        with tempfile.TemporaryDirectory() as tmp:
            st, js = os.path.join(tmp, "vq.safetensors"), os.path.join(tmp, "vq.json")
            save_file(kept, st)
            with open(js, "w") as f:
                json.dump(C.vq_config_from_shapes({k: v.shape for k, v in kept.items()}), f)
            r, out = decode(model_dir(tmp, st, js), tmp, list(range(16)))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(open_bytes(out).startswith(b"\x89PNG"))

    @unittest.skipUnless(HAVE_TORCH, "needs PyTorch")
    def test_official_checkpoint_converts_and_matches_pytorch(self):
        import torch
        import llamagen as L
        torch.manual_seed(0)
        vq = L.VQModel(L.VQArgs(codebook_size=CODEBOOK, codebook_embed_dim=EMBED, z_channels=Z, ch=CH,
                                encoder_ch_mult=MULT, decoder_ch_mult=MULT, num_res_blocks=RES)).eval()
        with torch.no_grad():
            for p in vq.parameters():  # GroupNorm affine params are 1/0 at init: randomise all
                p.add_(torch.randn_like(p) * 0.05)
        sd = vq.state_dict()
        # The layout is exactly the hand-written official one (names and shapes).
        self.assertEqual({k: tuple(v.shape) for k, v in sd.items()}, official_vq_shapes())
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = os.path.join(tmp, "vq_ds16_c2i.pt")
            torch.save({"model": sd}, ckpt)
            prefix = os.path.join(tmp, "vq")
            r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_llamagen.py"),
                                "vq", ckpt, prefix], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            # An output path equal to the checkpoint is refused, the checkpoint untouched.
            same = os.path.join(tmp, "same.safetensors")
            shutil.copy(ckpt, same)
            before = open_bytes(same)
            r2 = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_llamagen.py"),
                                 "vq", same, same[:-len(".safetensors")]], capture_output=True, text=True)
            self.assertNotEqual(r2.returncode, 0)
            self.assertIn("is the input", r2.stderr)
            self.assertEqual(open_bytes(same), before)
            tokens = [int(t) for t in torch.randint(0, CODEBOOK, (16,))]
            d = model_dir(tmp, prefix + ".safetensors", prefix + ".json")
            r, out = decode(d, tmp, tokens)
            self.assertEqual(r.returncode, 0, r.stderr)
            with torch.no_grad():
                img = vq.decode_code(torch.tensor(tokens), (1, EMBED, 4, 4))[0]
            want = ((img + 1) * 0.5 * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
            got = png_rgb(out)
            self.assertEqual(got.shape, want.shape)
            self.assertLessEqual(int(np.abs(got.astype(int) - want.astype(int)).max()), 2)


def open_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def png_rgb(path):
    """Decodes an 8-bit RGB PNG written by argen (zlib, filter bytes per row)."""
    import struct
    import zlib
    data = open_bytes(path)
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = 3 * w
    out = np.zeros((h, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        row = np.frombuffer(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)], np.uint8).astype(np.int32)
        cur = np.zeros(stride, np.int32)
        for x in range(stride):
            a = cur[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if f == 0:
                p = 0
            elif f == 1:
                p = a
            elif f == 2:
                p = b
            elif f == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (row[x] + p) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, 3).astype(np.uint8)


if __name__ == "__main__":
    unittest.main()
