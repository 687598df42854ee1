//! Element types of logit rows: `f32`, IEEE `f16` and `bf16` (via the `half` crate).
//!
//! Every row operation converts its input elements to `f32` first — exactly, since both half
//! formats are subsets of `f32` — and computes in `f32`/integers from there. A row of
//! exactly-representable values therefore gives bit-identical results in all three formats.

use half::{bf16, f16};

/// A scalar type a row of logits may be stored in.
pub trait Logit: Copy + Send + Sync + 'static {
    /// Name of the format, for error messages and trace headers.
    const NAME: &'static str;
    /// Exact conversion to `f32`.
    fn to_f32(self) -> f32;
}

impl Logit for f32 {
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Logit for f16 {
    const NAME: &'static str = "f16";
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl Logit for bf16 {
    const NAME: &'static str = "bf16";
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
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
