//! Parity with the PyTorch reference (tools/reference.py → fixtures/model), plus the KV-cache
//! properties: incremental == full forward, tree == separate branches, rollback leaves no trace.

mod common;
use argen_cpu::{Cpu, Drafter, Gpt, VqDecoder};
use argen_model::{Capacity, CaptionPrefill, ClassPrefill, GptConfig, Pos, Step, VqConfig};
use common::*;

fn cpu() -> Cpu {
    Cpu::new(2).unwrap()
}

fn cap(cfg: &GptConfig) -> Capacity {
    Capacity {
        slots: 2,
        seq: cfg.cls_token_num + cfg.block_size + 8,
        rows: 2 * (cfg.block_size + cfg.cls_token_num),
        pending: cfg.block_size + cfg.cls_token_num,
    }
}

fn pos(cfg: &GptConfig, k: usize) -> Pos {
    let g = cfg.grid();
    Pos::Grid {
        row: (k / g) as u32,
        col: (k % g) as u32,
    }
}

fn load(case: &str, file: &str) -> Gpt {
    let cfg = GptConfig::load(fixture(case, "gpt.json")).unwrap();
    Gpt::load(&cpu(), &cfg, fixture(case, file), cap(&cfg)).unwrap()
}

/// Prefills both slots (cond, uncond) as the golden file does.
fn prefill(gpt: &mut Gpt, g: &Golden, logits: &mut [f32], hidden: &mut [f32]) {
    match gpt.config().model_type {
        argen_model::ModelType::C2i => {
            let cls = g.i64("classes");
            let nc = gpt.config().num_classes as i64;
            let r: Vec<ClassPrefill> = cls
                .iter()
                .enumerate()
                .map(|(s, &c)| ClassPrefill {
                    slot: s,
                    class: if c == nc { None } else { Some(c as u32) },
                })
                .collect();
            gpt.prefill_class(&r, logits, Some(hidden)).unwrap();
        }
        argen_model::ModelType::T2i => {
            let (cap, _) = g.f32("caption");
            let pad = g.i64("pad")[0] as usize;
            let r = [
                CaptionPrefill {
                    slot: 0,
                    features: Some(&cap),
                    pad,
                },
                CaptionPrefill {
                    slot: 1,
                    features: None,
                    pad,
                },
            ];
            gpt.prefill_caption(&r, logits, Some(hidden)).unwrap();
        }
    }
}

/// Runs prefill + one chain step per slot; returns per-slot logits rows `[S, V]` in golden order.
fn full_run(gpt: &mut Gpt, g: &Golden) -> (Vec<f32>, Vec<f32>) {
    let cfg = gpt.config().clone();
    let (v, d, t) = (cfg.vocab_size, cfg.dim, cfg.cls_token_num);
    let toks: Vec<u32> = g.i64("tokens").iter().map(|&x| x as u32).collect();
    let n = toks.len() / 2;
    let mut pl = vec![0f32; 2 * v];
    let mut ph = vec![0f32; 2 * d];
    prefill(gpt, g, &mut pl, &mut ph);
    let positions: Vec<Pos> = (0..n).map(|k| pos(&cfg, k)).collect();
    let steps = [
        Step {
            slot: 0,
            tokens: &toks[..n],
            positions: &positions,
            parents: None,
        },
        Step {
            slot: 1,
            tokens: &toks[n..],
            positions: &positions,
            parents: None,
        },
    ];
    let mut fl = vec![0f32; 2 * n * v];
    let mut fh = vec![0f32; 2 * n * d];
    gpt.forward(&steps, &mut fl, Some(&mut fh)).unwrap();
    // Assemble [2, 1 + n, V] matching golden rows t-1 .. t+n-1.
    let mut logits = Vec::new();
    let mut hidden = Vec::new();
    for b in 0..2 {
        logits.extend_from_slice(&pl[b * v..(b + 1) * v]);
        logits.extend_from_slice(&fl[b * n * v..(b + 1) * n * v]);
        hidden.extend_from_slice(&ph[b * d..(b + 1) * d]);
        hidden.extend_from_slice(&fh[b * n * d..(b + 1) * n * d]);
    }
    let _ = t;
    (logits, hidden)
}

fn golden_rows(g: &Golden, name: &str, t: usize) -> Vec<f32> {
    let (x, shape) = g.f32(name);
    let (b, s, c) = (shape[0], shape[1], shape[2]);
    let mut out = Vec::new();
    for bi in 0..b {
        for si in t - 1..s {
            out.extend_from_slice(&x[(bi * s + si) * c..(bi * s + si + 1) * c]);
        }
    }
    out
}

fn check_case(case: &str) {
    let g = Golden::open(case);
    for (file, key, tol) in [
        ("gpt.safetensors", "logits", 1e-4),
        ("gpt.bf16.safetensors", "logits_bf16", 1e-4),
        ("gpt.f16.safetensors", "logits_f16", 1e-4),
    ] {
        let mut gpt = load(case, file);
        let t = gpt.config().cls_token_num;
        let (logits, hidden) = full_run(&mut gpt, &g);
        let e = rel_err(&logits, &golden_rows(&g, key, t));
        assert!(e < tol, "{case}/{file}: logits rel err {e}");
        if key == "logits" {
            let e = rel_err(&hidden, &golden_rows(&g, "hidden", t));
            assert!(e < tol, "{case}: hidden rel err {e}");
        }
    }
}

#[test]
fn c2i_logits_match_pytorch() {
    check_case("c2i_tiny");
}

#[test]
fn t2i_logits_match_pytorch() {
    check_case("t2i_tiny");
}

fn check_drafter(case: &str) {
    let g = Golden::open(case);
    let gpt = load(case, "gpt.safetensors");
    let cfg = gpt.config().clone();
    let mut dr = Drafter::load(
        &cpu(),
        &cfg,
        fixture(case, "drafter.safetensors"),
        cap(&cfg),
    )
    .unwrap();
    let toks: Vec<u32> = g.i64("draft_tokens").iter().map(|&x| x as u32).collect();
    let (feats, _) = g.f32("draft_features");
    let n = toks.len() / 2;
    let positions: Vec<Pos> = (0..n).map(|k| pos(&cfg, k)).collect();
    let steps = [
        Step {
            slot: 0,
            tokens: &toks[..n],
            positions: &positions,
            parents: None,
        },
        Step {
            slot: 1,
            tokens: &toks[n..],
            positions: &positions,
            parents: None,
        },
    ];
    let mut lg = vec![0f32; 2 * n * cfg.vocab_size];
    let mut hd = vec![0f32; 2 * n * cfg.dim];
    dr.forward(&gpt, &steps, &feats, &mut lg, Some(&mut hd))
        .unwrap();
    let e = rel_err(&hd, &g.f32("draft_hidden").0);
    assert!(e < 1e-4, "{case}: drafter hidden rel err {e}");
    let e = rel_err(&lg, &g.f32("draft_logits").0);
    assert!(e < 1e-4, "{case}: drafter logits rel err {e}");
}

#[test]
fn drafter_matches_pytorch() {
    check_drafter("c2i_tiny");
    check_drafter("t2i_tiny");
}

#[test]
fn vq_decoder_matches_pytorch() {
    let g = Golden::open("c2i_tiny");
    let cfg = VqConfig::load(fixture("c2i_tiny", "vq.json")).unwrap();
    let vq = VqDecoder::load(&cpu(), &cfg, fixture("c2i_tiny", "vq.safetensors")).unwrap();
    let codes: Vec<u32> = g.i64("vq_codes").iter().map(|&x| x as u32).collect();
    let img = vq.decode(&codes, 3, 4).unwrap();
    let (want, shape) = g.f32("vq_pixels");
    assert_eq!(shape, vec![3, img.height, img.width]);
    let e = max_abs(&img.chw, &want);
    assert!(e < 1e-3, "vq pixels max abs err {e}");
    let rgb = img.to_rgb8();
    assert_eq!(rgb.len(), 3 * img.height * img.width);
}

/// Logits of slot 0 after prefill and the given chain of tokens, fed one per call.
fn incremental(gpt: &mut Gpt, g: &Golden, toks: &[u32]) -> Vec<f32> {
    let cfg = gpt.config().clone();
    let v = cfg.vocab_size;
    let mut pl = vec![0f32; 2 * v];
    let mut ph = vec![0f32; 2 * cfg.dim];
    prefill(gpt, g, &mut pl, &mut ph);
    let mut out = Vec::new();
    let mut l = vec![0f32; v];
    for (k, t) in toks.iter().enumerate() {
        let p = [pos(&cfg, k)];
        gpt.forward(
            &[Step {
                slot: 0,
                tokens: std::slice::from_ref(t),
                positions: &p,
                parents: None,
            }],
            &mut l,
            None,
        )
        .unwrap();
        gpt.commit(0, &[0]).unwrap();
        out.extend_from_slice(&l);
    }
    out
}

#[test]
fn incremental_equals_full_forward() {
    for case in ["c2i_tiny", "t2i_tiny"] {
        let g = Golden::open(case);
        let mut gpt = load(case, "gpt.safetensors");
        let v = gpt.config().vocab_size;
        let (full, _) = full_run(&mut gpt, &g);
        let toks: Vec<u32> = g.i64("tokens").iter().map(|&x| x as u32).collect();
        let n = toks.len() / 2;
        let inc = incremental(&mut gpt, &g, &toks[..n]);
        // Same keys in the same order, rows computed independently: bit-identical.
        assert_eq!(inc, full[v..(n + 1) * v].to_vec(), "{case}");
    }
}

#[test]
fn tree_attention_equals_separate_branches_and_commit_compacts() {
    let case = "c2i_tiny";
    let g = Golden::open(case);
    let mut gpt = load(case, "gpt.safetensors");
    let cfg = gpt.config().clone();
    let v = cfg.vocab_size;
    let (a, b) = ([5u32, 9, 17], [40u32, 2]);
    // Tree: branch A = nodes 0,1,2 (chain), branch B = nodes 3,4 (from the root).
    let mut pl = vec![0f32; 2 * v];
    let mut ph = vec![0f32; 2 * cfg.dim];
    prefill(&mut gpt, &g, &mut pl, &mut ph);
    let toks = [a[0], a[1], a[2], b[0], b[1]];
    let p = [
        pos(&cfg, 0),
        pos(&cfg, 1),
        pos(&cfg, 2),
        pos(&cfg, 0),
        pos(&cfg, 1),
    ];
    let parents = [-1, 0, 1, -1, 3];
    let mut tree = vec![0f32; 5 * v];
    gpt.forward(
        &[Step {
            slot: 0,
            tokens: &toks,
            positions: &p,
            parents: Some(&parents),
        }],
        &mut tree,
        None,
    )
    .unwrap();
    let sep_a = incremental(&mut gpt, &g, &a);
    let sep_b = incremental(&mut gpt, &g, &b);
    assert_eq!(&tree[..3 * v], &sep_a[..]);
    assert_eq!(&tree[3 * v..], &sep_b[..]);

    // Commit branch B after a tree, then one more token: equals the plain chain B + [t].
    prefill(&mut gpt, &g, &mut pl, &mut ph);
    gpt.forward(
        &[Step {
            slot: 0,
            tokens: &toks,
            positions: &p,
            parents: Some(&parents),
        }],
        &mut tree,
        None,
    )
    .unwrap();
    assert!(gpt.commit(0, &[3, 1]).is_err(), "not a path");
    gpt.commit(0, &[3, 4]).unwrap();
    assert_eq!(gpt.slot_len(0), Some((cfg.cls_token_num + 2, 0)));
    let mut next = vec![0f32; v];
    let p2 = [pos(&cfg, 2)];
    gpt.forward(
        &[Step {
            slot: 0,
            tokens: &[33],
            positions: &p2,
            parents: None,
        }],
        &mut next,
        None,
    )
    .unwrap();
    let chain = incremental(&mut gpt, &g, &[b[0], b[1], 33]);
    assert_eq!(&next[..], &chain[2 * v..]);
}

#[test]
fn rollback_leaves_no_trace() {
    let case = "t2i_tiny";
    let g = Golden::open(case);
    let mut gpt = load(case, "gpt.safetensors");
    let cfg = gpt.config().clone();
    let v = cfg.vocab_size;
    let want = incremental(&mut gpt, &g, &[7, 8, 9]);
    let mut pl = vec![0f32; 2 * v];
    let mut ph = vec![0f32; 2 * cfg.dim];
    prefill(&mut gpt, &g, &mut pl, &mut ph);
    let mut got = Vec::new();
    let mut l = vec![0f32; 4 * v];
    for (k, t) in [7u32, 8, 9].iter().enumerate() {
        // Junk speculation first, then roll it back.
        let junk_p = [pos(&cfg, k), pos(&cfg, (k + 1) % cfg.block_size)];
        gpt.forward(
            &[Step {
                slot: 0,
                tokens: &[1, 2],
                positions: &junk_p,
                parents: None,
            }],
            &mut l,
            None,
        )
        .unwrap();
        gpt.rollback(0).unwrap();
        let p = [pos(&cfg, k)];
        gpt.forward(
            &[Step {
                slot: 0,
                tokens: std::slice::from_ref(t),
                positions: &p,
                parents: None,
            }],
            &mut l,
            None,
        )
        .unwrap();
        gpt.commit(0, &[0]).unwrap();
        got.extend_from_slice(&l[..v]);
    }
    assert_eq!(got, want);
}

#[test]
fn fast_kernels_stay_close_to_pytorch_and_report_their_class() {
    let case = "c2i_tiny";
    let g = Golden::open(case);
    let cfg = GptConfig::load(fixture(case, "gpt.json")).unwrap();
    let fast = Cpu::with_fast_kernels(2, true).unwrap();
    let mut gpt = Gpt::load(
        &fast,
        &cfg,
        fixture(case, "gpt.bf16.safetensors"),
        cap(&cfg),
    )
    .unwrap();
    let t = cfg.cls_token_num;
    let (logits, _) = full_run(&mut gpt, &g);
    let e = rel_err(&logits, &golden_rows(&g, "logits_bf16", t));
    let usable = [
        ("amx-bf16", argen_cpu::amx::unsupported()),
        ("avx512-bf16", argen_cpu::fast::unsupported()),
    ];
    match usable.iter().find(|(_, why)| why.is_none()) {
        Some((name, _)) => {
            assert_eq!(fast.kernel_class().name(), *name);
            // Activations rounded to bf16 (8 significant bits) on top of bf16 weights.
            assert!(e < 2e-2, "{case}: fast-kernel logits rel err {e}");
        }
        None => {
            for (name, why) in usable {
                println!("SKIPPED {name}: {}", why.unwrap_or_default());
            }
            assert_eq!(fast.kernel_class(), argen_cpu::Class::Exact);
            assert!(e < 1e-4, "{case}: logits rel err {e}");
        }
    }
    // The default backend runs the exact class.
    let exact = Cpu::with_fast_kernels(2, false).unwrap();
    let mut gpt = Gpt::load(
        &exact,
        &cfg,
        fixture(case, "gpt.bf16.safetensors"),
        cap(&cfg),
    )
    .unwrap();
    full_run(&mut gpt, &g);
    assert_eq!(exact.kernel_class(), argen_cpu::Class::Exact);
}
