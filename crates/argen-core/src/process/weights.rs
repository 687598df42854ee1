//! Step 5: fixed-point weights of the surviving candidates, `w = trunc(exp_f32(y − m) · 2^40)`.
//!
//! Every surviving candidate has `x = y − m ∈ [−32, 0]`, where
//! [`crate::detmath::exp::exp_f32_nonpos`] — the same operations as
//! [`crate::detmath::exp_f32`] without its range branches, bit-identical on `[−87, 0]` — is
//! branch-free. The candidates (compact values and ids) are processed in blocks of [`BLOCK`]:
//! the block's exponentials are evaluated in one loop the compiler vectorises, and the weights
//! are scattered to `out` while the total and the mass of each rank bucket (for top-p,
//! [`super::buckets`]) accumulate. The truncation `trunc(e · 2^40)` is taken from the bits of
//! `e` ([`fixed_point`]).

use super::buckets::{bucket, BUCKETS};
use crate::detmath::exp::exp_f32_nonpos;

/// Candidates per block.
const BLOCK: usize = 64;

/// `trunc(e · 2^40)` for `e = exp(x)`, `x ∈ [−32, 0]` (so `e ∈ [2^-47, 1]` is normal), from
/// the bits of `e = M · 2^(E − 23)`: `(M · 2^17) >> −E`. Exact (a right shift truncates) and
/// without the range checks of a saturating float-to-integer conversion.
#[inline(always)]
fn fixed_point(e: f32) -> u64 {
    let b = e.to_bits();
    let mantissa = ((b & 0x007f_ffff) | 0x0080_0000) as u64;
    let shift = 127u32.wrapping_sub(b >> 23).min(63);
    (mantissa << 17) >> shift
}

/// Writes the weight of every candidate (values `cy`, ids `cid`) to `out` and returns the
/// total weight; with `MASS`, also adds each weight to `mass[bucket]` (for top-p).
pub(super) fn weights<const MASS: bool>(
    m: f32,
    cy: &[f32],
    cid: &[u32],
    out: &mut [u64],
    mass: &mut [u64; BUCKETS],
) -> u64 {
    let mut e = [0.0f32; BLOCK];
    let mut total = 0u64;
    for (ys, ids) in cy.chunks(BLOCK).zip(cid.chunks(BLOCK)) {
        // The block's exponentials in one vectorised loop.
        for (ej, &yj) in e.iter_mut().zip(ys) {
            *ej = exp_f32_nonpos(yj - m);
        }
        for ((&i, &yj), &ej) in ids.iter().zip(ys).zip(&e) {
            let w = fixed_point(ej);
            out[i as usize] = w;
            total += w;
            if MASS {
                mass[bucket(m - yj)] += w;
            }
        }
    }
    total
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
