//! `out[r, n] = Σ_k x[r, k] · w[n, k] (+ bias[n])` with weights in f32, f16 or bf16, computed in
//! f32.
//!
//! # Weight layouts
//! f32 weights (and any weight given as [`WRef::F32`], [`WRef::F16`] or [`WRef::BF16`]) are
//! row-major `[n, k]`. Half-precision model weights are stored *packed* ([`pack`],
//! [`WRef::F16Packed`], [`WRef::BF16Packed`]): the rows are grouped in tiles of [`NR`] (the last
//! tile padded with zero rows), and each tile is stored as its `⌊k/8⌋` blocks of 8 columns, each
//! block holding the `NR` rows' 8 elements one after the other (`NR·8` halves = 64 bytes), then
//! the rows' `k mod 8` tail elements row by row. A tile is thus one sequential stream that the
//! micro-kernel reads front to back, one cache line per 8-column step.
//!
//! bf16 tiles ([`pack_bf16`], [`packed_index_bf16`]) interleave each 64-byte line by pairs of
//! rows: its 32-bit word `i` (`i < 16`) holds, in its low half, element `i mod 8` of row
//! `⌊i/8⌋` of the block and, in its high half, the same element of row `2 + ⌊i/8⌋`. Widening
//! a bf16 to f32 is a 16-bit left shift, so one vector load then yields rows 0–1 by shifting
//! each word left by 16 and rows 2–3 by masking its low half away — two simple integer
//! operations per line instead of a lane-crossing zero-extension and a shift per pair of
//! rows, which on Zen 4 competed with the FMAs for the vector pipes (one core, weights
//! resident in L2, `cargo bench -p argen-cpu --bench gemm -- 1 2 resident`, % of the 117
//! GFLOP/s FMA peak measured in the same run: 2 rows 60 → 77 %, 4 rows 73 → 87 %, 8 and 16
//! rows 84 → 92 %). The tails are stored as in the plain layout.
//!
//! Why: at decode (1–2 rows) the GEMM only streams weights, and with row-major half-precision
//! rows of 1.5 KiB (GPT-B's k = 768) every 4 KiB page holds ~3 interleaved row streams, which
//! the hardware prefetcher does not follow; the kernel then spends much of its time waiting for
//! memory. Measured on one core of the dev box (decode-step GEMMs of GPT-B, 195 MB of bf16,
//! `cargo bench -p argen-cpu --bench gemm -- 1 6 bf16 model rows=1,2`): row-major 10.5–11.3 GB/s,
//! packed 15.7–16.5 GB/s. f32 rows are twice as long, and on Zen 2 packing them measured
//! slower (11.8 vs 14.9 GB/s), so f32 stays row-major there; on Zen 4 every f32 matrix is
//! packed too ([`Tuning::pack_f32_max_k`]).
//!
//! # Loop structure
//! The output columns (weight rows) are split into `tasks` contiguous ranges of whole
//! [`NR`]-column tiles, run on the [`Workers`] (the caller included). A task walks its range in
//! *column blocks* sized so that the block's weights (`cb · k` elements) stay in L2 (~192 KiB);
//! for each column block it walks the input rows in *row blocks* of at most three rows, and for
//! each row block it runs the register-tiled micro-kernel over the block's `NR`-column tiles. The
//! micro-kernel keeps `MR × NR` (≤ 3 × 4) accumulators of 8 f32 lanes in AVX2 registers, loads
//! each input vector once per `k` step and each weight vector once per `k` step, widening
//! half-precision weights in registers (bf16: zero-extend u16 → u32 and shift left by 16; f16:
//! F16C `vcvtph2ps`). Weights are therefore read from memory once per call whatever the row
//! count, and every weight byte loaded into a register is used for all rows of the block (both
//! CFG rows at decode). While it streams a tile the kernel prefetches ahead: row-major, the next
//! tile's rows (the hardware prefetcher alone keeps too few of these short row streams in
//! flight); packed, 1 KiB ahead in the tile stream, non-temporally (`prefetchnta`) when the call
//! has a single row block — the weights are not needed again, and keeping them out of L2
//! measured 15.7 vs 12.9 GB/s — and into L1/L2 otherwise, where later row blocks reuse the
//! column block from L2 (per CPU model, [`tuning`]: Zen 4 prefetches 16 KiB ahead into L2 for
//! calls of 3 or more rows). [`crate::Cpu`] keeps its weights in huge pages where the OS
//! allows ([`crate::hugemem`]), so that the stream does not keep missing the TLB.
//!
//! **Staged f16 calls.** f16 widens with `vcvtph2ps`, which competes with the FMAs for the
//! vector pipes (weights resident in L2, 64 rows: f16 81 %, bf16 90 %, packed f32 92 % of the
//! FMA peak, `… --bench gemm -- 1 2 f32p bf16 f16 rows=64 shapes=w1`), and a call of more
//! than one row block widened every weight once per row block. On AVX-512, where the CPU's
//! [`Tuning::stage_f16_min_rows`] says so, a task of packed f16 weights with more than
//! [`MR_WIDE`] rows instead takes column blocks of at most ~192 KiB *of f32*; its first row
//! block runs a kernel that also stores each widened line into a per-thread buffer, which
//! thereby holds the column block in the packed f32 layout, and the other row blocks run the
//! f32 kernel on that buffer (`task_staged`). Widening is exact and the f32 kernel computes
//! the same lanes in the same order, so the bits do not change. One Zen 4 core, GPT-B
//! decode-step GEMMs (`… --bench gemm -- 1 2 f16 model rows=…`, staging off/on in the same
//! build, two interleaved rounds at load 2–3): 9 rows 23.3–23.6 → 22.5–23.0 ms, 16 rows
//! 34.1–36.1 → 33.0–35.6 ms, 32 rows 67.3–69.2 → 62.2–65.3 ms, 64 rows 134.4–136.8 →
//! 119.9–124.2 ms. bf16, whose widening is two integer operations per line, measured slower
//! staged at 16 rows (30.1 → 32.5 ms) and the same at 32–64 rows, so it is not staged.
//!
//! # Variants (chosen at run time, all bit-identical)
//! [`Variant::Avx512`] (AVX-512F; Zen 4, Intel Xeon), [`Variant::Avx2`] (AVX2 + FMA + F16C;
//! Zen 2/3, older Intel), [`Variant::Neon`] (aarch64: Jetson, Graviton) and
//! [`Variant::Portable`] (scalar `mul_add`) all compute the order below; [`best_variant`]
//! picks the first the CPU supports, in that order (`ARGEN_CPU_VARIANT` overrides it for
//! benchmarks). Being bit-identical, the choice can only change speed. The AVX-512 kernel keeps
//! the 8-lane structure by giving each `zmm` accumulator the 8 lanes of *two* output columns
//! (columns `2p` and `2p + 1` in lanes 0–7 and 8–15, the input block broadcast to both
//! halves; a packed half-precision line widens to exactly two such pairs) and its 32 vector
//! registers hold tiles of up to [`MR_WIDE`] = 8 rows × [`NR`] columns (16 accumulators), so
//! up to 8 rows stream each weight once and larger batches pass over an L2-resident column
//! block once per 8 rows (AVX2: 3). NEON splits each 8-lane
//! accumulator into two `float32x4_t` (`vfmaq_f32` is fused, like `vfmadd`). Measured on
//! the 2-core AMD EPYC (Zen 4) dev box, f32 GEMM at 128 rows: AVX2 79, AVX-512 88 GFLOP/s
//! per core (`ARGEN_CPU_VARIANT=avx2|avx512 cargo bench -p argen-cpu --bench gemm -- 1 3`).
//!
//! # Reduction order (determinism contract)
//! Every output element is computed the same way, whatever the row count, the batch
//! composition, the tile an element falls in, the column/row blocking, the weight layout or the
//! number of threads:
//! 1. eight lane accumulators `acc[l] = fma(x[k], w[k], acc[l])` over `k = l, l + 8, …` for
//!    `k < ⌊K/8⌋·8`, in increasing `k`;
//! 2. the lanes are summed in the fixed tree `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`;
//! 3. the scalar tail `k = ⌊K/8⌋·8 … K-1` is accumulated onto that sum with `fma`, in order;
//! 4. the bias (if any) is added last.
//!
//! Widening f16/bf16 to f32 is exact, so it does not matter where it happens. The portable
//! fallback uses `f32::mul_add` in the same lane structure and the same tree, so every variant
//! matches it bit for bit (tested below for every variant the machine runs, f32 / bf16 / f16
//! weights in both layouts, tails, 1–128 rows and 1–3 threads; the others print
//! `SKIPPED <variant>: <reason>`). A row's result is therefore bit-identical whether it is
//! computed alone or in a batch, on any of these CPUs. The opt-in fast class ([`crate::fast`])
//! has its own order.

use crate::hugemem::Buf;
use crate::par::Workers;
use half::{bf16, f16};

/// A borrowed weight matrix `[n, k]`.
#[derive(Clone, Copy, Debug)]
pub enum WRef<'a> {
    /// f32 weights, row-major.
    F32(&'a [f32]),
    /// f16 weights, row-major.
    F16(&'a [f16]),
    /// bf16 weights, row-major.
    BF16(&'a [bf16]),
    /// f32 weights in the packed layout of [`pack`] (`packed_len(n, k)` elements).
    F32Packed(&'a [f32]),
    /// f16 weights in the packed layout of [`pack`] (`packed_len(n, k)` elements).
    F16Packed(&'a [f16]),
    /// bf16 weights in the interleaved packed layout of [`pack_bf16`] (`packed_len(n, k)`
    /// elements).
    BF16Packed(&'a [bf16]),
    /// bf16 weights in the AMX tile layout of [`crate::amx::pack`]: only the `amx-bf16` class
    /// ([`gemm_with`]) reads it.
    BF16Amx(&'a [bf16]),
}

/// Elements of the packed layout of an `[n, k]` matrix: `⌈n/NR⌉` tiles of `NR·k`.
pub fn packed_len(n: usize, k: usize) -> usize {
    n.div_ceil(NR) * NR * k
}

/// Offset of element `(row, col)` of an `[n, k]` matrix in the packed layout (module docs).
#[inline]
pub fn packed_index(row: usize, col: usize, k: usize) -> usize {
    let kb = k / 8 * 8;
    let (t, j) = (row / NR, row % NR);
    let tile = t * NR * k;
    if col < kb {
        tile + (col / 8) * NR * 8 + j * 8 + col % 8
    } else {
        tile + NR * kb + j * (k - kb) + (col - kb)
    }
}

/// Repacks a row-major `[n, k]` matrix into the packed layout (module docs); the padding rows
/// of the last tile are `zero`.
///
/// # Panics
/// If `w` holds fewer than `n · k` elements.
pub fn pack<T: Copy>(w: &[T], n: usize, k: usize, zero: T) -> Buf<T> {
    assert!(
        w.len() >= n * k,
        "pack: {} elements for [{n}, {k}]",
        w.len()
    );
    let kb = k / 8 * 8;
    let mut out = Vec::with_capacity(packed_len(n, k));
    let mut put = |r: usize, c0: usize, c1: usize| {
        if r < n {
            out.extend_from_slice(&w[r * k + c0..r * k + c1]);
        } else {
            out.extend(std::iter::repeat_n(zero, c1 - c0));
        }
    };
    for t in 0..n.div_ceil(NR) {
        for b in (0..kb).step_by(8) {
            for j in 0..NR {
                put(t * NR + j, b, b + 8);
            }
        }
        for j in 0..NR {
            put(t * NR + j, kb, k);
        }
    }
    Buf::from_slice(&out)
}

/// Offset of element `(row, col)` of an `[n, k]` bf16 matrix in the interleaved packed layout
/// of [`pack_bf16`] (module docs).
#[inline]
pub fn packed_index_bf16(row: usize, col: usize, k: usize) -> usize {
    let kb = k / 8 * 8;
    let (t, j) = (row / NR, row % NR);
    let tile = t * NR * k;
    if col < kb {
        tile + (col / 8) * NR * 8 + 2 * ((j % 2) * 8 + col % 8) + j / 2
    } else {
        tile + NR * kb + j * (k - kb) + (col - kb)
    }
}

/// Repacks a row-major `[n, k]` bf16 matrix into the interleaved packed layout
/// ([`packed_index_bf16`], module docs) that [`WRef::BF16Packed`] weights are in; the padding
/// rows of the last tile are zero.
///
/// # Panics
/// If `w` holds fewer than `n · k` elements.
pub fn pack_bf16(w: &[bf16], n: usize, k: usize) -> Buf<bf16> {
    assert!(
        w.len() >= n * k,
        "pack_bf16: {} elements for [{n}, {k}]",
        w.len()
    );
    let mut out = Buf::from_fn(packed_len(n, k), |_| bf16::ZERO);
    for r in 0..n {
        for (c, &v) in w[r * k..(r + 1) * k].iter().enumerate() {
            out[packed_index_bf16(r, c, k)] = v;
        }
    }
    out
}

/// Columns (weight rows) per micro-kernel tile.
pub const NR: usize = 4;
/// Most input rows per micro-kernel tile of the AVX2, NEON and portable variants.
pub const MR: usize = 3;
/// Most input rows per micro-kernel tile of the AVX-512 variant (32 vector registers).
pub const MR_WIDE: usize = 8;
/// Target bytes of weights per column block (kept in L2 while every row block passes over it).
const BLOCK_BYTES: usize = 192 << 10;
/// Prefetch distance past the next tile's offset (row-major weights), in bytes.
const PF_BYTES: usize = 64;
/// Prefetch distance ahead in the tile stream (packed weights), in bytes, unless the CPU's
/// [`Tuning`] says otherwise.
const PF_PACKED_BYTES: usize = 1024;

/// Speed-only choices per microarchitecture (results are the same bits whatever they are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Calls with at most this many rows stream packed weights without software prefetch
    /// (the hardware prefetcher alone is faster there); larger calls prefetch
    /// `pf_packed_bytes` ahead in the tile stream.
    pub no_prefetch_rows: usize,
    /// Software prefetch distance in the packed tile stream, in bytes.
    pub pf_packed_bytes: usize,
    /// [`Tuning::no_prefetch_rows`] for packed f32 weights.
    pub f32_no_prefetch_rows: usize,
    /// [`crate::Cpu`] stores f32 matrices with at most this many columns (`k`) in the packed
    /// layout too (0: none).
    pub pack_f32_max_k: usize,
    /// Packed calls that prefetch ahead do it into L2 (`prefetcht1`) rather than
    /// non-temporally (one row block) or into L1 (several).
    pub l2_prefetch: bool,
    /// Row-major calls of 3 or more rows prefetch the next tile's rows into L2
    /// (`prefetcht1`) rather than into L1.
    pub row_major_l2_prefetch: bool,
    /// Packed f16 calls of at least this many rows (and more than one AVX-512 row block)
    /// widen each column block once into an f32 copy that later row blocks read (staged
    /// calls, module docs); `usize::MAX`: never.
    pub stage_f16_min_rows: usize,
    /// Packed f32 calls of 3 or more rows issue their prefetches ahead only every this many
    /// 8-column steps (a power of two; 1: every step), AVX-512 kernel.
    pub f32_prefetch_every: usize,
    /// Packed f32 calls of a single AVX-512 row block of 3 or more rows run tiles of at least
    /// this many rows (padded with copies of the last input row, not stored; 0: none).
    pub f32_min_tile_rows: usize,
    /// In a packed call of several row blocks, the second row block of each column block
    /// (which finds the block in L2) prefetches the *next* column block into L2, every line,
    /// so that the next block's first row block does not wait on memory ([`tuning`]).
    pub prefetch_next_block: bool,
}

/// Prefetch kind `prefetchnta` (a kernel's `HINT`).
const PF_NTA: u8 = 0;
/// Prefetch kind `prefetcht0` (into L1).
const PF_T0: u8 = 1;
/// Prefetch kind `prefetcht1` (into L2).
const PF_T1: u8 = 2;
/// Prefetch kind `prefetcht1`, on every step even where [`Tuning::f32_prefetch_every`] thins
/// the prefetches out (the next column block, [`Tuning::prefetch_next_block`]).
const PF_T1_EVERY: u8 = 3;

/// Prefetches the line at `p` with kind `HINT` (never faults).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch<const HINT: u8>(p: *const i8) {
    use std::arch::x86_64::*;
    // SAFETY: SSE is baseline on x86_64, and a prefetch never faults whatever the address.
    unsafe {
        match HINT {
            PF_NTA => _mm_prefetch::<_MM_HINT_NTA>(p),
            PF_T1 | PF_T1_EVERY => _mm_prefetch::<_MM_HINT_T1>(p),
            _ => _mm_prefetch::<_MM_HINT_T0>(p),
        }
    }
}

// Packed f32 on Zen 4 (one core; `… --bench gemm -- 1 3 f32 f32p rows=…` with
// `shapes=w1` or `shapes=w2`, the two FFN shapes apart, several interleaved runs at load
// 4–7, weight GB/s): for k = 768 ([2048, 768]) packed streams 28 / 26 / 23 GB/s at 1 / 2 / 4
// rows (with `f32_no_prefetch_rows = 4`) against row-major's 14.5 / 15 / 14, ≈ 17 vs 14 at 6
// rows, and loses at 8 (10–11 vs 12–13.5); for k = 2048 ([768, 2048], 8 KiB rows, which the
// hardware prefetcher follows well) row-major wins at every row count (1 row 24 vs 19, 8 rows
// 15–18 vs 10). Hence `pack_f32_max_k = 1024` in session 6: GPT-B's wqkv, wo, w1, w3 and
// output matrices (k = 768) packed, w2 (k = 2048) row-major.
//
// Session 7 (branch `multirow`), with the L2 prefetch and huge pages in place, measured the
// other way round for w2: the decode-step GEMMs with every f32 matrix packed (`f32p`) against
// w2 row-major (`f32`), `… --bench gemm -- 1 3 f32 f32p model rows=1,2`, three interleaved
// rounds at load 2–3, fastest pass: 1 row 10.9–11.9 vs 12.7–13.5 ms, 2 rows 12.4–12.7 vs
// 13.3–13.8 ms; and with many rows the packed kernel keeps its FMAs busier (w2 alone, 64 rows,
// `… -- 1 2 f32 f32p rows=64 shapes=w2`: 108 vs 93 GFLOP/s, the row-major tile widening two
// 8-float loads into one `zmm` per column pair). Hence `pack_f32_max_k = usize::MAX` on Zen 4:
// every f32 matrix packed (the verification table of `… --bench decode -- 1`, on-CPU: 1.17×
// to 1.42× at 2–128 rows from 1.27–1.69× with the main build of the same window).

/// The [`Tuning`] for this CPU, by model: AMD with AVX-512 (Zen 4 and later) streams packed
/// weights faster with the hardware prefetcher alone at 1–2 rows (decode-step GEMMs on one
/// Zen 4 core, `cargo bench -p argen-cpu --bench gemm -- 1 4 bf16 f16 model rows=1,2,4`, two
/// interleaved runs each: bf16 1 row 24–28 vs 16–19 GB/s, 2 rows 19–20 vs 15–17 GB/s; from 4
/// rows on the prefetch helps: 8 rows 70 vs 57 GFLOP/s), and further ahead than on Zen 2
/// (`… --bench gemm -- 1 3 bf16 rows=4,8,16,32`, two rounds of 1 / 4 / 8 KiB: bf16 at 4 rows
/// 42–44 / 46–49 / 51–53, 8 rows 64–70 / 69–73 / 76–79 GFLOP/s); on Zen 2 the software prefetch
/// measured faster at 1–2 rows too (15.7 vs 12.9 GB/s), with 1 KiB best, so every other CPU
/// keeps that. On the same CPUs f32 matrices with k ≤ 1024 are stored packed and stream
/// their 1–2-row calls like that (the comment above).
///
/// Calls of 3 or more rows on Zen 4 prefetch 16 KiB ahead into L2 (`prefetcht1`,
/// [`Tuning::l2_prefetch`]) instead of 4 KiB ahead non-temporally (one row block) or into L1
/// (several): the non-temporal and L1 prefetches hold one of the core's few L1 miss buffers
/// each until the line arrives from DRAM, which capped a multi-row call's stream at
/// 10–12 GB/s, while an L2 prefetch is tracked by the L2. GPT-B decode-step GEMMs on one core
/// (`cargo bench -p argen-cpu --bench gemm -- 1 3 f32 bf16 model rows=3,4,8`, the same build
/// with each kind and distance, interleaved, load 4–7, on-CPU time): f32 at 8 rows 35 ms
/// (NTA 4 KiB) / 36 ms (T0 4 KiB) / 23–24 ms (T1 4 KiB) / 22 ms (T1 16 KiB) / 22–23 ms
/// (T1 32–128 KiB); f32 at 4 rows (which streamed without prefetch before) 30.7 → 19.8 ms;
/// bf16 at 4 rows 14.3 → 12.3 ms. Later passes over a column block (more than 8 rows) measured
/// the same or slightly faster with T1 (bf16 at 64 rows 92 → 94.5 GFLOP/s). Decided once per
/// process.
///
/// Why neither way reaches the probe's ~33 GB/s beyond one row (session 7, one Zen 4 core,
/// `… --bench gemm -- 1 2 bf16 model rows=…`, best of several interleaved runs at load 2–3,
/// no hardware counters in this VM, so the mechanism is inferred from the shape of the data):
/// *without* software prefetch a call streams about as fast as its out-of-order window can
/// keep demand misses in flight, i.e. inversely to the instructions per 64-byte line (about
/// 8, 11, 14, 17 and 29 at 1, 2, 3, 4 and 8 rows): 6.0 / 7.5 / 11.2 / 13.6 / 27.5 ms; *with*
/// a software prefetch of every line, of any kind (`prefetcht1` 2–16 KiB ahead, NTA/T0
/// 128 B–4 KiB ahead), the stream sits at 19–22 GB/s whatever the row count (3 / 4 / 8 rows:
/// 8.9 / 10.3 / 18.2 ms), as if each prefetch held one of the core's L1 miss buffers until
/// DRAM answers; adding a `prefetcht1` ahead to the 1–2-row path (every line or every other
/// line, 2–8 KiB ahead) cost 1 row 6.0 → 7.8–9.5 ms. Loads through two `ymm` halves instead
/// of one `zmm`, a pre-broadcast copy of the inputs (no `vbroadcastf64x4`) and two tiles at
/// once (more independent FMA chains: from L2 1 row 47 → 66 %, 2 rows 75 → 89 % of the FMA
/// peak, but 2× slower from DRAM, two streams or one) all measured slower; what helped is
/// fewer instructions per line: one prefetch per half-precision line (two hit the same line
/// before) and two 8-column steps per loop iteration for 1–2 rows (−1 … −6 % at 1–2 rows,
/// f32 / bf16 / f16). These sweeps ran before [`crate::hugemem`] mapped weights fresh, when
/// most of a model's weights sat in small pages; re-checked afterwards with every weight in
/// huge pages (quiet, `… --bench gemm -- 1 2 bf16 model rows=1,2,4,8`, best of 3): default
/// 5.76 / 6.61 / 7.98 / 14.66 ms at 1 / 2 / 4 / 8 rows, a software prefetch at every row
/// count 7.98 / 7.55 / 7.93 / 14.72 ms, none up to 8 rows 5.64 / 6.54 / 10.98 / 23.65 ms:
/// the choice stands, and the prefetched 4-row stream now reaches 24.7 GB/s.
///
/// Session 7 (branch `multirow`, one Zen 4 core, calls of 3 or more rows; GPT-B decode-step
/// GEMMs, `… --bench gemm -- 1 2 f32 bf16 f16 model rows=…`, overrides below interleaved in
/// the same build, load 2–4, fastest pass):
/// - *Sparse f32 prefetch* ([`Tuning::f32_prefetch_every`] = 16): a packed f32 tile of 3–8
///   rows that prefetches its step's two lines only every 16th step streams faster than one
///   that prefetches every line, in line with the miss-buffer reading above — a few
///   `prefetcht1`s start the L2's own stream without holding the L1's buffers. Three rounds,
///   every step → every 16th: 3 rows 17.6–18.5 → 15.5–16.4 ms, 4 rows 17.8–18.2 → 14.5–16.1
///   ms, 6 rows 13.9–15.0 → 12.6–14.0 ms, 8 rows 16.7–17.0 → 16.0–16.2 ms; 16 rows the same;
///   every 4th / 8th / 32nd / 64th step in between or the same as 16; 4 / 64 KiB ahead or
///   `l2_prefetch=0` slower. Half precision (one line per step) measured the same every step,
///   every 16th and every 64th (an override tried and removed): bf16 at 4 rows 9.0–10.3 ms
///   either way, the noise of identical runs, so it prefetches every line.
/// - *Row-major calls prefetch into L2* ([`Tuning::row_major_l2_prefetch`]): the next tile's
///   rows are `4·k` elements ahead (32 KiB of f32 at k = 2048, all of L1); as `prefetcht0` they
///   evicted the tile in use. With every f32 matrix of GPT-B still row-major at k = 2048
///   (session 6's layout), two rounds: 3 rows 18.0–18.2 → 16.9–17.4 ms, 4 rows 18.0–18.1 →
///   16.8–17.4 ms, 8 rows 20.1–20.3 → 18.1–18.3 ms, 16 rows 36.2–36.9 → 33.9 ms; one, two or
///   four tiles ahead the same.
/// - *6-row tiles for f32 calls of 3–5 rows* ([`Tuning::f32_min_tile_rows`] = 6): a packed
///   f32 call of one AVX-512 row block, streaming from memory, computes padding rows (copies of
///   its last input row, never stored) and is faster for it, in seven interleaved rounds: 3 rows
///   15.4–16.8 → 12.2–12.95 ms, 4 rows 14.7–16.2 → 12.3–13.3 ms, 5 rows the same; padding to 8
///   rows no better. Padding half-precision tiles of 3–4 rows to 6 (nearer the FMA limit) was
///   20–50 % slower and padding the 1–2-row decode tiles 5–50 % slower, so neither pads; nor
///   do the later row blocks of a staged call (weights in L2, FMA-bound).
/// - *Staged f16 calls* ([`Tuning::stage_f16_min_rows`] = 9): module docs.
///
/// Session 8 (one or two Zen 4 cores; `… --bench gemm -- T 2 f32 bf16 model rows=…`, three
/// interleaved rounds each, fastest pass, process CPU time; load 0.6–0.9):
/// - *The next column block into L2* ([`Tuning::prefetch_next_block`]): a call of more than 8
///   rows streams each column block from memory in its first row block and then runs the
///   other row blocks on it from L2, bound by their FMAs while memory idles. Its second row
///   block now prefetches the next column block (`prefetcht1` of every line, at the same
///   offsets). Off → on, 2 threads: f32 at 16 / 32 / 128 rows 33.89 / 62.64 / 239.21 →
///   33.11 / 61.15 / 238.20 ms, bf16 30.24 / 59.06 / 232.82 → 29.38 / 58.96 / 232.59 ms;
///   1 thread: f32 at 16 / 32 rows 30.36 / 59.62 → 29.27 / 58.74 ms, bf16 29.13 / 58.11 →
///   28.97 / 57.75 ms. Small (1–4 %) but never slower; prefetching in every later row block
///   instead measured the same at 16 rows and slower at 64 (f32, 1 thread, 118 → 125 ms).
///   Staged f16 calls run their later row blocks on the staged copy and do not prefetch.
/// - *Rejected:* for 1–2-row calls, a `prefetcht1` 4–16 KiB ahead on every 8th–64th step
///   besides the `prefetchnta` of the line (bf16 / f16 at 2 rows 6.57 / 7.14 → 6.63–6.81 /
///   7.06–7.33 ms), and the inputs pre-broadcast into a buffer that the FMAs read as their
///   memory operand (fewer instructions per line: bf16 at 1 / 2 rows 5.61 / 6.50 → 6.49 /
///   9.83 ms); f16 widened by `vcvtph2ps` straight from memory (`_mm512_cvtph_ps` emits the
///   `{sae}` form, which cannot take a memory operand, so each pair is a load and a
///   conversion): f16 at 1 / 2 / 4 / 8 / 16 rows 5.66 / 6.98 / 9.42 / 16.47 / 31.35 → 5.69 /
///   7.22 / 9.40 / 16.45 / 31.21 ms, the same.
///
/// `ARGEN_GEMM_TUNING` overrides fields for benchmarks (the results are the same bits either
/// way): comma-separated `no_prefetch_rows=N`, `pf_packed_bytes=N`, `f32_no_prefetch_rows=N`,
/// `l2_prefetch=0|1`, `row_major_l2_prefetch=0|1`, `stage_f16_min_rows=N`,
/// `f32_prefetch_every=N`, `f32_min_tile_rows=N`, `prefetch_next_block=0|1`
/// (`pack_f32_max_k` is fixed, as it decides the stored layout);
/// malformed entries are ignored.
pub fn tuning() -> Tuning {
    static T: std::sync::OnceLock<Tuning> = std::sync::OnceLock::new();
    *T.get_or_init(|| {
        let mut t = cpu_tuning();
        if let Ok(spec) = std::env::var("ARGEN_GEMM_TUNING") {
            for (key, value) in spec.split(',').filter_map(|kv| kv.split_once('=')) {
                let Ok(v) = value.trim().parse::<usize>() else {
                    continue;
                };
                match key.trim() {
                    "no_prefetch_rows" => t.no_prefetch_rows = v,
                    "pf_packed_bytes" => t.pf_packed_bytes = v,
                    "f32_no_prefetch_rows" => t.f32_no_prefetch_rows = v,
                    "l2_prefetch" => t.l2_prefetch = v != 0,
                    "row_major_l2_prefetch" => t.row_major_l2_prefetch = v != 0,
                    "stage_f16_min_rows" => t.stage_f16_min_rows = v,
                    "f32_prefetch_every" => t.f32_prefetch_every = v,
                    "f32_min_tile_rows" => t.f32_min_tile_rows = v,
                    "prefetch_next_block" => t.prefetch_next_block = v != 0,
                    _ => {}
                }
            }
        }
        t
    })
}

/// [`tuning`] by CPU model alone.
fn cpu_tuning() -> Tuning {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: CPUID leaf 0 exists on every x86_64 CPU (the intrinsic is safe in newer
        // Rust).
        #[allow(unused_unsafe)]
        let l0 = unsafe { std::arch::x86_64::__cpuid(0) };
        let amd = (l0.ebx, l0.edx, l0.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
        if amd && best_variant() == Variant::Avx512 {
            return Tuning {
                no_prefetch_rows: 2,
                pf_packed_bytes: 16 << 10,
                f32_no_prefetch_rows: 2,
                pack_f32_max_k: usize::MAX,
                l2_prefetch: true,
                row_major_l2_prefetch: true,
                stage_f16_min_rows: 9,
                f32_prefetch_every: 16,
                f32_min_tile_rows: 6,
                prefetch_next_block: true,
            };
        }
    }
    Tuning {
        no_prefetch_rows: 0,
        pf_packed_bytes: PF_PACKED_BYTES,
        f32_no_prefetch_rows: 0,
        pack_f32_max_k: 0,
        l2_prefetch: false,
        row_major_l2_prefetch: false,
        stage_f16_min_rows: usize::MAX,
        f32_prefetch_every: 1,
        f32_min_tile_rows: 0,
        prefetch_next_block: false,
    }
}

/// An exact kernel variant: every variant computes the module's reduction order bit for bit,
/// so the choice only changes speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Scalar `mul_add` code with the 8-lane structure (any CPU).
    Portable,
    /// AVX2 + FMA + F16C: `MR × NR` tiles of 8-lane `ymm` accumulators.
    Avx2,
    /// AVX-512F (plus AVX2/FMA/F16C for tails): each `zmm` accumulator holds the 8 lanes of
    /// two output columns, tiles of up to [`MR_WIDE`] rows × [`NR`] columns.
    Avx512,
    /// aarch64 Advanced SIMD: each 8-lane accumulator is a pair of `float32x4_t`.
    Neon,
}

impl Variant {
    /// Every variant, fastest-first preference order.
    pub const ALL: [Variant; 4] = [
        Variant::Avx512,
        Variant::Avx2,
        Variant::Neon,
        Variant::Portable,
    ];

    /// Short name (`portable`, `avx2`, `avx512`, `neon`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Portable => "portable",
            Variant::Avx2 => "avx2",
            Variant::Avx512 => "avx512",
            Variant::Neon => "neon",
        }
    }

    /// Why this CPU (or this build's target) cannot run the variant; `None` if it can.
    pub fn unsupported(self) -> Option<&'static str> {
        match self {
            Variant::Portable => None,
            #[cfg(target_arch = "x86_64")]
            Variant::Avx2 => (!(std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("f16c")
                && std::is_x86_feature_detected!("popcnt")))
            .then_some("the CPU lacks AVX2, FMA, F16C or POPCNT"),
            #[cfg(target_arch = "x86_64")]
            Variant::Avx512 => (Variant::Avx2.unsupported().is_some()
                || !std::is_x86_feature_detected!("avx512f"))
            .then_some("the CPU lacks AVX-512F (or AVX2/FMA/F16C/POPCNT)"),
            #[cfg(not(target_arch = "x86_64"))]
            Variant::Avx2 | Variant::Avx512 => Some("not an x86_64 build"),
            #[cfg(target_arch = "aarch64")]
            Variant::Neon => None,
            #[cfg(not(target_arch = "aarch64"))]
            Variant::Neon => Some("not an aarch64 build"),
        }
    }

    /// Most rows per micro-kernel tile.
    fn mr(self) -> usize {
        if self == Variant::Avx512 {
            MR_WIDE
        } else {
            MR
        }
    }
}

/// The variant [`gemm`] uses: the first supported one of [`Variant::ALL`], unless the
/// environment variable `ARGEN_CPU_VARIANT` names another supported variant (for benchmarks;
/// the results are the same bits either way). Decided once per process.
pub fn best_variant() -> Variant {
    static BEST: std::sync::OnceLock<Variant> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| {
        let forced = std::env::var("ARGEN_CPU_VARIANT").ok();
        Variant::ALL
            .into_iter()
            .filter(|v| v.unsupported().is_none())
            .find(|v| forced.as_deref().is_none_or(|f| f == v.name()))
            .unwrap_or(Variant::Portable)
    })
}

/// A class of kernels. Within a class the results are the same bits on every machine that
/// runs it; different classes have different reduction orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// The exact kernels of this module (any [`Variant`]), the default.
    Exact,
    /// The opt-in AVX512-BF16 dot products of [`crate::fast`] (bf16 weights only).
    Avx512Bf16,
    /// The opt-in AMX tiles of [`crate::amx`] (bf16 weights in the tile layout).
    AmxBf16,
}

impl Class {
    /// Short name for stats and traces: `exact`, `avx512-bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Class::Exact => "exact",
            Class::Avx512Bf16 => "avx512-bf16",
            Class::AmxBf16 => "amx-bf16",
        }
    }
}

/// Which kernels a backend runs: an exact [`Variant`] and, opt-in, the fast class for the
/// weights it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernels {
    /// The exact variant (must be supported by the CPU).
    pub variant: Variant,
    /// Use a fast class where the CPU has it: [`crate::amx`] for bf16 weights stored in its
    /// tile layout (a [`crate::Cpu`] stores them so when AMX is usable), else [`crate::fast`]
    /// for packed bf16 weights with AVX512-BF16; other weights, and CPUs without either, keep
    /// the exact class.
    pub fast: bool,
}

impl Kernels {
    /// The exact class on [`best_variant`].
    pub fn exact() -> Kernels {
        Kernels {
            variant: best_variant(),
            fast: false,
        }
    }

    /// The class a GEMM with weights `w` runs.
    pub fn class_for(&self, w: &WRef<'_>) -> Class {
        if matches!(w, WRef::BF16Amx(_)) {
            Class::AmxBf16
        } else if self.fast
            && matches!(w, WRef::BF16Packed(_))
            && crate::fast::unsupported().is_none()
        {
            Class::Avx512Bf16
        } else {
            Class::Exact
        }
    }
}

/// A weight element type: widened exactly to f32.
trait Elem: Copy + Send + Sync {
    /// Size in bytes.
    const BYTES: usize;
    /// Packed tiles of this type use the interleaved bf16 layout ([`pack_bf16`]).
    const PAIRED: bool = false;
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
    const PAIRED: bool = true;
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
    gemm_isa(best_variant(), workers, tasks, x, rows, k, w, n, bias, out)
}

/// [`gemm`] with the given kernels; returns the class that ran.
///
/// # Panics
/// If `kern.variant` is not supported by the CPU ([`Variant::unsupported`]), or a buffer is
/// too small.
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    kern: &Kernels,
    workers: &Workers,
    tasks: usize,
    x: &[f32],
    rows: usize,
    k: usize,
    w: WRef<'_>,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Class {
    let class = kern.class_for(&w);
    match (class, w) {
        (Class::Avx512Bf16, WRef::BF16Packed(s)) => {
            crate::fast::gemm(workers, tasks, x, rows, k, s, n, bias, out)
        }
        (Class::AmxBf16, WRef::BF16Amx(s)) => {
            crate::amx::gemm(workers, tasks, x, rows, k, s, n, bias, out)
        }
        _ => {
            assert!(
                kern.variant.unsupported().is_none(),
                "gemm variant {} is not supported here",
                kern.variant.name()
            );
            gemm_isa(kern.variant, workers, tasks, x, rows, k, w, n, bias, out)
        }
    }
    class
}

#[allow(clippy::too_many_arguments)]
fn gemm_isa(
    isa: Variant,
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
    let (wlen, need) = match w {
        WRef::F32(s) => (s.len(), n * k),
        WRef::F16(s) => (s.len(), n * k),
        WRef::BF16(s) => (s.len(), n * k),
        WRef::F32Packed(s) => (s.len(), packed_len(n, k)),
        WRef::F16Packed(s) => (s.len(), packed_len(n, k)),
        WRef::BF16Packed(s) => (s.len(), packed_len(n, k)),
        WRef::BF16Amx(_) => panic!("AMX-layout weights run only on the amx-bf16 class (gemm_with)"),
    };
    assert!(
        x.len() >= rows * k
            && out.len() >= rows * n
            && wlen >= need
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
                from_memory: true,
            };
            // SAFETY: task t writes only columns n0..n1 of the rows*n output, and the column
            // ranges of distinct tasks are disjoint; `out` is borrowed mutably for the call and
            // holds rows*n floats (asserted above), as do `x` (rows*k) and `w` (n*k, or the
            // packed length).
            unsafe {
                match w {
                    WRef::F32(s) => task::<_, false>(&a, s),
                    WRef::F16(s) => task::<_, false>(&a, s),
                    WRef::BF16(s) => task::<_, false>(&a, s),
                    WRef::F32Packed(s) => task::<_, true>(&a, s),
                    WRef::F16Packed(s) if staged_f16(&a) => task_staged_f16(&a, s),
                    WRef::F16Packed(s) => task::<_, true>(&a, s),
                    WRef::BF16Packed(s) => task::<_, true>(&a, s),
                    WRef::BF16Amx(_) => unreachable!("rejected above"),
                }
            }
        }
    };
    workers.run(tasks, run);
}

/// Per-task arguments.
struct Args<'a> {
    isa: Variant,
    x: &'a [f32],
    rows: usize,
    k: usize,
    n: usize,
    n0: usize,
    n1: usize,
    bias: Option<&'a [f32]>,
    out: OutPtr,
    /// The weights come from memory (not from a staged copy in L2): small packed f32 tiles
    /// may be padded ([`Tuning::f32_min_tile_rows`]).
    from_memory: bool,
}

/// Input rows in the next row block, given `rem` rows left and at most `mr` rows per tile:
/// `mr` at a time, but never leaving a lone row behind when it can be avoided (with `mr = 3`,
/// 4 → 2 + 2; with `mr = 8`, 9 → 5 + 4).
#[inline]
fn row_block(rem: usize, mr: usize) -> usize {
    if rem <= mr {
        rem
    } else if rem < 2 * mr && rem % mr == 1 {
        rem.div_ceil(2)
    } else {
        mr
    }
}

/// Where one tile's weights are: element `e` of the 8-element block `b` of its row `j` is at
/// `blk[j] + b·step + e·es`, and that row's `k mod 8` tail elements at `tail[j]`.
#[derive(Clone, Copy)]
struct TilePtrs<W> {
    blk: [*const W; NR],
    step: usize,
    /// Distance between a block's consecutive elements of one row: 2 in the interleaved bf16
    /// layout (where `blk[j]` is `j / 2` past the start of its 32-bit words), else 1.
    es: usize,
    tail: [*const W; NR],
}

/// The pointers of the packed tile at the start of `base` (which holds at least its `NR·k`
/// elements).
#[inline]
fn packed_tile<W: Elem>(base: &[W], k: usize) -> TilePtrs<W> {
    let kb = k / 8 * 8;
    // The tile's rows past n are zero padding; computed, never stored.
    // Interleaved bf16 (module docs): row i's elements are every other half of the words of
    // rows i mod 2, starting at the high half for rows 2–3.
    let es = if W::PAIRED { 2 } else { 1 };
    let first = |i: usize| {
        if W::PAIRED {
            (i % 2) * 16 + i / 2
        } else {
            i * 8
        }
    };
    TilePtrs {
        // (Only dereferenced when k >= 8, where they lie in the tile.)
        blk: std::array::from_fn(|i| base.as_ptr().wrapping_add(first(i))),
        step: NR * 8,
        es,
        tail: std::array::from_fn(|i| base[NR * kb + i * (k - kb)..].as_ptr()),
    }
}

/// Writes rows `r..r + mr`, columns `j..j + nr` of the output from a tile's sums (step 4 of
/// the reduction order: plus the bias, if any).
///
/// # Safety
/// As [`task`]: the columns lie in the task's range and the rows in the call's.
#[inline(always)]
unsafe fn write_tile(
    a: &Args<'_>,
    r: usize,
    mr: usize,
    j: usize,
    nr: usize,
    acc: &[[f32; NR]; MR_WIDE],
) {
    for (mi, accm) in acc.iter().enumerate().take(mr) {
        let mut v = *accm;
        if let Some(b) = a.bias {
            for (ni, vi) in v.iter_mut().enumerate().take(nr) {
                *vi += b[j + ni];
            }
        }
        // SAFETY: (r+mi, j..j+nr) is inside rows x n and j..j+nr lies in n0..n1, which only
        // this task writes.
        unsafe {
            let dst = a.out.0.add((r + mi) * a.n + j);
            if nr == NR {
                (dst as *mut [f32; NR]).write_unaligned(v);
            } else {
                for (ni, &vi) in v.iter().enumerate().take(nr) {
                    *dst.add(ni) = vi;
                }
            }
        }
    }
}

/// # Safety
/// `out` must point to a `rows·n` buffer of which this call is the only writer of columns
/// `n0..n1`; `x` holds `rows·k` floats and `w` holds `n·k` elements (`PACKED = false`) or the
/// packed layout of an `[n, k]` matrix (`PACKED = true`); `n0` is a multiple of `NR`.
unsafe fn task<W: Elem + Kernel, const PACKED: bool>(a: &Args<'_>, w: &[W]) {
    let k = a.k;
    let kb = k / 8 * 8;
    let cb = (BLOCK_BYTES / (k * W::BYTES).max(1) / NR).max(1) * NR;
    // One row block: the weights are streamed once and not needed again (module docs).
    let nta = PACKED && a.rows <= a.isa.mr();
    let mut c0 = a.n0;
    while c0 < a.n1 {
        let c1 = (c0 + cb).min(a.n1);
        let mut r = 0;
        while r < a.rows {
            let mr = row_block(a.rows - r, a.isa.mr());
            // Prefetch offset in elements past the current weight offset (0: none in
            // effect), see the kernel. Packed: ahead in the tile stream. Row-major: the next
            // tile's rows. The first pass over a column block streams it from memory. Later
            // passes find the block in L2: prefetching into L1 then helps half-precision tiles
            // (f16 at 32 rows 29 → 57 GFLOP/s) but evicts the f32 tile in use (8 KiB rows at
            // k = 2048; f32 at 32 rows 64 → 47 GFLOP/s), so f32 skips it.
            let no_pf_rows = if W::BYTES == 4 {
                tuning().f32_no_prefetch_rows
            } else {
                tuning().no_prefetch_rows
            };
            // The second row block of a column block finds the block in L2 and is bound by
            // its FMAs; it prefetches the next column block (the same offsets, `c1 - c0`
            // columns further on) so that memory works while the FMAs do ([`tuning`]).
            let next_block = PACKED
                && tuning().prefetch_next_block
                && a.from_memory
                && r > 0
                && r == row_block(a.rows, a.isa.mr())
                && c1 < a.n1;
            let pf = if next_block {
                (c1 - c0) * k
            } else if PACKED && a.rows <= no_pf_rows {
                // The line being loaded: no prefetch ahead, but not a no-op either. With a
                // single row block this is `prefetchnta` of the line the kernel loads next,
                // and on Zen 4 that hint is worth keeping: without the instruction the packed
                // f32 stream measured 21 instead of 28–30 GB/s at 1 row (`… --bench gemm -- 1
                // 3 f32p rows=1,2`, same load), presumably because the non-temporal fill
                // keeps the streamed lines out of L2 and L3 (no victim traffic).
                0
            } else if PACKED {
                tuning().pf_packed_bytes / W::BYTES
            } else if r == 0 || W::BYTES == 2 {
                NR * k + PF_BYTES / W::BYTES
            } else {
                0
            };
            // The prefetch's kind: row-major tiles into L1 (`T0`), or into L2 (`T1`) for calls
            // of 3 or more rows where the CPU's [`Tuning::row_major_l2_prefetch`] says so (the
            // next tile's rows are 4·k elements ahead, 32 KiB for f32 at k = 2048: into L1 they
            // evicted the tile in use); a single row block streaming without prefetch ahead, `prefetchnta` of
            // the line being loaded (see above); prefetching ahead, into L2 (`T1`) where the
            // CPU's [`Tuning::l2_prefetch`] says so, else non-temporally with a single row
            // block and into L1 otherwise.
            let hint = if next_block {
                PF_T1_EVERY
            } else if !PACKED {
                if tuning().row_major_l2_prefetch && a.rows > 2 {
                    PF_T1
                } else {
                    PF_T0
                }
            } else if a.rows <= no_pf_rows {
                if nta {
                    PF_NTA
                } else {
                    PF_T0
                }
            } else if tuning().l2_prefetch {
                PF_T1
            } else if nta {
                PF_NTA
            } else {
                PF_T0
            };
            // A packed f32 call of a single row block of 3 or more rows, streaming from
            // memory, runs tiles of at least `f32_min_tile_rows` rows on AVX-512: the padding
            // rows repeat the last input row (`xp`) and are neither summed into nor stored
            // with the real rows, so the bits do not change; measured faster ([`tuning`]).
            let pad_to = if PACKED
                && W::BYTES == 4
                && a.isa == Variant::Avx512
                && a.from_memory
                && mr > 2
                && a.rows <= a.isa.mr()
            {
                tuning().f32_min_tile_rows.min(MR_WIDE)
            } else {
                0
            };
            let mut j = c0;
            while j < c1 {
                let nr = (c1 - j).min(NR);
                let tp = if PACKED {
                    packed_tile(&w[j * k..], k)
                } else {
                    // Short tiles repeat their last column; the duplicates are not stored.
                    let row = |i: usize| (j + i.min(nr - 1)) * k;
                    TilePtrs {
                        blk: std::array::from_fn(|i| w[row(i)..].as_ptr()),
                        step: 8,
                        es: 1,
                        tail: std::array::from_fn(|i| w[row(i) + kb..].as_ptr()),
                    }
                };
                let xp = |i: usize| a.x[(r + i.min(mr - 1)) * k..].as_ptr();
                let mut acc = [[0f32; NR]; MR_WIDE];
                // SAFETY: every x pointer addresses k floats, every block pointer kb/8 blocks
                // `step` apart and every tail pointer k - kb elements (asserted lengths in
                // gemm_isa; packed tiles are whole), and `a.isa` is supported by the CPU
                // (`gemm_isa`'s contract).
                unsafe {
                    let isa = a.isa;
                    macro_rules! go {
                        ($m:literal) => {{
                            let xs: [*const f32; $m] = std::array::from_fn(xp);
                            match hint {
                                PF_NTA => {
                                    W::tile::<$m, PACKED, PF_NTA>(isa, xs, &tp, k, pf, &mut acc)
                                }
                                PF_T1 => {
                                    W::tile::<$m, PACKED, PF_T1>(isa, xs, &tp, k, pf, &mut acc)
                                }
                                PF_T1_EVERY => W::tile::<$m, PACKED, PF_T1_EVERY>(
                                    isa, xs, &tp, k, pf, &mut acc,
                                ),
                                _ => W::tile::<$m, PACKED, PF_T0>(isa, xs, &tp, k, pf, &mut acc),
                            }
                        }};
                    }
                    match mr.max(pad_to) {
                        1 => go!(1),
                        2 => go!(2),
                        3 => go!(3),
                        4 => go!(4),
                        5 => go!(5),
                        6 => go!(6),
                        7 => go!(7),
                        _ => go!(8),
                    }
                }
                // SAFETY: rows r..r+mr and columns j..j+nr are this task's (see above).
                unsafe { write_tile(a, r, mr, j, nr, &acc) };
                j += nr;
            }
            r += mr;
        }
        c0 = c1;
    }
}

/// Whether a task of packed f16 weights is staged (module docs): AVX-512, more than one row
/// block, and at least [`Tuning::stage_f16_min_rows`] rows. bf16 is not staged: its widening
/// is two integer operations per line (module docs), and staging measured slower at 16 rows
/// and the same at 32–64.
fn staged_f16(a: &Args<'_>) -> bool {
    cfg!(target_arch = "x86_64")
        && a.isa == Variant::Avx512
        && a.rows > MR_WIDE
        && a.rows >= tuning().stage_f16_min_rows
}

/// A staged task of packed f16 weights ([`staged_f16`]).
///
/// # Safety
/// As [`task`] with `PACKED = true`; `a.isa` is [`Variant::Avx512`].
#[inline(never)]
unsafe fn task_staged_f16(a: &Args<'_>, w: &[f16]) {
    // SAFETY: forwarded from this function's contract (AVX-512 implies AVX2, FMA and F16C
    // here: `Variant::unsupported`).
    #[cfg(target_arch = "x86_64")]
    unsafe {
        task_staged(a, w)
    }
    // SAFETY: forwarded from this function's contract (never called: `staged_f16`).
    #[cfg(not(target_arch = "x86_64"))]
    unsafe {
        task::<f16, true>(a, w)
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// This thread's f32 copy of the column block a staged task works on (module docs);
    /// grown once to the largest block, never shrunk.
    static STAGE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A staged task (AVX-512, packed half precision, more than one row block; module docs): per
/// column block of at most `BLOCK_BYTES` of f32, the first row block runs
/// [`avx512::tile_staging`], which streams the half-precision tiles as [`task`] does and also
/// stores every widened line into this thread's [`STAGE`] buffer, so that the buffer ends up
/// holding the block in the packed f32 layout; the other row blocks then run [`task`] on that
/// f32 block instead of widening the same weights again. Widening is exact and the f32 kernel
/// computes the same lanes in the same order, so the bits are those of [`task`].
///
/// # Safety
/// As [`task`] with `PACKED = true`; the CPU supports AVX-512F, AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn task_staged<W: Elem + avx512::Pair>(a: &Args<'_>, w: &[W]) {
    let k = a.k;
    let kb = k / 8 * 8;
    let cb = (BLOCK_BYTES / (k * 4).max(1) / NR).max(1) * NR;
    let mr = row_block(a.rows, MR_WIDE);
    // The first pass streams the weights from memory as `task` does for a call of several
    // row blocks.
    let t = tuning();
    let (pf, hint) = if a.rows <= t.no_prefetch_rows {
        (0, PF_T0)
    } else {
        (
            t.pf_packed_bytes / W::BYTES,
            if t.l2_prefetch { PF_T1 } else { PF_T0 },
        )
    };
    STAGE.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < cb * k {
            buf.resize(cb * k, 0.0);
        }
        let stage = buf.as_mut_ptr();
        let mut c0 = a.n0;
        while c0 < a.n1 {
            let c1 = (c0 + cb).min(a.n1);
            let mut j = c0;
            while j < c1 {
                let nr = (c1 - j).min(NR);
                let tp = packed_tile(&w[j * k..], k);
                // This tile's place in the staged block: the same packed layout in f32.
                // SAFETY: (j - c0)·k + NR·k <= cb·k, the buffer's length.
                let dst = unsafe { stage.add((j - c0) * k) };
                let xs: [*const f32; MR_WIDE] =
                    std::array::from_fn(|i| a.x[i.min(mr - 1) * k..].as_ptr());
                let mut acc = [[0f32; NR]; MR_WIDE];
                // SAFETY: as in `task` (x pointers address k floats, the tile is whole), and
                // `dst` addresses the tile's NR·k floats of the buffer.
                unsafe {
                    macro_rules! go {
                        ($m:literal) => {{
                            let xs: [*const f32; $m] = std::array::from_fn(|i| xs[i]);
                            if hint == PF_T1 {
                                avx512::tile_staging::<W, $m, PF_T1>(xs, &tp, k, pf, &mut acc, dst)
                            } else {
                                avx512::tile_staging::<W, $m, PF_T0>(xs, &tp, k, pf, &mut acc, dst)
                            }
                        }};
                    }
                    match mr {
                        5 => go!(5),
                        6 => go!(6),
                        7 => go!(7),
                        _ => go!(8),
                    }
                    // The k mod 8 tails, widened into the f32 layout's tail positions.
                    for (i, &tl) in tp.tail.iter().enumerate() {
                        for c in 0..k - kb {
                            *dst.add(NR * kb + i * (k - kb) + c) = (*tl.add(c)).widen();
                        }
                    }
                    write_tile(a, 0, mr, j, nr, &acc);
                }
                j += nr;
            }
            // The other row blocks, on the staged block: columns c0..c1 become 0..c1 - c0 of
            // an output (and bias) shifted by c0, rows mr.. of x and the output.
            let sub = Args {
                isa: a.isa,
                x: &a.x[mr * k..],
                rows: a.rows - mr,
                k,
                n: a.n,
                n0: 0,
                n1: c1 - c0,
                bias: a.bias.map(|b| &b[c0..]),
                // SAFETY: row mr, column c0 lies in the rows·n output.
                out: OutPtr(unsafe { a.out.0.add(mr * a.n + c0) }),
                from_memory: false,
            };
            // SAFETY: the sub-task writes rows mr..rows, columns c0..c1 of this task's output,
            // reads rows mr..rows of x (k floats each) and the staged block, which holds the
            // packed f32 layout of its ⌈(c1 - c0)/NR⌉ tiles (written above).
            unsafe {
                let block = std::slice::from_raw_parts(stage, (c1 - c0).div_ceil(NR) * NR * k);
                task::<f32, true>(&sub, block);
            }
            c0 = c1;
        }
    });
}

/// Micro-kernel dispatch for one weight element type.
trait Kernel: Elem {
    /// `acc[m][j] = Σ_k x[m][k] · w[j][k]` for `m < M`, `j < NR`, in the module's reduction order.
    /// `PACKED`: the tile is one stream (prefetch once per block); `HINT`: the prefetch's
    /// kind ([`PF_NTA`], [`PF_T0`], [`PF_T1`] or [`PF_T1_EVERY`]).
    ///
    /// # Safety
    /// Every x pointer addresses `k` readable floats, every `w.blk` pointer `⌊k/8⌋` blocks of 8
    /// `w.step` apart and every `w.tail` pointer `k mod 8` elements; `isa` is supported by the
    /// CPU.
    unsafe fn tile<const M: usize, const PACKED: bool, const HINT: u8>(
        isa: Variant,
        x: [*const f32; M],
        w: &TilePtrs<Self>,
        k: usize,
        pf: usize,
        acc: &mut [[f32; NR]; MR_WIDE],
    );
}

macro_rules! kernel_impl {
    ($t:ty, $avx:ident) => {
        impl Kernel for $t {
            #[inline(always)]
            unsafe fn tile<const M: usize, const PACKED: bool, const HINT: u8>(
                isa: Variant,
                x: [*const f32; M],
                w: &TilePtrs<Self>,
                k: usize,
                pf: usize,
                acc: &mut [[f32; NR]; MR_WIDE],
            ) {
                // The prefetch distance only steers the x86 kernels.
                #[cfg(not(target_arch = "x86_64"))]
                let _ = pf;
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: forwarded from the caller's contract (Avx2 only when supported).
                    Variant::Avx2 => unsafe { avx2::$avx::<M, PACKED, HINT>(x, w, k, pf, acc) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: forwarded from the caller's contract (Avx512 only when supported).
                    Variant::Avx512 => unsafe {
                        avx512::tile::<$t, M, PACKED, HINT>(x, w, k, pf, acc)
                    },
                    #[cfg(target_arch = "aarch64")]
                    // SAFETY: forwarded from the caller's contract (NEON is baseline).
                    Variant::Neon => unsafe { neon::tile::<$t, M, PACKED>(x, w, k, acc) },
                    // SAFETY: forwarded from the caller's contract.
                    _ => unsafe { portable_tile::<$t, M>(x, w, k, acc) },
                }
            }
        }
    };
}
kernel_impl!(f32, tile_f32);
kernel_impl!(bf16, tile_bf16);
kernel_impl!(f16, tile_f16);

/// The fixed lane tree of the reduction order.
#[inline(always)]
fn hsum(a: [f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// Portable micro-kernel with the AVX2 lane structure.
///
/// # Safety
/// As [`Kernel::tile`].
unsafe fn portable_tile<W: Elem, const M: usize>(
    x: [*const f32; M],
    w: &TilePtrs<W>,
    k: usize,
    acc: &mut [[f32; NR]; MR_WIDE],
) {
    // SAFETY: the caller guarantees k readable floats behind each x pointer.
    let xs: [&[f32]; M] = std::array::from_fn(|m| unsafe { std::slice::from_raw_parts(x[m], k) });
    let kb = k / 8 * 8;
    let mut lanes = [[[0f32; 8]; NR]; M];
    let mut i = 0;
    let mut o = 0;
    while i < kb {
        for (j, &blk) in w.blk.iter().enumerate() {
            // SAFETY: element l of block i/8 < kb/8 of row j lies at blk[j] + o + l·es.
            let wv: [f32; 8] = std::array::from_fn(|l| unsafe { *blk.add(o + l * w.es) }.widen());
            for (lm, xm) in lanes.iter_mut().zip(&xs) {
                for l in 0..8 {
                    lm[j][l] = xm[i + l].mul_add(wv[l], lm[j][l]);
                }
            }
        }
        i += 8;
        o += w.step;
    }
    for m in 0..M {
        for j in 0..NR {
            // SAFETY: the tail pointer addresses k - kb elements.
            let tail = unsafe { std::slice::from_raw_parts(w.tail[j], k - kb) };
            let mut t = hsum(lanes[m][j]);
            for (kk, wt) in (kb..k).zip(tail) {
                t = xs[m][kk].mul_add(wt.widen(), t);
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
        if matches!(best_variant(), Variant::Avx2 | Variant::Avx512) {
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
        if matches!(best_variant(), Variant::Avx2 | Variant::Avx512) {
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

/// The AVX2 lane tree (for the attention kernels).
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::hsum as avx2_hsum;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Elem, TilePtrs, MR_WIDE, NR};
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// Horizontal sum in the fixed tree `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn hsum(v: __m256) -> f32 {
        // [a0+a4, a1+a5, a2+a6, a3+a7]
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        // [(a0+a4)+(a2+a6), (a1+a5)+(a3+a7), ..]
        let t = _mm_add_ps(s, _mm_movehl_ps(s, s));
        // lane0 + lane1
        let u = _mm_add_ss(t, _mm_shuffle_ps::<0b01>(t, t));
        _mm_cvtss_f32(u)
    }

    /// Shared body: `|p, j| load` yields the 8 widened weights of tile row `j` whose block
    /// starts at `p`.
    macro_rules! tile_body {
        ($name:ident, $t:ty, |$p:ident, $j:ident| $load:block) => {
            /// AVX2 micro-kernel for one weight element type (see the module docs).
            ///
            /// # Safety
            /// Requires AVX2, FMA and F16C; pointers as [`super::Kernel::tile`].
            #[inline]
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $name<const M: usize, const PACKED: bool, const HINT: u8>(
                x: [*const f32; M],
                w: &TilePtrs<$t>,
                k: usize,
                pf: usize,
                acc: &mut [[f32; NR]; MR_WIDE],
            ) {
                let kb = k / 8 * 8;
                let mut a = [[_mm256_setzero_ps(); NR]; M];
                let mut i = 0;
                while i < kb {
                    // Offset of block i/8 from a row's block pointer: packed blocks are
                    // NR·8 elements apart (`w.step`), row-major ones 8.
                    let o = if PACKED { i * NR } else { i };
                    // SAFETY: i + 8 <= kb <= k, and block i/8 of row j lies at blk[j] + o.
                    unsafe {
                        let xv: [__m256; M] = std::array::from_fn(|m| _mm256_loadu_ps(x[m].add(i)));
                        for j in 0..NR {
                            if PACKED {
                                // Packed: the rows of a block share one 64-byte line of the
                                // tile stream, so the NR prefetches of a step hit the same
                                // line; the redundant ones cost little (one per step measured
                                // the same at 1–2 rows) and keep LLVM's schedule (with one per
                                // step it hoisted the next row's load, which spilled an
                                // accumulator of 3-row tiles and halved their throughput).
                                // `wrapping_add`: the address may lie past the matrix, and a
                                // prefetch never faults.
                                super::prefetch::<HINT>(w.blk[j].wrapping_add(o + pf) as *const i8);
                            } else {
                                // Software prefetch of the same offset in the *next* tile's
                                // rows (`NR·k` elements on) plus one line: the hardware
                                // prefetcher alone keeps too few short row streams in flight
                                // (measured on one core at 2 rows: bf16 9.6 → 12.9 GB/s, f32
                                // 16.5 → 18.3 GB/s). `pf == 0` prefetches the line being
                                // loaded: a no-op, cheaper than a branch here (which cost
                                // bf16 at 32 rows a third).
                                super::prefetch::<HINT>(w.blk[j].wrapping_add(o + pf) as *const i8);
                            }
                            let wv: __m256 = {
                                let $p = w.blk[j].add(o);
                                let $j = j;
                                $load
                            };
                            for m in 0..M {
                                a[m][j] = _mm256_fmadd_ps(xv[m], wv, a[m][j]);
                            }
                        }
                    }
                    i += 8;
                }
                // SAFETY: forwarded from this function's contract.
                unsafe { finish(a, x, &w.tail, kb, k, acc) };
            }
        };
    }

    /// Lane sums plus scalar tails of a tile (steps 2 and 3 of the reduction order).
    ///
    /// # Safety
    /// Requires AVX2 and FMA; x pointers address `k` floats, tail pointers `k - kb` elements.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn finish<W: Elem, const M: usize>(
        a: [[__m256; NR]; M],
        x: [*const f32; M],
        tail: &[*const W; NR],
        kb: usize,
        k: usize,
        acc: &mut [[f32; NR]; MR_WIDE],
    ) {
        for m in 0..M {
            for j in 0..NR {
                let mut t = hsum(a[m][j]);
                for kk in kb..k {
                    // SAFETY: kk < k, and the tail pointer addresses k - kb elements.
                    unsafe {
                        t = (*x[m].add(kk)).mul_add((*tail[j].add(kk - kb)).widen(), t);
                    }
                }
                acc[m][j] = t;
            }
        }
    }

    tile_body!(tile_f32, f32, |p, _j| { _mm256_loadu_ps(p) });
    tile_body!(tile_bf16, bf16, |p, j| {
        if PACKED {
            // Interleaved (module docs): the 8 words at p − j/2 hold row j mod 2 in their low
            // halves and row j mod 2 + 2 in their high halves.
            let v = _mm256_loadu_si256(p.sub(j / 2) as *const __m256i);
            if j < 2 {
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v))
            } else {
                _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(-0x1_0000)))
            }
        } else {
            let h = _mm_loadu_si128(p as *const __m128i);
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
        }
    });
    tile_body!(tile_f16, f16, |p, _j| {
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Elem, TilePtrs, MR_WIDE, NR};
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// Steps 2 and 3 of the reduction order for a tile ending its `k` loop (`a`: the lane
    /// accumulators): the lane tree of each ([`reduce`]), then the scalar tail
    /// `k = ⌊k/8⌋·8 … k−1` with `fma`, in order. A macro so that it inlines into each kernel
    /// with the kernel's target features (every x pointer addresses `k` floats and every tail
    /// pointer `k mod 8` elements, the kernels' contract).
    macro_rules! finish {
        ($a:expr, $acc:expr, $x:expr, $w:expr, $k:expr) => {{
            let kb = $k / 8 * 8;
            reduce(&$a, $acc);
            if kb < $k {
                for (m, accm) in $acc.iter_mut().enumerate().take(M) {
                    for (j, t) in accm.iter_mut().enumerate() {
                        for kk in kb..$k {
                            // SAFETY: kk < k, and the tail pointer addresses k - kb elements.
                            unsafe {
                                *t = (*$x[m].add(kk))
                                    .mul_add((*$w.tail[j].add(kk - kb)).widen(), *t);
                            }
                        }
                    }
                }
            }
        }};
    }

    /// Loads the 8-element blocks of two weight rows, widened, as one `zmm`: lanes 0–7 from
    /// `p`, lanes 8–15 from `q`.
    pub trait Pair: Elem {
        /// # Safety
        /// Requires AVX-512F; `p` and `q` address 8 elements each; with `PACKED`, `q = p + 8`
        /// (the two rows' blocks are adjacent in the tile stream) and only `p` is used.
        unsafe fn pair<const PACKED: bool>(p: *const Self, q: *const Self) -> __m512;

        /// The block at offset `o` of a tile's four rows, widened, as the pairs (rows 0–1,
        /// rows 2–3).
        ///
        /// # Safety
        /// Requires AVX-512F; the block lies in the tile ([`super::Kernel::tile`]).
        #[inline(always)]
        unsafe fn line<const PACKED: bool>(w: &TilePtrs<Self>, o: usize) -> [__m512; 2] {
            // SAFETY: forwarded.
            unsafe {
                [
                    Self::pair::<PACKED>(w.blk[0].add(o), w.blk[1].add(o)),
                    Self::pair::<PACKED>(w.blk[2].add(o), w.blk[3].add(o)),
                ]
            }
        }
    }

    impl Pair for f32 {
        #[inline]
        #[target_feature(enable = "avx512f,avx2")]
        unsafe fn pair<const PACKED: bool>(p: *const f32, q: *const f32) -> __m512 {
            // SAFETY: 8 floats at p and at q (16 at p when packed).
            unsafe {
                if PACKED {
                    _mm512_loadu_ps(p)
                } else {
                    let lo = _mm512_castps256_ps512(_mm256_loadu_ps(p));
                    let hi = _mm256_castps_pd(_mm256_loadu_ps(q));
                    _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castps_pd(lo), hi))
                }
            }
        }
    }

    /// 16 half-precision elements of two rows as one `ymm`.
    ///
    /// # Safety
    /// As [`Pair::pair`] with 2-byte elements.
    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn halves<const PACKED: bool>(p: *const u16, q: *const u16) -> __m256i {
        // SAFETY: 8 halves at p and at q (16 at p when packed).
        unsafe {
            if PACKED {
                _mm256_loadu_si256(p as *const __m256i)
            } else {
                let lo = _mm256_castsi128_si256(_mm_loadu_si128(p as *const __m128i));
                _mm256_inserti128_si256::<1>(lo, _mm_loadu_si128(q as *const __m128i))
            }
        }
    }

    impl Pair for bf16 {
        /// Row-major only (packed bf16 tiles are interleaved and go through `line`).
        #[inline]
        #[target_feature(enable = "avx512f,avx2")]
        unsafe fn pair<const PACKED: bool>(p: *const bf16, q: *const bf16) -> __m512 {
            // SAFETY: forwarded.
            let h = unsafe { halves::<false>(p as *const u16, q as *const u16) };
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx2")]
        unsafe fn line<const PACKED: bool>(w: &TilePtrs<bf16>, o: usize) -> [__m512; 2] {
            // SAFETY: forwarded; a packed block is the 64-byte line at blk[0] + o.
            unsafe {
                if PACKED {
                    // Interleaved (module docs): low halves rows 0–1, high halves rows 2–3.
                    let v = _mm512_loadu_si512(w.blk[0].add(o) as *const __m512i);
                    [
                        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v)),
                        _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(-0x1_0000))),
                    ]
                } else {
                    [
                        Self::pair::<false>(w.blk[0].add(o), w.blk[1].add(o)),
                        Self::pair::<false>(w.blk[2].add(o), w.blk[3].add(o)),
                    ]
                }
            }
        }
    }

    impl Pair for f16 {
        #[inline]
        #[target_feature(enable = "avx512f,avx2")]
        unsafe fn pair<const PACKED: bool>(p: *const f16, q: *const f16) -> __m512 {
            // SAFETY: forwarded.
            let h = unsafe { halves::<PACKED>(p as *const u16, q as *const u16) };
            _mm512_cvtph_ps(h)
        }
    }

    /// AVX-512 micro-kernel: `M ≤ 8` rows × `NR = 4` columns, accumulator `a[m][p]` holding
    /// the 8 lanes of columns `2p` (lanes 0–7) and `2p + 1` (lanes 8–15) of row `m`; the
    /// input block is broadcast to both halves. Lane for lane this is the 8-lane order of the
    /// module docs.
    ///
    /// # Safety
    /// Requires AVX-512F, AVX2, FMA and F16C; pointers as [`super::Kernel::tile`].
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub unsafe fn tile<W: Pair, const M: usize, const PACKED: bool, const HINT: u8>(
        x: [*const f32; M],
        w: &TilePtrs<W>,
        k: usize,
        pf: usize,
        acc: &mut [[f32; NR]; MR_WIDE],
    ) {
        let kb = k / 8 * 8;
        let mut a = [[_mm512_setzero_ps(); 2]; M];
        // Packed f32 tiles of 3 or more rows prefetch (their step's two lines) only every
        // `f32_prefetch_every`-th step ([`super::Tuning::f32_prefetch_every`]), except when
        // they prefetch the next column block (`PF_T1_EVERY`).
        let pf_mask = if PACKED && M > 2 && W::BYTES == 4 && HINT != super::PF_T1_EVERY {
            super::tuning()
                .f32_prefetch_every
                .max(1)
                .next_power_of_two()
                - 1
        } else {
            0
        };
        // One 8-column step: block i/8 of every row of the tile into every row's accumulators.
        let step = |a: &mut [[__m512; 2]; M], i: usize| {
            let o = if PACKED { i * NR } else { i };
            // SAFETY: i + 8 <= kb <= k, block i/8 of row j lies at blk[j] + o; prefetches
            // never fault (`wrapping_add`).
            unsafe {
                if PACKED && (i / 8) & pf_mask == 0 {
                    // The step's lines of the tile stream: one for half precision (rows 0–3
                    // share it), two for f32 (rows 0–1, rows 2–3).
                    super::prefetch::<HINT>(w.blk[0].wrapping_add(o + pf) as *const i8);
                    if W::BYTES == 4 {
                        super::prefetch::<HINT>(w.blk[2].wrapping_add(o + pf) as *const i8);
                    }
                } else {
                    for j in 0..NR {
                        super::prefetch::<HINT>(w.blk[j].wrapping_add(o + pf) as *const i8);
                    }
                }
                let wv = W::line::<PACKED>(w, o);
                for (m, am) in a.iter_mut().enumerate() {
                    let xh = _mm256_castps_pd(_mm256_loadu_ps(x[m].add(i)));
                    let xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(xh));
                    am[0] = _mm512_fmadd_ps(xv, wv[0], am[0]);
                    am[1] = _mm512_fmadd_ps(xv, wv[1], am[1]);
                }
            }
        };
        let mut i = 0;
        if M <= 2 {
            // Decode (one or two rows) waits on memory, and the lines it can have in flight
            // are about the out-of-order window divided by the instructions per line: two
            // steps per iteration save a loop's increment and branch per line.
            while i + 16 <= kb {
                step(&mut a, i);
                step(&mut a, i + 8);
                i += 16;
            }
        }
        while i < kb {
            step(&mut a, i);
            i += 8;
        }
        finish!(a, acc, x, w, k);
    }

    /// [`tile`] over a packed tile (`M ≥ 5` rows) that also stores every widened line at the
    /// same offset of `dst`, in f32: `dst` ends up holding the tile's `⌊k/8⌋` blocks in the
    /// packed f32 layout (the staged calls of [`super::task_staged`]; the caller widens the
    /// tails).
    ///
    /// # Safety
    /// As [`tile`] with `PACKED`; `dst` addresses `NR·k` writable floats.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub unsafe fn tile_staging<W: Pair, const M: usize, const HINT: u8>(
        x: [*const f32; M],
        w: &TilePtrs<W>,
        k: usize,
        pf: usize,
        acc: &mut [[f32; NR]; MR_WIDE],
        dst: *mut f32,
    ) {
        let kb = k / 8 * 8;
        let mut a = [[_mm512_setzero_ps(); 2]; M];
        let mut i = 0;
        while i < kb {
            // Block i/8 is at offset i·NR in the packed layout of any element type, so the
            // f32 copy of its line (two pairs of rows, 16 floats each) goes to dst + i·NR.
            let o = i * NR;
            // SAFETY: as in `tile`; dst + o + 32 <= dst + NR·kb.
            unsafe {
                // One line per step for half precision, two for f32 (as in `tile`).
                super::prefetch::<HINT>(w.blk[0].wrapping_add(o + pf) as *const i8);
                if W::BYTES == 4 {
                    super::prefetch::<HINT>(w.blk[2].wrapping_add(o + pf) as *const i8);
                }
                let wv = W::line::<true>(w, o);
                _mm512_storeu_ps(dst.add(o), wv[0]);
                _mm512_storeu_ps(dst.add(o + 16), wv[1]);
                for m in 0..M {
                    let xh = _mm256_castps_pd(_mm256_loadu_ps(x[m].add(i)));
                    let xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(xh));
                    a[m][0] = _mm512_fmadd_ps(xv, wv[0], a[m][0]);
                    a[m][1] = _mm512_fmadd_ps(xv, wv[1], a[m][1]);
                }
            }
            i += 8;
        }
        finish!(a, acc, x, w, k);
    }

    /// Step 2 of the reduction order (the lane tree `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`)
    /// for a whole tile at once, with the same additions on the same operands as
    /// [`super::avx2::hsum`] but four rows' columns per instruction: `acc[m][j]` = the tree of
    /// column `j`'s 8 lanes in `a[m]` (rows past `M` of a group of four get the tree of zeros).
    /// Per tile of 8 rows this is 28 shuffles and 14 additions instead of 32 scalar trees
    /// (about 200 instructions, 10–15 % of a tile's FMAs at k = 768).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce<const M: usize>(a: &[[__m512; 2]; M], acc: &mut [[f32; NR]; MR_WIDE]) {
        let z = _mm512_setzero_ps();
        // r[m], 128-bit chunk c: column c's [a0+a4, a1+a5, a2+a6, a3+a7] (chunks of
        // a[m][p]: column 2p lanes 0–3, 4–7, column 2p + 1 lanes 0–3, 4–7).
        let mut r = [z; MR_WIDE];
        for (rm, am) in r.iter_mut().zip(a) {
            let lo = _mm512_shuffle_f32x4::<0b10_00_10_00>(am[0], am[1]);
            let hi = _mm512_shuffle_f32x4::<0b11_01_11_01>(am[0], am[1]);
            *rm = _mm512_add_ps(lo, hi);
        }
        // Lane i*4 + c of the result takes lane c*4 + i of F (a 4 × 4 transpose).
        let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        for g in 0..M.div_ceil(4) {
            let q = &r[4 * g..4 * g + 4];
            // s, chunk c: [(a0+a4)+(a2+a6), (a1+a5)+(a3+a7)] of rows 4g (+1), then 4g+2 (+3).
            let s0 = _mm512_add_ps(
                _mm512_shuffle_ps::<0x44>(q[0], q[1]),
                _mm512_shuffle_ps::<0xEE>(q[0], q[1]),
            );
            let s1 = _mm512_add_ps(
                _mm512_shuffle_ps::<0x44>(q[2], q[3]),
                _mm512_shuffle_ps::<0xEE>(q[2], q[3]),
            );
            // f, chunk c, lane i: the whole tree of row 4g + i, column c.
            let f = _mm512_add_ps(
                _mm512_shuffle_ps::<0x88>(s0, s1),
                _mm512_shuffle_ps::<0xDD>(s0, s1),
            );
            let t = _mm512_permutexvar_ps(idx, f);
            // SAFETY: rows 4g..4g+4 of acc are 16 contiguous floats (4g + 4 <= MR_WIDE).
            unsafe { _mm512_storeu_ps(acc.as_mut_ptr().cast::<f32>().add(16 * g), t) };
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{Elem, TilePtrs, MR_WIDE, NR};
    use half::{bf16, f16};
    use std::arch::aarch64::*;

    /// The fixed lane tree `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))` of lanes `lo = a0..a3`,
    /// `hi = a4..a7`.
    #[inline]
    fn hsum(lo: float32x4_t, hi: float32x4_t) -> f32 {
        // SAFETY: NEON is baseline on aarch64.
        unsafe {
            // [a0+a4, a1+a5, a2+a6, a3+a7]
            let s = vaddq_f32(lo, hi);
            // [(a0+a4)+(a2+a6), (a1+a5)+(a3+a7)]
            let t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
            vget_lane_f32::<0>(t) + vget_lane_f32::<1>(t)
        }
    }

    /// Loads 8 weights widened to f32 as two `float32x4_t`.
    pub trait Load8: Elem {
        /// # Safety
        /// `p` addresses 8 elements.
        unsafe fn load8(p: *const Self) -> (float32x4_t, float32x4_t);

        /// The block of tile row `j` at `p` (`w.blk[j] + o`).
        ///
        /// # Safety
        /// The block lies in the tile ([`super::Kernel::tile`]).
        #[inline(always)]
        unsafe fn load_row<const PACKED: bool>(
            p: *const Self,
            _j: usize,
        ) -> (float32x4_t, float32x4_t) {
            // SAFETY: forwarded.
            unsafe { Self::load8(p) }
        }
    }

    impl Load8 for f32 {
        #[inline(always)]
        unsafe fn load8(p: *const f32) -> (float32x4_t, float32x4_t) {
            // SAFETY: 8 floats at p.
            unsafe { (vld1q_f32(p), vld1q_f32(p.add(4))) }
        }
    }

    impl Load8 for bf16 {
        #[inline(always)]
        unsafe fn load8(p: *const bf16) -> (float32x4_t, float32x4_t) {
            // SAFETY: 8 halves at p; bf16 → f32 is a 16-bit left shift.
            unsafe {
                let h = vld1q_u16(p as *const u16);
                (
                    vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h))),
                    vreinterpretq_f32_u32(vshll_high_n_u16::<16>(h)),
                )
            }
        }

        #[inline(always)]
        unsafe fn load_row<const PACKED: bool>(
            p: *const bf16,
            j: usize,
        ) -> (float32x4_t, float32x4_t) {
            if PACKED {
                // Interleaved (module docs): the 8 words at p − j/2 hold row j mod 2 in their
                // low halves and row j mod 2 + 2 in their high halves.
                // SAFETY: the 8 words lie in the block's line.
                unsafe {
                    let q = p.sub(j / 2) as *const u32;
                    let (lo, hi) = (vld1q_u32(q), vld1q_u32(q.add(4)));
                    if j < 2 {
                        (
                            vreinterpretq_f32_u32(vshlq_n_u32::<16>(lo)),
                            vreinterpretq_f32_u32(vshlq_n_u32::<16>(hi)),
                        )
                    } else {
                        let m = vdupq_n_u32(0xFFFF_0000);
                        (
                            vreinterpretq_f32_u32(vandq_u32(lo, m)),
                            vreinterpretq_f32_u32(vandq_u32(hi, m)),
                        )
                    }
                }
            } else {
                // SAFETY: forwarded.
                unsafe { Self::load8(p) }
            }
        }
    }

    impl Load8 for f16 {
        #[inline(always)]
        unsafe fn load8(p: *const f16) -> (float32x4_t, float32x4_t) {
            // Exact scalar widening (the f16 NEON conversions are not stable in Rust).
            // SAFETY: 8 halves at p.
            let v: [f32; 8] = std::array::from_fn(|l| unsafe { (*p.add(l)).widen() });
            // SAFETY: v holds 8 floats.
            unsafe { (vld1q_f32(v.as_ptr()), vld1q_f32(v.as_ptr().add(4))) }
        }
    }

    /// NEON micro-kernel: the AVX2 tile with each 8-lane accumulator split in two
    /// `float32x4_t` (`vfmaq_f32` is a fused multiply-add, as `_mm256_fmadd_ps`).
    ///
    /// # Safety
    /// Pointers as [`super::Kernel::tile`].
    #[inline]
    pub unsafe fn tile<W: Load8, const M: usize, const PACKED: bool>(
        x: [*const f32; M],
        w: &TilePtrs<W>,
        k: usize,
        acc: &mut [[f32; NR]; MR_WIDE],
    ) {
        let kb = k / 8 * 8;
        // SAFETY: NEON is baseline on aarch64; every load is in bounds (caller's contract).
        unsafe {
            let z = vdupq_n_f32(0.0);
            let mut a = [[(z, z); NR]; M];
            let mut i = 0;
            let mut o = 0;
            while i < kb {
                let xv: [(float32x4_t, float32x4_t); M] =
                    std::array::from_fn(|m| (vld1q_f32(x[m].add(i)), vld1q_f32(x[m].add(i + 4))));
                for (j, &blk) in w.blk.iter().enumerate() {
                    let (wl, wh) = W::load_row::<PACKED>(blk.add(o), j);
                    for (am, xm) in a.iter_mut().zip(&xv) {
                        am[j].0 = vfmaq_f32(am[j].0, xm.0, wl);
                        am[j].1 = vfmaq_f32(am[j].1, xm.1, wh);
                    }
                }
                i += 8;
                o += w.step;
            }
            for (m, am) in a.iter().enumerate() {
                for (j, &(lo, hi)) in am.iter().enumerate() {
                    let mut t = hsum(lo, hi);
                    for kk in kb..k {
                        t = (*x[m].add(kk)).mul_add((*w.tail[j].add(kk - kb)).widen(), t);
                    }
                    acc[m][j] = t;
                }
            }
        }
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

    /// The variants this machine runs; prints `SKIPPED <name>: <reason>` for the others.
    fn supported() -> Vec<Variant> {
        let mut v = Vec::new();
        for var in Variant::ALL {
            match var.unsupported() {
                None => v.push(var),
                Some(why) => println!("SKIPPED {}: {why}", var.name()),
            }
        }
        v
    }

    fn pools() -> Vec<Workers> {
        [1, 3].iter().map(|&t| Workers::new(t).unwrap()).collect()
    }

    #[test]
    fn every_isa_dtype_and_shape_matches_the_documented_order_bit_for_bit() {
        let pools = pools();
        let isas = supported();
        let mut r = rng(7);
        for &k in &[1usize, 7, 8, 13, 64, 100, 769] {
            for &n in &[1usize, 3, 4, 5, 13, 37, 200] {
                // n = 200 at k = 769 spans several column blocks and task ranges; once is
                // enough.
                if n == 200 && k != 769 {
                    continue;
                }
                // 10 and 17 rows: two and three AVX-512 row blocks (staged f16 calls on CPUs
                // whose tuning stages them, `task_staged`), over several column blocks at n = 200.
                let rows_max = 17;
                let x: Vec<f32> = (0..rows_max * k).map(|_| r()).collect();
                let w32: Vec<f32> = (0..n * k).map(|_| r()).collect();
                let wb: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
                let wh: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
                let bias: Vec<f32> = (0..n).map(|_| r()).collect();
                let wbp = pack_bf16(&wb, n, k);
                let whp = pack(&wh, n, k, f16::ZERO);
                let w32p = pack(&w32, n, k, 0f32);
                let wides: [(WRef<'_>, Vec<f32>); 6] = [
                    (WRef::F32(&w32), w32.clone()),
                    (WRef::F32Packed(&w32p), w32.clone()),
                    (WRef::BF16(&wb), wb.iter().map(|v| v.to_f32()).collect()),
                    (WRef::F16(&wh), wh.iter().map(|v| v.to_f32()).collect()),
                    (
                        WRef::BF16Packed(&wbp),
                        wb.iter().map(|v| v.to_f32()).collect(),
                    ),
                    (
                        WRef::F16Packed(&whp),
                        wh.iter().map(|v| v.to_f32()).collect(),
                    ),
                ];
                for (wref, wide) in &wides {
                    for rows in (1usize..=10).chain([17]) {
                        if n == 200 && ![1, 2, 4, 9, 10, 17].contains(&rows) {
                            continue;
                        }
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
    fn every_variant_matches_the_documented_order_for_1_to_128_rows_and_thread_counts() {
        let isas = supported();
        let pools: Vec<(Workers, usize)> = [(1, 1), (2, 3), (3, 8)]
            .iter()
            .map(|&(t, tasks)| (Workers::new(t).unwrap(), tasks))
            .collect();
        let mut r = rng(29);
        let max_rows = 128;
        for &(k, n) in &[(40usize, 9usize), (77, 36), (300, 5)] {
            let x: Vec<f32> = (0..max_rows * k).map(|_| r()).collect();
            let w32: Vec<f32> = (0..n * k).map(|_| r()).collect();
            let wb: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
            let wh: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
            let wbp = pack_bf16(&wb, n, k);
            let whp = pack(&wh, n, k, f16::ZERO);
            let w32p = pack(&w32, n, k, 0f32);
            let cases: [(WRef<'_>, Vec<f32>); 4] = [
                (WRef::F32(&w32), w32.clone()),
                (WRef::F32Packed(&w32p), w32.clone()),
                (
                    WRef::BF16Packed(&wbp),
                    wb.iter().map(|v| v.to_f32()).collect(),
                ),
                (
                    WRef::F16Packed(&whp),
                    wh.iter().map(|v| v.to_f32()).collect(),
                ),
            ];
            for (wref, wide) in &cases {
                // A row's result does not depend on the batch: one reference for all counts.
                let want: Vec<f32> = (0..max_rows * n)
                    .map(|e| reference(&x[(e / n) * k..], &wide[(e % n) * k..], k, None))
                    .collect();
                for &isa in &isas {
                    for (pool, tasks) in &pools {
                        for rows in 1..=max_rows {
                            let mut out = vec![f32::NAN; rows * n];
                            gemm_isa(isa, pool, *tasks, &x, rows, k, *wref, n, None, &mut out);
                            for e in 0..rows * n {
                                assert_eq!(
                                    out[e].to_bits(),
                                    want[e].to_bits(),
                                    "{isa:?} {wref:?} k={k} n={n} rows={rows} tasks={tasks} \
                                     element {e}",
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Calls of several column blocks and row blocks (the next-block prefetch, staged f16,
    /// padded f32 tiles and the row-block loop all in play), every variant and thread count.
    #[test]
    fn several_column_and_row_blocks_match_the_documented_order() {
        let isas = supported();
        let pools: Vec<(Workers, usize)> = [(1, 1), (2, 3), (3, 8)]
            .iter()
            .map(|&(t, tasks)| (Workers::new(t).unwrap(), tasks))
            .collect();
        let mut r = rng(31);
        // f32: column blocks of 20 columns at this k; half precision: 44.
        let (k, n, max_rows) = (2053usize, 50usize, 40usize);
        assert!(BLOCK_BYTES / (k * 4) / NR * NR < n && BLOCK_BYTES / (k * 2) / NR * NR < n);
        let x: Vec<f32> = (0..max_rows * k).map(|_| r()).collect();
        let w32: Vec<f32> = (0..n * k).map(|_| r()).collect();
        let wb: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
        let wh: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
        let (wbp, whp, w32p) = (
            pack_bf16(&wb, n, k),
            pack(&wh, n, k, f16::ZERO),
            pack(&w32, n, k, 0f32),
        );
        let cases: [(WRef<'_>, Vec<f32>); 3] = [
            (WRef::F32Packed(&w32p), w32.clone()),
            (
                WRef::BF16Packed(&wbp),
                wb.iter().map(|v| v.to_f32()).collect(),
            ),
            (
                WRef::F16Packed(&whp),
                wh.iter().map(|v| v.to_f32()).collect(),
            ),
        ];
        for (wref, wide) in &cases {
            let want: Vec<f32> = (0..max_rows * n)
                .map(|e| reference(&x[(e / n) * k..], &wide[(e % n) * k..], k, None))
                .collect();
            for &isa in &isas {
                for (pool, tasks) in &pools {
                    for rows in [3usize, 9, 16, 17, 40] {
                        let mut out = vec![f32::NAN; rows * n];
                        gemm_isa(isa, pool, *tasks, &x, rows, k, *wref, n, None, &mut out);
                        for e in 0..rows * n {
                            assert_eq!(
                                out[e].to_bits(),
                                want[e].to_bits(),
                                "{isa:?} {wref:?} rows={rows} tasks={tasks} element {e}",
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn packed_index_is_a_bijection_onto_the_unpadded_elements() {
        for (n, k) in [
            (1usize, 1usize),
            (3, 7),
            (4, 8),
            (5, 13),
            (9, 16),
            (13, 100),
        ] {
            for index in [packed_index, packed_index_bf16] {
                let mut seen = vec![false; packed_len(n, k)];
                for r in 0..n {
                    for c in 0..k {
                        let i = index(r, c, k);
                        assert!(!seen[i], "n={n} k={k} ({r},{c}) collides");
                        seen[i] = true;
                    }
                }
                // Padding rows of the last tile are the only elements left over.
                let padding = n.div_ceil(NR) * NR * k - n * k;
                assert_eq!(seen.iter().filter(|s| !**s).count(), padding, "n={n} k={k}");
            }
            let w: Vec<u32> = (0..(n * k) as u32).collect();
            let p = pack(&w, n, k, u32::MAX);
            let wb: Vec<bf16> = (0..n * k).map(|i| bf16::from_bits(i as u16 | 1)).collect();
            let pb = pack_bf16(&wb, n, k);
            for r in 0..n {
                for c in 0..k {
                    assert_eq!(p[packed_index(r, c, k)], (r * k + c) as u32);
                    assert_eq!(pb[packed_index_bf16(r, c, k)], wb[r * k + c]);
                }
            }
            // Padding is zero.
            let filled = pb.iter().filter(|v| v.to_bits() != 0).count();
            assert_eq!(filled, n * k, "n={n} k={k}");
        }
    }

    #[test]
    fn interleaved_bf16_lines_hold_rows_0_1_low_and_2_3_high() {
        // One tile, one block: word i = (row i/8, element i%8) low, (row 2 + i/8, same) high.
        let k = 8;
        let w: Vec<bf16> = (0..4 * k).map(|i| bf16::from_bits(i as u16)).collect();
        let p = pack_bf16(&w, 4, k);
        for i in 0..16 {
            let (lo, hi) = (p[2 * i].to_bits() as usize, p[2 * i + 1].to_bits() as usize);
            assert_eq!(lo, (i / 8) * k + i % 8, "word {i} low");
            assert_eq!(hi, (2 + i / 8) * k + i % 8, "word {i} high");
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
