//! The logit pipeline with each row-kernel variant: on-CPU time of argen-core's bench workload
//! (two-way CFG, scale 4 → temperature 1 → truncation → keyed sample over 32 rows of 16384
//! logits; `argen-core/benches/pipeline.rs`) through `process_tracked_with` and every
//! [`argen_cpu::RowSimd`] this CPU runs, next to the read bandwidth probed in the same run.
//! Each row is processed into one reused weight row with its `SupportList` and drawn from
//! there, as `SliceBackend` (with the lists of `SliceStorage`) does for a distribution row
//! rewritten every step.
//!
//! Run: `cargo bench -p argen-cpu --bench pipeline` (add `-- quick` for 3 repeats instead
//! of 7; any other argument keeps only the variants and workloads whose name contains it, e.g.
//! `-- avx512 "k1000 p0.9"`). Each number is the best of the repeats of on-CPU time (`CLOCK_THREAD_CPUTIME_ID`),
//! so time the core spent on other processes is left out; the probe is the faster of a
//! one-stream and a four-stream 256 MiB `u64` sum (in huge pages where Linux allows, as the
//! model's weights), measured the same way.

use argen_core::{
    process_tracked_with, sample_with, Guided, Key, Logit, LogitRow, Purpose, RowKernels,
    SupportList,
};
use argen_core::{SamplerParams, Workspace};
use argen_cpu::{RowSimd, Variant};
use half::{bf16, f16};
use std::hint::black_box;

const V: usize = 16384;
const BATCH: usize = 32;

/// SplitMix64 (the same inputs as argen-core's bench).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn logit(&mut self) -> f32 {
        let s: f64 = (0..4)
            .map(|_| (self.next() >> 11) as f64 / (1u64 << 53) as f64)
            .sum();
        ((s - 2.0) * 5.0) as f32
    }
}

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

/// Best of `repeats` repeats of the on-CPU seconds per call (each repeat ≥ 0.2 s).
fn best_cpu(repeats: usize, mut f: impl FnMut() -> u64) -> f64 {
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
    (0..repeats)
        .map(|_| {
            let t = thread_cpu();
            for _ in 0..calls {
                black_box(f());
            }
            (thread_cpu() - t) / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// The workspace, the weight row and its support list (`SliceBackend`'s per-row state).
type Ws = (Vec<f32>, Vec<u32>, Vec<u64>, SupportList);

fn run<L: Logit>(
    k: &dyn RowKernels,
    cond: &[L],
    uncond: &[L],
    v: usize,
    params: &SamplerParams,
    ws: &mut Ws,
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
        let p = process_tracked_with(k, &g, params, &mut w, &mut ws.2, &mut ws.3).unwrap();
        let d = ws.3.dist(&ws.2[..v], p.total).unwrap();
        acc += sample_with(k, &d, Key::new(1, r as u32, Purpose::SAMPLE, 7)).unwrap() as u64;
    }
    acc
}

/// `-- parts`: the head workload's stages, cumulatively (µs per row).
fn parts(
    k: &dyn RowKernels,
    cond: &[f32],
    uncond: &[f32],
    params: &SamplerParams,
    ws: &mut Ws,
    repeats: usize,
) {
    let rows = || cond.chunks_exact(V).zip(uncond.chunks_exact(V));
    let us = |s: f64| s * 1e6 / BATCH as f64;
    let (y, o) = (&mut ws.0, &mut ws.1);
    let clean = best_cpu(repeats, || {
        rows()
            .map(|(c, u)| {
                let m = k.scale_two_way(LogitRow::F32(c), LogitRow::F32(u), 4.0, 1.0, &mut y[..V]);
                m.unwrap_or(0.0) as u64
            })
            .sum()
    });
    let scan = best_cpu(repeats, || {
        rows()
            .map(|(c, u)| {
                let m = k
                    .scale_two_way(LogitRow::F32(c), LogitRow::F32(u), 4.0, 1.0, &mut y[..V])
                    .unwrap();
                k.candidates(&y[..V], m, o) as u64
            })
            .sum()
    });
    let (y, o, w, list) = (&mut ws.0, &mut ws.1, &mut ws.2, &mut ws.3);
    let process = best_cpu(repeats, || {
        rows()
            .map(|(c, u)| {
                let g = Guided::TwoWay {
                    cond: c,
                    uncond: u,
                    scale: 4.0,
                };
                let mut wsp = Workspace {
                    logits: y,
                    order: o,
                };
                process_tracked_with(k, &g, params, &mut wsp, w, list)
                    .unwrap()
                    .total
            })
            .fold(0, u64::wrapping_add)
    });
    let all = best_cpu(repeats, || run(k, cond, uncond, V, params, ws));
    println!(
        "{:<8} parts (us/row): clean {:.2}, clean+scan {:.2}, process {:.2}, +sample {:.2}",
        k.name(),
        us(clean),
        us(scan),
        us(process),
        us(all)
    );
}

fn main() {
    let repeats = if std::env::args().any(|a| a == "quick") {
        3
    } else {
        7
    };
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "quick" && !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filters.iter().all(|f| name.contains(f.as_str()));
    const N: usize = 256 << 20 >> 3;
    // In huge pages, like the model's weights and the decode bench's probes
    // (`argen_cpu::hugemem`): the faster the probe, the harder the percentage.
    let src = argen_cpu::hugemem::Buf::from_fn(N, |i| i as u64);
    let gib = |bytes: usize, s: f64| bytes as f64 / s / (1u64 << 30) as f64;
    let sum1 = gib(
        N * 8,
        best_cpu(repeats, || {
            black_box(&src[..])
                .iter()
                .fold(0u64, |a, &x| a.wrapping_add(x))
        }),
    );
    let sum4 = gib(
        N * 8,
        best_cpu(repeats, || {
            let q = N / 4;
            let s = black_box(&src[..]);
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
    println!("on-CPU, best of {repeats}: memory/sum {sum1:.2} GiB/s, memory/sum4 {sum4:.2} GiB/s");

    let mut rng = Rng(1);
    let cond: Vec<f32> = (0..BATCH * V).map(|_| rng.logit()).collect();
    let uncond: Vec<f32> = (0..BATCH * V).map(|_| rng.logit()).collect();
    let cond16: Vec<bf16> = cond.iter().map(|&x| bf16::from_f32(x)).collect();
    let uncond16: Vec<bf16> = uncond.iter().map(|&x| bf16::from_f32(x)).collect();
    let condh: Vec<f16> = cond.iter().map(|&x| f16::from_f32(x)).collect();
    let uncondh: Vec<f16> = uncond.iter().map(|&x| f16::from_f32(x)).collect();
    let mut ws = (
        vec![0.0f32; V],
        vec![0u32; V],
        vec![0u64; V],
        SupportList::new(),
    );
    let p = |k: Option<u32>, p: Option<f32>| SamplerParams {
        temperature: 1.0,
        top_k: k,
        top_p: p,
        min_p: None,
    };
    let head = p(Some(1000), Some(0.9));
    let workloads = [
        ("f32 k1000 p0.9", head),
        ("f32 p0.9", p(None, Some(0.9))),
        ("f32 k1000", p(Some(1000), None)),
        ("f32 plain", p(None, None)),
    ];
    let b4 = 2 * BATCH * V * 4;
    let b2 = 2 * BATCH * V * 2;
    for variant in Variant::ALL {
        let k = match RowSimd::new(variant) {
            Ok(k) => k,
            Err(why) => {
                println!("SKIPPED {}: {why}", variant.name());
                continue;
            }
        };
        if variant == Variant::Neon {
            continue; // runs the portable passes: the portable row below
        }
        let report = |name: &str, rows: usize, bytes: usize, s: f64| {
            let t = gib(bytes, s);
            println!(
                "{:<8} {name:<22} {:7.3} ms/batch {:7.2} us/row {:6.2} GiB/s = {:5.1} % of the probe",
                variant.name(),
                s * 1e3,
                s * 1e6 / rows as f64,
                t,
                100.0 * t / probe
            );
        };
        let on = |name: &str| wanted(&format!("{} {name}", variant.name()));
        if std::env::args().any(|a| a == "parts") {
            parts(&k, &cond, &uncond, &head, &mut ws, repeats);
            continue;
        }
        for (name, params) in &workloads {
            if on(name) {
                let s = best_cpu(repeats, || run(&k, &cond, &uncond, V, params, &mut ws));
                report(name, BATCH, b4, s);
            }
        }
        if on("bf16 k1000 p0.9") {
            let s = best_cpu(repeats, || run(&k, &cond16, &uncond16, V, &head, &mut ws));
            report("bf16 k1000 p0.9", BATCH, b2, s);
        }
        if on("f16 k1000 p0.9") {
            let s = best_cpu(repeats, || run(&k, &condh, &uncondh, V, &head, &mut ws));
            report("f16 k1000 p0.9", BATCH, b2, s);
        }
        if on("f32 k50 p0.9 V=512") {
            let small = p(Some(50), Some(0.9));
            let s = best_cpu(repeats, || run(&k, &cond, &uncond, 512, &small, &mut ws));
            report("f32 k50 p0.9 V=512", BATCH * V / 512, b4, s);
        }
    }
}
