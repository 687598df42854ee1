//! The C ABI, called as C calls it (raw pointers, codes, versioned structs): it reproduces the
//! core's known answers (`fixtures/ffi_rows_v1.json`, `fixtures/rng_v1.txt`) bit for bit and
//! turns every kind of bad input into the right status and a last-error message.

mod common;

use argen_ffi::*;
use common::{parse_bits, Dt};
use serde_json::Value;
use std::ffi::CStr;
use std::ptr::{null, null_mut};

fn fixture() -> Value {
    serde_json::from_str(&std::fs::read_to_string(common::fixture_path()).unwrap()).unwrap()
}

fn last_error() -> String {
    // SAFETY: argen_last_error never returns NULL; the text lives until our next call.
    unsafe { CStr::from_ptr(argen_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn sampler(vocab: usize, rows: usize) -> *mut argen_sampler {
    let cfg = argen_sampler_config {
        struct_size: size_of::<argen_sampler_config>(),
        vocab,
        rows,
    };
    let mut s = null_mut();
    // SAFETY: valid config and out pointer.
    let st = unsafe { argen_sampler_new(&cfg, &mut s) };
    assert_eq!(st, argen_status::ARGEN_OK);
    s
}

/// Element bits as a byte buffer aligned for f32.
fn logits_buffer(dt: Dt, bits: &[u32]) -> (Vec<u32>, u32) {
    match dt {
        Dt::F32 => (bits.to_vec(), ARGEN_DTYPE_F32),
        _ => {
            let halves: Vec<u16> = bits.iter().map(|&b| b as u16).collect();
            let mut words = vec![0u32; halves.len().div_ceil(2)];
            for (i, h) in halves.iter().enumerate() {
                words[i / 2] |= (*h as u32) << (16 * (i % 2));
            }
            (
                words,
                if dt == Dt::F16 {
                    ARGEN_DTYPE_F16
                } else {
                    ARGEN_DTYPE_BF16
                },
            )
        }
    }
}

fn params(p: &Value) -> argen_sampler_params {
    argen_sampler_params {
        temperature: p["temperature"].as_f64().unwrap() as f32,
        top_k: p["top_k"].as_u64().unwrap_or(0) as u32,
        top_p: p["top_p"].as_f64().unwrap_or(0.0) as f32,
        min_p: p["min_p"].as_f64().unwrap_or(0.0) as f32,
    }
}

#[test]
fn processing_sampling_and_top_k_equal_the_core() {
    let fx = fixture();
    let vocab = fx["vocab"].as_u64().unwrap() as usize;
    for case in fx["process"].as_array().unwrap() {
        let dt = Dt::from_name(case["dtype"].as_str().unwrap());
        let bits = parse_bits(dt, case["bits"].as_str().unwrap());
        let (buf, code) = logits_buffer(dt, &bits);
        let kind = match case["guidance"].as_str().unwrap() {
            "plain" => ARGEN_GUIDANCE_PLAIN,
            "two_way" => ARGEN_GUIDANCE_TWO_WAY,
            _ => ARGEN_GUIDANCE_THREE_WAY,
        };
        let job = argen_process_job {
            guidance: argen_guidance {
                kind,
                cond: 0,
                uncond: 1,
                reformulated: 2,
                scale: case["scale"].as_f64().unwrap() as f32,
            },
            params: params(&case["params"]),
            out: 1,
        };
        let s = sampler(vocab, 2);
        // SAFETY: buffers sized as declared.
        unsafe {
            assert_eq!(
                argen_sampler_process(s, buf.as_ptr().cast(), code, bits.len(), &job, 1),
                argen_status::ARGEN_OK,
                "{}",
                last_error()
            );
            let mut w = vec![0u64; vocab];
            let mut total = 0;
            assert_eq!(
                argen_sampler_read_row(s, 1, w.as_mut_ptr(), vocab, &mut total),
                argen_status::ARGEN_OK
            );
            assert_eq!(total, case["total"].as_u64().unwrap(), "{}", case["name"]);
            let expected: Vec<u64> = case["weights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            assert_eq!(w, expected, "{}", case["name"]);
            let samples = case["samples"].as_array().unwrap();
            let jobs: Vec<argen_sample_job> = (0..samples.len() as u32)
                .map(|p| argen_sample_job {
                    key: argen_key {
                        seed: case["seed"].as_u64().unwrap(),
                        stream: case["stream"].as_u64().unwrap() as u32,
                        purpose: ARGEN_PURPOSE_SAMPLE,
                        position: p,
                        token: 0,
                    },
                    row: 1,
                })
                .collect();
            let mut tokens = vec![0u32; jobs.len()];
            assert_eq!(
                argen_sampler_sample(
                    s,
                    jobs.as_ptr(),
                    jobs.len(),
                    tokens.as_mut_ptr(),
                    tokens.len()
                ),
                argen_status::ARGEN_OK
            );
            let expected: Vec<u32> = samples.iter().map(|x| x.as_u64().unwrap() as u32).collect();
            assert_eq!(tokens, expected, "{}", case["name"]);
            let mut top = [0u32; 5];
            let mut probs = [0f64; 5];
            assert_eq!(
                argen_sampler_top_k(s, 1, top.as_mut_ptr(), probs.as_mut_ptr(), 5),
                argen_status::ARGEN_OK
            );
            let et: Vec<u32> = case["top_k"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            let ep: Vec<String> = case["top_k_probs_bits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            assert_eq!(top.to_vec(), et);
            assert_eq!(
                probs
                    .iter()
                    .map(|p| format!("{:016x}", p.to_bits()))
                    .collect::<Vec<_>>(),
                ep
            );
            assert_eq!(argen_sampler_free(s), argen_status::ARGEN_OK);
        }
    }
}

fn criterion(fx: &Value, spec: &Value) -> *mut argen_criterion {
    let vocab = fx["vocab"].as_u64().unwrap() as usize;
    let table: Vec<u32> = fx["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let cb: Vec<f32> = parse_bits(Dt::F32, fx["codebook_bits"].as_str().unwrap())
        .into_iter()
        .map(f32::from_bits)
        .collect();
    let mut cfg = argen_criterion_config {
        struct_size: size_of::<argen_criterion_config>(),
        kind: 0,
        lambda: 0.0,
        vocab,
        neighbours: table.as_ptr(),
        neighbours_k: fx["table_k"].as_u64().unwrap() as usize,
        lantern_k: 0,
        delta: 0.0,
        dist_tol: 0.0,
        embedding: cb.as_ptr(),
        dim: fx["dim"].as_u64().unwrap() as usize,
        window: 0,
        prob_tol: 0.0,
    };
    match spec["kind"].as_str().unwrap() {
        "exact" => cfg.kind = ARGEN_CRITERION_EXACT,
        "coupled" => cfg.kind = ARGEN_CRITERION_COUPLED,
        "lantern" => {
            cfg.kind = ARGEN_CRITERION_LANTERN;
            cfg.lantern_k = spec["k"].as_u64().unwrap() as usize;
            cfg.delta = spec["delta"].as_f64().unwrap() as f32;
            cfg.lambda = spec["lambda"].as_f64().unwrap_or(0.0) as f32;
        }
        _ => {
            cfg.kind = ARGEN_CRITERION_GROUPED;
            cfg.window = spec["window"].as_u64().unwrap() as usize;
            cfg.prob_tol = spec["prob_tol"].as_f64().unwrap() as f32;
            cfg.dist_tol = spec["dist_tol"].as_f64().unwrap() as f32;
        }
    }
    let mut c = null_mut();
    // SAFETY: valid config (tables outlive the call; they are copied).
    let st = unsafe { argen_criterion_new(&cfg, &mut c) };
    assert_eq!(st, argen_status::ARGEN_OK, "{}", last_error());
    c
}

#[test]
fn tree_verification_equals_the_core_for_every_criterion() {
    let fx = fixture();
    let vocab = fx["vocab"].as_u64().unwrap() as usize;
    let inputs = fx["tree_inputs"].as_array().unwrap();
    let trees = fx["trees"].as_array().unwrap();
    assert!(trees.len() >= 16);
    for case in trees {
        let input = &inputs[case["input"].as_u64().unwrap() as usize];
        let slots = input["slots"].as_u64().unwrap() as usize;
        let bits = parse_bits(Dt::F32, input["bits"].as_str().unwrap());
        let tokens: Vec<u32> = input["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let parents: Vec<u32> = input["parents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let sampled = input["sampled"].as_bool().unwrap();
        let c = criterion(&fx, &case["criterion"]);
        for v in case["verdicts"].as_array().unwrap() {
            let s = sampler(vocab, 2 * slots);
            let jobs: Vec<argen_process_job> = (0..2 * slots as u32)
                .map(|r| argen_process_job {
                    guidance: argen_guidance {
                        kind: ARGEN_GUIDANCE_PLAIN,
                        cond: r,
                        uncond: 0,
                        reformulated: 0,
                        scale: 0.0,
                    },
                    params: argen_sampler_params {
                        temperature: 1.0,
                        top_k: 0,
                        top_p: 0.0,
                        min_p: 0.0,
                    },
                    out: r,
                })
                .collect();
            let job = argen_tree_job {
                tokens: tokens.as_ptr(),
                parents: parents.as_ptr(),
                n_nodes: tokens.len(),
                target_base: 0,
                draft_base: if sampled {
                    slots as u32
                } else {
                    ARGEN_NO_DRAFT
                },
                seed: v["seed"].as_u64().unwrap(),
                stream: case["stream"].as_u64().unwrap() as u32,
                position: case["position"].as_u64().unwrap() as u32,
            };
            let mut path = vec![0u32; tokens.len()];
            let mut verdict = argen_tree_verdict::default();
            // SAFETY: all buffers sized as declared.
            unsafe {
                assert_eq!(
                    argen_sampler_process(
                        s,
                        bits.as_ptr().cast(),
                        ARGEN_DTYPE_F32,
                        bits.len(),
                        jobs.as_ptr(),
                        jobs.len()
                    ),
                    argen_status::ARGEN_OK
                );
                let st = argen_sampler_verify_tree(
                    s,
                    &job,
                    c,
                    path.as_mut_ptr(),
                    path.len(),
                    &mut verdict,
                );
                assert_eq!(st, argen_status::ARGEN_OK, "{}", last_error());
                argen_sampler_free(s);
            }
            let ep: Vec<u32> = v["path"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(
                path[..verdict.accepted].to_vec(),
                ep,
                "{} seed {}",
                case["name"],
                v["seed"]
            );
            assert_eq!(
                verdict.token as u64,
                v["token"].as_u64().unwrap(),
                "{}",
                case["name"]
            );
        }
        // SAFETY: live handle.
        assert_eq!(unsafe { argen_criterion_free(c) }, argen_status::ARGEN_OK);
    }
}

#[test]
fn neighbour_table_equals_the_core() {
    let fx = fixture();
    let cb: Vec<f32> = parse_bits(Dt::F32, fx["codebook_bits"].as_str().unwrap())
        .into_iter()
        .map(f32::from_bits)
        .collect();
    let expected: Vec<u32> = fx["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let mut out = vec![0u32; expected.len()];
    // SAFETY: sized buffers.
    let st = unsafe {
        argen_neighbour_table_build(cb.as_ptr(), cb.len(), 4, 8, out.as_mut_ptr(), out.len())
    };
    assert_eq!(st, argen_status::ARGEN_OK);
    assert_eq!(out, expected);
    // SAFETY: sized buffers; the declared output length is wrong.
    let st = unsafe {
        argen_neighbour_table_build(cb.as_ptr(), cb.len(), 4, 8, out.as_mut_ptr(), out.len() - 1)
    };
    assert_eq!(st, argen_status::ARGEN_ERR_LENGTH_MISMATCH);
}

#[test]
fn rng_equals_the_known_answers() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/rng_v1.txt"),
    )
    .unwrap();
    let mut checked = 0;
    for line in text.lines().filter(|l| l.starts_with("key ")) {
        let f: Vec<&str> = line.split(' ').collect();
        let key = argen_key {
            seed: f[1].parse().unwrap(),
            stream: f[2].parse().unwrap(),
            purpose: f[3].parse().unwrap(),
            position: f[4].parse().unwrap(),
            token: f[5].parse().unwrap(),
        };
        let mut words = [0u64; 4];
        // SAFETY: valid key and buffers.
        unsafe {
            assert_eq!(
                argen_rng_words(&key, words.as_mut_ptr(), 4),
                argen_status::ARGEN_OK
            );
            for (i, w) in words.iter().enumerate() {
                assert_eq!(format!("{w:#018x}"), f[7 + i]);
            }
            let below = f.iter().position(|&x| x == "below").unwrap();
            let unit = f.iter().position(|&x| x == "unit").unwrap();
            for pair in &f[below + 1..unit] {
                let (n, r) = pair.split_once(':').unwrap();
                let n: u128 = n.parse().unwrap();
                let (mut lo, mut hi) = (0, 0);
                assert_eq!(
                    argen_rng_below_u128(&key, n as u64, (n >> 64) as u64, &mut lo, &mut hi),
                    argen_status::ARGEN_OK
                );
                assert_eq!((lo as u128 | (hi as u128) << 64).to_string(), r);
                if n >> 64 == 0 {
                    let mut v = 0;
                    assert_eq!(
                        argen_rng_below(&key, n as u64, &mut v),
                        argen_status::ARGEN_OK
                    );
                    assert_eq!(v.to_string(), r);
                }
            }
            let mut u = 0.0;
            assert_eq!(argen_rng_unit(&key, &mut u), argen_status::ARGEN_OK);
            assert_eq!(format!("{:#018x}", u.to_bits()), f[unit + 1]);
        }
        checked += 1;
    }
    assert!(checked >= 5);
    let mut words = [0u32; 8];
    // SAFETY: sized buffer.
    unsafe {
        assert_eq!(
            argen_rng_chacha_key(7, words.as_mut_ptr(), 8),
            argen_status::ARGEN_OK
        );
        assert_eq!(words[0], 7);
        assert_eq!(
            &words[2..5],
            &[
                u32::from_le_bytes(*b"arge"),
                u32::from_le_bytes(*b"n-rn"),
                u32::from_le_bytes(*b"g-v1")
            ]
        );
        let key = argen_key {
            seed: 1,
            stream: 2,
            purpose: 3,
            position: 4,
            token: 5,
        };
        let (mut n, mut c) = (0, 0);
        assert_eq!(
            argen_key_block_address(&key, 6, &mut n, &mut c),
            argen_status::ARGEN_OK
        );
        assert_eq!(n, 3 << 32 | 2);
        assert_eq!(c, 4 << 32 | 5 << 8 | 6);
        assert_eq!(
            argen_key_block_address(&key, 256, &mut n, &mut c),
            argen_status::ARGEN_ERR_INVALID_ARGUMENT
        );
    }
}

#[test]
fn bad_input_gets_a_status_and_a_message() {
    use argen_status::*;
    let s = sampler(8, 2);
    let logits = [0.5f32; 16];
    let job = argen_process_job {
        guidance: argen_guidance {
            kind: ARGEN_GUIDANCE_PLAIN,
            cond: 0,
            uncond: 0,
            reformulated: 0,
            scale: 0.0,
        },
        params: argen_sampler_params {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.0,
            min_p: 0.0,
        },
        out: 0,
    };
    let key = argen_key {
        seed: 1,
        stream: 0,
        purpose: 1,
        position: 0,
        token: 0,
    };
    // SAFETY: each call passes valid pointers except the one under test, which argen must reject.
    unsafe {
        let check = |st: argen_status, want: argen_status, text: &str| {
            assert_eq!(st, want, "{}", last_error());
            let msg = last_error();
            assert!(msg.contains(text), "message {msg:?} lacks {text:?}");
        };
        check(
            argen_sampler_process(s, null(), ARGEN_DTYPE_F32, 16, &job, 1),
            ARGEN_ERR_NULL_POINTER,
            "logits",
        );
        check(
            argen_sampler_process(s, logits.as_ptr().cast(), 7, 16, &job, 1),
            ARGEN_ERR_BAD_DTYPE,
            "dtype code 7",
        );
        check(
            argen_sampler_process(s, logits.as_ptr().cast(), ARGEN_DTYPE_F32, 15, &job, 1),
            ARGEN_ERR_LENGTH_MISMATCH,
            "multiple",
        );
        check(
            argen_sampler_process(s, logits.as_ptr().cast(), ARGEN_DTYPE_F32, 0, &job, 1),
            ARGEN_ERR_LENGTH_MISMATCH,
            "n_elements",
        );
        check(
            argen_sampler_process(
                s,
                logits.as_ptr().cast::<u8>().add(1).cast(),
                ARGEN_DTYPE_F32,
                8,
                &job,
                1,
            ),
            ARGEN_ERR_BAD_LAYOUT,
            "aligned",
        );
        check(
            argen_sampler_process(s, logits.as_ptr().cast(), ARGEN_DTYPE_F32, 16, null(), 1),
            ARGEN_ERR_NULL_POINTER,
            "jobs",
        );
        let mut bad = job;
        bad.guidance.kind = 9;
        check(
            argen_sampler_process(s, logits.as_ptr().cast(), ARGEN_DTYPE_F32, 16, &bad, 1),
            ARGEN_ERR_INVALID_ARGUMENT,
            "jobs[0]: unknown guidance kind 9",
        );
        let mut bad = job;
        bad.params.top_p = 1.5;
        check(
            argen_sampler_process(s, logits.as_ptr().cast(), ARGEN_DTYPE_F32, 16, &bad, 1),
            ARGEN_ERR_INVALID_ARGUMENT,
            "top_p",
        );
        let mut bad = job;
        bad.guidance.cond = 2;
        check(
            argen_sampler_process(s, logits.as_ptr().cast(), ARGEN_DTYPE_F32, 16, &bad, 1),
            ARGEN_ERR_INVALID_ARGUMENT,
            "logit row",
        );
        let mut bad = job;
        bad.out = 2;
        check(
            argen_sampler_process(s, logits.as_ptr().cast(), ARGEN_DTYPE_F32, 16, &bad, 1),
            ARGEN_ERR_INVALID_ARGUMENT,
            "row",
        );
        let nan = [f32::NAN; 8];
        check(
            argen_sampler_process(s, nan.as_ptr().cast(), ARGEN_DTYPE_F32, 8, &job, 1),
            ARGEN_ERR_NON_FINITE_LOGIT,
            "NaN",
        );
        let masked = [f32::NEG_INFINITY; 8];
        check(
            argen_sampler_process(s, masked.as_ptr().cast(), ARGEN_DTYPE_F32, 8, &job, 1),
            ARGEN_ERR_ALL_MASKED,
            "-inf",
        );
        // Row 1 was never written: zero mass.
        let sj = argen_sample_job { key, row: 1 };
        let mut out = [0u32; 1];
        check(
            argen_sampler_sample(s, &sj, 1, out.as_mut_ptr(), 1),
            ARGEN_ERR_ZERO_MASS,
            "zero",
        );
        check(
            argen_sampler_sample(s, &sj, 1, out.as_mut_ptr(), 0),
            ARGEN_ERR_BUFFER_TOO_SMALL,
            "room",
        );
        let bad_key = argen_sample_job {
            key: argen_key {
                token: ARGEN_MAX_KEY_TOKEN,
                ..key
            },
            row: 0,
        };
        check(
            argen_sampler_sample(s, &bad_key, 1, out.as_mut_ptr(), 1),
            ARGEN_ERR_INVALID_ARGUMENT,
            "token",
        );
        check(
            argen_sampler_fill(s, 0, 5, 0),
            ARGEN_ERR_INVALID_ARGUMENT,
            "fill kind",
        );
        check(
            argen_sampler_fill(s, 0, ARGEN_FILL_ONE_HOT, 8),
            ARGEN_ERR_TOKEN_OUT_OF_RANGE,
            "token id 8",
        );
        check(
            argen_sampler_fill(s, 0, ARGEN_FILL_ONE_HOT, 3),
            ARGEN_OK,
            "",
        );
        assert!(last_error().is_empty());
        let mut w = [0u64; 8];
        let mut total = 0;
        check(
            argen_sampler_read_row(s, 0, w.as_mut_ptr(), 7, &mut total),
            ARGEN_ERR_LENGTH_MISMATCH,
            "vocabulary",
        );
        check(
            argen_sampler_read_row(s, 0, w.as_mut_ptr(), 8, null_mut()),
            ARGEN_ERR_NULL_POINTER,
            "out_total",
        );
        check(
            argen_sampler_top_k(s, 0, out.as_mut_ptr(), null_mut(), 1),
            ARGEN_ERR_NULL_POINTER,
            "probs",
        );
        check(
            argen_rng_words(&key, w.as_mut_ptr(), 3000),
            ARGEN_ERR_INVALID_ARGUMENT,
            "2048",
        );
        check(
            argen_rng_below(&key, 0, w.as_mut_ptr()),
            ARGEN_ERR_INVALID_ARGUMENT,
            "at least 1",
        );
        check(
            argen_rng_words(null(), w.as_mut_ptr(), 1),
            ARGEN_ERR_NULL_POINTER,
            "key",
        );
        check(
            argen_rng_chacha_key(0, w.as_mut_ptr().cast(), 7),
            ARGEN_ERR_BUFFER_TOO_SMALL,
            "8 words",
        );

        // Trees: bad parents, tokens out of range, missing criterion, freed criterion.
        let mut exact = null_mut();
        let ccfg = argen_criterion_config {
            struct_size: size_of::<argen_criterion_config>(),
            kind: ARGEN_CRITERION_EXACT,
            lambda: 0.0,
            vocab: 0,
            neighbours: null(),
            neighbours_k: 0,
            lantern_k: 0,
            delta: 0.0,
            dist_tol: 0.0,
            embedding: null(),
            dim: 0,
            window: 0,
            prob_tol: 0.0,
        };
        check(argen_criterion_new(&ccfg, &mut exact), ARGEN_OK, "");
        let tokens = [1u32, 2];
        let parents = [ARGEN_ROOT, 1];
        let tj = argen_tree_job {
            tokens: tokens.as_ptr(),
            parents: parents.as_ptr(),
            n_nodes: 2,
            target_base: 0,
            draft_base: ARGEN_NO_DRAFT,
            seed: 0,
            stream: 0,
            position: 0,
        };
        let mut path = [0u32; 2];
        let mut v = argen_tree_verdict::default();
        check(
            argen_sampler_verify_tree(s, &tj, exact, path.as_mut_ptr(), 2, &mut v),
            ARGEN_ERR_INVALID_ARGUMENT,
            "parent",
        );
        let tj2 = argen_tree_job {
            tokens: null(),
            ..tj
        };
        check(
            argen_sampler_verify_tree(s, &tj2, exact, path.as_mut_ptr(), 2, &mut v),
            ARGEN_ERR_NULL_POINTER,
            "job.tokens",
        );
        check(
            argen_sampler_verify_tree(s, &tj, null(), path.as_mut_ptr(), 2, &mut v),
            ARGEN_ERR_NULL_POINTER,
            "criterion",
        );
        check(
            argen_sampler_verify_tree(s, &tj, s.cast(), path.as_mut_ptr(), 2, &mut v),
            ARGEN_ERR_INVALID_HANDLE,
            "argen_criterion",
        );
        let mut lantern = ccfg;
        lantern.kind = ARGEN_CRITERION_LANTERN;
        let mut h = null_mut();
        check(
            argen_criterion_new(&lantern, &mut h),
            ARGEN_ERR_NEIGHBOUR_TABLE,
            "positive",
        );
        lantern.kind = 11;
        check(
            argen_criterion_new(&lantern, &mut h),
            ARGEN_ERR_INVALID_ARGUMENT,
            "kind 11",
        );
        let mut small = ccfg;
        small.struct_size = 8;
        check(
            argen_criterion_new(&small, &mut h),
            ARGEN_ERR_STRUCT_SIZE,
            "struct_size",
        );
        check(argen_criterion_free(exact), ARGEN_OK, "");
        check(
            argen_sampler_verify_tree(s, &tj, exact, path.as_mut_ptr(), 2, &mut v),
            ARGEN_ERR_INVALID_HANDLE,
            "freed",
        );
        check(
            argen_criterion_free(exact),
            ARGEN_ERR_INVALID_HANDLE,
            "freed",
        );

        // Sampler configs and handles.
        let mut h2 = null_mut();
        for (vocab, rows, want) in [
            (0, 1, ARGEN_ERR_INVALID_ARGUMENT),
            (1 << 24, 1, ARGEN_ERR_INVALID_ARGUMENT),
            (8, 0, ARGEN_ERR_INVALID_ARGUMENT),
            (1 << 20, 1 << 12, ARGEN_ERR_ALLOCATION),
        ] {
            let cfg = argen_sampler_config {
                struct_size: size_of::<argen_sampler_config>(),
                vocab,
                rows,
            };
            check(argen_sampler_new(&cfg, &mut h2), want, "");
        }
        check(
            argen_sampler_new(null(), &mut h2),
            ARGEN_ERR_NULL_POINTER,
            "config",
        );
        // A config from a "newer header": larger, zero tail accepted, non-zero tail refused.
        let mut bigger = [0usize; 5];
        bigger[0] = 5 * size_of::<usize>();
        bigger[1] = 8;
        bigger[2] = 1;
        check(
            argen_sampler_new(bigger.as_ptr().cast(), &mut h2),
            ARGEN_OK,
            "",
        );
        check(argen_sampler_free(h2), ARGEN_OK, "");
        bigger[4] = 1;
        check(
            argen_sampler_new(bigger.as_ptr().cast(), &mut h2),
            ARGEN_ERR_STRUCT_SIZE,
            "newer header",
        );
        check(argen_sampler_free(null_mut()), ARGEN_OK, "");
        check(argen_sampler_free(s), ARGEN_OK, "");
        check(
            argen_sampler_free(s),
            ARGEN_ERR_INVALID_HANDLE,
            "already freed",
        );
        check(
            argen_sampler_fill(s, 0, ARGEN_FILL_UNIFORM, 0),
            ARGEN_ERR_INVALID_HANDLE,
            "not a live argen_sampler",
        );
        let mut shape = (0, 0);
        let bogus = 0x1000 as *mut argen_sampler;
        check(
            argen_sampler_shape(bogus, &mut shape.0, &mut shape.1),
            ARGEN_ERR_INVALID_HANDLE,
            "",
        );
    }
}

#[test]
fn status_names_and_library_info() {
    for (i, st) in argen_status::all().iter().enumerate() {
        assert_eq!(*st as i32, i as i32);
        // SAFETY: static strings.
        let name = unsafe { CStr::from_ptr(argen_status_name(i as i32)) };
        assert_eq!(name.to_str().unwrap(), st.name());
    }
    // SAFETY: static strings.
    unsafe {
        assert_eq!(
            CStr::from_ptr(argen_status_name(-1)).to_str().unwrap(),
            "ARGEN_ERR_UNKNOWN"
        );
        assert_eq!(
            CStr::from_ptr(argen_version()).to_str().unwrap(),
            env!("CARGO_PKG_VERSION")
        );
    }
    assert_eq!(argen_abi_version(), ARGEN_ABI_VERSION);
    assert_eq!(argen_dtype_size(ARGEN_DTYPE_BF16), 2);
    assert_eq!(argen_dtype_size(3), 0);
}

#[test]
fn last_error_is_per_thread_and_criteria_are_shared_between_threads() {
    let fx = fixture();
    let crit = criterion(
        &fx,
        &serde_json::json!({"kind": "lantern", "k": 8, "delta": 0.2}),
    );
    let vocab = fx["vocab"].as_u64().unwrap() as usize;
    let crit_addr = crit as usize;
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let crit = crit_addr as *mut argen_criterion;
                let s = sampler(vocab, 2);
                let logits: Vec<f32> = (0..2 * vocab).map(|i| (i % 13) as f32 * 0.5).collect();
                let jobs = [0u32, 1].map(|r| argen_process_job {
                    guidance: argen_guidance {
                        kind: ARGEN_GUIDANCE_PLAIN,
                        cond: r,
                        uncond: 0,
                        reformulated: 0,
                        scale: 0.0,
                    },
                    params: argen_sampler_params {
                        temperature: 1.0,
                        top_k: 0,
                        top_p: 0.0,
                        min_p: 0.0,
                    },
                    out: r,
                });
                let tokens = [12u32];
                let parents = [ARGEN_ROOT];
                let mut results = Vec::new();
                for seed in 0..50 {
                    let job = argen_tree_job {
                        tokens: tokens.as_ptr(),
                        parents: parents.as_ptr(),
                        n_nodes: 1,
                        target_base: 0,
                        draft_base: ARGEN_NO_DRAFT,
                        seed,
                        stream: 0,
                        position: 0,
                    };
                    let mut path = [0u32; 1];
                    let mut v = argen_tree_verdict::default();
                    // SAFETY: sized buffers, live handles (the criterion is shared read-only).
                    unsafe {
                        assert_eq!(
                            argen_sampler_process(
                                s,
                                logits.as_ptr().cast(),
                                ARGEN_DTYPE_F32,
                                logits.len(),
                                jobs.as_ptr(),
                                2
                            ),
                            argen_status::ARGEN_OK
                        );
                        assert_eq!(
                            argen_sampler_verify_tree(s, &job, crit, path.as_mut_ptr(), 1, &mut v),
                            argen_status::ARGEN_OK,
                            "{}",
                            last_error()
                        );
                    }
                    results.push((v.accepted, v.token));
                }
                // A failure on this thread leaves a message here only.
                if t % 2 == 0 {
                    let st = argen_sampler_fill(s, 99, ARGEN_FILL_UNIFORM, 0);
                    assert_eq!(st, argen_status::ARGEN_ERR_INVALID_ARGUMENT);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                let msg = last_error();
                assert_eq!(msg.is_empty(), t % 2 == 1, "thread {t}: {msg:?}");
                // SAFETY: live handle.
                unsafe { argen_sampler_free(s) };
                results
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "same inputs, same verdicts on every thread"
    );
    // SAFETY: live handle, no thread uses it any more.
    let st = unsafe { argen_criterion_free(crit) };
    assert_eq!(st, argen_status::ARGEN_OK);
}

#[test]
fn batches_longer_than_one_chunk_equal_the_core() {
    use argen_core::rng::{Key, Purpose};
    use argen_core::{Backend, ProcessJob, RowGuidance, SampleJob, SamplerParams, SliceStorage};
    let (vocab, n) = (33usize, 70u32);
    let logits = common::case_rows(77, n as usize, vocab, true);
    let params = SamplerParams {
        temperature: 0.8,
        top_k: Some(9),
        top_p: None,
        min_p: None,
    };
    let mut storage = SliceStorage::new(vocab, n as usize);
    let mut core = storage.backend::<f32>().unwrap();
    let jobs: Vec<ProcessJob> = (0..n)
        .map(|r| ProcessJob {
            rows: RowGuidance::Plain { row: n - 1 - r },
            params,
            out: r,
        })
        .collect();
    core.process(&logits, &jobs).unwrap();
    let draws: Vec<SampleJob> = (0..n)
        .map(|r| SampleJob {
            row: r,
            key: Key::new(3, r, Purpose::SAMPLE, 2 * r),
        })
        .collect();
    let mut want = vec![0u32; n as usize];
    core.sample(&draws, &mut want).unwrap();

    let s = sampler(vocab, n as usize);
    let cjobs: Vec<argen_process_job> = (0..n)
        .map(|r| argen_process_job {
            guidance: argen_guidance {
                kind: ARGEN_GUIDANCE_PLAIN,
                cond: n - 1 - r,
                uncond: 0,
                reformulated: 0,
                scale: 0.0,
            },
            params: argen_sampler_params {
                temperature: 0.8,
                top_k: 9,
                top_p: 0.0,
                min_p: 0.0,
            },
            out: r,
        })
        .collect();
    let cdraws: Vec<argen_sample_job> = (0..n)
        .map(|r| argen_sample_job {
            key: argen_key {
                seed: 3,
                stream: r,
                purpose: ARGEN_PURPOSE_SAMPLE,
                position: 2 * r,
                token: 0,
            },
            row: r,
        })
        .collect();
    let mut got = vec![0u32; n as usize];
    // SAFETY: sized buffers, live handle.
    unsafe {
        assert_eq!(
            argen_sampler_process(
                s,
                logits.as_ptr().cast(),
                ARGEN_DTYPE_F32,
                logits.len(),
                cjobs.as_ptr(),
                cjobs.len()
            ),
            argen_status::ARGEN_OK,
            "{}",
            last_error()
        );
        assert_eq!(
            argen_sampler_sample(
                s,
                cdraws.as_ptr(),
                cdraws.len(),
                got.as_mut_ptr(),
                got.len()
            ),
            argen_status::ARGEN_OK
        );
        let mut bad = cjobs.clone();
        bad[40].guidance.kind = 7;
        assert_eq!(
            argen_sampler_process(
                s,
                logits.as_ptr().cast(),
                ARGEN_DTYPE_F32,
                logits.len(),
                bad.as_ptr(),
                bad.len()
            ),
            argen_status::ARGEN_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("jobs[40]"), "{}", last_error());
        argen_sampler_free(s);
    }
    assert_eq!(got, want);
}
