//! Decode benchmark on a GPT-B-shaped model with random weights (see docs/runtime-performance.md).
//!
//! `cargo bench -p argen-cpu --bench decode -- [threads] [f32|bf16|f16 …] [steps[=N]]` prints a
//! markdown table: per-step decode latency at batch 2 (CFG) for the chosen weight dtypes
//! (default: all three) against the floor weight-bytes ÷ read bandwidth, the bandwidth probed
//! just before each dtype's steps (the load on a shared machine drifts), the *state-matched*
//! ratio (the winning probe run again before each of 4 runs of 8 more steps, each run against
//! its own probe: the host's bandwidth can change state between probes and steps), and the
//! verification cost curve (1 … 64 query tokens per CFG row, and a state-matched table of it:
//! each point against the probe re-run just before it; `steps` skips it, `steps=N` times N decode steps
//! instead of 20, and `windows` adds the median step of each 32 of them, to show what the
//! growing KV cache costs; `verify=N [reps=R]` runs only R verifications of N tokens per CFG
//! row, for a profiler). It also writes the f32 checkpoint to `$TMPDIR/argen-bench/gpt-b.safetensors`
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

/// One read pass of a probe over `c` (a chunk of the probe buffer); returns a checksum.
type ProbeFn = fn(&[u64]) -> u64;

/// Integer sum, four interleaved streams (quarters of the chunk, 4 KiB at a time): vectorises
/// with SSE2 in the bench's baseline x86-64 build.
fn probe_sum4(c: &[u64]) -> u64 {
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
}

/// `W`-byte vector loads (32: AVX2, 64: AVX-512), eight independent accumulators, one
/// sequential stream; `PF`: software prefetch 1 KiB ahead (`NTA`: non-temporal).
#[cfg(target_arch = "x86_64")]
mod simd_probe {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn sum256<const PF: bool, const NTA: bool>(c: &[u64]) -> u64 {
        let n = c.len() / 32 * 32;
        let p = c.as_ptr() as *const __m256i;
        let mut a = [_mm256_setzero_si256(); 8];
        let mut i = 0;
        while i < n / 4 {
            // SAFETY: i + 8 ≤ n/4 vectors of 4 u64 lie in c; prefetches never fault.
            unsafe {
                if PF {
                    let q = (p as *const i8).wrapping_add(i * 32 + 1024);
                    if NTA {
                        _mm_prefetch::<_MM_HINT_NTA>(q);
                        _mm_prefetch::<_MM_HINT_NTA>(q.wrapping_add(64));
                        _mm_prefetch::<_MM_HINT_NTA>(q.wrapping_add(128));
                        _mm_prefetch::<_MM_HINT_NTA>(q.wrapping_add(192));
                    } else {
                        _mm_prefetch::<_MM_HINT_T0>(q);
                        _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(64));
                        _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(128));
                        _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(192));
                    }
                }
                for (l, al) in a.iter_mut().enumerate() {
                    *al = _mm256_add_epi64(*al, _mm256_loadu_si256(p.add(i + l)));
                }
            }
            i += 8;
        }
        let mut t = _mm256_setzero_si256();
        for al in a {
            t = _mm256_add_epi64(t, al);
        }
        let mut o = [0u64; 4];
        // SAFETY: o holds 4 u64.
        unsafe { _mm256_storeu_si256(o.as_mut_ptr() as *mut __m256i, t) };
        o.iter().fold(0, |x, &y| x.wrapping_add(y))
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn sum512<const PF: bool, const NTA: bool>(c: &[u64]) -> u64 {
        let n = c.len() / 64 * 64;
        let p = c.as_ptr() as *const __m512i;
        let mut a = [_mm512_setzero_si512(); 8];
        let mut i = 0;
        while i < n / 8 {
            // SAFETY: i + 8 ≤ n/8 vectors of 8 u64 lie in c; prefetches never fault.
            unsafe {
                if PF {
                    for l in 0..8 {
                        let q = (p as *const i8).wrapping_add((i + l) * 64 + 1024);
                        if NTA {
                            _mm_prefetch::<_MM_HINT_NTA>(q);
                        } else {
                            _mm_prefetch::<_MM_HINT_T0>(q);
                        }
                    }
                }
                for (l, al) in a.iter_mut().enumerate() {
                    *al = _mm512_add_epi64(*al, _mm512_loadu_si512(p.add(i + l)));
                }
            }
            i += 8;
        }
        let mut t = _mm512_setzero_si512();
        for al in a {
            t = _mm512_add_epi64(t, al);
        }
        _mm512_reduce_add_epi64(t) as u64
    }
}

/// Safe entry points of the SIMD probes: each is listed by [`probes`] only when the CPU has
/// its feature.
#[cfg(target_arch = "x86_64")]
macro_rules! probe_entry {
    ($name:ident, $f:ident, $pf:literal, $nta:literal, $feat:tt) => {
        fn $name(c: &[u64]) -> u64 {
            assert!(std::is_x86_feature_detected!($feat));
            // SAFETY: the CPU has the feature (asserted above).
            unsafe { simd_probe::$f::<$pf, $nta>(c) }
        }
    };
}
#[cfg(target_arch = "x86_64")]
probe_entry!(avx2_plain, sum256, false, false, "avx2");
#[cfg(target_arch = "x86_64")]
probe_entry!(avx2_t0, sum256, true, false, "avx2");
#[cfg(target_arch = "x86_64")]
probe_entry!(avx2_nta, sum256, true, true, "avx2");
#[cfg(target_arch = "x86_64")]
probe_entry!(avx512_plain, sum512, false, false, "avx512f");
#[cfg(target_arch = "x86_64")]
probe_entry!(avx512_t0, sum512, true, false, "avx512f");
#[cfg(target_arch = "x86_64")]
probe_entry!(avx512_nta, sum512, true, true, "avx512f");

/// The read-bandwidth probes this CPU can run: (name, pass).
fn probes() -> Vec<(&'static str, ProbeFn)> {
    #[allow(unused_mut)] // only x86_64 adds probes
    let mut v: Vec<(&'static str, ProbeFn)> = vec![("int sum ×4 streams", probe_sum4)];
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            v.push(("avx2 load", avx2_plain));
            v.push(("avx2 load + prefetcht0", avx2_t0));
            v.push(("avx2 load + prefetchnta", avx2_nta));
        }
        if std::is_x86_feature_detected!("avx512f") {
            v.push(("avx512 load", avx512_plain));
            v.push(("avx512 load + prefetcht0", avx512_t0));
            v.push(("avx512 load + prefetchnta", avx512_nta));
        }
    }
    v
}

/// Every read-bandwidth probe for `t` threads on `workers` over `buf`, as (name, pass): the
/// plain probes of [`probes`] (chunks of 256 KiB claimed dynamically), then one-row f32 and
/// packed-bf16 GEMVs through the kernels.
fn probe_passes<'a>(
    workers: &'a argen_cpu::par::Workers,
    t: usize,
    buf: &'a [u64],
) -> Vec<(String, Box<dyn Fn() + 'a>)> {
    let chunk = (256usize << 10) / 8;
    let chunks = buf.len().div_ceil(chunk);
    let mut v: Vec<(String, Box<dyn Fn() + 'a>)> = Vec::new();
    for (name, f) in probes() {
        v.push((
            name.to_string(),
            Box::new(move || {
                let sink = std::sync::atomic::AtomicU64::new(0);
                workers.run(chunks, |i| {
                    let c = &buf[i * chunk..((i + 1) * chunk).min(buf.len())];
                    sink.fetch_add(f(c), std::sync::atomic::Ordering::Relaxed);
                });
                std::hint::black_box(sink.into_inner());
            }),
        ));
    }
    // Our own kernels: a one-row GEMV over the buffer as a [65536, 1024] f32 weight, and as a
    // packed bf16 [131072, 1024] weight (any bit pattern is a valid float).
    let tasks = if t == 1 { 1 } else { 4 * t };
    let (n, k) = (buf.len() * 2 / 1024, 1024);
    let x = std::rc::Rc::new(vec![1f32; 2 * k]);
    let out = std::rc::Rc::new(std::cell::RefCell::new(vec![0f32; 4 * n]));
    let gemv = |w: WRef<'a>, n: usize| -> Box<dyn Fn() + 'a> {
        let (x, out) = (x.clone(), out.clone());
        Box::new(move || {
            argen_cpu::gemm::gemm(
                workers,
                tasks,
                &x,
                1,
                k,
                w,
                n,
                None,
                &mut out.borrow_mut()[..],
            )
        })
    };
    let isa = argen_cpu::gemm::best_variant().name();
    v.push((
        format!("f32 GEMV ({isa})"),
        gemv(WRef::F32(bytemuck_f32(buf)), n),
    ));
    v.push((
        format!("bf16 packed GEMV ({isa})"),
        gemv(WRef::BF16Packed(bytemuck_bf16(buf)), 2 * n),
    ));
    v
}

/// One probe's rate over `bytes`: (best wall clock of 3, mean on-CPU of 3) after a warm-up pass.
fn time_probe(pass: &dyn Fn(), t: usize, bytes: f64) -> (f64, f64) {
    pass();
    let mut wall = f64::MAX;
    let mut cpu = 0f64;
    for _ in 0..3 {
        let c = cpu_time();
        let s = Instant::now();
        pass();
        wall = wall.min(s.elapsed().as_secs_f64());
        cpu += (cpu_time() - c) / t as f64 / 3.0;
    }
    (bytes / wall, bytes / cpu)
}

/// The probe that won [`bandwidth`]: its thread count and its place in [`probe_passes`].
#[derive(Clone, Copy)]
struct BestProbe {
    threads: usize,
    index: usize,
}

/// Read bandwidth in bytes/s over the 256 MiB `buf`: the best of every probe (integer sum,
/// AVX2 / AVX-512 loads with and without software prefetch, one-row f32 and packed-bf16 GEMVs
/// through the kernels) at every thread count `1..=threads` (chunks of 256 KiB claimed
/// dynamically); each probe's best wall clock of 3 and its on-CPU rate (mean of 3). Returns
/// (best wall, best on-CPU, the winning probe) and prints the table of probes.
fn bandwidth(threads: usize, buf: &[u64]) -> (f64, f64, BestProbe) {
    let bytes = (buf.len() * 8) as f64;
    let mut best = (
        0f64,
        String::new(),
        BestProbe {
            threads: 1,
            index: 0,
        },
    );
    let mut best_cpu = 0f64;
    let mut lines = Vec::new();
    for t in 1..=threads {
        let workers = argen_cpu::par::Workers::new(t).unwrap();
        for (index, (name, pass)) in probe_passes(&workers, t, buf).iter().enumerate() {
            let (gw, gc) = time_probe(pass, t, bytes);
            if gw > best.0 {
                best = (
                    gw,
                    format!("{name}, {t} thread(s)"),
                    BestProbe { threads: t, index },
                );
            }
            best_cpu = best_cpu.max(gc);
            lines.push(format!(
                "{:.1} / {:.1}  {name}, {t} thread(s)",
                gw / 1e9,
                gc / 1e9
            ));
        }
    }
    println!("  read-bandwidth probes, GB/s wall best of 3 / on-CPU mean of 3:");
    for l in &lines {
        println!("    {l}");
    }
    println!("  best: {:.1} GB/s ({})", best.0 / 1e9, best.1);
    (best.0, best_cpu, best.2)
}

/// The winning probe of [`bandwidth`] run again (best wall clock of 3), in bytes/s.
fn reprobe(best: BestProbe, buf: &[u64]) -> f64 {
    let workers = argen_cpu::par::Workers::new(best.threads).unwrap();
    let passes = probe_passes(&workers, best.threads, buf);
    time_probe(&passes[best.index].1, best.threads, (buf.len() * 8) as f64).0
}

/// A verification point: (query tokens per CFG row, wall best of 3, on-CPU mean of 3, the
/// bandwidth of the probe re-run just before it).
type Point = (usize, f64, f64, f64);
/// A point's rooflines: (against the wall probes, the on-CPU probes, the re-run probe).
type Roof = (f64, f64, f64);
/// The cells of one part of a table row for one dtype: `(part, points, rooflines, point)`.
type Cells = dyn Fn(usize, &[Point], &[Roof], usize) -> String;

/// Runs of decode steps for the state-matched ratio, each after its own probe.
const SEGMENTS: usize = 4;
/// Steps per state-matched run.
const SEGMENT_STEPS: usize = 8;

/// Decode step `k` at batch 2 (both CFG rows take token `k·37 mod v` at grid position `k`)
/// and its commit; returns its wall-clock seconds.
fn decode_step(gpt: &mut Gpt, logits: &mut [f32], k: usize, v: usize) -> f64 {
    let p = [Pos::Grid {
        row: (k / 16) as u32,
        col: (k % 16) as u32,
    }];
    let tok = [(k * 37 % v) as u32];
    let steps = [0, 1].map(|slot| Step {
        slot,
        tokens: &tok,
        positions: &p,
        parents: None,
    });
    let t = Instant::now();
    gpt.forward(&steps, logits, None).unwrap();
    gpt.commit(0, &[0]).unwrap();
    gpt.commit(1, &[0]).unwrap();
    t.elapsed().as_secs_f64()
}

/// Views the probe buffer's bytes as bf16 (any bit pattern is a valid bf16).
fn bytemuck_bf16(b: &[u64]) -> &[half::bf16] {
    // SAFETY: u64 has stricter alignment than bf16 (a 2-byte POD), the length covers the same
    // bytes, and every bit pattern is a valid bf16.
    unsafe { std::slice::from_raw_parts(b.as_ptr() as *const half::bf16, b.len() * 4) }
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
    // `verify=N` (profiling aid, e.g. under `perf record`): only the verification of N query
    // tokens per CFG row, repeated `reps=R` times (default 20), printing its mean on-CPU time.
    let verify_only = args
        .iter()
        .find_map(|a| a.strip_prefix("verify=")?.parse::<usize>().ok());
    let reps = args
        .iter()
        .find_map(|a| a.strip_prefix("reps=")?.parse::<usize>().ok())
        .unwrap_or(20)
        .max(1);
    // `steps=N`: N timed decode steps (after 4 warm-up steps) instead of 20; at most 188 so
    // that every position, the state-matched runs' included, stays on the 16×16 grid.
    let timed = args
        .iter()
        .find_map(|a| a.strip_prefix("steps=")?.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 188);
    // `windows`: also the median step of each 32 timed steps, as the KV cache grows.
    let windows = args.iter().any(|a| a == "windows");
    let cfg = GptConfig::preset("GPT-B", ModelType::C2i, 256).unwrap();
    println!(
        "threads: {threads}; GPT-B c2i, {} params; kernels {:?}; load average {}; each \
         dtype's floor uses read-bandwidth probes run just before its decode steps (the best \
         probe and thread count)\n",
        cfg.param_count(),
        argen_cpu::Cpu::new(threads).unwrap().kernels(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    // Backed by huge pages like the model's weights (`argen_cpu::hugemem`), so that the probes
    // stream under the same conditions as the decode they bound.
    let probe_buf = argen_cpu::hugemem::Buf::from_fn((256usize << 20) / 8, |i| i as u64);
    let mut rows_out = Vec::new();

    let cpu = Cpu::new(threads).unwrap();
    let cap = Capacity {
        slots: 2,
        seq: 1 + 256 + 64,
        rows: 128,
        pending: 64,
    };
    let mut curve = Vec::new();
    let (peak, peak_cpu, lanes) = if verify_only.is_some() {
        (f64::NAN, f64::NAN, 0)
    } else {
        let w = argen_cpu::par::Workers::new(threads).unwrap();
        argen_cpu::probe::fma_peak(&w, 3)
    };
    println!(
        "measured f32 FMA peak: {:.1} GFLOP/s wall / {:.1} on-CPU ({threads} thread(s), \
         {lanes}-lane FMAs)\n",
        peak / 1e9,
        peak_cpu / 1e9
    );
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
        if let Some(n) = verify_only {
            let toks: Vec<u32> = (0..n).map(|i| (i * 11 % v) as u32).collect();
            let pos: Vec<Pos> = (0..n)
                .map(|i| Pos::Grid {
                    row: (i / 16) as u32,
                    col: (i % 16) as u32,
                })
                .collect();
            let c = cpu_time();
            for _ in 0..reps {
                let steps = [0, 1].map(|slot| Step {
                    slot,
                    tokens: &toks,
                    positions: &pos,
                    parents: None,
                });
                gpt.forward(&steps, &mut logits, None).unwrap();
                gpt.rollback(0).unwrap();
                gpt.rollback(1).unwrap();
            }
            println!(
                "  verification of {n} tokens per CFG row ({} rows): {:.2} ms on-CPU (mean of {reps})",
                2 * n,
                (cpu_time() - c) / threads as f64 / reps as f64 * 1e3
            );
            continue;
        }
        let (bw, bw_cpu, best_probe) = bandwidth(threads, &probe_buf);
        let steps_n = timed + 4;
        let mut times = Vec::new();
        let mut cpu = 0f64;
        for k in 0..steps_n {
            let c = cpu_time();
            times.push(decode_step(&mut gpt, &mut logits, k, v));
            if k >= 4 {
                cpu += (cpu_time() - c) / threads as f64;
            }
        }
        let cpu = cpu / (steps_n - 4) as f64;
        times.drain(..4);
        if windows {
            // The step's cost as the KV cache grows: the median of each 32 steps.
            for (wi, win) in times.chunks(32).enumerate() {
                let mut win = win.to_vec();
                win.sort_by(|a, b| a.total_cmp(b));
                println!(
                    "  {} steps at context {}..{}: median {:.2} ms",
                    dt.name(),
                    5 + 32 * wi,
                    4 + 32 * wi + win.len(),
                    win[win.len() / 2] * 1e3
                );
            }
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = times[times.len() / 2];
        let floor = wbytes as f64 / bw;
        if wbytes as f64 / times[0] > bw {
            println!(
                "  PROBE BUG (or the load changed between probes and steps): the fastest decode step \
                 streamed {:.1} GB/s, more than every probe ({:.1} GB/s)",
                wbytes as f64 / times[0] / 1e9,
                bw / 1e9
            );
        }
        let floor_cpu = wbytes as f64 / bw_cpu;
        // State-matched ratio: on a shared host the bandwidth can change state between the
        // probes and the steps (two cores of the Zen 5 dev box read 57 and 89 GB/s a minute
        // apart), so the winning probe runs again right before each of a few short runs of
        // steps, and each run is compared with its own probe.
        let mut matched = Vec::new();
        for s in 0..SEGMENTS {
            let bw_s = reprobe(best_probe, &probe_buf);
            let mut ts: Vec<f64> = (0..SEGMENT_STEPS)
                .map(|j| decode_step(&mut gpt, &mut logits, steps_n + s * SEGMENT_STEPS + j, v))
                .collect();
            ts.sort_by(|a, b| a.total_cmp(b));
            matched.push((ts[ts.len() / 2] / (wbytes as f64 / bw_s), bw_s));
        }
        let lo = matched.iter().map(|m| m.0).fold(f64::MAX, f64::min);
        let hi = matched.iter().map(|m| m.0).fold(0f64, f64::max);
        let blo = matched.iter().map(|m| m.1).fold(f64::MAX, f64::min);
        let bhi = matched.iter().map(|m| m.1).fold(0f64, f64::max);
        println!(
            "  state-matched: {SEGMENTS} runs of {SEGMENT_STEPS} steps, each after its own probe: \
             median step / floor {lo:.2}x–{hi:.2}x (probes {:.1}–{:.1} GB/s)",
            blo / 1e9,
            bhi / 1e9
        );
        rows_out.push(format!(
            "| {} | {:.0} MB | {:.1} / {:.1} GB/s | {:.2} ms | {:.2} ms (median of {}) | {:.2}x \
             | {:.2} ms | {:.2} ms | {:.2}x | {:.2}x–{:.2}x |",
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
            cpu / floor_cpu,
            lo,
            hi
        ));
        if !with_curve {
            continue;
        }
        // Verification cost: n query tokens per CFG row (a chain), then rollback; positions
        // after every committed step.
        let after = steps_n + SEGMENTS * SEGMENT_STEPS;
        let mut row = Vec::new();
        // 5: a γ = 4 chain draft (tall f32 tiles, even half-precision splits).
        for n in [1usize, 2, 4, 5, 8, 16, 32, 64] {
            let toks: Vec<u32> = (0..n).map(|i| (i * 11 % v) as u32).collect();
            let pos: Vec<Pos> = (0..n)
                .map(|i| Pos::Grid {
                    row: ((after + i) / 16) as u32,
                    col: ((after + i) % 16) as u32,
                })
                .collect();
            // The winning probe again, just before this point (the state-matched roofline).
            let bw_n = reprobe(best_probe, &probe_buf);
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
            row.push((n, best, cpu, bw_n));
        }
        // Roofline of each point: max(weight bytes ÷ bandwidth, FLOPs ÷ FMA peak), FLOPs of
        // the GEMMs (2 per weight and row; attention is < 5 % at these lengths and left out).
        // Wall time against the wall probes, on-CPU time against the on-CPU probes.
        // The state-matched roofline takes the bandwidth of the probe re-run just before the
        // point instead.
        let roof: Vec<Roof> = row
            .iter()
            .map(|&(n, _, _, bw_n)| {
                let flops = 2.0 * (2 * n) as f64 * (wbytes / es) as f64;
                (
                    (wbytes as f64 / bw).max(flops / peak),
                    (wbytes as f64 / bw_cpu).max(flops / peak_cpu),
                    (wbytes as f64 / bw_n).max(flops / peak),
                )
            })
            .collect();
        curve.push((dt, row, roof));
    }
    println!(
        "\n| weights | weight bytes | bandwidth wall / on-CPU | floor (bytes/bw) \
         | decode step, batch 2 (CFG) | ratio | on-CPU floor | on-CPU step | on-CPU ratio \
         | state-matched ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
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
    // One row per point; for each part (a group of three columns) the cells of each dtype's
    // curve (`cells(part, row, roof, i)`) in turn.
    let table = |heads: &[&str], cells: &Cells| {
        let mut head = String::from("| n (rows) |");
        for h in heads {
            for (dt, _, _) in &curve {
                head += &h.replace("{dt}", dt.name());
            }
        }
        println!(
            "{head}\n|---|{}",
            "---|".repeat(3 * heads.len() * curve.len())
        );
        for i in 0..curve[0].1.len() {
            let n = curve[0].1[i].0;
            let mut line = format!("| {n} ({}) |", 2 * n);
            for part in 0..heads.len() {
                for (_, row, roof) in &curve {
                    line += &cells(part, row, roof, i);
                }
            }
            println!("{line}");
        }
    };
    table(
        &[
            " {dt} wall | roofline | ratio |",
            " {dt} on-CPU | roofline | ratio |",
        ],
        &|part, row, roof, i| {
            let (t, r) = if part == 0 {
                (row[i].1, roof[i].0)
            } else {
                (row[i].2, roof[i].1)
            };
            format!(" {:.2} ms | {:.2} ms | {:.2}x |", t * 1e3, r * 1e3, t / r)
        },
    );
    println!(
        "\nState-matched verification (wall best of 3 against max(weight bytes ÷ the winning \
         probe re-run just before the point, FLOPs ÷ FMA peak)):\n"
    );
    table(&[" {dt} probe | roofline | ratio |"], &|_, row, roof, i| {
        format!(
            " {:.1} GB/s | {:.2} ms | {:.2}x |",
            row[i].3 / 1e9,
            roof[i].2 * 1e3,
            row[i].1 / roof[i].2
        )
    });
}
