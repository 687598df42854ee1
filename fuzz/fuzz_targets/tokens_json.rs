//! cargo +nightly fuzz run tokens_json fuzz/corpus/tokens_json
//!
//! `argen decode --tokens`: the parser of `crates/argen-cli/src/parse.rs` (included by path:
//! argen-cli is a binary crate) never panics and never returns more than the cap.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/argen-cli/src/parse.rs"]
#[allow(dead_code)]
mod parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = parse::parse_tokens(data) {
        assert!(t.len() <= parse::MAX_DECODE_TOKENS);
    }
});
