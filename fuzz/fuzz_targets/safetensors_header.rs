//! cargo +nightly fuzz run safetensors_header fuzz/corpus/safetensors_header
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = argen_model::safetensors::parse_header(data) {
        // Every accepted entry must lie inside the file.
        for t in h.tensors.values() {
            assert!(h.data_start + t.end <= data.len());
        }
    }
    let _ = argen_model::safetensors::SafeTensors::from_bytes("fuzz", data.to_vec());
});
