//! Overhead of the C ABI as a share of a real image's wall clock: ShapesWorld, vanilla and tree
//! speculative decoding, argen's CPU model runtime.
//!
//! ```sh
//! cargo run --release -p argen-ffi --example model_overhead            # core and C ABI
//! python python/bench/model_overhead.py   # + the Python binding (runs this example with --json)
//! ```
//!
//! For each image (2 prompts × 2 seeds per method, one thread):
//! 1. **wall**: `Engine::generate`'s decoding wall clock — the model's forwards on argen's CPU
//!    runtime plus the decoder driven directly in Rust (fastest of three runs);
//! 2. the same run once more with every answer recorded (`Engine::generate_recorded`), and the
//!    decoder replayed on those recorded logits rows — the real rows of the real run, so the
//!    decoder does exactly the work it did with the model — driven **directly** (`AnyDecoder`,
//!    `SliceBackend`) and **through the C ABI** (`argen_decoder_poll` /
//!    `argen_decoder_handle_logits`), fastest of 25 replays each. Both replays must give the
//!    image's tokens.
//!
//! 3. the same replay in **lockstep**: a direct and a C ABI decoder advance together, every action
//!    timed on both back to back, the fastest of 25 passes per action — the C ABI's overhead
//!    (a few µs per image) is far below the load noise of whole replays on a shared machine
//!    (±10 % of a tree-SD replay), and lockstep timing cancels that noise.
//!
//! The forward is the same for every path (argen-model's, already in the recorded rows), so the
//! binding's overhead per image is `C replay − core replay` (from the lockstep timing); it is
//! reported per action, as a
//! share of the image's own wall clock and as a share of a vanilla image's (the acceptance
//! criterion: < 1 % for the C ABI). `--json` prints the per-method means and per-image numbers
//! (seconds) as JSON.

use ::argen_engine::{
    config_json, Engine, EngineOptions, Input, Method, MethodOptions, Recorded, Request, BUNDLED,
};
use argen_core::decode::{Action, AnyDecoder, Decoder, Resources};
use argen_core::SliceStorage;
use argen_ffi::*;
use std::time::Instant;

const PROMPTS: [&str; 2] = [
    "a red circle above a blue square",
    "a green triangle left of a yellow circle",
];
const SEEDS: [u64; 2] = [0, 1];
const WALL_REPS: usize = 3;
const REPLAY_REPS: usize = 25;

fn best(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

/// Replays `log` into the decoder of `req` driven directly; returns (seconds, actions, tokens).
fn core_replay(req: &Request, log: &[Recorded], vocab: usize) -> (f64, usize, Vec<u32>) {
    let t0 = Instant::now();
    let mut dec = AnyDecoder::new(&req.config, &Resources::none()).expect("decoder");
    let mut storage = SliceStorage::new(vocab, dec.dist_rows_needed());
    let mut i = 0;
    loop {
        if dec.poll() == Action::Done {
            break;
        }
        let mut b = storage.backend::<f32>().expect("backend");
        match &log[i] {
            Recorded::Logits { values, .. } => dec.handle_logits(&mut b, values),
            Recorded::Verdict(v) => dec.handle_verdict(*v),
            Recorded::Score(s) => dec.handle_score(*s),
            Recorded::Reformulated => dec.handle_reformulated(),
        }
        .expect("answer");
        i += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    (secs, i, dec.tokens(dec.result_seq()).to_vec())
}

/// Replays `log` through the C ABI; returns (seconds, actions, tokens).
fn ffi_replay(json: &str, log: &[Recorded], vocab: usize) -> (f64, usize, Vec<u32>) {
    let res = argen_decoder_resources {
        struct_size: std::mem::size_of::<argen_decoder_resources>(),
        vocab,
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
    let mut i = 0;
    let mut tokens = vec![0u32; 4096];
    // SAFETY: valid arguments as documented in argen.h; every logits buffer holds the rows the
    // action asks for (the library checks the length against `logits_rows`).
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
            let st = match &log[i] {
                Recorded::Logits { values, .. } => argen_decoder_handle_logits(
                    dec,
                    values.as_ptr().cast(),
                    ARGEN_DTYPE_F32,
                    values.len(),
                ),
                Recorded::Verdict(v) => argen_decoder_handle_verdict(dec, u32::from(*v)),
                Recorded::Score(s) => argen_decoder_handle_score(dec, *s),
                Recorded::Reformulated => argen_decoder_handle_reformulated(dec),
            };
            assert_eq!(st, argen_status::ARGEN_OK);
            i += 1;
        }
        let (mut seq, mut first, mut count) = (0, 0, 0);
        argen_decoder_result_seq(dec, &mut seq, &mut first, &mut count);
        let mut n = 0;
        argen_decoder_tokens(dec, seq, tokens.as_mut_ptr(), tokens.len(), &mut n);
        tokens.truncate(n);
        argen_decoder_free(dec);
    }
    (t0.elapsed().as_secs_f64(), i, tokens)
}

/// The C ABI's overhead on one image, measured in lockstep: a direct decoder and a C ABI decoder
/// advance together, each action timed on both back to back (poll + answer; construction counts
/// as one more action), so both paths see the same machine load (which goes first alternates);
/// per action the fastest of
/// `REPLAY_REPS` passes, summed over the image: `(core seconds, C ABI seconds)`.
fn lockstep(req: &Request, json: &str, log: &[Recorded], vocab: usize) -> (f64, f64) {
    let n = log.len() + 1;
    let (mut core, mut ffi) = (vec![f64::INFINITY; n], vec![f64::INFINITY; n]);
    let res = argen_decoder_resources {
        struct_size: std::mem::size_of::<argen_decoder_resources>(),
        vocab,
        neighbours: std::ptr::null(),
        neighbours_k: 0,
        neighbour_codebook: std::ptr::null(),
        neighbour_codebook_dim: 0,
        embedding: std::ptr::null(),
        embedding_dim: 0,
        codebook: std::ptr::null(),
        codebook_dim: 0,
    };
    for rep in 0..REPLAY_REPS {
        let t0 = Instant::now();
        let mut dec = AnyDecoder::new(&req.config, &Resources::none()).expect("decoder");
        let mut storage = SliceStorage::new(vocab, dec.dist_rows_needed());
        let t1 = Instant::now();
        let mut cdec = std::ptr::null_mut();
        // SAFETY: valid arguments as documented in argen.h.
        let st = unsafe { argen_decoder_new(json.as_ptr().cast(), json.len(), &res, &mut cdec) };
        assert_eq!(st, argen_status::ARGEN_OK);
        let t2 = Instant::now();
        core[0] = core[0].min((t1 - t0).as_secs_f64());
        ffi[0] = ffi[0].min((t2 - t1).as_secs_f64());
        // SAFETY: a zeroed action struct is a valid output buffer for `argen_decoder_poll`.
        let mut a: argen_decoder_action = unsafe { std::mem::zeroed() };
        for (i, r) in log.iter().enumerate() {
            let mut run_core = || {
                let t0 = Instant::now();
                assert_ne!(dec.poll(), Action::Done);
                let mut b = storage.backend::<f32>().expect("backend");
                match r {
                    Recorded::Logits { values, .. } => dec.handle_logits(&mut b, values),
                    Recorded::Verdict(v) => dec.handle_verdict(*v),
                    Recorded::Score(s) => dec.handle_score(*s),
                    Recorded::Reformulated => dec.handle_reformulated(),
                }
                .expect("answer");
                t0.elapsed().as_secs_f64()
            };
            let mut run_ffi = || {
                let t0 = Instant::now();
                // SAFETY: `cdec` is live; every logits buffer holds the rows the action asks for.
                let st = unsafe {
                    assert_eq!(argen_decoder_poll(cdec, &mut a), argen_status::ARGEN_OK);
                    match r {
                        Recorded::Logits { values, .. } => argen_decoder_handle_logits(
                            cdec,
                            values.as_ptr().cast(),
                            ARGEN_DTYPE_F32,
                            values.len(),
                        ),
                        Recorded::Verdict(v) => argen_decoder_handle_verdict(cdec, u32::from(*v)),
                        Recorded::Score(s) => argen_decoder_handle_score(cdec, *s),
                        Recorded::Reformulated => argen_decoder_handle_reformulated(cdec),
                    }
                };
                assert_eq!(st, argen_status::ARGEN_OK);
                t0.elapsed().as_secs_f64()
            };
            // Alternate which path goes first (the second finds the rows in cache).
            let (tc, tf) = if rep % 2 == 0 {
                let tc = run_core();
                (tc, run_ffi())
            } else {
                let tf = run_ffi();
                (run_core(), tf)
            };
            core[i + 1] = core[i + 1].min(tc);
            ffi[i + 1] = ffi[i + 1].min(tf);
        }
        assert_eq!(dec.poll(), Action::Done);
        // SAFETY: `cdec` is live and freed once.
        unsafe { argen_decoder_free(cdec) };
    }
    (core.iter().sum(), ffi.iter().sum())
}

/// Per-image means of one method.
#[derive(Default)]
struct Means {
    wall: f64,
    actions: f64,
    core: f64,
    ffi: f64,
    lock_core: f64,
    lock_ffi: f64,
}

fn main() {
    let json_out = std::env::args().any(|a| a == "--json");
    let mut e = Engine::open(BUNDLED, &EngineOptions { threads: 1 }).expect("the bundled model");
    let vocab = e.config().vocab_size;
    let mut results = Vec::new();
    for method in [Method::Vanilla, Method::Sd] {
        let mut m = Means::default();
        let mut images = Vec::new();
        for prompt in PROMPTS {
            for seed in SEEDS {
                let input = Input::Prompt(prompt.into());
                let config = e
                    .decoder_config(method, &MethodOptions::default(), seed, &input)
                    .expect("config");
                let mut req = Request::new(input, config);
                req.image = false;
                req.score = false;
                let json = config_json(&req.config).expect("json").to_string();
                let wall = best((0..WALL_REPS).map(|_| e.generate(&req).expect("generate").wall));
                let (g, log) = e.generate_recorded(&req).expect("generate");
                let (mut core_t, mut ffi_t) = (Vec::new(), Vec::new());
                let mut actions = 0;
                for _ in 0..REPLAY_REPS {
                    let (t, n, tk) = core_replay(&req, &log, vocab);
                    assert_eq!(tk, g.tokens, "the direct replay differs");
                    core_t.push(t);
                    let (t2, n2, tk2) = ffi_replay(&json, &log, vocab);
                    assert_eq!((n2, &tk2), (n, &g.tokens), "the C ABI replay differs");
                    ffi_t.push(t2);
                    actions = n;
                }
                let (core, ffi) = (best(core_t), best(ffi_t));
                let (lock_core, lock_ffi) = lockstep(&req, &json, &log, vocab);
                m.lock_core += lock_core;
                m.lock_ffi += lock_ffi;
                m.wall += wall;
                m.actions += actions as f64;
                m.core += core;
                m.ffi += ffi;
                images.push(
                    serde_json::json!({"prompt": prompt, "seed": seed, "config": json,
                    "wall": wall, "actions": actions, "core": core, "c": ffi,
                    "lockstep_core": lock_core, "lockstep_c": lock_ffi}),
                );
            }
        }
        let k = images.len() as f64;
        m.wall /= k;
        m.actions /= k;
        m.core /= k;
        m.ffi /= k;
        m.lock_core /= k;
        m.lock_ffi /= k;
        results.push((method.name(), m, images));
    }
    let vanilla_wall = results[0].1.wall;
    if json_out {
        let v: Vec<_> = results
            .iter()
            .map(|(name, m, images)| {
                serde_json::json!({"method": name, "wall": m.wall, "actions": m.actions,
                    "core": m.core, "c": m.ffi, "lockstep_core": m.lock_core,
                    "lockstep_c": m.lock_ffi, "images": images})
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    println!(
        "ShapesWorld, {} images per method, 1 thread; per-image means (best of {WALL_REPS} / \
         {REPLAY_REPS} runs each)",
        PROMPTS.len() * SEEDS.len()
    );
    for (name, m, _) in &results {
        let over = m.lock_ffi - m.lock_core;
        println!(
            "{name:8} image {:8.2} ms, {:5.1} actions; decoder replay: core {:7.3} ms, C ABI \
             {:7.3} ms; lockstep: core {:7.3} ms, C ABI {:7.3} ms; C overhead {:+.2} µs/action \
             = {:+.3} % of this image, {:+.3} % of a vanilla image",
            m.wall * 1e3,
            m.actions,
            m.core * 1e3,
            m.ffi * 1e3,
            m.lock_core * 1e3,
            m.lock_ffi * 1e3,
            over / m.actions * 1e6,
            over / m.wall * 100.0,
            over / vanilla_wall * 100.0,
        );
    }
}
