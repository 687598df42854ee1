//! Decode benchmark on a GPT-B-shaped model with random weights (see docs/runtime-performance.md).
//!
//! `cargo bench -p argen-cpu --bench decode -- [threads] [f32|bf16|f16 …] [steps[=N]]` prints a
//! markdown table: per-step decode latency at batch 2 (CFG) for the chosen weight dtypes
//! (default: all three) against the floor weight-bytes ÷ read bandwidth, the bandwidth probed
//! just before each dtype's steps (the load on a shared machine drifts), and the verification
//! cost curve (1 … 64 query tokens per CFG row; `steps` skips it, `steps=N` times N decode steps
//! instead of 20). It also writes the f32 checkpoint to `$TMPDIR/argen-bench/gpt-b.safetensors`
//! for `tools/bench_torch.py`.
//!
//! Every time is given twice: wall clock (median or best, as labelled) and on-CPU time (process
//! CPU time of all threads ÷ threads, mean over the samples). On a shared machine the wall clock
//! includes the time other processes held our cores; the on-CPU time does not (it still includes
//! their pressure on caches and memory bandwidth). With more than one thread the on-CPU time also
//! counts the helper threads' brief spinning between parallel sections, so it is most faithful
//! with `-- 1`.

use argen_cpu::gemm::WRef;
use argen_cpu::{Cpu, Gpt};
use argen_model::safetensors::SafeTensors;
use argen_model::{Capacity, ClassPrefill, GptConfig, ModelType, Pos, Step};
use rayon::prelude::*;
use std::time::Instant;

mod common;

use common::{checkpoint, Dt};

/// Process CPU time of all threads, in seconds.
fn cpu_time() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Read bandwidth in bytes/s over the 256 MiB `buf`, the faster of two probes: (best wall clock
/// of 5, on-CPU mean of 5).
fn bandwidth(threads: usize, buf: &[u64]) -> (f64, f64) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut best = 0f64;
    let mut cpu = 0f64;
    for _ in 0..5 {
        let c = cpu_time();
        let t = Instant::now();
        let s: u64 = pool.install(|| {
            buf.par_chunks(1 << 15)
                .map(|c| {
                    // Integer sums vectorise without AVX flags (the bench is built for baseline
                    // x86-64) and are bandwidth-bound. Four interleaved streams (quarters of
                    // the chunk, 4 KiB at a time): one stream alone reads slower.
                    let q = c.len() / 4;
                    let mut acc = 0u64;
                    for b in (0..q).step_by(512) {
                        for st in 0..4 {
                            let e = (b + 512).min(q);
                            acc = c[st * q + b..st * q + e]
                                .iter()
                                .fold(acc, |a, &x| a.wrapping_add(x));
                        }
                    }
                    acc
                })
                .reduce(|| 0, u64::wrapping_add)
        });
        let dt = t.elapsed().as_secs_f64();
        cpu += (cpu_time() - c) / threads as f64;
        std::hint::black_box(s);
        best = best.max((buf.len() * 8) as f64 / dt);
    }
    // Second probe: a one-row f32 GEMV over the same 256 MiB, read as a [65536, 1024] weight
    // (the least compute per byte our kernel does, with its software prefetch). The floor uses
    // the faster of the two probes, so it is never flattered by a slow probe.
    let workers = argen_cpu::par::Workers::new(threads).unwrap();
    let w: &[f32] = bytemuck_f32(buf);
    let (n, k) = (w.len() / 1024, 1024);
    let x = vec![1f32; k];
    let mut out = vec![0f32; n];
    let mut best_g = 0f64;
    let mut cpu_g = 0f64;
    for _ in 0..5 {
        let c = cpu_time();
        let t = Instant::now();
        argen_cpu::gemm::gemm(
            &workers,
            if threads == 1 { 1 } else { 4 * threads },
            &x,
            1,
            k,
            WRef::F32(w),
            n,
            None,
            &mut out,
        );
        let dt = t.elapsed().as_secs_f64();
        cpu_g += (cpu_time() - c) / threads as f64;
        best_g = best_g.max((n * k * 4) as f64 / dt);
    }
    drop(workers);
    let cpu_g = (n * k * 4 * 5) as f64 / cpu_g;
    let sum_bw = (buf.len() * 8 * 5) as f64 / cpu;
    println!(
        "  read-bandwidth probes: integer sum {:.1} GB/s wall / {:.1} on-CPU; f32 GEMV {:.1} GB/s \
         wall / {:.1} on-CPU",
        best / 1e9,
        sum_bw / 1e9,
        best_g / 1e9,
        cpu_g / 1e9
    );
    (best.max(best_g), sum_bw.max(cpu_g))
}

/// Views the probe buffer's bytes as f32 (any bit pattern is a valid f32).
fn bytemuck_f32(b: &[u64]) -> &[f32] {
    // SAFETY: u64 has stricter alignment than f32, the length covers the same bytes, and every
    // bit pattern is a valid f32.
    unsafe { std::slice::from_raw_parts(b.as_ptr() as *const f32, b.len() * 2) }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(2);
    let mut dts: Vec<Dt> = [Dt::F32, Dt::Bf16, Dt::F16]
        .into_iter()
        .filter(|d| args.iter().any(|a| a == d.name()))
        .collect();
    if dts.is_empty() {
        dts = vec![Dt::F32, Dt::Bf16, Dt::F16];
    }
    let with_curve = !args.iter().any(|a| a == "steps" || a.starts_with("steps="));
    // `steps=N`: N timed decode steps (after 4 warm-up steps) instead of 20; at most 188 so
    // that every position stays on the 16×16 grid.
    let timed = args
        .iter()
        .find_map(|a| a.strip_prefix("steps=")?.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 188);
    let cfg = GptConfig::preset("GPT-B", ModelType::C2i, 256).unwrap();
    println!(
        "threads: {threads}; GPT-B c2i, {} params; each dtype's floor uses read-bandwidth probes \
         run just before its decode steps (the faster probe, wall best of 5 / on-CPU mean of 5)\n",
        cfg.param_count()
    );
    let probe_buf: Vec<u64> = (0..(256usize << 20) / 8).map(|i| i as u64).collect();
    let mut rows_out = Vec::new();

    let cpu = Cpu::new(threads).unwrap();
    let cap = Capacity {
        slots: 2,
        seq: 1 + 256 + 64,
        rows: 128,
        pending: 64,
    };
    let mut curve = Vec::new();
    for &dt in &dts {
        let bytes = checkpoint(&cfg, dt);
        if dt == Dt::F32 {
            let dir = std::env::temp_dir().join("argen-bench");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("gpt-b.safetensors"), &bytes).unwrap();
        }
        let st = SafeTensors::from_bytes("<bench>", bytes).unwrap();
        let mut gpt = Gpt::from_safetensors(&cpu, &cfg, &st, cap).unwrap();
        drop(st);
        // Bytes read per decode step: every block weight, the final norm and `output`
        // (embedding rows read are negligible).
        let es = dt.bytes();
        let d = cfg.dim;
        let per_layer = cfg.qkv_dim() * d + d * d + 3 * d * cfg.ffn_hidden() + 2 * d;
        let wbytes = (cfg.n_layer * per_layer + d + cfg.vocab_size * d) * es;
        let v = cfg.vocab_size;
        let mut logits = vec![0f32; 128 * v];
        let reqs = [
            ClassPrefill {
                slot: 0,
                class: Some(207),
            },
            ClassPrefill {
                slot: 1,
                class: None,
            },
        ];
        gpt.prefill_class(&reqs, &mut logits, None).unwrap();
        println!("{}:", dt.name());
        let (bw, bw_cpu) = bandwidth(threads, &probe_buf);
        let steps_n = timed + 4;
        let mut times = Vec::new();
        let mut cpu = 0f64;
        for k in 0..steps_n {
            let p = [Pos::Grid {
                row: (k / 16) as u32,
                col: (k % 16) as u32,
            }];
            let tok = [(k * 37 % v) as u32];
            let steps = [
                Step {
                    slot: 0,
                    tokens: &tok,
                    positions: &p,
                    parents: None,
                },
                Step {
                    slot: 1,
                    tokens: &tok,
                    positions: &p,
                    parents: None,
                },
            ];
            let c = cpu_time();
            let t = Instant::now();
            gpt.forward(&steps, &mut logits, None).unwrap();
            gpt.commit(0, &[0]).unwrap();
            gpt.commit(1, &[0]).unwrap();
            times.push(t.elapsed().as_secs_f64());
            if k >= 4 {
                cpu += (cpu_time() - c) / threads as f64;
            }
        }
        let cpu = cpu / (steps_n - 4) as f64;
        times.drain(..4);
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = times[times.len() / 2];
        let floor = wbytes as f64 / bw;
        let floor_cpu = wbytes as f64 / bw_cpu;
        rows_out.push(format!(
            "| {} | {:.0} MB | {:.1} / {:.1} GB/s | {:.2} ms | {:.2} ms (median of {}) | {:.2}x \
             | {:.2} ms | {:.2} ms | {:.2}x |",
            dt.name(),
            wbytes as f64 / 1e6,
            bw / 1e9,
            bw_cpu / 1e9,
            floor * 1e3,
            med * 1e3,
            times.len(),
            med / floor,
            floor_cpu * 1e3,
            cpu * 1e3,
            cpu / floor_cpu
        ));
        if !with_curve {
            continue;
        }
        // Verification cost: n query tokens per CFG row (a chain), then rollback.
        let mut row = Vec::new();
        for n in [1usize, 2, 4, 8, 16, 32, 64] {
            let toks: Vec<u32> = (0..n).map(|i| (i * 11 % v) as u32).collect();
            let pos: Vec<Pos> = (0..n)
                .map(|i| Pos::Grid {
                    row: ((steps_n + i) / 16) as u32,
                    col: ((steps_n + i) % 16) as u32,
                })
                .collect();
            let mut best = f64::MAX;
            let mut cpu = 0f64;
            for _ in 0..3 {
                let steps = [
                    Step {
                        slot: 0,
                        tokens: &toks,
                        positions: &pos,
                        parents: None,
                    },
                    Step {
                        slot: 1,
                        tokens: &toks,
                        positions: &pos,
                        parents: None,
                    },
                ];
                let c = cpu_time();
                let t = Instant::now();
                gpt.forward(&steps, &mut logits, None).unwrap();
                best = best.min(t.elapsed().as_secs_f64());
                cpu += (cpu_time() - c) / threads as f64 / 3.0;
                gpt.rollback(0).unwrap();
                gpt.rollback(1).unwrap();
            }
            row.push((n, best, cpu));
        }
        curve.push((dt, row));
    }
    println!(
        "\n| weights | weight bytes | bandwidth wall / on-CPU | floor (bytes/bw) \
         | decode step, batch 2 (CFG) | ratio | on-CPU floor | on-CPU step | on-CPU ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows_out {
        println!("{r}");
    }
    if curve.is_empty() {
        return;
    }
    println!(
        "\nVerification cost (n query tokens on each of the 2 CFG rows; wall best of 3, \
         on-CPU mean of 3):\n"
    );
    let mut head = String::from("| n |");
    for (dt, _) in &curve {
        head += &format!(" {} wall |", dt.name());
    }
    for (dt, _) in &curve {
        head += &format!(" {} on-CPU |", dt.name());
    }
    println!("{head}\n|---|{}", "---|".repeat(2 * curve.len()));
    for i in 0..curve[0].1.len() {
        let mut line = format!("| {} |", curve[0].1[i].0);
        for (_, row) in &curve {
            line += &format!(" {:.2} ms |", row[i].1 * 1e3);
        }
        for (_, row) in &curve {
            line += &format!(" {:.2} ms |", row[i].2 * 1e3);
        }
        println!("{line}");
    }
}
