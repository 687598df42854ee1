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
//! `S_j ≥ Σ_{b' ≤ c} mass[b'] ≥ P·Z / 2^32`: it is dropped. Only the members of `c` are sorted
//! by key and walked with the exact test. (No property of `exp` is needed: the argument uses
//! only the rank order and the weights themselves.)

use super::rank_key;

/// Buckets per nat.
const SCALE: f32 = 16.0;

/// Number of buckets: `d ∈ [0, 32]` gives `0..=512`.
pub(super) const BUCKETS: usize = 32 * SCALE as usize + 1;

/// The bucket of a candidate with `d = m − y` (see the module documentation).
#[inline(always)]
pub(super) fn bucket(d: f32) -> usize {
    // `d ∈ [0, 32]` for a candidate; the `min` only keeps a broken caller from indexing out
    // of the tables (it cannot change a candidate's bucket).
    ((d * SCALE + 8_388_608.0)
        .to_bits()
        .wrapping_sub(0x4b00_0000) as usize)
        .min(BUCKETS - 1)
}

/// Step 4 on the candidates `cand` (more than `k ≥ 1` of them): rearranges `cand` so that its
/// first `k` entries are the `k` top-ranked candidates (in no particular order). `keys` is
/// scratch of at least `cand.len()` entries.
pub(super) fn top_k(y: &[f32], m: f32, cand: &mut [u32], k: usize, keys: &mut [u64]) {
    let mut count = [0u32; BUCKETS];
    for &i in cand.iter() {
        count[bucket(m - y[i as usize])] += 1;
    }
    let (mut before, mut cut) = (0usize, 0usize);
    while cut < BUCKETS - 1 && before + (count[cut] as usize) < k {
        before += count[cut] as usize;
        cut += 1;
    }
    // Branch-free partition: earlier buckets stay in `cand` (compacted in place, never ahead
    // of the read position), the cut bucket's keys go to `keys`.
    let (mut kept, mut tied) = (0usize, 0usize);
    for j in 0..cand.len() {
        let i = cand[j];
        let yi = y[i as usize];
        let b = bucket(m - yi);
        cand[kept] = i;
        kept += (b < cut) as usize;
        keys[tied] = rank_key(yi, i);
        tied += (b == cut) as usize;
    }
    let need = k - kept;
    let keys = &mut keys[..tied];
    if need < tied {
        keys.select_nth_unstable_by(need - 1, |a, b| b.cmp(a));
    }
    for (c, &key) in cand[kept..k].iter_mut().zip(keys.iter()) {
        *c = !(key as u32);
    }
}

/// Step 6: zeroes in `out` the weights of the candidates `cand` that top-p drops, given
/// `mass[b]`, the weight of each bucket, and `threshold = P·Z`. Reorders `cand`.
pub(super) fn top_p(
    y: &[f32],
    m: f32,
    cand: &mut [u32],
    out: &mut [u64],
    mass: &[u64; BUCKETS],
    threshold: u128,
) {
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
        return; // everything survives
    };
    // Later buckets are dropped; the cut bucket's members move to the front (an
    // unconditional swap keeps `cand[..n]` members and `cand[n..j]` non-members).
    let mut n = 0;
    for j in 0..cand.len() {
        let i = cand[j];
        let b = bucket(m - y[i as usize]);
        let w = &mut out[i as usize];
        *w = if b > cut { 0 } else { *w };
        cand.swap(n, j);
        n += (b == cut) as usize;
    }
    cand[..n].sort_unstable_by_key(|&i| core::cmp::Reverse(rank_key(y[i as usize], i)));
    for &i in &cand[..n] {
        if ((before as u128) << 32) < threshold {
            before += out[i as usize];
        } else {
            out[i as usize] = 0;
        }
    }
}
