//! The ChaCha20 block function (Bernstein 2008), 64-bit block counter and 64-bit nonce.
//!
//! This is the original ChaCha layout — the one `rand_chacha` uses — and not the IETF variant with a
//! 32-bit counter. The state is four constant words `"expand 32-byte k"`, eight key words, the block
//! counter (low word first) and the nonce (low word first). Twenty rounds (ten double rounds), then
//! the input state is added word by word. Written out here (rather than driving `rand_chacha`'s
//! buffered generator) because argen draws single blocks at arbitrary counters, and because the
//! CUDA / OpenCL kernels port this function line for line; a test checks it against `rand_chacha`.

/// The four ChaCha constant words, `"expand 32-byte k"` in little-endian.
pub const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

#[inline(always)]
fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// One ChaCha20 block: sixteen output words for `key`, block `counter` and `nonce`.
pub fn chacha20_block(key: &[u32; 8], counter: u64, nonce: u64) -> [u32; 16] {
    let input: [u32; 16] = [
        SIGMA[0],
        SIGMA[1],
        SIGMA[2],
        SIGMA[3],
        key[0],
        key[1],
        key[2],
        key[3],
        key[4],
        key[5],
        key[6],
        key[7],
        counter as u32,
        (counter >> 32) as u32,
        nonce as u32,
        (nonce >> 32) as u32,
    ];
    let mut s = input;
    for _ in 0..10 {
        quarter_round(&mut s, 0, 4, 8, 12);
        quarter_round(&mut s, 1, 5, 9, 13);
        quarter_round(&mut s, 2, 6, 10, 14);
        quarter_round(&mut s, 3, 7, 11, 15);
        quarter_round(&mut s, 0, 5, 10, 15);
        quarter_round(&mut s, 1, 6, 11, 12);
        quarter_round(&mut s, 2, 7, 8, 13);
        quarter_round(&mut s, 3, 4, 9, 14);
    }
    for (o, i) in s.iter_mut().zip(input.iter()) {
        *o = o.wrapping_add(*i);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    /// RFC 7539 §2.3.2 test vector, re-expressed in the 64-bit counter layout: the RFC's 32-bit
    /// counter 1 and 96-bit nonce 00:00:00:09:00:00:00:4a:00:00:00:00 put the words
    /// (1, 0x09000000) in the counter slots and (0x4a000000, 0) in the nonce slots.
    #[test]
    fn rfc7539_block_vector() {
        let key: [u32; 8] = core::array::from_fn(|i| {
            let b = (4 * i) as u32;
            u32::from_le_bytes([b as u8, (b + 1) as u8, (b + 2) as u8, (b + 3) as u8])
        });
        let counter = 1u64 | (0x0900_0000u64 << 32);
        let nonce = 0x4a00_0000u64;
        let out = chacha20_block(&key, counter, nonce);
        assert_eq!(
            &out[..4],
            &[0xe4e7_f110, 0x1559_3bd1, 0x1fdd_0f50, 0xc471_20a3]
        );
        assert_eq!(
            &out[12..],
            &[0xd19c_12b5, 0xb94e_16de, 0xe883_d0cb, 0x4e3c_50a2]
        );
    }

    #[test]
    fn agrees_with_rand_chacha() {
        let mut key_bytes = [0u8; 32];
        for (i, b) in key_bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let key: [u32; 8] = core::array::from_fn(|i| {
            u32::from_le_bytes(key_bytes[4 * i..4 * i + 4].try_into().unwrap())
        });
        for &(counter, nonce) in &[
            (0u64, 0u64),
            (5, 77),
            (u32::MAX as u64 + 3, 0xdead_beef_cafe),
        ] {
            let mut rng = rand_chacha::ChaCha20Rng::from_seed(key_bytes);
            rng.set_stream(nonce);
            rng.set_word_pos((counter as u128) * 16);
            let block = chacha20_block(&key, counter, nonce);
            for w in block {
                assert_eq!(rng.next_u32(), w);
            }
        }
    }
}
