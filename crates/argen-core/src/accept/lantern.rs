//! LANTERN relaxed acceptance over latent neighbours (Jang et al., *LANTERN: Accelerating Visual
//! Autoregressive Models with Relaxed Speculative Decoding*, ICLR 2025; LANTERN++ for `λ > 1`).
//!
//! Visual tokens are often interchangeable with their latent neighbours, so LANTERN credits a
//! drafted token `x` with the target mass of its nearest codebook neighbours `B_k(x) = (n_1, …,
//! n_k)` (see [`super::neighbours`]). With `S_m = Σ_{j ≤ m} p(n_j)`, `m` is the longest prefix with
//! `S_m ≤ δ` (and, in LANTERN++ mode, `S_m ≤ (λ − 1)·p(x)`); the relaxed mass is
//! `p̃(x) = p(x) + S_m`. Moving that mass onto `x` changes `p` by exactly `S_m ≤ δ` in total
//! variation. Only `p` is aggregated, never `q`.
//!
//! # The residual argen defines, and the output distribution it yields
//!
//! The official code has several mutually inconsistent rejection paths; argen has one rule per
//! draft kind, chosen so that the output distribution is known in closed form:
//!
//! * **Point-mass drafts** (top-k tree drafts, the setting of LANTERN's experiments, where the
//!   official code sets `q(x) = 1`): testing `x` is *exact* speculative sampling against the
//!   relaxed target `p̃_x` (= `p` with the borrowed neighbour mass moved onto `x`): accept with
//!   probability `p̃_x(x)`; on rejection remove `x` **and the borrowed neighbours** from the
//!   residual. A node's siblings share one budget: the borrowed mass of all its siblings together
//!   is at most `δ` of the node's original target mass. **Bound:** the output distribution `o` of
//!   a node satisfies `TV(o, p) ≤ δ`, for any number of siblings. (Proof sketch: each sibling's
//!   test is exact against its relaxed target, whose distance from the current residual is the mass
//!   it borrowed; distances add up along the rejection chain in units of the original mass, and the
//!   shared budget caps the sum at `δ`.)
//! * **Sampled drafts** (`x ~ q`, one sibling): accept with probability `min(1, p̃(x)/q(x))`, on
//!   rejection draw from the standard residual `norm(max(p − q, 0))`. **Output:**
//!   `o(y) = p(y) + E_y − E·r(y)` with `E_y = min(max(q(y) − p(y), 0), S(y))`, `E = Σ E_y` and `r`
//!   the standard residual, hence `TV(o, p) = E ≤ min(TV(p, q), Σ_{y : q(y) > p(y)} S(y))`. Note
//!   that this can exceed `δ` when `q` spreads over several over-drafted tokens: `δ` bounds each
//!   `TV(p, p̃_x)`, not the output. Relaxed criteria with several *sampled* siblings are rejected
//!   with an error (no closed form; argen's tree decoders use point-mass drafts).
//!
//! Paper settings: `k = 1000`, `δ ∈ {0.1, 0.2, 0.3}` (0.4 "high speed"), LlamaGen's 16384 × 8
//! codebook.
//!
//! # Trace hash and device packing
//!
//! **Trace hash** ([`StableEncode`]): tag byte 2, the table's vocabulary, its `k` and its ids (a
//! length, then each id), `k`, `δ` (`f32` bits), optional `λ` (byte 0, or byte 1 and the `f32`
//! bits); sizes are `u32`.
//!
//! **Device** ([`DeviceParams`]): code 2, table [`DeviceTable::Ids`] (the neighbour table,
//! row-major), words `0` the table's row length, `1` `k`, `2, 3` `trunc(δ·2^32)` (low, high),
//! `4` whether `λ` is given, `5, 6` `trunc((λ − 1)·2^32)` (low, high; 0 without `λ`).

use super::neighbours::NeighbourTable;
use super::{
    foreign, Acceptance, Borrowed, DeviceParams, DeviceTable, Draft, NodeState, Rule,
    DEVICE_PARAM_WORDS,
};
use crate::error::{Error, Result};
use crate::trace::{Fnv64, StableEncode};

/// The tag byte of the trace hash and the device code.
pub const TAG: u8 = 2;

/// Parameters of the LANTERN criterion.
#[derive(Clone, Copy, Debug)]
pub struct LanternParams<'a> {
    /// The latent-neighbour table.
    pub neighbours: NeighbourTable<'a>,
    /// How many neighbours of each row to consider (`1 <= k <=` the table's `k`).
    pub k: usize,
    /// Total-variation budget `δ` in `[0, 1]`.
    pub delta: f32,
    /// LANTERN++ factor `λ >= 1` (`p̃(x) <= λ·p(x)`), or `None` for plain LANTERN.
    pub lambda: Option<f32>,
}

/// `2^32`, the fixed-point scale of the `δ` and `λ` parameters.
const FP: f64 = crate::dist::PROB_SCALE;

impl<'a> LanternParams<'a> {
    /// Checks the parameters against `vocab`.
    pub fn validate(&self, vocab: usize) -> Result<()> {
        if self.neighbours.vocab() != vocab {
            return Err(Error::InvalidNeighbourTable {
                reason: "table vocabulary differs from the rows' vocabulary",
            });
        }
        if self.k == 0 || self.k > self.neighbours.k() {
            return Err(Error::InvalidParameter {
                name: "lantern_k",
                reason: "must be between 1 and the neighbour table's k",
            });
        }
        if !(0.0..=1.0).contains(&self.delta) {
            return Err(Error::InvalidParameter {
                name: "delta",
                reason: "must be in [0, 1]",
            });
        }
        if let Some(l) = self.lambda {
            if !(1.0..=2_147_483_648.0).contains(&l) {
                return Err(Error::InvalidParameter {
                    name: "lambda",
                    reason: "must be in [1, 2^31]",
                });
            }
        }
        Ok(())
    }

    /// `δ` in fixed point: `trunc(δ · 2^32)`.
    pub fn delta_fixed(&self) -> u128 {
        (self.delta as f64 * FP) as u128
    }

    /// The relaxation: the longest prefix `m` of `x`'s neighbours (first `k`) whose weight `S`
    /// satisfies `S · 2^32 <= budget` and, with `λ`, `S · 2^32 <= trunc((λ−1)·2^32) · w(x)`.
    /// `budget` is in weight units times `2^32`. Returns `(m, S)`.
    pub fn borrow(&self, weights: &[u64], x: u32, budget: u128) -> Result<(usize, u64)> {
        if weights.len() != self.neighbours.vocab() {
            return Err(Error::LengthMismatch {
                expected: self.neighbours.vocab(),
                found: weights.len(),
            });
        }
        let row = self.neighbours.row(x)?;
        let row = row.get(..self.k).ok_or(Error::InvalidParameter {
            name: "lantern_k",
            reason: "must be between 1 and the neighbour table's k",
        })?;
        let wx = weights[x as usize] as u128;
        let cap = match self.lambda {
            Some(l) => budget.min((((l as f64 - 1.0) * FP) as u128).saturating_mul(wx)),
            None => budget,
        };
        let mut sum = 0u64;
        let mut m = 0;
        for &n in row {
            let next = sum
                .checked_add(weights[n as usize])
                .ok_or(Error::InvalidParameter {
                    name: "weights",
                    reason: "total weight must be below 2^64",
                })?;
            if (next as u128) << 32 > cap {
                break;
            }
            sum = next;
            m += 1;
        }
        Ok((m, sum))
    }
}

/// See the [module documentation](self#trace-hash-and-device-packing).
impl StableEncode for LanternParams<'_> {
    fn encode(&self, h: &mut Fnv64) {
        h.u8(TAG);
        h.len(self.neighbours.vocab());
        h.len(self.neighbours.k());
        h.u32s(self.neighbours.ids());
        h.len(self.k);
        h.f32(self.delta);
        match self.lambda {
            None => h.u8(0),
            Some(l) => {
                h.u8(1);
                h.f32(l);
            }
        }
    }
}

impl<'a> Rule for LanternParams<'a> {
    fn name(&self) -> &'static str {
        "lantern"
    }

    fn validate(&self, vocab: usize) -> Result<()> {
        LanternParams::validate(self, vocab)
    }

    /// `trunc(δ·2^32) · Z`: the siblings of a node borrow at most `δ` of its mass together.
    fn budget(&self, total: u64) -> u128 {
        self.delta_fixed() * total as u128
    }

    /// The standard test of `x` credited with `p(x) + S_m` ([`LanternParams::borrow`]).
    fn acceptance(&self, node: &NodeState<'_>, x: u32) -> Result<Acceptance> {
        node.single_sampled_sibling()?;
        let (m, borrowed_weight) = self.borrow(node.p, x, node.budget)?;
        let (num, den) = node.ratio(x, node.p[x as usize] + borrowed_weight)?;
        Ok(Acceptance {
            num,
            den,
            borrowed_weight,
            borrowed: Borrowed::Prefix(m),
        })
    }

    /// Sampled: the standard residual. Point-mass: `x` and its borrowed neighbours leave the
    /// residual, their mass leaves the budget.
    fn reject(&self, node: &mut NodeState<'_>, x: u32, acc: &Acceptance) -> Result<()> {
        if let Draft::Sampled(_) = node.draft {
            let budget = node.budget;
            return node.remove(x, &[], budget);
        }
        let Borrowed::Prefix(m) = acc.borrowed else {
            return Err(foreign());
        };
        let removed = self.neighbours.row(x)?.get(..m).ok_or_else(foreign)?;
        let budget = node
            .budget
            .checked_sub((acc.borrowed_weight as u128) << 32)
            .ok_or_else(foreign)?;
        node.remove(x, removed, budget)
    }

    fn device(&self) -> DeviceParams<'_> {
        let d = self.delta_fixed() as u64;
        let mut words = [0u32; DEVICE_PARAM_WORDS];
        words[0] = self.neighbours.k() as u32;
        words[1] = self.k as u32;
        words[2] = d as u32;
        words[3] = (d >> 32) as u32;
        if let Some(lambda) = self.lambda {
            let f = ((lambda as f64 - 1.0) * FP) as u64;
            words[4] = 1;
            words[5] = f as u32;
            words[6] = (f >> 32) as u32;
        }
        DeviceParams {
            code: TAG as u32,
            words,
            table: DeviceTable::Ids(self.neighbours.ids()),
        }
    }
}
