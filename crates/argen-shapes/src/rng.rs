//! The generator's random numbers: ChaCha8 keyed by `(seed, stream)`.
//!
//! Each independent aspect of a scene draws from its own stream (layout, background texture,
//! pixel noise, prompt wording), so that, e.g., changing how prompts are worded never changes an
//! image. The key is `seed (u64 LE) ‖ stream (u64 LE) ‖ "ShapesWorld v1.." (16 bytes)`; numbers
//! are derived from the raw 64-bit outputs with integer arithmetic only (no `rand`
//! distributions, whose algorithms may change between versions), so a scene is a pure,
//! portable function of its seed.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Stream of the scene layout (object count, shapes, colours, sizes, positions).
pub(crate) const STREAM_LAYOUT: u64 = 1;
/// Stream of the background parameters and texture lattice.
pub(crate) const STREAM_TEXTURE: u64 = 2;
/// Stream of the per-pixel noise.
pub(crate) const STREAM_NOISE: u64 = 3;
/// Stream of the prompt wording.
pub(crate) const STREAM_PROMPT: u64 = 4;

/// A keyed ChaCha8 generator with the few uniform draws the generator needs.
pub(crate) struct Rng(ChaCha8Rng);

impl Rng {
    /// The generator of `stream` for `seed`.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&stream.to_le_bytes());
        key[16..].copy_from_slice(b"ShapesWorld v1..");
        Rng(ChaCha8Rng::from_seed(key))
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `[0, n)` (`n > 0`), unbiased by rejection.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.0.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Fisher–Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_reproducible() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, 1).0.next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut r1 = Rng::new(7, 1);
        let mut r2 = Rng::new(7, 2);
        assert_ne!(r1.0.next_u64(), r2.0.next_u64());
    }

    #[test]
    fn below_stays_in_range_and_hits_all_values() {
        let mut r = Rng::new(1, 1);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let v = r.below(5) as usize;
            seen[v] = true;
        }
        assert!(seen.iter().all(|&s| s));
        for _ in 0..100 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
