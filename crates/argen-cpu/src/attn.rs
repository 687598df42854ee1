//! Tree attention over the KV cache: one task per (query row, head).
//!
//! For query `q` (one head, `head_dim = d` floats) and its key list `K` (the contiguous range
//! `[start, end)` of its slot, then the extra indices: the tree mask), the output is
//! `o = Σ_j p_j · v_j` with `p = softmax(s)`, `s_j = dot(q, k_j) · (1/√d)`, where
//! - `dot` is the GEMM's documented reduction order ([`crate::gemm::dot`]: 8 lanes of FMAs over
//!   the first `⌊d/8⌋·8` elements, the fixed lane tree, then FMAs over the tail);
//! - the softmax subtracts the maximum, takes [`argen_core::detmath::exp_f32`], sums in key order
//!   and multiplies by the reciprocal of the sum ([`softmax`]);
//! - `o` starts at zero and takes one FMA `o_e ← fma(p_j, v_j[e], o_e)` per key in key order
//!   ([`crate::gemm::axpy`]).
//!
//! The SIMD path (x86-64 with AVX2/FMA, i.e. the `avx2` and `avx512` variants) computes the same
//! operations in the same order, only scheduled for throughput: four keys' dot products at once
//! (four independent accumulators instead of one latency-bound chain per key), the
//! exponentials 8 or 16 at a time ([`crate::vmath`]), and the output accumulated in registers
//! across all keys (64 columns at a time) instead of a load and store per key. So the results are
//! the same bits as the scalar-per-key code on every variant (tests below, on every variant the
//! machine runs).
//!
//! **Prefetching.** A task reads two short streams, its keys and then its values (`ctx · d`
//! floats each, 8 KiB at context 32 and GPT-B's `d = 64`), and at the start of each the hardware
//! prefetcher has not yet caught on, so a task used to wait on memory twice. The SIMD path
//! therefore prefetches its values into L2 while it scores the keys, and while it sums the
//! values it prefetches the keys (into L1) and values (into L2) of the task the same thread
//! will most likely run next (index `i + threads`: the workers claim indices in increasing
//! order). Prefetches change no result. One Zen 4 core, the 12 layers' attention of a GPT-B
//! CFG pair from a cold cache (`cargo bench -p argen-cpu --bench attention -- 1`, against
//! `ARGEN_GEMM_TUNING=attn_prefetch=0`; `docs/results/session9/quiet/attention1-*.txt`), off →
//! on: context 8 0.188 → 0.113 ms, 32 0.450 → 0.336 ms, 96 1.012 → 0.717 ms, 160 1.402 →
//! 1.112 ms, 256 1.692 → 1.573 ms. In a GPT-B decode step on that CPU the cache (≤ 30 MB at
//! these contexts) stays in L3 between steps and the step time did not change measurably;
//! the prefetches are for caches larger than L3.

use crate::gemm::{self, dot, Variant};
use crate::par::Workers;
use crate::{kv_off, vmath, CpuKv};
use argen_model::compute::{AttnRow, KvGeometry};
use std::cell::RefCell;

thread_local! {
    /// Per-thread scores and key offsets (grown once, then reused: no allocation per call).
    static SCRATCH: RefCell<(Vec<f32>, Vec<usize>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// In-place softmax (max-subtracted, sum in index order), exponentials on `variant`'s lanes.
pub fn softmax(variant: Variant, r: &mut [f32]) {
    let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    vmath::exp_sub(variant, r, m);
    let mut s = 0f32;
    for v in r.iter() {
        s += *v;
    }
    let inv = 1.0 / s;
    r.iter_mut().for_each(|v| *v *= inv);
}

/// Tree attention (module docs): `out[r, h·d ..]` for every row `r` and head `h`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    pool: &Workers,
    variant: Variant,
    qkv: &[f32],
    g: &KvGeometry,
    kv: &CpuKv,
    layer: usize,
    rows: &[AttnRow],
    extra: &[u32],
    out: &mut [f32],
) {
    let hd = g.head_dim;
    let stride = (g.heads + 2 * g.kv_heads) * hd;
    let group = g.heads / g.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let n = rows.len() * g.heads;
    let simd = simd_ok(variant);
    // The contiguous key range of task `i` (its extras are few and scattered), for the
    // prefetches of the SIMD path; an empty range past the last task.
    #[cfg(target_arch = "x86_64")]
    let prefetch = gemm::tuning().attn_prefetch;
    #[cfg(target_arch = "x86_64")]
    let ahead = |i: usize| -> Ahead {
        if i >= n || !prefetch {
            return Ahead::NONE;
        }
        let ar = rows[i / g.heads];
        let b = kv_off(
            g,
            layer,
            ar.slot as usize,
            (i % g.heads) / group,
            ar.start as usize,
        );
        Ahead {
            k: kv.k.as_ptr().wrapping_add(b),
            v: kv.v.as_ptr().wrapping_add(b),
            floats: (ar.end - ar.start) as usize * hd,
        }
    };
    let work = |i: usize, o: &mut [f32]| {
        let (r, h) = (i / g.heads, i % g.heads);
        let ar = rows[r];
        let q = &qkv[r * stride + h * hd..r * stride + (h + 1) * hd];
        let base = kv_off(g, layer, ar.slot as usize, h / group, 0);
        let ex = &extra[ar.extra_off as usize..(ar.extra_off + ar.extra_len) as usize];
        let (start, rl) = (ar.start as usize, (ar.end - ar.start) as usize);
        let nk = rl + ex.len();
        // Offsets of the key (and value) rows from `base`, each checked to lie inside the cache
        // once here, so that the kernels below index without checks.
        let (kc, vc) = (&kv.k[base..], &kv.v[base..]);
        SCRATCH.with(|cell| {
            let (scores, offs) = &mut *cell.borrow_mut();
            // Every score is written below before it is read: grow only, never re-zero.
            if scores.len() < nk {
                scores.resize(nk, 0.0);
            }
            let sc = &mut scores[..nk];
            offs.clear();
            // The contiguous range is checked once, the extras one by one.
            assert!(
                rl == 0 || (start + rl) * hd <= kc.len(),
                "attention keys {start}..{} outside the KV cache",
                start + rl
            );
            offs.extend((start..start + rl).map(|idx| idx * hd));
            offs.extend(ex.iter().map(|&e| {
                let o = e as usize * hd;
                assert!(o + hd <= kc.len(), "attention key {e} outside the KV cache");
                o
            }));
            if simd {
                #[cfg(target_arch = "x86_64")]
                {
                    let next = ahead(i + pool.threads());
                    // SAFETY: AVX2/FMA available (`simd_ok`); every offset + hd lies inside
                    // `kc` and `vc` (same length; checked above); q and o hold hd floats.
                    unsafe { x86::scores(q, kc, prefetch.then_some(vc), offs, scale, sc) };
                    softmax(variant, sc);
                    // SAFETY: as above (`next` is only prefetched).
                    unsafe { x86::weighted_sum(sc, vc, offs, o, next) };
                }
            } else {
                for (s, &off) in sc.iter_mut().zip(offs.iter()) {
                    *s = dot(q, &kc[off..off + hd]) * scale;
                }
                softmax(variant, sc);
                o.iter_mut().for_each(|v| *v = 0.0);
                for (&p, &off) in sc.iter().zip(offs.iter()) {
                    gemm::axpy(p, &vc[off..off + hd], o);
                }
            }
        });
    };
    pool.chunks_mut(&mut out[..n * hd], hd, work);
}

/// Where another task's keys and values start, and how many floats of each to prefetch.
#[derive(Clone, Copy)]
#[cfg(target_arch = "x86_64")]
struct Ahead {
    k: *const f32,
    v: *const f32,
    floats: usize,
}

#[cfg(target_arch = "x86_64")]
impl Ahead {
    const NONE: Ahead = Ahead {
        k: std::ptr::null(),
        v: std::ptr::null(),
        floats: 0,
    };
}

/// Whether the SIMD path runs for `variant` (the scalar path's `dot`/`axpy` use AVX2/FMA on
/// exactly these variants, so both paths use the same instructions' rounding).
fn simd_ok(variant: Variant) -> bool {
    matches!(variant, Variant::Avx2 | Variant::Avx512) && Variant::Avx2.unsupported().is_none()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Ahead;
    use crate::gemm::avx2_hsum as hsum;
    use std::arch::x86_64::*;

    /// Floats per cache line.
    const LINE: usize = 16;

    /// Prefetches the `d` floats at `p` into L2 (never faults).
    #[inline(always)]
    fn prefetch_row_l2(p: *const f32, d: usize) {
        let mut b = 0;
        while b < d {
            // SAFETY: SSE is baseline on x86_64; a prefetch never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(b) as *const i8) };
            b += LINE;
        }
    }

    /// `s[j] = dot(q, k[off[j] ..]) · scale` for every key, four keys at a time; meanwhile the
    /// value rows `v[off[j] ..]` (if given) are prefetched into L2 for [`weighted_sum`].
    ///
    /// # Safety
    /// Requires AVX2 and FMA; `off[j] + q.len() <= k.len()` for every `j`; `s.len() == off.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores(
        q: &[f32],
        k: &[f32],
        v: Option<&[f32]>,
        off: &[usize],
        scale: f32,
        s: &mut [f32],
    ) {
        let d = q.len();
        let vb = v.map_or(std::ptr::null(), |v| v.as_ptr());
        let db = d / 8 * 8;
        let (qp, kb) = (q.as_ptr(), k.as_ptr());
        let tail = |kp: *const f32, mut t: f32| {
            for e in db..d {
                // SAFETY: e < d; both rows hold d floats.
                t = unsafe { (*qp.add(e)).mul_add(*kp.add(e), t) };
            }
            t * scale
        };
        let nk = off.len();
        let mut j = 0;
        while j + 4 <= nk {
            // SAFETY: each offset + d lies inside `k` (caller).
            let kp: [*const f32; 4] = std::array::from_fn(|t| unsafe { kb.add(off[j + t]) });
            if !vb.is_null() {
                for t in 0..4 {
                    prefetch_row_l2(vb.wrapping_add(off[j + t]), d);
                }
            }
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut e = 0;
            while e < db {
                // SAFETY: e + 8 <= db <= d.
                unsafe {
                    let qv = _mm256_loadu_ps(qp.add(e));
                    for t in 0..4 {
                        acc[t] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kp[t].add(e)), acc[t]);
                    }
                }
                e += 8;
            }
            for t in 0..4 {
                s[j + t] = tail(kp[t], hsum(acc[t]));
            }
            j += 4;
        }
        while j < nk {
            // SAFETY: as above.
            let kp = unsafe { kb.add(off[j]) };
            if !vb.is_null() {
                prefetch_row_l2(vb.wrapping_add(off[j]), d);
            }
            let mut acc = _mm256_setzero_ps();
            let mut e = 0;
            while e < db {
                // SAFETY: e + 8 <= db <= d.
                unsafe {
                    acc =
                        _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(e)), _mm256_loadu_ps(kp.add(e)), acc)
                };
                e += 8;
            }
            s[j] = tail(kp, hsum(acc));
            j += 1;
        }
    }

    /// `o = Σ_j p[j] · v[off[j] ..]` from `o = 0`, one FMA per key and element in key order,
    /// the accumulators in registers (64 columns at a time); meanwhile `next`'s keys (into L1)
    /// and values (into L2) are prefetched, spread evenly over the keys of the first pass.
    ///
    /// # Safety
    /// Requires AVX2 and FMA; `off[j] + o.len() <= v.len()` for every `j`; `p.len() == off.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn weighted_sum(p: &[f32], v: &[f32], off: &[usize], o: &mut [f32], next: Ahead) {
        let d = o.len();
        let db = d / 8 * 8;
        let (op, vb) = (o.as_mut_ptr(), v.as_ptr());
        // Lines of `next` to prefetch per key, and how far it has got.
        let per_key = next
            .floats
            .div_ceil(off.len().max(1))
            .next_multiple_of(LINE);
        let mut ahead = 0;
        let mut c = 0;
        while c + 64 <= db {
            let mut acc = [_mm256_setzero_ps(); 8];
            for (&pj, &oj) in p.iter().zip(off) {
                if ahead < next.floats {
                    let end = (ahead + per_key).min(next.floats);
                    while ahead < end {
                        // A prefetch never faults.
                        _mm_prefetch::<_MM_HINT_T0>(next.k.wrapping_add(ahead) as *const i8);
                        _mm_prefetch::<_MM_HINT_T1>(next.v.wrapping_add(ahead) as *const i8);
                        ahead += LINE;
                    }
                }
                let pv = _mm256_set1_ps(pj);
                // SAFETY: oj + c + 64 <= oj + d <= v.len() (caller).
                let vp = unsafe { vb.add(oj + c) };
                for (b, a) in acc.iter_mut().enumerate() {
                    // SAFETY: as above.
                    *a = _mm256_fmadd_ps(pv, unsafe { _mm256_loadu_ps(vp.add(8 * b)) }, *a);
                }
            }
            for (b, a) in acc.iter().enumerate() {
                // SAFETY: c + 8b + 8 <= d; `o` holds d floats.
                unsafe { _mm256_storeu_ps(op.add(c + 8 * b), *a) };
            }
            c += 64;
        }
        while c < db {
            let mut a = _mm256_setzero_ps();
            for (&pj, &oj) in p.iter().zip(off) {
                // SAFETY: oj + c + 8 <= oj + d <= v.len().
                a = _mm256_fmadd_ps(
                    _mm256_set1_ps(pj),
                    unsafe { _mm256_loadu_ps(vb.add(oj + c)) },
                    a,
                );
            }
            // SAFETY: c + 8 <= d.
            unsafe { _mm256_storeu_ps(op.add(c), a) };
            c += 8;
        }
        for e in db..d {
            let mut t = 0f32;
            for (&pj, &oj) in p.iter().zip(off) {
                t = pj.mul_add(v[oj + e], t);
            }
            o[e] = t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hugemem::Buf;
    use argen_core::detmath::exp_f32;

    use crate::test_rng as rng;

    /// The documented order, one key and element at a time.
    fn reference(q: &[f32], keys: &[&[f32]], vals: &[&[f32]], out: &mut [f32]) {
        let d = q.len();
        let scale = 1.0 / (d as f32).sqrt();
        let db = d / 8 * 8;
        let mut s: Vec<f32> = keys
            .iter()
            .map(|k| {
                let mut lanes = [0f32; 8];
                for e in 0..db {
                    lanes[e % 8] = q[e].mul_add(k[e], lanes[e % 8]);
                }
                let mut t = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
                    + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
                for e in db..d {
                    t = q[e].mul_add(k[e], t);
                }
                t * scale
            })
            .collect();
        let m = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for v in s.iter_mut() {
            *v = exp_f32(*v - m);
            sum += *v;
        }
        let inv = 1.0 / sum;
        s.iter_mut().for_each(|v| *v *= inv);
        out.iter_mut().for_each(|o| *o = 0.0);
        for (p, v) in s.iter().zip(vals) {
            for e in 0..d {
                out[e] = p.mul_add(v[e], out[e]);
            }
        }
    }

    #[test]
    fn every_variant_matches_the_documented_order_bit_for_bit() {
        let mut variants = Vec::new();
        for v in Variant::ALL {
            match v.unsupported() {
                None => variants.push(v),
                Some(why) => println!("SKIPPED attention {}: {why}", v.name()),
            }
        }
        let pools = [Workers::new(1).unwrap(), Workers::new(3).unwrap()];
        let mut r = rng(11);
        for &hd in &[4usize, 8, 13, 64, 72, 136] {
            for &(heads, kv_heads) in &[(2usize, 2usize), (4, 2)] {
                let g = KvGeometry {
                    layers: 2,
                    slots: 2,
                    kv_heads,
                    heads,
                    head_dim: hd,
                    capacity: 40,
                };
                let n = g.layers * g.slots * kv_heads * g.capacity * hd;
                let kv = CpuKv {
                    k: Buf::from_slice(&(0..n).map(|_| 3.0 * r()).collect::<Vec<f32>>()),
                    v: Buf::from_slice(&(0..n).map(|_| r()).collect::<Vec<f32>>()),
                };
                // Chains of several lengths, a tree row with extras, a single key.
                let extra = [30u32, 33, 34, 39];
                let rows = [
                    AttnRow {
                        slot: 0,
                        start: 0,
                        end: 1,
                        extra_off: 0,
                        extra_len: 0,
                    },
                    AttnRow {
                        slot: 1,
                        start: 0,
                        end: 7,
                        extra_off: 0,
                        extra_len: 0,
                    },
                    AttnRow {
                        slot: 0,
                        start: 2,
                        end: 27,
                        extra_off: 0,
                        extra_len: 4,
                    },
                    AttnRow {
                        slot: 1,
                        start: 5,
                        end: 30,
                        extra_off: 1,
                        extra_len: 3,
                    },
                    AttnRow {
                        slot: 0,
                        start: 0,
                        end: 40,
                        extra_off: 0,
                        extra_len: 0,
                    },
                ];
                let stride = (heads + 2 * kv_heads) * hd;
                let qkv: Vec<f32> = (0..rows.len() * stride).map(|_| 2.0 * r()).collect();
                let layer = 1;
                let mut want = vec![0f32; rows.len() * heads * hd];
                for (ri, ar) in rows.iter().enumerate() {
                    for h in 0..heads {
                        let base = kv_off(&g, layer, ar.slot as usize, h / (heads / kv_heads), 0);
                        let ex =
                            &extra[ar.extra_off as usize..(ar.extra_off + ar.extra_len) as usize];
                        let idx: Vec<usize> = (ar.start as usize..ar.end as usize)
                            .chain(ex.iter().map(|&e| e as usize))
                            .collect();
                        let keys: Vec<&[f32]> = idx
                            .iter()
                            .map(|&i| &kv.k[base + i * hd..base + (i + 1) * hd])
                            .collect();
                        let vals: Vec<&[f32]> = idx
                            .iter()
                            .map(|&i| &kv.v[base + i * hd..base + (i + 1) * hd])
                            .collect();
                        let q = &qkv[ri * stride + h * hd..ri * stride + (h + 1) * hd];
                        let o = (ri * heads + h) * hd;
                        reference(q, &keys, &vals, &mut want[o..o + hd]);
                    }
                }
                for &var in &variants {
                    for pool in &pools {
                        let mut got = vec![f32::NAN; want.len()];
                        attention(pool, var, &qkv, &g, &kv, layer, &rows, &extra, &mut got);
                        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                            assert_eq!(
                                a.to_bits(),
                                b.to_bits(),
                                "{} hd={hd} heads={heads}/{kv_heads} element {i}: {a} vs {b}",
                                var.name()
                            );
                        }
                    }
                }
            }
        }
    }
}
