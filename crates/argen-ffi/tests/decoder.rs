//! The decoder C ABI against the core: every method driven through `argen_decoder_poll` /
//! `argen_decoder_handle_*` by a toy host gives exactly the tokens and stats of the same
//! `AnyDecoder` driven directly in Rust by the same toy host; and every error path.

use argen_core::backend::ROOT;
use argen_core::decode::{Action, AnyDecoder, Decoder, DecoderConfig, Group, Resources};
use argen_core::SliceStorage;
use argen_ffi::*;
use std::ptr::{null, null_mut};

const V: usize = 32;
const DIM: usize = 3;

/// One group of a forward, owned; built from the core's `Group` and from the C struct.
#[derive(Clone, Debug, PartialEq)]
struct G {
    kind: u32,
    seq: u32,
    variants: usize,
    tokens: Vec<u32>,
    keep: Vec<u32>,
    new_step: bool,
    commit: u32,
    inputs: Vec<(u32, u32)>, // (token, parent)
}

fn from_core(g: Group<'_>) -> G {
    let mut out = G {
        kind: 0,
        seq: g.seq(),
        variants: g.guidance().variants(),
        tokens: vec![],
        keep: vec![],
        new_step: false,
        commit: 0,
        inputs: vec![],
    };
    match g {
        Group::Prefill(p) => {
            out.kind = ARGEN_GROUP_PREFILL;
            out.tokens = p.tokens.to_vec();
        }
        Group::Target(r) => {
            out.kind = ARGEN_GROUP_TARGET;
            out.keep = r.keep.to_vec();
            out.inputs = r.inputs.iter().map(|i| (i.token, i.parent)).collect();
        }
        Group::Draft(r) => {
            out.kind = ARGEN_GROUP_DRAFT;
            out.new_step = r.new_step;
            out.commit = r.commit;
            out.inputs = r.inputs.iter().map(|i| (i.token, i.parent)).collect();
        }
        _ => panic!("unknown group kind"),
    }
    out
}

unsafe fn arr<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if n == 0 {
        &[]
    } else {
        assert!(!p.is_null());
        // SAFETY: valid arguments: live handles or deliberately bad ones the ABI must refuse; buffers sized as passed.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

fn from_c(g: &argen_decoder_group) -> G {
    // SAFETY: pointers from argen_decoder_poll, valid until the next call on the handle.
    unsafe {
        G {
            kind: g.kind,
            seq: g.seq,
            variants: g.variants as usize,
            tokens: arr(g.tokens, g.n_tokens).to_vec(),
            keep: arr(g.keep, g.n_keep).to_vec(),
            new_step: g.new_step == 1,
            commit: g.commit,
            inputs: arr(g.inputs, g.n_inputs)
                .iter()
                .map(|i| (i.token, i.parent))
                .collect(),
        }
    }
}

/// The toy model of `crates/argen-core/examples/minimal_host.rs`, with token-list KV caches.
#[derive(Default, Clone)]
struct Seq {
    target: Vec<u32>,
    pending: Vec<(u32, u32)>,
    drafter: Vec<u32>,
    entries: Vec<(u32, u32)>,
}

fn chain(nodes: &[(u32, u32)], mut parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    while parent != ROOT {
        let (t, p) = nodes[parent as usize];
        out.push(t);
        parent = p;
    }
    out.reverse();
    out
}

fn toy_logits(drafter: bool, variant: usize, ctx: &[u32], out: &mut Vec<f32>) {
    let i = ctx.len() as u32;
    let prev = ctx.last().copied().unwrap_or(0);
    let centre = ((prev * 7 + i * 3 + variant as u32 * 5) % V as u32) as f32;
    let width = if drafter { 6.0 } else { 4.0 };
    out.extend((0..V).map(|v| -((v as f32 - centre) / width).powi(2)));
}

#[derive(Default)]
struct Toy {
    seqs: Vec<Seq>,
    forwards: u32,
}

impl Toy {
    fn forward(&mut self, groups: &[G], out: &mut Vec<f32>) {
        out.clear();
        self.forwards += 1;
        for g in groups {
            if self.seqs.len() <= g.seq as usize {
                self.seqs.resize(g.seq as usize + 1, Seq::default());
            }
            let s = &mut self.seqs[g.seq as usize];
            let mut ctxs = Vec::new();
            let drafter = g.kind == ARGEN_GROUP_DRAFT;
            match g.kind {
                ARGEN_GROUP_PREFILL => {
                    *s = Seq {
                        target: g.tokens.clone(),
                        ..Seq::default()
                    };
                    ctxs.push(s.target.clone());
                }
                ARGEN_GROUP_TARGET => {
                    for &k in &g.keep {
                        s.target.push(s.pending[k as usize].0);
                    }
                    s.pending.clear();
                    for &(t, p) in &g.inputs {
                        let mut c = s.target.clone();
                        c.extend(chain(&s.pending, p));
                        c.push(t);
                        ctxs.push(c);
                        s.pending.push((t, p));
                    }
                }
                _ => {
                    if g.new_step {
                        s.entries.clear();
                    }
                    let (catch_up, rest) = g.inputs.split_at(g.commit as usize);
                    for &(t, _) in catch_up {
                        s.drafter.push(t);
                        ctxs.push(s.drafter.clone());
                        s.entries.push((t, ROOT));
                    }
                    for &(t, p) in rest {
                        let mut c = s.drafter.clone();
                        c.extend(chain(&s.entries, p));
                        c.push(t);
                        ctxs.push(c);
                        s.entries.push((t, p));
                    }
                }
            }
            for c in ctxs {
                for v in 0..g.variants {
                    toy_logits(drafter, v, &c, out);
                }
            }
        }
    }
}

fn score(tokens: &[u32]) -> f32 {
    tokens.iter().map(|&t| (t * 31 % 17) as f32).sum()
}

fn verdict(seq: u32, tokens: &[u32]) -> bool {
    (seq + tokens.iter().sum::<u32>()) % 3 != 0
}

fn tables() -> (Vec<f32>, Vec<f32>) {
    let codebook: Vec<f32> = (0..V * DIM)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let embedding: Vec<f32> = (0..V * DIM)
        .map(|i| ((i * 53 % 97) as f32 / 40.0) - 1.2)
        .collect();
    (codebook, embedding)
}

/// Runs `cfg` on the core directly.
fn core_run(json: &str) -> (Vec<u32>, argen_core::decode::Stats, u32) {
    let cfg: DecoderConfig = serde_json::from_str(json).unwrap();
    let req = cfg.requirements().unwrap();
    let (codebook, embedding) = tables();
    let ids;
    let mut res = Resources::none();
    if let Some(n) = req.neighbours {
        ids = argen_core::accept::neighbours::build_table_with(
            &codebook,
            DIM,
            n.k as usize,
            n.metric,
        )
        .unwrap();
        res = res.with_neighbours(
            argen_core::accept::NeighbourTable::new(&ids, V, n.k as usize).unwrap(),
        );
    }
    res = res
        .with_embedding(&embedding, DIM)
        .with_codebook(&codebook, DIM);
    let mut dec = AnyDecoder::new(&cfg, &res).unwrap();
    let mut storage = SliceStorage::new(V, dec.dist_rows_needed().max(1));
    let mut toy = Toy::default();
    let mut logits = Vec::new();
    loop {
        let action = dec.poll();
        if action.model().is_some() {
            let groups: Vec<G> = action.groups().map(from_core).collect();
            toy.forward(&groups, &mut logits);
            let mut b = storage.backend::<f32>().unwrap();
            dec.handle_logits(&mut b, &logits).unwrap();
            continue;
        }
        match action {
            Action::Check(c) => {
                let v = verdict(c.seq, c.tokens);
                dec.handle_verdict(v).unwrap()
            }
            Action::Score(s) => {
                let x = score(s.tokens);
                dec.handle_score(x).unwrap()
            }
            Action::Reformulate(_) => dec.handle_reformulated().unwrap(),
            Action::Done => break,
            _ => panic!("unknown action"),
        }
    }
    (
        dec.tokens(dec.result_seq()).to_vec(),
        dec.stats(),
        toy.forwards,
    )
}

fn resources(codebook: &[f32], embedding: &[f32]) -> argen_decoder_resources {
    argen_decoder_resources {
        struct_size: std::mem::size_of::<argen_decoder_resources>(),
        vocab: V,
        neighbours: null(),
        neighbours_k: 0,
        neighbour_codebook: codebook.as_ptr(),
        neighbour_codebook_dim: DIM,
        embedding: embedding.as_ptr(),
        embedding_dim: DIM,
        codebook: codebook.as_ptr(),
        codebook_dim: DIM,
    }
}

fn new_decoder(json: &str) -> *mut argen_decoder {
    let (codebook, embedding) = tables();
    let res = resources(&codebook, &embedding);
    let mut dec = null_mut();
    // SAFETY: valid arguments; the tables are copied.
    let st = unsafe { argen_decoder_new(json.as_ptr().cast(), json.len(), &res, &mut dec) };
    assert_eq!(st, argen_status::ARGEN_OK, "{}", last_error());
    dec
}

fn last_error() -> String {
    // SAFETY: argen_last_error never returns NULL.
    unsafe { std::ffi::CStr::from_ptr(argen_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn empty_action() -> argen_decoder_action {
    argen_decoder_action {
        kind: 99,
        model: 99,
        seq: 0,
        canvas_rows: 0,
        logits_rows: 0,
        groups: null(),
        n_groups: 0,
        canvas: null(),
        n_canvas: 0,
    }
}

/// Runs `cfg` through the C ABI.
fn ffi_run(json: &str) -> (Vec<u32>, argen_stats, u32) {
    let dec = new_decoder(json);
    let mut toy = Toy::default();
    let mut logits = Vec::new();
    let mut a = empty_action();
    // SAFETY: valid arguments: live handles or deliberately bad ones the ABI must refuse; buffers sized as passed.
    unsafe {
        loop {
            assert_eq!(argen_decoder_poll(dec, &mut a), argen_status::ARGEN_OK);
            let canvas = arr(a.canvas, a.n_canvas).to_vec();
            let st = match a.kind {
                ARGEN_ACTION_DONE => break,
                _ if a.model != ARGEN_MODEL_NONE => {
                    let groups: Vec<G> = arr(a.groups, a.n_groups).iter().map(from_c).collect();
                    let mut row = 0;
                    for g in arr(a.groups, a.n_groups) {
                        assert_eq!(g.first_row, row);
                        row += g.rows;
                    }
                    assert_eq!(row, a.logits_rows);
                    toy.forward(&groups, &mut logits);
                    argen_decoder_handle_logits(
                        dec,
                        logits.as_ptr().cast(),
                        ARGEN_DTYPE_F32,
                        logits.len(),
                    )
                }
                ARGEN_ACTION_CHECK => {
                    argen_decoder_handle_verdict(dec, verdict(a.seq, &canvas) as u32)
                }
                ARGEN_ACTION_SCORE => argen_decoder_handle_score(dec, score(&canvas)),
                ARGEN_ACTION_REFORMULATE => argen_decoder_handle_reformulated(dec),
                k => panic!("unknown action kind {k}"),
            };
            assert_eq!(st, argen_status::ARGEN_OK, "{}", last_error());
        }
        let (mut result, mut first, mut count) = (0, 0, 0);
        assert_eq!(
            argen_decoder_result_seq(dec, &mut result, &mut first, &mut count),
            argen_status::ARGEN_OK
        );
        assert!(first <= result && result < first + count);
        let mut tokens = vec![0u32; 64];
        let mut n = 0;
        assert_eq!(
            argen_decoder_tokens(dec, result, tokens.as_mut_ptr(), tokens.len(), &mut n),
            argen_status::ARGEN_OK
        );
        tokens.truncate(n);
        let mut stats = std::mem::zeroed();
        assert_eq!(argen_decoder_stats(dec, &mut stats), argen_status::ARGEN_OK);
        assert_eq!(argen_decoder_free(dec), argen_status::ARGEN_OK);
        (tokens, stats, toy.forwards)
    }
}

fn config(method: &str, scaling: &str, guidance: &str) -> String {
    format!(
        r#"{{"base": {{"seed": 11, "stream": 0, "seq": 0, "tokens": 16, "width": 4,
            "sampler": {{"temperature": 1.0, "top_k": 8}}, "guidance": {guidance}}},
            "method": {method}, "scaling": {scaling}}}"#
    )
}

const TWO_WAY: &str = r#"{"two_way": {"scale": 2.0}}"#;

fn sd(shape: &str, criterion: &str) -> String {
    format!(
        r#"{{"speculative": {{"shape": {shape}, "criterion": {criterion}, "draft_sampler": null}}}}"#
    )
}

fn all_configs() -> Vec<(&'static str, String)> {
    let chain = r#"{"chain": {"gamma": 3}}"#;
    let tree = r#"{"tree": {"total": 7, "depth": 3, "top_k": 2}}"#;
    let lantern = r#"{"lantern": {"k": 4, "delta": 0.3, "lambda": null, "metric": "normalised"}}"#;
    let grouped = r#"{"grouped": {"window": 4, "prob_tol": 0.2, "dist_tol": 4.0}}"#;
    vec![
        ("vanilla", config(r#""vanilla""#, "null", TWO_WAY)),
        (
            "vanilla no cfg",
            config(r#""vanilla""#, "null", r#""none""#),
        ),
        (
            "sd chain exact",
            config(&sd(chain, r#""exact""#), "null", TWO_WAY),
        ),
        (
            "sd tree exact",
            config(&sd(tree, r#""exact""#), "null", TWO_WAY),
        ),
        (
            "sd tree coupled",
            config(&sd(tree, r#""coupled""#), "null", TWO_WAY),
        ),
        (
            "sd chain lantern",
            config(&sd(chain, lantern), "null", TWO_WAY),
        ),
        (
            "sd tree lantern",
            config(&sd(tree, lantern), "null", TWO_WAY),
        ),
        (
            "sd tree grouped",
            config(&sd(tree, grouped), "null", TWO_WAY),
        ),
        (
            "vvs dynamic",
            config(
                r#"{"vvs": {"speculative": {"shape": {"tree": {"total": 7, "depth": 3, "top_k": 2}}, "criterion": "exact", "draft_sampler": null}, "schedule": {"dynamic": {"threshold": 0.0, "alpha": 0.9}}, "warmup": 2}}"#,
                "null",
                TWO_WAY,
            ),
        ),
        (
            "jacobi",
            config(
                r#"{"jacobi": {"window": 4, "init": "random", "criterion": "exact"}}"#,
                "null",
                TWO_WAY,
            ),
        ),
        (
            "best-of-3 sd",
            config(
                &sd(chain, r#""exact""#),
                r#"{"best_of_n": {"n": 3}}"#,
                TWO_WAY,
            ),
        ),
        (
            "gridar",
            config(
                r#""vanilla""#,
                r#"{"gridar": {"n": 3, "verifier": true, "reformulate": true, "w": 1.5}}"#,
                TWO_WAY,
            ),
        ),
    ]
}

#[test]
fn every_method_through_the_c_abi_equals_the_core() {
    for (name, json) in all_configs() {
        let (core_tokens, core_stats, core_fwd) = core_run(&json);
        let (tokens, stats, fwd) = ffi_run(&json);
        assert_eq!(tokens, core_tokens, "{name}: tokens");
        assert_eq!(tokens.len(), 16, "{name}");
        assert_eq!(stats, argen_stats::from(&core_stats), "{name}: stats");
        assert_eq!(fwd, core_fwd, "{name}: forwards");
        if name.starts_with("vvs") {
            assert!(
                core_stats.skipped_steps > 0,
                "{name}: the schedule never skipped"
            );
        }
        if name.starts_with("gridar") {
            assert!(
                core_stats.verifier_calls > 0 && core_stats.reformulations > 0,
                "{name}"
            );
        }
    }
}

#[test]
fn requirements_match_the_core() {
    for (name, json) in all_configs() {
        let cfg: DecoderConfig = serde_json::from_str(&json).unwrap();
        let want = argen_requirements::from(&cfg.requirements().unwrap());
        let mut got = argen_requirements::default();
        // SAFETY: valid arguments: live handles or deliberately bad ones the ABI must refuse; buffers sized as passed.
        let st = unsafe {
            argen_decoder_config_requirements(json.as_ptr().cast(), json.len(), &mut got)
        };
        assert_eq!(st, argen_status::ARGEN_OK, "{name}");
        assert_eq!(got, want, "{name}");
        let dec = new_decoder(&json);
        let mut got2 = argen_requirements::default();
        assert_eq!(
            // SAFETY: valid arguments: live handles or deliberately bad ones the ABI must refuse; buffers sized as passed.
            unsafe { argen_decoder_requirements(dec, &mut got2) },
            argen_status::ARGEN_OK
        );
        assert_eq!(got2, want, "{name}");
        // SAFETY: valid arguments: live handles or deliberately bad ones the ABI must refuse; buffers sized as passed.
        assert_eq!(unsafe { argen_decoder_free(dec) }, argen_status::ARGEN_OK);
    }
}

#[test]
fn f16_and_bf16_answers_equal_the_core_on_the_same_rows() {
    // The first forward of a vanilla run answered in f16: the token equals the core's with the
    // same f16 rows.
    let json = config(r#""vanilla""#, "null", TWO_WAY);
    let cfg: DecoderConfig = serde_json::from_str(&json).unwrap();
    let rows: Vec<half::f16> = (0..2 * V)
        .map(|i| half::f16::from_f32((i % 7) as f32 * 0.5))
        .collect();
    let mut core = AnyDecoder::new(&cfg, &Resources::none()).unwrap();
    let mut storage = SliceStorage::new(V, core.dist_rows_needed());
    core.handle_logits(&mut storage.backend::<half::f16>().unwrap(), &rows)
        .unwrap();
    let dec = new_decoder(&json);
    // SAFETY: valid arguments: live handles or deliberately bad ones the ABI must refuse; buffers sized as passed.
    unsafe {
        assert_eq!(
            argen_decoder_handle_logits(dec, rows.as_ptr().cast(), ARGEN_DTYPE_F16, rows.len()),
            argen_status::ARGEN_OK
        );
        let (mut t, mut n) = ([0u32; 16], 0);
        assert_eq!(
            argen_decoder_tokens(dec, 0, t.as_mut_ptr(), 16, &mut n),
            argen_status::ARGEN_OK
        );
        assert_eq!(&t[..n], core.tokens(0));
        assert_eq!(n, 1);
        argen_decoder_free(dec);
    }
}

#[test]
fn errors_are_typed_and_change_nothing() {
    let json = config(r#""vanilla""#, "null", TWO_WAY);
    let dec = new_decoder(&json);
    let mut a = empty_action();
    // SAFETY: valid arguments: live handles or deliberately bad ones the ABI must refuse; buffers sized as passed.
    unsafe {
        assert_eq!(argen_decoder_poll(dec, &mut a), argen_status::ARGEN_OK);
        assert_eq!(a.kind, ARGEN_ACTION_PREFILL);
        assert_eq!(a.logits_rows, 2);
        // Out of order.
        assert_eq!(
            argen_decoder_handle_verdict(dec, 1),
            argen_status::ARGEN_ERR_PROTOCOL
        );
        assert!(last_error().contains("verdict"), "{}", last_error());
        assert_eq!(
            argen_decoder_handle_score(dec, 1.0),
            argen_status::ARGEN_ERR_PROTOCOL
        );
        assert_eq!(
            argen_decoder_handle_reformulated(dec),
            argen_status::ARGEN_ERR_PROTOCOL
        );
        assert_eq!(
            argen_decoder_handle_verdict(dec, 2),
            argen_status::ARGEN_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            argen_decoder_handle_score(dec, f32::NAN),
            argen_status::ARGEN_ERR_INVALID_ARGUMENT
        );
        // Wrong lengths, dtype, NULL, NaN.
        let rows = vec![0.5f32; 3 * V];
        assert_eq!(
            argen_decoder_handle_logits(dec, rows.as_ptr().cast(), ARGEN_DTYPE_F32, 3 * V),
            argen_status::ARGEN_ERR_LENGTH_MISMATCH
        );
        assert!(last_error().contains("2 logits rows"), "{}", last_error());
        assert_eq!(
            argen_decoder_handle_logits(dec, rows.as_ptr().cast(), 9, 2 * V),
            argen_status::ARGEN_ERR_BAD_DTYPE
        );
        assert_eq!(
            argen_decoder_handle_logits(dec, null(), ARGEN_DTYPE_F32, 2 * V),
            argen_status::ARGEN_ERR_NULL_POINTER
        );
        let mut nan = rows.clone();
        nan[3] = f32::NAN;
        assert_eq!(
            argen_decoder_handle_logits(dec, nan.as_ptr().cast(), ARGEN_DTYPE_F32, 2 * V),
            argen_status::ARGEN_ERR_NON_FINITE_LOGIT
        );
        // Nothing changed: still the prefill.
        let mut b = empty_action();
        assert_eq!(argen_decoder_poll(dec, &mut b), argen_status::ARGEN_OK);
        assert_eq!((b.kind, b.logits_rows), (ARGEN_ACTION_PREFILL, 2));
        assert_eq!(
            argen_decoder_poll(dec, null_mut()),
            argen_status::ARGEN_ERR_NULL_POINTER
        );
        // Buffer too small for the tokens.
        assert_eq!(
            argen_decoder_handle_logits(dec, rows.as_ptr().cast(), ARGEN_DTYPE_F32, 2 * V),
            argen_status::ARGEN_OK
        );
        let mut n = 0;
        assert_eq!(
            argen_decoder_tokens(dec, 0, null_mut(), 0, &mut n),
            argen_status::ARGEN_ERR_BUFFER_TOO_SMALL
        );
        // Freed handle, double free, foreign pointer.
        assert_eq!(argen_decoder_free(dec), argen_status::ARGEN_OK);
        assert_eq!(
            argen_decoder_poll(dec, &mut b),
            argen_status::ARGEN_ERR_INVALID_HANDLE
        );
        assert_eq!(
            argen_decoder_free(dec),
            argen_status::ARGEN_ERR_INVALID_HANDLE
        );
        assert_eq!(argen_decoder_free(null_mut()), argen_status::ARGEN_OK);
        let mut bogus = 0u64;
        assert_eq!(
            argen_decoder_handle_score((&mut bogus as *mut u64).cast(), 1.0),
            argen_status::ARGEN_ERR_INVALID_HANDLE
        );
    }
}

#[test]
fn bad_configs_and_missing_tables_are_refused() {
    let (codebook, embedding) = tables();
    let mut res = resources(&codebook, &embedding);
    let mut dec = null_mut();
    let bad = "{\"base\": 1}";
    // SAFETY: valid arguments: live handles or deliberately bad ones the ABI must refuse; buffers sized as passed.
    unsafe {
        assert_eq!(
            argen_decoder_new(bad.as_ptr().cast(), bad.len(), &res, &mut dec),
            argen_status::ARGEN_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("DecoderConfig"), "{}", last_error());
        let lantern = config(
            &sd(
                r#"{"chain": {"gamma": 3}}"#,
                r#"{"lantern": {"k": 4, "delta": 0.3, "lambda": null, "metric": "raw"}}"#,
            ),
            "null",
            TWO_WAY,
        );
        res.neighbour_codebook = null();
        assert_eq!(
            argen_decoder_new(lantern.as_ptr().cast(), lantern.len(), &res, &mut dec),
            argen_status::ARGEN_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("neighbour"), "{}", last_error());
        res.struct_size = 8;
        let vanilla = config(r#""vanilla""#, "null", TWO_WAY);
        assert_eq!(
            argen_decoder_new(vanilla.as_ptr().cast(), vanilla.len(), &res, &mut dec),
            argen_status::ARGEN_ERR_STRUCT_SIZE
        );
        res.struct_size = std::mem::size_of::<argen_decoder_resources>();
        res.vocab = 1;
        assert_eq!(
            argen_decoder_new(vanilla.as_ptr().cast(), vanilla.len(), &res, &mut dec),
            argen_status::ARGEN_ERR_INVALID_ARGUMENT
        );
        res.vocab = V;
        assert_eq!(
            argen_decoder_new(null(), 3, &res, &mut dec),
            argen_status::ARGEN_ERR_NULL_POINTER
        );
        assert_eq!(
            argen_decoder_new(vanilla.as_ptr().cast(), vanilla.len(), &res, null_mut()),
            argen_status::ARGEN_ERR_NULL_POINTER
        );
        assert!(dec.is_null());
    }
}

/// `fixtures/ffi_decoder_v1.txt`: per configuration, the core's tokens and stats for the toy
/// host above — the known answers `examples/c/decoder_host.c` (the same toy model in C) must
/// reproduce. Regenerated deliberately with `ARGEN_BLESS=1 cargo test -p argen-ffi --test
/// decoder`. One line per configuration, tab-separated: name, JSON (one line), tokens
/// (space-separated), target forwards, draft forwards, host forwards.
#[test]
fn decoder_fixture_is_current() {
    let mut text = String::from(
        "# argen-ffi decoder known answers, computed by argen-core with the toy host of \
         crates/argen-ffi/tests/decoder.rs (V = 32, tables from integer formulas); \
         regenerate with ARGEN_BLESS=1 cargo test -p argen-ffi --test decoder\n",
    );
    for (name, json) in all_configs() {
        let (tokens, stats, fwd) = core_run(&json);
        let one_line: String = json.split_whitespace().collect::<Vec<_>>().join(" ");
        let toks: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
        text.push_str(&format!(
            "{name}\t{one_line}\t{}\t{}\t{}\t{fwd}\n",
            toks.join(" "),
            stats.target_forwards,
            stats.draft_forwards
        ));
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/ffi_decoder_v1.txt"
    );
    if std::env::var_os("ARGEN_BLESS").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == text,
        "fixtures/ffi_decoder_v1.txt is stale: rerun with ARGEN_BLESS=1 after checking why"
    );
}

fn config_at(name: &str, seq: u32, seed: u64) -> String {
    let json = all_configs()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1;
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["base"]["seq"] = seq.into();
    v["base"]["seed"] = seed.into();
    v.to_string()
}

#[test]
fn mux_members_equal_their_solo_runs_and_share_forwards() {
    // Three requests — GridAR (seqs 0..3), tree LANTERN (seq 5), Best-of-3 SD (seqs 6..9) — and a
    // fourth (vanilla, seq 10) that joins after a few actions.
    let members = [
        ("gridar", 0u32, 21u64),
        ("sd tree lantern", 5, 22),
        ("best-of-3 sd", 6, 23),
    ];
    let late = ("vanilla", 10u32, 24u64);
    let (codebook, embedding) = tables();
    let res = resources(&codebook, &embedding);
    let mut mux = null_mut();
    let mut solo_forwards = 0;
    let mut dist_rows = 0;
    for (name, seq, seed) in members.iter().chain([&late]) {
        let json = config_at(name, *seq, *seed);
        let cfg: DecoderConfig = serde_json::from_str(&json).unwrap();
        dist_rows += cfg.requirements().unwrap().dist_rows as usize;
        solo_forwards += core_run(&json).2;
    }
    let mut toy = Toy::default();
    let mut logits = Vec::new();
    let mut a = empty_action();
    // SAFETY: valid arguments throughout; pointers of `a` are read before the next call.
    unsafe {
        assert_eq!(
            argen_mux_new(V, dist_rows, &mut mux),
            argen_status::ARGEN_OK
        );
        for (name, seq, seed) in members {
            let json = config_at(name, seq, seed);
            let st = argen_mux_add(mux, json.as_ptr().cast(), json.len(), &res);
            assert_eq!(st, argen_status::ARGEN_OK, "{}", last_error());
        }
        // Overlapping sequence ids are refused.
        let clash = config_at("vanilla", 1, 1);
        assert_eq!(
            argen_mux_add(mux, clash.as_ptr().cast(), clash.len(), &res),
            argen_status::ARGEN_ERR_INVALID_ARGUMENT
        );
        let mut actions = 0;
        loop {
            assert_eq!(argen_mux_poll(mux, &mut a), argen_status::ARGEN_OK);
            if a.kind == ARGEN_ACTION_DONE {
                break;
            }
            actions += 1;
            if actions == 5 {
                let json = config_at(late.0, late.1, late.2);
                let st = argen_mux_add(mux, json.as_ptr().cast(), json.len(), &res);
                assert_eq!(st, argen_status::ARGEN_OK, "{}", last_error());
                continue; // poll again: the newcomer joins the next forward
            }
            let canvas = arr(a.canvas, a.n_canvas).to_vec();
            let st = match a.kind {
                _ if a.model != ARGEN_MODEL_NONE => {
                    let groups: Vec<G> = arr(a.groups, a.n_groups).iter().map(from_c).collect();
                    toy.forward(&groups, &mut logits);
                    argen_mux_handle_logits(
                        mux,
                        logits.as_ptr().cast(),
                        ARGEN_DTYPE_F32,
                        logits.len(),
                    )
                }
                ARGEN_ACTION_CHECK => argen_mux_handle_verdict(mux, verdict(a.seq, &canvas) as u32),
                ARGEN_ACTION_SCORE => argen_mux_handle_score(mux, score(&canvas)),
                ARGEN_ACTION_REFORMULATE => argen_mux_handle_reformulated(mux),
                k => panic!("unknown action {k}"),
            };
            assert_eq!(st, argen_status::ARGEN_OK, "{}", last_error());
        }
        assert!(
            toy.forwards < solo_forwards,
            "{} vs {solo_forwards}",
            toy.forwards
        );
        for (name, seq, seed) in members.iter().chain([&late]) {
            let (want, want_stats, _) = core_run(&config_at(name, *seq, *seed));
            let (mut result, mut done, mut stats) = (0, 0, std::mem::zeroed());
            assert_eq!(
                argen_mux_member(mux, *seq, &mut result, &mut done, &mut stats),
                argen_status::ARGEN_OK
            );
            assert_eq!(done, 1);
            assert_eq!(stats, argen_stats::from(&want_stats), "{name}");
            let (mut t, mut n) = ([0u32; 16], 0);
            assert_eq!(
                argen_mux_tokens(mux, result, t.as_mut_ptr(), 16, &mut n),
                argen_status::ARGEN_OK
            );
            assert_eq!(
                &t[..n],
                &want[..],
                "{name}: multiplexed tokens differ from the solo run"
            );
        }
        let mut released = 0;
        assert_eq!(
            argen_mux_release_done(mux, &mut released),
            argen_status::ARGEN_OK
        );
        assert_eq!(released, 4);
        let (mut r, mut d, mut s) = (0, 0, std::mem::zeroed());
        assert_eq!(
            argen_mux_member(mux, 5, &mut r, &mut d, &mut s),
            argen_status::ARGEN_ERR_INVALID_ARGUMENT
        );
        // A member that does not fit the rows is refused; the set stays usable.
        let big = config_at("best-of-3 sd", 0, 1);
        let mut small = null_mut();
        assert_eq!(argen_mux_new(V, 1, &mut small), argen_status::ARGEN_OK);
        assert_eq!(
            argen_mux_add(small, big.as_ptr().cast(), big.len(), &res),
            argen_status::ARGEN_ERR_CAPACITY
        );
        let mut bad_res = res;
        bad_res.vocab = V + 1;
        assert_eq!(
            argen_mux_add(small, big.as_ptr().cast(), big.len(), &bad_res),
            argen_status::ARGEN_ERR_LENGTH_MISMATCH
        );
        assert_eq!(argen_mux_poll(small, &mut a), argen_status::ARGEN_OK);
        assert_eq!(a.kind, ARGEN_ACTION_DONE);
        assert_eq!(
            argen_mux_handle_score(small, 1.0),
            argen_status::ARGEN_ERR_PROTOCOL
        );
        assert_eq!(argen_mux_free(small), argen_status::ARGEN_OK);
        assert_eq!(argen_mux_free(mux), argen_status::ARGEN_OK);
        assert_eq!(argen_mux_free(mux), argen_status::ARGEN_ERR_INVALID_HANDLE);
        assert_eq!(
            argen_mux_poll(mux, &mut a),
            argen_status::ARGEN_ERR_INVALID_HANDLE
        );
    }
}
