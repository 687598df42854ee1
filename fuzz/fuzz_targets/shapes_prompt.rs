//! Fuzzes the ShapesWorld prompt parser. Seed corpus: the committed prompts, one per file:
//! ```text
//! cd fuzz && mkdir -p corpus/shapes_prompt
//! split -l 1 ../crates/argen-shapes/tests/corpus/prompts.txt corpus/shapes_prompt/p
//! cargo +nightly fuzz run shapes_prompt corpus/shapes_prompt
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = argen_shapes::fuzzing::prompt_properties(text) {
            panic!("{e}");
        }
    }
});
