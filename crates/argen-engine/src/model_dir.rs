//! Loading a model directory, with errors that name the file and the problem.

use std::path::{Path, PathBuf};

use argen_model::safetensors::SafeTensors;
use argen_model::{Capacity, Compute, Drafter, Gpt, GptConfig, VqConfig, VqDecoder};

/// The files of a model directory.
#[derive(Clone, Debug)]
pub struct ModelDir {
    /// The directory.
    pub dir: PathBuf,
}

/// The bundled ShapesWorld model, in the source tree.
pub const BUNDLED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/models/shapesworld"
);

/// The model directory to use: `--model`, else `$ARGEN_MODEL`, else the bundled model.
pub fn resolve(arg: Option<&Path>) -> Result<ModelDir, String> {
    if let Some(p) = arg {
        return ModelDir::open(p);
    }
    if let Some(p) = std::env::var_os("ARGEN_MODEL") {
        return ModelDir::open(Path::new(&p));
    }
    let bundled = Path::new(BUNDLED);
    if !bundled.join("gpt.json").is_file() {
        return Err(format!(
            "no --model given and the bundled ShapesWorld model is missing at {} \
             (train it with `python3 tools/shapes/train.py`, or pass --model DIR)",
            bundled.display()
        ));
    }
    ModelDir::open(bundled)
}

impl ModelDir {
    /// Checks that `dir` exists and holds the two configs.
    pub fn open(dir: &Path) -> Result<Self, String> {
        if !dir.is_dir() {
            return Err(format!("model directory {} does not exist", dir.display()));
        }
        let m = ModelDir {
            dir: dir.to_path_buf(),
        };
        for f in ["gpt.json", "gpt.safetensors", "vq.json", "vq.safetensors"] {
            let p = m.file(f);
            if !p.is_file() {
                return Err(format!(
                    "{} is missing (a model directory holds gpt.json, \
                     gpt.safetensors, vq.json, vq.safetensors and optionally drafter.safetensors)",
                    p.display()
                ));
            }
        }
        Ok(m)
    }

    /// Path of a file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The GPT config.
    pub fn gpt_config(&self) -> Result<GptConfig, String> {
        GptConfig::load(self.file("gpt.json")).map_err(|e| e.to_string())
    }

    /// The VQ config.
    pub fn vq_config(&self) -> Result<VqConfig, String> {
        VqConfig::load(self.file("vq.json")).map_err(|e| e.to_string())
    }

    /// The target GPT.
    pub fn gpt<C: Compute>(&self, c: &C, cfg: &GptConfig, cap: Capacity) -> Result<Gpt<C>, String> {
        Gpt::load(c, cfg, self.file("gpt.safetensors"), cap).map_err(|e| e.to_string())
    }

    /// The drafter, which speculative methods need.
    pub fn drafter<C: Compute>(
        &self,
        c: &C,
        cfg: &GptConfig,
        cap: Capacity,
    ) -> Result<Drafter<C>, String> {
        let p = self.file("drafter.safetensors");
        if !p.is_file() {
            return Err(format!(
                "{} is missing: speculative methods need an EAGLE drafter",
                p.display()
            ));
        }
        Drafter::load(c, cfg, p, cap).map_err(|e| e.to_string())
    }

    /// The VQ decoder, checked against the GPT's vocabulary and grid.
    pub fn vq<C: Compute>(&self, c: &C, gpt: Option<&GptConfig>) -> Result<VqDecoder<C>, String> {
        let cfg = self.vq_config()?;
        if let Some(g) = gpt {
            if cfg.codebook_size != g.vocab_size {
                return Err(format!(
                    "{}: codebook_size {} differs from the GPT's vocab_size {} in {}",
                    self.file("vq.json").display(),
                    cfg.codebook_size,
                    g.vocab_size,
                    self.file("gpt.json").display()
                ));
            }
        }
        VqDecoder::load(c, &cfg, self.file("vq.safetensors")).map_err(|e| e.to_string())
    }

    /// The target's input embedding table `[vocab, dim]` as f32 (grouped speculative decoding).
    pub fn token_embeddings(&self, cfg: &GptConfig) -> Result<Vec<f32>, String> {
        let path = self.file("gpt.safetensors");
        let st = SafeTensors::open(&path).map_err(|e| e.to_string())?;
        let t = st
            .expect("tok_embeddings.weight", &[cfg.vocab_size, cfg.dim])
            .map_err(|e| e.to_string())?;
        t.to_f32().ok_or_else(|| {
            format!(
                "{}: tok_embeddings.weight is not a float tensor",
                path.display()
            )
        })
    }
}
