//! Machine probes for benchmarks: the measured f32 FMA peak, the denominator of the roofline
//! `max(weight bytes ÷ bandwidth, FLOPs ÷ FMA peak)` that the benches set GEMM and verification
//! times against.
//!
//! The peak is measured, not computed from a data sheet: every worker runs a loop of
//! independent fused multiply-adds on registers (12 accumulators, enough to cover the FMA
//! latency on current cores) with the widest vectors of the running [`crate::Variant`], for a
//! fixed number of iterations; GFLOP/s = 2 · lanes · FMAs ÷ wall time of the slowest worker.

use crate::gemm::{best_variant, Variant};
use crate::par::Workers;
use std::time::Instant;

/// Iterations of the 12-FMA body per worker (≈ 25 ms at 4 GHz on a 512-bit core).
const ITERS: usize = 1 << 22;

/// Measured f32 FMA peak of `workers` in FLOP/s (best of `reps` runs) with the best exact
/// variant's vector width: (wall clock, on-CPU, lanes). The on-CPU rate sums each worker's
/// FLOPs ÷ its own thread CPU time (Linux; elsewhere the wall rate), so other processes
/// sharing the cores do not deflate it.
pub fn fma_peak(workers: &Workers, reps: usize) -> (f64, f64, usize) {
    let v = best_variant();
    let lanes = match v {
        Variant::Avx512 => 16,
        Variant::Avx2 => 8,
        Variant::Neon => 4,
        Variant::Portable => 1,
    };
    let flops = (2 * 12 * lanes * ITERS) as f64;
    let mut best = (0f64, 0f64);
    for _ in 0..reps.max(1) {
        let on_cpu = std::sync::Mutex::new(0f64);
        let t = Instant::now();
        workers.run(workers.threads(), |_| {
            let c = thread_cpu();
            std::hint::black_box(body(v));
            let dt = thread_cpu().zip(c).map(|(b, a)| b - a);
            *on_cpu.lock().unwrap_or_else(|e| e.into_inner()) += dt.map_or(0.0, |d| flops / d);
        });
        let wall = flops * workers.threads() as f64 / t.elapsed().as_secs_f64();
        let cpu = on_cpu.into_inner().unwrap_or_else(|e| e.into_inner());
        best = (
            best.0.max(wall),
            best.1.max(if cpu > 0.0 { cpu } else { wall }),
        );
    }
    (best.0, best.1, lanes)
}

/// CPU time of the calling thread in seconds (Linux), `None` elsewhere.
fn thread_cpu() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// One worker's FMA loop; returns a checksum so that nothing is optimised away.
fn body(v: Variant) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        match v {
            // SAFETY: the variant is the CPU's best supported one: it has AVX-512F.
            Variant::Avx512 => return unsafe { x86::fma512() },
            // SAFETY: as above: the CPU has AVX2 and FMA.
            Variant::Avx2 => return unsafe { x86::fma256() },
            _ => {}
        }
    }
    let _ = v;
    let mut a = [1f32; 12];
    let x = std::hint::black_box(0.999_999f32);
    for _ in 0..ITERS {
        for ai in a.iter_mut() {
            *ai = ai.mul_add(x, 1e-7);
        }
    }
    a.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ITERS;
    use std::arch::x86_64::*;

    /// # Safety
    /// Requires AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512() -> f32 {
        let x = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let c = _mm512_set1_ps(1e-7);
        let mut a = [_mm512_set1_ps(1.0); 12];
        for _ in 0..ITERS {
            for ai in a.iter_mut() {
                *ai = _mm512_fmadd_ps(*ai, x, c);
            }
        }
        let mut t = _mm512_setzero_ps();
        for ai in a {
            t = _mm512_add_ps(t, ai);
        }
        _mm512_reduce_add_ps(t)
    }

    /// # Safety
    /// Requires AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256() -> f32 {
        let x = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let c = _mm256_set1_ps(1e-7);
        let mut a = [_mm256_set1_ps(1.0); 12];
        for _ in 0..ITERS {
            for ai in a.iter_mut() {
                *ai = _mm256_fmadd_ps(*ai, x, c);
            }
        }
        let mut t = _mm256_setzero_ps();
        for ai in a {
            t = _mm256_add_ps(t, ai);
        }
        let mut o = [0f32; 8];
        // SAFETY: o holds 8 floats.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), t) };
        o.iter().sum()
    }
}
