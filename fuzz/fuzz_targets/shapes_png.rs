//! Fuzzes ShapesWorld image input (PNG decoding, scoring, partial verification):
//! `cargo +nightly fuzz run shapes_png`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = argen_shapes::fuzzing::png_properties(data) {
        panic!("{e}");
    }
});
