//! Decoding state machines (sans-IO).
//!
//! Each decoder is a state machine that decides tokens while its host runs the models (see
//! [`protocol`] for the contract). Decoders are generic over the [`Backend`] that holds the logits,
//! need no allocator (capacities are const generics), count everything they make the host do
//! ([`Stats`]), and reject out-of-order or malformed answers with a typed error, leaving their state
//! unchanged so that the host can answer again.
//!
//! | decoder | module | paper |
//! |---|---|---|
//! | [`Vanilla`] | [`vanilla`] | one target pass per token |
//! | [`Speculative`] | [`speculative`] | Leviathan et al. 2023; EAGLE-2 (Li et al. 2024) trees |
//! | [`AutoSpeculative`] = [`Speculative`] + [`AutoDraft`] | [`auto_draft`] | cost-aware draft depth per step (Sequoia, SpecDec++, DISCO) |
//! | [`BestOfN`] | [`best_of_n`] | `n` candidates of any inner decoder, scorer's argmax |
//! | [`GridAr`] | [`gridar`] | Park et al. 2025 (GridAR, arXiv:2511.21185) |
//! | [`Vvs`] = [`Speculative`] + [`VvsPolicy`] | [`vvs`] | Dong et al., CVPR 2026 (verification skipping; lossy) |
//! | [`Jacobi`] | [`jacobi`] | Teng et al., ICLR 2025 (speculative Jacobi decoding, no drafter) |
//!
//! [`any`] puts them all behind one serialisable [`DecoderConfig`], its [`Requirements`] (buffer
//! sizes before building) and one decoder type, `AnyDecoder` (feature `alloc`).
//!
//! All randomness is keyed ([`crate::rng`]): at raster index `i` of stream `stream`, vanilla draws
//! the token with key `(seed, stream, SAMPLE, i, 0)`. Test-time-scaling decoders give candidate
//! `c` the sequence id `seq + c` and the stream `stream + c`.

pub mod any;
pub mod auto_draft;
pub mod batch;
pub mod best_of_n;
pub mod driver;
#[cfg(feature = "alloc")]
pub mod features;
pub mod gridar;
pub mod jacobi;
#[cfg(feature = "alloc")]
pub mod mux;
pub mod protocol;
pub mod scoreboard;
pub mod speculative;
pub mod stats;
pub mod vanilla;
pub mod vvs;

#[cfg(feature = "alloc")]
pub use any::{AnyDecoder, SingleDecoder};
pub use any::{
    AutoParams, CriterionConfig, DecoderConfig, JacobiParams, MethodConfig, NeighbourNeeds,
    Requirements, Resources, ScalingConfig, SpeculativeParams, Table, VvsParams, MAX_CANDIDATES,
    MAX_INPUTS, MAX_TOKENS,
};
pub use auto_draft::{AutoDraft, AutoDraftConfig, AutoSpeculative};
pub use batch::{IndexList, Lockstep, RowWindow};
pub use best_of_n::{candidate_config, BestOfN};
pub use driver::{drive, Answer, Answered, Host, NoObserver, Observer};
#[cfg(feature = "alloc")]
pub use features::FeatureStore;
pub use gridar::{pruning_rows, GridAr, GridArConfig, GridArReport, PRUNING_POINTS, RELEASE_W};
pub use jacobi::{Jacobi, JacobiConfig, JacobiInit};
#[cfg(feature = "alloc")]
pub use mux::Mux;
pub use protocol::{
    Action, Batch, Check, DraftInput, DraftRun, FeatureRef, Group, GroupIter, Groups, GuidanceMode,
    Input, Model, Prefill, Reformulate, Score, TargetRun,
};
pub use scoreboard::Scoreboard;
pub use speculative::{
    AlwaysVerify, DraftShape, DraftedStep, PlanStep, Skip, Speculative, SpeculativeConfig,
    VerifyPolicy,
};
pub use stats::Stats;
pub use vanilla::Vanilla;
pub use vvs::{Schedule, Vvs, VvsConfig, VvsPolicy};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::process::SamplerParams;

/// The interface every decoder offers its host.
pub trait Decoder {
    /// The next action. Pure: calling it again without answering returns the same action.
    fn poll(&self) -> Action<'_>;

    /// Answers a [`Action::Prefill`], [`Action::Target`] or [`Action::Draft`] with the logits rows
    /// of the run (layout in [`protocol`]).
    fn handle_logits<B: Backend>(
        &mut self,
        backend: &mut B,
        logits: &B::Logits,
    ) -> Result<(), B::Error>;

    /// Answers an [`Action::Check`]: whether the canvas can still match the prompt.
    fn handle_verdict(&mut self, possible: bool) -> Result<()> {
        let _ = possible;
        Err(unexpected(self.poll(), "verdict"))
    }

    /// Answers an [`Action::Score`] with a finite score, higher is better.
    fn handle_score(&mut self, score: f32) -> Result<()> {
        let _ = score;
        Err(unexpected(self.poll(), "score"))
    }

    /// Answers an [`Action::Reformulate`].
    fn handle_reformulated(&mut self) -> Result<()> {
        Err(unexpected(self.poll(), "reformulated"))
    }

    /// The tokens committed so far for sequence `seq` (empty for an unknown sequence).
    fn tokens(&self, seq: u32) -> &[u32];

    /// The sequence holding the final image once [`Action::Done`] is reached.
    fn result_seq(&self) -> u32;

    /// The sequence ids the decoder uses (one for single-image decoders, `seq .. seq + n` for
    /// `n` candidates). Decoders sharing forwards ([`Mux`]) must use disjoint ids.
    fn sequences(&self) -> core::ops::Range<u32> {
        let s = self.result_seq();
        s..s.saturating_add(1)
    }

    /// The counters so far.
    fn stats(&self) -> Stats;

    /// Distribution rows the backend must hold.
    fn dist_rows_needed(&self) -> usize;

    /// An upper bound on the number of actions before [`Action::Done`]; tests hold decoders to it.
    fn action_bound(&self) -> u32;
}

/// A decoder that can be stopped at a token count, continued, and restarted from a prefix — what
/// GridAR needs of its inner decoders (stages end at row boundaries; a pruned candidate restarts
/// from another's anchor).
pub trait Restartable: Decoder {
    /// Stop (poll returns [`Action::Done`]) once `stop` tokens are committed; `stop` must lie
    /// after the committed tokens and within the image. Raising the stop of a stopped decoder
    /// continues it from its KV cache.
    fn set_stop(&mut self, stop: u32) -> Result<()>;

    /// Drop everything after the condition and restart from `prefix` (the next action is a
    /// [`Action::Prefill`] of `prefix`) with `guidance` from now on. The tokens drawn after a
    /// restart are those an uninterrupted run would draw after the same prefix.
    fn restart(&mut self, prefix: &[u32], guidance: GuidanceMode) -> Result<()>;

    /// Keep the committed tokens but restart from them (a prefill of all of them) with
    /// `guidance` from now on — GridAR's re-prefill after a reformulation.
    fn reguide(&mut self, guidance: GuidanceMode) -> Result<()>;

    /// An upper bound on the actions one restart ([`Restartable::restart`] or
    /// [`Restartable::reguide`], or both before the next action) adds to
    /// [`Decoder::action_bound`] — 0 when the prefill replaces the work it redoes, as for
    /// [`Vanilla`]; a speculative decoder's drafter catches up on the prefix in runs of at most
    /// `T` inputs.
    fn restart_actions(&self) -> u32;
}

/// The protocol error for answering `action` with `found`.
pub fn unexpected(action: Action<'_>, found: &'static str) -> Error {
    let expected = match action {
        Action::Prefill(_) | Action::Target(_) | Action::Draft(_) | Action::Batch(_) => "logits",
        Action::Check(_) => "verdict",
        Action::Score(_) => "score",
        Action::Reformulate(_) => "reformulated",
        Action::Done => "nothing (decoding is done)",
    };
    Error::UnexpectedAnswer { expected, found }
}

/// Settings shared by every decoder.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Config {
    /// The user's seed.
    pub seed: u64,
    /// RNG stream of the (first) sequence.
    pub stream: u32,
    /// Sequence id of the (first) sequence.
    pub seq: u32,
    /// Image tokens to generate (`H · W`).
    pub tokens: u32,
    /// Tokens per raster row (`W`).
    pub width: u32,
    /// Target sampling parameters.
    pub sampler: SamplerParams,
    /// Guidance of the target (and the drafter).
    pub guidance: GuidanceMode,
}

impl Config {
    /// Checks the settings against a token capacity.
    pub fn validate(&self, capacity: usize) -> Result<()> {
        if self.tokens == 0 || self.tokens as usize > capacity {
            return Err(Error::InvalidParameter {
                name: "tokens",
                reason: "must be between 1 and the decoder's capacity",
            });
        }
        if self.width == 0 || self.tokens % self.width != 0 {
            return Err(Error::InvalidParameter {
                name: "width",
                reason: "must be positive and divide the token count",
            });
        }
        match self.guidance {
            GuidanceMode::TwoWay { scale: x } | GuidanceMode::ThreeWay { w: x }
                if !x.is_finite() =>
            {
                return Err(Error::InvalidParameter {
                    name: "guidance",
                    reason: "scale must be finite",
                })
            }
            _ => {}
        }
        Ok(())
    }
}

/// Checks that an answer carries `expected` logits rows.
pub(crate) fn check_rows<B: Backend>(
    backend: &B,
    logits: &B::Logits,
    expected: usize,
) -> Result<(), B::Error> {
    let found = backend.logit_rows(logits);
    if found != expected {
        return Err(Error::LengthMismatch { expected, found }.into());
    }
    Ok(())
}

/// Checks that the backend holds `needed` distribution rows.
pub(crate) fn check_dist_rows<B: Backend>(backend: &B, needed: usize) -> Result<(), B::Error> {
    let found = backend.dist_rows();
    if found < needed {
        return Err(Error::BufferTooSmall { needed, found }.into());
    }
    Ok(())
}
