//! The header and record structures of the trace format and their byte encodings (layout in the
//! [parent module](super)).

use super::hash::{Fnv64, StableEncode};
use super::{TraceError, HEADER_FIXED_LEN, MAGIC, MAX_NAME_LEN, RECORD_LEN};
use crate::decode::{Action, Answered, GuidanceMode, Model};

/// What a trace header says about the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header<'a> {
    /// RNG scheme version ([`crate::rng::SCHEME_VERSION`] when written by this crate).
    pub scheme: u32,
    /// Hash of the decoder configuration (see [`super::config_hash`]).
    pub config_hash: u64,
    /// The seed.
    pub seed: u64,
    /// Image tokens of the configuration.
    pub tokens: u32,
    /// Decoder name (1 ..= 64 bytes of UTF-8).
    pub decoder: &'a str,
}

impl<'a> Header<'a> {
    /// A header for the current RNG scheme.
    pub fn new(decoder: &'a str, config_hash: u64, seed: u64, tokens: u32) -> Self {
        Header {
            scheme: crate::rng::SCHEME_VERSION,
            config_hash,
            seed,
            tokens,
            decoder,
        }
    }

    /// Bytes of the encoded header.
    pub fn encoded_len(&self) -> usize {
        HEADER_FIXED_LEN + self.decoder.len()
    }

    pub(crate) fn check_name(name: &str) -> Result<(), TraceError> {
        if name.is_empty() {
            return Err(TraceError::BadName { reason: "empty" });
        }
        if name.len() > MAX_NAME_LEN {
            return Err(TraceError::BadName {
                reason: "longer than 64 bytes",
            });
        }
        Ok(())
    }

    /// The fixed part (36 bytes before the name length byte, plus that byte).
    pub(crate) fn encode_fixed(&self) -> [u8; HEADER_FIXED_LEN] {
        let mut b = [0u8; HEADER_FIXED_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&super::FORMAT_VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&(RECORD_LEN as u16).to_le_bytes());
        b[12..16].copy_from_slice(&self.scheme.to_le_bytes());
        b[16..24].copy_from_slice(&self.config_hash.to_le_bytes());
        b[24..32].copy_from_slice(&self.seed.to_le_bytes());
        b[32..36].copy_from_slice(&self.tokens.to_le_bytes());
        b[36] = self.decoder.len().min(u8::MAX as usize) as u8;
        b
    }
}

/// The kind of an answered action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ActionKind {
    /// [`Action::Prefill`].
    Prefill = 1,
    /// [`Action::Target`].
    Target = 2,
    /// [`Action::Draft`].
    Draft = 3,
    /// [`Action::Check`].
    Check = 4,
    /// [`Action::Score`].
    Score = 5,
    /// [`Action::Reformulate`].
    Reformulate = 6,
    /// [`Action::Batch`] (format version 2).
    Batch = 7,
}

impl ActionKind {
    /// The kind for a byte of a record, if valid.
    pub const fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => ActionKind::Prefill,
            2 => ActionKind::Target,
            3 => ActionKind::Draft,
            4 => ActionKind::Check,
            5 => ActionKind::Score,
            6 => ActionKind::Reformulate,
            7 => ActionKind::Batch,
            _ => return None,
        })
    }

    /// The kind of `action`, or `None` for [`Action::Done`] (never recorded).
    pub fn of(action: &Action<'_>) -> Option<Self> {
        Some(match action {
            Action::Prefill(_) => ActionKind::Prefill,
            Action::Target(_) => ActionKind::Target,
            Action::Draft(_) => ActionKind::Draft,
            Action::Check(_) => ActionKind::Check,
            Action::Score(_) => ActionKind::Score,
            Action::Reformulate(_) => ActionKind::Reformulate,
            Action::Batch(_) => ActionKind::Batch,
            Action::Done => return None,
        })
    }

    /// Whether the action is a model forward (answered with logits).
    pub const fn is_forward(self) -> bool {
        matches!(
            self,
            ActionKind::Prefill | ActionKind::Target | ActionKind::Draft | ActionKind::Batch
        )
    }

    /// The protocol's name of the kind.
    pub const fn name(self) -> &'static str {
        match self {
            ActionKind::Prefill => "prefill",
            ActionKind::Target => "target",
            ActionKind::Draft => "draft",
            ActionKind::Check => "check",
            ActionKind::Score => "score",
            ActionKind::Reformulate => "reformulate",
            ActionKind::Batch => "batch",
        }
    }
}

/// One step of a trace: an answered action and the decoder's state after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Record {
    /// Kind of the action.
    pub kind: ActionKind,
    /// Draft runs: whether the run starts a new drafting step. Batches: whether the batch runs
    /// the drafter.
    pub new_step: bool,
    /// Guidance variants of a single forward (1–3), 0 for batches and other kinds.
    pub variants: u8,
    /// The sequence.
    pub seq: u32,
    /// Tokens (prefill, check, score), inputs (target, draft) or groups (batch); 0 for
    /// reformulate.
    pub items: u32,
    /// Keep-list length (target), commit count (draft), rows (check, reformulate); else 0.
    pub aux: u32,
    /// Logits rows, verdict (0/1) or score bits of the answer; 0 for reformulate.
    pub answer: u32,
    /// Tokens committed for `seq` (batch: for all its sequences) after the decoder handled the
    /// answer.
    pub committed: u32,
    /// Digest of the action's full content.
    pub action_digest: u64,
    /// Digest of the committed tokens of `seq` after the decoder handled the answer.
    pub token_digest: u64,
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn guidance(h: &mut Fnv64, g: &GuidanceMode) {
    g.encode(h);
}

/// The action digest (encoding in the [parent module](super)).
pub fn action_digest(action: &Action<'_>) -> u64 {
    let mut h = Fnv64::new();
    let Some(kind) = ActionKind::of(action) else {
        return h.value();
    };
    h.u8(kind as u8);
    match action {
        Action::Batch(b) => {
            h.bool(b.model() == Model::Drafter);
            h.len(b.len());
            for g in b.iter() {
                h.u64(action_digest(&g.action()));
            }
        }
        Action::Prefill(p) => {
            h.u32(p.seq);
            guidance(&mut h, &p.guidance);
            h.u32s(p.tokens);
        }
        Action::Target(r) => {
            h.u32(r.seq);
            guidance(&mut h, &r.guidance);
            h.u32s(r.keep);
            h.len(r.inputs.len());
            for i in r.inputs {
                h.u32(i.token);
                h.u32(i.index);
                h.u32(i.parent);
            }
        }
        Action::Draft(r) => {
            h.u32(r.seq);
            guidance(&mut h, &r.guidance);
            h.bool(r.new_step);
            h.u32(r.commit);
            h.len(r.inputs.len());
            for i in r.inputs {
                h.u32(i.token);
                h.u32(i.index);
                h.u32(i.parent);
                i.feature.encode(&mut h);
            }
        }
        Action::Check(c) => {
            h.u32(c.seq);
            h.u32(c.rows);
            h.u32s(c.tokens);
        }
        Action::Score(s) => {
            h.u32(s.seq);
            h.u32s(s.tokens);
        }
        Action::Reformulate(r) => {
            h.u32(r.seq);
            h.u32(r.rows);
        }
        Action::Done => {}
    }
    h.value()
}

impl Record {
    /// The part of a record known before the host answers `action` (answer, committed count and
    /// token digest zero); `None` for [`Action::Done`].
    pub fn of_action(action: &Action<'_>) -> Option<Self> {
        let kind = ActionKind::of(action)?;
        let (seq, items, aux, new_step, variants) = match action {
            Action::Prefill(p) => (
                p.seq,
                len32(p.tokens.len()),
                0,
                false,
                p.guidance.variants(),
            ),
            Action::Target(r) => (
                r.seq,
                len32(r.inputs.len()),
                len32(r.keep.len()),
                false,
                r.guidance.variants(),
            ),
            Action::Draft(r) => (
                r.seq,
                len32(r.inputs.len()),
                r.commit,
                r.new_step,
                r.guidance.variants(),
            ),
            Action::Check(c) => (c.seq, len32(c.tokens.len()), c.rows, false, 0),
            Action::Score(s) => (s.seq, len32(s.tokens.len()), 0, false, 0),
            Action::Reformulate(r) => (r.seq, 0, r.rows, false, 0),
            Action::Batch(b) => (
                b.group(0).map_or(0, |g| g.seq()),
                len32(b.len()),
                0,
                b.model() == Model::Drafter,
                0,
            ),
            Action::Done => return None,
        };
        Some(Record {
            kind,
            new_step,
            variants: variants as u8,
            seq,
            items,
            aux,
            answer: 0,
            committed: 0,
            action_digest: action_digest(action),
            token_digest: 0,
        })
    }

    /// The record's answer word for `answer`.
    pub fn answer_word(answer: Answered) -> u32 {
        match answer {
            Answered::Logits { rows } => rows,
            Answered::Verdict(v) => v as u32,
            Answered::Score(s) => s.to_bits(),
            Answered::Reformulated => 0,
        }
    }

    /// The 40-byte encoding.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0] = self.kind as u8;
        b[1] = (self.new_step as u8) | ((self.variants & 3) << 1);
        b[4..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..12].copy_from_slice(&self.items.to_le_bytes());
        b[12..16].copy_from_slice(&self.aux.to_le_bytes());
        b[16..20].copy_from_slice(&self.answer.to_le_bytes());
        b[20..24].copy_from_slice(&self.committed.to_le_bytes());
        b[24..32].copy_from_slice(&self.action_digest.to_le_bytes());
        b[32..40].copy_from_slice(&self.token_digest.to_le_bytes());
        b
    }

    /// Decodes and validates a 40-byte record.
    pub fn decode(b: &[u8; RECORD_LEN]) -> Result<Self, &'static str> {
        let kind = ActionKind::from_byte(b[0]).ok_or("unknown action kind")?;
        let flags = b[1];
        if flags & !7 != 0 {
            return Err("reserved flag bits set");
        }
        let new_step = flags & 1 != 0;
        let variants = (flags >> 1) & 3;
        if new_step && !matches!(kind, ActionKind::Draft | ActionKind::Batch) {
            return Err("new-step flag on an action that is not a draft run or a batch");
        }
        let single_forward = kind.is_forward() && kind != ActionKind::Batch;
        if single_forward != (variants != 0) {
            return Err("guidance variants must be 1-3 for single forwards and 0 otherwise");
        }
        if b[2] != 0 || b[3] != 0 {
            return Err("reserved bytes not zero");
        }
        Ok(Record {
            kind,
            new_step,
            variants,
            seq: le32(b, 4),
            items: le32(b, 8),
            aux: le32(b, 12),
            answer: le32(b, 16),
            committed: le32(b, 20),
            action_digest: le64(b, 24),
            token_digest: le64(b, 32),
        })
    }
}

/// The little-endian `u32` at `at`, or 0 past the end (callers check lengths first).
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

/// The little-endian `u64` at `at`, or 0 past the end (callers check lengths first).
pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

/// The little-endian `u16` at `at`, or 0 past the end.
pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    let mut w = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        w.copy_from_slice(s);
    }
    u16::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_validation() {
        let r = Record {
            kind: ActionKind::Draft,
            new_step: true,
            variants: 2,
            seq: 7,
            items: 3,
            aux: 2,
            answer: 6,
            committed: 11,
            action_digest: 0x0123_4567_89ab_cdef,
            token_digest: 0xfedc_ba98_7654_3210,
        };
        let b = r.encode();
        assert_eq!(Record::decode(&b), Ok(r));
        let mut bad = b;
        bad[0] = 2; // target with a new-step flag
        assert!(Record::decode(&bad).is_err());
        let mut bad = b;
        bad[1] = 0x09;
        assert!(Record::decode(&bad).is_err());
        let mut bad = b;
        bad[3] = 1;
        assert!(Record::decode(&bad).is_err());
        let mut bad = b;
        bad[0] = 4; // check with guidance variants
        bad[1] = 2 << 1;
        assert!(Record::decode(&bad).is_err());
        bad[1] = 0;
        assert!(Record::decode(&bad).is_ok());
        bad[0] = 0xFE;
        assert!(Record::decode(&bad).is_err());
    }
}
