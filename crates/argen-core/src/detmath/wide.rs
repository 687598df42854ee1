//! Deterministic `f64` exponential, logarithm, sine and cosine for host-side tables and scores.
//!
//! These are not on the per-token hot path: they build the 2D RoPE table once per model
//! (`argen_model::stack::rope_table`) and compute the implicit-PMI judge's log-likelihoods. They
//! are accurate to a few `f64` ulp (so a value rounded to `f32` afterwards is almost always the
//! correctly rounded one, keeping parity with PyTorch's `f32` tables) and, above all, they are the
//! same bits everywhere: basic IEEE operations only, in the fixed order written here.
//!
//! * [`exp_f64`]: `k = floor(x·log2 e + ½)`, `r = (x − k·LN2_HI) − k·LN2_LO` (Cody–Waite; `LN2_HI`
//!   has 32 significant bits so `k·LN2_HI` is exact), `e^r` by its Taylor polynomial of degree 13
//!   in Horner form `(((c13·r + c12)·r + …)·r + c1)·r + 1` with `c_n = 1/n!` rounded to `f64`
//!   (truncation error below `2^-58` for `|r| ≤ ln2/2`), then `·2^k` by exact scaling (two steps
//!   below `2^-1022`). `x > 709.78` gives `+∞`, `x < −745.2` gives `+0`, NaN gives NaN.
//! * [`ln_f64`] (`x > 0`): `x = m·2^e` with `m ∈ [√½, √2)` (subnormals are first scaled by
//!   `2^54`), `s = (m − 1)/(m + 1)`, `ln m = 2s·Σ_{j=0}^{12} s^{2j}/(2j+1)` (Horner in `s²`,
//!   `|s| ≤ 0.1716`, truncation below `2^-60`), `ln x = e·LN2_HI + (e·LN2_LO + ln m)`.
//!   `ln 0 = −∞`, negative or NaN arguments give NaN, `ln ∞ = ∞`.
//! * [`sin_cos_f64`]: `k = floor(x·2/π + ½)`, `r = ((x − k·P1) − k·P2) − k·P3` with the three-part
//!   `π/2` of fdlibm (`P1` has 33 significant bits, exact products for `|k| < 2^20`), then the
//!   Taylor polynomials of `sin r` (to `r^21`) and `cos r` (to `r^20`) and the quadrant `k mod 4`.
//!   Accurate for `|x| < 2^20`; beyond that still deterministic but not accurate. Non-finite
//!   arguments give NaN.

/// High part of `ln 2` (`0x3fe62e42fee00000`, 32 significant bits).
pub const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// Low part of `ln 2`: `ln 2 − LN2_HI` rounded (`0x3dea39ef35793c76`).
pub const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// `log2 e` rounded to `f64`.
const LOG2E: f64 = core::f64::consts::LOG2_E;
/// `2/π` rounded to `f64`.
const TWO_OVER_PI: f64 = core::f64::consts::FRAC_2_PI;
/// First 33 bits of `π/2` (fdlibm `pio2_1`).
pub const PIO2_1: f64 = f64::from_bits(0x3ff9_21fb_5440_0000);
/// Next 33 bits of `π/2` (fdlibm `pio2_2`).
pub const PIO2_2: f64 = f64::from_bits(0x3dd0_b461_1a60_0000);
/// `π/2 − PIO2_1 − PIO2_2` rounded (fdlibm `pio2_3`).
pub const PIO2_3: f64 = f64::from_bits(0x3ba3_198a_2e03_7073);

/// `INV_FACT[n] = 1/n!` for `n = 0..=21`: `n!` is formed in `f64` as `((2·3)·4)·…·n` — every
/// product is exact, since the odd part of `n!` is below `2^53` up to `21!` — then one IEEE
/// division `1/n!`, so each entry is `1/n!` correctly rounded.
const INV_FACT: [f64; 22] = {
    let mut t = [1.0f64; 22];
    let mut f = 1.0f64;
    let mut n = 2;
    while n < 22 {
        f *= n as f64;
        t[n] = 1.0 / f;
        n += 1;
    }
    t
};

/// `2^k` for `k ∈ [−1022, 1023]`.
#[inline(always)]
fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// Deterministic `e^x` in `f64` (see the module documentation).
pub fn exp_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.78 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    let kf = libm::floor(x * LOG2E + 0.5);
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    let mut p = INV_FACT[13];
    let mut n = 12;
    while n >= 1 {
        p = p * r + INV_FACT[n];
        n -= 1;
    }
    let p = p * r + 1.0;
    let k = kf as i64;
    if k > 1023 {
        (p * pow2(k - 1)) * 2.0
    } else if k < -1022 {
        (p * pow2(k + 512)) * pow2(-512)
    } else {
        p * pow2(k)
    }
}

/// Deterministic natural logarithm in `f64` (see the module documentation).
pub fn ln_f64(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    let (x, bias) = if x < f64::MIN_POSITIVE {
        (x * pow2(54), 54)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023 - bias;
    // m in [1, 2): exponent field set to 1023.
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m >= core::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let mut q = 1.0 / 25.0;
    let mut j = 11;
    while j >= 0 {
        q = q * z + 1.0 / (2 * j + 1) as f64;
        j -= 1;
    }
    let ln_m = (2.0 * s) * q;
    let e = e as f64;
    e * LN2_HI + (e * LN2_LO + ln_m)
}

/// Deterministic `(sin x, cos x)` in `f64` (see the module documentation).
pub fn sin_cos_f64(x: f64) -> (f64, f64) {
    if !x.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let kf = libm::floor(x * TWO_OVER_PI + 0.5);
    let r = ((x - kf * PIO2_1) - kf * PIO2_2) - kf * PIO2_3;
    let z = r * r;
    // sin r = r·Σ_{j=0}^{10} (−1)^j z^j/(2j+1)!, cos r = Σ_{j=0}^{10} (−1)^j z^j/(2j)!, Horner in z.
    let mut s = INV_FACT[21];
    let mut c = INV_FACT[20];
    let mut j = 9;
    while j >= 1 {
        let sign = if j % 2 == 1 { -1.0 } else { 1.0 };
        s = s * z + sign * INV_FACT[2 * j + 1];
        c = c * z + sign * INV_FACT[2 * j];
        j -= 1;
    }
    let sin_r = (s * z + 1.0) * r;
    let cos_r = c * z + 1.0;
    let (s, c) = match (kf as i64).rem_euclid(4) {
        0 => (sin_r, cos_r),
        1 => (cos_r, -sin_r),
        2 => (-sin_r, -cos_r),
        _ => (-cos_r, sin_r),
    };
    (s, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn constants() {
        assert_eq!(LN2_HI + LN2_LO, core::f64::consts::LN_2);
        assert_eq!((PIO2_1 + PIO2_2) + PIO2_3, core::f64::consts::FRAC_PI_2);
        assert_eq!(INV_FACT[21], 1.0 / 51_090_942_171_709_440_000.0);
        assert_eq!(INV_FACT[0], 1.0);
        assert_eq!(INV_FACT[1], 1.0);
    }

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0;
        let mut x = -700.0f64;
        while x < 700.0 {
            worst = worst.max(ulps(exp_f64(x), x.exp()));
            x += 0.0731;
        }
        assert!(worst <= 2, "worst {worst} ulp");
        assert_eq!(exp_f64(0.0), 1.0);
        assert_eq!(exp_f64(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_f64(710.0), f64::INFINITY);
        assert!(exp_f64(f64::NAN).is_nan());
        let tiny = exp_f64(-740.0);
        assert!(tiny > 0.0 && (tiny - (-740.0f64).exp()).abs() <= 2.0 * f64::from_bits(1));
    }

    #[test]
    fn ln_is_accurate() {
        let mut worst = 0;
        let mut x = 1e-300f64;
        while x < 1e300 {
            worst = worst.max(ulps(ln_f64(x), x.ln()));
            x *= 1.0137;
        }
        let mut x = 0.5f64;
        while x < 2.0 {
            let d = (ln_f64(x) - x.ln()).abs();
            assert!(
                d <= 2.0 * f64::EPSILON * x.ln().abs().max(f64::EPSILON),
                "{x}"
            );
            x += 0.000_731;
        }
        assert!(worst <= 2, "worst {worst} ulp");
        assert_eq!(ln_f64(1.0), 0.0);
        assert_eq!(ln_f64(0.0), f64::NEG_INFINITY);
        assert!(ln_f64(-1.0).is_nan());
        assert!((ln_f64(f64::from_bits(1)) - (f64::from_bits(1)).ln()).abs() < 1e-12);
    }

    #[test]
    fn sin_cos_are_accurate() {
        let mut x = -200.0f64;
        while x < 200.0 {
            let (s, c) = sin_cos_f64(x);
            assert!((s - x.sin()).abs() <= 4.0 * f64::EPSILON, "sin {x}");
            assert!((c - x.cos()).abs() <= 4.0 * f64::EPSILON, "cos {x}");
            x += 0.00917;
        }
        assert_eq!(sin_cos_f64(0.0), (0.0, 1.0));
        assert!(sin_cos_f64(f64::INFINITY).0.is_nan());
    }
}
