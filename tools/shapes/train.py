"""Train the ShapesWorld model family on CPU and export it as an argen model directory.

Pipeline (one entry point, a wall-clock budget that scales every stage's steps to fit):

1. ``shapes-export`` (Rust, the single source of truth) writes the training / validation scenes.
2. VQ tokenizer in the LlamaGen VQ architecture: 64x64 px -> 8x8 codes (3 downsamplings),
   l2-normalised codebook of dimension 8 (as VQ-16). Loss: L1 + MSE reconstruction, codebook and
   commitment losses; unused codes are restarted from encoder outputs early in training.
3. The t2i GPT (LlamaGen Transformer, ``cap_proj`` over 36x68 caption features, see
   ``caption_features``) with condition dropout 0.1 for classifier-free guidance.
4. An EAGLE-style drafter (Li et al., ICML 2024) distilled on the frozen target: for image token
   ``c_j`` paired with the target feature that predicted it, predict the target's next feature
   (smooth L1) and its next-token distribution (soft cross-entropy through the target's frozen
   ``output``), with condition-dropped (null caption) batches as well, since CFG runs the drafter
   on both.
5. Export (f16 safetensors + configs, ``neighbours.safetensors``, ``shapes.json``, ``README.md``)
   and validation metrics (losses, code usage, PSNR, drafter top-1 agreement, per-token
   acceptance rate ``sum_x min(p, q)``), plus a few CFG samples as PNG.

Usage:
    python3 tools/shapes/train.py [--smoke] [--out DIR] [--minutes M]

``--smoke`` runs every stage with tiny sizes and steps into a temporary directory (CI).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import llamagen as L  # noqa: E402
from atomic_io import Outputs  # noqa: E402

# ---- the fixed format shared with the Rust CLI -------------------------------------------------
CANVAS = 64
GRID = 8
MAX_WORDS = 36
WORD_DIMS = 32  # one-hot word id (the vocabulary has 30 words; dims 30, 31 unused)
CAPTION_DIM = WORD_DIMS + MAX_WORDS  # 68


def caption_features(ids: torch.Tensor) -> torch.Tensor:
    """Word ids (B, 36), pad 0 -> caption features (B, 36, 68).

    Position i: one-hot word id in dims 0..32, one-hot position in dims 32..68. Pads are encoded
    like words (id 0), so every position has exactly two ones.
    """
    b = ids.shape[0]
    f = torch.zeros(b, MAX_WORDS, CAPTION_DIM)
    f.scatter_(2, ids.long().unsqueeze(-1), 1.0)
    pos = torch.arange(MAX_WORDS)
    f[:, pos, WORD_DIMS + pos] = 1.0
    return f


# ---- small utilities -----------------------------------------------------------------------------
T0 = time.time()


def log(msg: str):
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def write_png(path: str, rgb: np.ndarray):
    """Minimal PNG writer (uint8 H x W x 3)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with Outputs() as out:
        out.write_bytes(path, png)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) in [-1,1] -> (B,H,W,3) uint8, rounding as the Rust decoder does."""
    v = ((x.clamp(-1, 1) + 1) * 0.5 * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    return v.permute(0, 2, 3, 1).numpy()


def grid_image(imgs: np.ndarray, cols: int) -> np.ndarray:
    n, h, w, _ = imgs.shape
    rows = (n + cols - 1) // cols
    out = np.full((rows * (h + 2), cols * (w + 2), 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + 2) + 1:r * (h + 2) + 1 + h, c * (w + 2) + 1:c * (w + 2) + 1 + w] = imgs[i]
    return out


class Schedule:
    """Wall-clock-bounded training: runs until ``budget_s`` or ``max_steps``; cosine learning rate
    over the fraction of the budget used (so the schedule completes whatever the machine speed)."""

    def __init__(self, name, budget_s, max_steps, base_lr, warmup=100, min_frac=0.05):
        self.name, self.budget, self.max_steps = name, budget_s, max_steps
        self.base_lr, self.warmup, self.min_frac = base_lr, warmup, min_frac
        self.t0 = time.time()
        self.step = 0
        self.last_log = 0.0

    def elapsed(self):
        return time.time() - self.t0

    def frac(self):
        return max(self.elapsed() / self.budget, self.step / self.max_steps)

    def done(self):
        return self.step >= self.max_steps or self.elapsed() >= self.budget

    def lr(self):
        w = min(1.0, (self.step + 1) / self.warmup)
        c = 0.5 * (1 + math.cos(math.pi * min(1.0, self.frac())))
        return self.base_lr * w * (self.min_frac + (1 - self.min_frac) * c)

    def set_lr(self, opt):
        lr = self.lr()
        for g in opt.param_groups:
            g["lr"] = lr
        return lr

    def maybe_log(self, msg, every_s=20.0, force=False):
        if force or self.elapsed() - self.last_log >= every_s:
            self.last_log = self.elapsed()
            log(f"{self.name} step {self.step} {msg} elapsed {self.elapsed():.0f}s/{self.budget:.0f}s")


# ---- stage 1: data ---------------------------------------------------------------------------------
def build_binaries():
    """Builds shapes-export, shapes-scorer-eval and argen once (same feature set, so no rebuild between them)."""
    cmd = ["cargo", "build", "--quiet", "--release", "--bin", "shapes-export", "--bin", "shapes-scorer-eval",
           "--bin", "argen"]
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True)


def binary(name):
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", name)


def export_split(work, split, count):
    out = os.path.join(work, split)
    if os.path.isfile(os.path.join(out, "meta.json")):
        meta = json.load(open(os.path.join(out, "meta.json")))
        if meta.get("count") == count:
            return out
    cmd = [binary("shapes-export"), "--out", out, "--count", str(count), "--split", split]
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True)
    return out


def load_split(d):
    images = np.load(os.path.join(d, "images.npy"))
    ids = np.load(os.path.join(d, "prompt_ids.npy"))
    prompts = open(os.path.join(d, "prompts.txt")).read().splitlines()
    vocab = open(os.path.join(d, "vocab.txt")).read().splitlines()
    assert images.shape[1:] == (CANVAS, CANVAS, 3), images.shape
    assert ids.shape[1] == MAX_WORDS, ids.shape
    assert len(vocab) <= WORD_DIMS, len(vocab)
    return images, ids, prompts, vocab


def to_pixels(images_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images_u8).permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ---- stage 2: VQ -----------------------------------------------------------------------------------
class PatchEncoder(torch.nn.Module):
    """A cheap training-only encoder (64x64 px -> 8x8 x z_channels): three stride-2 4x4 convs and a
    3x3 conv. The runtime never sees the encoder (the export keeps the decoder, ``post_quant_conv``
    and the codebook), so it need not be LlamaGen's; LlamaGen's full-resolution encoder costs
    more than the decoder and this machine cannot afford it."""

    def __init__(self, z_channels: int, width: int = 64):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 4, 2, 1), torch.nn.SiLU(),
            torch.nn.Conv2d(width, 2 * width, 4, 2, 1), torch.nn.SiLU(),
            torch.nn.Conv2d(2 * width, 2 * width, 4, 2, 1), torch.nn.SiLU(),
            torch.nn.Conv2d(2 * width, 2 * width, 3, 1, 1), torch.nn.SiLU(),
            torch.nn.Conv2d(2 * width, z_channels, 1),
        )

    def forward(self, x):
        return self.net(x)


def object_weights(x, fg_weight):
    """Per-pixel loss weights ``1 + fg_weight`` on objects and their edges, 1 on the background:
    ShapesWorld objects are saturated and the background nearly grey, so a pixel is object when
    its chroma ``max(r,g,b) - min(r,g,b)`` is at least 48/255 (the scorer segments at 64/255),
    dilated by 2 px to cover the blurred edges. The scorer reads shapes from those edges; the
    textured background only has to stay grey and noisy. Normalised to mean 1 per image."""
    chroma = x.amax(dim=1, keepdim=True) - x.amin(dim=1, keepdim=True)  # in [-1, 1] units: x2
    fg = (chroma >= 2 * 48 / 255).float()
    fg = F.max_pool2d(fg, 5, stride=1, padding=2)
    w = 1.0 + fg_weight * fg
    return w / w.mean(dim=(2, 3), keepdim=True)


def rec_loss(rec, x, w):
    d = rec - x
    return (w * (d.abs() + d * d)).mean()


def train_vq(cfg: L.VQArgs, images, val_images, sched: Schedule, batch, gen, restart_frac=0.6, crop_frac=0.0,
             ae_frac=0.3, fg_weight=0.0, dec_frac=0.0, dec_lr=0.5):
    """Random 32x32 crops (aligned to the 8 px code grid, 4x cheaper) in batches of ``batch`` for
    the first ``crop_frac`` of the budget, whole 64x64 images in batches of ``batch // 2`` after
    (the attention blocks then see the full 8x8 grid). The reconstruction loss (L1 + L2) weighs
    object pixels ``1 + fg_weight`` times the background (:func:`object_weights`). The last
    ``dec_frac`` of the budget trains the decoder alone (encoder and codebook frozen, so the
    tokens keep their meaning) with its own cosine schedule from ``dec_lr`` times the peak rate."""
    vq = L.VQModel(cfg)
    vq.encoder = PatchEncoder(cfg.z_channels)
    opt = torch.optim.Adam(vq.parameters(), lr=sched.base_lr, betas=(0.9, 0.99))
    n = images.shape[0]
    usage = torch.zeros(cfg.codebook_size)
    hist = []
    last_used = 0
    pool, seeded = [], False
    vq.train()
    dec_from = 1.0 - dec_frac
    while not sched.done():
        lr = sched.set_lr(opt)
        dec_only = sched.frac() >= dec_from and dec_frac > 0
        if dec_only:
            u = min(1.0, (sched.frac() - dec_from) / dec_frac)
            lr = sched.base_lr * dec_lr * (sched.min_frac + (1 - sched.min_frac) * 0.5 * (1 + math.cos(math.pi * u)))
            for g in opt.param_groups:
                g["lr"] = lr
        crop = sched.frac() < crop_frac
        sel = torch.randint(0, n, (batch if crop else max(1, batch // 2),), generator=gen)
        x = to_pixels(images[sel.numpy()])
        if crop:
            oy, ox = (8 * torch.randint(0, 5, (2,), generator=gen)).tolist()
            x = x[:, :, oy:oy + 32, ox:ox + 32]
        w = object_weights(x, fg_weight)
        if dec_only:
            with torch.no_grad():
                zq, _, idx = vq.quantize(vq.quant_conv(vq.encoder(x)))
            rec = vq.decode(zq)
            l_rec = rec_loss(rec, x, w)
            loss = l_rec
            l_vq = l_commit = torch.zeros(())
        elif sched.frac() < ae_frac:
            h = vq.quant_conv(vq.encoder(x))
            # Warm-up as a plain autoencoder on the l2-normalised latent (no quantisation).
            rec = vq.decode(F.normalize(h, dim=1))
            l_rec = rec_loss(rec, x, w)
            loss = l_rec
            l_vq = l_commit = torch.zeros(())
            idx = torch.zeros(0, dtype=torch.long)
            pool.append(F.normalize(h.detach(), dim=1).permute(0, 2, 3, 1).reshape(-1, cfg.codebook_embed_dim))
            pool = pool[-8:]
        else:
            if not seeded:
                # Seed the codebook with encoder outputs of the last warm-up batches.
                seeded = True
                z = torch.cat(pool)
                pick = torch.randperm(z.shape[0], generator=gen)[:cfg.codebook_size]
                if len(pick) < cfg.codebook_size:
                    pick = torch.randint(0, z.shape[0], (cfg.codebook_size,), generator=gen)
                with torch.no_grad():
                    vq.quantize.embedding.weight.data.copy_(
                        z[pick] + 0.01 * torch.randn(cfg.codebook_size, z.shape[1], generator=gen))
                usage.zero_()
                log(f"vq: codebook seeded from {z.shape[0]} encoder outputs at step {sched.step}")
            h = vq.quant_conv(vq.encoder(x))
            zq, (l_vq, l_commit), idx = vq.quantize(h)
            rec = vq.decode(zq)
            l_rec = rec_loss(rec, x, w)
            loss = l_rec + l_vq + l_commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        usage += torch.bincount(idx, minlength=cfg.codebook_size).float()
        sched.step += 1
        # Restart codes unused in the last window from random encoder outputs of this batch.
        if sched.step % 25 == 0:
            last_used = int((usage > 0).sum())
        if sched.step % 25 == 0 and seeded and not dec_only and sched.frac() < restart_frac:
            dead = (usage == 0).nonzero().flatten()
            if len(dead) > 0:
                with torch.no_grad():
                    z = F.normalize(h.detach().permute(0, 2, 3, 1).reshape(-1, cfg.codebook_embed_dim), dim=-1)
                    pick = torch.randint(0, z.shape[0], (len(dead),), generator=gen)
                    vq.quantize.embedding.weight.data[dead] = z[pick] + 0.01 * torch.randn(len(dead), z.shape[1], generator=gen)
            usage.zero_()
        hist.append(l_rec.item())
        sched.maybe_log(f"rec {np.mean(hist[-20:]):.4f} vq {l_vq.item():.4f} commit {l_commit.item():.4f} "
                        f"codes/25 steps {last_used} lr {lr:.2e}")
    sched.maybe_log(f"rec {np.mean(hist[-20:]):.4f} (done)", force=True)
    vq.eval()
    return vq, float(np.mean(hist[-50:]))


@torch.no_grad()
def vq_encode(vq, images, batch=256):
    out = []
    for i in range(0, images.shape[0], batch):
        _, _, idx = vq.encode(to_pixels(images[i:i + batch]))
        out.append(idx.view(-1, GRID * GRID))
    return torch.cat(out).to(torch.int64)


@torch.no_grad()
def vq_decode(vq, codes):
    b = codes.shape[0]
    return vq.decode_code(codes.reshape(-1), shape=(b, vq.config.codebook_embed_dim, GRID, GRID))


@torch.no_grad()
def vq_eval(vq, val_images, codes_val):
    rec = vq_decode(vq, codes_val)
    x = to_pixels(val_images)
    mse = F.mse_loss(rec.clamp(-1, 1), x).item()
    psnr = 10 * math.log10(4.0 / mse)
    used = int(torch.unique(codes_val).numel())
    return {"val_mse": mse, "val_psnr_db": psnr, "val_codes_used": used}


# ---- stage 3: GPT ----------------------------------------------------------------------------------
def vq_scorer_eval(vq, work, count):
    """Scorer accuracy on the VQ's reconstructions of ``count`` held-out (test split) scenes:
    writes ``work/vq_recon_test/{i:06}.png`` and runs ``shapes-scorer-eval --images`` on them
    (and on the clean renders of the same scenes, for reference). Returns both reports."""
    d = export_split(work, "test", count)
    images = np.load(os.path.join(d, "images.npy"))
    rec_dir = os.path.join(work, "vq_recon_test")
    os.makedirs(rec_dir, exist_ok=True)
    for i in range(0, images.shape[0], 256):
        codes = vq_encode(vq, images[i:i + 256])
        for j, img in enumerate(to_uint8(vq_decode(vq, codes))):
            write_png(os.path.join(rec_dir, f"{i + j:06d}.png"), img)
    out = {"scenes": count}
    for name, extra in (("clean", []), ("vq_recon", ["--images", rec_dir])):
        js = os.path.join(work, f"scorer_{name}.json")
        cmd = [binary("shapes-scorer-eval"), "--scenes", str(count), "--split", "test", "--json", js] + extra
        log("$ " + " ".join(cmd))
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        out[name] = json.load(open(js))
    return out


def param_groups(model, wd):
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def gpt_val_loss(model, codes, ids, batch=128, drop=False):
    model.eval()
    tot, cnt = 0.0, 0
    for i in range(0, codes.shape[0], batch):
        c = codes[i:i + batch]
        f = caption_features(ids[i:i + batch])
        cond = model.cond_embeddings(f, force_drop_ids=torch.full((c.shape[0],), int(drop)))
        h = torch.cat([cond, model.tok_embeddings(c[:, :-1])], dim=1)
        logits = model.forward_embeddings(h, model.freqs_cis[:h.shape[1]])[:, model.cls_token_num - 1:]
        tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), c.reshape(-1), reduction="sum").item()
        cnt += c.numel()
    return tot / cnt


def train_gpt(cfg: L.ModelArgs, codes, ids, codes_val, ids_val, sched: Schedule, batch, gen):
    model = L.Transformer(cfg)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=sched.base_lr, betas=(0.9, 0.95))
    n = codes.shape[0]
    hist, val_hist = [], []
    next_val = 0.25
    model.train()
    while not sched.done():
        lr = sched.set_lr(opt)
        sel = torch.randint(0, n, (batch,), generator=gen)
        c = codes[sel]
        _, loss = model(c[:, :-1], caption_features(ids[sel]), targets=c)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step += 1
        hist.append(loss.item())
        if sched.frac() >= next_val:
            next_val += 0.25
            v = gpt_val_loss(model, codes_val[:256], ids_val[:256])
            val_hist.append((sched.step, v))
            log(f"gpt step {sched.step} val loss {v:.4f}")
            model.train()
        sched.maybe_log(f"loss {np.mean(hist[-20:]):.4f} lr {lr:.2e}")
    sched.maybe_log(f"loss {np.mean(hist[-50:]):.4f} (done)", force=True)
    model.eval()
    return model, float(np.mean(hist[-50:])), val_hist


# ---- stage 4: drafter ------------------------------------------------------------------------------
def target_pass(model, c, f, drop):
    """Teacher-forced target run; returns (logits (B,S,V), hidden (B,S,dim)) over [cond; c[:, :-1]]."""
    cond = model.cond_embeddings(f, force_drop_ids=drop.long())
    h = torch.cat([cond, model.tok_embeddings(c[:, :-1])], dim=1)
    return model.forward_embeddings(h, model.freqs_cis[:h.shape[1]], return_hidden=True)


def drafter_io(model, drafter, c, logits, hidden, noise=0.0, gen=None):
    """EAGLE pairing: token c_j (j = 0..N-2) with the target feature that predicted it (hidden at
    sequence position T-1+j), at the target's RoPE position T+j; the drafter's output at j should
    be the target's feature at c_j (position T+j) and give the target's distribution of c_{j+1}."""
    T = model.cls_token_num
    n = c.shape[1] - 1
    feat_in = hidden[:, T - 1:T - 1 + n]
    if noise > 0:
        feat_in = feat_in + noise * (2 * torch.rand(feat_in.shape, generator=gen) - 1)
    out = drafter(model.tok_embeddings(c[:, :n]), feat_in, model.freqs_cis[T:T + n])
    dl = model.output(out).float()
    return out, dl, hidden[:, T:T + n], logits[:, T:T + n]


def train_drafter(model, cfg, codes, ids, sched: Schedule, batch, gen, w_cls=0.5, drop_p=0.1):
    for p in model.parameters():
        p.requires_grad_(False)
    dcfg = L.ModelArgs(**{**cfg.__dict__})
    drafter = L.Drafter(dcfg, fc_bias=True)
    # Start the drafter's block from the target's last block (a better start than random).
    drafter.layers[0].load_state_dict(model.layers[-1].state_dict())
    opt = torch.optim.AdamW(param_groups(drafter, 0.0), lr=sched.base_lr, betas=(0.9, 0.95))
    n = codes.shape[0]
    hist, agree = [], []
    drafter.train()
    while not sched.done():
        lr = sched.set_lr(opt)
        sel = torch.randint(0, n, (batch,), generator=gen)
        c = codes[sel]
        drop = torch.rand(batch, generator=gen) < drop_p
        with torch.no_grad():
            logits, hidden = target_pass(model, c, caption_features(ids[sel]), drop)
        out, dl, feat_t, logit_t = drafter_io(model, drafter, c, logits, hidden, noise=0.05, gen=gen)
        l_feat = F.smooth_l1_loss(out, feat_t)
        l_cls = -(torch.softmax(logit_t, -1) * torch.log_softmax(dl, -1)).sum(-1).mean()
        loss = l_feat + w_cls * l_cls
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(drafter.parameters(), 1.0)
        opt.step()
        sched.step += 1
        hist.append((l_feat.item(), l_cls.item()))
        agree.append((dl.argmax(-1) == logit_t.argmax(-1)).float().mean().item())
        h = np.mean(hist[-20:], axis=0)
        sched.maybe_log(f"feat {h[0]:.4f} cls {h[1]:.4f} top1 {np.mean(agree[-20:]):.3f} lr {lr:.2e}")
    h = np.mean(hist[-50:], axis=0)
    sched.maybe_log(f"feat {h[0]:.4f} cls {h[1]:.4f} (done)", force=True)
    drafter.eval()
    return drafter, {"train_feat_loss": float(h[0]), "train_cls_loss": float(h[1])}


@torch.no_grad()
def drafter_eval(model, drafter, codes, ids, batch=128):
    """Teacher-forced top-1 agreement and per-token acceptance alpha = sum_x min(p(x), q(x)) at
    temperature 1, without and with the null caption."""
    res = {}
    for name, drop in (("cond", False), ("uncond", True)):
        ag, al, cnt = 0.0, 0.0, 0
        for i in range(0, codes.shape[0], batch):
            c = codes[i:i + batch]
            d = torch.full((c.shape[0],), drop)
            logits, hidden = target_pass(model, c, caption_features(ids[i:i + batch]), d)
            _, dl, _, lt = drafter_io(model, drafter, c, logits, hidden)
            ag += (dl.argmax(-1) == lt.argmax(-1)).float().sum().item()
            al += torch.minimum(torch.softmax(dl, -1), torch.softmax(lt, -1)).sum(-1).sum().item()
            cnt += dl.shape[0] * dl.shape[1]
        res[f"top1_agreement_{name}"] = ag / cnt
        res[f"acceptance_alpha_{name}"] = al / cnt
    return res


# ---- sampling (Python check, CFG) ---------------------------------------------------------------
@torch.no_grad()
def sample(model, ids, cfg_scale=4.0, temperature=1.0, gen=None):
    b = ids.shape[0]
    f = caption_features(ids)
    cond = torch.cat([model.cond_embeddings(f, force_drop_ids=torch.zeros(b)),
                      model.cond_embeddings(f, force_drop_ids=torch.ones(b))])
    toks = torch.zeros(b, 0, dtype=torch.long)
    for _ in range(GRID * GRID):
        t2 = torch.cat([toks, toks])
        h = torch.cat([cond, model.tok_embeddings(t2)], dim=1)
        lg = model.forward_embeddings(h, model.freqs_cis[:h.shape[1]])[:, -1]
        lc, lu = lg[:b], lg[b:]
        lg = lu + cfg_scale * (lc - lu)
        p = torch.softmax(lg / temperature, -1)
        nxt = torch.multinomial(p, 1, generator=gen)
        toks = torch.cat([toks, nxt], dim=1)
    return toks


# ---- export ----------------------------------------------------------------------------------------
def neighbour_table(codebook_f16: torch.Tensor, k: int) -> np.ndarray:
    """As argen_core::accept::neighbours::build_table over the runtime's codebook: f16 weights ->
    f32, rows l2-normalised in f32 (sequential sum), squared distances in f64 summed in index
    order, k nearest other codes, ties by smaller id."""
    w = codebook_f16.to(torch.float32).numpy()
    v, e = w.shape
    acc = np.zeros(v, np.float32)
    for j in range(e):
        acc = (acc + w[:, j] * w[:, j]).astype(np.float32)
    nrm = np.maximum(np.sqrt(acc, dtype=np.float32), np.float32(1e-12))
    cb = (w / nrm[:, None]).astype(np.float32).astype(np.float64)
    d = np.zeros((v, v), np.float64)
    for j in range(e):
        diff = cb[:, None, j] - cb[None, :, j]
        d += diff * diff
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")  # stable: equal distances keep id order
    return order[:, :k].astype(np.int32)


def export_dir(out, model, cfg, drafter, vq, vq_cfg, vocab, card: str, metrics: dict):
    from safetensors.torch import save_file

    os.makedirs(out, exist_ok=True)
    gj = L.gpt_config_to_json(cfg)
    # Every file of the model directory appears only when all of them are complete.
    with Outputs() as o:
        L.save_model(model, os.path.join(out, "gpt.safetensors"), gj, os.path.join(out, "gpt.json"),
                     dtype=torch.float16, outputs=o)
        L.save_model(drafter, os.path.join(out, "drafter.safetensors"), gj, None,
                     dtype=torch.float16, outputs=o)
        L.save_model(vq, os.path.join(out, "vq.safetensors"), L.vq_config_to_json(vq_cfg),
                     os.path.join(out, "vq.json"), dtype=torch.float16,
                     drop_prefixes=("encoder.", "quant_conv.", "quantize.codebook_used"), outputs=o)
        v = vq_cfg.codebook_size
        k = min(1000, v - 1)
        table = neighbour_table(vq.quantize.embedding.weight.detach().to(torch.float16), k)
        save_file({"neighbours": torch.from_numpy(table).contiguous()},
                  o.path(os.path.join(out, "neighbours.safetensors")))
        o.write_text(os.path.join(out, "shapes.json"),
                     json.dumps({"canvas": CANVAS, "grid": GRID, "caption_dim": CAPTION_DIM,
                                 "max_words": MAX_WORDS, "vocab": vocab}, indent=1))
        o.write_text(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=1, sort_keys=True))
        o.write_text(os.path.join(out, "README.md"), card)


def model_card(m: dict) -> str:
    s = m["sizes"]
    lines = [
        "# ShapesWorld model family (argen fixture)",
        "",
        "Trained from scratch on CPU by `tools/shapes/train.py` on scenes exported by the Rust",
        "ShapesWorld generator (`shapes-export`, seeds of the train split; validation from the val split).",
        "Layout as any argen model directory: `gpt.json`/`gpt.safetensors` (t2i LlamaGen GPT),",
        "`drafter.safetensors` (EAGLE-style drafter), `vq.json`/`vq.safetensors` (VQ decoder, l2-normalised",
        "codebook), `neighbours.safetensors` (`neighbours`: int32 [codebook_size, k], the k nearest other",
        "codes of the l2-normalised f16 codebook by L2 distance, ties by id), `shapes.json`, `metrics.json`.",
        "",
        "## Conditioning (fixed format)",
        "",
        f"Canvas {CANVAS}x{CANVAS} px, {GRID}x{GRID} = {GRID * GRID} image tokens. A prompt is encoded with",
        "`argen_shapes::vocab::encode` (36 word ids, pad 0). Caption position i gets a 68-dim feature:",
        "one-hot word id in dims 0..32 and one-hot position in dims 32..68 (cls_token_num 36, caption_dim 68,",
        "no left padding). Null caption for CFG: the stored `uncond_embedding` (condition dropout 0.1).",
        "",
        "## Sizes",
        "",
        f"- VQ: ch {s['vq']['ch']}, ch_mult {s['vq']['ch_mult']}, num_res_blocks {s['vq']['num_res_blocks']},"
        f" z_channels {s['vq']['z_channels']}, codebook {s['vq']['codebook_size']} x {s['vq']['codebook_embed_dim']}"
        f" ({s['vq']['params'] / 1e6:.2f} M parameters, decoder {s['vq']['decoder_params'] / 1e6:.2f} M)",
        f"- GPT: dim {s['gpt']['dim']}, {s['gpt']['n_layer']} layers, {s['gpt']['n_head']} heads,"
        f" vocab {s['gpt']['vocab_size']} ({s['gpt']['params'] / 1e6:.2f} M parameters)",
        f"- Drafter: 1 block + fc ({s['drafter']['params'] / 1e6:.2f} M parameters; shares the target's"
        " embeddings and output head)",
        "",
        "## Training",
        "",
        f"- Data: {m['data']['train_count']} training scenes, {m['data']['val_count']} validation scenes.",
    ]
    for st in ("vq", "gpt", "drafter"):
        t = m["training"][st]
        extra = ""
        if st == "vq" and "fg_weight" in t:
            extra = (f" (32x32 crops for the first {t['crop_frac']:.0%}; object pixels weighted"
                     f" {1 + t['fg_weight']:g}x; last {t['dec_frac']:.0%} decoder only, codebook frozen)")
        lines.append(f"- {st}: {t['steps']} steps, batch {t['batch']}, peak lr {t['lr']}, {t['seconds']:.0f} s{extra}")
    lines += [
        f"- Seed {m['seed']}; wall time {m['wall_s'] / 60:.1f} min on {m['hardware']}.",
        "",
        "## Results (validation)",
        "",
        f"- VQ: reconstruction PSNR {m['vq']['val_psnr_db']:.2f} dB (MSE {m['vq']['val_mse']:.5f} on [-1,1]),"
        f" {m['vq']['val_codes_used']} distinct codes in the validation tokens; final train rec loss"
        f" {m['vq']['train_rec_loss']:.4f}.",
        f"- GPT: train loss {m['gpt']['train_loss']:.4f}, validation loss {m['gpt']['val_loss_cond']:.4f}"
        f" (null caption: {m['gpt']['val_loss_uncond']:.4f}) nats/token.",
        f"- Drafter (teacher-forced, temperature 1, no CFG): top-1 agreement with the target"
        f" {m['drafter']['top1_agreement_cond']:.3f} (null caption {m['drafter']['top1_agreement_uncond']:.3f}),"
        f" per-token acceptance alpha = sum min(p, q) {m['drafter']['acceptance_alpha_cond']:.3f}"
        f" ({m['drafter']['acceptance_alpha_uncond']:.3f}).",
        "",
    ]
    sc = m["vq"].get("scorer")
    if sc:
        n = sc["vq_recon"]["prompts"]
        lines += [
            "",
            f"### Scorer accuracy against the ground truth ({sc.get('scenes', 1000)} held-out test scenes,"
            f" {n} test prompts)",
            "",
            f"`shapes-scorer-eval --scenes {sc.get('scenes', 1000)} --split test [--images DIR]`: the scorer's"
            " verdicts on true and",
            "corrupted prompts compared with the oracle, on the clean renders and on this VQ's reconstructions",
            "of the same scenes (encode + decode), full canvases per category and partial canvases (top 16 / 32",
            "/ 48 of 64 pixel rows known: possible / impossible).",
            "",
            "| images | objects | count | shape | colour | spatial | layout | partial 16 | partial 32 | partial 48 |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, label in (("clean", "renders"), ("vq_recon", "VQ reconstructions")):
            r = sc[name]
            cells = [f"{100 * r['objects']['accuracy']:.2f}%"]
            cells += [f"{100 * r['categories'][c]['accuracy']:.2f}%"
                      for c in ("count", "shape", "colour", "spatial", "layout")]
            cells += [f"{100 * r['partial'][k]['all']['accuracy']:.2f}%" for k in ("16", "32", "48")]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Prompt alignment per category, valid-scene rate and the drafter's mean accepted length under",
        "Exact acceptance on 200 held-out prompts: `tools/shapes/evaluate.sh` (Rust CLI).",
        "",
        "## Command",
        "",
        "```",
        m["command"],
        "```",
        "",
    ]
    return "\n".join(lines)


def nparams(m):
    return sum(p.numel() for p in m.parameters())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and steps, temp output (CI)")
    ap.add_argument("--out", default=None, help="model directory (default fixtures/models/shapesworld)")
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget (default 80; smoke 2)")
    ap.add_argument("--work", default=None, help="scratch directory for data (default a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-rust-check", action="store_true", help="skip loading the export with `argen generate`")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    smoke = a.smoke
    minutes = a.minutes if a.minutes is not None else (2.0 if smoke else 80.0)
    budget = minutes * 60.0
    tmp = tempfile.mkdtemp(prefix="shapes-train-")
    work = a.work or os.path.join(tmp, "data")
    out = a.out or (os.path.join(tmp, "model") if smoke else os.path.join(ROOT, "fixtures", "models", "shapesworld"))
    log(f"budget {minutes:.1f} min, work {work}, out {out}, threads {a.threads}")

    if smoke:
        n_train, n_val = 512, 64
        vq_cfg = L.VQArgs(codebook_size=64, codebook_embed_dim=8, encoder_ch_mult=[1, 1, 2, 2],
                          decoder_ch_mult=[1, 1, 2, 2], z_channels=32, ch=32, num_res_blocks=1)
        gpt_kw = dict(dim=64, n_layer=2, n_head=2)
        steps = dict(vq=15, gpt=20, drafter=15)
        batch = dict(vq=8, gpt=16, drafter=16)
    else:
        n_train, n_val = 60000, 512
        vq_cfg = L.VQArgs(codebook_size=512, codebook_embed_dim=8, encoder_ch_mult=[1, 1, 2, 2],
                          decoder_ch_mult=[1, 1, 2, 2], z_channels=64, ch=32, num_res_blocks=1)
        gpt_kw = dict(dim=128, n_layer=6, n_head=4)
        steps = dict(vq=10 ** 9, gpt=10 ** 9, drafter=10 ** 9)
        batch = dict(vq=16, gpt=32, drafter=32)  # vq: 8 whole images per step (batch // 2)
    lrs = dict(vq=1e-3, gpt=2e-3, drafter=1e-3)
    # Shares of the remaining budget for each timed stage (tokenising and export are untimed).
    shares = dict(vq=0.30, gpt=0.55, drafter=0.11)
    reserve = 0.05 * budget  # evaluation, sampling and export

    def stage_budget(name):
        left = budget - (time.time() - T0) - reserve
        rest = {"vq": ["vq", "gpt", "drafter"], "gpt": ["gpt", "drafter"], "drafter": ["drafter"]}[name]
        return max(5.0, left * shares[name] / sum(shares[r] for r in rest))

    build_binaries()
    d_train = export_split(work, "train", n_train)
    d_val = export_split(work, "val", n_val)
    images, ids, _, vocab = load_split(d_train)
    val_images, val_ids, val_prompts, _ = load_split(d_val)
    ids_t, val_ids_t = torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(val_ids.astype(np.int64))
    log(f"data: {images.shape[0]} train, {val_images.shape[0]} val; vocab {len(vocab)} words")

    # VQ
    sched = Schedule("vq", stage_budget("vq"), steps["vq"], lrs["vq"], warmup=50 if not smoke else 2)
    vq_opts = dict(crop_frac=0.5, fg_weight=4.0, dec_frac=0.3)
    vq, vq_rec = train_vq(vq_cfg, images, val_images, sched, batch["vq"], gen, **vq_opts)
    t_vq = dict(steps=sched.step, batch=max(1, batch["vq"] // 2), lr=lrs["vq"], seconds=sched.elapsed(), **vq_opts)
    t = time.time()
    codes = vq_encode(vq, images)
    codes_val = vq_encode(vq, val_images)
    log(f"tokenised {codes.shape[0] + codes_val.shape[0]} images in {time.time() - t:.0f}s")
    vq_m = vq_eval(vq, val_images, codes_val)
    vq_m["train_rec_loss"] = vq_rec
    vq_m["train_codes_used"] = int(torch.unique(codes).numel())
    log(f"vq: {vq_m}")
    os.makedirs(os.path.join(tmp, "png"), exist_ok=True)
    nshow = min(16, val_images.shape[0])
    recon = to_uint8(vq_decode(vq, codes_val[:nshow]))
    write_png(os.path.join(tmp, "png", "vq_recon.png"),
              grid_image(np.concatenate([val_images[:nshow], recon]), nshow // 2 if nshow >= 2 else 1))
    t = time.time()
    vq_m["scorer"] = vq_scorer_eval(vq, work, 50 if smoke else 1000)
    sc = vq_m["scorer"]["vq_recon"]
    log(f"scorer on VQ reconstructions ({time.time() - t:.0f}s): objects {sc['objects']['accuracy']:.4f}, "
        + ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in sc["categories"].items()))

    # GPT
    cfg = L.ModelArgs(vocab_size=vq_cfg.codebook_size, block_size=GRID * GRID, cls_token_num=MAX_WORDS,
                      caption_dim=CAPTION_DIM, model_type="t2i", class_dropout_prob=0.1, token_dropout_p=0.0,
                      resid_dropout_p=0.0, ffn_dropout_p=0.0, **gpt_kw)
    sched = Schedule("gpt", stage_budget("gpt"), steps["gpt"], lrs["gpt"], warmup=50 if not smoke else 2)
    model, gpt_loss, gpt_val_hist = train_gpt(cfg, codes, ids_t, codes_val, val_ids_t, sched, batch["gpt"], gen)
    t_gpt = dict(steps=sched.step, batch=batch["gpt"], lr=lrs["gpt"], seconds=sched.elapsed())
    gpt_m = {"train_loss": gpt_loss, "val_curve": gpt_val_hist,
             "val_loss_cond": gpt_val_loss(model, codes_val, val_ids_t),
             "val_loss_uncond": gpt_val_loss(model, codes_val, val_ids_t, drop=True)}
    log(f"gpt: val loss {gpt_m['val_loss_cond']:.4f} (null caption {gpt_m['val_loss_uncond']:.4f})")

    # Drafter
    sched = Schedule("drafter", stage_budget("drafter"), steps["drafter"], lrs["drafter"],
                     warmup=50 if not smoke else 2)
    drafter, dr_m = train_drafter(model, cfg, codes, ids_t, sched, batch["drafter"], gen)
    t_dr = dict(steps=sched.step, batch=batch["drafter"], lr=lrs["drafter"], seconds=sched.elapsed())
    dr_m.update(drafter_eval(model, drafter, codes_val, val_ids_t))
    log(f"drafter: {dr_m}")

    # Samples with CFG (Python check).
    ns = 4 if smoke else 16
    toks = sample(model, val_ids_t[:ns], cfg_scale=4.0, gen=gen)
    imgs = to_uint8(vq_decode(vq, toks))
    write_png(os.path.join(tmp, "png", "samples_cfg4.png"), grid_image(imgs, min(ns, 8)))
    with open(os.path.join(tmp, "png", "samples_cfg4.txt"), "w") as f:
        f.write("\n".join(val_prompts[:ns]) + "\n")

    cmd = "python3 tools/shapes/train.py " + " ".join(sys.argv[1:])
    metrics = {
        "seed": a.seed, "command": cmd.strip(), "wall_s": time.time() - T0,
        "hardware": f"{platform.processor() or platform.machine()}, {a.threads} torch threads (shared machine), "
                    f"torch {torch.__version__}",
        "data": {"train_count": int(images.shape[0]), "val_count": int(val_images.shape[0]),
                 "train_split": "train", "val_split": "val"},
        "sizes": {
            "vq": {**L.vq_config_to_json(vq_cfg), "ch_mult": vq_cfg.decoder_ch_mult, "params": nparams(vq),
                   "decoder_params": nparams(vq.decoder) + nparams(vq.post_quant_conv)},
            "gpt": {**L.gpt_config_to_json(cfg), "params": nparams(model)},
            "drafter": {"params": nparams(drafter)},
        },
        "training": {"vq": t_vq, "gpt": t_gpt, "drafter": t_dr},
        "vq": vq_m, "gpt": gpt_m, "drafter": dr_m,
    }
    export_dir(out, model, cfg, drafter, vq, vq_cfg, vocab, model_card(metrics), metrics)
    # Card again with the final wall time.
    metrics["wall_s"] = time.time() - T0
    with Outputs() as o:
        o.write_text(os.path.join(out, "README.md"), model_card(metrics))
        o.write_text(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=1, sort_keys=True))
    shutil.copytree(os.path.join(tmp, "png"), os.path.join(out, "png"), dirs_exist_ok=True) if not smoke else None
    log(f"exported {out}: " + ", ".join(f"{f} {os.path.getsize(os.path.join(out, f)) / 1e6:.2f} MB"
                                        for f in sorted(os.listdir(out)) if os.path.isfile(os.path.join(out, f))))

    if not a.no_rust_check:
        cap = os.path.join(tmp, "caption0.bin")
        caption_features(val_ids_t[:1])[0].numpy().astype("<f4").tofile(cap)
        png = os.path.join(tmp, "rust_sample.png")
        cmd = [binary("argen"), "generate", "--model", out,
               "--caption", cap, "--out", png]
        log("$ " + " ".join(cmd))
        r = subprocess.run(cmd, cwd=ROOT)
        if r.returncode != 0 or not os.path.isfile(png):
            log("Rust runtime check FAILED")
            sys.exit(1)
        log(f"Rust runtime loaded the model and wrote {png} (prompt: {val_prompts[0]})")
    log(f"done in {time.time() - T0:.0f}s; pictures in {os.path.join(tmp, 'png')}")


if __name__ == "__main__":
    main()
