//! `out[r, n] = Σ_k x[r, k] · w[n, k] (+ bias[n])` with weights in f32, f16 or bf16, computed in
//! f32.
//!
//! # Loop structure
//! The output columns (weight rows) are split into `tasks` contiguous ranges of whole
//! [`NR`]-column tiles, one per parallel task. A task walks its range in *column blocks* sized so
//! that the block's weights (`cb · k` elements) stay in L2 (~192 KiB); for each column block it
//! walks the input rows in *row blocks* of at most three rows, and for each row block it runs
//! the register-tiled micro-kernel over the block's `NR`-column tiles. The micro-kernel keeps
//! `MR × NR` (≤ 3 × 4) accumulators of 8 f32 lanes in AVX2 registers, loads each input vector
//! once per `k` step and each weight vector once per `k` step, widening half-precision weights in
//! registers (bf16: zero-extend u16 → u32 and shift left by 16; f16: F16C `vcvtph2ps`). Weights
//! are therefore read from memory once per call whatever the row count, and every weight byte
//! loaded into a register is used for all rows of the block (both CFG rows at decode). While it
//! streams a tile the kernel prefetches the next tile's rows (the hardware prefetcher alone keeps
//! too few of these short row streams in flight).
//!
//! # Reduction order (determinism contract)
//! Every output element is computed the same way, whatever the row count, the batch
//! composition, the tile an element falls in, the column/row blocking or the number of threads:
//! 1. eight lane accumulators `acc[l] = fma(x[k], w[k], acc[l])` over `k = l, l + 8, …` for
//!    `k < ⌊K/8⌋·8`, in increasing `k`;
//! 2. the lanes are summed in the fixed tree `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`;
//! 3. the scalar tail `k = ⌊K/8⌋·8 … K-1` is accumulated onto that sum with `fma`, in order;
//! 4. the bias (if any) is added last.
//!
//! Widening f16/bf16 to f32 is exact, so it does not matter where it happens. The portable
//! fallback (no AVX2/FMA/F16C) uses `f32::mul_add` in the same lane structure and the same tree,
//! so it matches the AVX2 path bit for bit (tested below). A row's result is therefore
//! bit-identical whether it is computed alone or in a batch.

use crate::par::Workers;
use half::{bf16, f16};

/// A borrowed weight matrix `[n, k]`.
#[derive(Clone, Copy, Debug)]
pub enum WRef<'a> {
    /// f32 weights.
    F32(&'a [f32]),
    /// f16 weights.
    F16(&'a [f16]),
    /// bf16 weights.
    BF16(&'a [bf16]),
}

/// Columns (weight rows) per micro-kernel tile.
pub const NR: usize = 4;
/// Most input rows per micro-kernel tile.
pub const MR: usize = 3;
/// Target bytes of weights per column block (kept in L2 while every row block passes over it).
const BLOCK_BYTES: usize = 192 << 10;
/// Prefetch distance past the next tile's offset, in bytes.
const PF_BYTES: usize = 64;

/// Which kernel implementation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// Scalar `mul_add` code with the AVX2 lane structure.
    Portable,
    /// AVX2 + FMA + F16C intrinsics.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// A weight element type: widened exactly to f32.
trait Elem: Copy + Send + Sync {
    /// Size in bytes.
    const BYTES: usize;
    /// Exact widening to f32.
    fn widen(self) -> f32;
}

impl Elem for f32 {
    const BYTES: usize = 4;
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Elem for bf16 {
    const BYTES: usize = 2;
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

impl Elem for f16 {
    const BYTES: usize = 2;
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the pointer is only used to write disjoint output columns from different tasks
// (see `gemm`), and the buffer outlives the parallel section.
unsafe impl Send for OutPtr {}
// SAFETY: as above; shared only to be copied into tasks that write disjoint elements.
unsafe impl Sync for OutPtr {}

#[allow(clippy::too_many_arguments)]
/// Computes `out[..rows·n]` (row-major `[rows, n]`) from `x[..rows·k]` and `w` (`[n, k]`),
/// splitting the columns into `tasks` ranges run on `workers`.
pub fn gemm(
    workers: &Workers,
    tasks: usize,
    x: &[f32],
    rows: usize,
    k: usize,
    w: WRef<'_>,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    gemm_isa(detect(), workers, tasks, x, rows, k, w, n, bias, out)
}

#[allow(clippy::too_many_arguments)]
fn gemm_isa(
    isa: Isa,
    workers: &Workers,
    tasks: usize,
    x: &[f32],
    rows: usize,
    k: usize,
    w: WRef<'_>,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let wlen = match w {
        WRef::F32(s) => s.len(),
        WRef::F16(s) => s.len(),
        WRef::BF16(s) => s.len(),
    };
    assert!(
        x.len() >= rows * k
            && out.len() >= rows * n
            && wlen >= n * k
            && bias.is_none_or(|b| b.len() >= n),
        "gemm buffers too small"
    );
    if rows == 0 || n == 0 {
        return;
    }
    let ptr = OutPtr(out.as_mut_ptr());
    // Tile-aligned column ranges.
    let tiles = n.div_ceil(NR);
    let tasks = tasks.clamp(1, tiles);
    let per = tiles.div_ceil(tasks);
    let run = |t: usize| {
        let n0 = (t * per * NR).min(n);
        let n1 = ((t + 1) * per * NR).min(n);
        if n0 < n1 {
            let a = Args {
                isa,
                x,
                rows,
                k,
                n,
                n0,
                n1,
                bias,
                out: ptr,
            };
            // SAFETY: task t writes only columns n0..n1 of the rows*n output, and the column
            // ranges of distinct tasks are disjoint; `out` is borrowed mutably for the call and
            // holds rows*n floats (asserted above), as do `x` (rows*k) and `w` (n*k).
            unsafe {
                match w {
                    WRef::F32(s) => task(&a, s),
                    WRef::F16(s) => task(&a, s),
                    WRef::BF16(s) => task(&a, s),
                }
            }
        }
    };
    workers.run(tasks, run);
}

/// Per-task arguments.
struct Args<'a> {
    isa: Isa,
    x: &'a [f32],
    rows: usize,
    k: usize,
    n: usize,
    n0: usize,
    n1: usize,
    bias: Option<&'a [f32]>,
    out: OutPtr,
}

/// Input rows in the next row block, given `rem` rows left: three at a time, but never leaving
/// a lone row behind when it can be avoided (4 → 2 + 2).
#[inline]
fn row_block(rem: usize) -> usize {
    match rem {
        0..=2 => rem,
        4 => 2,
        _ => MR,
    }
}

/// # Safety
/// `out` must point to a `rows·n` buffer of which this call is the only writer of columns
/// `n0..n1`; `x` holds `rows·k` floats and `w` holds `n·k` elements.
unsafe fn task<W: Elem + Kernel>(a: &Args<'_>, w: &[W]) {
    #[cfg(target_arch = "x86_64")]
    if a.isa == Isa::Avx2 && a.rows <= 2 && std::env::var_os("X_OFF").is_none() {
        let (m1, m2) = exp_shape();
        // SAFETY: forwarded from the caller's contract; the ISA is Avx2.
        unsafe {
            match (a.rows, m1, m2) {
                (1, 4, _) => stream_task::<W, 1, 4>(a, w),
                (1, 6, _) => stream_task::<W, 1, 6>(a, w),
                (1, _, _) => stream_task::<W, 1, 8>(a, w),
                (_, _, 4) => stream_task::<W, 2, 4>(a, w),
                (_, _, 5) => stream_task::<W, 2, 5>(a, w),
                _ => stream_task::<W, 2, 6>(a, w),
            }
        }
        return;
    }
    let k = a.k;
    let cb = (BLOCK_BYTES / (k * W::BYTES).max(1) / NR).max(1) * NR;
    let mut c0 = a.n0;
    while c0 < a.n1 {
        let c1 = (c0 + cb).min(a.n1);
        let mut r = 0;
        while r < a.rows {
            let mr = row_block(a.rows - r);
            // Prefetch offset in elements (0: none in effect): the next tile, see the kernel.
            // The first pass over a column block streams it from memory. Later passes find
            // the block in L2: prefetching into L1 then helps half-precision tiles (4 rows of
            // ≤ 4 KiB; f16 at 32 rows 29 → 57 GFLOP/s) but evicts the f32 tile in use (8 KiB
            // rows at k = 2048; f32 at 32 rows 64 → 47 GFLOP/s), so f32 skips it.
            let pf = if r == 0 || W::BYTES == 2 {
                NR * k + PF_BYTES / W::BYTES
            } else {
                0
            };
            let mut j = c0;
            while j < c1 {
                let nr = (c1 - j).min(NR);
                // Short tiles repeat their last column; the duplicates are not stored.
                let wp: [*const W; NR] =
                    std::array::from_fn(|i| w[(j + i.min(nr - 1)) * k..].as_ptr());
                let xp = |i: usize| a.x[(r + i.min(mr - 1)) * k..].as_ptr();
                let mut acc = [[0f32; NR]; MR];
                // SAFETY: every pointer addresses at least k elements (asserted in gemm_isa),
                // and `Isa::Avx2` is only chosen when the CPU has AVX2, FMA and F16C.
                unsafe {
                    match mr {
                        1 => W::tile::<1>(a.isa, [xp(0)], wp, k, pf, &mut acc),
                        2 => W::tile::<2>(a.isa, [xp(0), xp(1)], wp, k, pf, &mut acc),
                        _ => W::tile::<3>(a.isa, [xp(0), xp(1), xp(2)], wp, k, pf, &mut acc),
                    }
                }
                for (mi, accm) in acc.iter().enumerate().take(mr) {
                    for (ni, &v) in accm.iter().enumerate().take(nr) {
                        let v = match a.bias {
                            Some(b) => v + b[j + ni],
                            None => v,
                        };
                        // SAFETY: (r+mi, j+ni) is inside rows x n and j+ni is in n0..n1, which
                        // only this task writes.
                        unsafe { *a.out.0.add((r + mi) * a.n + j + ni) = v };
                    }
                }
                j += nr;
            }
            r += mr;
        }
        c0 = c1;
    }
}

fn exp_shape() -> (usize, usize) {
    static S: std::sync::OnceLock<(usize, usize, usize, usize)> = std::sync::OnceLock::new();
    let v = S.get_or_init(|| {
        let g = |n: &str, d: usize| {
            std::env::var(n)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        (g("X_N1", 8), g("X_N2", 6), g("X_PFT", 1), g("X_PFB", 64))
    });
    (v.0, v.1)
}

fn exp_pf() -> (usize, usize) {
    exp_shape();
    static S: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    *S.get_or_init(|| {
        let g = |n: &str, d: usize| {
            std::env::var(n)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        (g("X_PFT", 1), g("X_PFB", 64))
    })
}

/// Streaming path for one or two rows (AVX2).
///
/// # Safety
/// As [`task`]; the CPU has AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
unsafe fn stream_task<W: Elem + Kernel, const M: usize, const N: usize>(a: &Args<'_>, w: &[W]) {
    let k = a.k;
    let (pft, pfb) = exp_pf();
    let pf = pft * N * k + pfb / W::BYTES;
    let mut j = a.n0;
    while j < a.n1 {
        let nr = (a.n1 - j).min(N);
        let wp: [*const W; N] = std::array::from_fn(|i| w[(j + i.min(nr - 1)) * k..].as_ptr());
        let xp: [*const f32; M] = std::array::from_fn(|m| a.x[m * k..].as_ptr());
        let mut acc = [[0f32; N]; M];
        // SAFETY: every pointer addresses at least k elements; AVX2 per the caller.
        unsafe { W::stream::<M, N>(xp, wp, k, pf, &mut acc) };
        for (mi, accm) in acc.iter().enumerate() {
            for (ni, &v) in accm.iter().enumerate().take(nr) {
                let v = match a.bias {
                    Some(b) => v + b[j + ni],
                    None => v,
                };
                // SAFETY: (mi, j+ni) is inside rows x n and j+ni is in n0..n1, which only this
                // task writes.
                unsafe { *a.out.0.add(mi * a.n + j + ni) = v };
            }
        }
        j += nr;
    }
}

/// Micro-kernel dispatch for one weight element type.
trait Kernel: Elem {
    /// `acc[m][j] = Σ_k x[m][k] · w[j][k]` for `m < M`, `j < NR`, in the module's reduction order.
    ///
    /// # Safety
    /// Every pointer addresses at least `k` readable elements; `isa` is supported by the CPU.
    unsafe fn tile<const M: usize>(
        isa: Isa,
        x: [*const f32; M],
        w: [*const Self; NR],
        k: usize,
        pf: usize,
        acc: &mut [[f32; NR]; MR],
    );

    /// Streaming kernel for one or two rows: `acc[m][j] = Σ_k x[m][k] · w[j][k]` for `m < M`,
    /// `j < N`, same reduction order, AVX2 only.
    ///
    /// # Safety
    /// Every pointer addresses at least `k` readable elements; the CPU has AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn stream<const M: usize, const N: usize>(
        x: [*const f32; M],
        w: [*const Self; N],
        k: usize,
        pf: usize,
        acc: &mut [[f32; N]; M],
    );
}

macro_rules! kernel_impl {
    ($t:ty, $avx:ident, $stream:ident) => {
        impl Kernel for $t {
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            unsafe fn stream<const M: usize, const N: usize>(
                x: [*const f32; M],
                w: [*const Self; N],
                k: usize,
                pf: usize,
                acc: &mut [[f32; N]; M],
            ) {
                // SAFETY: forwarded from the caller's contract.
                unsafe { avx2::$stream::<M, N>(x, w, k, pf, acc) }
            }

            #[inline(always)]
            unsafe fn tile<const M: usize>(
                isa: Isa,
                x: [*const f32; M],
                w: [*const Self; NR],
                k: usize,
                pf: usize,
                acc: &mut [[f32; NR]; MR],
            ) {
                match isa {
                    // SAFETY: forwarded from the caller's contract.
                    Isa::Portable => unsafe { portable_tile::<$t, M>(x, w, k, acc) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: forwarded from the caller's contract (Avx2 only when supported).
                    Isa::Avx2 => unsafe { avx2::$avx::<M>(x, w, k, pf, acc) },
                }
            }
        }
    };
}
kernel_impl!(f32, tile_f32, stream_f32);
kernel_impl!(bf16, tile_bf16, stream_bf16);
kernel_impl!(f16, tile_f16, stream_f16);

/// The fixed lane tree of the reduction order.
#[inline(always)]
fn hsum(a: [f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// Portable micro-kernel with the AVX2 lane structure.
///
/// # Safety
/// Every pointer addresses at least `k` readable elements.
unsafe fn portable_tile<W: Elem, const M: usize>(
    x: [*const f32; M],
    w: [*const W; NR],
    k: usize,
    acc: &mut [[f32; NR]; MR],
) {
    // SAFETY: the caller guarantees k readable elements behind each pointer.
    let xs: [&[f32]; M] = std::array::from_fn(|m| unsafe { std::slice::from_raw_parts(x[m], k) });
    // SAFETY: as above.
    let ws: [&[W]; NR] = std::array::from_fn(|j| unsafe { std::slice::from_raw_parts(w[j], k) });
    let kb = k / 8 * 8;
    let mut lanes = [[[0f32; 8]; NR]; M];
    let mut i = 0;
    while i < kb {
        for j in 0..NR {
            let wv: [f32; 8] = std::array::from_fn(|l| ws[j][i + l].widen());
            for m in 0..M {
                for l in 0..8 {
                    lanes[m][j][l] = xs[m][i + l].mul_add(wv[l], lanes[m][j][l]);
                }
            }
        }
        i += 8;
    }
    for m in 0..M {
        for j in 0..NR {
            let mut t = hsum(lanes[m][j]);
            for kk in kb..k {
                t = xs[m][kk].mul_add(ws[j][kk].widen(), t);
            }
            acc[m][j] = t;
        }
    }
}

/// Dot product of two vectors with the reduction order of [`gemm`].
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let k = a.len().min(b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if detect() == Isa::Avx2 {
            // SAFETY: the CPU supports AVX2 and FMA (checked above); both slices hold >= k
            // floats.
            return unsafe { avx2::dot(a.as_ptr(), b.as_ptr(), k) };
        }
    }
    portable_dot(&a[..k], &b[..k])
}

/// `y[i] = fma(a, x[i], y[i])` for `i < min(len)`: element-wise, so the AVX2 path and the
/// portable path give identical bits (one rounding per element either way).
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    let k = x.len().min(y.len());
    #[cfg(target_arch = "x86_64")]
    {
        if detect() == Isa::Avx2 {
            // SAFETY: the CPU supports AVX2 and FMA (checked above); both slices hold >= k
            // floats and `y` is exclusively borrowed.
            unsafe { avx2::axpy(a, x.as_ptr(), y.as_mut_ptr(), k) };
            return;
        }
    }
    for (o, &v) in y[..k].iter_mut().zip(&x[..k]) {
        *o = a.mul_add(v, *o);
    }
}

fn portable_dot(a: &[f32], b: &[f32]) -> f32 {
    let k = a.len();
    let kb = k / 8 * 8;
    let mut lanes = [0f32; 8];
    for (ca, cb) in a[..kb].chunks_exact(8).zip(b[..kb].chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] = ca[l].mul_add(cb[l], lanes[l]);
        }
    }
    let mut t = hsum(lanes);
    for kk in kb..k {
        t = a[kk].mul_add(b[kk], t);
    }
    t
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Elem, MR, NR};
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// Horizontal sum in the fixed tree `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        // [a0+a4, a1+a5, a2+a6, a3+a7]
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        // [(a0+a4)+(a2+a6), (a1+a5)+(a3+a7), ..]
        let t = _mm_add_ps(s, _mm_movehl_ps(s, s));
        // lane0 + lane1
        let u = _mm_add_ss(t, _mm_shuffle_ps::<0b01>(t, t));
        _mm_cvtss_f32(u)
    }

    /// Shared body: `|p| load` yields the 8 widened weights at `p`.
    macro_rules! tile_body {
        ($name:ident, $t:ty, |$p:ident| $load:block) => {
            /// AVX2 micro-kernel for one weight element type (see the module docs).
            ///
            /// # Safety
            /// Requires AVX2, FMA and F16C; every pointer addresses at least `k` elements.
            #[inline]
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $name<const M: usize>(
                x: [*const f32; M],
                w: [*const $t; NR],
                k: usize,
                pf: usize,
                acc: &mut [[f32; NR]; MR],
            ) {
                let kb = k / 8 * 8;
                let mut a = [[_mm256_setzero_ps(); NR]; M];
                let mut i = 0;
                while i < kb {
                    // SAFETY: i + 8 <= kb <= k and every pointer addresses >= k elements.
                    unsafe {
                        let xv: [__m256; M] = std::array::from_fn(|m| _mm256_loadu_ps(x[m].add(i)));
                        for j in 0..NR {
                            // Software prefetch of the same offset in the *next* tile's
                            // rows (`NR·k` elements on) plus one line: the hardware
                            // prefetcher alone keeps too few short row streams in flight
                            // (measured on one core at 2 rows: bf16 9.6 → 12.9 GB/s, f32
                            // 16.5 → 18.3 GB/s). `wrapping_add`: the address may lie past
                            // the matrix, and a prefetch never faults.
                            // `pf == 0` prefetches the line being loaded: a no-op, cheaper
                            // than a branch here (which cost bf16 at 32 rows a third).
                            _mm_prefetch::<_MM_HINT_T0>(w[j].wrapping_add(i + pf) as *const i8);
                            let wv: __m256 = {
                                let $p = w[j].add(i);
                                $load
                            };
                            for m in 0..M {
                                a[m][j] = _mm256_fmadd_ps(xv[m], wv, a[m][j]);
                            }
                        }
                    }
                    i += 8;
                }
                for m in 0..M {
                    for j in 0..NR {
                        let mut t = hsum(a[m][j]);
                        for kk in kb..k {
                            // SAFETY: kk < k.
                            unsafe {
                                t = (*x[m].add(kk)).mul_add((*w[j].add(kk)).widen(), t);
                            }
                        }
                        acc[m][j] = t;
                    }
                }
            }
        };
    }

    /// Shared body of the streaming kernels: `|p| load` yields the 8 widened weights at `p`.
    macro_rules! stream_body {
        ($name:ident, $t:ty, |$p:ident| $load:block, |$q:ident| $load16:block) => {
            /// AVX2 streaming kernel for one weight element type (see `stream_task`).
            ///
            /// # Safety
            /// Requires AVX2, FMA and F16C; every pointer addresses at least `k` elements.
            #[inline]
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $name<const M: usize, const N: usize>(
                x: [*const f32; M],
                w: [*const $t; N],
                k: usize,
                pf: usize,
                acc: &mut [[f32; N]; M],
            ) {
                // Elements per 64-byte cache line.
                const L: usize = 64 / std::mem::size_of::<$t>();
                let kl = k / L * L;
                let kb = k / 8 * 8;
                let mut a = [[_mm256_setzero_ps(); N]; M];
                let mut i = 0;
                while i < kl {
                    // SAFETY: i + L <= kl <= k and every pointer addresses >= k elements.
                    unsafe {
                        for wj in w {
                            _mm_prefetch::<_MM_HINT_T0>(wj.wrapping_add(i + pf) as *const i8);
                        }
                        for s in 0..L / 16 {
                            let o = i + 16 * s;
                            let xl: [__m256; M] =
                                std::array::from_fn(|m| _mm256_loadu_ps(x[m].add(o)));
                            let xh: [__m256; M] =
                                std::array::from_fn(|m| _mm256_loadu_ps(x[m].add(o + 8)));
                            for j in 0..N {
                                let (wl, wh): (__m256, __m256) = {
                                    let $q = w[j].add(o);
                                    $load16
                                };
                                for m in 0..M {
                                    a[m][j] = _mm256_fmadd_ps(xl[m], wl, a[m][j]);
                                }
                                for m in 0..M {
                                    a[m][j] = _mm256_fmadd_ps(xh[m], wh, a[m][j]);
                                }
                            }
                        }
                    }
                    i += L;
                }
                while i < kb {
                    // SAFETY: i + 8 <= kb <= k.
                    unsafe {
                        let xv: [__m256; M] = std::array::from_fn(|m| _mm256_loadu_ps(x[m].add(i)));
                        for j in 0..N {
                            let wv: __m256 = {
                                let $p = w[j].add(i);
                                $load
                            };
                            for m in 0..M {
                                a[m][j] = _mm256_fmadd_ps(xv[m], wv, a[m][j]);
                            }
                        }
                    }
                    i += 8;
                }
                for m in 0..M {
                    for j in 0..N {
                        let mut t = hsum(a[m][j]);
                        for kk in kb..k {
                            // SAFETY: kk < k.
                            unsafe {
                                t = (*x[m].add(kk)).mul_add((*w[j].add(kk)).widen(), t);
                            }
                        }
                        acc[m][j] = t;
                    }
                }
            }
        };
    }

    stream_body!(stream_f32, f32, |p| { _mm256_loadu_ps(p) }, |q| {
        (_mm256_loadu_ps(q), _mm256_loadu_ps(q.add(8)))
    });
    stream_body!(stream_bf16, bf16, |p| {
        let h = _mm_loadu_si128(p as *const __m128i);
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    }, |q| {
        let lo = _mm256_cvtepu16_epi32(_mm_loadu_si128(q as *const __m128i));
        let hi = _mm256_cvtepu16_epi32(_mm_loadu_si128(q.add(8) as *const __m128i));
        (
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(lo)),
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(hi)),
        )
    });
    stream_body!(stream_f16, f16, |p| {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }, |q| {
        (
            _mm256_cvtph_ps(_mm_loadu_si128(q as *const __m128i)),
            _mm256_cvtph_ps(_mm_loadu_si128(q.add(8) as *const __m128i)),
        )
    });

    tile_body!(tile_f32, f32, |p| { _mm256_loadu_ps(p) });
    tile_body!(tile_bf16, bf16, |p| {
        let h = _mm_loadu_si128(p as *const __m128i);
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    });
    tile_body!(tile_f16, f16, |p| {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    });

    /// `y[i] = fma(a, x[i], y[i])`.
    ///
    /// # Safety
    /// Requires AVX2 and FMA; `x` and `y` address at least `k` floats, `y` writable and not
    /// aliased.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(a: f32, x: *const f32, y: *mut f32, k: usize) {
        let av = _mm256_set1_ps(a);
        let kb = k / 8 * 8;
        let mut i = 0;
        while i < kb {
            // SAFETY: i + 8 <= k.
            unsafe {
                let r = _mm256_fmadd_ps(av, _mm256_loadu_ps(x.add(i)), _mm256_loadu_ps(y.add(i)));
                _mm256_storeu_ps(y.add(i), r);
            }
            i += 8;
        }
        for kk in kb..k {
            // SAFETY: kk < k.
            unsafe { *y.add(kk) = a.mul_add(*x.add(kk), *y.add(kk)) };
        }
    }

    /// Single dot product, same reduction order.
    ///
    /// # Safety
    /// Requires AVX2 and FMA; both pointers address at least `k` floats.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: *const f32, b: *const f32, k: usize) -> f32 {
        let kb = k / 8 * 8;
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i < kb {
            // SAFETY: i + 8 <= kb <= k.
            unsafe {
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), acc);
            }
            i += 8;
        }
        let mut t = hsum(acc);
        for kk in kb..k {
            // SAFETY: kk < k.
            unsafe { t = (*a.add(kk)).mul_add(*b.add(kk), t) };
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        }
    }

    /// Straight transcription of the documented reduction order, one element at a time.
    fn reference(x: &[f32], w: &[f32], k: usize, bias: Option<f32>) -> f32 {
        let kb = k / 8 * 8;
        let mut lanes = [0f32; 8];
        for i in 0..kb {
            lanes[i % 8] = x[i].mul_add(w[i], lanes[i % 8]);
        }
        let mut t = hsum(lanes);
        for i in kb..k {
            t = x[i].mul_add(w[i], t);
        }
        bias.map_or(t, |b| t + b)
    }

    fn pools() -> Vec<Workers> {
        [1, 3].iter().map(|&t| Workers::new(t).unwrap()).collect()
    }

    #[test]
    fn every_isa_dtype_and_shape_matches_the_documented_order_bit_for_bit() {
        let pools = pools();
        let mut isas = vec![Isa::Portable];
        if detect() != Isa::Portable {
            isas.push(detect());
        }
        let mut r = rng(7);
        for &k in &[1usize, 7, 8, 13, 64, 100, 769] {
            for &n in &[1usize, 3, 4, 5, 13, 37] {
                let rows_max = 9;
                let x: Vec<f32> = (0..rows_max * k).map(|_| r()).collect();
                let w32: Vec<f32> = (0..n * k).map(|_| r()).collect();
                let wb: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
                let wh: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
                let bias: Vec<f32> = (0..n).map(|_| r()).collect();
                let wides: [(WRef<'_>, Vec<f32>); 3] = [
                    (WRef::F32(&w32), w32.clone()),
                    (WRef::BF16(&wb), wb.iter().map(|v| v.to_f32()).collect()),
                    (WRef::F16(&wh), wh.iter().map(|v| v.to_f32()).collect()),
                ];
                for (wref, wide) in &wides {
                    for rows in [1usize, 2, 3, 4, 5, 7, 9] {
                        for (bi, b) in [None, Some(&bias[..])].into_iter().enumerate() {
                            let want: Vec<f32> = (0..rows * n)
                                .map(|e| {
                                    let (ri, ni) = (e / n, e % n);
                                    reference(&x[ri * k..], &wide[ni * k..], k, b.map(|b| b[ni]))
                                })
                                .collect();
                            for &isa in &isas {
                                for (pi, pool) in pools.iter().enumerate() {
                                    let tasks = [1, 5][pi];
                                    let mut out = vec![f32::NAN; rows * n];
                                    gemm_isa(isa, pool, tasks, &x, rows, k, *wref, n, b, &mut out);
                                    for e in 0..rows * n {
                                        assert_eq!(
                                            out[e].to_bits(),
                                            want[e].to_bits(),
                                            "{isa:?} {wref:?} k={k} n={n} rows={rows} bias={bi} \
                                             tasks={tasks} element {e}",
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn dot_matches_the_documented_order() {
        let mut r = rng(11);
        for k in [0usize, 1, 5, 8, 9, 64, 67, 300] {
            let a: Vec<f32> = (0..k).map(|_| r()).collect();
            let b: Vec<f32> = (0..k).map(|_| r()).collect();
            let want = reference(&a, &b, k, None);
            assert_eq!(dot(&a, &b).to_bits(), want.to_bits(), "k={k}");
            assert_eq!(portable_dot(&a, &b).to_bits(), want.to_bits(), "k={k}");
        }
    }

    #[test]
    fn axpy_is_an_elementwise_fma() {
        let mut r = rng(5);
        for k in [0usize, 3, 8, 21, 64] {
            let a = r();
            let x: Vec<f32> = (0..k).map(|_| r()).collect();
            let y0: Vec<f32> = (0..k).map(|_| r()).collect();
            let mut y = y0.clone();
            axpy(a, &x, &mut y);
            for i in 0..k {
                assert_eq!(
                    y[i].to_bits(),
                    a.mul_add(x[i], y0[i]).to_bits(),
                    "k={k} i={i}"
                );
            }
        }
    }

    #[test]
    fn result_is_close_to_exact_arithmetic() {
        let mut r = rng(3);
        let (rows, k, n) = (5usize, 200usize, 9usize);
        let x: Vec<f32> = (0..rows * k).map(|_| r()).collect();
        let w: Vec<f32> = (0..n * k).map(|_| r()).collect();
        let mut out = vec![0f32; rows * n];
        let pool = Workers::new(1).unwrap();
        gemm(&pool, 2, &x, rows, k, WRef::F32(&w), n, None, &mut out);
        for ri in 0..rows {
            for ni in 0..n {
                let exact: f64 = (0..k)
                    .map(|i| x[ri * k + i] as f64 * w[ni * k + i] as f64)
                    .sum();
                assert!((out[ri * n + ni] as f64 - exact).abs() < 1e-4, "{ri},{ni}");
            }
        }
    }
}
