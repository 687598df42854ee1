//! Recording a run: an [`Observer`] that writes one record per answered action.

use super::format::{ActionKind, Header, Record};
use super::hash::Fnv64;
use super::writer::{Sink, TraceWriter};
use super::TraceError;
use crate::decode::{Action, Answered, Decoder, Observer};

/// Builds records from the observer callbacks; shared by [`Recorder`] and the replay checker.
#[derive(Clone, Debug, Default)]
pub(crate) struct Builder {
    pending: Option<Record>,
    /// The sequences of a batch (the first [`BATCH_SEQS`] of them).
    seqs: heapless::Vec<u32, BATCH_SEQS>,
}

/// Sequences of a batch whose committed tokens a record covers.
pub const BATCH_SEQS: usize = 64;

impl Builder {
    pub(crate) fn before(&mut self, action: &Action<'_>) {
        self.pending = Record::of_action(action);
        self.seqs.clear();
        if let Action::Batch(b) = action {
            for g in b.iter().take(BATCH_SEQS) {
                let _ = self.seqs.push(g.seq());
            }
        }
    }

    pub(crate) fn answered(&mut self, answer: Answered) {
        if let Some(r) = self.pending.as_mut() {
            r.answer = Record::answer_word(answer);
        }
    }

    /// The complete record once the decoder handled the answer.
    pub(crate) fn after<D: Decoder>(&mut self, decoder: &D) -> Option<Record> {
        let mut r = self.pending.take()?;
        if r.kind == ActionKind::Batch {
            let mut h = Fnv64::new();
            let mut committed = 0u32;
            for &seq in &self.seqs {
                let tokens = decoder.tokens(seq);
                committed =
                    committed.saturating_add(u32::try_from(tokens.len()).unwrap_or(u32::MAX));
                h.u32(seq);
                h.u32s(tokens);
            }
            r.committed = committed;
            r.token_digest = h.value();
            return Some(r);
        }
        let tokens = decoder.tokens(r.seq);
        r.committed = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
        r.token_digest = Fnv64::of_tokens(tokens);
        Some(r)
    }
}

/// Records a run driven by [`drive`](crate::decode::drive) into a [`Sink`].
///
/// ```
/// # use argen_core::trace::{Header, Recorder, SliceSink};
/// # fn demo<D: argen_core::decode::Decoder>(decoder: &D) {
/// let mut buf = [0u8; 4096];
/// let mut recorder = Recorder::new(SliceSink::new(&mut buf), &Header::new("vanilla", 0, 1, 16));
/// // drive(&mut decoder, &mut backend, &mut host, &mut recorder)?;
/// let (_sink, len) = recorder.finish(decoder).unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct Recorder<S: Sink> {
    writer: TraceWriter<S>,
    builder: Builder,
}

impl<S: Sink> Recorder<S> {
    /// A recorder that writes `header` into `sink` now and the records as the run goes.
    pub fn new(sink: S, header: &Header<'_>) -> Self {
        Recorder {
            writer: TraceWriter::new(sink, header),
            builder: Builder::default(),
        }
    }

    /// Records so far.
    pub fn records(&self) -> u32 {
        self.writer.records()
    }

    /// Writes the footer from `decoder`'s final stats and result tokens; returns the sink and the
    /// trace length in bytes, or the first error of the recording.
    pub fn finish<D: Decoder>(self, decoder: &D) -> Result<(S, usize), TraceError> {
        let seq = decoder.result_seq();
        self.writer
            .finish(&decoder.stats(), seq, decoder.tokens(seq))
    }
}

impl<S: Sink> Observer for Recorder<S> {
    fn before(&mut self, action: &Action<'_>) {
        self.builder.before(action);
    }

    fn answered(&mut self, answer: Answered) {
        self.builder.answered(answer);
    }

    fn after<D: Decoder>(&mut self, decoder: &D) {
        if let Some(r) = self.builder.after(decoder) {
            self.writer.record(&r);
        }
    }
}
