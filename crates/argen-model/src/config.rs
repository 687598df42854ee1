//! Model configurations: the GPT (c2i / t2i, presets and arbitrary sizes) and the VQ tokenizer.
//!
//! The JSON field names are those of the official LlamaGen `ModelArgs` dataclasses (written by
//! `tools/convert_llamagen.py` and `tools/llamagen.py`), so a config is the dataclass dumped.
//!
//! # Bounds
//!
//! A config file is read only if it is a regular file of at most [`MAX_CONFIG_BYTES`].
//! Validation bounds every size before anything is derived from it, so that every derived size
//! ([`GptConfig::param_count`], [`GptConfig::ffn_hidden`], [`GptConfig::qkv_dim`],
//! [`GptConfig::class_rows`], [`GptConfig::grid`], [`VqConfig::downsample`]) is computed without
//! overflow and no loader reserves memory for an absurd size:
//!
//! | field | bound |
//! |---|---|
//! | `dim`, `caption_dim`, `multiple_of` | ≤ [`MAX_DIM`] (65 536) |
//! | `n_layer` | ≤ [`MAX_LAYERS`] (1 024) |
//! | `n_head` | ≤ `dim` / 4 (a head has at least 4 dims) |
//! | `vocab_size`, `codebook_size` | ≤ [`MAX_VOCAB`] (2^20) |
//! | `num_classes` | ≤ [`MAX_CLASSES`] (2^24) |
//! | `cls_token_num` | ≤ [`MAX_COND_TOKENS`] (4 096) |
//! | `block_size` | ≤ [`MAX_IMAGE_TOKENS`] (65 536, a 256 × 256 grid) |
//! | `ffn_dim_multiplier` | in (0, 64] |
//! | weights ([`GptConfig::param_count`]) | ≤ [`MAX_PARAMS`] (2^40) |
//! | VQ `codebook_embed_dim`, `z_channels`, `ch · mult` | ≤ [`MAX_VQ_CHANNELS`] (8 192) |
//! | VQ `num_res_blocks` | ≤ 16 |
//!
//! The bounds are far above every published LlamaGen model (GPT-7B: dim 4096, 32 layers,
//! vocabulary 16 384, 1 024 image tokens) and far below what overflows 64-bit arithmetic.

use crate::error::{ModelError, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest `dim`, `caption_dim` and `multiple_of`.
pub const MAX_DIM: usize = 1 << 16;
/// Most transformer blocks.
pub const MAX_LAYERS: usize = 1024;
/// Largest vocabulary (GPT `vocab_size`, VQ `codebook_size`).
pub const MAX_VOCAB: usize = 1 << 20;
/// Most classes of a class-conditional model.
pub const MAX_CLASSES: usize = 1 << 24;
/// Most condition tokens.
pub const MAX_COND_TOKENS: usize = 4096;
/// Most image tokens (`block_size`).
pub const MAX_IMAGE_TOKENS: usize = 1 << 16;
/// Most GPT weights.
pub const MAX_PARAMS: u64 = 1 << 40;
/// Widest VQ channel count.
pub const MAX_VQ_CHANNELS: usize = 8192;
/// Most ResNet blocks per VQ level.
pub const MAX_RES_BLOCKS: usize = 16;

/// Conditioning kind of a GPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum ModelType {
    /// Class-conditional (ImageNet classes; one condition token).
    #[serde(rename = "c2i")]
    C2i,
    /// Text-conditional (T5 caption features through `cap_proj`).
    #[serde(rename = "t2i")]
    T2i,
}

fn d_multiple_of() -> usize {
    256
}
fn d_rope_base() -> f32 {
    10000.0
}
fn d_norm_eps() -> f32 {
    1e-5
}
fn d_num_classes() -> usize {
    1000
}
fn d_caption_dim() -> usize {
    2048
}
fn d_class_dropout() -> f32 {
    0.1
}
fn d_vocab() -> usize {
    16384
}
fn d_cls() -> usize {
    1
}
fn d_block() -> usize {
    256
}

/// Hyper-parameters of a LlamaGen GPT (field names as in the official `ModelArgs`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct GptConfig {
    /// `c2i` or `t2i`.
    pub model_type: ModelType,
    /// Model width.
    pub dim: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Number of attention heads.
    pub n_head: usize,
    /// Number of key/value heads (grouped-query attention); `None` = `n_head`.
    #[serde(default)]
    pub n_kv_head: Option<usize>,
    /// SwiGLU hidden size is rounded up to a multiple of this.
    #[serde(default = "d_multiple_of")]
    pub multiple_of: usize,
    /// Optional SwiGLU width multiplier.
    #[serde(default)]
    pub ffn_dim_multiplier: Option<f32>,
    /// RoPE base.
    #[serde(default = "d_rope_base")]
    pub rope_base: f32,
    /// RMSNorm epsilon.
    #[serde(default = "d_norm_eps")]
    pub norm_eps: f32,
    /// Number of classes (c2i).
    #[serde(default = "d_num_classes")]
    pub num_classes: usize,
    /// Caption feature width (t2i).
    #[serde(default = "d_caption_dim")]
    pub caption_dim: usize,
    /// Class / caption dropout of training; > 0 means the class table has a null row.
    #[serde(default = "d_class_dropout")]
    pub class_dropout_prob: f32,
    /// Codebook size.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// Number of condition tokens (1 for c2i, 120 for t2i).
    #[serde(default = "d_cls")]
    pub cls_token_num: usize,
    /// Number of image tokens (a square: 256 for 256 px, 1024 for 512 px).
    #[serde(default = "d_block")]
    pub block_size: usize,
}

impl GptConfig {
    /// Official sizes: `GPT-B`, `GPT-L`, `GPT-XL`, `GPT-XXL`, `GPT-XXXL`, `GPT-1B`, `GPT-3B`,
    /// `GPT-7B`, for `model_type` and `image_tokens` (256 or 1024). c2i gets 1 condition token,
    /// t2i gets 120.
    pub fn preset(name: &str, model_type: ModelType, image_tokens: usize) -> Result<GptConfig> {
        let (n_layer, n_head, dim) = match name {
            "GPT-B" => (12, 12, 768),
            "GPT-L" => (24, 16, 1024),
            "GPT-XL" => (36, 20, 1280),
            "GPT-XXL" => (48, 24, 1536),
            "GPT-XXXL" => (48, 40, 2560),
            "GPT-1B" => (22, 32, 2048),
            "GPT-3B" => (24, 32, 3200),
            "GPT-7B" => (32, 32, 4096),
            _ => {
                return Err(ModelError::Config {
                    path: PathBuf::from("<preset>"),
                    msg: format!("unknown preset `{name}`"),
                })
            }
        };
        let cfg = GptConfig {
            model_type,
            dim,
            n_layer,
            n_head,
            n_kv_head: None,
            multiple_of: 256,
            ffn_dim_multiplier: None,
            rope_base: 10000.0,
            norm_eps: 1e-5,
            num_classes: 1000,
            caption_dim: 2048,
            class_dropout_prob: 0.1,
            vocab_size: 16384,
            cls_token_num: if model_type == ModelType::C2i { 1 } else { 120 },
            block_size: image_tokens,
        };
        cfg.validate(Path::new("<preset>"))?;
        Ok(cfg)
    }

    /// Parses and validates a JSON config.
    pub fn from_json(path: &Path, text: &str) -> Result<GptConfig> {
        let cfg: GptConfig = parse_json(path, text)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads and validates a JSON config file.
    pub fn load(path: impl AsRef<Path>) -> Result<GptConfig> {
        let path = path.as_ref();
        Self::from_json(path, &read_text(path)?)
    }

    /// Checks internal consistency (head sizes, RoPE layout, square grid, ...).
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |msg: String| {
            Err(ModelError::Config {
                path: path.to_path_buf(),
                msg,
            })
        };
        if self.dim == 0 || self.n_layer == 0 || self.n_head == 0 || self.vocab_size == 0 {
            return err("dim, n_layer, n_head and vocab_size must be positive".into());
        }
        for (name, value, max) in [
            ("dim", self.dim, MAX_DIM),
            ("n_layer", self.n_layer, MAX_LAYERS),
            ("multiple_of", self.multiple_of, MAX_DIM),
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("num_classes", self.num_classes, MAX_CLASSES),
            ("caption_dim", self.caption_dim, MAX_DIM),
            ("cls_token_num", self.cls_token_num, MAX_COND_TOKENS),
            ("block_size", self.block_size, MAX_IMAGE_TOKENS),
            ("n_kv_head", self.n_kv_head.unwrap_or(1), self.n_head),
        ] {
            if value > max {
                return err(format!("{name} {value} exceeds the limit {max}"));
            }
        }
        if self.dim % self.n_head != 0 {
            return err(format!(
                "dim {} is not a multiple of n_head {}",
                self.dim, self.n_head
            ));
        }
        if self.head_dim() % 4 != 0 {
            return err(format!(
                "head_dim {} must be a multiple of 4 (2D RoPE rotates pairs in two halves)",
                self.head_dim()
            ));
        }
        let kv = self.kv_heads();
        if kv == 0 || self.n_head % kv != 0 {
            return err(format!(
                "n_head {} is not a multiple of n_kv_head {kv}",
                self.n_head
            ));
        }
        if self.multiple_of == 0 {
            return err("multiple_of must be positive".into());
        }
        if let Some(m) = self.ffn_dim_multiplier {
            if !(m.is_finite() && m > 0.0 && m <= 64.0) {
                return err(format!(
                    "ffn_dim_multiplier {m} must be a positive number of at most 64"
                ));
            }
        }
        let g = self.grid();
        if g == 0 || g * g != self.block_size {
            return err(format!(
                "block_size {} is not a positive square",
                self.block_size
            ));
        }
        if self.cls_token_num == 0 {
            return err("cls_token_num must be positive".into());
        }
        if self.model_type == ModelType::C2i && self.cls_token_num != 1 {
            return err("a c2i model has exactly one condition token (cls_token_num = 1)".into());
        }
        if self.model_type == ModelType::C2i && self.num_classes == 0 {
            return err("num_classes must be positive".into());
        }
        if self.model_type == ModelType::T2i && self.caption_dim == 0 {
            return err("caption_dim must be positive".into());
        }
        let eps_ok = self.norm_eps.is_finite() && self.norm_eps > 0.0;
        let base_ok = self.rope_base.is_finite() && self.rope_base > 1.0;
        if !(eps_ok && base_ok) {
            return err("norm_eps must be > 0 and rope_base > 1".into());
        }
        if !(0.0..1.0).contains(&self.class_dropout_prob) {
            return err(format!(
                "class_dropout_prob {} must be in [0, 1)",
                self.class_dropout_prob
            ));
        }
        match self.checked_param_count() {
            Some(p) if p as u64 <= MAX_PARAMS => {}
            _ => return err(format!("the model has more than {MAX_PARAMS} weights")),
        }
        Ok(())
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.dim / self.n_head
    }

    /// Number of key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.n_kv_head.unwrap_or(self.n_head)
    }

    /// Rows of the fused `wqkv` projection: `(n_head + 2 n_kv_head) · head_dim` (saturating;
    /// exact for a validated config).
    pub fn qkv_dim(&self) -> usize {
        self.kv_heads()
            .saturating_mul(2)
            .saturating_add(self.n_head)
            .saturating_mul(self.head_dim())
    }

    /// SwiGLU hidden width: `find_multiple(int(mult · int(2·4·dim/3)), multiple_of)`
    /// (saturating; exact for a validated config).
    pub fn ffn_hidden(&self) -> usize {
        let mut h = self.dim.saturating_mul(8) / 3;
        if let Some(m) = self.ffn_dim_multiplier {
            // `as` saturates (NaN → 0).
            h = (m as f64 * h as f64) as usize;
        }
        let k = self.multiple_of.max(1);
        h.div_ceil(k).saturating_mul(k)
    }

    /// Image tokens per side: the integer square root of `block_size` (exact, no overflow
    /// for any value).
    pub fn grid(&self) -> usize {
        let n = self.block_size;
        let mut g = (n as f64).sqrt() as usize;
        // Correct the float estimate by at most a few steps, never squaring past `n`.
        while g > 0 && g.checked_mul(g).is_none_or(|sq| sq > n) {
            g -= 1;
        }
        while (g + 1).checked_mul(g + 1).is_some_and(|sq| sq <= n) {
            g += 1;
        }
        g
    }

    /// Rows of the class table (`num_classes` plus the null row when CFG dropout was used).
    pub fn class_rows(&self) -> usize {
        self.num_classes
            .saturating_add(usize::from(self.class_dropout_prob > 0.0))
    }

    /// Number of weights (parameters) of the GPT (saturating at `usize::MAX`; exact for a
    /// validated config).
    pub fn param_count(&self) -> usize {
        self.checked_param_count().unwrap_or(usize::MAX)
    }

    /// Number of weights, `None` if it overflows `usize`.
    pub fn checked_param_count(&self) -> Option<usize> {
        let d = self.dim;
        let per_layer = self
            .qkv_dim()
            .checked_mul(d)?
            .checked_add(d.checked_mul(d)?)?
            .checked_add(d.checked_mul(3)?.checked_mul(self.ffn_hidden())?)?
            .checked_add(d.checked_mul(2)?)?;
        let cond = match self.model_type {
            ModelType::C2i => self.class_rows().checked_mul(d)?,
            ModelType::T2i => self
                .caption_dim
                .checked_mul(d)?
                .checked_add(d.checked_mul(d)?)?
                .checked_add(self.cls_token_num.checked_mul(self.caption_dim)?)?,
        };
        cond.checked_add(self.vocab_size.checked_mul(d)?.checked_mul(2)?)?
            .checked_add(self.n_layer.checked_mul(per_layer)?)?
            .checked_add(d)
    }
}

fn d_l2() -> bool {
    true
}
fn d_ch() -> usize {
    128
}
fn d_nrb() -> usize {
    2
}
fn d_z() -> usize {
    256
}
fn d_mult() -> Vec<usize> {
    vec![1, 1, 2, 2, 4]
}

/// Hyper-parameters of the VQ tokenizer (official `ModelArgs` of vq_model.py plus `ch` and
/// `num_res_blocks`, fixed to 128 and 2 in the official VQ-16).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct VqConfig {
    /// Codebook entries.
    pub codebook_size: usize,
    /// Codebook vector width.
    pub codebook_embed_dim: usize,
    /// Whether codebook rows are l2-normalised at lookup.
    #[serde(default = "d_l2")]
    pub codebook_l2_norm: bool,
    /// Decoder channel multipliers (lowest resolution last, as in the official config).
    #[serde(default = "d_mult")]
    pub decoder_ch_mult: Vec<usize>,
    /// Latent channels.
    #[serde(default = "d_z")]
    pub z_channels: usize,
    /// Base channel count.
    #[serde(default = "d_ch")]
    pub ch: usize,
    /// ResNet blocks per level in the encoder (the decoder has one more).
    #[serde(default = "d_nrb")]
    pub num_res_blocks: usize,
}

impl VqConfig {
    /// The official VQ-16 (codebook 16384×8, ch 128, ch_mult `[1,1,2,2,4]`).
    pub fn vq16() -> VqConfig {
        VqConfig {
            codebook_size: 16384,
            codebook_embed_dim: 8,
            codebook_l2_norm: true,
            decoder_ch_mult: d_mult(),
            z_channels: 256,
            ch: 128,
            num_res_blocks: 2,
        }
    }

    /// Parses and validates a JSON config.
    pub fn from_json(path: &Path, text: &str) -> Result<VqConfig> {
        let cfg: VqConfig = parse_json(path, text)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads and validates a JSON config file.
    pub fn load(path: impl AsRef<Path>) -> Result<VqConfig> {
        let path = path.as_ref();
        Self::from_json(path, &read_text(path)?)
    }

    /// Checks that every GroupNorm sees a multiple of 32 channels, sizes are positive, ...
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |msg: String| {
            Err(ModelError::Config {
                path: path.to_path_buf(),
                msg,
            })
        };
        if self.codebook_size == 0 || self.codebook_embed_dim == 0 || self.z_channels == 0 {
            return err("codebook_size, codebook_embed_dim and z_channels must be positive".into());
        }
        for (name, value, max) in [
            ("codebook_size", self.codebook_size, MAX_VOCAB),
            (
                "codebook_embed_dim",
                self.codebook_embed_dim,
                MAX_VQ_CHANNELS,
            ),
            ("z_channels", self.z_channels, MAX_VQ_CHANNELS),
            ("ch", self.ch, MAX_VQ_CHANNELS),
            ("num_res_blocks", self.num_res_blocks, MAX_RES_BLOCKS),
        ] {
            if value > max {
                return err(format!("{name} {value} exceeds the limit {max}"));
            }
        }
        if self.decoder_ch_mult.is_empty() || self.decoder_ch_mult.len() > 8 {
            return err("decoder_ch_mult must have 1 to 8 levels".into());
        }
        for &m in &self.decoder_ch_mult {
            let c = m.checked_mul(self.ch).unwrap_or(0);
            if c > MAX_VQ_CHANNELS {
                return err(format!(
                    "channel count ch·mult = {}·{m} exceeds the limit {MAX_VQ_CHANNELS}",
                    self.ch
                ));
            }
            if c == 0 || c % 32 != 0 {
                return err(format!(
                    "channel count ch·mult = {}·{m} must be a positive multiple of 32 (GroupNorm(32))",
                    self.ch
                ));
            }
        }
        Ok(())
    }

    /// Pixels per token side (2^(levels-1); levels are at most 8 in a validated config, and
    /// the shift saturates otherwise).
    pub fn downsample(&self) -> usize {
        1usize
            .checked_shl(self.decoder_ch_mult.len().saturating_sub(1) as u32)
            .unwrap_or(usize::MAX)
    }
}

/// Deserialises a config, naming `path` in the error.
fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// Reads a text file of at most [`MAX_CONFIG_BYTES`], naming `path` in the error.
fn read_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let io = |source: std::io::Error| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |msg: String| ModelError::Config {
        path: path.to_path_buf(),
        msg,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(bad(format!(
            "{} bytes, more than the limit of {MAX_CONFIG_BYTES} for a config",
            meta.len()
        )));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(bad(format!(
            "more than the limit of {MAX_CONFIG_BYTES} bytes for a config"
        )));
    }
    Ok(text)
}
