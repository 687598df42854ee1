//! The sans-IO driver protocol between a decoder and its host.
//!
//! A decoder never runs a model. It is a state machine the host drives:
//!
//! ```text
//! loop {
//!     match decoder.poll()? {
//!         Action::Prefill(p)  => { run the condition (+ teacher-forced tokens) on slot p.seq;
//!                                  decoder.handle_logits(&mut backend, &logits)?; }
//!         Action::Target(r)   => { apply r.keep, run r.inputs; decoder.handle_logits(..)?; }
//!         Action::Draft(r)    => { same with the drafter;       decoder.handle_logits(..)?; }
//!         Action::Check(c)    => { judge a partial canvas;     decoder.handle_verdict(..)?; }
//!         Action::Score(s)    => { score a finished image;     decoder.handle_score(..)?; }
//!         Action::Reformulate(r) => { append a layout clause;  decoder.handle_reformulated()?; }
//!         Action::Done        => break,
//!     }
//! }
//! ```
//!
//! # Sequences, slots and logits rows
//!
//! A *sequence* `seq` is one image being generated (Best-of-N and GridAR have several). The host
//! keeps, per sequence, one KV-cache slot per guidance *variant* — conditional, unconditional, and
//! (three-way CFG) reformulated — for the target and for the drafter, plus the target's hidden
//! features per committed input. A forward over `n` inputs answers with `n × variants` logits rows,
//! input-major, variants in the order cond, uncond, reformulated ([`GuidanceMode::variants`]).
//!
//! # Inputs, positions, topology
//!
//! An [`Input`] is a token at a raster *index* (`0..H·W`): its logits predict the token at the next
//! index. The host derives the sequence position (`cls_token_num + index`) and the 2D RoPE position
//! (`index / W`, `index % W`) itself. `parent` gives the attention topology: an input attends to the
//! committed prefix, to the inputs on its parent chain within the same run, and to itself; chains
//! are the special case `parent = i − 1`.
//!
//! # KV-cache contract
//!
//! Every input of a target or drafter run is appended as a *pending* entry. The next run of the same
//! model on the same sequence starts with a `keep` list (target) or `commit` count (drafter) that
//! says which pending entries become committed — compacted, in the listed order, after the
//! committed prefix — and every other pending entry is dropped. A [`Action::Prefill`] resets the
//! sequence's slots (target and drafter) and commits everything it runs.
//!
//! # Test-time scaling (Best-of-N, GridAR)
//!
//! Candidates are separate sequences (`seq`, `seq + 1`, …), each with its own slots. A
//! [`Action::Check`] and an [`Action::Reformulate`] carry the canvas they are about, so the host
//! needs no memory of canvases. GridAR's order after a pruning point is: checks of every
//! candidate, then (if enabled) reformulations of every candidate *from its post-pruning canvas*,
//! then re-prefills ([`Action::Prefill`] with the anchor tokens) of the candidates whose canvas or
//! prompt changed. A sequence receives [`GuidanceMode::ThreeWay`] runs only after it was
//! reformulated, and its prefill after a reformulation is always three-way. Candidates that need
//! the same model at the same time travel in one [`Action::Batch`].
//!
//! # Batched forwards (protocol v2)
//!
//! On every device argen targets a decode step is memory-bound: a forward over 8 rows costs about
//! what a forward over 2 rows costs. So a forward may cover **several sequences**:
//! [`Action::Batch`] is one forward of one [`Model`] over a list of [`Group`]s — per sequence a
//! [`Prefill`], a [`TargetRun`] (target batches may mix the two) or a [`DraftRun`] (drafter
//! batches) — each with exactly the meaning it has as a single action. One logits buffer answers
//! the whole batch: the rows of group 0 (laid out as that group's own answer), then those of
//! group 1, and so on ([`Batch::rows_before`]). A sequence appears at most once per batch. A host
//! treats a single [`Action::Prefill`] / [`Action::Target`] / [`Action::Draft`] as a batch of
//! one group ([`Action::groups`]), so one code path serves both:
//!
//! ```text
//! loop {
//!     let action = decoder.poll();
//!     if let Some(model) = action.model() {          // a forward of the target or the drafter
//!         for group in action.groups() {
//!             apply group's keep / commit / reset on sequence group.seq();
//!             add its inputs (or its condition) to the forward;
//!         }
//!         run one forward; lay the rows out group after group;
//!         decoder.handle_logits(&mut backend, &logits)?;
//!     } else {
//!         // Check / Score / Reformulate / Done, one sequence at a time, as above
//!     }
//! }
//! ```
//!
//! Batches come from decoders that hold several sequences (Best-of-N and GridAR step every live
//! candidate in one forward) and from [`super::Mux`], which merges the actions of independent
//! decoders. Every random draw is keyed by `(seed, stream, purpose, position, token)`, so how
//! sequences are batched never changes a token.

use crate::backend::ROOT;

/// Guidance applied to every logits row group of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
pub enum GuidanceMode {
    /// No guidance: one row per input (conditional).
    None,
    /// Two-way CFG with this scale: rows cond, uncond.
    TwoWay {
        /// Guidance scale `s`.
        scale: f32,
    },
    /// Three-way CFG (GridAR): rows cond, uncond, reformulated.
    ThreeWay {
        /// Weight `w`.
        w: f32,
    },
}

impl GuidanceMode {
    /// Logits rows per input.
    pub const fn variants(&self) -> usize {
        match self {
            GuidanceMode::None => 1,
            GuidanceMode::TwoWay { .. } => 2,
            GuidanceMode::ThreeWay { .. } => 3,
        }
    }

    /// The [`crate::backend::RowGuidance`] for the row group starting at `first`.
    pub fn rows(&self, first: u32) -> crate::backend::RowGuidance {
        use crate::backend::RowGuidance;
        match *self {
            GuidanceMode::None => RowGuidance::Plain { row: first },
            GuidanceMode::TwoWay { scale } => RowGuidance::TwoWay {
                cond: first,
                uncond: first + 1,
                scale,
            },
            GuidanceMode::ThreeWay { w } => RowGuidance::ThreeWay {
                cond: first,
                uncond: first + 1,
                reformulated: first + 2,
                w,
            },
        }
    }
}

/// One token fed to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Input {
    /// Token id.
    pub token: u32,
    /// Raster index of the token.
    pub index: u32,
    /// Index of the parent input within the same run, or [`ROOT`] (the committed prefix).
    pub parent: u32,
}

impl Input {
    /// An input attached to the committed prefix.
    pub const fn root(token: u32, index: u32) -> Self {
        Input {
            token,
            index,
            parent: ROOT,
        }
    }
}

/// Which hidden feature accompanies a drafter input (EAGLE drafters read `[embedding; feature]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FeatureRef {
    /// The target's last hidden state at the last condition position (from the prefill).
    Condition,
    /// The target's last hidden state at the committed input of this raster index.
    Target(u32),
    /// The target's last hidden state at input `i` of the most recent target run (or prefill) of
    /// this sequence, whether or not a later `keep` commits it.
    LastTarget(u32),
    /// The drafter's output hidden state at entry `e` of the current drafting step (entries are
    /// numbered across the step's drafter runs, starting at 0 with its first input).
    Draft(u32),
}

/// One token fed to the drafter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DraftInput {
    /// Token id.
    pub token: u32,
    /// Raster index of the token.
    pub index: u32,
    /// Step entry number of the parent, or [`ROOT`] (the drafter's committed prefix).
    pub parent: u32,
    /// The feature paired with the token.
    pub feature: FeatureRef,
}

/// Reset a sequence and run its condition, then `tokens` teacher-forced at indices `0..`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prefill<'a> {
    /// The sequence.
    pub seq: u32,
    /// Image tokens to prefill after the condition (GridAR anchors; empty otherwise).
    pub tokens: &'a [u32],
    /// Guidance variants to prefill and to answer with.
    pub guidance: GuidanceMode,
}

/// Run the target on a sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetRun<'a> {
    /// The sequence.
    pub seq: u32,
    /// Pending entries of the previous target run to commit, in order (indices into that run).
    pub keep: &'a [u32],
    /// The inputs.
    pub inputs: &'a [Input],
    /// Guidance variants to run.
    pub guidance: GuidanceMode,
}

/// Run the drafter on a sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DraftRun<'a> {
    /// The sequence.
    pub seq: u32,
    /// If set, this run starts a new drafting step: drop every pending drafter entry first, and
    /// number this run's inputs from entry 0.
    pub new_step: bool,
    /// The first `commit` inputs of this run join the committed prefix (catch-up on committed
    /// tokens); the others stay pending.
    pub commit: u32,
    /// The inputs.
    pub inputs: &'a [DraftInput],
    /// Guidance variants to run.
    pub guidance: GuidanceMode,
}

/// Judge whether a partial canvas — the top `rows` token rows of a sequence — can still become
/// an image that matches the prompt (GridAR's verifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check<'a> {
    /// The sequence.
    pub seq: u32,
    /// Token rows generated so far.
    pub rows: u32,
    /// Its tokens (`rows · W` of them).
    pub tokens: &'a [u32],
}

/// Score a finished image (higher is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Score<'a> {
    /// The sequence.
    pub seq: u32,
    /// Its tokens.
    pub tokens: &'a [u32],
}

/// Reformulate the prompt of a sequence (GridAR): infer a layout clause from its canvas's top
/// `rows` token rows and use the reformulated prompt as the third guidance variant from now on.
///
/// The canvas travels with the action (`tokens`) because it need not be what the host holds for
/// the sequence: after GridAR's pruning a sequence may have been *replaced* by another one's
/// anchor, and it is reformulated from that anchor before its re-prefill. (Added field: the
/// first version carried only `seq` and `rows`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reformulate<'a> {
    /// The sequence.
    pub seq: u32,
    /// Token rows generated so far.
    pub rows: u32,
    /// The canvas to infer the layout from (`rows · W` tokens).
    pub tokens: &'a [u32],
}

/// The model a forward runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Model {
    /// The target (prefills and target runs).
    Target,
    /// The drafter.
    Drafter,
}

/// One sequence's part of a forward: exactly what the single action of the same name asks.
///
/// `#[non_exhaustive]`: embedders must tolerate new kinds of groups.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Group<'a> {
    /// See [`Prefill`] (target model).
    Prefill(Prefill<'a>),
    /// See [`TargetRun`] (target model).
    Target(TargetRun<'a>),
    /// See [`DraftRun`] (drafter).
    Draft(DraftRun<'a>),
}

impl<'a> Group<'a> {
    /// The sequence.
    pub fn seq(&self) -> u32 {
        match self {
            Group::Prefill(p) => p.seq,
            Group::Target(r) => r.seq,
            Group::Draft(r) => r.seq,
        }
    }

    /// The model that runs it.
    pub fn model(&self) -> Model {
        match self {
            Group::Prefill(_) | Group::Target(_) => Model::Target,
            Group::Draft(_) => Model::Drafter,
        }
    }

    /// Logits rows of its answer: `inputs × variants` (a prefill answers with one input).
    pub fn logits_rows(&self) -> usize {
        match self {
            Group::Prefill(p) => p.guidance.variants(),
            Group::Target(r) => r.inputs.len() * r.guidance.variants(),
            Group::Draft(r) => r.inputs.len() * r.guidance.variants(),
        }
    }

    /// Its guidance.
    pub fn guidance(&self) -> GuidanceMode {
        match self {
            Group::Prefill(p) => p.guidance,
            Group::Target(r) => r.guidance,
            Group::Draft(r) => r.guidance,
        }
    }

    /// The same request as a single action.
    pub fn action(self) -> Action<'a> {
        match self {
            Group::Prefill(p) => Action::Prefill(p),
            Group::Target(r) => Action::Target(r),
            Group::Draft(r) => Action::Draft(r),
        }
    }
}

/// The groups of a batched forward, in answer order. Implemented by decoders that hold several
/// sequences; hosts read it through [`Batch`].
pub trait Groups {
    /// Number of groups (at least 2 in an [`Action::Batch`]).
    fn count(&self) -> usize;
    /// Group `i` (`i < count()`); `None` past the end.
    fn group(&self, i: usize) -> Option<Group<'_>>;
}

/// One forward of one model over several sequences (module docs, "Batched forwards").
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    model: Model,
    groups: &'a dyn Groups,
}

impl<'a> Batch<'a> {
    /// A batch of `groups`, all run by `model`.
    pub fn new(model: Model, groups: &'a dyn Groups) -> Self {
        Batch { model, groups }
    }

    /// The model.
    pub fn model(&self) -> Model {
        self.model
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.count()
    }

    /// Whether the batch has no group (never true of a polled action).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Group `i`.
    pub fn group(&self, i: usize) -> Option<Group<'a>> {
        self.groups.group(i)
    }

    /// The groups in answer order.
    pub fn iter(&self) -> impl Iterator<Item = Group<'a>> + 'a {
        let groups = self.groups;
        (0..groups.count()).filter_map(move |i| groups.group(i))
    }

    /// Logits rows of the whole answer.
    pub fn logits_rows(&self) -> usize {
        self.iter().map(|g| g.logits_rows()).sum()
    }

    /// The first answer row of group `i`: the rows of the groups before it.
    pub fn rows_before(&self, i: usize) -> usize {
        self.iter().take(i).map(|g| g.logits_rows()).sum()
    }
}

impl PartialEq for Batch<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.model == other.model
            && self.len() == other.len()
            && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl core::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Batch")
            .field("model", &self.model)
            .field("groups", &GroupsDebug(*self))
            .finish()
    }
}

struct GroupsDebug<'a>(Batch<'a>);

impl core::fmt::Debug for GroupsDebug<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// The groups of a forward action: one for a single action, every group of a batch.
#[derive(Clone, Copy, Debug)]
pub struct GroupIter<'a> {
    single: Option<Group<'a>>,
    batch: Option<Batch<'a>>,
    next: usize,
}

impl<'a> Iterator for GroupIter<'a> {
    type Item = Group<'a>;

    fn next(&mut self) -> Option<Group<'a>> {
        if let Some(g) = self.single.take() {
            return Some(g);
        }
        let g = self.batch?.group(self.next)?;
        self.next += 1;
        Some(g)
    }
}

/// What the host must do next.
///
/// `#[non_exhaustive]` (as rustls' `ConnectionState`): a host matches the kinds it knows and
/// answers any other with an error; new kinds of action come with new protocol versions.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Action<'a> {
    /// See [`Prefill`]; answer with [`Decoder::handle_logits`](super::Decoder::handle_logits).
    Prefill(Prefill<'a>),
    /// See [`TargetRun`]; answer with `handle_logits`.
    Target(TargetRun<'a>),
    /// See [`DraftRun`]; answer with `handle_logits`.
    Draft(DraftRun<'a>),
    /// See [`Check`]; answer with `handle_verdict` (`true` = still possible).
    Check(Check<'a>),
    /// See [`Score`]; answer with `handle_score`.
    Score(Score<'a>),
    /// See [`Reformulate`]; answer with `handle_reformulated`.
    Reformulate(Reformulate<'a>),
    /// See [`Batch`]: one forward over several sequences; answer with `handle_logits`.
    Batch(Batch<'a>),
    /// Decoding is finished; `tokens()` of the decoder holds the image.
    Done,
}

impl<'a> Action<'a> {
    /// Number of logits rows the answer to this action must contain, if it is a forward.
    pub fn logits_rows(&self) -> Option<usize> {
        match self {
            Action::Prefill(p) => Some(p.guidance.variants()),
            Action::Target(r) => Some(r.inputs.len() * r.guidance.variants()),
            Action::Draft(r) => Some(r.inputs.len() * r.guidance.variants()),
            Action::Batch(b) => Some(b.logits_rows()),
            _ => None,
        }
    }

    /// The model a forward action runs (`None` for the other actions).
    pub fn model(&self) -> Option<Model> {
        match self {
            Action::Prefill(_) | Action::Target(_) => Some(Model::Target),
            Action::Draft(_) => Some(Model::Drafter),
            Action::Batch(b) => Some(b.model()),
            _ => None,
        }
    }

    /// This action as a single group, if it is a single forward.
    pub fn as_group(&self) -> Option<Group<'a>> {
        match *self {
            Action::Prefill(p) => Some(Group::Prefill(p)),
            Action::Target(r) => Some(Group::Target(r)),
            Action::Draft(r) => Some(Group::Draft(r)),
            _ => None,
        }
    }

    /// The groups of a forward action in answer order (a single forward is one group; empty for
    /// the other actions).
    pub fn groups(&self) -> GroupIter<'a> {
        GroupIter {
            single: self.as_group(),
            batch: match *self {
                Action::Batch(b) => Some(b),
                _ => None,
            },
            next: 0,
        }
    }

    /// Short name of the action kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Prefill(_) => "prefill",
            Action::Target(_) => "target",
            Action::Draft(_) => "draft",
            Action::Check(_) => "check",
            Action::Score(_) => "score",
            Action::Reformulate(_) => "reformulate",
            Action::Batch(_) => "batch",
            Action::Done => "done",
        }
    }
}
