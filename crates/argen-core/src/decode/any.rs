//! One decoder type for every method, built from one serialisable configuration.
//!
//! A host that serves any method — the `argen` command, the C ABI, the Python package, a runtime
//! that embeds argen — should not repeat a construction arm per method, nor re-derive how many
//! sequences, inputs and distribution rows each method needs. This module gives it three things:
//!
//! * [`DecoderConfig`]: an owned, `Copy` description of a run — the shared [`Config`], a
//!   single-image [`MethodConfig`] (vanilla, speculative, VVS, Jacobi) and an optional test-time
//!   [`ScalingConfig`] (Best-of-N, GridAR) whose candidates run that method. With the `serde`
//!   feature it is `Serialize` / `Deserialize` (JSON shape below); it has a [`StableEncode`]
//!   encoding for trace headers ([`crate::trace::config_hash`]).
//! * [`DecoderConfig::requirements`]: what a host must provide **before** building — sequences,
//!   inputs per run, uncommitted entries, logits rows per action, distribution rows, guidance
//!   variants, whether a drafter or a judge is needed, and which [`Resources`] the criterion or
//!   schedule borrows ([`Requirements`]).
//! * [`AnyDecoder`] (feature `alloc`): the decoder, built by [`AnyDecoder::new`] from a config and
//!   the borrowed [`Resources`] (LANTERN's neighbour table, GSD's embedding, VVS's codebook). It
//!   is a closed enum over the concrete decoders, with capacities fixed by [`MAX_TOKENS`],
//!   [`MAX_INPUTS`] and [`MAX_CANDIDATES`]; it implements [`Decoder`] by delegation, so its tokens,
//!   stats and actions are exactly those of the concrete decoder (tested for every method in
//!   `tests/any_decoder.rs`).
//!
//! ```text
//! let cfg: DecoderConfig = serde_json::from_str(json)?;   // or built in code
//! let req = cfg.requirements()?;                         // size KV caches, rows, backend
//! let res = Resources::none().with_neighbours(table);    // whatever req.neighbours etc. ask for
//! let mut dec = AnyDecoder::new(&cfg, &res)?;
//! drive(&mut dec, &mut backend, &mut host, &mut NoObserver)?;
//! ```
//!
//! # JSON shape (feature `serde`)
//!
//! Enums are externally tagged with `snake_case` names (a unit variant is a string, any other
//! variant an object with one key); optional values are `null` or absent; unknown fields are
//! errors. A Best-of-4 over LANTERN candidates:
//!
//! ```json
//! {
//!   "base": {
//!     "seed": 7, "stream": 0, "seq": 0, "tokens": 256, "width": 16,
//!     "sampler": { "temperature": 1.0, "top_k": null, "top_p": null, "min_p": null },
//!     "guidance": { "two_way": { "scale": 4.0 } }
//!   },
//!   "method": { "speculative": {
//!     "shape": { "tree": { "total": 59, "depth": 4, "top_k": 10 } },
//!     "criterion": { "lantern": { "k": 1000, "delta": 0.2, "lambda": null, "metric": "normalised" } },
//!     "draft_sampler": null
//!   } },
//!   "scaling": { "best_of_n": { "n": 4 } }
//! }
//! ```
//!
//! * `base.guidance`: `"none"`, `{"two_way": {"scale": s}}`, `{"three_way": {"w": w}}`;
//!   `base.sampler`: missing fields take their defaults (temperature 1, no truncation).
//! * `method`: `"vanilla"`; `{"speculative": {shape, criterion, draft_sampler}}`;
//!   `{"vvs": {"speculative": {…}, "schedule": …, "warmup": 5}}` with schedule `"never"`,
//!   `{"uniform": {"interval": i}}` or `{"dynamic": {"threshold": s, "alpha": a}}`;
//!   `{"jacobi": {"window": 16, "init": "random" | "copy_left", "criterion": …}}`;
//!   `{"auto_speculative": {"speculative": {…}, "profile": {"target": [[rows, ns], …],
//!   "drafter": [[rows, ns], …]}}}` (cost-aware drafting, [`super::auto_draft`]: the shape is
//!   the deepest draft allowed, the profile a [`CostProfile`]).
//! * `shape`: `{"chain": {"gamma": g}}` or `{"tree": {"total", "depth", "top_k"}}`;
//!   `criterion`: `"exact"`, `"coupled"`, `{"lantern": {"k", "delta", "lambda", "metric"}}`,
//!   `{"grouped": {"window", "prob_tol", "dist_tol"}}`; `draft_sampler` `null` = the target's.
//! * `scaling`: `null` / absent (one image), `{"best_of_n": {"n": n}}` or
//!   `{"gridar": {"n", "verifier", "reformulate", "w"}}`.
//!
//! # Composition
//!
//! Best-of-N runs `n` candidates of any [`MethodConfig`]. GridAR needs [`Restartable`]
//! candidates ([`MethodConfig::restartable`]); today that is vanilla only, and
//! [`DecoderConfig::validate`] refuses the others with a typed error naming `inner`. The
//! candidate type [`SingleDecoder`] already implements [`Restartable`] by delegation, so a
//! decoder that becomes restartable is enabled by one arm there and one in
//! [`MethodConfig::restartable`].

#[cfg(feature = "alloc")]
use alloc::boxed::Box;

#[cfg(feature = "alloc")]
use super::AutoDraft;
#[cfg(feature = "alloc")]
use super::GuidanceMode;
#[cfg(feature = "alloc")]
use super::{Action, BestOfN, Decoder, GridAr, GridArConfig, Restartable, Stats, Vanilla};
use super::{
    AutoDraftConfig, AutoSpeculative, Config, DraftShape, Jacobi, JacobiConfig, JacobiInit,
    Schedule, Speculative, SpeculativeConfig, Vvs, VvsConfig,
};
use crate::accept::Criterion;
use crate::accept::{GroupedParams, LanternParams};
use crate::accept::{Metric, NeighbourTable};
#[cfg(feature = "alloc")]
use crate::backend::Backend;
use crate::cost::CostProfile;
use crate::error::{Error, Result};
use crate::process::SamplerParams;
use crate::trace::{Fnv64, StableEncode};

/// Most image tokens an [`AnyDecoder`] sequence holds (32 × 32: LlamaGen at 512 px).
pub const MAX_TOKENS: usize = 1024;
/// Most inputs of one target run of an [`AnyDecoder`] (a draft tree of up to 63 nodes plus the
/// last committed token; Jacobi windows of up to 63). Speculative and VVS decoders need
/// `2 · MAX_INPUTS` distribution rows, Jacobi `4 · MAX_INPUTS`.
pub const MAX_INPUTS: usize = 64;
/// Most candidates of Best-of-N and GridAR in an [`AnyDecoder`].
pub const MAX_CANDIDATES: usize = 16;

/// The settings a method's parameters are checked on without building the real decoder: the
/// decoders' own constructors run on a one-token image with the exact criterion and a one-entry
/// codebook (tables-free stand-ins; the criterion's parameters are checked by
/// [`CriterionConfig`] itself, the shared settings by [`Config::validate`]), so every capacity
/// rule lives in one place, the decoder.
fn probe() -> Config {
    Config {
        seed: 0,
        stream: 0,
        seq: 0,
        tokens: 1,
        width: 1,
        sampler: SamplerParams::default(),
        guidance: crate::decode::GuidanceMode::None,
    }
}

/// An acceptance criterion without its tables (those come from [`Resources`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum CriterionConfig {
    /// Lossless speculative sampling ([`crate::accept::exact`]).
    Exact,
    /// The target's own keyed draw: vanilla's tokens ([`crate::accept::coupled`]).
    Coupled,
    /// LANTERN relaxed acceptance ([`crate::accept::lantern`]); needs
    /// [`Resources::neighbours`] with at least `k` neighbours per token, ranked by `metric`.
    Lantern {
        /// Neighbours considered per token (paper: 1000).
        k: u32,
        /// Total-variation budget `δ` in `[0, 1]`.
        delta: f32,
        /// LANTERN++ factor `λ >= 1`, or `None`.
        lambda: Option<f32>,
        /// The distance the neighbour table ranks codebook rows by (JSON: `"raw"` or
        /// `"normalised"`, the default when absent). It decides which table the host builds;
        /// the decoder cannot check a table's metric.
        #[cfg_attr(feature = "serde", serde(default))]
        metric: Metric,
    },
    /// Grouped speculative decoding ([`crate::accept::grouped`]); needs
    /// [`Resources::embedding`].
    Grouped {
        /// Rank window on each side (paper: 7), `1..=16`.
        window: u32,
        /// Probability tolerance (paper: 0.15), in `[0, 1]`.
        prob_tol: f32,
        /// Squared-distance tolerance (paper: 0.5), finite and `>= 0`.
        dist_tol: f32,
    },
}

impl CriterionConfig {
    /// GSD with the paper's settings (window 7, probability tolerance 0.15, distance 0.5).
    pub const GROUPED_PAPER: CriterionConfig = CriterionConfig::Grouped {
        window: 7,
        prob_tol: 0.15,
        dist_tol: 0.5,
    };

    /// Short name (as [`crate::accept::Criterion::name`]).
    pub fn name(&self) -> &'static str {
        match self {
            CriterionConfig::Exact => "exact",
            CriterionConfig::Coupled => "coupled",
            CriterionConfig::Lantern { .. } => "lantern",
            CriterionConfig::Grouped { .. } => "grouped",
        }
    }

    /// Checks the parameters with the criterion's own rules, on two-token stand-in tables (the
    /// real tables are checked when the decoder is built).
    fn validate(&self) -> Result<()> {
        const IDS: [u32; 2] = [1, 0];
        const EMBEDDING: [f32; 2] = [0.0, 1.0];
        let criterion = match *self {
            CriterionConfig::Exact | CriterionConfig::Coupled => return Ok(()),
            CriterionConfig::Lantern {
                k, delta, lambda, ..
            } => {
                if k == 0 {
                    return Err(Error::InvalidParameter {
                        name: "lantern_k",
                        reason: "must be at least 1",
                    });
                }
                Criterion::Lantern(LanternParams {
                    neighbours: NeighbourTable::new(&IDS, 2, 1)?,
                    k: 1,
                    delta,
                    lambda,
                })
            }
            CriterionConfig::Grouped {
                window,
                prob_tol,
                dist_tol,
            } => Criterion::Grouped(GroupedParams {
                embedding: &EMBEDDING,
                dim: 1,
                window: window as usize,
                prob_tol,
                dist_tol,
            }),
        };
        criterion.validate(2)
    }

    /// The criterion over the tables of `res`; a missing table is [`Error::MissingResource`],
    /// one that does not fit the parameters (LANTERN's `k` beyond the table's, an embedding that
    /// is not `vocab × dim`) the criterion's own error.
    #[cfg(feature = "alloc")]
    pub fn build<'c>(&self, res: &Resources<'c>) -> Result<Criterion<'c>> {
        let criterion = match *self {
            CriterionConfig::Exact => Criterion::Exact,
            CriterionConfig::Coupled => Criterion::Coupled,
            CriterionConfig::Lantern {
                k, delta, lambda, ..
            } => {
                let neighbours = res.neighbours.ok_or(Error::MissingResource {
                    resource: "neighbours",
                    needed_by: "lantern criterion",
                })?;
                Criterion::Lantern(LanternParams {
                    neighbours,
                    k: k as usize,
                    delta,
                    lambda,
                })
            }
            CriterionConfig::Grouped {
                window,
                prob_tol,
                dist_tol,
            } => {
                let e = res.embedding.ok_or(Error::MissingResource {
                    resource: "embedding",
                    needed_by: "grouped criterion",
                })?;
                Criterion::Grouped(GroupedParams {
                    embedding: e.values,
                    dim: e.dim,
                    window: window as usize,
                    prob_tol,
                    dist_tol,
                })
            }
        };
        // The tables' own vocabulary; the model's is checked against it at verification.
        let vocab = match &criterion {
            Criterion::Lantern(l) => l.neighbours.vocab(),
            Criterion::Grouped(g) => g.embedding.len().checked_div(g.dim).unwrap_or(0),
            _ => 0,
        };
        criterion.validate(vocab)?;
        Ok(criterion)
    }
}

/// Speculative decoding: draft shape, criterion, drafter sampling.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct SpeculativeParams {
    /// Draft shape (chain or EAGLE-2 tree).
    #[cfg_attr(feature = "serde", serde(with = "remote::DraftShapeDef"))]
    pub shape: DraftShape,
    /// Acceptance criterion.
    pub criterion: CriterionConfig,
    /// Sampling parameters of the drafter; `None`: the target's ([`Config::sampler`]).
    pub draft_sampler: Option<SamplerParams>,
}

impl SpeculativeParams {
    /// The [`SpeculativeConfig`] of these parameters over `base`.
    pub fn config(&self, base: Config) -> SpeculativeConfig {
        SpeculativeConfig {
            base,
            draft_sampler: self.draft_sampler.unwrap_or(base.sampler),
            shape: self.shape,
        }
    }

    /// Draft nodes verified per step (`γ`, or the tree's `total`).
    fn nodes(&self) -> u32 {
        match self.shape {
            DraftShape::Chain { gamma } => gamma,
            DraftShape::Tree { total, .. } => total,
        }
    }

    fn validate(&self) -> Result<()> {
        Speculative::<1, MAX_INPUTS>::new(self.config(probe()), Criterion::Exact)?;
        self.criterion.validate()
    }
}

/// Speculative decoding whose draft depth is chosen per step from a device cost profile
/// ([`super::auto_draft`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct AutoParams {
    /// The speculative decoding it drafts for; the shape is the deepest draft allowed.
    pub speculative: SpeculativeParams,
    /// The device's measured costs (target and drafter curves).
    pub profile: CostProfile,
}

impl AutoParams {
    /// The [`AutoDraftConfig`] of these parameters over `base`.
    pub fn config(&self, base: Config) -> AutoDraftConfig {
        AutoDraftConfig {
            spec: self.speculative.config(base),
            profile: self.profile,
        }
    }

    fn validate(&self) -> Result<()> {
        AutoSpeculative::<1, MAX_INPUTS>::new(self.config(probe()), Criterion::Exact)?;
        self.speculative.criterion.validate()
    }
}

/// VVS: speculative decoding that skips some verifications ([`super::vvs`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct VvsParams {
    /// The speculative decoding it skips verifications of.
    pub speculative: SpeculativeParams,
    /// Skip schedule; [`Schedule::Dynamic`] needs [`Resources::codebook`].
    #[cfg_attr(feature = "serde", serde(with = "remote::ScheduleDef"))]
    pub schedule: Schedule,
    /// No skip while fewer tokens are committed (paper: 5).
    pub warmup: u32,
}

impl VvsParams {
    fn validate(&self) -> Result<()> {
        let cfg = VvsConfig {
            spec: self.speculative.config(probe()),
            schedule: self.schedule,
            warmup: self.warmup,
            codebook: &[0.0],
            dim: 1,
        };
        Vvs::<1, MAX_INPUTS>::new(cfg, Criterion::Exact)?;
        self.speculative.criterion.validate()
    }
}

/// Speculative Jacobi decoding ([`super::jacobi`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct JacobiParams {
    /// Window length `L` (paper: 16), `1..=MAX_INPUTS − 1`.
    pub window: u32,
    /// Initialisation of new window positions.
    pub init: JacobiInit,
    /// Acceptance criterion.
    pub criterion: CriterionConfig,
}

impl JacobiParams {
    /// The [`JacobiConfig`] of these parameters over `base`.
    pub fn config(&self, base: Config) -> JacobiConfig {
        JacobiConfig {
            base,
            window: self.window,
            init: self.init,
        }
    }

    fn validate(&self) -> Result<()> {
        Jacobi::<1, MAX_INPUTS>::new(self.config(probe()), Criterion::Exact)?;
        self.criterion.validate()
    }
}

/// How one image is decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
// The auto variant carries its cost profile inline (two curves of 16 points, ≈ 400 bytes) so the
// configuration stays `Copy` and allocation-free; configurations are built once per run.
#[allow(clippy::large_enum_variant)]
pub enum MethodConfig {
    /// One target pass per token ([`super::Vanilla`]).
    Vanilla,
    /// Speculative decoding ([`super::Speculative`]).
    Speculative(SpeculativeParams),
    /// VVS ([`super::Vvs`]).
    Vvs(VvsParams),
    /// Speculative Jacobi decoding ([`super::Jacobi`]).
    Jacobi(JacobiParams),
    /// Speculative decoding with cost-aware drafting ([`super::AutoSpeculative`]).
    AutoSpeculative(AutoParams),
}

impl MethodConfig {
    /// Short name: `vanilla`, `speculative`, `vvs`, `jacobi`, `auto_speculative`.
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::Vanilla => "vanilla",
            MethodConfig::Speculative(_) => "speculative",
            MethodConfig::Vvs(_) => "vvs",
            MethodConfig::Jacobi(_) => "jacobi",
            MethodConfig::AutoSpeculative(_) => "auto_speculative",
        }
    }

    /// Whether its decoder is [`Restartable`] (what GridAR's candidates must be). The slot for
    /// speculative candidates: flip their arm here and in [`SingleDecoder`]'s `Restartable`
    /// once [`super::Speculative`] implements it.
    pub fn restartable(&self) -> bool {
        matches!(
            self,
            MethodConfig::Vanilla
                | MethodConfig::Speculative(_)
                | MethodConfig::Vvs(_)
                | MethodConfig::AutoSpeculative(_)
        )
    }

    /// The acceptance criterion, if the method verifies drafts.
    pub fn criterion(&self) -> Option<CriterionConfig> {
        match self {
            MethodConfig::Vanilla => None,
            MethodConfig::Speculative(s) => Some(s.criterion),
            MethodConfig::Vvs(v) => Some(v.speculative.criterion),
            MethodConfig::Jacobi(j) => Some(j.criterion),
            MethodConfig::AutoSpeculative(a) => Some(a.speculative.criterion),
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            MethodConfig::Vanilla => Ok(()),
            MethodConfig::Speculative(s) => s.validate(),
            MethodConfig::Vvs(v) => v.validate(),
            MethodConfig::Jacobi(j) => j.validate(),
            MethodConfig::AutoSpeculative(a) => a.validate(),
        }
    }

    /// What one sequence of this method needs (see [`Requirements`]).
    fn needs(&self) -> Needs {
        match self {
            MethodConfig::Vanilla => Needs {
                inputs: 1,
                pending: 1,
                dist_rows: 1,
                drafter: false,
            },
            MethodConfig::Speculative(s) => speculative_needs(s, false),
            MethodConfig::Vvs(v) => speculative_needs(&v.speculative, true),
            MethodConfig::AutoSpeculative(a) => speculative_needs(&a.speculative, false),
            MethodConfig::Jacobi(j) => Needs {
                inputs: j.window + 1,
                pending: j.window + 1,
                dist_rows: 4 * MAX_INPUTS as u32,
                drafter: false,
            },
        }
    }
}

/// Per-sequence needs of a single-image method.
struct Needs {
    inputs: u32,
    pending: u32,
    dist_rows: u32,
    drafter: bool,
}

/// A speculative step: the verification run holds the last committed token, (VVS) up to
/// `depth` skipped tokens, and the draft nodes; a drafter catch-up run holds the accepted path
/// and the committed token (at most `depth + 1`); an expansion run holds the frontier (`top_k`
/// nodes, 1 for chains), and a step leaves `depth − 1` expansions pending.
fn speculative_needs(s: &SpeculativeParams, skipping: bool) -> Needs {
    let depth = s.shape.depth();
    let skipped = if skipping { depth } else { 0 };
    let target = 1 + skipped + s.nodes();
    let (expansion, expanded) = match s.shape {
        DraftShape::Chain { gamma } => (1, gamma - 1),
        DraftShape::Tree { depth, top_k, .. } => (top_k, (depth - 1) * top_k),
    };
    let inputs = target.max(depth + 1).max(expansion);
    Needs {
        inputs,
        pending: inputs.max(expanded),
        dist_rows: 2 * MAX_INPUTS as u32,
        drafter: true,
    }
}

/// Test-time scaling over candidates of a [`MethodConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum ScalingConfig {
    /// Best-of-N ([`super::BestOfN`]).
    BestOfN {
        /// Candidates, `1..=MAX_CANDIDATES`.
        n: u32,
    },
    /// GridAR ([`super::GridAr`]); candidates must be restartable.
    #[cfg_attr(feature = "serde", serde(rename = "gridar"))]
    GridAr {
        /// Candidates, `1..=MAX_CANDIDATES`.
        n: u32,
        /// Whether partial canvases are checked and impossible ones replaced.
        verifier: bool,
        /// Whether prompts are reformulated at the pruning points (three-way CFG).
        reformulate: bool,
        /// Three-way CFG weight ([`super::RELEASE_W`] in the official release).
        w: f32,
    },
}

impl ScalingConfig {
    /// Number of candidates.
    pub fn n(&self) -> u32 {
        match *self {
            ScalingConfig::BestOfN { n } | ScalingConfig::GridAr { n, .. } => n,
        }
    }

    /// Short name: `best_of_n`, `gridar`.
    pub fn name(&self) -> &'static str {
        match self {
            ScalingConfig::BestOfN { .. } => "best_of_n",
            ScalingConfig::GridAr { .. } => "gridar",
        }
    }
}

/// Everything that decides a run: shared settings, method, optional test-time scaling.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct DecoderConfig {
    /// Seed, stream and sequence of the (first) image, its size, sampling and guidance.
    pub base: Config,
    /// How each image is decoded (with scaling: each candidate, the *inner* method).
    pub method: MethodConfig,
    /// Best-of-N or GridAR over `method`'s candidates; `None`: one image.
    #[cfg_attr(feature = "serde", serde(default))]
    pub scaling: Option<ScalingConfig>,
}

/// What a host must provide for a [`DecoderConfig`] (module docs); every field is a bound that a
/// run never exceeds (`tests/any_decoder.rs` drives every method against it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Requirements {
    /// Sequences used: ids `base.seq .. base.seq + sequences` (the candidates).
    pub sequences: u32,
    /// Image tokens per sequence (`base.tokens`): the KV cache holds the condition, these and
    /// `pending` more.
    pub tokens: u32,
    /// Most inputs one sequence contributes to one forward (a prefill counts one), target or
    /// drafter. Exact for vanilla, Jacobi (images longer than the window), and speculative
    /// decoding without skipping when the pool fills the tree.
    pub inputs_per_run: u32,
    /// Most entries of one sequence uncommitted in one model's KV cache at once, counting the
    /// inputs of the current run (a drafting step keeps its expansions pending). At least
    /// `inputs_per_run`.
    pub pending: u32,
    /// Guidance variants (KV-cache slots per sequence and model, logits rows per input): 1 without
    /// guidance, 2 with two-way CFG, 3 once GridAR reformulates.
    pub variants: u32,
    /// Most logits rows of one action's answer: `sequences · inputs_per_run · variants` (the
    /// candidates of Best-of-N and GridAR share forwards). Exact where `inputs_per_run` is.
    pub logits_rows: u32,
    /// Distribution rows the backend must hold ([`Decoder::dist_rows_needed`] of the built
    /// decoder, exactly).
    pub dist_rows: u32,
    /// Whether drafter forwards ([`Action::Draft`]) occur (with cost-aware drafting: may
    /// occur; the policy may never draft).
    pub drafter: bool,
    /// Whether [`Action::Check`] occurs (GridAR with the verifier).
    pub check: bool,
    /// Whether [`Action::Score`] occurs (Best-of-N, GridAR).
    pub score: bool,
    /// Whether [`Action::Reformulate`] occurs (GridAR with reformulation).
    pub reformulate: bool,
    /// The LANTERN table [`Resources::neighbours`] must hold, if needed.
    pub neighbours: Option<NeighbourNeeds>,
    /// Whether [`Resources::embedding`] is needed (grouped criterion).
    pub embedding: bool,
    /// Whether [`Resources::codebook`] is needed (VVS dynamic schedule).
    pub codebook: bool,
}

impl DecoderConfig {
    /// One image decoded by `method`.
    pub const fn single(base: Config, method: MethodConfig) -> Self {
        DecoderConfig {
            base,
            method,
            scaling: None,
        }
    }

    /// Checks everything that does not need the [`Resources`] or the vocabulary: the shared
    /// settings against [`MAX_TOKENS`], the method's parameters and capacities against
    /// [`MAX_INPUTS`], the candidates against [`MAX_CANDIDATES`], and that GridAR's candidates
    /// are restartable (else [`Error::InvalidParameter`] named `inner`).
    pub fn validate(&self) -> Result<()> {
        self.base.validate(MAX_TOKENS)?;
        self.base.sampler.validate(usize::MAX)?;
        self.method.validate()?;
        let Some(scaling) = self.scaling else {
            return Ok(());
        };
        let n = scaling.n();
        if n == 0 || n as usize > MAX_CANDIDATES {
            return Err(Error::InvalidParameter {
                name: "n",
                reason: "must be between 1 and MAX_CANDIDATES (16)",
            });
        }
        if self.base.seq.checked_add(n).is_none() || self.base.stream.checked_add(n).is_none() {
            return Err(Error::InvalidParameter {
                name: "seq",
                reason: "base id plus the candidate count overflows u32",
            });
        }
        if let ScalingConfig::GridAr { w, .. } = scaling {
            if !self.method.restartable() {
                return Err(Error::InvalidParameter {
                    name: "inner",
                    reason: "GridAR needs restartable candidates (MethodConfig::restartable)",
                });
            }
            if !w.is_finite() {
                return Err(Error::InvalidParameter {
                    name: "w",
                    reason: "three-way CFG weight must be finite",
                });
            }
            if self.base.tokens / self.base.width < 4 {
                return Err(Error::InvalidParameter {
                    name: "tokens",
                    reason: "GridAR needs a canvas of at least 4 token rows",
                });
            }
        }
        Ok(())
    }

    /// What a host must provide (see [`Requirements`]); fails as [`DecoderConfig::validate`].
    pub fn requirements(&self) -> Result<Requirements> {
        self.validate()?;
        let mut needs = self.method.needs();
        if matches!(self.scaling, Some(ScalingConfig::GridAr { .. })) && needs.drafter {
            // A restarted speculative candidate catches its drafter up on the anchor prefix in
            // runs of up to MAX_INPUTS inputs (every run of an AnyDecoder has at most that many).
            needs.inputs = MAX_INPUTS as u32;
            needs.pending = needs.pending.max(needs.inputs);
        }
        let sequences = self.scaling.map_or(1, |s| s.n());
        let reformulate = matches!(
            self.scaling,
            Some(ScalingConfig::GridAr {
                reformulate: true,
                ..
            })
        );
        let variants = if reformulate {
            3
        } else {
            self.base.guidance.variants() as u32
        };
        let criterion = self.method.criterion();
        Ok(Requirements {
            sequences,
            tokens: self.base.tokens,
            inputs_per_run: needs.inputs,
            pending: needs.pending,
            variants,
            logits_rows: sequences * needs.inputs * variants,
            dist_rows: sequences * needs.dist_rows,
            drafter: needs.drafter,
            check: matches!(
                self.scaling,
                Some(ScalingConfig::GridAr { verifier: true, .. })
            ),
            score: self.scaling.is_some(),
            reformulate,
            neighbours: match criterion {
                Some(CriterionConfig::Lantern { k, metric, .. }) => {
                    Some(NeighbourNeeds { k, metric })
                }
                _ => None,
            },
            embedding: matches!(criterion, Some(CriterionConfig::Grouped { .. })),
            codebook: matches!(
                self.method,
                MethodConfig::Vvs(VvsParams {
                    schedule: Schedule::Dynamic { .. },
                    ..
                })
            ),
        })
    }
}

/// The LANTERN neighbour table a configuration needs ([`Requirements::neighbours`]): at least
/// `k` neighbours per token, ranked by `metric` ([`crate::accept::neighbours::build_table_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct NeighbourNeeds {
    /// Neighbours per token.
    pub k: u32,
    /// Their distance metric.
    pub metric: Metric,
}

/// A `rows × dim` row-major `f32` table borrowed for the decoder's lifetime.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Table<'c> {
    /// The values, row-major.
    pub values: &'c [f32],
    /// Row length.
    pub dim: usize,
}

/// The tables criteria and schedules borrow; not part of [`DecoderConfig`] (they are model data,
/// not settings). [`Requirements`] says which are needed; a missing one is
/// [`Error::MissingResource`] at [`AnyDecoder::new`].
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct Resources<'c> {
    /// LANTERN's latent-neighbour table (at least [`Requirements::neighbours`] per token).
    pub neighbours: Option<NeighbourTable<'c>>,
    /// The target's input embedding, `vocab × dim` (grouped criterion).
    pub embedding: Option<Table<'c>>,
    /// The VQ codebook, `vocab × dim` (VVS dynamic schedule).
    pub codebook: Option<Table<'c>>,
}

impl<'c> Resources<'c> {
    /// No tables (enough for vanilla, exact, coupled, Jacobi, VVS with a fixed schedule).
    pub const fn none() -> Self {
        Resources {
            neighbours: None,
            embedding: None,
            codebook: None,
        }
    }

    /// With LANTERN's neighbour table.
    pub fn with_neighbours(mut self, table: NeighbourTable<'c>) -> Self {
        self.neighbours = Some(table);
        self
    }

    /// With the target's input embedding (`values.len() = vocab · dim`).
    pub fn with_embedding(mut self, values: &'c [f32], dim: usize) -> Self {
        self.embedding = Some(Table { values, dim });
        self
    }

    /// With the VQ codebook (`values.len() = vocab · dim`).
    pub fn with_codebook(mut self, values: &'c [f32], dim: usize) -> Self {
        self.codebook = Some(Table { values, dim });
        self
    }
}

/// A single-image decoder of any method: the candidates of [`AnyDecoder`]'s Best-of-N and
/// GridAR, and its single-image variant (feature `alloc`; each decoder is boxed).
#[cfg(feature = "alloc")]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SingleDecoder<'c> {
    /// See [`Vanilla`].
    Vanilla(Box<Vanilla<MAX_TOKENS>>),
    /// See [`Speculative`].
    Speculative(Box<Speculative<'c, MAX_TOKENS, MAX_INPUTS>>),
    /// See [`Vvs`].
    Vvs(Box<Vvs<'c, MAX_TOKENS, MAX_INPUTS>>),
    /// See [`Jacobi`].
    Jacobi(Box<Jacobi<'c, MAX_TOKENS, MAX_INPUTS>>),
    /// See [`AutoSpeculative`].
    AutoSpeculative(Box<AutoSpeculative<'c, MAX_TOKENS, MAX_INPUTS>>),
}

#[cfg(feature = "alloc")]
impl<'c> SingleDecoder<'c> {
    /// The decoder of `method` over `base`, borrowing tables from `res`.
    pub fn new(base: Config, method: &MethodConfig, res: &Resources<'c>) -> Result<Self> {
        Ok(match method {
            MethodConfig::Vanilla => SingleDecoder::Vanilla(Box::new(Vanilla::new(base)?)),
            MethodConfig::Speculative(s) => SingleDecoder::Speculative(Box::new(Speculative::new(
                s.config(base),
                s.criterion.build(res)?,
            )?)),
            MethodConfig::Vvs(v) => {
                let codebook = match (v.schedule, res.codebook) {
                    (_, Some(t)) => t,
                    (Schedule::Dynamic { .. }, None) => {
                        return Err(Error::MissingResource {
                            resource: "codebook",
                            needed_by: "vvs dynamic schedule",
                        })
                    }
                    (_, None) => Table {
                        values: &[],
                        dim: 0,
                    },
                };
                let cfg = VvsConfig {
                    spec: v.speculative.config(base),
                    schedule: v.schedule,
                    warmup: v.warmup,
                    codebook: codebook.values,
                    dim: u32::try_from(codebook.dim).map_err(|_| Error::InvalidParameter {
                        name: "codebook",
                        reason: "dim must fit u32",
                    })?,
                };
                let criterion = v.speculative.criterion.build(res)?;
                SingleDecoder::Vvs(Box::new(Vvs::new(cfg, criterion)?))
            }
            MethodConfig::Jacobi(j) => SingleDecoder::Jacobi(Box::new(Jacobi::new(
                j.config(base),
                j.criterion.build(res)?,
            )?)),
            MethodConfig::AutoSpeculative(a) => {
                let cfg = a.config(base);
                let variants = base.guidance.variants() as u32;
                if AutoDraft::new(cfg.spec.shape, &cfg.profile)?.never_drafts(variants) {
                    // The profile rules drafting out (`auto_draft`, "Never drafting"): the
                    // same tokens from the plain decoder, without its overhead.
                    SingleDecoder::Vanilla(Box::new(Vanilla::new(base)?))
                } else {
                    SingleDecoder::AutoSpeculative(Box::new(AutoSpeculative::new(
                        cfg,
                        a.speculative.criterion.build(res)?,
                    )?))
                }
            }
        })
    }
}

/// Delegates an expression to whichever decoder a [`SingleDecoder`] holds.
#[cfg(feature = "alloc")]
macro_rules! each_single {
    ($self:expr, $d:ident => $e:expr) => {
        match $self {
            SingleDecoder::Vanilla($d) => $e,
            SingleDecoder::Speculative($d) => $e,
            SingleDecoder::Vvs($d) => $e,
            SingleDecoder::Jacobi($d) => $e,
            SingleDecoder::AutoSpeculative($d) => $e,
        }
    };
}

/// Delegates an expression to whichever decoder an [`AnyDecoder`] holds.
#[cfg(feature = "alloc")]
macro_rules! each_any {
    ($self:expr, $d:ident => $e:expr) => {
        match $self {
            AnyDecoder::Single($d) => $e,
            AnyDecoder::BestOfN($d) => $e,
            AnyDecoder::GridAr($d) => $e,
        }
    };
}

/// Implements [`Decoder`] for an enum by delegating every method through `$each`.
#[cfg(feature = "alloc")]
macro_rules! delegate_decoder {
    ($ty:ty, $each:ident) => {
        impl Decoder for $ty {
            fn poll(&self) -> Action<'_> {
                $each!(self, d => d.poll())
            }
            fn handle_logits<B: Backend>(
                &mut self,
                backend: &mut B,
                logits: &B::Logits,
            ) -> Result<(), B::Error> {
                $each!(self, d => d.handle_logits(backend, logits))
            }
            fn handle_verdict(&mut self, possible: bool) -> Result<()> {
                $each!(self, d => d.handle_verdict(possible))
            }
            fn handle_score(&mut self, score: f32) -> Result<()> {
                $each!(self, d => d.handle_score(score))
            }
            fn handle_reformulated(&mut self) -> Result<()> {
                $each!(self, d => d.handle_reformulated())
            }
            fn tokens(&self, seq: u32) -> &[u32] {
                $each!(self, d => d.tokens(seq))
            }
            fn result_seq(&self) -> u32 {
                $each!(self, d => d.result_seq())
            }
            fn sequences(&self) -> core::ops::Range<u32> {
                $each!(self, d => d.sequences())
            }
            fn stats(&self) -> Stats {
                $each!(self, d => d.stats())
            }
            fn dist_rows_needed(&self) -> usize {
                $each!(self, d => d.dist_rows_needed())
            }
            fn action_bound(&self) -> u32 {
                $each!(self, d => d.action_bound())
            }
        }
    };
}

#[cfg(feature = "alloc")]
delegate_decoder!(SingleDecoder<'_>, each_single);
#[cfg(feature = "alloc")]
delegate_decoder!(AnyDecoder<'_>, each_any);

#[cfg(feature = "alloc")]
fn not_restartable() -> Error {
    Error::InvalidParameter {
        name: "inner",
        reason: "this candidate method is not restartable",
    }
}

/// Vanilla delegates; the others refuse until they implement [`Restartable`] (module docs,
/// "Composition").
#[cfg(feature = "alloc")]
impl Restartable for SingleDecoder<'_> {
    fn set_stop(&mut self, stop: u32) -> Result<()> {
        match self {
            SingleDecoder::Vanilla(d) => d.set_stop(stop),
            SingleDecoder::Speculative(d) => d.set_stop(stop),
            SingleDecoder::Vvs(d) => d.set_stop(stop),
            SingleDecoder::AutoSpeculative(d) => d.set_stop(stop),
            _ => Err(not_restartable()),
        }
    }

    fn restart(&mut self, prefix: &[u32], guidance: GuidanceMode) -> Result<()> {
        match self {
            SingleDecoder::Vanilla(d) => d.restart(prefix, guidance),
            SingleDecoder::Speculative(d) => d.restart(prefix, guidance),
            SingleDecoder::Vvs(d) => d.restart(prefix, guidance),
            SingleDecoder::AutoSpeculative(d) => d.restart(prefix, guidance),
            _ => Err(not_restartable()),
        }
    }

    fn reguide(&mut self, guidance: GuidanceMode) -> Result<()> {
        match self {
            SingleDecoder::Vanilla(d) => d.reguide(guidance),
            SingleDecoder::Speculative(d) => d.reguide(guidance),
            SingleDecoder::Vvs(d) => d.reguide(guidance),
            SingleDecoder::AutoSpeculative(d) => d.reguide(guidance),
            _ => Err(not_restartable()),
        }
    }

    fn restart_actions(&self) -> u32 {
        match self {
            SingleDecoder::Vanilla(d) => d.restart_actions(),
            SingleDecoder::Speculative(d) => d.restart_actions(),
            SingleDecoder::Vvs(d) => d.restart_actions(),
            SingleDecoder::AutoSpeculative(d) => d.restart_actions(),
            _ => 0,
        }
    }
}

/// The decoder of any [`DecoderConfig`] (module docs; feature `alloc`).
#[cfg(feature = "alloc")]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyDecoder<'c> {
    /// One image.
    Single(SingleDecoder<'c>),
    /// Best-of-N over single-image candidates.
    BestOfN(Box<BestOfN<SingleDecoder<'c>, MAX_CANDIDATES>>),
    /// GridAR over restartable single-image candidates.
    GridAr(Box<GridAr<SingleDecoder<'c>, MAX_CANDIDATES>>),
}

#[cfg(feature = "alloc")]
impl<'c> AnyDecoder<'c> {
    /// The decoder `cfg` describes, borrowing the tables of `res`. Fails with the typed error of
    /// [`DecoderConfig::validate`], [`Error::MissingResource`] for a table `res` lacks, or the
    /// concrete decoder's own error (for example a table of the wrong vocabulary).
    pub fn new(cfg: &DecoderConfig, res: &Resources<'c>) -> Result<Self> {
        cfg.validate()?;
        let make = |c: Config| SingleDecoder::new(c, &cfg.method, res);
        Ok(match cfg.scaling {
            None => AnyDecoder::Single(make(cfg.base)?),
            Some(ScalingConfig::BestOfN { n }) => {
                AnyDecoder::BestOfN(Box::new(BestOfN::new(cfg.base, n, make)?))
            }
            Some(ScalingConfig::GridAr {
                n,
                verifier,
                reformulate,
                w,
            }) => {
                let g = GridArConfig {
                    base: cfg.base,
                    n,
                    verifier,
                    reformulate,
                    w,
                };
                AnyDecoder::GridAr(Box::new(GridAr::new(g, make)?))
            }
        })
    }
}

/// Optional value: byte 0, or byte 1 then the value.
fn opt<T>(h: &mut Fnv64, v: Option<T>, f: impl FnOnce(&mut Fnv64, T)) {
    match v {
        None => h.u8(0),
        Some(x) => {
            h.u8(1);
            f(h, x);
        }
    }
}

/// Tag byte (0 exact, 1 coupled, 2 LANTERN, 3 grouped), then LANTERN's `k`, `δ`, optional `λ`,
/// metric byte (0 raw, 1 normalised), or grouped's `window`, `prob_tol`, `dist_tol`. The tables are not part of the encoding.
impl StableEncode for CriterionConfig {
    fn encode(&self, h: &mut Fnv64) {
        match *self {
            CriterionConfig::Exact => h.u8(0),
            CriterionConfig::Coupled => h.u8(1),
            CriterionConfig::Lantern {
                k,
                delta,
                lambda,
                metric,
            } => {
                h.u8(2);
                h.u32(k);
                h.f32(delta);
                opt(h, lambda, |h, l| h.f32(l));
                h.u8(match metric {
                    Metric::Raw => 0,
                    Metric::Normalised => 1,
                });
            }
            CriterionConfig::Grouped {
                window,
                prob_tol,
                dist_tol,
            } => {
                h.u8(3);
                h.u32(window);
                h.f32(prob_tol);
                h.f32(dist_tol);
            }
        }
    }
}

/// Shape, criterion, optional draft sampler.
impl StableEncode for SpeculativeParams {
    fn encode(&self, h: &mut Fnv64) {
        self.shape.encode(h);
        self.criterion.encode(h);
        opt(h, self.draft_sampler, |h, s| s.encode(h));
    }
}

/// Tag byte (0 vanilla, 1 speculative, 2 VVS, 3 Jacobi, 4 auto speculative), then: speculative
/// parameters; VVS's speculative parameters, schedule, warm-up; Jacobi's window, initialisation
/// byte (0 random, 1 copy-left), criterion; auto's speculative parameters and cost profile.
impl StableEncode for MethodConfig {
    fn encode(&self, h: &mut Fnv64) {
        match self {
            MethodConfig::Vanilla => h.u8(0),
            MethodConfig::Speculative(s) => {
                h.u8(1);
                s.encode(h);
            }
            MethodConfig::Vvs(v) => {
                h.u8(2);
                v.speculative.encode(h);
                v.schedule.encode(h);
                h.u32(v.warmup);
            }
            MethodConfig::Jacobi(j) => {
                h.u8(3);
                h.u32(j.window);
                h.u8(match j.init {
                    JacobiInit::Random => 0,
                    JacobiInit::CopyLeft => 1,
                });
                j.criterion.encode(h);
            }
            MethodConfig::AutoSpeculative(a) => {
                h.u8(4);
                a.speculative.encode(h);
                a.profile.encode(h);
            }
        }
    }
}

/// Tag byte (1 Best-of-N, 2 GridAR), `n`, then GridAR's verifier and reformulation bytes and `w`.
impl StableEncode for ScalingConfig {
    fn encode(&self, h: &mut Fnv64) {
        match *self {
            ScalingConfig::BestOfN { n } => {
                h.u8(1);
                h.u32(n);
            }
            ScalingConfig::GridAr {
                n,
                verifier,
                reformulate,
                w,
            } => {
                h.u8(2);
                h.u32(n);
                h.bool(verifier);
                h.bool(reformulate);
                h.f32(w);
            }
        }
    }
}

/// Base [`Config`], method, then the scaling (byte 0 for none, else its encoding). The
/// [`Resources`] are not part of it: a trace identifies its tables separately.
impl StableEncode for DecoderConfig {
    fn encode(&self, h: &mut Fnv64) {
        self.base.encode(h);
        self.method.encode(h);
        match &self.scaling {
            None => h.u8(0),
            Some(s) => s.encode(h),
        }
    }
}

/// Serde mirrors of the settings types defined in [`super::speculative`] and [`super::vvs`]
/// (same variants and fields; the derive checks that they match).
#[cfg(feature = "serde")]
mod remote {
    use crate::decode::{DraftShape, Schedule};

    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(remote = "DraftShape", rename_all = "snake_case", deny_unknown_fields)]
    pub(super) enum DraftShapeDef {
        Chain { gamma: u32 },
        Tree { total: u32, depth: u32, top_k: u32 },
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(remote = "Schedule", rename_all = "snake_case", deny_unknown_fields)]
    pub(super) enum ScheduleDef {
        Never,
        Uniform { interval: u32 },
        Dynamic { threshold: f32, alpha: f32 },
    }
}
