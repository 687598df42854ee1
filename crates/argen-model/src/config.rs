//! Model configurations: the GPT (c2i / t2i, presets and arbitrary sizes) and the VQ tokenizer.
//!
//! The JSON field names are those of the official LlamaGen `ModelArgs` dataclasses (written by
//! `tools/convert_llamagen.py` and `tools/llamagen.py`), so a config is the dataclass dumped.

use crate::error::{ModelError, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

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
            if !(m.is_finite() && m > 0.0) {
                return err(format!("ffn_dim_multiplier {m} must be a positive number"));
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

    /// Rows of the fused `wqkv` projection: `(n_head + 2 n_kv_head) · head_dim`.
    pub fn qkv_dim(&self) -> usize {
        (self.n_head + 2 * self.kv_heads()) * self.head_dim()
    }

    /// SwiGLU hidden width: `find_multiple(int(mult · int(2·4·dim/3)), multiple_of)`.
    pub fn ffn_hidden(&self) -> usize {
        let mut h = 2 * 4 * self.dim / 3;
        if let Some(m) = self.ffn_dim_multiplier {
            h = (m as f64 * h as f64) as usize;
        }
        h.div_ceil(self.multiple_of) * self.multiple_of
    }

    /// Image tokens per side.
    pub fn grid(&self) -> usize {
        let mut g = (self.block_size as f64).sqrt() as usize;
        while g * g > self.block_size {
            g -= 1;
        }
        while (g + 1) * (g + 1) <= self.block_size {
            g += 1;
        }
        g
    }

    /// Rows of the class table (`num_classes` plus the null row when CFG dropout was used).
    pub fn class_rows(&self) -> usize {
        self.num_classes + usize::from(self.class_dropout_prob > 0.0)
    }

    /// Number of weights (parameters) of the GPT.
    pub fn param_count(&self) -> usize {
        let d = self.dim;
        let per_layer = self.qkv_dim() * d + d * d + 3 * d * self.ffn_hidden() + 2 * d;
        let cond = match self.model_type {
            ModelType::C2i => self.class_rows() * d,
            ModelType::T2i => self.caption_dim * d + d * d + self.cls_token_num * self.caption_dim,
        };
        cond + 2 * self.vocab_size * d + self.n_layer * per_layer + d
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
        if self.decoder_ch_mult.is_empty() || self.decoder_ch_mult.len() > 8 {
            return err("decoder_ch_mult must have 1 to 8 levels".into());
        }
        for &m in &self.decoder_ch_mult {
            let c = m.checked_mul(self.ch).unwrap_or(0);
            if c == 0 || c % 32 != 0 {
                return err(format!(
                    "channel count ch·mult = {}·{m} must be a positive multiple of 32 (GroupNorm(32))",
                    self.ch
                ));
            }
        }
        Ok(())
    }

    /// Pixels per token side (2^(levels-1)).
    pub fn downsample(&self) -> usize {
        1 << (self.decoder_ch_mult.len() - 1)
    }
}

/// Deserialises a config, naming `path` in the error.
fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// Reads a text file, naming `path` in the error.
fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}
