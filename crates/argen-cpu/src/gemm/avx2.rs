//! AVX2 + FMA + F16C micro-kernels ([`super::Variant::Avx2`]): `MR × NR` tiles of 8-lane `ymm` accumulators.

use super::{Elem, TilePtrs, MR_ACC, NR};
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
            acc: &mut [[f32; NR]; MR_ACC],
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
    acc: &mut [[f32; NR]; MR_ACC],
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
