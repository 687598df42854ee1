//! The order in which a benchmark runs its methods on one image: a fresh pseudo-random
//! permutation per image, so that each method follows every other about equally often and what
//! the previous image left behind (caches, the helper threads' state) favours none. A fixed
//! rotation biased `argen bench --interleave`: on two threads the row that always ran first
//! (vanilla, after the previous image's last row) measured 4–23 % slower than `sd auto`, which
//! did exactly the same work (`docs/runtime-performance.md`, session 9); `auto_draft_ab` had seen
//! the same with a 2 % bias (see `docs/draft-auto.md`).
//!
//! Fisher–Yates with SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014) keyed by `key`: the same key gives the same order on every
//! machine. Not for sampling: the decoders draw from `argen_core::rng`.

/// A permutation of `0..n`, the same for the same `(n, key)`.
pub fn round_order(n: usize, key: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = key;
    for i in (1..n).rev() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        order.swap(i, (z % (i as u64 + 1)) as usize);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_gives_a_permutation_and_keys_differ() {
        for n in [0usize, 1, 2, 13] {
            for key in 0..50 {
                let mut o = round_order(n, key);
                assert_eq!(o, round_order(n, key));
                o.sort_unstable();
                assert_eq!(o, (0..n).collect::<Vec<_>>());
            }
        }
        // Over many keys each of 4 methods comes first about equally often.
        let mut first = [0u32; 4];
        for key in 0..4000 {
            first[round_order(4, key)[0]] += 1;
        }
        assert!(first.iter().all(|&c| (850..1150).contains(&c)), "{first:?}");
    }
}
