//! Vectorised deterministic `exp`, SiLU and SwiGLU: [`argen_core::detmath::exp_f32`],
//! `silu_f32(a)` and `silu_f32(a) · b` on 16 (AVX-512), 8 (AVX2) or 4 (NEON) lanes, bit for bit.
//!
//! The scalar definition (normative: `docs/spec/determinism-v1.md` §4.1) is a Cody–Waite
//! reduction `x = k·ln2 + r` with `k = floor(log2e·x + 0.5)`, `r = (x − k·C1) − k·C2`, Cephes'
//! degree-7 polynomial `p = (poly(r)·r² + r) + 1` evaluated by Horner's rule, and an exact
//! scaling by `2^k` (in two steps when `2^k` is not a normal number). Every step is an IEEE-754
//! basic operation rounded to nearest-even, with no fused multiply-add, so a SIMD lane that
//! performs the same operations in the same order returns the same bits:
//! - `floor` is exact in both (`libm::floorf`, `vroundscaleps`/`vroundps` toward −∞, `vrndmq`);
//! - `k` is an integer of magnitude ≤ 151 for every argument that reaches the scaling, so its
//!   conversion to `i32` is exact; `2^k` is built from the exponent bits as in the scalar code;
//! - the three scalings (`k > 127`: `(p·2^(k−1))·2`, `k < −126`: `(p·2^(k+64))·2^−64`, else
//!   `p·2^k`) are all computed and the right one selected per lane, as are the special cases
//!   (NaN → the argument, `x > MAX_ARG` → `+∞`, `x < MIN_ARG` → `+0`), which the scalar code
//!   tests in that order (the three conditions are disjoint).
//!
//! SiLU is `v / (1 + exp(−v))` (negation is exact; `+` and `/` are correctly rounded in every
//! ISA), then the product with the gate's partner `b`. A NaN lane gives NaN in both codes (its
//! payload is not specified, as Rust does not specify it for the scalar code either).
//! The portable variant runs the scalar functions themselves. Tests: every variant the machine
//! supports against the scalar functions on a sweep of all f32 bit patterns (every 251st), on
//! specials and on every slice length 0…67 (the vector tails).

use crate::gemm::Variant;
use argen_core::detmath::{exp_f32, silu_f32};

/// `x[i] = exp_f32(x[i] − sub)` for every `i` (the subtraction rounded to `f32`, as the
/// softmax's `exp_f32(v − m)`).
pub fn exp_sub(variant: Variant, x: &mut [f32], sub: f32) {
    match variant {
        #[cfg(target_arch = "x86_64")]
        Variant::Avx512 if Variant::Avx512.unsupported().is_none() => {
            // SAFETY: AVX-512F is available (checked); the kernel stays inside `x`.
            unsafe { avx512::exp_sub(x, sub) }
        }
        #[cfg(target_arch = "x86_64")]
        Variant::Avx2 | Variant::Avx512 if Variant::Avx2.unsupported().is_none() => {
            // SAFETY: AVX2 is available (checked); the kernel stays inside `x`.
            unsafe { avx2::exp_sub(x, sub) }
        }
        #[cfg(target_arch = "aarch64")]
        Variant::Neon => neon::exp_sub(x, sub),
        _ => x.iter_mut().for_each(|v| *v = exp_f32(*v - sub)),
    }
}

/// `a[i] = silu_f32(a[i])` for every `i`: [`silu_mul`] by `1.0`, which is exact (`v · 1 = v`
/// for every `f32`, NaN staying NaN), in pieces of 256.
pub fn silu(variant: Variant, a: &mut [f32]) {
    const ONES: [f32; 256] = [1.0; 256];
    for c in a.chunks_mut(ONES.len()) {
        silu_mul(variant, c, &ONES);
    }
}

/// `a[i] = silu_f32(a[i]) · b[i]` for `i < min(a.len(), b.len())` (SwiGLU's gate).
pub fn silu_mul(variant: Variant, a: &mut [f32], b: &[f32]) {
    let n = a.len().min(b.len());
    let (a, b) = (&mut a[..n], &b[..n]);
    match variant {
        #[cfg(target_arch = "x86_64")]
        Variant::Avx512 if Variant::Avx512.unsupported().is_none() => {
            // SAFETY: AVX-512F is available (checked); both slices hold n floats.
            unsafe { avx512::silu_mul(a, b) }
        }
        #[cfg(target_arch = "x86_64")]
        Variant::Avx2 | Variant::Avx512 if Variant::Avx2.unsupported().is_none() => {
            // SAFETY: AVX2 is available (checked); both slices hold n floats.
            unsafe { avx2::silu_mul(a, b) }
        }
        #[cfg(target_arch = "aarch64")]
        Variant::Neon => neon::silu_mul(a, b),
        _ => a.iter_mut().zip(b).for_each(|(a, b)| *a = silu_f32(*a) * b),
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use argen_core::detmath::exp::{C1, C2, LOG2E, MAX_ARG, MIN_ARG, P0, P1, P2, P3, P4, P5};
    use argen_core::detmath::silu_f32;
    use std::arch::x86_64::*;

    /// 16 lanes of `exp_f32` (module docs).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn exp16(x: __m512) -> __m512 {
        let s = _mm512_set1_ps;
        let t = _mm512_add_ps(_mm512_mul_ps(s(LOG2E), x), s(0.5));
        let k = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(t);
        let r = _mm512_sub_ps(
            _mm512_sub_ps(x, _mm512_mul_ps(k, s(C1))),
            _mm512_mul_ps(k, s(C2)),
        );
        let z = _mm512_mul_ps(r, r);
        let mut poly = _mm512_add_ps(_mm512_mul_ps(s(P0), r), s(P1));
        poly = _mm512_add_ps(_mm512_mul_ps(poly, r), s(P2));
        poly = _mm512_add_ps(_mm512_mul_ps(poly, r), s(P3));
        poly = _mm512_add_ps(_mm512_mul_ps(poly, r), s(P4));
        poly = _mm512_add_ps(_mm512_mul_ps(poly, r), s(P5));
        let p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(poly, z), r), s(1.0));
        let ki = _mm512_cvtps_epi32(k);
        let pow2 = |e: __m512i| _mm512_castsi512_ps(_mm512_slli_epi32::<23>(e));
        let bias = |b: i32| _mm512_add_epi32(ki, _mm512_set1_epi32(b));
        let normal = _mm512_mul_ps(p, pow2(bias(127)));
        let high = _mm512_mul_ps(_mm512_mul_ps(p, pow2(bias(126))), s(2.0));
        let low = _mm512_mul_ps(
            _mm512_mul_ps(p, pow2(bias(191))),
            s(f32::from_bits(63 << 23)),
        );
        let hi = _mm512_cmpgt_epi32_mask(ki, _mm512_set1_epi32(127));
        let lo = _mm512_cmplt_epi32_mask(ki, _mm512_set1_epi32(-126));
        let mut y = _mm512_mask_blend_ps(hi, normal, high);
        y = _mm512_mask_blend_ps(lo, y, low);
        let over = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, s(MAX_ARG));
        let under = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, s(MIN_ARG));
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
        y = _mm512_mask_blend_ps(over, y, s(f32::INFINITY));
        y = _mm512_mask_blend_ps(under, y, s(0.0));
        _mm512_mask_blend_ps(nan, y, x)
    }

    /// # Safety
    /// Requires AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_sub(x: &mut [f32], sub: f32) {
        let n = x.len() / 16 * 16;
        let m = _mm512_set1_ps(sub);
        let p = x.as_mut_ptr();
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= n <= x.len().
            unsafe {
                let v = _mm512_sub_ps(_mm512_loadu_ps(p.add(i)), m);
                _mm512_storeu_ps(p.add(i), exp16(v));
            }
            i += 16;
        }
        let rest = x.len() - n;
        if rest > 0 {
            // The tail in one masked vector (short softmax rows are mostly tail); the masked-off
            // lanes compute exp(0 − sub) and are not stored.
            let mask: __mmask16 = (1u32 << rest) as u16 - 1;
            // SAFETY: the mask covers exactly the rest elements from n on.
            unsafe {
                let v = _mm512_sub_ps(_mm512_maskz_loadu_ps(mask, p.add(n)), m);
                _mm512_mask_storeu_ps(p.add(n), mask, exp16(v));
            }
        }
    }

    /// `e[i] = exp_f32(x[i] − sub)` for `i < x.len()` (logit weights: argen-core's
    /// `RowKernels::exp_shifted`).
    ///
    /// # Safety
    /// Requires AVX-512F; `e.len() >= x.len()`.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn exp_sub_to(x: &[f32], sub: f32, e: &mut [f32]) {
        assert!(
            e.len() >= x.len(),
            "exp_sub_to: output shorter than the input"
        );
        let n = x.len() / 16 * 16;
        let m = _mm512_set1_ps(sub);
        let (px, pe) = (x.as_ptr(), e.as_mut_ptr());
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= n <= x.len() <= e.len().
            unsafe {
                let v = _mm512_sub_ps(_mm512_loadu_ps(px.add(i)), m);
                _mm512_storeu_ps(pe.add(i), exp16(v));
            }
            i += 16;
        }
        let rest = x.len() - n;
        if rest > 0 {
            let mask: __mmask16 = (1u32 << rest) as u16 - 1;
            // SAFETY: the mask covers exactly the rest elements from n on, inside both slices.
            unsafe {
                let v = _mm512_sub_ps(_mm512_maskz_loadu_ps(mask, px.add(n)), m);
                _mm512_mask_storeu_ps(pe.add(n), mask, exp16(v));
            }
        }
    }

    /// # Safety
    /// Requires AVX-512F; `a.len() == b.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn silu_mul(a: &mut [f32], b: &[f32]) {
        let n = a.len() / 16 * 16;
        let (pa, pb) = (a.as_mut_ptr(), b.as_ptr());
        let one = _mm512_set1_ps(1.0);
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= n <= a.len() == b.len().
            unsafe {
                let v = _mm512_loadu_ps(pa.add(i));
                let neg = _mm512_castsi512_ps(_mm512_xor_si512(
                    _mm512_castps_si512(v),
                    _mm512_set1_epi32(i32::MIN),
                ));
                let e = exp16(neg);
                let s = _mm512_div_ps(v, _mm512_add_ps(one, e));
                _mm512_storeu_ps(pa.add(i), _mm512_mul_ps(s, _mm512_loadu_ps(pb.add(i))));
            }
            i += 16;
        }
        a[n..]
            .iter_mut()
            .zip(&b[n..])
            .for_each(|(a, b)| *a = silu_f32(*a) * b);
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use argen_core::detmath::exp::{C1, C2, LOG2E, MAX_ARG, MIN_ARG, P0, P1, P2, P3, P4, P5};
    use argen_core::detmath::silu_f32;
    use std::arch::x86_64::*;

    /// 8 lanes of `exp_f32` (module docs).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn exp8(x: __m256) -> __m256 {
        let s = _mm256_set1_ps;
        let t = _mm256_add_ps(_mm256_mul_ps(s(LOG2E), x), s(0.5));
        let k = _mm256_floor_ps(t);
        let r = _mm256_sub_ps(
            _mm256_sub_ps(x, _mm256_mul_ps(k, s(C1))),
            _mm256_mul_ps(k, s(C2)),
        );
        let z = _mm256_mul_ps(r, r);
        let mut poly = _mm256_add_ps(_mm256_mul_ps(s(P0), r), s(P1));
        poly = _mm256_add_ps(_mm256_mul_ps(poly, r), s(P2));
        poly = _mm256_add_ps(_mm256_mul_ps(poly, r), s(P3));
        poly = _mm256_add_ps(_mm256_mul_ps(poly, r), s(P4));
        poly = _mm256_add_ps(_mm256_mul_ps(poly, r), s(P5));
        let p = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(poly, z), r), s(1.0));
        let ki = _mm256_cvtps_epi32(k);
        let pow2 = |e: __m256i| _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e));
        let bias = |b: i32| _mm256_add_epi32(ki, _mm256_set1_epi32(b));
        let normal = _mm256_mul_ps(p, pow2(bias(127)));
        let high = _mm256_mul_ps(_mm256_mul_ps(p, pow2(bias(126))), s(2.0));
        let low = _mm256_mul_ps(
            _mm256_mul_ps(p, pow2(bias(191))),
            s(f32::from_bits(63 << 23)),
        );
        let hi = _mm256_castsi256_ps(_mm256_cmpgt_epi32(ki, _mm256_set1_epi32(127)));
        let lo = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(-126), ki));
        let mut y = _mm256_blendv_ps(normal, high, hi);
        y = _mm256_blendv_ps(y, low, lo);
        let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, s(MAX_ARG));
        let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, s(MIN_ARG));
        let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
        y = _mm256_blendv_ps(y, s(f32::INFINITY), over);
        y = _mm256_blendv_ps(y, s(0.0), under);
        _mm256_blendv_ps(y, x, nan)
    }

    /// `e[i] = exp_f32(x[i] − sub)` for `i < x.len()` (logit weights: argen-core's
    /// `RowKernels::exp_shifted`).
    ///
    /// # Safety
    /// Requires AVX2; `e.len() >= x.len()`.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn exp_sub_to(x: &[f32], sub: f32, e: &mut [f32]) {
        assert!(
            e.len() >= x.len(),
            "exp_sub_to: output shorter than the input"
        );
        let n = x.len() / 8 * 8;
        let m = _mm256_set1_ps(sub);
        let (px, pe) = (x.as_ptr(), e.as_mut_ptr());
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n <= x.len() <= e.len().
            unsafe {
                let v = _mm256_sub_ps(_mm256_loadu_ps(px.add(i)), m);
                _mm256_storeu_ps(pe.add(i), exp8(v));
            }
            i += 8;
        }
        for (ej, &xj) in e[n..x.len()].iter_mut().zip(&x[n..]) {
            *ej = argen_core::detmath::exp_f32(xj - sub);
        }
    }

    /// # Safety
    /// Requires AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn exp_sub(x: &mut [f32], sub: f32) {
        let n = x.len() / 8 * 8;
        let m = _mm256_set1_ps(sub);
        let p = x.as_mut_ptr();
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n <= x.len().
            unsafe {
                let v = _mm256_sub_ps(_mm256_loadu_ps(p.add(i)), m);
                _mm256_storeu_ps(p.add(i), exp8(v));
            }
            i += 8;
        }
        let rest = x.len() - n;
        if rest > 0 {
            // The tail through an 8-float buffer (short softmax rows are mostly tail).
            let mut buf = [0f32; 8];
            buf[..rest].copy_from_slice(&x[n..]);
            // SAFETY: `buf` holds 8 floats.
            unsafe {
                let v = _mm256_sub_ps(_mm256_loadu_ps(buf.as_ptr()), m);
                _mm256_storeu_ps(buf.as_mut_ptr(), exp8(v));
            }
            x[n..].copy_from_slice(&buf[..rest]);
        }
    }

    /// # Safety
    /// Requires AVX2; `a.len() == b.len()`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn silu_mul(a: &mut [f32], b: &[f32]) {
        let n = a.len() / 8 * 8;
        let (pa, pb) = (a.as_mut_ptr(), b.as_ptr());
        let one = _mm256_set1_ps(1.0);
        let sign = _mm256_set1_ps(-0.0);
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n <= a.len() == b.len().
            unsafe {
                let v = _mm256_loadu_ps(pa.add(i));
                let e = exp8(_mm256_xor_ps(v, sign));
                let s = _mm256_div_ps(v, _mm256_add_ps(one, e));
                _mm256_storeu_ps(pa.add(i), _mm256_mul_ps(s, _mm256_loadu_ps(pb.add(i))));
            }
            i += 8;
        }
        a[n..]
            .iter_mut()
            .zip(&b[n..])
            .for_each(|(a, b)| *a = silu_f32(*a) * b);
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use argen_core::detmath::exp::{C1, C2, LOG2E, MAX_ARG, MIN_ARG, P0, P1, P2, P3, P4, P5};
    use argen_core::detmath::{exp_f32, silu_f32};
    use std::arch::aarch64::*;

    /// 4 lanes of `exp_f32` (module docs). `vmulq`/`vaddq`/`vsubq` are the unfused IEEE
    /// operations (never `vfmaq`).
    #[inline]
    fn exp4(x: float32x4_t) -> float32x4_t {
        // SAFETY: Advanced SIMD is part of the aarch64 baseline.
        unsafe {
            let s = vdupq_n_f32;
            let t = vaddq_f32(vmulq_f32(s(LOG2E), x), s(0.5));
            let k = vrndmq_f32(t);
            let r = vsubq_f32(vsubq_f32(x, vmulq_f32(k, s(C1))), vmulq_f32(k, s(C2)));
            let z = vmulq_f32(r, r);
            let mut poly = vaddq_f32(vmulq_f32(s(P0), r), s(P1));
            poly = vaddq_f32(vmulq_f32(poly, r), s(P2));
            poly = vaddq_f32(vmulq_f32(poly, r), s(P3));
            poly = vaddq_f32(vmulq_f32(poly, r), s(P4));
            poly = vaddq_f32(vmulq_f32(poly, r), s(P5));
            let p = vaddq_f32(vaddq_f32(vmulq_f32(poly, z), r), s(1.0));
            let ki = vcvtq_s32_f32(k);
            let pow2 =
                |b: i32| vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(ki, vdupq_n_s32(b))));
            let normal = vmulq_f32(p, pow2(127));
            let high = vmulq_f32(vmulq_f32(p, pow2(126)), s(2.0));
            let low = vmulq_f32(vmulq_f32(p, pow2(191)), s(f32::from_bits(63 << 23)));
            let hi = vcgtq_s32(ki, vdupq_n_s32(127));
            let lo = vcltq_s32(ki, vdupq_n_s32(-126));
            let mut y = vbslq_f32(hi, high, normal);
            y = vbslq_f32(lo, low, y);
            y = vbslq_f32(vcgtq_f32(x, s(MAX_ARG)), s(f32::INFINITY), y);
            y = vbslq_f32(vcltq_f32(x, s(MIN_ARG)), s(0.0), y);
            // A NaN lane compares unequal to itself.
            vbslq_f32(vceqq_f32(x, x), y, x)
        }
    }

    pub fn exp_sub(x: &mut [f32], sub: f32) {
        let n = x.len() / 4 * 4;
        for c in x[..n].chunks_exact_mut(4) {
            // SAFETY: `c` holds 4 floats; Advanced SIMD is baseline.
            unsafe {
                let v = vsubq_f32(vld1q_f32(c.as_ptr()), vdupq_n_f32(sub));
                vst1q_f32(c.as_mut_ptr(), exp4(v));
            }
        }
        x[n..].iter_mut().for_each(|v| *v = exp_f32(*v - sub));
    }

    pub fn silu_mul(a: &mut [f32], b: &[f32]) {
        let n = a.len() / 4 * 4;
        for (ca, cb) in a[..n].chunks_exact_mut(4).zip(b[..n].chunks_exact(4)) {
            // SAFETY: both chunks hold 4 floats; Advanced SIMD is baseline.
            unsafe {
                let v = vld1q_f32(ca.as_ptr());
                let e = exp4(vnegq_f32(v));
                let s = vdivq_f32(v, vaddq_f32(vdupq_n_f32(1.0), e));
                vst1q_f32(ca.as_mut_ptr(), vmulq_f32(s, vld1q_f32(cb.as_ptr())));
            }
        }
        a[n..]
            .iter_mut()
            .zip(&b[n..])
            .for_each(|(a, b)| *a = silu_f32(*a) * b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variants this machine runs; prints `SKIPPED <name>: <reason>` for the others.
    fn supported() -> Vec<Variant> {
        let mut v = Vec::new();
        for var in Variant::ALL {
            match var.unsupported() {
                None => v.push(var),
                Some(why) => println!("SKIPPED vmath {}: {why}", var.name()),
            }
        }
        v
    }

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// Every 251st f32 bit pattern (all signs, exponents, NaNs, subnormals) plus specials.
    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (0..=u32::MAX / 251)
            .map(|i| f32::from_bits(i * 251))
            .collect();
        v.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            88.72283,
            88.72284,
            -103.97208,
            -103.97209,
            -87.3,
            -87.4,
            -88.0,
            88.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
        ]);
        // Dense near the scaling boundaries (k = −126, 127, 128, −150).
        for c in [-87.33655f32, 87.68, 88.37, -103.9, 0.34657, -0.34657] {
            let b = c.to_bits();
            v.extend((0..2000u32).map(|d| f32::from_bits(b - 1000 + d)));
        }
        v
    }

    #[test]
    fn exp_matches_the_scalar_definition_bit_for_bit() {
        let xs = inputs();
        for var in supported() {
            for sub in [0.0f32, 1.5, -3.25] {
                let mut y = xs.clone();
                exp_sub(var, &mut y, sub);
                for (&x, &y) in xs.iter().zip(&y) {
                    let want = exp_f32(x - sub);
                    assert!(
                        same(y, want),
                        "{}: exp({x:e} - {sub}) = {y:e}, want {want:e}",
                        var.name()
                    );
                }
            }
        }
    }

    #[test]
    fn silu_matches_the_scalar_definition_bit_for_bit() {
        let xs = inputs();
        for var in supported() {
            // Every length 0…600 (pieces and vector tails), then the whole sweep.
            for n in (0..600).chain([xs.len()]) {
                let mut y = xs[..n].to_vec();
                silu(var, &mut y);
                for (&x, &y) in xs.iter().zip(&y) {
                    let want = silu_f32(x);
                    assert!(
                        same(y, want),
                        "{}: silu({x:e}) = {y:e}, want {want:e}",
                        var.name()
                    );
                }
            }
        }
    }

    #[test]
    fn silu_mul_matches_the_scalar_definition_bit_for_bit() {
        let xs = inputs();
        // Partners: a rotation of the inputs (all magnitudes) and plain numbers.
        let bs: Vec<f32> = (0..xs.len())
            .map(|i| {
                if i % 3 == 0 {
                    xs[(i * 7919) % xs.len()]
                } else {
                    1.0 + (i % 97) as f32 * 0.03125
                }
            })
            .collect();
        for var in supported() {
            let mut a = xs.clone();
            silu_mul(var, &mut a, &bs);
            for i in 0..xs.len() {
                let want = silu_f32(xs[i]) * bs[i];
                assert!(
                    same(a[i], want),
                    "{}: silu({:e}) * {:e} = {:e}, want {want:e}",
                    var.name(),
                    xs[i],
                    bs[i],
                    a[i]
                );
            }
        }
    }

    #[test]
    fn every_tail_length_matches() {
        for var in supported() {
            for n in 0..68usize {
                let x: Vec<f32> = (0..n).map(|i| (i as f32 - 30.0) * 0.37).collect();
                let b: Vec<f32> = (0..n + 3).map(|i| 0.5 + i as f32 * 0.01).collect();
                let mut y = x.clone();
                exp_sub(var, &mut y, 0.25);
                let mut s = x.clone();
                silu_mul(var, &mut s, &b);
                for i in 0..n {
                    assert!(
                        same(y[i], exp_f32(x[i] - 0.25)),
                        "{} n={n} i={i}",
                        var.name()
                    );
                    assert!(
                        same(s[i], silu_f32(x[i]) * b[i]),
                        "{} n={n} i={i}",
                        var.name()
                    );
                }
            }
        }
    }
}
