//! Throughput of the CPU reference path, set against the machine's memory bandwidth.
//!
//! * `pipeline/{f32,bf16}`: two-way CFG (scale 4) → temperature 1 → top-k 1000 → top-p 0.9 →
//!   keyed sample, over a batch of 32 rows of 16384 logits (LlamaGen's vocabulary). Throughput is
//!   the bytes of logits read (cond + uncond); rows/s = bytes/s ÷ (2 · 16384 · element size).
//! * `accept/exact_chain`: `verify_siblings` with the Exact criterion on one sampled sibling per
//!   position, 16 positions of a chain (each includes restoring the target row, 128 KiB).
//! * `accept/lantern_tree`: LANTERN point-mass test of 10 siblings (an EAGLE-2 top-10 node) with
//!   k = 1000 neighbours from a random 16384 × 8 codebook, δ = 0.2.
//! * `memory/{sum,copy}`: a 256 MiB `u64` sum and a 256 MiB `memcpy`, the bandwidth reference.
//!
//! Run: `cargo bench -p argen-core --bench pipeline` (add `-- --quick` for a faster pass).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use argen_core::accept::neighbours::build_table;
use argen_core::accept::{LanternParams, NeighbourTable};
use argen_core::{
    process, sample, verify_siblings, Criterion as Rule, Dist, Draft, Guided, Key, Logit, NodeKeys,
    Purpose, SamplerParams, Workspace,
};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::bf16;
use std::time::Duration;

const V: usize = 16384;
const BATCH: usize = 32;

/// SplitMix64 for bench inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Roughly normal, scale 3 (logits of a trained model span a few nats).
    fn logit(&mut self) -> f32 {
        let s: f64 = (0..4)
            .map(|_| (self.next() >> 11) as f64 / (1u64 << 53) as f64)
            .sum();
        ((s - 2.0) * 5.0) as f32
    }
}

fn rows(rng: &mut Rng) -> Vec<f32> {
    (0..BATCH * V).map(|_| rng.logit()).collect()
}

fn run_pipeline<L: Logit>(
    cond: &[L],
    uncond: &[L],
    ws: &mut (Vec<f32>, Vec<u32>, Vec<u64>),
) -> u64 {
    let params = SamplerParams {
        temperature: 1.0,
        top_k: Some(1000),
        top_p: Some(0.9),
        min_p: None,
    };
    let mut acc = 0u64;
    for (r, (c, u)) in cond.chunks_exact(V).zip(uncond.chunks_exact(V)).enumerate() {
        let g = Guided::TwoWay {
            cond: c,
            uncond: u,
            scale: 4.0,
        };
        let mut w = Workspace {
            logits: &mut ws.0,
            order: &mut ws.1,
        };
        let p = process(&g, &params, &mut w, &mut ws.2).unwrap();
        let d = Dist::with_total(&ws.2, p.total).unwrap();
        acc += sample(&d, Key::new(1, r as u32, Purpose::SAMPLE, 7)).unwrap() as u64;
    }
    acc
}

fn pipeline(c: &mut Criterion) {
    let mut rng = Rng(1);
    let cond = rows(&mut rng);
    let uncond = rows(&mut rng);
    let cond16: Vec<bf16> = cond.iter().map(|&x| bf16::from_f32(x)).collect();
    let uncond16: Vec<bf16> = uncond.iter().map(|&x| bf16::from_f32(x)).collect();
    let mut ws = (vec![0.0f32; V], vec![0u32; V], vec![0u64; V]);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes((2 * BATCH * V * 4) as u64));
    g.bench_function(BenchmarkId::new("f32", format!("{BATCH}x{V}")), |b| {
        b.iter(|| run_pipeline(black_box(&cond), black_box(&uncond), &mut ws))
    });
    g.throughput(Throughput::Bytes((2 * BATCH * V * 2) as u64));
    g.bench_function(BenchmarkId::new("bf16", format!("{BATCH}x{V}")), |b| {
        b.iter(|| run_pipeline(black_box(&cond16), black_box(&uncond16), &mut ws))
    });
    g.finish();
}

fn processed(logits: &[f32]) -> (Vec<u64>, u64) {
    let (mut y, mut o, mut w) = (vec![0.0; V], vec![0; V], vec![0; V]);
    let mut ws = Workspace {
        logits: &mut y,
        order: &mut o,
    };
    let params = SamplerParams {
        top_k: Some(1000),
        ..SamplerParams::default()
    };
    let p = process(&Guided::Plain(logits), &params, &mut ws, &mut w).unwrap();
    (w, p.total)
}

fn accept(c: &mut Criterion) {
    const CHAIN: usize = 16;
    let mut rng = Rng(2);
    // Target rows and drafts that are noisy copies of them.
    let targets: Vec<(Vec<u64>, u64)> = (0..CHAIN)
        .map(|_| processed(&(0..V).map(|_| rng.logit()).collect::<Vec<_>>()))
        .collect();
    let drafts: Vec<(Vec<u64>, u64)> = targets
        .iter()
        .map(|(w, _)| {
            let l: Vec<f32> = w
                .iter()
                .map(|&x| {
                    if x == 0 {
                        -1e4
                    } else {
                        (x as f32).ln() + rng.logit() * 0.1
                    }
                })
                .collect();
            processed(&l)
        })
        .collect();
    let mut scratch = vec![0u64; V];
    let mut g = c.benchmark_group("accept");
    g.throughput(Throughput::Elements(CHAIN as u64));
    g.bench_function("exact_chain/16x1_sampled", |b| {
        b.iter(|| {
            let mut accepted = 0usize;
            for (pos, ((p, zp), (q, zq))) in targets.iter().zip(&drafts).enumerate() {
                let dq = Dist::with_total(q, *zq).unwrap();
                let keys = NodeKeys {
                    seed: 3,
                    stream: 0,
                    position: pos as u32,
                };
                let x = sample(&dq, keys.key(Purpose::DRAFT, 0)).unwrap();
                scratch.copy_from_slice(p);
                let out = verify_siblings(
                    &Rule::Exact,
                    &mut scratch,
                    *zp,
                    Draft::Sampled(dq),
                    &[x],
                    keys,
                );
                accepted += matches!(out, Ok(argen_core::Outcome::Accepted { .. })) as usize;
            }
            accepted
        })
    });

    let codebook: Vec<f32> = (0..V * 8).map(|_| rng.logit()).collect();
    let t0 = std::time::Instant::now();
    let ids = build_table(&codebook, 8, 1000).unwrap();
    eprintln!(
        "build_table 16384x8, k=1000: {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let table = NeighbourTable::new(&ids, V, 1000).unwrap();
    let rule = Rule::Lantern(LanternParams {
        neighbours: table,
        k: 1000,
        delta: 0.2,
        lambda: None,
    });
    let (p, zp) = &targets[0];
    let mut order: Vec<u32> = (0..V as u32).collect();
    order.sort_by_key(|&t| std::cmp::Reverse(p[t as usize]));
    let siblings: Vec<u32> = order[..10].to_vec();
    g.throughput(Throughput::Elements(1));
    g.bench_function("lantern_tree/10_siblings_k1000", |b| {
        let mut pos = 0u32;
        b.iter(|| {
            pos = pos.wrapping_add(1);
            scratch.copy_from_slice(p);
            let keys = NodeKeys {
                seed: 4,
                stream: 0,
                position: pos,
            };
            verify_siblings(&rule, &mut scratch, *zp, Draft::PointMass, &siblings, keys).unwrap()
        })
    });
    g.finish();
}

fn memory(c: &mut Criterion) {
    const N: usize = 256 << 20 >> 3; // 256 MiB of u64
    let src: Vec<u64> = (0..N as u64).collect();
    let mut dst = vec![0u64; N];
    let mut g = c.benchmark_group("memory");
    g.throughput(Throughput::Bytes((N * 8) as u64));
    g.bench_function("sum_256MiB", |b| {
        b.iter(|| black_box(&src).iter().fold(0u64, |a, &x| a.wrapping_add(x)))
    });
    g.bench_function("copy_256MiB", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&src)))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = pipeline, accept, memory }
criterion_main!(benches);
