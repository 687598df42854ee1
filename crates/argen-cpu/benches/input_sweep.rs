//! Why 1–2-row GEMM calls with long inputs stream slower: a synthetic packed-bf16 kernel (the
//! AVX-512 micro-kernel's loads, widening and FMAs, without its tiles' bookkeeping) over a
//! sequential 192 MiB stream in huge pages, for 1, 2 and 4 input rows at k = 768 and 2048,
//! each once sweeping all `rows · k` input floats per 4-column tile (as the real kernel does)
//! and once reading only a 64-float window of them (inputs that always hit L1).
//!
//! `cargo bench -p argen-cpu --bench input_sweep` prints weight GB/s, the best of 4 passes, on
//! one thread. See `argen_cpu::gemm::tuning` (session 9) for what it showed on Zen 4 and what
//! the GEMM does about it.

#[cfg(target_arch = "x86_64")]
mod probe {
    use std::arch::x86_64::*;

    /// One pass: tiles of `k / 8` lines; per line, the interleaved bf16 widening of the real
    /// kernel and two FMAs per input row, the inputs' block `i` read at `i mod window`.
    ///
    /// # Safety
    /// Requires AVX-512F; `x` holds `R · k` floats, `window` divides into `k` blocks.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pass<const R: usize>(w: &[u64], x: &[f32], k: usize, window: usize) -> f32 {
        let lines = w.len() / 8;
        let p = w.as_ptr() as *const __m512i;
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let mask = _mm512_set1_epi32(-0x1_0000);
        let steps = k / 8;
        let mut t = 0;
        while t + steps <= lines {
            for s in 0..steps {
                // SAFETY: t + s < lines; (8s mod window) + 8 <= k for every row's block.
                unsafe {
                    _mm_prefetch::<_MM_HINT_NTA>(p.add(t + s) as *const i8);
                    let v = _mm512_loadu_si512(p.add(t + s));
                    let w0 = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v));
                    let w1 = _mm512_castsi512_ps(_mm512_and_si512(v, mask));
                    for (r, a) in acc.iter_mut().enumerate() {
                        let xp = x.as_ptr().add(r * k + (8 * s) % window);
                        let xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(
                            _mm256_loadu_ps(xp),
                        )));
                        a[0] = _mm512_fmadd_ps(xv, w0, a[0]);
                        a[1] = _mm512_fmadd_ps(xv, w1, a[1]);
                    }
                }
            }
            t += steps;
        }
        let mut sum = _mm512_setzero_ps();
        for a in acc {
            sum = _mm512_add_ps(sum, _mm512_add_ps(a[0], a[1]));
        }
        _mm512_reduce_add_ps(sum)
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        use std::time::Instant;
        let w = argen_cpu::hugemem::Buf::from_fn((192usize << 20) / 8, |i| {
            (i as u64) & 0x3f80_3f80_3f80_3f80
        });
        let x = vec![1.0f32; 4 * 2048];
        let bytes = (w.len() * 8) as f64;
        let time = |f: &dyn Fn() -> f32| {
            std::hint::black_box(f());
            let mut best = f64::MAX;
            for _ in 0..4 {
                let t = Instant::now();
                std::hint::black_box(f());
                best = best.min(t.elapsed().as_secs_f64());
            }
            bytes / best / 1e9
        };
        println!("| k | rows | all inputs swept per tile | 64-float window |");
        println!("|---|---|---|---|");
        for k in [768usize, 2048] {
            for rows in [1usize, 2, 4] {
                // AVX-512F is detected above and x holds 4 · 2048 ≥ rows · k floats: the
                // contract of `probe::pass`.
                let run = |window: usize| match rows {
                    // SAFETY: see above.
                    1 => time(&|| unsafe { probe::pass::<1>(&w, &x, k, window) }),
                    // SAFETY: see above.
                    2 => time(&|| unsafe { probe::pass::<2>(&w, &x, k, window) }),
                    // SAFETY: see above.
                    _ => time(&|| unsafe { probe::pass::<4>(&w, &x, k, window) }),
                };
                println!(
                    "| {k} | {rows} | {:.1} GB/s | {:.1} GB/s |",
                    run(k),
                    run(64)
                );
            }
        }
        return;
    }
    println!("SKIPPED input_sweep: needs an x86_64 CPU with AVX-512F");
}
