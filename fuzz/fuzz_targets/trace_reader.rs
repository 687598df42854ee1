//! Fuzzes the replay-trace reader: any input must give a trace or a typed error, never a panic,
//! and a trace that parses must be fully usable. Each input is parsed as given and again with its
//! last four bytes replaced by the correct CRC-32, so that mutations reach the structural checks
//! behind the checksum.
#![no_main]

use argen_core::trace::{Crc32, Header, Record, Trace};
use libfuzzer_sys::fuzz_target;

fn exercise(data: &[u8]) {
    let Ok(trace) = Trace::parse(data) else {
        return;
    };
    let mut n = 0u32;
    for r in trace.records() {
        assert_eq!(Record::decode(&r.encode()), Ok(r));
        n += 1;
    }
    assert_eq!(n, trace.record_count());
    assert!(trace.record(n).is_none());
    assert_eq!(trace.tokens().count() as u32, trace.token_count());
    let _ = trace.token_digest();
    let _ = trace.check_header(&Header::new("vanilla", 0, 0, 0));
    let _ = trace.stats().tokens;
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    if data.len() >= 4 {
        let mut fixed = data.to_vec();
        let at = fixed.len() - 4;
        let crc = Crc32::of(&fixed[..at]);
        fixed[at..].copy_from_slice(&crc.to_le_bytes());
        exercise(&fixed);
    }
});
