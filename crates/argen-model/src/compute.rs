//! The compute trait: the device operations the models are written over.
//!
//! Models ([`crate::Gpt`], [`crate::Drafter`], [`crate::VqDecoder`]) hold their weights and
//! activations as backend objects and express every forward pass as a sequence of the row
//! operations below; all bookkeeping (KV-cache slots, tree topology, positions) stays on the
//! host in this crate. A backend (argen-cpu, argen-cuda) implements the operations.
//!
//! Conventions: activations are row-major `[rows, cols]` f32 buffers; a weight matrix is
//! `[out, in]` (PyTorch `nn.Linear` layout) in its stored dtype (f32, f16 or bf16) and is
//! always computed in f32. Image activations are `[pixels, channels]` (HWC).
//!
//! Determinism: a backend must compute each output row independently of the other rows in
//! the batch (fixed reduction order), so that a token's logits do not depend on what else was
//! batched with it. argen-cpu meets this bit for bit.
//!
//! Errors: allocation and the host transfers (`weight*`, `buf`, `kv`, `upload`, `download`)
//! return [`Result`]; the row operations do not. A backend whose operations can fail at run
//! time (a GPU: launch failures, lost device) records the first failure, skips the operations
//! after it and returns it from the next fallible call — at the latest from the `download` that
//! every host forward pass ends with, or from [`Compute::status`], which the device-resident
//! forwards (`*_device`) end with — as [`crate::ModelError::Device`]. So no forward pass
//! returns `Ok` over a failed device.

use crate::error::Result;
use crate::safetensors::TensorView;

/// Shape of a KV cache: one key and one value vector per (layer, slot, kv head, index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvGeometry {
    /// Transformer layers.
    pub layers: usize,
    /// Sequence slots (e.g. 2 for a CFG pair).
    pub slots: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Query heads (a multiple of `kv_heads`).
    pub heads: usize,
    /// Per-head width.
    pub head_dim: usize,
    /// Entries per slot (committed + pending).
    pub capacity: usize,
}

/// The position of one row: an image token at grid cell `(row, col)` (2D RoPE angles), or a
/// condition token (zero cos and sin, so its q and k vanish; design §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pos {
    /// Zero cos and sin (the official treatment of the condition prefix).
    Cond,
    /// Rotate the first half of each head by `row`, the second by `col`.
    Grid {
        /// Token row.
        row: u32,
        /// Token column.
        col: u32,
    },
}

/// Where one row's key and value go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvDest {
    /// Slot.
    pub slot: u32,
    /// Index inside the slot.
    pub index: u32,
}

/// The keys one query row attends to: the contiguous range `[start, end)` of its slot, then
/// `extra[extra_off .. extra_off + extra_len]` (ascending indices, all `>= end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnRow {
    /// Slot.
    pub slot: u32,
    /// First key of the contiguous range.
    pub start: u32,
    /// End of the contiguous range.
    pub end: u32,
    /// Offset into the extra index list.
    pub extra_off: u32,
    /// Number of extra keys.
    pub extra_len: u32,
}

/// Device operations. See the module docs for layouts.
pub trait Compute: Clone {
    /// An f32 activation buffer on the device.
    type Buf;
    /// A weight tensor on the device (any supported dtype).
    type Weight;
    /// A KV cache on the device.
    type Kv;

    /// Uploads a checkpoint tensor (F32, F16 or BF16), keeping its dtype.
    fn weight(&self, t: TensorView<'_>) -> Result<Self::Weight>;
    /// Uploads host f32 data as a `[rows, cols]` weight (f32).
    fn weight_f32(&self, data: &[f32], rows: usize, cols: usize) -> Result<Self::Weight>;
    /// A zeroed buffer of `len` floats.
    fn buf(&self, len: usize) -> Result<Self::Buf>;
    /// Copies `src` into `dst[offset ..]`.
    fn upload(&self, dst: &mut Self::Buf, offset: usize, src: &[f32]) -> Result<()>;
    /// Copies `src[offset .. offset + dst.len()]` to the host.
    fn download(&self, src: &Self::Buf, offset: usize, dst: &mut [f32]) -> Result<()>;
    /// A zeroed KV cache.
    fn kv(&self, geom: KvGeometry) -> Result<Self::Kv>;
    /// The first failure of a row operation, if the backend keeps one (module docs). The
    /// `*_device` forwards of the models end with it, as the host forwards end with their
    /// `download`. The default (a backend whose row operations cannot fail) is `Ok`.
    fn status(&self) -> Result<()> {
        Ok(())
    }

    /// `out[r] = table[ids[r]]` (ids already validated).
    fn embed(&self, table: &Self::Weight, cols: usize, ids: &[u32], out: &mut Self::Buf);
    /// `out[r, :] = x[rows[r], :]`.
    fn gather_rows(&self, x: &Self::Buf, cols: usize, rows: &[u32], out: &mut Self::Buf);
    /// `out[r, n] = Σ_k x[r, k] · w[n, k] (+ bias[n])` for `rows` rows; `w` is `[n_out, k]`.
    fn linear(
        &self,
        x: &Self::Buf,
        rows: usize,
        w: &Self::Weight,
        bias: Option<&Self::Weight>,
        out: &mut Self::Buf,
    );
    /// `out[r] = x[r] / sqrt(mean(x[r]²) + eps) · w`.
    fn rms_norm(&self, x: &Self::Buf, rows: usize, w: &Self::Weight, eps: f32, out: &mut Self::Buf);
    /// `x[i] += y[i]` for `i < len`.
    fn add_assign(&self, x: &mut Self::Buf, y: &Self::Buf, len: usize);
    /// `a[i] = silu(a[i]) · b[i]` for `i < len`.
    fn silu_mul(&self, a: &mut Self::Buf, b: &Self::Buf, len: usize);
    /// `a[i] = gelu_tanh(a[i])` for `i < len`.
    fn gelu_tanh(&self, a: &mut Self::Buf, len: usize);
    /// Applies 2D RoPE to the q and k parts of each `qkv` row (in place), then stores the
    /// row's k and v in the cache of `layer` at `dest[r]`. `freqs` is `[grid, head_dim/4, 2]`
    /// (cos, sin) built by the model.
    #[allow(clippy::too_many_arguments)]
    fn rope_store(
        &self,
        qkv: &mut Self::Buf,
        geom: &KvGeometry,
        freqs: &Self::Buf,
        rot: &[Pos],
        kv: &mut Self::Kv,
        layer: usize,
        dest: &[KvDest],
    );
    /// Scaled dot-product attention of each query row (the q part of `qkv`) over the keys
    /// listed by `rows[r]`, written to `out[r, :heads·head_dim]`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        qkv: &Self::Buf,
        geom: &KvGeometry,
        kv: &Self::Kv,
        layer: usize,
        rows: &[AttnRow],
        extra: &[u32],
        out: &mut Self::Buf,
    );
    /// Copies `n` entries of `slot` from index `src` to `dst` (all layers), as `memmove`.
    fn kv_move(
        &self,
        kv: &mut Self::Kv,
        geom: &KvGeometry,
        slot: usize,
        src: usize,
        dst: usize,
        n: usize,
    );

    /// 2D convolution, stride 1, zero padding `k/2`, HWC layout: `x` is `[h·w, cin]`, the weight
    /// `[cout, cin, k, k]`, `out` is `[h·w, cout]`.
    #[allow(clippy::too_many_arguments)]
    fn conv2d(
        &self,
        x: &Self::Buf,
        h: usize,
        w: usize,
        cin: usize,
        weight: &Self::Weight,
        bias: Option<&Self::Weight>,
        cout: usize,
        k: usize,
        out: &mut Self::Buf,
    );
    /// GroupNorm over `[pixels, c]` with `groups` groups, then optionally SiLU.
    #[allow(clippy::too_many_arguments)]
    fn group_norm(
        &self,
        x: &Self::Buf,
        pixels: usize,
        c: usize,
        groups: usize,
        gamma: &Self::Weight,
        beta: &Self::Weight,
        eps: f32,
        silu: bool,
        out: &mut Self::Buf,
    );
    /// Nearest-neighbour ×2 upsampling of `[h·w, c]` to `[2h·2w, c]`.
    fn upsample2x(&self, x: &Self::Buf, h: usize, w: usize, c: usize, out: &mut Self::Buf);
    /// `out[i, j] = scale · Σ_k a[i, k] b[j, k]`; `a` is `[m, k]`, `b` is `[n, k]`.
    #[allow(clippy::too_many_arguments)]
    fn matmul_nt(
        &self,
        a: &Self::Buf,
        m: usize,
        b: &Self::Buf,
        n: usize,
        k: usize,
        scale: f32,
        out: &mut Self::Buf,
    );
    /// Row-wise softmax of `[rows, cols]`, in place.
    fn softmax_rows(&self, x: &mut Self::Buf, rows: usize, cols: usize);
    /// `out = xᵀ` for `x` of `[rows, cols]`.
    fn transpose(&self, x: &Self::Buf, rows: usize, cols: usize, out: &mut Self::Buf);
}
