//! Top-k (step 4) and top-p (step 6) by *rank buckets*: selection by counting, not sorting.
//!
//! # Rank buckets
//!
//! Every candidate has `d = m − y ∈ [0, 32]` (`y − m ≥ HOPELESS = −32`, and `fl(m − y) =
//! −fl(y − m)` because round-to-nearest-even is symmetric). Its bucket is `b = round(d ·
//! SCALE)`, `0 ≤ b ≤ 32 · SCALE`, rounded to nearest by adding `2^23` (every float in `[2^23,
//! 2^24)` is an integer, and the sum's low mantissa bits are `b`: no conversion instruction,
//! so the computation vectorises). Rounded subtraction, multiplication by a positive constant
//! and rounding to an integer are all monotone, so `b` never decreases along the rank
//! order (`y` descending, ties by id ascending): the buckets cut the rank order into
//! consecutive segments, bucket 0 first. Within a bucket the exact rank order is recovered from
//! the `u64` rank keys ([`super::rank_key`]) of its members only.
//!
//! # Top-k
//!
//! With `count[b]` the members of each bucket, the cut bucket `c` is the first with
//! `Σ_{b ≤ c} count[b] ≥ k`. Every member of a bucket before `c` is among the `k` best; none
//! after `c` is; the `k − Σ_{b < c} count[b]` best members of `c` are selected on their keys
//! (`select_nth_unstable`). The histogram costs one increment per candidate and the selection
//! touches only one bucket (`1/SCALE` nat wide), instead of selecting among all candidates.
//!
//! # Top-p
//!
//! Candidate `j` survives iff `S_j · 2^32 < P·Z` ([`super`] step 6), `S_j` the weight ranked
//! strictly before `j`; `S_j` grows along the rank order, so the survivors are a rank prefix.
//! With `mass[b]` the weight of each bucket, the cut bucket `c` is the first whose cumulative
//! mass (itself included) reaches the threshold. A member of an earlier bucket `b` has
//! `S_j ≤ Σ_{b' ≤ b} mass[b'] < P·Z / 2^32`: it survives. A member of a later bucket has
//! `S_j ≥ Σ_{b' ≤ c} mass[b'] ≥ P·Z / 2^32`: it is dropped. The candidates are partitioned as
//! for top-k ([`RowKernels::split_cut`]); only the rank keys of `c`'s members are sorted and
//! walked with the exact test. (No property of `exp` is needed: the argument uses only the
//! rank order and the weights themselves.) The bucket masses come from a pass that
//! writes no weights (module `process::weights`); only the survivors' weights are written to
//! the row afterwards.

use super::kernels::RowKernels;
use super::weights::{fixed_point, BLOCK};

/// Buckets per nat.
const SCALE: f32 = 16.0;

/// Number of rank buckets: `d ∈ [0, 32]` gives `0..=512`.
pub const BUCKETS: usize = 32 * SCALE as usize + 1;

/// The rank bucket of a candidate with `d = m − y`: `min(bits(d·16 + 2^23) − bits(2^23), 512)`
/// (IEEE multiply, then add, never fused; the subtraction of the bits wrapping as `u32`),
/// `round(16·d)` for a candidate. Top-k and top-p select by counting these buckets
/// (`process::buckets`; [`RowKernels::split_cut`]).
#[inline(always)]
pub fn rank_bucket(d: f32) -> usize {
    // `d ∈ [0, 32]` for a candidate; the `min` only keeps a broken caller from indexing out
    // of the tables (it cannot change a candidate's bucket).
    ((d * SCALE + 8_388_608.0)
        .to_bits()
        .wrapping_sub(0x4b00_0000) as usize)
        .min(BUCKETS - 1)
}

/// The `y` whose rank key is `key` (the inverse of the order map of [`rank_key`]).
#[inline(always)]
fn key_value(key: u64) -> f32 {
    let ord = (key >> 32) as u32;
    f32::from_bits(if ord & 0x8000_0000 != 0 {
        ord & 0x7fff_ffff
    } else {
        !ord
    })
}

/// Step 4 on the candidates (values `cy`, ids `cid`, more than `k ≥ 1` of them): moves the
/// `k` top-ranked candidates to the front of both arrays (in no particular order). `keys` is
/// scratch of at least `cy.len()` entries; returns how many of them were written (a prefix).
pub(super) fn top_k(
    kernels: &dyn RowKernels,
    m: f32,
    cy: &mut [f32],
    cid: &mut [u32],
    k: usize,
    keys: &mut [u64],
) -> usize {
    let mut count = [0u32; BUCKETS];
    let mut b = [0u16; BLOCK];
    for ys in cy.chunks(BLOCK) {
        kernels.buckets(m, ys, &mut b);
        for &bj in &b[..ys.len()] {
            count[bj as usize] += 1;
        }
    }
    let (mut before, mut cut) = (0usize, 0usize);
    while cut < BUCKETS - 1 && before + (count[cut] as usize) < k {
        before += count[cut] as usize;
        cut += 1;
    }
    // Partition: earlier buckets stay (compacted in place), the cut bucket's keys go to `keys`.
    let (kept, tied) = kernels.split_cut(m, cut, cy, cid, keys);
    let need = k - kept;
    let keys = &mut keys[..tied];
    if need < tied {
        keys.select_nth_unstable_by(need - 1, |a, b| b.cmp(a));
    }
    for ((y, i), &key) in cy[kept..k]
        .iter_mut()
        .zip(&mut cid[kept..k])
        .zip(keys.iter())
    {
        *y = key_value(key);
        *i = !(key as u32);
    }
    tied
}

/// Step 6 on the candidates (values `cy`, ids `cid`), given `mass[b]`, the weight of each
/// bucket, and `threshold = P·Z`: moves the survivors to the front of both arrays (in no
/// particular order) and returns their number and how many entries of `keys` (scratch of at
/// least `cy.len()` entries, a prefix) were written. Writes no weights: the caller scatters the survivors' weights afterwards, so the
/// dropped candidates (usually most of them) cost no store into the weight row.
pub(super) fn top_p(
    kernels: &dyn RowKernels,
    m: f32,
    cy: &mut [f32],
    cid: &mut [u32],
    mass: &[u64; BUCKETS],
    threshold: u128,
    keys: &mut [u64],
) -> (usize, usize) {
    let mut before = 0u64;
    let mut cut = None;
    for (b, &w) in mass.iter().enumerate() {
        if (((before + w) as u128) << 32) >= threshold {
            cut = Some(b);
            break;
        }
        before += w;
    }
    let Some(cut) = cut else {
        return (cy.len(), 0); // everything survives
    };
    // Earlier buckets survive (compacted to the front), later ones are dropped, the cut
    // bucket's keys go to `keys`: the partition of top-k.
    let (kept, tied) = kernels.split_cut(m, cut, cy, cid, keys);
    let keys = &mut keys[..tied];
    // The cut bucket in rank order (descending keys), walked with the exact test: its
    // survivors are a rank prefix (`before` stops growing at the first failure).
    keys.sort_unstable_by(|a, b| b.cmp(a));
    let mut s = kept;
    let (mut ys, mut e) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    'walk: for block in keys.chunks(BLOCK) {
        let ys = &mut ys[..block.len()];
        for (y, &key) in ys.iter_mut().zip(block) {
            *y = key_value(key);
        }
        kernels.exp_shifted(ys, m, &mut e[..block.len()]);
        for ((&key, &y), &ej) in block.iter().zip(ys.iter()).zip(&e) {
            if ((before as u128) << 32) >= threshold {
                break 'walk;
            }
            before += fixed_point(ej);
            cy[s] = y;
            cid[s] = !(key as u32);
            s += 1;
        }
    }
    (s, tied)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::process::rank_key;

    #[test]
    fn key_value_inverts_rank_key() {
        for y in [0.0f32, 1.5, -1.5, -32.0, 7.0e-40, -7.0e-40, 3.0e38, -3.0e38] {
            assert_eq!(key_value(rank_key(y, 12345)).to_bits(), y.to_bits());
        }
    }
}
