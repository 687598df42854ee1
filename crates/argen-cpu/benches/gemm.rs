//! GEMM kernel micro-benchmark on GPT-B's FFN shapes (see docs/runtime-performance.md).
//!
//! `cargo bench -p argen-cpu --bench gemm -- [threads] [reps] [f32|bf16|f16 …] [rows=R,…]` times
//! `gemm` (for the chosen dtypes, default all three, and row counts, default 1 … 128; half
//! precision packed as `Cpu` stores it) for
//! `[rows, 768] × [2048, 768]ᵀ` (w1-shaped) and `[rows, 2048] × [768, 2048]ᵀ` (w2-shaped) with
//! f32, bf16 and f16 weights. Eight distinct weight matrices are cycled so that weights come
//! from DRAM as in a real forward pass (48 MiB f32 ≫ L3). Each sample is ~0.2 s of passes over
//! all 16 products; it prints the fastest (least disturbed) and the median sample, as GB/s of
//! weights and GFLOP/s. With one thread the GEMM runs on the calling thread and the time is its
//! on-CPU time (`CLOCK_THREAD_CPUTIME_ID`), which leaves out the time other processes held the
//! core; with more threads it is wall clock.
//!
//! `… -- [threads] [reps] [dtypes] model [rows=R,…]` instead times the GEMMs of one GPT-B decode
//! step in order (12 × {wqkv, wo, w1, w3, w2} + output, 111M distinct weights, 195 MB in bf16,
//! half precision packed as `Cpu` stores it) with the tasks the backend issues (1 on one thread,
//! else `4 × threads`), on process CPU time; it prints the fastest and median pass as weight
//! GB/s and GFLOP/s: the decode step (1–2 rows) or a verification step (more rows, up to 128)
//! without its non-GEMM work. There `f32` is stored as `Cpu` stores it
//! (packed where `gemm::tuning().pack_f32_max_k` allows, class-major where
//! `gemm::tuning().f32_class_major` says so), `f32r` all row-major, `f32p` all packed, `f32c`
//! all class-major; `bf16c` and `f16c` half precision class-major (`bf16` and `f16` are
//! stored as `Cpu` stores them).
//!
//! With `model`, `ab=SPEC;SPEC;…` compares kernel tunings (`ARGEN_GEMM_TUNING` syntax, each
//! over this CPU's table; `-` for the table itself) within one process: each sample runs the
//! tunings in turn, so that a change of the host's speed during the run reaches every tuning
//! alike, and each prints its own line with its median's ratio to the first's. Specs that
//! change `pack_f32_max_k` do not change the layout the weights were stored in.
//!
//! `shapes=w1` or `shapes=w2` times only that FFN shape (rates count its bytes and FLOPs only).
//! With `model`, `breakdown` adds a line per row count with each kind of matrix timed apart
//! (wall clock over the samples: wqkv, wo, w1, w3, w2, output), to find the one that is slow.
//!
//! `… -- 1 [reps] resident [rows=R,…]` times the kernels with weights resident in L1 (f32
//! `[16, 256]`, 16 KiB) and in L2 (`[64, 768]` and `[24, 2048]`, 192 KiB each, the size of a
//! column block, at GPT-B's two input widths; and `[256, 768]` and `[96, 2048]`, 768 KiB each,
//! four column blocks, over which the per-call work — the paired copy of the inputs, the
//! split into tasks — weighs a quarter as much) instead of DRAM, as GFLOP/s and % of the FMA
//! peak measured in the same run: what the micro-kernel reaches when memory is not the limit.

use argen_cpu::gemm::{
    gemm, pack, pack_bf16, pack_class_major, pack_class_major_bf16, pack_class_major_f16, WRef,
};
use argen_cpu::hugemem::Buf;
use argen_cpu::par::Workers;
use half::{bf16, f16};
use std::time::Instant;

/// On-CPU nanoseconds of the calling thread.
fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Process CPU time of all threads, in nanoseconds.
fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The GEMMs of one GPT-B decode step, in order, with distinct weights (see the module docs).
/// Half-precision weights are packed as `Cpu` stores them.
fn model(
    threads: usize,
    reps: usize,
    dts: &[&str],
    row_list: &[usize],
    breakdown: bool,
    ab: &[(String, argen_cpu::gemm::Tuning)],
) {
    let pool = Workers::new(threads).unwrap();
    let tasks = if threads == 1 { 1 } else { 4 * threads };
    let (d, f, v) = (768usize, 2048usize, 16384usize);
    let mut shapes = Vec::new();
    for _ in 0..12 {
        shapes.extend([(3 * d, d), (d, d), (f, d), (f, d), (d, f)]);
    }
    shapes.push((v, d));
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        0.04 * ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
    };
    let max_rows = row_list.iter().copied().max().unwrap_or(1);
    let x: Vec<f32> = (0..max_rows * f).map(|_| rnd()).collect();
    let mut out = vec![0f32; max_rows * v];
    println!("threads {threads} ({tasks} tasks), {reps} samples of 5 passes, process CPU time\n");
    println!(
        "| weights | rows | decode-step GEMMs: fastest / median pass | weight GB/s | GFLOP/s |"
    );
    println!("|---|---|---|---|---|");
    for &dt in dts {
        let mut w32: Vec<Buf<f32>> = Vec::new();
        let mut w32p: Vec<Buf<f32>> = Vec::new();
        let mut wb: Vec<Buf<bf16>> = Vec::new();
        let mut wh: Vec<Buf<f16>> = Vec::new();
        // Class-major f32 (`f32c`, or `f32` where this CPU's table stores it so).
        let cm = dt == "f32c" || (dt == "f32" && argen_cpu::gemm::tuning().f32_class_major);
        // Class-major half precision (`bf16c`, `f16c`, or where the table stores it so).
        let table = argen_cpu::gemm::tuning();
        let half_cm = dt.ends_with("16c")
            || (dt == "bf16" && table.bf16_class_major)
            || (dt == "f16" && table.f16_class_major);
        for &(n, k) in &shapes {
            let m: Vec<f32> = (0..n * k).map(|_| rnd()).collect();
            let as_cpu = dt == "f32" && k <= argen_cpu::gemm::tuning().pack_f32_max_k;
            match dt {
                "f32" | "f32r" if !as_cpu => w32.push(argen_cpu::hugemem::Buf::from_slice(&m)),
                "f32" | "f32p" | "f32c" if cm => w32p.push(pack_class_major(&m, n, k)),
                "f32" | "f32p" | "f32c" => w32p.push(pack(&m, n, k, 0f32)),
                "bf16" | "bf16c" => {
                    let h: Vec<bf16> = m.iter().map(|&v| bf16::from_f32(v)).collect();
                    wb.push(if half_cm {
                        pack_class_major_bf16(&h, n, k)
                    } else {
                        pack_bf16(&h, n, k)
                    });
                }
                _ => {
                    let h: Vec<f16> = m.iter().map(|&v| f16::from_f32(v)).collect();
                    wh.push(if half_cm {
                        pack_class_major_f16(&h, n, k)
                    } else {
                        pack(&h, n, k, f16::ZERO)
                    });
                }
            }
        }
        let es = if dt.starts_with("f32") { 4 } else { 2 };
        let bytes: usize = shapes.iter().map(|&(n, k)| n * k * es).sum();
        // The weights of shape `si`, in the layout built above.
        let (mut ir, mut ip) = (0, 0);
        let weights: Vec<WRef<'_>> = shapes
            .iter()
            .map(|&(_, k)| {
                let packed_f32 = dt == "f32p"
                    || dt == "f32c"
                    || (dt == "f32" && k <= argen_cpu::gemm::tuning().pack_f32_max_k);
                if dt.starts_with("f32") && !packed_f32 {
                    ir += 1;
                    return WRef::F32(&w32[ir - 1]);
                }
                ip += 1;
                match dt {
                    "f32" | "f32p" | "f32c" if cm => WRef::F32ClassMajor(&w32p[ip - 1]),
                    "f32" | "f32p" => WRef::F32Packed(&w32p[ip - 1]),
                    "bf16" | "bf16c" if half_cm => WRef::BF16ClassMajor(&wb[ip - 1]),
                    "bf16" => WRef::BF16Packed(&wb[ip - 1]),
                    _ if half_cm => WRef::F16ClassMajor(&wh[ip - 1]),
                    _ => WRef::F16Packed(&wh[ip - 1]),
                }
            })
            .collect();
        for &rows in row_list {
            let pass = |out: &mut [f32]| {
                for (&(n, k), &w) in shapes.iter().zip(&weights) {
                    gemm(&pool, tasks, &x, rows, k, w, n, None, out);
                }
            };
            let flops = 2.0 * rows as f64 * (bytes / es) as f64;
            if !ab.is_empty() {
                // Samples of 2 passes, the tunings in turn.
                let mut times = vec![Vec::with_capacity(reps); ab.len()];
                for (_, t) in ab {
                    argen_cpu::gemm::set_tuning(*t);
                    pass(&mut out);
                }
                for _ in 0..reps {
                    for ((_, t), ts) in ab.iter().zip(&mut times) {
                        argen_cpu::gemm::set_tuning(*t);
                        let c = process_cpu_ns();
                        for _ in 0..2 {
                            pass(&mut out);
                        }
                        ts.push((process_cpu_ns() - c) as f64 * 1e-9 / 2.0);
                    }
                }
                let mut first = 0.0;
                for ((spec, _), ts) in ab.iter().zip(&mut times) {
                    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
                    let (lo, med) = (ts[0], ts[ts.len() / 2]);
                    if first == 0.0 {
                        first = med;
                    }
                    println!(
                        "{} {:.3} | {spec} |",
                        row_line(dt, rows, lo, med, bytes as f64, flops),
                        med / first
                    );
                }
                continue;
            }
            pass(&mut out);
            let mut times = Vec::with_capacity(reps);
            for _ in 0..reps {
                let c = process_cpu_ns();
                for _ in 0..5 {
                    pass(&mut out);
                }
                times.push((process_cpu_ns() - c) as f64 * 1e-9 / 5.0);
            }
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let (lo, med) = (times[0], times[times.len() / 2]);
            if breakdown {
                // Wall time per matrix kind over `reps` passes (in model order).
                let names = ["wqkv", "wo", "w1", "w3", "w2", "output"];
                let mut t = [0f64; 6];
                let mut b = [0usize; 6];
                for _ in 0..reps {
                    for (si, (&(n, k), &w)) in shapes.iter().zip(&weights).enumerate() {
                        let kind = if si + 1 == shapes.len() { 5 } else { si % 5 };
                        let c = std::time::Instant::now();
                        gemm(&pool, tasks, &x, rows, k, w, n, None, &mut out);
                        t[kind] += c.elapsed().as_secs_f64();
                        b[kind] += n * k * es;
                    }
                }
                let parts: Vec<String> = (0..6)
                    .map(|i| {
                        format!(
                            "{} {:.2} ms {:.1} GB/s",
                            names[i],
                            t[i] / reps as f64 * 1e3,
                            b[i] as f64 / t[i] / 1e9
                        )
                    })
                    .collect();
                println!("  {dt} {rows} rows by matrix: {}", parts.join(", "));
            }
            println!("{}", row_line(dt, rows, lo, med, bytes as f64, flops));
        }
    }
}

/// A `model` table row: the fastest and median pass (`lo`, `med` seconds) of `bytes` of
/// weights and `flops` FLOPs.
fn row_line(dt: &str, rows: usize, lo: f64, med: f64, bytes: f64, flops: f64) -> String {
    format!(
        "| {dt} | {rows} | {:.2} / {:.2} ms | {:.1} / {:.1} | {:.1} / {:.1} |",
        lo * 1e3,
        med * 1e3,
        bytes / lo / 1e9,
        bytes / med / 1e9,
        flops / lo / 1e9,
        flops / med / 1e9
    )
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let mut args = all.iter().filter_map(|a| a.parse::<usize>().ok());
    let threads = args.next().unwrap_or(2);
    let reps = args.next().unwrap_or(5);
    // `f32p`: f32 in the packed layout (as `Cpu` stores f32 where `gemm::tuning` says so).
    let mut dts: Vec<&str> = [
        "f32", "f32r", "f32p", "f32c", "bf16", "bf16c", "f16", "f16c",
    ]
    .into_iter()
    .filter(|d| all.iter().any(|a| a == d))
    .collect();
    if dts.is_empty() {
        dts = vec!["f32", "bf16", "f16"];
    }
    let row_list: Vec<usize> = all
        .iter()
        .find_map(|a| a.strip_prefix("rows="))
        .map(|l| {
            l.split(',')
                .filter_map(|r| r.parse().ok())
                .filter(|&r| (1..=128).contains(&r))
                .collect()
        })
        .unwrap_or_else(|| vec![1, 2, 4, 8, 16, 32, 64, 128]);
    if all.iter().any(|a| a == "model") {
        let ab: Vec<(String, argen_cpu::gemm::Tuning)> = all
            .iter()
            .find_map(|a| a.strip_prefix("ab="))
            .map(|l| {
                l.split(';')
                    .map(|spec| {
                        let t = argen_cpu::gemm::compose(if spec == "-" { "" } else { spec })
                            .unwrap_or_else(|e| panic!("ab={spec}: {e}"));
                        (spec.to_string(), t)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !ab.is_empty() {
            println!("(ab: each tuning's median against the first's in the next-to-last column)");
        }
        model(
            threads,
            reps,
            &dts,
            &row_list,
            all.iter().any(|a| a == "breakdown"),
            &ab,
        );
        return;
    }
    if all.iter().any(|a| a == "resident") {
        resident(reps, &row_list);
        return;
    }
    let only = all.iter().find_map(|a| a.strip_prefix("shapes="));
    let pool = Workers::new(threads).unwrap();
    let tasks = if threads == 1 { 1 } else { 4 * threads };
    let cpu_time = threads == 1 && thread_cpu_ns().is_some();
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let (d, f) = (768usize, 2048usize);
    let mats = 8;
    let w32: Vec<Vec<f32>> = (0..mats)
        .map(|_| (0..d * f).map(|_| 0.04 * rnd()).collect())
        .collect();
    // Half precision packed as `Cpu` stores it, once per use: as [f, d] (w1) and [d, f] (w2).
    let packed = |n: usize, k: usize| {
        let wb: Vec<Buf<bf16>> = w32
            .iter()
            .map(|w| {
                let h: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
                pack_bf16(&h, n, k)
            })
            .collect();
        let wh: Vec<Buf<f16>> = w32
            .iter()
            .map(|w| {
                let h: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
                pack(&h, n, k, f16::ZERO)
            })
            .collect();
        let wf: Vec<Buf<f32>> = w32.iter().map(|w| pack(w, n, k, 0f32)).collect();
        (wb, wh, wf)
    };
    let halves = [packed(f, d), packed(d, f)];
    let max_rows = 128;
    let x: Vec<f32> = (0..max_rows * f).map(|_| rnd()).collect();
    let mut out = vec![0f32; max_rows * f];
    let (peak, peak_cpu, lanes) = argen_cpu::probe::fma_peak(&pool, 3);
    println!(
        "threads {threads}, {reps} reps, {} time; fastest / median; variant {} (override with \
         ARGEN_CPU_VARIANT); measured f32 FMA peak {:.1} GFLOP/s wall / {:.1} on-CPU \
         ({lanes}-lane FMAs); load average {}\n",
        if cpu_time { "on-CPU" } else { "wall" },
        argen_cpu::gemm::best_variant().name(),
        peak / 1e9,
        peak_cpu / 1e9,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("| weights | rows | time (8×w1 + 8×w2) | weight GB/s | GFLOP/s |");
    println!("|---|---|---|---|---|");
    for &dt in &dts {
        for &rows in &row_list {
            let pass = |out: &mut [f32]| {
                for (m, wm) in w32.iter().enumerate() {
                    for (u, (n, k)) in [(f, d), (d, f)].into_iter().enumerate() {
                        if only.is_some_and(|o| o != ["w1", "w2"][u]) {
                            continue;
                        }
                        let w = match dt {
                            "f32" | "f32r" => WRef::F32(wm),
                            "f32p" => WRef::F32Packed(&halves[u].2[m]),
                            "bf16" => WRef::BF16Packed(&halves[u].0[m]),
                            _ => WRef::F16Packed(&halves[u].1[m]),
                        };
                        gemm(&pool, tasks, &x, rows, k, w, n, None, out);
                    }
                }
            };
            // Enough passes per sample for ~0.2 s.
            let t = Instant::now();
            pass(&mut out);
            let passes = (0.2 / t.elapsed().as_secs_f64()).ceil().max(1.0) as usize;
            let mut times = Vec::with_capacity(reps);
            for _ in 0..reps + 1 {
                let t = Instant::now();
                let c = thread_cpu_ns().unwrap_or(0);
                for _ in 0..passes {
                    pass(&mut out);
                }
                let dt = if cpu_time {
                    (thread_cpu_ns().unwrap_or(0) - c) as f64 * 1e-9
                } else {
                    t.elapsed().as_secs_f64()
                };
                times.push(dt / passes as f64);
            }
            times.remove(0);
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let (lo, med) = (times[0], times[times.len() / 2]);
            let es = if dt.starts_with("f32") { 4.0 } else { 2.0 };
            let shapes = if only.is_some() { 1 } else { 2 };
            let bytes = (shapes * mats * d * f) as f64 * es;
            let flop = (shapes * mats * d * f * rows * 2) as f64;
            println!(
                "| {dt} | {rows} | {:.2} / {:.2} ms | {:.1} / {:.1} | {:.1} / {:.1} |",
                lo * 1e3,
                med * 1e3,
                bytes / lo / 1e9,
                bytes / med / 1e9,
                flop / lo / 1e9,
                flop / med / 1e9
            );
        }
    }
}

/// The kernels on cache-resident weights (see the module docs), one thread, on-CPU time.
fn resident(reps: usize, row_list: &[usize]) {
    let pool = Workers::new(1).unwrap();
    let (_, peak, lanes) = argen_cpu::probe::fma_peak(&pool, 3);
    println!(
        "1 thread, on-CPU time, best of {reps}; variant {}; measured f32 FMA peak {:.1} GFLOP/s \
         on-CPU ({lanes}-lane FMAs); load average {}\n",
        argen_cpu::gemm::best_variant().name(),
        peak / 1e9,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("| weights | where | rows | GFLOP/s | % of peak |");
    println!("|---|---|---|---|---|");
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let shapes = [
        ("L1", 16usize, 256usize),
        ("L2", 64, 768),
        ("L2", 24, 2048),
        ("L2", 256, 768),
        ("L2", 96, 2048),
    ];
    for (place, n, k) in shapes {
        let w: Vec<f32> = (0..n * k).map(|_| rnd()).collect();
        let wp = pack(&w, n, k, 0f32);
        let h: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
        let hp = pack_bf16(&h, n, k);
        let x: Vec<f32> = (0..128 * k).map(|_| rnd()).collect();
        let mut out = vec![0f32; 128 * n];
        for (name, wr) in [
            ("f32", WRef::F32(&w)),
            ("f32 packed", WRef::F32Packed(&wp)),
            ("bf16 packed", WRef::BF16Packed(&hp)),
        ] {
            for &rows in row_list {
                let flop = (2 * rows * n * k) as f64;
                // ~50 ms per sample.
                let calls = ((5e9 / flop) as usize).max(1);
                let mut best = f64::MAX;
                for _ in 0..reps.max(1) + 1 {
                    let c = thread_cpu_ns().unwrap_or(0);
                    for _ in 0..calls {
                        gemm(&pool, 1, &x, rows, k, wr, n, None, &mut out);
                    }
                    let t = (thread_cpu_ns().unwrap_or(0) - c) as f64 * 1e-9 / calls as f64;
                    best = best.min(t);
                }
                println!(
                    "| {name} | {place} ([{n}, {k}]) | {rows} | {:.1} | {:.0} % |",
                    flop / best / 1e9,
                    100.0 * flop / best / peak
                );
            }
        }
    }
}
