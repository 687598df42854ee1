//! Writing traces into a [`Sink`] without an allocator.

use super::format::{Header, Record};
use super::hash::Crc32;
use super::{
    stats_fields, TraceError, CHECKSUM_LEN, FOOTER_FIXED_LEN, FOOTER_TAG, HEADER_FIXED_LEN,
    RECORD_LEN,
};
use crate::decode::Stats;

/// Where a [`TraceWriter`] puts its bytes, in order; no seeking is needed.
pub trait Sink {
    /// Appends `bytes`.
    fn write(&mut self, bytes: &[u8]) -> Result<(), TraceError>;

    /// Called once after the last byte (for example to report an overflow). The default succeeds.
    fn finish(&mut self) -> Result<(), TraceError> {
        Ok(())
    }
}

/// A [`Sink`] over a caller's buffer. Bytes past its end are counted, not stored, so that
/// [`Sink::finish`] can report the size the trace needs ([`TraceError::BufferTooSmall`]).
#[derive(Debug)]
pub struct SliceSink<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> SliceSink<'a> {
    /// A sink writing into `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceSink { buf, len: 0 }
    }

    /// Bytes written (or, after an overflow, that would have been written).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written, if they all fit.
    pub fn written(&self) -> Option<&[u8]> {
        self.buf.get(..self.len)
    }
}

impl Sink for SliceSink<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), TraceError> {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), TraceError> {
        if self.len > self.buf.len() {
            return Err(TraceError::BufferTooSmall {
                needed: self.len,
                capacity: self.buf.len(),
            });
        }
        Ok(())
    }
}

#[cfg(feature = "alloc")]
impl Sink for alloc::vec::Vec<u8> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), TraceError> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn write(&mut self, bytes: &[u8]) -> Result<(), TraceError> {
        (**self).write(bytes)
    }

    fn finish(&mut self) -> Result<(), TraceError> {
        (**self).finish()
    }
}

/// Exact size in bytes of a trace with a decoder name of `name_len` bytes, `records` records and
/// `tokens` final tokens.
pub const fn trace_len(name_len: usize, records: usize, tokens: usize) -> usize {
    HEADER_FIXED_LEN
        + name_len
        + RECORD_LEN * records
        + FOOTER_FIXED_LEN
        + 4 * tokens
        + CHECKSUM_LEN
}

/// Streams a trace into a [`Sink`]: the header on creation, then [`record`](Self::record) per
/// step, then [`finish`](Self::finish) with the footer and checksum.
///
/// The first error (a bad name, a failing sink) is kept and returned by `finish`; nothing is
/// written after it.
#[derive(Debug)]
pub struct TraceWriter<S: Sink> {
    sink: S,
    crc: Crc32,
    len: usize,
    records: u32,
    error: Option<TraceError>,
}

impl<S: Sink> TraceWriter<S> {
    /// Starts a trace: writes `header` into `sink`.
    pub fn new(sink: S, header: &Header<'_>) -> Self {
        let mut w = TraceWriter {
            sink,
            crc: Crc32::new(),
            len: 0,
            records: 0,
            error: None,
        };
        match Header::check_name(header.decoder) {
            Ok(()) => {
                w.put(&header.encode_fixed());
                w.put(header.decoder.as_bytes());
            }
            Err(e) => w.error = Some(e),
        }
        w
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        match self.sink.write(bytes) {
            Ok(()) => {
                self.crc.update(bytes);
                self.len = self.len.saturating_add(bytes.len());
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Appends one record.
    pub fn record(&mut self, record: &Record) {
        if self.records == u32::MAX {
            self.error.get_or_insert(TraceError::TooLarge {
                what: "record count",
            });
            return;
        }
        self.put(&record.encode());
        self.records += 1;
    }

    /// Records written so far.
    pub fn records(&self) -> u32 {
        self.records
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written (only after a header error).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first error so far, if any.
    pub fn error(&self) -> Option<TraceError> {
        self.error
    }

    /// Writes the footer (final `stats`, the result sequence and its `tokens`) and the checksum;
    /// returns the sink and the trace's length in bytes.
    pub fn finish(
        mut self,
        stats: &Stats,
        result_seq: u32,
        tokens: &[u32],
    ) -> Result<(S, usize), TraceError> {
        let m = u32::try_from(tokens.len()).map_err(|_| TraceError::TooLarge {
            what: "final token count",
        })?;
        let mut fixed = [0u8; FOOTER_FIXED_LEN];
        fixed[0] = FOOTER_TAG;
        fixed[4..8].copy_from_slice(&self.records.to_le_bytes());
        let mut at = 8;
        for (_, v) in stats_fields(stats) {
            fixed[at..at + 4].copy_from_slice(&v.to_le_bytes());
            at += 4;
        }
        for v in stats.accepted_hist {
            fixed[at..at + 4].copy_from_slice(&v.to_le_bytes());
            at += 4;
        }
        fixed[180..184].copy_from_slice(&result_seq.to_le_bytes());
        fixed[184..188].copy_from_slice(&m.to_le_bytes());
        self.put(&fixed);
        for &t in tokens {
            self.put(&t.to_le_bytes());
        }
        let crc = self.crc.value();
        self.put(&crc.to_le_bytes());
        if let Some(e) = self.error {
            return Err(e);
        }
        self.sink.finish()?;
        Ok((self.sink, self.len))
    }
}
