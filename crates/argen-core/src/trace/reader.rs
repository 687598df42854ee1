//! Reading traces from `&[u8]` without an allocator.
//!
//! [`Trace::parse`] validates the whole input once — magic, version, record size, name, every
//! record, the footer, the exact length and the checksum, in that order — so that afterwards
//! records iterate infallibly.

use super::format::{le16, le32, le64, ActionKind, Header, Record};
use super::hash::{Crc32, Fnv64};
use super::{
    TraceError, CHECKSUM_LEN, FOOTER_FIXED_LEN, FOOTER_TAG, FORMAT_VERSION, HEADER_FIXED_LEN,
    MAGIC, MIN_FORMAT_VERSION, RECORD_LEN,
};
use crate::decode::stats::HIST_LEN;
use crate::decode::Stats;

/// A validated trace, borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Trace<'a> {
    header: Header<'a>,
    /// Format version of the input.
    version: u16,
    /// The records region (a multiple of `RECORD_LEN` bytes, every record valid).
    records: &'a [u8],
    /// Offset of the records region in the input.
    records_offset: usize,
    stats: Stats,
    result_seq: u32,
    /// The final tokens, 4 bytes each.
    tokens: &'a [u8],
    checksum: u32,
}

fn need(data: &[u8], end: usize) -> Result<(), TraceError> {
    if data.len() < end {
        return Err(TraceError::Truncated {
            needed: end,
            found: data.len(),
        });
    }
    Ok(())
}

impl<'a> Trace<'a> {
    /// Parses and validates a complete trace.
    pub fn parse(data: &'a [u8]) -> Result<Self, TraceError> {
        need(data, MAGIC.len())?;
        if data[..MAGIC.len()] != MAGIC {
            return Err(TraceError::BadMagic);
        }
        need(data, 10)?;
        let version = le16(data, 8);
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(TraceError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        need(data, HEADER_FIXED_LEN)?;
        let record_size = le16(data, 10);
        if record_size as usize != RECORD_LEN {
            return Err(TraceError::BadRecordSize { found: record_size });
        }
        let name_len = data[36] as usize;
        let name_end = HEADER_FIXED_LEN + name_len;
        need(data, name_end)?;
        let decoder = core::str::from_utf8(&data[HEADER_FIXED_LEN..name_end]).map_err(|_| {
            TraceError::BadName {
                reason: "not UTF-8",
            }
        })?;
        Header::check_name(decoder)?;
        let header = Header {
            scheme: le32(data, 12),
            config_hash: le64(data, 16),
            seed: le64(data, 24),
            tokens: le32(data, 32),
            decoder,
        };

        // Records until the footer tag.
        let mut at = name_end;
        let mut count: u32 = 0;
        loop {
            need(data, at + 1)?;
            if data[at] == FOOTER_TAG {
                break;
            }
            need(data, at + RECORD_LEN)?;
            let mut b = [0u8; RECORD_LEN];
            b.copy_from_slice(&data[at..at + RECORD_LEN]);
            let record = Record::decode(&b).map_err(|reason| TraceError::BadRecord {
                step: count,
                offset: at,
                reason,
            })?;
            if version < 2 && record.kind == ActionKind::Batch {
                return Err(TraceError::BadRecord {
                    step: count,
                    offset: at,
                    reason: "batch record in a format version 1 trace",
                });
            }
            count = count.checked_add(1).ok_or(TraceError::TooLarge {
                what: "record count",
            })?;
            at += RECORD_LEN;
        }
        let records = &data[name_end..at];

        // Footer.
        let footer = at;
        need(data, footer + FOOTER_FIXED_LEN)?;
        let f = &data[footer..footer + FOOTER_FIXED_LEN];
        if f[1..4] != [0, 0, 0] {
            return Err(TraceError::BadFooter {
                reason: "reserved bytes not zero",
            });
        }
        if le32(f, 4) != count {
            return Err(TraceError::BadFooter {
                reason: "record count does not match the records present",
            });
        }
        let mut stats = Stats::default();
        {
            let fields: [&mut u32; 11] = [
                &mut stats.tokens,
                &mut stats.target_forwards,
                &mut stats.target_rows,
                &mut stats.prefills,
                &mut stats.draft_forwards,
                &mut stats.draft_rows,
                &mut stats.verify_steps,
                &mut stats.skipped_steps,
                &mut stats.verifier_calls,
                &mut stats.scorer_calls,
                &mut stats.reformulations,
            ];
            for (i, field) in fields.into_iter().enumerate() {
                *field = le32(f, 8 + 4 * i);
            }
        }
        for (i, h) in stats.accepted_hist.iter_mut().enumerate() {
            *h = le32(f, 52 + 4 * i);
        }
        let result_seq = le32(f, 180);
        let m = le32(f, 184) as usize;
        let tokens_start = footer + FOOTER_FIXED_LEN;
        let tokens_end = m
            .checked_mul(4)
            .and_then(|b| b.checked_add(tokens_start))
            .ok_or(TraceError::BadFooter {
                reason: "final token count overflows",
            })?;
        let end = tokens_end
            .checked_add(CHECKSUM_LEN)
            .ok_or(TraceError::BadFooter {
                reason: "final token count overflows",
            })?;
        need(data, end)?;
        if data.len() > end {
            return Err(TraceError::TrailingBytes {
                expected: end,
                found: data.len(),
            });
        }
        let stored = le32(data, tokens_end);
        let computed = Crc32::of(&data[..tokens_end]);
        if stored != computed {
            return Err(TraceError::ChecksumMismatch { stored, computed });
        }
        Ok(Trace {
            header,
            version,
            records,
            records_offset: name_end,
            stats,
            result_seq,
            tokens: &data[tokens_start..tokens_end],
            checksum: stored,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header<'a> {
        &self.header
    }

    /// The format version of the input ([`MIN_FORMAT_VERSION`] ..= [`FORMAT_VERSION`]).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Number of records (steps).
    pub fn record_count(&self) -> u32 {
        (self.records.len() / RECORD_LEN) as u32
    }

    /// The records, in order.
    pub fn records(&self) -> Records<'a> {
        Records {
            chunks: self.records.chunks_exact(RECORD_LEN),
        }
    }

    /// Record `step`, if present.
    pub fn record(&self, step: u32) -> Option<Record> {
        let at = (step as usize).checked_mul(RECORD_LEN)?;
        let chunk = self.records.get(at..at + RECORD_LEN)?;
        decode_chunk(chunk)
    }

    /// Byte offset of record `step` in the input (whether or not it exists).
    pub fn record_offset(&self, step: u32) -> usize {
        self.records_offset + step as usize * RECORD_LEN
    }

    /// The final stats.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The sequence holding the final image.
    pub fn result_seq(&self) -> u32 {
        self.result_seq
    }

    /// Number of final tokens.
    pub fn token_count(&self) -> u32 {
        (self.tokens.len() / 4) as u32
    }

    /// Final token `i`, if present.
    pub fn token(&self, i: u32) -> Option<u32> {
        let at = (i as usize).checked_mul(4)?;
        self.tokens.get(at..at + 4).map(|b| le32(b, 0))
    }

    /// The final tokens, in order.
    pub fn tokens(&self) -> impl Iterator<Item = u32> + 'a {
        self.tokens.chunks_exact(4).map(|b| le32(b, 0))
    }

    /// Digest of the final tokens ([`Fnv64::of_tokens`]).
    pub fn token_digest(&self) -> u64 {
        let mut h = Fnv64::new();
        h.bytes(self.tokens);
        h.value()
    }

    /// The stored checksum.
    pub fn checksum(&self) -> u32 {
        self.checksum
    }

    /// Compares the stored header (expected) with `found`, the header of the run being checked;
    /// reports the first differing field, in the order RNG scheme, decoder name, config hash,
    /// seed, tokens (names are compared by their [`Fnv64`] digests).
    pub fn check_header(&self, found: &Header<'_>) -> Result<(), super::Divergence> {
        use super::replay::{Divergence, Field, Location};
        let h = &self.header;
        let expected = found;
        let diverge = |field, expected: u64, found: u64| {
            Err(Divergence {
                at: Location::Header,
                field,
                expected,
                found,
            })
        };
        if h.scheme != expected.scheme {
            return diverge(Field::RngScheme, h.scheme as u64, expected.scheme as u64);
        }
        if h.decoder != expected.decoder {
            let digest = |s: &str| {
                let mut f = Fnv64::new();
                f.bytes(s.as_bytes());
                f.value()
            };
            return diverge(
                Field::DecoderName,
                digest(h.decoder),
                digest(expected.decoder),
            );
        }
        if h.config_hash != expected.config_hash {
            return diverge(Field::ConfigHash, h.config_hash, expected.config_hash);
        }
        if h.seed != expected.seed {
            return diverge(Field::Seed, h.seed, expected.seed);
        }
        if h.tokens != expected.tokens {
            return diverge(Field::ImageTokens, h.tokens as u64, expected.tokens as u64);
        }
        Ok(())
    }
}

fn decode_chunk(chunk: &[u8]) -> Option<Record> {
    let b: &[u8; RECORD_LEN] = chunk.try_into().ok()?;
    Record::decode(b).ok()
}

/// Iterator over the records of a [`Trace`] (validated by [`Trace::parse`], so it never fails).
#[derive(Clone, Debug)]
pub struct Records<'a> {
    chunks: core::slice::ChunksExact<'a, u8>,
}

impl Iterator for Records<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        decode_chunk(self.chunks.next()?)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

const _: () = assert!(
    HIST_LEN == 32,
    "trace format v1 stores 32 histogram buckets"
);
