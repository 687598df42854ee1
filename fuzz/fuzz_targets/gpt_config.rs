//! cargo +nightly fuzz run gpt_config fuzz/corpus/gpt_config
//!
//! `gpt.json`: any input parses or is refused; an accepted config's derived sizes are computed
//! without overflow (cargo-fuzz builds with overflow checks) and within the documented bounds.
#![no_main]
use argen_model::config::MAX_PARAMS;
use argen_model::GptConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = GptConfig::from_json(std::path::Path::new("fuzz"), text) {
        let g = c.grid();
        assert_eq!(g * g, c.block_size);
        assert!(c.checked_param_count().is_some());
        assert!(c.param_count() as u64 <= MAX_PARAMS);
        let _ = (c.ffn_hidden(), c.qkv_dim(), c.class_rows(), c.head_dim(), c.kv_heads());
    }
});
