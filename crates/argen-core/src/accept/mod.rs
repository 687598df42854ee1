//! Acceptance criteria for speculative decoding, with multi-draft (sibling) testing.
//!
//! At one node of a draft tree (or one position of a chain) the target has distribution `p`, the
//! drafter `q`, and one or more drafted children — the *siblings* — wait to be tested in order.
//! [`NodeVerifier`] holds the state of that node (the current residual of `p`, shared budgets) and
//! exposes each test as an exact rational probability ([`Acceptance`]) plus a rejection update, so
//! that the rule can be analysed exactly (the tests compute every criterion's output distribution
//! in closed form) and executed with keyed randomness by [`verify_siblings`].
//!
//! | criterion | module | output distribution |
//! |---|---|---|
//! | [`Criterion::Exact`] | [`exact`] | exactly `p` |
//! | [`Criterion::Coupled`] | [`coupled`] | exactly `p`, and token-for-token vanilla |
//! | [`Criterion::Lantern`] | [`lantern`] | `TV(o, p) ≤ δ` (point-mass), closed form (sampled) |
//! | [`Criterion::Grouped`] | [`grouped`] | closed form (sampled; `TV(o, p) ≤ TV(p, q)` only when the rejection mass is `≤ TV(p, q)`) |
//!
//! The exact arithmetic of every criterion (fractions, residuals, the shift rule, budgets, groups)
//! is specified normatively in section 8 of `docs/spec/determinism-v1.md`.
//!
//! # Keys
//!
//! At absolute position `pos` of stream `stream`, sibling `i`'s test draws `U` uniform on
//! `[0, den)` from key `(seed, stream, ACCEPT, pos, i)` and accepts iff `U < num`. If every sibling
//! is rejected, the emitted token is drawn from the residual with key `(seed, stream, RESIDUAL,
//! pos, 0)`. The Coupled criterion instead draws with `(seed, stream, SAMPLE, pos, 0)`, the key
//! vanilla decoding uses at that position.

pub mod coupled;
pub mod exact;
pub mod grouped;
pub mod lantern;
pub mod neighbours;

use crate::dist::Dist;
use crate::error::{Error, Result};
use crate::rng::{Key, Purpose};
use crate::sample::sample;
pub use grouped::{Group, GroupedParams};
pub use lantern::LanternParams;
pub use neighbours::NeighbourTable;

/// Which acceptance rule to apply.
#[derive(Clone, Copy, Debug)]
pub enum Criterion<'a> {
    /// Lossless speculative sampling.
    Exact,
    /// Accept iff the draft equals the target's own keyed draw (vanilla-identical output).
    Coupled,
    /// LANTERN relaxed acceptance over latent neighbours.
    Lantern(LanternParams<'a>),
    /// Grouped speculative decoding.
    Grouped(GroupedParams<'a>),
}

impl Criterion<'_> {
    /// Checks the criterion's parameters against `vocab`.
    pub fn validate(&self, vocab: usize) -> Result<()> {
        match self {
            Criterion::Exact | Criterion::Coupled => Ok(()),
            Criterion::Lantern(l) => l.validate(vocab),
            Criterion::Grouped(g) => g.validate(vocab),
        }
    }

    /// Short name, for traces and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Criterion::Exact => "exact",
            Criterion::Coupled => "coupled",
            Criterion::Lantern(_) => "lantern",
            Criterion::Grouped(_) => "grouped",
        }
    }
}

/// How the siblings were drafted, which decides the residual rule.
#[derive(Clone, Copy, Debug)]
pub enum Draft<'a> {
    /// The siblings are independent draws from this draft distribution.
    Sampled(Dist<'a>),
    /// The siblings were chosen deterministically (top-k, greedy): `q = 1_x` for each.
    PointMass,
}

/// What a rejected sibling takes out of the residual besides itself (point-mass relaxed rules).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Borrowed {
    /// Nothing.
    None,
    /// The first `m` latent neighbours of the sibling (LANTERN).
    Prefix(usize),
    /// The sibling's group (GSD), sibling first.
    Group(Group),
}

/// One sibling's test: accept with probability `min(1, num / den)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acceptance {
    /// Numerator.
    pub num: u128,
    /// Denominator (positive).
    pub den: u128,
    /// Target mass (weight units of the current residual) borrowed from other tokens.
    pub borrowed_weight: u64,
    /// The tokens the borrowed mass came from.
    pub borrowed: Borrowed,
}

impl Acceptance {
    /// The acceptance probability as `f64`.
    pub fn probability(&self) -> f64 {
        if self.num >= self.den {
            1.0
        } else {
            self.num as f64 / self.den as f64
        }
    }
}

/// Result of testing the siblings of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// Sibling `index` was accepted; its subtree is tested next.
    Accepted {
        /// Index into the sibling list.
        index: usize,
    },
    /// Every sibling was rejected; `token` is committed in their place.
    Rejected {
        /// The token drawn from the residual (or the target's draw, for Coupled).
        token: u32,
    },
}

/// The state of one node's sibling tests (see the module documentation).
#[derive(Debug)]
pub struct NodeVerifier<'a, 'c> {
    criterion: &'c Criterion<'c>,
    p: &'a mut [u64],
    total: u64,
    draft: Draft<'a>,
    /// LANTERN's remaining shared budget, in weight units × 2^32.
    budget: u128,
    rejected: usize,
}

impl<'a, 'c> NodeVerifier<'a, 'c> {
    /// Starts the tests of a node whose target weights `p` (total `total`) may be overwritten by
    /// residuals.
    pub fn new(
        criterion: &'c Criterion<'c>,
        p: &'a mut [u64],
        total: u64,
        draft: Draft<'a>,
    ) -> Result<Self> {
        let vocab = p.len();
        if vocab == 0 {
            return Err(Error::EmptyRow);
        }
        criterion.validate(vocab)?;
        let dist = Dist::new(p)?;
        if dist.total() != total {
            return Err(Error::InvalidParameter {
                name: "total",
                reason: "does not equal the sum of the target weights",
            });
        }
        if let Draft::Sampled(q) = draft {
            if q.vocab() != vocab {
                return Err(Error::LengthMismatch {
                    expected: vocab,
                    found: q.vocab(),
                });
            }
        }
        let budget = match criterion {
            Criterion::Lantern(l) => l.delta_fixed() * total as u128,
            _ => 0,
        };
        Ok(NodeVerifier {
            criterion,
            p,
            total,
            draft,
            budget,
            rejected: 0,
        })
    }

    /// The current residual target distribution.
    pub fn residual(&self) -> Result<Dist<'_>> {
        Dist::with_total(self.p, self.total)
    }

    /// The acceptance probability of testing sibling `x` next (not meaningful for Coupled, whose
    /// decision is a deterministic function of the key; it reports `p(x)`).
    pub fn acceptance(&self, x: u32) -> Result<Acceptance> {
        let vocab = self.p.len();
        if x as usize >= vocab {
            return Err(Error::TokenOutOfRange { token: x, vocab });
        }
        let relaxed = matches!(
            self.criterion,
            Criterion::Lantern(_) | Criterion::Grouped(_)
        );
        if relaxed && self.rejected > 0 && matches!(self.draft, Draft::Sampled(_)) {
            return Err(Error::InvalidParameter {
                name: "siblings",
                reason:
                    "relaxed criteria support one sampled sibling per node; use point-mass drafts",
            });
        }
        let wx = self.p[x as usize];
        let (borrowed_weight, borrowed) = match self.criterion {
            Criterion::Exact | Criterion::Coupled => (0, Borrowed::None),
            Criterion::Lantern(l) => {
                let (m, s) = l.borrow(self.p, x, self.budget)?;
                (s, Borrowed::Prefix(m))
            }
            Criterion::Grouped(g) => {
                let group = g.group(self.p, self.total, x)?;
                let s: u64 = group.iter().skip(1).map(|&t| self.p[t as usize]).sum();
                (s, Borrowed::Group(group))
            }
        };
        let (num, den) = match (&self.draft, self.criterion, &borrowed) {
            (Draft::PointMass, _, _) | (_, Criterion::Coupled, _) => {
                ((wx + borrowed_weight) as u128, self.total as u128)
            }
            // Only the grouped criterion borrows a group.
            (Draft::Sampled(q), _, Borrowed::Group(group)) => {
                let pg: u64 = group.iter().map(|&t| self.p[t as usize]).sum();
                let qg: u64 = group.iter().map(|&t| q.weights()[t as usize]).sum();
                if q.weights()[x as usize] == 0 {
                    return Err(Error::DraftZeroMass { token: x });
                }
                (
                    pg as u128 * q.total() as u128,
                    qg as u128 * self.total as u128,
                )
            }
            (Draft::Sampled(q), _, _) => {
                let wq = q.weights()[x as usize];
                if wq == 0 {
                    return Err(Error::DraftZeroMass { token: x });
                }
                (
                    (wx + borrowed_weight) as u128 * q.total() as u128,
                    wq as u128 * self.total as u128,
                )
            }
        };
        Ok(Acceptance {
            num,
            den,
            borrowed_weight,
            borrowed,
        })
    }

    /// Applies the rejection of sibling `x`, whose test was `acc`, to the residual.
    ///
    /// `acc` must be this node's [`acceptance`](Self::acceptance) of `x`; an `acc` that cannot be
    /// (a token or prefix out of range, more borrowed mass than the budget left) is refused with
    /// an error before the residual is touched.
    pub fn reject(&mut self, x: u32, acc: &Acceptance) -> Result<()> {
        let vocab = self.p.len();
        if x as usize >= vocab {
            return Err(Error::TokenOutOfRange { token: x, vocab });
        }
        let foreign = Error::InvalidParameter {
            name: "acc",
            reason: "is not this node's acceptance of the rejected sibling",
        };
        match self.draft {
            Draft::Sampled(q) => {
                self.total = exact::residual_in_place(self.p, self.total, q.weights(), q.total())?;
            }
            Draft::PointMass => {
                // Validate everything `acc` names before changing the residual.
                let (borrowed, budget): (&[u32], u128) = match (&acc.borrowed, self.criterion) {
                    (Borrowed::Prefix(m), Criterion::Lantern(l)) => (
                        l.neighbours.row(x)?.get(..*m).ok_or(foreign)?,
                        self.budget
                            .checked_sub((acc.borrowed_weight as u128) << 32)
                            .ok_or(foreign)?,
                    ),
                    (Borrowed::Group(g), _) => (g.get(1..).unwrap_or(&[]), self.budget),
                    _ => (&[], self.budget),
                };
                if borrowed.iter().any(|&t| t as usize >= vocab) {
                    return Err(foreign);
                }
                let mut removed = self.p[x as usize];
                self.p[x as usize] = 0;
                for &t in borrowed {
                    removed += self.p[t as usize];
                    self.p[t as usize] = 0;
                }
                self.budget = budget;
                self.total -= removed;
                if self.total == 0 {
                    return Err(Error::ZeroMass);
                }
            }
        }
        self.rejected += 1;
        Ok(())
    }
}

/// Where a node sits, for its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NodeKeys {
    /// The user's seed.
    pub seed: u64,
    /// The sequence.
    pub stream: u32,
    /// Absolute position of the token being decided.
    pub position: u32,
}

impl NodeKeys {
    /// The key of purpose `purpose` and token field `token` at this node.
    pub fn key(&self, purpose: Purpose, token: u32) -> Key {
        Key {
            seed: self.seed,
            stream: self.stream,
            purpose,
            position: self.position,
            token,
        }
    }
}

/// Tests `siblings` in order under `criterion` (see the module documentation for the keys).
///
/// `p` (total `total`) is the target at the node and is overwritten with residuals; `draft` is the
/// draft distribution (or point-mass drafts). At most [`crate::rng::MAX_KEY_TOKEN`] siblings.
pub fn verify_siblings(
    criterion: &Criterion<'_>,
    p: &mut [u64],
    total: u64,
    draft: Draft<'_>,
    siblings: &[u32],
    keys: NodeKeys,
) -> Result<Outcome> {
    if siblings.len() >= crate::rng::MAX_KEY_TOKEN as usize {
        return Err(Error::CapacityExceeded {
            capacity: crate::rng::MAX_KEY_TOKEN as usize - 1,
        });
    }
    if let Criterion::Coupled = criterion {
        let dist = Dist::with_total(p, total)?;
        for &x in siblings {
            dist.weight(x)?;
        }
        let (hit, s) = coupled::coupled(&dist, siblings, keys.key(Purpose::SAMPLE, 0))?;
        return Ok(match hit {
            Some(index) => Outcome::Accepted { index },
            None => Outcome::Rejected { token: s },
        });
    }
    let mut node = NodeVerifier::new(criterion, p, total, draft)?;
    for (i, &x) in siblings.iter().enumerate() {
        let acc = node.acceptance(x)?;
        let u = keys
            .key(Purpose::ACCEPT, i as u32)
            .stream()
            .below(acc.den)?;
        if u < acc.num {
            return Ok(Outcome::Accepted { index: i });
        }
        node.reject(x, &acc)?;
    }
    let residual = node.residual()?;
    let token = sample(&residual, keys.key(Purpose::RESIDUAL, 0))?;
    Ok(Outcome::Rejected { token })
}
