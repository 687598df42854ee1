//! The opt-in fast kernel class for bf16 weights: AVX512-BF16 dot products (`vdpbf16ps`).
//!
//! Enabled with `--fast-kernels` / `ARGEN_FAST_KERNELS=1` ([`crate::Cpu::with_fast_kernels`]).
//! It has its own reduction order, **different from the exact kernels of [`crate::gemm`]**: the
//! activations are rounded to bf16 first, and the hardware sums products of pairs. Results are
//! reproducible across machines that run this class, but not equal to the exact class; the
//! class that ran is reported ([`crate::gemm::Class`]) so that stats and traces can record it.
//!
//! # Reduction order of class `avx512-bf16` (bf16 packed weights only)
//! For each output element `out[r, n]` with `K` columns:
//! 1. every input element is rounded to bf16, round-to-nearest-even (`x̂ = bf16(x)`);
//! 2. four lane accumulators `acc[l]` (`l = 0..3`), starting at `+0`, run over the 8-column
//!    blocks `b = 0, 1, …, ⌊K/8⌋ − 1` in order; block `b` updates lane `l` with the pair
//!    `k₀ = 8b + 2l`, `k₁ = k₀ + 1` as `acc[l] = F(x̂[k₀]·w[k₀] + F(x̂[k₁]·w[k₁] + acc[l]))`,
//!    where each step is one fused multiply-add rounded to nearest-even, with subnormal inputs
//!    read as zero and subnormal results flushed to (signed) zero (`F`): the odd element of the
//!    pair first. This is `vdpbf16ps`'s documented per-lane operation (Intel SDM), and measured
//!    bit for bit on AMD Zen 4 (3.2 M random lanes, subnormals included);
//! 3. the lanes are summed in the tree `(acc[0] + acc[2]) + (acc[1] + acc[3])`;
//! 4. the tail `k = 8⌊K/8⌋ … K−1` is accumulated onto that sum with ordinary f32 `fma`
//!    (`x̂[k]·w[k]`), in order;
//! 5. the bias (if any) is added last.
//!
//! As in the exact class, nothing depends on the row count, the blocking or the thread count.
//! Weights are read from the packed tile layout of [`crate::gemm::pack_bf16`]: one 64-byte
//! line holds the 8-column blocks of the tile's 4 rows, which is exactly one `zmm` of 32 bf16;
//! one `vpermw` puts each row's 8 elements back together (that layout interleaves rows 0–1
//! with rows 2–3 for the exact kernels), and one `vdpbf16ps` per input row and line computes 4
//! columns × 4 lane pairs.
//!
//! # Loop structure (speed only: every output's operations are the order above)
//! Columns in blocks of ~192 KiB of weights, rows in blocks of up to 8 (a call of 9 to
//! [`crate::gemm::Tuning::fast_tall_rows`] ≤ 12 rows as one block, which streams each weight
//! once; a call of up to 15 rows otherwise as two even blocks). The first row block over a
//! column block streams it from memory, a tile at a time (three when the call has several
//! blocks and this one is full), prefetching [`crate::gemm::Tuning::fast_pf_bytes`] ahead in
//! each tile's stream (non-temporally when it is the call's only block). Later row blocks find
//! the block in L2 and run three tiles per kernel call (up to 24 accumulators: one tile's 8
//! give `vdpbf16ps` too few independent chains to fill both pipes), and the second of them
//! prefetches the next column block into L2 ([`crate::gemm::Tuning::fast_next_block`]). The
//! lane tree runs in vectors when `K` is a multiple of 8.
//!
//! Session 17, one Zen 5 core, GPT-B (`ARGEN_FAST_KERNELS=1 cargo bench -p argen-cpu --bench
//! decode -- 1 bf16`, against the one-tile loop before, three alternating rounds,
//! `docs/results/session17/fast/`): decode step 5.9–6.1 → 5.0–5.1 ms; verification of 8 / 16
//! / 128 rows 11.2–11.9 / 18.3–18.6 / 114.6–116.0 → 7.0 / 10.7–11.0 / 79.7–81.3 ms. The exact
//! class in the same session: 7.8–8.2 / 15.3–16.0 / 126–129 ms
//! (`docs/results/session17/decode/dec1-new-*.txt`).

use crate::gemm::NR;
use crate::par::Workers;
use half::bf16;
use std::cell::RefCell;

thread_local! {
    /// The activations rounded to bf16 (grows once).
    static XB: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

/// Why this CPU cannot run the `avx512-bf16` class; `None` if it can.
pub fn unsupported() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512bf16")
            && std::is_x86_feature_detected!("fma")
        {
            None
        } else {
            Some("the CPU lacks AVX512-BF16 (vdpbf16ps) or AVX512-BW (vpermw)")
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Some("not an x86_64 build")
    }
}

/// `F(a·b + c)` of step 2 (module docs): fused, subnormal inputs read as zero, subnormal
/// result flushed to zero. The scalar definition of the class; the tests hold the SIMD path
/// to it.
#[inline]
pub fn dp_step(a: f32, b: f32, c: f32) -> f32 {
    let daz = |v: f32| {
        if v.is_subnormal() {
            0f32.copysign(v)
        } else {
            v
        }
    };
    daz(daz(a).mul_add(daz(b), daz(c)))
}

/// Scalar transcription of the module's reduction order for one output element (`x` already
/// rounded to bf16; `w` row-major). Used by the tests, and as the definition of the class.
pub fn reference(x: &[bf16], w: &[bf16], k: usize, bias: Option<f32>) -> f32 {
    let kb = k / 8 * 8;
    let mut acc = [0f32; 4];
    for b in 0..kb / 8 {
        for (l, a) in acc.iter_mut().enumerate() {
            let k0 = 8 * b + 2 * l;
            let odd = dp_step(x[k0 + 1].to_f32(), w[k0 + 1].to_f32(), *a);
            *a = dp_step(x[k0].to_f32(), w[k0].to_f32(), odd);
        }
    }
    let mut t = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    for kk in kb..k {
        t = x[kk].to_f32().mul_add(w[kk].to_f32(), t);
    }
    bias.map_or(t, |b| t + b)
}

#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct OutPtr(*mut f32);
// SAFETY: used only to write disjoint output columns from different tasks (see `gemm`).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// `out[..rows·n] = x · wᵀ (+ bias)` in the class's reduction order, `w` a packed bf16
/// `[n, k]` matrix ([`crate::gemm::pack`]), columns split into `tasks` ranges on `workers`.
///
/// # Panics
/// If the CPU lacks AVX512-BF16 ([`unsupported`]) or a buffer is too small.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    workers: &Workers,
    tasks: usize,
    x: &[f32],
    rows: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    assert!(
        unsupported().is_none(),
        "fast bf16 kernels: {:?}",
        unsupported()
    );
    assert!(
        x.len() >= rows * k
            && out.len() >= rows * n
            && w.len() >= crate::gemm::packed_len(n, k)
            && bias.is_none_or(|b| b.len() >= n),
        "gemm buffers too small"
    );
    if rows == 0 || n == 0 {
        return;
    }
    XB.with(|cell| {
        let mut xb = cell.borrow_mut();
        if xb.len() < rows * k {
            xb.resize(rows * k, 0);
        }
        for (d, &s) in xb.iter_mut().zip(&x[..rows * k]) {
            *d = bf16::from_f32(s).to_bits();
        }
        let xb: &[u16] = &xb;
        let ptr = OutPtr(out.as_mut_ptr());
        let tiles = n.div_ceil(NR);
        let tasks = tasks.clamp(1, tiles);
        let per = tiles.div_ceil(tasks);
        let run = |t: usize| {
            let n0 = (t * per * NR).min(n);
            let n1 = ((t + 1) * per * NR).min(n);
            if n0 < n1 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU has AVX512-BF16 (asserted above); task t writes only
                // columns n0..n1 of the rows·n output, disjoint from other tasks'; `xb` holds
                // rows·k and `w` the packed [n, k] layout (asserted above).
                unsafe {
                    avx512::task(xb, rows, k, w, n, n0, n1, bias, ptr)
                };
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (xb, w, bias, ptr, n1);
            }
        };
        workers.run(tasks, run);
    });
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{OutPtr, NR};
    use half::bf16;
    use std::arch::x86_64::*;

    /// Most input rows per micro-kernel tile.
    const MR: usize = 8;
    /// Most input rows of a call run as one row block ([`crate::gemm::Tuning::fast_tall_rows`]).
    const MR_TALL: usize = 12;
    /// Target bytes of weights per column block (kept in L2 while every row block passes
    /// over it).
    const BLOCK_BYTES: usize = 192 << 10;
    /// Tiles per micro-kernel call ([`tile_dp`]) on the passes that find the column block in
    /// L2.
    const TILES: usize = 3;

    /// Prefetch kinds of [`tile_dp`]'s `HINT`: non-temporal, into L1, into L2, none.
    const PF_NTA: u8 = 0;
    const PF_T0: u8 = 1;
    const PF_T1: u8 = 2;
    const PF_NONE: u8 = 3;

    /// One task: columns `n0..n1` (`n0` a multiple of `NR`), in column blocks, row blocks of
    /// up to `MR` rows. The first row block over a column block streams it from memory, one
    /// tile at a time with the stream prefetched [`crate::gemm::Tuning::fast_pf_bytes`]
    /// ahead (non-temporally when it is the call's only row block); later row blocks find the
    /// block in L2 and run [`TILES`] tiles per call, and the second prefetches the next column
    /// block into L2 ([`crate::gemm::Tuning::fast_next_block`]).
    ///
    /// # Safety
    /// Requires AVX512-BF16; buffers as [`super::gemm`]; this call is the only writer of
    /// columns `n0..n1` of `out`.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn task(
        xb: &[u16],
        rows: usize,
        k: usize,
        w: &[bf16],
        n: usize,
        n0: usize,
        n1: usize,
        bias: Option<&[f32]>,
        out: OutPtr,
    ) {
        let cb = (BLOCK_BYTES / (2 * k).max(1) / NR).max(1) * NR;
        let t = crate::gemm::tuning();
        let tall = t.fast_tall_rows.min(MR_TALL);
        // Rows in the row block from row `r` on.
        // Fewer than two full blocks left: two even ones, not a full block and a short pass
        // that waits on the next column block's prefetch (10 / 12 / 14 rows 9.3–12.8 /
        // 10.0–10.9 / 10.6–10.7 → 8.3–8.4 / 9.3 / 10.0–10.2 ms on one Zen 5 core,
        // `docs/results/session17/fast-even/`); a call of at most `tall` rows as one block.
        let block = |r: usize| {
            if rows - r <= MR || (r == 0 && rows <= tall) {
                rows - r
            } else if rows - r < 2 * MR {
                (rows - r).div_ceil(2)
            } else {
                MR
            }
        };
        let first = block(0);
        let single = first == rows;
        let mut c0 = n0;
        while c0 < n1 {
            let c1 = (c0 + cb).min(n1);
            let mut r = 0;
            while r < rows {
                let mr = block(r);
                // The pass's prefetch (kind, distance in elements) and tiles per call.
                // The first pass streams one tile at a time, except in full blocks of calls of
                // several (bound by the FMAs: 16 rows 10.9–11.3 → 9.6–10.0 ms on one Zen 5
                // core; a single block or a shorter one measured 1.08–1.41× slower at 4–10
                // rows, `docs/results/session17/variants/fast-variants.txt`).
                let (hint, pf, tiles) = if r == 0 {
                    let hint = if single { PF_NTA } else { PF_T0 };
                    (
                        hint,
                        t.fast_pf_bytes / 2,
                        if single || mr < MR { 1 } else { TILES },
                    )
                } else if t.fast_next_block && r == first && first == MR && c1 < n1 {
                    // The same offset in the next column block.
                    (PF_T1, (c1 - c0) * k, TILES)
                } else {
                    (PF_NONE, 0, TILES)
                };
                let mut j = c0;
                while j < c1 {
                    // `tiles` tiles at a time while that many remain in the block, then one.
                    let left = (c1 - j).div_ceil(NR);
                    let t_now = if left >= tiles { tiles } else { 1 };
                    let xp = |i: usize| xb[(r + i.min(mr - 1)) * k..].as_ptr();
                    let mut acc = [[[0f32; NR]; MR_TALL]; TILES];
                    macro_rules! call {
                        ($m:literal, $t:tt, $xs:ident) => {{
                            let ts: [*const bf16; $t] =
                                std::array::from_fn(|t| w[(j + t * NR) * k..].as_ptr());
                            let a: &mut [[[f32; NR]; MR_TALL]; $t] =
                                (&mut acc[..$t]).try_into().unwrap();
                            match hint {
                                PF_NTA => tile_dp::<$m, $t, PF_NTA>($xs, ts, k, pf, a),
                                PF_T0 => tile_dp::<$m, $t, PF_T0>($xs, ts, k, pf, a),
                                PF_T1 => tile_dp::<$m, $t, PF_T1>($xs, ts, k, pf, a),
                                _ => tile_dp::<$m, $t, PF_NONE>($xs, ts, k, pf, a),
                            }
                        }};
                    }
                    macro_rules! go {
                        ($m:literal) => {{
                            let xs: [*const u16; $m] = std::array::from_fn(xp);
                            // SAFETY: x pointers address k halves, each tile NR·k (whole tiles
                            // in the packed layout, `t_now` of them from column j on: `left`
                            // counts the block's tiles from j); AVX512-BF16 per the contract;
                            // prefetches never fault.
                            unsafe {
                                if t_now == TILES {
                                    call!($m, TILES, xs)
                                } else {
                                    call!($m, 1, xs)
                                }
                            }
                        }};
                    }
                    match mr {
                        9 => go!(9),
                        10 => go!(10),
                        11 => go!(11),
                        12 => go!(12),
                        _ => tile_rows!(mr, go),
                    }
                    for acct in acc.iter().take(t_now) {
                        let nr = (c1 - j).min(NR);
                        for (mi, accm) in acct.iter().enumerate().take(mr) {
                            for (ni, &v) in accm.iter().enumerate().take(nr) {
                                let v = bias.map_or(v, |b| v + b[j + ni]);
                                // SAFETY: (r+mi, j+ni) lies in rows × n and j+ni in n0..n1.
                                unsafe { *out.0.add((r + mi) * n + j + ni) = v };
                            }
                        }
                        j += nr;
                    }
                }
                r += mr;
            }
            c0 = c1;
        }
    }

    /// `acc[t][m][j]` for `T` consecutive packed tiles and `M` rows (module docs, steps
    /// 2–4): each tile's accumulators are its own, so running tiles together changes no bit.
    ///
    /// Why `T` tiles at once: `vdpbf16ps` has a latency of several cycles, and one tile of
    /// `M ≤ 8` rows gives only `M` independent accumulators, too few to keep both pipes busy;
    /// `T` tiles give `T·M`, and each input row's broadcast serves all `T` tiles.
    ///
    /// # Safety
    /// Requires AVX512-BF16; x pointers address `k` halves, `tiles[t]` a packed tile (`NR·k`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,fma")]
    unsafe fn tile_dp<const M: usize, const T: usize, const HINT: u8>(
        x: [*const u16; M],
        tiles: [*const bf16; T],
        k: usize,
        pf: usize,
        acc: &mut [[[f32; NR]; MR_TALL]; T],
    ) {
        let kb = k / 8 * 8;
        let mut a = [[_mm512_setzero_ps(); M]; T];
        let idx = {
            let mut v = [0i16; 32];
            for (q, d) in v.iter_mut().enumerate() {
                let (c, e) = (q / 8, q % 8);
                *d = (2 * (8 * (c % 2) + e) + c / 2) as i16;
            }
            // SAFETY: v holds 32 halves.
            unsafe { _mm512_loadu_si512(v.as_ptr() as *const __m512i) }
        };
        let mut i = 0;
        while i < kb {
            // SAFETY: block i/8 of each tile is the 32 halves at tile + i·NR; x rows hold k;
            // prefetches never fault.
            unsafe {
                let mut lines = [_mm512_setzero_si512(); T];
                for (line, &tile) in lines.iter_mut().zip(&tiles) {
                    let p = tile.add(i * NR);
                    // Streaming (NTA / T0): each tile's stream runs on into the same tile of
                    // the next group of `T` (`T·NR·k` further on), so that every line is
                    // prefetched once, `pf` ahead of its tile's reads.
                    let ahead = i * NR + pf;
                    let at = if T > 1 && (HINT == PF_NTA || HINT == PF_T0) && ahead >= NR * k {
                        tile.wrapping_add(ahead + (T - 1) * NR * k)
                    } else {
                        tile.wrapping_add(ahead)
                    } as *const i8;
                    match HINT {
                        PF_NTA => _mm_prefetch::<_MM_HINT_NTA>(at),
                        PF_T0 => _mm_prefetch::<_MM_HINT_T0>(at),
                        PF_T1 => _mm_prefetch::<_MM_HINT_T1>(at),
                        _ => {}
                    }
                    // Half q = 8c + e of the de-interleaved line (row c, element e) sits at
                    // half 2·(8·(c mod 2) + e) + ⌊c/2⌋ of the interleaved one.
                    *line = _mm512_permutexvar_epi16(idx, _mm512_loadu_si512(p as *const __m512i));
                }
                for m in 0..M {
                    let xv = _mm512_broadcast_i32x4(_mm_loadu_si128(x[m].add(i) as *const __m128i));
                    let xv = std::mem::transmute::<__m512i, __m512bh>(xv);
                    for t in 0..T {
                        let wv = std::mem::transmute::<__m512i, __m512bh>(lines[t]);
                        a[t][m] = _mm512_dpbf16_ps(a[t][m], xv, wv);
                    }
                }
            }
            i += 8;
        }
        if kb == k {
            // Step 3 for every column at once: within each 128-bit chunk (one column's four
            // lanes) `u = v + swap_pairs(v)` holds `acc[0] + acc[2]` and `acc[1] + acc[3]` in
            // lanes 0 and 1, and `u + swap(u)` their sum in lane 0: the tree's additions on
            // the tree's operands (the sum of two values does not depend on their order).
            let first = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            for t in 0..T {
                for m in 0..M {
                    let v = a[t][m];
                    let u = _mm512_add_ps(v, _mm512_shuffle_ps::<0b01_00_11_10>(v, v));
                    let f = _mm512_add_ps(u, _mm512_shuffle_ps::<0b10_11_00_01>(u, u));
                    let cols = _mm512_castps512_ps128(_mm512_permutexvar_ps(first, f));
                    // SAFETY: acc[t][m] holds NR = 4 floats.
                    unsafe { _mm_storeu_ps(acc[t][m].as_mut_ptr(), cols) };
                }
            }
            return;
        }
        let tail_base = NR * kb;
        for t in 0..T {
            for m in 0..M {
                // On a cache line of its own: the scalar loads below are forwarded from this
                // 64-byte store only if it does not straddle two lines (`gemm`'s `Sums`).
                #[repr(C, align(64))]
                struct Lanes([f32; 16]);
                let mut lanes = Lanes([0f32; 16]);
                // SAFETY: the array holds 16 floats.
                unsafe { _mm512_storeu_ps(lanes.0.as_mut_ptr(), a[t][m]) };
                let l = &lanes.0;
                for j in 0..NR {
                    let q = &l[4 * j..4 * j + 4];
                    let mut s = (q[0] + q[2]) + (q[1] + q[3]);
                    for kk in kb..k {
                        // SAFETY: kk < k; row j's tail lies at tile + NR·kb + j·(k − kb).
                        unsafe {
                            let xv = f32::from_bits((*x[m].add(kk) as u32) << 16);
                            let wv = (*tiles[t].add(tail_base + j * (k - kb) + kk - kb)).to_f32();
                            s = xv.mul_add(wv, s);
                        }
                    }
                    acc[t][m][j] = s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::pack_bf16;

    use crate::test_rng as rng;

    #[test]
    fn avx512_bf16_matches_its_documented_order() {
        if let Some(why) = unsupported() {
            println!("SKIPPED avx512-bf16: {why}");
            return;
        }
        // The loop's speed-only settings, each way whatever this CPU's table says.
        let _one = crate::gemm::setting_tunings();
        let table = crate::gemm::tuning();
        let tunings = [
            table,
            crate::gemm::Tuning {
                fast_tall_rows: 12,
                fast_next_block: !table.fast_next_block,
                fast_pf_bytes: 8 << 10,
                ..table
            },
            crate::gemm::Tuning {
                fast_tall_rows: 0,
                ..table
            },
        ];
        for t in tunings {
            crate::gemm::set_tuning(t);
            check_shapes();
        }
        crate::gemm::set_tuning(table);
    }

    /// Every row count to 20 and some to 128, 1–3 threads, with and without bias, against
    /// [`reference`]; `k = 2048` with 100 columns runs three column blocks.
    fn check_shapes() {
        let pools: Vec<(Workers, usize)> = [(1, 1), (2, 3), (3, 8)]
            .iter()
            .map(|&(t, tasks)| (Workers::new(t).unwrap(), tasks))
            .collect();
        let mut r = rng(41);
        let max_rows = 128;
        for &(k, n) in &[
            (1usize, 3usize),
            (8, 4),
            (40, 9),
            (77, 36),
            (300, 5),
            (2048, 100),
        ] {
            // Some tiny values: subnormal products and sums exercise the flush to zero.
            let mut x: Vec<f32> = (0..max_rows * k).map(|_| r()).collect();
            x.iter_mut().step_by(17).for_each(|v| *v *= 1e-37);
            let w: Vec<bf16> = (0..n * k)
                .map(|i| bf16::from_f32(if i % 13 == 0 { r() * 1e-38 } else { r() }))
                .collect();
            let bias: Vec<f32> = (0..n).map(|_| r()).collect();
            let wp = pack_bf16(&w, n, k);
            let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
            for b in [None, Some(&bias[..])] {
                let want: Vec<f32> = (0..max_rows * n)
                    .map(|e| {
                        let (ri, ni) = (e / n, e % n);
                        reference(&xb[ri * k..], &w[ni * k..], k, b.map(|b| b[ni]))
                    })
                    .collect();
                for (pool, tasks) in &pools {
                    for rows in (1..=max_rows).filter(|r| *r <= 20 || r % 9 == 0) {
                        let mut out = vec![f32::NAN; rows * n];
                        gemm(pool, *tasks, &x, rows, k, &wp, n, b, &mut out);
                        for e in 0..rows * n {
                            assert_eq!(
                                out[e].to_bits(),
                                want[e].to_bits(),
                                "k={k} n={n} rows={rows} tasks={tasks} element {e}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fast_class_is_close_to_exact_arithmetic() {
        if let Some(why) = unsupported() {
            println!("SKIPPED avx512-bf16: {why}");
            return;
        }
        let mut r = rng(3);
        let (rows, k, n) = (5usize, 200usize, 9usize);
        let x: Vec<f32> = (0..rows * k).map(|_| r()).collect();
        let w: Vec<bf16> = (0..n * k).map(|_| bf16::from_f32(r())).collect();
        let wp = pack_bf16(&w, n, k);
        let mut out = vec![0f32; rows * n];
        gemm(
            &Workers::new(1).unwrap(),
            1,
            &x,
            rows,
            k,
            &wp,
            n,
            None,
            &mut out,
        );
        for ri in 0..rows {
            for ni in 0..n {
                let exact: f64 = (0..k)
                    .map(|i| x[ri * k + i] as f64 * w[ni * k + i].to_f64())
                    .sum();
                // x rounded to bf16: relative error 2^-9 per product.
                assert!((out[ri * n + ni] as f64 - exact).abs() < 0.05, "{ri},{ni}");
            }
        }
    }
}
