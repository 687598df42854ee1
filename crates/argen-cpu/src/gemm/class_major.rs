//! The *class-major* layout and its kernels: the module's reduction order (module docs of
//! [`super`]) computed as an outer product, for f32, f16 and bf16 weights on CPUs whose
//! [`Tuning::f32_class_major`], [`Tuning::f16_class_major`] or [`Tuning::bf16_class_major`]
//! says so.
//!
//! # The layout
//! An `[n, k]` matrix is stored in tiles of [`CM_NC`] = 32 rows (output columns), the last
//! tile padded with zero rows. With `kb = ⌊k/8⌋·8`, a tile holds, for each *lane class*
//! `l = 0 … 7` in turn and within it for `j = 0 … ⌊k/8⌋ − 1` in turn, the 32 rows' elements
//! of column `8j + l` (128 bytes), then the tail columns `kb … k − 1` in order, 32 rows each:
//! element `(row, col)` of tile `T = ⌊row/32⌋` lies at `T·32·k + (l·⌊k/8⌋ + j)·32 + row mod 32`
//! for `col = 8j + l < kb`, and at `T·32·k + col·32 + row mod 32` for `col ≥ kb`
//! ([`class_major_index`]). A tile is one sequential stream of `32·k` elements (`128·k` bytes
//! of f32). Half-precision tiles are laid out alike, one 64-byte line per column; in bf16
//! each column's 32 rows are paired into 16 words, row `c` in the low half of word `c` and
//! row `16 + c` in its high half ([`class_major_index_bf16`]), so that a 16-bit shift and a
//! mask widen the line exactly (f16 is converted with `vcvtph2ps`).
//!
//! # The kernel
//! The documented order gives each output its eight lane sums
//! `acc[l] = fma(x[8j + l], w[8j + l], acc[l])` over `j` in increasing order, then the fixed
//! tree `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`, the tail's FMAs in order and the bias. Here
//! one `zmm` register holds, for one lane class `l`, the sums `acc[l]` of 16 outputs of one
//! input row: lane `c` of it sees exactly the FMA chain of output `c`'s lane `l`. A tile call
//! of `m ≤` [`CM_MR`] rows runs the classes one after the other, each as a loop over `j` that
//! loads the two 16-output vectors of the 128-byte step and, for each row, broadcasts its
//! input `x[r, 8j + l]` and runs two FMAs into that row's two registers (`2m ≤ 28`
//! accumulators); it keeps each class's sums, adds them in the tree *vertically* (whole
//! registers: no shuffles), then runs the tail's FMAs and adds the bias. Every output thus
//! sees the same operations on the same operands in the same order as in every other variant:
//! the same bits. The inputs are first laid out by class, `xr[(l·⌊k/8⌋ + j)·m + r]`, then the
//! tail `xr[col·m + r]` (`col ≥ kb`), once per call, so that one step's broadcasts read `m`
//! consecutive floats.
//!
//! # Why
//! The tile kernels of [`super`] hold four outputs' eight lanes in two registers per input
//! row and reduce them across lanes at the end of each tile; every 4-output tile re-reads all
//! the call's inputs (`rows·k` floats: 24 KiB at 8 rows of GPT-B's `k = 768`), which compete
//! with the weight stream for the 48 KiB L1 (`tools/stream_fma_probe.c`: one core streams
//! 40 GB/s beside 8 rows' FMAs with 12 KiB of inputs, 32–34 GB/s with 24 KiB), and up to 8
//! rows stream each weight once (14 in tall tiles). Here a 32-output tile reads each class
//! slice of the inputs once (3 KiB at 8 rows) per 12 KiB of weights, and up to 14 rows stream
//! each weight once with no lane shuffles at all. One Zen 5 core, GPT-B decode-step GEMMs,
//! the tile kernels' packed layout (`f32p`) and this one (`f32c`) in one process (`cargo bench
//! -p argen-cpu --bench gemm -- 1 5 f32p f32c model rows=…`, two rounds, fastest pass,
//! `docs/results/session18/gemm/`): 2 / 4 / 8 / 10 / 12 / 14 / 16 / 32 / 128 rows
//! 9.30–9.38 / 10.19–10.23 / 10.98–11.09 / 12.16–12.50 / 14.07–14.19 / 15.13–15.26 /
//! 15.41–15.61 / 27.63–28.57 / 107.4–107.5 ms → 8.95–9.04 / 8.99–9.05 / 9.04–9.18 /
//! 9.29 / 9.74–9.84 / 11.04–11.20 / 12.87–13.19 / 24.95–25.45 / 100.0–100.1 ms: up to 12
//! rows the weights stream at 40–44 GB/s whatever the row count, and from 12 rows the FMAs
//! run at 237–251 GFLOP/s (`docs/runtime-performance.md`, "Session 18").
//!
//! Calls of more than [`Tuning::cm_single_rows`] rows run in even row blocks of at most
//! [`Tuning::cm_block_rows`] over column blocks of about [`Tuning::block_bytes`]: the first
//! pass over the first column block of a task streams it from memory, and the passes share
//! the prefetch of the next column block into L2 in contiguous shares of each tile, so that
//! the later blocks' passes all read from L2 while the memory stream runs beside them. The
//! other variants ([`Variant::Avx2`], [`Variant::Neon`], [`Variant::Portable`]) compute the
//! layout with scalar `mul_add` code in the same order; no CPU table stores it where AVX-512
//! is absent.

use super::{Elem, OutPtr, Tuning, Variant};
use crate::hugemem::Buf;
use crate::par::Workers;
use half::{bf16, f16};

/// Output columns (weight rows) per class-major tile.
pub const CM_NC: usize = 32;
/// Most input rows per class-major tile call (2 accumulators per row in 32 `zmm` registers,
/// beside the step's two weight vectors).
pub const CM_MR: usize = 14;

/// Elements of the class-major layout of an `[n, k]` matrix: `⌈n/32⌉` tiles of `32·k`.
pub fn class_major_len(n: usize, k: usize) -> usize {
    n.div_ceil(CM_NC) * CM_NC * k
}

/// Offset of element `(row, col)` of an `[n, k]` f32 or f16 matrix in the class-major layout
/// (module docs).
#[inline]
pub fn class_major_index(row: usize, col: usize, k: usize) -> usize {
    let k8 = k / 8;
    let tile = row / CM_NC * CM_NC * k;
    let c = row % CM_NC;
    if col < 8 * k8 {
        tile + ((col % 8) * k8 + col / 8) * CM_NC + c
    } else {
        tile + col * CM_NC + c
    }
}

/// Offset of element `(row, col)` of an `[n, k]` bf16 matrix in the class-major layout: as
/// [`class_major_index`], except that within each 32-element column the rows are paired into
/// 32-bit words, row `c < 16` in the low half of word `c` and row `16 + c` in its high half,
/// so that one shift and one mask widen the 64-byte line to the two 16-row vectors.
#[inline]
pub fn class_major_index_bf16(row: usize, col: usize, k: usize) -> usize {
    let i = class_major_index(row, col, k);
    let c = row % CM_NC;
    i - c + 2 * (c % 16) + c / 16
}

/// A weight type of the class-major layout: where a tile's column stores row `c` of its 32.
trait CmElem: Elem + Default {
    /// Element `(row, col)` of an `[n, k]` matrix ([`class_major_index`]).
    fn index(row: usize, col: usize, k: usize) -> usize {
        class_major_index(row, col, k)
    }
    /// Offset of row `c` (of 32) within a stored column.
    fn pos(c: usize) -> usize {
        c
    }
}

impl CmElem for f32 {}
impl CmElem for f16 {}
impl CmElem for bf16 {
    fn index(row: usize, col: usize, k: usize) -> usize {
        class_major_index_bf16(row, col, k)
    }
    fn pos(c: usize) -> usize {
        2 * (c % 16) + c / 16
    }
}

/// Repacks a row-major `[n, k]` matrix into the class-major layout (the padding rows of the
/// last tile zero).
fn pack<T: CmElem>(w: &[T], n: usize, k: usize) -> Buf<T> {
    assert!(
        w.len() >= n * k,
        "pack_class_major: {} elements for [{n}, {k}]",
        w.len()
    );
    let mut out = Buf::from_fn(class_major_len(n, k), |_| T::default());
    for r in 0..n {
        for (c, &v) in w[r * k..(r + 1) * k].iter().enumerate() {
            out[T::index(r, c, k)] = v;
        }
    }
    out
}

/// Repacks a row-major `[n, k]` f32 matrix into the class-major layout (module docs); the
/// padding rows of the last tile are zero.
///
/// # Panics
/// If `w` holds fewer than `n · k` elements.
pub fn pack_class_major(w: &[f32], n: usize, k: usize) -> Buf<f32> {
    pack(w, n, k)
}

/// [`pack_class_major`] for f16 weights ([`class_major_index`]).
///
/// # Panics
/// If `w` holds fewer than `n · k` elements.
pub fn pack_class_major_f16(w: &[f16], n: usize, k: usize) -> Buf<f16> {
    pack(w, n, k)
}

/// [`pack_class_major`] for bf16 weights, each column's rows paired into words
/// ([`class_major_index_bf16`]).
///
/// # Panics
/// If `w` holds fewer than `n · k` elements.
pub fn pack_class_major_bf16(w: &[bf16], n: usize, k: usize) -> Buf<bf16> {
    pack(w, n, k)
}

/// The row blocks of a class-major call of `rows` rows on AVX-512, as `(first row, rows,
/// rows the kernel runs)`: one block of all rows up to [`Tuning::cm_single_rows`], run as at
/// least [`Tuning::cm_min_rows`] (the extra rows copies of the last, computed and not
/// stored), else the fewest even blocks of at most [`Tuning::cm_block_rows`].
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn blocks(t: &Tuning, rows: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let single = rows <= t.cm_single_rows.clamp(1, CM_MR);
    let nb = if single {
        1
    } else {
        rows.div_ceil(t.cm_block_rows.clamp(1, CM_MR))
    };
    let run = if single {
        rows.max(t.cm_min_rows.min(CM_MR))
    } else {
        0
    };
    let (base, extra) = (rows / nb, rows % nb);
    (0..nb).map(move |b| {
        let m = base + usize::from(b < extra);
        (b * base + b.min(extra), m, run.max(m))
    })
}

thread_local! {
    /// The calling thread's class-ordered copy of a call's inputs (module docs), kept to be
    /// reused: it only grows.
    static INPUTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `out[..rows·n]` from `x[..rows·k]` and the class-major weights `w` of an `[n, k]` matrix
/// (`class_major_len(n, k)` elements, checked by the caller), the columns split into `tasks`
/// ranges of whole tiles on `workers`; on `isa` (AVX-512 runs the module's kernels, the other
/// variants scalar code; the same bits).
#[allow(clippy::too_many_arguments)]
#[allow(private_bounds)]
pub(super) fn gemm<W: CmElem>(
    isa: Variant,
    t: &Tuning,
    workers: &Workers,
    tasks: usize,
    x: &[f32],
    rows: usize,
    k: usize,
    w: &[W],
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let tiles = n.div_ceil(CM_NC);
    let tasks = tasks.clamp(1, tiles);
    let per = tiles.div_ceil(tasks);
    let ptr = OutPtr(out.as_mut_ptr());
    #[cfg(target_arch = "x86_64")]
    if isa == Variant::Avx512 {
        INPUTS.with_borrow_mut(|xr| {
            // A padded single block runs more rows than the call has.
            let len = blocks(t, rows).map(|(r0, _, run)| (r0 + run) * k).max();
            let len = len.unwrap_or(0);
            if xr.len() < len {
                xr.resize(len, 0.0);
            }
            for (r0, m, run) in blocks(t, rows) {
                by_class(
                    &x[r0 * k..(r0 + m) * k],
                    m,
                    run,
                    k,
                    &mut xr[r0 * k..(r0 + run) * k],
                );
            }
            let xr = &xr[..len];
            workers.run(tasks, |ti| {
                let (t0, t1) = ((ti * per).min(tiles), ((ti + 1) * per).min(tiles));
                // SAFETY: this task writes only the columns of tiles t0..t1 of the rows·n
                // output (disjoint from every other task's), `out` holds rows·n floats and
                // `w` the class-major length (asserted by the caller), `xr` the class-ordered
                // inputs of every row block.
                unsafe { x86::task(t, xr, rows, k, w, n, bias, ptr, t0, t1) }
            });
        });
        return;
    }
    let _ = (isa, t);
    workers.run(tasks, |ti| {
        let (t0, t1) = ((ti * per).min(tiles), ((ti + 1) * per).min(tiles));
        for tile in t0..t1 {
            for r in 0..rows {
                portable_row(&x[r * k..(r + 1) * k], k, w, n, tile, bias, ptr, r);
            }
        }
    });
}

/// Lays the `m` input rows of `x` (`[m, k]`) out by class (module docs) into `xr` (`run·k`)
/// as a block of `run ≥ m` rows, the rows past `m` copies of the last. Groups of eight rows
/// go through 8 × 8 transposes (AVX2), the rest one element at a time.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn by_class(x: &[f32], m: usize, run: usize, k: usize, xr: &mut [f32]) {
    let k8 = k / 8;
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut r = 0;
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        while r + 8 <= m {
            // SAFETY: AVX2 is present; rows r..r+8 < m of `x` hold k floats each, and `xr`
            // holds run·k ≥ m·k floats.
            unsafe { x86::by_class_8(x, r, run, k, xr) };
            r += 8;
        }
    }
    for r in r..run {
        let row = &x[r.min(m - 1) * k..(r.min(m - 1) + 1) * k];
        for (j, block) in row[..8 * k8].chunks_exact(8).enumerate() {
            for (l, &v) in block.iter().enumerate() {
                xr[(l * k8 + j) * run + r] = v;
            }
        }
    }
    for r in 0..run {
        let row = &x[r.min(m - 1) * k..(r.min(m - 1) + 1) * k];
        for col in 8 * k8..k {
            xr[col * run + r] = row[col];
        }
    }
}

/// Row `r` (inputs `xrow`) of tile `tile`'s outputs in the documented order, scalar.
#[allow(clippy::too_many_arguments)]
fn portable_row<W: CmElem>(
    xrow: &[f32],
    k: usize,
    w: &[W],
    n: usize,
    tile: usize,
    bias: Option<&[f32]>,
    out: OutPtr,
    r: usize,
) {
    let k8 = k / 8;
    let base = tile * CM_NC * k;
    let mut acc = [[0f32; CM_NC]; 8];
    for (l, a) in acc.iter_mut().enumerate() {
        for j in 0..k8 {
            let xv = xrow[8 * j + l];
            let col = &w[base + (l * k8 + j) * CM_NC..][..CM_NC];
            for (c, s) in a.iter_mut().enumerate() {
                *s = xv.mul_add(col[W::pos(c)].widen(), *s);
            }
        }
    }
    let n0 = tile * CM_NC;
    for c in 0..CM_NC.min(n - n0) {
        let a = |l: usize| acc[l][c];
        let mut s = ((a(0) + a(4)) + (a(2) + a(6))) + ((a(1) + a(5)) + (a(3) + a(7)));
        for (col, &xv) in xrow.iter().enumerate().skip(8 * k8) {
            s = xv.mul_add(w[base + col * CM_NC + W::pos(c)].widen(), s);
        }
        if let Some(b) = bias {
            s += b[n0 + c];
        }
        // SAFETY: element (r, n0 + c) of the rows·n output, a column of this task's tiles
        // (`gemm`), which no other task writes.
        unsafe { *out.0.add(r * n + n0 + c) = s };
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::tune::{prefetch, PF_NTA, PF_T0, PF_T1};
    use super::*;
    use std::arch::x86_64::*;

    /// [`by_class`] for rows `r..r + 8` of `x`: each 8-column block of the eight rows
    /// transposed, so that its column `l` (the eight rows' inputs of class `l`) is one store.
    ///
    /// # Safety
    /// The CPU has AVX2; rows `r..r + 8` of `x` hold `k` floats each, `xr` holds `run·k` floats
    /// with `r + 8 ≤ run`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn by_class_8(x: &[f32], r: usize, run: usize, k: usize, xr: &mut [f32]) {
        let k8 = k / 8;
        assert!(x.len() >= (r + 8) * k && xr.len() >= run * k && r + 8 <= run);
        let (xp, op) = (x.as_ptr(), xr.as_mut_ptr());
        for j in 0..k8 {
            // SAFETY: element 8j..8j+8 of rows r..r+8 lie in `x`, and the stores at
            // (l·k8 + j)·run + r, eight floats each, in `xr` (asserted above).
            unsafe {
                let row = |i: usize| _mm256_loadu_ps(xp.add((r + i) * k + 8 * j));
                let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                let (r4, r5, r6, r7) = (row(4), row(5), row(6), row(7));
                let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
                let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
                let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
                let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
                // u_l: class l of rows 0–3 (low half) and class l + 4 (high half); v_l rows 4–7.
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let v0 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let v1 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let v2 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let v3 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let cols = [
                    _mm256_permute2f128_ps::<0x20>(u0, v0),
                    _mm256_permute2f128_ps::<0x20>(u1, v1),
                    _mm256_permute2f128_ps::<0x20>(u2, v2),
                    _mm256_permute2f128_ps::<0x20>(u3, v3),
                    _mm256_permute2f128_ps::<0x31>(u0, v0),
                    _mm256_permute2f128_ps::<0x31>(u1, v1),
                    _mm256_permute2f128_ps::<0x31>(u2, v2),
                    _mm256_permute2f128_ps::<0x31>(u3, v3),
                ];
                for (l, c) in cols.into_iter().enumerate() {
                    _mm256_storeu_ps(op.add((l * k8 + j) * run + r), c);
                }
            }
        }
    }

    /// No prefetch (a `HINT` of [`tile`]).
    const PF_NONE: u8 = 255;

    /// Tiles `t0..t1` of a call (module docs): for each column block, each row block's pass
    /// over its tiles. The first pass over the task's first block streams it from memory
    /// (prefetching `cm_pf_bytes` or `cm_wide_pf_bytes` ahead); the other passes over a block share the prefetch
    /// of the next block into L2 (pass `b` of `p` sharing passes takes the `b`-th of `p`
    /// contiguous shares of each tile's steps, at one step per `p`), so that every later block is in L2 when its passes start and
    /// the memory stream runs beside all the passes' FMAs rather than the first's alone. The
    /// first pass over every block keeps its stream prefetch (from L2, after the first).
    ///
    /// # Safety
    /// `xr` holds the class-ordered inputs of every row block ([`by_class`], block at `r0·k`),
    /// `w` at least `class_major_len(n, k)` elements, `out` `rows·n` floats of which the task
    /// may write the columns of tiles `t0..t1`, `bias` (if any) `n` floats; the CPU has
    /// AVX-512F and VL.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn task<W: CmElem>(
        t: &Tuning,
        xr: &[f32],
        rows: usize,
        k: usize,
        w: &[W],
        n: usize,
        bias: Option<&[f32]>,
        out: OutPtr,
        t0: usize,
        t1: usize,
    ) {
        let tile_len = CM_NC * k;
        let nb = blocks(t, rows).count();
        let cb = if nb == 1 {
            t1 - t0
        } else {
            (t.block_bytes / (tile_len * W::BYTES)).max(1)
        };
        let stream_hint = if nb == 1 && t.cm_nta { PF_NTA } else { PF_T0 };
        let mut c0 = t0;
        while c0 < t1 {
            let c1 = (c0 + cb).min(t1);
            let first = c0 == t0;
            // The passes that share the next block's prefetch: all, or on the task's first
            // block all but the streaming first pass.
            let sharing = if first { nb - 1 } else { nb };
            for (bi, (r0, m, run)) in blocks(t, rows).enumerate() {
                let hint = if bi == 0 { stream_hint } else { PF_NONE };
                let next = if c1 < t1 && sharing > 0 && (bi > 0 || !first) {
                    let phase = if first { bi - 1 } else { bi };
                    Next {
                        offset: (c1 - c0) * tile_len * W::BYTES,
                        every: sharing,
                        phase,
                    }
                } else {
                    Next::NONE
                };
                let f = kernel::<W>(run, hint, next.every > 0);
                let pf = if W::BYTES == 2 && t.cm_half_pf_bytes > 0 {
                    t.cm_half_pf_bytes
                } else if run >= t.cm_wide_pf_rows {
                    t.cm_wide_pf_bytes
                } else {
                    t.cm_pf_bytes
                };
                for tile in c0..c1 {
                    let n0 = tile * CM_NC;
                    // SAFETY: tile `tile` of `w` holds 32·k elements, the row block's inputs
                    // m·k at r0·k of `xr`, its outputs rows r0.. of columns n0..n0+ncols of
                    // this task's range; prefetches never fault (the caller's contract).
                    unsafe {
                        f(
                            w.as_ptr().add(tile * tile_len),
                            k,
                            xr.as_ptr().add(r0 * k),
                            out.0.add(r0 * n + n0),
                            n,
                            CM_NC.min(n - n0),
                            bias.map_or(std::ptr::null(), |b| b.as_ptr().add(n0)),
                            pf,
                            next,
                            m,
                        )
                    };
                }
            }
            c0 = c1;
        }
    }

    /// A pass's share of the next column block's prefetch into L2: of the copy of each tile
    /// `offset` bytes ahead, the `phase`-th of `every` contiguous shares of its steps, one
    /// step (two lines) every `every` steps of the tile (`every` 0: none).
    #[derive(Clone, Copy)]
    struct Next {
        offset: usize,
        every: usize,
        phase: usize,
    }

    impl Next {
        const NONE: Next = Next {
            offset: 0,
            every: 0,
            phase: 0,
        };
    }

    /// A tile kernel: `(weights, k, inputs, out, ldo, ncols, bias, pf, next, live)`.
    type Kernel<W> = unsafe fn(
        *const W,
        usize,
        *const f32,
        *mut f32,
        usize,
        usize,
        *const f32,
        usize,
        Next,
        usize,
    );

    /// The [`tile`] for `m` rows (1 to [`CM_MR`]), stream prefetch kind `hint` and a share
    /// of the next block's prefetch or none.
    fn kernel<W: CmElem>(m: usize, hint: u8, next: bool) -> Kernel<W> {
        macro_rules! by_rows {
            ($h:expr, $n:expr; $($m:literal)*) => {
                match m {
                    $($m => tile::<W, $m, { $h }, $n>,)*
                    _ => unreachable!("class-major row blocks hold 1 to {CM_MR} rows"),
                }
            };
        }
        macro_rules! by_kind {
            ($($h:expr),*) => {
                match (hint, next) {
                    $(
                        (h, false) if h == $h => by_rows!($h, false; 1 2 3 4 5 6 7 8 9 10 11 12 13 14),
                        (h, true) if h == $h => by_rows!($h, true; 1 2 3 4 5 6 7 8 9 10 11 12 13 14),
                    )*
                    (_, false) => by_rows!(PF_NONE, false; 1 2 3 4 5 6 7 8 9 10 11 12 13 14),
                    (_, true) => by_rows!(PF_NONE, true; 1 2 3 4 5 6 7 8 9 10 11 12 13 14),
                }
            };
        }
        by_kind!(PF_NTA, PF_T0)
    }

    /// The stored column at `p` (32 elements) widened exactly to its two 16-row vectors:
    /// f32 loaded, bf16 words shifted (rows 0–15) and masked (rows 16–31,
    /// [`class_major_index_bf16`]), f16 converted.
    ///
    /// # Safety
    /// `p` addresses 32 readable elements; the CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn column<W: CmElem>(p: *const W) -> (__m512, __m512) {
        // SAFETY: the caller's contract; each load reads the column's 32 elements.
        unsafe {
            if W::BYTES == 4 {
                let p = p.cast::<f32>();
                (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)))
            } else if W::PAIRED {
                let v = _mm512_loadu_si512(p.cast());
                let hi = _mm512_and_si512(v, _mm512_set1_epi32(0xFFFF_0000u32 as i32));
                (
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v)),
                    _mm512_castsi512_ps(hi),
                )
            } else {
                let p = p.cast::<u16>();
                let lo = _mm256_loadu_si256(p.cast());
                let hi = _mm256_loadu_si256(p.add(16).cast());
                (
                    _mm512_cvt_roundph_ps::<_MM_FROUND_CUR_DIRECTION>(lo),
                    _mm512_cvt_roundph_ps::<_MM_FROUND_CUR_DIRECTION>(hi),
                )
            }
        }
    }

    /// One tile of `MR` input rows × 32 outputs (module docs): the eight classes' FMA loops,
    /// the vertical tree, the tail, the bias; the first `ncols` columns of each of the first
    /// `live ≤ MR` rows written at `out + r·ldo` (the other rows are padding). Each 128-byte step prefetches its two lines `pf` bytes ahead
    /// with kind `HINT` (none: [`PF_NONE`]), and with `NEXT` its share of the next column
    /// block ([`Next`]).
    ///
    /// # Safety
    /// `w` holds the tile's `32·k` elements, `xr` the `MR·k` class-ordered inputs, `out`
    /// `live` rows of at least `ncols ≤ 32` writable floats `ldo` apart, `bias` is null or holds `ncols`
    /// floats; the CPU has AVX-512F and VL.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    // `r` and `h` index the inner arrays of `part`, the output rows and the inputs alike.
    #[allow(clippy::needless_range_loop)]
    unsafe fn tile<W: CmElem, const MR: usize, const HINT: u8, const NEXT: bool>(
        w: *const W,
        k: usize,
        xr: *const f32,
        out: *mut f32,
        ldo: usize,
        ncols: usize,
        bias: *const f32,
        pf: usize,
        next: Next,
        live: usize,
    ) {
        let k8 = k / 8;
        // This pass's share of the next block's copy of the tile: a contiguous `1/every` of
        // its steps, one step every `every` steps of this tile.
        let share = (8 * k8).div_ceil(next.every.max(1));
        let mut np = w
            .cast::<i8>()
            .wrapping_add(next.offset + next.phase * share * CM_NC * W::BYTES);
        let mut due = 0;
        // Each class's sums, written once each before the tree reads them (not zeroed: at
        // 8·MR·2 vectors, a memset per tile cost ~3 % of a 128-row call).
        let mut part = [const { std::mem::MaybeUninit::<[[__m512; 2]; MR]>::uninit() }; 8];
        for (l, p) in part.iter_mut().enumerate() {
            let mut acc = [[_mm512_setzero_ps(); 2]; MR];
            // SAFETY: class l's steps lie at (l·k8 + j)·32 of the tile's 32·k
            // elements and its inputs at (l·k8 + j)·MR of the MR·k; prefetches never fault.
            unsafe {
                let mut wp = w.add(l * k8 * CM_NC);
                let mut xp = xr.add(l * k8 * MR);
                for _ in 0..k8 {
                    // A column is two lines of f32, one of half precision.
                    if HINT != PF_NONE {
                        prefetch::<HINT>(wp.cast::<i8>().wrapping_add(pf));
                        if W::BYTES == 4 {
                            prefetch::<HINT>(wp.cast::<i8>().wrapping_add(pf + 64));
                        }
                    }
                    if NEXT {
                        if due == 0 {
                            prefetch::<PF_T1>(np);
                            if W::BYTES == 4 {
                                prefetch::<PF_T1>(np.wrapping_add(64));
                            }
                            np = np.wrapping_add(CM_NC * W::BYTES);
                            due = next.every;
                        }
                        due -= 1;
                    }
                    let (w0, w1) = column(wp);
                    for (r, a) in acc.iter_mut().enumerate() {
                        let xb = _mm512_set1_ps(*xp.add(r));
                        a[0] = _mm512_fmadd_ps(xb, w0, a[0]);
                        a[1] = _mm512_fmadd_ps(xb, w1, a[1]);
                    }
                    wp = wp.add(CM_NC);
                    xp = xp.add(MR);
                }
            }
            p.write(acc);
        }
        let kb = 8 * k8;
        for r in 0..MR.min(live) {
            for h in 0..2 {
                let c0 = 16 * h;
                if ncols <= c0 {
                    break;
                }
                // SAFETY: the class loop above wrote every class's sums.
                let a = |l: usize| unsafe { part[l].assume_init_ref()[r][h] };
                let mut s = _mm512_add_ps(
                    _mm512_add_ps(_mm512_add_ps(a(0), a(4)), _mm512_add_ps(a(2), a(6))),
                    _mm512_add_ps(_mm512_add_ps(a(1), a(5)), _mm512_add_ps(a(3), a(7))),
                );
                let m: __mmask16 = if ncols >= c0 + 16 {
                    0xffff
                } else {
                    (1u16 << (ncols - c0)) - 1
                };
                // SAFETY: the tail's columns lie at col·32 of the tile and col·MR of the
                // inputs; output row r holds ncols writable floats, `bias` (if not null)
                // ncols, and the masked accesses touch only the first ncols of them.
                unsafe {
                    for col in kb..k {
                        let (t0, t1) = column(w.add(col * CM_NC));
                        let wv = if h == 0 { t0 } else { t1 };
                        s = _mm512_fmadd_ps(_mm512_set1_ps(*xr.add(col * MR + r)), wv, s);
                    }
                    if !bias.is_null() {
                        s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, bias.add(c0)));
                    }
                    _mm512_mask_storeu_ps(out.add(r * ldo + c0), m, s);
                }
            }
        }
    }
}
