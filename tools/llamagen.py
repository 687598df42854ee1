"""PyTorch definitions of the LlamaGen-family models that argen runs.

This module follows the architecture of the official LlamaGen code
(FoundationVision/LlamaGen: autoregressive/models/gpt.py and
tokenizer/tokenizer_image/vq_model.py) so that

* parameter names match the official state dict exactly (a converted official
  checkpoint loads into these classes, and into argen's Rust runtime, unchanged);
* the numerics match: RMSNorm eps 1e-5, SwiGLU FFN, fused ``wqkv``, 2D RoPE with
  interleaved pairs and zero rotation for the condition tokens, GroupNorm(32, 1e-6).

It is written independently and adds what argen needs and the official code lacks:

* an explicit attention mask / KV cache API (``Transformer.forward_embeddings``)
  so tree attention and incremental decoding can be reproduced;
* the EAGLE-style drafter (``Drafter``) used by LANTERN / VVS: ``fc`` over
  [token embedding; target hidden state], one Llama block, the target's ``output``;
* JSON config helpers shared with the Rust loader (``gpt_config_to_json`` ...).

Used by tools/reference.py (golden fixtures), tools/convert_llamagen.py and the
ShapesWorld training scripts.
"""
from __future__ import annotations

import json
import sys
import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def find_multiple(n: int, k: int) -> int:
    """Smallest multiple of ``k`` that is >= ``n``."""
    if n % k == 0:
        return n
    return n + k - (n % k)


# --------------------------------------------------------------------------------------
# GPT configuration
# --------------------------------------------------------------------------------------
@dataclass
class ModelArgs:
    """GPT hyper-parameters; field names follow the official ``ModelArgs``."""

    dim: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: Optional[int] = None
    multiple_of: int = 256
    ffn_dim_multiplier: Optional[float] = None
    rope_base: float = 10000
    norm_eps: float = 1e-5
    initializer_range: float = 0.02

    token_dropout_p: float = 0.1
    attn_dropout_p: float = 0.0
    resid_dropout_p: float = 0.1
    ffn_dropout_p: float = 0.1
    drop_path_rate: float = 0.0

    num_classes: int = 1000
    caption_dim: int = 2048
    class_dropout_prob: float = 0.1
    model_type: str = "c2i"

    vocab_size: int = 16384
    cls_token_num: int = 1
    block_size: int = 256
    max_batch_size: int = 32
    max_seq_len: int = 2048

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head if self.n_kv_head is not None else self.n_head

    @property
    def ffn_hidden(self) -> int:
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return find_multiple(hidden, self.multiple_of)


# Keys written to / read from the JSON config that accompanies a safetensors file.
GPT_JSON_KEYS = [
    "model_type", "dim", "n_layer", "n_head", "n_kv_head", "multiple_of",
    "ffn_dim_multiplier", "rope_base", "norm_eps", "num_classes", "caption_dim",
    "class_dropout_prob", "vocab_size", "cls_token_num", "block_size",
]

GPT_PRESETS = {
    # class-conditional
    "GPT-B": dict(n_layer=12, n_head=12, dim=768),
    "GPT-L": dict(n_layer=24, n_head=16, dim=1024),
    "GPT-XL": dict(n_layer=36, n_head=20, dim=1280),
    "GPT-XXL": dict(n_layer=48, n_head=24, dim=1536),
    "GPT-XXXL": dict(n_layer=48, n_head=40, dim=2560),
    # text-conditional
    "GPT-1B": dict(n_layer=22, n_head=32, dim=2048),
    "GPT-3B": dict(n_layer=24, n_head=32, dim=3200),
    "GPT-7B": dict(n_layer=32, n_head=32, dim=4096),
}


def gpt_config_to_json(cfg: ModelArgs) -> dict:
    """The JSON dict argen's Rust loader reads (``argen_model::GptConfig``)."""
    d = asdict(cfg)
    return {k: d[k] for k in GPT_JSON_KEYS}


def gpt_config_from_json(d: dict) -> ModelArgs:
    return ModelArgs(**{k: v for k, v in d.items() if k in GPT_JSON_KEYS})


# --------------------------------------------------------------------------------------
# GPT building blocks
# --------------------------------------------------------------------------------------
class LabelEmbedder(nn.Module):
    """Class embedding table with one extra (null) row when CFG dropout is on."""

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        use_cfg_embedding = int(dropout_prob > 0)
        self.embedding_table = nn.Embedding(num_classes + use_cfg_embedding, hidden_size)
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob

    def forward(self, labels: torch.Tensor, train: bool, force_drop_ids=None) -> torch.Tensor:
        if (train and self.dropout_prob > 0) or force_drop_ids is not None:
            if force_drop_ids is None:
                drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
            else:
                drop = force_drop_ids == 1
            labels = torch.where(drop, self.num_classes, labels)
        return self.embedding_table(labels).unsqueeze(1)


class MLP(nn.Module):
    """fc1 -> GELU(tanh) -> fc2, no biases (the caption projection)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=False)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden_features, out_features, bias=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CaptionEmbedder(nn.Module):
    """Caption features -> ``cap_proj``; ``uncond_embedding`` is the null caption."""

    def __init__(self, in_channels: int, hidden_size: int, uncond_prob: float, token_num: int = 120):
        super().__init__()
        self.cap_proj = MLP(in_channels, hidden_size, hidden_size)
        self.register_buffer(
            "uncond_embedding", torch.randn(token_num, in_channels) / in_channels ** 0.5
        )
        self.uncond_prob = uncond_prob

    def forward(self, caption: torch.Tensor, train: bool, force_drop_ids=None) -> torch.Tensor:
        if (train and self.uncond_prob > 0) or force_drop_ids is not None:
            if force_drop_ids is None:
                drop = torch.rand(caption.shape[0], device=caption.device) < self.uncond_prob
            else:
                drop = force_drop_ids == 1
            caption = torch.where(drop[:, None, None], self.uncond_embedding, caption)
        return self.cap_proj(caption)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        out = xf * torch.rsqrt(torch.mean(xf * xf, dim=-1, keepdim=True) + self.eps)
        return out.type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, config: ModelArgs):
        super().__init__()
        hidden = config.ffn_hidden
        self.w1 = nn.Linear(config.dim, hidden, bias=False)
        self.w3 = nn.Linear(config.dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, config.dim, bias=False)
        self.ffn_dropout = nn.Dropout(config.ffn_dropout_p)

    def forward(self, x):
        return self.ffn_dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


def precompute_freqs_cis_2d(grid_size: int, head_dim: int, base: float = 10000, cls_token_num: int = 1):
    """(cls_token_num + grid^2, head_dim/2, 2) table of (cos, sin).

    Pair i < head_dim/4 rotates with the row index at frequency base^(-2i/(head_dim/2)),
    pair head_dim/4 + i with the column index at the same frequency; the
    condition tokens get cos = sin = 0.
    """
    half = head_dim // 2
    freqs = 1.0 / (base ** (torch.arange(0, half, 2)[: half // 2].float() / half))
    t = torch.arange(grid_size, device=freqs.device)
    freqs = torch.outer(t, freqs)
    grid = torch.cat(
        [freqs[:, None, :].expand(-1, grid_size, -1), freqs[None, :, :].expand(grid_size, -1, -1)],
        dim=-1,
    )
    cache = torch.stack([torch.cos(grid), torch.sin(grid)], dim=-1).flatten(0, 1)
    return torch.cat([torch.zeros(cls_token_num, head_dim // 2, 2), cache])


def apply_rotary_emb(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """x: (B, S, H, D); freqs_cis: (S, D/2, 2) or (B, S, D/2, 2). Interleaved pairs."""
    xs = x.float().reshape(*x.shape[:-1], -1, 2)
    if freqs_cis.dim() == 3:
        fc = freqs_cis.view(1, xs.size(1), 1, xs.size(3), 2)
    else:
        fc = freqs_cis.view(xs.size(0), xs.size(1), 1, xs.size(3), 2)
    out = torch.stack(
        [
            xs[..., 0] * fc[..., 0] - xs[..., 1] * fc[..., 1],
            xs[..., 1] * fc[..., 0] + xs[..., 0] * fc[..., 1],
        ],
        dim=-1,
    )
    return out.flatten(3).type_as(x)


class Attention(nn.Module):
    """Multi-head attention with fused wqkv (q rows, then k, then v) and optional GQA."""

    def __init__(self, config: ModelArgs):
        super().__init__()
        assert config.dim % config.n_head == 0
        self.dim = config.dim
        self.head_dim = config.head_dim
        self.n_head = config.n_head
        self.n_kv_head = config.kv_heads
        total = (self.n_head + 2 * self.n_kv_head) * self.head_dim
        self.wqkv = nn.Linear(config.dim, total, bias=False)
        self.wo = nn.Linear(config.dim, config.dim, bias=False)
        self.attn_dropout_p = config.attn_dropout_p
        self.resid_dropout = nn.Dropout(config.resid_dropout_p)
        # Plain attributes (not buffers): they never enter the state dict.
        self.k_cache: Optional[torch.Tensor] = None
        self.v_cache: Optional[torch.Tensor] = None

    def forward(self, x, freqs_cis, mask=None, input_pos=None):
        """x (B,S,dim). mask: bool (B,1,S,T) or None (causal). With a KV cache set up,
        input_pos (S,) are the cache indices written and the mask spans the whole cache."""
        bsz, seqlen, _ = x.shape
        kv_size = self.n_kv_head * self.head_dim
        q, k, v = self.wqkv(x).split([self.dim, kv_size, kv_size], dim=-1)
        q = q.view(bsz, seqlen, self.n_head, self.head_dim)
        k = k.view(bsz, seqlen, self.n_kv_head, self.head_dim)
        v = v.view(bsz, seqlen, self.n_kv_head, self.head_dim)
        q = apply_rotary_emb(q, freqs_cis)
        k = apply_rotary_emb(k, freqs_cis)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if self.k_cache is not None and input_pos is not None:
            self.k_cache[:bsz, :, input_pos] = k
            self.v_cache[:bsz, :, input_pos] = v
            k, v = self.k_cache[:bsz], self.v_cache[:bsz]
        rep = self.n_head // self.n_kv_head
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None,
            dropout_p=self.attn_dropout_p if self.training else 0.0,
        )
        out = out.transpose(1, 2).contiguous().view(bsz, seqlen, self.dim)
        return self.resid_dropout(self.wo(out))


class TransformerBlock(nn.Module):
    def __init__(self, config: ModelArgs):
        super().__init__()
        self.attention = Attention(config)
        self.feed_forward = FeedForward(config)
        self.attention_norm = RMSNorm(config.dim, eps=config.norm_eps)
        self.ffn_norm = RMSNorm(config.dim, eps=config.norm_eps)

    def forward(self, x, freqs_cis, mask=None, input_pos=None):
        h = x + self.attention(self.attention_norm(x), freqs_cis, mask, input_pos)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    """The LlamaGen GPT (c2i or t2i)."""

    def __init__(self, config: ModelArgs):
        super().__init__()
        self.config = config
        self.vocab_size = config.vocab_size
        self.n_layer = config.n_layer
        self.block_size = config.block_size
        self.num_classes = config.num_classes
        self.model_type = config.model_type
        self.cls_token_num = config.cls_token_num
        if config.model_type == "c2i":
            self.cls_embedding = LabelEmbedder(config.num_classes, config.dim, config.class_dropout_prob)
        elif config.model_type == "t2i":
            self.cls_embedding = CaptionEmbedder(
                config.caption_dim, config.dim, config.class_dropout_prob, token_num=config.cls_token_num
            )
        else:
            raise ValueError(f"unknown model_type {config.model_type!r}")
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.tok_dropout = nn.Dropout(config.token_dropout_p)
        self.layers = nn.ModuleList([TransformerBlock(config) for _ in range(config.n_layer)])
        self.norm = RMSNorm(config.dim, eps=config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        grid = int(round(config.block_size ** 0.5))
        assert grid * grid == config.block_size, "block_size must be a square"
        self.grid_size = grid
        self.freqs_cis = precompute_freqs_cis_2d(grid, config.head_dim, config.rope_base, config.cls_token_num)
        self.initialize_weights()

    def initialize_weights(self):
        std = self.config.initializer_range

        def init(m):
            if isinstance(m, nn.Linear):
                m.weight.data.normal_(0.0, std)
                if m.bias is not None:
                    m.bias.data.zero_()
            elif isinstance(m, nn.Embedding):
                m.weight.data.normal_(0.0, std)

        self.apply(init)
        nn.init.constant_(self.output.weight, 0)

    # -- embeddings ---------------------------------------------------------------
    def cond_embeddings(self, cond: torch.Tensor, train: bool = False, force_drop_ids=None):
        """Class ids (B,) or caption features (B, T, caption_dim) -> (B, cls_token_num, dim)."""
        return self.cls_embedding(cond, train=train, force_drop_ids=force_drop_ids)[:, : self.cls_token_num]

    def freqs_for(self, input_pos: torch.Tensor) -> torch.Tensor:
        return self.freqs_cis.to(input_pos.device)[input_pos]

    # -- KV cache -----------------------------------------------------------------
    def setup_caches(self, max_batch_size: int, max_seq_length: int, dtype=torch.float32):
        hd = self.config.head_dim
        for b in self.layers:
            shape = (max_batch_size, self.config.kv_heads, max_seq_length, hd)
            b.attention.k_cache = torch.zeros(shape, dtype=dtype)
            b.attention.v_cache = torch.zeros(shape, dtype=dtype)

    def clear_caches(self):
        for b in self.layers:
            b.attention.k_cache = None
            b.attention.v_cache = None

    def forward_embeddings(self, h, freqs_cis, mask=None, input_pos=None, return_hidden=False):
        """Run the blocks on embeddings h (B,S,dim). Returns logits (and the normed hidden)."""
        for layer in self.layers:
            h = layer(h, freqs_cis, mask, input_pos)
        h = self.norm(h)
        logits = self.output(h).float()
        return (logits, h) if return_hidden else logits

    def forward(self, idx, cond_idx, targets=None, valid=None):
        """Training / teacher-forced forward as in the official code.

        idx: (B, N) image tokens (the last one may be omitted), cond_idx: class ids or
        caption features. Returns (logits[:, cls_token_num-1:], loss).
        """
        cond = self.cond_embeddings(cond_idx, train=self.training)
        h = torch.cat([cond, self.tok_embeddings(idx)], dim=1)
        h = self.tok_dropout(h)
        freqs = self.freqs_cis[: h.shape[1]].to(h.device)
        logits = self.forward_embeddings(h, freqs)
        logits = logits[:, self.cls_token_num - 1:].contiguous()
        loss = None
        if targets is not None:
            if valid is not None:
                la = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), reduction="none")
                va = valid[:, None].repeat(1, targets.shape[1]).view(-1)
                loss = (la * va).sum() / max(va.sum(), 1)
            else:
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


# --------------------------------------------------------------------------------------
# EAGLE-style drafter
# --------------------------------------------------------------------------------------
class Drafter(nn.Module):
    """EAGLE-style draft head for a LlamaGen target.

    h' = Block(fc([tok_embeddings(x); target_hidden])); logits = target.output(h').
    ``target_hidden`` is the target's last hidden state *after* its final ``norm``
    (the input of ``output``). The token embedding table and ``output`` are the
    target's (frozen, not stored in the drafter's state dict). State dict names:
    ``fc.weight``, ``fc.bias`` (optional), ``layers.0.*`` (same names as a GPT block).
    """

    def __init__(self, config: ModelArgs, fc_bias: bool = True):
        super().__init__()
        self.config = config
        self.fc = nn.Linear(2 * config.dim, config.dim, bias=fc_bias)
        self.layers = nn.ModuleList([TransformerBlock(config)])

    def setup_caches(self, max_batch_size: int, max_seq_length: int, dtype=torch.float32):
        hd = self.config.head_dim
        for b in self.layers:
            shape = (max_batch_size, self.config.kv_heads, max_seq_length, hd)
            b.attention.k_cache = torch.zeros(shape, dtype=dtype)
            b.attention.v_cache = torch.zeros(shape, dtype=dtype)

    def forward(self, tok_emb, target_hidden, freqs_cis, mask=None, input_pos=None):
        """Returns the drafter's hidden state (B, S, dim) (feed to target.output for logits)."""
        h = self.fc(torch.cat([tok_emb, target_hidden], dim=-1))
        for layer in self.layers:
            h = layer(h, freqs_cis, mask, input_pos)
        return h


# --------------------------------------------------------------------------------------
# VQ tokenizer (encoder, quantizer, decoder)
# --------------------------------------------------------------------------------------
@dataclass
class VQArgs:
    """VQ hyper-parameters. ``ch`` and ``num_res_blocks`` are fixed (128, 2) in the
    official VQModel; they are exposed here for tiny test models."""

    codebook_size: int = 16384
    codebook_embed_dim: int = 8
    codebook_l2_norm: bool = True
    codebook_show_usage: bool = True
    commit_loss_beta: float = 0.25
    entropy_loss_ratio: float = 0.0
    encoder_ch_mult: List[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    decoder_ch_mult: List[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    z_channels: int = 256
    dropout_p: float = 0.0
    ch: int = 128
    num_res_blocks: int = 2


VQ_JSON_KEYS = [
    "codebook_size", "codebook_embed_dim", "codebook_l2_norm", "encoder_ch_mult",
    "decoder_ch_mult", "z_channels", "ch", "num_res_blocks",
]


def vq_config_to_json(cfg: VQArgs) -> dict:
    d = asdict(cfg)
    return {k: d[k] for k in VQ_JSON_KEYS}


def vq_config_from_json(d: dict) -> VQArgs:
    return VQArgs(**{k: v for k, v in d.items() if k in VQ_JSON_KEYS})


def nonlinearity(x):
    return x * torch.sigmoid(x)


def Normalize(c: int):
    return nn.GroupNorm(num_groups=32, num_channels=c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: Optional[int] = None, dropout: float = 0.0):
        super().__init__()
        cout = cin if cout is None else cout
        self.in_channels, self.out_channels = cin, cout
        self.norm1 = Normalize(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = Normalize(cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x):
        h = self.conv1(nonlinearity(self.norm1(x)))
        h = self.conv2(self.dropout(nonlinearity(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm = Normalize(c)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        b, c, hh, ww = q.shape
        q = q.reshape(b, c, hh * ww).permute(0, 2, 1)
        k = k.reshape(b, c, hh * ww)
        w = torch.softmax(torch.bmm(q, k) * (int(c) ** -0.5), dim=2)
        v = v.reshape(b, c, hh * ww)
        out = torch.bmm(v, w.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))


class Encoder(nn.Module):
    def __init__(self, in_channels=3, ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, dropout=0.0, z_channels=256):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        in_ch_mult = (1,) + tuple(ch_mult)
        self.conv_blocks = nn.ModuleList()
        block_in = ch
        for i in range(self.num_resolutions):
            blk = nn.Module()
            res, attn = nn.ModuleList(), nn.ModuleList()
            block_in = ch * in_ch_mult[i]
            block_out = ch * ch_mult[i]
            for _ in range(num_res_blocks):
                res.append(ResnetBlock(block_in, block_out, dropout))
                block_in = block_out
                if i == self.num_resolutions - 1:
                    attn.append(AttnBlock(block_in))
            blk.res, blk.attn = res, attn
            if i != self.num_resolutions - 1:
                blk.downsample = Downsample(block_in)
            self.conv_blocks.append(blk)
        self.mid = nn.ModuleList([ResnetBlock(block_in, block_in, dropout), AttnBlock(block_in), ResnetBlock(block_in, block_in, dropout)])
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, z_channels, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for i, blk in enumerate(self.conv_blocks):
            for j in range(self.num_res_blocks):
                h = blk.res[j](h)
                if len(blk.attn) > 0:
                    h = blk.attn[j](h)
            if i != self.num_resolutions - 1:
                h = blk.downsample(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(nonlinearity(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, z_channels=256, ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, dropout=0.0, out_channels=3):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, 1, 1)
        self.mid = nn.ModuleList([ResnetBlock(block_in, block_in, dropout), AttnBlock(block_in), ResnetBlock(block_in, block_in, dropout)])
        self.conv_blocks = nn.ModuleList()
        for i in reversed(range(self.num_resolutions)):
            blk = nn.Module()
            res, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i]
            for _ in range(num_res_blocks + 1):
                res.append(ResnetBlock(block_in, block_out, dropout))
                block_in = block_out
                if i == self.num_resolutions - 1:
                    attn.append(AttnBlock(block_in))
            blk.res, blk.attn = res, attn
            if i != 0:
                blk.upsample = Upsample(block_in)
            self.conv_blocks.append(blk)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_channels, 3, 1, 1)

    def forward(self, z):
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for i, blk in enumerate(self.conv_blocks):
            for j in range(self.num_res_blocks + 1):
                h = blk.res[j](h)
                if len(blk.attn) > 0:
                    h = blk.attn[j](h)
            if i != self.num_resolutions - 1:
                h = blk.upsample(h)
        return self.conv_out(nonlinearity(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    def __init__(self, n_e: int, e_dim: int, beta: float, entropy_loss_ratio: float, l2_norm: bool, show_usage: bool):
        super().__init__()
        self.n_e, self.e_dim, self.beta = n_e, e_dim, beta
        self.entropy_loss_ratio = entropy_loss_ratio
        self.l2_norm, self.show_usage = l2_norm, show_usage
        self.embedding = nn.Embedding(n_e, e_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_e, 1.0 / n_e)
        if l2_norm:
            self.embedding.weight.data = F.normalize(self.embedding.weight.data, p=2, dim=-1)
        if show_usage:
            self.register_buffer("codebook_used", torch.zeros(65536))

    def codebook(self) -> torch.Tensor:
        w = self.embedding.weight
        return F.normalize(w, p=2, dim=-1) if self.l2_norm else w

    def forward(self, z):
        """z (B,C,H,W) -> (z_q straight-through, (vq_loss, commit_loss), indices (B*H*W,))."""
        z = z.permute(0, 2, 3, 1).contiguous()
        if self.l2_norm:
            z = F.normalize(z, p=2, dim=-1)
        zf = z.view(-1, self.e_dim)
        emb = self.codebook()
        d = (zf ** 2).sum(1, keepdim=True) + (emb ** 2).sum(1) - 2 * zf @ emb.t()
        idx = torch.argmin(d, dim=1)
        zq = emb[idx].view(z.shape)
        vq_loss = commit_loss = None
        if self.training:
            vq_loss = torch.mean((zq - z.detach()) ** 2)
            commit_loss = self.beta * torch.mean((zq.detach() - z) ** 2)
        zq = z + (zq - z).detach()
        return zq.permute(0, 3, 1, 2), (vq_loss, commit_loss), idx

    def get_codebook_entry(self, indices, shape=None, channel_first=True):
        zq = self.codebook()[indices]
        if shape is not None:
            if channel_first:
                zq = zq.reshape(shape[0], shape[2], shape[3], shape[1]).permute(0, 3, 1, 2).contiguous()
            else:
                zq = zq.view(shape)
        return zq


class VQModel(nn.Module):
    def __init__(self, config: VQArgs):
        super().__init__()
        self.config = config
        self.encoder = Encoder(ch=config.ch, ch_mult=config.encoder_ch_mult, num_res_blocks=config.num_res_blocks,
                               z_channels=config.z_channels, dropout=config.dropout_p)
        self.decoder = Decoder(ch=config.ch, ch_mult=config.decoder_ch_mult, num_res_blocks=config.num_res_blocks,
                               z_channels=config.z_channels, dropout=config.dropout_p)
        self.quantize = VectorQuantizer(config.codebook_size, config.codebook_embed_dim, config.commit_loss_beta,
                                        config.entropy_loss_ratio, config.codebook_l2_norm, config.codebook_show_usage)
        self.quant_conv = nn.Conv2d(config.z_channels, config.codebook_embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.codebook_embed_dim, config.z_channels, 1)

    def encode(self, x):
        h = self.quant_conv(self.encoder(x))
        return self.quantize(h)

    def decode(self, quant):
        return self.decoder(self.post_quant_conv(quant))

    def decode_code(self, codes, shape=None, channel_first=True):
        """codes (B*H*W,) or (B, H*W) with shape=(B, C, H, W) -> pixels (B, 3, 16H, 16W)."""
        return self.decode(self.quantize.get_codebook_entry(codes, shape, channel_first))

    def forward(self, x):
        quant, losses, _ = self.encode(x)
        return self.decode(quant), losses


def VQ_8(**kw):
    return VQModel(VQArgs(encoder_ch_mult=[1, 2, 2, 4], decoder_ch_mult=[1, 2, 2, 4], **kw))


def VQ_16(**kw):
    return VQModel(VQArgs(encoder_ch_mult=[1, 1, 2, 2, 4], decoder_ch_mult=[1, 1, 2, 2, 4], **kw))


# --------------------------------------------------------------------------------------
# safetensors helpers
# --------------------------------------------------------------------------------------
def save_model(module: nn.Module, weights_path: str, config_json: dict, config_path: str, dtype=torch.float32,
               drop_prefixes=(), outputs=None):
    """Write ``module``'s state dict (names unchanged) as safetensors plus a JSON config,
    atomically (tools/atomic_io.py): both files appear only when both are complete. With
    ``outputs`` (an ``atomic_io.Outputs``) the files join that run's outputs instead."""
    import os
    from safetensors.torch import save_file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from atomic_io import Outputs

    sd = {}
    for k, v in module.state_dict().items():
        if any(k.startswith(p) for p in drop_prefixes):
            continue
        t = v.detach().contiguous()
        if t.is_floating_point():
            t = t.to(dtype)
        sd[k] = t
    own = outputs is None
    out = Outputs() if own else outputs
    try:
        save_file(sd, out.path(weights_path))
        if config_path is not None:  # None: the config is written by another call
            out.write_text(config_path, json.dumps(config_json, indent=1, sort_keys=True))
    except BaseException:
        if own:
            out.__exit__(*sys.exc_info())
        raise
    if own:
        out.__exit__(None, None, None)
