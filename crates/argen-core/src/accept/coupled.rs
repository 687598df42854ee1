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

use crate::dist::Dist;
use crate::error::Result;
use crate::rng::Key;
use crate::sample::sample;

/// Outcome of the Coupled test: `Ok(Some(i))` if sibling `i` equals the target's own draw,
/// `Ok(None)` otherwise; the second value is the target's draw.
pub fn coupled(p: &Dist<'_>, siblings: &[u32], sample_key: Key) -> Result<(Option<usize>, u32)> {
    let s = sample(p, sample_key)?;
    Ok((siblings.iter().position(|&x| x == s), s))
}
