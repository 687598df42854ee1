//! Parsers of the small files a user hands to `argen`: the `--tokens` JSON array and the
//! `--caption` feature file. Pure functions of the bytes (the reading is bounded by
//! [`crate::output::read_bounded`]), fuzzed by `fuzz/fuzz_targets/{tokens_json,caption}.rs`
//! and, deterministically in CI, by `crates/argen-cli/tests/parse_fuzz.rs`.

/// Most token ids `argen decode` accepts (32 × 32: LlamaGen at 512 px).
pub const MAX_DECODE_TOKENS: usize = 1024;

/// Parses a JSON array of token ids (at most [`MAX_DECODE_TOKENS`], each a `u32`). The JSON
/// parser's nesting limit (128) bounds the recursion on hostile input.
pub fn parse_tokens(bytes: &[u8]) -> Result<Vec<u32>, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("not JSON ({e}); expected a JSON array of token ids"))?;
    let arr = v
        .as_array()
        .ok_or_else(|| "expected a JSON array of token ids".to_string())?;
    if arr.len() > MAX_DECODE_TOKENS {
        return Err(format!(
            "{} token ids, more than the limit of {MAX_DECODE_TOKENS} (a 32×32 grid)",
            arr.len()
        ));
    }
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| format!("element {i} is not a token id (an integer ≥ 0)"))
        })
        .collect()
}

/// Decodes caption features: exactly `rows × dim` little-endian `f32` values, all finite.
pub fn parse_caption(bytes: &[u8], rows: usize, dim: usize) -> Result<Vec<f32>, String> {
    let want = rows
        .checked_mul(dim)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| "the model's caption size overflows".to_string())?;
    if bytes.len() != want {
        return Err(format!(
            "{} bytes, expected {} little-endian f32 values ({rows} × {dim})",
            bytes.len(),
            want / 4
        ));
    }
    let features: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = features.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "caption feature {i} is {}; every feature must be finite",
            features[i]
        ));
    }
    Ok(features)
}
