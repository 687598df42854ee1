//! AVX-512 micro-kernels ([`super::Variant::Avx512`]): each `zmm` accumulator holds the 8 lanes of two output columns.

use super::{Elem, Span, TilePtrs, MR_ACC, NR};
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
                            *t = (*$x[m].add(kk)).mul_add((*$w.tail[j].add(kk - kb)).widen(), *t);
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

    /// The 8-element block at `p` (one column's block of a packed f32 or f16 tile, or of a
    /// row-major row), widened, in both halves of a `zmm` ([`tile_wb`]).
    ///
    /// # Safety
    /// Requires AVX-512F; `p` addresses 8 elements.
    unsafe fn bcast(p: *const Self) -> __m512;

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

    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn bcast(p: *const f32) -> __m512 {
        // SAFETY: 8 floats at p.
        unsafe { _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p)))) }
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

    /// Row-major blocks only: a packed bf16 tile interleaves its columns (`task` runs
    /// [`tile_wb`] on packed f32 alone).
    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn bcast(p: *const bf16) -> __m512 {
        // SAFETY: forwarded (8 elements at p).
        unsafe { Self::pair::<false>(p, p) }
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
        // Not `_mm512_cvtph_ps`: that emits the `{sae}` form, which LLVM neither folds a load
        // into nor allocates past `zmm19` here; in a paired 8-row tile with its finish that
        // spilled accumulators in the loop (f16 8 rows 11.4–11.9 against 6.7–7.1 ms, session
        // 12). The conversion is exact either way.
        _mm512_cvt_roundph_ps::<_MM_FROUND_CUR_DIRECTION>(h)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn bcast(p: *const f16) -> __m512 {
        // SAFETY: 8 halves at p.
        let h = unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(p as *const __m128i)) };
        _mm512_cvt_roundph_ps::<_MM_FROUND_CUR_DIRECTION>(h)
    }
}

/// The steps of a packed tile with `(i / 8) & mask == 0` issue the step's prefetches: for
/// packed f32 tiles of 3 or more rows every `f32_prefetch_every`-th step
/// ([`super::Tuning::f32_prefetch_every`]), except when they prefetch the next column block
/// (`PF_T1_EVERY`); every other tile on every step (mask 0). In [`tile`] the other steps
/// take the row-major branch and prefetch the same lines twice (every step prefetches there);
/// in [`tile_paired`] they prefetch nothing.
#[inline(always)]
fn pf_mask<W: Pair, const M: usize, const HINT: u8>() -> usize {
    if M > 2 && W::BYTES == 4 && HINT != super::PF_T1_EVERY {
        super::tuning()
            .f32_prefetch_every
            .max(1)
            .next_power_of_two()
            - 1
    } else {
        0
    }
}

/// The phased prefetch of a packed tile's step at offset `o` (column `i`) in a pass that is
/// one of `2^sh` sharing the next column block ([`super::Tuning::f32_phased_min_rows`]): every
/// `2^sh`-th step, the step's bytes (two lines of f32, one of half precision) at
/// `pf + o / 2^sh` past the tile's start, so that the pass reads its share in order.
#[inline(always)]
fn phased<W: Pair>(w: &TilePtrs<W>, o: usize, pf: usize, sh: u8, i: usize) {
    if (i / 8) & ((1usize << sh) - 1) == 0 {
        let at = w.blk[0].wrapping_add(pf.wrapping_add(o >> sh));
        super::prefetch::<{ super::PF_T1_PHASED }>(at as *const i8);
        if W::BYTES == 4 {
            super::prefetch::<{ super::PF_T1_PHASED }>(at.wrapping_add(16) as *const i8);
        }
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
    span: Span,
    pf: usize,
    acc: &mut [[f32; NR]; MR_ACC],
) {
    let kb = k / 8 * 8;
    // Before the saved lanes are loaded: `tuning` may be a call, across which every vector
    // register is clobbered; lanes loaded before it were kept on the stack through the loop
    // (f32 at 32 rows 30 → 45 ms).
    let pf_mask = if PACKED { pf_mask::<W, M, HINT>() } else { 0 };
    let mut a = [[_mm512_setzero_ps(); 2]; M];
    if span.i0 > 0 {
        // SAFETY: `span.st` holds the tile's saved lanes (`Span`): row m's at 2m, 2m + 1.
        unsafe { load_lanes(span.st, a.as_flattened_mut()) };
    }
    // One 8-column step: block i/8 of every row of the tile into every row's accumulators.
    let step = |a: &mut [[__m512; 2]; M], i: usize| {
        let o = if PACKED { i * NR } else { i };
        // SAFETY: i + 8 <= kb <= k, block i/8 of row j lies at blk[j] + o; prefetches
        // never fault (`wrapping_add`).
        unsafe {
            if HINT == super::PF_T1_PHASED {
                // This pass's share of the next column block (`Tuning::f32_phased_min_rows`).
                if PACKED {
                    phased::<W>(w, o, pf, span.pf_shift, i);
                }
            } else if PACKED && (i / 8) & pf_mask == 0 {
                // The step's lines of the tile stream: one for half precision (rows 0–3
                // share it), two for f32 (rows 0–1, rows 2–3).
                super::prefetch::<HINT>(w.blk[0].wrapping_add(o + pf) as *const i8);
                if W::BYTES == 4 {
                    super::prefetch::<HINT>(w.blk[2].wrapping_add(o + pf) as *const i8);
                }
            } else {
                // Row-major: each row of the tile. Packed steps off the mask land here too
                // and prefetch the step's lines twice (f32: rows 0 and 1 share a line, as do
                // 2 and 3); that is the behaviour every f32 measurement since session 7 ran
                // with (`Tuning::f32_prefetch_every`).
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
    let mut i = span.i0;
    if M <= 2 {
        // Decode (one or two rows) waits on memory, and the lines it can have in flight
        // are about the out-of-order window divided by the instructions per line: two
        // steps per iteration save a loop's increment and branch per line.
        while i + 16 <= span.i1 {
            step(&mut a, i);
            step(&mut a, i + 8);
            i += 16;
        }
    }
    while i < span.i1 {
        step(&mut a, i);
        i += 8;
    }
    if span.i1 < kb {
        // SAFETY: as above.
        unsafe { store_lanes(span.st, a.as_flattened()) };
        return;
    }
    finish!(a, acc, x, w, k);
}

/// [`tile`] over a packed tile with the input rows taken in *pairs*, without broadcasts.
///
/// `xp[p]` addresses the paired copy of rows `2p` and `2p + 1` ([`super::pair_inputs`]):
/// block `b` of the two rows as 16 consecutive floats, row `2p` then row `2p + 1`, so one
/// plain `zmm` load fetches a step's inputs for both rows. Against the line's two widened
/// pairs `w01 = [col 0 | col 1]`, `w23 = [col 2 | col 3]` and their halves swapped
/// (`w10`, `w32`: one `vshuff32x4` each per step), four accumulators per pair of rows hold
/// `[row 2p col 0 | row 2p+1 col 1]`, `[2p col 2 | 2p+1 col 3]`, `[2p col 1 | 2p+1 col 0]`
/// and `[2p col 3 | 2p+1 col 2]`; an odd last row is broadcast as in [`tile`]. After the
/// `k` loop the accumulators are moved (exact data moves) into [`tile`]'s arrangement and
/// finished as there, so every lane sees the same FMAs in the same order: the bits are
/// [`tile`]'s.
///
/// Why: per 8-column step [`tile`] issues two `vcvtph2ps` (f16) and one `vbroadcastf64x4`
/// per row, and on Zen 4 those compete for the same pipes; with pairs a step needs two
/// swaps whatever the row count and no broadcast. A register-only loop of one 4-row f16 step
/// (`tools/f16_step_probe.c`, two rounds): 2.86–2.91 ns broadcast, 2.44–2.45 ns paired, FMA
/// peak 2.18 ns.
///
/// With `XSWAP` the inputs are swapped instead of the line (one `vshuff32x4` per pair and
/// step rather than two per step: fewer for a single pair), and the second pair of
/// accumulators holds `[2p+1 col 0 | 2p col 1]` and `[2p+1 col 2 | 2p col 3]`.
///
/// # Safety
/// As [`tile`] with `PACKED`; `xp[p]` for `p < M / 2` addresses `2·⌊k/8⌋·8` floats.
// The loop and the finish in a function of its own, never inlined: inlined into `task`, LLVM
// kept three of the 8-row tile's 16 accumulators on the stack, and those spills, read back
// every step, made 8-row calls run at half speed in processes whose stack happened to alias
// the inputs in the L1 (4 KiB apart; session 11). With the finish in the same function the
// accumulators reach the lane tree in registers (session 12).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
pub unsafe fn tile_paired<W: Pair, const M: usize, const HINT: u8, const XSWAP: bool>(
    x: [*const f32; M],
    xp: [*const f32; MR_ACC / 2],
    w: &TilePtrs<W>,
    k: usize,
    span: Span,
    pf: usize,
    acc: &mut [[f32; NR]; MR_ACC],
) {
    let kb = k / 8 * 8;
    // Before the saved lanes are loaded, as in `tile`.
    let pf_mask = pf_mask::<W, M, HINT>();
    let z = _mm512_setzero_ps();
    let mut ap = [[z; 4]; super::MR_TALL / 2];
    let mut odd = [z; 2];
    // Saved lanes: pair p's four accumulators at 4p…4p + 3, the odd row's at ODD_LANES.
    if span.i0 > 0 {
        // SAFETY: `span.st` holds the tile's saved lanes (`Span`, SPAN_LANES of them).
        unsafe {
            load_lanes(span.st, &mut ap.as_flattened_mut()[..4 * (M / 2)]);
            if M % 2 == 1 {
                load_lanes(span.st.add(super::ODD_LANES), &mut odd);
            }
        }
    }
    let mut i = span.i0;
    while i < span.i1 {
        let o = i * NR;
        // SAFETY: i + 8 <= kb, so block i/8 lies in the tile and block i/8 of each pair in
        // its copy (16 floats at 2i); prefetches never fault (`wrapping_add`).
        unsafe {
            if HINT == super::PF_T1_PHASED {
                phased::<W>(w, o, pf, span.pf_shift, i);
            } else if (i / 8) & pf_mask == 0 {
                super::prefetch::<HINT>(w.blk[0].wrapping_add(o + pf) as *const i8);
                if W::BYTES == 4 {
                    super::prefetch::<HINT>(w.blk[2].wrapping_add(o + pf) as *const i8);
                }
            }
            let wv = W::line::<true>(w, o);
            if XSWAP {
                for (p, app) in ap.iter_mut().enumerate().take(M / 2) {
                    let xv = _mm512_loadu_ps(xp[p].add(2 * i));
                    let xs = _mm512_shuffle_f32x4::<0b01_00_11_10>(xv, xv);
                    app[0] = _mm512_fmadd_ps(xv, wv[0], app[0]);
                    app[1] = _mm512_fmadd_ps(xv, wv[1], app[1]);
                    app[2] = _mm512_fmadd_ps(xs, wv[0], app[2]);
                    app[3] = _mm512_fmadd_ps(xs, wv[1], app[3]);
                }
            } else {
                let sw = [
                    _mm512_shuffle_f32x4::<0b01_00_11_10>(wv[0], wv[0]),
                    _mm512_shuffle_f32x4::<0b01_00_11_10>(wv[1], wv[1]),
                ];
                for (p, app) in ap.iter_mut().enumerate().take(M / 2) {
                    let xv = _mm512_loadu_ps(xp[p].add(2 * i));
                    app[0] = _mm512_fmadd_ps(xv, wv[0], app[0]);
                    app[1] = _mm512_fmadd_ps(xv, wv[1], app[1]);
                    app[2] = _mm512_fmadd_ps(xv, sw[0], app[2]);
                    app[3] = _mm512_fmadd_ps(xv, sw[1], app[3]);
                }
            }
            if M % 2 == 1 {
                let xh = _mm256_castps_pd(_mm256_loadu_ps(x[M - 1].add(i)));
                let xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(xh));
                odd[0] = _mm512_fmadd_ps(xv, wv[0], odd[0]);
                odd[1] = _mm512_fmadd_ps(xv, wv[1], odd[1]);
            }
        }
        i += 8;
    }
    if span.i1 < kb {
        // SAFETY: as above.
        unsafe {
            store_lanes(span.st, &ap.as_flattened()[..4 * (M / 2)]);
            if M % 2 == 1 {
                store_lanes(span.st.add(super::ODD_LANES), &odd);
            }
        }
        return;
    }
    let z = _mm512_setzero_ps();
    // Into `tile`'s arrangement: a[m][q] = [row m col 2q | row m col 2q + 1].
    let mut a = [[z; 2]; M];
    for p in 0..M / 2 {
        if XSWAP {
            // [2p c0 | 2p+1 c1], [2p c2 | 2p+1 c3], [2p+1 c0 | 2p c1], [2p+1 c2 | 2p c3].
            let [c01, c23, d01, d23] = ap[p];
            a[2 * p] = [
                _mm512_mask_blend_ps(0xFF00, c01, d01),
                _mm512_mask_blend_ps(0xFF00, c23, d23),
            ];
            a[2 * p + 1] = [
                _mm512_mask_blend_ps(0xFF00, d01, c01),
                _mm512_mask_blend_ps(0xFF00, d23, c23),
            ];
        } else {
            let [c01, c23, c10, c32] = ap[p];
            a[2 * p] = [
                _mm512_shuffle_f32x4::<0b01_00_01_00>(c01, c10),
                _mm512_shuffle_f32x4::<0b01_00_01_00>(c23, c32),
            ];
            a[2 * p + 1] = [
                _mm512_shuffle_f32x4::<0b11_10_11_10>(c10, c01),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(c32, c23),
            ];
        }
    }
    if M % 2 == 1 {
        a[M - 1] = odd;
    }
    finish!(a, acc, x, w, k);
}

/// A *tall* tile ([`super::MR_TALL`], module docs of [`super`]): [`tile`] over a packed tile
/// for an even `M ≤ 14`
/// rows, the input rows in pairs and the *weights* broadcast. Per 8-column step each of the
/// tile's four columns' 8-element blocks is loaded into both halves of a `zmm`
/// ([`Pair::bcast`]), each pair of rows' inputs with one plain load from the paired copy
/// (`xp`, as [`tile_paired`]), and accumulator `ap[p][c]` holds `[row 2p col c | row 2p+1
/// col c]`: 28 accumulators at 14 rows, where [`tile`]'s arrangement (two per row) stops at
/// 8. After the `k` loop the accumulators are moved (exact data moves) into [`tile`]'s
/// arrangement and finished as there: every lane sees the same FMAs in the same order, the
/// bits are [`tile`]'s.
///
/// Why: a packed f32 call of 9–14 rows then streams each weight once, at 2·rows FLOP per 4
/// bytes — past the ridge point of the FMA peak and the memory stream (about 6 on Zen 5) —
/// where 8-row tiles pass over each column block twice, the first pass bound by memory.
/// Minimal loops on Zen 5 (`docs/results/session15/probes/pb.c`): 12 and 14 rows 246–268
/// GFLOP/s streaming 38–41 GB/s with at most ~21 KiB of inputs, 275–280 GFLOP/s with the
/// block in L2. The step prefetches both of its lines every time (a pass that streams f32
/// needs every line prefetched, [`super::tuning`]).
///
/// Compiled with AVX512VL: without it LLVM allocated no vector register past `zmm20` here and
/// kept a third of the accumulators on the stack, loaded and stored every step.
///
/// # Safety
/// Requires AVX512VL besides [`tile_paired`]'s features; otherwise as [`tile_paired`], with
/// `M` even (every row in a pair; an odd block's last row is paired with a copy of itself,
/// [`super::pair_inputs`]); the tile is packed with four consecutive 8-element column blocks
/// per step (f32 or f16, not the interleaved bf16 layout).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
pub unsafe fn tile_wb<W: Pair, const M: usize, const HINT: u8>(
    x: [*const f32; M],
    xp: [*const f32; MR_ACC / 2],
    w: &TilePtrs<W>,
    k: usize,
    span: Span,
    pf: usize,
    acc: &mut [[f32; NR]; MR_ACC],
) {
    const { assert!(M.is_multiple_of(2) && M <= super::MR_TALL) };
    let kb = k / 8 * 8;
    let z = _mm512_setzero_ps();
    let mut ap = [[z; NR]; super::MR_TALL / 2];
    // Saved lanes: pair p's four accumulators at 4p…4p + 3.
    if span.i0 > 0 {
        // SAFETY: `span.st` holds the tile's saved lanes (`Span`, SPAN_LANES ≥ 2M of them).
        unsafe { load_lanes(span.st, &mut ap.as_flattened_mut()[..NR * (M / 2)]) };
    }
    let mut i = span.i0;
    while i < span.i1 {
        let o = i * NR;
        // SAFETY: i + 8 <= kb, so block i/8 lies in the tile (column c's 8 elements at
        // blk[c] + o) and block i/8 of each pair in its copy (16 floats at 2i); prefetches
        // never fault (`wrapping_add`).
        unsafe {
            super::prefetch::<HINT>(w.blk[0].wrapping_add(o + pf) as *const i8);
            if W::BYTES == 4 {
                super::prefetch::<HINT>(w.blk[2].wrapping_add(o + pf) as *const i8);
            }
            let wb: [__m512; NR] = std::array::from_fn(|c| W::bcast(w.blk[c].add(o)));
            for (p, app) in ap.iter_mut().enumerate().take(M / 2) {
                let xv = _mm512_loadu_ps(xp[p].add(2 * i));
                for (a, &wc) in app.iter_mut().zip(&wb) {
                    *a = _mm512_fmadd_ps(xv, wc, *a);
                }
            }
        }
        i += 8;
    }
    if span.i1 < kb {
        // SAFETY: as above.
        unsafe { store_lanes(span.st, &ap.as_flattened()[..NR * (M / 2)]) };
        return;
    }
    // Into `tile`'s arrangement: a[m][q] = [row m col 2q | row m col 2q + 1].
    let mut a = [[z; 2]; M];
    for (p, &[c0, c1, c2, c3]) in ap.iter().enumerate().take(M / 2) {
        a[2 * p] = [
            _mm512_shuffle_f32x4::<0b01_00_01_00>(c0, c1),
            _mm512_shuffle_f32x4::<0b01_00_01_00>(c2, c3),
        ];
        a[2 * p + 1] = [
            _mm512_shuffle_f32x4::<0b11_10_11_10>(c0, c1),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(c2, c3),
        ];
    }
    finish!(a, acc, x, w, k);
}

/// Step 4 of the reduction order and the store: rows `0..mr` of a whole tile's sums (`acc`,
/// as [`reduce`] stored them, four rows to a `zmm`) plus the bias, if any, to `out + m·n`.
///
/// Why: `super::write_tile`'s generic loop read each row of `acc` with a 16-byte load right
/// after the lane tree's 64-byte store of four rows, a load the core does not forward from
/// that store. Here one 64-byte load per four rows, at the address and size of the store (the
/// sums on a cache line of their own, `super::Sums`), then the four rows' 16-byte stores.
/// Session 17, one Zen 5 core, GPT-B decode-step GEMMs, this and the build before alternating
/// (`docs/results/session17/write-rows/`, medians of three): bf16 and f16 0.96–0.98× at
/// 16–128 rows, f32 level there (1.00–1.01×), every dtype 0.96–1.00× at 2–10 rows; the
/// decode bench's verification level within the host's noise. The same additions on the same
/// operands: the same bits.
///
/// # Safety
/// Requires AVX-512F; `out + m·n` addresses 4 writable floats for `m < mr ≤ MR_ACC`, and
/// `bias`, if given, 4 readable floats.
#[inline]
#[target_feature(enable = "avx512f")]
pub unsafe fn write_rows(
    out: *mut f32,
    n: usize,
    mr: usize,
    bias: Option<*const f32>,
    acc: &[[f32; NR]; MR_ACC],
) {
    let base = acc.as_ptr().cast::<f32>();
    // SAFETY: the caller's contract (4 floats at `bias`).
    let b = bias.map(|p| unsafe { _mm_loadu_ps(p) });
    for g in 0..mr.div_ceil(4) {
        // SAFETY: rows 4g..4g+4 of acc are 16 contiguous floats (4g + 4 <= MR_ACC).
        let t = unsafe { _mm512_loadu_ps(base.add(16 * g)) };
        let rows = [
            _mm512_castps512_ps128(t),
            _mm512_extractf32x4_ps::<1>(t),
            _mm512_extractf32x4_ps::<2>(t),
            _mm512_extractf32x4_ps::<3>(t),
        ];
        for (i, v) in rows.into_iter().enumerate().take(mr - 4 * g) {
            let v = b.map_or(v, |b| _mm_add_ps(v, b));
            // SAFETY: row 4g + i < mr (the caller's contract).
            unsafe { _mm_storeu_ps(out.add((4 * g + i) * n), v) };
        }
    }
}

/// Loads `v.len()` saved lane accumulators from `st` on (a [`Span`]'s lanes).
///
/// # Safety
/// Requires AVX-512F; `st` addresses at least `v.len()` saved lanes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_lanes(st: *const [f32; 16], v: &mut [__m512]) {
    for (q, x) in v.iter_mut().enumerate() {
        // SAFETY: q < v.len(), within the caller's lanes.
        *x = unsafe { _mm512_loadu_ps((*st.add(q)).as_ptr()) };
    }
}

/// Saves the lane accumulators `v` to `st` on (a [`Span`]'s lanes).
///
/// # Safety
/// As [`load_lanes`], `st` writable.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_lanes(st: *mut [f32; 16], v: &[__m512]) {
    for (q, x) in v.iter().enumerate() {
        // SAFETY: q < v.len(), within the caller's lanes.
        unsafe { _mm512_storeu_ps((*st.add(q)).as_mut_ptr(), *x) };
    }
}

/// `out` = the 8-float blocks of `x0` and `x1` alternating (the paired copy of two input
/// rows, `super::pair_inputs`): one 32-byte load and store per block and row, for the
/// SSE moves the generic loop compiles to.
///
/// # Safety
/// Requires AVX-512F (the kernels' ISA); `x0` and `x1` hold `n` floats, `out` `2n`, `n` a
/// multiple of 8 (asserted).
#[target_feature(enable = "avx512f,avx2")]
pub unsafe fn interleave(x0: &[f32], x1: &[f32], out: &mut [f32]) {
    let n = x0.len();
    assert!(n.is_multiple_of(8) && x1.len() == n && out.len() == 2 * n);
    let o = out.as_mut_ptr();
    for b in (0..n).step_by(8) {
        // SAFETY: b + 8 <= n, so x0/x1[b..b + 8] and out[2b..2b + 16] lie in the slices.
        unsafe {
            _mm256_storeu_ps(o.add(2 * b), _mm256_loadu_ps(x0.as_ptr().add(b)));
            _mm256_storeu_ps(o.add(2 * b + 8), _mm256_loadu_ps(x1.as_ptr().add(b)));
        }
    }
}

/// Step 2 of the reduction order (the lane tree `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`)
/// for a whole tile at once, with the same additions on the same operands as
/// [`super::avx2::hsum`] but four rows' columns per instruction: `acc[m][j]` = the tree of
/// column `j`'s 8 lanes in `a[m]` (rows past `M` of a group of four get the tree of zeros).
/// Per tile of 8 rows this is 28 shuffles and 14 additions instead of 32 scalar trees
/// (about 200 instructions, 10–15 % of a tile's FMAs at k = 768).
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce<const M: usize>(a: &[[__m512; 2]; M], acc: &mut [[f32; NR]; MR_ACC]) {
    let z = _mm512_setzero_ps();
    // r[m], 128-bit chunk c: column c's [a0+a4, a1+a5, a2+a6, a3+a7] (chunks of
    // a[m][p]: column 2p lanes 0–3, 4–7, column 2p + 1 lanes 0–3, 4–7).
    let mut r = [z; MR_ACC];
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
        // SAFETY: rows 4g..4g+4 of acc are 16 contiguous floats (4g + 4 <= MR_ACC).
        unsafe { _mm512_storeu_ps(acc.as_mut_ptr().cast::<f32>().add(16 * g), t) };
    }
}
