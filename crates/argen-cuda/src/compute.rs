//! [`GpuCompute`]: the model runtime's [`argen_model::Compute`] trait over any [`Executor`],
//! so that `argen_model::{Gpt, Drafter, VqDecoder}` run unchanged on CUDA or OpenCL (PoCL in
//! CI). The kernels are in `kernels/model.krn`; each operation is one or two launches.
//!
//! # The operations (and their kernels)
//! Shapes follow `argen_model::compute`: activations are row-major f32 `[rows, cols]`, weights
//! `[out, in]` in f32, f16 or bf16 (widened exactly to f32 on load), images HWC.
//!
//! * `embed` / `gather_rows` (`argen_gather`): `out[r, c] = table[ids[r], c]`.
//! * `linear`, `conv2d`, `matmul_nt` (`argen_gemm`): `out[r, c] = (Σ_k X(r, k) · W(c, k) +
//!   bias[c]) · scale` with one f32 accumulator per output element, `k` ascending, products
//!   rounded before the add (no contraction). Tiles of 32 rows × 64 columns per work-group, `k`
//!   staged in chunks of 32 through local memory, so each weight is read once per row tile. A
//!   k × k convolution (stride 1, zero padding k/2) is the same GEMM over the implicit im2col
//!   matrix `X(p, (ci·k + ky)·k + kx) = x[(y + ky − k/2, x + kx − k/2), ci]`. Dense GEMMs
//!   (linear, 1 × 1 conv, matmul_nt) first go to [`Executor::gemm`] (cuBLAS on CUDA); when it
//!   runs, bias and scale follow in `argen_bias_scale`.
//! * `rms_norm` (`argen_rms_norm`): `out = x · (1 / √(Σ x² / d + ε)) · w`, one work-group per
//!   row, lane-strided partial sums and a fixed 256-lane tree.
//! * `add_assign`, `silu_mul`, `gelu_tanh` (`argen_eltwise`): `a += b`; `a = a / (1 + e^−a) · b`;
//!   `a = a / (1 + e^(−2u))` with `u = √(2/π)(a + 0.044715 a³)`, which equals
//!   `½ a (1 + tanh u)` and does not cancel for negative `u`.
//! * `rope_store` (`argen_rope_store`): pair `p` (elements `2p, 2p+1`) of each q and k head
//!   turns by the row angle (`p < hd/4`) or the column angle (`p ≥ hd/4`) of the token,
//!   `(a, b) → (a cos − b sin, b cos + a sin)`; condition rows are zeroed; then k and v are
//!   stored in the cache `[layer][slot][kv head][index][hd]`.
//! * `attention` (`argen_attention`): one work-group per (row, head); keys are the row's
//!   contiguous range then its extra list (tree attention); `s_j = (q·k_j)/√hd`, softmax with
//!   the maximum subtracted and `exp` from `argen_core::detmath` (`exp_f32`, no device math
//!   library), `out = Σ_j p_j v_j`.
//! * `kv_move` (`argen_kv_move`): memmove of cache entries within a slot, one work-item per
//!   (layer, head, element) column walking in the safe direction.
//! * `group_norm` (`argen_group_norm_stats` + `argen_group_norm_apply`): mean and variance of
//!   each group in f64 (two passes, as argen-cpu), then `(x − μ)/√(σ² + ε) · γ + β`, optional
//!   SiLU.
//! * `upsample2x`, `transpose`, `softmax_rows`: direct kernels.
//!
//! Every reduction has a fixed order that depends only on the shape of the element it
//! produces, so a row's result does not depend on the other rows of the batch (the
//! determinism rule of `argen_model::compute`; with a vendor GEMM that rule is the vendor's).
//! The results are not bit-identical to argen-cpu (which uses FMA and 8-lane partial sums);
//! `tests/pocl_model_ops.rs` bounds the difference.
//!
//! # Errors
//! Allocation and host transfers return errors directly. The row operations cannot (the trait
//! has no `Result` there): every argument is checked on the host against the buffers before
//! anything is launched, and the first failure (a bad argument, a launch or driver error) is
//! kept as a *sticky* error: later operations are skipped and every later fallible call
//! (`buf`, `upload`, `download`, ...) returns it as `ModelError::Device`. The models end each
//! forward pass with a `download`, so a failed pass never reports success. The error stays:
//! after a device failure, build a new [`GpuCompute`] (and new models).
//!
//! # Allocation
//! Index lists (token ids, RoPE records, attention plans) go through scratch device buffers
//! that grow to the largest size seen and are rewritten only when their content changes (the
//! attention plan is uploaded once per forward pass, not once per layer); host staging vectors
//! grow once. After warm-up a forward pass allocates nothing.

use crate::error::{Error, Result};
use crate::kernels::{Kernel, LANES};
use crate::launch::{Arg, Executor, GemmDesc, Launch};
use argen_core::Dtype;
use argen_model::compute::{AttnRow, Compute, KvDest, KvGeometry, Pos};
use argen_model::safetensors::{Dtype as StDtype, TensorView};
use argen_model::ModelError;
use std::sync::{Arc, Mutex, MutexGuard};

/// "No bias" / "condition row" marker of the kernels.
const NONE: u32 = u32::MAX;
/// Rows and columns of one `argen_gemm` work-group tile.
const GEMM_TM: usize = 32;
const GEMM_TN: usize = 64;
const ELT_ADD: u32 = 0;
const ELT_SILU_MUL: u32 = 1;
const ELT_GELU_TANH: u32 = 2;
/// Words per RoPE record and per attention-row record.
const ROPE_WORDS: usize = 4;
const ATTN_WORDS: usize = 5;

fn dtype_code(d: Dtype) -> u32 {
    match d {
        Dtype::F32 => 0,
        Dtype::F16 => 1,
        Dtype::Bf16 => 2,
    }
}

fn dtype_size(d: Dtype) -> usize {
    match d {
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::Bf16 => 2,
    }
}

fn device_err(e: Error) -> ModelError {
    ModelError::Device(e.to_string())
}

fn op_err(op: &'static str, detail: String) -> Error {
    Error::Op { op, detail }
}

/// `x` as a kernel's u32 argument.
fn w32(op: &'static str, what: &str, x: usize) -> Result<u32> {
    u32::try_from(x).map_err(|_| op_err(op, format!("{what} = {x} exceeds the kernels' u32 range")))
}

/// Errors unless `need <= have`.
fn fits(op: &'static str, what: &str, have: usize, need: usize) -> Result<()> {
    if need > have {
        return Err(op_err(
            op,
            format!("{what} needs {need} elements but holds {have}"),
        ));
    }
    Ok(())
}

/// Work-groups for `n` one-per-item work-items.
fn groups_for(n: usize) -> usize {
    n.div_ceil(LANES as usize)
}

/// An f32 activation buffer on the device.
#[derive(Debug)]
pub struct GpuBuf<B> {
    buf: B,
    len: usize,
}

impl<B> GpuBuf<B> {
    /// Length in f32 elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The device buffer.
    pub fn buffer(&self) -> &B {
        &self.buf
    }
}

/// A weight tensor on the device in its checkpoint dtype, `[rows, cols]` (vectors are one
/// row; higher-rank tensors are `[dim0, rest]`, as argen-cpu).
#[derive(Debug)]
pub struct GpuWeight<B> {
    buf: B,
    dtype: Dtype,
    rows: usize,
    cols: usize,
}

impl<B> GpuWeight<B> {
    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }
    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    /// The device buffer (raw little-endian elements, padded to whole 32-bit words).
    pub fn buffer(&self) -> &B {
        &self.buf
    }
    fn numel(&self) -> usize {
        self.rows * self.cols
    }
}

/// A KV cache on the device: keys and values `[layer][slot][kv head][index][head_dim]`.
#[derive(Debug)]
pub struct GpuKv<B> {
    k: B,
    v: B,
    geom: KvGeometry,
}

impl<B> GpuKv<B> {
    /// The geometry it was allocated for.
    pub fn geometry(&self) -> KvGeometry {
        self.geom
    }
    /// Key and value buffers.
    pub fn buffers(&self) -> (&B, &B) {
        (&self.k, &self.v)
    }
}

/// A device scratch buffer of u32 words, rewritten only when its content changes.
struct Scratch<B> {
    buf: Option<B>,
    bytes: usize,
    mirror: Vec<u32>,
}

impl<B> Scratch<B> {
    fn new() -> Self {
        Scratch {
            buf: None,
            bytes: 0,
            mirror: Vec::new(),
        }
    }
}

/// Grows `slot` to at least `bytes` (to the next power of two) and returns it.
fn ensure<'a, E: Executor>(
    exec: &E,
    slot: &'a mut Option<(E::Buffer, usize)>,
    bytes: usize,
) -> Result<&'a E::Buffer> {
    let bytes = bytes.max(4);
    if slot.as_ref().is_none_or(|(_, cap)| *cap < bytes) {
        let cap = bytes.next_power_of_two();
        *slot = Some((exec.alloc(cap)?, cap));
    }
    match slot {
        Some((b, _)) => Ok(b),
        None => Err(op_err("scratch", "allocation vanished".into())),
    }
}

/// Puts `words` in `sc` (skipped when the device copy already holds them).
fn put_words<E: Executor>(
    exec: &E,
    sc: &mut Scratch<E::Buffer>,
    staging: &mut Vec<u8>,
    words: &[u32],
) -> Result<()> {
    let need = (4 * words.len()).max(4);
    if sc.buf.is_some() && sc.bytes >= need && sc.mirror == words {
        return Ok(());
    }
    if sc.buf.is_none() || sc.bytes < need {
        let cap = need.next_power_of_two();
        sc.buf = Some(exec.alloc(cap)?);
        sc.bytes = cap;
    }
    staging.clear();
    for w in words {
        staging.extend_from_slice(&w.to_le_bytes());
    }
    if let Some(b) = sc.buf.as_mut() {
        exec.write(b, 0, staging)?;
    }
    sc.mirror.clear();
    sc.mirror.extend_from_slice(words);
    Ok(())
}

fn scratch_buf<B>(sc: &Scratch<B>) -> Result<&B> {
    sc.buf
        .as_ref()
        .ok_or_else(|| op_err("scratch", "index buffer missing".into()))
}

/// Mutable state behind the handle: the sticky error, staging vectors and scratch buffers.
struct State<B> {
    error: Option<Error>,
    bytes: Vec<u8>,
    words: Vec<u32>,
    ids: Scratch<B>,
    rope: Scratch<B>,
    attn: Scratch<B>,
    /// Row lists of the device logit sink's gathers.
    sink_rows: Scratch<B>,
    scores: Option<(B, usize)>,
    stats: Option<(B, usize)>,
}

struct Inner<E: Executor> {
    exec: E,
    state: Mutex<State<E::Buffer>>,
}

/// The model runtime's compute backend on a GPU (or any [`Executor`]). Cheap to clone: clones
/// share the executor, the scratch buffers and the sticky error.
pub struct GpuCompute<E: Executor> {
    inner: Arc<Inner<E>>,
}

impl<E: Executor> Clone for GpuCompute<E> {
    fn clone(&self) -> Self {
        GpuCompute {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E: Executor> std::fmt::Debug for GpuCompute<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuCompute {{ {} }}", self.inner.exec.describe())
    }
}

/// One dense or convolutional GEMM (see [`GpuCompute`]'s module docs).
struct Gemm<'a, B> {
    x: &'a B,
    w: &'a B,
    w_dtype: Dtype,
    bias: Option<(&'a B, Dtype)>,
    out: &'a B,
    rows: usize,
    n: usize,
    k: usize,
    scale: f32,
    /// `(h, w, cin, k)` of an implicit-im2col convolution (k > 1).
    conv: Option<(usize, usize, usize, usize)>,
}

impl<E: Executor> GpuCompute<E> {
    /// A backend on `exec` (whose program must include the model kernels, as
    /// `kernels::program_source` does).
    pub fn new(exec: E) -> Self {
        GpuCompute {
            inner: Arc::new(Inner {
                exec,
                state: Mutex::new(State {
                    error: None,
                    bytes: Vec::new(),
                    words: Vec::new(),
                    ids: Scratch::new(),
                    rope: Scratch::new(),
                    attn: Scratch::new(),
                    sink_rows: Scratch::new(),
                    scores: None,
                    stats: None,
                }),
            }),
        }
    }

    /// The executor.
    pub fn executor(&self) -> &E {
        &self.inner.exec
    }

    /// Copies f32 rows `rows[r]` of `x` (`cols` wide) to rows `at + r` of the raw buffer
    /// `out` of `out_floats` floats (the device logit sink's answer buffer), with one
    /// `argen_gather` launch; the row list has its own scratch buffer, uploaded only when it
    /// changes. A row operation: failures are sticky (module docs).
    pub(crate) fn gather_rows_into(
        &self,
        x: &GpuBuf<E::Buffer>,
        cols: usize,
        rows: &[u32],
        out: &E::Buffer,
        out_floats: usize,
        at: usize,
    ) {
        self.run(|exec, st| {
            let State {
                sink_rows, bytes, ..
            } = st;
            let dst = (out, out_floats, at);
            gather_f32(exec, "logit sink", sink_rows, bytes, x, cols, rows, dst)
        })
    }

    /// The sticky error, if an operation has failed (see the module docs).
    pub fn error(&self) -> Option<Error> {
        self.lock().error.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State<E::Buffer>> {
        // A panic while the lock was held cannot leave the state inconsistent in a way that
        // matters (scratch mirrors are written after their buffers), so poisoning is ignored.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns the sticky error, if any, as a model error.
    fn healthy(&self, st: &State<E::Buffer>) -> argen_model::Result<()> {
        match &st.error {
            Some(e) => Err(device_err(e.clone())),
            None => Ok(()),
        }
    }

    /// Runs an infallible trait operation: skipped after a failure, its own failure kept.
    fn run<F>(&self, f: F)
    where
        F: FnOnce(&E, &mut State<E::Buffer>) -> Result<()>,
    {
        let mut st = self.lock();
        if st.error.is_some() {
            return;
        }
        if let Err(e) = f(&self.inner.exec, &mut st) {
            st.error = Some(e);
        }
    }

    fn alloc_f32(&self, len: usize) -> argen_model::Result<GpuBuf<E::Buffer>> {
        let st = self.lock();
        self.healthy(&st)?;
        let bytes = len.checked_mul(4).ok_or_else(|| {
            device_err(op_err(
                "buf",
                format!("{len} floats overflow the address space"),
            ))
        })?;
        let buf = self.inner.exec.alloc(bytes.max(4)).map_err(device_err)?;
        Ok(GpuBuf { buf, len })
    }
}

/// `out[(at + r)·cols + c] = x[rows[r]·cols + c]` for f32 rows, `out = (buffer, floats, at)`;
/// the row list goes through the scratch `sc`.
#[allow(clippy::too_many_arguments)]
fn gather_f32<E: Executor>(
    exec: &E,
    op: &'static str,
    sc: &mut Scratch<E::Buffer>,
    bytes: &mut Vec<u8>,
    x: &GpuBuf<E::Buffer>,
    cols: usize,
    rows: &[u32],
    (out, out_len, at): (&E::Buffer, usize, usize),
) -> Result<()> {
    let end = at
        .checked_add(rows.len())
        .and_then(|r| r.checked_mul(cols))
        .ok_or_else(|| op_err(op, "output rows overflow".into()))?;
    fits(op, "output", out_len, end)?;
    for &r in rows {
        fits(op, "input", x.len, (r as usize + 1) * cols)?;
    }
    put_words(exec, sc, bytes, rows)?;
    let args = [
        Arg::Buf(&x.buf),
        Arg::U32(dtype_code(Dtype::F32)),
        Arg::U32(w32(op, "cols", cols)?),
        Arg::Buf(scratch_buf(sc)?),
        Arg::U32(w32(op, "rows", rows.len())?),
        Arg::Buf(out),
        Arg::U32(w32(op, "output offset", at * cols)?),
    ];
    launch(exec, Kernel::Gather, groups_for(rows.len() * cols), &args)
}

fn launch<E: Executor>(
    exec: &E,
    kernel: Kernel,
    groups: usize,
    args: &[Arg<'_, E::Buffer>],
) -> Result<()> {
    if groups == 0 {
        return Ok(());
    }
    let grid = w32(kernel.name(), "work-groups", groups)?;
    if grid > i32::MAX as u32 {
        return Err(op_err(
            kernel.name(),
            format!("{groups} work-groups exceed the grid limit"),
        ));
    }
    exec.launch(&Launch {
        kernel,
        grid,
        block: LANES,
        shared_bytes: 0,
        args,
    })
}

/// Runs a GEMM: the executor's vendor GEMM for dense problems when it has one (then bias and
/// scale in `argen_bias_scale`), the portable `argen_gemm` kernel otherwise.
fn gemm<E: Executor>(exec: &E, op: &'static str, g: &Gemm<'_, E::Buffer>) -> Result<()> {
    if g.rows == 0 || g.n == 0 {
        return Ok(());
    }
    let (rows, n, k) = (
        w32(op, "rows", g.rows)?,
        w32(op, "n", g.n)?,
        w32(op, "k", g.k)?,
    );
    w32(op, "rows · n", g.rows * g.n)?;
    let (bias, bias_dt) = match g.bias {
        Some((b, d)) => (b, dtype_code(d)),
        None => (g.w, NONE),
    };
    let scale = g.scale.to_bits();
    if g.conv.is_none() {
        let vendor = exec.gemm(&GemmDesc {
            x: g.x,
            x_offset: 0,
            w: g.w,
            w_dtype: g.w_dtype,
            out: g.out,
            out_offset: 0,
            rows: g.rows,
            n: g.n,
            k: g.k,
        })?;
        if vendor {
            if bias_dt == NONE && g.scale == 1.0 {
                return Ok(());
            }
            let args = [
                Arg::Buf(g.out),
                Arg::U32(0),
                Arg::U32(rows),
                Arg::U32(n),
                Arg::Buf(bias),
                Arg::U32(bias_dt),
                Arg::U32(scale),
            ];
            return launch(exec, Kernel::BiasScale, groups_for(g.rows * g.n), &args);
        }
    }
    let (ch, cw, cin, ck) = match g.conv {
        Some((h, w, cin, k)) => (
            w32(op, "h", h)?,
            w32(op, "w", w)?,
            w32(op, "cin", cin)?,
            k as u32,
        ),
        None => (0, 0, 0, 0),
    };
    let args = [
        Arg::Buf(g.x),
        Arg::U32(0),
        Arg::Buf(g.w),
        Arg::U32(dtype_code(g.w_dtype)),
        Arg::Buf(bias),
        Arg::U32(bias_dt),
        Arg::Buf(g.out),
        Arg::U32(0),
        Arg::U32(rows),
        Arg::U32(n),
        Arg::U32(k),
        Arg::U32(scale),
        Arg::U32(ch),
        Arg::U32(cw),
        Arg::U32(cin),
        Arg::U32(ck),
    ];
    let tiles = g.rows.div_ceil(GEMM_TM) * g.n.div_ceil(GEMM_TN);
    launch(exec, Kernel::Gemm, tiles, &args)
}

fn eltwise<E: Executor>(exec: &E, a: &E::Buffer, b: &E::Buffer, len: usize, op: u32) -> Result<()> {
    let args = [
        Arg::Buf(a),
        Arg::Buf(b),
        Arg::U32(w32("eltwise", "len", len)?),
        Arg::U32(op),
    ];
    launch(exec, Kernel::Eltwise, groups_for(len), &args)
}

/// Checks a KV geometry against a cache and the kernels' limits.
fn check_geom(op: &'static str, g: &KvGeometry, kv: &KvGeometry, layer: usize) -> Result<()> {
    if g != kv {
        return Err(op_err(
            op,
            format!("geometry {g:?} differs from the cache's {kv:?}"),
        ));
    }
    if g.kv_heads == 0 || g.heads % g.kv_heads != 0 {
        return Err(op_err(
            op,
            format!(
                "{} heads are not a multiple of {} kv heads",
                g.heads, g.kv_heads
            ),
        ));
    }
    if g.head_dim == 0 || g.head_dim % 4 != 0 || g.head_dim > LANES as usize {
        return Err(op_err(
            op,
            format!(
                "head_dim {} must be a positive multiple of 4 and at most {LANES}",
                g.head_dim
            ),
        ));
    }
    if layer >= g.layers {
        return Err(op_err(op, format!("layer {layer} of {}", g.layers)));
    }
    let total = g.layers * g.slots * g.kv_heads * g.capacity * g.head_dim;
    w32(op, "cache elements", total)?;
    Ok(())
}

/// Replaces `bytes` with the little-endian encoding of `src` (the host staging of an upload).
fn encode_f32(bytes: &mut Vec<u8>, src: &[f32]) {
    bytes.clear();
    for v in src {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
}

/// Checks that `n` floats at `offset` lie inside a buffer of `len` floats, for the host copy
/// `op` (`dir` is "into" or "from" in the message).
fn check_span(op: &str, dir: &str, offset: usize, n: usize, len: usize) -> argen_model::Result<()> {
    if offset.checked_add(n).is_none_or(|e| e > len) {
        return Err(ModelError::Input(format!(
            "{op} of {n} floats at {offset} {dir} a buffer of {len}"
        )));
    }
    Ok(())
}

fn weight_dtype(t: &TensorView<'_>) -> argen_model::Result<Dtype> {
    match t.dtype {
        StDtype::F32 => Ok(Dtype::F32),
        StDtype::F16 => Ok(Dtype::F16),
        StDtype::BF16 => Ok(Dtype::Bf16),
        StDtype::Other(_) => Err(ModelError::Input(format!(
            "dtype {} cannot be used as a weight",
            t.dtype.name()
        ))),
    }
}

impl<E: Executor> Compute for GpuCompute<E> {
    type Buf = GpuBuf<E::Buffer>;
    type Weight = GpuWeight<E::Buffer>;
    type Kv = GpuKv<E::Buffer>;

    fn weight(&self, t: TensorView<'_>) -> argen_model::Result<Self::Weight> {
        let dtype = weight_dtype(&t)?;
        let numel = t.numel();
        let rows = if t.shape.len() >= 2 { t.shape[0] } else { 1 };
        let cols = numel.checked_div(rows).unwrap_or(0);
        let bytes = numel * dtype_size(dtype);
        if t.data.len() != bytes {
            return Err(ModelError::Input(format!(
                "weight of shape {:?} ({}) holds {} bytes, expected {bytes}",
                t.shape,
                t.dtype.name(),
                t.data.len()
            )));
        }
        let st = self.lock();
        self.healthy(&st)?;
        let exec = &self.inner.exec;
        let mut buf = exec
            .alloc(bytes.div_ceil(4).max(1) * 4)
            .map_err(device_err)?;
        exec.write(&mut buf, 0, t.data).map_err(device_err)?;
        Ok(GpuWeight {
            buf,
            dtype,
            rows,
            cols,
        })
    }

    fn weight_f32(
        &self,
        data: &[f32],
        rows: usize,
        cols: usize,
    ) -> argen_model::Result<Self::Weight> {
        if data.len() != rows * cols {
            return Err(ModelError::Input(format!(
                "weight_f32: {} floats for a {rows}x{cols} weight",
                data.len()
            )));
        }
        let mut st = self.lock();
        self.healthy(&st)?;
        let exec = &self.inner.exec;
        let mut buf = exec.alloc((4 * data.len()).max(4)).map_err(device_err)?;
        encode_f32(&mut st.bytes, data);
        exec.write(&mut buf, 0, &st.bytes).map_err(device_err)?;
        Ok(GpuWeight {
            buf,
            dtype: Dtype::F32,
            rows,
            cols,
        })
    }

    fn buf(&self, len: usize) -> argen_model::Result<Self::Buf> {
        self.alloc_f32(len)
    }

    fn upload(&self, dst: &mut Self::Buf, offset: usize, src: &[f32]) -> argen_model::Result<()> {
        let mut st = self.lock();
        self.healthy(&st)?;
        check_span("upload", "into", offset, src.len(), dst.len)?;
        encode_f32(&mut st.bytes, src);
        self.inner
            .exec
            .write(&mut dst.buf, 4 * offset, &st.bytes)
            .map_err(device_err)
    }

    fn download(&self, src: &Self::Buf, offset: usize, dst: &mut [f32]) -> argen_model::Result<()> {
        let mut st = self.lock();
        self.healthy(&st)?;
        check_span("download", "from", offset, dst.len(), src.len)?;
        st.bytes.clear();
        st.bytes.resize(4 * dst.len(), 0);
        if let Err(e) = self.inner.exec.read(&src.buf, 4 * offset, &mut st.bytes) {
            st.error = Some(e.clone());
            return Err(device_err(e));
        }
        for (o, c) in dst.iter_mut().zip(st.bytes.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }

    fn kv(&self, geom: KvGeometry) -> argen_model::Result<Self::Kv> {
        let n = geom
            .layers
            .checked_mul(geom.slots)
            .and_then(|x| x.checked_mul(geom.kv_heads))
            .and_then(|x| x.checked_mul(geom.capacity))
            .and_then(|x| x.checked_mul(geom.head_dim))
            .ok_or_else(|| ModelError::Input(format!("KV geometry {geom:?} overflows")))?;
        let k = self.alloc_f32(n)?.buf;
        let v = self.alloc_f32(n)?.buf;
        Ok(GpuKv { k, v, geom })
    }

    fn embed(&self, table: &Self::Weight, cols: usize, ids: &[u32], out: &mut Self::Buf) {
        self.run(|exec, st| {
            let op = "embed";
            fits(op, "output", out.len, ids.len() * cols)?;
            for &id in ids {
                fits(op, "table", table.numel(), (id as usize + 1) * cols)?;
            }
            let State { ids: sc, bytes, .. } = st;
            put_words(exec, sc, bytes, ids)?;
            let args = [
                Arg::Buf(&table.buf),
                Arg::U32(dtype_code(table.dtype)),
                Arg::U32(w32(op, "cols", cols)?),
                Arg::Buf(scratch_buf(sc)?),
                Arg::U32(w32(op, "rows", ids.len())?),
                Arg::Buf(&out.buf),
                Arg::U32(0),
            ];
            launch(exec, Kernel::Gather, groups_for(ids.len() * cols), &args)
        })
    }

    fn gather_rows(&self, x: &Self::Buf, cols: usize, rows: &[u32], out: &mut Self::Buf) {
        self.run(|exec, st| {
            let State { ids: sc, bytes, .. } = st;
            let dst = (&out.buf, out.len, 0);
            gather_f32(exec, "gather_rows", sc, bytes, x, cols, rows, dst)
        })
    }

    fn status(&self) -> argen_model::Result<()> {
        let st = self.lock();
        self.healthy(&st)
    }

    fn linear(
        &self,
        x: &Self::Buf,
        rows: usize,
        w: &Self::Weight,
        bias: Option<&Self::Weight>,
        out: &mut Self::Buf,
    ) {
        self.run(|exec, _| {
            let op = "linear";
            let (n, k) = (w.rows, w.cols);
            fits(op, "input", x.len, rows * k)?;
            fits(op, "output", out.len, rows * n)?;
            if let Some(b) = bias {
                fits(op, "bias", b.numel(), n)?;
            }
            gemm(
                exec,
                op,
                &Gemm {
                    x: &x.buf,
                    w: &w.buf,
                    w_dtype: w.dtype,
                    bias: bias.map(|b| (&b.buf, b.dtype)),
                    out: &out.buf,
                    rows,
                    n,
                    k,
                    scale: 1.0,
                    conv: None,
                },
            )
        })
    }

    fn rms_norm(
        &self,
        x: &Self::Buf,
        rows: usize,
        w: &Self::Weight,
        eps: f32,
        out: &mut Self::Buf,
    ) {
        self.run(|exec, _| {
            let op = "rms_norm";
            let d = w.numel();
            fits(op, "input", x.len, rows * d)?;
            fits(op, "output", out.len, rows * d)?;
            let args = [
                Arg::Buf(&x.buf),
                Arg::Buf(&w.buf),
                Arg::U32(dtype_code(w.dtype)),
                Arg::U32(w32(op, "d", d)?),
                Arg::U32(eps.to_bits()),
                Arg::Buf(&out.buf),
            ];
            launch(exec, Kernel::RmsNorm, rows, &args)
        })
    }

    fn add_assign(&self, x: &mut Self::Buf, y: &Self::Buf, len: usize) {
        self.run(|exec, _| {
            fits("add_assign", "x", x.len, len)?;
            fits("add_assign", "y", y.len, len)?;
            eltwise(exec, &x.buf, &y.buf, len, ELT_ADD)
        })
    }

    fn silu_mul(&self, a: &mut Self::Buf, b: &Self::Buf, len: usize) {
        self.run(|exec, _| {
            fits("silu_mul", "a", a.len, len)?;
            fits("silu_mul", "b", b.len, len)?;
            eltwise(exec, &a.buf, &b.buf, len, ELT_SILU_MUL)
        })
    }

    fn gelu_tanh(&self, a: &mut Self::Buf, len: usize) {
        self.run(|exec, _| {
            fits("gelu_tanh", "a", a.len, len)?;
            eltwise(exec, &a.buf, &a.buf, len, ELT_GELU_TANH)
        })
    }

    fn rope_store(
        &self,
        qkv: &mut Self::Buf,
        g: &KvGeometry,
        freqs: &Self::Buf,
        rot: &[Pos],
        kv: &mut Self::Kv,
        layer: usize,
        dest: &[KvDest],
    ) {
        self.run(|exec, st| {
            let op = "rope_store";
            check_geom(op, g, &kv.geom, layer)?;
            if rot.len() != dest.len() {
                return Err(op_err(
                    op,
                    format!("{} positions but {} destinations", rot.len(), dest.len()),
                ));
            }
            let rows = rot.len();
            let hd = g.head_dim;
            let stride = (g.heads + 2 * g.kv_heads) * hd;
            fits(op, "qkv", qkv.len, rows * stride)?;
            let State {
                words, rope, bytes, ..
            } = st;
            words.clear();
            for (p, d) in rot.iter().zip(dest) {
                match *p {
                    Pos::Cond => words.extend_from_slice(&[NONE, 0]),
                    Pos::Grid { row, col } => {
                        let t = row.max(col) as usize;
                        fits(op, "freqs", freqs.len, (t + 1) * (hd / 2))?;
                        words.extend_from_slice(&[row, col]);
                    }
                }
                if d.slot as usize >= g.slots || d.index as usize >= g.capacity {
                    return Err(op_err(
                        op,
                        format!(
                            "destination (slot {}, index {}) outside {} slots x {}",
                            d.slot, d.index, g.slots, g.capacity
                        ),
                    ));
                }
                words.extend_from_slice(&[d.slot, d.index]);
            }
            debug_assert_eq!(words.len(), ROPE_WORDS * rows);
            put_words(exec, rope, bytes, words)?;
            let args = [
                Arg::Buf(&qkv.buf),
                Arg::Buf(&freqs.buf),
                Arg::Buf(scratch_buf(rope)?),
                Arg::Buf(&kv.k),
                Arg::Buf(&kv.v),
                Arg::U32(g.heads as u32),
                Arg::U32(g.kv_heads as u32),
                Arg::U32(hd as u32),
                Arg::U32(layer as u32),
                Arg::U32(g.slots as u32),
                Arg::U32(g.capacity as u32),
            ];
            launch(exec, Kernel::RopeStore, rows, &args)
        })
    }

    fn attention(
        &self,
        qkv: &Self::Buf,
        g: &KvGeometry,
        kv: &Self::Kv,
        layer: usize,
        rows: &[AttnRow],
        extra: &[u32],
        out: &mut Self::Buf,
    ) {
        self.run(|exec, st| {
            let op = "attention";
            check_geom(op, g, &kv.geom, layer)?;
            let n = rows.len();
            let hd = g.head_dim;
            let stride = (g.heads + 2 * g.kv_heads) * hd;
            fits(op, "qkv", qkv.len, n * stride)?;
            fits(op, "output", out.len, n * g.heads * hd)?;
            let State {
                words,
                attn,
                bytes,
                scores,
                ..
            } = st;
            words.clear();
            let mut max_keys = 1usize;
            for ar in rows {
                let (s, e) = (ar.start as usize, ar.end as usize);
                let (eo, el) = (ar.extra_off as usize, ar.extra_len as usize);
                if ar.slot as usize >= g.slots || s > e || e > g.capacity || eo + el > extra.len() {
                    return Err(op_err(
                        op,
                        format!(
                            "row {ar:?} outside {} slots x {} entries ({} extra keys)",
                            g.slots,
                            g.capacity,
                            extra.len()
                        ),
                    ));
                }
                if let Some(&bad) = extra[eo..eo + el]
                    .iter()
                    .find(|&&i| i as usize >= g.capacity)
                {
                    return Err(op_err(
                        op,
                        format!("extra key {bad} outside the capacity {}", g.capacity),
                    ));
                }
                max_keys = max_keys.max(e - s + el);
                words.extend_from_slice(&[ar.slot, ar.start, ar.end, ar.extra_off, ar.extra_len]);
            }
            debug_assert_eq!(words.len(), ATTN_WORDS * n);
            let extra_base = w32(op, "plan words", words.len())?;
            words.extend_from_slice(extra);
            put_words(exec, attn, bytes, words)?;
            let groups = n * g.heads;
            let score_elems = groups * max_keys;
            w32(op, "score elements", score_elems)?;
            let sc = ensure(exec, scores, 4 * score_elems)?;
            let scale = 1.0 / (hd as f32).sqrt();
            let args = [
                Arg::Buf(&qkv.buf),
                Arg::Buf(&kv.k),
                Arg::Buf(&kv.v),
                Arg::Buf(scratch_buf(attn)?),
                Arg::U32(extra_base),
                Arg::Buf(sc),
                Arg::U32(max_keys as u32),
                Arg::U32(g.heads as u32),
                Arg::U32(g.kv_heads as u32),
                Arg::U32(hd as u32),
                Arg::U32(layer as u32),
                Arg::U32(g.slots as u32),
                Arg::U32(g.capacity as u32),
                Arg::U32(scale.to_bits()),
                Arg::Buf(&out.buf),
            ];
            launch(exec, Kernel::Attention, groups, &args)
        })
    }

    fn kv_move(
        &self,
        kv: &mut Self::Kv,
        g: &KvGeometry,
        slot: usize,
        src: usize,
        dst: usize,
        n: usize,
    ) {
        self.run(|exec, _| {
            let op = "kv_move";
            check_geom(op, g, &kv.geom, 0)?;
            if n == 0 || src == dst {
                return Ok(());
            }
            if slot >= g.slots || src + n > g.capacity || dst + n > g.capacity {
                return Err(op_err(
                    op,
                    format!(
                        "{n} entries {src} -> {dst} of slot {slot} outside {} slots x {}",
                        g.slots, g.capacity
                    ),
                ));
            }
            let args = [
                Arg::Buf(&kv.k),
                Arg::Buf(&kv.v),
                Arg::U32(g.layers as u32),
                Arg::U32(g.slots as u32),
                Arg::U32(g.kv_heads as u32),
                Arg::U32(g.head_dim as u32),
                Arg::U32(g.capacity as u32),
                Arg::U32(slot as u32),
                Arg::U32(src as u32),
                Arg::U32(dst as u32),
                Arg::U32(n as u32),
            ];
            launch(
                exec,
                Kernel::KvMove,
                groups_for(g.layers * g.kv_heads * g.head_dim),
                &args,
            )
        })
    }

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
    ) {
        self.run(|exec, _| {
            let op = "conv2d";
            let p = h * w;
            if k == 0 || weight.rows != cout || weight.cols != cin * k * k {
                return Err(op_err(
                    op,
                    format!(
                        "weight [{}, {}] does not fit cout {cout}, cin {cin}, k {k}",
                        weight.rows, weight.cols
                    ),
                ));
            }
            fits(op, "input", x.len, p * cin)?;
            fits(op, "output", out.len, p * cout)?;
            if let Some(b) = bias {
                fits(op, "bias", b.numel(), cout)?;
            }
            gemm(
                exec,
                op,
                &Gemm {
                    x: &x.buf,
                    w: &weight.buf,
                    w_dtype: weight.dtype,
                    bias: bias.map(|b| (&b.buf, b.dtype)),
                    out: &out.buf,
                    rows: p,
                    n: cout,
                    k: cin * k * k,
                    scale: 1.0,
                    conv: (k > 1).then_some((h, w, cin, k)),
                },
            )
        })
    }

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
    ) {
        self.run(|exec, st| {
            let op = "group_norm";
            if groups == 0 || c % groups != 0 {
                return Err(op_err(op, format!("{c} channels in {groups} groups")));
            }
            fits(op, "input", x.len, pixels * c)?;
            fits(op, "output", out.len, pixels * c)?;
            fits(op, "gamma", gamma.numel(), c)?;
            fits(op, "beta", beta.numel(), c)?;
            let total = w32(op, "elements", pixels * c)?;
            let stats = ensure(exec, &mut st.stats, 16 * groups)?;
            let (pixels, c32, g32) = (pixels as u32, c as u32, groups as u32);
            let args = [
                Arg::Buf(&x.buf),
                Arg::U32(pixels),
                Arg::U32(c32),
                Arg::U32(g32),
                Arg::U32(eps.to_bits()),
                Arg::Buf(stats),
            ];
            launch(exec, Kernel::GroupNormStats, groups, &args)?;
            let args = [
                Arg::Buf(&x.buf),
                Arg::Buf(stats),
                Arg::Buf(&gamma.buf),
                Arg::U32(dtype_code(gamma.dtype)),
                Arg::Buf(&beta.buf),
                Arg::U32(dtype_code(beta.dtype)),
                Arg::U32(pixels),
                Arg::U32(c32),
                Arg::U32(g32),
                Arg::U32(silu as u32),
                Arg::Buf(&out.buf),
            ];
            launch(
                exec,
                Kernel::GroupNormApply,
                groups_for(total as usize),
                &args,
            )
        })
    }

    fn upsample2x(&self, x: &Self::Buf, h: usize, w: usize, c: usize, out: &mut Self::Buf) {
        self.run(|exec, _| {
            let op = "upsample2x";
            fits(op, "input", x.len, h * w * c)?;
            fits(op, "output", out.len, 4 * h * w * c)?;
            w32(op, "output elements", 4 * h * w * c)?;
            let args = [
                Arg::Buf(&x.buf),
                Arg::U32(h as u32),
                Arg::U32(w as u32),
                Arg::U32(c as u32),
                Arg::Buf(&out.buf),
            ];
            launch(exec, Kernel::Upsample2x, groups_for(4 * h * w * c), &args)
        })
    }

    fn matmul_nt(
        &self,
        a: &Self::Buf,
        m: usize,
        b: &Self::Buf,
        n: usize,
        k: usize,
        scale: f32,
        out: &mut Self::Buf,
    ) {
        self.run(|exec, _| {
            let op = "matmul_nt";
            fits(op, "a", a.len, m * k)?;
            fits(op, "b", b.len, n * k)?;
            fits(op, "output", out.len, m * n)?;
            gemm(
                exec,
                op,
                &Gemm {
                    x: &a.buf,
                    w: &b.buf,
                    w_dtype: Dtype::F32,
                    bias: None,
                    out: &out.buf,
                    rows: m,
                    n,
                    k,
                    scale,
                    conv: None,
                },
            )
        })
    }

    fn softmax_rows(&self, x: &mut Self::Buf, rows: usize, cols: usize) {
        self.run(|exec, _| {
            let op = "softmax_rows";
            fits(op, "x", x.len, rows * cols)?;
            let args = [Arg::Buf(&x.buf), Arg::U32(w32(op, "cols", cols)?)];
            launch(exec, Kernel::SoftmaxRows, rows, &args)
        })
    }

    fn transpose(&self, x: &Self::Buf, rows: usize, cols: usize, out: &mut Self::Buf) {
        self.run(|exec, _| {
            let op = "transpose";
            fits(op, "x", x.len, rows * cols)?;
            fits(op, "output", out.len, rows * cols)?;
            let args = [
                Arg::Buf(&x.buf),
                Arg::U32(w32(op, "rows", rows)?),
                Arg::U32(w32(op, "cols", cols)?),
                Arg::Buf(&out.buf),
            ];
            launch(exec, Kernel::Transpose, groups_for(rows * cols), &args)
        })
    }
}
