//! Per-call overhead of the C ABI over calling the core directly, on one LlamaGen-sized step:
//! process a two-way-CFG row pair (V = 16384, top-k 1000) and draw one token.
//!
//! ```sh
//! cargo run --release -p argen-ffi --example overhead
//! ```
//!
//! Prints the median time per step of each path over many repetitions; the C ABI path calls the
//! `extern "C"` functions exactly as a C host does (same checks, handle lookup, panic guard).
//! `python/bench/overhead.py` measures the Python binding on the same work.

use argen_core::rng::{Key, Purpose};
use argen_core::{Backend, ProcessJob, RowGuidance, SampleJob, SamplerParams, SliceStorage};
use argen_ffi::*;
use std::time::Instant;

const V: usize = 16384;
const REPS: usize = 2000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let logits: Vec<f32> = (0..2 * V)
        .map(|i| ((i * 7919) % 2003) as f32 / 200.0 - 5.0)
        .collect();
    let params = SamplerParams {
        temperature: 1.0,
        top_k: Some(1000),
        top_p: None,
        min_p: None,
    };

    // The core directly.
    let mut storage = SliceStorage::new(V, 1);
    let job = ProcessJob {
        rows: RowGuidance::TwoWay {
            cond: 0,
            uncond: 1,
            scale: 4.0,
        },
        params,
        out: 0,
    };
    let mut core_t = Vec::with_capacity(REPS);
    let mut core_tokens = Vec::with_capacity(REPS);
    for pos in 0..REPS as u32 {
        let t0 = Instant::now();
        let mut b = storage.backend::<f32>().expect("backend");
        b.process(&logits, &[job]).expect("process");
        let mut tok = [0u32];
        b.sample(
            &[SampleJob {
                row: 0,
                key: Key::new(1, 0, Purpose::SAMPLE, pos),
            }],
            &mut tok,
        )
        .expect("sample");
        core_t.push(t0.elapsed().as_secs_f64());
        core_tokens.push(tok[0]);
    }

    // The C ABI.
    let cfg = argen_sampler_config {
        struct_size: size_of::<argen_sampler_config>(),
        vocab: V,
        rows: 1,
    };
    let mut s = std::ptr::null_mut();
    // SAFETY: valid config and out pointer.
    let st = unsafe { argen_sampler_new(&cfg, &mut s) };
    assert_eq!(st, argen_status::ARGEN_OK);
    let cjob = argen_process_job {
        guidance: argen_guidance {
            kind: ARGEN_GUIDANCE_TWO_WAY,
            cond: 0,
            uncond: 1,
            reformulated: 0,
            scale: 4.0,
        },
        params: argen_sampler_params {
            temperature: 1.0,
            top_k: 1000,
            top_p: 0.0,
            min_p: 0.0,
        },
        out: 0,
    };
    let mut c_t = Vec::with_capacity(REPS);
    for pos in 0..REPS as u32 {
        let draw = argen_sample_job {
            key: argen_key {
                seed: 1,
                stream: 0,
                purpose: ARGEN_PURPOSE_SAMPLE,
                position: pos,
                token: 0,
            },
            row: 0,
        };
        let mut tok = 0u32;
        let t0 = Instant::now();
        // SAFETY: buffers sized as declared; `s` is live.
        unsafe {
            let a =
                argen_sampler_process(s, logits.as_ptr().cast(), ARGEN_DTYPE_F32, 2 * V, &cjob, 1);
            let b = argen_sampler_sample(s, &draw, 1, &mut tok, 1);
            assert!(a == argen_status::ARGEN_OK && b == argen_status::ARGEN_OK);
        }
        c_t.push(t0.elapsed().as_secs_f64());
        assert_eq!(
            tok, core_tokens[pos as usize],
            "C ABI token differs from the core"
        );
    }
    // SAFETY: live handle.
    unsafe { argen_sampler_free(s) };

    let (core, c) = (median(core_t), median(c_t));
    println!("step: two-way CFG + top-k 1000 + keyed draw, V = {V}, median of {REPS}");
    println!("core directly: {:8.2} us", core * 1e6);
    println!(
        "C ABI:         {:8.2} us  (overhead {:+.2} us, {:+.2} %)",
        c * 1e6,
        (c - core) * 1e6,
        (c - core) / core * 100.0
    );
}
