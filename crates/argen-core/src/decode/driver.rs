//! A generic host loop: drives any [`Decoder`] to completion against a [`Host`].
//!
//! Runtimes that prefer their own loop can ignore this module: it only shows, in one place, the
//! protocol of [`super::protocol`] and enforces each decoder's documented action bound.

use super::{Action, Decoder, Stats};
use crate::backend::Backend;
use crate::error::Error;

/// A host's answer to one action.
#[derive(Debug)]
pub enum Answer<'h, L: ?Sized> {
    /// Logits of a prefill, target or drafter run.
    Logits(&'h L),
    /// Verdict of a [`Action::Check`].
    Verdict(bool),
    /// Score of a [`Action::Score`].
    Score(f32),
    /// A [`Action::Reformulate`] was carried out.
    Reformulated,
}

/// What a host does: run the models and judges an action asks for.
pub trait Host<B: Backend> {
    /// The host's error type.
    type Error: From<B::Error> + From<Error>;

    /// Carries out `action` (never [`Action::Done`]) and returns the answer.
    fn answer(&mut self, action: &Action<'_>) -> Result<Answer<'_, B::Logits>, Self::Error>;
}

/// A summary of a host's answer, as [`Observer::answered`] sees it (the logits themselves stay with
/// the backend).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answered {
    /// Logits with this many rows.
    Logits {
        /// Rows of the answer, as the backend counts them.
        rows: u32,
    },
    /// A verdict.
    Verdict(bool),
    /// A score.
    Score(f32),
    /// A reformulation was carried out.
    Reformulated,
}

impl Answered {
    /// The summary of `answer`.
    pub fn of<B: Backend>(backend: &B, answer: &Answer<'_, B::Logits>) -> Self {
        match *answer {
            Answer::Logits(l) => Answered::Logits {
                rows: u32::try_from(backend.logit_rows(l)).unwrap_or(u32::MAX),
            },
            Answer::Verdict(v) => Answered::Verdict(v),
            Answer::Score(s) => Answered::Score(s),
            Answer::Reformulated => Answered::Reformulated,
        }
    }
}

/// Observes each action before it is carried out, the host's answer, and the decoder after it
/// handled the answer (used to record and replay traces, see [`crate::trace`]).
pub trait Observer {
    /// Called with each action, before the host answers it.
    fn before(&mut self, action: &Action<'_>);
    /// Called with a summary of the host's answer, before the decoder handles it. The default
    /// does nothing.
    fn answered(&mut self, answer: Answered) {
        let _ = answer;
    }
    /// Called after the decoder handled the answer.
    fn after<D: Decoder>(&mut self, decoder: &D);
}

/// Two observers, called in order (e.g. a progress display and a trace recorder).
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn before(&mut self, action: &Action<'_>) {
        self.0.before(action);
        self.1.before(action);
    }
    fn answered(&mut self, answer: Answered) {
        self.0.answered(answer);
        self.1.answered(answer);
    }
    fn after<D: Decoder>(&mut self, decoder: &D) {
        self.0.after(decoder);
        self.1.after(decoder);
    }
}

impl<O: Observer + ?Sized> Observer for &mut O {
    fn before(&mut self, action: &Action<'_>) {
        (**self).before(action);
    }
    fn answered(&mut self, answer: Answered) {
        (**self).answered(answer);
    }
    fn after<D: Decoder>(&mut self, decoder: &D) {
        (**self).after(decoder);
    }
}

/// An observer that does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn before(&mut self, _: &Action<'_>) {}
    fn after<D: Decoder>(&mut self, _: &D) {}
}

/// Runs `decoder` until [`Action::Done`]; returns its stats. Fails with
/// [`Error::StepBoundExceeded`] if the decoder issues more actions than its
/// [`Decoder::action_bound`].
pub fn drive<D, B, H>(
    decoder: &mut D,
    backend: &mut B,
    host: &mut H,
    observer: &mut impl Observer,
) -> Result<Stats, H::Error>
where
    D: Decoder,
    B: Backend,
    H: Host<B>,
{
    let bound = decoder.action_bound();
    for _ in 0..=bound {
        let action = decoder.poll();
        if action == Action::Done {
            return Ok(decoder.stats());
        }
        observer.before(&action);
        let answer = host.answer(&action)?;
        observer.answered(Answered::of(backend, &answer));
        match answer {
            Answer::Logits(l) => decoder.handle_logits(backend, l)?,
            Answer::Verdict(v) => decoder.handle_verdict(v)?,
            Answer::Score(s) => decoder.handle_score(s)?,
            Answer::Reformulated => decoder.handle_reformulated()?,
        }
        observer.after(decoder);
    }
    Err(Error::StepBoundExceeded { bound }.into())
}
