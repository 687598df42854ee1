//! Speculative decoding with chain or EAGLE-2 tree drafts, generic over the acceptance criterion.
//!
//! Leviathan et al. 2023 and Chen et al. 2023 (chains); EAGLE-2, Li et al. 2024 (dynamic draft
//! trees), as used for visual AR models by LANTERN (Jang et al. 2025) and VVS (Dong et al. 2026).
//!
//! A step with `t` tokens committed (`c_0 … c_{t−1}`):
//!
//! 1. **Catch-up.** The drafter runs on the tokens committed since its last step, each paired with
//!    the target feature that predicted it (EAGLE: token `c_j` with the target's hidden state at
//!    `c_{j−1}`); its last row is the draft distribution `q_0` at index `t`.
//! 2. **Drafting** up to depth `D = min(depth, stop − t − 1)` (`stop = N` unless stopped earlier):
//!    * *chain* (`γ`): `x_d ~ q_d` with key `(seed, stream, DRAFT, t + d, 0)`, then the drafter runs
//!      on `x_d` for `q_{d+1}`; drafts are *sampled*, so verification uses `q`;
//!    * *tree* (EAGLE-2, `total / depth / top_k`): every expanded node proposes its `top_k` most
//!      likely children with value `value(parent) · q(child)`; each depth expands the `top_k` best
//!      new nodes; finally the `total` best nodes by value (ties: shallower, then earlier) form the
//!      tree — ancestor-closed, since a child's value never exceeds its parent's. Drafts are
//!      *point masses* (deterministic), so verification needs no `q`. LlamaGen settings in the
//!      papers: total 59, depth 4, top-k 10 ([`DraftShape::EAGLE2_LLAMAGEN`]).
//! 3. **Verification.** One target run over `[c_{t−1}] ++ tree`, with tree attention; the
//!    [`Criterion`] walks the tree from the root ([`Backend::verify_tree`]), committing the accepted
//!    path plus one more token (residual draw, or the target's own draw past a leaf).
//!
//! CFG applies to drafter and target alike (the host runs the guidance variants of each input).
//! When `D = 0` (the last token, or the last before a stop) the step is a plain target step. Each step commits at least one
//! token and issues at most `depth + 1` actions, so decoding ends within `1 + N·(depth + 1) + 1`
//! actions ([`Decoder::action_bound`]). With the [`Criterion::Coupled`] criterion, the tokens are
//! exactly those of [`super::Vanilla`] for the same seed.
//!
//! # Stops and restarts ([`Restartable`])
//!
//! GridAR ([`super::GridAr`]) and Best-of-N run speculative candidates like vanilla ones:
//!
//! * [`Restartable::set_stop`]`(k)` ends the run with exactly `k` tokens committed: the drafting
//!   depth of a step at `t` is `min(depth, k − t − 1)`, so a verification (which commits at most
//!   `depth + 1` tokens) never crosses the stop, and the step at `t = k − 1` is a plain target
//!   step. Raising the stop of a stopped decoder continues from both KV caches: the next step
//!   starts with the keep list of the last verification, exactly as if it had not stopped.
//! * [`Restartable::restart`]`(prefix, guidance)` prefills the condition and the prefix (one
//!   [`Action::Prefill`], whose answer draws the token at index `prefix.len()` with that index's
//!   `SAMPLE` key, as vanilla does), then the drafter catches up on every committed token, each
//!   paired with the target feature of the index before it ([`FeatureRef::Target`], the
//!   condition's for index 0), in runs of at most `T` inputs (each a new drafting step whose
//!   inputs are all committed; only the last run's final row is used).
//!   [`Restartable::reguide`] does the same with the committed tokens as the prefix.
//!
//! What holds: with [`Criterion::Coupled`] the tokens are exactly vanilla's whatever the stops
//! and restarts (every committed token is the target's own keyed draw); with
//! [`Criterion::Exact`] the tokens differ from an uninterrupted run (the draft trees before a
//! stop are shallower) but every verification still samples exactly from the target, so the
//! output distribution is vanilla's; LANTERN and GSD keep their per-position guarantees (their
//! acceptance does not depend on the tree's depth). Tests: `tests/compose.rs` (Coupled, GridAR,
//! Best-of-N) and `tests/decoders.rs` (Exact marginals of a stopped run).
//!
//! # Verification policies ([`VerifyPolicy`])
//!
//! Once a step's tree is drafted, the decoder's policy `P` decides whether to verify it. Plain
//! speculative decoding ([`AlwaysVerify`], the default) always does. A policy may instead answer
//! [`Skip`]: commit the first `γ` tokens of the root-to-leaf path to a chosen leaf *unverified*.
//! The core then runs the mechanism every such policy needs:
//!
//! * **Stale features.** The next catch-up feeds the drafter the `γ` unverified tokens, which have
//!   no target feature yet: unverified token `x_j` is paired with the target feature at index
//!   `j − 1 − γ` instead of `j − 1` (the features of the `γ` most recent verified tokens, in
//!   order; the condition's where that index is below 0).
//! * **Post-verification.** The next target run starts with the chain `[c_{t−1}, x_t, …]` (the
//!   last verified token and the unverified ones, each the parent of the next) before the tree,
//!   whose root children hang below the last unverified token; one pass fills their KV entries
//!   and features, they are always kept and never tested (verification starts at the last
//!   unverified token's row). The keep list of the run before the skip is applied by this run.
//!   Without skips that chain is `[c_{t−1}]`.
//!
//! The policy sees the tree, the committed and unverified counts, the seed and the stream
//! ([`DraftedStep`]) and owns any schedule state; [`super::Vvs`] is `Speculative` with the VVS
//! policy ([`super::vvs::VvsPolicy`]: which steps skip, which path, how many tokens).
//!
//! A policy also chooses each step's drafting depth before the step starts
//! ([`VerifyPolicy::plan_depth`], seeing [`PlanStep`]; default: the shape's depth) and observes
//! every verification's verdict ([`VerifyPolicy::observe`]). A depth of 0 makes the step a plain
//! target step: the drafter does not run, and the next drafting step's catch-up covers every
//! committed token it has not seen (in runs of at most `T`, as after a restart). A smaller
//! depth is a shallower chain, or a tree drafted to that depth with the same `total` and
//! `top_k`. Once a tree is drafted, the policy may also verify only its best `n` nodes by
//! EAGLE-2 value ([`VerifyPolicy::plan_nodes`]; default: the shape's `total`).
//! [`super::AutoSpeculative`] is `Speculative` with the cost-aware policy
//! ([`super::auto_draft`]). [`Stats::draft_depth_hist`] counts the depths drafted.
use super::{
    check_dist_rows, check_rows, unexpected, Action, Config, Decoder, DraftInput, DraftRun,
    FeatureRef, GuidanceMode, Input, Prefill, Restartable, Stats, TargetRun,
};
use crate::accept::{Criterion, NodeKeys};
use crate::backend::{Backend, DraftTree, ProcessJob, SampleJob, TreeJob, ROOT};
use crate::error::{Error, Result};
use crate::process::SamplerParams;
use crate::rng::{Key, Purpose};
use core::fmt::Debug;

/// Most candidate nodes an EAGLE-2 drafting step may hold (`top_k + (depth − 1)·top_k²`).
pub const MAX_POOL: usize = 512;

/// How drafts are shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DraftShape {
    /// A chain of `gamma` sampled drafts.
    Chain {
        /// Draft length `γ >= 1`.
        gamma: u32,
    },
    /// An EAGLE-2 dynamic tree of point-mass (top-k) drafts.
    Tree {
        /// Nodes in the final tree.
        total: u32,
        /// Drafting depth.
        depth: u32,
        /// Children per expanded node, and nodes expanded per depth.
        top_k: u32,
    },
}

impl DraftShape {
    /// The EAGLE-2 settings LANTERN and VVS use for LlamaGen: 59 nodes, depth 4, top-k 10.
    pub const EAGLE2_LLAMAGEN: DraftShape = DraftShape::Tree {
        total: 59,
        depth: 4,
        top_k: 10,
    };

    /// Maximum draft depth.
    pub fn depth(&self) -> u32 {
        match *self {
            DraftShape::Chain { gamma } => gamma,
            DraftShape::Tree { depth, .. } => depth,
        }
    }

    fn validate(&self, max_nodes: usize) -> Result<()> {
        let bad = |name, reason| Err(Error::InvalidParameter { name, reason });
        match *self {
            DraftShape::Chain { gamma } => {
                if gamma == 0 || gamma as usize > max_nodes {
                    return bad("gamma", "must be between 1 and the decoder's node capacity");
                }
            }
            DraftShape::Tree {
                total,
                depth,
                top_k,
            } => {
                if depth == 0 || top_k == 0 || total == 0 {
                    return bad("tree", "total, depth and top_k must be at least 1");
                }
                if total as usize > max_nodes || top_k as usize > max_nodes {
                    return bad(
                        "tree",
                        "total and top_k must fit the decoder's node capacity",
                    );
                }
                let pool = top_k as u64 + (depth as u64 - 1) * top_k as u64 * top_k as u64;
                if pool > MAX_POOL as u64 {
                    return bad("tree", "top_k + (depth − 1)·top_k² must not exceed 512");
                }
            }
        }
        Ok(())
    }
}

/// Settings of [`Speculative`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpeculativeConfig {
    /// Shared settings (target sampling, guidance, size, seed).
    pub base: Config,
    /// Sampling parameters of the drafter.
    pub draft_sampler: SamplerParams,
    /// Draft shape.
    pub shape: DraftShape,
}

/// What a [`VerifyPolicy`] sees once a step's tree is drafted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DraftedStep<'a> {
    /// Tokens committed so far (verified or not).
    pub committed: u32,
    /// The last `unverified` of them were committed by a skip and await post-verification
    /// (0 unless the previous step skipped).
    pub unverified: u32,
    /// The decoder's seed.
    pub seed: u64,
    /// The decoder's RNG stream.
    pub stream: u32,
    /// Tokens of the drafted tree, in target-input order (non-empty).
    pub tokens: &'a [u32],
    /// Parent of each node: an earlier node's index, or [`ROOT`] for a root child.
    pub parents: &'a [u32],
}

/// A policy's decision to commit drafted tokens without verification: the first `gamma`
/// (`>= 1`, at most the path's length) tokens of the root-to-`leaf` path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skip {
    /// A node of the tree (any node; its path is the one committed).
    pub leaf: u32,
    /// Tokens of the path to commit.
    pub gamma: u32,
}

/// When a speculative decoder verifies its drafts (module docs, "Verification policies").
pub trait VerifyPolicy: Clone + Debug {
    /// The decoder's settings: [`SpeculativeConfig`] plus whatever the policy needs.
    type Config: Copy;

    /// Splits `cfg` into the speculative settings and the policy, checking the policy's
    /// settings (`max_inputs`: the decoder's target run capacity `T`).
    fn build(cfg: Self::Config, max_inputs: usize) -> Result<(SpeculativeConfig, Self)>;

    /// Checks the policy against the backend's vocabulary before an answer is handled.
    fn check_vocab(&self, vocab: usize) -> Result<()> {
        let _ = vocab;
        Ok(())
    }

    /// Decides a drafted step: `None` verifies it, [`Skip`] commits a path unverified.
    fn decide(&mut self, step: &DraftedStep<'_>) -> Option<Skip>;

    /// The decoder restarted from a prefix ([`Restartable::restart`] / `reguide`): forget the
    /// state of the run before it.
    fn restart(&mut self) {}

    /// Chooses the drafting depth of the step about to start, at most `step.max_depth` (a larger
    /// answer is capped; 0 makes the step a plain target step). The default drafts as deep as
    /// the shape allows.
    fn plan_depth(&mut self, step: &PlanStep) -> u32 {
        step.max_depth
    }

    /// A verification tested a tree of depth `drafted` and accepted `accepted` drafted tokens
    /// (the length of the accepted path; the target's own token is not counted).
    fn observe(&mut self, drafted: u32, accepted: u32) {
        let _ = (drafted, accepted);
    }

    /// Chooses how many nodes of a drafted tree to verify: `values` are the EAGLE-2 values of
    /// the candidate nodes, best first (ties: shallower, then earlier), at most the shape's
    /// `total`; the tree becomes the first `n` of them (ancestor-closed for every `n`, since a
    /// child's value never exceeds its parent's), `n` the answer capped at `values.len()`
    /// (0 verifies no draft: the step commits the target's own token). Asked for tree shapes
    /// only, after drafting and before [`VerifyPolicy::decide`]. The default verifies them all.
    fn plan_nodes(&mut self, values: &[f64]) -> usize {
        values.len()
    }
}

/// What [`VerifyPolicy::plan_depth`] sees before a drafting step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PlanStep {
    /// Tokens committed so far.
    pub committed: u32,
    /// The deepest draft this step may have: the shape's depth, limited by the stop (≥ 1).
    pub max_depth: u32,
    /// Committed tokens the drafter has not seen: the inputs of this step's catch-up, in runs of
    /// at most `max_inputs` (paid only if the step drafts).
    pub catch_up: u32,
    /// Inputs of the target run before the draft nodes (the last committed token plus any
    /// tokens awaiting post-verification).
    pub chain: u32,
    /// Guidance variants: model rows per input.
    pub variants: u32,
    /// The decoder's target run capacity `T` (also the longest catch-up run).
    pub max_inputs: u32,
    /// Tokens still to commit before the stop, this step's included (≥ 2 when it may draft).
    pub remaining: u32,
}

/// Plain speculative decoding: every drafted step is verified.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlwaysVerify;

impl VerifyPolicy for AlwaysVerify {
    type Config = SpeculativeConfig;

    fn build(cfg: SpeculativeConfig, _: usize) -> Result<(SpeculativeConfig, Self)> {
        Ok((cfg, AlwaysVerify))
    }

    fn decide(&mut self, _: &DraftedStep<'_>) -> Option<Skip> {
        None
    }
}

/// A candidate node of the drafting step.
#[derive(Clone, Copy, Debug, PartialEq)]
struct PoolNode {
    token: u32,
    /// Pool index of the parent, or ROOT.
    parent: u32,
    depth: u32,
    value: f64,
    /// Draft entry number once the drafter has run on this node.
    entry: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Prefill,
    CatchUp,
    Expand { depth: u32 },
    Verify,
    Plain,
    Done,
}

/// Speculative decoding of up to `N` tokens with target runs of up to `T` inputs (so trees of up
/// to `T − 1` nodes), verifying as the policy `P` says ([`AlwaysVerify`] by default). Needs
/// `2·T` distribution rows.
#[derive(Clone, Debug)]
pub struct Speculative<'c, const N: usize, const T: usize, P = AlwaysVerify> {
    cfg: SpeculativeConfig,
    criterion: Criterion<'c>,
    phase: Phase,
    tokens: heapless::Vec<u32, N>,
    stats: Stats,
    /// Keep list for the next target run.
    keep: heapless::Vec<u32, T>,
    /// Inputs of the pending target run.
    target_inputs: heapless::Vec<Input, T>,
    /// Inputs of the pending drafter run.
    draft_inputs: heapless::Vec<DraftInput, T>,
    /// Whether the pending drafter run starts a step.
    draft_new_step: bool,
    /// Inputs of the pending drafter run that are committed catch-up.
    draft_commit: u32,
    /// Pool indices of the pending expansion run's inputs.
    frontier: heapless::Vec<u32, T>,
    /// Candidate nodes of this step.
    pool: heapless::Vec<PoolNode, MAX_POOL>,
    /// Pool indices of the final tree, in target-run order (after input 0).
    tree: heapless::Vec<u32, T>,
    /// Draft entries used in this step.
    entries: u32,
    /// Entry whose drafter output predicts index `t` (last catch-up input).
    root_entry: u32,
    /// Tokens in the drafter's committed prefix.
    drafter_committed: u32,
    /// Raster index of input 0 of the last target run (`ROOT` after the prefill).
    last_run_base: u32,
    /// Accepted path (node indices) of the last target run.
    last_path: heapless::Vec<u32, T>,
    /// Chain inputs before the tree in the last target run (1, plus post-verified tokens).
    last_prefix: u32,
    /// Tokens committed by a skip that still lack target KV entries and features (the last
    /// `pending` committed tokens); the next target run prepends them as a chain.
    pending: u32,
    /// The verification policy.
    policy: P,
    /// Decoding stops (poll returns Done) once this many tokens are committed.
    stop: u32,
    /// The policy's depth limit for the current step ([`VerifyPolicy::plan_depth`]).
    step_depth: u32,
}

impl<'c, const N: usize, const T: usize, P: VerifyPolicy> Speculative<'c, N, T, P> {
    /// A decoder for `cfg` ([`SpeculativeConfig`] for plain speculative decoding, the policy's
    /// configuration otherwise) with acceptance `criterion`.
    pub fn new(cfg: P::Config, criterion: Criterion<'c>) -> Result<Self> {
        let (cfg, policy) = P::build(cfg, T)?;
        cfg.base.validate(N)?;
        if T < 2 {
            return Err(Error::InvalidParameter {
                name: "T",
                reason: "must be at least 2",
            });
        }
        cfg.shape.validate(T - 1)?;
        cfg.draft_sampler.validate(usize::MAX)?;
        Ok(Speculative {
            cfg,
            criterion,
            phase: Phase::Prefill,
            tokens: heapless::Vec::new(),
            stats: Stats::default(),
            keep: heapless::Vec::new(),
            target_inputs: heapless::Vec::new(),
            draft_inputs: heapless::Vec::new(),
            draft_new_step: false,
            draft_commit: 0,
            frontier: heapless::Vec::new(),
            pool: heapless::Vec::new(),
            tree: heapless::Vec::new(),
            entries: 0,
            root_entry: 0,
            drafter_committed: 0,
            last_run_base: ROOT,
            last_path: heapless::Vec::new(),
            last_prefix: 1,
            pending: 0,
            policy,
            stop: cfg.base.tokens,
            step_depth: u32::MAX,
        })
    }

    /// The verification policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The criterion.
    pub fn criterion(&self) -> &Criterion<'c> {
        &self.criterion
    }

    fn t(&self) -> u32 {
        self.tokens.len() as u32
    }

    fn draft_base(&self) -> u32 {
        T as u32
    }

    /// The feature that predicted raster index `j` (`j >= 1`): the target's hidden state at
    /// index `j − 1`.
    fn feature_for(&self, j: u32) -> FeatureRef {
        if j == 0 {
            return FeatureRef::Condition;
        }
        let r = j - 1;
        if self.last_run_base != ROOT && r >= self.last_run_base {
            let k = r - self.last_run_base;
            if k < self.last_prefix {
                return FeatureRef::LastTarget(k);
            }
            if let Some(&node) = self.last_path.get((k - self.last_prefix) as usize) {
                return FeatureRef::LastTarget(node + self.last_prefix);
            }
        }
        FeatureRef::Target(r)
    }

    /// Sets up the next step after a commit.
    fn next_step(&mut self) {
        let t = self.t();
        if t >= self.stop {
            self.phase = Phase::Done;
            return;
        }
        self.step_depth = u32::MAX;
        let limit = self.max_depth();
        if limit > 0 {
            let plan = PlanStep {
                committed: t,
                max_depth: limit,
                catch_up: t - self.drafter_committed,
                chain: 1 + self.pending,
                variants: self.cfg.base.guidance.variants() as u32,
                max_inputs: T as u32,
                remaining: self.stop - t,
            };
            self.step_depth = self.policy.plan_depth(&plan).min(limit);
        }
        let depth = self.max_depth();
        self.stats.record_depth(depth);
        // Input 0 is the last token with a target KV entry's successor: the last committed token,
        // preceded (VVS post-verification) by the `pending` skipped tokens as a chain.
        self.target_inputs.clear();
        let first = t - 1 - self.pending;
        for (k, j) in (first..t).enumerate() {
            let parent = if k == 0 { ROOT } else { k as u32 - 1 };
            let _ = self.target_inputs.push(Input {
                token: self.tokens[j as usize],
                index: j,
                parent,
            });
        }
        if depth == 0 {
            self.phase = Phase::Plain;
            return;
        }
        self.pool.clear();
        self.tree.clear();
        self.entries = 0;
        self.catch_up();
    }

    /// Sets up the next catch-up run of the drafter: the committed tokens it has not seen, at
    /// most `T` of them (more arrive only after a restart from a long prefix).
    fn catch_up(&mut self) {
        let t = self.t();
        self.draft_inputs.clear();
        let skipped_from = t - self.pending;
        let end = t.min(self.drafter_committed.saturating_add(T as u32));
        for j in self.drafter_committed..end {
            // An unverified token has no target feature yet; it reuses the stale feature
            // `pending` indices older (module docs, "Verification policies").
            let feature = if j >= skipped_from {
                // Index 0 or before: the condition's feature (only with a warm-up below γ + 1).
                self.feature_for(j.saturating_sub(self.pending))
            } else {
                self.feature_for(j)
            };
            let input = DraftInput {
                token: self.tokens[j as usize],
                index: j,
                parent: ROOT,
                feature,
            };
            // At most T inputs (`end` above).
            let _ = self.draft_inputs.push(input);
        }
        self.draft_new_step = true;
        self.draft_commit = self.draft_inputs.len() as u32;
        self.phase = Phase::CatchUp;
    }

    /// Drafting depth of the current step: the shape's depth, limited so that the step commits
    /// nothing past the stop (a verification commits at most depth + 1 tokens).
    fn max_depth(&self) -> u32 {
        let left = self.stop.saturating_sub(self.t()).saturating_sub(1);
        self.cfg.shape.depth().min(left).min(self.step_depth)
    }

    /// Commits `token` (and, first, the accepted path) after a target run.
    fn commit(&mut self, path: &[u32], token: u32) {
        let t = self.t();
        let prefix = 1 + self.pending;
        self.last_run_base = t - prefix;
        self.last_prefix = prefix;
        self.pending = 0;
        self.last_path.clear();
        self.keep.clear();
        // The chain inputs (last committed token and post-verified skipped tokens) are kept.
        for k in 0..prefix {
            let _ = self.keep.push(k);
        }
        for &node in path {
            let pool_idx = self.tree[node as usize];
            let _ = self.tokens.push(self.pool[pool_idx as usize].token);
            let _ = self.last_path.push(node);
            let _ = self.keep.push(node + prefix);
        }
        let _ = self.tokens.push(token);
        self.stats.tokens += path.len() as u32 + 1;
    }

    /// Adds the top-`k` children of the distribution in row `row` below pool node `parent`.
    fn add_children<B: Backend>(
        &mut self,
        backend: &mut B,
        row: u32,
        parent: u32,
        depth: u32,
        parent_value: f64,
        k: usize,
    ) -> Result<(), B::Error> {
        let mut tokens = [0u32; MAX_TOP_K];
        let mut probs = [0f64; MAX_TOP_K];
        backend.top_k(row, &mut tokens[..k], &mut probs[..k])?;
        for (&token, &prob) in tokens[..k].iter().zip(&probs[..k]) {
            let node = PoolNode {
                token,
                parent,
                depth,
                value: parent_value * prob,
                entry: ROOT,
            };
            self.pool
                .push(node)
                .map_err(|_| Error::CapacityExceeded { capacity: MAX_POOL })?;
        }
        Ok(())
    }

    /// Sets up the expansion run of depth `depth` (frontier: best `top_k` nodes of that depth), or
    /// finalises the tree when drafting is over.
    fn after_depth(&mut self, depth: u32) {
        let (top_k, total) = match self.cfg.shape {
            DraftShape::Tree { top_k, total, .. } => (top_k as usize, total as usize),
            DraftShape::Chain { .. } => (1, usize::MAX),
        };
        if depth >= self.max_depth() {
            self.finalise_tree(total);
            return;
        }
        let mut order: heapless::Vec<u32, MAX_POOL> = (0..self.pool.len() as u32)
            .filter(|&i| self.pool[i as usize].depth == depth)
            .collect();
        order.sort_unstable_by(|&a, &b| self.rank(a, b));
        self.frontier.clear();
        self.draft_inputs.clear();
        for &i in order.iter().take(top_k) {
            let node = self.pool[i as usize];
            let (parent_entry, feature_entry) = if node.parent == ROOT {
                (ROOT, self.root_entry)
            } else {
                let e = self.pool[node.parent as usize].entry;
                (e, e)
            };
            let _ = self.frontier.push(i);
            let _ = self.draft_inputs.push(DraftInput {
                token: node.token,
                index: self.t() + depth - 1,
                parent: parent_entry,
                feature: FeatureRef::Draft(feature_entry),
            });
        }
        self.draft_new_step = false;
        self.draft_commit = 0;
        self.phase = Phase::Expand { depth };
    }

    /// Pool order: value descending, then shallower, then earlier.
    fn rank(&self, a: u32, b: u32) -> core::cmp::Ordering {
        let (na, nb) = (&self.pool[a as usize], &self.pool[b as usize]);
        nb.value
            .total_cmp(&na.value)
            .then(na.depth.cmp(&nb.depth))
            .then(a.cmp(&b))
    }

    fn finalise_tree(&mut self, total: usize) {
        // Nodes deeper than the current limit exist only if the stop was lowered mid-step.
        let limit = self.max_depth();
        let mut order: heapless::Vec<u32, MAX_POOL> = (0..self.pool.len() as u32)
            .filter(|&i| self.pool[i as usize].depth <= limit)
            .collect();
        order.sort_unstable_by(|&a, &b| self.rank(a, b));
        let mut count = total.min(order.len());
        if let DraftShape::Tree { .. } = self.cfg.shape {
            let mut values = [0f64; MAX_POOL];
            for (v, &i) in values.iter_mut().zip(&order[..count]) {
                *v = self.pool[i as usize].value;
            }
            count = self.policy.plan_nodes(&values[..count]).min(count);
        }
        let chosen = &mut order[..count];
        // Parents before children: by depth, then rank.
        chosen.sort_unstable_by(|&a, &b| {
            self.pool[a as usize]
                .depth
                .cmp(&self.pool[b as usize].depth)
                .then(self.rank(a, b))
        });
        self.tree.clear();
        let prefix = 1 + self.pending;
        self.target_inputs.truncate(prefix as usize);
        let t = self.t();
        for &i in chosen.iter() {
            let node = self.pool[i as usize];
            let parent_input = if node.parent == ROOT {
                prefix - 1
            } else {
                // The parent was chosen too (ancestor-closed) and placed earlier.
                prefix
                    + self
                        .tree
                        .iter()
                        .position(|&p| p == node.parent)
                        .unwrap_or(0) as u32
            };
            let _ = self.tree.push(i);
            let _ = self.target_inputs.push(Input {
                token: node.token,
                index: t + node.depth - 1,
                parent: parent_input,
            });
        }
        self.phase = Phase::Verify;
        self.decide();
    }

    /// The drafted tree (tokens, parents as node indices or ROOT) in `tokens` / `parents`;
    /// returns its node count.
    fn tree_arrays(&self, tokens: &mut [u32; T], parents: &mut [u32; T]) -> usize {
        let prefix = 1 + self.pending;
        let mut n = 0;
        for (i, input) in self.target_inputs.iter().skip(prefix as usize).enumerate() {
            tokens[i] = input.token;
            parents[i] = if input.parent == prefix - 1 {
                ROOT
            } else {
                input.parent - prefix
            };
            n = i + 1;
        }
        n
    }

    /// Once the tree is drafted, the policy either verifies it (the phase stays at `Verify`) or
    /// commits a root-to-leaf path unverified, and the next drafting step starts.
    fn decide(&mut self) {
        let mut tokens = [0u32; T];
        let mut parents = [ROOT; T];
        let n = self.tree_arrays(&mut tokens, &mut parents);
        if n == 0 {
            return;
        }
        let b = self.cfg.base;
        let step = DraftedStep {
            committed: self.t(),
            unverified: self.pending,
            seed: b.seed,
            stream: b.stream,
            tokens: &tokens[..n],
            parents: &parents[..n],
        };
        let Some(plan) = self.policy.decide(&step) else {
            return;
        };
        if plan.leaf as usize >= n || plan.gamma == 0 {
            // A policy's malformed answer verifies the step.
            return;
        }
        // The path, root side first: walk up from the leaf, then reverse.
        let mut path = [0u32; T];
        let mut len = 0usize;
        let mut node = plan.leaf;
        while node != ROOT && len < n {
            path[len] = node;
            len += 1;
            node = parents[node as usize];
        }
        path[..len].reverse();
        let gamma = (plan.gamma as usize).min(len);
        for &node in &path[..gamma] {
            let _ = self.tokens.push(tokens[node as usize]);
        }
        self.pending = gamma as u32;
        self.stats.tokens += gamma as u32;
        self.stats.skipped_steps += 1;
        // The keep list of the last target run stays: the next target run applies it.
        self.next_step();
    }

    fn process_rows<B: Backend>(
        &self,
        backend: &mut B,
        logits: &B::Logits,
        jobs: impl Iterator<Item = (u32, u32)>,
        params: SamplerParams,
    ) -> Result<(), B::Error> {
        let v = self.cfg.base.guidance.variants() as u32;
        let mut batch: heapless::Vec<ProcessJob, 16> = heapless::Vec::new();
        for (input, out) in jobs {
            let job = ProcessJob {
                rows: self.cfg.base.guidance.rows(input * v),
                params,
                out,
            };
            if batch.push(job).is_err() {
                backend.process(logits, &batch)?;
                batch.clear();
                let _ = batch.push(job);
            }
        }
        backend.process(logits, &batch)
    }
}

/// Largest `top_k` of a tree shape (bounded by the node capacity as well).
pub const MAX_TOP_K: usize = 64;

impl<const N: usize, const T: usize, P: VerifyPolicy> Decoder for Speculative<'_, N, T, P> {
    fn poll(&self) -> Action<'_> {
        let g = self.cfg.base.guidance;
        let seq = self.cfg.base.seq;
        match self.phase {
            Phase::Prefill => Action::Prefill(Prefill {
                seq,
                tokens: &self.tokens,
                guidance: g,
            }),
            Phase::CatchUp | Phase::Expand { .. } => Action::Draft(DraftRun {
                seq,
                new_step: self.draft_new_step,
                commit: self.draft_commit,
                inputs: &self.draft_inputs,
                guidance: g,
            }),
            Phase::Verify | Phase::Plain => Action::Target(TargetRun {
                seq,
                keep: &self.keep,
                inputs: &self.target_inputs,
                guidance: g,
            }),
            Phase::Done => Action::Done,
        }
    }

    fn handle_logits<B: Backend>(
        &mut self,
        backend: &mut B,
        logits: &B::Logits,
    ) -> Result<(), B::Error> {
        self.policy.check_vocab(backend.vocab())?;
        let action = self.poll();
        let rows = action
            .logits_rows()
            .ok_or_else(|| unexpected(action, "logits"))?;
        check_rows(backend, logits, rows)?;
        check_dist_rows(backend, 2 * T)?;
        let base = self.cfg.base;
        let t = self.t();
        let db = self.draft_base();
        match self.phase {
            Phase::Prefill | Phase::Plain => {
                let last = self.target_inputs.len().saturating_sub(1) as u32;
                let input = if self.phase == Phase::Plain { last } else { 0 };
                self.process_rows(backend, logits, core::iter::once((input, 0)), base.sampler)?;
                let key = Key::new(base.seed, base.stream, Purpose::SAMPLE, t);
                let mut token = [0u32];
                backend.sample(&[SampleJob { row: 0, key }], &mut token)?;
                self.stats.target_forwards += 1;
                self.stats.target_rows += rows as u32;
                if self.phase == Phase::Prefill {
                    self.stats.prefills += 1;
                    let _ = self.tokens.push(token[0]);
                    self.stats.tokens += 1;
                    self.last_run_base = ROOT;
                    self.last_path.clear();
                    self.keep.clear();
                } else {
                    self.commit(&[], token[0]);
                }
                self.next_step();
            }
            Phase::CatchUp => {
                let last = self.draft_inputs.len() as u32 - 1;
                let seen = self.drafter_committed + self.draft_inputs.len() as u32;
                if seen < t {
                    // An early part of a long catch-up: its rows are not needed.
                    self.stats.draft_forwards += 1;
                    self.stats.draft_rows += rows as u32;
                    self.drafter_committed = seen;
                    self.catch_up();
                    return Ok(());
                }
                self.process_rows(
                    backend,
                    logits,
                    core::iter::once((last, db)),
                    self.cfg.draft_sampler,
                )?;
                self.stats.draft_forwards += 1;
                self.stats.draft_rows += rows as u32;
                self.drafter_committed = t;
                self.root_entry = last;
                self.entries = last + 1;
                self.pool.clear();
                match self.cfg.shape {
                    DraftShape::Chain { .. } => self.draw_chain_node(backend, db, ROOT, 1)?,
                    DraftShape::Tree { top_k, .. } => {
                        self.add_children(backend, db, ROOT, 1, 1.0, top_k as usize)?
                    }
                }
                self.after_depth(1);
            }
            Phase::Expand { depth } => {
                let n = self.frontier.len() as u32;
                let chain = matches!(self.cfg.shape, DraftShape::Chain { .. });
                // Chain: q_depth goes to draft row `db + depth` (slot of node depth − 1).
                // Tree: scratch rows db.. for the frontier.
                let out = |i: u32| if chain { db + depth } else { db + i };
                self.process_rows(
                    backend,
                    logits,
                    (0..n).map(|i| (i, out(i))),
                    self.cfg.draft_sampler,
                )?;
                self.stats.draft_forwards += 1;
                self.stats.draft_rows += rows as u32;
                for (i, &p) in self.frontier.clone().iter().enumerate() {
                    self.pool[p as usize].entry = self.entries + i as u32;
                }
                self.entries += n;
                let frontier = self.frontier.clone();
                for (i, &p) in frontier.iter().enumerate() {
                    match self.cfg.shape {
                        DraftShape::Chain { .. } => {
                            self.draw_chain_node(backend, out(i as u32), p, depth + 1)?
                        }
                        DraftShape::Tree { top_k, .. } => {
                            let value = self.pool[p as usize].value;
                            self.add_children(
                                backend,
                                out(i as u32),
                                p,
                                depth + 1,
                                value,
                                top_k as usize,
                            )?
                        }
                    }
                }
                self.after_depth(depth + 1);
            }
            Phase::Verify => {
                // Slot s of the tree is input `prefix − 1 + s` (the chain before it is kept).
                let prefix = 1 + self.pending;
                let mut tokens = [0u32; T];
                let mut parents = [ROOT; T];
                let nodes = self.tree_arrays(&mut tokens, &mut parents);
                let slots = nodes as u32 + 1;
                self.process_rows(
                    backend,
                    logits,
                    (0..slots).map(|s| (prefix - 1 + s, s)),
                    base.sampler,
                )?;
                let job = TreeJob {
                    tree: DraftTree {
                        tokens: &tokens[..nodes],
                        parents: &parents[..nodes],
                    },
                    target_base: 0,
                    draft_base: match self.cfg.shape {
                        DraftShape::Chain { .. } => Some(db),
                        DraftShape::Tree { .. } => None,
                    },
                    keys: NodeKeys {
                        seed: base.seed,
                        stream: base.stream,
                        position: t,
                    },
                };
                let mut path = [0u32; T];
                let verdict = backend.verify_tree(&job, &self.criterion, &mut path)?;
                self.stats.target_forwards += 1;
                self.stats.target_rows += rows as u32;
                self.stats.record_accepted(verdict.accepted);
                let drafted = self.target_inputs[prefix as usize..]
                    .iter()
                    .map(|i| i.index + 1 - t)
                    .max()
                    .unwrap_or(0);
                self.policy.observe(drafted, verdict.accepted as u32);
                self.commit(&path[..verdict.accepted], verdict.token);
                self.next_step();
            }
            Phase::Done => return Err(unexpected(Action::Done, "logits").into()),
        }
        Ok(())
    }

    fn tokens(&self, seq: u32) -> &[u32] {
        if seq == self.cfg.base.seq {
            &self.tokens
        } else {
            &[]
        }
    }

    fn result_seq(&self) -> u32 {
        self.cfg.base.seq
    }

    fn stats(&self) -> Stats {
        self.stats
    }

    fn dist_rows_needed(&self) -> usize {
        2 * T
    }

    fn action_bound(&self) -> u32 {
        2 + self.cfg.base.tokens * (self.cfg.shape.depth() + 1)
    }
}

impl<const N: usize, const T: usize, P: VerifyPolicy> Speculative<'_, N, T, P> {
    /// Draws chain node at `depth` from draft row `row` (key DRAFT at its index) below `parent`.
    fn draw_chain_node<B: Backend>(
        &mut self,
        backend: &mut B,
        row: u32,
        parent: u32,
        depth: u32,
    ) -> Result<(), B::Error> {
        let b = self.cfg.base;
        let index = self.t() + depth - 1;
        let key = Key::new(b.seed, b.stream, Purpose::DRAFT, index);
        let mut token = [0u32];
        backend.sample(&[SampleJob { row, key }], &mut token)?;
        let node = PoolNode {
            token: token[0],
            parent,
            depth,
            value: 1.0,
            entry: ROOT,
        };
        self.pool
            .push(node)
            .map_err(|_| Error::CapacityExceeded { capacity: MAX_POOL })?;
        Ok(())
    }
}

impl<const N: usize, const T: usize, P: VerifyPolicy> Restartable for Speculative<'_, N, T, P> {
    fn set_stop(&mut self, stop: u32) -> Result<()> {
        if stop <= self.t() || stop > self.cfg.base.tokens {
            return Err(Error::InvalidParameter {
                name: "stop",
                reason: "must lie after the committed tokens and within the image",
            });
        }
        self.stop = stop;
        if self.phase == Phase::Done {
            // Continue from the KV caches: the next step starts where the last one ended.
            self.next_step();
        }
        Ok(())
    }

    fn restart(&mut self, prefix: &[u32], guidance: GuidanceMode) -> Result<()> {
        if prefix.len() >= self.cfg.base.tokens as usize {
            return Err(Error::InvalidParameter {
                name: "prefix",
                reason: "a restart prefix must be shorter than the image",
            });
        }
        self.tokens.clear();
        // prefix.len() < cfg.tokens <= N.
        let _ = self.tokens.extend_from_slice(prefix);
        self.reguide(guidance)
    }

    fn reguide(&mut self, guidance: GuidanceMode) -> Result<()> {
        if self.t() >= self.cfg.base.tokens {
            return Err(Error::InvalidParameter {
                name: "prefix",
                reason: "a finished decoder cannot restart",
            });
        }
        self.cfg.base.guidance = guidance;
        self.phase = Phase::Prefill;
        // The prefill resets both KV caches: nothing is pending, the drafter has seen nothing.
        self.pending = 0;
        self.drafter_committed = 0;
        self.last_run_base = ROOT;
        self.last_prefix = 1;
        self.last_path.clear();
        self.keep.clear();
        self.policy.restart();
        Ok(())
    }

    fn restart_actions(&self) -> u32 {
        // The catch-up after a restart covers up to `tokens` committed tokens, `T` per run,
        // where an uninterrupted step runs one catch-up.
        self.cfg.base.tokens.div_ceil(T as u32).saturating_sub(1)
    }
}
