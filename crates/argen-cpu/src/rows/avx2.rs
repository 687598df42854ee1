//! The AVX2 (+ F16C) row kernels (see [`super`] for the contracts and the table of
//! variants): the AVX-512 kernels' operations on 8 lanes. The candidate scan has no
//! compress instruction here: the 8-bit mask of a compare (`vmovmskps`) indexes
//! a table (`SET_BITS`) whose row lists the set lanes first, and `vpermd` gathers those lanes' ids
//! to the front of one 32-byte store.

use super::join;
use argen_core::process::{portable_plain, portable_two_way, HOPELESS};
use argen_core::LogitRow;
use core::arch::x86_64::*;
use half::{bf16, f16};

/// For each 8-bit mask, the positions of its set bits, lowest first (padded with 0).
static SET_BITS: [[u32; 8]; 256] = super::set_bits::<8, 256>();

/// Exact widening of 8 elements to `f32` lanes.
trait Lanes: Copy {
    /// Loads and widens 8 elements.
    ///
    /// # Safety
    /// `p` must be valid for reading 8 elements, and the CPU must have AVX2 and F16C.
    unsafe fn load8(p: *const Self) -> __m256;
}

impl Lanes for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> __m256 {
        // SAFETY: the caller guarantees 8 readable elements.
        unsafe { _mm256_loadu_ps(p) }
    }
}

impl Lanes for bf16 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> __m256 {
        // SAFETY: the caller guarantees 8 readable elements (16 bytes); zero-extend and shift
        // into the upper half of each f32 lane (exact).
        unsafe {
            let h = _mm_loadu_si128(p as *const __m128i);
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
        }
    }
}

impl Lanes for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> __m256 {
        // SAFETY: the caller guarantees 8 readable elements (16 bytes); `vcvtph2ps` is exact.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
}

/// Finiteness flags and maximum of an 8-lane body (as in the AVX-512 kernels).
struct Acc {
    mx: __m256,
    flags: __m256i,
}

impl Acc {
    #[inline(always)]
    unsafe fn new() -> Self {
        // SAFETY: register initialisation; the caller has AVX2.
        unsafe {
            Acc {
                mx: _mm256_set1_ps(f32::NEG_INFINITY),
                flags: _mm256_setzero_si256(),
            }
        }
    }

    #[inline(always)]
    unsafe fn add(&mut self, s: __m256) {
        // SAFETY: register arithmetic; the caller has AVX2.
        unsafe {
            let b = _mm256_castps_si256(s);
            let e = _mm256_add_epi32(
                _mm256_and_si256(b, _mm256_set1_epi32(0x7fff_ffff)),
                _mm256_set1_epi32(0x0080_0000),
            );
            self.flags = _mm256_or_si256(self.flags, e);
            self.mx = _mm256_max_ps(self.mx, s);
        }
    }

    #[inline(always)]
    unsafe fn finish(&self) -> Option<f32> {
        // SAFETY: register reductions; the caller has AVX2.
        unsafe {
            if _mm256_movemask_ps(_mm256_castsi256_ps(self.flags)) != 0 {
                return None;
            }
            let mut lanes = [0.0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), self.mx);
            Some(
                lanes
                    .iter()
                    .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a }),
            )
        }
    }
}

#[target_feature(enable = "avx2,f16c,popcnt")]
fn plain_body<E: Lanes>(x: &[E], scale: f32, y: &mut [f32]) -> Option<f32> {
    let body = x.len() / 8 * 8;
    assert!(y.len() >= body, "output row shorter than the input");
    let vscale = _mm256_set1_ps(scale);
    let zero = _mm256_setzero_ps();
    // SAFETY: AVX2 is enabled in this function.
    let mut acc = unsafe { Acc::new() };
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 8 <= body <= x.len()`, and `<= y.len()` (asserted).
        unsafe {
            let s = _mm256_add_ps(_mm256_mul_ps(E::load8(x.as_ptr().add(i)), vscale), zero);
            _mm256_storeu_ps(y.as_mut_ptr().add(i), s);
            acc.add(s);
        }
        i += 8;
    }
    // SAFETY: AVX2 is enabled in this function.
    unsafe { acc.finish() }
}

#[target_feature(enable = "avx2,f16c,popcnt")]
fn two_way_body<E: Lanes>(c: &[E], u: &[E], cfg: f32, scale: f32, y: &mut [f32]) -> Option<f32> {
    let body = c.len() / 8 * 8;
    assert!(
        u.len() >= body && y.len() >= body,
        "rows of different lengths"
    );
    let (vcfg, vscale) = (_mm256_set1_ps(cfg), _mm256_set1_ps(scale));
    let zero = _mm256_setzero_ps();
    // SAFETY: AVX2 is enabled in this function.
    let mut acc = unsafe { Acc::new() };
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 8 <= body`, within `c`, `u` and `y` (asserted).
        unsafe {
            let cv = E::load8(c.as_ptr().add(i));
            let uv = E::load8(u.as_ptr().add(i));
            let g = _mm256_add_ps(uv, _mm256_mul_ps(vcfg, _mm256_sub_ps(cv, uv)));
            let s = _mm256_add_ps(_mm256_mul_ps(g, vscale), zero);
            _mm256_storeu_ps(y.as_mut_ptr().add(i), s);
            acc.add(s);
        }
        i += 8;
    }
    // SAFETY: AVX2 is enabled in this function.
    unsafe { acc.finish() }
}

/// The clean pass of an unguided row.
///
/// # Safety
/// The CPU must have AVX2 and F16C.
#[target_feature(enable = "avx2,f16c,popcnt")]
pub unsafe fn plain(row: LogitRow<'_>, scale: f32, y: &mut [f32]) -> Option<f32> {
    let n = match row {
        LogitRow::F32(r) => r.len(),
        LogitRow::F16(r) => r.len(),
        LogitRow::Bf16(r) => r.len(),
    };
    let body = n / 8 * 8;
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
/// The CPU must have AVX2 and F16C.
#[target_feature(enable = "avx2,f16c,popcnt")]
pub unsafe fn two_way(
    cond: LogitRow<'_>,
    uncond: LogitRow<'_>,
    cfg: f32,
    scale: f32,
    y: &mut [f32],
) -> Option<f32> {
    let (n, b, tc, tu) = match (cond, uncond) {
        (LogitRow::F32(c), LogitRow::F32(u)) if c.len() == u.len() => {
            let body = c.len() / 8 * 8;
            let b = two_way_body(c, u, cfg, scale, y);
            (
                c.len(),
                b,
                LogitRow::F32(&c[body..]),
                LogitRow::F32(&u[body..]),
            )
        }
        (LogitRow::F16(c), LogitRow::F16(u)) if c.len() == u.len() => {
            let body = c.len() / 8 * 8;
            let b = two_way_body(c, u, cfg, scale, y);
            (
                c.len(),
                b,
                LogitRow::F16(&c[body..]),
                LogitRow::F16(&u[body..]),
            )
        }
        (LogitRow::Bf16(c), LogitRow::Bf16(u)) if c.len() == u.len() => {
            let body = c.len() / 8 * 8;
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
    let body = n / 8 * 8;
    let t = portable_two_way(tc, tu, cfg, scale, &mut y[body..n]);
    join(b, t, n - body)
}

/// The candidate scan: ids with `y − m ≥ −32`, ascending, into `order`.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2,popcnt")]
pub unsafe fn candidates(y: &[f32], m: f32, order: &mut [u32]) -> usize {
    assert!(order.len() >= y.len(), "order shorter than the row");
    let body = y.len() / 8 * 8;
    let (vm, floor) = (_mm256_set1_ps(m), _mm256_set1_ps(HOPELESS));
    let mut ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let step = _mm256_set1_epi32(8);
    let mut count = 0usize;
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 8 <= body <= y.len()`; the store writes `order[count..count + 8]`
        // with `count <= i`, so within `order` (asserted); the table row has 8 entries.
        unsafe {
            let d = _mm256_sub_ps(_mm256_loadu_ps(y.as_ptr().add(i)), vm);
            let mask = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(d, floor)) as usize;
            let idx = _mm256_loadu_si256(SET_BITS[mask].as_ptr() as *const __m256i);
            let packed = _mm256_permutevar8x32_epi32(ids, idx);
            _mm256_storeu_si256(order.as_mut_ptr().add(count) as *mut __m256i, packed);
            count += mask.count_ones() as usize;
            ids = _mm256_add_epi32(ids, step);
        }
        i += 8;
    }
    for (j, &yj) in y.iter().enumerate().skip(body) {
        order[count] = j as u32;
        count += (yj - m >= HOPELESS) as usize;
    }
    count
}
