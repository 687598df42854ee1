//! Per-action overhead of driving a decoder through the C ABI (`argen_decoder_poll` +
//! `argen_decoder_handle_*`) over driving the same `AnyDecoder` directly in Rust.
//!
//! ```sh
//! cargo run --release -p argen-ffi --example decoder_overhead
//! python python/bench/decoder_overhead.py      # the Python binding, same work
//! ```
//!
//! A LlamaGen-sized run (V = 16384, 16 × 16 = 256 tokens, two-way CFG, top-k 1000) of vanilla
//! decoding and of tree speculative decoding (exact criterion), answered with fixed logits rows
//! (the host computes nothing, so the time is argen's own work plus the binding's). Prints the
//! fastest of nine wall clocks per image and per action of each path; the difference per action is what
//! the C ABI adds (argument checks, handle registry, panic guard, the action snapshot).

use argen_core::decode::{Action, AnyDecoder, Decoder, DecoderConfig, Resources};
use argen_core::SliceStorage;
use argen_ffi::*;
use std::time::Instant;

const V: usize = 16384;
const REPS: usize = 9;

fn config(method: &str) -> String {
    format!(
        r#"{{"base": {{"seed": 3, "stream": 0, "seq": 0, "tokens": 256, "width": 16,
            "sampler": {{"temperature": 1.0, "top_k": 1000}},
            "guidance": {{"two_way": {{"scale": 4.0}}}}}}, "method": {method}}}"#
    )
}

/// The fastest repetition: on a machine shared with other work, the least disturbed one.
fn best(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

/// Drives the core directly; returns (seconds, actions, tokens).
fn core_image(json: &str, logits: &[f32]) -> (f64, u32, Vec<u32>) {
    let cfg: DecoderConfig = serde_json::from_str(json).expect("config");
    let t0 = Instant::now();
    let mut dec = AnyDecoder::new(&cfg, &Resources::none()).expect("decoder");
    let mut storage = SliceStorage::new(V, dec.dist_rows_needed());
    let mut actions = 0;
    loop {
        let rows = match dec.poll() {
            Action::Done => break,
            a => a.logits_rows().expect("a forward"),
        };
        actions += 1;
        let mut b = storage.backend::<f32>().expect("backend");
        dec.handle_logits(&mut b, &logits[..rows * V])
            .expect("answer");
    }
    let secs = t0.elapsed().as_secs_f64();
    (secs, actions, dec.tokens(0).to_vec())
}

/// Drives the same configuration through the C ABI.
fn ffi_image(json: &str, logits: &[f32]) -> (f64, u32, Vec<u32>) {
    let res = argen_decoder_resources {
        struct_size: std::mem::size_of::<argen_decoder_resources>(),
        vocab: V,
        neighbours: std::ptr::null(),
        neighbours_k: 0,
        neighbour_codebook: std::ptr::null(),
        neighbour_codebook_dim: 0,
        embedding: std::ptr::null(),
        embedding_dim: 0,
        codebook: std::ptr::null(),
        codebook_dim: 0,
    };
    let t0 = Instant::now();
    let mut dec = std::ptr::null_mut();
    let mut actions = 0;
    let mut tokens = vec![0u32; 256];
    // SAFETY: valid arguments as documented in argen.h; `logits` holds enough rows for every
    // action (checked by the library against `logits_rows`).
    unsafe {
        assert_eq!(
            argen_decoder_new(json.as_ptr().cast(), json.len(), &res, &mut dec),
            argen_status::ARGEN_OK
        );
        let mut a: argen_decoder_action = std::mem::zeroed();
        loop {
            assert_eq!(argen_decoder_poll(dec, &mut a), argen_status::ARGEN_OK);
            if a.kind == ARGEN_ACTION_DONE {
                break;
            }
            actions += 1;
            let st = argen_decoder_handle_logits(
                dec,
                logits.as_ptr().cast(),
                ARGEN_DTYPE_F32,
                a.logits_rows * V,
            );
            assert_eq!(st, argen_status::ARGEN_OK);
        }
        let mut n = 0;
        argen_decoder_tokens(dec, 0, tokens.as_mut_ptr(), tokens.len(), &mut n);
        tokens.truncate(n);
        argen_decoder_free(dec);
    }
    (t0.elapsed().as_secs_f64(), actions, tokens)
}

fn main() {
    // Enough rows for the largest action (a tree of up to 16 inputs × 2 variants).
    let logits: Vec<f32> = (0..64 * V)
        .map(|i| ((i * 7919) % 2003) as f32 / 200.0 - 5.0)
        .collect();
    for (name, method) in [
        ("vanilla", r#""vanilla""#),
        (
            "tree sd",
            r#"{"speculative": {"shape": {"tree": {"total": 15, "depth": 4, "top_k": 3}}, "criterion": "exact", "draft_sampler": null}}"#,
        ),
    ] {
        let json = config(method);
        let (mut core_t, mut ffi_t) = (Vec::new(), Vec::new());
        let (mut actions, mut tokens) = (0, Vec::new());
        for _ in 0..REPS {
            let (t, n, tk) = core_image(&json, &logits);
            core_t.push(t);
            let (t2, n2, tk2) = ffi_image(&json, &logits);
            ffi_t.push(t2);
            assert_eq!((n, &tk), (n2, &tk2), "{name}: the C ABI run differs");
            (actions, tokens) = (n, tk);
        }
        let (c, f) = (best(core_t), best(ffi_t));
        println!(
            "{name:8} {actions:4} actions, {} tokens: core {:8.2} ms/image, C ABI {:8.2} ms/image, \
             overhead {:+.2} µs/action ({:+.2} %)",
            tokens.len(),
            c * 1e3,
            f * 1e3,
            (f - c) / actions as f64 * 1e6,
            (f - c) / c * 100.0
        );
    }
}
