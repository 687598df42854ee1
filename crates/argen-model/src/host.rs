//! The host side of argen's decoding protocol for LlamaGen-family models: [`ModelHost`] runs the
//! actions of any `argen_core` decoder with a [`Gpt`], an optional EAGLE [`Drafter`] and a
//! [`Judge`] (verifier / scorer / reformulator), on any [`Compute`] backend.
//!
//! One generic loop serves every decoding method: the decoders decide, this host executes
//! (`argen_core::decode::protocol` is the contract). Mapping:
//!
//! * sequence `s`, guidance variant `v` (cond, uncond, reformulated) ↔ model slot `s·3 + v`, in the
//!   target and in the drafter;
//! * input at raster index `i` ↔ [`Pos::Grid`] `(i / grid, i % grid)`;
//! * `keep` lists ↔ [`Gpt::commit`] (an empty list is a rollback); a drafter run with
//!   `new_step` ↔ rollback of the drafter slots; its first `commit` inputs are run as a chain and
//!   committed before the remaining ones are run;
//! * EAGLE features: the target's hidden state of the last prefill row (`Condition`), of each
//!   committed input by raster index (`Target`), of the last target run (`LastTarget`), and the
//!   drafter's own hidden states of the current drafting step (`Draft`), kept per variant. The
//!   bookkeeping is the core's [`FeatureStore`]: it names the row of a host buffer
//!   (`rows × dim` floats) that each hidden state goes to and each feature comes from; a `keep`
//!   moves row indices, never data.
//!
//! The protocol lays logits rows out input-major (variants innermost); the models produce them
//! variant-major, so rows are interleaved once per run (a copy, negligible next to the forward).
//!
//! # Where the logits live
//!
//! The host never reads the logits itself: each forward leaves them in the model's device
//! buffer (`Gpt::forward_device`, `Drafter::forward_device`) and a [`LogitSink`] assembles the
//! answer in input-major order. [`HostLogits`] (the default, [`ModelHost::new`]) downloads the
//! rows into host memory for a host backend such as `argen_core::SliceBackend`; argen-cuda's
//! `DeviceLogitSink` ([`ModelHost::with_sink`]) gathers them on the device, where
//! `argen_cuda::GpuBackend` samples and verifies them — no logits row crosses the bus.
//!
//! What the host still reads back: the EAGLE features (hidden states of every target and
//! drafter row, `rows × dim` floats per forward) **only when a drafter is loaded** (they are
//! inputs of later drafter runs, kept in one host buffer whose rows the core's [`FeatureStore`]
//! assigns; keeping them on the device would take a drafter that gathers its feature input
//! there, by the same row indices), and the teacher-forced passes
//! of the built-in implicit-classifier judge (Check / Score actions, not the per-token path).

use std::fmt;

use argen_core::backend::{Backend, ROOT};
use argen_core::decode::{Action, Answer, FeatureStore, Group, GuidanceMode, Host, Model};
use argen_core::detmath::{exp_f64, ln_f64};

use crate::compute::{Compute, Pos};
use crate::drafter::Drafter;
use crate::error::ModelError;
use crate::gpt::{CaptionPrefill, ClassPrefill, Gpt};
use crate::sink::{HostLogits, LogitSink};
use crate::stack::Step;
use crate::ModelType;

/// Guidance variants a sequence can have (cond, uncond, reformulated).
pub const VARIANTS: usize = argen_core::decode::features::VARIANTS;

/// A conditioning input of one guidance variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// A class id (c2i), or `None` for the null class.
    Class(Option<u32>),
    /// Caption features `[cls_token_num, caption_dim]` with `pad` leading padding positions (t2i),
    /// or `features: None` for the null caption.
    Caption {
        /// The features.
        features: Option<Vec<f32>>,
        /// Left padding.
        pad: usize,
    },
}

/// Judges partial and finished images and reformulates prompts (GridAR's verifier, the final
/// scorer). Errors are messages for the user.
pub trait Judge {
    /// Whether the top `rows` token rows can still become an image matching sequence `seq`'s prompt.
    fn check(&mut self, seq: u32, rows: u32, tokens: &[u32]) -> Result<bool, String>;
    /// Score of a finished image (higher is better).
    fn score(&mut self, seq: u32, tokens: &[u32]) -> Result<f32, String>;
    /// The reformulated (layout-specified) condition for sequence `seq`.
    fn reformulate(&mut self, seq: u32, rows: u32, tokens: &[u32]) -> Result<Condition, String>;
}

/// A judge for methods that need none; any call is an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoJudge;

impl Judge for NoJudge {
    fn check(&mut self, _: u32, _: u32, _: &[u32]) -> Result<bool, String> {
        Err("this method needs a verifier, and none is configured".into())
    }
    fn score(&mut self, _: u32, _: &[u32]) -> Result<f32, String> {
        Err("this method needs a scorer, and none is configured".into())
    }
    fn reformulate(&mut self, _: u32, _: u32, _: &[u32]) -> Result<Condition, String> {
        Err("this method needs a prompt reformulator, and none is configured".into())
    }
}

/// Errors of the host loop.
#[derive(Debug)]
pub enum HostError {
    /// The model runtime refused an operation.
    Model(ModelError),
    /// The core (decoder or backend) refused an answer or an operation.
    Core(argen_core::Error),
    /// The judge failed.
    Judge(String),
    /// The action cannot be carried out with this host's models (e.g. drafting without a drafter).
    Unsupported(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Model(e) => write!(f, "{e}"),
            HostError::Core(e) => write!(f, "{e}"),
            HostError::Judge(e) => write!(f, "judge: {e}"),
            HostError::Unsupported(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HostError {}

impl From<ModelError> for HostError {
    fn from(e: ModelError) -> Self {
        HostError::Model(e)
    }
}

impl From<argen_core::Error> for HostError {
    fn from(e: argen_core::Error) -> Self {
        HostError::Core(e)
    }
}

/// Per-sequence state of the host (the EAGLE features live in the host's [`FeatureStore`]).
#[derive(Clone, Debug, Default)]
struct SeqState {
    /// Conditions of the variants (cond, uncond, reformulated).
    conds: [Option<Condition>; VARIANTS],
    /// Entries of the current step committed to the drafter prefix.
    step_committed: u32,
}

/// Model capacities for a host of `seqs` sequences whose runs leave up to `pending` entries
/// uncommitted (target: inputs per run; drafter: nodes drafted per step). Includes the spare
/// sequence of the built-in judge. A batched forward may cover every sequence at once, so a
/// forward holds up to `3 · pending · seqs` rows.
pub fn host_capacity(cfg: &crate::GptConfig, seqs: usize, pending: usize) -> crate::Capacity {
    let pending = pending.max(cfg.block_size).max(cfg.cls_token_num).max(1);
    crate::Capacity {
        slots: VARIANTS * (seqs.max(1) + 1),
        seq: cfg.cls_token_num + cfg.block_size + pending,
        rows: VARIANTS * pending * seqs.max(1),
        pending,
    }
}

/// One group of a batched forward: its sequence, inputs `start .. start + n` of the host's
/// input buffers, guidance variants, and first answer row.
#[derive(Clone, Copy, Debug)]
struct TargetGroup {
    seq: u32,
    start: usize,
    n: usize,
    variants: usize,
    answer: usize,
}

/// Runs protocol actions with a target GPT, an optional drafter and a judge.
///
/// Without an external [`Judge`] the host judges with the model itself — the *implicit
/// classifier* of classifier-free guidance (Ho & Salimans 2022): a finished image scores the mean
/// pointwise mutual information `log p(x_i | c) − log p(x_i | ∅)` of its tokens under the
/// conditional and unconditional model (one teacher-forced pass each), and a partial canvas is
/// "possible" while that mean over its tokens is non-negative. It needs one spare sequence of
/// slots. There is no built-in reformulator.
///
/// `S` decides where the answers' logits live (module docs): [`HostLogits`] by default.
pub struct ModelHost<'m, C: Compute, S: LogitSink<C> = HostLogits> {
    c: C,
    gpt: &'m mut Gpt<C>,
    drafter: Option<&'m mut Drafter<C>>,
    judge: Option<&'m mut dyn Judge>,
    seqs: Vec<SeqState>,
    grid: u32,
    dim: usize,
    vocab: usize,
    /// Assembles the answers' logits, input-major.
    sink: S,
    /// Model row of each answer row of the current forward (the interleave).
    order: Vec<u32>,
    hidden: Vec<f32>,
    features: Vec<f32>,
    tokens: Vec<u32>,
    /// Raster index of each input of the current target forward (beside `tokens`).
    indices: Vec<u32>,
    positions: Vec<Pos>,
    parents: Vec<i32>,
    /// Keep lists handed to the models.
    keep: Vec<usize>,
    /// Groups of the current forward.
    groups: Vec<TargetGroup>,
    /// Forward actions answered, by model (target, drafter).
    calls: [u32; 2],
    /// EAGLE feature bookkeeping: which row of `feature_rows` holds each feature.
    store: FeatureStore,
    /// Feature rows, `store.rows() × dim` (only with a drafter).
    feature_rows: Vec<f32>,
    /// Image tokens per sequence.
    image_tokens: usize,
}

/// The model rows of a group of `n` inputs × `variants` (model rows variant-major, starting at
/// model row `base`) in protocol order (input-major), into `order`.
fn interleave(order: &mut Vec<u32>, base: usize, n: usize, variants: usize) {
    order.clear();
    for i in 0..n {
        for var in 0..variants {
            order.push((base + var * n + i) as u32);
        }
    }
}

/// The model steps of `groups` over the host's input buffers: one per group and guidance
/// variant, in group order (so a group's model rows are contiguous, variant-major).
fn group_steps<'s>(
    groups: &[TargetGroup],
    tokens: &'s [u32],
    positions: &'s [Pos],
    parents: &'s [i32],
) -> Vec<Step<'s>> {
    let mut steps = Vec::with_capacity(groups.len() * VARIANTS);
    for g in groups {
        let range = g.start..g.start + g.n;
        for var in 0..g.variants {
            steps.push(Step {
                slot: slot(g.seq, var),
                tokens: &tokens[range.clone()],
                positions: &positions[range.clone()],
                parents: Some(&parents[range.clone()]),
            });
        }
    }
    steps
}

fn slot(seq: u32, variant: usize) -> usize {
    seq as usize * VARIANTS + variant
}

fn pos(index: u32, grid: u32) -> Pos {
    Pos::Grid {
        row: index / grid,
        col: index % grid,
    }
}

impl<'m, C: Compute> ModelHost<'m, C> {
    /// A host for `seqs` sequences; `conds[s]` are sequence `s`'s conditional and unconditional
    /// inputs (the reformulated one comes from the judge). The models' capacities must hold
    /// `3 · seqs` slots. Answers are host `[f32]` rows ([`HostLogits`]).
    pub fn new(
        gpt: &'m mut Gpt<C>,
        drafter: Option<&'m mut Drafter<C>>,
        judge: Option<&'m mut dyn Judge>,
        conds: &[(Condition, Condition)],
    ) -> Result<Self, HostError> {
        Self::with_sink(gpt, drafter, judge, conds, HostLogits::new())
    }
}

impl<'m, C: Compute, S: LogitSink<C>> ModelHost<'m, C, S> {
    /// [`ModelHost::new`] with answers assembled by `sink` (e.g. argen-cuda's
    /// `DeviceLogitSink`, which keeps them on the device for `GpuBackend`).
    pub fn with_sink(
        gpt: &'m mut Gpt<C>,
        drafter: Option<&'m mut Drafter<C>>,
        judge: Option<&'m mut dyn Judge>,
        conds: &[(Condition, Condition)],
        sink: S,
    ) -> Result<Self, HostError> {
        let cfg = gpt.config().clone();
        let needed = (conds.len() + usize::from(judge.is_none())) * VARIANTS;
        if gpt.capacity().slots < needed {
            return Err(HostError::Unsupported(format!(
                "the model was loaded with {} slots; {} sequences need {needed}",
                gpt.capacity().slots,
                conds.len()
            )));
        }
        for (c, u) in conds {
            for cond in [c, u] {
                let ok = matches!(
                    (cond, cfg.model_type),
                    (Condition::Class(_), ModelType::C2i)
                        | (Condition::Caption { .. }, ModelType::T2i)
                );
                if !ok {
                    return Err(HostError::Unsupported(format!(
                        "a {:?} condition does not fit a {:?} model",
                        cond, cfg.model_type
                    )));
                }
            }
        }
        let grid = cfg.grid() as u32;
        let tokens = cfg.block_size;
        let seqs = conds
            .iter()
            .map(|(c, u)| SeqState {
                conds: [Some(c.clone()), Some(u.clone()), None],
                ..Default::default()
            })
            .collect();
        Ok(ModelHost {
            c: gpt.compute().clone(),
            gpt,
            drafter,
            judge,
            seqs,
            grid,
            dim: cfg.dim,
            vocab: cfg.vocab_size,
            sink,
            order: Vec::new(),
            hidden: Vec::new(),
            features: Vec::new(),
            tokens: Vec::new(),
            indices: Vec::new(),
            positions: Vec::new(),
            parents: Vec::new(),
            keep: Vec::new(),
            groups: Vec::new(),
            calls: [0; 2],
            store: FeatureStore::new(conds.len(), tokens as u32),
            feature_rows: Vec::new(),
            image_tokens: tokens,
        })
    }

    /// Forward actions answered so far: `(target, drafter)`. A batched action — every candidate
    /// of Best-of-N or GridAR, or every request of a `Mux`, at one token step — counts once: it
    /// is one model forward over all its target runs (its prefills, rare, run beside it).
    pub fn forward_calls(&self) -> (u32, u32) {
        (self.calls[0], self.calls[1])
    }

    /// Mean `log p(x_i | cond) − log p(x_i | uncond)` over `tokens` (the built-in judge), computed
    /// on the spare sequence's slots with one teacher-forced pass per variant.
    fn implicit_pmi(&mut self, seq: u32, tokens: &[u32]) -> Result<f64, HostError> {
        let s = self.seq_index(seq)?;
        let n = tokens.len();
        if n == 0 {
            return Ok(0.0);
        }
        let spare = self.seqs.len() as u32;
        let v = self.vocab;
        let mut logp = [0.0f64; 2];
        let mut rows = vec![0.0f32; n * v];
        for (var, lp) in logp.iter_mut().enumerate() {
            let sl = slot(spare, var);
            let cond = self.condition(s, var)?.clone();
            let (first, rest) = rows.split_at_mut(v);
            let mut hid = vec![0.0f32; self.dim];
            match &cond {
                Condition::Class(class) => self.gpt.prefill_class(
                    &[ClassPrefill {
                        slot: sl,
                        class: *class,
                    }],
                    first,
                    Some(&mut hid),
                )?,
                Condition::Caption { features, pad } => self.gpt.prefill_caption(
                    &[CaptionPrefill {
                        slot: sl,
                        features: features.as_deref(),
                        pad: *pad,
                    }],
                    first,
                    Some(&mut hid),
                )?,
            }
            if n > 1 {
                self.positions.clear();
                self.positions
                    .extend((0..n as u32 - 1).map(|i| pos(i, self.grid)));
                let step = Step {
                    slot: sl,
                    tokens: &tokens[..n - 1],
                    positions: &self.positions,
                    parents: None,
                };
                self.gpt.forward(&[step], rest, None)?;
                self.gpt.rollback(sl)?;
            }
            for (row, &t) in rows.chunks_exact(v).zip(tokens) {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
                // Deterministic exp / ln: the judge's score picks the image, so it must not
                // depend on the platform's math library.
                let z: f64 = row.iter().map(|&x| exp_f64(x as f64 - max)).sum();
                *lp += row[t as usize] as f64 - max - ln_f64(z);
            }
        }
        Ok((logp[0] - logp[1]) / n as f64)
    }

    fn seq_index(&self, seq: u32) -> Result<usize, HostError> {
        if (seq as usize) < self.seqs.len() {
            Ok(seq as usize)
        } else {
            Err(HostError::Unsupported(format!(
                "sequence {seq} does not exist (the host holds {})",
                self.seqs.len()
            )))
        }
    }

    fn condition(&self, s: usize, v: usize) -> Result<&Condition, HostError> {
        self.seqs[s].conds[v].as_ref().ok_or_else(|| {
            HostError::Unsupported(format!(
                "sequence {s} has no reformulated prompt yet (three-way CFG needs one)"
            ))
        })
    }

    /// Runs a prefill group whose answer rows start at `at`.
    fn prefill(
        &mut self,
        seq: u32,
        tokens: &[u32],
        g: GuidanceMode,
        at: usize,
    ) -> Result<(), HostError> {
        let s = self.seq_index(seq)?;
        let (d, variants) = (self.dim, g.variants());
        let features = self.drafter.is_some();
        if tokens.len() >= self.image_tokens {
            return Err(HostError::Unsupported(
                "prefill longer than the image".into(),
            ));
        }
        self.store.prefill(seq, variants, tokens.len() as u32)?;
        if features {
            self.feature_rows.resize(self.store.rows() * d, 0.0);
        }
        self.hidden.resize(variants * d, 0.0);
        for var in 0..variants {
            let sl = slot(seq, var);
            let cond = self.condition(s, var)?.clone();
            let hid_row = features.then(|| &mut self.hidden[var * d..(var + 1) * d]);
            let out = match &cond {
                Condition::Class(class) => self.gpt.prefill_class_device(
                    &[ClassPrefill {
                        slot: sl,
                        class: *class,
                    }],
                    hid_row,
                )?,
                Condition::Caption { features, pad } => self.gpt.prefill_caption_device(
                    &[CaptionPrefill {
                        slot: sl,
                        features: features.as_deref(),
                        pad: *pad,
                    }],
                    hid_row,
                )?,
            };
            if tokens.is_empty() {
                self.sink.put(&self.c, out, &[0], at + var)?;
            }
            if let Some(dr) = self.drafter.as_deref_mut() {
                dr.reset(sl)?;
            }
        }
        if features {
            for var in 0..variants {
                let r = self.store.condition_row(seq, var)? as usize * d;
                self.feature_rows[r..r + d].copy_from_slice(&self.hidden[var * d..(var + 1) * d]);
            }
        }
        self.seqs[s].step_committed = 0;
        if !tokens.is_empty() {
            // Teacher-force the anchor tokens as a chain and commit them; the last row predicts
            // the next index.
            let n = tokens.len();
            self.positions.clear();
            self.positions
                .extend((0..n as u32).map(|i| pos(i, self.grid)));
            let mut hid = vec![0.0; n * d];
            let keep: Vec<usize> = (0..n).collect();
            for var in 0..variants {
                let sl = slot(seq, var);
                let step = Step {
                    slot: sl,
                    tokens,
                    positions: &self.positions,
                    parents: None,
                };
                let hid_rows = features.then_some(&mut hid[..]);
                let out = self.gpt.forward_device(&[step], hid_rows)?;
                self.sink.put(&self.c, out, &[n as u32 - 1], at + var)?;
                self.gpt.commit(sl, &keep)?;
                if features {
                    for (i, h) in hid.chunks_exact(d).enumerate() {
                        let r = self.store.committed_row(seq, i as u32, var)? as usize * d;
                        self.feature_rows[r..r + d].copy_from_slice(h);
                    }
                }
            }
        }
        Ok(())
    }

    /// Commits the kept entries of sequence `seq`'s last target run (with their features) and
    /// drops the others: the `keep` of a [`argen_core::decode::TargetRun`].
    fn apply_keep(&mut self, seq: u32, keep: &[u32]) -> Result<(), HostError> {
        self.seq_index(seq)?;
        // Validates the list (indices within the last run, none twice) before anything moves.
        self.store.keep(seq, keep)?;
        self.keep.clear();
        self.keep.extend(keep.iter().map(|&k| k as usize));
        for var in 0..VARIANTS {
            let sl = slot(seq, var);
            if self
                .gpt
                .slot_len(sl)
                .is_some_and(|(_, pending)| pending > 0)
            {
                if self.keep.is_empty() {
                    self.gpt.rollback(sl)?;
                } else {
                    self.gpt.commit(sl, &self.keep)?;
                }
            }
        }
        Ok(())
    }

    /// Runs a target forward: every target group of `action` in **one** model forward, then its
    /// prefill groups. The answer holds `rows` rows, group after group.
    fn target_forward(&mut self, action: &Action<'_>, rows: usize) -> Result<(), HostError> {
        let d = self.dim;
        let features = self.drafter.is_some();
        self.sink.begin(&self.c, rows, self.vocab)?;
        self.tokens.clear();
        self.indices.clear();
        self.positions.clear();
        self.parents.clear();
        self.groups.clear();
        let mut at = 0;
        for group in action.groups() {
            if let Group::Target(r) = group {
                let s = self.seq_index(r.seq)?;
                self.apply_keep(r.seq, r.keep)?;
                let variants = r.guidance.variants();
                for var in 0..variants {
                    self.condition(s, var)?;
                }
                let start = self.tokens.len();
                for inp in r.inputs {
                    self.tokens.push(inp.token);
                    self.indices.push(inp.index);
                    self.positions.push(pos(inp.index, self.grid));
                    self.parents.push(if inp.parent == ROOT {
                        -1
                    } else {
                        inp.parent as i32
                    });
                }
                self.groups.push(TargetGroup {
                    seq: r.seq,
                    start,
                    n: r.inputs.len(),
                    variants,
                    answer: at,
                });
            }
            at += group.logits_rows();
        }
        if !self.groups.is_empty() {
            let model_rows: usize = self.groups.iter().map(|g| g.n * g.variants).sum();
            self.hidden.resize(model_rows * d, 0.0);
            let steps = group_steps(&self.groups, &self.tokens, &self.positions, &self.parents);
            let out = self
                .gpt
                .forward_device(&steps, features.then_some(&mut self.hidden[..]))?;
            let mut base = 0;
            for gi in 0..self.groups.len() {
                let g = self.groups[gi];
                interleave(&mut self.order, base, g.n, g.variants);
                self.sink.put(&self.c, out, &self.order, g.answer)?;
                let indices = &self.indices[g.start..g.start + g.n];
                self.store
                    .target_run(g.seq, indices.iter().copied(), g.variants)?;
                if features {
                    self.feature_rows.resize(self.store.rows() * d, 0.0);
                    for var in 0..g.variants {
                        for i in 0..g.n {
                            let r = self.store.last_row(g.seq, i as u32, var)? as usize * d;
                            let h = (base + var * g.n + i) * d;
                            self.feature_rows[r..r + d].copy_from_slice(&self.hidden[h..h + d]);
                        }
                    }
                }
                base += g.n * g.variants;
            }
        }
        let mut at = 0;
        for group in action.groups() {
            if let Group::Prefill(p) = group {
                self.prefill(p.seq, p.tokens, p.guidance, at)?;
            }
            at += group.logits_rows();
        }
        Ok(())
    }

    /// Runs a drafter action: every group's committed catch-up chain in **one** drafter forward,
    /// then every group's pending inputs in one more (a group's pending inputs may read the
    /// drafter features of its catch-up entries). The answer holds `rows` rows, group after
    /// group, each group's catch-up rows before its pending rows.
    fn draft_forward(&mut self, action: &Action<'_>, rows: usize) -> Result<(), HostError> {
        let d = self.dim;
        if self.drafter.is_none() {
            return Err(HostError::Unsupported(
                "this method drafts, but the model has no drafter (drafter.safetensors)".into(),
            ));
        }
        self.sink.begin(&self.c, rows, self.vocab)?;
        // Per group: the run, its sequence index, first answer row and first step entry.
        let mut runs = Vec::new();
        let mut at = 0;
        for group in action.groups() {
            if let Group::Draft(run) = group {
                let s = self.seq_index(run.seq)?;
                if run.commit as usize > run.inputs.len() {
                    return Err(HostError::Core(argen_core::Error::InvalidParameter {
                        name: "commit",
                        reason: "more committed inputs than inputs",
                    }));
                }
                for var in 0..run.guidance.variants() {
                    self.condition(s, var)?;
                }
                if run.new_step {
                    for var in 0..VARIANTS {
                        if let Some(dr) = self.drafter.as_deref_mut() {
                            dr.rollback(slot(run.seq, var))?;
                        }
                    }
                    self.store.new_draft_step(run.seq)?;
                    self.seqs[s].step_committed = 0;
                }
                let first_entry = self.store.entry_count(run.seq)? as usize;
                runs.push((run, s, at, first_entry));
            }
            at += group.logits_rows();
        }
        // Two parts: the committed catch-up chains, then the pending inputs.
        for catch_up in [true, false] {
            self.tokens.clear();
            self.positions.clear();
            self.parents.clear();
            self.features.clear();
            self.groups.clear();
            for &(run, s, at, first_entry) in &runs {
                let (lo, hi) = if catch_up {
                    (0, run.commit as usize)
                } else {
                    (run.commit as usize, run.inputs.len())
                };
                if lo == hi {
                    continue;
                }
                let step_committed = self.seqs[s].step_committed as usize;
                let start = self.tokens.len();
                for (j, inp) in run.inputs[lo..hi].iter().enumerate() {
                    self.tokens.push(inp.token);
                    self.positions.push(pos(inp.index, self.grid));
                    let parent = if catch_up {
                        // Catch-up chain.
                        j as i32 - 1
                    } else if inp.parent == ROOT {
                        -1
                    } else {
                        let e = inp.parent as usize;
                        if e < step_committed || e >= first_entry + lo + j {
                            return Err(HostError::Core(argen_core::Error::InvalidParameter {
                                name: "parent",
                                reason: "draft parent is not a pending entry of this step",
                            }));
                        }
                        (e - step_committed) as i32
                    };
                    self.parents.push(parent);
                }
                let variants = run.guidance.variants();
                for var in 0..variants {
                    for inp in &run.inputs[lo..hi] {
                        let r = self.store.resolve(run.seq, inp.feature, var)? as usize * d;
                        self.features
                            .extend_from_slice(&self.feature_rows[r..r + d]);
                    }
                }
                self.groups.push(TargetGroup {
                    seq: run.seq,
                    start,
                    n: hi - lo,
                    variants,
                    answer: at + lo * variants,
                });
            }
            if self.groups.is_empty() {
                continue;
            }
            let model_rows: usize = self.groups.iter().map(|g| g.n * g.variants).sum();
            self.hidden.resize(model_rows * d, 0.0);
            let steps = group_steps(&self.groups, &self.tokens, &self.positions, &self.parents);
            let dr = self.drafter.as_deref_mut().ok_or_else(|| {
                HostError::Unsupported("this method drafts, but the model has no drafter".into())
            })?;
            let out =
                dr.forward_device(self.gpt, &steps, &self.features, Some(&mut self.hidden))?;
            let mut base = 0;
            for g in &self.groups {
                interleave(&mut self.order, base, g.n, g.variants);
                self.sink.put(&self.c, out, &self.order, g.answer)?;
                base += g.n * g.variants;
            }
            let mut base = 0;
            for g in &self.groups {
                if catch_up {
                    self.keep.clear();
                    self.keep.extend(0..g.n);
                    for var in 0..g.variants {
                        dr.commit(slot(g.seq, var), &self.keep)?;
                    }
                }
                if catch_up {
                    self.seqs[g.seq as usize].step_committed += g.n as u32;
                }
                // Store the entries' hidden states.
                let first = self.store.add_entries(g.seq, g.n, g.variants)?;
                self.feature_rows.resize(self.store.rows() * d, 0.0);
                for j in 0..g.n {
                    for var in 0..g.variants {
                        let r = self.store.entry_row(g.seq, first + j as u32, var)? as usize * d;
                        let src = (base + var * g.n + j) * d;
                        self.feature_rows[r..r + d].copy_from_slice(&self.hidden[src..src + d]);
                    }
                }
                base += g.n * g.variants;
            }
        }
        Ok(())
    }
}

impl<C, S, B> Host<B> for ModelHost<'_, C, S>
where
    C: Compute,
    S: LogitSink<C>,
    B: Backend<Logits = S::Logits>,
    HostError: From<B::Error>,
{
    type Error = HostError;

    fn answer(&mut self, action: &Action<'_>) -> Result<Answer<'_, S::Logits>, HostError> {
        if let (Some(model), Some(rows)) = (action.model(), action.logits_rows()) {
            let mut seen = std::collections::BTreeSet::new();
            for g in action.groups() {
                if g.model() != model || !seen.insert(g.seq()) {
                    return Err(HostError::Core(argen_core::Error::InvalidParameter {
                        name: "batch",
                        reason: "a batch must run one model with each sequence at most once",
                    }));
                }
            }
            self.calls[model as usize] += 1;
            match model {
                Model::Target => self.target_forward(action, rows)?,
                Model::Drafter => self.draft_forward(action, rows)?,
            }
            return Ok(Answer::Logits(self.sink.logits()));
        }
        match *action {
            Action::Check(c) => {
                let ok = match self.judge.as_deref_mut() {
                    Some(j) => j.check(c.seq, c.rows, c.tokens).map_err(HostError::Judge)?,
                    None => self.implicit_pmi(c.seq, c.tokens)? >= 0.0,
                };
                Ok(Answer::Verdict(ok))
            }
            Action::Score(sc) => {
                let score = match self.judge.as_deref_mut() {
                    Some(j) => j.score(sc.seq, sc.tokens).map_err(HostError::Judge)?,
                    None => self.implicit_pmi(sc.seq, sc.tokens)? as f32,
                };
                Ok(Answer::Score(score))
            }
            Action::Reformulate(r) => {
                let s = self.seq_index(r.seq)?;
                let judge = self.judge.as_deref_mut().ok_or_else(|| {
                    HostError::Unsupported(
                        "prompt reformulation needs a reformulator (ShapesWorld models have one); \
                         turn reformulation off for this model"
                            .into(),
                    )
                })?;
                let cond = judge
                    .reformulate(r.seq, r.rows, r.tokens)
                    .map_err(HostError::Judge)?;
                self.seqs[s].conds[2] = Some(cond);
                Ok(Answer::Reformulated)
            }
            Action::Done => Err(HostError::Unsupported("nothing to do after Done".into())),
            other => Err(HostError::Unsupported(format!(
                "this host cannot answer a {} action",
                other.kind()
            ))),
        }
    }
}
