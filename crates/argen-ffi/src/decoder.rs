//! Decoders of any method for the bindings: an owned [`AnyDecoder`] with its tables and its
//! distribution rows, and a flat snapshot of its current action.
//!
//! The core's decoders borrow their tables ([`Resources`]) and leave the distribution rows to the
//! host ([`argen_core::Backend`]). A foreign host should do neither, so [`OwnedDecoder`] owns
//! copies of the tables, a [`SliceStorage`] of exactly
//! [`Requirements::dist_rows`](argen_core::decode::Requirements) rows, and the decoder built on
//! them. Answers go straight to the core decoder; every token, statistic and error is the core's.
//!
//! [`OwnedDecoder::poll`] flattens the current [`Action`] into an [`ActionView`]: one
//! [`GroupView`] per sequence of a forward (a single prefill / target / draft action is a batch
//! of one group, so a host needs one code path), each naming ranges of shared arrays of inputs,
//! `keep` entries and prefill tokens. The C ABI turns the ranges into pointers, the Python
//! package into NumPy arrays. The view's buffers are reused between polls: no allocation per
//! action once they have grown to the decoder's largest action.

#![allow(non_camel_case_types)]
use crate::embed::Rows;
use crate::status::{argen_status, FfiError, FfiResult};
use argen_core::accept::NeighbourTable;
use argen_core::decode::{
    Action, AnyDecoder, Decoder, DecoderConfig, FeatureRef, Group, GuidanceMode, Model, Mux,
    Requirements, Resources, Stats,
};
use argen_core::{SliceBackend, SliceStorage, MAX_VOCAB};
use core::ops::Range;
use half::{bf16, f16};

/// Action kind: reset a sequence and run its condition (+ prefix tokens); one group.
pub const ARGEN_ACTION_PREFILL: u32 = 0;
/// Action kind: run the target on a sequence; one group.
pub const ARGEN_ACTION_TARGET: u32 = 1;
/// Action kind: run the drafter on a sequence; one group.
pub const ARGEN_ACTION_DRAFT: u32 = 2;
/// Action kind: judge a partial canvas (answer with `argen_decoder_handle_verdict`).
pub const ARGEN_ACTION_CHECK: u32 = 3;
/// Action kind: score a finished image (answer with `argen_decoder_handle_score`).
pub const ARGEN_ACTION_SCORE: u32 = 4;
/// Action kind: reformulate a sequence's prompt (answer with `argen_decoder_handle_reformulated`).
pub const ARGEN_ACTION_REFORMULATE: u32 = 5;
/// Action kind: one forward of one model over several groups.
pub const ARGEN_ACTION_BATCH: u32 = 6;
/// Action kind: decoding is finished.
pub const ARGEN_ACTION_DONE: u32 = 7;

/// Group kind: reset the sequence, run its condition and commit everything (target model).
pub const ARGEN_GROUP_PREFILL: u32 = 0;
/// Group kind: commit `keep`, drop other pending entries, run the inputs (target model).
pub const ARGEN_GROUP_TARGET: u32 = 1;
/// Group kind: drafter run (`new_step`, `commit`, inputs).
pub const ARGEN_GROUP_DRAFT: u32 = 2;

/// Model of an action: none (judge actions and `Done`).
pub const ARGEN_MODEL_NONE: u32 = 0;
/// Model of an action: the target.
pub const ARGEN_MODEL_TARGET: u32 = 1;
/// Model of an action: the drafter.
pub const ARGEN_MODEL_DRAFTER: u32 = 2;

/// Feature of a drafter input: none (target inputs).
pub const ARGEN_FEATURE_NONE: u32 = 0;
/// Feature: the target's hidden state at the last condition position.
pub const ARGEN_FEATURE_CONDITION: u32 = 1;
/// Feature: the target's hidden state at the committed input of raster index `feature_index`.
pub const ARGEN_FEATURE_TARGET: u32 = 2;
/// Feature: the target's hidden state at input `feature_index` of the most recent target run.
pub const ARGEN_FEATURE_LAST_TARGET: u32 = 3;
/// Feature: the drafter's output at entry `feature_index` of the current drafting step.
pub const ARGEN_FEATURE_DRAFT: u32 = 4;

use crate::capi::{ARGEN_GUIDANCE_PLAIN, ARGEN_GUIDANCE_THREE_WAY, ARGEN_GUIDANCE_TWO_WAY};

/// One input of a forward (target inputs have `feature_kind == ARGEN_FEATURE_NONE`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct argen_decoder_input {
    /// Token id.
    pub token: u32,
    /// Raster index of the token (its logits predict index + 1).
    pub index: u32,
    /// Parent within the run (target) or drafting step (drafter), or `ARGEN_ROOT` (0xFFFFFFFF):
    /// the committed prefix.
    pub parent: u32,
    /// `ARGEN_FEATURE_*`: the hidden feature an EAGLE drafter reads with the token.
    pub feature_kind: u32,
    /// The feature's index (raster index, run input or step entry, by `feature_kind`).
    pub feature_index: u32,
}

/// One group of a forward, as ranges into the [`ActionView`]'s arrays.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupView {
    /// `ARGEN_GROUP_*`.
    pub kind: u32,
    /// The sequence.
    pub seq: u32,
    /// `ARGEN_GUIDANCE_*`.
    pub guidance: u32,
    /// Guidance scale (two-way) or weight (three-way); 0 without guidance.
    pub scale: f32,
    /// Logits rows per input (1, 2, 3).
    pub variants: u32,
    /// Prefill: the teacher-forced tokens after the condition (range of [`ActionView::tokens`]).
    pub tokens: Range<usize>,
    /// Target: pending entries of the previous run to commit (range of [`ActionView::keep`]).
    pub keep: Range<usize>,
    /// Drafter: drop pending drafter entries first.
    pub new_step: bool,
    /// Drafter: inputs that join the committed prefix.
    pub commit: u32,
    /// Target and drafter inputs (range of [`ActionView::inputs`]).
    pub inputs: Range<usize>,
    /// First logits row of this group in the answer.
    pub first_row: usize,
    /// Logits rows of this group.
    pub rows: usize,
}

/// The current action, flattened (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionView {
    /// `ARGEN_ACTION_*`.
    pub kind: u32,
    /// `ARGEN_MODEL_*`.
    pub model: u32,
    /// Logits rows the answer must carry (0 for judge actions and `Done`).
    pub logits_rows: usize,
    /// The forward's groups (empty unless `model != NONE`).
    pub groups: Vec<GroupView>,
    /// Inputs of every group.
    pub inputs: Vec<argen_decoder_input>,
    /// `keep` lists of every group.
    pub keep: Vec<u32>,
    /// Prefill tokens of every group, then (Check / Score / Reformulate) the canvas.
    pub tokens: Vec<u32>,
    /// Check / Score / Reformulate: the sequence.
    pub seq: u32,
    /// Check / Reformulate: token rows of the canvas.
    pub canvas_rows: u32,
    /// Check / Score / Reformulate: the canvas (range of `tokens`).
    pub canvas: Range<usize>,
}

fn guidance_parts(g: GuidanceMode) -> (u32, f32) {
    match g {
        GuidanceMode::None => (ARGEN_GUIDANCE_PLAIN, 0.0),
        GuidanceMode::TwoWay { scale } => (ARGEN_GUIDANCE_TWO_WAY, scale),
        GuidanceMode::ThreeWay { w } => (ARGEN_GUIDANCE_THREE_WAY, w),
    }
}

fn push_range<T: Copy>(v: &mut Vec<T>, items: &[T]) -> Range<usize> {
    let start = v.len();
    v.extend_from_slice(items);
    start..v.len()
}

impl ActionView {
    fn clear(&mut self) {
        self.groups.clear();
        self.inputs.clear();
        self.keep.clear();
        self.tokens.clear();
        self.kind = ARGEN_ACTION_DONE;
        self.model = ARGEN_MODEL_NONE;
        self.logits_rows = 0;
        self.seq = 0;
        self.canvas_rows = 0;
        self.canvas = 0..0;
    }

    fn push_group(&mut self, group: Group<'_>, first_row: usize) -> FfiResult<()> {
        let (guidance, scale) = guidance_parts(group.guidance());
        let mut view = GroupView {
            kind: 0,
            seq: group.seq(),
            guidance,
            scale,
            variants: group.guidance().variants() as u32,
            tokens: 0..0,
            keep: 0..0,
            new_step: false,
            commit: 0,
            inputs: 0..0,
            first_row,
            rows: group.logits_rows(),
        };
        let start = self.inputs.len();
        match group {
            Group::Prefill(p) => {
                view.kind = ARGEN_GROUP_PREFILL;
                view.tokens = push_range(&mut self.tokens, p.tokens);
            }
            Group::Target(r) => {
                view.kind = ARGEN_GROUP_TARGET;
                view.keep = push_range(&mut self.keep, r.keep);
                self.inputs
                    .extend(r.inputs.iter().map(|i| argen_decoder_input {
                        token: i.token,
                        index: i.index,
                        parent: i.parent,
                        feature_kind: ARGEN_FEATURE_NONE,
                        feature_index: 0,
                    }));
            }
            Group::Draft(r) => {
                view.kind = ARGEN_GROUP_DRAFT;
                view.new_step = r.new_step;
                view.commit = r.commit;
                self.inputs.extend(r.inputs.iter().map(|i| {
                    let (feature_kind, feature_index) = match i.feature {
                        FeatureRef::Condition => (ARGEN_FEATURE_CONDITION, 0),
                        FeatureRef::Target(x) => (ARGEN_FEATURE_TARGET, x),
                        FeatureRef::LastTarget(x) => (ARGEN_FEATURE_LAST_TARGET, x),
                        FeatureRef::Draft(x) => (ARGEN_FEATURE_DRAFT, x),
                    };
                    argen_decoder_input {
                        token: i.token,
                        index: i.index,
                        parent: i.parent,
                        feature_kind,
                        feature_index,
                    }
                }));
            }
            _ => {
                return Err(FfiError::new(
                    argen_status::ARGEN_ERR_UNKNOWN,
                    "the decoder asked for a kind of group this binding does not know",
                ))
            }
        }
        view.inputs = start..self.inputs.len();
        self.groups.push(view);
        Ok(())
    }

    /// Fills the view from `action` (reusing the buffers).
    pub fn fill(&mut self, action: &Action<'_>) -> FfiResult<()> {
        self.clear();
        if let Some(model) = action.model() {
            self.model = match model {
                Model::Target => ARGEN_MODEL_TARGET,
                Model::Drafter => ARGEN_MODEL_DRAFTER,
            };
            self.kind = match action {
                Action::Prefill(_) => ARGEN_ACTION_PREFILL,
                Action::Target(_) => ARGEN_ACTION_TARGET,
                Action::Draft(_) => ARGEN_ACTION_DRAFT,
                _ => ARGEN_ACTION_BATCH,
            };
            let mut row = 0;
            for group in action.groups() {
                let rows = group.logits_rows();
                self.push_group(group, row)?;
                row += rows;
            }
            self.logits_rows = row;
            return Ok(());
        }
        let (kind, seq, rows, canvas) = match *action {
            Action::Check(c) => (ARGEN_ACTION_CHECK, c.seq, c.rows, c.tokens),
            Action::Score(s) => (ARGEN_ACTION_SCORE, s.seq, 0, s.tokens),
            Action::Reformulate(r) => (ARGEN_ACTION_REFORMULATE, r.seq, r.rows, r.tokens),
            Action::Done => (ARGEN_ACTION_DONE, 0, 0, &[][..]),
            _ => {
                return Err(FfiError::new(
                    argen_status::ARGEN_ERR_UNKNOWN,
                    "the decoder asked for a kind of action this binding does not know",
                ))
            }
        };
        self.kind = kind;
        self.seq = seq;
        self.canvas_rows = rows;
        self.canvas = push_range(&mut self.tokens, canvas);
        Ok(())
    }

    /// The inputs of group `g`.
    pub fn group_inputs(&self, g: &GroupView) -> &[argen_decoder_input] {
        &self.inputs[g.inputs.clone()]
    }
}

/// A heap slice owned through a raw pointer, so that `&'static` borrows of it can live next to
/// it in the same struct (the decoder borrowing its tables). Freed on drop.
#[derive(Debug)]
struct Owned<T>(*mut [T]);

impl<T: Copy> Owned<T> {
    fn new(values: Vec<T>) -> (Self, &'static [T]) {
        let raw: *mut [T] = Box::into_raw(values.into_boxed_slice());
        // SAFETY: `raw` stays allocated and unmodified until this `Owned` drops, and
        // `OwnedDecoder` drops the decoder (the only holder of the borrow) before its tables.
        let shared: &'static [T] = unsafe { &*raw };
        (Owned(raw), shared)
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::into_raw` in `Owned::new` and is freed once.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

// SAFETY: a uniquely owned heap allocation of plain numbers, only read while it lives.
unsafe impl<T: Send> Send for Owned<T> {}

/// The tables a decoder may borrow, as the caller hands them over (copied by
/// [`OwnedDecoder::new`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct TableArgs<'a> {
    /// LANTERN's neighbour ids, `vocab × k` row-major, with `k`.
    pub neighbours: Option<(&'a [u32], usize)>,
    /// A `vocab × dim` codebook to build LANTERN's neighbour table from (used when `neighbours`
    /// is `None` and the configuration needs one; ranked by the configuration's metric).
    pub neighbour_codebook: Option<(&'a [f32], usize)>,
    /// GSD's `vocab × dim` input embedding.
    pub embedding: Option<(&'a [f32], usize)>,
    /// VVS's `vocab × dim` VQ codebook.
    pub codebook: Option<(&'a [f32], usize)>,
}

/// Parses a JSON [`DecoderConfig`] (the `decode::any` module's shape).
pub fn parse_config(json: &str) -> FfiResult<DecoderConfig> {
    serde_json::from_str(json).map_err(|e| {
        FfiError::invalid(format!(
            "decoder config is not a valid DecoderConfig JSON: {e}"
        ))
    })
}

/// What a host must provide for a JSON configuration, before building anything.
pub fn config_requirements(json: &str) -> FfiResult<Requirements> {
    Ok(parse_config(json)?.requirements()?)
}

fn table_len(name: &str, values: usize, vocab: usize, dim: usize) -> FfiResult<()> {
    if dim == 0 || vocab.checked_mul(dim) != Some(values) {
        return Err(FfiError::new(
            argen_status::ARGEN_ERR_LENGTH_MISMATCH,
            format!(
                "{name} has {values} values, expected vocab ({vocab}) × dim ({dim}) with dim > 0"
            ),
        ));
    }
    Ok(())
}

/// A decoder of any method with its own tables and distribution rows (module documentation).
///
/// Field order matters: the decoder borrows the tables and is dropped first.
#[derive(Debug)]
pub struct OwnedDecoder {
    decoder: AnyDecoder<'static>,
    storage: SliceStorage,
    view: ActionView,
    config: DecoderConfig,
    requirements: Requirements,
    vocab: usize,
    _tables: Vec<TableOwner>,
}

#[derive(Debug)]
enum TableOwner {
    U32(#[allow(dead_code)] Owned<u32>),
    F32(#[allow(dead_code)] Owned<f32>),
}

/// Builds `config`'s decoder over `vocab` with copies of the tables it needs; the decoder borrows
/// the returned owners, which must outlive it.
fn build(
    config: &DecoderConfig,
    vocab: usize,
    tables: TableArgs<'_>,
) -> FfiResult<(AnyDecoder<'static>, Vec<TableOwner>, Requirements)> {
    if !(2..=MAX_VOCAB).contains(&vocab) {
        return Err(FfiError::invalid(format!(
            "vocab must be between 2 and {MAX_VOCAB}, got {vocab}"
        )));
    }
    let requirements = config.requirements()?;
    let mut owners = Vec::new();
    let mut res = Resources::none();
    if let Some(needs) = requirements.neighbours {
        let (ids, k) = match (tables.neighbours, tables.neighbour_codebook) {
            (Some((ids, k)), _) => {
                if vocab.checked_mul(k) != Some(ids.len()) {
                    return Err(FfiError::new(
                        argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                        format!(
                            "neighbour table has {} ids, expected vocab ({vocab}) × k ({k})",
                            ids.len()
                        ),
                    ));
                }
                (ids.to_vec(), k)
            }
            (None, Some((codebook, dim))) => {
                table_len("neighbour codebook", codebook.len(), vocab, dim)?;
                let k = needs.k as usize;
                let ids = argen_core::accept::neighbours::build_table_with(
                    codebook,
                    dim,
                    k,
                    needs.metric,
                )?;
                (ids, k)
            }
            (None, None) => {
                return Err(FfiError::invalid(
                    "the lantern criterion needs a neighbour table or a codebook to build it",
                ))
            }
        };
        let (owner, ids) = Owned::new(ids);
        owners.push(TableOwner::U32(owner));
        res = res.with_neighbours(NeighbourTable::new(ids, vocab, k)?);
    }
    if requirements.embedding {
        let (values, dim) = tables.embedding.ok_or_else(|| {
            FfiError::invalid("the grouped criterion needs the target's input embedding")
        })?;
        table_len("embedding", values.len(), vocab, dim)?;
        let (owner, values) = Owned::new(values.to_vec());
        owners.push(TableOwner::F32(owner));
        res = res.with_embedding(values, dim);
    }
    if requirements.codebook {
        let (values, dim) = tables
            .codebook
            .ok_or_else(|| FfiError::invalid("the VVS dynamic schedule needs the VQ codebook"))?;
        table_len("codebook", values.len(), vocab, dim)?;
        let (owner, values) = Owned::new(values.to_vec());
        owners.push(TableOwner::F32(owner));
        res = res.with_codebook(values, dim);
    }
    let decoder = AnyDecoder::new(config, &res)?;
    Ok((decoder, owners, requirements))
}

impl OwnedDecoder {
    /// Builds the decoder of `config` over a vocabulary of `vocab` tokens with copies of the
    /// tables it needs (extra tables are ignored; a missing one is an error naming it).
    pub fn new(config: DecoderConfig, vocab: usize, tables: TableArgs<'_>) -> FfiResult<Self> {
        let (decoder, owners, requirements) = build(&config, vocab, tables)?;
        let rows = decoder.dist_rows_needed().max(1);
        let weights = (rows + 1).checked_mul(vocab);
        if weights.is_none_or(|w| w > crate::embed::MAX_SAMPLER_WEIGHTS) {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_ALLOCATION,
                format!("{rows} distribution rows of {vocab} weights exceed the library's limit"),
            ));
        }
        let storage = SliceStorage::new(vocab, rows);
        let mut view = ActionView::default();
        view.fill(&decoder.poll())?;
        Ok(OwnedDecoder {
            decoder,
            storage,
            view,
            config,
            requirements,
            vocab,
            _tables: owners,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// What the host must provide.
    pub fn requirements(&self) -> &Requirements {
        &self.requirements
    }

    /// The vocabulary size.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The current action (pure: unchanged until answered).
    pub fn poll(&self) -> &ActionView {
        &self.view
    }

    fn refresh(&mut self) -> FfiResult<()> {
        let action = self.decoder.poll();
        self.view.fill(&action)
    }

    /// Answers a forward with its logits rows (`logits_rows × vocab` elements).
    pub fn handle_logits(&mut self, logits: Rows<'_>) -> FfiResult<()> {
        if self.view.model == ARGEN_MODEL_NONE {
            // Let the core name what it expected.
            let empty: &[f32] = &[];
            let mut b = self.storage.backend::<f32>()?;
            let r = self.decoder.handle_logits(&mut b, empty);
            return Err(r.err().map(FfiError::from).unwrap_or_else(|| {
                FfiError::new(argen_status::ARGEN_ERR_PROTOCOL, "no forward was asked for")
            }));
        }
        let expected = self.view.logits_rows * self.vocab;
        if logits.len() != expected {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!(
                    "the action needs {} logits rows of {} = {expected} elements, got {}",
                    self.view.logits_rows,
                    self.vocab,
                    logits.len()
                ),
            ));
        }
        let result = answer_logits(&mut self.decoder, &mut self.storage, logits);
        // A batch member may have taken its rows before another failed: poll again either way.
        self.refresh()?;
        result
    }

    /// Answers a Check.
    pub fn handle_verdict(&mut self, possible: bool) -> FfiResult<()> {
        self.decoder.handle_verdict(possible)?;
        self.refresh()
    }

    /// Answers a Score (finite, higher is better).
    pub fn handle_score(&mut self, score: f32) -> FfiResult<()> {
        self.decoder.handle_score(score)?;
        self.refresh()
    }

    /// Answers a Reformulate.
    pub fn handle_reformulated(&mut self) -> FfiResult<()> {
        self.decoder.handle_reformulated()?;
        self.refresh()
    }

    /// Tokens committed so far for `seq` (empty for a sequence the decoder does not use).
    pub fn tokens(&self, seq: u32) -> &[u32] {
        self.decoder.tokens(seq)
    }

    /// The sequence holding the final image (once done).
    pub fn result_seq(&self) -> u32 {
        self.decoder.result_seq()
    }

    /// The sequence ids the decoder uses.
    pub fn sequences(&self) -> Range<u32> {
        self.decoder.sequences()
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.decoder.stats()
    }

    /// Whether decoding is finished.
    pub fn is_done(&self) -> bool {
        self.view.kind == ARGEN_ACTION_DONE
    }
}

/// The backend with this CPU's SIMD row kernels ([`argen_cpu::row_kernels`]: the portable
/// passes' bits, faster).
fn simd<L: argen_core::Logit>(b: SliceBackend<'_, L>) -> SliceBackend<'_, L> {
    b.with_kernels(argen_cpu::row_kernels())
}

/// Answers `decoder`'s forward with `logits` on `storage`, in the rows' own dtype.
fn answer_logits<D: Decoder>(
    decoder: &mut D,
    storage: &mut SliceStorage,
    logits: Rows<'_>,
) -> FfiResult<()> {
    match logits {
        Rows::F32(l) => decoder.handle_logits(&mut simd(storage.backend::<f32>()?), l)?,
        Rows::F16(l) => decoder.handle_logits(&mut simd(storage.backend::<f16>()?), l)?,
        Rows::Bf16(l) => decoder.handle_logits(&mut simd(storage.backend::<bf16>()?), l)?,
    }
    Ok(())
}

/// Independent decoders (requests) sharing forwards: a core [`Mux`] over [`AnyDecoder`]s with
/// their tables and one table of `dist_rows` distribution rows, fixed at creation so that
/// decoders may join while others run (each keeps its own range of rows; a decoder that does not
/// fit is refused with [`argen_status::ARGEN_ERR_CAPACITY`]). Members are named by their
/// sequence ids (disjoint between members).
///
/// Field order matters: the decoders borrow the tables and are dropped first.
#[derive(Debug)]
pub struct OwnedMux {
    mux: Mux<AnyDecoder<'static>>,
    storage: SliceStorage,
    view: ActionView,
    vocab: usize,
    dist_rows: usize,
    /// Tables of each member, parallel to `mux.decoders()`.
    tables: Vec<Vec<TableOwner>>,
}

impl OwnedMux {
    /// An empty set over `vocab` tokens with `dist_rows` distribution rows (the sum of the
    /// members' `Requirements::dist_rows` suffices).
    pub fn new(vocab: usize, dist_rows: usize) -> FfiResult<Self> {
        if !(2..=MAX_VOCAB).contains(&vocab) {
            return Err(FfiError::invalid(format!(
                "vocab must be between 2 and {MAX_VOCAB}, got {vocab}"
            )));
        }
        let weights = dist_rows
            .max(1)
            .checked_add(1)
            .and_then(|r| r.checked_mul(vocab));
        if weights.is_none_or(|w| w > crate::embed::MAX_SAMPLER_WEIGHTS) {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_ALLOCATION,
                format!(
                    "{dist_rows} distribution rows of {vocab} weights exceed the library's limit"
                ),
            ));
        }
        let mux = Mux::new();
        let mut view = ActionView::default();
        view.fill(&mux.poll())?;
        Ok(OwnedMux {
            mux,
            storage: SliceStorage::new(vocab, dist_rows.max(1)),
            view,
            vocab,
            dist_rows,
            tables: Vec::new(),
        })
    }

    /// Adds the decoder of `config` (may join while others run). Refused if its sequence ids
    /// overlap a member's or its distribution rows do not fit.
    pub fn add(&mut self, config: DecoderConfig, tables: TableArgs<'_>) -> FfiResult<()> {
        let (decoder, owners, _) = build(&config, self.vocab, tables)?;
        let mut trial = self.mux.clone();
        trial.push(decoder)?;
        if trial.dist_rows_needed() > self.dist_rows {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_CAPACITY,
                format!(
                    "the set would need {} distribution rows, it was created with {}",
                    trial.dist_rows_needed(),
                    self.dist_rows
                ),
            ));
        }
        self.mux = trial;
        self.tables.push(owners);
        self.refresh()
    }

    /// Drops the members that are done (after reading their results); returns how many.
    pub fn release_done(&mut self) -> FfiResult<usize> {
        let done: Vec<bool> = self
            .mux
            .decoders()
            .iter()
            .map(|d| d.poll() == Action::Done)
            .collect();
        drop(self.mux.take_done());
        let mut i = 0;
        self.tables.retain(|_| {
            i += 1;
            !done[i - 1]
        });
        self.refresh()?;
        Ok(done.iter().filter(|&&d| d).count())
    }

    fn member(&self, seq: u32) -> FfiResult<&AnyDecoder<'static>> {
        self.mux
            .decoders()
            .iter()
            .find(|d| d.sequences().contains(&seq))
            .ok_or_else(|| FfiError::invalid(format!("no member of the set uses sequence {seq}")))
    }

    /// The member using sequence `seq`: its result sequence, whether it is done, its stats.
    pub fn member_info(&self, seq: u32) -> FfiResult<(u32, bool, Stats)> {
        let d = self.member(seq)?;
        Ok((d.result_seq(), d.poll() == Action::Done, d.stats()))
    }

    /// The vocabulary size.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.mux.decoders().len()
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current action of the set (merged forwards; judges one sequence at a time).
    pub fn poll(&self) -> &ActionView {
        &self.view
    }

    fn refresh(&mut self) -> FfiResult<()> {
        let action = self.mux.poll();
        self.view.fill(&action)
    }

    /// Answers a merged forward (`logits_rows × vocab` elements).
    pub fn handle_logits(&mut self, logits: Rows<'_>) -> FfiResult<()> {
        let expected = self.view.logits_rows * self.vocab;
        if self.view.model != ARGEN_MODEL_NONE && logits.len() != expected {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!(
                    "the action needs {} logits rows of {} = {expected} elements, got {}",
                    self.view.logits_rows,
                    self.vocab,
                    logits.len()
                ),
            ));
        }
        let result = answer_logits(&mut self.mux, &mut self.storage, logits);
        self.refresh()?;
        result
    }

    /// Answers a Check.
    pub fn handle_verdict(&mut self, possible: bool) -> FfiResult<()> {
        self.mux.handle_verdict(possible)?;
        self.refresh()
    }

    /// Answers a Score.
    pub fn handle_score(&mut self, score: f32) -> FfiResult<()> {
        self.mux.handle_score(score)?;
        self.refresh()
    }

    /// Answers a Reformulate.
    pub fn handle_reformulated(&mut self) -> FfiResult<()> {
        self.mux.handle_reformulated()?;
        self.refresh()
    }

    /// Tokens committed so far for `seq` (any member's sequence).
    pub fn tokens(&self, seq: u32) -> &[u32] {
        self.mux.tokens(seq)
    }
}
