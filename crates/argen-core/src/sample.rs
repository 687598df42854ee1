//! Keyed sampling from fixed-point distributions.
//!
//! A draw from a distribution `(w, Z)` with key `K` is: `r = below(Z)` from `K`'s stream
//! ([`crate::rng`] step 6), then the token `t` with `prefix(t) <= r < prefix(t + 1)`, prefixes
//! summed in token-id order ([`Dist::locate`]). The draw therefore has probability exactly
//! `w[t] / Z`, needs one or two random words (not one per vocabulary entry, as Gumbel-max would),
//! and depends on nothing but the weights and the key — not on the batch, thread count or backend.

use crate::dist::Dist;
use crate::error::Result;
use crate::process::RowKernels;
use crate::rng::Key;

/// Draws a token from `dist` with the random stream of `key`.
pub fn sample(dist: &Dist<'_>, key: Key) -> Result<u32> {
    sample_with(&crate::process::PORTABLE, dist, key)
}

/// [`sample`] with the chunk skipping of `kernels` ([`Dist::locate_with`]): the same token.
pub fn sample_with(kernels: &dyn RowKernels, dist: &Dist<'_>, key: Key) -> Result<u32> {
    key.validate()?;
    let r = key.stream().below(dist.total() as u128)? as u64;
    dist.locate_with(kernels, r)
}

/// The greedy choice of `dist`: the highest weight, ties to the lowest id.
pub fn argmax(dist: &Dist<'_>) -> u32 {
    let mut best = 0usize;
    for (i, &w) in dist.weights().iter().enumerate() {
        if w > dist.weights()[best] {
            best = i;
        }
    }
    best as u32
}
