//! cargo +nightly fuzz run vq_config fuzz/corpus/vq_config
//!
//! `vq.json`: any input parses or is refused; an accepted config's derived sizes do not
//! overflow.
#![no_main]
use argen_model::VqConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = VqConfig::from_json(std::path::Path::new("fuzz"), text) {
        assert!(c.downsample() <= 128);
        for &m in &c.decoder_ch_mult {
            assert!(m * c.ch <= argen_model::config::MAX_VQ_CHANNELS);
        }
    }
});
