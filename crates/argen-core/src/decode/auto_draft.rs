//! Cost-aware drafting (`--draft auto`): per step, the draft depth that maximises expected
//! committed tokens per second on this device, from a measured [`CostProfile`] and the run's own
//! acceptance statistics.
//!
//! Speculative decoding pays for drafts whether or not they are accepted: on a small model, or
//! with a drafter that is not cheap relative to the target, a fixed shape loses to plain decoding.
//! Sequoia (Chen et al. 2024, arXiv 2402.12374) sizes the draft tree from a device profile of
//! verification cost against tree size and the drafter's measured acceptance vector; dynamic
//! speculation lets the length vary from step to step — SpecDec++ (Huang et al. 2024,
//! arXiv 2405.19715) stops drafting when the predicted acceptance makes another token not worth
//! its cost, DISCO (Mamou et al. 2024, arXiv 2405.04304) decides per step whether to continue;
//! EAGLE-2 (Li et al. 2024, arXiv 2406.16858) shapes trees by the drafter's confidence. This
//! policy takes from them the objective (tokens per unit of time, with a measured cost curve) and
//! the per-step decision, in the simplest form that is deterministic and replayable.
//!
//! [`AutoDraft`] is a [`VerifyPolicy`]: [`AutoSpeculative`] `= Speculative<'c, N, T, AutoDraft>`.
//! Every drafted step is verified (nothing is committed unverified), so the criterion's
//! guarantees are those of [`Speculative`]: with [`crate::accept::Criterion::Coupled`] the tokens
//! are vanilla's whatever depths are chosen; with [`crate::accept::Criterion::Exact`] every
//! verification samples exactly from the target (the depth is chosen before drafting, from
//! committed tokens and past verdicts only, so it is a stopping rule that does not look at the
//! current draft).
//!
//! # The decision ([`AutoDraft::choose`])
//!
//! Before each step the decoder asks for a depth `D ∈ {0, …, D_max}` (`D_max`: the configured
//! shape's depth, limited by the stop). With `v` guidance variants (model rows per input),
//! `c_T(r)`, `c_D(r)` the target's and the drafter's curves of the profile
//! ([`crate::cost::CostCurve::nanos`], integer nanoseconds per call of `r` rows):
//!
//! * **Cost.** `C(0) = c_T(h·v)` (a plain target step over the `h` chain inputs: the last
//!   committed token) and, for `D ≥ 1`,
//!   `C(D) = Σ_runs c_D(k_i·v) + (D − 1)·c_D(f·v) + c_T((h + n_D)·v)`: the drafter's catch-up
//!   over the `k` committed tokens it has not seen, in runs `k_i` of at most `T`; `D − 1`
//!   expansion runs of `f` inputs (chain 1, tree `top_k`); one verification of `h + n_D` inputs
//!   (chain `n_D = D`; tree `n_D = min(total, top_k + (D − 1)·top_k²)`, the nodes the pool can
//!   offer). Plain steps leave the drafter behind; the catch-up term charges that debt to the
//!   next drafting step (the decoder runs it in runs of `T`, [`Speculative`]'s restart
//!   machinery), so the decision sees the real price of resuming after a pause.
//! * **Expected tokens.** `E(D) = 1 + Σ_{d=1}^{D} Π_{i=1}^{d} â_i`, with `â_d` the estimated
//!   probability that draft depth `d` is accepted given that depth `d − 1` was (the target
//!   always adds one token). For trees `â_d` is the same conditional rate measured on trees of
//!   the configured shape.
//! * **Choice.** `D⁺ = argmax_{D ≥ 1} E(D) / C(D)` (ties: the shallower depth); the step drafts
//!   to `D⁺` if that beats a plain step by the safety margin `μ = 1/8`,
//!   `E(D⁺)·C(0) > (1 + μ)·E(0)·C(D⁺)`, and is a plain target step (`D* = 0`) otherwise. Ratios
//!   are compared by cross-multiplication in IEEE-754 `f64`. The margin is the policy's allowance
//!   for the cost model's own error (a profile is measured per call, in isolation; a drafting
//!   step in a real run has been measured up to ~25 % dearer relative to a plain step than its
//!   profile says, on the bundled model on a loaded 2-core machine): speculation that the
//!   profile says wins by less than the margin is not worth the risk of losing to vanilla.
//!
//! * **Exploration budget.** Until the first verdict (depth 1 still at its prior) a draft is
//!   an exploration on the optimistic prior; it is taken only if its worst case — every draft
//!   rejected, one token for `C(D⁺)` instead of `C(0)` — costs at most `β = 2 %` of the rest
//!   of the image decoded plainly: `C(D⁺) − C(0) ≤ β·r·C(0)`, `r` the tokens still to commit
//!   ([`PlanStep::remaining`]). So on a drafter that never pays, the price of finding out is
//!   bounded by `β` of the image (plus the at most two further steps the decaying prior may
//!   still draft, see below), while on a long image, or a cheap drafter, it is always paid.
//!
//! Maximising the ratio per step is the renewal-reward optimum when steps are alike (long-run
//! tokens per second is `E[tokens per step] / E[time per step]`); it is myopic about the
//! drafter's debt, which only makes resuming after a long pause slightly less attractive.
//!
//! # Never drafting ([`AutoDraft::never_drafts`])
//!
//! Some profiles rule drafting out before the first step: if for every depth even perfect
//! acceptance, `E(D) = 1 + D` (an upper bound of the estimate, in floating point too), does
//! not beat a plain step by the margin against the least a drafting step can cost — a
//! catch-up of at least one token (at least the drafter curve's smallest point), `D − 1`
//! expansions and the verification of `1 + nodes(D)` inputs — then [`AutoDraft::choose`]
//! answers 0 at every step of every run. [`crate::decode::SingleDecoder`] then builds
//! [`super::Vanilla`] for the configuration instead: the same tokens (a plain step draws
//! vanilla's keyed token) without the speculative decoder's per-step and per-image overhead
//! (measured: 3 % of a step on the 16-token test model), and no drafter calls.
//!
//! # Tree size ([`AutoDraft::choose_nodes`])
//!
//! For tree shapes the policy also chooses, once the tree is drafted, how many of its nodes the
//! target verifies ([`VerifyPolicy::plan_nodes`]). EAGLE-2 (Li et al. 2024) ranks the
//! candidate nodes by their *value* `v`, the product of the draft probabilities along the path
//! from the root, which estimates the probability that the target accepts the path: with
//! point-mass drafts, a node is on the accepted path exactly when the target's draws agree
//! with every token on its path (siblings are tested one after another and at most one is
//! accepted), so `E[accepted drafts] = Σ_nodes P(node on path)`, estimated by `Σ v`. EAGLE-2
//! keeps a fixed number of the best; this policy keeps the best `n`, for the `n` that
//! maximises the step's tokens per nanosecond,
//!
//! `n* = argmax_{0 ≤ n ≤ m} (1 + Σ_{i<n} min(1, κ·v_i)) / (C_D + c_T((h + n)·v))`
//!
//! (`m`: the shape's `total` or the pool, whichever is smaller; `v_0 ≥ v_1 ≥ …` the candidates
//! in EAGLE-2 order, so every prefix is ancestor-closed; `C_D` the drafter's catch-up and
//! expansions of this step, already spent but part of the step's cost as in the depth choice;
//! ties: fewer nodes). `n = 0` verifies no draft (the target's own token is committed, as in a
//! plain step). Drafters are not calibrated: `κ` is the decayed (ρ) ratio of drafts accepted to
//! `Σ min(1, v)` verified over the image's sized trees, from a prior of 2 : 2 (`κ = 1`). A step
//! that verifies no node is recorded as a rejection at depth 1 (the depth choice learns that
//! drafting did not pay). The depth choice still prices a depth-`D` step at the full
//! `nodes(D)`, an upper bound. The node values are the drafter's top-`k` probabilities, exact
//! functions of the drafter's logits, so the choice is as reproducible as the drafting itself,
//! and it never looks at the target's output of the step, so the criteria's guarantees hold
//! for every `n` (Coupled: vanilla's tokens; Exact: the target's distribution).
//!
//! # Acceptance statistics ([`AutoDraft::rate`])
//!
//! Per depth `d` two decayed counters: a verification of a tree of depth `D'` that accepted `a`
//! drafts is a trial at every depth `d ≤ min(a + 1, D')` and a success at every `d ≤ a`;
//! `n_d ← ρ·n_d + 1`, `s_d ← ρ·s_d + [d ≤ a]` with `ρ = 15/16` (about the last 16 trials count),
//! and `â_d = s_d / n_d`. Both start at the prior `s_d = w·p₀`, `n_d = w` with `p₀ = 3/4`,
//! `w = 2`. The prior is deliberately **optimistic** (the bundled ShapesWorld drafter is accepted
//! about half the time at depth 1; drafters that pay are accepted more often): a depth is only
//! ever measured by drafting it, so a pessimistic prior would never find out that drafting pays
//! on a model where it does, while an optimistic one pays for its optimism at most a step or two
//! per image — one rejection moves `â_1` from 0.75 to 0.49, two to 0.36 — and only where the
//! prior puts drafting above break-even. A depth that is never tried keeps its prior. The
//! statistics start afresh with each decoder (each image), so every image is decided from the
//! configuration and its own verdicts alone, and they survive
//! [`Restartable`](super::Restartable) restarts: they describe the drafter against the target,
//! not the prefix.
//!
//! # Determinism
//!
//! Costs are integers from the profile; the statistics use IEEE-754 addition, multiplication and
//! division only (correctly rounded everywhere, no transcendental functions), updated in a fixed
//! order from the verdicts; so the depths, and with them every action, are a function of the
//! configuration (profile included: [`AutoDraftConfig`] is part of the hashed and serialised
//! decoder configuration) and the seed. `argen replay` reproduces an auto run.
use super::speculative::{
    DraftShape, DraftedStep, PlanStep, Skip, Speculative, SpeculativeConfig, VerifyPolicy,
};
use crate::cost::{CostCurve, CostProfile};
use crate::error::{Error, Result};

/// Deepest draft the policy tracks (and so the deepest shape it accepts).
pub const MAX_AUTO_DEPTH: usize = 64;
/// Decay of the acceptance counters per trial (`ρ`, exact in binary).
pub const DECAY: f64 = 0.9375;
/// Prior acceptance rate per depth (`p₀`).
pub const PRIOR_RATE: f64 = 0.75;
/// Safety margin `μ`: a draft must beat a plain step's predicted rate by this fraction.
pub const MARGIN: f64 = 0.125;
/// Weight of the prior in trials (`w`).
pub const PRIOR_WEIGHT: f64 = 2.0;
/// Exploration budget `β`: the first draft of an image (on the prior alone) may cost, if every
/// draft is rejected, at most this fraction of the rest of the image decoded plainly.
pub const EXPLORATION_BUDGET: f64 = 0.02;
/// Prior of both calibration sums (`κ = 1` until verdicts arrive): worth two accepted drafts.
pub const CALIBRATION_PRIOR: f64 = 2.0;

/// Settings of [`AutoSpeculative`]: the speculative settings (whose shape is the deepest draft
/// allowed) and the device's cost profile, which must have a drafter curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AutoDraftConfig {
    /// Speculative settings; `shape` bounds the drafts (chain `γ`: lengths `0 … γ`; tree:
    /// depths `0 … depth` with the same `total` and `top_k`).
    pub spec: SpeculativeConfig,
    /// Measured costs of target and drafter calls on this device.
    pub profile: CostProfile,
}

/// Speculative decoding whose draft depth is chosen per step by [`AutoDraft`].
pub type AutoSpeculative<'c, const N: usize, const T: usize> = Speculative<'c, N, T, AutoDraft>;

/// The cost-aware drafting policy (module docs): the profile, the shape's bounds and the
/// running per-depth acceptance statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoDraft {
    target: CostCurve,
    /// The smallest cost on the target curve (a lower bound of every target call).
    target_floor: u64,
    drafter: CostCurve,
    shape: DraftShape,
    /// Decayed successes per depth (index `d − 1`).
    hits: [f64; MAX_AUTO_DEPTH],
    /// Decayed trials per depth.
    trials: [f64; MAX_AUTO_DEPTH],
    /// `hits / trials` per depth (`â_d`), updated with them.
    rates: [f64; MAX_AUTO_DEPTH],
    /// The `(chain, variants)` situation `target_by_depth` and `expand_cost` are for.
    cost_key: Option<(u32, u32)>,
    /// `c_T((chain + nodes(d))·v)` for `d = 0 ..= shape depth` (`nodes(0) = 0`).
    target_by_depth: [u64; MAX_AUTO_DEPTH + 1],
    /// One expansion run's cost, `c_D(frontier·v)`.
    expand_cost: u64,
    /// The situation and depth of the step in progress ([`AutoDraft::plan_depth`]).
    planned: Option<(PlanStep, u32)>,
    /// Decayed accepted drafts of node-sized trees (calibration numerator, prior included).
    calib_seen: f64,
    /// Decayed sum of the capped node values those trees verified (denominator).
    calib_valued: f64,
    /// Σ of the capped, uncalibrated values of the nodes chosen for the pending verification
    /// (`None` when the step was not sized from node values).
    pending_value: Option<f64>,
}

impl AutoDraft {
    /// The policy for `shape` under `profile`, with the prior statistics.
    pub fn new(shape: DraftShape, profile: &CostProfile) -> Result<Self> {
        let drafter = profile.drafter.ok_or(Error::InvalidParameter {
            name: "profile",
            reason: "cost-aware drafting needs the drafter's cost curve",
        })?;
        if shape.depth() as usize > MAX_AUTO_DEPTH {
            return Err(Error::InvalidParameter {
                name: "shape",
                reason: "cost-aware drafting tracks depths up to 64",
            });
        }
        Ok(AutoDraft {
            target: profile.target,
            target_floor: profile.target.points().map(|(_, t)| t).min().unwrap_or(0),
            drafter,
            shape,
            hits: [PRIOR_WEIGHT * PRIOR_RATE; MAX_AUTO_DEPTH],
            trials: [PRIOR_WEIGHT; MAX_AUTO_DEPTH],
            rates: [PRIOR_WEIGHT * PRIOR_RATE / PRIOR_WEIGHT; MAX_AUTO_DEPTH],
            cost_key: None,
            target_by_depth: [0; MAX_AUTO_DEPTH + 1],
            expand_cost: 0,
            planned: None,
            calib_seen: CALIBRATION_PRIOR,
            calib_valued: CALIBRATION_PRIOR,
            pending_value: None,
        })
    }

    /// Whether this policy can never draft in a run with `variants` model rows per input (module
    /// docs, "Never drafting"): for every depth `D`, even `E(D) = 1 + D` (every draft accepted)
    /// against the least the step can cost (catch-up of one run at the drafter curve's smallest
    /// point, the `D − 1` expansions and the full verification) does not beat a plain step by
    /// the margin.
    pub fn never_drafts(&self, variants: u32) -> bool {
        let v = variants.max(1) as u64;
        let rows = |inputs: u64| u32::try_from(inputs.saturating_mul(v)).unwrap_or(u32::MAX);
        let plain = self.target.nanos(rows(1)) as f64;
        let catch = self.drafter.points().map(|(_, t)| t).min().unwrap_or(0);
        let expand = self.drafter.nanos(rows(self.frontier()));
        let top = self.shape.depth().min(MAX_AUTO_DEPTH as u32);
        (1..=top).all(|d| {
            let least = catch
                .saturating_add(expand.saturating_mul(d as u64 - 1))
                .saturating_add(self.target.nanos(rows(1 + self.nodes(d))));
            (1.0 + d as f64) * plain <= (1.0 + MARGIN) * least as f64
        })
    }

    /// The estimated acceptance rate `â_d` of depth `d ≥ 1` given depth `d − 1` was accepted
    /// (0 beyond [`MAX_AUTO_DEPTH`]).
    pub fn rate(&self, d: u32) -> f64 {
        match d.checked_sub(1).map(|i| i as usize) {
            Some(i) if i < MAX_AUTO_DEPTH => self.rates[i],
            _ => 0.0,
        }
    }

    /// Expected tokens `E(D)` committed by a step of depth `depth` (1 for a plain step).
    pub fn expected_tokens(&self, depth: u32) -> f64 {
        let mut e = 1.0;
        let mut reach = 1.0;
        for d in 1..=depth {
            reach *= self.rate(d);
            e += reach;
        }
        e
    }

    /// Draft nodes a step of depth `depth ≥ 1` verifies.
    fn nodes(&self, depth: u32) -> u64 {
        match self.shape {
            DraftShape::Chain { .. } => depth as u64,
            DraftShape::Tree { total, top_k, .. } => {
                let k = top_k as u64;
                (k + (depth as u64 - 1) * k * k).min(total as u64)
            }
        }
    }

    /// Modelled cost `C(D)` in nanoseconds of a step of depth `depth` in situation `step`
    /// (module docs), saturating.
    pub fn step_cost(&self, step: &PlanStep, depth: u32) -> u64 {
        let v = step.variants.max(1) as u64;
        let rows = |inputs: u64| u32::try_from(inputs.saturating_mul(v)).unwrap_or(u32::MAX);
        let chain = step.chain as u64;
        if depth == 0 {
            return self.target.nanos(rows(chain));
        }
        self.draft_cost(step, depth)
            .saturating_add(self.target.nanos(rows(chain + self.nodes(depth))))
    }

    /// The drafter's part of [`AutoDraft::step_cost`] for depth `depth ≥ 1`: catch-up and
    /// `depth − 1` expansions, in nanoseconds (saturating).
    pub fn draft_cost(&self, step: &PlanStep, depth: u32) -> u64 {
        let v = step.variants.max(1) as u64;
        let rows = |inputs: u64| u32::try_from(inputs.saturating_mul(v)).unwrap_or(u32::MAX);
        if depth == 0 {
            return 0;
        }
        let cost = self.catch_up_cost(step);
        let expand = self.drafter.nanos(rows(self.frontier()));
        cost.saturating_add(expand.saturating_mul(depth as u64 - 1))
    }

    /// The drafter's catch-up over the `step.catch_up` committed tokens it has not seen, in
    /// runs of at most `step.max_inputs` inputs, in nanoseconds (saturating).
    fn catch_up_cost(&self, step: &PlanStep) -> u64 {
        let v = step.variants.max(1) as u64;
        let mut cost = 0u64;
        let run = step.max_inputs.max(1);
        let mut left = step.catch_up;
        while left > 0 {
            let k = left.min(run);
            let rows = u32::try_from((k as u64).saturating_mul(v)).unwrap_or(u32::MAX);
            cost = cost.saturating_add(self.drafter.nanos(rows));
            left -= k;
        }
        cost
    }

    /// The depth `D*` in `0 ..= step.max_depth` (module docs, "The decision"): the best
    /// drafting depth by `E(D) / C(D)` if it beats a plain step by the margin [`MARGIN`], else 0.
    pub fn choose(&self, step: &PlanStep) -> u32 {
        let max = step.max_depth.min(MAX_AUTO_DEPTH as u32);
        if max == 0 {
            return 0;
        }
        // The target and expansion costs of this situation, from the cache that
        // `plan_depth` keeps when it applies (same integers as `step_cost`).
        let cached =
            self.cost_key == Some((step.chain, step.variants)) && max <= self.shape.depth();
        let v = step.variants.max(1) as u64;
        let rows = |inputs: u64| u32::try_from(inputs.saturating_mul(v)).unwrap_or(u32::MAX);
        let target_at = |d: u32| {
            if cached {
                self.target_by_depth[d as usize]
            } else if d == 0 {
                self.target.nanos(rows(step.chain as u64))
            } else {
                self.target.nanos(rows(step.chain as u64 + self.nodes(d)))
            }
        };
        let plain = target_at(0) as f64;
        let catch = self.catch_up_cost(step);
        // Shortcut, same answer: `E(D) ≤ E(max)` (E never decreases with D) and
        // `C(D) ≥ catch-up + the target curve's smallest point` (a curve never goes below its
        // smallest point for r ≥ 1), so if even that pair does not beat a plain step by the
        // margin, no depth does.
        let floor = catch.saturating_add(self.target_floor) as f64;
        if self.expected_tokens(max) * plain <= (1.0 + MARGIN) * floor {
            return 0;
        }
        let expand = if cached {
            self.expand_cost
        } else {
            self.drafter.nanos(rows(self.frontier()))
        };
        // `E(D)` and `C(D)` (module docs) built up depth by depth, in the operation order of
        // `expected_tokens` and `step_cost`.
        let (mut best, mut best_e, mut best_c) = (0u32, 0.0, 0.0);
        let (mut e, mut reach) = (1.0, 1.0);
        for d in 1..=max {
            reach *= self.rate(d);
            e += reach;
            let c = catch
                .saturating_add(expand.saturating_mul(d as u64 - 1))
                .saturating_add(target_at(d)) as f64;
            if d == 1 || e * best_c > best_e * c {
                best = d;
                best_e = e;
                best_c = c;
            }
        }
        if best_e * plain <= (1.0 + MARGIN) * self.expected_tokens(0) * best_c {
            return 0;
        }
        if self.trials[0] == PRIOR_WEIGHT {
            // No verdict yet: the draft is an exploration on the prior alone. Its worst case
            // (every draft rejected: one token for C(D⁺)) may cost at most the budget β of
            // the rest of the image decoded plainly.
            let loss = best_c - plain;
            if loss > EXPLORATION_BUDGET * step.remaining as f64 * plain {
                return 0;
            }
        }
        best
    }

    /// Inputs of one expansion run: 1 for chains, `top_k` for trees.
    fn frontier(&self) -> u64 {
        match self.shape {
            DraftShape::Chain { .. } => 1,
            DraftShape::Tree { top_k, .. } => top_k as u64,
        }
    }

    /// Fills the cost cache for the situation of `step` (its chain and variants), if it is not
    /// already for it: the target's cost per depth `0 ..= shape depth` and one expansion's.
    fn cache_costs(&mut self, step: &PlanStep) {
        let key = Some((step.chain, step.variants));
        if self.cost_key == key {
            return;
        }
        let v = step.variants.max(1) as u64;
        let rows = |inputs: u64| u32::try_from(inputs.saturating_mul(v)).unwrap_or(u32::MAX);
        let top = (self.shape.depth() as usize).min(MAX_AUTO_DEPTH);
        self.target_by_depth[0] = self.target.nanos(rows(step.chain as u64));
        for d in 1..=top {
            let nodes = self.nodes(d as u32);
            self.target_by_depth[d] = self.target.nanos(rows(step.chain as u64 + nodes));
        }
        self.expand_cost = self.drafter.nanos(rows(self.frontier()));
        self.cost_key = key;
    }

    /// The calibration factor `κ` of node values (module docs, "Tree size"): decayed accepted
    /// drafts over decayed Σ of the capped values verified, both from the prior
    /// [`CALIBRATION_PRIOR`] (so `κ = 1` before any evidence).
    pub fn calibration(&self) -> f64 {
        self.calib_seen / self.calib_valued
    }

    /// How many of the candidate nodes `values` (best first) a tree step of depth `depth` in
    /// situation `step` verifies (module docs, "Tree size"): the `n ∈ 0 ..= values.len()`
    /// maximising `(1 + Σ_{i<n} min(1, κ·v_i)) / (draft_cost + c_T((chain + n)·v))` (ties: fewer
    /// nodes).
    pub fn choose_nodes(&self, step: &PlanStep, depth: u32, values: &[f64]) -> usize {
        let v = step.variants.max(1) as u64;
        let rows = |inputs: u64| u32::try_from(inputs.saturating_mul(v)).unwrap_or(u32::MAX);
        let kappa = self.calibration();
        let sunk = self.draft_cost(step, depth);
        let cost = |n: usize| {
            let target = self.target.nanos(rows(step.chain as u64 + n as u64));
            sunk.saturating_add(target) as f64
        };
        let mut best = 0usize;
        let mut best_e = 1.0;
        let mut best_c = cost(0);
        let mut e = 1.0;
        for (i, &value) in values.iter().enumerate() {
            e += (kappa * value).min(1.0);
            let c = cost(i + 1);
            if e * best_c > best_e * c {
                best = i + 1;
                best_e = e;
                best_c = c;
            }
        }
        best
    }

    /// Records a verification of a tree of depth `drafted` that accepted `accepted` drafts.
    pub fn record(&mut self, drafted: u32, accepted: u32) {
        if let Some(valued) = self.pending_value.take() {
            self.calib_seen = self.calib_seen * DECAY + accepted as f64;
            self.calib_valued = self.calib_valued * DECAY + valued;
        }
        let last = accepted.saturating_add(1).min(drafted) as usize;
        for i in 0..last.min(MAX_AUTO_DEPTH) {
            let hit = if (i as u32) < accepted { 1.0 } else { 0.0 };
            self.trials[i] = self.trials[i] * DECAY + 1.0;
            self.hits[i] = self.hits[i] * DECAY + hit;
            self.rates[i] = self.hits[i] / self.trials[i];
        }
    }
}

impl VerifyPolicy for AutoDraft {
    type Config = AutoDraftConfig;

    fn build(cfg: AutoDraftConfig, _max_inputs: usize) -> Result<(SpeculativeConfig, Self)> {
        Ok((cfg.spec, AutoDraft::new(cfg.spec.shape, &cfg.profile)?))
    }

    fn decide(&mut self, _: &DraftedStep<'_>) -> Option<Skip> {
        None
    }

    fn plan_depth(&mut self, step: &PlanStep) -> u32 {
        self.cache_costs(step);
        let depth = self.choose(step);
        self.planned = Some((*step, depth));
        self.pending_value = None;
        depth
    }

    fn plan_nodes(&mut self, values: &[f64]) -> usize {
        let Some((step, depth)) = self.planned else {
            return values.len();
        };
        let n = self.choose_nodes(&step, depth, values);
        self.pending_value = Some(values[..n].iter().map(|&v| v.min(1.0)).sum());
        n
    }

    fn observe(&mut self, drafted: u32, accepted: u32) {
        if drafted == 0 && self.pending_value.is_some() {
            // The node values said no draft was worth verifying: a drafting step that did not
            // pay, counted as a rejection at depth 1 so that the depth choice learns it.
            self.record(1, 0);
        } else {
            self.record(drafted, accepted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(target: &[(u32, u64)], drafter: &[(u32, u64)]) -> CostProfile {
        CostProfile {
            target: CostCurve::new(target).unwrap(),
            drafter: Some(CostCurve::new(drafter).unwrap()),
        }
    }

    fn step(catch_up: u32, max_depth: u32) -> PlanStep {
        PlanStep {
            committed: 10,
            max_depth,
            catch_up,
            chain: 1,
            variants: 2,
            max_inputs: 64,
            remaining: 54,
        }
    }

    const CHAIN: DraftShape = DraftShape::Chain { gamma: 8 };

    #[test]
    fn needs_a_drafter_curve() {
        let p = CostProfile {
            target: CostCurve::new(&[(1, 10)]).unwrap(),
            drafter: None,
        };
        assert!(AutoDraft::new(CHAIN, &p).is_err());
    }

    #[test]
    fn costs_follow_the_module_formula() {
        // Target: 1000 ns up to 2 rows, +100 per row; drafter 300 ns flat-ish.
        let p = profile(&[(2, 1000), (18, 2600)], &[(2, 300), (130, 1580)]);
        let a = AutoDraft::new(CHAIN, &p).unwrap();
        let s = step(2, 8);
        assert_eq!(a.step_cost(&s, 0), 1000);
        // catch-up 4 rows (320) + 2 expansions of 2 rows (300 each) + target 8 rows (1600).
        assert_eq!(a.step_cost(&s, 3), 320 + 600 + 1600);
        // A long catch-up runs in runs of T = 64 inputs: 64 and 6 inputs.
        let long = step(70, 8);
        assert_eq!(a.step_cost(&long, 1), 1560 + 400 + 1200);
        let tree = AutoDraft::new(
            DraftShape::Tree {
                total: 20,
                depth: 3,
                top_k: 4,
            },
            &p,
        )
        .unwrap();
        // Depth 2: min(20, 4 + 16) = 20 nodes; one expansion of 4 inputs (8 rows).
        // Target over (1 + 20)·2 = 42 rows: 2600 + 24·100, extrapolated.
        assert_eq!(tree.step_cost(&s, 2), 320 + 360 + 5000);
    }

    #[test]
    fn expensive_drafts_are_not_drawn_and_cheap_ones_are_drawn_deep() {
        // Drafter as expensive as the target: never worth it at the prior.
        let slow = AutoDraft::new(CHAIN, &profile(&[(2, 1000)], &[(2, 1000), (64, 1000)])).unwrap();
        assert_eq!(slow.choose(&step(1, 8)), 0);
        // Flat target, nearly free drafter: with high acceptance, draft to the maximum.
        let mut fast =
            AutoDraft::new(CHAIN, &profile(&[(2, 1000), (64, 1000)], &[(1, 1)])).unwrap();
        for _ in 0..40 {
            fast.record(8, 8);
        }
        assert_eq!(fast.choose(&step(9, 8)), 8);
        assert_eq!(fast.choose(&step(9, 3)), 3);
    }

    #[test]
    fn a_draft_must_win_by_the_margin() {
        // Flat target (1000 ns), drafter x ns: at the prior a depth-1 step is worth
        // 1.75·1000 / (x + 1000) plain steps, more than 1 + 1/8 only for x < 555.
        let at = |x: u64| {
            let a = AutoDraft::new(
                CHAIN,
                &profile(&[(2, 1000), (64, 1000)], &[(1, x), (64, x)]),
            )
            .unwrap();
            a.choose(&step(1, 1))
        };
        assert_eq!(at(500), 1);
        assert_eq!(at(555), 1);
        assert_eq!(at(556), 0);
        assert_eq!(at(600), 0, "1.09× better by the profile is not enough");
    }

    #[test]
    fn the_first_draft_is_bounded_by_the_exploration_budget() {
        // Flat target 1000 ns, drafter 500 ns: at the prior depth 1 is worth
        // 1.75·1000/1500 = 1.17 plain steps (> 1 + 1/8); if rejected it loses 500 ns, within
        // β = 2 % of r·1000 ns only for r ≥ 25 tokens left.
        let p = profile(&[(2, 1000), (64, 1000)], &[(1, 500), (64, 500)]);
        let mut a = AutoDraft::new(CHAIN, &p).unwrap();
        let at = |a: &AutoDraft, remaining| {
            a.choose(&PlanStep {
                remaining,
                ..step(1, 1)
            })
        };
        assert_eq!(at(&a, 25), 1);
        assert_eq!(
            at(&a, 24),
            0,
            "a short rest of the image is not worth exploring"
        );
        // After a verdict the budget no longer applies: accepted drafts keep the depth.
        a.record(1, 1);
        assert_eq!(at(&a, 2), 1);
    }

    /// The search without the shortcut, as it was written first.
    fn choose_by_search(a: &AutoDraft, step: &PlanStep) -> u32 {
        let max = step.max_depth.min(MAX_AUTO_DEPTH as u32);
        if max == 0 {
            return 0;
        }
        let (mut best, mut best_e, mut best_c) =
            (1, a.expected_tokens(1), a.step_cost(step, 1) as f64);
        for d in 2..=max {
            let (e, c) = (a.expected_tokens(d), a.step_cost(step, d) as f64);
            if e * best_c > best_e * c {
                (best, best_e, best_c) = (d, e, c);
            }
        }
        let plain = a.step_cost(step, 0) as f64;
        if best_e * plain <= (1.0 + MARGIN) * best_c {
            return 0;
        }
        if a.trials[0] == PRIOR_WEIGHT
            && best_c - plain > EXPLORATION_BUDGET * step.remaining as f64 * plain
        {
            return 0;
        }
        best
    }

    #[test]
    fn the_shortcut_never_changes_the_choice() {
        // Pseudo-random profiles (non-monotone ones included), situations and verdicts.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let mut drafted = 0;
        for _ in 0..3000 {
            let mut pts = [(0u32, 0u64); 4];
            let mut r = 0;
            for p in &mut pts {
                r += 1 + next(8) as u32;
                *p = (r, 1 + next(4000));
            }
            let d = [(1, 1 + next(1500)), (64, 1 + next(3000))];
            let shape = if next(2) == 0 { CHAIN } else { TREE };
            let mut a = AutoDraft::new(shape, &profile(&pts, &d)).unwrap();
            for _ in 0..next(6) {
                let depth = 1 + next(3) as u32;
                a.record(depth, next(depth as u64 + 1) as u32);
            }
            let s = PlanStep {
                catch_up: next(80) as u32,
                remaining: 2 + next(60) as u32,
                variants: 1 + next(2) as u32,
                ..step(0, 1 + next(3) as u32)
            };
            let got = a.choose(&s);
            assert_eq!(got, choose_by_search(&a, &s), "{pts:?} {d:?} {s:?}");
            // Through `plan_depth`, with the cost cache.
            let mut b = a.clone();
            assert_eq!(b.plan_depth(&s), got, "cached: {pts:?} {d:?} {s:?}");
            assert_eq!(b.plan_depth(&s), got, "cached again");
            drafted += (got > 0) as u32;
        }
        assert!(
            drafted > 300 && drafted < 2700,
            "both answers occur: {drafted}"
        );
    }

    #[test]
    fn never_drafting_is_recognised_before_the_run() {
        // Flat target 1000 ns; drafter x ns per call. Depth 1 at best: 2 tokens for a catch-up
        // (x) and a verification (1000) against 1000 for one: drafting is possible iff
        // 2000 > 1.125·(x + 1000), i.e. x ≤ 777.
        let at = |x: u64, gamma| {
            AutoDraft::new(
                DraftShape::Chain { gamma },
                &profile(&[(2, 1000), (64, 1000)], &[(1, x), (64, x)]),
            )
            .unwrap()
            .never_drafts(2)
        };
        assert!(!at(777, 1));
        assert!(at(778, 1));
        // Deeper drafts: depth D gives (1 + D)·1000 vs 1.125·(D·x + 1000); at x = 778 depth 2
        // still pays (3000 > 2875.5) and the run may draft.
        assert!(!at(778, 2));
        assert!(
            at(900, 8),
            "(1 + D)·1000 ≤ 1.125·(900·D + 1000) for every D"
        );
        // Whenever `never_drafts` says so, `choose` answers 0, whatever the statistics.
        let p = profile(&[(2, 1000), (64, 1000)], &[(1, 900), (64, 900)]);
        let mut a = AutoDraft::new(DraftShape::Chain { gamma: 8 }, &p).unwrap();
        for _ in 0..50 {
            a.record(8, 8);
        }
        assert!(a.never_drafts(2));
        assert_eq!(a.choose(&step(1, 8)), 0);
    }

    #[test]
    fn statistics_move_from_the_prior_toward_the_verdicts() {
        let mut a = AutoDraft::new(CHAIN, &profile(&[(1, 1)], &[(1, 1)])).unwrap();
        assert_eq!(a.rate(1), 0.75);
        assert_eq!(a.expected_tokens(0), 1.0);
        assert_eq!(a.expected_tokens(2), 1.0 + 0.75 + 0.5625);
        // Depth 3 drafted, 1 accepted: trials at depths 1 and 2, success at depth 1.
        a.record(3, 1);
        assert_eq!(a.rate(1), (1.5 * DECAY + 1.0) / (2.0 * DECAY + 1.0));
        assert_eq!(a.rate(2), (1.5 * DECAY) / (2.0 * DECAY + 1.0));
        assert_eq!(a.rate(3), 0.75);
        for _ in 0..200 {
            a.record(1, 0);
        }
        assert!(a.rate(1) < 0.01);
        assert_eq!(a.rate(0), 0.0);
        assert_eq!(a.rate(65), 0.0);
    }

    const TREE: DraftShape = DraftShape::Tree {
        total: 20,
        depth: 3,
        top_k: 4,
    };

    #[test]
    fn tree_size_maximises_valued_tokens_per_nanosecond() {
        // Target 1000 ns up to 2 rows, +100 per row; drafter 300 ns up to 2 rows, +10 per row.
        let p = profile(&[(2, 1000), (18, 2600)], &[(2, 300), (130, 1580)]);
        let a = AutoDraft::new(TREE, &p).unwrap();
        let s = step(2, 3);
        // Depth 2: catch-up of 2 inputs (4 rows, 320 ns) and one expansion of 4 inputs
        // (8 rows, 360 ns) are spent; n nodes cost 1000 + 200·n more (2 rows per input).
        assert_eq!(a.draft_cost(&s, 2), 680);
        // E/C: n=0 1/1680, n=1 1.9/1880 = 1.011e-3, n=2 2.4/2080 = 1.154e-3,
        // n=3 2.6/2280 = 1.140e-3, n=4 2.65/2480 = 1.069e-3.
        assert_eq!(a.choose_nodes(&s, 2, &[0.9, 0.5, 0.2, 0.05]), 2);
        // Drafts the drafter itself doubts are not worth a row: 1.01/1880 < 1/1680.
        assert_eq!(a.choose_nodes(&s, 2, &[0.01, 0.01]), 0);
        // Sure drafts: (1 + n)/(1680 + 200·n) grows with n, so all of them.
        assert_eq!(a.choose_nodes(&s, 2, &[1.0; 6]), 6);
        // Values above 1 (impossible for probabilities) count as 1.
        assert_eq!(a.choose_nodes(&s, 2, &[7.0, 7.0]), 2);
        assert_eq!(a.choose_nodes(&s, 2, &[]), 0);
        // Flat costs (sunk 1 ns, every n 1001 ns): E grows with every positive value, and a
        // zero value ties, which keeps the smaller tree.
        let flat =
            AutoDraft::new(TREE, &profile(&[(2, 1000), (64, 1000)], &[(1, 1), (64, 1)])).unwrap();
        assert_eq!(flat.choose_nodes(&s, 1, &[0.5, 0.0, 0.25, 0.0]), 3);
    }

    #[test]
    fn node_values_are_calibrated_by_the_verdicts() {
        let p = profile(&[(2, 1000), (18, 2600)], &[(2, 300), (130, 1580)]);
        let mut a = AutoDraft::new(TREE, &p).unwrap();
        let s = step(2, 2);
        assert_eq!(a.calibration(), 1.0);
        // κ = 1: n=1 1.9/1880 = 1.0106e-3 beats n=2 2.1/2080 = 1.0096e-3.
        assert_eq!(a.choose_nodes(&s, 2, &[0.9, 0.2]), 1);
        // (The depth choice prices the full 20-node tree and would not draft here; the step is
        // set to depth 2 by hand.)
        a.planned = Some((s, 2));
        assert_eq!(a.plan_nodes(&[0.9, 0.5, 0.2, 0.05]), 2);
        // The tree of 2 nodes (values 0.9 + 0.5) had both accepted.
        a.observe(2, 2);
        let kappa = (2.0 * DECAY + 2.0) / (2.0 * DECAY + (0.9 + 0.5));
        assert_eq!(a.calibration(), kappa);
        assert!(kappa > 1.18);
        // κ ≈ 1.183: n=2 (2 + 0.237)/2080 = 1.075e-3 beats n=1 2/1880 = 1.064e-3.
        assert_eq!(a.choose_nodes(&s, 2, &[0.9, 0.2]), 2);
        // A step whose nodes were all judged worthless counts as a rejection at depth 1 and
        // leaves κ's ratio as it was.
        let before = a.rate(1);
        a.planned = Some((s, 2));
        assert_eq!(a.plan_nodes(&[1e-6, 1e-7]), 0);
        a.observe(0, 0);
        assert_eq!(a.calibration(), kappa);
        assert!(a.rate(1) < before);
        // Chains are not sized from values: no calibration.
        let mut c = AutoDraft::new(CHAIN, &p).unwrap();
        c.observe(3, 3);
        assert_eq!(c.calibration(), 1.0);
    }

    #[test]
    fn acceptance_decides_between_shallow_and_deep() {
        // Target 1000 ns + 50 per row beyond 2; drafter 100 ns per call.
        let p = profile(&[(2, 1000), (130, 7400)], &[(2, 100), (130, 100)]);
        let mut a = AutoDraft::new(CHAIN, &p).unwrap();
        for _ in 0..64 {
            a.record(8, 0);
        }
        assert_eq!(a.choose(&step(1, 8)), 0, "drafts are never accepted");
        let mut b = AutoDraft::new(CHAIN, &p).unwrap();
        for _ in 0..64 {
            b.record(8, 8);
        }
        assert_eq!(b.choose(&step(9, 8)), 8, "drafts are always accepted");
    }
}
