//! The C ABI of decoders (protocol v2): any method, built from a JSON `DecoderConfig`, driven by

#![allow(non_camel_case_types)]
//! `argen_decoder_poll` and answered by `argen_decoder_handle_*`.
//!
//! A host that runs its own model loops:
//!
//! ```c
//! argen_decoder_action a;
//! for (;;) {
//!     argen_decoder_poll(dec, &a);
//!     if (a.kind == ARGEN_ACTION_DONE) break;
//!     if (a.model != ARGEN_MODEL_NONE) {        // one forward over a.groups[0 .. a.n_groups)
//!         // per group: PREFILL resets seq and runs its condition (+ tokens); TARGET commits
//!         // keep[], drops other pending entries, runs inputs; DRAFT likewise with
//!         // new_step / commit on the drafter. Rows: group after group, inputs in order,
//!         // guidance variants (cond, uncond, reformulated) innermost.
//!         argen_decoder_handle_logits(dec, rows, ARGEN_DTYPE_F32, a.logits_rows * vocab);
//!     } else if (a.kind == ARGEN_ACTION_CHECK) argen_decoder_handle_verdict(dec, 1);
//!     else if (a.kind == ARGEN_ACTION_SCORE) argen_decoder_handle_score(dec, score);
//!     else argen_decoder_handle_reformulated(dec);
//! }
//! ```
//!
//! The full contract (KV-cache rules, row order) is the module documentation of
//! `argen_core::decode::protocol`; the embedding layer is [`crate::decoder`].

use crate::decoder::{argen_decoder_input, ActionView, OwnedDecoder, OwnedMux, TableArgs};
use crate::embed::{Dtype, Rows};
use crate::guard::{call, Registry};
use crate::status::{argen_status, FfiError, FfiResult};
use argen_core::accept::Metric;
use argen_core::decode::{Requirements, Stats};

/// Metric of a neighbour table: L2 between the codebook rows as stored.
pub const ARGEN_METRIC_RAW: u32 = 0;
/// Metric of a neighbour table: L2 between L2-normalised rows (argen's default).
pub const ARGEN_METRIC_NORMALISED: u32 = 1;
/// Buckets of `argen_stats.accepted_hist`.
pub const ARGEN_HIST_LEN: usize = 32;
const _: () = assert!(ARGEN_HIST_LEN == argen_core::decode::stats::HIST_LEN);

/// The vocabulary and the tables a decoder may need (versioned: set `struct_size`). Tables the
/// configuration does not need may be NULL (and are ignored otherwise); the ones it needs are
/// copied by `argen_decoder_new`, so the caller may free them afterwards.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct argen_decoder_resources {
    /// `sizeof(argen_decoder_resources)`.
    pub struct_size: usize,
    /// Vocabulary size of the model (logits row length), 2 ..= 2^24.
    pub vocab: usize,
    /// LANTERN neighbour ids, `vocab × neighbours_k`, row-major (or NULL).
    pub neighbours: *const u32,
    /// Neighbours per token in `neighbours`.
    pub neighbours_k: usize,
    /// A `vocab × neighbour_codebook_dim` codebook to build LANTERN's table from when
    /// `neighbours` is NULL (ranked by the configuration's metric), or NULL.
    pub neighbour_codebook: *const f32,
    /// Row length of `neighbour_codebook`.
    pub neighbour_codebook_dim: usize,
    /// The target's `vocab × embedding_dim` input embedding (grouped criterion), or NULL.
    pub embedding: *const f32,
    /// Row length of `embedding`.
    pub embedding_dim: usize,
    /// The `vocab × codebook_dim` VQ codebook (VVS dynamic schedule), or NULL.
    pub codebook: *const f32,
    /// Row length of `codebook`.
    pub codebook_dim: usize,
}

/// What a host must provide for a configuration (`argen_core::decode::Requirements`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct argen_requirements {
    /// Sequences used: ids `base.seq .. base.seq + sequences`.
    pub sequences: u32,
    /// Image tokens per sequence.
    pub tokens: u32,
    /// Most inputs one sequence contributes to one forward.
    pub inputs_per_run: u32,
    /// Most uncommitted entries of one sequence in one model's KV cache at once.
    pub pending: u32,
    /// Guidance variants (KV slots per sequence and model, logits rows per input).
    pub variants: u32,
    /// Most logits rows of one answer.
    pub logits_rows: u32,
    /// Distribution rows the decoder holds (allocated by argen).
    pub dist_rows: u32,
    /// 1 if drafter forwards occur.
    pub drafter: u32,
    /// 1 if Check actions occur.
    pub check: u32,
    /// 1 if Score actions occur.
    pub score: u32,
    /// 1 if Reformulate actions occur.
    pub reformulate: u32,
    /// Neighbours per token LANTERN needs (0: no neighbour table needed).
    pub neighbours_k: u32,
    /// `ARGEN_METRIC_*` of the neighbour table (meaningful when `neighbours_k > 0`).
    pub neighbours_metric: u32,
    /// 1 if the input embedding is needed (grouped criterion).
    pub embedding: u32,
    /// 1 if the VQ codebook is needed (VVS dynamic schedule).
    pub codebook: u32,
}

impl From<&Requirements> for argen_requirements {
    fn from(r: &Requirements) -> Self {
        argen_requirements {
            sequences: r.sequences,
            tokens: r.tokens,
            inputs_per_run: r.inputs_per_run,
            pending: r.pending,
            variants: r.variants,
            logits_rows: r.logits_rows,
            dist_rows: r.dist_rows,
            drafter: r.drafter.into(),
            check: r.check.into(),
            score: r.score.into(),
            reformulate: r.reformulate.into(),
            neighbours_k: r.neighbours.map_or(0, |n| n.k),
            neighbours_metric: match r.neighbours.map(|n| n.metric) {
                Some(Metric::Raw) => ARGEN_METRIC_RAW,
                _ => ARGEN_METRIC_NORMALISED,
            },
            embedding: r.embedding.into(),
            codebook: r.codebook.into(),
        }
    }
}

/// One sequence's part of a forward. Pointers are owned by the decoder and valid until the next
/// call on the same decoder handle; arrays of length 0 may be NULL.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct argen_decoder_group {
    /// `ARGEN_GROUP_PREFILL`, `_TARGET` or `_DRAFT`.
    pub kind: u32,
    /// The sequence.
    pub seq: u32,
    /// `ARGEN_GUIDANCE_PLAIN`, `_TWO_WAY` or `_THREE_WAY`.
    pub guidance: u32,
    /// Logits rows per input (1, 2 or 3): cond, uncond, reformulated.
    pub variants: u32,
    /// CFG scale (two-way) or weight (three-way); 0 without guidance.
    pub scale: f32,
    /// Drafter: 1 if pending drafter entries are dropped first and this run's inputs are numbered
    /// from entry 0.
    pub new_step: u32,
    /// Drafter: the first `commit` inputs join the committed prefix.
    pub commit: u32,
    /// Prefill: teacher-forced tokens after the condition (at raster indices 0..).
    pub tokens: *const u32,
    /// Length of `tokens`.
    pub n_tokens: usize,
    /// Target: pending entries of the previous target run to commit, in this order.
    pub keep: *const u32,
    /// Length of `keep`.
    pub n_keep: usize,
    /// Target and drafter inputs.
    pub inputs: *const argen_decoder_input,
    /// Length of `inputs`.
    pub n_inputs: usize,
    /// First logits row of this group in the answer.
    pub first_row: usize,
    /// Logits rows of this group.
    pub rows: usize,
}

/// The decoder's current action (filled by `argen_decoder_poll`). Pointers are owned by the
/// decoder and valid until the next call on the same decoder handle.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct argen_decoder_action {
    /// `ARGEN_ACTION_*`.
    pub kind: u32,
    /// `ARGEN_MODEL_*`: which model the forward runs (`ARGEN_MODEL_NONE` for judge actions).
    pub model: u32,
    /// Check / Score / Reformulate: the sequence.
    pub seq: u32,
    /// Check / Reformulate: token rows of the canvas.
    pub canvas_rows: u32,
    /// Logits rows the answer must carry (`n_elements = logits_rows × vocab`).
    pub logits_rows: usize,
    /// The forward's groups (a single prefill / target / draft is one group).
    pub groups: *const argen_decoder_group,
    /// Length of `groups` (0 unless `model != ARGEN_MODEL_NONE`).
    pub n_groups: usize,
    /// Check / Score / Reformulate: the canvas tokens.
    pub canvas: *const u32,
    /// Length of `canvas`.
    pub n_canvas: usize,
}

/// Counters of a decoding run (`argen_core::decode::Stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct argen_stats {
    /// Image tokens committed.
    pub tokens: u32,
    /// Target forwards, prefills included.
    pub target_forwards: u32,
    /// Target logits rows.
    pub target_rows: u32,
    /// Prefills.
    pub prefills: u32,
    /// Drafter forwards.
    pub draft_forwards: u32,
    /// Drafter logits rows.
    pub draft_rows: u32,
    /// Verification steps.
    pub verify_steps: u32,
    /// Steps that committed drafts without the target (VVS).
    pub skipped_steps: u32,
    /// Partial-canvas verifier calls.
    pub verifier_calls: u32,
    /// Scorer calls.
    pub scorer_calls: u32,
    /// Prompt reformulations.
    pub reformulations: u32,
    /// Verification steps by accepted draft length (last bucket: that many or more).
    pub accepted_hist: [u32; ARGEN_HIST_LEN],
    /// Tokens per target forward (TPF).
    pub tokens_per_forward: f64,
    /// Mean accepted length (MAL).
    pub mean_accepted_length: f64,
}

impl From<&Stats> for argen_stats {
    fn from(s: &Stats) -> Self {
        argen_stats {
            tokens: s.tokens,
            target_forwards: s.target_forwards,
            target_rows: s.target_rows,
            prefills: s.prefills,
            draft_forwards: s.draft_forwards,
            draft_rows: s.draft_rows,
            verify_steps: s.verify_steps,
            skipped_steps: s.skipped_steps,
            verifier_calls: s.verifier_calls,
            scorer_calls: s.scorer_calls,
            reformulations: s.reformulations,
            accepted_hist: s.accepted_hist,
            tokens_per_forward: s.tokens_per_target_forward(),
            mean_accepted_length: s.mean_accepted_length(),
        }
    }
}

/// A decoder of any method (opaque; see `argen_decoder_new`). Not thread-safe: one thread at a
/// time (concurrent calls are refused with `ARGEN_ERR_INVALID_HANDLE`).
pub struct argen_decoder {
    inner: OwnedDecoder,
    groups: Vec<argen_decoder_group>,
}

static DECODERS: Registry<argen_decoder> = Registry::new("argen_decoder");

/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes.
unsafe fn json_arg<'a>(ptr: *const core::ffi::c_char, len: usize) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(FfiError::null("config_json"));
    }
    if len > 1 << 20 {
        return Err(FfiError::invalid("config_json is longer than 1 MiB"));
    }
    // SAFETY: non-NULL; `len` readable bytes by the caller's contract.
    let bytes = unsafe { core::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    core::str::from_utf8(bytes).map_err(|e| FfiError::invalid(format!("config_json: {e}")))
}

/// # Safety
/// A non-NULL `ptr` must point to `len` valid elements.
unsafe fn table<'a, T>(ptr: *const T, len: usize, name: &str) -> FfiResult<Option<&'a [T]>> {
    if ptr.is_null() {
        return Ok(None);
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
            "`{name}` does not fit in the address space"
        )));
    }
    // SAFETY: non-NULL, aligned, size-bounded; validity is the caller's contract.
    Ok(Some(unsafe { core::slice::from_raw_parts(ptr, len) }))
}

/// # Safety
/// `out` must be NULL or writable.
unsafe fn write<T>(out: *mut T, name: &str, value: T) -> FfiResult<()> {
    // SAFETY: the caller's contract; NULL becomes an error.
    let slot = unsafe { out.as_mut() }.ok_or_else(|| FfiError::null(name))?;
    *slot = value;
    Ok(())
}

/// The tables of `res` as slices (NULL ones absent).
///
/// # Safety
/// Each non-NULL table of `res` must hold `vocab × its dim` elements.
unsafe fn table_args(res: &argen_decoder_resources) -> FfiResult<TableArgs<'_>> {
    let len = |dim: usize| res.vocab.saturating_mul(dim);
    // SAFETY: the caller's contract; an overflowing length saturates and is refused by `table`.
    unsafe {
        Ok(TableArgs {
            neighbours: table(res.neighbours, len(res.neighbours_k), "neighbours")?
                .map(|t| (t, res.neighbours_k)),
            neighbour_codebook: table(
                res.neighbour_codebook,
                len(res.neighbour_codebook_dim),
                "neighbour_codebook",
            )?
            .map(|t| (t, res.neighbour_codebook_dim)),
            embedding: table(res.embedding, len(res.embedding_dim), "embedding")?
                .map(|t| (t, res.embedding_dim)),
            codebook: table(res.codebook, len(res.codebook_dim), "codebook")?
                .map(|t| (t, res.codebook_dim)),
        })
    }
}

/// Runs `body` on a live decoder handle.
fn with_decoder(
    op: &str,
    decoder: *mut argen_decoder,
    body: impl FnOnce(&mut argen_decoder) -> FfiResult<()>,
) -> argen_status {
    call(op, || {
        let _lease = DECODERS.lease_mut(decoder, "decoder")?;
        // SAFETY: the registry vouches that `decoder` is a live handle and the exclusive lease
        // keeps every other call off it until `_lease` drops.
        body(unsafe { &mut *decoder })
    })
}

/// What a host must provide for the JSON `DecoderConfig` at `config_json` (`json_len` bytes of
/// UTF-8, no NUL needed), before building anything: KV-cache sizes, logits rows, whether a
/// drafter, a judge or tables are needed.
///
/// # Safety
/// `config_json` must point to `json_len` readable bytes; `out` to a writable struct.
#[no_mangle]
pub unsafe extern "C" fn argen_decoder_config_requirements(
    config_json: *const core::ffi::c_char,
    json_len: usize,
    out: *mut argen_requirements,
) -> argen_status {
    call("argen_decoder_config_requirements", || {
        // SAFETY: the caller's contract.
        let json = unsafe { json_arg(config_json, json_len)? };
        let req = crate::decoder::config_requirements(json)?;
        // SAFETY: the caller's contract.
        unsafe { write(out, "out", (&req).into()) }
    })
}

/// Builds a decoder from a JSON `DecoderConfig` (shape: the `argen_core::decode::any` module
/// documentation) and `resources` (vocabulary and tables, copied). On success `*out_decoder`
/// receives the handle; release it with `argen_decoder_free`. A configuration that needs a table
/// `resources` lacks is `ARGEN_ERR_INVALID_ARGUMENT` naming it.
///
/// # Safety
/// `config_json` must point to `json_len` readable bytes; `resources` to a valid
/// `argen_decoder_resources` of `struct_size` bytes whose non-NULL tables hold the lengths it
/// states; `out_decoder` to a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn argen_decoder_new(
    config_json: *const core::ffi::c_char,
    json_len: usize,
    resources: *const argen_decoder_resources,
    out_decoder: *mut *mut argen_decoder,
) -> argen_status {
    call("argen_decoder_new", || {
        // SAFETY: the caller's contract.
        let json = unsafe { json_arg(config_json, json_len)? };
        // SAFETY: the caller's contract.
        let res = unsafe { crate::capi::versioned(resources, "resources")? };
        if out_decoder.is_null() {
            return Err(FfiError::null("out_decoder"));
        }
        let config = crate::decoder::parse_config(json)?;
        let v = res.vocab;
        // SAFETY: the caller's contract on the tables.
        let tables = unsafe { table_args(&res)? };
        let inner = OwnedDecoder::new(config, v, tables)?;
        let handle = DECODERS.insert(argen_decoder {
            inner,
            groups: Vec::new(),
        });
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { *out_decoder = handle };
        Ok(())
    })
}

/// Frees a decoder. NULL is a no-op; a handle that is not live is refused with
/// `ARGEN_ERR_INVALID_HANDLE` and nothing is freed.
///
/// # Safety
/// `decoder` is NULL or a pointer value; it is dereferenced only if it is a live handle.
#[no_mangle]
pub unsafe extern "C" fn argen_decoder_free(decoder: *mut argen_decoder) -> argen_status {
    call("argen_decoder_free", || {
        drop(DECODERS.remove(decoder, "decoder")?);
        Ok(())
    })
}

/// The requirements of the decoder's configuration.
///
/// # Safety
/// `out` must point to a writable struct.
#[no_mangle]
pub unsafe extern "C" fn argen_decoder_requirements(
    decoder: *mut argen_decoder,
    out: *mut argen_requirements,
) -> argen_status {
    with_decoder("argen_decoder_requirements", decoder, |d| {
        let req = d.inner.requirements().into();
        // SAFETY: the caller's contract.
        unsafe { write(out, "out", req) }
    })
}

/// The decoder's current action into `*out`. Pure: polling again without answering gives the
/// same action. The arrays `out` points to belong to the decoder and stay valid until the next
/// call on this handle (any `argen_decoder_*` function).
///
/// # Safety
/// `out` must point to a writable struct.
#[no_mangle]
pub unsafe extern "C" fn argen_decoder_poll(
    decoder: *mut argen_decoder,
    out: *mut argen_decoder_action,
) -> argen_status {
    with_decoder("argen_decoder_poll", decoder, |d| {
        let action = snapshot(d.inner.poll(), &mut d.groups);
        // SAFETY: the caller's contract.
        unsafe { write(out, "out", action) }
    })
}

/// The C view of `view`, with the groups rebuilt in `groups` (pointers into `view` and `groups`).
fn snapshot(view: &ActionView, groups: &mut Vec<argen_decoder_group>) -> argen_decoder_action {
    let ptr = |s: &[u32]| {
        if s.is_empty() {
            core::ptr::null()
        } else {
            s.as_ptr()
        }
    };
    groups.clear();
    groups.extend(view.groups.iter().map(|g| {
        let inputs = &view.inputs[g.inputs.clone()];
        argen_decoder_group {
            kind: g.kind,
            seq: g.seq,
            guidance: g.guidance,
            variants: g.variants,
            scale: g.scale,
            new_step: g.new_step.into(),
            commit: g.commit,
            tokens: ptr(&view.tokens[g.tokens.clone()]),
            n_tokens: g.tokens.len(),
            keep: ptr(&view.keep[g.keep.clone()]),
            n_keep: g.keep.len(),
            inputs: if inputs.is_empty() {
                core::ptr::null()
            } else {
                inputs.as_ptr()
            },
            n_inputs: inputs.len(),
            first_row: g.first_row,
            rows: g.rows,
        }
    }));
    let canvas = &view.tokens[view.canvas.clone()];
    argen_decoder_action {
        kind: view.kind,
        model: view.model,
        seq: view.seq,
        canvas_rows: view.canvas_rows,
        logits_rows: view.logits_rows,
        groups: if groups.is_empty() {
            core::ptr::null()
        } else {
            groups.as_ptr()
        },
        n_groups: groups.len(),
        canvas: ptr(canvas),
        n_canvas: canvas.len(),
    }
}

/// Answers a forward with its logits: `n_elements = logits_rows × vocab` elements of `dtype`
/// (`ARGEN_DTYPE_F32`, `_F16`, `_BF16`), row-major, rows group after group. A wrong row count is
/// `ARGEN_ERR_LENGTH_MISMATCH` and changes nothing; answering an action that is not a forward is
/// `ARGEN_ERR_PROTOCOL`.
///
/// # Safety
/// `logits` must point to `n_elements` elements of `dtype`, aligned for it.
#[no_mangle]
pub unsafe extern "C" fn argen_decoder_handle_logits(
    decoder: *mut argen_decoder,
    logits: *const core::ffi::c_void,
    dtype: u32,
    n_elements: usize,
) -> argen_status {
    with_decoder("argen_decoder_handle_logits", decoder, |d| {
        let dtype = Dtype::from_code(dtype)?;
        // SAFETY: the caller's contract.
        let rows = unsafe { Rows::from_raw(logits.cast(), dtype, n_elements)? };
        d.inner.handle_logits(rows)
    })
}

/// Answers a Check: `possible` is 1 if the canvas can still match the prompt, 0 if not.
#[no_mangle]
pub extern "C" fn argen_decoder_handle_verdict(
    decoder: *mut argen_decoder,
    possible: u32,
) -> argen_status {
    with_decoder("argen_decoder_handle_verdict", decoder, |d| {
        if possible > 1 {
            return Err(FfiError::invalid(format!(
                "possible must be 0 or 1, got {possible}"
            )));
        }
        d.inner.handle_verdict(possible == 1)
    })
}

/// Answers a Score with a finite score (higher is better).
#[no_mangle]
pub extern "C" fn argen_decoder_handle_score(
    decoder: *mut argen_decoder,
    score: f32,
) -> argen_status {
    with_decoder("argen_decoder_handle_score", decoder, |d| {
        if !score.is_finite() {
            return Err(FfiError::invalid(format!(
                "score must be finite, got {score}"
            )));
        }
        d.inner.handle_score(score)
    })
}

/// Answers a Reformulate (the host now conditions the sequence's third variant on it).
#[no_mangle]
pub extern "C" fn argen_decoder_handle_reformulated(decoder: *mut argen_decoder) -> argen_status {
    with_decoder("argen_decoder_handle_reformulated", decoder, |d| {
        d.inner.handle_reformulated()
    })
}

/// Copies the tokens committed so far for sequence `seq` into `out_tokens` (`capacity`
/// entries; `requirements.tokens` always suffices) and their number into `*out_len`. An
/// unknown sequence has no tokens.
///
/// # Safety
/// `out_tokens` must point to `capacity` writable `uint32_t` (may be NULL when 0); `out_len` to a
/// writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn argen_decoder_tokens(
    decoder: *mut argen_decoder,
    seq: u32,
    out_tokens: *mut u32,
    capacity: usize,
    out_len: *mut usize,
) -> argen_status {
    with_decoder("argen_decoder_tokens", decoder, |d| {
        // SAFETY: the caller's contract on `out_tokens` and `out_len` (this function's).
        unsafe { copy_tokens(d.inner.tokens(seq), seq, out_tokens, capacity, out_len) }
    })
}

/// The sequence holding the final image (meaningful once the action is `ARGEN_ACTION_DONE`),
/// and the range of sequence ids the decoder uses (`*out_first .. *out_first + *out_count`).
///
/// # Safety
/// Each output must point to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn argen_decoder_result_seq(
    decoder: *mut argen_decoder,
    out_result: *mut u32,
    out_first: *mut u32,
    out_count: *mut u32,
) -> argen_status {
    with_decoder("argen_decoder_result_seq", decoder, |d| {
        if out_result.is_null() || out_first.is_null() || out_count.is_null() {
            return Err(FfiError::null("out_result / out_first / out_count"));
        }
        let seqs = d.inner.sequences();
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe {
            *out_result = d.inner.result_seq();
            *out_first = seqs.start;
            *out_count = seqs.end - seqs.start;
        }
        Ok(())
    })
}

/// The counters so far.
///
/// # Safety
/// `out` must point to a writable struct.
#[no_mangle]
pub unsafe extern "C" fn argen_decoder_stats(
    decoder: *mut argen_decoder,
    out: *mut argen_stats,
) -> argen_status {
    with_decoder("argen_decoder_stats", decoder, |d| {
        let stats = (&d.inner.stats()).into();
        // SAFETY: the caller's contract.
        unsafe { write(out, "out", stats) }
    })
}

// ---------------------------------------------------------------------------------------------
// Many decoders, shared forwards.

/// Independent decoders (requests) whose forwards are merged (opaque; see `argen_mux_new`): the
/// core's `Mux`. Actions and answers are those of a single decoder; each member's tokens are
/// exactly those of running it alone (keyed randomness). Not thread-safe.
pub struct argen_mux {
    inner: OwnedMux,
    groups: Vec<argen_decoder_group>,
}

static MUXES: Registry<argen_mux> = Registry::new("argen_mux");

fn with_mux(
    op: &str,
    mux: *mut argen_mux,
    body: impl FnOnce(&mut argen_mux) -> FfiResult<()>,
) -> argen_status {
    call(op, || {
        let _lease = MUXES.lease_mut(mux, "mux")?;
        // SAFETY: the registry vouches that `mux` is a live handle and the exclusive lease keeps
        // every other call off it until `_lease` drops.
        body(unsafe { &mut *mux })
    })
}

/// Creates an empty set of decoders over `vocab` tokens with `dist_rows` distribution rows
/// shared by its members (the sum of their `argen_requirements.dist_rows` suffices; a member
/// that does not fit is refused with `ARGEN_ERR_CAPACITY`). Free with `argen_mux_free`.
///
/// # Safety
/// `out_mux` must point to a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn argen_mux_new(
    vocab: usize,
    dist_rows: usize,
    out_mux: *mut *mut argen_mux,
) -> argen_status {
    call("argen_mux_new", || {
        if out_mux.is_null() {
            return Err(FfiError::null("out_mux"));
        }
        let inner = OwnedMux::new(vocab, dist_rows)?;
        let handle = MUXES.insert(argen_mux {
            inner,
            groups: Vec::new(),
        });
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { *out_mux = handle };
        Ok(())
    })
}

/// Frees a set and its members. NULL is a no-op; a handle that is not live is refused.
///
/// # Safety
/// `mux` is NULL or a pointer value; it is dereferenced only if it is a live handle.
#[no_mangle]
pub unsafe extern "C" fn argen_mux_free(mux: *mut argen_mux) -> argen_status {
    call("argen_mux_free", || {
        drop(MUXES.remove(mux, "mux")?);
        Ok(())
    })
}

/// Adds the decoder of a JSON `DecoderConfig` to the set (also while others run; its first
/// action joins the next merged forward). Its sequence ids (`base.seq ..`) must not overlap a
/// member's; `resources->vocab` must be the set's.
///
/// # Safety
/// As `argen_decoder_new`.
#[no_mangle]
pub unsafe extern "C" fn argen_mux_add(
    mux: *mut argen_mux,
    config_json: *const core::ffi::c_char,
    json_len: usize,
    resources: *const argen_decoder_resources,
) -> argen_status {
    with_mux("argen_mux_add", mux, |m| {
        // SAFETY: the caller's contract.
        let json = unsafe { json_arg(config_json, json_len)? };
        // SAFETY: the caller's contract.
        let res = unsafe { crate::capi::versioned(resources, "resources")? };
        if res.vocab != m.inner.vocab() {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!(
                    "resources.vocab is {}, the set's vocabulary is {}",
                    res.vocab,
                    m.inner.vocab()
                ),
            ));
        }
        let config = crate::decoder::parse_config(json)?;
        // SAFETY: the caller's contract on the tables.
        let tables = unsafe { table_args(&res)? };
        m.inner.add(config, tables)
    })
}

/// The set's current action (as `argen_decoder_poll`; `ARGEN_ACTION_DONE` when every member is
/// done or the set is empty).
///
/// # Safety
/// `out` must point to a writable struct.
#[no_mangle]
pub unsafe extern "C" fn argen_mux_poll(
    mux: *mut argen_mux,
    out: *mut argen_decoder_action,
) -> argen_status {
    with_mux("argen_mux_poll", mux, |m| {
        let action = snapshot(m.inner.poll(), &mut m.groups);
        // SAFETY: the caller's contract.
        unsafe { write(out, "out", action) }
    })
}

/// Answers a merged forward (as `argen_decoder_handle_logits`).
///
/// # Safety
/// `logits` must point to `n_elements` elements of `dtype`, aligned for it.
#[no_mangle]
pub unsafe extern "C" fn argen_mux_handle_logits(
    mux: *mut argen_mux,
    logits: *const core::ffi::c_void,
    dtype: u32,
    n_elements: usize,
) -> argen_status {
    with_mux("argen_mux_handle_logits", mux, |m| {
        let dtype = Dtype::from_code(dtype)?;
        // SAFETY: the caller's contract.
        let rows = unsafe { Rows::from_raw(logits.cast(), dtype, n_elements)? };
        m.inner.handle_logits(rows)
    })
}

/// Answers a Check of the set's current action (`possible`: 0 or 1).
#[no_mangle]
pub extern "C" fn argen_mux_handle_verdict(mux: *mut argen_mux, possible: u32) -> argen_status {
    with_mux("argen_mux_handle_verdict", mux, |m| {
        if possible > 1 {
            return Err(FfiError::invalid(format!(
                "possible must be 0 or 1, got {possible}"
            )));
        }
        m.inner.handle_verdict(possible == 1)
    })
}

/// Answers a Score of the set's current action (finite).
#[no_mangle]
pub extern "C" fn argen_mux_handle_score(mux: *mut argen_mux, score: f32) -> argen_status {
    with_mux("argen_mux_handle_score", mux, |m| {
        if !score.is_finite() {
            return Err(FfiError::invalid(format!(
                "score must be finite, got {score}"
            )));
        }
        m.inner.handle_score(score)
    })
}

/// Answers a Reformulate of the set's current action.
#[no_mangle]
pub extern "C" fn argen_mux_handle_reformulated(mux: *mut argen_mux) -> argen_status {
    with_mux("argen_mux_handle_reformulated", mux, |m| {
        m.inner.handle_reformulated()
    })
}

/// Writes `tokens` (of sequence `seq`) to `out_tokens` and their count to `out_len`: the body of
/// `argen_decoder_tokens` and `argen_mux_tokens`.
///
/// # Safety
/// `out_tokens` must point to `capacity` writable `uint32_t` (may be NULL when 0); `out_len` to a
/// writable `size_t` (checked non-NULL here).
unsafe fn copy_tokens(
    tokens: &[u32],
    seq: u32,
    out_tokens: *mut u32,
    capacity: usize,
    out_len: *mut usize,
) -> Result<(), FfiError> {
    if out_len.is_null() {
        return Err(FfiError::null("out_len"));
    }
    if capacity < tokens.len() {
        return Err(FfiError::new(
            argen_status::ARGEN_ERR_BUFFER_TOO_SMALL,
            format!(
                "sequence {seq} has {} tokens, capacity is {capacity}",
                tokens.len()
            ),
        ));
    }
    if !tokens.is_empty() {
        // SAFETY: the caller's contract on `out_tokens` (checked: non-NULL, aligned).
        let out = unsafe { crate::capi::slice_mut(out_tokens, capacity, "out_tokens")? };
        out[..tokens.len()].copy_from_slice(tokens);
    }
    // SAFETY: checked non-NULL; writable by the caller's contract.
    unsafe { *out_len = tokens.len() };
    Ok(())
}

/// Copies the tokens of sequence `seq` (any member's) as `argen_decoder_tokens`.
///
/// # Safety
/// As `argen_decoder_tokens`.
#[no_mangle]
pub unsafe extern "C" fn argen_mux_tokens(
    mux: *mut argen_mux,
    seq: u32,
    out_tokens: *mut u32,
    capacity: usize,
    out_len: *mut usize,
) -> argen_status {
    with_mux("argen_mux_tokens", mux, |m| {
        // SAFETY: the caller's contract on `out_tokens` and `out_len` (this function's).
        unsafe { copy_tokens(m.inner.tokens(seq), seq, out_tokens, capacity, out_len) }
    })
}

/// The member that uses sequence `seq`: its result sequence, whether it is done (1) and its
/// stats. An unknown sequence is `ARGEN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// Each output must point to writable memory.
#[no_mangle]
pub unsafe extern "C" fn argen_mux_member(
    mux: *mut argen_mux,
    seq: u32,
    out_result_seq: *mut u32,
    out_done: *mut u32,
    out_stats: *mut argen_stats,
) -> argen_status {
    with_mux("argen_mux_member", mux, |m| {
        if out_result_seq.is_null() || out_done.is_null() || out_stats.is_null() {
            return Err(FfiError::null("out_result_seq / out_done / out_stats"));
        }
        let (result, done, stats) = m.inner.member_info(seq)?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe {
            *out_result_seq = result;
            *out_done = done.into();
            *out_stats = (&stats).into();
        }
        Ok(())
    })
}

/// Removes the members that are done (read their tokens first), freeing their distribution
/// rows for new members; `*out_released` (may be NULL) receives how many were removed.
///
/// # Safety
/// `out_released` is NULL or points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn argen_mux_release_done(
    mux: *mut argen_mux,
    out_released: *mut usize,
) -> argen_status {
    with_mux("argen_mux_release_done", mux, |m| {
        let n = m.inner.release_done()?;
        // SAFETY: the caller's contract (NULL allowed).
        if let Some(slot) = unsafe { out_released.as_mut() } {
            *slot = n;
        }
        Ok(())
    })
}
