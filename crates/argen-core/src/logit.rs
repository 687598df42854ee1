//! Element types of logit rows: `f32`, IEEE `f16` and `bf16` (via the `half` crate).
//!
//! Every row operation converts its input elements to `f32` first — exactly, since both half
//! formats are subsets of `f32` — and computes in `f32`/integers from there. A row of
//! exactly-representable values therefore gives bit-identical results in all three formats.

use crate::process::LogitRow;
use half::{bf16, f16};

/// A scalar type a row of logits may be stored in.
pub trait Logit: Copy + Send + Sync + 'static {
    /// Name of the format, for error messages and trace headers.
    const NAME: &'static str;
    /// Exact conversion to `f32`.
    fn to_f32(self) -> f32;
    /// The slice as a [`LogitRow`] (how row kernels see the element format).
    fn row(slice: &[Self]) -> LogitRow<'_>;
    /// [`Logit::to_f32`] in a form that vectorises (branch-free; no run-time CPU-feature
    /// dispatch): the same value for every non-NaN input, some NaN for a NaN (the payload may
    /// differ). Used by the fused pass of [`crate::process()`], which treats any NaN alike.
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

impl Logit for f32 {
    const NAME: &'static str = "f32";
    fn row(slice: &[Self]) -> LogitRow<'_> {
        LogitRow::F32(slice)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Logit for f16 {
    const NAME: &'static str = "f16";
    fn row(slice: &[Self]) -> LogitRow<'_> {
        LogitRow::F16(slice)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    /// Exponent and mantissa shifted into place (`<< 13`) read as an `f32` whose exponent is
    /// biased by 15 instead of 127; multiplying by `2^112` rebiases it exactly, subnormal halves
    /// included (their product is a normal `f32`). Infinities and NaNs (exponent 31) get the
    /// `f32` all-ones exponent instead; then the sign is put back.
    #[inline(always)]
    fn widen(self) -> f32 {
        let h = self.to_bits() as u32;
        let mag = h & 0x7fff;
        let finite = (f32::from_bits(mag << 13) * f32::from_bits(0x7780_0000)).to_bits();
        let bits = if mag >= 0x7c00 {
            (mag << 13) | 0x7f80_0000
        } else {
            finite
        };
        f32::from_bits(bits | (h & 0x8000) << 16)
    }
}

impl Logit for bf16 {
    const NAME: &'static str = "bf16";
    fn row(slice: &[Self]) -> LogitRow<'_> {
        LogitRow::Bf16(slice)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    /// The upper half of an `f32` (the `half` crate also quiets NaNs, a branch).
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

/// The element formats a backend buffer can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Dtype {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
}

impl Dtype {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `widen` equals `to_f32` on every half-precision bit pattern (NaN for NaN).
    #[test]
    fn widen_is_to_f32_on_every_value() {
        for b in 0..=u16::MAX {
            for (w, t) in [
                (f16::from_bits(b).widen(), f16::from_bits(b).to_f32()),
                (bf16::from_bits(b).widen(), bf16::from_bits(b).to_f32()),
            ] {
                if t.is_nan() {
                    assert!(w.is_nan(), "{b:#06x}");
                } else {
                    assert_eq!(w.to_bits(), t.to_bits(), "{b:#06x}");
                }
            }
        }
    }
}
