//! The AVX-512F row kernels (see [`super`] for the contracts and the table of variants).
//!
//! Clean pass, 16 lanes per step: `d = c − u`, `t = s·d`, `g = u + t`, `y = g·scale + 0`
//! (`vsubps`, `vmulps`, `vaddps`, never fused), stored; the maximum in a `vmaxps` accumulator
//! (a NaN can only reach it when the finiteness flag is set, and then the maximum is
//! discarded); finiteness as the OR of `(bits & 0x7fff_ffff) + 0x0080_0000` (bit 31 set iff
//! the exponent is all ones). The last `len mod 16` elements go through argen-core's portable
//! pass.

use super::join;
use argen_core::process::{portable_plain, portable_two_way, HOPELESS};
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
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
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

#[target_feature(enable = "avx512f")]
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

#[target_feature(enable = "avx512f")]
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
#[target_feature(enable = "avx512f")]
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
#[target_feature(enable = "avx512f")]
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
#[target_feature(enable = "avx512f")]
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
