//! Deterministic transcendental functions.
//!
//! Device math libraries (`expf` in CUDA, OpenCL, glibc, `libm`) differ in their last bits, so any
//! result that must be identical on every backend uses these functions instead. They use only
//! IEEE-754 basic operations (`+ − × /`, `floor`), each rounded to nearest-even, in one fixed order
//! with no fused multiply-add; the CUDA/OpenCL kernels port them line for line and are compiled
//! with contraction off, so the same bits come out everywhere.
//!
//! `exp_f32` follows the classical Cody–Waite reduction `x = k·ln2 + r`, `|r| ≤ ln2/2`, with the
//! minimax polynomial of Cephes' `expf` (S. Moshier, *Methods and Programs for Mathematical
//! Functions*, 1989) for `e^r`, and an exact scaling by `2^k`. Accuracy is within 2 ulp of the true
//! value over the normal range (tested), `exp_f32(0) == 1` exactly, and inputs below about −103.97
//! give `+0`.

const LOG2E: f32 = core::f32::consts::LOG2_E; // 0x3fb8aa3b
                                              // Constants are given by their bit patterns: the kernels spell the same bits as hex floats.
/// High part of ln 2 (nine significant bits, so `k · C1` is exact for |k| < 2^15).
const C1: f32 = f32::from_bits(0x3f318000); // 0.693359375
/// Low part of ln 2: `ln 2 − C1`.
const C2: f32 = f32::from_bits(0xb95e8083); // -0.00021219444170128554
const P0: f32 = f32::from_bits(0x39506967); // 0.00019875691214110702
const P1: f32 = f32::from_bits(0x3ab743ce); // 0.001398199936375022
const P2: f32 = f32::from_bits(0x3c088908); // 0.008333452045917511
const P3: f32 = f32::from_bits(0x3d2aa9c1); // 0.04166579619050026
const P4: f32 = f32::from_bits(0x3e2aaaaa); // 0.1666666567325592
const P5: f32 = f32::from_bits(0x3f000000); // 0.5
/// Above this, `e^x` overflows `f32`.
const MAX_ARG: f32 = 88.722_83;
/// Below this, `e^x` is below half the smallest subnormal.
const MIN_ARG: f32 = -103.972_08;

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
}
