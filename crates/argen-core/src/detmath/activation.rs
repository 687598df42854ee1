//! Model activations built on [`exp_f32`]: SiLU and the tanh-approximated GELU.
//!
//! * `silu(v) = v · σ(v) = v / (1 + e^(−v))`, evaluated as `v / (1 + exp_f32(−v))` (one negation,
//!   one `exp_f32`, one addition, one division).
//! * `gelu_tanh(v) = ½·v·(1 + tanh(u))` with `u = √(2/π)·(v + 0.044715·v³)` (Hendrycks & Gimpel,
//!   *Gaussian Error Linear Units*, 2016; PyTorch's `gelu(approximate="tanh")`). Since
//!   `½(1 + tanh u) = 1 / (1 + e^(−2u))`, it is evaluated without any `tanh`, in this order:
//!   `t = ((A · v) · v) · v`, `u = C · (v + t)`, `g = v / (1 + exp_f32(−2 · u))`, where
//!   `C = 0x3f4c422a` (`√(2/π)` rounded to `f32`) and `A = 0x3d372713` (`0.044715` rounded to
//!   `f32`). For large `|v|` this saturates exactly: `e^(−2u) = +∞` gives `−0`, `e^(−2u) = 0`
//!   gives `v`.
//!
//! The CUDA/OpenCL kernel `argen_eltwise` (`crates/argen-cuda/kernels/model.krn`) evaluates the
//! same expressions, so the CPU and GPU runtimes agree bit for bit on these activations.

use super::exp_f32;

/// `√(2/π)` rounded to `f32` (bits `0x3f4c422a`).
pub const GELU_C: f32 = f32::from_bits(0x3f4c422a);
/// `0.044715` rounded to `f32` (bits `0x3d372713`).
pub const GELU_A: f32 = f32::from_bits(0x3d372713);

/// Deterministic SiLU: `v / (1 + exp_f32(−v))`.
#[inline(always)]
pub fn silu_f32(v: f32) -> f32 {
    v / (1.0 + exp_f32(-v))
}

/// Deterministic tanh-approximated GELU: `v / (1 + exp_f32(−2·u))`,
/// `u = GELU_C · (v + ((GELU_A · v) · v) · v)` (see the module documentation).
#[inline(always)]
pub fn gelu_tanh_f32(v: f32) -> f32 {
    let t = GELU_A * v * v * v;
    let u = GELU_C * (v + t);
    v / (1.0 + exp_f32(-2.0 * u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_the_rounded_values() {
        assert_eq!(GELU_C, (2.0f64 / core::f64::consts::PI).sqrt() as f32);
        assert_eq!(GELU_A, 0.044715f32);
    }

    #[test]
    fn close_to_the_textbook_formulas() {
        let mut v = -12.0f32;
        while v < 12.0 {
            let x = v as f64;
            let u = (2.0 / core::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
            let gelu = 0.5 * x * (1.0 + u.tanh());
            let silu = x / (1.0 + (-x).exp());
            let tol = |t: f64| 2e-6 * t.abs() + 1e-9;
            assert!(
                (gelu_tanh_f32(v) as f64 - gelu).abs() <= tol(gelu),
                "gelu {v}"
            );
            assert!((silu_f32(v) as f64 - silu).abs() <= tol(silu), "silu {v}");
            v += 0.0137;
        }
    }

    #[test]
    fn saturation_and_special_values() {
        assert_eq!(gelu_tanh_f32(0.0), 0.0);
        assert_eq!(gelu_tanh_f32(1e20), 1e20);
        assert_eq!(gelu_tanh_f32(-1e20).to_bits(), (-0.0f32).to_bits());
        assert_eq!(silu_f32(200.0), 200.0);
        assert_eq!(silu_f32(-200.0).to_bits(), (-0.0f32).to_bits());
        assert!(gelu_tanh_f32(f32::NAN).is_nan());
    }
}
