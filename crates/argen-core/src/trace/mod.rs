//! Replay traces: a compact, versioned binary record of a decoding run, and a checker that re-runs
//! a decoder against a stored trace and reports the first divergence.
//!
//! A trace holds one fixed-size record per action the host answered (what the decoder asked for,
//! as a digest, and what it had committed afterwards, as a digest), then the final [`Stats`] and
//! tokens. Two runs with the same trace made the same decisions in the same order; a run that
//! differs is caught at the first action where it differs ([`replay`], [`Replayer`]).
//!
//! * Record with [`Recorder`] (an [`Observer`](crate::decode::Observer) for
//!   [`drive`](crate::decode::drive)) into any [`Sink`]: a caller's `&mut [u8]` ([`SliceSink`], which
//!   reports the size it would have needed on overflow) or, with `alloc`, a `Vec<u8>`.
//! * Read with [`Trace::parse`] from `&[u8]`: it validates everything up front (typed
//!   [`TraceError`]s, never a panic) and then iterates records without allocating.
//! * Check with [`replay`] (or [`Replayer`] in your own loop) and [`Trace::check_header`].
//!
//! Writer, reader and checker need no allocator.
//!
//! # Format, version 2
//!
//! Version 2 (protocol v2) adds the batch record (kind 7) for [`Action::Batch`](crate::decode::Action::Batch);
//! everything else is as in version 1, and the reader reads both (a version 1 file with a batch
//! record is rejected).
//!
//! All integers are little-endian, without padding. A file is a header, zero or more records, a
//! footer, and a checksum; nothing may follow the checksum.
//!
//! ## Header (`37 + L` bytes)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic, ASCII `ARGTRACE` (`41 52 47 54 52 41 43 45`) |
//! | 8 | 2 | format version, `u16` = [`FORMAT_VERSION`] (2; 1 is read too) |
//! | 10 | 2 | record size, `u16` = [`RECORD_LEN`] (40) |
//! | 12 | 4 | RNG scheme version, `u32` ([`crate::rng::SCHEME_VERSION`] of the writer) |
//! | 16 | 8 | config hash, `u64` (caller-supplied, usually [`config_hash`]) |
//! | 24 | 8 | seed, `u64` |
//! | 32 | 4 | image tokens of the configuration, `u32` |
//! | 36 | 1 | `L`, length of the decoder name, 1 ..= [`MAX_NAME_LEN`] (64) |
//! | 37 | L | decoder name, UTF-8 (for example `speculative-tree-lantern`) |
//!
//! A reader checks the magic, then the format version (a different version is
//! [`TraceError::UnsupportedVersion`], whatever follows), then the record size.
//!
//! ## Record (40 bytes, one per answered action, in order)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | action kind: 1 prefill, 2 target, 3 draft, 4 check, 5 score, 6 reformulate, 7 batch |
//! | 1 | 1 | flags: bit 0 = the draft run starts a new step (draft) or the batch runs the drafter (batch), 0 otherwise; bits 1–2 = guidance variants (1–3 for prefill, target, draft; 0 otherwise); bits 3–7 zero |
//! | 2 | 2 | reserved, zero |
//! | 4 | 4 | sequence |
//! | 8 | 4 | `items`: prefill, check, score: tokens; target, draft: inputs; batch: groups; reformulate: 0 |
//! | 12 | 4 | `aux`: target: keep-list length; draft: commit count; check, reformulate: rows; others: 0 |
//! | 16 | 4 | answer: logits rows (prefill, target, draft); verdict 0 or 1 (check); score as `f32` bits (score); 0 (reformulate) |
//! | 20 | 4 | tokens the decoder had committed for that sequence after handling the answer (batch: the sum over its first 64 groups' sequences) |
//! | 24 | 8 | action digest (below) |
//! | 32 | 8 | token digest: [`Fnv64`] of those committed tokens, each as 4 little-endian bytes (batch: of each of its first 64 groups' sequence id and committed-token slice, in group order) |
//!
//! The kind byte of a record is never `0xFF`; `0xFF` starts the footer.
//!
//! ## Footer (`192 + 4·M` bytes)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | tag `0xFF` |
//! | 1 | 3 | reserved, zero |
//! | 4 | 4 | number of records, `u32` (must equal the records present) |
//! | 8 | 44 | [`Stats`]: `tokens`, `target_forwards`, `target_rows`, `prefills`, `draft_forwards`, `draft_rows`, `verify_steps`, `skipped_steps`, `verifier_calls`, `scorer_calls`, `reformulations`, each `u32` |
//! | 52 | 128 | `Stats::accepted_hist`, 32 × `u32` |
//! | 180 | 4 | result sequence, `u32` |
//! | 184 | 4 | `M`, final token count, `u32` |
//! | 188 | 4·M | final tokens, `u32` each |
//! | 188 + 4·M | 4 | checksum: CRC-32 of every preceding byte of the file, header included |
//!
//! The checksum is CRC-32/ISO-HDLC (the zlib / PNG / Ethernet CRC: reflected polynomial
//! `0xEDB88320`, initial value and final XOR `0xFFFFFFFF`; `"123456789"` → `0xCBF43926`), see
//! [`Crc32`]. A file's size is thus `37 + L + 40·R + 192 + 4·M` bytes ([`trace_len`]).
//!
//! ## Digests
//!
//! Digests are 64-bit FNV-1a ([`Fnv64`]: offset basis `0xcbf29ce484222325`, prime
//! `0x100000001b3`, one byte at a time) over a canonical byte encoding. Integers are little-endian
//! `u32` unless noted, `f32` as its IEEE bits (`u32`), booleans one byte 0 or 1, and every slice
//! is its length (`u32`) followed by its elements. A *guidance* is a tag byte (0 none, 1 two-way,
//! 2 three-way) followed by its parameter's bits (`0` for none). The action digest covers:
//!
//! * every action but a batch: kind byte (as in records), sequence;
//! * prefill: guidance, tokens;
//! * target: guidance, keep list, inputs (each: token, index, parent);
//! * draft: guidance, `new_step` (byte), commit, inputs (each: token, index, parent, feature tag
//!   byte — 0 condition, 1 target, 2 last-target, 3 draft — and feature value, 0 for condition);
//! * check: rows, tokens;
//! * score: tokens;
//! * reformulate: rows;
//! * batch (kind 7; no sequence — the record's sequence field holds its first group's): the
//!   drafter flag (byte), the group count, then each group's own action digest (`u64`), as if the
//!   group were a single action.
//!
//! The config hash, when computed by [`config_hash`], is the [`Fnv64`] of the configuration's
//! [`StableEncode`] encoding (documented on each implementation).
//!
//! # Versioning
//!
//! A change to any byte of the layout or of a digest's encoding is a new [`FORMAT_VERSION`]; a
//! change to the RNG scheme shows in the header's scheme field. A golden trace that no longer
//! replays is a deliberate, reviewed act (see `fixtures/traces/README.md`).

mod format;
mod hash;
mod reader;
mod record;
mod replay;
mod writer;

pub use format::{ActionKind, Header, Record};
pub use hash::{config_hash, Crc32, Fnv64, StableEncode};
pub use reader::{Records, Trace};
pub use record::Recorder;
pub use replay::{replay, Divergence, Field, Location, ReplayError, Replayer};
pub use writer::{trace_len, Sink, SliceSink, TraceWriter};

use crate::decode::Stats;
use core::fmt;

/// Magic bytes at offset 0.
pub const MAGIC: [u8; 8] = *b"ARGTRACE";
/// The format version this module writes (and the newest it reads).
pub const FORMAT_VERSION: u16 = 2;
/// The oldest format version this module reads. Version 1 is version 2 without batch records.
pub const MIN_FORMAT_VERSION: u16 = 1;
/// Bytes per record.
pub const RECORD_LEN: usize = 40;
/// Bytes of the header before the decoder name.
pub const HEADER_FIXED_LEN: usize = 37;
/// Longest decoder name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Bytes of the footer before the final tokens.
pub const FOOTER_FIXED_LEN: usize = 188;
/// Bytes of the checksum.
pub const CHECKSUM_LEN: usize = 4;
/// Tag byte that starts the footer.
pub const FOOTER_TAG: u8 = 0xFF;

/// Everything that can go wrong writing or reading a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TraceError {
    /// A caller's buffer cannot hold the trace.
    BufferTooSmall {
        /// Bytes the complete trace needs.
        needed: usize,
        /// Bytes the buffer holds.
        capacity: usize,
    },
    /// A [`Sink`] refused bytes.
    Sink {
        /// The sink's explanation.
        reason: &'static str,
    },
    /// The input ends before a structure it announces.
    Truncated {
        /// Bytes the structure needs (from the start of the input).
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// The input does not start with [`MAGIC`].
    BadMagic,
    /// The input is of a format version this reader does not know.
    UnsupportedVersion {
        /// Version in the input.
        found: u16,
        /// Version this reader supports.
        supported: u16,
    },
    /// The header's record size is not [`RECORD_LEN`].
    BadRecordSize {
        /// Record size in the input.
        found: u16,
    },
    /// The decoder name is empty, longer than [`MAX_NAME_LEN`], or not UTF-8.
    BadName {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A record is malformed.
    BadRecord {
        /// Its step number (0-based).
        step: u32,
        /// Its byte offset in the input.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The footer is malformed.
    BadFooter {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Bytes follow the checksum.
    TrailingBytes {
        /// Length the structure implies.
        expected: usize,
        /// Length of the input.
        found: usize,
    },
    /// The stored checksum does not match the content.
    ChecksumMismatch {
        /// Checksum in the input.
        stored: u32,
        /// Checksum of the content.
        computed: u32,
    },
    /// A count does not fit the format's `u32` fields.
    TooLarge {
        /// Which count.
        what: &'static str,
    },
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TraceError::BufferTooSmall { needed, capacity } => write!(
                f,
                "trace buffer too small: the trace needs {needed} bytes, the buffer holds {capacity}"
            ),
            TraceError::Sink { reason } => write!(f, "trace sink failed: {reason}"),
            TraceError::Truncated { needed, found } => write!(
                f,
                "trace truncated: needs at least {needed} bytes, has {found}"
            ),
            TraceError::BadMagic => write!(f, "not an argen trace (magic bytes are not ARGTRACE)"),
            TraceError::UnsupportedVersion { found, supported } => write!(
                f,
                "trace format version {found} is not supported (this reader reads version {supported})"
            ),
            TraceError::BadRecordSize { found } => write!(
                f,
                "trace header gives a record size of {found} bytes, format version 1 has {RECORD_LEN}"
            ),
            TraceError::BadName { reason } => write!(f, "trace decoder name: {reason}"),
            TraceError::BadRecord {
                step,
                offset,
                reason,
            } => write!(f, "trace record of step {step} (byte {offset}): {reason}"),
            TraceError::BadFooter { reason } => write!(f, "trace footer: {reason}"),
            TraceError::TrailingBytes { expected, found } => write!(
                f,
                "trace has {} bytes after its checksum (length {found}, structure ends at {expected})",
                found.saturating_sub(expected)
            ),
            TraceError::ChecksumMismatch { stored, computed } => write!(
                f,
                "trace checksum mismatch: stored {stored:#010x}, content gives {computed:#010x} (file corrupt)"
            ),
            TraceError::TooLarge { what } => {
                write!(f, "trace {what} does not fit the format's u32 field")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TraceError {}

/// The scalar [`Stats`] fields in footer order (without `accepted_hist`).
pub(crate) fn stats_fields(s: &Stats) -> [(&'static str, u32); 11] {
    [
        ("tokens", s.tokens),
        ("target_forwards", s.target_forwards),
        ("target_rows", s.target_rows),
        ("prefills", s.prefills),
        ("draft_forwards", s.draft_forwards),
        ("draft_rows", s.draft_rows),
        ("verify_steps", s.verify_steps),
        ("skipped_steps", s.skipped_steps),
        ("verifier_calls", s.verifier_calls),
        ("scorer_calls", s.scorer_calls),
        ("reformulations", s.reformulations),
    ]
}
