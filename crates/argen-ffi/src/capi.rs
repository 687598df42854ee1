//! The low-level C API: keyed RNG, logit processing and keyed sampling on caller rows, and
//! draft-tree verification. (The declarations of `argen.h`.)
//!
//! Conventions (see also the crate documentation):
//! - functions return [`argen_status`]; outputs go through pointer arguments, which are written
//!   only on success;
//! - every pointer is checked for NULL (and alignment, where the element type needs it) and every
//!   length against what it must hold, before anything is read;
//! - handles (`argen_sampler`, `argen_criterion`) are created by `_new` with a versioned config
//!   struct and released by `_free`; freed or foreign handles are detected (`ARGEN_ERR_INVALID_HANDLE`);
//! - codes that C would pass as enums (dtype, guidance kind, fill kind, criterion kind) are
//!   `uint32_t` so that an unknown value is an error, never undefined behaviour.

#![allow(non_camel_case_types)]

use crate::embed::{neighbour_table, Dtype, OwnedCriterion, Rows, Sampler};
use crate::guard::{call, Registry};
use crate::status::{argen_status, FfiError, FfiResult};
use argen_core::accept::NodeKeys;
use argen_core::backend::{DraftTree, Fill, ROOT};
use argen_core::rng::{Key, KeyedStream, Purpose, MAX_KEY_TOKEN, WORDS_PER_KEY};
use argen_core::{ProcessJob, RowGuidance, SampleJob, SamplerParams, TreeJob};

/// Element type code: IEEE binary32.
pub const ARGEN_DTYPE_F32: u32 = 0;
/// Element type code: IEEE binary16.
pub const ARGEN_DTYPE_F16: u32 = 1;
/// Element type code: bfloat16.
pub const ARGEN_DTYPE_BF16: u32 = 2;

/// Guidance kind: one row (`cond`), no guidance.
pub const ARGEN_GUIDANCE_PLAIN: u32 = 0;
/// Guidance kind: two-way CFG `l = u + s·(c − u)` with `s = scale`.
pub const ARGEN_GUIDANCE_TWO_WAY: u32 = 1;
/// Guidance kind: GridAR's three-way CFG with weight `w = scale`.
pub const ARGEN_GUIDANCE_THREE_WAY: u32 = 2;

/// Fill kind: uniform distribution (every weight `2^40`).
pub const ARGEN_FILL_UNIFORM: u32 = 0;
/// Fill kind: one-hot on `token` (weight `2^40`).
pub const ARGEN_FILL_ONE_HOT: u32 = 1;

/// Criterion kind: exact speculative sampling (output distribution exactly the target's).
pub const ARGEN_CRITERION_EXACT: u32 = 0;
/// Criterion kind: coupled (accept iff the draft equals the target's own keyed draw).
pub const ARGEN_CRITERION_COUPLED: u32 = 1;
/// Criterion kind: LANTERN relaxed acceptance over latent neighbours.
pub const ARGEN_CRITERION_LANTERN: u32 = 2;
/// Criterion kind: grouped speculative decoding (GSD).
pub const ARGEN_CRITERION_GROUPED: u32 = 3;

/// Random-draw purpose: the committed token of a position (vanilla sampling, bonus tokens).
pub const ARGEN_PURPOSE_SAMPLE: u32 = 1;
/// Random-draw purpose: the uniform of an acceptance test.
pub const ARGEN_PURPOSE_ACCEPT: u32 = 2;
/// Random-draw purpose: a draw from a residual distribution after a rejection.
pub const ARGEN_PURPOSE_RESIDUAL: u32 = 3;
/// Random-draw purpose: drawing a drafted token.
pub const ARGEN_PURPOSE_DRAFT: u32 = 4;
/// Random-draw purpose: choosing a root-to-leaf path of a draft tree (VVS skip steps).
pub const ARGEN_PURPOSE_PATH: u32 = 5;
/// Random-draw purpose: initialising a Jacobi window.
pub const ARGEN_PURPOSE_JACOBI_INIT: u32 = 6;
/// Random-draw purpose: per-candidate seeds of test-time scaling.
pub const ARGEN_PURPOSE_CANDIDATE: u32 = 7;

/// Parent index of a child of the root in `argen_tree_job.parents`.
pub const ARGEN_ROOT: u32 = u32::MAX;
/// `argen_tree_job.draft_base` value meaning "point-mass drafts" (no draft distribution rows).
pub const ARGEN_NO_DRAFT: u32 = u32::MAX;
/// Number of `uint64_t` words one key's stream provides.
pub const ARGEN_WORDS_PER_KEY: usize = 2048;
/// Largest `token` field of a key, plus one (`2^24`).
pub const ARGEN_MAX_KEY_TOKEN: u32 = 16_777_216;
const _: () = assert!(ARGEN_WORDS_PER_KEY == WORDS_PER_KEY && ARGEN_MAX_KEY_TOKEN == MAX_KEY_TOKEN);
/// Version of the low-level ABI declared in `argen.h` (returned by `argen_abi_version`).
pub const ARGEN_ABI_VERSION: u32 = 1;

/// The identity of one random draw stream (RNG scheme v1): every draw argen makes is a pure
/// function of these five fields. See `crates/argen-core/src/rng.rs` for the specification.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct argen_key {
    /// The user's seed.
    pub seed: u64,
    /// The sequence (image, candidate) the draw belongs to.
    pub stream: u32,
    /// What the draw is for (`ARGEN_PURPOSE_*`, or any other value for the host's own uses).
    pub purpose: u32,
    /// Absolute position of the token being decided.
    pub position: u32,
    /// Distinguishes several draws at one position; below `ARGEN_MAX_KEY_TOKEN`.
    pub token: u32,
}

impl argen_key {
    fn to_core(self) -> FfiResult<Key> {
        let key = Key {
            seed: self.seed,
            stream: self.stream,
            purpose: Purpose(self.purpose),
            position: self.position,
            token: self.token,
        };
        key.validate()?;
        Ok(key)
    }
}

/// Sampling parameters of one row. A zero-initialised struct means greedy decoding; each
/// truncation is disabled by `0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct argen_sampler_params {
    /// Temperature `T >= 0`; `0` selects greedy decoding (argmax, ties to the lowest id).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (`1 <= top_k <= vocab`); `0` disables.
    pub top_k: u32,
    /// Nucleus mass `p` in `(0, 1]`; `0` disables.
    pub top_p: f32,
    /// Minimum probability relative to the top token, in `[0, 1]`; `0` disables.
    pub min_p: f32,
}

impl argen_sampler_params {
    /// The core's parameters (range checks happen in the core).
    pub fn to_core(self) -> SamplerParams {
        SamplerParams {
            temperature: self.temperature,
            top_k: (self.top_k != 0).then_some(self.top_k),
            top_p: (self.top_p != 0.0).then_some(self.top_p),
            min_p: (self.min_p != 0.0).then_some(self.min_p),
        }
    }
}

/// Which logit rows one job combines and how (row indices into the logits batch).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct argen_guidance {
    /// `ARGEN_GUIDANCE_PLAIN`, `_TWO_WAY` or `_THREE_WAY`.
    pub kind: u32,
    /// The conditional row (the only row of plain jobs).
    pub cond: u32,
    /// The unconditional row (two- and three-way).
    pub uncond: u32,
    /// The row conditioned on the reformulated prompt (three-way only).
    pub reformulated: u32,
    /// CFG scale `s` (two-way) or weight `w` (three-way); ignored for plain jobs.
    pub scale: f32,
}

impl argen_guidance {
    fn to_core(self) -> FfiResult<RowGuidance> {
        Ok(match self.kind {
            ARGEN_GUIDANCE_PLAIN => RowGuidance::Plain { row: self.cond },
            ARGEN_GUIDANCE_TWO_WAY => RowGuidance::TwoWay {
                cond: self.cond,
                uncond: self.uncond,
                scale: self.scale,
            },
            ARGEN_GUIDANCE_THREE_WAY => RowGuidance::ThreeWay {
                cond: self.cond,
                uncond: self.uncond,
                reformulated: self.reformulated,
                w: self.scale,
            },
            k => {
                return Err(FfiError::invalid(format!(
                    "unknown guidance kind {k} (0 = plain, 1 = two-way, 2 = three-way)"
                )))
            }
        })
    }
}

/// Turn logit rows into distribution row `out` of a sampler.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct argen_process_job {
    /// Which logit rows, combined how.
    pub guidance: argen_guidance,
    /// Temperature and truncation.
    pub params: argen_sampler_params,
    /// Destination distribution row.
    pub out: u32,
}

/// Draw one token from distribution row `row` with `key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct argen_sample_job {
    /// The key of the draw (vanilla decoding uses purpose `ARGEN_PURPOSE_SAMPLE`, token 0).
    pub key: argen_key,
    /// Distribution row.
    pub row: u32,
}

/// A draft tree to verify against the target, and where its distribution rows are.
///
/// Node `i` holds `tokens[i]` below `parents[i]` (an earlier node or `ARGEN_ROOT`); children of a
/// node are tested in node order. Distribution rows are per slot: slot 0 is the root (the context
/// before the first drafted position), slot `i + 1` is node `i`; the target row of slot `s` is
/// `target_base + s` (overwritten by residuals), the draft row (sampled drafts) `draft_base + s`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct argen_tree_job {
    /// Drafted tokens (`n_nodes` of them; may be NULL when `n_nodes == 0`).
    pub tokens: *const u32,
    /// Parent of each node (`n_nodes`; may be NULL when `n_nodes == 0`).
    pub parents: *const u32,
    /// Number of nodes.
    pub n_nodes: usize,
    /// First target distribution row.
    pub target_base: u32,
    /// First draft distribution row, or `ARGEN_NO_DRAFT` for point-mass (top-k, greedy) drafts.
    pub draft_base: u32,
    /// The user's seed.
    pub seed: u64,
    /// The sequence.
    pub stream: u32,
    /// Absolute position of the root's children.
    pub position: u32,
}

/// Result of a tree verification.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct argen_tree_verdict {
    /// Number of accepted nodes (their indices are in the `path` buffer, root side first).
    pub accepted: usize,
    /// The token committed after them: the residual draw after a rejection, or the target's own
    /// draw when a leaf was reached.
    pub token: u32,
}

/// Configuration of `argen_sampler_new` (versioned: set `struct_size = sizeof(argen_sampler_config)`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct argen_sampler_config {
    /// `sizeof(argen_sampler_config)` as the caller compiled it.
    pub struct_size: usize,
    /// Vocabulary size `1 <= vocab <= 2^24 − 1`.
    pub vocab: usize,
    /// Number of distribution rows (at least 1).
    pub rows: usize,
}

/// Configuration of `argen_criterion_new` (versioned: set
/// `struct_size = sizeof(argen_criterion_config)`). Fields of other kinds are ignored; the tables
/// are copied, so they may be freed after the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct argen_criterion_config {
    /// `sizeof(argen_criterion_config)` as the caller compiled it.
    pub struct_size: usize,
    /// `ARGEN_CRITERION_*`.
    pub kind: u32,
    /// LANTERN: LANTERN++ factor `λ >= 1`, or `0` for plain LANTERN.
    pub lambda: f32,
    /// Vocabulary size (LANTERN, grouped).
    pub vocab: usize,
    /// LANTERN: row-major `vocab × neighbours_k` latent-neighbour table, nearest first.
    pub neighbours: *const u32,
    /// LANTERN: neighbours per token in the table.
    pub neighbours_k: usize,
    /// LANTERN: neighbours considered (`1 <= lantern_k <= neighbours_k`; paper: 1000).
    pub lantern_k: usize,
    /// LANTERN: total-variation budget `δ` in `[0, 1]` (paper: 0.1–0.4).
    pub delta: f32,
    /// Grouped: squared-distance tolerance (paper: 0.5).
    pub dist_tol: f32,
    /// Grouped: the target's input embedding, row-major `vocab × dim`.
    pub embedding: *const f32,
    /// Grouped: embedding width.
    pub dim: usize,
    /// Grouped: rank window on each side, 1..=16 (paper: 7).
    pub window: usize,
    /// Grouped: probability tolerance in `[0, 1]` (paper: 0.15).
    pub prob_tol: f32,
}

/// A table of distribution rows and the row operations on it (opaque; see `argen_sampler_new`).
/// Not thread-safe: use one handle from one thread at a time (concurrent calls are refused with
/// `ARGEN_ERR_INVALID_HANDLE`).
pub struct argen_sampler {
    inner: Sampler,
}

/// An acceptance criterion with its tables (opaque; see `argen_criterion_new`). Immutable:
/// any number of threads may use one criterion at the same time.
pub struct argen_criterion {
    inner: OwnedCriterion,
}

/// Jobs are converted to the core's types in chunks of this many, on the stack.
const JOB_CHUNK: usize = 32;
const PROCESS_FILLER: ProcessJob = ProcessJob {
    rows: RowGuidance::Plain { row: 0 },
    params: SamplerParams::GREEDY,
    out: 0,
};

static SAMPLERS: Registry<argen_sampler> = Registry::new("argen_sampler");
static CRITERIA: Registry<argen_criterion> = Registry::new("argen_criterion");

/// Checks `ptr` and returns `&T`.
///
/// # Safety
/// A non-NULL `ptr` must point to a valid `T`.
unsafe fn arg<'a, T>(ptr: *const T, name: &str) -> FfiResult<&'a T> {
    // SAFETY: the caller's contract; NULL is turned into an error.
    unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::null(name))
}

/// Checks `ptr` and returns `&mut T`.
///
/// # Safety
/// A non-NULL `ptr` must point to a valid, writable `T` not aliased elsewhere.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, name: &str) -> FfiResult<&'a mut T> {
    // SAFETY: the caller's contract; NULL is turned into an error.
    unsafe { ptr.as_mut() }.ok_or_else(|| FfiError::null(name))
}

fn check_ptr<T>(ptr: *const T, len: usize, name: &str) -> FfiResult<()> {
    if len == 0 {
        return Ok(());
    }
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    if (ptr as usize) % core::mem::align_of::<T>() != 0 {
        return Err(FfiError::new(
            argen_status::ARGEN_ERR_BAD_LAYOUT,
            format!("`{name}` is not aligned for its element type"),
        ));
    }
    if len
        .checked_mul(core::mem::size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(FfiError::invalid(format!(
            "`{name}`: {len} elements do not fit in the address space"
        )));
    }
    Ok(())
}

/// `len` elements at `ptr` as a slice (empty for `len == 0`, whatever `ptr` is).
///
/// # Safety
/// If `len > 0`, `ptr` must point to `len` valid elements that outlive `'a` and are not written
/// during it.
unsafe fn slice<'a, T>(ptr: *const T, len: usize, name: &str) -> FfiResult<&'a [T]> {
    check_ptr(ptr, len, name)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: checked non-NULL, aligned and size-bounded; validity is the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// `len` writable elements at `ptr` (empty for `len == 0`).
///
/// # Safety
/// If `len > 0`, `ptr` must point to `len` writable elements, not aliased during `'a`.
pub(crate) unsafe fn slice_mut<'a, T>(
    ptr: *mut T,
    len: usize,
    name: &str,
) -> FfiResult<&'a mut [T]> {
    check_ptr(ptr, len, name)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: checked non-NULL, aligned and size-bounded; validity is the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// Reads a versioned config struct whose first field is `size_t struct_size`: sizes below this
/// version's are refused; larger sizes (a caller built against a newer header) are accepted only
/// if every byte past this version's fields is zero, i.e. the newer fields keep their defaults.
///
/// # Safety
/// A non-NULL `ptr` must point to at least `struct_size` readable bytes, the first
/// `size_of::<T>()` of them a valid `T`.
pub(crate) unsafe fn versioned<T: Copy>(ptr: *const T, name: &str) -> FfiResult<T> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: non-NULL; every config struct starts with a `usize` (`struct_size`).
    let size = unsafe { core::ptr::read_unaligned(ptr.cast::<usize>()) };
    let known = core::mem::size_of::<T>();
    if size < known {
        return Err(FfiError::new(
            argen_status::ARGEN_ERR_STRUCT_SIZE,
            format!(
                "`{name}.struct_size` is {size}, this library needs at least {known} (set it to \
                 sizeof the struct)"
            ),
        ));
    }
    if size > known {
        if size > 1 << 16 {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_STRUCT_SIZE,
                format!("`{name}.struct_size` is {size}, larger than any version of the struct"),
            ));
        }
        // SAFETY: the caller declared `size` readable bytes.
        let tail =
            unsafe { core::slice::from_raw_parts(ptr.cast::<u8>().add(known), size - known) };
        if tail.iter().any(|&b| b != 0) {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_STRUCT_SIZE,
                format!(
                    "`{name}` comes from a newer header ({size} bytes, this library knows {known}) \
                     and sets fields this library does not support"
                ),
            ));
        }
    }
    // SAFETY: non-NULL and at least `known` bytes of a valid `T` (caller's contract).
    Ok(unsafe { core::ptr::read_unaligned(ptr) })
}

// ---------------------------------------------------------------------------------------------
// Library information and errors.

/// The library version, e.g. `"0.1.0"` (static string).
#[no_mangle]
pub extern "C" fn argen_version() -> *const core::ffi::c_char {
    static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// The low-level ABI version (`ARGEN_ABI_VERSION` of the header this library was built with).
#[no_mangle]
pub extern "C" fn argen_abi_version() -> u32 {
    ARGEN_ABI_VERSION
}

/// One line describing why the calling thread's most recent argen call failed; the empty string
/// after a success. Owned by argen and valid until the thread's next argen call. Never NULL.
#[no_mangle]
pub extern "C" fn argen_last_error() -> *const core::ffi::c_char {
    crate::guard::last_error_ptr()
}

/// The enumerator name of a status code (`"ARGEN_ERR_NULL_POINTER"`), or `"ARGEN_ERR_UNKNOWN"`
/// for a code that is not one. Static string, never NULL.
#[no_mangle]
pub extern "C" fn argen_status_name(status: core::ffi::c_int) -> *const core::ffi::c_char {
    argen_status::from_code(status as i64)
        .unwrap_or(argen_status::ARGEN_ERR_UNKNOWN)
        .name_cstr()
        .as_ptr()
}

/// Bytes per element of dtype code `dtype`, or 0 for an unknown code.
#[no_mangle]
pub extern "C" fn argen_dtype_size(dtype: u32) -> usize {
    Dtype::from_code(dtype).map_or(0, Dtype::size)
}

// ---------------------------------------------------------------------------------------------
// Keyed RNG (scheme v1).

/// The 256-bit ChaCha20 key of `seed` as eight little-endian words (RNG spec step 1) into
/// `out_words[0..8]`; `len` must be at least 8.
///
/// # Safety
/// `out_words` must point to `len` writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn argen_rng_chacha_key(
    seed: u64,
    out_words: *mut u32,
    len: usize,
) -> argen_status {
    call("argen_rng_chacha_key", || {
        if len < 8 {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_BUFFER_TOO_SMALL,
                format!("need 8 words, got room for {len}"),
            ));
        }
        // SAFETY: the caller's contract on `out_words`.
        let out = unsafe { slice_mut(out_words, len, "out_words")? };
        out[..8].copy_from_slice(&Key::chacha_key(seed));
        Ok(())
    })
}

/// The ChaCha nonce `(purpose << 32) | stream` and the block counter of block `block`
/// (`< 256`) of `key` (RNG spec steps 2–3).
///
/// # Safety
/// `key` must point to a valid `argen_key`; `out_nonce` and `out_counter` to writable
/// `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn argen_key_block_address(
    key: *const argen_key,
    block: u32,
    out_nonce: *mut u64,
    out_counter: *mut u64,
) -> argen_status {
    call("argen_key_block_address", || {
        // SAFETY: the caller's contract.
        let key = unsafe { arg(key, "key")? }.to_core()?;
        let block = u8::try_from(block).map_err(|_| {
            FfiError::invalid(format!(
                "block {block} is out of range (a key has 256 blocks)"
            ))
        })?;
        // SAFETY: the caller's contract.
        let (n, c) = unsafe {
            (
                out(out_nonce, "out_nonce")?,
                out(out_counter, "out_counter")?,
            )
        };
        *n = key.nonce();
        *c = key.counter(block);
        Ok(())
    })
}

/// The first `n` words (`n <= ARGEN_WORDS_PER_KEY`) of `key`'s stream (RNG spec step 5).
///
/// # Safety
/// `key` must point to a valid `argen_key`; `out_words` to `n` writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn argen_rng_words(
    key: *const argen_key,
    out_words: *mut u64,
    n: usize,
) -> argen_status {
    call("argen_rng_words", || {
        // SAFETY: the caller's contract.
        let key = unsafe { arg(key, "key")? }.to_core()?;
        if n > WORDS_PER_KEY {
            return Err(FfiError::invalid(format!(
                "a key provides {WORDS_PER_KEY} words, {n} were requested"
            )));
        }
        // SAFETY: the caller's contract.
        let out = unsafe { slice_mut(out_words, n, "out_words")? };
        let mut stream = KeyedStream::new(key);
        for o in out {
            *o = stream.next_word().unwrap_or(0);
        }
        Ok(())
    })
}

/// A uniform integer in `[0, n)` (`n >= 1`) from a fresh stream of `key` (RNG spec step 6).
///
/// # Safety
/// `key` must point to a valid `argen_key`; `out_value` to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn argen_rng_below(
    key: *const argen_key,
    n: u64,
    out_value: *mut u64,
) -> argen_status {
    call("argen_rng_below", || {
        // SAFETY: the caller's contract.
        let key = unsafe { arg(key, "key")? }.to_core()?;
        // SAFETY: the caller's contract.
        let o = unsafe { out(out_value, "out_value")? };
        if n == 0 {
            return Err(FfiError::invalid("n must be at least 1"));
        }
        *o = KeyedStream::new(key).below(n as u128)? as u64;
        Ok(())
    })
}

/// [`argen_rng_below`] for 128-bit bounds: `n = n_lo | n_hi << 64` (`n >= 1`), result in
/// `*out_lo | *out_hi << 64`.
///
/// # Safety
/// `key` must point to a valid `argen_key`; `out_lo` and `out_hi` to writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn argen_rng_below_u128(
    key: *const argen_key,
    n_lo: u64,
    n_hi: u64,
    out_lo: *mut u64,
    out_hi: *mut u64,
) -> argen_status {
    call("argen_rng_below_u128", || {
        // SAFETY: the caller's contract.
        let key = unsafe { arg(key, "key")? }.to_core()?;
        // SAFETY: the caller's contract.
        let (lo, hi) = unsafe { (out(out_lo, "out_lo")?, out(out_hi, "out_hi")?) };
        let n = n_lo as u128 | (n_hi as u128) << 64;
        if n == 0 {
            return Err(FfiError::invalid("n must be at least 1"));
        }
        let r = KeyedStream::new(key).below(n)?;
        *lo = r as u64;
        *hi = (r >> 64) as u64;
        Ok(())
    })
}

/// A uniform real in `[0, 1)` with 53 random bits from a fresh stream of `key` (RNG spec step 7).
///
/// # Safety
/// `key` must point to a valid `argen_key`; `out_value` to a writable `double`.
#[no_mangle]
pub unsafe extern "C" fn argen_rng_unit(
    key: *const argen_key,
    out_value: *mut f64,
) -> argen_status {
    call("argen_rng_unit", || {
        // SAFETY: the caller's contract.
        let key = unsafe { arg(key, "key")? }.to_core()?;
        // SAFETY: the caller's contract.
        *unsafe { out(out_value, "out_value")? } = KeyedStream::new(key).unit_f64();
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Samplers.

/// Creates a sampler: a table of `config->rows` distribution rows over `config->vocab` tokens
/// (about `8 · (rows + 1) · vocab` bytes). On success `*out_sampler` receives the handle; release
/// it with `argen_sampler_free`.
///
/// # Safety
/// `config` must point to a valid `argen_sampler_config` of `config->struct_size` bytes;
/// `out_sampler` to a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn argen_sampler_new(
    config: *const argen_sampler_config,
    out_sampler: *mut *mut argen_sampler,
) -> argen_status {
    call("argen_sampler_new", || {
        // SAFETY: the caller's contract.
        let cfg = unsafe { versioned(config, "config")? };
        // SAFETY: the caller's contract.
        let slot = unsafe { out(out_sampler, "out_sampler")? };
        let inner = Sampler::new(cfg.vocab, cfg.rows)?;
        *slot = SAMPLERS.insert(argen_sampler { inner });
        Ok(())
    })
}

/// Frees a sampler. NULL is a no-op; a handle that is not live (already freed, never created) or
/// in use on another thread is refused with `ARGEN_ERR_INVALID_HANDLE` and nothing is freed.
///
/// # Safety
/// `sampler` is NULL or a pointer value; it is never dereferenced unless it is a live handle.
#[no_mangle]
pub unsafe extern "C" fn argen_sampler_free(sampler: *mut argen_sampler) -> argen_status {
    call("argen_sampler_free", || {
        drop(SAMPLERS.remove(sampler, "sampler")?);
        Ok(())
    })
}

/// Runs the sampler's body on a live handle.
fn with_sampler(
    op: &str,
    sampler: *mut argen_sampler,
    body: impl FnOnce(&mut Sampler) -> FfiResult<()>,
) -> argen_status {
    call(op, || {
        let _lease = SAMPLERS.lease_mut(sampler, "sampler")?;
        // SAFETY: the registry vouches that `sampler` is a live `argen_sampler` handle and the
        // exclusive lease guarantees no other call uses it until `_lease` drops.
        let s = unsafe { &mut *sampler };
        body(&mut s.inner)
    })
}

/// The sampler's vocabulary size and number of distribution rows.
///
/// # Safety
/// `out_vocab` and `out_rows` must point to writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn argen_sampler_shape(
    sampler: *mut argen_sampler,
    out_vocab: *mut usize,
    out_rows: *mut usize,
) -> argen_status {
    with_sampler("argen_sampler_shape", sampler, |s| {
        // SAFETY: the caller's contract.
        let (v, r) = unsafe { (out(out_vocab, "out_vocab")?, out(out_rows, "out_rows")?) };
        *v = s.vocab();
        *r = s.rows();
        Ok(())
    })
}

/// Processes logit rows into distribution rows: for each job, guidance → temperature → top-k →
/// top-p/min-p → fixed-point weights into row `job.out` (sampling scheme v1,
/// `crates/argen-core/src/process.rs`).
///
/// `logits` holds `n_elements` elements of dtype `dtype` (`ARGEN_DTYPE_*`), row-major, a positive
/// multiple of the vocabulary; the rows the jobs name must exist. Jobs run in order; on an error
/// the rows of earlier jobs are already written.
///
/// # Safety
/// `logits` must point to `n_elements` elements of `dtype` (aligned for it); `jobs` to `n_jobs`
/// valid jobs (may be NULL when `n_jobs == 0`).
#[no_mangle]
pub unsafe extern "C" fn argen_sampler_process(
    sampler: *mut argen_sampler,
    logits: *const core::ffi::c_void,
    dtype: u32,
    n_elements: usize,
    jobs: *const argen_process_job,
    n_jobs: usize,
) -> argen_status {
    with_sampler("argen_sampler_process", sampler, |s| {
        let dtype = Dtype::from_code(dtype)?;
        if n_elements == 0 {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                "n_elements is 0: logits need at least one row",
            ));
        }
        // SAFETY: the caller's contract on `logits`.
        let rows = unsafe { Rows::from_raw(logits.cast(), dtype, n_elements)? };
        // SAFETY: the caller's contract on `jobs`.
        let jobs = unsafe { slice(jobs, n_jobs, "jobs")? };
        // Converted in fixed-size chunks on the stack: no allocation per call.
        let mut buf = [PROCESS_FILLER; JOB_CHUNK];
        for (c, chunk) in jobs.chunks(JOB_CHUNK).enumerate() {
            for (k, (j, slot)) in chunk.iter().zip(buf.iter_mut()).enumerate() {
                let rows = j.guidance.to_core().map_err(|e| {
                    FfiError::new(
                        e.status,
                        format!("jobs[{}]: {}", c * JOB_CHUNK + k, e.message),
                    )
                })?;
                *slot = ProcessJob {
                    rows,
                    params: j.params.to_core(),
                    out: j.out,
                };
            }
            s.process(rows, &buf[..chunk.len()])?;
        }
        Ok(())
    })
}

/// One keyed draw per job: `out_tokens[j]` = a draw from row `jobs[j].row` with `jobs[j].key`
/// (`out_len >= n_jobs`).
///
/// # Safety
/// `jobs` must point to `n_jobs` valid jobs; `out_tokens` to `out_len` writable `uint32_t`
/// (either may be NULL when its length is 0).
#[no_mangle]
pub unsafe extern "C" fn argen_sampler_sample(
    sampler: *mut argen_sampler,
    jobs: *const argen_sample_job,
    n_jobs: usize,
    out_tokens: *mut u32,
    out_len: usize,
) -> argen_status {
    with_sampler("argen_sampler_sample", sampler, |s| {
        // SAFETY: the caller's contract.
        let jobs = unsafe { slice(jobs, n_jobs, "jobs")? };
        // SAFETY: the caller's contract.
        let out = unsafe { slice_mut(out_tokens, out_len, "out_tokens")? };
        if out.len() < jobs.len() {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_BUFFER_TOO_SMALL,
                format!(
                    "{} sample jobs but room for {} tokens",
                    jobs.len(),
                    out.len()
                ),
            ));
        }
        let mut buf = [SampleJob {
            row: 0,
            key: Key::new(0, 0, Purpose::SAMPLE, 0),
        }; JOB_CHUNK];
        for (chunk, out) in jobs.chunks(JOB_CHUNK).zip(out.chunks_mut(JOB_CHUNK)) {
            for (j, slot) in chunk.iter().zip(buf.iter_mut()) {
                *slot = SampleJob {
                    row: j.row,
                    key: j.key.to_core()?,
                };
            }
            s.sample(&buf[..chunk.len()], &mut out[..chunk.len()])?;
        }
        Ok(())
    })
}

/// The `k` most likely tokens of row `row` (weight descending, id ascending) into `tokens` and
/// their probabilities `weight / total` into `probs` (`1 <= k <= vocab`).
///
/// # Safety
/// `tokens` and `probs` must point to `k` writable elements each.
#[no_mangle]
pub unsafe extern "C" fn argen_sampler_top_k(
    sampler: *mut argen_sampler,
    row: u32,
    tokens: *mut u32,
    probs: *mut f64,
    k: usize,
) -> argen_status {
    with_sampler("argen_sampler_top_k", sampler, |s| {
        if k == 0 {
            return Err(FfiError::invalid("k must be at least 1"));
        }
        // SAFETY: the caller's contract.
        let (t, p) = unsafe {
            (
                slice_mut(tokens, k, "tokens")?,
                slice_mut(probs, k, "probs")?,
            )
        };
        s.top_k(row, t, p)
    })
}

/// Writes a synthetic distribution into row `row`: `ARGEN_FILL_UNIFORM` (every weight `2^40`) or
/// `ARGEN_FILL_ONE_HOT` (weight `2^40` on `token` only; `token` is ignored for uniform rows).
/// Jacobi decoding uses such rows as draft distributions.
#[no_mangle]
pub extern "C" fn argen_sampler_fill(
    sampler: *mut argen_sampler,
    row: u32,
    fill: u32,
    token: u32,
) -> argen_status {
    with_sampler("argen_sampler_fill", sampler, |s| {
        let fill = match fill {
            ARGEN_FILL_UNIFORM => Fill::Uniform,
            ARGEN_FILL_ONE_HOT => Fill::OneHot(token),
            f => {
                return Err(FfiError::invalid(format!(
                    "unknown fill kind {f} (0 = uniform, 1 = one-hot)"
                )))
            }
        };
        s.fill(row, fill)
    })
}

/// Copies row `row`'s fixed-point weights into `weights` (`len` must equal the vocabulary) and
/// its total into `*out_total`; token `t` has probability exactly `weights[t] / total`.
///
/// # Safety
/// `weights` must point to `len` writable `uint64_t`; `out_total` to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn argen_sampler_read_row(
    sampler: *mut argen_sampler,
    row: u32,
    weights: *mut u64,
    len: usize,
    out_total: *mut u64,
) -> argen_status {
    with_sampler("argen_sampler_read_row", sampler, |s| {
        // SAFETY: the caller's contract.
        let (w, t) = unsafe {
            (
                slice_mut(weights, len, "weights")?,
                out(out_total, "out_total")?,
            )
        };
        if len == 0 {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!("len is 0, the vocabulary has {}", s.vocab()),
            ));
        }
        *t = s.read_row(row, w)?;
        Ok(())
    })
}

/// Verifies a draft tree against the target rows of the sampler with `criterion` (see
/// `argen_tree_job`): accepted node indices go to `path` (root side first; `path_len` must be at
/// least the depth of the accepted path — `n_nodes` always suffices), the count and the committed
/// token to `*out_verdict`. Target rows are overwritten with residuals.
///
/// # Safety
/// `job` must point to a valid `argen_tree_job` whose `tokens` and `parents` point to `n_nodes`
/// elements; `path` to `path_len` writable `uint32_t`; `out_verdict` to a writable verdict.
#[no_mangle]
pub unsafe extern "C" fn argen_sampler_verify_tree(
    sampler: *mut argen_sampler,
    job: *const argen_tree_job,
    criterion: *const argen_criterion,
    path: *mut u32,
    path_len: usize,
    out_verdict: *mut argen_tree_verdict,
) -> argen_status {
    with_sampler("argen_sampler_verify_tree", sampler, |s| {
        // SAFETY: the caller's contract.
        let job = unsafe { arg(job, "job")? };
        let _c_lease = CRITERIA.lease_shared(criterion, "criterion")?;
        // SAFETY: the registry vouches for a live criterion; shared leases only read it.
        let crit = unsafe { &*criterion };
        // SAFETY: the caller's contract.
        let tokens = unsafe { slice(job.tokens, job.n_nodes, "job.tokens")? };
        // SAFETY: the caller's contract.
        let parents = unsafe { slice(job.parents, job.n_nodes, "job.parents")? };
        // SAFETY: the caller's contract.
        let path = unsafe { slice_mut(path, path_len, "path")? };
        // SAFETY: the caller's contract.
        let verdict = unsafe { out(out_verdict, "out_verdict")? };
        let tree = TreeJob {
            tree: DraftTree { tokens, parents },
            target_base: job.target_base,
            draft_base: (job.draft_base != ARGEN_NO_DRAFT).then_some(job.draft_base),
            keys: NodeKeys {
                seed: job.seed,
                stream: job.stream,
                position: job.position,
            },
        };
        debug_assert_eq!(ROOT, ARGEN_ROOT);
        let v = s.verify_tree(&tree, &crit.inner, path)?;
        *verdict = argen_tree_verdict {
            accepted: v.accepted,
            token: v.token,
        };
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Criteria.

/// Creates an acceptance criterion from `config` (tables are copied and validated once). On
/// success `*out_criterion` receives the handle; release it with `argen_criterion_free`.
///
/// # Safety
/// `config` must point to a valid `argen_criterion_config` of `config->struct_size` bytes whose
/// table pointers (for its kind) point to `vocab × neighbours_k` ids or `vocab × dim` floats;
/// `out_criterion` to a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn argen_criterion_new(
    config: *const argen_criterion_config,
    out_criterion: *mut *mut argen_criterion,
) -> argen_status {
    call("argen_criterion_new", || {
        // SAFETY: the caller's contract.
        let cfg = unsafe { versioned(config, "config")? };
        // SAFETY: the caller's contract.
        let slot = unsafe { out(out_criterion, "out_criterion")? };
        let inner = match cfg.kind {
            ARGEN_CRITERION_EXACT => OwnedCriterion::exact(),
            ARGEN_CRITERION_COUPLED => OwnedCriterion::coupled(),
            ARGEN_CRITERION_LANTERN => {
                let len = cfg
                    .vocab
                    .checked_mul(cfg.neighbours_k)
                    .ok_or_else(|| FfiError::invalid("vocab × neighbours_k overflows"))?;
                if len == 0 {
                    return Err(FfiError::new(
                        argen_status::ARGEN_ERR_NEIGHBOUR_TABLE,
                        "vocab and neighbours_k must be positive",
                    ));
                }
                // SAFETY: the caller's contract.
                let ids = unsafe { slice(cfg.neighbours, len, "config.neighbours")? };
                let lambda = (cfg.lambda != 0.0).then_some(cfg.lambda);
                OwnedCriterion::lantern(
                    ids,
                    cfg.vocab,
                    cfg.neighbours_k,
                    cfg.lantern_k,
                    cfg.delta,
                    lambda,
                )?
            }
            ARGEN_CRITERION_GROUPED => {
                let len = cfg
                    .vocab
                    .checked_mul(cfg.dim)
                    .ok_or_else(|| FfiError::invalid("vocab × dim overflows"))?;
                if len == 0 {
                    return Err(FfiError::invalid("vocab and dim must be positive"));
                }
                // SAFETY: the caller's contract.
                let emb = unsafe { slice(cfg.embedding, len, "config.embedding")? };
                OwnedCriterion::grouped(
                    emb,
                    cfg.vocab,
                    cfg.dim,
                    cfg.window,
                    cfg.prob_tol,
                    cfg.dist_tol,
                )?
            }
            k => {
                return Err(FfiError::invalid(format!(
                    "unknown criterion kind {k} (0 = exact, 1 = coupled, 2 = lantern, 3 = grouped)"
                )))
            }
        };
        *slot = CRITERIA.insert(argen_criterion { inner });
        Ok(())
    })
}

/// Frees a criterion. NULL is a no-op; a handle that is not live or in use is refused with
/// `ARGEN_ERR_INVALID_HANDLE` and nothing is freed.
///
/// # Safety
/// `criterion` is NULL or a pointer value; it is never dereferenced unless it is a live handle.
#[no_mangle]
pub unsafe extern "C" fn argen_criterion_free(criterion: *mut argen_criterion) -> argen_status {
    call("argen_criterion_free", || {
        drop(CRITERIA.remove(criterion, "criterion")?);
        Ok(())
    })
}

/// Builds the `vocab × k` latent-neighbour table of a row-major `vocab × dim` codebook
/// (`codebook_len = vocab · dim`) into `out_ids` (`out_len` must be `vocab · k`): for each token
/// its `k` nearest other codebook entries by squared L2 distance (summed in `f64` in index
/// order), ties to the smaller id. Costs `O(vocab² · dim)`.
///
/// # Safety
/// `codebook` must point to `codebook_len` floats; `out_ids` to `out_len` writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn argen_neighbour_table_build(
    codebook: *const f32,
    codebook_len: usize,
    dim: usize,
    k: usize,
    out_ids: *mut u32,
    out_len: usize,
) -> argen_status {
    call("argen_neighbour_table_build", || {
        // SAFETY: the caller's contract.
        let cb = unsafe { slice(codebook, codebook_len, "codebook")? };
        // SAFETY: the caller's contract.
        let out = unsafe { slice_mut(out_ids, out_len, "out_ids")? };
        if dim == 0 || codebook_len % dim != 0 {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!("codebook_len {codebook_len} is not a positive multiple of dim {dim}"),
            ));
        }
        let needed = (codebook_len / dim).saturating_mul(k);
        if out.len() != needed {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!("out_len is {out_len}, the table has vocab × k = {needed} ids"),
            ));
        }
        let table = neighbour_table(cb, dim, k)?;
        out.copy_from_slice(&table);
        Ok(())
    })
}
