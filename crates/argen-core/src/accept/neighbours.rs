//! Latent-neighbour tables: for every codebook entry, its nearest other entries.
//!
//! LANTERN (Jang et al., ICLR 2025) relaxes acceptance over the *latent proximity set* `B_k(x)`: the
//! `k` codebook vectors nearest to `x`'s by L2 distance, `x` itself excluded. argen stores the sets
//! as a `V × k` row-major table of token ids, each row in distance order with ties broken by the
//! smaller id. A table can be borrowed from a caller's slice (checked on construction) or, with the
//! `alloc` feature, built from a codebook; squared distances are summed over dimensions in index
//! order in `f64` so the table is the same on every machine.

use crate::error::{Error, Result};

/// A borrowed, validated `V × k` latent-neighbour table.
#[derive(Clone, Copy, Debug)]
pub struct NeighbourTable<'a> {
    ids: &'a [u32],
    vocab: usize,
    k: usize,
}

impl<'a> NeighbourTable<'a> {
    /// Wraps and validates a row-major `vocab × k` table: `1 <= k < vocab`, every id below
    /// `vocab`, no row containing its own token, no id repeated within a row.
    pub fn new(ids: &'a [u32], vocab: usize, k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::InvalidNeighbourTable {
                reason: "k must be at least 1",
            });
        }
        if vocab < 2 || k >= vocab {
            return Err(Error::InvalidNeighbourTable {
                reason: "k must be smaller than the vocabulary size",
            });
        }
        if vocab.checked_mul(k) != Some(ids.len()) {
            return Err(Error::InvalidNeighbourTable {
                reason: "table length is not vocabulary size × k",
            });
        }
        // With an allocator, duplicates are found with a stamp per token (O(V·k)); without one,
        // by scanning the row so far (O(V·k²), fine for the small tables of embedded targets).
        #[cfg(feature = "alloc")]
        let mut stamp = alloc::vec![u32::MAX; vocab];
        for (token, row) in ids.chunks_exact(k).enumerate() {
            for (j, &id) in row.iter().enumerate() {
                if id as usize >= vocab {
                    return Err(Error::InvalidNeighbourTable {
                        reason: "an id is out of range",
                    });
                }
                if id as usize == token {
                    return Err(Error::InvalidNeighbourTable {
                        reason: "a row lists its own token",
                    });
                }
                #[cfg(feature = "alloc")]
                let repeated =
                    core::mem::replace(&mut stamp[id as usize], token as u32) == token as u32;
                #[cfg(not(feature = "alloc"))]
                let repeated = row[..j].contains(&id);
                #[cfg(feature = "alloc")]
                let _ = j; // only the scan without an allocator needs the position
                if repeated {
                    return Err(Error::InvalidNeighbourTable {
                        reason: "a row repeats an id",
                    });
                }
            }
        }
        Ok(NeighbourTable { ids, vocab, k })
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Neighbours per token.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The neighbours of `token`, nearest first (`token` must be below the vocabulary size).
    pub fn row(&self, token: u32) -> Result<&'a [u32]> {
        let t = token as usize;
        if t >= self.vocab {
            return Err(Error::TokenOutOfRange {
                token,
                vocab: self.vocab,
            });
        }
        Ok(&self.ids[t * self.k..(t + 1) * self.k])
    }

    /// The raw row-major ids.
    pub fn ids(&self) -> &'a [u32] {
        self.ids
    }
}

/// Squared L2 distance of two vectors, summed in index order in `f64`.
pub fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    let mut s = 0.0f64;
    for (x, y) in a.iter().zip(b) {
        let d = *x as f64 - *y as f64;
        s += d * d;
    }
    s
}

/// Builds the `vocab × k` table of a row-major `vocab × dim` codebook (requires `alloc`).
///
/// Cost is `O(V² · dim)`; a 16384 × 8 codebook takes a few seconds. Rows of the codebook are used
/// as given: normalise them first if the model looks codes up l2-normalised (LlamaGen does).
#[cfg(feature = "alloc")]
pub fn build_table(codebook: &[f32], dim: usize, k: usize) -> Result<alloc::vec::Vec<u32>> {
    use alloc::vec::Vec;
    if dim == 0 || codebook.is_empty() || codebook.len() % dim != 0 {
        return Err(Error::InvalidNeighbourTable {
            reason: "codebook length is not a positive multiple of dim",
        });
    }
    if codebook.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidNeighbourTable {
            reason: "codebook has a non-finite entry",
        });
    }
    let vocab = codebook.len() / dim;
    if k == 0 || k >= vocab {
        return Err(Error::InvalidNeighbourTable {
            reason: "k must be between 1 and vocabulary size − 1",
        });
    }
    let mut table = Vec::with_capacity(vocab * k);
    let mut cand: Vec<(f64, u32)> = Vec::with_capacity(vocab - 1);
    let by_distance = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    for t in 0..vocab {
        let row = &codebook[t * dim..(t + 1) * dim];
        cand.clear();
        for o in (0..vocab).filter(|&o| o != t) {
            cand.push((
                squared_distance(row, &codebook[o * dim..(o + 1) * dim]),
                o as u32,
            ));
        }
        if k < cand.len() {
            cand.select_nth_unstable_by(k - 1, by_distance);
        }
        cand[..k].sort_unstable_by(by_distance);
        table.extend(cand[..k].iter().map(|c| c.1));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(NeighbourTable::new(&[1, 0], 2, 1).is_ok());
        assert!(NeighbourTable::new(&[1, 0, 1], 2, 1).is_err()); // wrong length
        assert!(NeighbourTable::new(&[0, 0], 2, 1).is_err()); // own token
        assert!(NeighbourTable::new(&[2, 0], 2, 1).is_err()); // out of range
        assert!(NeighbourTable::new(&[], 2, 0).is_err()); // k = 0
        assert!(NeighbourTable::new(&[1, 2, 1, 2, 0, 1], 3, 2).is_err()); // own token in row 1
        assert!(NeighbourTable::new(&[1, 1, 0, 2, 0, 1], 3, 2).is_err()); // repeated id
        let t = NeighbourTable::new(&[1, 2, 0, 2, 0, 1], 3, 2).unwrap();
        assert_eq!(t.row(1).unwrap(), &[0, 2]);
        assert!(t.row(3).is_err());
    }

    #[test]
    fn built_table_is_sorted_by_distance_then_id() {
        // Points on a line at 0, 1, 2, 4; token 1 is equidistant from 0 and 2.
        let codebook = [0.0f32, 1.0, 2.0, 4.0];
        let table = build_table(&codebook, 1, 2).unwrap();
        // Token 2 is 4 away from both 0 and 3 (squared): the tie goes to id 0.
        assert_eq!(table, std::vec![1, 2, 0, 2, 1, 0, 2, 1]);
        assert!(NeighbourTable::new(&table, 4, 2).is_ok());
        assert!(build_table(&codebook, 1, 4).is_err());
        assert!(build_table(&[0.0, f32::NAN], 1, 1).is_err());
        assert!(build_table(&codebook, 3, 1).is_err());
    }
}
