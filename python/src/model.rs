//! `argen._argen.Engine`: the high-level model API for Python (wrapped by `argen.Model`).
//!
//! A thin layer over `argen_engine::Engine` through `argen_ffi::engine::build_request` — the
//! same request path as the C ABI's `argen_generate` — so Python, C and the `argen` command
//! produce the same tokens and pixels for the same prompt, method, options and seed. The GIL is
//! released while an image is generated, so other Python threads (e.g. Ray's) keep running.

use std::sync::Mutex;

use argen_engine::{Engine as CoreEngine, EngineOptions};
use argen_ffi::engine::{build_request, Decoding};
use argen_ffi::{argen_status, FfiError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{err, to_py};

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
        let decoding = match (&config_json, &method) {
            (Some(_), Some(_)) => {
                return Err(err(
                    argen_status::ARGEN_ERR_INVALID_ARGUMENT,
                    "give config or method (with options), not both",
                ))
            }
            (Some(c), None) => Decoding::Config(c),
            (None, m) => Decoding::Method {
                name: m.as_deref().unwrap_or("vanilla"),
                options_json: options_json.as_deref(),
            },
        };
        let g = py
            .allow_threads(|| {
                let mut e = self.inner.lock().map_err(|_| {
                    FfiError::new(
                        argen_status::ARGEN_ERR_PANIC,
                        "the engine is unusable after a panic in an earlier call",
                    )
                })?;
                let req = build_request(&e, prompt.as_deref(), class_id, decoding, seed)?;
                let g = e.generate(&req)?;
                let stats = g.stats_json()?.to_string();
                Ok::<_, FfiError>((g, stats))
            })
            .map_err(to_py)?;
        let (g, stats) = g;
        let tokens: Vec<u8> = g.tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
        let rgb = g.image.as_ref().map_or(&[][..], |i| &i.rgb[..]);
        Ok((
            PyBytes::new(py, &tokens),
            PyBytes::new(py, rgb),
            g.size.0,
            g.size.1,
            stats,
        ))
    }
}
