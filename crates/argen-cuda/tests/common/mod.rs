//! The parity cases shared by `pocl_parity.rs` (OpenCL / PoCL) and `gpu_parity.rs` (CUDA):
//! every kernel run through [`GpuBackend`] over an executor, compared bit for bit with the
//! `argen-core` reference ([`SliceBackend`]). Each `pub fn` taking `dev` is one test body;
//! the test files only pick the executor and decide how to skip. The model runtime's cases
//! (`GpuCompute` against argen-cpu) are in [`model`] (whole models, decoding) and [`ops`]
//! (one operation at a time).

#![allow(dead_code)]

pub mod decode;
pub mod model;
pub mod ops;

use argen_core::accept::neighbours::build_table;
use argen_core::accept::{GroupedParams, LanternParams, NeighbourTable};
use argen_core::backend::{slice_backend_sizes, DraftTree, ROOT};
use argen_core::rng::KeyedStream;
use argen_core::{
    Backend, Criterion, Key, NodeKeys, ProcessJob, Purpose, RowGuidance, SampleJob, SamplerParams,
    SliceBackend, TreeJob,
};
use argen_cuda::launch::Executor;
use argen_cuda::opencl::OpenClExecutor;
use argen_cuda::{GpuBackend, LogitBits};
use half::{bf16, f16};
use std::sync::OnceLock;

/// The first OpenCL device (PoCL in CI), opened once per test binary, or `None` (after a
/// printed `SKIPPED` line) when no OpenCL platform exists. `ARGEN_REQUIRE_OPENCL=1` turns the
/// skip into a panic (CI sets it).
pub fn opencl_device() -> Option<&'static OpenClExecutor> {
    static DEV: OnceLock<Option<OpenClExecutor>> = OnceLock::new();
    DEV.get_or_init(|| match OpenClExecutor::open_first() {
        Ok(d) => Some(d),
        Err(e) => {
            if std::env::var("ARGEN_REQUIRE_OPENCL").as_deref() == Ok("1") {
                panic!("ARGEN_REQUIRE_OPENCL=1 but no OpenCL device: {e}");
            }
            eprintln!("SKIPPED: no OpenCL device ({e}); install pocl-opencl-icd to run");
            None
        }
    })
    .as_ref()
}

/// Deterministic xorshift64* for test data.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform index in `0..n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
    /// Uniform in [-a, a).
    pub fn sym(&mut self, a: f32) -> f32 {
        (self.unit() * 2.0 - 1.0) * a
    }
    /// `n` values uniform in [-a, a).
    pub fn vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|_| self.sym(a)).collect()
    }
}

/// A reference backend with owned storage.
pub struct Reference {
    vocab: usize,
    weights: Vec<u64>,
    totals: Vec<u64>,
    f: Vec<f32>,
    u: Vec<u32>,
}
impl Reference {
    pub fn new(vocab: usize, rows: usize) -> Self {
        let (a, b, c, d) = slice_backend_sizes(vocab, rows);
        Reference {
            vocab,
            weights: vec![0; a],
            totals: vec![0; b],
            f: vec![0.0; c],
            u: vec![0; d],
        }
    }
    pub fn backend<L: LogitBits>(&mut self) -> SliceBackend<'_, L> {
        SliceBackend::new(
            self.vocab,
            &mut self.weights,
            &mut self.totals,
            &mut self.f,
            &mut self.u,
        )
        .unwrap()
    }
}

pub fn random_logits(rng: &mut Rng, v: usize, rows: usize, peaked: bool) -> Vec<f32> {
    let mut out = Vec::with_capacity(v * rows);
    for _ in 0..rows {
        for i in 0..v {
            let r = rng.below(100);
            let x = if r < 4 {
                f32::NEG_INFINITY
            } else if r < 12 && i > 0 {
                // exact ties with an earlier element
                out[out.len() - 1 - rng.below(i as u64) as usize % i.max(1)]
            } else if peaked && r < 20 {
                8.0 + rng.unit() * 4.0
            } else {
                (rng.unit() - 0.5) * 12.0
            };
            out.push(x);
        }
    }
    out
}

pub fn params(rng: &mut Rng, v: usize) -> SamplerParams {
    let t = [0.0, 0.5, 1.0, 1.7, 0.05][rng.below(5) as usize];
    let top_k = match rng.below(4) {
        0 => None,
        1 => Some(1),
        2 => Some(1 + rng.below(v as u64) as u32),
        _ => Some(v as u32),
    };
    let top_p = [None, Some(0.3), Some(0.9), Some(1.0), Some(1e-12)][rng.below(5) as usize];
    let min_p = [None, Some(0.05), Some(0.0), Some(1.0), Some(0.3)][rng.below(5) as usize];
    SamplerParams {
        temperature: t,
        top_k,
        top_p,
        min_p,
    }
}

pub fn guidance(rng: &mut Rng, rows: u32) -> RowGuidance {
    let r = |rng: &mut Rng| rng.below(rows as u64) as u32;
    match rng.below(3) {
        0 => RowGuidance::Plain { row: r(rng) },
        1 => RowGuidance::TwoWay {
            cond: r(rng),
            uncond: r(rng),
            scale: [4.0, 1.0, 0.0, 7.5][rng.below(4) as usize],
        },
        _ => RowGuidance::ThreeWay {
            cond: r(rng),
            uncond: r(rng),
            reformulated: r(rng),
            w: [5.0, 0.5, 0.0][rng.below(3) as usize],
        },
    }
}

pub fn compare_tables<E: Executor, L: LogitBits>(
    gpu: &mut GpuBackend<E>,
    reference: &Reference,
    rows: usize,
    what: &str,
) {
    let v = reference.vocab;
    let mut row = vec![0u64; v];
    for r in 0..rows {
        let total = gpu.read_row(r as u32, &mut row).unwrap();
        assert_eq!(
            total,
            reference.totals[r],
            "{what}: total of row {r} ({})",
            L::NAME
        );
        assert_eq!(
            row,
            reference.weights[r * v..(r + 1) * v],
            "{what}: weights of row {r} ({})",
            L::NAME
        );
    }
}

pub fn process_case<X: Executor, L: LogitBits>(dev: &X, seed: u64, v: usize, from: fn(f32) -> L) {
    let mut rng = Rng(seed);
    let logit_rows = 4;
    let dist_rows = 6;
    let peaked = seed % 2 == 0;
    let host: Vec<L> = random_logits(&mut rng, v, logit_rows, peaked)
        .into_iter()
        .map(from)
        .collect();
    let mut gpu = GpuBackend::new(dev, v, dist_rows, 3).unwrap();
    let logits = gpu.upload_logits(&host).unwrap();
    let mut reference = Reference::new(v, dist_rows);
    for round in 0..6 {
        let n = 1 + rng.below(5) as usize;
        let jobs: Vec<ProcessJob> = (0..n)
            .map(|_| ProcessJob {
                rows: guidance(&mut rng, logit_rows as u32),
                params: params(&mut rng, v),
                out: rng.below(dist_rows as u64) as u32,
            })
            .collect();
        let want = reference.backend::<L>().process(&host, &jobs);
        let got = gpu.process(&logits, &jobs);
        match (&want, &got) {
            (Ok(()), Ok(())) => compare_tables::<_, L>(&mut gpu, &reference, dist_rows, "process"),
            (Err(w), Err(argen_cuda::Error::Core(g))) => assert_eq!(w, g, "round {round}"),
            _ => panic!("round {round}: reference {want:?}, device {got:?}, jobs {jobs:?}"),
        }
        if want.is_err() {
            continue;
        }
        // Keyed draws from every processed row.
        let sjobs: Vec<SampleJob> = (0..40)
            .map(|i| SampleJob {
                row: rng.below(dist_rows as u64) as u32,
                key: Key {
                    seed: rng.next(),
                    stream: rng.below(4) as u32,
                    purpose: Purpose::SAMPLE,
                    position: i,
                    token: rng.below(3) as u32,
                },
            })
            .collect();
        let mut want_t = vec![0u32; sjobs.len()];
        let mut got_t = vec![0u32; sjobs.len()];
        let w = reference.backend::<L>().sample(&sjobs, &mut want_t);
        let g = gpu.sample(&sjobs, &mut got_t);
        match (&w, &g) {
            (Ok(()), Ok(())) => assert_eq!(want_t, got_t, "sample round {round}"),
            (Err(w), Err(argen_cuda::Error::Core(g))) => assert_eq!(w, g),
            _ => panic!("sample: reference {w:?}, device {g:?}"),
        }
        // Top-k of one row.
        let row = rng.below(dist_rows as u64) as u32;
        let k = 1 + rng.below(v.min(20) as u64) as usize;
        let (mut wt, mut wp) = (vec![0u32; k], vec![0f64; k]);
        let (mut gt, mut gp) = (vec![0u32; k], vec![0f64; k]);
        let w = reference.backend::<L>().top_k(row, &mut wt, &mut wp);
        let g = gpu.top_k(row, &mut gt, &mut gp);
        match (&w, &g) {
            (Ok(()), Ok(())) => {
                assert_eq!(wt, gt, "top_k tokens");
                assert_eq!(wp, gp, "top_k probabilities");
            }
            (Err(w), Err(argen_cuda::Error::Core(g))) => assert_eq!(w, g),
            _ => panic!("top_k: reference {w:?}, device {g:?}"),
        }
    }
}

pub fn process_sample_topk_f32<X: Executor>(dev: &X) {
    // Tiny vocabularies (fewer tokens than lanes) get more seeds; wide rows cost the most on
    // PoCL, so they get one or two.
    for (i, (v, seeds)) in [(1usize, 4), (2, 4), (7, 4), (300, 2), (1000, 1), (4099, 1)]
        .into_iter()
        .enumerate()
    {
        for s in 0..seeds {
            process_case::<X, f32>(dev, 0x1234 + 97 * i as u64 + s, v, |x| x);
        }
    }
}

pub fn process_sample_topk_f16_bf16<X: Executor>(dev: &X) {
    for (i, v) in [3usize, 257, 2048].into_iter().enumerate() {
        for s in 0..3 {
            process_case::<X, f16>(dev, 0x777 + 31 * i as u64 + s, v, f16::from_f32);
            process_case::<X, bf16>(dev, 0x999 + 31 * i as u64 + s, v, bf16::from_f32);
        }
    }
}

pub fn process_error_rows<X: Executor>(dev: &X) {
    let v = 300;
    let mut base = vec![0.5f32; v * 3];
    base[v + 17] = f32::NAN; // row 1: NaN at 17
    base[2 * v + 5] = f32::INFINITY; // row 2: +inf at 5
    let mut masked = vec![f32::NEG_INFINITY; v];
    masked.extend_from_slice(&[3e38f32; 300]);
    let mut reference = Reference::new(v, 2);
    let mut gpu = GpuBackend::new(dev, v, 2, 4).unwrap();
    let cases: Vec<(Vec<f32>, Vec<ProcessJob>)> = vec![
        (base.clone(), vec![job(RowGuidance::Plain { row: 1 }, 1.0)]),
        (
            base.clone(),
            vec![job(
                RowGuidance::TwoWay {
                    cond: 0,
                    uncond: 2,
                    scale: 2.0,
                },
                1.0,
            )],
        ),
        (
            base.clone(),
            vec![job(
                RowGuidance::ThreeWay {
                    cond: 0,
                    uncond: 1,
                    reformulated: 2,
                    w: 5.0,
                },
                1.0,
            )],
        ),
        (
            masked.clone(),
            vec![job(RowGuidance::Plain { row: 0 }, 1.0)],
        ),
        (
            masked.clone(),
            vec![job(RowGuidance::Plain { row: 1 }, 0.001)],
        ),
        (
            masked.clone(),
            vec![job(
                RowGuidance::TwoWay {
                    cond: 1,
                    uncond: 0,
                    scale: 1.0,
                },
                1.0,
            )],
        ),
        (
            masked,
            vec![
                job(
                    RowGuidance::TwoWay {
                        cond: 1,
                        uncond: 1,
                        scale: 1.0,
                    },
                    1.0,
                ),
                job(RowGuidance::Plain { row: 5 }, 1.0),
            ],
        ),
        (base, vec![job(RowGuidance::Plain { row: 0 }, -1.0)]),
    ];
    for (i, (host, jobs)) in cases.iter().enumerate() {
        let logits = gpu.upload_logits(host).unwrap();
        let want = reference.backend::<f32>().process(host, jobs);
        let got = gpu.process(&logits, jobs);
        match (&want, &got) {
            (Ok(()), Ok(())) => compare_tables::<_, f32>(&mut gpu, &reference, 2, "errors"),
            (Err(w), Err(argen_cuda::Error::Core(g))) => assert_eq!(w, g, "case {i}"),
            _ => panic!("case {i}: reference {want:?}, device {got:?}"),
        }
    }
}

pub fn job(rows: RowGuidance, temperature: f32) -> ProcessJob {
    ProcessJob {
        rows,
        params: SamplerParams {
            temperature,
            ..SamplerParams::default()
        },
        out: 0,
    }
}

pub fn exp_and_rng_known_answers<X: Executor>(dev: &X) {
    let mut gpu = GpuBackend::new(dev, 8, 1, 1).unwrap();
    let mut xs: Vec<f32> = (0..20000).map(|i| -110.0 + i as f32 * 0.01).collect();
    xs.extend([
        0.0,
        -0.0,
        88.72283,
        88.72284,
        -103.97208,
        -103.97209,
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NAN,
        -87.33655,
        -126.0 * std::f32::consts::LN_2,
    ]);
    let mut rng = Rng(5);
    for _ in 0..5000 {
        xs.push(f32::from_bits(rng.next() as u32));
    }
    let mut got = vec![0f32; xs.len()];
    gpu.exp_f32(&xs, &mut got).unwrap();
    for (x, g) in xs.iter().zip(&got) {
        let w = argen_core::detmath::exp_f32(*x);
        assert!(
            w.to_bits() == g.to_bits() || (w.is_nan() && g.is_nan()),
            "exp({x}) = {w} reference, {g} device"
        );
    }
    let keys: Vec<Key> = (0..64)
        .map(|i| Key {
            seed: rng.next(),
            stream: rng.next() as u32,
            purpose: Purpose(1 + (i % 7)),
            position: rng.next() as u32,
            token: rng.below(1 << 24) as u32,
        })
        .collect();
    let n = 40;
    let mut words = vec![0u64; keys.len() * n];
    gpu.rng_words(&keys, n, &mut words).unwrap();
    for (k, w) in keys.iter().zip(words.chunks_exact(n)) {
        let mut s = KeyedStream::new(*k);
        for &x in w {
            assert_eq!(s.next_word().unwrap(), x, "{k:?}");
        }
    }
    let ns: Vec<u128> = (0..keys.len())
        .map(|i| match i % 6 {
            0 => 1,
            1 => 7,
            2 => (rng.next() as u128) | 1,
            3 => ((rng.next() as u128) << 64) | rng.next() as u128,
            4 => (1u128 << 64) + 5,
            _ => u128::MAX,
        })
        .collect();
    let mut got = vec![0u128; ns.len()];
    gpu.rng_below(&keys, &ns, &mut got).unwrap();
    for ((k, n), g) in keys.iter().zip(&ns).zip(&got) {
        assert_eq!(KeyedStream::new(*k).below(*n).unwrap(), *g, "below({n})");
    }
}

/// Random draft trees under every criterion, point-mass and sampled drafts.
pub fn verify_tree_all_criteria<X: Executor>(dev: &X) {
    let v = 64;
    let dim = 4;
    let mut rng = Rng(0xbeef);
    let codebook: Vec<f32> = (0..v * dim).map(|_| rng.unit() * 0.6).collect();
    let table = build_table(&codebook, dim, 20).unwrap();
    let neighbours = NeighbourTable::new(&table, v, 20).unwrap();
    let max_nodes = 12;
    let rows = 2 * (max_nodes + 1) + 1;
    let mut gpu = GpuBackend::new(dev, v, rows, 8).unwrap();
    let mut reference = Reference::new(v, rows);
    let mut outcomes = [0usize; 3];
    let cases = std::env::var("ARGEN_TREE_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(25);
    for case in 0..cases {
        // Target rows 0..=n, draft rows n+1..=2n+1, from peaked random logits.
        let n = 1 + rng.below(max_nodes as u64) as usize;
        let host = random_logits(&mut rng, v, 2 * (n + 1), true);
        let logits = gpu.upload_logits(&host).unwrap();
        let temp = [1.0, 0.7, 2.0][rng.below(3) as usize];
        let jobs: Vec<ProcessJob> = (0..2 * (n + 1))
            .map(|r| ProcessJob {
                rows: RowGuidance::Plain { row: r as u32 },
                params: SamplerParams {
                    temperature: temp,
                    top_k: if rng.below(3) == 0 { Some(8) } else { None },
                    ..SamplerParams::default()
                },
                out: r as u32,
            })
            .collect();
        reference.backend::<f32>().process(&host, &jobs).unwrap();
        gpu.process(&logits, &jobs).unwrap();
        // The tree: drafted tokens mostly from the target's likely tokens.
        let mut tokens = Vec::with_capacity(n);
        let mut parents = Vec::with_capacity(n);
        for i in 0..n {
            let p = if i == 0 || rng.below(3) == 0 {
                ROOT
            } else {
                rng.below(i as u64) as u32
            };
            parents.push(p);
            let slot = if p == ROOT { 0 } else { p as usize + 1 };
            let mut top = [0u32; 4];
            let mut probs = [0f64; 4];
            reference
                .backend::<f32>()
                .top_k(slot as u32, &mut top, &mut probs)
                .unwrap();
            tokens.push(if rng.below(4) == 0 {
                rng.below(v as u64) as u32
            } else {
                top[rng.below(4) as usize]
            });
        }
        let sampled = rng.below(2) == 0;
        let criterion = match case % 5 {
            0 => Criterion::Exact,
            1 => Criterion::Coupled,
            2 => Criterion::Lantern(LanternParams {
                neighbours,
                k: 1 + rng.below(20) as usize,
                delta: [0.1, 0.3, 0.0, 1.0][rng.below(4) as usize],
                lambda: if rng.below(2) == 0 { None } else { Some(2.0) },
            }),
            3 => Criterion::Grouped(GroupedParams {
                embedding: &codebook,
                dim,
                window: [7, 1, 16][rng.below(3) as usize],
                prob_tol: [0.15, 0.5][rng.below(2) as usize],
                dist_tol: [0.5, 0.05][rng.below(2) as usize],
            }),
            _ => Criterion::Lantern(LanternParams {
                neighbours,
                k: 30, // invalid: larger than the table's k
                delta: 0.2,
                lambda: None,
            }),
        };
        let tree = DraftTree {
            tokens: &tokens,
            parents: &parents,
        };
        let job = TreeJob {
            tree,
            target_base: 0,
            draft_base: if sampled { Some(n as u32 + 1) } else { None },
            keys: NodeKeys {
                seed: rng.next(),
                stream: rng.below(3) as u32,
                position: rng.below(1000) as u32,
            },
        };
        let cap = if rng.below(8) == 0 { 1 } else { n };
        let mut wpath = vec![0u32; cap];
        let mut gpath = vec![0u32; cap];
        let want = reference
            .backend::<f32>()
            .verify_tree(&job, &criterion, &mut wpath);
        let got = gpu.verify_tree(&job, &criterion, &mut gpath);
        match (&want, &got) {
            (Ok(w), Ok(g)) => {
                assert_eq!(w, g, "case {case} ({})", criterion.name());
                assert_eq!(wpath[..w.accepted], gpath[..g.accepted], "case {case} path");
                outcomes[(w.accepted > 0) as usize] += 1;
                let mut scratch = vec![0u64; v];
                gpu.read_scratch_row(&mut scratch).unwrap();
                assert_eq!(
                    scratch,
                    reference.weights[rows * v..(rows + 1) * v],
                    "case {case}: residual row"
                );
            }
            (Err(w), Err(argen_cuda::Error::Core(g))) => {
                assert_eq!(w, g, "case {case}");
                outcomes[2] += 1;
            }
            _ => panic!(
                "case {case} ({}): reference {want:?}, device {got:?}",
                criterion.name()
            ),
        }
    }
    // The cases exercise rejections at the root, accepted paths and error paths.
    assert!(
        outcomes.iter().all(|&c| c * 20 > cases),
        "outcomes {outcomes:?}"
    );
}

/// Device-side synthetic rows (uniform, one-hot) over rows holding other data; neighbouring
/// rows must stay untouched, and errors come in the reference's order.
pub fn fill_dist_rows<X: Executor>(dev: &X) {
    use argen_core::dist::Fill;
    let mut rng = Rng(0xf111);
    for v in [1usize, 2, 255, 256, 257, 4099] {
        let rows = 3;
        let mut gpu = GpuBackend::new(dev, v, rows, 1).unwrap();
        let mut reference = Reference::new(v, rows);
        for r in 0..rows {
            let row: Vec<u64> = (0..v).map(|_| rng.next() >> 8).collect();
            let total = rng.next();
            gpu.write_row(r as u32, &row, total).unwrap();
            reference.weights[r * v..(r + 1) * v].copy_from_slice(&row);
            reference.totals[r] = total;
        }
        let fills = [
            (1, Fill::Uniform),
            (0, Fill::OneHot(v as u32 - 1)),
            (2, Fill::OneHot(0)),
            (2, Fill::OneHot(v as u32)),
            (3, Fill::Uniform),
            (1, Fill::OneHot((v / 2) as u32)),
        ];
        for (row, fill) in fills {
            let want = reference.backend::<f32>().fill_dist(row, fill);
            let got = gpu.fill_dist(row, fill);
            match (&want, &got) {
                (Ok(()), Ok(())) => compare_tables::<_, f32>(&mut gpu, &reference, rows, "fill"),
                (Err(w), Err(argen_cuda::Error::Core(g))) => assert_eq!(w, g, "{fill:?}"),
                _ => panic!("fill {fill:?} row {row}: reference {want:?}, device {got:?}"),
            }
        }
    }
}
