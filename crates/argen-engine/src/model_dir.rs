//! Loading a model directory, with errors that name the file and the problem.

use std::path::{Path, PathBuf};

use argen_model::safetensors::SafeTensors;
use argen_model::{Capacity, Compute, Drafter, Gpt, GptConfig, VqConfig, VqDecoder};

/// The files every model directory holds (`drafter.safetensors` is optional).
pub const FILES: [&str; 4] = ["gpt.json", "gpt.safetensors", "vq.json", "vq.safetensors"];

/// Checks that `p` is a regular file (following symbolic links), with a message that says
/// what it is otherwise: missing, a directory, a FIFO or device, a symbolic-link loop.
fn check_file(p: &Path, missing_hint: &str) -> Result<(), String> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) if m.is_dir() => Err(format!(
            "{} is a directory, not a file{missing_hint}",
            p.display()
        )),
        Ok(_) => Err(format!(
            "{} is not a regular file (a FIFO, device or socket){missing_hint}",
            p.display()
        )),
        Err(e) => {
            let why = describe_open_error(p, &e);
            if why == "no such file" {
                Err(format!("{} is missing{missing_hint}", p.display()))
            } else {
                Err(format!("cannot read {}: {why}", p.display()))
            }
        }
    }
}

/// An I/O error without Rust's `(os error N)` suffix.
pub fn io_msg(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Names the cause of a failed `stat`/`open` of `path`.
pub fn describe_open_error(path: &Path, e: &std::io::Error) -> String {
    if e.raw_os_error() == Some(40) {
        return "too many levels of symbolic links (a symbolic-link loop?)".into();
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                "it is a symbolic link to a file that does not exist".into()
            } else {
                "no such file".into()
            }
        }
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => io_msg(e),
    }
}

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
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "model directory {} is not a directory",
                    dir.display()
                ))
            }
            Err(e) => {
                let why = describe_open_error(dir, &e);
                return Err(if why == "no such file" {
                    format!("model directory {} does not exist", dir.display())
                } else {
                    format!("cannot open model directory {}: {why}", dir.display())
                });
            }
        }
        let m = ModelDir {
            dir: dir.to_path_buf(),
        };
        for f in FILES {
            check_file(
                &m.file(f),
                " (a model directory holds gpt.json, gpt.safetensors, vq.json, vq.safetensors \
                 and optionally drafter.safetensors)",
            )?;
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
        check_file(&p, ": speculative methods need an EAGLE drafter")?;
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
