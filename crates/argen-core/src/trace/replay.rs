//! Replay checking: re-run a decoder while comparing, record by record, with a stored trace, and
//! report the first divergence precisely.
//!
//! Within a step the fields are compared in causal order — kind, sequence, flags, items, aux,
//! action digest (what the decoder asked for), answer (what the host said), committed count and
//! token digest (what the decoder decided) — so the reported field is the earliest thing that
//! differs. After the last step the footer is compared: stats, result sequence, final tokens.

use super::format::Record;
use super::reader::Trace;
use super::record::Builder;
use super::stats_fields;
use crate::backend::Backend;
use crate::decode::{drive, Action, Answered, Decoder, Host, Observer, Stats};
use core::fmt;

/// Where a divergence was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Location {
    /// In the header ([`Trace::check_header`]).
    Header,
    /// At this step (0-based record number).
    Step(u32),
    /// In the footer (final stats and tokens).
    Footer,
}

/// Which field diverged. `expected` and `found` of the [`Divergence`] hold its value (kinds as
/// their record byte, `0` meaning "no action": one run ended where the other went on; flags as the
/// record's flag byte; names as their [`super::Fnv64`] digest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Field {
    /// Header: RNG scheme version.
    RngScheme,
    /// Header: decoder name.
    DecoderName,
    /// Header: configuration hash.
    ConfigHash,
    /// Header: seed.
    Seed,
    /// Header: image tokens.
    ImageTokens,
    /// Step: action kind.
    Kind,
    /// Step: sequence.
    Seq,
    /// Step: flags (new step, guidance variants).
    Flags,
    /// Step: tokens or inputs of the action.
    Items,
    /// Step: keep length, commit count or rows.
    Aux,
    /// Step: digest of the action's content.
    ActionDigest,
    /// Step: the host's answer.
    Answer,
    /// Step: committed token count after the answer.
    Committed,
    /// Step: digest of the committed tokens after the answer.
    TokenDigest,
    /// Footer: a scalar [`Stats`] field, by name.
    Stat(&'static str),
    /// Footer: a bucket of [`Stats::accepted_hist`].
    AcceptedHist(u32),
    /// Footer: the result sequence.
    ResultSeq,
    /// Footer: the number of final tokens.
    FinalTokenCount,
    /// Footer: the final token at this raster index.
    FinalToken(u32),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Field::RngScheme => f.write_str("RNG scheme version"),
            Field::DecoderName => f.write_str("decoder name (digest)"),
            Field::ConfigHash => f.write_str("config hash"),
            Field::Seed => f.write_str("seed"),
            Field::ImageTokens => f.write_str("image token count"),
            Field::Kind => f.write_str("action kind (0 = none)"),
            Field::Seq => f.write_str("sequence"),
            Field::Flags => f.write_str("flags"),
            Field::Items => f.write_str("action items (tokens / inputs)"),
            Field::Aux => f.write_str("action aux count (keep / commit / rows)"),
            Field::ActionDigest => f.write_str("action digest"),
            Field::Answer => f.write_str("host answer"),
            Field::Committed => f.write_str("committed token count"),
            Field::TokenDigest => f.write_str("committed token digest"),
            Field::Stat(name) => write!(f, "stats.{name}"),
            Field::AcceptedHist(i) => write!(f, "stats.accepted_hist[{i}]"),
            Field::ResultSeq => f.write_str("result sequence"),
            Field::FinalTokenCount => f.write_str("final token count"),
            Field::FinalToken(i) => write!(f, "final token {i}"),
        }
    }
}

/// The first difference between a stored trace (expected) and a run (found).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Divergence {
    /// Where.
    pub at: Location,
    /// Which field.
    pub field: Field,
    /// The trace's value.
    pub expected: u64,
    /// The run's value.
    pub found: u64,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Location::Header => f.write_str("header")?,
            Location::Step(s) => write!(f, "step {s}")?,
            Location::Footer => f.write_str("footer")?,
        }
        if self.field.is_hex() {
            write!(
                f,
                ": {} differs: trace has {:#x}, run gives {:#x}",
                self.field, self.expected, self.found
            )
        } else {
            write!(
                f,
                ": {} differs: trace has {}, run gives {}",
                self.field, self.expected, self.found
            )
        }
    }
}

impl Field {
    /// Whether the field's values are digests or bit patterns (shown in hexadecimal).
    pub fn is_hex(&self) -> bool {
        matches!(
            self,
            Field::DecoderName
                | Field::ConfigHash
                | Field::ActionDigest
                | Field::TokenDigest
                | Field::Answer
                | Field::Flags
        )
    }
}

/// Compares two records of step `step`.
pub(crate) fn compare(step: u32, expected: &Record, found: &Record) -> Option<Divergence> {
    let flags = |r: &Record| (r.new_step as u64) | ((r.variants as u64) << 1);
    let fields = [
        (Field::Kind, expected.kind as u64, found.kind as u64),
        (Field::Seq, expected.seq as u64, found.seq as u64),
        (Field::Flags, flags(expected), flags(found)),
        (Field::Items, expected.items as u64, found.items as u64),
        (Field::Aux, expected.aux as u64, found.aux as u64),
        (
            Field::ActionDigest,
            expected.action_digest,
            found.action_digest,
        ),
        (Field::Answer, expected.answer as u64, found.answer as u64),
        (
            Field::Committed,
            expected.committed as u64,
            found.committed as u64,
        ),
        (
            Field::TokenDigest,
            expected.token_digest,
            found.token_digest,
        ),
    ];
    fields
        .into_iter()
        .find(|(_, e, f)| e != f)
        .map(|(field, expected, found)| Divergence {
            at: Location::Step(step),
            field,
            expected,
            found,
        })
}

/// An [`Observer`] that compares a run with a stored trace, step by step, and keeps the first
/// divergence. Use it with [`drive`] (or your own loop), then call [`Replayer::finish`].
#[derive(Clone, Debug)]
pub struct Replayer<'t> {
    trace: Trace<'t>,
    step: u32,
    builder: Builder,
    divergence: Option<Divergence>,
}

impl<'t> Replayer<'t> {
    /// A checker against `trace` (header not included: see [`Trace::check_header`]).
    pub fn new(trace: Trace<'t>) -> Self {
        Replayer {
            trace,
            step: 0,
            builder: Builder::default(),
            divergence: None,
        }
    }

    /// Steps observed so far.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// The first divergence so far.
    pub fn divergence(&self) -> Option<Divergence> {
        self.divergence
    }

    /// Ends the check once the run is over: the first divergence of the steps, or a trace that
    /// has more steps than the run, or the first footer difference with `decoder`'s final stats
    /// and tokens.
    pub fn finish<D: Decoder>(self, decoder: &D) -> Result<(), Divergence> {
        if let Some(d) = self.divergence {
            return Err(d);
        }
        if let Some(r) = self.trace.record(self.step) {
            return Err(Divergence {
                at: Location::Step(self.step),
                field: Field::Kind,
                expected: r.kind as u64,
                found: 0,
            });
        }
        let footer = |field, expected: u64, found: u64| {
            if expected != found {
                Err(Divergence {
                    at: Location::Footer,
                    field,
                    expected,
                    found,
                })
            } else {
                Ok(())
            }
        };
        let stats = decoder.stats();
        for ((name, e), (_, f)) in stats_fields(self.trace.stats())
            .into_iter()
            .zip(stats_fields(&stats))
        {
            footer(Field::Stat(name), e as u64, f as u64)?;
        }
        for (i, (&e, &f)) in self
            .trace
            .stats()
            .accepted_hist
            .iter()
            .zip(stats.accepted_hist.iter())
            .enumerate()
        {
            footer(Field::AcceptedHist(i as u32), e as u64, f as u64)?;
        }
        let seq = decoder.result_seq();
        footer(Field::ResultSeq, self.trace.result_seq() as u64, seq as u64)?;
        let tokens = decoder.tokens(seq);
        for (i, (e, &f)) in self.trace.tokens().zip(tokens).enumerate() {
            footer(Field::FinalToken(i as u32), e as u64, f as u64)?;
        }
        footer(
            Field::FinalTokenCount,
            self.trace.token_count() as u64,
            tokens.len() as u64,
        )
    }
}

impl Observer for Replayer<'_> {
    fn before(&mut self, action: &Action<'_>) {
        self.builder.before(action);
    }

    fn answered(&mut self, answer: Answered) {
        self.builder.answered(answer);
    }

    fn after<D: Decoder>(&mut self, decoder: &D) {
        let Some(found) = self.builder.after(decoder) else {
            return;
        };
        let step = self.step;
        self.step = self.step.saturating_add(1);
        if self.divergence.is_some() {
            return;
        }
        self.divergence = match self.trace.record(step) {
            Some(expected) => compare(step, &expected, &found),
            None => Some(Divergence {
                at: Location::Step(step),
                field: Field::Kind,
                expected: 0,
                found: found.kind as u64,
            }),
        };
    }
}

/// Why a replay failed.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplayError<E> {
    /// The run differs from the trace; the first difference.
    Diverged(Divergence),
    /// The run itself failed (host or decoder error) before any divergence was seen.
    Run(E),
}

impl<E: fmt::Display> fmt::Display for ReplayError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Diverged(d) => write!(f, "replay diverged at {d}"),
            ReplayError::Run(e) => write!(f, "replay run failed: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl<E: fmt::Debug + fmt::Display> std::error::Error for ReplayError<E> {}

/// Drives `decoder` against `host` to completion while checking every step and the footer
/// against `trace` (check the header separately with [`Trace::check_header`]). Returns the run's
/// stats when it reproduces the trace exactly.
///
/// If the run fails after a divergence was seen, the divergence is reported (it is the earlier
/// cause).
pub fn replay<D, B, H>(
    decoder: &mut D,
    backend: &mut B,
    host: &mut H,
    trace: &Trace<'_>,
) -> Result<Stats, ReplayError<H::Error>>
where
    D: Decoder,
    B: Backend,
    H: Host<B>,
{
    let mut checker = Replayer::new(*trace);
    match drive(decoder, backend, host, &mut checker) {
        Ok(stats) => match checker.finish(decoder) {
            Ok(()) => Ok(stats),
            Err(d) => Err(ReplayError::Diverged(d)),
        },
        Err(e) => match checker.divergence() {
            Some(d) => Err(ReplayError::Diverged(d)),
            None => Err(ReplayError::Run(e)),
        },
    }
}
