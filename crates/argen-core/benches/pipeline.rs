//! Throughput of the CPU reference path, set against the machine's memory bandwidth.
//!
//! * `pipeline/{f32,bf16}`: two-way CFG (scale 4) → temperature 1 → top-k 1000 → top-p 0.9 →
//!   keyed sample, over a batch of 32 rows of 16384 logits (LlamaGen's vocabulary). Throughput is
//!   the bytes of logits read (cond + uncond); rows/s = bytes/s ÷ (2 · 16384 · element size).
//!   Also f16 rows, f32 rows with top-p only / top-k only / no truncation, and f32 rows of 512
//!   logits (ShapesWorld's vocabulary, 1024 rows: the same bytes).
//! * `accept/exact_chain`: `verify_siblings` with the Exact criterion on one sampled sibling per
//!   position, 16 positions of a chain (each includes restoring the target row, 128 KiB).
//! * `accept/lantern_tree`: LANTERN point-mass test of 10 siblings (an EAGLE-2 top-10 node) with
//!   k = 1000 neighbours from a random 16384 × 8 codebook, δ = 0.2.
//! * `memory/{sum,sum4,copy}`: a 256 MiB `u64` sum (one stream, and four streams), and a 256 MiB
//!   `memcpy`: the read-bandwidth reference is the faster sum.
//!
//! Run: `cargo bench -p argen-core --bench pipeline` (add `-- --quick` for a faster pass).
//!
//! On a shared machine, wall clock counts the time other processes held the core:
//! `PIPELINE_ONCPU=1 cargo bench -p argen-core --bench pipeline` instead prints, for the same
//! workloads and the two sum probes, the best of 7 repeats of **on-CPU** time
//! (`CLOCK_THREAD_CPUTIME_ID`) per batch and the throughput it implies, and the pipeline's
//! share of the faster probe.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use argen_core::accept::neighbours::build_table;
use argen_core::accept::{LanternParams, NeighbourTable};
use argen_core::{
    process, sample, verify_siblings, Criterion as Rule, Dist, Draft, Guided, Key, Logit, NodeKeys,
    Purpose, SamplerParams, Workspace,
};
use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use half::{bf16, f16};
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

/// The bench's sampling parameters: top-k 1000 → top-p 0.9 (the doc's workload), top-p only,
/// top-k only, and no truncation.
const WORKLOADS: [(&str, SamplerParams); 4] = [
    (
        "k1000_p0.9",
        SamplerParams {
            temperature: 1.0,
            top_k: Some(1000),
            top_p: Some(0.9),
            min_p: None,
        },
    ),
    (
        "p0.9",
        SamplerParams {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.9),
            min_p: None,
        },
    ),
    (
        "k1000",
        SamplerParams {
            temperature: 1.0,
            top_k: Some(1000),
            top_p: None,
            min_p: None,
        },
    ),
    (
        "plain",
        SamplerParams {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            min_p: None,
        },
    ),
];

fn run_pipeline<L: Logit>(
    cond: &[L],
    uncond: &[L],
    v: usize,
    params: &SamplerParams,
    ws: &mut (Vec<f32>, Vec<u32>, Vec<u64>),
) -> u64 {
    let mut acc = 0u64;
    for (r, (c, u)) in cond.chunks_exact(v).zip(uncond.chunks_exact(v)).enumerate() {
        let g = Guided::TwoWay {
            cond: c,
            uncond: u,
            scale: 4.0,
        };
        let mut w = Workspace {
            logits: &mut ws.0,
            order: &mut ws.1,
        };
        let p = process(&g, params, &mut w, &mut ws.2).unwrap();
        let d = Dist::with_total(&ws.2[..v], p.total).unwrap();
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
    let condh: Vec<f16> = cond.iter().map(|&x| f16::from_f32(x)).collect();
    let uncondh: Vec<f16> = uncond.iter().map(|&x| f16::from_f32(x)).collect();
    let mut ws = (vec![0.0f32; V], vec![0u32; V], vec![0u64; V]);
    let mut g = c.benchmark_group("pipeline");
    let head = &WORKLOADS[0].1;
    g.throughput(Throughput::Bytes((2 * BATCH * V * 4) as u64));
    g.bench_function(BenchmarkId::new("f32", format!("{BATCH}x{V}")), |b| {
        b.iter(|| run_pipeline(black_box(&cond), black_box(&uncond), V, head, &mut ws))
    });
    g.throughput(Throughput::Bytes((2 * BATCH * V * 2) as u64));
    g.bench_function(BenchmarkId::new("bf16", format!("{BATCH}x{V}")), |b| {
        b.iter(|| run_pipeline(black_box(&cond16), black_box(&uncond16), V, head, &mut ws))
    });
    g.bench_function(BenchmarkId::new("f16", format!("{BATCH}x{V}")), |b| {
        b.iter(|| run_pipeline(black_box(&condh), black_box(&uncondh), V, head, &mut ws))
    });
    // The other truncations on f32 rows, and ShapesWorld-sized rows (V = 512, 1024 rows: the
    // same bytes), where per-row fixed costs show.
    g.throughput(Throughput::Bytes((2 * BATCH * V * 4) as u64));
    for (name, params) in &WORKLOADS[1..] {
        g.bench_function(
            BenchmarkId::new(format!("f32_{name}"), format!("{BATCH}x{V}")),
            |b| b.iter(|| run_pipeline(black_box(&cond), black_box(&uncond), V, params, &mut ws)),
        );
    }
    const SMALL: usize = 512;
    let small = SamplerParams {
        top_k: Some(50),
        ..*head
    };
    g.bench_function(
        BenchmarkId::new("f32_k50_p0.9", format!("{}x{SMALL}", BATCH * V / SMALL)),
        |b| b.iter(|| run_pipeline(black_box(&cond), black_box(&uncond), SMALL, &small, &mut ws)),
    );
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

    // The neighbour table takes seconds to build: only when this bench is selected.
    let codebook: Vec<f32> = (0..V * 8).map(|_| rng.logit()).collect();
    let ids_cell = std::cell::OnceCell::new();
    let ids = |ids: &std::cell::OnceCell<Vec<u32>>| {
        ids.get_or_init(|| {
            let t0 = std::time::Instant::now();
            let ids = build_table(&codebook, 8, 1000).unwrap();
            eprintln!(
                "build_table 16384x8, k=1000: {:.2} s",
                t0.elapsed().as_secs_f64()
            );
            ids
        })
        .clone()
    };
    let (p, zp) = &targets[0];
    let mut order: Vec<u32> = (0..V as u32).collect();
    order.sort_by_key(|&t| std::cmp::Reverse(p[t as usize]));
    let siblings: Vec<u32> = order[..10].to_vec();
    g.throughput(Throughput::Elements(1));
    g.bench_function("lantern_tree/10_siblings_k1000", |b| {
        let ids = ids(&ids_cell);
        let table = NeighbourTable::new(&ids, V, 1000).unwrap();
        let rule = Rule::Lantern(LanternParams {
            neighbours: table,
            k: 1000,
            delta: 0.2,
            lambda: None,
        });
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
    // Four streams a quarter of the buffer apart, each with 8 independent lanes: more
    // requests in flight than one sequential stream (the decode bench's best probes on this
    // kind of machine are multi-stream sums and wide loads).
    g.bench_function("sum4_256MiB", |b| {
        b.iter(|| {
            let q = N / 4;
            let s = black_box(&src);
            let (a, rest) = s.split_at(q);
            let (bb, rest) = rest.split_at(q);
            let (c, d) = rest.split_at(q);
            let mut acc = [0u64; 8];
            for (((a, b), c), d) in a
                .chunks_exact(2)
                .zip(bb.chunks_exact(2))
                .zip(c.chunks_exact(2))
                .zip(d.chunks_exact(2))
            {
                for l in 0..2 {
                    acc[l] = acc[l].wrapping_add(a[l]);
                    acc[2 + l] = acc[2 + l].wrapping_add(b[l]);
                    acc[4 + l] = acc[4 + l].wrapping_add(c[l]);
                    acc[6 + l] = acc[6 + l].wrapping_add(d[l]);
                }
            }
            acc.iter().fold(0u64, |a, &x| a.wrapping_add(x))
        })
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

/// On-CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Best of 7 repeats of the on-CPU seconds per call of `f` (each repeat ≥ 0.2 s of calls).
fn best_cpu(mut f: impl FnMut() -> u64) -> f64 {
    let mut calls = 1usize;
    loop {
        let t = thread_cpu();
        for _ in 0..calls {
            black_box(f());
        }
        if thread_cpu() - t > 0.2 {
            break;
        }
        calls *= 2;
    }
    (0..7)
        .map(|_| {
            let t = thread_cpu();
            for _ in 0..calls {
                black_box(f());
            }
            (thread_cpu() - t) / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// The on-CPU table (see the module documentation).
fn on_cpu() {
    const N: usize = 256 << 20 >> 3;
    let src: Vec<u64> = (0..N as u64).collect();
    let gib = |bytes: usize, s: f64| bytes as f64 / s / (1u64 << 30) as f64;
    let sum1 = gib(
        N * 8,
        best_cpu(|| black_box(&src).iter().fold(0u64, |a, &x| a.wrapping_add(x))),
    );
    let sum4 = gib(
        N * 8,
        best_cpu(|| {
            let q = N / 4;
            let s = black_box(&src);
            let mut acc = [0u64; 8];
            for j in (0..q).step_by(2) {
                for l in 0..2 {
                    acc[l] = acc[l].wrapping_add(s[j + l]);
                    acc[2 + l] = acc[2 + l].wrapping_add(s[q + j + l]);
                    acc[4 + l] = acc[4 + l].wrapping_add(s[2 * q + j + l]);
                    acc[6 + l] = acc[6 + l].wrapping_add(s[3 * q + j + l]);
                }
            }
            acc.iter().fold(0u64, |a, &x| a.wrapping_add(x))
        }),
    );
    drop(src);
    let probe = sum1.max(sum4);
    println!("on-CPU, best of 7: memory/sum {sum1:.2} GiB/s, memory/sum4 {sum4:.2} GiB/s");
    let mut rng = Rng(1);
    let cond = rows(&mut rng);
    let uncond = rows(&mut rng);
    let cond16: Vec<bf16> = cond.iter().map(|&x| bf16::from_f32(x)).collect();
    let uncond16: Vec<bf16> = uncond.iter().map(|&x| bf16::from_f32(x)).collect();
    let condh: Vec<f16> = cond.iter().map(|&x| f16::from_f32(x)).collect();
    let uncondh: Vec<f16> = uncond.iter().map(|&x| f16::from_f32(x)).collect();
    let mut ws = (vec![0.0f32; V], vec![0u32; V], vec![0u64; V]);
    let report = |name: &str, rows: usize, bytes: usize, s: f64| {
        let t = gib(bytes, s);
        println!(
            "{name:<28} {:8.3} ms/batch {:7.2} us/row {:6.2} GiB/s = {:5.1} % of the probe",
            s * 1e3,
            s * 1e6 / rows as f64,
            t,
            100.0 * t / probe
        );
    };
    let b4 = 2 * BATCH * V * 4;
    let b2 = 2 * BATCH * V * 2;
    for (name, params) in &WORKLOADS {
        let s = best_cpu(|| run_pipeline(&cond, &uncond, V, params, &mut ws));
        report(&format!("f32_{name}"), BATCH, b4, s);
    }
    let head = &WORKLOADS[0].1;
    let s = best_cpu(|| run_pipeline(&cond16, &uncond16, V, head, &mut ws));
    report("bf16_k1000_p0.9", BATCH, b2, s);
    let s = best_cpu(|| run_pipeline(&condh, &uncondh, V, head, &mut ws));
    report("f16_k1000_p0.9", BATCH, b2, s);
    let small = SamplerParams {
        top_k: Some(50),
        ..*head
    };
    let s = best_cpu(|| run_pipeline(&cond, &uncond, 512, &small, &mut ws));
    report("f32_k50_p0.9 (V=512)", BATCH * V / 512, b4, s);
}

criterion_group! { name = benches; config = config(); targets = pipeline, accept, memory }

fn main() {
    if std::env::var_os("PIPELINE_ONCPU").is_some() {
        on_cpu();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
