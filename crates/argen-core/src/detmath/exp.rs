//! Deterministic `e^x` in `f32`: the exponential of logit processing, attention softmax and the
//! model's activations.
//!
//! `exp_f32` follows the classical Cody–Waite reduction `x = k·ln2 + r`, `|r| ≤ ln2/2`, with the
//! minimax polynomial of Cephes' `expf` (S. Moshier, *Methods and Programs for Mathematical
//! Functions*, 1989) for `e^r`, and an exact scaling by `2^k`. Accuracy is within 2 ulp of the true
//! value over the normal range (tested), `exp_f32(0) == 1` exactly, and inputs below about −103.97
//! give `+0`. The normative, bit-exact statement (constants, evaluation order, the scaling below
//! `2^-126`) is section 4 of `docs/spec/determinism-v1.md`.

// Constants are given by their bit patterns: the kernels and the specification spell the same
// bits. Public so that a test can check the specification's constants table against them.
/// `log2 e` rounded to `f32`.
pub const LOG2E: f32 = f32::from_bits(0x3fb8aa3b);
/// High part of ln 2 (nine significant bits, so `k · C1` is exact for |k| < 2^15).
pub const C1: f32 = f32::from_bits(0x3f318000); // 0.693359375
/// Low part of ln 2: `ln 2 − C1`.
pub const C2: f32 = f32::from_bits(0xb95e8083); // -0.00021219444170128554
/// Coefficient of `r^7` in `e^r ≈ 1 + r + r²·(P0·r⁵ + P1·r⁴ + P2·r³ + P3·r² + P4·r + P5)`.
pub const P0: f32 = f32::from_bits(0x39506967); // 0.00019875691214110702
/// Coefficient of `r^6` (see [`P0`]).
pub const P1: f32 = f32::from_bits(0x3ab743ce); // 0.001398199936375022
/// Coefficient of `r^5` (see [`P0`]).
pub const P2: f32 = f32::from_bits(0x3c088908); // 0.008333452045917511
/// Coefficient of `r^4` (see [`P0`]).
pub const P3: f32 = f32::from_bits(0x3d2aa9c1); // 0.04166579619050026
/// Coefficient of `r^3` (see [`P0`]).
pub const P4: f32 = f32::from_bits(0x3e2aaaaa); // 0.1666666567325592
/// Coefficient of `r^2` (see [`P0`]).
pub const P5: f32 = f32::from_bits(0x3f000000); // 0.5
/// Above this, `e^x` overflows `f32`.
pub const MAX_ARG: f32 = f32::from_bits(0x42b17217); // 88.72283
/// Below this, `e^x` is below half the smallest subnormal.
pub const MIN_ARG: f32 = f32::from_bits(0xc2cff1b4); // -103.97208

/// `2^k` for `k` in the normal exponent range `−126..=127`.
#[inline(always)]
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// Deterministic `e^x` in `f32` (see the module documentation).
///
/// NaN gives NaN, `+∞` and arguments above 88.72283 give `+∞`, `−∞` and arguments below
/// −103.97208 give `+0`.
#[inline]
pub fn exp_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > MAX_ARG {
        return f32::INFINITY;
    }
    if x < MIN_ARG {
        return 0.0;
    }
    let k = libm::floorf(LOG2E * x + 0.5);
    let r = (x - k * C1) - k * C2;
    let z = r * r;
    let poly = ((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5;
    let p = (poly * z + r) + 1.0;
    let k = k as i32;
    if k > 127 {
        (p * pow2(k - 1)) * 2.0
    } else if k < -126 {
        (p * pow2(k + 64)) * pow2(-64)
    } else {
        p * pow2(k)
    }
}

/// [`exp_f32`] for `x ∈ [−87, 0]` without its range branches: the same operations in the same
/// order, so bit-identical there (tested exhaustively in release builds), and branch-free, so
/// a loop over a block of arguments vectorises (logit weights, [`crate::process()`]).
///
/// On that domain `v = LOG2E·x + 0.5 ∈ [−125.1, 0.5]`, so `k = floor(v)` lies in `−126..=0`
/// (the normal scaling branch of [`exp_f32`]). It is computed without a float-to-integer
/// conversion: adding and subtracting `R = 1.5·2^23` rounds `v` to the nearest integer `t`
/// exactly (every float in `[2^23, 2^24)` is an integer), `k = t − 1` if `t > v`, else `t` —
/// `floorf` for every `|v| < 2^22`. `k + R` is exact too, and its bits are `0x4b40_0000 + k`,
/// which gives the exponent field of `2^k` directly. Outside the domain the result is
/// unspecified (but it never panics).
#[inline(always)]
pub fn exp_f32_nonpos(x: f32) -> f32 {
    const R: f32 = 12_582_912.0; // 1.5 · 2^23
    let v = LOG2E * x + 0.5;
    let t = (v + R) - R;
    let k = if t > v { t - 1.0 } else { t };
    let r = (x - k * C1) - k * C2;
    let z = r * r;
    let poly = ((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5;
    let p = (poly * z + r) + 1.0;
    // (k + R) bits − 0x4b40_0000 = k, so adding 127 − 0x4b40_0000 gives k + 127.
    let biased = (k + R).to_bits().wrapping_sub(0x4b40_0000 - 127);
    p * f32::from_bits(biased << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulp_distance(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exact_points() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn within_two_ulp_of_the_true_value() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.0 {
            let truth = (x as f64).exp() as f32;
            worst = worst.max(ulp_distance(exp_f32(x), truth));
            x += 0.001_37;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn subnormal_results_are_close() {
        for i in 0..1000 {
            let x = -87.5 - i as f32 * 0.016;
            let truth = (x as f64).exp();
            let ours = exp_f32(x) as f64;
            assert!(
                (ours - truth).abs() <= 2.0 * f32::from_bits(1) as f64,
                "x={x}"
            );
        }
    }

    #[test]
    fn monotone_on_a_grid() {
        let mut prev = 0.0f32;
        let mut x = -100.0f32;
        while x <= 0.0 {
            let y = exp_f32(x);
            assert!(y >= prev, "not monotone at {x}");
            prev = y;
            x += 0.0173;
        }
    }
    #[test]
    #[cfg_attr(
        any(debug_assertions, not(target_arch = "x86_64")),
        ignore = "exhaustive: runs in x86-64 release builds (cargo test --release), not under qemu"
    )]
    fn nonpos_equals_exp_f32_on_every_float_of_its_domain() {
        // Every f32 in [-87, 0] (bit patterns 0x8000_0000 ..= 0xc2ae_0000), both zeros
        // included, split over four threads.
        extern crate std;
        let count = |range: core::ops::Range<u32>| {
            range
                .filter(|&bits| {
                    let x = f32::from_bits(bits);
                    exp_f32_nonpos(x).to_bits() != exp_f32(x).to_bits()
                })
                .count()
        };
        let (lo, hi) = (0x8000_0000u32, 0xc2ae_0001u32);
        let step = (hi - lo) / 4 + 1;
        let bad: usize = std::thread::scope(|s| {
            let parts: [_; 4] = core::array::from_fn(|t| {
                let a = lo + t as u32 * step;
                let b = (a + step).min(hi);
                s.spawn(move || count(a..b))
            });
            parts
                .into_iter()
                .map(|p| p.join().unwrap_or(usize::MAX))
                .sum()
        });
        assert_eq!(bad + count(0..1), 0);
        assert_eq!(f32::from_bits(0xc2ae_0000), -87.0);
    }

    #[test]
    fn nonpos_equals_exp_f32_on_a_grid() {
        let mut x = -87.0f32;
        while x <= 0.0 {
            for y in [
                x,
                f32::from_bits(x.to_bits() + 1),
                f32::from_bits(x.to_bits() - 1),
            ] {
                if (-87.0..=0.0).contains(&y) {
                    assert_eq!(exp_f32_nonpos(y).to_bits(), exp_f32(y).to_bits(), "{y}");
                }
            }
            x += 0.003_17;
        }
        for y in [
            0.0f32,
            -0.0,
            -87.0,
            -32.0,
            -1.0,
            -0.5,
            -f32::MIN_POSITIVE,
            -1e-30,
        ] {
            assert_eq!(exp_f32_nonpos(y).to_bits(), exp_f32(y).to_bits(), "{y}");
        }
    }
}
