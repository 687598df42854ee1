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
//! Matrices may instead be stored *class-major* ([`pack_class_major`],
//! [`WRef::F32ClassMajor`] and its siblings, where the CPU's [`Tuning`] says so: f32, f16 and
//! bf16 on Zen 5): tiles of [`CM_NC`] = 32 rows, each stored as,
//! for each lane class `l` of the reduction order below, the 32 rows' elements of columns
//! `l, l + 8, l + 16, …` (one 32-element column after the other), then the tail columns. Its kernels compute the same order as an outer product — one register
//! per input row and 16 outputs holds those outputs' lane `l` — with no lane shuffles and up
//! to [`CM_MR`] = 14 rows per pass over the weights (`class_major.rs`, whose module docs have
//! the measurements).
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
//! **Panels** (AVX-512, row blocks whose inputs exceed [`Tuning::panel_min_x_bytes`]): the
//! tiles of a column block run their `k` loops a panel at a time (`Span`), every tile over
//! one panel before any starts the next, saving their lane accumulators in between, so that a
//! panel's inputs stay in L1 instead of being swept from L2 by every tile (GPT-B's w2 at 6–8
//! rows: 64 KiB of inputs; measurements in [`tuning`]). The accumulators are saved exactly and
//! each lane still sees its FMAs in increasing `k`: the bits do not change.
//!
//! **Tall tiles** (AVX-512 with AVX512VL, packed f32 calls of 9 to [`Tuning::f32_tall_rows`] ≤
//! [`MR_TALL`] = 14 rows): one row block of tiles of up to 14 rows, whose 28 accumulators each
//! hold one column's lanes for a pair of rows; per 8-column step each column's 8 weights are
//! broadcast to both halves of a `zmm` and each pair's inputs come from the paired copy
//! (`avx512::tile_wb`). The call then streams each weight once at up to 7 FLOP per byte, past
//! the ridge point of one core's stream and FMA peak (~6 on Zen 5), where 8-row blocks passed
//! over each column block twice, the first pass bound by memory. Session 16, one Zen 5 core,
//! GPT-B decode-step GEMMs (`… --bench gemm -- 1 7 f32 model rows=9,…,16 'ab=-;f32_tall_rows=14'`,
//! the tunings alternating in one process): 9 / 10 / 11 / 12 / 13 / 14 rows 0.87 / 0.89 / 0.87 /
//! 0.84 / 0.93 / 0.92× the time of the row blocks before (12 rows 15.84 → 13.38 ms); 16 rows
//! unchanged (not tall: a tall first block followed by 8-row blocks measured slower). The
//! kernel must be compiled with AVX512VL: without it LLVM allocated no register past `zmm20`
//! and kept a third of the accumulators on the stack (12 rows 26.9 ms, against 21.4 ms for
//! the 8-row blocks in the same noisy minute). Packed half-precision calls of 9 to
//! [`Tuning::half_tall_rows`] ≤ 12 rows likewise run as one row block, of
//! `avx512::tile_paired` tiles (inputs paired, the line and its swap); 12–13-row ones as two
//! even blocks ([`Tuning::half_even_split_rows`]), not 8 rows and a short pass.
//!
//! **The next column block's prefetch, shared** (AVX-512 f32 calls of several row blocks,
//! [`Tuning::f32_phased_min_rows`]): every pass over a column block but a task's first
//! prefetches its share of the next block into L2 in order, so that each pass after the
//! task's first runs from L2 and the memory stream overlaps all the FMAs rather than the
//! later passes' alone (measurements in [`tuning`]).
//!
//! **Paired inputs** (AVX-512, row blocks of 2 or more rows where the CPU's [`Tuning`] says
//! so: packed f16 and bf16 on Zen 4). The kernel of `avx512::tile` broadcasts each input row's
//! 8-float block into both halves of a `zmm` once per step, and on Zen 4 those broadcasts
//! compete with f16's `vcvtph2ps` for the same pipes. `avx512::tile_paired` instead reads
//! a per-call copy of the inputs in which rows `2p` and `2p + 1` alternate by 8-float blocks
//! (`pair_inputs`), one plain load per pair of rows and step, and pairs it with the widened
//! line and the line with its halves swapped (blocks of 2–3 rows, a single pair: the inputs
//! swapped instead, one shuffle per step rather than two): the same FMAs on the same lanes,
//! moved back into the usual arrangement before the lane tree, so the bits do not change.
//! The 2–3-row gains (the decode step's shape) are in [`tuning`]. Session 11,
//! one Zen 4 core, GPT-B decode-step GEMMs against the build before (`… --bench gemm -- 1 2
//! bf16 f16 model rows=…`, three interleaved rounds, `docs/results/session11/base-vs-4row/`):
//! f16 at 4 / 6 / 8 rows 9.47–9.59 / 12.89–13.03 / 16.66–17.32 ms → 8.37–8.80 / 11.19–11.44 /
//! 14.75–15.34 ms; bf16 8.03–8.05 / 11.31–11.37 / 14.82–15.23 ms → 7.71–7.81 / 11.12–11.30 /
//! 14.59–14.77 ms. It replaced the *staged f16 calls* of sessions 7–10, which widened
//! each column block once into an f32 copy that later row blocks read: with paired inputs f16
//! measured faster unstaged (9 / 16 / 64 rows 21.2–21.6 / 31.4–33.9 / 123.3–127.3 ms staged,
//! 18.2–19.2 / 29.2–30.0 / 116.6–118.3 ms not), and staging was removed. Packed f32 measured
//! 2× slower paired at 6–8 rows and is not paired.
//!
//! # Variants (chosen at run time, all bit-identical)
//! [`Variant::Avx512`] (AVX-512F and VL; Zen 4, Intel Xeon), [`Variant::Avx2`] (AVX2 + FMA + F16C;
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
//! matches it bit for bit (tested in `tests.rs` for every variant the machine runs, f32 / bf16 / f16
//! weights in both layouts, tails, 1–128 rows and 1–3 threads; the others print
//! `SKIPPED <variant>: <reason>`). A row's result is therefore bit-identical whether it is
//! computed alone or in a batch, on any of these CPUs. The opt-in fast class ([`crate::fast`])
//! has its own order.
//!
//! # Files
//! `layout.rs` (the packed layouts), `class_major.rs` (the class-major layout and its
//! kernels), `tune.rs` (speed-only choices per CPU, with their
//! measurements), `avx2.rs`, `avx512.rs`, `neon.rs` (the micro-kernels per instruction set);
//! this file holds the API, the task loops and the portable kernel; `tests.rs` the bit-for-bit
//! tests.

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
    /// f32 weights in the class-major layout of [`pack_class_major`]
    /// (`class_major_len(n, k)` elements; [`Tuning::f32_class_major`]).
    F32ClassMajor(&'a [f32]),
    /// f16 weights in the class-major layout of [`pack_class_major_f16`]
    /// (`class_major_len(n, k)` elements; [`Tuning::f16_class_major`]).
    F16ClassMajor(&'a [f16]),
    /// bf16 weights in the class-major layout of [`pack_class_major_bf16`]
    /// (`class_major_len(n, k)` elements; [`Tuning::bf16_class_major`]).
    BF16ClassMajor(&'a [bf16]),
}

mod class_major;
mod layout;
mod tune;

pub use class_major::{
    class_major_index, class_major_index_bf16, class_major_len, pack_class_major,
    pack_class_major_bf16, pack_class_major_f16, CM_MR, CM_NC,
};
pub use layout::{pack, pack_bf16, packed_index, packed_index_bf16, packed_len};
#[cfg(target_arch = "x86_64")]
use tune::prefetch;
pub use tune::{
    candidate, compose, entry_name, fast_search_space, known_tables, search_space, set_tuning,
    tuning, Tuning, SPEC_KEYS,
};
use tune::{PF_NTA, PF_T0, PF_T1, PF_T1_EVERY, PF_T1_PHASED};

/// Columns (weight rows) per micro-kernel tile.
pub const NR: usize = 4;
/// Most input rows per micro-kernel tile of the AVX2, NEON and portable variants.
pub const MR: usize = 3;
/// Most input rows per micro-kernel tile of the AVX-512 variant (32 vector registers).
pub const MR_WIDE: usize = 8;
/// Most input rows per *tall* tile (`avx512::tile_wb`): a packed f32 call of more than
/// [`MR_WIDE`] and at most [`Tuning::f32_tall_rows`] rows runs as one row block of them (7
/// pairs of rows × [`NR`] columns = 28 accumulators).
pub const MR_TALL: usize = 14;
/// Most input rows per tall tile of packed half precision ([`avx512::tile_paired`]: 6 pairs of
/// rows × 4 accumulators, the line and its swap, one input load).
const MR_HALF_TALL: usize = 12;
/// Rows of a tile's sums (`acc`) as the kernels hand them over: [`MR_TALL`] rounded up to the
/// lane tree's groups of four rows.
const MR_ACC: usize = 16;
/// Target bytes of weights per column block (kept in L2 while every row block passes over it)
/// unless the CPU's [`Tuning::block_bytes`] says otherwise.
const BLOCK_BYTES: usize = 192 << 10;
/// Prefetch distance past the next tile's offset (row-major weights), in bytes.
const PF_BYTES: usize = 64;
/// Prefetch distance ahead in the tile stream (packed weights), in bytes, unless the CPU's
/// [`Tuning`] says otherwise.
const PF_PACKED_BYTES: usize = 1024;

/// An exact kernel variant: every variant computes the module's reduction order bit for bit,
/// so the choice only changes speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Scalar `mul_add` code with the 8-lane structure (any CPU).
    Portable,
    /// AVX2 + FMA + F16C: `MR × NR` tiles of 8-lane `ymm` accumulators.
    Avx2,
    /// AVX-512F and AVX512VL (plus AVX2/FMA/F16C for tails): each `zmm` accumulator holds the
    /// 8 lanes of two output columns, tiles of up to [`MR_WIDE`] rows × [`NR`] columns (up to
    /// [`MR_TALL`] in tall and paired tiles). VL because LLVM allocates no register past
    /// `zmm20` in the larger tiles without it (every AVX-512 CPU since Skylake-SP and Zen 4 has
    /// it; one without falls back to [`Variant::Avx2`], the same bits).
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
                || !std::is_x86_feature_detected!("avx512f")
                || !std::is_x86_feature_detected!("avx512vl"))
            .then_some("the CPU lacks AVX-512F or AVX512VL (or AVX2/FMA/F16C/POPCNT)"),
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
    gemm_run(
        isa,
        Pairing::tuned(),
        workers,
        tasks,
        x,
        rows,
        k,
        w,
        n,
        bias,
        out,
    )
}

/// [`gemm_isa`] with the given [`Pairing`].
#[allow(clippy::too_many_arguments)]
fn gemm_run(
    isa: Variant,
    pairing: Pairing,
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
        WRef::F32ClassMajor(s) => (s.len(), class_major_len(n, k)),
        WRef::F16ClassMajor(s) => (s.len(), class_major_len(n, k)),
        WRef::BF16ClassMajor(s) => (s.len(), class_major_len(n, k)),
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
    let tuned = tuning();
    match w {
        WRef::F32ClassMajor(s) => {
            return class_major::gemm(isa, &tuned, workers, tasks, x, rows, k, s, n, bias, out)
        }
        WRef::F16ClassMajor(s) => {
            return class_major::gemm(isa, &tuned, workers, tasks, x, rows, k, s, n, bias, out)
        }
        WRef::BF16ClassMajor(s) => {
            return class_major::gemm(isa, &tuned, workers, tasks, x, rows, k, s, n, bias, out)
        }
        _ => {}
    }
    // A call in which some row block runs paired gets a number of its own: each thread that
    // runs one of its tasks builds its own paired copy of the inputs once for that number
    // (`task`), so that no thread waits for another's copy or reads it from another core.
    let paired = |mr: usize| match w {
        WRef::F32Packed(_) => pairs_block::<f32>(&tuned, isa, &pairing, rows, mr),
        WRef::BF16Packed(_) => pairs_block::<bf16>(&tuned, isa, &pairing, rows, mr),
        WRef::F16Packed(_) => pairs_block::<f16>(&tuned, isa, &pairing, rows, mr),
        _ => false,
    };
    let split = match w {
        WRef::F32Packed(_) => split_of::<f32>(&tuned, isa, &pairing, true, rows),
        WRef::BF16Packed(_) => split_of::<bf16>(&tuned, isa, &pairing, true, rows),
        WRef::F16Packed(_) => split_of::<f16>(&tuned, isa, &pairing, true, rows),
        _ => Split::default(),
    };
    let pair_call = if split.tall > 0
        || (k >= pairing.min_k && row_blocks(rows, isa.mr(), split).any(|(_, mr)| paired(mr)))
    {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    } else {
        0
    };
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
                pairing,
                t: tuned,
                pair_call,
                threads: workers.threads(),
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
                    WRef::F16Packed(s) => task::<_, true>(&a, s),
                    WRef::BF16Packed(s) => task::<_, true>(&a, s),
                    WRef::BF16Amx(_)
                    | WRef::F32ClassMajor(_)
                    | WRef::F16ClassMajor(_)
                    | WRef::BF16ClassMajor(_) => unreachable!("handled above"),
                }
            }
        }
    };
    workers.run(tasks, run);
}

/// How a call's rows split into row blocks beyond [`row_block`]'s rule ([`split_of`]).
#[derive(Clone, Copy, Debug, Default)]
struct Split {
    /// One block of all the call's rows in tall tiles where not 0 ([`tall_rows`]).
    tall: usize,
    /// A call of more than `mr` and at most this many rows runs as two blocks of equal size
    /// (to a row) rather than `mr` rows and the rest ([`Tuning::half_even_split_rows`]).
    even: usize,
}

/// The [`Split`] of a call of `rows` rows with weights of type `W` (`packed` or not):
/// [`tall_rows`], and for packed half precision on AVX-512 the CPU's
/// [`Tuning::half_even_split_rows`].
fn split_of<W: Elem>(
    t: &Tuning,
    isa: Variant,
    pairing: &Pairing,
    packed: bool,
    rows: usize,
) -> Split {
    Split {
        tall: tall_rows::<W>(isa, pairing, packed, rows),
        even: if W::BYTES == 2 && packed && isa == Variant::Avx512 {
            t.half_even_split_rows
        } else {
            0
        },
    }
}

/// The row blocks of a call of `rows` rows with tiles of at most `mr` rows, as `(first row,
/// rows)` ([`next_row_block`]).
fn row_blocks(rows: usize, mr: usize, split: Split) -> impl Iterator<Item = (usize, usize)> {
    let mut r = 0;
    std::iter::from_fn(move || {
        (r < rows).then(|| {
            let m = next_row_block(r, rows, mr, split);
            r += m;
            (r - m, m)
        })
    })
}

/// The rows of the row block at row `r` of a call of `rows` rows ([`row_blocks`]): one tall
/// block, two even ones, or [`row_block`]'s.
#[inline]
fn next_row_block(r: usize, rows: usize, mr: usize, split: Split) -> usize {
    if r == 0 && split.tall > 0 {
        split.tall
    } else if rows > mr && rows <= split.even && rows < 2 * mr {
        if r == 0 {
            rows.div_ceil(2)
        } else {
            rows - r
        }
    } else {
        row_block(rows - r, mr)
    }
}

/// The rows of a call of `rows` rows with weights of type `W` (`packed` or not) that runs as
/// one *tall* row block ([`avx512::tile_wb`]), 0 where it does not: packed f32 on AVX-512
/// (AVX512VL included, [`Variant::Avx512`]) in calls of more than
/// [`MR_WIDE`] and at most [`Pairing::tall`] (made even, at most [`MR_TALL`]) rows. Such a
/// call streams each weight once for all its rows, where 8-row blocks pass over each column
/// block twice, the first pass bound by memory. A call of more rows runs its row blocks as
/// before: a tall first block followed by the others measured slower ([`tuning`], session
/// 16). An odd call's last row is paired with a copy of itself ([`pair_inputs`]).
///
/// Packed half precision likewise up to [`Pairing::half_tall`] (at most [`MR_HALF_TALL`])
/// rows, in [`avx512::tile_paired`]'s arrangement (inputs paired, the line and its swap).
fn tall_rows<W: Elem>(isa: Variant, pairing: &Pairing, packed: bool, rows: usize) -> usize {
    let tall = if W::BYTES == 4 {
        pairing.tall.min(MR_TALL) / 2 * 2
    } else {
        pairing.half_tall.min(MR_HALF_TALL)
    };
    let on = packed && isa == Variant::Avx512 && rows > MR_WIDE && rows <= tall;
    if on {
        rows
    } else {
        0
    }
}

/// Rows that a packed tile of `mr` rows is padded to, in a call of `rows` rows: a packed
/// f32 call of a single row block of 3 or more rows, streaming from memory, runs tiles of at
/// least `f32_min_tile_rows` rows on AVX-512. The padding rows repeat the last input row and
/// are neither summed into nor stored with the real rows, so the bits do not change;
/// measured faster ([`tuning`]). 0: no padding.
fn pad_rows<W: Elem>(t: &Tuning, isa: Variant, rows: usize, mr: usize) -> usize {
    if W::BYTES == 4 && isa == Variant::Avx512 && mr > 2 && rows <= isa.mr() {
        t.f32_min_tile_rows.min(MR_WIDE)
    } else {
        0
    }
}

/// Whether a row block of `mr` rows of a packed call of `rows` rows (from memory) with
/// weights of type `W` takes its inputs in pairs ([`avx512::tile_paired`]): AVX-512, at least
/// [`Pairing::min_rows`] rows, and not padded; packed f32 only in calls of several row
/// blocks, whose later passes over a column block pair (`task`).
fn pairs_block<W: Elem>(
    t: &Tuning,
    isa: Variant,
    pairing: &Pairing,
    rows: usize,
    mr: usize,
) -> bool {
    cfg!(target_arch = "x86_64")
        && isa == Variant::Avx512
        && mr >= pairing.min_rows::<W>()
        && pad_rows::<W>(t, isa, rows, mr) <= mr
        && (W::BYTES != 4 || rows > isa.mr())
}

/// How far ahead in the packed tile stream calls with weights of type `W` prefetch, in bytes:
/// [`Tuning::half_stream_pf_bytes`] for half precision in a call of one row block (`single`)
/// and [`Tuning::f32_multi_pf_bytes`] for f32 in a call of several, where set, else
/// [`Tuning::pf_packed_bytes`].
fn pf_bytes<W: Elem>(t: &Tuning, single: bool) -> usize {
    if W::BYTES == 2 && single && t.half_stream_pf_bytes > 0 {
        t.half_stream_pf_bytes
    } else if W::BYTES == 4 && !single && t.f32_multi_pf_bytes > 0 {
        t.f32_multi_pf_bytes
    } else {
        t.pf_packed_bytes
    }
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
    /// Which AVX-512 row blocks take their inputs in pairs ([`avx512::tile_paired`]).
    pairing: Pairing,
    /// The call's tuning, read once when it starts ([`set_tuning`] may change the global one
    /// meanwhile; every task of the call must agree, e.g. on which blocks pair).
    t: Tuning,
    /// The call's number where some row block pairs (each thread builds its paired copy of
    /// the inputs once per number, [`PAIRS`]); 0: no row block pairs.
    pair_call: u64,
    /// Threads of the pool the call runs on ([`Tuning::f32_phased_min_rows`] counts rows per
    /// thread).
    threads: usize,
}

/// The smallest AVX-512 row block, per weight type, whose packed tiles run with paired
/// inputs ([`avx512::tile_paired`]; `usize::MAX`: never). Bit-identical either way; from
/// [`Tuning`], or forced by the tests.
#[derive(Clone, Copy, Debug)]
struct Pairing {
    f32: usize,
    bf16: usize,
    f16: usize,
    /// Paired blocks of at most this many rows swap their inputs rather than the line
    /// (`XSWAP` of [`avx512::tile_paired`]).
    xswap_max: usize,
    /// Calls with fewer input columns do not pair.
    min_k: usize,
    /// AVX-512 row blocks of packed weights whose inputs take more bytes run in panels
    /// ([`Tuning::panel_min_x_bytes`]) ...
    panel_min_x_bytes: usize,
    /// ... of inputs of at most this many bytes ([`Tuning::panel_x_bytes`]).
    panel_x_bytes: usize,
    /// Packed f32 calls of more than [`MR_WIDE`] and at most this many rows run as one row
    /// block of tall tiles ([`Tuning::f32_tall_rows`], [`tall_rows`]).
    tall: usize,
    /// ... and packed half-precision ones ([`Tuning::half_tall_rows`]).
    half_tall: usize,
}

impl Pairing {
    /// The CPU's choice ([`Tuning::f32_paired_min_rows`] and its siblings).
    fn tuned() -> Pairing {
        let t = tuning();
        Pairing {
            f32: t.f32_paired_min_rows,
            bf16: t.bf16_paired_min_rows,
            f16: t.f16_paired_min_rows,
            xswap_max: t.paired_xswap_max_rows,
            min_k: t.paired_min_k,
            panel_min_x_bytes: t.panel_min_x_bytes,
            panel_x_bytes: t.panel_x_bytes,
            tall: t.f32_tall_rows,
            half_tall: t.half_tall_rows,
        }
    }

    /// The threshold for weights of type `W` (at least 2: a pair).
    fn min_rows<W: Elem>(&self) -> usize {
        let m = match (W::BYTES, W::PAIRED) {
            (4, _) => self.f32,
            (_, true) => self.bf16,
            _ => self.f16,
        };
        m.max(2)
    }
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

/// A tile call's share of its `k` loop, for calls that run it in *panels*
/// ([`Tuning::panel_x_bytes`]): the 8-column steps from column `i0` to `i1` (multiples of 8,
/// `i1 ≤ ⌊k/8⌋·8`). A span that starts past 0 resumes from the lane accumulators saved at `st`;
/// one that ends before `⌊k/8⌋·8` saves them there and returns without finishing (its `acc` is
/// not written). Saving and reloading a lane accumulator is exact, and each lane still sees its
/// FMAs in increasing `k`, so a tile run in panels computes the same bits.
#[derive(Clone, Copy)]
struct Span {
    i0: usize,
    i1: usize,
    /// Only the AVX-512 kernels run in panels, so elsewhere nothing reads it.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    st: *mut [f32; 16],
    /// With the prefetch kind [`PF_T1_PHASED`]: the pass is one of `2^pf_shift` that share
    /// the next column block; every `2^pf_shift`-th step prefetches the step's bytes of its
    /// share, at `pf + o / 2^pf_shift` past the tile's start (`o`: the step's offset in the
    /// tile; AVX-512 kernels only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pf_shift: u8,
}

impl Span {
    /// The whole loop (`⌊k/8⌋·8` columns), nothing saved, no shared prefetch.
    fn whole(k: usize) -> Span {
        Span {
            i0: 0,
            i1: k / 8 * 8,
            st: std::ptr::null_mut(),
            pf_shift: 0,
        }
    }
}

/// Saved lane accumulators of one tile between panels: [`MR_WIDE`] rows × 2 `zmm`, or up to
/// [`MR_TALL`]` / 2` pairs × 4 plus an odd row's 2 (at [`ODD_LANES`]).
const SPAN_LANES: usize = 2 * MR_TALL + 2;
/// Where a paired tile saves its odd row's two lane accumulators ([`avx512::tile_paired`]).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const ODD_LANES: usize = 2 * MR_TALL;

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
    acc: &[[f32; NR]; MR_ACC],
) {
    #[cfg(target_arch = "x86_64")]
    if a.isa == Variant::Avx512 && nr == NR {
        // SAFETY: rows r..r+mr and columns j..j+NR lie in the output and in this task's range
        // (as below); `a.isa` is supported by the CPU; the bias, if any, holds `n` values.
        unsafe {
            avx512::write_rows(
                a.out.0.add(r * a.n + j),
                a.n,
                mr,
                a.bias.map(|b| b[j..j + NR].as_ptr()),
                acc,
            )
        };
        return;
    }
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
    let t = &a.t;
    let cb = (t.block_bytes / (k * W::BYTES).max(1) / NR).max(1) * NR;
    let split = split_of::<W>(t, a.isa, &a.pairing, PACKED, a.rows);
    let tall = split.tall;
    let first = next_row_block(0, a.rows, a.isa.mr(), split);
    // One row block: the weights are streamed once and not needed again (module docs).
    let nta = PACKED && first == a.rows;
    // Row blocks of the call, for the phased prefetch of the next column block (f32,
    // [`Tuning::f32_phased_min_rows`]); with it every pass over a column block but the task's
    // first finds the block in L2, and the first passes over later blocks pair as the others
    // do.
    let blocks = row_blocks(a.rows, a.isa.mr(), split).count();
    let phased = PACKED
        && W::BYTES == 4
        && a.rows >= t.f32_phased_min_rows.saturating_mul(a.threads)
        && a.isa == Variant::Avx512
        && blocks > 1;
    let pad_to = |mr: usize| {
        if PACKED {
            pad_rows::<W>(t, a.isa, a.rows, mr)
        } else {
            0
        }
    };
    // Whether the row block of `mr` rows at row `r` takes its inputs in pairs, from this
    // thread's paired copy of the call's inputs, built at the thread's first task of the call.
    // Packed f32 pairs only on later passes over a column block, which find it in L2 and are
    // bound by their FMAs; the first pass streams it from memory, and paired measured slower
    // there (`Tuning::f32_paired_min_rows`).
    // A tall block always runs paired (`avx512::tile_wb`).
    let paired = |r: usize, mr: usize| {
        PACKED
            && a.pair_call != 0
            && ((r == 0 && tall > 0)
                || (pairs_block::<W>(t, a.isa, &a.pairing, a.rows, mr)
                    && (W::BYTES != 4 || r > 0 || phased)))
    };
    let mut slot = PairSlot::default();
    if a.pair_call != 0 {
        slot = PAIRS.with(|c| c.take());
        if slot.call != a.pair_call {
            pair_inputs(a.x, a.rows, k, a.isa.mr(), split, &mut slot.buf, paired);
            slot.call = a.pair_call;
        }
    }
    let pairs_at = slot.buf.as_ref().map_or(std::ptr::null(), |b| b.as_ptr());
    let mut c0 = a.n0;
    while c0 < a.n1 {
        let c1 = (c0 + cb).min(a.n1);
        let mut r = 0;
        let mut bi = 0usize;
        while r < a.rows {
            let mr = next_row_block(r, a.rows, a.isa.mr(), split);
            let tall_now = r == 0 && tall > 0;
            // Prefetch offset in elements past the current weight offset (0: none in
            // effect), see the kernel. Packed: ahead in the tile stream. Row-major: the next
            // tile's rows. The first pass over a column block streams it from memory. Later
            // passes find the block in L2: prefetching into L1 then helps half-precision tiles
            // (f16 at 32 rows 29 → 57 GFLOP/s) but evicts the f32 tile in use (8 KiB rows at
            // k = 2048; f32 at 32 rows 64 → 47 GFLOP/s), so f32 skips it.
            // Half-precision calls whose inputs no longer stay in L1 beside the stream
            // prefetch ahead whatever their row count ([`Tuning::no_prefetch_max_x_bytes`]).
            let no_pf_rows = if W::BYTES == 2 && a.rows * k * 4 > t.no_prefetch_max_x_bytes {
                0
            } else if W::BYTES == 4 {
                t.f32_no_prefetch_rows
            } else {
                t.no_prefetch_rows
            };
            // The second row block of a column block finds the block in L2 and is bound by
            // its FMAs; it prefetches the next column block (the same offsets, `c1 - c0`
            // columns further on) so that memory works while the FMAs do ([`tuning`]).
            let next_block =
                PACKED && !phased && t.prefetch_next_block && r > 0 && r == first && c1 < a.n1;
            // The phased prefetch ([`Tuning::f32_phased_min_rows`]): the passes that share the next
            // block's lines, and this pass's index among them (the first pass over the task's
            // first block streams it instead).
            // Only a power of two of them share it (the others prefetch nothing): share `b` of
            // `2^sh` is the `b`-th `2^-sh` of the next block, read in order at `2^-sh` of
            // the pass's own pace.
            let sharers = if c0 == a.n0 { blocks - 1 } else { blocks };
            let sh = if sharers == 0 {
                0
            } else {
                sharers.ilog2().min(3)
            };
            let sharer = if c0 == a.n0 { bi.wrapping_sub(1) } else { bi };
            let phased_now = phased && c1 < a.n1 && sharer < (1 << sh);
            // Prefetching ahead in the packed tile stream (the pass streams from memory): with
            // the phased prefetch, only the first pass over a task's first block.
            let stream_ahead =
                PACKED && !next_block && a.rows > no_pf_rows && (!phased || (c0 == a.n0 && r == 0));
            let pf = if next_block || phased_now {
                (c1 - c0) * k
            } else if PACKED && a.rows <= no_pf_rows {
                // The line being loaded: no prefetch ahead, but not a no-op either. With a
                // single row block this is `prefetchnta` of the line the kernel loads next,
                // and on Zen 4 that hint is worth keeping: without the instruction the packed
                // f32 stream measured 21 instead of 28–30 GB/s at 1 row (`… --bench gemm -- 1
                // 3 f32p rows=1,2`, same load), presumably because the non-temporal fill
                // keeps the streamed lines out of L2 and L3 (no victim traffic).
                0
            } else if stream_ahead {
                pf_bytes::<W>(t, nta) / W::BYTES
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
            let hint = if phased_now {
                PF_T1_PHASED
            } else if next_block {
                PF_T1_EVERY
            } else if !PACKED {
                if t.row_major_l2_prefetch && a.rows > 2 {
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
            } else if t.l2_prefetch {
                PF_T1
            } else if nta {
                PF_NTA
            } else {
                PF_T0
            };
            let pad_to = pad_to(mr);
            // (The first pass over a task's first block streams it, unpaired.)
            let pair_now = paired(r, mr) && !(phased && r == 0 && c0 == a.n0);
            let xswap_now = mr <= a.pairing.xswap_max;
            // Panels: a row block whose inputs would not stay in L1 beside the weights runs
            // its tiles' `k` loops a panel at a time, every tile of the column block over one
            // panel before the next, so that the panel's inputs stay in L1 ([`Span`],
            // [`Tuning::panel_x_bytes`]). A pass that streams the block from memory then
            // reads it chunk by chunk (a tile's share of a panel), and prefetches the chunk it
            // will read `d` chunks later instead of the tile stream ahead.
            let kp =
                if PACKED && a.isa == Variant::Avx512 && mr * k * 4 > a.pairing.panel_min_x_bytes {
                    // Panels of equal length (to 8 columns), as few as keep each panel's inputs
                    // within the limit.
                    let n = (mr * k * 4).div_ceil(a.pairing.panel_x_bytes.max(1));
                    kb.div_ceil(n).div_ceil(8).max(1) * 8
                } else {
                    kb.max(8)
                };
            let panels = kb.div_ceil(kp).max(1);
            let block_tiles = (c1 - c0).div_ceil(NR);
            let chunk_pf = panels > 1 && stream_ahead;
            let chunks_ahead = pf_bytes::<W>(t, nta).div_ceil(kp * NR * W::BYTES).max(1);
            // This thread's saved lanes, one set per tile of the block (grown once, kept).
            let mut spans = Vec::new();
            if panels > 1 {
                spans = SPANS.with(|s| s.take());
                if spans.len() < block_tiles {
                    spans.resize(block_tiles, Lanes([[0.0; 16]; SPAN_LANES]));
                }
            }
            // A tile's sums (every kernel writes rows 0..mr before `write_tile` reads them), on
            // a cache line of their own ([`Sums`]).
            let mut sums = Sums([[0f32; NR]; MR_ACC]);
            let acc = &mut sums.0;
            for pi in 0..panels {
                let i0 = pi * kp;
                let i1 = ((pi + 1) * kp).min(kb);
                let last = pi + 1 == panels;
                let mut j = c0;
                let mut ti = 0;
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
                    let pf_shift = if phased_now { sh as u8 } else { 0 };
                    let span = if panels > 1 {
                        Span {
                            i0,
                            i1,
                            st: spans[ti].0.as_mut_ptr(),
                            pf_shift,
                        }
                    } else {
                        Span {
                            pf_shift,
                            ..Span::whole(k)
                        }
                    };
                    // The chunk read `chunks_ahead` chunks later: of a later tile of this
                    // panel, of the next panel, or of the next column block's first panel.
                    let pf = if phased_now {
                        // This tile's share of the next block, from its start: the share's
                        // start plus the tile's offset in this block scaled by 2^-sh (whole
                        // 16-element pieces), less the tile's own start.
                        let share = ((c1 - c0) * k) >> sh;
                        let into = (((j - c0) * k) >> sh) / 16 * 16;
                        (c1 * k + sharer * share + into).wrapping_sub(j * k)
                    } else if chunk_pf {
                        let s = pi * block_tiles + ti + chunks_ahead;
                        let target = if s < panels * block_tiles {
                            (c0 + s % block_tiles * NR) * k + s / block_tiles * kp * NR
                        } else {
                            (c1 + (s - panels * block_tiles) * NR) * k
                        };
                        target.wrapping_sub(j * k + i0 * NR)
                    } else {
                        pf
                    };
                    let xp = |i: usize| a.x[(r + i.min(mr - 1)) * k..].as_ptr();
                    // Pair p of the row block in the paired copy (only read for p < mr / 2).
                    let xps: [*const f32; MR_ACC / 2] =
                        std::array::from_fn(|p| pairs_at.wrapping_add((r + 2 * p) * k));
                    // SAFETY: every x pointer addresses k floats, every block pointer kb/8
                    // blocks `step` apart and every tail pointer k - kb elements (asserted
                    // lengths in gemm_isa; packed tiles are whole), and `a.isa` is supported
                    // by the CPU (`gemm_isa`'s contract). With `pair_now` the pairs' copies
                    // hold 2·kb floats each (`pair_inputs`). A span's lanes are this tile's
                    // (`spans[ti]`, SPAN_LANES × 16 floats), and panels run only on AVX-512.
                    // A tall block runs only on AVX-512 (AVX512VL included, `Variant::Avx512`),
                    // and every pair of its rows has its copy (an odd last row's with itself,
                    // in the copy's spare row).
                    unsafe {
                        let isa = a.isa;
                        macro_rules! call {
                            ($m:literal, $h:expr, $xs:ident) => {
                                if pair_now && xswap_now {
                                    W::tile_paired::<$m, $h, true>(
                                        isa, $xs, xps, &tp, k, span, pf, acc,
                                    )
                                } else if pair_now {
                                    W::tile_paired::<$m, $h, false>(
                                        isa, $xs, xps, &tp, k, span, pf, acc,
                                    )
                                } else {
                                    W::tile::<$m, PACKED, $h>(isa, $xs, &tp, k, span, pf, acc)
                                }
                            };
                        }
                        macro_rules! go {
                            ($m:literal) => {{
                                let xs: [*const f32; $m] = std::array::from_fn(xp);
                                match hint {
                                    PF_NTA => call!($m, PF_NTA, xs),
                                    PF_T1 => call!($m, PF_T1, xs),
                                    PF_T1_EVERY => call!($m, PF_T1_EVERY, xs),
                                    PF_T1_PHASED => call!($m, PF_T1_PHASED, xs),
                                    _ => call!($m, PF_T0, xs),
                                }
                            }};
                        }
                        // A tall block: its rows made even (an odd block's last row paired with a
                        // copy of itself, whose sums are not stored).
                        macro_rules! tall {
                            ($m:literal) => {{
                                let xs: [*const f32; $m] = std::array::from_fn(xp);
                                match hint {
                                    PF_NTA => W::tile_tall::<$m, PF_NTA>(
                                        isa, xs, xps, &tp, k, span, pf, acc,
                                    ),
                                    PF_T1 => W::tile_tall::<$m, PF_T1>(
                                        isa, xs, xps, &tp, k, span, pf, acc,
                                    ),
                                    _ => W::tile_tall::<$m, PF_T0>(
                                        isa, xs, xps, &tp, k, span, pf, acc,
                                    ),
                                }
                            }};
                        }
                        // A tall half-precision block: paired tiles of up to 12 rows.
                        macro_rules! htall {
                            ($m:literal) => {{
                                let xs: [*const f32; $m] = std::array::from_fn(xp);
                                match hint {
                                    PF_NTA => W::tile_paired::<$m, PF_NTA, false>(
                                        isa, xs, xps, &tp, k, span, pf, acc,
                                    ),
                                    PF_T1 => W::tile_paired::<$m, PF_T1, false>(
                                        isa, xs, xps, &tp, k, span, pf, acc,
                                    ),
                                    _ => W::tile_paired::<$m, PF_T0, false>(
                                        isa, xs, xps, &tp, k, span, pf, acc,
                                    ),
                                }
                            }};
                        }
                        if tall_now && W::BYTES == 2 {
                            match mr {
                                9 => htall!(9),
                                10 => htall!(10),
                                11 => htall!(11),
                                _ => htall!(12),
                            }
                        } else if tall_now {
                            match mr.div_ceil(2) * 2 {
                                10 => tall!(10),
                                12 => tall!(12),
                                _ => tall!(14),
                            }
                        } else {
                            tile_rows!(mr.max(pad_to), go)
                        }
                    }
                    if last {
                        // SAFETY: rows r..r+mr and columns j..j+nr are this task's (see above).
                        unsafe { write_tile(a, r, mr, j, nr, acc) };
                    }
                    j += nr;
                    ti += 1;
                }
            }
            if panels > 1 {
                SPANS.with(|s| s.set(spans));
            }
            r += mr;
            bi += 1;
        }
        c0 = c1;
    }
    if a.pair_call != 0 {
        PAIRS.with(|c| c.set(slot));
    }
}

thread_local! {
    /// This thread's paired copy of the inputs of the call it last ran a task of
    /// ([`pair_inputs`]); the buffer is replaced by a larger one when a call needs more, never
    /// shrunk. It comes from the huge-page arena ([`crate::hugemem`]), like the weights.
    ///
    /// Why one per thread: a copy made by the calling thread before the parallel section
    /// made the others wait for it and read it from another core's cache. Two Zen 4 cores,
    /// GPT-B step's GEMMs (`… --bench gemm -- 2 2 bf16 f16 model rows=4,8,16,64`, four rounds):
    /// bf16 paired from that copy was 5–10 % slower than unpaired (64 rows 129.8–130.8 against
    /// 119.4–121.3 ms), and f16 gained only at 64 rows.
    static PAIRS: std::cell::Cell<PairSlot> = const {
        std::cell::Cell::new(PairSlot { call: 0, buf: None })
    };
}

/// A tile's sums as the kernels hand them to [`write_tile`], aligned to whole cache lines.
///
/// Why: the AVX-512 lane tree stores them four rows (64 bytes) at a time and
/// `avx512::write_rows` loads them back the same way; a 64-byte store that straddles two
/// lines is not forwarded to the load that follows it, which then waits for the store to
/// reach the cache. Where a plain array falls on the stack is up to the build: the first build
/// of `write_rows` (session 17, commit b6e4dc3) took 134–144 ms for the decode bench's f32
/// 128-row verification against 117–122 ms for the build before it, in six alternating runs,
/// while the gemm bench gained; the same commit built in another checkout measured 117–129 ms
/// (`docs/results/session17/variants/alignment.txt`). Aligned, it cannot fall either way.
#[repr(C, align(64))]
struct Sums([[f32; NR]; MR_ACC]);

thread_local! {
    /// This thread's saved lane accumulators for the tiles of a column block run in panels
    /// ([`Span`]); grown when a block needs more, never shrunk.
    static SPANS: std::cell::Cell<Vec<Lanes>> = const { std::cell::Cell::new(Vec::new()) };
}

/// One tile's saved lane accumulators ([`Span`]), each `zmm` on a cache line of its own.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Lanes([[f32; 16]; SPAN_LANES]);

/// A thread's paired copy ([`PAIRS`]): the number of the call it holds the inputs of (0:
/// none), and the buffer.
#[derive(Default)]
struct PairSlot {
    call: u64,
    buf: Option<Buf<f32>>,
}

/// Fills `dst` (replaced by a buffer of `rows·k` floats if absent or shorter) with the
/// paired copy of the inputs `x` (`rows × k`) for every row block (tiles of at most `mr`
/// rows, [`row_blocks`]) of which `paired(first row, rows)` holds: for rows `r` and `r + 1` of such a
/// block (`r` an even offset into it), the `⌊k/8⌋` blocks of 8 floats of row `r` and of row
/// `r + 1` alternate from `dst[r·k]` on (`2·⌊k/8⌋·8 ≤ 2k` floats, within the two rows'
/// share). An odd last row of a block is not copied ([`avx512::tile_paired`] reads it in
/// place), except in a tall block ([`tall_rows`]: the call's only one), where it is paired
/// with a copy of itself (the buffer holds one row more; the copy's sums are not stored, so
/// any readable values would give the same bits).
fn pair_inputs(
    x: &[f32],
    rows: usize,
    k: usize,
    mr: usize,
    split: Split,
    dst: &mut Option<Buf<f32>>,
    paired: impl Fn(usize, usize) -> bool,
) {
    let tall = split.tall;
    let kb = k / 8 * 8;
    // One row more: an odd tall block's last row is paired with a copy of itself there.
    let need = (rows + 1) * k;
    let dst = match dst {
        Some(b) if b.len() >= need => b,
        _ => dst.insert(Buf::zeroed(need)),
    };
    for (r, m) in row_blocks(rows, mr, split) {
        if paired(r, m) {
            // A tall block pairs every row (`avx512::tile_wb`); others read an odd last row
            // in place (`avx512::tile_paired`).
            let end = if r == 0 && tall > 0 { r + m } else { r + m - 1 };
            for p in (r..end).step_by(2) {
                let q = (p + 1).min(r + m - 1);
                let (x0, x1) = (&x[p * k..p * k + kb], &x[q * k..q * k + kb]);
                let out = &mut dst[p * k..p * k + 2 * kb];
                #[cfg(target_arch = "x86_64")]
                if best_variant() == Variant::Avx512 {
                    // SAFETY: the CPU has AVX-512F (`best_variant`).
                    unsafe { avx512::interleave(x0, x1, out) };
                    continue;
                }
                for ((o, b0), b1) in out
                    .chunks_exact_mut(16)
                    .zip(x0.chunks_exact(8))
                    .zip(x1.chunks_exact(8))
                {
                    o[..8].copy_from_slice(b0);
                    o[8..].copy_from_slice(b1);
                }
            }
        }
    }
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
        span: Span,
        pf: usize,
        acc: &mut [[f32; NR]; MR_ACC],
    );

    /// [`Kernel::tile`] of a packed tile with the inputs also given in pairs (`xp`,
    /// [`avx512::tile_paired`]); the same bits.
    ///
    /// # Safety
    /// As [`Kernel::tile`] with `PACKED`; `isa` is [`Variant::Avx512`]; `xp[p]` for
    /// `p < M / 2` addresses the paired copy of rows `2p`, `2p + 1` ([`pair_inputs`]);
    /// `XSWAP` as there.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_paired<const M: usize, const HINT: u8, const XSWAP: bool>(
        isa: Variant,
        x: [*const f32; M],
        xp: [*const f32; MR_ACC / 2],
        w: &TilePtrs<Self>,
        k: usize,
        span: Span,
        pf: usize,
        acc: &mut [[f32; NR]; MR_ACC],
    );

    /// [`Kernel::tile`] of a packed tile in a tall block ([`avx512::tile_wb`]): `M` even,
    /// every row in a pair of the paired copy (`xp`); the same bits.
    ///
    /// # Safety
    /// As [`Kernel::tile_paired`] with `M ≤ MR_TALL` even and `xp[p]` for every `p < M / 2`;
    /// only where [`tall_rows`] chose it (AVX-512 with AVX512VL, packed f32).
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_tall<const M: usize, const HINT: u8>(
        isa: Variant,
        x: [*const f32; M],
        xp: [*const f32; MR_ACC / 2],
        w: &TilePtrs<Self>,
        k: usize,
        span: Span,
        pf: usize,
        acc: &mut [[f32; NR]; MR_ACC],
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
                span: Span,
                pf: usize,
                acc: &mut [[f32; NR]; MR_ACC],
            ) {
                // The prefetch distance only steers the x86 kernels.
                #[cfg(not(target_arch = "x86_64"))]
                let _ = pf;
                // Only the AVX-512 kernels run in panels (`task`).
                debug_assert!(isa == Variant::Avx512 || (span.i0 == 0 && span.i1 == k / 8 * 8));
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: forwarded from the caller's contract (Avx2 only when supported).
                    Variant::Avx2 => unsafe { avx2::$avx::<M, PACKED, HINT>(x, w, k, pf, acc) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: forwarded from the caller's contract (Avx512 only when supported).
                    Variant::Avx512 => unsafe {
                        avx512::tile::<$t, M, PACKED, HINT>(x, w, k, span, pf, acc)
                    },
                    #[cfg(target_arch = "aarch64")]
                    // SAFETY: forwarded from the caller's contract (NEON is baseline).
                    Variant::Neon => unsafe { neon::tile::<$t, M, PACKED>(x, w, k, acc) },
                    // SAFETY: forwarded from the caller's contract.
                    _ => unsafe { portable_tile::<$t, M>(x, w, k, acc) },
                }
            }

            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile_paired<const M: usize, const HINT: u8, const XSWAP: bool>(
                isa: Variant,
                x: [*const f32; M],
                xp: [*const f32; MR_ACC / 2],
                w: &TilePtrs<Self>,
                k: usize,
                span: Span,
                pf: usize,
                acc: &mut [[f32; NR]; MR_ACC],
            ) {
                #[cfg(target_arch = "x86_64")]
                if isa == Variant::Avx512 {
                    // SAFETY: forwarded from the caller's contract (AVX-512 supported).
                    unsafe {
                        avx512::tile_paired::<$t, M, HINT, XSWAP>(x, xp, w, k, span, pf, acc)
                    };
                    return;
                }
                let _ = xp;
                // SAFETY: forwarded; the same bits without the pairs.
                unsafe { Self::tile::<M, true, HINT>(isa, x, w, k, span, pf, acc) }
            }

            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile_tall<const M: usize, const HINT: u8>(
                isa: Variant,
                x: [*const f32; M],
                xp: [*const f32; MR_ACC / 2],
                w: &TilePtrs<Self>,
                k: usize,
                span: Span,
                pf: usize,
                acc: &mut [[f32; NR]; MR_ACC],
            ) {
                #[cfg(target_arch = "x86_64")]
                if isa == Variant::Avx512 {
                    // SAFETY: forwarded from the caller's contract (AVX-512 supported).
                    unsafe { avx512::tile_wb::<$t, M, HINT>(x, xp, w, k, span, pf, acc) };
                    return;
                }
                let _ = (isa, x, xp, w, k, span, pf, acc);
                unreachable!("tall tiles run on AVX-512 only (`tall_rows`)");
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
    acc: &mut [[f32; NR]; MR_ACC],
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
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(test)]
mod tests;

/// Tests that set the global tuning ([`set_tuning`]) take turns (any test may read it: the bits
/// cannot change, but a test that checks which tuning is in force could see another's).
#[cfg(test)]
pub(crate) fn setting_tunings() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}
