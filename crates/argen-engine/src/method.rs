//! Methods by name with flat options → one [`DecoderConfig`].
//!
//! The `argen` command's flags, the C ABI's `method` + options JSON and Python's
//! `generate(method=…, **options)` all name a method ([`Method`]) and a flat set of options
//! ([`MethodOptions`], defaults equal to the command's defaults); [`MethodOptions::decoder_config`]
//! turns them into the one [`DecoderConfig`] every decoder is built from, so the three front ends
//! cannot disagree about what `method = "lantern", delta = 0.3` means.
//!
//! Mapping (for a model of vocabulary `V`, `grid × grid` tokens):
//! * base: `seed`, stream 0, first sequence 0, `grid²` tokens, sampler (`temperature`, `top_k`
//!   with 0 = off, `top_p` with 1 = off), guidance two-way with scale `cfg` (none if `cfg = 1`);
//! * `vanilla`; `sd` — speculative with `criterion` over a chain (`gamma`) or an EAGLE-2 tree
//!   (`tree_total`, `tree_depth`, `tree_top_k`); `lantern` — the same draft with LANTERN's
//!   criterion (`k = min(lantern_k, V − 1)`, `delta`, `lambda`, `lantern_metric`); `gsd` — the
//!   grouped criterion with the paper's parameters; `vvs` — `sd` plus a skip schedule (uniform
//!   every `vvs_interval` steps, or dynamic with `vvs_threshold`, α = 0.9, 5 warm-up steps);
//!   `sjd` — speculative Jacobi decoding (`window`, `jacobi_init`, `criterion`);
//! * `draft` `auto` / `auto_tree` (for `sd`, `lantern`, `gsd`, and as their candidates):
//!   cost-aware drafting ([`argen_core::decode::auto_draft`]) up to the chain (`gamma`) or the
//!   tree (`tree_total`, `tree_depth`, `tree_top_k`), choosing each step's depth from
//!   `cost_profile` (required; a [`CostProfile`] as `argen calibrate` writes it, with a drafter
//!   curve) and the run's acceptance; not available for `vvs`;
//! * `bon` / `gridar` — Best-of-`n` / GridAR (verifier on, reformulation when a ShapesWorld
//!   judge is present and `reformulate`, `w` = the release setting) over candidates of method
//!   `inner` (default vanilla).

use argen_core::accept::Metric;
use argen_core::cost::CostProfile;
use argen_core::decode::{
    AutoParams, Config, CriterionConfig, DecoderConfig, DraftShape, GuidanceMode, JacobiInit,
    JacobiParams, MethodConfig, Requirements, ScalingConfig, Schedule, SpeculativeParams,
    VvsParams, RELEASE_W,
};
use argen_core::SamplerParams;
use argen_model::GptConfig;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Decoding methods, by the names the command line, C and Python use (with the `clap`
/// feature, a `clap::ValueEnum`: the `argen` command's `--method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// One target pass per token.
    Vanilla,
    /// Speculative decoding (lossless; `--criterion`, `--draft`).
    Sd,
    /// LANTERN relaxed speculative decoding (`--delta`, `--lantern-k`, `--lambda`).
    Lantern,
    /// Grouped speculative decoding (training-free relaxation).
    Gsd,
    /// VVS: speculative decoding that skips some verifications (`--vvs-schedule`).
    Vvs,
    /// Speculative Jacobi decoding, no drafter (`--window`, `--jacobi-init`).
    Sjd,
    /// Best-of-N (`--n`), scored by the model's judge.
    Bon,
    /// GridAR test-time scaling (`--n`).
    Gridar,
}

impl Method {
    /// Every method, in the order above.
    pub const ALL: [Method; 8] = [
        Method::Vanilla,
        Method::Sd,
        Method::Lantern,
        Method::Gsd,
        Method::Vvs,
        Method::Sjd,
        Method::Bon,
        Method::Gridar,
    ];

    /// The method's name (`"vanilla"`, `"sd"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Method::Vanilla => "vanilla",
            Method::Sd => "sd",
            Method::Lantern => "lantern",
            Method::Gsd => "gsd",
            Method::Vvs => "vvs",
            Method::Sjd => "sjd",
            Method::Bon => "bon",
            Method::Gridar => "gridar",
        }
    }

    /// The method called `name`, or an error listing the names.
    pub fn parse(name: &str) -> Result<Method, Error> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown method {name:?} (methods: vanilla, sd, lantern, gsd, vvs, sjd, bon, gridar)"
                ))
            })
    }
}

/// Acceptance criteria of `sd`, `vvs` and `sjd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Lossless speculative sampling.
    Exact,
    /// Token-for-token identical to vanilla decoding with the same seed.
    Coupled,
}

/// Draft shapes of the speculative methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Draft {
    /// A chain of `gamma` sampled drafts.
    Chain,
    /// An EAGLE-2 dynamic tree.
    Tree,
    /// Cost-aware chains: each step drafts 0 to `gamma` tokens, as the cost profile and the
    /// measured acceptance say ([`argen_core::decode::auto_draft`]).
    Auto,
    /// Cost-aware EAGLE-2 trees: each step drafts to depth 0 to `tree_depth`.
    AutoTree,
}

impl Draft {
    /// Whether the depth is chosen per step from a cost profile.
    pub fn is_auto(self) -> bool {
        matches!(self, Draft::Auto | Draft::AutoTree)
    }
}

/// VVS skip schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VvsSchedule {
    /// Skip every `vvs_interval`-th step.
    Uniform,
    /// Skip when the draft tree's candidate paths look alike.
    Dynamic,
}

/// Jacobi window initialisations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowInit {
    /// Uniformly random tokens.
    Random,
    /// Copy of the left neighbour (random in the first column).
    CopyLeft,
}

/// The options of every method, flat (unused ones are ignored); [`Default`] is the `argen`
/// command's defaults. As JSON (C, Python): an object with any of these fields, unknown fields
/// refused.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MethodOptions {
    /// Classifier-free guidance scale (1 = no guidance).
    pub cfg: f32,
    /// Sampling temperature (0 = greedy).
    pub temperature: f32,
    /// Top-k truncation (0 = off).
    pub top_k: u32,
    /// Top-p truncation (1 = off).
    pub top_p: f32,
    /// Acceptance criterion of `sd`, `vvs` and `sjd`.
    pub criterion: Criterion,
    /// Draft shape of the speculative methods.
    pub draft: Draft,
    /// Chain draft length.
    pub gamma: u32,
    /// Nodes of the EAGLE-2 tree.
    pub tree_total: u32,
    /// Depth of the EAGLE-2 tree.
    pub tree_depth: u32,
    /// Children per expanded node of the EAGLE-2 tree.
    pub tree_top_k: u32,
    /// LANTERN total-variation budget δ.
    pub delta: f32,
    /// LANTERN latent neighbours per token (capped at vocabulary − 1).
    pub lantern_k: usize,
    /// LANTERN neighbour metric.
    pub lantern_metric: Metric,
    /// LANTERN++ factor λ (`None`: off).
    pub lambda: Option<f32>,
    /// VVS skip schedule.
    pub vvs_schedule: VvsSchedule,
    /// VVS uniform schedule: skip when `step % interval == 1`.
    pub vvs_interval: u32,
    /// VVS dynamic schedule: similarity threshold.
    pub vvs_threshold: f32,
    /// Jacobi window length.
    pub window: u32,
    /// Jacobi initialisation of new window positions.
    pub jacobi_init: WindowInit,
    /// Candidates of Best-of-N and GridAR.
    pub n: u32,
    /// The method of each candidate of `bon` and `gridar` (`None`: vanilla).
    pub inner: Option<Method>,
    /// GridAR: reformulate the prompt at the pruning points (needs the ShapesWorld judge).
    pub reformulate: bool,
    /// The device's cost profile, needed by `draft` `auto` / `auto_tree` (the `argen` command
    /// reads it from the model directory's `cost-profile.json`).
    pub cost_profile: Option<CostProfile>,
}

impl Default for MethodOptions {
    fn default() -> Self {
        MethodOptions {
            cfg: 4.0,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            criterion: Criterion::Exact,
            draft: Draft::Tree,
            gamma: 4,
            tree_total: 59,
            tree_depth: 4,
            tree_top_k: 10,
            delta: 0.2,
            lantern_k: 1000,
            lantern_metric: Metric::Normalised,
            lambda: None,
            vvs_schedule: VvsSchedule::Uniform,
            vvs_interval: 2,
            vvs_threshold: 0.65,
            window: 16,
            jacobi_init: WindowInit::Random,
            n: 4,
            inner: None,
            reformulate: true,
            cost_profile: None,
        }
    }
}

impl MethodOptions {
    /// Options from a JSON object (`{}` or `null`: the defaults); unknown fields are refused.
    pub fn from_json(text: &str) -> Result<MethodOptions, Error> {
        if text.trim().is_empty() || text.trim() == "null" {
            return Ok(MethodOptions::default());
        }
        serde_json::from_str(text).map_err(|e| Error::invalid(format!("method options: {e}")))
    }

    /// The sampler of the base configuration.
    pub fn sampler(&self) -> SamplerParams {
        SamplerParams {
            temperature: self.temperature,
            top_k: (self.top_k > 0).then_some(self.top_k),
            top_p: (self.top_p != 1.0).then_some(self.top_p),
            min_p: None,
        }
    }

    fn criterion(&self) -> CriterionConfig {
        match self.criterion {
            Criterion::Exact => CriterionConfig::Exact,
            Criterion::Coupled => CriterionConfig::Coupled,
        }
    }

    fn shape(&self) -> DraftShape {
        match self.draft {
            Draft::Chain | Draft::Auto => DraftShape::Chain { gamma: self.gamma },
            Draft::Tree | Draft::AutoTree => DraftShape::Tree {
                total: self.tree_total,
                depth: self.tree_depth,
                top_k: self.tree_top_k,
            },
        }
    }

    /// The single-image method `m` with these options, for a vocabulary of `vocab` tokens.
    /// `None` for the test-time scaling methods. With an `auto` draft but no `cost_profile`, the
    /// drafting methods are built with the fixed shape ([`MethodOptions::decoder_config`] refuses
    /// that combination first).
    pub fn method_config(&self, m: Method, vocab: usize) -> Option<MethodConfig> {
        let speculative = |criterion| SpeculativeParams {
            shape: self.shape(),
            criterion,
            draft_sampler: None,
        };
        let drafting = |criterion| match (self.draft.is_auto(), self.cost_profile) {
            (true, Some(profile)) => MethodConfig::AutoSpeculative(AutoParams {
                speculative: speculative(criterion),
                profile,
            }),
            _ => MethodConfig::Speculative(speculative(criterion)),
        };
        Some(match m {
            Method::Vanilla => MethodConfig::Vanilla,
            Method::Sd => drafting(self.criterion()),
            Method::Lantern => drafting(CriterionConfig::Lantern {
                k: self.lantern_k.min(vocab.saturating_sub(1)).max(1) as u32,
                delta: self.delta,
                lambda: self.lambda,
                metric: self.lantern_metric,
            }),
            Method::Gsd => drafting(CriterionConfig::GROUPED_PAPER),
            Method::Vvs => MethodConfig::Vvs(VvsParams {
                speculative: speculative(self.criterion()),
                schedule: match self.vvs_schedule {
                    VvsSchedule::Uniform => Schedule::Uniform {
                        interval: self.vvs_interval,
                    },
                    VvsSchedule::Dynamic => Schedule::Dynamic {
                        threshold: self.vvs_threshold,
                        alpha: 0.9,
                    },
                },
                warmup: 5,
            }),
            Method::Sjd => MethodConfig::Jacobi(JacobiParams {
                window: self.window,
                init: match self.jacobi_init {
                    WindowInit::Random => JacobiInit::Random,
                    WindowInit::CopyLeft => JacobiInit::CopyLeft,
                },
                criterion: self.criterion(),
            }),
            Method::Bon | Method::Gridar => return None,
        })
    }

    /// Whether candidates of method `m` with these options can run under GridAR.
    pub fn restartable(&self, m: Method) -> bool {
        self.method_config(m, 2).is_some_and(|c| c.restartable())
    }

    /// The decoder configuration of method `method` with these options and `seed` on a model of
    /// config `cfg`, validated. `judged`: a ShapesWorld judge is present (GridAR reformulates
    /// prompts only with it).
    pub fn decoder_config(
        &self,
        method: Method,
        seed: u64,
        cfg: &GptConfig,
        judged: bool,
    ) -> Result<DecoderConfig, Error> {
        if !self.cfg.is_finite() {
            return Err(Error::invalid("cfg must be a finite number"));
        }
        let base = Config {
            seed,
            stream: 0,
            seq: 0,
            tokens: cfg.block_size as u32,
            width: cfg.grid() as u32,
            sampler: self.sampler(),
            guidance: if self.cfg == 1.0 {
                GuidanceMode::None
            } else {
                GuidanceMode::TwoWay { scale: self.cfg }
            },
        };
        let scaling = match method {
            Method::Bon => Some(ScalingConfig::BestOfN { n: self.n }),
            Method::Gridar => Some(ScalingConfig::GridAr {
                n: self.n,
                verifier: true,
                reformulate: judged && self.reformulate,
                w: RELEASE_W,
            }),
            _ => None,
        };
        let inner = match (scaling, self.inner) {
            (None, Some(i)) => {
                return Err(Error::invalid(format!(
                    "--inner {} applies to --method bon and gridar only (hint: --method bon --inner {})",
                    i.name(),
                    i.name()
                )))
            }
            (None, None) => method,
            (Some(_), i) => i.unwrap_or(Method::Vanilla),
        };
        if self.draft.is_auto() && matches!(inner, Method::Sd | Method::Lantern | Method::Gsd) {
            if self.cost_profile.is_none() {
                return Err(Error::invalid(
                    "--draft auto needs the device's cost profile (run `argen calibrate --model DIR`, \
                     or pass cost_profile)",
                ));
            }
        } else if self.draft.is_auto() && inner == Method::Vvs {
            return Err(Error::invalid(
                "--draft auto is not available for --method vvs (its skip schedule is its own \
                 policy; hint: --draft chain or tree)",
            ));
        }
        let single = self.method_config(inner, cfg.vocab_size).ok_or_else(|| {
            Error::invalid(format!(
                "--inner {}: the candidates of bon and gridar are single-image methods (hint: \
                 --inner vanilla, sd, lantern, gsd, vvs or sjd)",
                inner.name()
            ))
        })?;
        if matches!(scaling, Some(ScalingConfig::GridAr { .. })) && !single.restartable() {
            return Err(Error::invalid(format!(
                "--method gridar --inner {}: GridAR restarts its candidates from anchors and only \
                 vanilla candidates are restartable today (hint: --method bon --inner {}, or \
                 --inner vanilla)",
                inner.name(),
                inner.name()
            )));
        }
        let dc = DecoderConfig {
            base,
            method: single,
            scaling,
        };
        dc.validate()
            .map_err(|e| Error::invalid(format!("invalid decoder configuration: {e}")))?;
        Ok(dc)
    }
}

/// The requirements of `dc`, with a typed error for an invalid configuration.
pub fn requirements(dc: &DecoderConfig) -> Result<Requirements, Error> {
    dc.requirements()
        .map_err(|e| Error::invalid(format!("invalid decoder configuration: {e}")))
}

/// A [`DecoderConfig`] from its JSON (`argen_core::decode::any`, "JSON shape"), validated.
pub fn parse_config(json: &str) -> Result<DecoderConfig, Error> {
    let dc: DecoderConfig = serde_json::from_str(json)
        .map_err(|e| Error::invalid(format!("decoder configuration JSON: {e}")))?;
    dc.validate()
        .map_err(|e| Error::invalid(format!("invalid decoder configuration: {e}")))?;
    Ok(dc)
}
