//! The AVX-512F row kernels (see [`super`] for the contracts and the table of variants).
//!
//! Clean pass, 16 lanes per step: `d = c − u`, `t = s·d`, `g = u + t`, `y = g·scale + 0`
//! (`vsubps`, `vmulps`, `vaddps`, never fused), stored; the maximum in a `vmaxps` accumulator
//! (a NaN can only reach it when the finiteness flag is set, and then the maximum is
//! discarded); finiteness as the OR of `(bits & 0x7fff_ffff) + 0x0080_0000` (bit 31 set iff
//! the exponent is all ones). The last `len mod 16` elements go through argen-core's portable
//! pass.

use super::join;
use argen_core::dist::LOCATE_CHUNK;
use argen_core::process::{portable_plain, portable_two_way, rank_key, BUCKETS, HOPELESS};
use argen_core::LogitRow;
use core::arch::x86_64::*;
use half::{bf16, f16};

/// Exact widening of 16 elements to `f32` lanes.
trait Lanes: Copy {
    /// Loads and widens 16 elements.
    ///
    /// # Safety
    /// `p` must be valid for reading 16 elements, and the CPU must have AVX-512F.
    unsafe fn load16(p: *const Self) -> __m512;
}

impl Lanes for f32 {
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> __m512 {
        // SAFETY: the caller guarantees 16 readable elements.
        unsafe { _mm512_loadu_ps(p) }
    }
}

impl Lanes for bf16 {
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> __m512 {
        // SAFETY: the caller guarantees 16 readable elements (32 bytes). bf16 is the upper
        // half of an f32: zero-extend and shift (exact; NaNs stay NaN).
        unsafe {
            let h = _mm256_loadu_si256(p as *const __m256i);
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        }
    }
}

impl Lanes for f16 {
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> __m512 {
        // SAFETY: the caller guarantees 16 readable elements (32 bytes). `vcvtph2ps` converts
        // every binary16 value exactly (subnormals included; NaNs stay NaN).
        // `_mm512_cvt_roundph_ps` rather than `_mm512_cvtph_ps`, whose `{sae}` form takes no
        // memory operand (`crate::gemm::avx512`); the same exact conversion.
        unsafe {
            _mm512_cvt_roundph_ps::<_MM_FROUND_CUR_DIRECTION>(_mm256_loadu_si256(
                p as *const __m256i,
            ))
        }
    }
}

/// Finiteness flags and maximum of a 16-lane body.
struct Acc {
    mx: __m512,
    flags: __m512i,
}

impl Acc {
    #[inline(always)]
    fn new() -> Self {
        // SAFETY: plain register initialisation (AVX-512F is enabled in every caller).
        unsafe {
            Acc {
                mx: _mm512_set1_ps(f32::NEG_INFINITY),
                flags: _mm512_setzero_si512(),
            }
        }
    }

    /// Folds the lanes `s` in.
    #[inline(always)]
    unsafe fn add(&mut self, s: __m512) {
        // SAFETY: register arithmetic; the caller has AVX-512F.
        unsafe {
            let b = _mm512_castps_si512(s);
            let e = _mm512_add_epi32(
                _mm512_and_si512(b, _mm512_set1_epi32(0x7fff_ffff)),
                _mm512_set1_epi32(0x0080_0000),
            );
            self.flags = _mm512_or_si512(self.flags, e);
            self.mx = _mm512_max_ps(self.mx, s);
        }
    }

    /// The body's maximum, or `None` if some lane was not finite.
    #[inline(always)]
    unsafe fn finish(&self) -> Option<f32> {
        // SAFETY: register reductions; the caller has AVX-512F.
        unsafe {
            let bad = _mm512_test_epi32_mask(self.flags, _mm512_set1_epi32(i32::MIN));
            (bad == 0).then(|| _mm512_reduce_max_ps(self.mx))
        }
    }
}

#[target_feature(enable = "avx512f,popcnt")]
fn plain_body<E: Lanes>(x: &[E], scale: f32, y: &mut [f32]) -> Option<f32> {
    let body = x.len() / 16 * 16;
    assert!(y.len() >= body, "output row shorter than the input");
    let vscale = _mm512_set1_ps(scale);
    let zero = _mm512_setzero_ps();
    let mut acc = Acc::new();
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 16 <= body <= x.len()`, and `<= y.len()` (asserted).
        unsafe {
            let s = _mm512_add_ps(_mm512_mul_ps(E::load16(x.as_ptr().add(i)), vscale), zero);
            _mm512_storeu_ps(y.as_mut_ptr().add(i), s);
            acc.add(s);
        }
        i += 16;
    }
    // SAFETY: AVX-512F is enabled in this function.
    unsafe { acc.finish() }
}

#[target_feature(enable = "avx512f,popcnt")]
fn two_way_body<E: Lanes>(c: &[E], u: &[E], cfg: f32, scale: f32, y: &mut [f32]) -> Option<f32> {
    let body = c.len() / 16 * 16;
    assert!(
        u.len() >= body && y.len() >= body,
        "rows of different lengths"
    );
    let (vcfg, vscale) = (_mm512_set1_ps(cfg), _mm512_set1_ps(scale));
    let zero = _mm512_setzero_ps();
    let mut acc = Acc::new();
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 16 <= body`, within `c`, `u` and `y` (asserted).
        unsafe {
            let cv = E::load16(c.as_ptr().add(i));
            let uv = E::load16(u.as_ptr().add(i));
            let g = _mm512_add_ps(uv, _mm512_mul_ps(vcfg, _mm512_sub_ps(cv, uv)));
            let s = _mm512_add_ps(_mm512_mul_ps(g, vscale), zero);
            _mm512_storeu_ps(y.as_mut_ptr().add(i), s);
            acc.add(s);
        }
        i += 16;
    }
    // SAFETY: AVX-512F is enabled in this function.
    unsafe { acc.finish() }
}

/// The clean pass of an unguided row.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f,popcnt")]
pub unsafe fn plain(row: LogitRow<'_>, scale: f32, y: &mut [f32]) -> Option<f32> {
    let n = match row {
        LogitRow::F32(r) => r.len(),
        LogitRow::F16(r) => r.len(),
        LogitRow::Bf16(r) => r.len(),
    };
    let body = n / 16 * 16;
    let (b, tail) = match row {
        LogitRow::F32(r) => (plain_body(r, scale, y), LogitRow::F32(&r[body..])),
        LogitRow::F16(r) => (plain_body(r, scale, y), LogitRow::F16(&r[body..])),
        LogitRow::Bf16(r) => (plain_body(r, scale, y), LogitRow::Bf16(&r[body..])),
    };
    let t = portable_plain(tail, scale, &mut y[body..n]);
    join(b, t, n - body)
}

/// The clean pass of a two-way guided row.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f,popcnt")]
pub unsafe fn two_way(
    cond: LogitRow<'_>,
    uncond: LogitRow<'_>,
    cfg: f32,
    scale: f32,
    y: &mut [f32],
) -> Option<f32> {
    let (n, b, tc, tu) = match (cond, uncond) {
        (LogitRow::F32(c), LogitRow::F32(u)) if c.len() == u.len() => {
            let body = c.len() / 16 * 16;
            let b = two_way_body(c, u, cfg, scale, y);
            (
                c.len(),
                b,
                LogitRow::F32(&c[body..]),
                LogitRow::F32(&u[body..]),
            )
        }
        (LogitRow::F16(c), LogitRow::F16(u)) if c.len() == u.len() => {
            let body = c.len() / 16 * 16;
            let b = two_way_body(c, u, cfg, scale, y);
            (
                c.len(),
                b,
                LogitRow::F16(&c[body..]),
                LogitRow::F16(&u[body..]),
            )
        }
        (LogitRow::Bf16(c), LogitRow::Bf16(u)) if c.len() == u.len() => {
            let body = c.len() / 16 * 16;
            let b = two_way_body(c, u, cfg, scale, y);
            (
                c.len(),
                b,
                LogitRow::Bf16(&c[body..]),
                LogitRow::Bf16(&u[body..]),
            )
        }
        _ => return None,
    };
    let body = n / 16 * 16;
    let t = portable_two_way(tc, tu, cfg, scale, &mut y[body..n]);
    join(b, t, n - body)
}

/// The candidate scan: ids with `y − m ≥ −32`, ascending, into `order`.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f,popcnt")]
pub unsafe fn candidates(y: &[f32], m: f32, order: &mut [u32]) -> usize {
    assert!(order.len() >= y.len(), "order shorter than the row");
    let body = y.len() / 16 * 16;
    let (vm, floor) = (_mm512_set1_ps(m), _mm512_set1_ps(HOPELESS));
    let mut ids = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let step = _mm512_set1_epi32(16);
    let mut count = 0usize;
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 16 <= body <= y.len()`; the store writes `order[count..count + 16]`
        // with `count <= i`, so `count + 16 <= body <= order.len()` (asserted).
        unsafe {
            let d = _mm512_sub_ps(_mm512_loadu_ps(y.as_ptr().add(i)), vm);
            let k = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(d, floor);
            // Compress into a register, then a plain store (`vpcompressd` to memory is slow
            // on Zen 4).
            let packed = _mm512_maskz_compress_epi32(k, ids);
            _mm512_storeu_si512(order.as_mut_ptr().add(count) as *mut _, packed);
            count += k.count_ones() as usize;
            ids = _mm512_add_epi32(ids, step);
        }
        i += 16;
    }
    for (j, &yj) in y.iter().enumerate().skip(body) {
        order[count] = j as u32;
        count += (yj - m >= HOPELESS) as usize;
    }
    count
}

/// Top-k's partition at the bucket `cut` (argen-core's `RowKernels::split_cut`): 16 candidates
/// per step, their buckets `min(bits(d·16 + 2^23) − bits(2^23), 512)` with `d = m − y`
/// (`vsubps`, `vmulps`, `vaddps`, never fused; `vpsubd`, `vpminud`), the kept pairs
/// compressed into registers (`vpcompressd`) and stored whole at the kept count (in place: the
/// count never passes the chunk's first index, so the store ends inside the chunk, which is
/// already loaded); the cut bucket's members (one narrow bucket: rarely any) from their mask.
/// The last `len mod 16` pairs go through the scalar step.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f,popcnt")]
pub unsafe fn split_cut(
    m: f32,
    cut: usize,
    cy: &mut [f32],
    cid: &mut [u32],
    keys: &mut [u64],
) -> (usize, usize) {
    let len = cy.len();
    assert!(
        cid.len() == len && keys.len() >= len,
        "split_cut: slices of different lengths"
    );
    let body = len / 16 * 16;
    let (vm, scale, round) = (
        _mm512_set1_ps(m),
        _mm512_set1_ps(16.0),
        _mm512_set1_ps(8_388_608.0),
    );
    let (bias, top) = (_mm512_set1_epi32(0x4b00_0000), _mm512_set1_epi32(512));
    // `cut` above 512 keeps everything (no bucket reaches it); clamp so the lane compare is exact.
    let vcut = _mm512_set1_epi32(cut.min(513) as i32);
    let (py, pi) = (cy.as_mut_ptr(), cid.as_mut_ptr());
    let (mut kept, mut tied) = (0usize, 0usize);
    let mut j = 0;
    while j < body {
        // SAFETY: `j + 16 <= body <= len`; the stores write `[kept, kept + 16)` with
        // `kept <= j`, inside both slices, after this chunk was loaded.
        unsafe {
            let y = _mm512_loadu_ps(py.add(j));
            let ids = _mm512_loadu_si512(pi.add(j) as *const _);
            let d = _mm512_sub_ps(vm, y);
            let t = _mm512_add_ps(_mm512_mul_ps(d, scale), round);
            let b = _mm512_min_epu32(_mm512_sub_epi32(_mm512_castps_si512(t), bias), top);
            let keep = _mm512_cmplt_epu32_mask(b, vcut);
            let mut eq = _mm512_cmpeq_epi32_mask(b, vcut);
            while eq != 0 {
                let l = eq.trailing_zeros() as usize;
                keys[tied] = rank_key(*py.add(j + l), *pi.add(j + l));
                tied += 1;
                eq &= eq - 1;
            }
            let ky = _mm512_maskz_compress_ps(keep, y);
            let ki = _mm512_maskz_compress_epi32(keep, ids);
            _mm512_storeu_ps(py.add(kept), ky);
            _mm512_storeu_si512(pi.add(kept) as *mut _, ki);
            kept += keep.count_ones() as usize;
        }
        j += 16;
    }
    super::split_cut_tail(m, cut, cy, cid, keys, body, (kept, tied))
}

/// The whole chunks of weights a draw skips before `r` (argen-core's
/// `RowKernels::skip_chunks`, the same pair as `portable_skip_chunks`): each chunk of
/// The mask of the first `lanes` (1 to 16) of 16 lanes.
#[inline(always)]
fn lane_mask(lanes: usize) -> __mmask16 {
    if lanes >= 16 {
        0xffff
    } else {
        (1u16 << lanes) - 1
    }
}

/// [`LOCATE_CHUNK`] weights summed in 8 `u64` lanes (two accumulators, `vpaddq`, wrapping) with
/// an OR of its weights beside it (`vporq`); when every weight is below `2^56` the wrapping sum
/// is exact (`128 · 2^56 = 2^63`), otherwise the chunk is summed exactly by 32-bit halves
/// (scalar; no processed row takes that path).
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f,popcnt")]
pub unsafe fn skip_chunks(weights: &[u64], r: u128) -> (usize, u128) {
    const _: () = assert!(LOCATE_CHUNK.is_multiple_of(16));
    let mut acc = 0u128;
    let mut start = 0usize;
    for ws in weights.chunks_exact(LOCATE_CHUNK) {
        let p = ws.as_ptr();
        let (mut s0, mut s1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        let (mut o0, mut o1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        let mut v = 0;
        while v < LOCATE_CHUNK {
            // SAFETY: `v + 16 <= LOCATE_CHUNK == ws.len()`.
            unsafe {
                let a = _mm512_loadu_si512(p.add(v) as *const _);
                let b = _mm512_loadu_si512(p.add(v + 8) as *const _);
                s0 = _mm512_add_epi64(s0, a);
                s1 = _mm512_add_epi64(s1, b);
                o0 = _mm512_or_si512(o0, a);
                o1 = _mm512_or_si512(o1, b);
            }
            v += 16;
        }
        let sum = _mm512_reduce_add_epi64(_mm512_add_epi64(s0, s1)) as u64;
        let any = _mm512_reduce_or_epi64(_mm512_or_si512(o0, o1)) as u64;
        let sum = argen_core::dist::chunk_sum(ws, sum, any);
        if r < acc + sum {
            break;
        }
        acc += sum;
        start += LOCATE_CHUNK;
    }
    (start, acc)
}

/// The rank buckets `min(bits(d·16 + 2^23) − bits(2^23), 512)` of `d = m − y_j` (argen-core's
/// `RowKernels::buckets`): 16 lanes per step (`vsubps`, `vmulps`, `vaddps`, never fused;
/// `vpsubd`, `vpminud`), narrowed to 16 bits (`vpmovdw`); the last `len mod 16` lanes masked
/// (loads and stores), so nothing past `b[y.len() − 1]` is written.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f,popcnt")]
pub unsafe fn buckets(m: f32, y: &[f32], b: &mut [u16]) {
    let n = y.len();
    assert!(b.len() >= n, "buckets: output shorter than the input");
    let (vm, scale, round) = (
        _mm512_set1_ps(m),
        _mm512_set1_ps(16.0),
        _mm512_set1_ps(8_388_608.0),
    );
    let (bias, top) = (_mm512_set1_epi32(0x4b00_0000), _mm512_set1_epi32(512));
    let mut j = 0;
    while j < n {
        let lanes = (n - j).min(16);
        let k = lane_mask(lanes);
        // SAFETY: the masked load reads `y[j..j + lanes]` and the masked store writes
        // `b[j..j + lanes]`, both in bounds (`b.len() >= n`, asserted).
        unsafe {
            let yv = _mm512_maskz_loadu_ps(k, y.as_ptr().add(j));
            let t = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(vm, yv), scale), round);
            let bk = _mm512_min_epu32(_mm512_sub_epi32(_mm512_castps_si512(t), bias), top);
            _mm512_mask_cvtepi32_storeu_epi16(b.as_mut_ptr().add(j) as *mut _, k, bk);
        }
        j += 16;
    }
}

/// Top-p's bucket masses of candidates (argen-core's `RowKernels::bucket_masses`): per block
/// of 64 candidates, their weights and buckets by `weights_buckets` (below), then each weight added
/// to its bucket and the total (scalar: a histogram).
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f,popcnt")]
pub unsafe fn bucket_masses(m: f32, y: &[f32], mass: &mut [u64; BUCKETS]) -> u64 {
    let (mut w, mut b) = ([0u64; 64], [0u16; 64]);
    let mut total = 0u64;
    for ys in y.chunks(64) {
        // SAFETY: AVX-512F (this function's precondition); `w`, `b` hold 64 >= ys.len().
        unsafe { weights_buckets(m, ys, &mut w, &mut b) };
        for (&bj, &wj) in b[..ys.len()].iter().zip(&w) {
            total += wj;
            // `bj <= 512 < BUCKETS` (the bucket's `min`); the index check stays for safety.
            mass[bj as usize] += wj;
        }
    }
    total
}

/// The fixed-point weights `trunc(exp_f32(y_j − m) · 2^40)` and rank buckets of candidates
/// (`y_j − m ∈ [−32, 0]`; for [`bucket_masses`]): 16 lanes per step, the exponential by
/// [`crate::vmath`]'s `exp16` (bit-identical to `exp_f32`), the weight from the bits of
/// `e = M · 2^(E − 150)` as `((M | 2^23) · 2^17) >> min(127 − E, 63)` in two 8-lane `u64`
/// halves (`vpmovzxdq`, `vpsllq`, `vpsrlvq`; exact, as argen-core's `fixed_point`), the
/// bucket as in [`buckets`]; the last `len mod 16` lanes masked (loads and stores), so nothing
/// past `y.len()` is written.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f,popcnt")]
unsafe fn weights_buckets(m: f32, y: &[f32], w: &mut [u64], b: &mut [u16]) {
    let n = y.len();
    assert!(
        w.len() >= n && b.len() >= n,
        "weights_buckets: output shorter than the input"
    );
    let (vm, scale, round) = (
        _mm512_set1_ps(m),
        _mm512_set1_ps(16.0),
        _mm512_set1_ps(8_388_608.0),
    );
    let (bias, top) = (_mm512_set1_epi32(0x4b00_0000), _mm512_set1_epi32(512));
    let (mant, one, e127, max_shift) = (
        _mm512_set1_epi64(0x007f_ffff),
        _mm512_set1_epi64(0x0080_0000),
        _mm512_set1_epi64(127),
        _mm512_set1_epi64(63),
    );
    // `trunc(e · 2^40)` of 8 `f32` bit patterns widened to `u64` lanes.
    let fixed = |bits: __m512i| {
        let m = _mm512_or_si512(_mm512_and_si512(bits, mant), one);
        let shift = _mm512_min_epu64(
            _mm512_sub_epi64(e127, _mm512_srli_epi64::<23>(bits)),
            max_shift,
        );
        _mm512_srlv_epi64(_mm512_slli_epi64::<17>(m), shift)
    };
    let mut j = 0;
    while j < n {
        let lanes = (n - j).min(16);
        let k = lane_mask(lanes);
        // SAFETY: the masked load reads `y[j..j + lanes]`; the masked stores write
        // `w[j..j + lanes]` and `b[j..j + lanes]`, all in bounds (asserted).
        unsafe {
            let yv = _mm512_maskz_loadu_ps(k, y.as_ptr().add(j));
            let e = _mm512_castps_si512(crate::vmath::avx512::exp16(_mm512_sub_ps(yv, vm)));
            let lo = fixed(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(e)));
            let hi = fixed(_mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64::<1>(e)));
            let pw = w.as_mut_ptr().add(j) as *mut i64;
            _mm512_mask_storeu_epi64(pw, k as __mmask8, lo);
            _mm512_mask_storeu_epi64(pw.add(8), (k >> 8) as __mmask8, hi);
            let t = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(vm, yv), scale), round);
            let bk = _mm512_min_epu32(_mm512_sub_epi32(_mm512_castps_si512(t), bias), top);
            _mm512_mask_cvtepi32_storeu_epi16(b.as_mut_ptr().add(j) as *mut _, k, bk);
        }
        j += 16;
    }
}
