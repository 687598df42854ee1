//! `argen._argen.Engine`: the high-level model API for Python (wrapped by `argen.Model`).
//!
//! A thin layer over `argen_engine::Engine` through `argen_ffi::engine::build_request` — the
//! same request path as the C ABI's `argen_generate` — so Python, C and the `argen` command
//! produce the same tokens and pixels for the same prompt, method, options and seed. The GIL is
//! released while an image is generated, so other Python threads (e.g. Ray's) keep running.

use std::sync::Mutex;

use argen_engine::{Engine as CoreEngine, EngineOptions, Generation, Input, Recorded, Request};
use argen_ffi::engine::{build_request, Decoding};
use argen_ffi::{argen_status, FfiError};
use argen_model::{Condition, Judge};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::errors::{err, invalid, to_py};

fn f32_bytes<'py>(py: Python<'py>, v: &[f32]) -> Bound<'py, PyBytes> {
    PyBytes::new_with(py, v.len() * 4, |buf| {
        for (chunk, x) in buf.chunks_exact_mut(4).zip(v) {
            chunk.copy_from_slice(&x.to_ne_bytes());
        }
        Ok(())
    })
    .unwrap_or_else(|_| PyBytes::new(py, &[]))
}

/// The decoding of a request: a whole configuration or a method with its options.
fn decoding<'a>(
    method: &'a Option<String>,
    options_json: &'a Option<String>,
    config_json: &'a Option<String>,
) -> PyResult<Decoding<'a>> {
    match (config_json, method) {
        (Some(_), Some(_)) => Err(err(
            argen_status::ARGEN_ERR_INVALID_ARGUMENT,
            "give config or method (with options), not both",
        )),
        (Some(c), None) => Ok(Decoding::Config(c)),
        (None, m) => Ok(Decoding::Method {
            name: m.as_deref().unwrap_or("vanilla"),
            options_json: options_json.as_deref(),
        }),
    }
}

/// A judge's error as a Python exception (an `InvalidArgumentError`: the canvas or tokens).
fn judge_err(e: String) -> PyErr {
    invalid(format!("judge: {e}"))
}

/// A model directory loaded on the CPU runtime (use ``argen.Model``, which wraps it).
#[pyclass(module = "argen")]
pub struct Engine {
    inner: Mutex<CoreEngine>,
    tokens: usize,
    size: usize,
}

/// The raw result of ``Engine.generate``: tokens (little-endian u32 bytes), RGB bytes,
/// width, height, statistics JSON.
type Raw<'py> = (
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    usize,
    usize,
    String,
);

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (path, threads = 0))]
    fn new(py: Python<'_>, path: std::path::PathBuf, threads: usize) -> PyResult<Self> {
        let e = py
            .allow_threads(|| CoreEngine::open(&path, &EngineOptions { threads }))
            .map_err(|e| to_py(FfiError::from(e)))?;
        let (tokens, size) = (e.config().block_size, e.image_size());
        Ok(Engine {
            inner: Mutex::new(e),
            tokens,
            size,
        })
    }

    /// Tokens per image.
    #[getter]
    fn tokens(&self) -> usize {
        self.tokens
    }

    /// Image width (= height) in pixels.
    #[getter]
    fn image_size(&self) -> usize {
        self.size
    }

    /// Generates one image: ``(tokens, rgb, width, height, stats_json)``. Exactly one of
    /// ``prompt`` and ``class_id``; ``config_json`` (a DecoderConfig) or ``method`` with
    /// ``options_json`` (a JSON object of method options).
    #[pyo3(signature = (prompt, class_id, method, options_json, config_json, seed))]
    // The arguments mirror the request fields one to one (as `argen_generate_request` does).
    #[allow(clippy::too_many_arguments)]
    fn generate<'py>(
        &self,
        py: Python<'py>,
        prompt: Option<String>,
        class_id: Option<u32>,
        method: Option<String>,
        options_json: Option<String>,
        config_json: Option<String>,
        seed: u64,
    ) -> PyResult<Raw<'py>> {
        let d = decoding(&method, &options_json, &config_json)?;
        let (g, stats, _) = self.run(py, prompt.as_deref(), class_id, d, seed, false)?;
        Ok(raw(py, &g, stats))
    }

    /// ``generate`` that also returns every answer the model host gave, in order: a list of
    /// ``(kind, rows, values, value)`` with ``kind`` ``"logits"`` (``rows`` rows of float32
    /// ``values`` bytes, the protocol's layout), ``"verdict"`` (``value`` 1.0 / 0.0),
    /// ``"score"`` (``value``) or ``"reformulated"``.
    #[pyo3(signature = (prompt, class_id, method, options_json, config_json, seed))]
    #[allow(clippy::too_many_arguments)]
    fn generate_recorded<'py>(
        &self,
        py: Python<'py>,
        prompt: Option<String>,
        class_id: Option<u32>,
        method: Option<String>,
        options_json: Option<String>,
        config_json: Option<String>,
        seed: u64,
    ) -> PyResult<(Raw<'py>, Bound<'py, PyList>)> {
        let d = decoding(&method, &options_json, &config_json)?;
        let (g, stats, log) = self.run(py, prompt.as_deref(), class_id, d, seed, true)?;
        let mut answers = Vec::with_capacity(log.len());
        for r in &log {
            let t = match r {
                Recorded::Logits { rows, values } => {
                    ("logits", *rows, Some(f32_bytes(py, values)), 0.0f64)
                }
                Recorded::Verdict(v) => ("verdict", 0, None, f64::from(u8::from(*v))),
                Recorded::Score(s) => ("score", 0, None, f64::from(*s)),
                Recorded::Reformulated => ("reformulated", 0, None, 0.0),
            };
            answers.push(t.into_pyobject(py)?);
        }
        Ok((raw(py, &g, stats), PyList::new(py, answers)?))
    }

    /// The decoder configuration ``generate`` runs for these arguments, as JSON.
    #[pyo3(signature = (prompt, class_id, method, options_json, config_json, seed))]
    #[allow(clippy::too_many_arguments)]
    fn decoder_config(
        &self,
        prompt: Option<String>,
        class_id: Option<u32>,
        method: Option<String>,
        options_json: Option<String>,
        config_json: Option<String>,
        seed: u64,
    ) -> PyResult<String> {
        let d = decoding(&method, &options_json, &config_json)?;
        let e = self.lock().map_err(to_py)?;
        let req = build_request(&e, prompt.as_deref(), class_id, d, seed).map_err(to_py)?;
        let v = argen_engine::config_json(&req.config).map_err(|e| to_py(e.into()))?;
        Ok(v.to_string())
    }

    /// The conditional input of a prompt or a class (exactly one), as the engine feeds the
    /// target: ``("caption", features, rows, cols, pad)`` (float32 bytes, ``rows × cols``) or
    /// ``("class", None, 0, 0, class_id)``. The unconditional input is the model's null
    /// caption or null class.
    #[pyo3(signature = (prompt, class_id))]
    fn condition<'py>(
        &self,
        py: Python<'py>,
        prompt: Option<String>,
        class_id: Option<u32>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let input = match (prompt, class_id) {
            (Some(p), None) => Input::Prompt(p),
            (None, Some(c)) => Input::Class(c),
            _ => return Err(invalid("give a prompt or a class id (exactly one)")),
        };
        let e = self.lock().map_err(to_py)?;
        let cfg = e.config();
        let (cond, _) = argen_engine::conditions(cfg, &input).map_err(|e| to_py(e.into()))?;
        let t = match cond {
            Condition::Caption {
                features: Some(f),
                pad,
            } => (
                "caption",
                Some(f32_bytes(py, &f)),
                cfg.cls_token_num,
                cfg.caption_dim,
                pad,
            ),
            Condition::Class(Some(c)) => ("class", None, 0, 0, c as usize),
            _ => return Err(invalid("this input has no conditional form")),
        };
        t.into_pyobject(py)
    }

    /// A float32 table of the model: ``"codebook"`` (the VQ codebook as the VQ decoder looks it
    /// up; VVS's dynamic schedule), ``"raw_codebook"`` (as stored; LANTERN's neighbours are
    /// ranked on it) or ``"embedding"`` (the target's token embedding; GSD). Returns
    /// ``(values, rows, cols)``.
    fn table<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<(Bound<'py, PyBytes>, usize, usize)> {
        let e = self.lock().map_err(to_py)?;
        let vq = e.vq();
        let dim = vq.config().codebook_embed_dim;
        let (values, cols) = match name {
            "codebook" => (vq.codebook().to_vec(), dim),
            "raw_codebook" => (vq.raw_codebook().to_vec(), dim),
            "embedding" => (
                e.model_dir()
                    .token_embeddings(e.config())
                    .map_err(|m| err(argen_status::ARGEN_ERR_MODEL, m))?,
                e.config().dim,
            ),
            other => {
                return Err(invalid(format!(
                    "unknown table {other:?}: codebook, raw_codebook or embedding"
                )))
            }
        };
        let rows = values.len().checked_div(cols).unwrap_or(0);
        Ok((f32_bytes(py, &values), rows, cols))
    }

    /// ShapesWorld's judge for ``prompt`` (the engine's GridAR verifier, scorer and
    /// reformulator): ``what`` is ``"check"`` (``(verdict, None)``: can the top ``rows`` token
    /// rows still match the prompt), ``"score"`` (``(score, None)`` of a finished image) or
    /// ``"reformulate"`` (``(0.0, features)``: the caption features of the prompt with the
    /// layout clauses the canvas suggests, float32 bytes).
    fn judge<'py>(
        &self,
        py: Python<'py>,
        prompt: &str,
        what: &str,
        rows: u32,
        tokens: Vec<u32>,
    ) -> PyResult<(f64, Option<Bound<'py, PyBytes>>)> {
        let e = self.lock().map_err(to_py)?;
        argen_engine::shapes::check_model(e.config()).map_err(invalid)?;
        let p = argen_engine::shapes::parse_prompt(prompt).map_err(invalid)?;
        let size = e.vq().config().codebook_size;
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= size) {
            return Err(err(
                argen_status::ARGEN_ERR_TOKEN_OUT_OF_RANGE,
                format!("token {t} is out of range for a codebook of {size}"),
            ));
        }
        let mut j = e.judge(p);
        match what {
            "check" => {
                let ok = j.check(0, rows, &tokens).map_err(judge_err)?;
                Ok((f64::from(u8::from(ok)), None))
            }
            "score" => Ok((f64::from(j.score(0, &tokens).map_err(judge_err)?), None)),
            "reformulate" => match j.reformulate(0, rows, &tokens).map_err(judge_err)? {
                Condition::Caption {
                    features: Some(f), ..
                } => Ok((0.0, Some(f32_bytes(py, &f)))),
                _ => Err(invalid("judge: the reformulation has no caption")),
            },
            other => Err(invalid(format!(
                "unknown judge call {other:?}: check, score or reformulate"
            ))),
        }
    }
}

impl Engine {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, CoreEngine>, FfiError> {
        self.inner.lock().map_err(|_| {
            FfiError::new(
                argen_status::ARGEN_ERR_PANIC,
                "the engine is unusable after a panic in an earlier call",
            )
        })
    }

    /// Builds and runs a request with the GIL released; with `record`, the host's answers too.
    fn run(
        &self,
        py: Python<'_>,
        prompt: Option<&str>,
        class_id: Option<u32>,
        d: Decoding<'_>,
        seed: u64,
        record: bool,
    ) -> PyResult<(Generation, String, Vec<Recorded>)> {
        py.allow_threads(|| {
            let mut e = self.lock()?;
            let req: Request = build_request(&e, prompt, class_id, d, seed)?;
            let (g, log) = if record {
                e.generate_recorded(&req)?
            } else {
                (e.generate(&req)?, Vec::new())
            };
            let stats = g.stats_json()?.to_string();
            Ok::<_, FfiError>((g, stats, log))
        })
        .map_err(to_py)
    }
}

fn raw<'py>(py: Python<'py>, g: &Generation, stats: String) -> Raw<'py> {
    let tokens: Vec<u8> = g.tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
    let rgb = g.image.as_ref().map_or(&[][..], |i| &i.rgb[..]);
    (
        PyBytes::new(py, &tokens),
        PyBytes::new(py, rgb),
        g.size.0,
        g.size.1,
        stats,
    )
}
