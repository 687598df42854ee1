//! Properties checked by the fuzz targets (`fuzz/`, cargo-fuzz) and by the deterministic
//! corpus-and-mutation test (`tests/prompt_fuzz.rs`), which CI runs on stable.
//!
//! Each function returns `Err` with a description when a property is violated; fuzz targets
//! turn that into a panic (a finding).

use crate::image::RgbImage;
use crate::prompt::grammar::GRAMMAR;
use crate::prompt::{Prompt, MAX_LAYOUT, MAX_SLOTS};
use crate::score::{check_partial, infer_layout, score};
use crate::vocab::{decode, encode, MAX_WORDS};

/// Properties of the prompt parser on arbitrary text:
/// - it returns (no panic); an error's offset lies within the text and its message shows the
///   grammar;
/// - an accepted prompt describes 1–3 objects with at most 3 layout clauses, its canonical text
///   parses back to the same prompt and is a fixed point, its upper-case form parses the same,
///   its encoding fits in [`MAX_WORDS`] and decodes back to it.
pub fn prompt_properties(text: &str) -> Result<(), String> {
    match Prompt::parse(text) {
        Err(e) => {
            if e.offset > text.len() {
                return Err(format!(
                    "offset {} beyond {} bytes for {text:?}",
                    e.offset,
                    text.len()
                ));
            }
            if !e.to_string().contains(GRAMMAR) {
                return Err(format!("error for {text:?} does not show the grammar"));
            }
            Ok(())
        }
        Ok(p) => {
            let n = p.slots().len();
            if !(1..=MAX_SLOTS).contains(&n) || p.layout.len() > MAX_LAYOUT {
                return Err(format!(
                    "{text:?} accepted with {n} objects, {} clauses",
                    p.layout.len()
                ));
            }
            let canon = p.to_string();
            let back = Prompt::parse(&canon).map_err(|e| format!("canonical {canon:?}: {e}"))?;
            if back != p || back.to_string() != canon {
                return Err(format!("{text:?}: canonical {canon:?} does not round-trip"));
            }
            let upper = Prompt::parse(&text.to_ascii_uppercase());
            if upper.as_ref().ok() != Some(&p) {
                return Err(format!(
                    "{text:?}: upper case parses differently: {upper:?}"
                ));
            }
            if p.words().len() > MAX_WORDS {
                return Err(format!("{canon:?} has more than {MAX_WORDS} words"));
            }
            let ids = encode(&p);
            match decode(&ids) {
                Ok(d) if d == p => Ok(()),
                other => Err(format!("{canon:?}: ids {ids:?} decode to {other:?}")),
            }
        }
    }
}

/// Properties of image input on arbitrary bytes: decoding returns (no panic); a decoded image
/// that is not a square of 32–1024 px is refused by the scorer with an error; a square one is
/// scored, verified and reformulated without error for every `rows_known` tried.
pub fn png_properties(bytes: &[u8]) -> Result<(), String> {
    let Ok(img) = RgbImage::from_png_bytes(bytes) else {
        return Ok(());
    };
    let prompt = Prompt::parse("a red circle left of a blue square, the red circle on the left")
        .map_err(|e| e.to_string())?;
    let (w, h) = (img.width(), img.height());
    let ok_size = w == h && (32..=1024).contains(&w);
    match score(&prompt, &img) {
        Ok(_) if !ok_size => return Err(format!("{w}x{h} image was scored")),
        Err(e) if ok_size => return Err(format!("{w}x{h} image refused: {e}")),
        _ => {}
    }
    if ok_size {
        for rows in [0, h / 4, h / 2, h] {
            check_partial(&prompt, &img, rows).map_err(|e| e.to_string())?;
            infer_layout(&prompt, &img, rows).map_err(|e| e.to_string())?;
        }
        if check_partial(&prompt, &img, h + 1).is_ok() {
            return Err("rows_known beyond the image accepted".into());
        }
    }
    Ok(())
}
