//! Latent-neighbour tables: for every codebook entry, its nearest other entries.
//!
//! LANTERN (Jang et al., ICLR 2025) relaxes acceptance over the *latent proximity set* `B_k(x)`: the
//! `k` codebook vectors nearest to `x`'s by L2 distance, `x` itself excluded. argen stores the sets
//! as a `V × k` row-major table of token ids, each row in distance order with ties broken by the
//! smaller id. A table can be borrowed from a caller's slice (checked on construction) or, with the
//! `alloc` feature, built from a codebook; squared distances are summed over dimensions in index
//! order in `f64` so the table is the same on every machine.
//!
//! # Which distance: [`Metric`]
//!
//! The official LANTERN release (`generate_codebook.py`) ranks neighbours by the L2 distance
//! between the **raw** rows of the VQ codebook (`quantize.embedding.weight`). LlamaGen's VQ,
//! however, l2-normalises every row at lookup (`codebook_l2_norm = True`): the decoder only ever
//! sees unit vectors, so two codes whose raw rows point the same way but differ in length decode
//! to the same latent, and the raw distance between them says nothing about how alike their
//! images are. argen therefore defaults to [`Metric::Normalised`] — L2 between the rows the
//! decoder actually looks up (for unit vectors, a monotone function of cosine similarity) — and
//! offers [`Metric::Raw`] to reproduce the paper's setting with official checkpoints. (For a VQ
//! that does not normalise at lookup, the raw rows *are* the latent space: use `Raw` there.)

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

/// The distance a neighbour table ranks codebook rows by (see the [module
/// documentation](self#which-distance-metric)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Metric {
    /// L2 between the rows as stored: the official LANTERN `generate_codebook.py`.
    Raw,
    /// L2 between the rows after [`l2_normalise`]: the latent space LlamaGen's VQ decoder looks
    /// codes up in (the default).
    #[default]
    Normalised,
}

impl Metric {
    /// `"raw"` or `"normalised"`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Raw => "raw",
            Metric::Normalised => "normalised",
        }
    }
}

/// Scales `row` to unit L2 norm the way LlamaGen's VQ does at lookup (`F.normalize`, eps
/// `1e-12`): `n = max(sqrt(Σ x²), 1e-12)` with the squares summed in `f32` in index order and a
/// correctly rounded square root, then `x ← x / n` (a zero row stays zero).
pub fn l2_normalise(row: &mut [f32]) {
    let mut s = 0.0f32;
    for &x in row.iter() {
        s += x * x;
    }
    let n = libm::sqrtf(s).max(1e-12);
    for x in row.iter_mut() {
        *x /= n;
    }
}

/// Builds the `vocab × k` table of a row-major `vocab × dim` codebook under `metric` (requires
/// `alloc`): [`Metric::Raw`] ranks the rows as given, [`Metric::Normalised`] ranks copies of them
/// passed through [`l2_normalise`].
#[cfg(feature = "alloc")]
pub fn build_table_with(
    codebook: &[f32],
    dim: usize,
    k: usize,
    metric: Metric,
) -> Result<alloc::vec::Vec<u32>> {
    match metric {
        Metric::Raw => build_table(codebook, dim, k),
        Metric::Normalised => {
            if dim == 0 {
                return Err(Error::InvalidNeighbourTable {
                    reason: "codebook length is not a positive multiple of dim",
                });
            }
            let mut rows = codebook.to_vec();
            for row in rows.chunks_exact_mut(dim) {
                l2_normalise(row);
            }
            build_table(&rows, dim, k)
        }
    }
}

/// Builds the `vocab × k` table of a row-major `vocab × dim` codebook (requires `alloc`).
///
/// Cost is `O(V² · dim)`; a 16384 × 8 codebook takes a few seconds. Rows of the codebook are used
/// as given ([`Metric::Raw`]); [`build_table_with`] picks the metric.
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

    /// Every row's neighbours by sorting all `(distance, id)` pairs, distances computed afresh.
    fn brute_force(rows: &[[f32; 2]], k: usize) -> std::vec::Vec<u32> {
        let mut out = std::vec::Vec::new();
        for (t, a) in rows.iter().enumerate() {
            let mut all: std::vec::Vec<(f64, u32)> = rows
                .iter()
                .enumerate()
                .filter(|&(o, _)| o != t)
                .map(|(o, b)| {
                    let dx = a[0] as f64 - b[0] as f64;
                    let dy = a[1] as f64 - b[1] as f64;
                    (dx * dx + dy * dy, o as u32)
                })
                .collect();
            all.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap().then(x.1.cmp(&y.1)));
            out.extend(all[..k].iter().map(|p| p.1));
        }
        out
    }

    #[test]
    fn raw_and_normalised_metrics_give_their_own_tables() {
        // t1 points the same way as t0 but is ten times longer: far apart raw, identical once
        // normalised. t3 sits at 45°, equally far from t0 and t2 in both metrics.
        let rows = [[1.0f32, 0.0], [10.0, 0.0], [0.0, 1.0], [0.8, 0.8]];
        let flat: std::vec::Vec<f32> = rows.iter().flatten().copied().collect();
        // Raw squared distances: d03 = d23 = 0.68, d02 = 2, d01 = 81, d13 = 85.28, d12 = 101.
        let raw = build_table_with(&flat, 2, 3, Metric::Raw).unwrap();
        assert_eq!(raw, std::vec![3, 2, 1, 0, 3, 2, 3, 0, 1, 0, 2, 1]);
        // Normalised: t0 = t1 = (1, 0), t3 = (1, 1)/√2: d01 = 0, d03 = d13 = d23 = 2 − √2,
        // d02 = d12 = 2.
        let norm = build_table_with(&flat, 2, 3, Metric::Normalised).unwrap();
        assert_eq!(norm, std::vec![1, 3, 2, 0, 3, 2, 3, 0, 1, 0, 1, 2]);
        assert_eq!(Metric::default(), Metric::Normalised);
        // Raw reproduces a brute-force ranking, for every k; the default builder is raw.
        for k in 1..=3 {
            let want = brute_force(&rows, k);
            assert_eq!(build_table_with(&flat, 2, k, Metric::Raw).unwrap(), want);
            assert_eq!(build_table(&flat, 2, k).unwrap(), want);
        }
        // Normalised is the raw table of the normalised rows.
        let mut unit = rows;
        for r in unit.iter_mut() {
            l2_normalise(r);
        }
        assert_eq!(unit[1], [1.0, 0.0]);
        for k in 1..=3 {
            assert_eq!(
                build_table_with(&flat, 2, k, Metric::Normalised).unwrap(),
                brute_force(&unit, k)
            );
        }
        assert!(build_table_with(&flat, 0, 1, Metric::Normalised).is_err());
    }

    #[test]
    fn l2_normalise_matches_the_vq_lookup() {
        let mut r = [3.0f32, 4.0];
        l2_normalise(&mut r);
        assert_eq!(r, [0.6, 0.8]);
        let mut z = [0.0f32; 3];
        l2_normalise(&mut z);
        assert_eq!(z, [0.0; 3]);
        // Bit for bit the expression argen-model's VQ used before it called this function, so
        // tables and decoded images did not move: rows of 8 values over many magnitudes.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut row = [0.0f32; 8];
            for x in row.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let m = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                *x = m * [1e-3f32, 1.0, 37.0][(state & 3) as usize % 3];
            }
            let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            let want: std::vec::Vec<u32> = row.iter().map(|x| (x / n).to_bits()).collect();
            l2_normalise(&mut row);
            let got: std::vec::Vec<u32> = row.iter().map(|x| x.to_bits()).collect();
            assert_eq!(got, want);
        }
    }
}
