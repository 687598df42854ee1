//! RNG scheme v1: counter-based, keyed, stateless random draws.
//!
//! Every random number argen uses is a pure function of a [`Key`]
//! `(seed, stream, purpose, position, token)`. There is no generator state shared between sequences,
//! rows, threads or devices, so a draw does not depend on how work is batched, ordered or split.
//!
//! # Specification (version 1)
//!
//! Another runtime reproduces argen's draws exactly by implementing the following. (The normative
//! text, with every constant and known-answer vector, is `docs/spec/determinism-v1.md`; this
//! summary agrees with it.)
//!
//! 1. **ChaCha key** (256 bits, eight little-endian `u32` words): bytes 0..8 are `seed` as a
//!    little-endian `u64`; bytes 8..20 are the ASCII text `argen-rng-v1`; bytes 20..32 are zero.
//! 2. **Nonce** (64 bits): `(purpose << 32) | stream`.
//! 3. **Block counter** (64 bits): `(position << 32) | (token << 8) | block`, where `token < 2^24`
//!    and `block` runs from 0 to 255. A key therefore owns 256 consecutive ChaCha20 blocks.
//! 4. **Block**: the original ChaCha20 block function with a 64-bit counter and a 64-bit nonce
//!    ([`crate::chacha::chacha20_block`]; identical to `rand_chacha::ChaCha20Rng` with
//!    `set_stream(nonce)` and `set_word_pos(counter * 16)`).
//! 5. **Words**: a key's draw stream is the sequence of `u64` words `w[2j] | (w[2j+1] << 32)`,
//!    `j = 0..8`, of block 0, then block 1, and so on (2048 words in all).
//! 6. **Uniform integer below `n`** ([`KeyedStream::below`], `1 <= n < 2^128`): let `b` be the bit
//!    length of `n − 1`. Take one word if `b <= 64`, else two words `lo, hi` forming
//!    `lo | hi << 64`; keep the low `b` bits; accept if the result is below `n`, else draw again.
//!    Each try succeeds with probability above one half; if all 2048 words were used (probability
//!    below 2^-1000) the last candidate is reduced modulo `n`.
//! 7. **Uniform real** ([`KeyedStream::unit_f64`]): `(word >> 11) · 2^-53`, in `[0, 1)`.
//!
//! Known-answer vectors for all of this live in `fixtures/rng_v1.txt` and are checked by a test.
//!
//! # Purposes
//!
//! [`Purpose`] separates the uses of randomness so that, for example, the acceptance test of a
//! drafted token is independent of the draw that produced it. Positions are absolute sequence
//! positions of the token being decided; `token` distinguishes several draws at one position (the
//! siblings of a draft tree test each with its own token id).

use crate::chacha::chacha20_block;
use crate::error::{Error, Result};

/// Version of the RNG scheme implemented by this module. Changing any draw is a new version.
pub const SCHEME_VERSION: u32 = 1;

/// Largest token id (exclusive) that fits in the block counter layout.
pub const MAX_KEY_TOKEN: u32 = 1 << 24;

/// The 12 ASCII bytes at offset 8 of every ChaCha key (step 1 of the specification).
pub const KEY_TAG: &[u8; 12] = b"argen-rng-v1";

/// Number of `u64` words a single key provides.
pub const WORDS_PER_KEY: usize = 256 * 8;

/// What a random draw is used for; part of the ChaCha nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Purpose(pub u32);

impl Purpose {
    /// Drawing the committed token at a position from the target distribution (vanilla decoding,
    /// the bonus token of speculative decoding, the target's own draw of the Coupled criterion).
    pub const SAMPLE: Purpose = Purpose(1);
    /// The uniform of an acceptance test of a drafted token.
    pub const ACCEPT: Purpose = Purpose(2);
    /// Drawing from a residual distribution after a rejection.
    pub const RESIDUAL: Purpose = Purpose(3);
    /// Drawing a drafted token from the drafter's distribution.
    pub const DRAFT: Purpose = Purpose(4);
    /// Choosing a root-to-leaf path of a draft tree (VVS skip steps).
    pub const PATH: Purpose = Purpose(5);
    /// Initialising the tokens of a Jacobi window.
    pub const JACOBI_INIT: Purpose = Purpose(6);
    /// Per-candidate seeds of test-time scaling (Best-of-N, GridAR).
    pub const CANDIDATE: Purpose = Purpose(7);
}

/// The full identity of one random draw stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Key {
    /// The user's seed.
    pub seed: u64,
    /// The sequence (image, candidate) the draw belongs to.
    pub stream: u32,
    /// What the draw is for.
    pub purpose: Purpose,
    /// Absolute position of the token being decided.
    pub position: u32,
    /// Distinguishes several draws at one position; must be below [`MAX_KEY_TOKEN`].
    pub token: u32,
}

impl Key {
    /// A key with `token = 0`.
    pub const fn new(seed: u64, stream: u32, purpose: Purpose, position: u32) -> Self {
        Key {
            seed,
            stream,
            purpose,
            position,
            token: 0,
        }
    }

    /// The same key with another `token` field.
    pub const fn with_token(self, token: u32) -> Self {
        Key { token, ..self }
    }

    /// The same key with another purpose.
    pub const fn with_purpose(self, purpose: Purpose) -> Self {
        Key { purpose, ..self }
    }

    /// The same key at another position.
    pub const fn at(self, position: u32) -> Self {
        Key { position, ..self }
    }

    /// Checks the `token` field fits the counter layout.
    pub fn validate(&self) -> Result<()> {
        if self.token >= MAX_KEY_TOKEN {
            return Err(Error::InvalidParameter {
                name: "key.token",
                reason: "must be below 2^24",
            });
        }
        Ok(())
    }

    /// The eight ChaCha key words for `seed` (step 1 of the specification).
    pub fn chacha_key(seed: u64) -> [u32; 8] {
        const TAG: &[u8; 12] = KEY_TAG;
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        [
            seed as u32,
            (seed >> 32) as u32,
            word(&TAG[0..4]),
            word(&TAG[4..8]),
            word(&TAG[8..12]),
            0,
            0,
            0,
        ]
    }

    /// The ChaCha nonce (step 2).
    pub const fn nonce(&self) -> u64 {
        ((self.purpose.0 as u64) << 32) | self.stream as u64
    }

    /// The block counter of block `block` of this key (step 3).
    pub const fn counter(&self, block: u8) -> u64 {
        ((self.position as u64) << 32) | ((self.token as u64 & 0xff_ffff) << 8) | block as u64
    }

    /// A fresh draw stream for this key.
    pub fn stream(&self) -> KeyedStream {
        KeyedStream::new(*self)
    }

    /// A `rand_chacha` generator positioned at this key's first block, for callers that want a
    /// standard `rand_core::RngCore` over the same words (its `next_u64` sequence equals
    /// [`KeyedStream::next_word`] for the first 2048 words).
    pub fn chacha_rng(&self) -> rand_chacha::ChaCha20Rng {
        use rand_core::SeedableRng;
        let words = Self::chacha_key(self.seed);
        let mut seed = [0u8; 32];
        for (chunk, w) in seed.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
        rng.set_stream(self.nonce());
        rng.set_word_pos(self.counter(0) as u128 * 16);
        rng
    }
}

/// The `u64` word stream of one [`Key`] (steps 4–7 of the specification).
///
/// Cheap to create (no block is computed until the first word is drawn); one ChaCha20 block yields
/// eight words.
#[derive(Clone, Debug)]
pub struct KeyedStream {
    key_words: [u32; 8],
    key: Key,
    block: [u32; 16],
    /// Index of the next word overall (0..=WORDS_PER_KEY).
    next: usize,
}

impl KeyedStream {
    /// A stream positioned at the first word of `key`.
    pub fn new(key: Key) -> Self {
        KeyedStream {
            key_words: Key::chacha_key(key.seed),
            key,
            block: [0; 16],
            next: 0,
        }
    }

    /// The next `u64` word, or `None` once all [`WORDS_PER_KEY`] words are used.
    pub fn next_word(&mut self) -> Option<u64> {
        if self.next >= WORDS_PER_KEY {
            return None;
        }
        let within = self.next % 8;
        if within == 0 {
            let block = (self.next / 8) as u8;
            self.block = chacha20_block(&self.key_words, self.key.counter(block), self.key.nonce());
        }
        self.next += 1;
        Some(self.block[2 * within] as u64 | ((self.block[2 * within + 1] as u64) << 32))
    }

    /// A uniform integer in `[0, n)` by mask-and-reject (step 6). `n` must be positive.
    pub fn below(&mut self, n: u128) -> Result<u128> {
        if n == 0 {
            return Err(Error::ZeroMass);
        }
        if n == 1 {
            return Ok(0);
        }
        let bits = 128 - (n - 1).leading_zeros();
        let mask = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let mut candidate = 0u128;
        loop {
            let lo = match self.next_word() {
                Some(w) => w as u128,
                None => return Ok(candidate % n),
            };
            let value = if bits <= 64 {
                lo
            } else {
                match self.next_word() {
                    Some(hi) => lo | ((hi as u128) << 64),
                    None => return Ok(candidate % n),
                }
            };
            candidate = value & mask;
            if candidate < n {
                return Ok(candidate);
            }
        }
    }

    /// A uniform real in `[0, 1)` with 53 random bits (step 7). Returns 0 if the stream is spent.
    pub fn unit_f64(&mut self) -> f64 {
        match self.next_word() {
            Some(w) => (w >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0),
            None => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::RngCore;

    #[test]
    fn stream_matches_rand_chacha() {
        let key = Key {
            seed: 42,
            stream: 3,
            purpose: Purpose::ACCEPT,
            position: 1000,
            token: 77,
        };
        let mut ours = key.stream();
        let mut theirs = key.chacha_rng();
        for _ in 0..100 {
            assert_eq!(ours.next_word().unwrap(), theirs.next_u64());
        }
    }

    #[test]
    fn fields_separate_streams() {
        let base = Key {
            seed: 1,
            stream: 0,
            purpose: Purpose::SAMPLE,
            position: 0,
            token: 0,
        };
        let first = |k: Key| k.stream().next_word().unwrap();
        let a = first(base);
        assert_ne!(a, first(Key { seed: 2, ..base }));
        assert_ne!(a, first(Key { stream: 1, ..base }));
        assert_ne!(a, first(base.with_purpose(Purpose::ACCEPT)));
        assert_ne!(a, first(base.at(1)));
        assert_ne!(a, first(base.with_token(1)));
    }

    #[test]
    fn stream_ends_after_2048_words() {
        let mut s = Key::new(9, 9, Purpose::SAMPLE, 9).stream();
        for _ in 0..WORDS_PER_KEY {
            assert!(s.next_word().is_some());
        }
        assert!(s.next_word().is_none());
        assert_eq!(s.unit_f64(), 0.0);
        assert!(s.below(10).unwrap() < 10);
    }

    #[test]
    fn below_is_in_range_and_covers_small_ranges() {
        for n in [1u128, 2, 3, 7, 1 << 40, (1 << 64) + 5, u128::MAX] {
            for t in 0..50 {
                let v = Key::new(5, 0, Purpose::SAMPLE, t)
                    .stream()
                    .below(n)
                    .unwrap();
                assert!(v < n);
            }
        }
        let mut seen = [false; 7];
        for t in 0..200 {
            seen[Key::new(5, 0, Purpose::SAMPLE, t)
                .stream()
                .below(7)
                .unwrap() as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(
            Key::new(0, 0, Purpose::SAMPLE, 0).stream().below(0),
            Err(Error::ZeroMass)
        );
    }

    #[test]
    fn token_field_is_validated() {
        assert!(Key::new(0, 0, Purpose::SAMPLE, 0)
            .with_token(MAX_KEY_TOKEN)
            .validate()
            .is_err());
        assert!(Key::new(0, 0, Purpose::SAMPLE, 0)
            .with_token(MAX_KEY_TOKEN - 1)
            .validate()
            .is_ok());
    }
}
