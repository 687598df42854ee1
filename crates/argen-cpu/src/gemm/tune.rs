//! Speed-only choices per microarchitecture ([`Tuning`]), with the measurements behind them,
//! and the software prefetch kinds the kernels take.

#[cfg(target_arch = "x86_64")]
use super::{best_variant, Variant};
use super::{BLOCK_BYTES, PF_PACKED_BYTES};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

/// Speed-only choices per microarchitecture (results are the same bits whatever they are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Calls with at most this many rows stream packed weights without software prefetch
    /// (the hardware prefetcher alone is faster there); larger calls prefetch
    /// `pf_packed_bytes` ahead in the tile stream.
    pub no_prefetch_rows: usize,
    /// Half-precision calls of at most [`Tuning::no_prefetch_rows`] rows whose input rows
    /// (`rows · k` f32) take more than this many bytes prefetch ahead like larger calls: their
    /// inputs no longer stay in L1 beside the stream ([`tuning`], session 9).
    pub no_prefetch_max_x_bytes: usize,
    /// Software prefetch distance in the packed tile stream, in bytes.
    pub pf_packed_bytes: usize,
    /// [`Tuning::pf_packed_bytes`] for half-precision calls of a single row block (which
    /// stream every weight from memory once; 0: the same).
    pub half_stream_pf_bytes: usize,
    /// [`Tuning::pf_packed_bytes`] for the first pass over each column block of packed f32
    /// calls of several row blocks (0: the same).
    pub f32_multi_pf_bytes: usize,
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
    /// Packed f32 tiles of 3 or more rows issue their step's two prefetches ahead only every
    /// this many 8-column steps (a power of two; 1: every step), AVX-512 kernels. In
    /// `avx512::tile` the other steps issue four (each line twice, through the row-major
    /// branch), so there this sets how often a step issues two rather than four; only
    /// `avx512::tile_paired` really prefetches less ([`tuning`], session 13).
    pub f32_prefetch_every: usize,
    /// Packed f32 calls of a single AVX-512 row block of 3 or more rows run tiles of at least
    /// this many rows (padded with copies of the last input row, not stored; 0: none).
    pub f32_min_tile_rows: usize,
    /// Packed f32 calls of more than 8 and at most this many rows run as one row block of
    /// *tall* tiles (AVX-512 with AVX512VL: the weights broadcast against paired inputs,
    /// `avx512::tile_wb` in [`super`]; made even, at most [`super::MR_TALL`]; below 10: off),
    /// which streams each weight once for all the call's rows ([`tuning`], session 16).
    pub f32_tall_rows: usize,
    /// Packed half-precision calls (AVX-512) of more than 8 and at most this many rows run as
    /// two row blocks of equal size rather than 8 rows and the rest, so that the second pass
    /// over each column block — which prefetches the next one — is not a short one of 1–4
    /// rows (0: never; [`tuning`], session 16). A call that runs as one tall block
    /// ([`Tuning::half_tall_rows`]) does not split.
    pub half_even_split_rows: usize,
    /// Packed half-precision calls (AVX-512) of more than 8 and at most this many rows (at
    /// most 12; below 9: off) run as one row block of paired tiles (`avx512::tile_paired` in
    /// [`super`]) that stream each weight once for all rows ([`tuning`], session 16).
    pub half_tall_rows: usize,
    /// In a packed call of several row blocks, the second row block of each column block
    /// (which finds the block in L2) prefetches the *next* column block into L2, every line,
    /// so that the next block's first row block does not wait on memory ([`tuning`]).
    pub prefetch_next_block: bool,
    /// In a packed f32 AVX-512 call of several row blocks and at least this many rows per
    /// thread of its pool (`usize::MAX`: never), every pass over a column block —
    /// except the first pass over a task's first block, which streams it — prefetches an
    /// equal share of the *next* column block into L2 (`prefetcht1`; `2^s` passes share it,
    /// the largest power of two there are, at most 8: pass `b` reads the `b`-th `2^-s` of the
    /// next block in order, every `2^s`-th step), so that the next block is in L2 before its
    /// first pass starts; the first passes over later blocks then pair like the others
    /// ([`Tuning::f32_paired_min_rows`]). Replaces [`Tuning::prefetch_next_block`] there.
    pub f32_phased_min_rows: usize,
    /// The opt-in fast class ([`crate::fast`]): how far ahead the first pass over each column
    /// block, which streams it from memory one tile at a time, prefetches, in bytes.
    pub fast_pf_bytes: usize,
    /// In a fast-class call of several row blocks, the second prefetches the next column
    /// block into L2 ([`crate::fast`]).
    pub fast_next_block: bool,
    /// Fast-class calls of more than 8 and at most this many rows (at most 12) run as one row
    /// block, one tile per kernel call, streaming each weight once ([`crate::fast`]; 0: off).
    pub fast_tall_rows: usize,
    /// Packed f16 row blocks of at least this many rows run with their inputs in pairs, no
    /// input broadcasts (AVX-512, `avx512::tile_paired` in [`super`]; `usize::MAX`: never).
    pub f16_paired_min_rows: usize,
    /// [`Tuning::f16_paired_min_rows`] for packed bf16 weights.
    pub bf16_paired_min_rows: usize,
    /// [`Tuning::f16_paired_min_rows`] for packed f32 weights.
    pub f32_paired_min_rows: usize,
    /// Paired row blocks of at most this many rows swap the halves of their inputs rather
    /// than of the line: one shuffle per pair and step instead of two per step (0: none).
    pub paired_xswap_max_rows: usize,
    /// Only calls of at least this many input columns (`k`) pair: below, the copy and the
    /// per-tile rearrangement cost more than the step saves.
    pub paired_min_k: usize,
    /// AVX-512 row blocks of packed weights whose inputs (`rows · k` f32) take more than this
    /// many bytes run their tiles' `k` loops in *panels*, all tiles of a column block over
    /// one panel before the next, so that a panel's inputs stay in L1 (`usize::MAX`: never;
    /// [`tuning`], session 13).
    pub panel_min_x_bytes: usize,
    /// The most bytes of inputs per panel: a call runs as few panels of equal length (whole
    /// 8-column steps) as keep within it.
    pub panel_x_bytes: usize,
    /// Target bytes of weights per column block, which stays in L2 while every row block of
    /// a call passes over it.
    pub block_bytes: usize,
    /// Column ranges per worker thread in a multi-threaded GEMM ([`crate::Cpu`]; one thread
    /// runs one range). More ranges balance a late helper better; each range starts a new
    /// weight stream and costs its own setup ([`tuning`], session 14).
    pub tasks_per_thread: usize,
    /// Attention prefetches each task's values while it scores the keys, and the next task's
    /// keys and values while it sums the values (`attn.rs`).
    pub attn_prefetch: bool,
    /// f32 matrices that [`Tuning::pack_f32_max_k`] packs are stored in the *class-major*
    /// layout of [`super::pack_class_major`] instead, and run on its kernels (read when a
    /// model loads, like `pack_f32_max_k`; AVX-512 only is fast, other variants compute it
    /// with scalar code; [`tuning`], session 18).
    pub f32_class_major: bool,
    /// f16 matrices are stored in the class-major layout ([`super::pack_class_major_f16`])
    /// instead of the packed tiles, and run on its kernels (read when a model loads).
    pub f16_class_major: bool,
    /// [`Tuning::f16_class_major`] for bf16 ([`super::pack_class_major_bf16`]; bf16 stays
    /// packed where the opt-in fast class runs it, which reads the packed tiles).
    pub bf16_class_major: bool,
    /// Class-major calls of at most this many rows (at most [`super::CM_MR`]) run as one
    /// row block that streams each weight once; longer calls run in row blocks of at most
    /// [`Tuning::cm_block_rows`] over column blocks kept in L2.
    pub cm_single_rows: usize,
    /// Class-major calls of one row block and fewer rows run as this many (at most
    /// [`super::CM_MR`]; the extra rows are copies of the last, computed and not stored): a
    /// loop with more FMAs per step streams the weights faster ([`tuning`], session 18).
    pub cm_min_rows: usize,
    /// The most rows per row block of a class-major call of several blocks (1 to
    /// [`super::CM_MR`]; the blocks are made even).
    pub cm_block_rows: usize,
    /// How far ahead the pass of a class-major call that streams a column block from memory
    /// prefetches, in bytes.
    pub cm_pf_bytes: usize,
    /// Class-major passes that stream a column block for at least [`Tuning::cm_wide_pf_rows`]
    /// rows prefetch this far ahead instead of [`Tuning::cm_pf_bytes`], in bytes.
    pub cm_wide_pf_bytes: usize,
    /// See [`Tuning::cm_wide_pf_bytes`].
    pub cm_wide_pf_rows: usize,
    /// The prefetch distance of class-major passes over half-precision weights that stream a
    /// column block, in bytes (0: as f32, [`Tuning::cm_pf_bytes`] and
    /// [`Tuning::cm_wide_pf_bytes`]).
    pub cm_half_pf_bytes: usize,
    /// A class-major call of one row block prefetches non-temporally (`prefetchnta`) rather
    /// than into L1 (its weights are not read again).
    pub cm_nta: bool,
}

/// Prefetch kind `prefetchnta` (a kernel's `HINT`).
pub(super) const PF_NTA: u8 = 0;
/// Prefetch kind `prefetcht0` (into L1).
pub(super) const PF_T0: u8 = 1;
/// Prefetch kind `prefetcht1` (into L2).
pub(super) const PF_T1: u8 = 2;
/// Prefetch kind `prefetcht1`, on every step even where [`Tuning::f32_prefetch_every`] thins
/// the prefetches out (the next column block, [`Tuning::prefetch_next_block`]).
pub(super) const PF_T1_EVERY: u8 = 3;
/// Prefetch kind `prefetcht1` of a pass's share of the next column block
/// ([`Tuning::f32_phased_min_rows`]).
pub(super) const PF_T1_PHASED: u8 = 4;

/// Prefetches the line at `p` with kind `HINT` (never faults).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn prefetch<const HINT: u8>(p: *const i8) {
    use std::arch::x86_64::*;
    // SAFETY: SSE is baseline on x86_64, and a prefetch never faults whatever the address.
    unsafe {
        match HINT {
            PF_NTA => _mm_prefetch::<_MM_HINT_NTA>(p),
            PF_T1 | PF_T1_EVERY | PF_T1_PHASED => _mm_prefetch::<_MM_HINT_T1>(p),
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
///   `l2_prefetch=0` slower. (Session 13 found that in this kernel the steps off the mask took
///   the row-major branch and prefetched all four row pointers, i.e. the step's two lines
///   twice: "every 16th" meant two prefetches on every 16th step and four on the others, not
///   fewer prefetches. The miss-buffer reading above is therefore not what this measured.)
///   Half precision (one line per step) measured the same every step, every 16th and every
///   64th (an override tried and removed): bf16 at 4 rows 9.0–10.3 ms
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
/// - *Staged f16 calls* (`stage_f16_min_rows` = 9): module docs; removed in session 11, when
///   paired inputs made unstaged f16 calls faster.
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
///   (Staged f16 calls, removed since, ran their later row blocks on the staged copy.)
/// - *Rejected:* for 1–2-row calls, a `prefetcht1` 4–16 KiB ahead on every 8th–64th step
///   besides the `prefetchnta` of the line (bf16 / f16 at 2 rows 6.57 / 7.14 → 6.63–6.81 /
///   7.06–7.33 ms), and the inputs pre-broadcast into a buffer that the FMAs read as their
///   memory operand (fewer instructions per line: bf16 at 1 / 2 rows 5.61 / 6.50 → 6.49 /
///   9.83 ms); f16 widened by `vcvtph2ps` straight from memory (`_mm512_cvtph_ps` emits the
///   `{sae}` form, which cannot take a memory operand, so each pair is a load and a
///   conversion): f16 at 1 / 2 / 4 / 8 / 16 rows 5.66 / 6.98 / 9.42 / 16.47 / 31.35 → 5.69 /
///   7.22 / 9.40 / 16.45 / 31.21 ms, the same.
///
/// Session 9 (one or two Zen 4 cores), *1–2-row calls with long inputs*
/// ([`Tuning::no_prefetch_max_x_bytes`] = 12 KiB). Timing each matrix of the decode step apart
/// (`… --bench gemm -- T 3 bf16 f16 model rows=1,2 breakdown`) showed that at 2 rows only w2
/// (k = 2048) was slow: bf16 ~19 GB/s and f16 ~17 GB/s against 28–31 GB/s for the k = 768
/// matrices and ~33 GB/s for every matrix at 1 row. A synthetic kernel (the same loads,
/// widening and FMAs over a sequential 192 MiB stream; `cargo bench -p argen-cpu --bench
/// input_sweep`, `docs/results/session9/input-sweep.txt`) showed the cause: the inputs. Per tile
/// the kernel sweeps all `rows · k` floats of its inputs, and when those no longer stay in L1
/// beside the weight stream (2 rows at k = 2048: 16 KiB) it slows to 22–23 GB/s, 4 rows to
/// 10 GB/s; the same kernel reading a 64-float window of inputs streams 33–34 GB/s at any k,
/// and prefetching the inputs, aligning them or `prefetchnta` at any distance did not help.
/// So calls of 1–2 rows whose inputs exceed 12 KiB (GPT-B: w2 at 2 rows) now take the
/// prefetch-ahead path of larger calls (`prefetcht1` 16 KiB ahead), which keeps the stream
/// flowing while the inputs come from L2. Five interleaved rounds of old / new policy
/// (`docs/results/session9/gemm-long-inputs-ab.txt`), w2 at 2 rows, median: 1 thread bf16
/// 1.97 → 1.55 ms, f16 2.46 → 1.34 ms; 2 threads bf16 1.22 → 0.74 ms, f16 1.26 → 0.75 ms; all
/// decode-step GEMMs at 2 rows, 1 thread, fastest pass, median of the rounds: bf16 7.24 →
/// 6.52 ms, f16 7.81 → 6.59 ms. f32 (k = 2048 tiles of 32 KiB) measured slower that way (w2 at
/// 2 rows 3.05–3.34 → 3.73–4.11 ms; every distance and kind tried), so it keeps the plain
/// stream. For w2 at 2 rows (bf16, 1 thread, w2's time over the k = 768 matrices', three
/// rounds each) `prefetcht1` 16 KiB ahead measured 1.12–1.52, 4 KiB 1.59–1.72, 64 KiB
/// 1.38–1.55, `prefetcht0` 1–2 KiB ahead 1.95–2.08 (none: 1.61–2.12); prefetching the
/// inputs themselves changed nothing in the synthetic kernel. *Rejected:* the inputs
/// interleaved by 8-float blocks, one step's rows on one line (the synthetic kernel streamed
/// 9 % faster at 2 rows and 18 % at 4, k = 768; the real kernel, three interleaved rounds of
/// `… model rows=2,4,8`, the same or slower: bf16 at 4 rows 7.87–8.14 → 7.98–9.50 ms, f16
/// 9.24–9.61 → 9.44–9.55 ms); the inputs' blocks stored in reverse order (the synthetic kernel
/// streamed 7 % faster at k = 768; the real one was the same at 2 rows and slower at 1);
/// k-panels that keep a slice of the inputs in L1 across tiles (fast in the synthetic kernel
/// only while the accumulators stayed in registers, which a real kernel cannot do; with them
/// saved and reloaded per panel, or with the tiles read in strided runs, 10–27 GB/s); several
/// tiles in lockstep sharing each input load (2 rows, 4 tiles: 25 GB/s at k = 2048).
///
/// Session 11 (Zen 4), *paired inputs* ([`Tuning::f16_paired_min_rows`] =
/// [`Tuning::bf16_paired_min_rows`] = 2, [`Tuning::paired_xswap_max_rows`] = 3; module docs
/// of [`super`] for the multi-row gains). Blocks of 2–3 rows swap their one pair's inputs
/// instead of the line (one shuffle per step instead of two). GPT-B decode-step GEMMs, one
/// core, three rounds (`… --bench gemm -- 1 2 bf16 f16 model rows=2,3`): f16 at 2 / 3 rows
/// 6.19–6.32 / 7.73–7.90 ms unpaired → 5.93–5.94 / 7.46–7.49 ms; bf16 5.89–6.02 / 7.08–7.12
/// unpaired, 5.56–5.57 / 6.66–6.71 swapping the line, 5.58–5.66 / 6.14–6.16 ms swapping the
/// inputs (with the line swapped, a 3-row f16 block had measured the same or slower than
/// unpaired, 7.98–8.26 against 7.71–8.11 ms). The decode step (`… --bench decode -- 1 bf16
/// f16 steps`, alternating processes): bf16 paired from 2 rows (the line swapped) median of
/// the median steps 5.76 against 5.98 ms, lower in 13 of 14 pairs; f16 paired with the inputs
/// swapped 6.19–6.25 against 6.50–6.70 ms, six pairs (with the line swapped it had gained
/// nothing: 6.70 against 6.65 ms). On two threads, where the copy is made by the calling
/// thread and read by the other from its cache, the 2-row calls gained as well (twelve
/// alternating pairs in the host's fast state, probes 65–77 GB/s): median step bf16 3.68
/// against 4.05 ms, lower in 10 of 12; f16 3.93 against 4.10 ms, lower in 8 of 11, 2 level.
/// Packed f32 measured 2× slower paired at 6 and 8 rows (28.3–30.9 against 14.2–18.1 ms), so
/// [`Tuning::f32_paired_min_rows`] stays off. At 4–16 rows on 2 threads, six alternating
/// processes: within the noise of this host either way. *Rejected:* each pair's
/// inputs stored in both orders, so that the step needs no swap (register-only, 2 rows f16:
/// 1.16–1.22 against 1.78 ns per step), which doubles the copy: bf16 decode-step GEMMs at 2
/// rows streamed 14–22 GB/s against 35 GB/s, the decode step took 12.8–13.2 against 5.7–5.8
/// ms (bf16) and 7.6–7.8 against 6.7–6.8 ms (f16), five alternating pairs; prefetching
/// only every 2nd / 4th / 16th / 64th half-precision line (the sparse f32 scheme): 4 rows
/// 12.5–16.4 ms against 8.8–9.0 ms with every line.
///
/// Session 12 (Zen 5: AMD EPYC family 1Ah model 2, 2 vCPUs, full-width AVX-512, FMA peak
/// 269 GFLOP/s per core, one-core read probe 45–46 GB/s). The Zen 4 settings left the 2-row
/// calls at 36 GB/s and the multi-row f32 calls at 27–32 GB/s. GPT-B decode-step GEMMs on one
/// core, two interleaved rounds of each setting (`cargo bench -p argen-cpu --bench gemm -- 1 2
/// f32 bf16 f16 model rows=2,4,8,16,64`, fastest pass, Zen 4 settings → Zen 5 settings): bf16
/// 2 rows 5.44–5.59 → 4.58–4.64 ms, f16 5.38–5.60 → 4.54–4.77 ms; f32 4 rows 13.67–13.70 →
/// 10.63–10.77 ms, 8 rows 14.38–14.72 → 11.18–11.37 ms; 16–64 rows level (f32 16 rows
/// 17.6 → 18.2 ms, the one loss). The distances measured with `l2_prefetch` off: 6 KiB
/// (f32 8 rows 11.9 ms, bf16 8 rows 7.5–7.6 ms) and 12–16 KiB (f32 4 rows 11.4–11.6 ms) both
/// worse than 8 KiB; with `prefetcht1` kept, 8 KiB left f32 at 4 / 8 rows 12.2–12.3 /
/// 13.4–13.6 ms. The decode step (`… --bench decode -- 1 bf16 f16 steps=40`, three to four
/// interleaved rounds): bf16 5.55–6.03 → 4.77–5.02 ms, f16 5.52–6.27 → 4.79–4.99 ms (1.08–1.15×
/// the floor from 1.26–1.41×); on two threads the Zen 5 settings measured level or better at
/// every row count (f32 4 rows 1.34–1.55 → 1.21–1.27× the roofline). Pairing from 2 or from 3
/// rows, and the inputs or the line swapped, measured level at 2 rows (4.7–5.1 ms), so those
/// keep Zen 4's values.
///
/// Packed f32 paired ([`Tuning::f32_paired_min_rows`] = 2 on Zen 5) only where a call has
/// several row blocks, and there only on the passes after the first over each column block
/// (`task`). Paired on every pass, with the prefetches thinned as in `tile`, f32 ran 2–3×
/// slower at 6–16 rows (8 rows 27.2–27.6 against 11.4–12.2 ms): the first pass streams the
/// block from memory. Prefetching every step rescued it (8 rows 12.6 against 11.0 ms, still a
/// loss; 64 rows 56.5–56.9 against 63.1 ms), and pairing only the later passes, which read the
/// block from L2 and are bound by the FMAs, keeps the gain without the loss (two rounds, `…
/// --bench gemm -- 1 2 f32 model rows=3,4,6,8,16,32,64,128`, fastest pass: 8 / 16 rows level,
/// 32 rows 33.1–33.7 → 31.5–31.6, 64 rows 63.2–65.5 → 57.6–58.8, 128 rows 125.9–130.6 →
/// 112.8–114.5 ms). The decode bench's f32 verification, one core, two rounds: 32 / 64 / 128
/// rows 1.60–1.61 / 1.54–1.57 / 1.55–1.57× the roofline → 1.48–1.52 / 1.38–1.41 /
/// 1.36–1.38×; two cores, three rounds: 128 rows 76.4–76.7 → 66.5–72.0 ms.
///
/// Paired bf16 and f32 tiles then ran their `k` loop and their finish in one function
/// (`avx512::tile_paired`), so the accumulators reach the lane tree in registers instead of
/// through the stack: three interleaved rounds against the build before (`… --bench gemm -- 1
/// 3 bf16 f16 f32 model rows=2,4,8,16,64`), bf16 at 8 / 16 / 64 rows 6.93–7.18 / 12.51–13.42
/// / 50.8–53.1 → 6.76–6.97 / 12.57–13.00 / 48.1–51.5 ms, f32 at 16 / 64 rows 17.9–18.1 /
/// 56.7–57.5 → 17.3–17.8 / 55.0–56.3 ms. f16 in one function first ran 8–64 rows at half
/// speed (8 rows 11.4–11.9 against 6.7–7.1 ms): `_mm512_cvtph_ps` emits `vcvtph2ps {sae}`,
/// for which LLVM used only `zmm0`–`zmm19` and spilled three accumulators in the loop. Widened
/// with `_mm512_cvt_roundph_ps::<_MM_FROUND_CUR_DIRECTION>` (the same exact conversion, now
/// folding the load) it has no spill, but measured level with the separate loop (three rounds:
/// 8 / 16 / 64 rows 6.96–7.16 / 13.08–13.25 / 51.96–52.28 against 6.97–7.18 / 12.94–13.22 /
/// 51.45–52.90 ms): f16 is held by its two conversions per step (`tools/f16_step_probe.c`:
/// 1.09–1.12 against 1.02 ns per 4-row step without them), not by the finish.
///
/// Session 13 (the same Zen 5), *k-panels* ([`Tuning::panel_min_x_bytes`] = 32 KiB,
/// [`Tuning::panel_x_bytes`] = 16 KiB). Timing each matrix apart (`… --bench gemm -- 1 3 bf16
/// f16 f32 model rows=4,6,8 breakdown`) showed w2 (k = 2048) as the slow matrix of the 6–8-row
/// calls: bf16 at 8 rows 22–23 GB/s against 29 GB/s for the k = 768 matrices, i.e. 64 % of the
/// FMA peak where those run at 87 %. An 8-row block's inputs at k = 2048 are 64 KiB (the paired
/// copy as much), more than the 48 KiB L1, so every tile swept them from L2. In panels, every
/// tile of a column block runs one panel of its `k` loop before any runs the next, saving and
/// reloading its lane accumulators in between (exact), so a panel's inputs stay in L1; a pass
/// that streams from memory prefetches the chunk (a tile's share of a panel) that it will read
/// 8 KiB later. w2 alone, two rounds, off → panels: bf16 at 6 / 8 rows 1.54–1.64 / 1.62–1.69 →
/// 1.15–1.21 / 1.32–1.35 ms, f16 1.49–1.55 / 1.64–1.66 → 1.20–1.22 / 1.39–1.41 ms, f32 at 8 rows
/// 3.11–3.23 → 2.58–2.59 ms. Panels of unequal length (24 KiB of inputs, then the rest) made
/// 4-row calls, which stream from memory and are not bound by their FMAs, 40 % slower on w2, so
/// panels are equal and only inputs over 32 KiB (6 rows and more at k = 2048) run in them; the
/// 4-row f32 call was slower with two panels too (2.26–2.28 → 2.54–2.62 ms). The verification
/// of the decode bench (`… --bench decode -- 1 DT verify=N reps=15`, alternating processes,
/// median of 5–8): bf16 6 rows 6.46 → 6.03 ms, 8 rows 7.19 → 6.92 ms (16 KiB panels; 24 /
/// 32 KiB: 7.00 / 6.94), f16 8 rows 7.56 → 7.33 ms, f32 8 rows 12.31 → 11.77 ms (24 / 32 KiB:
/// 12.13 / 12.33), 6 rows level; 16 rows level for all three (13.47 / 14.30 / 19.54 ms off).
///
/// Session 13, *f32 decode-step calls prefetch too* ([`Tuning::f32_no_prefetch_rows`] = 0 on
/// Zen 5; session 12 had set only the half-precision threshold). One core, GPT-B decode-step
/// GEMMs (`… --bench gemm -- 1 3 f32 model rows=1,2 breakdown`, two rounds, fastest pass):
/// 2 rows 10.16–10.33 → 8.95–9.19 ms, every matrix 38 → 42–43 GB/s (w2 35–37 → 41); 1 row
/// 9.38–9.62 → 8.83–9.23 ms; 4 or 16 KiB ahead instead of 8 slower at 2 rows (9.5–9.7 ms).
/// The decode step (`… --bench decode -- 1 f32 steps=40`, three alternating rounds): 9.92–10.62
/// → 9.19–9.72 ms, 1.20–1.25× → 1.10× the floor; two threads 5.78 → 5.42–5.44 ms in the
/// host's slow state, level (7.86 / 8.09 ms) in its fast one.
///
/// Session 13, [`Tuning::f32_prefetch_every`] = 256 on Zen 5. In `avx512::tile` (single-block
/// f32 calls and the first pass of larger ones) a step off the mask takes the row-major
/// branch and prefetches its two lines twice, so every step prefetches: with mask 255 almost
/// every step issues four prefetches, with mask 15 one step in 16 issues two. In
/// `avx512::tile_paired` (the later passes, from L2) the thinning is real: one prefetch pair
/// per 256 steps, once per tile at GPT-B's `k`. GPT-B decode-step GEMMs, one core
/// (`… --bench gemm -- 1 3 f32 model rows=3,4,6,8,16,64`, two rounds, fastest pass, every
/// 16th step → 256th): 3 rows 10.06–10.11 → 9.44–9.63 ms, 4 rows 10.59–10.75 → 9.90–9.95,
/// 6 rows 11.69–11.82 → 10.95–11.06, 8 rows 10.98–11.43 → 10.77–10.85, 16 and 64 rows level
/// or faster (64: 54.3–56.1 → 53.5–54.8 ms); every 32nd / 64th / 128th in between, no
/// prefetch at all 2× slower (3 rows 18.8–19.1 ms), `prefetcht1` slower (4 rows 11.8–11.9 ms).
/// Later, with the 8-row padding below in place, three rounds of mask 255 / 15 / 0 (two
/// prefetches every step, no branch): 3 rows 9.56–9.81 / 9.82–9.99 / 9.58–9.70 ms, 8 rows
/// 11.01–11.31 / 11.11–11.39 / 10.90–11.12 ms, 16–64 rows level — so what mattered was
/// leaving the every-16th pattern, not prefetching less (the branch taken one step in 16 is
/// the likeliest cost; this VM has no counters to show it). Real thinning, as in
/// `tile_paired`, made passes that stream f32 from memory 2× slower already at a prefetch
/// every second step (`docs/runtime-performance.md`, session 13), so `tile` keeps
/// prefetching every step; Zen 4 keeps its measured 16.
/// Decode-bench verification (`… -- T f32 verify=N reps=10`, alternating, median of 4–5):
/// one core 4 / 8 / 16 rows 10.70 / 11.51 / 18.68 → 10.22 / 11.45 / 18.31 ms; two cores 4 /
/// 16 / 64 rows 8.58 / 11.28 / 32.30 → 8.15 / 10.93 / 31.90 ms. With that, padding f32
/// single-block tiles to 8 rows instead of 6 ([`Tuning::f32_min_tile_rows`] = 8; two rounds,
/// `… rows=3,4,6,8,16,32`): 6 rows 11.21–11.36 → 10.77–10.83 ms, the others level (3 rows
/// 9.60–9.86 → 9.68–9.71 ms); no padding 0–3 % slower.
///
/// Session 13, *half-precision single-row-block calls prefetch further ahead*
/// ([`Tuning::half_stream_pf_bytes`] = 12 KiB on Zen 5; 8 KiB for every other call). GPT-B
/// decode-step GEMMs, one core, three rounds (`… --bench gemm -- 1 3 bf16 f16 f32 model
/// rows=2,4,8`, 8 → 12 KiB for all calls): bf16 4 / 8 rows 4.83–4.95 / 6.39–6.53 → 4.64–4.84 /
/// 6.11–6.28 ms, f16 4.84–4.96 / 6.74–6.89 → 4.57–4.82 / 6.48–6.55 ms, 2 rows level (bf16
/// 4.37–4.67 → 4.55–4.57, f16 4.39–4.59 → 4.30–4.50 ms); but f32 slower at 12 KiB (2 / 4 / 8
/// rows 9.09–9.11 / 10.01–10.05 / 11.08–11.11 → 9.54–9.62 / 10.24–10.39 / 11.38–11.49 ms) and
/// at 16 KiB, and calls of several row blocks 1–2 % slower (f16 at 32 / 64 / 128 rows
/// 26.14–26.42 / 51.7–52.9 / 104.6–105.1 ms at 8 KiB against 26.78–27.98 / 52.7–55.5 /
/// 105.7–108.9 ms at 12, three rounds; bf16 level), so only the half-precision calls of one row
/// block take 12 KiB. The decode bench's verification (`… -- 1 DT verify=N reps=15`,
/// alternating, median of 5): bf16 4 / 8 rows 5.04 / 6.79 → 4.93 / 6.59 ms, f16 5.10 / 7.05
/// → 4.89 / 6.83 ms; the decode step level (bf16 4.70–4.74 → 4.47–4.73 ms).
///
/// Session 14 (the same Zen 5), *f32 calls of several row blocks prefetch 16 KiB ahead*
/// ([`Tuning::f32_multi_pf_bytes`]; one-block calls keep 8 KiB). The first pass over each
/// column block streams it from memory while the second (paired, from L2) prefetches the next
/// block; the first pass's distance measured best at 16 KiB. GPT-B decode-step GEMMs, one core,
/// two rounds (`… --bench gemm -- 1 3 f32 model rows=9,16,32,64`, fastest pass), 8 → 12 / 16 /
/// 24 / 32 / 48 KiB: 9 rows 14.13–14.50 → 13.68–14.03 / 13.34–13.37 / 14.23–14.52 /
/// 14.33–14.42 / 14.68–14.89 ms, 16 rows 17.14–17.28 → 16.35–16.58 / 15.97–16.00 / 16.14–16.29 /
/// 16.07–16.21 / 16.13–16.29 ms, 32 rows 29.14–29.76 → 28.02–28.04 ms at 16 KiB, 64 rows
/// 53.54–54.21 → 52.36–52.53 ms; as `prefetcht1` slower (9 rows 13.87–13.95 ms). Two cores
/// (process CPU time), two rounds: 16 rows 18.06–18.27 → 16.93–17.54 ms, 128 rows level. The
/// decode bench's verification (`… --bench decode -- 1 f32 verify=N reps=10`, four
/// alternating rounds, median): 16 / 32 rows 18.15 / 31.01 → 17.00 / 30.00 ms.
///
/// Measured and kept as they were in session 14: the column block ([`Tuning::block_bytes`],
/// f32 with 16 KiB ahead, two rounds: 64 / 96 / 192 / 384 KiB at 16 rows 16.83–16.98 /
/// 16.40–16.51 / 15.99–16.03 / 16.05–16.33 ms, the same order at 9–64 rows); the next block's
/// prefetch as `prefetcht0` (16 rows 17.00–17.27 ms) or `prefetcht2` (level with `prefetcht1`);
/// without it 16 rows 17.17–17.37 ms. *Rejected* (`docs/results/session14/experiments.md`):
/// a *fused first pass* that ran the first two row blocks over each tile in turn (the second
/// reading the chunk the first had just streamed in, from L1; panels for both blocks' inputs):
/// 16 rows level (16.12–16.68 ms), 9 rows 13.3–13.5 → 15.2–17.6 ms, 32 rows 3–6 % slower; a
/// second, far `prefetcht1` (32 or 64 KiB ahead) beside the near one: 16 rows 16.3 → 17.4–18.0
/// ms; packed f32 paired on a single row block of 8 rows (every step prefetching): 34 GB/s
/// either way; panels for 8-row f32 at k = 768 (8 / 12 / 4 KiB of inputs): level or slower;
/// and a *panel-major f32 layout* (slabs stored panel by panel, so that a first pass in panel
/// order reads memory in order and its inputs stay under ~12 KiB, where
/// `tools/stream_fma_probe.c` streams 43–45 GB/s against 35–38 at 24 KiB): 4 / 8 rows 5 / 8 %
/// faster, but 16–128 rows 3–5 % slower (later passes then run each tile's `k` loop in
/// several runs), and the decode bench's verification 8 rows 11.43 → 11.03 ms against 16 /
/// 128 rows 16.95 / 116.1 → 17.77 / 119.7 ms: reverted.
///
/// Session 14, *two column ranges per thread* ([`Tuning::tasks_per_thread`] = 2 on Zen 5,
/// 4 elsewhere): each range starts a weight stream of its own. Two cores, the decode bench
/// alternating with 4 ranges (`docs/results/session14/experiments.md`), medians of five runs:
/// decode step bf16 2.70 → 2.57 ms, f16 2.88 → 2.60 ms, f32 level; verification at 16 rows f32
/// 10.73 → 10.30 ms, bf16 8.29 → 8.15 ms; 128 rows level; in the host's fast bandwidth state 8
/// and 16 ranges measured slower than 4 (state-matched bf16 step 1.31–1.47× against
/// 1.16–1.23×).
///
/// Session 15 (the same Zen 5): the table is no longer the only way in. `argen calibrate
/// --kernels` (`argen_engine::kernel_tune`) scores the table's entries ([`known_tables`]) and
/// then one setting at a time ([`search_space`], [`candidate`]) on the model itself, and
/// records its choice in the model's cost profile, which [`compose`] and [`set_tuning`] apply
/// in later processes; a GEMM reads the tuning once per call, so a change while calls run
/// cannot split one call between two tunings. On this Zen 5, GPT-B from [`Tuning::generic`]
/// (what a CPU the table does not name gets): one core, bf16, calls of 2 / 8 / 16 rows 6.87 /
/// 15.90 / 24.64 → 5.54 / 8.62 / 16.62 ms; f32 (row-major in the generic entry) 13.97 / 13.41
/// / 22.50 ms, packed and tuned 10.48 / 13.47 / 20.85 ms
/// (`docs/results/session15/kernel-tune/`). Rejected the same session: a packed-f32 kernel
/// broadcasting the weights instead of the inputs (`docs/runtime-performance.md`).
///
/// Session 16 (the same Zen 5), *tall tiles* ([`Tuning::f32_tall_rows`] = 14 on Zen 5, off
/// elsewhere until measured; module docs of [`super`]): packed f32 calls of 9–14 rows run as
/// one row block of tiles of up to 14 rows, the weights broadcast against paired inputs, so
/// that each weight is streamed once for all rows. GPT-B decode-step GEMMs, one core, the
/// tunings alternating in one process (`… --bench gemm -- 1 7 f32 model rows=9,…,16
/// 'ab=-;f32_tall_rows=14;f32_tall_rows=12'`, `docs/results/session16/tall-gemm-ab-1t.txt`):
/// 9 / 10 / 11 / 12 / 13 / 14 rows 14.96 / 14.48 / 15.15 / 15.84 / 17.08 / 17.03 → 13.04 /
/// 12.82 / 13.12 / 13.38 / 15.95 / 15.73 ms (medians); 12 as the limit: the same to 12 rows,
/// 13–14 rows level with the old blocks. Two cores (process CPU time): 10 / 12 / 14 rows 0.95 /
/// 0.98 / 0.98×. The decode bench's f32 verification, three alternating rounds (`… --bench
/// decode -- 1 f32 verify=N reps=10`): 10 / 12 / 14 rows 15.3–15.6 / 16.3–16.9 / 17.7–18.0 →
/// 13.6–14.0 / 14.5–15.5 / 15.4–17.1 ms. The tall pass streams 29–31 GB/s, short of the probe's
/// 37–41 GB/s with contiguous 4–6 KiB tiles. Measured and not kept: panels for it from 64 KiB
/// of inputs instead of 32 (10 / 12 / 14 rows 1–2 % faster, within noise), from 16 or 24 KiB
/// (10 rows 0.92× in one run, 1.07× in the next), none at all (10 / 12 / 14 rows 7 / 8 / 0 %
/// slower); `prefetchnta` 4, 12, 16 or 24 KiB ahead instead of 8 (12 rows 18–34 % slower),
/// `prefetcht0` 8 KiB ahead (level), 16 KiB (1.44× slower), `prefetcht1` 16 or 32 KiB (1.22–1.34×
/// slower).
/// *Rejected*: a tall first block followed by 8-row blocks for calls of 15 or more rows (16
/// rows 17.5 → 18.4 ms with 12 + 4, 20.8–24.2 ms with 14 + 2: the tall pass is still bound by
/// memory, so the later pass's FMAs add to it), and tall tiles for calls of 2–8 rows (2–8 %
/// slower than `avx512::tile`).
///
/// Session 16, *the next column block's prefetch shared by all passes*
/// ([`Tuning::f32_phased_min_rows`], on for Zen 5): in an f32 call of several row blocks the
/// second pass over a column block used to prefetch the whole next block while the first pass
/// over each block streamed its own from memory; only the second pass's FMAs hid the memory
/// time. Now every pass over a block prefetches its share of the next one, in order, at its
/// share of the pace (pass `b` of `2^s` the `b`-th `2^-s` of the block, every `2^s`-th step), so
/// that every pass but a task's very first runs from L2, and the first passes over later
/// blocks pair. GPT-B decode-step GEMMs, one core, alternating in one process (`… --bench gemm
/// -- 1 7 f32 model rows=16,…,128 'ab=-;f32_prefetch_phased=1'`, the switch this setting
/// began as,
/// `docs/results/session16/phased-gemm-ab-1t.txt`): 16 / 20 / 24 / 32 / 64 / 128 rows 0.915 /
/// 0.943 / 0.927 / 0.921 / 0.958 / 0.984× (16 rows 18.02 → 16.48 ms); without pairing those
/// first passes 0.90–0.98× at 16 / 32 / 64–128 rows (three runs), and with the shares
/// interleaved (every other step's lines of the whole next block) instead of in order 0.96–1.01×
/// at 16 / 32 / 128 rows (a second run, in a noisy minute, 0.90–1.12×). Half precision, where the first pass
/// at 16 rows is already bound by the FMAs: bf16 1.03–1.06× slower, so f32 only. Two cores
/// (process CPU time, three runs; `phased-gemm-ab-2t.txt`): 16 rows 0.98 / 1.06 / 1.09×, 24
/// rows 0.92 / 0.97×, 32 and 128 rows 0.985 / 0.988×: two cores share one memory stream, and
/// 8 rows per thread leave it the bound. Hence the threshold in rows per thread
/// ([`Tuning::f32_phased_min_rows`] = 12 on Zen 5: from 15 rows, 14 being the tall tiles'
/// limit, on one core; from 24 on two): two cores, `phased-rule-ab-2t.txt`, 16 / 24 / 32 rows
/// 0.996 / 0.939 / 0.955× against never (always: 1.050 / 0.963 / 0.953×). The decode bench's f32 verification (`… --bench decode -- 1 f32
/// verify=N reps=6`, three alternating rounds, `phased-decode-verify-ab.txt`): 16 / 32 / 128
/// rows 19.2–19.4 / 33.9–35.2 / 129.1–136.5 → 17.3–17.8 / 31.5–32.9 / 122.7–129.4 ms (one
/// 16-row round 22.3 ms).
///
/// Session 16, *half-precision calls of 9–13 rows split evenly*
/// ([`Tuning::half_even_split_rows`] = 13 on Zen 5). A bf16 call of 10 rows ran as 8 rows and
/// then 2, and that 2-row pass over each column block also prefetches the whole next block
/// (`prefetch_next_block`): a short pass that has to wait for memory. bf16 took 6.9 ms at 8
/// rows but 11.2 ms at 10. Two blocks of equal size instead. GPT-B decode-step GEMMs, one
/// core, alternating in one process (`… --bench gemm -- 1 7 bf16 f16 model rows=9,…,15
/// 'ab=-;half_even_split_rows=12;half_even_split_rows=15'`,
/// `docs/results/session16/even-split-gemm-ab-1t.txt`):
/// - bf16 10 / 11 / 12 / 13 rows: 0.87 / 0.90 / 0.91 / 0.97× (10.74 → 9.31 ms at 10);
/// - f16: 0.97 / 0.92 / 0.91 / 0.96×;
/// - 14 and 15 rows level or slower (f16 14 rows 1.02×), 9 rows level (already 5 + 4);
/// - two cores 0.86–1.07×, within that run's noise.
///
/// The decode bench's verification, three alternating rounds (`even-split-decode-verify-ab.txt`),
/// 10 / 12 rows: bf16 11.61–11.72 / 12.08–13.16 → 10.16–11.36 / 11.47–11.56 ms; f16
/// 11.99–12.34 / 12.59–13.60 → 11.62–12.44 / 11.66–11.94 ms. f32 calls of 9–14 rows run
/// tall instead, and longer f32 calls split evenly measured 4–7 % slower at 20–22 rows.
///
/// Session 16, *tall half-precision blocks* ([`Tuning::half_tall_rows`] = 11 on Zen 5):
/// half-precision calls of 9–11 rows run as one row block of `avx512::tile_paired` tiles of up
/// to 12 rows (6 pairs × 4 accumulators, the line and its swap, one input load per pair).
/// `tile_paired` is now compiled with AVX512VL for the larger tiles; `Variant::Avx512`
/// requires VL. Against the even split, alternating in one process
/// (`half-tall-gemm-ab-1t.txt`), 9 / 10 / 11 / 12 rows:
/// - bf16 0.81 / 0.87 / 0.97 / 1.01×;
/// - f16 0.79 / 0.84 / 0.98 / 1.02×.
///
/// From 12 rows a single pass is bound by the FMAs either way, hence 11. Two cores
/// (`half-tall-gemm-ab-2t.txt`): 9 / 10 / 11 rows bf16 0.80 / 0.77 / 0.98×, f16 0.89 / 0.75 /
/// 0.95×. The decode bench's 10-row verification, three alternating rounds: bf16 10.18–10.90 →
/// 9.44–9.58 ms, f16 11.96–14.11 → 9.91–9.94 ms. The same code before and after adding VL to
/// `tile_paired`, at 2–32 rows of every dtype: level within the host's ±8 % between rounds.
///
/// Session 17 (the same Zen 5): *where an L2-resident pass's time goes*. A profile of the
/// GPT-B decode-step GEMMs at 128 rows (`perf record -e cpu-clock`, no hardware counters on
/// this VM): 94–95 % of `avx512::tile_paired`'s samples in its `k` loop, the rest in the lane
/// tree; `task` (the per-tile bookkeeping and `write_tile`) about 7 % of the GEMM time; overall
/// 84–86 % of the FMA peak with K = 768 and 72 % with K = 2048 (w2). The write of each tile's
/// sums read them back 16 bytes at a time right after the lane tree's 64-byte stores, loads the
/// core does not forward: now `avx512::write_rows` (one 64-byte load per four rows) with the
/// sums on a cache line of their own (`Sums`; where the array fell on the stack decided
/// whether the 64-byte store was forwarded at all). Measured and not kept, every variant
/// bit-identical, each against the table in one process (`… --bench gemm -- 1 7 f32 model
/// rows=16,32,128 'ab=…'`, with the switches of `docs/results/session17/l2-pass-experiments.patch`;
/// `l2-pass-experiments-ab.txt`):
/// - the L2 passes with weight-broadcast tiles (`avx512::tile_wb` at 8 rows, no shuffles in the
///   step): 0.975–1.011×;
/// - a `prefetcht0` 1 KiB ahead in the tile stream on the L2 passes: 0.94 / 1.00 / 0.99× at
///   16 / 32 / 128 rows (the 16-row gain did not repeat in two earlier runs, not kept);
/// - a `prefetchw` of each output row's next line: 0.99–1.00×;
/// - the phased prefetch issuing one line of the two per step (the L2 adjacent-line prefetcher
///   does not fetch the other): 1.14–2.01× slower;
/// - the sums staged per column block and each output row's share written in one run at the
///   end of the pass: 1.02–1.06× slower (outputs not kept);
/// - panels from 16 or 24 KiB of inputs for 8–14-row calls: 0.99–1.28× (the current 32 KiB
///   threshold and 16 KiB panels best; `variants/tall-panels-ab.txt`);
/// - 6–8-row calls as two even row blocks (smaller inputs beside the stream, a second pass
///   from L2): 1.37–1.44× slower (`variants/f32-small-split-ab.txt`).
///
/// Session 17, *the fast class* ([`crate::fast`]): [`Tuning::fast_pf_bytes`] = 8 KiB on Zen 5
/// (1 KiB elsewhere until measured; GPT-B's decode step on one core, 1 / 4 / 8 / 12 KiB
/// 5.94–5.96 / 5.21–5.74 / 4.71–4.93 / 4.87–5.20 ms) and [`Tuning::fast_next_block`] on (16 rows
/// 11.3–12.4 → 9.7–10.0 ms, 128 rows level; `docs/results/session17/variants/fast-knobs.txt`)
/// and [`Tuning::fast_tall_rows`] = 12 on Zen 5 (10 / 12 rows 8.7–9.0 / 9.6–10.3 → 7.4–7.8 /
/// 8.8–9.1 ms, 14 rows not tall and level; `fast-tall/tall-ab.txt`).
/// Measurements in `docs/runtime-performance.md`, "Session 17".
///
/// Session 18 (the same Zen 5), *f32 stored class-major* ([`Tuning::f32_class_major`] on Zen
/// 5; `super::class_major`, whose module docs compare the layouts). Its settings, GPT-B
/// decode-step GEMMs on one core in one process (`… --bench gemm -- 1 5 f32c model rows=…
/// 'ab=…'`, median against the entry's; re-run at the session's end into
/// `docs/results/session18/settings/`, which agreed with the sweeps that chose them):
/// one-block calls run as at least 4 rows ([`Tuning::cm_min_rows`] = 4; unpadded, 1 / 2 / 3
/// rows 1.02 / 1.03 / 1.05×; padded to 5 / 6 / 8 rows instead 1.00–1.03×: a step with more
/// FMAs streams better, as [`Tuning::f32_min_tile_rows`] found for the tile kernels);
/// one-block calls of 7 or more rows prefetch 12 KiB ahead ([`Tuning::cm_wide_pf_bytes`]; 8 KiB
/// at every row count: 8 / 10 / 12 / 14 rows 1.01 / 1.05 / 1.06 / 1.04×, 16 KiB 0.98–1.02×);
/// row blocks of at most 12 rows ([`Tuning::cm_block_rows`]: 8 / 10 / 14
/// 0.98–1.01× from 16 to 128 rows), one block up to 14 rows ([`Tuning::cm_single_rows`]; 12
/// at 14 rows 1.05×); `block_bytes` as it was (96 / 384 / 768 KiB: 0.98–1.00 / 1.01–1.06 /
/// 1.01–1.14×). The next column block's prefetch is shared by the passes in *contiguous*
/// shares of each tile's steps: in shares by step parity (pass `b` of `p` taking the steps
/// `g ≡ b mod p`) 16 rows took 16.1–17.0 ms, with none 17.3, in contiguous shares 13.6–14.0
/// ms (24 rows 20.3–21.7 → 19.5–20.0); a `prefetcht0` stream on the passes after the first
/// changed nothing (16.6–17.0 ms; these builds' outputs were not kept). The class sums kept
/// uninitialised rather than zeroed per tile (a memset of up to 14 KiB) and the inputs laid
/// out by class through 8 × 8 transposes: the decode bench's 128-row verification
/// 114.7–118.6 → 108.7–110.5 ms (`… --bench decode -- 1 f32 verify=64 reps=15`, two
/// alternating rounds, outputs not kept).
///
/// Session 18, *f16 and bf16 stored class-major too* ([`Tuning::f16_class_major`] and
/// [`Tuning::bf16_class_major`] on Zen 5). GPT-B decode-step GEMMs against the packed tiles,
/// two rounds with [`Tuning::cm_half_pf_bytes`] = 12 KiB (`docs/results/session18/gemm-half/`):
/// f16 0.91–1.01× at 1–3 rows, 0.89–0.96× from 4 rows; bf16 0.95–1.03× and 0.89–1.01×, but at
/// 1–3 rows (the decode step) 1.05–1.14× slower in five of eight further processes, and in the
/// decode bench (three alternating rounds, `bf16-layout-ab/`) its decode step took 4.72–4.85
/// against 4.62–4.76 ms while verification of 4–128 rows ran 0.95–0.98× (medians). The
/// half-precision prefetch distance then measured 0.95–1.01× at 16 KiB against 12
/// (`settings/half-prefetch.txt`; 8 KiB 0.98–1.03×; in a first sweep, outputs not kept, 12 KiB
/// had taken bf16 1 / 2 / 4 rows to 0.94 / 0.96 / 0.94× of 8 KiB), and with 16 KiB class-major
/// bf16 took the decode step in 4.56–4.74 ms against 4.64–5.11 packed and verified 4–128 rows
/// at 1.16–1.22× the roofline against 1.20–1.30× (`bf16-layout-ab16k/`, three alternating
/// rounds): so [`Tuning::cm_half_pf_bytes`] = 16 KiB and bf16 class-major too. Measurements in
/// `docs/runtime-performance.md`, "Session 18".
///
/// `ARGEN_GEMM_TUNING` overrides fields for benchmarks (the results are the same bits either
/// way): comma-separated `no_prefetch_rows=N`, `no_prefetch_max_x_bytes=N`,
/// `pf_packed_bytes=N`, `half_stream_pf_bytes=N`, `f32_multi_pf_bytes=N`,
/// `f32_no_prefetch_rows=N`, `l2_prefetch=0|1`,
/// `row_major_l2_prefetch=0|1`, `f32_prefetch_every=N`,
/// `f32_min_tile_rows=N`, `f32_tall_rows=N`, `half_even_split_rows=N`, `half_tall_rows=N`, `prefetch_next_block=0|1`, `f32_phased_min_rows=N`,
/// `attn_prefetch=0|1`,
/// `f16_paired_min_rows=N`, `bf16_paired_min_rows=N`, `f32_paired_min_rows=N`,
/// `paired_xswap_max_rows=N`, `paired_min_k=N`, `panel_min_x_bytes=N`, `panel_x_bytes=N`,
/// `block_bytes=N`, `tasks_per_thread=N`, `fast_pf_bytes=N`, `fast_next_block=0|1`,
/// `fast_tall_rows=N`, `cm_single_rows=N`, `cm_min_rows=N`, `cm_block_rows=N`,
/// `cm_pf_bytes=N`, `cm_wide_pf_bytes=N`, `cm_wide_pf_rows=N`, `cm_half_pf_bytes=N`,
/// `cm_nta=0|1`, `pack_f32_max_k=N`, `f32_class_major=0|1`, `f16_class_major=0|1` and
/// `bf16_class_major=0|1` (read when a model loads: they decide the stored layout of its
/// matrices); malformed entries are ignored;
/// `base=generic` starts from [`Tuning::generic`] instead of this CPU's table. A kernel calibration stored in a cost profile ([`compose`], [`set_tuning`])
/// replaces the table, and these overrides still win over it.
pub fn tuning() -> Tuning {
    let p = CURRENT.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: every pointer stored in CURRENT comes from `interned`, which leaks its
        // boxes: they are valid and never written for the rest of the process.
        return unsafe { *p };
    }
    let t = interned(env_overrides(env_base()));
    // A racing first call may have stored its own (equal) tuning first: either is fine.
    let _ = CURRENT.compare_exchange(
        std::ptr::null_mut(),
        t as *const Tuning as *mut Tuning,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    // SAFETY: as above.
    unsafe { *CURRENT.load(Ordering::Acquire) }
}

/// Makes `t` the tuning of every GEMM that starts from now on (a call already running keeps
/// the tuning it started with, [`super::gemm`] reads it once per call). Speed only: the
/// results are the same bits whatever the tuning. Used by the kernel calibration
/// (`argen calibrate --kernels`) and to apply a stored one ([`compose`]).
///
/// Each distinct tuning ever set is kept for the rest of the process (a reader may still be
/// copying the previous one), so setting a handful of candidates repeatedly costs no memory
/// beyond one copy each.
pub fn set_tuning(t: Tuning) {
    CURRENT.store(
        interned(t) as *const Tuning as *mut Tuning,
        Ordering::Release,
    );
}

/// The tuning in force ([`tuning`]); null until the first call.
static CURRENT: AtomicPtr<Tuning> = AtomicPtr::new(std::ptr::null_mut());

/// The process-lifetime copy of `t`: an earlier one equal to it, or a new, leaked one.
fn interned(t: Tuning) -> &'static Tuning {
    static ALL: Mutex<Vec<&'static Tuning>> = Mutex::new(Vec::new());
    let mut all = ALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&old) = all.iter().find(|&&o| *o == t) {
        return old;
    }
    let new: &'static Tuning = Box::leak(Box::new(t));
    all.push(new);
    new
}

/// The table [`tuning`] starts from: this CPU model's, or [`Tuning::generic`] where
/// `ARGEN_GEMM_TUNING` holds `base=generic` (to calibrate from the table an unknown CPU
/// gets, on a known one).
fn env_base() -> Tuning {
    let generic = std::env::var("ARGEN_GEMM_TUNING").is_ok_and(|spec| {
        spec.split(',')
            .filter_map(|kv| kv.split_once('='))
            .any(|(k, v)| k.trim() == "base" && v.trim() == "generic")
    });
    if generic {
        Tuning::generic()
    } else {
        cpu_tuning()
    }
}

/// `t` with the `ARGEN_GEMM_TUNING` overrides applied (malformed or unknown entries ignored,
/// [`tuning`]).
fn env_overrides(mut t: Tuning) -> Tuning {
    if let Ok(spec) = std::env::var("ARGEN_GEMM_TUNING") {
        for (key, value) in spec.split(',').filter_map(|kv| kv.split_once('=')) {
            let key = key.trim();
            if let Ok(v) = value.trim().parse::<usize>() {
                t.set(key, v);
            }
        }
    }
    t
}

/// The tuning for a stored calibration `spec` ([`Tuning::spec`]): this CPU's table (or the
/// generic one, `base=generic`), then `spec`, then the `ARGEN_GEMM_TUNING` overrides, which
/// win. Errors name a malformed entry or unknown key.
pub fn compose(spec: &str) -> Result<Tuning, String> {
    Ok(env_overrides(env_base().with_spec(spec)?))
}

/// Declares the keys of [`Tuning::spec`]: each field's name, and whether it is a count
/// (`usize`) or a switch (`bool`, written 0 or 1).
macro_rules! spec_keys {
    ($($f:ident: $kind:ident),* $(,)?) => {
        /// Every key of [`Tuning::spec`], in its order.
        pub const SPEC_KEYS: &[&str] = &[$(stringify!($f)),*];

        impl Tuning {
            /// The value of `key` (a switch as 0 or 1); `None`: no such key.
            pub fn get(&self, key: &str) -> Option<usize> {
                match key {
                    $(stringify!($f) => Some(spec_keys!(@get self.$f, $kind)),)*
                    _ => None,
                }
            }

            /// Sets `key` to `v` (a switch: on unless 0); false: no such key.
            pub fn set(&mut self, key: &str, v: usize) -> bool {
                match key {
                    $(stringify!($f) => {
                        spec_keys!(@set self.$f, $kind, v);
                        true
                    })*
                    _ => false,
                }
            }

            /// Whether `key` is a switch.
            fn is_switch(key: &str) -> bool {
                match key {
                    $(stringify!($f) => spec_keys!(@switch $kind),)*
                    _ => false,
                }
            }
        }
    };
    (@get $e:expr, usize) => { $e };
    (@get $e:expr, bool) => { usize::from($e) };
    (@set $e:expr, usize, $v:expr) => { $e = $v };
    (@set $e:expr, bool, $v:expr) => { $e = $v != 0 };
    (@switch usize) => { false };
    (@switch bool) => { true };
}

// `pack_f32_max_k` decides the stored layout of a model's f32 matrices when the model loads
// ([`crate::Cpu`]): a change reaches only models loaded after it (both layouts give the same
// bits), so a calibration tries it by loading the model again, and a stored tuning is applied
// before the model loads.
spec_keys! {
    pack_f32_max_k: usize,
    no_prefetch_rows: usize,
    no_prefetch_max_x_bytes: usize,
    pf_packed_bytes: usize,
    half_stream_pf_bytes: usize,
    f32_multi_pf_bytes: usize,
    f32_no_prefetch_rows: usize,
    l2_prefetch: bool,
    row_major_l2_prefetch: bool,
    f32_prefetch_every: usize,
    f32_min_tile_rows: usize,
    f32_tall_rows: usize,
    half_even_split_rows: usize,
    half_tall_rows: usize,
    prefetch_next_block: bool,
    f32_phased_min_rows: usize,
    fast_pf_bytes: usize,
    fast_next_block: bool,
    fast_tall_rows: usize,
    f16_paired_min_rows: usize,
    bf16_paired_min_rows: usize,
    f32_paired_min_rows: usize,
    paired_xswap_max_rows: usize,
    paired_min_k: usize,
    panel_min_x_bytes: usize,
    panel_x_bytes: usize,
    block_bytes: usize,
    tasks_per_thread: usize,
    attn_prefetch: bool,
    f32_class_major: bool,
    f16_class_major: bool,
    bf16_class_major: bool,
    cm_single_rows: usize,
    cm_min_rows: usize,
    cm_block_rows: usize,
    cm_pf_bytes: usize,
    cm_wide_pf_bytes: usize,
    cm_wide_pf_rows: usize,
    cm_half_pf_bytes: usize,
    cm_nta: bool,
}

impl Tuning {
    /// Every key ([`SPEC_KEYS`]) as `key=value`, comma-separated: the form
    /// `ARGEN_GEMM_TUNING` and [`Tuning::with_spec`] read, and a cost profile stores.
    pub fn spec(&self) -> String {
        SPEC_KEYS
            .iter()
            .map(|k| format!("{k}={}", self.get(k).unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `self` with the entries of `spec` (comma-separated `key=value`, any subset of
    /// [`SPEC_KEYS`]; empty entries skipped). Errors name an entry that is not `key=value`, an
    /// unknown key, a value that is not a count, or a switch that is not 0 or 1.
    pub fn with_spec(mut self, spec: &str) -> Result<Tuning, String> {
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((key, value)) = entry.split_once('=') else {
                return Err(format!("kernel tuning entry {entry:?} is not key=value"));
            };
            let (key, value) = (key.trim(), value.trim());
            if key == "base" {
                continue;
            }
            let v: usize = value
                .parse()
                .map_err(|_| format!("kernel tuning {key}={value:?}: not a whole number"))?;
            if Tuning::is_switch(key) && v > 1 {
                return Err(format!("kernel tuning {key}={v}: a switch is 0 or 1"));
            }
            if !self.set(key, v) {
                return Err(format!(
                    "unknown kernel tuning key {key:?} (known: {})",
                    SPEC_KEYS.join(", ")
                ));
            }
        }
        Ok(self)
    }

    /// The table of a CPU without an entry of its own (module docs): no pairing, panels or
    /// packed f32, 1 KiB prefetch, four ranges per thread.
    pub fn generic() -> Tuning {
        Tuning {
            no_prefetch_rows: 0,
            no_prefetch_max_x_bytes: usize::MAX,
            pf_packed_bytes: PF_PACKED_BYTES,
            half_stream_pf_bytes: 0,
            f32_multi_pf_bytes: 0,
            f32_no_prefetch_rows: 0,
            pack_f32_max_k: 0,
            l2_prefetch: false,
            row_major_l2_prefetch: false,
            f32_prefetch_every: 1,
            f32_min_tile_rows: 0,
            f32_tall_rows: 0,
            half_even_split_rows: 0,
            half_tall_rows: 0,
            prefetch_next_block: false,
            f32_phased_min_rows: usize::MAX,
            fast_pf_bytes: 1 << 10,
            fast_next_block: true,
            fast_tall_rows: 0,
            f16_paired_min_rows: usize::MAX,
            bf16_paired_min_rows: usize::MAX,
            f32_paired_min_rows: usize::MAX,
            paired_xswap_max_rows: 0,
            paired_min_k: usize::MAX,
            panel_min_x_bytes: usize::MAX,
            panel_x_bytes: usize::MAX,
            block_bytes: BLOCK_BYTES,
            tasks_per_thread: 4,
            // Measured on Zen 4 only (`crate::attn`), but a prefetch of lines that are about to
            // be read costs a few instructions at worst.
            attn_prefetch: true,
            f32_class_major: false,
            f16_class_major: false,
            bf16_class_major: false,
            cm_single_rows: 14,
            cm_min_rows: 0,
            cm_block_rows: 12,
            cm_pf_bytes: 8 << 10,
            cm_wide_pf_bytes: 8 << 10,
            cm_wide_pf_rows: usize::MAX,
            cm_half_pf_bytes: 0,
            cm_nta: true,
        }
    }
}

/// `base` with `key` set to `value`, and the settings that only take effect together with it
/// made effective: a pairing threshold turned on where no call is long enough to pair
/// ([`Tuning::paired_min_k`] "never") also lets calls of 512 or more columns pair, and panels
/// turned on where a panel may hold every input ([`Tuning::panel_x_bytes`] "never") get
/// 16 KiB panels — so that a coordinate search (one key at a time) can reach them.
pub fn candidate(base: &Tuning, key: &str, value: usize) -> Tuning {
    let mut t = *base;
    t.set(key, value);
    let pairs = [
        "f16_paired_min_rows",
        "bf16_paired_min_rows",
        "f32_paired_min_rows",
    ];
    if pairs.contains(&key) && value != usize::MAX && t.paired_min_k == usize::MAX {
        t.paired_min_k = 512;
    }
    if key == "panel_min_x_bytes" && value != usize::MAX && t.panel_x_bytes == usize::MAX {
        t.panel_x_bytes = 16 << 10;
    }
    t
}

/// The values a kernel calibration tries for each key that can matter to a model with
/// `dtype` weights (`"f32"`, `"bf16"` or `"f16"`) stored as `t` says (the f32 layout) on
/// `threads` threads, the current value included or not: prefetch distances and kinds,
/// pairing, panels, column blocks, ranges per thread; a setting that acts only with another
/// one (the panel size with panels, the pairing details with pairing, the input-size limit
/// with the no-prefetch rows) only where that one is on in `t` ([`candidate`] turns them on
/// together). Every choice is speed-only.
pub fn search_space(t: &Tuning, dtype: &str, threads: usize) -> Vec<(&'static str, Vec<usize>)> {
    const NEVER: usize = usize::MAX;
    let f32 = dtype == "f32";
    // Which f32 layouts `t` stores ([`Tuning::pack_f32_max_k`]): the settings of the other
    // cannot matter.
    let f32_packed = f32 && t.pack_f32_max_k > 0;
    let f32_row_major = f32 && t.pack_f32_max_k < NEVER;
    let pair_key = match dtype {
        "f32" => "f32_paired_min_rows",
        "bf16" => "bf16_paired_min_rows",
        _ => "f16_paired_min_rows",
    };
    // Matrices in the class-major layout read only the class-major settings, the column
    // blocks' size and attention's prefetch.
    let class_major = match dtype {
        "f32" => f32_packed && t.f32_class_major,
        "bf16" => t.bf16_class_major,
        _ => t.f16_class_major,
    };
    let pairs = t.get(pair_key) != Some(NEVER) && (!f32 || f32_packed) && !class_major;
    let mut v: Vec<(&'static str, Vec<usize>)> = vec![
        ("block_bytes", vec![96 << 10, 192 << 10, 384 << 10]),
        ("attn_prefetch", vec![0, 1]),
    ];
    if !class_major {
        v.extend([
            (
                "pf_packed_bytes",
                vec![1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10],
            ),
            ("l2_prefetch", vec![0, 1]),
            ("prefetch_next_block", vec![0, 1]),
            ("panel_min_x_bytes", vec![32 << 10, NEVER]),
        ]);
        if t.panel_min_x_bytes != NEVER {
            v.push(("panel_x_bytes", vec![8 << 10, 16 << 10]));
        }
    }
    if class_major {
        v.extend([
            ("cm_min_rows", vec![0, 4, 6]),
            ("cm_single_rows", vec![8, 12, 14]),
            ("cm_block_rows", vec![8, 12, 14]),
            ("cm_nta", vec![0, 1]),
        ]);
        if f32 {
            v.extend([
                ("cm_pf_bytes", vec![4 << 10, 8 << 10, 12 << 10]),
                ("cm_wide_pf_bytes", vec![8 << 10, 12 << 10, 16 << 10]),
                ("cm_wide_pf_rows", vec![5, 7, NEVER]),
            ]);
        } else {
            v.push(("cm_half_pf_bytes", vec![0, 8 << 10, 12 << 10, 16 << 10]));
        }
    } else if f32_packed {
        v.extend([
            ("f32_multi_pf_bytes", vec![0, 8 << 10, 16 << 10, 32 << 10]),
            ("f32_no_prefetch_rows", vec![0, 2]),
            ("f32_prefetch_every", vec![1, 16, 256]),
            ("f32_min_tile_rows", vec![0, 6, 8]),
            ("f32_tall_rows", vec![0, 12, 14]),
            ("f32_phased_min_rows", vec![8, 12, NEVER]),
            (pair_key, vec![2, NEVER]),
        ]);
    }
    if f32_row_major {
        v.push(("row_major_l2_prefetch", vec![0, 1]));
    }
    if !f32 && !class_major {
        v.extend([
            ("half_stream_pf_bytes", vec![0, 8 << 10, 12 << 10, 16 << 10]),
            ("half_even_split_rows", vec![0, 13]),
            ("half_tall_rows", vec![0, 12]),
            ("no_prefetch_rows", vec![0, 2]),
            (pair_key, vec![2, 4, NEVER]),
        ]);
        if t.no_prefetch_rows > 0 {
            v.push(("no_prefetch_max_x_bytes", vec![12 << 10, NEVER]));
        }
        if pairs {
            v.push(("paired_xswap_max_rows", vec![0, 3]));
        }
    }
    if pairs {
        v.push(("paired_min_k", vec![0, 512, NEVER]));
    }
    if threads > 1 {
        v.push(("tasks_per_thread", vec![1, 2, 4]));
    }
    v
}

/// [`search_space`] for a model whose bf16 weights run on the opt-in fast class
/// ([`crate::fast`]): its own settings (the streaming pass's prefetch distance, the next
/// column block's prefetch, one block for calls of up to 12 rows), attention's prefetch and,
/// on several threads, the ranges per thread. The exact kernels' settings do not act on those
/// calls, so trying them would spend the calibration's time on nothing. Speed-only, like every
/// choice.
pub fn fast_search_space(threads: usize) -> Vec<(&'static str, Vec<usize>)> {
    let mut v: Vec<(&'static str, Vec<usize>)> = vec![
        ("fast_pf_bytes", vec![1 << 10, 4 << 10, 8 << 10, 16 << 10]),
        ("fast_next_block", vec![0, 1]),
        ("fast_tall_rows", vec![0, 10, 12]),
        ("attn_prefetch", vec![0, 1]),
    ];
    if threads > 1 {
        v.push(("tasks_per_thread", vec![1, 2, 4]));
    }
    v
}

/// The x86 display family (CPUID leaf 1: base family, plus the extended family when the
/// base is 0Fh): 19h is Zen 3–4, 1Ah Zen 5.
#[cfg(target_arch = "x86_64")]
fn cpu_family() -> u32 {
    // SAFETY: CPUID leaf 1 exists on every x86_64 CPU (the intrinsic is safe in newer Rust).
    #[allow(unused_unsafe)]
    let eax = unsafe { std::arch::x86_64::__cpuid(1) }.eax;
    let base = (eax >> 8) & 0xf;
    if base == 0xf {
        base + ((eax >> 20) & 0xff)
    } else {
        base
    }
}

/// The AMD Zen 4 entry of the table (family 19h with AVX-512; the measurements in
/// [`tuning`]).
fn zen4() -> Tuning {
    Tuning {
        no_prefetch_rows: 2,
        no_prefetch_max_x_bytes: 12 << 10,
        pf_packed_bytes: 16 << 10,
        half_stream_pf_bytes: 0,
        f32_multi_pf_bytes: 0,
        f32_no_prefetch_rows: 2,
        pack_f32_max_k: usize::MAX,
        l2_prefetch: true,
        row_major_l2_prefetch: true,
        f32_prefetch_every: 16,
        f32_min_tile_rows: 6,
        f32_tall_rows: 0,
        half_even_split_rows: 0,
        half_tall_rows: 0,
        prefetch_next_block: true,
        f32_phased_min_rows: usize::MAX,
        fast_pf_bytes: 1 << 10,
        fast_next_block: true,
        fast_tall_rows: 0,
        attn_prefetch: true,
        f16_paired_min_rows: 2,
        bf16_paired_min_rows: 2,
        f32_paired_min_rows: usize::MAX,
        paired_xswap_max_rows: 3,
        paired_min_k: 512,
        panel_min_x_bytes: usize::MAX,
        panel_x_bytes: usize::MAX,
        block_bytes: BLOCK_BYTES,
        tasks_per_thread: 4,
        ..Tuning::generic()
    }
}

/// The AMD Zen 5 entry (family 1Ah and later): 1–2-row calls prefetch too (half precision
/// since session 12, f32 since session 13), 8 KiB ahead, and one-row-block calls
/// non-temporally; packed f32 pairs on the passes that find the column block in L2 (session
/// 12); long inputs run in k-panels (session 13, [`tuning`]); f32 calls of several row blocks
/// prefetch 16 KiB ahead, and multi-threaded calls run two column ranges per thread (session
/// 14); packed f32 calls of 9–14 rows run as one tall row block, f32 calls of several row
/// blocks share the next block's prefetch among all passes, and half-precision calls of 9–11
/// rows run as one block of paired tiles, of 12–13 rows as two even blocks (session 16); the
/// fast class streams 8 KiB ahead and runs calls of 9–12 rows as one block (session 17); f32,
/// f16 and bf16 matrices are stored class-major, its one-block calls of 1–3 rows run as 4,
/// f32 ones of 7 or more rows prefetch 12 KiB ahead and half-precision ones 16 KiB at any row
/// count (session 18).
fn zen5() -> Tuning {
    Tuning {
        f32_tall_rows: 14,
        half_even_split_rows: 13,
        half_tall_rows: 11,
        f32_phased_min_rows: 12,
        no_prefetch_rows: 0,
        f32_no_prefetch_rows: 0,
        f32_prefetch_every: 256,
        f32_min_tile_rows: 8,
        pf_packed_bytes: 8 << 10,
        half_stream_pf_bytes: 12 << 10,
        f32_multi_pf_bytes: 16 << 10,
        l2_prefetch: false,
        f32_paired_min_rows: 2,
        panel_min_x_bytes: 32 << 10,
        panel_x_bytes: 16 << 10,
        tasks_per_thread: 2,
        fast_pf_bytes: 8 << 10,
        fast_tall_rows: 12,
        f32_class_major: true,
        f16_class_major: true,
        bf16_class_major: true,
        cm_half_pf_bytes: 16 << 10,
        cm_min_rows: 4,
        cm_wide_pf_rows: 7,
        cm_wide_pf_bytes: 12 << 10,
        ..zen4()
    }
}

/// Every entry of the table, by name (`generic`, `zen4`, `zen5`): a kernel calibration scores
/// each whole before it searches one setting at a time, so that a CPU the table does not name
/// starts from the entry of its nearest relative. Speed-only, like every tuning: any entry is
/// correct on any CPU.
pub fn known_tables() -> [(&'static str, Tuning); 3] {
    [
        ("generic", Tuning::generic()),
        ("zen4", zen4()),
        ("zen5", zen5()),
    ]
}

/// The name of the table entry ([`known_tables`]) that `t` is, `None` for any other tuning (a
/// kernel calibration's, or one with `ARGEN_GEMM_TUNING` overrides); for reports.
pub fn entry_name(t: &Tuning) -> Option<&'static str> {
    known_tables()
        .into_iter()
        .find(|(_, e)| e == t)
        .map(|(name, _)| name)
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
            return if cpu_family() >= 0x1a { zen5() } else { zen4() };
        }
    }
    Tuning::generic()
}
