//! ShapesWorld in the engine: prompts as caption features, and the scene-parsing judge
//! (Best-of-N / final scorer, GridAR's verifier and reformulator).
//!
//! Caption features (the format `tools/shapes/train.py` trains with): a prompt's word ids
//! `w[0..36]` ([`argen_shapes::vocab::encode`], pad id 0) become 36 condition rows of 68 values,
//! row `i` one-hot at `w[i]` (dims 0..32) and at `32 + i` (dims 32..68, the word's position —
//! LlamaGen gives condition tokens no rotary position).

use argen_model::{Compute, VqDecoder};
use argen_model::{Condition, GptConfig, Judge, ModelType};
use argen_shapes::perceive::perceive;
use argen_shapes::score::infer_layout_clauses;
use argen_shapes::vocab::{encode, MAX_WORDS};
use argen_shapes::{check_partial, score, Prompt, RgbImage, ScorerConfig};
use serde_json::json;

/// Width of one caption feature row: 32 word dims + 36 position dims.
pub const CAPTION_DIM: usize = 32 + MAX_WORDS;

/// The caption features of `prompt` (`MAX_WORDS × CAPTION_DIM`, row-major).
pub fn caption_features(prompt: &Prompt) -> Vec<f32> {
    let ids = encode(prompt);
    let mut f = vec![0.0f32; MAX_WORDS * CAPTION_DIM];
    for (i, &w) in ids.iter().enumerate() {
        f[i * CAPTION_DIM + w as usize] = 1.0;
        f[i * CAPTION_DIM + 32 + i] = 1.0;
    }
    f
}

/// The conditional and unconditional inputs of a ShapesWorld prompt.
pub fn conditions(prompt: &Prompt) -> (Condition, Condition) {
    (
        Condition::Caption {
            features: Some(caption_features(prompt)),
            pad: 0,
        },
        Condition::Caption {
            features: None,
            pad: 0,
        },
    )
}

/// Checks that `cfg` is a ShapesWorld model (text-conditional on prompt-word features).
pub fn check_model(cfg: &GptConfig) -> Result<(), String> {
    if cfg.model_type != ModelType::T2i
        || cfg.cls_token_num != MAX_WORDS
        || cfg.caption_dim != CAPTION_DIM
    {
        return Err(format!(
            "--prompt needs a ShapesWorld model (text-conditional, {MAX_WORDS} caption tokens of \
             {CAPTION_DIM} features); this model is {} with {} × {}",
            match cfg.model_type {
                ModelType::C2i => "class-conditional (c2i)",
                ModelType::T2i => "text-conditional (t2i)",
            },
            cfg.cls_token_num,
            cfg.caption_dim
        ));
    }
    Ok(())
}

/// Longest prompt echoed whole in an error message.
pub const MAX_ECHO: usize = 80;

/// `text` if it is at most [`MAX_ECHO`] characters, else its start and end around `…`.
pub fn clip(text: &str) -> String {
    let n = text.chars().count();
    if n <= MAX_ECHO {
        return text.to_string();
    }
    let head: String = text.chars().take(MAX_ECHO / 2).collect();
    let tail: String = text.chars().skip(n - MAX_ECHO / 4).collect();
    format!("{head}…{tail} ({n} characters)")
}

/// Parses a prompt; the error lists what the grammar accepts.
pub fn parse_prompt(text: &str) -> Result<Prompt, String> {
    Prompt::parse(text).map_err(|e| {
        // A long prompt is echoed shortened, so that the error stays one readable line.
        let msg = e.to_string().replace('\n', " ");
        if text.chars().count() > MAX_ECHO && !text.is_empty() {
            msg.replace(text, &clip(text))
        } else {
            msg
        }
    })
}

/// Judges candidates of one prompt by parsing their decoded images.
pub struct ShapesJudge<'v, C: Compute> {
    vq: &'v VqDecoder<C>,
    prompt: Prompt,
    grid: usize,
    cfg: ScorerConfig,
}

impl<'v, C: Compute> ShapesJudge<'v, C> {
    /// A judge for `prompt` whose images are decoded by `vq` from `grid × grid` tokens.
    pub fn new(vq: &'v VqDecoder<C>, prompt: Prompt, grid: usize) -> Self {
        let size = grid * vq.config().downsample();
        ShapesJudge {
            vq,
            prompt,
            grid,
            cfg: ScorerConfig::for_canvas(size),
        }
    }

    fn size(&self) -> usize {
        self.grid * self.vq.config().downsample()
    }

    /// The top `rows` token rows decoded and placed on a black canvas of the full size, and the
    /// number of pixel rows that can be trusted (half a token row is kept back from the cut,
    /// where the decoder's convolutions see zero padding instead of the missing rows).
    fn canvas(&self, rows: u32, tokens: &[u32]) -> Result<(RgbImage, usize), String> {
        let rows = rows as usize;
        if rows == 0 || tokens.len() != rows * self.grid {
            return Err(format!(
                "a canvas of {rows} rows needs {} tokens",
                rows * self.grid
            ));
        }
        let img = self
            .vq
            .decode(tokens, rows, self.grid)
            .map_err(|e| e.to_string())?;
        let size = self.size();
        let mut data = img.to_rgb8();
        data.resize(size * size * 3, 0);
        let known = if rows == self.grid {
            size
        } else {
            (img.height).saturating_sub(self.vq.config().downsample() / 2)
        };
        Ok((
            RgbImage::from_raw(size, size, data).map_err(|e| e.to_string())?,
            known,
        ))
    }

    /// Scores a finished image.
    pub fn score_tokens(&self, tokens: &[u32]) -> Result<argen_shapes::Score, String> {
        let (img, _) = self.canvas(self.grid as u32, tokens)?;
        score(&self.prompt, &img).map_err(|e| e.to_string())
    }
}

impl<C: Compute> Judge for ShapesJudge<'_, C> {
    fn check(&mut self, _seq: u32, rows: u32, tokens: &[u32]) -> Result<bool, String> {
        let (img, known) = self.canvas(rows, tokens)?;
        Ok(check_partial(&self.prompt, &img, known)
            .map_err(|e| e.to_string())?
            .is_possible())
    }

    fn score(&mut self, _seq: u32, tokens: &[u32]) -> Result<f32, String> {
        Ok(self.score_tokens(tokens)?.soft as f32)
    }

    fn reformulate(&mut self, _seq: u32, rows: u32, tokens: &[u32]) -> Result<Condition, String> {
        let (img, known) = self.canvas(rows, tokens)?;
        let graph = perceive(&img, known, &self.cfg);
        let clauses = infer_layout_clauses(&self.prompt, &graph, &self.cfg);
        let prompt = self.prompt.with_layout(&clauses);
        Ok(Condition::Caption {
            features: Some(caption_features(&prompt)),
            pad: 0,
        })
    }
}

/// A ShapesWorld score as JSON: the verdicts, the soft score and what the scene parser saw.
pub fn alignment_json(s: &argen_shapes::Score) -> serde_json::Value {
    let v = &s.verdicts;
    json!({
        "aligned": s.aligned,
        "soft": s.soft,
        "count": v.count,
        "shape": v.shape,
        "colour": v.colour,
        "spatial": v.spatial,
        "layout": v.layout,
        "objects": s.scene.objects.len(),
        "detections": s.scene.objects.iter().map(detection_json).collect::<Vec<_>>(),
    })
}

/// What the scorer saw of one object (`shape` null: a blob no shape noun describes).
fn detection_json(d: &argen_shapes::Detection) -> serde_json::Value {
    json!({
        "colour": d.colour.to_string(),
        "shape": d.shape.map(|s| s.to_string()),
        "cx": d.cx,
        "cy": d.cy,
        "width": d.width(),
        "height": d.height(),
        "area": d.area,
        "shape_iou": d.shape_iou,
        "skew": d.skew,
        "dependence": d.dependence,
        "cut": d.cut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_word_and_position_one_hots() {
        let p = parse_prompt("a red circle").unwrap();
        let f = caption_features(&p);
        assert_eq!(f.len(), MAX_WORDS * CAPTION_DIM);
        let ids = encode(&p);
        for i in 0..MAX_WORDS {
            let row = &f[i * CAPTION_DIM..(i + 1) * CAPTION_DIM];
            assert_eq!(row.iter().sum::<f32>(), 2.0);
            assert_eq!(row[ids[i] as usize], 1.0);
            assert_eq!(row[32 + i], 1.0);
        }
    }

    #[test]
    fn bad_prompts_list_the_grammar() {
        let e = parse_prompt("a purple elephant").unwrap_err();
        assert!(e.contains("elephant"), "{e}");
        assert!(e.len() > 80, "the error should show the grammar: {e}");
    }
}
