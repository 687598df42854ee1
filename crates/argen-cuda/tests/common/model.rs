//! Whole-model parity cases shared by `pocl_model.rs` (OpenCL / PoCL) and `gpu_parity.rs`
//! (CUDA): `argen_model`'s GPT, drafter and VQ decoder built on a device [`Compute`] against
//! the same models on argen-cpu, on the tiny fixtures of `fixtures/model` (c2i and t2i, f32 /
//! f16 / bf16 checkpoints), plus the PyTorch goldens. Each `pub fn` taking `dev` is one test
//! body; the test files pick the device, its [`Bounds`], and how to skip.
//!
//! Metric: per output tensor, `max_i |dev_i − cpu_i| / max(max_i |cpu_i|, 1e-30)`; the bound
//! depends on the weight format of the model and on the GEMM the device runs ([`Bounds`]).
//!
//! # Bounds of cuBLAS's 16-bit path ([`Bounds::CUBLAS`])
//!
//! With f16/bf16 weights `GemmMode::Cublas` rounds every GEMM's f32 activations to the weight
//! format (nearest even) before an f32-accumulated `cublasGemmEx`. Each activation then carries
//! a relative error `|δ_l| ≤ u` with `u = 2⁻⁸` (bf16, 8 significand bits) or `u = 2⁻¹¹` (f16),
//! so one GEMM output moves by at most `u · Σ_l |x_l w_l|` (plus the f32 summation error,
//! `≈ k · 2⁻²⁴ · Σ |x_l w_l|`, negligible here). Relative to the tensor's largest logit this
//! is `u · Σ|x w| / max|y|`; for the rounding errors, independent in sign, the typical size is
//! `u · ‖x ∘ w‖₂ / max|y|`, below `u`. Through the network (2 layers × 5 GEMMs + the output
//! head on the fixtures, each followed by RMSNorm or a residual add) these perturbations add,
//! so the logits' tensor error is a small multiple of `u`: measured with [`RoundingGemm`] on
//! PoCL (the same rounding, portable summation order), up to `3.3u` for bf16 (`1.26e-2`, one
//! decode step) and `4.4u` for f16 (`2.1e-3`, one decode step; whole-prefill tensors ≤ `2.9u`).
//! Bound: `8u` — bf16 `2⁻⁵ = 3.125e-2`, f16 `2⁻⁸ = 3.906e-3` — about twice the worst
//! measurement; cuBLAS's different f32 summation order adds `~1e-6`, nothing next to `u`
//! (`docs/cuda.md` lists the measurements). f32 weights use `cublasSgemm` with
//! TF32 off (`CUBLAS_DEFAULT_MATH | DISALLOW_REDUCED_PRECISION_REDUCTION`, compute type f32):
//! only the summation order differs from the portable kernel, and the bound stays `1e-5`.
//! cuBLAS chooses algorithms by shape, so a row's result may depend on the batch: the bit-exact
//! batch-independence checks become `1e-5` checks ([`Bounds::batch_exact`]).

use argen_core::decode::{drive, Action, Answer, Decoder, Host, NoObserver, Vanilla};
use argen_core::{Backend, SliceBackend, SliceStorage};
use argen_cpu::Cpu;
use argen_cuda::kernels::{Kernel, LANES};
use argen_cuda::launch::{Arg, Executor, GemmDesc, Launch};
use argen_model::safetensors::{Dtype, OtherDtype, SafeTensors};
use argen_model::{
    host_capacity, Capacity, CaptionPrefill, ClassPrefill, Compute, Condition, Drafter, Gpt,
    GptConfig, HostError, ModelHost, ModelType, NoJudge, Pos, Step, VqConfig, VqDecoder,
};
use half::{bf16, f16};
use std::path::PathBuf;

/// Two chain steps, slot 0 with the first half of `toks` (`toks.len() / 2` tokens) and slot 1
/// with the rest, both at `positions`.
fn two_chains<'a>(toks: &'a [u32], positions: &'a [Pos]) -> [Step<'a>; 2] {
    let (first, second) = toks.split_at(toks.len() / 2);
    [(0, first), (1, second)].map(|(slot, tokens)| Step {
        slot,
        tokens,
        positions,
        parents: None,
    })
}

/// The strict bound of every portable kernel against argen-cpu.
pub const TOL: f32 = 1e-5;
/// argen-cpu's own bound against the PyTorch goldens.
pub const GOLDEN_TOL: f32 = 1e-4;

/// Tolerances of one device configuration (module docs).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Bound against argen-cpu for models with f32 weights.
    pub f32: f32,
    /// Bound against argen-cpu for models with f16 weights.
    pub f16: f32,
    /// Bound against argen-cpu for models with bf16 weights.
    pub bf16: f32,
    /// Whether a row's result is independent of the batch bit for bit (portable kernels: yes;
    /// cuBLAS: not guaranteed, so those checks use [`TOL`]).
    pub batch_exact: bool,
}

impl Bounds {
    /// The portable kernels (PoCL, `GemmMode::Portable`) and `GemmMode::CublasF32` on
    /// 16-bit weights.
    pub const STRICT: Bounds = Bounds {
        f32: TOL,
        f16: TOL,
        bf16: TOL,
        batch_exact: true,
    };
    /// `GemmMode::CublasF32`: sgemm for f32 weights (TF32 off), portable kernel for 16-bit.
    pub const CUBLAS_F32: Bounds = Bounds {
        batch_exact: false,
        ..Bounds::STRICT
    };
    /// `GemmMode::Cublas`: 16-bit weights multiply activations rounded to the weight format
    /// (`8u`, module docs).
    pub const CUBLAS: Bounds = Bounds {
        f32: TOL,
        f16: 3.90625e-3,
        bf16: 3.125e-2,
        batch_exact: false,
    };

    /// The bound against argen-cpu for weights in `dt`.
    pub fn cpu(&self, dt: Dtype) -> f32 {
        match dt {
            Dtype::F16 => self.f16,
            Dtype::BF16 => self.bf16,
            _ => self.f32,
        }
    }

    /// The bound against the PyTorch goldens: argen-cpu's [`GOLDEN_TOL`], plus the device's
    /// distance to argen-cpu where that is looser than [`TOL`] (triangle inequality).
    pub fn golden(&self, dt: Dtype) -> f32 {
        let c = self.cpu(dt);
        if c <= TOL {
            GOLDEN_TOL
        } else {
            GOLDEN_TOL + c
        }
    }
}

/// The three GPT checkpoints of a fixture: file, golden logits, weight format.
const CHECKPOINTS: [(&str, &str, Dtype); 3] = [
    ("gpt.safetensors", "logits", Dtype::F32),
    ("gpt.bf16.safetensors", "logits_bf16", Dtype::BF16),
    ("gpt.f16.safetensors", "logits_f16", Dtype::F16),
];

fn cpu() -> Cpu {
    Cpu::new(1).expect("cpu backend")
}

pub fn fixture(case: &str, file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/model")
        .join(case)
        .join(file)
}

pub struct Golden(SafeTensors);

impl Golden {
    pub fn open(case: &str) -> Golden {
        Golden(SafeTensors::open(fixture(case, "golden.safetensors")).expect("golden file"))
    }
    pub fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let v = self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("golden `{name}`"));
        (v.to_f32().expect("float"), v.shape.to_vec())
    }
    pub fn i64(&self, name: &str) -> Vec<i64> {
        let v = self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("golden `{name}`"));
        assert_eq!(v.dtype, Dtype::Other(OtherDtype::I64));
        v.data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// The tensor metric of the module docs.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-30);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

pub fn check(what: &str, dev: &[f32], reference: &[f32], tol: f32) {
    let e = rel_err(dev, reference);
    eprintln!("{what}: rel err {e:e} (bound {tol:e})");
    assert!(e <= tol, "{what}: rel err {e:e} > {tol:e}");
}

/// Bit-equal where the device promises batch independence, else within [`TOL`].
fn check_same(what: &str, a: &[f32], b: &[f32], bounds: &Bounds) {
    if bounds.batch_exact {
        assert_eq!(a, b, "{what}: device rows depend on the batch");
    } else {
        check(&format!("{what} (vendor GEMM)"), a, b, TOL);
    }
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

fn load<C: Compute>(c: &C, case: &str, file: &str) -> Gpt<C> {
    let cfg = GptConfig::load(fixture(case, "gpt.json")).unwrap();
    Gpt::load(c, &cfg, fixture(case, file), cap(&cfg)).unwrap()
}

/// Prefills both slots (cond, uncond) as the golden file does.
fn prefill<C: Compute>(gpt: &mut Gpt<C>, g: &Golden, logits: &mut [f32], hidden: &mut [f32]) {
    match gpt.config().model_type {
        ModelType::C2i => {
            let nc = gpt.config().num_classes as i64;
            let r: Vec<ClassPrefill> = g
                .i64("classes")
                .iter()
                .enumerate()
                .map(|(s, &c)| ClassPrefill {
                    slot: s,
                    class: if c == nc { None } else { Some(c as u32) },
                })
                .collect();
            gpt.prefill_class(&r, logits, Some(hidden)).unwrap();
        }
        ModelType::T2i => {
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

/// Prefill + one chain step per slot; per-slot logits `[2, 1 + n, V]` and hidden states in
/// golden order.
fn full_run<C: Compute>(gpt: &mut Gpt<C>, g: &Golden) -> (Vec<f32>, Vec<f32>) {
    let cfg = gpt.config().clone();
    let (v, d) = (cfg.vocab_size, cfg.dim);
    let toks: Vec<u32> = g.i64("tokens").iter().map(|&x| x as u32).collect();
    let n = toks.len() / 2;
    let mut pl = vec![0f32; 2 * v];
    let mut ph = vec![0f32; 2 * d];
    prefill(gpt, g, &mut pl, &mut ph);
    let positions: Vec<Pos> = (0..n).map(|k| pos(&cfg, k)).collect();
    let steps = two_chains(&toks, &positions);
    let mut fl = vec![0f32; 2 * n * v];
    let mut fh = vec![0f32; 2 * n * d];
    gpt.forward(&steps, &mut fl, Some(&mut fh)).unwrap();
    let mut logits = Vec::new();
    let mut hidden = Vec::new();
    for b in 0..2 {
        logits.extend_from_slice(&pl[b * v..(b + 1) * v]);
        logits.extend_from_slice(&fl[b * n * v..(b + 1) * n * v]);
        hidden.extend_from_slice(&ph[b * d..(b + 1) * d]);
        hidden.extend_from_slice(&fh[b * n * d..(b + 1) * n * d]);
    }
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

/// Logits of slot 0 after prefill and `toks`, fed one per forward call (committed each time).
fn incremental<C: Compute>(gpt: &mut Gpt<C>, g: &Golden, toks: &[u32]) -> Vec<f32> {
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

/// GPT logits and hidden states (prefill + chain) of both fixtures and all three checkpoints,
/// against argen-cpu and the PyTorch goldens.
pub fn gpt_logits_and_hidden<C: Compute>(dev: &C, bounds: &Bounds) {
    let cc = cpu();
    for case in ["c2i_tiny", "t2i_tiny"] {
        let g = Golden::open(case);
        for (file, key, dt) in CHECKPOINTS {
            let mut dg = load(dev, case, file);
            let mut dc = load(&cc, case, file);
            let t = dg.config().cls_token_num;
            let (lg, hg) = full_run(&mut dg, &g);
            let (lc, hc) = full_run(&mut dc, &g);
            let tol = bounds.cpu(dt);
            check(&format!("{case}/{file} logits vs cpu"), &lg, &lc, tol);
            check(&format!("{case}/{file} hidden vs cpu"), &hg, &hc, tol);
            check(
                &format!("{case}/{file} logits vs pytorch"),
                &lg,
                &golden_rows(&g, key, t),
                bounds.golden(dt),
            );
            if dt == Dtype::F32 {
                check(
                    &format!("{case}/{file} hidden vs pytorch"),
                    &hg,
                    &golden_rows(&g, "hidden", t),
                    bounds.golden(dt),
                );
            }
        }
    }
}

/// Incremental decoding equals the full forward on the device (bit for bit where
/// [`Bounds::batch_exact`]) and argen-cpu's incremental decoding.
pub fn incremental_decoding_equals_the_full_forward<C: Compute>(dev: &C, bounds: &Bounds) {
    let cc = cpu();
    for case in ["c2i_tiny", "t2i_tiny"] {
        let g = Golden::open(case);
        let mut dg = load(dev, case, "gpt.safetensors");
        let mut dc = load(&cc, case, "gpt.safetensors");
        let v = dg.config().vocab_size;
        let (full, _) = full_run(&mut dg, &g);
        let toks: Vec<u32> = g.i64("tokens").iter().map(|&x| x as u32).collect();
        let n = toks.len() / 2;
        let inc = incremental(&mut dg, &g, &toks[..n]);
        check_same(
            &format!("{case} incremental vs full forward"),
            &inc,
            &full[v..(n + 1) * v],
            bounds,
        );
        let inc_c = incremental(&mut dc, &g, &toks[..n]);
        check(
            &format!("{case} incremental vs cpu"),
            &inc,
            &inc_c,
            bounds.f32,
        );
    }
}

/// Tree attention equals the branches run separately, commit compaction equals the chain
/// (bit for bit where [`Bounds::batch_exact`]), and both match argen-cpu.
pub fn tree_attention_and_commit<C: Compute>(dev: &C, bounds: &Bounds) {
    let cc = cpu();
    let case = "c2i_tiny";
    let g = Golden::open(case);
    let mut dg = load(dev, case, "gpt.safetensors");
    let mut dc = load(&cc, case, "gpt.safetensors");
    let cfg = dg.config().clone();
    let v = cfg.vocab_size;
    let (a, b) = ([5u32, 9, 17], [40u32, 2]);
    let toks = [a[0], a[1], a[2], b[0], b[1]];
    let p = [
        pos(&cfg, 0),
        pos(&cfg, 1),
        pos(&cfg, 2),
        pos(&cfg, 0),
        pos(&cfg, 1),
    ];
    let parents = [-1, 0, 1, -1, 3];
    let tree_step = [Step {
        slot: 0,
        tokens: &toks,
        positions: &p,
        parents: Some(&parents),
    }];
    let mut pl = vec![0f32; 2 * v];
    let mut ph = vec![0f32; 2 * cfg.dim];
    let mut tree = vec![0f32; 5 * v];
    let mut tree_c = vec![0f32; 5 * v];
    prefill(&mut dg, &g, &mut pl, &mut ph);
    dg.forward(&tree_step, &mut tree, None).unwrap();
    prefill(&mut dc, &g, &mut pl, &mut ph);
    dc.forward(&tree_step, &mut tree_c, None).unwrap();
    check("tree logits vs cpu", &tree, &tree_c, bounds.f32);
    let sep_a = incremental(&mut dg, &g, &a);
    let sep_b = incremental(&mut dg, &g, &b);
    check_same("branch A", &tree[..3 * v], &sep_a, bounds);
    check_same("branch B", &tree[3 * v..], &sep_b, bounds);

    // Commit branch B (a KV move on the device), then one more token: equals the chain.
    let p2 = [pos(&cfg, 2)];
    let next_step = [Step {
        slot: 0,
        tokens: &[33],
        positions: &p2,
        parents: None,
    }];
    let mut next = vec![0f32; v];
    let mut next_c = vec![0f32; v];
    prefill(&mut dg, &g, &mut pl, &mut ph);
    dg.forward(&tree_step, &mut tree, None).unwrap();
    dg.commit(0, &[3, 4]).unwrap();
    dg.forward(&next_step, &mut next, None).unwrap();
    prefill(&mut dc, &g, &mut pl, &mut ph);
    dc.forward(&tree_step, &mut tree_c, None).unwrap();
    dc.commit(0, &[3, 4]).unwrap();
    dc.forward(&next_step, &mut next_c, None).unwrap();
    let chain = incremental(&mut dg, &g, &[b[0], b[1], 33]);
    check_same("commit compaction", &next, &chain[2 * v..], bounds);
    check("after commit vs cpu", &next, &next_c, bounds.f32);
}

fn drafter_run<C: Compute>(c: &C, case: &str, g: &Golden) -> (Vec<f32>, Vec<f32>) {
    let gpt = load(c, case, "gpt.safetensors");
    let cfg = gpt.config().clone();
    let mut dr = Drafter::load(c, &cfg, fixture(case, "drafter.safetensors"), cap(&cfg)).unwrap();
    let toks: Vec<u32> = g.i64("draft_tokens").iter().map(|&x| x as u32).collect();
    let (feats, _) = g.f32("draft_features");
    let n = toks.len() / 2;
    let positions: Vec<Pos> = (0..n).map(|k| pos(&cfg, k)).collect();
    let steps = two_chains(&toks, &positions);
    let mut lg = vec![0f32; 2 * n * cfg.vocab_size];
    let mut hd = vec![0f32; 2 * n * cfg.dim];
    dr.forward(&gpt, &steps, &feats, &mut lg, Some(&mut hd))
        .unwrap();
    (lg, hd)
}

/// The EAGLE drafter's logits and hidden states (f32 weights) against argen-cpu and PyTorch.
pub fn drafter_matches_cpu_and_pytorch<C: Compute>(dev: &C, bounds: &Bounds) {
    let cc = cpu();
    for case in ["c2i_tiny", "t2i_tiny"] {
        let g = Golden::open(case);
        let (lg, hg) = drafter_run(dev, case, &g);
        let (lc, hc) = drafter_run(&cc, case, &g);
        let tol = bounds.cpu(Dtype::F32);
        check(&format!("{case} drafter logits vs cpu"), &lg, &lc, tol);
        check(&format!("{case} drafter hidden vs cpu"), &hg, &hc, tol);
        let golden = bounds.golden(Dtype::F32);
        check(
            &format!("{case} drafter logits vs pytorch"),
            &lg,
            &g.f32("draft_logits").0,
            golden,
        );
        check(
            &format!("{case} drafter hidden vs pytorch"),
            &hg,
            &g.f32("draft_hidden").0,
            golden,
        );
    }
}

/// VQ-decoded pixels: `c2i_tiny` (f32 weights, golden codes; also against PyTorch) and `tiny`
/// (f16 weights) on a 6 × 6 grid.
pub fn vq_decoder_matches_cpu_and_pytorch<C: Compute>(dev: &C, bounds: &Bounds) {
    let cc = cpu();
    let g = Golden::open("c2i_tiny");
    let codes: Vec<u32> = g.i64("vq_codes").iter().map(|&x| x as u32).collect();
    let cfg = VqConfig::load(fixture("c2i_tiny", "vq.json")).unwrap();
    let vg = VqDecoder::load(dev, &cfg, fixture("c2i_tiny", "vq.safetensors")).unwrap();
    let vc = VqDecoder::load(&cc, &cfg, fixture("c2i_tiny", "vq.safetensors")).unwrap();
    let (ig, ic) = (
        vg.decode(&codes, 3, 4).unwrap(),
        vc.decode(&codes, 3, 4).unwrap(),
    );
    assert_eq!((ig.height, ig.width), (ic.height, ic.width));
    check(
        "c2i_tiny vq pixels vs cpu",
        &ig.chw,
        &ic.chw,
        bounds.cpu(Dtype::F32),
    );
    let (want, _) = g.f32("vq_pixels");
    let abs = ig
        .chw
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("c2i_tiny vq pixels vs pytorch: max abs err {abs:e}");
    assert!(abs < 1e-3, "vq pixels vs pytorch: max abs err {abs}");
    // The `tiny` fixture (f16 weights) on a square grid with every code.
    let cfg = VqConfig::load(fixture("tiny", "vq.json")).unwrap();
    let vg = VqDecoder::load(dev, &cfg, fixture("tiny", "vq.safetensors")).unwrap();
    let vc = VqDecoder::load(&cc, &cfg, fixture("tiny", "vq.safetensors")).unwrap();
    let codes: Vec<u32> = (0..36)
        .map(|i| (i * 7 % cfg.codebook_size) as u32)
        .collect();
    let (ig, ic) = (
        vg.decode(&codes, 6, 6).unwrap(),
        vc.decode(&codes, 6, 6).unwrap(),
    );
    check(
        "tiny vq pixels vs cpu",
        &ig.chw,
        &ic.chw,
        bounds.cpu(Dtype::F16),
    );
}

/// Runs every action on a device host and on a CPU host; the decoder sees the CPU's logits, so
/// both models are teacher-forced with the CPU's tokens. Records the metric of each answer.
struct Mirror<'m, C: Compute> {
    cpu: ModelHost<'m, Cpu>,
    dev: ModelHost<'m, C>,
    dev_logits: Vec<f32>,
    /// `(action kind, metric)` per forward.
    errors: Vec<(&'static str, f32)>,
}

impl<C: Compute, B: Backend<Logits = [f32]>> Host<B> for Mirror<'_, C>
where
    HostError: From<B::Error>,
{
    type Error = HostError;

    fn answer(&mut self, action: &Action<'_>) -> Result<Answer<'_, [f32]>, HostError> {
        match <ModelHost<'_, C> as Host<B>>::answer(&mut self.dev, action)? {
            Answer::Logits(l) => {
                self.dev_logits.clear();
                self.dev_logits.extend_from_slice(l);
            }
            _ => {
                return Err(HostError::Unsupported(format!(
                    "the mirror host only runs forwards, not {}",
                    action.kind()
                )))
            }
        }
        let answer = <ModelHost<'_, Cpu> as Host<B>>::answer(&mut self.cpu, action)?;
        if let Answer::Logits(l) = &answer {
            self.errors
                .push((action.kind(), rel_err(&self.dev_logits, l)));
        }
        Ok(answer)
    }
}

/// Drives `dec` on `host` with a fresh [`SliceBackend`]; returns the tokens.
fn decode_with<D: Decoder, H: for<'b> Host<SliceBackend<'b, f32>, Error = HostError>>(
    dec: &mut D,
    host: &mut H,
    vocab: usize,
) -> Vec<u32> {
    let mut storage = SliceStorage::new(vocab, dec.dist_rows_needed());
    let mut backend = storage.backend::<f32>().unwrap();
    drive(dec, &mut backend, host, &mut NoObserver).unwrap();
    dec.tokens(0).to_vec()
}

/// End-to-end vanilla decoding of `t2i_tiny` (caption and null caption, two-way CFG, top-k 32)
/// through [`ModelHost`] and argen-core's [`SliceBackend`], for all three checkpoints and a
/// few seeds. Sampled tokens need not be identical (a different summation order can move a
/// draw across a CDF boundary), so the decoder is driven by argen-cpu's logits and the device
/// model answers the same actions (the CPU's tokens, teacher-forced): the logits of every step
/// (prefill and each token, both guidance rows) must agree within the bound. A free-running
/// device decode is also run and its agreement with the CPU's tokens printed (not asserted).
pub fn vanilla_decode_teacher_forced<C: Compute>(dev: &C, bounds: &Bounds) {
    let cc = cpu();
    let case = "t2i_tiny";
    let g = Golden::open(case);
    let cfg = GptConfig::load(fixture(case, "gpt.json")).unwrap();
    let (features, _) = g.f32("caption");
    let pad = g.i64("pad")[0] as usize;
    let conds = [(
        Condition::Caption {
            features: Some(features),
            pad,
        },
        Condition::Caption {
            features: None,
            pad,
        },
    )];
    let capacity = host_capacity(&cfg, 1, 1);
    for (file, _, dt) in CHECKPOINTS {
        let mut gc = Gpt::load(&cc, &cfg, fixture(case, file), capacity).unwrap();
        let mut gd = Gpt::load(dev, &cfg, fixture(case, file), capacity).unwrap();
        let tol = bounds.cpu(dt);
        for seed in 0..3u64 {
            let config = super::decode::config(&cfg, seed);
            let (mut jc, mut jd) = (NoJudge, NoJudge);
            let mut mirror = Mirror {
                cpu: ModelHost::new(&mut gc, None, Some(&mut jc), &conds).unwrap(),
                dev: ModelHost::new(&mut gd, None, Some(&mut jd), &conds).unwrap(),
                dev_logits: Vec::new(),
                errors: Vec::new(),
            };
            let mut dec = Vanilla::<64>::new(config).unwrap();
            let tokens = decode_with(&mut dec, &mut mirror, cfg.vocab_size);
            let errors = std::mem::take(&mut mirror.errors);
            drop(mirror);
            assert_eq!(tokens.len(), cfg.block_size);
            // One prefill and one target run per token but the last.
            assert_eq!(errors.len(), cfg.block_size, "{file} seed {seed}: forwards");
            let worst = errors.iter().fold(0f32, |m, e| m.max(e.1));
            eprintln!(
                "{case}/{file} seed {seed}: teacher-forced decode, {} forwards, worst step rel \
                 err {worst:e} (bound {tol:e})",
                errors.len()
            );
            for (step, (kind, e)) in errors.iter().enumerate() {
                assert!(
                    *e <= tol,
                    "{case}/{file} seed {seed} step {step} ({kind}): rel err {e:e} > {tol:e}"
                );
            }
            // The CPU decode through the mirror is the plain CPU decode.
            let mut jc = NoJudge;
            let mut host = ModelHost::new(&mut gc, None, Some(&mut jc), &conds).unwrap();
            let mut dec = Vanilla::<64>::new(config).unwrap();
            let plain = decode_with(&mut dec, &mut host, cfg.vocab_size);
            assert_eq!(
                plain, tokens,
                "{file} seed {seed}: the mirror changed the decode"
            );
            // Free-running on the device: reported, not asserted (see the function docs).
            let mut jd = NoJudge;
            let mut host = ModelHost::new(&mut gd, None, Some(&mut jd), &conds).unwrap();
            let mut dec = Vanilla::<64>::new(config).unwrap();
            let free = decode_with(&mut dec, &mut host, cfg.vocab_size);
            let same = free.iter().zip(&tokens).take_while(|(a, b)| a == b).count();
            eprintln!(
                "{case}/{file} seed {seed}: free-running device decode agrees with the CPU on \
                 the first {same} of {} tokens",
                tokens.len()
            );
        }
    }
}

/// Launches the portable `argen_gemm` kernel for the GEMM `g`, reading the activations from
/// `x` at `x_offset` floats (instead of `g.x`) with the weight-format `code` (0 f32, 1 f16,
/// 2 bf16), no bias and scale 1 — what a test executor's "vendor GEMM" hook runs; the caller
/// (`GpuCompute`) applies the bias / scale epilogue.
pub fn launch_portable_gemm<E: Executor>(
    dev: &E,
    x: &E::Buffer,
    x_offset: usize,
    code: u32,
    g: &GemmDesc<'_, E::Buffer>,
) -> argen_cuda::Result<()> {
    let args = [
        Arg::Buf(x),
        Arg::U32(x_offset as u32),
        Arg::Buf(g.w),
        Arg::U32(code),
        Arg::Buf(g.w),
        Arg::U32(u32::MAX),
        Arg::Buf(g.out),
        Arg::U32(g.out_offset as u32),
        Arg::U32(g.rows as u32),
        Arg::U32(g.n as u32),
        Arg::U32(g.k as u32),
        Arg::U32(1f32.to_bits()),
        Arg::U32(0),
        Arg::U32(0),
        Arg::U32(0),
        Arg::U32(0),
    ];
    dev.launch(&Launch {
        kernel: Kernel::Gemm,
        grid: (g.rows.div_ceil(32) * g.n.div_ceil(64)) as u32,
        block: LANES,
        shared_bytes: 0,
        args: &args,
    })
}

/// An executor that serves every 16-bit-weight GEMM the way `GemmMode::Cublas` does — the f32
/// activations rounded to the weight format (nearest even, as `half` rounds), then multiplied
/// in f32 — but with the portable kernel (rounding on the host, test only). f32-weight GEMMs
/// are declined and take the portable kernel. It lets the [`Bounds::CUBLAS`] derivation be
/// checked without a GPU; the summation order is the portable kernel's, not cuBLAS's.
pub struct RoundingGemm<E: Executor>(pub E);

impl<E: Executor> Executor for RoundingGemm<E> {
    type Buffer = E::Buffer;
    fn describe(&self) -> String {
        format!("{} with activations rounded like cuBLAS", self.0.describe())
    }
    fn alloc(&self, bytes: usize) -> argen_cuda::Result<Self::Buffer> {
        self.0.alloc(bytes)
    }
    fn len(&self, buf: &Self::Buffer) -> usize {
        self.0.len(buf)
    }
    fn write(&self, buf: &mut Self::Buffer, offset: usize, data: &[u8]) -> argen_cuda::Result<()> {
        self.0.write(buf, offset, data)
    }
    fn read(&self, buf: &Self::Buffer, offset: usize, out: &mut [u8]) -> argen_cuda::Result<()> {
        self.0.read(buf, offset, out)
    }
    fn launch(&self, launch: &Launch<'_, Self::Buffer>) -> argen_cuda::Result<()> {
        self.0.launch(launch)
    }
    fn gemm(&self, g: &GemmDesc<'_, Self::Buffer>) -> argen_cuda::Result<bool> {
        let code = match g.w_dtype {
            argen_core::Dtype::F32 => return Ok(false),
            argen_core::Dtype::F16 => 1,
            argen_core::Dtype::Bf16 => 2,
        };
        let mut bytes = vec![0u8; g.rows * g.k * 4];
        self.0.read(g.x, g.x_offset * 4, &mut bytes)?;
        for c in bytes.chunks_exact_mut(4) {
            let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let r = if code == 1 {
                f16::from_f32(x).to_f32()
            } else {
                bf16::from_f32(x).to_f32()
            };
            c.copy_from_slice(&r.to_le_bytes());
        }
        let mut rounded = self.0.alloc(bytes.len())?;
        self.0.write(&mut rounded, 0, &bytes)?;
        launch_portable_gemm(&self.0, &rounded, 0, code, g)?;
        // The scratch must outlive the launch: `read` waits for prior launches.
        let mut sync = [0u8; 4];
        self.0.read(g.out, g.out_offset * 4, &mut sync)?;
        Ok(true)
    }
}
