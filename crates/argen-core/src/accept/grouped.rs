//! Grouped speculative decoding (GSD, So et al., *Grouped Speculative Decoding for Autoregressive
//! Image Generation*, ICCV 2025), training-free.
//!
//! A drafted token `x` is judged together with a group `G(x)` of tokens the target finds about as
//! likely and that look alike: the tokens within `±window` ranks of `x` in the target's ranking
//! (weight descending, id ascending), kept only if `|p(x') − p(x)| < prob_tol` and the squared L2
//! distance of their input embeddings to `x`'s is below `dist_tol`; `x` itself always belongs.
//! Paper settings: `window = 7`, `prob_tol = 0.15`, `dist_tol = 0.5`.
//!
//! * **Sampled drafts**: accept with probability `min(1, p(G) / q(G))`; on rejection draw from the
//!   standard residual `norm(max(p − q, 0))`. Output: `o(y) = A(y) + (1 − Σ A)·r(y)` with
//!   `A(y) = q(y)·min(1, p(G(y))/q(G(y)))` and `r` the standard residual. When the rejection
//!   mass `1 − Σ A` is at most `TV(p, q)` (e.g. when the groups partition the vocabulary),
//!   `TV(o, p) = Σ_y max(A(y) − p(y), 0) ≤ TV(p, q)`. **In general this bound does not hold**:
//!   groups are not a partition, a token with `p(y) > q(y)` in an over-drafted group is accepted
//!   less often than `min(p, q)`, and the standard residual then over-fills. Counterexample
//!   (paper settings, 1-D embeddings `0, −0.6, 0.6, 10, 20`): `p = (0, 5, 5, 2, 28)/40`,
//!   `q = (6, 24, 24, 3, 133)/190` give `TV(o, p) = 0.05 > TV(p, q) ≈ 0.0342`
//!   (`tests/exact_distribution.rs`). Using the residual `norm(max(p − A, 0))` would restore
//!   `TV(o, p) = Σ_y max(A(y) − p(y), 0) ≤ TV(p, q)` at the cost of every token's group.
//! * **Point-mass drafts**: like LANTERN's point-mass rule ([`super::lantern`]) with the group in
//!   place of the neighbour prefix: accept with probability `p(G(x))` (current residual), on
//!   rejection remove the whole group. Output: exactly the relaxed target of the first accepted
//!   sibling; `TV(o, p) ≤ p(G(x) \ {x})` for a single sibling.
//!
//! Probabilities are compared in fixed point: `|w' − w| · 2^32 < trunc(prob_tol · 2^32) · Z`.
//!
//! # Trace hash and device packing
//!
//! **Trace hash** ([`StableEncode`]): tag byte 3, the embedding (a length, then each value's
//! `f32` bits), `dim`, `window`, `prob_tol`, `dist_tol` (`f32` bits); sizes are `u32`.
//!
//! **Device** ([`DeviceParams`]): code 3, table [`DeviceTable::F32`] (the embedding, row-major),
//! words `0` `dim`, `1` `window`, `2, 3` `trunc(prob_tol·2^32)` (low, high), `4` the `f32` bits
//! of `dist_tol`.

use super::neighbours::squared_distance;
use super::{
    foreign, Acceptance, Borrowed, DeviceParams, DeviceTable, Draft, NodeState, Rule,
    DEVICE_PARAM_WORDS,
};
use crate::error::{Error, Result};
use crate::trace::{Fnv64, StableEncode};

/// The tag byte of the trace hash and the device code.
pub const TAG: u8 = 3;

/// `2^32`, the fixed-point scale of `prob_tol`.
const FP: f64 = crate::dist::PROB_SCALE;

/// Largest supported rank window.
pub const MAX_WINDOW: usize = 16;

/// A group: `x` first, then the admitted rank neighbours.
pub type Group = heapless::Vec<u32, { 2 * MAX_WINDOW + 1 }>;

/// Parameters of the grouped criterion.
#[derive(Clone, Copy, Debug)]
pub struct GroupedParams<'a> {
    /// The target's input embedding table, row-major `vocab × dim`.
    pub embedding: &'a [f32],
    /// Embedding width.
    pub dim: usize,
    /// Rank window on each side (1..=16; paper: 7).
    pub window: usize,
    /// Probability tolerance (paper: 0.15), in `[0, 1]`.
    pub prob_tol: f32,
    /// Squared-distance tolerance (paper: 0.5), finite and `>= 0`.
    pub dist_tol: f32,
}

impl<'a> GroupedParams<'a> {
    /// The paper's settings for a given embedding table.
    pub fn paper(embedding: &'a [f32], dim: usize) -> Self {
        GroupedParams {
            embedding,
            dim,
            window: 7,
            prob_tol: 0.15,
            dist_tol: 0.5,
        }
    }

    /// Checks the parameters against `vocab`.
    pub fn validate(&self, vocab: usize) -> Result<()> {
        if self.dim == 0 || vocab.checked_mul(self.dim) != Some(self.embedding.len()) {
            return Err(Error::InvalidParameter {
                name: "embedding",
                reason: "length must be vocabulary size × dim with dim >= 1",
            });
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return Err(Error::InvalidParameter {
                name: "window",
                reason: "must be in 1..=16",
            });
        }
        if !(0.0..=1.0).contains(&self.prob_tol) {
            return Err(Error::InvalidParameter {
                name: "prob_tol",
                reason: "must be in [0, 1]",
            });
        }
        if !(self.dist_tol.is_finite() && self.dist_tol >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "dist_tol",
                reason: "must be finite and >= 0",
            });
        }
        Ok(())
    }

    /// `prob_tol` in fixed point: `trunc(prob_tol · 2^32)`.
    pub fn prob_tol_fixed(&self) -> u64 {
        (self.prob_tol as f64 * FP) as u64
    }

    fn row(&self, t: u32) -> &[f32] {
        let t = t as usize;
        &self.embedding[t * self.dim..(t + 1) * self.dim]
    }

    /// The group `G(x)` under the weights `w` (total `total`).
    pub fn group(&self, w: &[u64], total: u64, x: u32) -> Result<Group> {
        self.validate(w.len())?;
        let xi = x as usize;
        if xi >= w.len() {
            return Err(Error::TokenOutOfRange {
                token: x,
                vocab: w.len(),
            });
        }
        // Rank key: weight descending, id ascending ⇒ larger key = better rank.
        let key = |i: usize| ((w[i] as u128) << 32) | (!(i as u32)) as u128;
        let kx = key(xi);
        // The `window` tokens ranked just above x (smallest keys > kx) and just below
        // (largest keys < kx), kept sorted by closeness to x.
        let mut above: heapless::Vec<(u128, u32), MAX_WINDOW> = heapless::Vec::new();
        let mut below: heapless::Vec<(u128, u32), MAX_WINDOW> = heapless::Vec::new();
        for i in 0..w.len() {
            let k = key(i);
            if k > kx {
                insert_closest(&mut above, self.window, (k, i as u32), |a, b| a < b);
            } else if k < kx {
                insert_closest(&mut below, self.window, (k, i as u32), |a, b| a > b);
            }
        }
        let tol = self.prob_tol_fixed() as u128 * total as u128;
        let mut group = Group::new();
        let _ = group.push(x);
        for &(_, t) in above.iter().chain(below.iter()) {
            let diff = w[t as usize].abs_diff(w[xi]) as u128;
            if (diff << 32) < tol
                && squared_distance(self.row(t), self.row(x)) < self.dist_tol as f64
            {
                let _ = group.push(t);
            }
        }
        Ok(group)
    }
}

/// See the [module documentation](self#trace-hash-and-device-packing).
impl StableEncode for GroupedParams<'_> {
    fn encode(&self, h: &mut Fnv64) {
        h.u8(TAG);
        h.len(self.embedding.len());
        for &x in self.embedding {
            h.f32(x);
        }
        h.len(self.dim);
        h.len(self.window);
        h.f32(self.prob_tol);
        h.f32(self.dist_tol);
    }
}

impl<'a> Rule for GroupedParams<'a> {
    fn name(&self) -> &'static str {
        "grouped"
    }

    fn validate(&self, vocab: usize) -> Result<()> {
        GroupedParams::validate(self, vocab)
    }

    /// Point-mass: `p(G(x))`. Sampled: `min(1, p(G(x)) / q(G(x)))`.
    fn acceptance(&self, node: &NodeState<'_>, x: u32) -> Result<Acceptance> {
        node.single_sampled_sibling()?;
        let group = self.group(node.p, node.total, x)?;
        let p = &*node.p;
        let borrowed_weight: u64 = group.iter().skip(1).map(|&t| p[t as usize]).sum();
        let (num, den) = match node.draft {
            Draft::PointMass => node.ratio(x, p[x as usize] + borrowed_weight)?,
            Draft::Sampled(q) => {
                let pg: u64 = group.iter().map(|&t| p[t as usize]).sum();
                let qg: u64 = group.iter().map(|&t| q.weights()[t as usize]).sum();
                if q.weights()[x as usize] == 0 {
                    return Err(Error::DraftZeroMass { token: x });
                }
                (
                    pg as u128 * q.total() as u128,
                    qg as u128 * node.total as u128,
                )
            }
        };
        Ok(Acceptance {
            num,
            den,
            borrowed_weight,
            borrowed: Borrowed::Group(group),
        })
    }

    /// Sampled: the standard residual. Point-mass: the whole group leaves the residual.
    fn reject(&self, node: &mut NodeState<'_>, x: u32, acc: &Acceptance) -> Result<()> {
        let budget = node.budget;
        if let Draft::Sampled(_) = node.draft {
            return node.remove(x, &[], budget);
        }
        let Borrowed::Group(group) = &acc.borrowed else {
            return Err(foreign());
        };
        node.remove(x, group.get(1..).unwrap_or(&[]), budget)
    }

    fn device(&self) -> DeviceParams<'_> {
        let pt = self.prob_tol_fixed();
        let mut words = [0u32; DEVICE_PARAM_WORDS];
        words[0] = self.dim as u32;
        words[1] = self.window as u32;
        words[2] = pt as u32;
        words[3] = (pt >> 32) as u32;
        words[4] = self.dist_tol.to_bits();
        DeviceParams {
            code: TAG as u32,
            words,
            table: DeviceTable::F32(self.embedding),
        }
    }
}

/// Keeps `buf` as the `cap` entries closest to the pivot, sorted closest first, where
/// `closer(a, b)` says key `a` is closer than key `b`.
fn insert_closest(
    buf: &mut heapless::Vec<(u128, u32), MAX_WINDOW>,
    cap: usize,
    item: (u128, u32),
    closer: impl Fn(u128, u128) -> bool,
) {
    let pos = buf
        .iter()
        .position(|e| closer(item.0, e.0))
        .unwrap_or(buf.len());
    if pos >= cap {
        return;
    }
    if buf.len() == cap {
        buf.pop();
    }
    // Capacity is guaranteed by the pop above (cap <= MAX_WINDOW).
    let _ = buf.insert(pos, item);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_takes_rank_neighbours_that_pass_both_filters() {
        // Weights ranked: t3 (100) > t1 (90) > t0 (80) > t2 (10) > t4 (0); total 280.
        let w = [80u64, 90, 10, 100, 0];
        let emb = [0.0f32, 0.1, 0.2, 5.0, 0.3];
        let p = GroupedParams {
            embedding: &emb,
            dim: 1,
            window: 2,
            prob_tol: 0.2,
            dist_tol: 0.5,
        };
        p.validate(5).unwrap();
        let g = p.group(&w, 280, 0).unwrap();
        // Above t0: t1 (close in p and embedding), t3 (far in embedding). Below: t2 (p differs by
        // 70/280 = 0.25 > 0.2), t4 (differs by 80/280).
        assert_eq!(g.as_slice(), &[0, 1]);
        let wide = GroupedParams { prob_tol: 0.3, ..p };
        assert_eq!(wide.group(&w, 280, 0).unwrap().as_slice(), &[0, 1, 2, 4]);
        assert!(p.group(&w, 280, 5).is_err());
    }

    #[test]
    fn validation() {
        let emb = [0.0f32; 4];
        let ok = GroupedParams::paper(&emb, 2);
        assert!(ok.validate(2).is_ok());
        assert!(ok.validate(3).is_err());
        assert!(GroupedParams { window: 0, ..ok }.validate(2).is_err());
        assert!(GroupedParams { window: 17, ..ok }.validate(2).is_err());
        assert!(GroupedParams {
            prob_tol: 1.5,
            ..ok
        }
        .validate(2)
        .is_err());
        assert!(GroupedParams {
            dist_tol: f32::NAN,
            ..ok
        }
        .validate(2)
        .is_err());
    }
}
