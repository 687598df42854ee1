//! `out[r, n] = Σ_k x[r, k] · w[n, k] (+ bias[n])` with weights in f32, f16 or bf16, computed in
//! f32.
//!
//! Decode is memory-bound (a few rows against every weight), so the kernel streams each weight
//! row exactly once per call whatever the number of rows: the output columns are split into
//! contiguous ranges, one per task; a task walks its range four weight rows at a time (half
//! weights are widened into a small thread-local f32 tile) and computes the dot products of
//! those four rows with every input row (two at a time), holding 8 AVX2 accumulators.
//!
//! Reduction order is fixed: per-lane accumulation over `k` in steps of 8, then the lanes are
//! summed in a fixed tree, then the scalar tail. Every output element is therefore computed the
//! same way whatever the row count, the batch composition or the number of threads — a row's
//! result is bit-identical whether it is computed alone or in a batch.

use half::{bf16, f16};
use rayon::prelude::*;
use std::cell::RefCell;

/// A borrowed weight matrix `[n, k]`.
#[derive(Clone, Copy, Debug)]
pub enum WRef<'a> {
    /// f32 weights.
    F32(&'a [f32]),
    /// f16 weights.
    F16(&'a [f16]),
    /// bf16 weights.
    BF16(&'a [bf16]),
}

thread_local! {
    static TILE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the pointer is only used to write disjoint output columns from different tasks
// (see `gemm`), and the buffer outlives the parallel section.
unsafe impl Send for OutPtr {}
// SAFETY: as above; shared only to be copied into tasks that write disjoint elements.
unsafe impl Sync for OutPtr {}

#[allow(clippy::too_many_arguments)]
/// Computes `out[..rows·n]` (row-major `[rows, n]`) from `x[..rows·k]` and `w` (`[n, k]`).
pub fn gemm(
    pool: &rayon::ThreadPool,
    tasks: usize,
    x: &[f32],
    rows: usize,
    k: usize,
    w: WRef<'_>,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    assert!(
        x.len() >= rows * k && out.len() >= rows * n,
        "gemm buffers too small"
    );
    if rows == 0 || n == 0 {
        return;
    }
    let ptr = OutPtr(out.as_mut_ptr());
    // Tile-aligned column ranges.
    let tiles = n.div_ceil(4);
    let tasks = tasks.clamp(1, tiles);
    let per = tiles.div_ceil(tasks);
    let run = |t: usize| {
        let n0 = (t * per * 4).min(n);
        let n1 = ((t + 1) * per * 4).min(n);
        if n0 < n1 {
            // SAFETY: task t writes only columns n0..n1 of the rows*n output, and the column
            // ranges of distinct tasks are disjoint; `out` is borrowed mutably for the call.
            unsafe { task(x, rows, k, w, n, n0, n1, bias, ptr) };
        }
    };
    if tasks == 1 {
        run(0);
    } else {
        pool.install(|| (0..tasks).into_par_iter().for_each(run));
    }
}

/// # Safety
/// `out` must point to a `rows·n` buffer of which this call is the only writer of columns
/// `n0..n1`.
#[allow(clippy::too_many_arguments)]
unsafe fn task(
    x: &[f32],
    rows: usize,
    k: usize,
    w: WRef<'_>,
    n: usize,
    n0: usize,
    n1: usize,
    bias: Option<&[f32]>,
    out: OutPtr,
) {
    TILE.with(|cell| {
        let mut tile = cell.borrow_mut();
        if tile.len() < 4 * k {
            tile.resize(4 * k, 0.0);
        }
        let mut j = n0;
        while j < n1 {
            let nr = (n1 - j).min(4);
            let wrows: [&[f32]; 4] = match w {
                WRef::F32(wf) => {
                    let r = |i: usize| &wf[(j + i.min(nr - 1)) * k..(j + i.min(nr - 1) + 1) * k];
                    [r(0), r(1), r(2), r(3)]
                }
                WRef::F16(wh) => {
                    for i in 0..nr {
                        let src = &wh[(j + i) * k..(j + i + 1) * k];
                        half::slice::HalfFloatSliceExt::convert_to_f32_slice(
                            src,
                            &mut tile[i * k..(i + 1) * k],
                        );
                    }
                    let t: &[f32] = &tile;
                    let r = |i: usize| &t[i.min(nr - 1) * k..(i.min(nr - 1) + 1) * k];
                    [r(0), r(1), r(2), r(3)]
                }
                WRef::BF16(wb) => {
                    for i in 0..nr {
                        let src = &wb[(j + i) * k..(j + i + 1) * k];
                        for (d, s) in tile[i * k..(i + 1) * k].iter_mut().zip(src) {
                            *d = f32::from_bits((s.to_bits() as u32) << 16);
                        }
                    }
                    let t: &[f32] = &tile;
                    let r = |i: usize| &t[i.min(nr - 1) * k..(i.min(nr - 1) + 1) * k];
                    [r(0), r(1), r(2), r(3)]
                }
            };
            let mut r = 0;
            while r < rows {
                let mr = (rows - r).min(2);
                let x0 = &x[r * k..(r + 1) * k];
                let x1 = &x[(r + mr - 1) * k..(r + mr) * k];
                let acc = dot_2x4(x0, x1, wrows, k);
                for (mi, accm) in acc.iter().enumerate().take(mr) {
                    for (ni, &a) in accm.iter().enumerate().take(nr) {
                        let b = bias.map_or(0.0, |b| b[j + ni]);
                        // SAFETY: (r+mi, j+ni) is inside rows x n and j+ni is in n0..n1.
                        unsafe { *out.0.add((r + mi) * n + j + ni) = a + b };
                    }
                }
                r += mr;
            }
            j += nr;
        }
    });
}

#[inline(always)]
fn hsum(a: [f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// Dot products of two x rows with four weight rows (fixed reduction order).
#[inline]
pub fn dot_2x4(x0: &[f32], x1: &[f32], w: [&[f32]; 4], k: usize) -> [[f32; 4]; 2] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked above); slices hold >= k floats.
            return unsafe { avx2::dot_2x4(x0, x1, w, k) };
        }
    }
    portable_dot_2x4(x0, x1, w, k)
}

/// Dot product of two vectors with the same reduction order as [`dot_2x4`].
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let k = a.len().min(b.len());
    dot_2x4(a, a, [b, b, b, b], k)[0][0]
}

fn portable_dot_2x4(x0: &[f32], x1: &[f32], w: [&[f32]; 4], k: usize) -> [[f32; 4]; 2] {
    let mut acc = [[[0f32; 8]; 4]; 2];
    let kb = k / 8 * 8;
    let mut i = 0;
    while i < kb {
        for n in 0..4 {
            for l in 0..8 {
                acc[0][n][l] = x0[i + l].mul_add(w[n][i + l], acc[0][n][l]);
                acc[1][n][l] = x1[i + l].mul_add(w[n][i + l], acc[1][n][l]);
            }
        }
        i += 8;
    }
    let mut res = [[0f32; 4]; 2];
    for n in 0..4 {
        let mut t0 = hsum(acc[0][n]);
        let mut t1 = hsum(acc[1][n]);
        for kk in kb..k {
            t0 = x0[kk].mul_add(w[n][kk], t0);
            t1 = x1[kk].mul_add(w[n][kk], t1);
        }
        res[0][n] = t0;
        res[1][n] = t1;
    }
    res
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::hsum;
    use std::arch::x86_64::*;

    /// # Safety
    /// Requires AVX2 and FMA; all slices hold at least `k` floats.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_2x4(x0: &[f32], x1: &[f32], w: [&[f32]; 4], k: usize) -> [[f32; 4]; 2] {
        let kb = k / 8 * 8;
        let mut a = [_mm256_setzero_ps(); 8];
        let (p0, p1) = (x0.as_ptr(), x1.as_ptr());
        let pw = [w[0].as_ptr(), w[1].as_ptr(), w[2].as_ptr(), w[3].as_ptr()];
        let mut i = 0;
        while i < kb {
            // SAFETY: i + 8 <= kb <= k and every slice holds >= k floats.
            unsafe {
                let v0 = _mm256_loadu_ps(p0.add(i));
                let v1 = _mm256_loadu_ps(p1.add(i));
                for n in 0..4 {
                    let wv = _mm256_loadu_ps(pw[n].add(i));
                    a[n] = _mm256_fmadd_ps(v0, wv, a[n]);
                    a[4 + n] = _mm256_fmadd_ps(v1, wv, a[4 + n]);
                }
            }
            i += 8;
        }
        let mut res = [[0f32; 4]; 2];
        for n in 0..4 {
            let mut l0 = [0f32; 8];
            let mut l1 = [0f32; 8];
            // SAFETY: the arrays hold 8 floats each.
            unsafe {
                _mm256_storeu_ps(l0.as_mut_ptr(), a[n]);
                _mm256_storeu_ps(l1.as_mut_ptr(), a[4 + n]);
            }
            let mut t0 = hsum(l0);
            let mut t1 = hsum(l1);
            for kk in kb..k {
                t0 = x0[kk].mul_add(w[n][kk], t0);
                t1 = x1[kk].mul_add(w[n][kk], t1);
            }
            res[0][n] = t0;
            res[1][n] = t1;
        }
        res
    }
}

/// Parallel helper used by the other ops: splits `out` into `chunk`-sized pieces.
pub fn par_chunks<F>(pool: &rayon::ThreadPool, out: &mut [f32], chunk: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    pool.install(|| {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c))
    });
}
