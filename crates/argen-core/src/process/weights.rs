//! Step 5: fixed-point weights of the surviving candidates, `w = trunc(exp_f32(y − m) · 2^40)`.
//!
//! Every surviving candidate has `x = y − m ∈ [−32, 0]`, where
//! [`crate::detmath::exp::exp_f32_nonpos`] — the same operations as
//! [`crate::detmath::exp_f32`] without its range branches, bit-identical on `[−87, 0]` — is
//! branch-free. The candidates (compact values and ids) are processed in blocks of [`BLOCK`]:
//! the block's exponentials are evaluated by [`RowKernels::exp_shifted`] (the portable one a
//! loop the compiler vectorises, argen-cpu's at AVX-512/AVX2 width). With top-p, a first pass
//! ([`mass`]) only sums the total and the mass of each rank bucket ([`super::buckets`]); the
//! weights of the survivors alone are then written to `out` ([`scatter`], which also applies
//! min-p and counts the support), so the candidates that top-p drops cost no store into the
//! full-vocabulary row. The truncation `trunc(e · 2^40)` is taken from the bits of
//! `e` ([`fixed_point`]).

use super::buckets::BUCKETS;
use super::kernels::RowKernels;

/// Candidates per block.
pub(super) const BLOCK: usize = 64;

/// `trunc(e · 2^40)` for `e = exp(x)`, `x ∈ [−32, 0]` (so `e ∈ [2^-47, 1]` is normal), from
/// the bits of `e = M · 2^(E − 23)`: `(M · 2^17) >> −E`. Exact (a right shift truncates) and
/// without the range checks of a saturating float-to-integer conversion.
#[inline(always)]
pub(crate) fn fixed_point(e: f32) -> u64 {
    let b = e.to_bits();
    let mantissa = ((b & 0x007f_ffff) | 0x0080_0000) as u64;
    let shift = 127u32.wrapping_sub(b >> 23).min(63);
    (mantissa << 17) >> shift
}

/// The total weight of the candidates (values `cy`) and the weight of each rank bucket, added
/// to `mass` (for top-p, [`super::buckets`]); writes no weights.
pub(super) fn mass(kernels: &dyn RowKernels, m: f32, cy: &[f32], mass: &mut [u64; BUCKETS]) -> u64 {
    // One kernel call: the weights' exponentials, fixed points and buckets in vectorised
    // passes (`RowKernels::bucket_masses`).
    kernels.bucket_masses(m, cy, mass)
}

/// Writes the weight of every candidate (values `cy`, ids `cid`) to `out`, set to 0 where
/// `w · 2^32 < floor` (min-p, step 7; `floor = 0` keeps every weight), and returns the total
/// and the number of positive weights.
pub(super) fn scatter(
    kernels: &dyn RowKernels,
    m: f32,
    cy: &[f32],
    cid: &[u32],
    out: &mut [u64],
    floor: u128,
) -> (u64, u32) {
    let mut e = [0.0f32; BLOCK];
    let (mut total, mut support) = (0u64, 0u32);
    for (ys, ids) in cy.chunks(BLOCK).zip(cid.chunks(BLOCK)) {
        // The block's exponentials in one vectorised pass.
        kernels.exp_shifted(ys, m, &mut e[..ys.len()]);
        for (&i, &ej) in ids.iter().zip(&e) {
            let w = fixed_point(ej);
            let w = if ((w as u128) << 32) < floor { 0 } else { w };
            out[i as usize] = w;
            total += w;
            support += (w > 0) as u32;
        }
    }
    (total, support)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::WEIGHT_ONE;

    /// `fixed_point` is the specification's `trunc(e · 2^40)` on every `exp` of the domain's
    /// grid, and at both ends.
    #[test]
    fn fixed_point_is_the_truncated_product() {
        let mut x = -32.0f32;
        while x <= 0.0 {
            let e = crate::detmath::exp_f32(x);
            assert_eq!(fixed_point(e), (e * WEIGHT_ONE as f32) as u64, "{x}");
            x += 0.000_71;
        }
        for x in [0.0f32, -0.0, -32.0, -27.7, -28.0] {
            let e = crate::detmath::exp_f32(x);
            assert_eq!(fixed_point(e), (e * WEIGHT_ONE as f32) as u64, "{x}");
        }
    }
}
