//! Exact (lossless) speculative acceptance and its residual.
//!
//! Leviathan et al. 2023 (*Fast Inference from Transformers via Speculative Decoding*) and Chen et
//! al. 2023 (*Accelerating LLM Decoding with Speculative Sampling*): a token `x` drawn from the
//! draft distribution `q` is accepted with probability `min(1, p(x)/q(x))`; on rejection the output
//! is drawn from the residual `norm(max(p − q, 0))`. The output is distributed exactly as `p`.
//! Several siblings (SpecInfer, Miao et al. 2024; EAGLE-2, Li et al. 2024) are tested in order,
//! the target replaced by the residual after each rejection:
//!
//! * **sampled** siblings (i.i.d. draws from `q`): after rejecting one, `p ← norm(max(p − q, 0))`,
//!   `q` unchanged — the SpecInfer recursion, exact for any number of siblings;
//! * **point-mass** siblings (deterministic top-k / greedy drafts, `q = 1_x`): accept `x` with
//!   probability `p(x)`; on rejection `p ← p` with `x` removed — sampling without replacement, exact.
//!
//! In fixed point ([`crate::dist`]) with `p = w_p / Z_p`, `q = w_q / Z_q` the sampled test is
//! "accept iff `U < w_p(x) · Z_q`" with `U` uniform on `[0, w_q(x) · Z_p)`: an exact Bernoulli
//! trial in `u128`. The residual numerators `max(w_p(i) · Z_q − w_q(i) · Z_p, 0)` sum to less
//! than `Z_p · Z_q < 2^128` and are shifted right by the least `s` that brings their total below
//! `2^63` (each weight then carries at most `2^-62` relative rounding of the total), so the
//! residual stays a `u64` row that later steps treat like any other distribution.
//!
//! **Trace hash:** tag byte 0, no parameters. **Device:** code 0, no parameter words, no table.

use super::{foreign, Acceptance, Borrowed, DeviceParams, Draft, NodeState, Rule};
use crate::error::{Error, Result};
use crate::trace::{Fnv64, StableEncode};

/// The tag byte of the trace hash and the device code.
pub const TAG: u8 = 0;

/// The Exact criterion's [`Rule`] ([`super::Criterion::Exact`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExactRule;

/// Tag byte 0.
impl StableEncode for ExactRule {
    fn encode(&self, h: &mut Fnv64) {
        h.u8(TAG);
    }
}

impl Rule for ExactRule {
    fn name(&self) -> &'static str {
        "exact"
    }

    fn validate(&self, _vocab: usize) -> Result<()> {
        Ok(())
    }

    /// `min(1, p(x)/q(x))` (sampled), `p(x)` (point-mass).
    fn acceptance(&self, node: &NodeState<'_>, x: u32) -> Result<Acceptance> {
        let (num, den) = node.ratio(x, node.p[x as usize])?;
        Ok(Acceptance {
            num,
            den,
            borrowed_weight: 0,
            borrowed: Borrowed::None,
        })
    }

    /// `norm(max(p − q, 0))` (sampled), `p` without `x` (point-mass).
    fn reject(&self, node: &mut NodeState<'_>, x: u32, acc: &Acceptance) -> Result<()> {
        if matches!(node.draft, Draft::PointMass) && acc.borrowed != Borrowed::None {
            return Err(foreign());
        }
        let budget = node.budget;
        node.remove(x, &[], budget)
    }

    fn device(&self) -> DeviceParams<'_> {
        DeviceParams::bare(TAG as u32)
    }
}

/// Replaces `p` (total `p_total`) by the residual `max(p − q, 0)` of the sampled rule, rescaled
/// to `u64`; returns the new total. Errors with [`Error::ZeroMass`] if the residual is empty
/// (which a correct caller never reaches: a rejection implies `p(y) > q(y)` for some `y`).
pub fn residual_in_place(p: &mut [u64], p_total: u64, q: &[u64], q_total: u64) -> Result<u64> {
    if p.len() != q.len() {
        return Err(Error::LengthMismatch {
            expected: p.len(),
            found: q.len(),
        });
    }
    let numerator = |wp: u64, wq: u64| -> u128 {
        (wp as u128 * q_total as u128).saturating_sub(wq as u128 * p_total as u128)
    };
    let mut sum = 0u128;
    for (&wp, &wq) in p.iter().zip(q) {
        sum = sum
            .checked_add(numerator(wp, wq))
            .ok_or(Error::InvalidParameter {
                name: "p_total",
                reason: "row totals do not match the rows (residual overflows)",
            })?;
    }
    if sum == 0 {
        return Err(Error::ZeroMass);
    }
    let bits = 128 - sum.leading_zeros();
    let shift = bits.saturating_sub(63);
    let mut total = 0u64;
    for (wp, &wq) in p.iter_mut().zip(q) {
        let r = (numerator(*wp, wq) >> shift) as u64;
        *wp = r;
        total += r;
    }
    if total == 0 {
        return Err(Error::ZeroMass);
    }
    Ok(total)
}
