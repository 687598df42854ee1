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
//!
//! # One module per criterion
//!
//! Everything a criterion is lives in its module, behind the [`Rule`] trait: the parameters and
//! their validation, the acceptance test ([`Rule::acceptance`]), the residual after a rejection
//! ([`Rule::reject`]), a whole-node decision where the rule has one ([`Rule::decide`], Coupled),
//! the shared budget of a node's siblings ([`Rule::budget`], LANTERN), the bytes the criterion
//! contributes to a trace's configuration hash (the [`StableEncode`] supertrait: a tag byte, then
//! the parameters) and the way its parameters travel to a device ([`Rule::device`]: a code, a
//! block of [`DEVICE_PARAM_WORDS`] words, at most one table). [`Criterion::rule`] is the one
//! `match` over criteria; [`NodeVerifier`], [`verify_siblings`], [`crate::backend::SliceBackend`],
//! the trace hash ([`crate::trace::config_hash`]) and argen-cuda's `GpuBackend` only call the trait.
//! [`NodeState`] offers the pieces the rules share: the standard ratio test
//! ([`NodeState::ratio`]), the residual ([`NodeState::remove`]) and the one-sampled-sibling
//! guard of the relaxed rules ([`NodeState::single_sampled_sibling`]).
//!
//! # Adding a criterion
//!
//! 1. Write `accept/<name>.rs`: the module doc states the rule with its paper, the output
//!    distribution it yields, its trace-hash bytes and its device packing; a parameter type (a
//!    unit struct if it has none) implementing [`StableEncode`] (a new tag byte, then every
//!    parameter, so that two configurations that decode differently never hash alike) and
//!    [`Rule`] (`name`, `validate`, `acceptance`, `reject`, `device` with a new code equal to the
//!    tag; `budget`, `decide`, `vanilla_keys` where the defaults do not fit). Build on
//!    [`NodeState`]'s helpers where the rule is a variant of the standard test.
//! 2. The one dispatch: declare the module here, add the variant to [`Criterion`] and its arm to
//!    [`Criterion::rule`], and a row to the table above.
//! 3. Tests: the node's output distribution in closed form in `tests/exact_distribution.rs`
//!    (equal to `p`, or within the bound the module doc claims), a golden trace in
//!    `tests/traces.rs` (see `fixtures/traces/README.md`), and a case in argen-cuda's PoCL
//!    parity suite (`tests/common/mod.rs`).
//! 4. Device: `argen_verify_tree` (argen-cuda `kernels/verify.krn`) reads the parameter block
//!    at job words 9..17 under the criterion's code; add the criterion's branch there, reading
//!    the words in the layout its module documents, and raise `KERNEL_CRITERIA` in argen-cuda's
//!    `backend.rs` (codes at or above it are refused with an error, never run as another rule).
//!    Nothing else changes on the host: `GpuBackend` copies the words and uploads the table
//!    ([`DeviceTable`]) without knowing the criterion.
//! 5. Front ends: a criterion that needs data from a model directory (a table, an embedding) is
//!    built where the CLI builds the others (`argen-cli`, `generate.rs`), with its flags in
//!    `args.rs`.
//! 6. Specification: the rule's exact arithmetic in section 8 of `docs/spec/determinism-v1.md`,
//!    node vectors in `tests/spec_vectors.rs` (bless `fixtures/spec_v1.txt`) and the rule in the
//!    independent Python reference `tools/spec_reference/argen_spec.py`.
//!
//! Nothing else names a criterion: the trace format, the backends' `verify_tree` and the
//! decoders see [`Criterion`] and [`Rule`] only.

pub mod coupled;
pub mod exact;
pub mod grouped;
pub mod lantern;
pub mod neighbours;

use crate::dist::Dist;
use crate::error::{Error, Result};
use crate::rng::{Key, Purpose};
use crate::sample::sample;
use crate::trace::StableEncode;
pub use coupled::CoupledRule;
pub use exact::ExactRule;
pub use grouped::{Group, GroupedParams};
pub use lantern::LanternParams;
pub use neighbours::{Metric, NeighbourTable};

/// Which acceptance rule to apply.
///
/// Each variant's behaviour lives in its module, behind the [`Rule`] trait; [`Criterion::rule`]
/// is the one place that dispatches over the variants.
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

impl<'a> Criterion<'a> {
    /// The criterion's rule: the one dispatch over criteria (see [Adding a
    /// criterion](self#adding-a-criterion)).
    pub fn rule(&self) -> &(dyn Rule + 'a) {
        match self {
            Criterion::Exact => &ExactRule,
            Criterion::Coupled => &CoupledRule,
            Criterion::Lantern(l) => l,
            Criterion::Grouped(g) => g,
        }
    }

    /// Checks the criterion's parameters against `vocab`.
    pub fn validate(&self, vocab: usize) -> Result<()> {
        self.rule().validate(vocab)
    }

    /// Short name, for traces and reports.
    pub fn name(&self) -> &'static str {
        self.rule().name()
    }

    /// How the criterion travels to a device verifier (see [`DeviceParams`]).
    pub fn device(&self) -> DeviceParams<'_> {
        self.rule().device()
    }
}

/// What an acceptance criterion is: its test, its residual, its trace-hash encoding (the
/// [`StableEncode`] supertrait: a tag byte, then its parameters) and its device packing. One
/// implementation per criterion module; [`Criterion::rule`] picks it.
///
/// [`NodeVerifier`] calls [`Rule::acceptance`] and [`Rule::reject`] with a token already checked
/// against the vocabulary; both must leave `node` untouched when they return an error.
pub trait Rule: StableEncode + core::fmt::Debug {
    /// Short name, for traces and reports.
    fn name(&self) -> &'static str;

    /// Checks the parameters against `vocab`.
    fn validate(&self, vocab: usize) -> Result<()>;

    /// The node's shared budget at the start of its tests, for a target of total `total` (in
    /// weight units × `2^32`; rules that share none return 0, the default).
    fn budget(&self, total: u64) -> u128 {
        let _ = total;
        0
    }

    /// The test of sibling `x` at `node`.
    fn acceptance(&self, node: &NodeState<'_>, x: u32) -> Result<Acceptance>;

    /// Applies the rejection of sibling `x`, whose test was `acc`, to `node`'s residual and
    /// budget (not to its rejection count, which [`NodeVerifier`] keeps).
    fn reject(&self, node: &mut NodeState<'_>, x: u32, acc: &Acceptance) -> Result<()>;

    /// A rule that decides a whole node at once, without per-sibling tests, returns its outcome
    /// here (Coupled); the default `None` lets [`verify_siblings`] run the keyed tests.
    fn decide(
        &self,
        p: &[u64],
        total: u64,
        siblings: &[u32],
        keys: NodeKeys,
    ) -> Option<Result<Outcome>> {
        let _ = (p, total, siblings, keys);
        None
    }

    /// Whether the rule's committed tokens are vanilla decoding's own draws (key purpose
    /// SAMPLE), so that a decoder re-drawing a position must use vanilla's key (Coupled).
    fn vanilla_keys(&self) -> bool {
        false
    }

    /// The rule's parameters as a device verifier receives them.
    fn device(&self) -> DeviceParams<'_>;
}

/// Number of parameter words in [`DeviceParams::words`].
pub const DEVICE_PARAM_WORDS: usize = 8;

/// A criterion as a device verifier receives it (argen-cuda's `argen_verify_tree` kernel): a code,
/// a block of parameter words and at most one table. Each criterion's module documents its code
/// and the layout of its words (64-bit values as two words, low first); unused words are 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceParams<'a> {
    /// The criterion's code (equal to its trace-hash tag byte).
    pub code: u32,
    /// The parameter block.
    pub words: [u32; DEVICE_PARAM_WORDS],
    /// The table the device needs, if any.
    pub table: DeviceTable<'a>,
}

impl DeviceParams<'_> {
    /// Parameters of a rule with no parameters.
    pub const fn bare(code: u32) -> Self {
        DeviceParams {
            code,
            words: [0; DEVICE_PARAM_WORDS],
            table: DeviceTable::None,
        }
    }
}

/// A table a criterion ships to the device (uploaded once per borrowed host slice).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DeviceTable<'a> {
    /// No table.
    None,
    /// Token ids (LANTERN's neighbour table).
    Ids(&'a [u32]),
    /// `f32` values (GSD's embedding table).
    F32(&'a [f32]),
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

/// The state of one node's tests that a [`Rule`] reads and updates.
#[derive(Debug)]
pub struct NodeState<'a> {
    /// The current residual target weights.
    pub p: &'a mut [u64],
    /// Their total.
    pub total: u64,
    /// How the siblings were drafted.
    pub draft: Draft<'a>,
    /// The remaining shared budget (see [`Rule::budget`]).
    pub budget: u128,
    /// Siblings rejected so far.
    pub rejected: usize,
}

impl NodeState<'_> {
    /// Relaxed rules have a closed-form output for one sampled sibling per node only: refuses a
    /// second sampled sibling.
    pub fn single_sampled_sibling(&self) -> Result<()> {
        if self.rejected > 0 && matches!(self.draft, Draft::Sampled(_)) {
            return Err(Error::InvalidParameter {
                name: "siblings",
                reason:
                    "relaxed criteria support one sampled sibling per node; use point-mass drafts",
            });
        }
        Ok(())
    }

    /// The standard test of `x` credited with target weight `credit`: `credit / Z_p` for
    /// point-mass drafts, `min(1, (credit / Z_p) / q(x))` for sampled ones.
    pub fn ratio(&self, x: u32, credit: u64) -> Result<(u128, u128)> {
        match self.draft {
            Draft::PointMass => Ok((credit as u128, self.total as u128)),
            Draft::Sampled(q) => {
                let wq = q.weights()[x as usize];
                if wq == 0 {
                    return Err(Error::DraftZeroMass { token: x });
                }
                Ok((
                    credit as u128 * q.total() as u128,
                    wq as u128 * self.total as u128,
                ))
            }
        }
    }

    /// The residual after rejecting `x`: for sampled drafts the standard `norm(max(p − q, 0))`
    /// ([`exact::residual_in_place`]); for point-mass drafts `x` and the `removed` tokens leave
    /// the residual and the budget becomes `budget`. Every id is checked before anything changes.
    pub fn remove(&mut self, x: u32, removed: &[u32], budget: u128) -> Result<()> {
        match self.draft {
            Draft::Sampled(q) => {
                self.total = exact::residual_in_place(self.p, self.total, q.weights(), q.total())?;
            }
            Draft::PointMass => {
                let vocab = self.p.len();
                if removed.iter().any(|&t| t as usize >= vocab) {
                    return Err(foreign());
                }
                let mut mass = self.p[x as usize];
                self.p[x as usize] = 0;
                for &t in removed {
                    mass += self.p[t as usize];
                    self.p[t as usize] = 0;
                }
                self.budget = budget;
                self.total -= mass;
                if self.total == 0 {
                    return Err(Error::ZeroMass);
                }
            }
        }
        Ok(())
    }
}

/// The error for an [`Acceptance`] handed to [`NodeVerifier::reject`] that cannot be this node's.
pub(crate) fn foreign() -> Error {
    Error::InvalidParameter {
        name: "acc",
        reason: "is not this node's acceptance of the rejected sibling",
    }
}

/// The state of one node's sibling tests (see the module documentation).
#[derive(Debug)]
pub struct NodeVerifier<'a, 'c> {
    rule: &'c (dyn Rule + 'c),
    node: NodeState<'a>,
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
        let rule = criterion.rule();
        let vocab = p.len();
        if vocab == 0 {
            return Err(Error::EmptyRow);
        }
        rule.validate(vocab)?;
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
        Ok(NodeVerifier {
            rule,
            node: NodeState {
                p,
                total,
                draft,
                budget: rule.budget(total),
                rejected: 0,
            },
        })
    }

    /// The current residual target distribution.
    pub fn residual(&self) -> Result<Dist<'_>> {
        Dist::with_total(self.node.p, self.node.total)
    }

    /// The acceptance probability of testing sibling `x` next (not meaningful for Coupled, whose
    /// decision is a deterministic function of the key; it reports `p(x)`).
    pub fn acceptance(&self, x: u32) -> Result<Acceptance> {
        self.check(x)?;
        self.rule.acceptance(&self.node, x)
    }

    /// Applies the rejection of sibling `x`, whose test was `acc`, to the residual.
    ///
    /// `acc` must be this node's [`acceptance`](Self::acceptance) of `x`; an `acc` that cannot be
    /// (a token or prefix out of range, more borrowed mass than the budget left) is refused with
    /// an error before the residual is touched.
    pub fn reject(&mut self, x: u32, acc: &Acceptance) -> Result<()> {
        self.check(x)?;
        self.rule.reject(&mut self.node, x, acc)?;
        self.node.rejected += 1;
        Ok(())
    }

    fn check(&self, x: u32) -> Result<()> {
        let vocab = self.node.p.len();
        if x as usize >= vocab {
            return Err(Error::TokenOutOfRange { token: x, vocab });
        }
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
    if let Some(outcome) = criterion.rule().decide(p, total, siblings, keys) {
        return outcome;
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
