//! The Coupled criterion: speculative decoding that reproduces vanilla decoding token for token.
//!
//! At a position with target distribution `p`, vanilla decoding commits `s = sample(p, K)` with the
//! position's [`Purpose::SAMPLE`](crate::Purpose::SAMPLE) key `K`. The Coupled criterion computes
//! that same `s` from the verification pass and accepts a drafted token iff it equals `s`; among
//! several siblings the one equal to `s` (if any) is accepted; if none is, `s` itself is emitted.
//! The committed token is therefore *always* `s`: speculative output is identical to vanilla output
//! for the same seed whatever the drafter, and the output distribution is exactly `p`. The price is
//! acceptance: a draft `x` is accepted with probability `p(x)` under independent sampling instead of
//! `min(1, p(x)/q(x))` summed over `q` — `Σ_x q(x)p(x)` versus `Σ_x min(p(x), q(x))` per position.
//!
//! (A maximal coupling of `q` and `p` would accept more often but needs the drafter's draw and the
//! target's draw to share randomness, which a drafter with its own keyed stream cannot provide
//! without losing vanilla equivalence.)
//!
//! [`NodeVerifier`](super::NodeVerifier) still answers for Coupled as for point-mass Exact
//! (`p(x)`, `x` removed on rejection; the standard residual for sampled drafts), which describes
//! the test's marginal acceptance; [`super::verify_siblings`] decides Coupled nodes with
//! [`coupled`] instead ([`Rule::decide`]).
//!
//! **Trace hash:** tag byte 1, no parameters. **Device:** code 1, no parameter words, no table.

use super::{
    foreign, Acceptance, Borrowed, DeviceParams, Draft, NodeKeys, NodeState, Outcome, Rule,
};
use crate::dist::Dist;
use crate::error::Result;
use crate::rng::{Key, Purpose};
use crate::sample::sample;
use crate::trace::{Fnv64, StableEncode};

/// The tag byte of the trace hash and the device code.
pub const TAG: u8 = 1;

/// The Coupled criterion's [`Rule`] ([`super::Criterion::Coupled`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoupledRule;

/// Tag byte 1.
impl StableEncode for CoupledRule {
    fn encode(&self, h: &mut Fnv64) {
        h.u8(TAG);
    }
}

impl Rule for CoupledRule {
    fn name(&self) -> &'static str {
        "coupled"
    }

    fn validate(&self, _vocab: usize) -> Result<()> {
        Ok(())
    }

    /// `p(x)`, whatever the draft.
    fn acceptance(&self, node: &NodeState<'_>, x: u32) -> Result<Acceptance> {
        Ok(Acceptance {
            num: node.p[x as usize] as u128,
            den: node.total as u128,
            borrowed_weight: 0,
            borrowed: Borrowed::None,
        })
    }

    fn reject(&self, node: &mut NodeState<'_>, x: u32, acc: &Acceptance) -> Result<()> {
        if matches!(node.draft, Draft::PointMass) && acc.borrowed != Borrowed::None {
            return Err(foreign());
        }
        let budget = node.budget;
        node.remove(x, &[], budget)
    }

    /// The sibling equal to the target's own draw (key `(seed, stream, SAMPLE, pos, 0)`), or a
    /// rejection emitting that draw.
    fn decide(
        &self,
        p: &[u64],
        total: u64,
        siblings: &[u32],
        keys: NodeKeys,
    ) -> Option<Result<Outcome>> {
        let decide = || -> Result<Outcome> {
            let dist = Dist::with_total(p, total)?;
            for &x in siblings {
                dist.weight(x)?;
            }
            let (hit, s) = coupled(&dist, siblings, keys.key(Purpose::SAMPLE, 0))?;
            Ok(match hit {
                Some(index) => Outcome::Accepted { index },
                None => Outcome::Rejected { token: s },
            })
        };
        Some(decide())
    }

    fn vanilla_keys(&self) -> bool {
        true
    }

    fn device(&self) -> DeviceParams<'_> {
        DeviceParams::bare(TAG as u32)
    }
}

/// Outcome of the Coupled test: `Ok(Some(i))` if sibling `i` equals the target's own draw,
/// `Ok(None)` otherwise; the second value is the target's draw.
pub fn coupled(p: &Dist<'_>, siblings: &[u32], sample_key: Key) -> Result<(Option<usize>, u32)> {
    let s = sample(p, sample_key)?;
    Ok((siblings.iter().position(|&x| x == s), s))
}
