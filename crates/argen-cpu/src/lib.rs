//! argen-cpu: the CPU compute backend of argen.
//!
//! [`Cpu`] implements [`argen_model::Compute`]: f32 activations in `Vec<f32>`, weights kept in
//! their checkpoint dtype (f32, f16, bf16) and widened to f32 inside the GEMM ([`gemm`]), a KV
//! cache preallocated for every slot, tree attention over explicit key lists, and a dedicated
//! set of persistent worker threads ([`par`]) in which the calling thread takes part. After a model is built, a forward pass allocates nothing on the heap
//! (thread-local GEMM / attention scratch grows once, on the first call).
//!
//! Type aliases [`Gpt`], [`Drafter`] and [`VqDecoder`] give the models on this backend; see
//! `docs/runtime.md` for the API, the KV-cache contract and the threading model.

/// `$go!(M)` with the literal `M` for a tile of `$mr` rows (1–7, else 8 = `gemm::MR_WIDE`): the
/// dispatch from a run-time row count to the kernels' const-generic tile heights.
macro_rules! tile_rows {
    ($mr:expr, $go:ident) => {
        match $mr {
            1 => $go!(1),
            2 => $go!(2),
            3 => $go!(3),
            4 => $go!(4),
            5 => $go!(5),
            6 => $go!(6),
            7 => $go!(7),
            _ => $go!(8),
        }
    };
}

pub mod amx;
mod attn;
pub mod fast;
pub mod gemm;
pub mod hugemem;
use hugemem::Buf;
mod ops;
pub mod par;
pub mod probe;
pub mod rows;
mod vmath;

use argen_core::detmath::gelu_tanh_f32;
use argen_model::compute::{AttnRow, Compute, KvDest, KvGeometry, Pos};
use argen_model::safetensors::{Dtype, TensorView};
use argen_model::{ModelError, Result};
use gemm::WRef;
pub use gemm::{Class, Kernels, Variant};
use half::{bf16, f16};
pub use rows::{row_kernels, RowSimd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// The GPT on the CPU backend.
pub type Gpt = argen_model::Gpt<Cpu>;
/// The drafter on the CPU backend.
pub type Drafter = argen_model::Drafter<Cpu>;
/// The VQ decoder on the CPU backend.
pub type VqDecoder = argen_model::VqDecoder<Cpu>;

/// The CPU backend: a handle to its worker threads (cheap to clone).
#[derive(Clone)]
pub struct Cpu {
    pool: Arc<par::Workers>,
    threads: usize,
    kernels: Kernels,
    /// The fastest class that ran on this backend (or a clone of it): 0 exact, 1
    /// avx512-bf16, 2 amx-bf16.
    ran: Arc<AtomicU8>,
}

/// The decoded elements of a checkpoint tensor that is about to be packed: a plain `Vec`, not a
/// [`Buf`]. A short-lived buffer from the huge-page arena would sit between the packed
/// matrices it is dropped among, and returning its pages (`MADV_DONTNEED`) split the huge
/// pages it shared with them (before [`crate::hugemem`] counted buffers per huge page): about a
/// quarter of GPT-B's packed bf16 weights, up to half of a chunk, was in small pages
/// (`/proc/<pid>/smaps`). It also keeps the temporary copy out of the arena's chunks, which
/// are returned to the OS only a whole huge page at a time. (The 1-thread bf16 decode step
/// measured the same either way, within this machine's ±8 % noise: session 8 in
/// `docs/runtime-performance.md`.)
fn staging<T>(len: usize, f: impl FnMut(usize) -> T) -> Vec<T> {
    (0..len).map(f).collect()
}

/// Test inputs: xorshift64 from `seed`, uniform in [−0.5, 0.5) in steps of 2⁻²⁴ (the tests of
/// every kernel module draw from it).
#[cfg(test)]
pub(crate) fn test_rng(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cpu {{ threads: {}, kernels: {:?} }}",
            self.threads, self.kernels
        )
    }
}

/// Whether the environment asks for the fast kernels: `ARGEN_FAST_KERNELS=1` (or `true`).
pub fn fast_kernels_from_env() -> bool {
    std::env::var("ARGEN_FAST_KERNELS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

impl Cpu {
    /// A backend with `threads` worker threads (0 = one per available core): the thread that
    /// calls the model and `threads − 1` helper threads ([`par::Workers`]). Runs the exact
    /// kernels on the CPU's best [`Variant`], or the opt-in fast class where
    /// `ARGEN_FAST_KERNELS=1` ([`Cpu::with_fast_kernels`]).
    pub fn new(threads: usize) -> Result<Cpu> {
        Cpu::with_fast_kernels(threads, fast_kernels_from_env())
    }

    /// As [`Cpu::new`], with the fast kernel class ([`fast`]) on or off whatever the
    /// environment says. The fast class changes the results (its own reduction order);
    /// [`Cpu::kernel_class`] reports whether it ran.
    pub fn with_fast_kernels(threads: usize, fast: bool) -> Result<Cpu> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = par::Workers::new(threads)
            .map_err(|e| ModelError::Input(format!("cannot start {threads} threads: {e}")))?;
        Ok(Cpu {
            pool: Arc::new(pool),
            threads,
            kernels: Kernels {
                variant: gemm::best_variant(),
                fast,
            },
            ran: Arc::new(AtomicU8::new(0)),
        })
    }

    /// The workers, for row work of `elements` elements that is long enough to pay for
    /// splitting it (multi-row verification and batches); `None` on one thread or below
    /// `PARALLEL_MIN` elements (a 2-row decode step's SwiGLU is 4096 elements at GPT-B's
    /// width: the calling thread does it alone).
    fn row_pool(&self, elements: usize) -> Option<&par::Workers> {
        /// Below this many elements one thread does it all.
        const PARALLEL_MIN: usize = 1 << 15;
        (self.threads >= 2 && elements >= PARALLEL_MIN).then_some(&*self.pool)
    }

    /// `f(a, b)` over `a` and `b` (of equal length), split into pieces run on the workers when
    /// `a` is long enough to pay for it (multi-row verification and batches; a decode step's
    /// rows run on the calling thread). For element-wise `f` the bits are the same either way.
    fn elementwise(&self, a: &mut [f32], b: &[f32], f: impl Fn(&mut [f32], &[f32]) + Sync) {
        let n = a.len().min(b.len());
        if self.row_pool(n).is_none() {
            f(&mut a[..n], &b[..n]);
            return;
        }
        // Two pieces per thread, whole 64-byte lines.
        let chunk = n.div_ceil(2 * self.threads).next_multiple_of(16);
        self.pool.chunks_mut(&mut a[..n], chunk, |i, piece| {
            let lo = i * chunk;
            f(piece, &b[lo..lo + piece.len()]);
        });
    }

    /// The kernels this backend runs.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The class of kernels that ran so far: a fast class once any GEMM ran on it, else
    /// [`Class::Exact`] (with `--fast-kernels` on a model without bf16 weights, or a CPU
    /// without AVX512-BF16 or AMX, the results are the exact class's).
    pub fn kernel_class(&self) -> Class {
        match self.ran.load(Ordering::Relaxed) {
            0 => Class::Exact,
            1 => Class::Avx512Bf16,
            _ => Class::AmxBf16,
        }
    }

    /// Whether bf16 matrices are stored in the AMX tile layout (fast kernels on, AMX usable).
    fn amx(&self) -> bool {
        self.kernels.fast && amx::unsupported().is_none()
    }

    /// One GEMM with this backend's kernels, recording the class that ran.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        x: &[f32],
        rows: usize,
        k: usize,
        w: WRef<'_>,
        n: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let class = gemm::gemm_with(
            &self.kernels,
            &self.pool,
            self.tasks(),
            x,
            rows,
            k,
            w,
            n,
            bias,
            out,
        );
        let code = match class {
            Class::Exact => 0,
            Class::Avx512Bf16 => 1,
            Class::AmxBf16 => 2,
        };
        if code > self.ran.load(Ordering::Relaxed) {
            self.ran.store(code, Ordering::Relaxed);
        }
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Column ranges per GEMM: one inline on one thread; with helpers, a few per worker
    /// ([`gemm::Tuning::tasks_per_thread`]), claimed dynamically, so that a helper that wakes
    /// late costs little.
    fn tasks(&self) -> usize {
        if self.threads == 1 {
            1
        } else {
            self.threads * gemm::tuning().tasks_per_thread.max(1)
        }
    }
}

/// Weight storage: the checkpoint's dtype, `[rows, cols]` (higher-rank tensors are flattened to
/// `[dim0, rest]`); vectors row-major; matrices as the CPU's [`gemm::Tuning`] says: half
/// precision in the GEMM's packed tile layout ([`gemm::pack`]), which streams from memory ~1.5×
/// faster at decode than row-major, or class-major ([`gemm::pack_class_major`]); f32 row-major,
/// packed or class-major.
#[derive(Clone, Debug)]
pub struct CpuWeight {
    data: WData,
    rows: usize,
    cols: usize,
}

#[derive(Clone, Debug)]
enum WData {
    F32(Buf<f32>),
    /// `[rows, cols]` in the packed layout of [`gemm::pack`] (CPUs whose [`gemm::Tuning`]
    /// says so).
    F32Packed(Buf<f32>),
    /// `[rows, cols]` in the class-major layout of [`gemm::pack_class_major`] (CPUs whose
    /// [`gemm::Tuning::f32_class_major`] says so).
    F32ClassMajor(Buf<f32>),
    /// `[rows, cols]` in the class-major layout of [`gemm::pack_class_major_f16`].
    F16ClassMajor(Buf<f16>),
    /// `[rows, cols]` in the class-major layout of [`gemm::pack_class_major_bf16`].
    BF16ClassMajor(Buf<bf16>),
    F16(Buf<f16>),
    BF16(Buf<bf16>),
    /// `[rows, cols]` in the packed layout of [`gemm::pack`].
    F16Packed(Buf<f16>),
    /// `[rows, cols]` in the packed layout of [`gemm::pack`].
    BF16Packed(Buf<bf16>),
    /// `[rows, cols]` in the AMX tile layout of [`amx::pack`].
    BF16Amx(Buf<bf16>),
}

impl CpuWeight {
    fn as_ref(&self) -> WRef<'_> {
        match &self.data {
            WData::F32(v) => WRef::F32(v),
            WData::F32Packed(v) => WRef::F32Packed(v),
            WData::F32ClassMajor(v) => WRef::F32ClassMajor(v),
            WData::F16ClassMajor(v) => WRef::F16ClassMajor(v),
            WData::BF16ClassMajor(v) => WRef::BF16ClassMajor(v),
            WData::F16(v) => WRef::F16(v),
            WData::BF16(v) => WRef::BF16(v),
            WData::F16Packed(v) => WRef::F16Packed(v),
            WData::BF16Packed(v) => WRef::BF16Packed(v),
            WData::BF16Amx(v) => WRef::BF16Amx(v),
        }
    }

    /// Element `i` (row-major order) widened to f32.
    fn get(&self, i: usize) -> f32 {
        let p = |i: usize| gemm::packed_index(i / self.cols, i % self.cols, self.cols);
        let pb = |i: usize| gemm::packed_index_bf16(i / self.cols, i % self.cols, self.cols);
        match &self.data {
            WData::F32(v) => v[i],
            WData::F32Packed(v) => v[p(i)],
            WData::F32ClassMajor(v) => {
                v[gemm::class_major_index(i / self.cols, i % self.cols, self.cols)]
            }
            WData::F16ClassMajor(v) => {
                v[gemm::class_major_index(i / self.cols, i % self.cols, self.cols)].to_f32()
            }
            WData::BF16ClassMajor(v) => {
                v[gemm::class_major_index_bf16(i / self.cols, i % self.cols, self.cols)].to_f32()
            }
            WData::F16(v) => v[i].to_f32(),
            WData::BF16(v) => v[i].to_f32(),
            WData::F16Packed(v) => v[p(i)].to_f32(),
            WData::BF16Packed(v) => v[pb(i)].to_f32(),
            WData::BF16Amx(v) => v[amx::index(i / self.cols, i % self.cols, self.cols)].to_f32(),
        }
    }

    /// The elements of a row-major f32, bf16 or f16 weight (norm gains), else [`Gain::Other`].
    fn data_1d(&self) -> Gain<'_> {
        match &self.data {
            WData::F32(v) => Gain::F32(v),
            WData::BF16(v) => Gain::BF16(v),
            WData::F16(v) => Gain::F16(v),
            _ => Gain::Other,
        }
    }

    /// Row `r` widened into `out`.
    fn row_into(&self, r: usize, out: &mut [f32]) {
        let c = self.cols;
        match &self.data {
            WData::F32(v) => out.copy_from_slice(&v[r * c..(r + 1) * c]),
            WData::F32Packed(v) => {
                for (col, o) in out[..c].iter_mut().enumerate() {
                    *o = v[gemm::packed_index(r, col, c)];
                }
            }
            WData::F32ClassMajor(_) | WData::F16ClassMajor(_) | WData::BF16ClassMajor(_) => {
                for (col, o) in out[..c].iter_mut().enumerate() {
                    *o = self.get(r * c + col);
                }
            }
            WData::F16(v) => {
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(&v[r * c..(r + 1) * c], out)
            }
            WData::BF16(v) => {
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(&v[r * c..(r + 1) * c], out)
            }
            WData::F16Packed(v) => {
                for (col, o) in out[..c].iter_mut().enumerate() {
                    *o = v[gemm::packed_index(r, col, c)].to_f32();
                }
            }
            WData::BF16Packed(v) => {
                for (col, o) in out[..c].iter_mut().enumerate() {
                    *o = v[gemm::packed_index_bf16(r, col, c)].to_f32();
                }
            }
            WData::BF16Amx(v) => {
                for (col, o) in out[..c].iter_mut().enumerate() {
                    *o = v[amx::index(r, col, c)].to_f32();
                }
            }
        }
    }

    /// Bytes of the weights (`rows · cols` elements; the packed layout's padding rows of a
    /// last partial tile are not counted).
    pub fn bytes(&self) -> usize {
        let es = match &self.data {
            WData::F32(_) | WData::F32Packed(_) | WData::F32ClassMajor(_) => 4,
            _ => 2,
        };
        es * self.rows * self.cols
    }
}

/// A vector weight's elements in their stored dtype ([`CpuWeight::data_1d`]).
#[derive(Clone, Copy)]
enum Gain<'a> {
    F32(&'a [f32]),
    BF16(&'a [bf16]),
    F16(&'a [f16]),
    Other,
}

/// KV cache: keys and values, `[layer][slot][kv_head][index][head_dim]`.
#[derive(Clone, Debug)]
pub struct CpuKv {
    k: Buf<f32>,
    v: Buf<f32>,
}

fn kv_off(g: &KvGeometry, layer: usize, slot: usize, head: usize, index: usize) -> usize {
    (((layer * g.slots + slot) * g.kv_heads + head) * g.capacity + index) * g.head_dim
}

impl Compute for Cpu {
    type Buf = Vec<f32>;
    type Weight = CpuWeight;
    type Kv = CpuKv;

    fn weight(&self, t: TensorView<'_>) -> Result<CpuWeight> {
        let numel = t.numel();
        // Vectors (norm gains, biases) are one row; matrices and conv kernels are
        // [dim0, rest].
        let rows = if t.shape.len() >= 2 { t.shape[0] } else { 1 };
        let cols = numel.checked_div(rows).unwrap_or(0);
        let data = match t.dtype {
            Dtype::F32 => {
                // Decoded straight into the buffer the weight keeps (row-major) or packs from.
                let d = t.data;
                let at = |i: usize| {
                    f32::from_le_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]])
                };
                let tuning = gemm::tuning();
                if t.shape.len() >= 2 && cols <= tuning.pack_f32_max_k && tuning.f32_class_major {
                    let w = staging(d.len() / 4, at);
                    WData::F32ClassMajor(gemm::pack_class_major(&w, rows, cols))
                } else if t.shape.len() >= 2 && cols <= tuning.pack_f32_max_k {
                    WData::F32Packed(gemm::pack(&staging(d.len() / 4, at), rows, cols, 0.0))
                } else {
                    WData::F32(Buf::from_fn(d.len() / 4, at))
                }
            }
            Dtype::F16 => {
                let d = t.data;
                let at = |i: usize| f16::from_le_bytes([d[2 * i], d[2 * i + 1]]);
                if t.shape.len() >= 2 && gemm::tuning().f16_class_major {
                    let w = staging(d.len() / 2, at);
                    WData::F16ClassMajor(gemm::pack_class_major_f16(&w, rows, cols))
                } else if t.shape.len() >= 2 {
                    WData::F16Packed(gemm::pack(&staging(d.len() / 2, at), rows, cols, f16::ZERO))
                } else {
                    WData::F16(Buf::from_fn(d.len() / 2, at))
                }
            }
            Dtype::BF16 => {
                let d = t.data;
                let at = |i: usize| bf16::from_le_bytes([d[2 * i], d[2 * i + 1]]);
                if t.shape.len() == 2 && self.amx() {
                    // Matrices of linear layers and embeddings (conv kernels are 4-D and stay
                    // on the exact path).
                    WData::BF16Amx(amx::pack(&staging(d.len() / 2, at), rows, cols))
                } else if t.shape.len() >= 2
                    && gemm::tuning().bf16_class_major
                    && self.kernels.class_for(&WRef::BF16Packed(&[])) == Class::Exact
                {
                    // (Where the opt-in fast class runs bf16, it reads the packed tiles.)
                    let w = staging(d.len() / 2, at);
                    WData::BF16ClassMajor(gemm::pack_class_major_bf16(&w, rows, cols))
                } else if t.shape.len() >= 2 {
                    WData::BF16Packed(gemm::pack_bf16(&staging(d.len() / 2, at), rows, cols))
                } else {
                    WData::BF16(Buf::from_fn(d.len() / 2, at))
                }
            }
            Dtype::Other(_) => {
                return Err(ModelError::Input(format!(
                    "dtype {} cannot be used as a weight",
                    t.dtype.name()
                )))
            }
        };
        Ok(CpuWeight { data, rows, cols })
    }

    fn weight_f32(&self, data: &[f32], rows: usize, cols: usize) -> Result<CpuWeight> {
        Ok(CpuWeight {
            data: WData::F32(Buf::from_slice(data)),
            rows,
            cols,
        })
    }

    fn buf(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn upload(&self, dst: &mut Vec<f32>, offset: usize, src: &[f32]) -> Result<()> {
        dst[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }

    fn download(&self, src: &Vec<f32>, offset: usize, dst: &mut [f32]) -> Result<()> {
        dst.copy_from_slice(&src[offset..offset + dst.len()]);
        Ok(())
    }

    fn kv(&self, g: KvGeometry) -> Result<CpuKv> {
        let n = g.layers * g.slots * g.kv_heads * g.capacity * g.head_dim;
        Ok(CpuKv {
            // Huge pages where the OS allows (`hugemem`): attention streams every cached row.
            k: Buf::zeroed(n),
            v: Buf::zeroed(n),
        })
    }

    fn embed(&self, table: &CpuWeight, cols: usize, ids: &[u32], out: &mut Vec<f32>) {
        for (r, &id) in ids.iter().enumerate() {
            table.row_into(id as usize, &mut out[r * cols..(r + 1) * cols]);
        }
    }

    fn gather_rows(&self, x: &Vec<f32>, cols: usize, rows: &[u32], out: &mut Vec<f32>) {
        for (r, &s) in rows.iter().enumerate() {
            let s = s as usize;
            out[r * cols..(r + 1) * cols].copy_from_slice(&x[s * cols..(s + 1) * cols]);
        }
    }

    fn linear(
        &self,
        x: &Vec<f32>,
        rows: usize,
        w: &CpuWeight,
        bias: Option<&CpuWeight>,
        out: &mut Vec<f32>,
    ) {
        let b = bias.and_then(|b| match &b.data {
            WData::F32(v) => Some(&v[..]),
            _ => None,
        });
        if bias.is_some() && b.is_none() {
            // Half-precision bias: widen once (load-time sized, not per token for the GPT,
            // which has no biases).
            let wide: Vec<f32> = (0..w.rows)
                .map(|i| bias.map_or(0.0, |b| b.get(i)))
                .collect();
            self.gemm(x, rows, w.cols, w.as_ref(), w.rows, Some(&wide), out);
            return;
        }
        self.gemm(x, rows, w.cols, w.as_ref(), w.rows, b, out);
    }

    fn rms_norm(&self, x: &Vec<f32>, rows: usize, w: &CpuWeight, eps: f32, out: &mut Vec<f32>) {
        ops::rms_norm(x, rows, w, eps, out, self.row_pool(rows * w.cols))
    }

    fn add_assign(&self, x: &mut Vec<f32>, y: &Vec<f32>, len: usize) {
        self.elementwise(&mut x[..len], &y[..len], |a, b| {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b)
        });
    }

    fn silu_mul(&self, a: &mut Vec<f32>, b: &Vec<f32>, len: usize) {
        let variant = self.kernels.variant;
        self.elementwise(&mut a[..len], &b[..len], |a, b| {
            vmath::silu_mul(variant, a, b)
        });
    }

    fn gelu_tanh(&self, a: &mut Vec<f32>, len: usize) {
        a[..len].iter_mut().for_each(|x| *x = gelu_tanh_f32(*x));
    }

    fn rope_store(
        &self,
        qkv: &mut Vec<f32>,
        g: &KvGeometry,
        freqs: &Vec<f32>,
        rot: &[Pos],
        kv: &mut CpuKv,
        layer: usize,
        dest: &[KvDest],
    ) {
        let hd = g.head_dim;
        let stride = (g.heads + 2 * g.kv_heads) * hd;
        let rotated = (g.heads + g.kv_heads) * hd;
        let rows = rot.len().min(dest.len());
        // Many rows on several threads: the rotations first, split over the workers (each row
        // the same arithmetic, so the same bits), then the cache stores.
        let pool = self.row_pool(rows * stride);
        if let Some(pool) = pool {
            pool.rows_mut(&mut qkv[..rows * stride], stride, |r0, piece| {
                for (row, &pos) in piece.chunks_exact_mut(stride).zip(&rot[r0..]) {
                    ops::rope_row(&mut row[..rotated], hd, freqs, pos);
                }
            });
        }
        for (r, (&pos, d)) in rot.iter().zip(dest).enumerate() {
            let row = &mut qkv[r * stride..(r + 1) * stride];
            if pool.is_none() {
                ops::rope_row(&mut row[..rotated], hd, freqs, pos);
            }
            for h in 0..g.kv_heads {
                let o = kv_off(g, layer, d.slot as usize, h, d.index as usize);
                let ks = (g.heads + h) * hd;
                let vs = (g.heads + g.kv_heads + h) * hd;
                kv.k[o..o + hd].copy_from_slice(&row[ks..ks + hd]);
                kv.v[o..o + hd].copy_from_slice(&row[vs..vs + hd]);
            }
        }
    }

    fn attention(
        &self,
        qkv: &Vec<f32>,
        g: &KvGeometry,
        kv: &CpuKv,
        layer: usize,
        rows: &[AttnRow],
        extra: &[u32],
        out: &mut Vec<f32>,
    ) {
        attn::attention(
            &self.pool,
            self.kernels.variant,
            qkv,
            g,
            kv,
            layer,
            rows,
            extra,
            out,
        )
    }

    fn kv_move(
        &self,
        kv: &mut CpuKv,
        g: &KvGeometry,
        slot: usize,
        src: usize,
        dst: usize,
        n: usize,
    ) {
        for layer in 0..g.layers {
            for h in 0..g.kv_heads {
                let base = kv_off(g, layer, slot, h, 0);
                let (s, d) = (base + src * g.head_dim, base + dst * g.head_dim);
                let len = n * g.head_dim;
                kv.k.copy_within(s..s + len, d);
                kv.v.copy_within(s..s + len, d);
            }
        }
    }

    fn conv2d(
        &self,
        x: &Vec<f32>,
        h: usize,
        w: usize,
        cin: usize,
        weight: &CpuWeight,
        bias: Option<&CpuWeight>,
        cout: usize,
        k: usize,
        out: &mut Vec<f32>,
    ) {
        let wide: Option<Vec<f32>> = bias.map(|b| (0..cout).map(|i| b.get(i)).collect());
        ops::conv2d(
            &self.pool,
            self.tasks(),
            x,
            h,
            w,
            cin,
            weight.as_ref(),
            wide.as_deref(),
            cout,
            k,
            out,
        )
    }

    fn group_norm(
        &self,
        x: &Vec<f32>,
        pixels: usize,
        c: usize,
        groups: usize,
        gamma: &CpuWeight,
        beta: &CpuWeight,
        eps: f32,
        silu: bool,
        out: &mut Vec<f32>,
    ) {
        ops::group_norm(
            &self.pool,
            self.kernels.variant,
            x,
            pixels,
            c,
            groups,
            gamma,
            beta,
            eps,
            silu,
            out,
        )
    }

    fn upsample2x(&self, x: &Vec<f32>, h: usize, w: usize, c: usize, out: &mut Vec<f32>) {
        for y in 0..2 * h {
            for xx in 0..2 * w {
                let s = ((y / 2) * w + xx / 2) * c;
                let d = (y * 2 * w + xx) * c;
                out[d..d + c].copy_from_slice(&x[s..s + c]);
            }
        }
    }

    fn matmul_nt(
        &self,
        a: &Vec<f32>,
        m: usize,
        b: &Vec<f32>,
        n: usize,
        k: usize,
        scale: f32,
        out: &mut Vec<f32>,
    ) {
        gemm::gemm(
            &self.pool,
            self.tasks(),
            a,
            m,
            k,
            WRef::F32(&b[..n * k]),
            n,
            None,
            out,
        );
        if scale != 1.0 {
            out[..m * n].iter_mut().for_each(|v| *v *= scale);
        }
    }

    fn softmax_rows(&self, x: &mut Vec<f32>, rows: usize, cols: usize) {
        for r in x[..rows * cols].chunks_exact_mut(cols) {
            attn::softmax(self.kernels.variant, r);
        }
    }

    fn transpose(&self, x: &Vec<f32>, rows: usize, cols: usize, out: &mut Vec<f32>) {
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = x[r * cols + c];
            }
        }
    }
}

impl Cpu {
    /// Total weight bytes of a set of weights (for bandwidth accounting in benches).
    pub fn weight_bytes(ws: &[&CpuWeight]) -> usize {
        ws.iter().map(|w| w.bytes()).sum()
    }
}

#[cfg(test)]
mod elementwise_tests {
    use super::*;

    /// SwiGLU's product and the residual add give the same bits on one thread and split over
    /// two (lengths below, at and above the split threshold, and not a multiple of 16).
    #[test]
    fn element_wise_ops_do_not_depend_on_threads() {
        let (one, two) = (Cpu::new(1).unwrap(), Cpu::new(2).unwrap());
        let mut r = test_rng(3);
        for n in [1000usize, 1 << 15, (1 << 15) + 4093, 200_003] {
            let a: Vec<f32> = (0..n).map(|_| 8.0 * r()).collect();
            let b: Vec<f32> = (0..n).map(|_| 8.0 * r()).collect();
            let results = [&one, &two].map(|cpu| {
                let (mut s, mut t) = (a.clone(), a.clone());
                cpu.silu_mul(&mut s, &b, n);
                cpu.add_assign(&mut t, &b, n);
                (s, t)
            });
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&results[0].0),
                bits(&results[1].0),
                "silu_mul, n = {n}"
            );
            assert_eq!(
                bits(&results[0].1),
                bits(&results[1].1),
                "add_assign, n = {n}"
            );
            // And the same as the element-wise definitions.
            for i in 0..n {
                assert_eq!(results[0].1[i].to_bits(), (a[i] + b[i]).to_bits());
            }
        }
    }

    /// The rotary embedding and cache stores of many rows, split over two or three threads,
    /// give the same bits as on one (row counts below and above the split threshold, and
    /// not a multiple of the pieces).
    #[test]
    fn rope_store_does_not_depend_on_threads() {
        let g = KvGeometry {
            layers: 2,
            slots: 2,
            kv_heads: 4,
            heads: 8,
            head_dim: 64,
            capacity: 64,
        };
        let stride = (g.heads + 2 * g.kv_heads) * g.head_dim;
        let mut r = test_rng(11);
        // 16 × 16 grid positions, `head_dim / 4` angle pairs each.
        let freqs: Vec<f32> = (0..16 * g.head_dim / 2).map(|_| r()).collect();
        let cpus = [1, 2, 3].map(|t| Cpu::new(t).unwrap());
        for rows in [3usize, 9, 37] {
            let qkv: Vec<f32> = (0..rows * stride).map(|_| 4.0 * r()).collect();
            let rot: Vec<Pos> = (0..rows)
                .map(|i| {
                    if i == 1 {
                        Pos::Cond
                    } else {
                        Pos::Grid {
                            row: (i / 16) as u32,
                            col: (i % 16) as u32,
                        }
                    }
                })
                .collect();
            let dest: Vec<KvDest> = (0..rows)
                .map(|i| KvDest {
                    slot: (i % 2) as u32,
                    index: (i / 2) as u32,
                })
                .collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let results = cpus.each_ref().map(|cpu| {
                let mut q = qkv.clone();
                let mut kv = cpu.kv(g).unwrap();
                cpu.rope_store(&mut q, &g, &freqs, &rot, &mut kv, 1, &dest);
                (bits(&q), bits(&kv.k), bits(&kv.v))
            });
            if rows == 37 {
                assert!(rows * stride >= 1 << 15, "the split path is exercised");
            }
            for res in &results[1..] {
                assert!(res == &results[0], "rows {rows}");
            }
        }
    }
}
