//! The high-level C API: open a model directory, generate an image with any method.
//!
//! ```c
//! argen_engine_config cfg = {sizeof cfg, "fixtures/models/shapesworld", /*threads*/ 0};
//! argen_engine *engine = NULL;
//! if (argen_engine_open(&cfg, &engine) != ARGEN_OK) { puts(argen_last_error()); return 1; }
//! argen_generate_request req = {sizeof req};
//! req.prompt = "a red circle above a blue square";
//! req.class_id = -1;
//! req.method = "sd";
//! req.options_json = "{\"criterion\": \"coupled\"}";
//! req.seed = 7;
//! argen_generation *g = NULL;
//! if (argen_generate(engine, &req, &g) == ARGEN_OK) {
//!     const uint8_t *rgb; size_t w, h;
//!     argen_generation_image(g, &rgb, &w, &h);   /* w × h × 3 bytes, valid until _free */
//!     argen_generation_free(g);
//! }
//! argen_engine_free(engine);
//! ```
//!
//! Every function is a thin wrapper over [`::argen_engine::Engine`] (the pipeline of the `argen`
//! command); [`build_request`] is the one place foreign request fields become an
//! [`::argen_engine::Request`], shared with the Python package's `argen.Model`. Engine errors map
//! to statuses by kind: invalid argument → `ARGEN_ERR_INVALID_ARGUMENT`, model directory →
//! `ARGEN_ERR_MODEL`, runtime → `ARGEN_ERR_RUNTIME`.

#![allow(non_camel_case_types)]

use core::ffi::{c_char, CStr};
use std::ffi::CString;

use ::argen_engine::{
    parse_config, Engine, EngineOptions, ErrorKind, Generation, Input, Method, MethodOptions,
    Request,
};

use crate::capi::{out, versioned};
use crate::guard::{call, Registry};
use crate::status::{argen_status, FfiError, FfiResult};

impl From<::argen_engine::Error> for FfiError {
    fn from(e: ::argen_engine::Error) -> Self {
        let status = match e.kind() {
            ErrorKind::InvalidArgument => argen_status::ARGEN_ERR_INVALID_ARGUMENT,
            ErrorKind::Model => argen_status::ARGEN_ERR_MODEL,
            ErrorKind::Runtime => argen_status::ARGEN_ERR_RUNTIME,
            _ => argen_status::ARGEN_ERR_UNKNOWN,
        };
        FfiError::new(status, e.message())
    }
}

/// How a request names its decoding: a method with options, or a whole decoder configuration.
#[derive(Clone, Copy, Debug)]
pub enum Decoding<'a> {
    /// A method by name (`"vanilla"`, `"sd"`, …) and its options as a JSON object (`None`: the
    /// defaults of the `argen` command).
    Method {
        /// The method's name.
        name: &'a str,
        /// The options (`argen_engine::MethodOptions` fields).
        options_json: Option<&'a str>,
    },
    /// A `DecoderConfig` as JSON; its `base.seed` is replaced by the request's seed, and its
    /// `base.tokens` / `base.width` must match the model.
    Config(&'a str),
}

/// The engine request for a prompt or a class (exactly one), decoded as `decoding` with `seed`.
pub fn build_request(
    engine: &Engine,
    prompt: Option<&str>,
    class_id: Option<u32>,
    decoding: Decoding<'_>,
    seed: u64,
) -> FfiResult<Request> {
    let input = match (prompt, class_id) {
        (Some(p), None) => Input::Prompt(p.to_string()),
        (None, Some(c)) => Input::Class(c),
        (Some(_), Some(_)) => {
            return Err(FfiError::invalid("give a prompt or a class id, not both"))
        }
        (None, None) => {
            return Err(FfiError::invalid(
                "give a prompt (ShapesWorld models) or a class id (class-conditional models)",
            ))
        }
    };
    let config = match decoding {
        Decoding::Method { name, options_json } => {
            let method = Method::parse(name)?;
            let options = match options_json {
                Some(json) => MethodOptions::from_json(json)?,
                None => MethodOptions::default(),
            };
            engine.decoder_config(method, &options, seed, &input)?
        }
        Decoding::Config(json) => {
            let mut dc = parse_config(json)?;
            dc.base.seed = seed;
            dc
        }
    };
    Ok(Request::new(input, config))
}

/// Configuration of `argen_engine_open` (versioned: set
/// `struct_size = sizeof(argen_engine_config)`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct argen_engine_config {
    /// `sizeof(argen_engine_config)` as the caller compiled it.
    pub struct_size: usize,
    /// Path of the model directory (NUL-terminated UTF-8): `gpt.json`, `gpt.safetensors`,
    /// `vq.json`, `vq.safetensors`, and `drafter.safetensors` for speculative methods.
    pub model_dir: *const c_char,
    /// Worker threads of the CPU runtime (0 = all cores, at most 256); results do not depend
    /// on it.
    pub threads: usize,
}

/// One image to generate (versioned: set `struct_size = sizeof(argen_generate_request)`; a
/// zero-initialised request with `struct_size` set is invalid until it names a prompt or a
/// class).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct argen_generate_request {
    /// `sizeof(argen_generate_request)` as the caller compiled it.
    pub struct_size: usize,
    /// A ShapesWorld prompt (NUL-terminated UTF-8), or NULL when `class_id` is used.
    pub prompt: *const c_char,
    /// A class id (class-conditional models), or `-1` when `prompt` is used.
    pub class_id: i64,
    /// The method's name (`"vanilla"`, `"sd"`, `"lantern"`, `"gsd"`, `"vvs"`, `"sjd"`, `"bon"`,
    /// `"gridar"`); NULL with `config_json` NULL means `"vanilla"`.
    pub method: *const c_char,
    /// The method's options as a JSON object (NULL: the `argen` command's defaults), e.g.
    /// `{"cfg": 4.0, "draft": "chain", "gamma": 4, "inner": "sd", "n": 4}`; unknown fields are
    /// refused.
    pub options_json: *const c_char,
    /// Instead of `method` and `options_json`: a whole `DecoderConfig` as JSON (the shape the
    /// stats JSON records under `"config"`); its seed is replaced by `seed`.
    pub config_json: *const c_char,
    /// The seed: the same seed gives the same image, on any thread count.
    pub seed: u64,
}

/// A loaded model directory on the CPU runtime (opaque; see `argen_engine_open`). Not
/// thread-safe: use one engine from one thread at a time (concurrent calls are refused with
/// `ARGEN_ERR_INVALID_HANDLE`); open one engine per thread to generate in parallel.
pub struct argen_engine {
    inner: Engine,
}

/// The result of `argen_generate` (opaque): tokens, RGB pixels, statistics. Immutable; the
/// pointers its accessors return stay valid until `argen_generation_free`.
pub struct argen_generation {
    generation: Generation,
    rgb: Vec<u8>,
    stats_json: CString,
}

static ENGINES: Registry<argen_engine> = Registry::new("argen_engine");
static GENERATIONS: Registry<argen_generation> = Registry::new("argen_generation");

/// A NUL-terminated UTF-8 argument (`None` for NULL).
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string.
unsafe fn text<'a>(ptr: *const c_char, name: &str) -> FfiResult<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated (the caller's contract).
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str()
        .map(Some)
        .map_err(|_| FfiError::invalid(format!("`{name}` is not valid UTF-8")))
}

/// Opens the model directory `config->model_dir` on the CPU runtime and stores the engine in
/// `*out_engine`. The target and drafter load on the first `argen_generate` that needs them.
///
/// # Safety
/// `config` must point to an `argen_engine_config` whose `model_dir` is NULL or a
/// NUL-terminated string; `out_engine` must be writable.
#[no_mangle]
pub unsafe extern "C" fn argen_engine_open(
    config: *const argen_engine_config,
    out_engine: *mut *mut argen_engine,
) -> argen_status {
    call("argen_engine_open", || {
        // SAFETY: the caller's contract.
        let cfg = unsafe { versioned(config, "config")? };
        // SAFETY: the caller's contract.
        let slot = unsafe { out(out_engine, "out_engine")? };
        // SAFETY: the caller's contract.
        let dir = unsafe { text(cfg.model_dir, "config.model_dir")? }
            .ok_or_else(|| FfiError::null("config.model_dir"))?;
        let inner = Engine::open(
            dir,
            &EngineOptions {
                threads: cfg.threads,
            },
        )?;
        *slot = ENGINES.insert(argen_engine { inner });
        Ok(())
    })
}

/// Frees an engine (NULL is a no-op). Generations it produced stay valid.
///
/// # Safety
/// `engine` must be NULL or a pointer this library returned (freed or foreign pointers are
/// detected and refused).
#[no_mangle]
pub unsafe extern "C" fn argen_engine_free(engine: *mut argen_engine) -> argen_status {
    call("argen_engine_free", || {
        ENGINES.remove(engine, "engine").map(drop)
    })
}

/// The image an engine generates: `*out_tokens` tokens (`grid × grid`), `*out_width` ×
/// `*out_height` pixels.
///
/// # Safety
/// `engine` must be a live engine; the outputs must be writable.
#[no_mangle]
pub unsafe extern "C" fn argen_engine_shape(
    engine: *const argen_engine,
    out_tokens: *mut usize,
    out_width: *mut usize,
    out_height: *mut usize,
) -> argen_status {
    call("argen_engine_shape", || {
        let lease = ENGINES.lease_shared(engine, "engine")?;
        // SAFETY: the caller's contract.
        let (t, w, h) = unsafe {
            (
                out(out_tokens, "out_tokens")?,
                out(out_width, "out_width")?,
                out(out_height, "out_height")?,
            )
        };
        // SAFETY: leased: a live engine, no mutable use at the same time.
        let e = unsafe { &(*engine).inner };
        let size = e.image_size();
        (*t, *w, *h) = (e.config().block_size, size, size);
        drop(lease);
        Ok(())
    })
}

/// Generates one image and stores the result in `*out_generation` (free it with
/// `argen_generation_free`).
///
/// # Safety
/// `engine` must be a live engine; `request` must point to an `argen_generate_request` whose
/// string fields are NULL or NUL-terminated; `out_generation` must be writable.
#[no_mangle]
pub unsafe extern "C" fn argen_generate(
    engine: *mut argen_engine,
    request: *const argen_generate_request,
    out_generation: *mut *mut argen_generation,
) -> argen_status {
    call("argen_generate", || {
        // SAFETY: the caller's contract.
        let r = unsafe { versioned(request, "request")? };
        // SAFETY: the caller's contract.
        let slot = unsafe { out(out_generation, "out_generation")? };
        // SAFETY: the caller's contract (NULL or NUL-terminated strings).
        let (prompt, method, options, config) = unsafe {
            (
                text(r.prompt, "request.prompt")?,
                text(r.method, "request.method")?,
                text(r.options_json, "request.options_json")?,
                text(r.config_json, "request.config_json")?,
            )
        };
        let class_id = match r.class_id {
            -1 => None,
            c => Some(u32::try_from(c).map_err(|_| {
                FfiError::invalid(format!(
                    "request.class_id {c} is out of range (-1 = none, else 0..2^32)"
                ))
            })?),
        };
        let decoding = match (config, method, options) {
            (Some(json), None, None) => Decoding::Config(json),
            (Some(_), _, _) => {
                return Err(FfiError::invalid(
                    "request: give config_json or method/options_json, not both",
                ))
            }
            (None, name, options_json) => Decoding::Method {
                name: name.unwrap_or("vanilla"),
                options_json,
            },
        };
        let lease = ENGINES.lease_mut(engine, "engine")?;
        // SAFETY: leased exclusively: a live engine nobody else uses during this call.
        let e = unsafe { &mut (*engine).inner };
        let req = build_request(e, prompt, class_id, decoding, r.seed)?;
        let mut generation = e.generate(&req)?;
        drop(lease);
        let stats = generation.stats_json()?.to_string();
        let stats_json = CString::new(stats)
            .map_err(|_| FfiError::new(argen_status::ARGEN_ERR_UNKNOWN, "stats JSON holds NUL"))?;
        let rgb = generation.image.take().map(|i| i.rgb).unwrap_or_default();
        *slot = GENERATIONS.insert(argen_generation {
            generation,
            rgb,
            stats_json,
        });
        Ok(())
    })
}

/// Runs `f` on a live generation (shared lease).
fn with_generation(
    op: &str,
    g: *const argen_generation,
    f: impl FnOnce(&argen_generation) -> FfiResult<()>,
) -> argen_status {
    call(op, || {
        let lease = GENERATIONS.lease_shared(g, "generation")?;
        // SAFETY: leased: a live generation, never mutated after creation.
        let r = f(unsafe { &*g });
        drop(lease);
        r
    })
}

/// The generated tokens (raster order): `*out_tokens` points to `*out_len` values, valid until
/// `argen_generation_free`.
///
/// # Safety
/// `generation` must be a live generation; the outputs must be writable.
#[no_mangle]
pub unsafe extern "C" fn argen_generation_tokens(
    generation: *const argen_generation,
    out_tokens: *mut *const u32,
    out_len: *mut usize,
) -> argen_status {
    with_generation("argen_generation_tokens", generation, |g| {
        // SAFETY: the caller's contract.
        let (p, n) = unsafe { (out(out_tokens, "out_tokens")?, out(out_len, "out_len")?) };
        *p = g.generation.tokens.as_ptr();
        *n = g.generation.tokens.len();
        Ok(())
    })
}

/// The image: `*out_rgb` points to `*out_height` rows of `*out_width` pixels of R, G, B bytes,
/// valid until `argen_generation_free`.
///
/// # Safety
/// `generation` must be a live generation; the outputs must be writable.
#[no_mangle]
pub unsafe extern "C" fn argen_generation_image(
    generation: *const argen_generation,
    out_rgb: *mut *const u8,
    out_width: *mut usize,
    out_height: *mut usize,
) -> argen_status {
    with_generation("argen_generation_image", generation, |g| {
        // SAFETY: the caller's contract.
        let (p, w, h) = unsafe {
            (
                out(out_rgb, "out_rgb")?,
                out(out_width, "out_width")?,
                out(out_height, "out_height")?,
            )
        };
        (*w, *h) = g.generation.size;
        *p = g.rgb.as_ptr();
        Ok(())
    })
}

/// The statistics as a NUL-terminated JSON object (the `argen generate --stats` fields less the
/// method names: counters, `tokens_per_target_forward`, `mean_accepted_length`, `config`,
/// `image`, `prompt`, `alignment`, `wall_seconds`), valid until `argen_generation_free`.
///
/// # Safety
/// `generation` must be a live generation; `out_json` must be writable.
#[no_mangle]
pub unsafe extern "C" fn argen_generation_stats_json(
    generation: *const argen_generation,
    out_json: *mut *const c_char,
) -> argen_status {
    with_generation("argen_generation_stats_json", generation, |g| {
        // SAFETY: the caller's contract.
        let p = unsafe { out(out_json, "out_json")? };
        *p = g.stats_json.as_ptr();
        Ok(())
    })
}

/// Frees a generation (NULL is a no-op); the pointers its accessors returned become invalid.
///
/// # Safety
/// `generation` must be NULL or a pointer this library returned (freed or foreign pointers are
/// detected and refused).
#[no_mangle]
pub unsafe extern "C" fn argen_generation_free(generation: *mut argen_generation) -> argen_status {
    call("argen_generation_free", || {
        GENERATIONS.remove(generation, "generation").map(drop)
    })
}
