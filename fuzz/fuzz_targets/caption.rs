//! cargo +nightly fuzz run caption fuzz/corpus/caption
//!
//! `argen generate --caption`: input = rows (u32 LE), dim (u32 LE), then the file's bytes.
//! The parser never panics; what it accepts is exactly rows × dim finite values.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/argen-cli/src/parse.rs"]
#[allow(dead_code)]
mod parse;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let rows = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let dim = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
    if let Ok(f) = parse::parse_caption(&data[8..], rows, dim) {
        assert_eq!(f.len(), rows * dim);
        assert!(f.iter().all(|x| x.is_finite()));
    }
});
