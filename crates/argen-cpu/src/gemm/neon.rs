//! aarch64 Advanced SIMD micro-kernels ([`super::Variant::Neon`]): each 8-lane accumulator is a pair of `float32x4_t`.

use super::{Elem, TilePtrs, MR_ACC, NR};
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
    unsafe fn load_row<const PACKED: bool>(p: *const bf16, j: usize) -> (float32x4_t, float32x4_t) {
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
    acc: &mut [[f32; NR]; MR_ACC],
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
