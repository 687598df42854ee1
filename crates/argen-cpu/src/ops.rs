//! Row operations of the CPU backend other than the GEMM and attention ([`crate::attn`]):
//! RMSNorm, 2D RoPE, convolution (im2col + GEMM), GroupNorm.

use crate::gemm::{self, dot, WRef};
use crate::par::Workers;
use crate::{CpuWeight, Gain};
use argen_core::detmath::silu_f32;
use argen_model::compute::Pos;
use std::cell::RefCell;

thread_local! {
    static COLS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out[r] = x[r] · rsqrt(mean(x[r]²) + eps) · w`.
pub fn rms_norm(x: &[f32], rows: usize, w: &CpuWeight, eps: f32, out: &mut [f32]) {
    let d = w.cols;
    for r in 0..rows {
        let xr = &x[r * d..(r + 1) * d];
        let ss = dot(xr, xr);
        let inv = 1.0 / (ss / d as f32 + eps).sqrt();
        let or = &mut out[r * d..(r + 1) * d];
        // The gain read in its stored dtype without a per-element dispatch (the same
        // `(x · inv) · w` in each arm, so the same bits; the loops vectorise).
        match w.data_1d() {
            Gain::F32(g) => or
                .iter_mut()
                .zip(xr.iter().zip(g))
                .for_each(|(o, (x, g))| *o = (x * inv) * g),
            Gain::BF16(g) => or
                .iter_mut()
                .zip(xr.iter().zip(g))
                .for_each(|(o, (x, g))| *o = (x * inv) * g.to_f32()),
            Gain::F16(g) => or
                .iter_mut()
                .zip(xr.iter().zip(g))
                .for_each(|(o, (x, g))| *o = (x * inv) * g.to_f32()),
            Gain::Other => {
                for (i, o) in or.iter_mut().enumerate() {
                    *o = (xr[i] * inv) * w.get(i);
                }
            }
        }
    }
}

/// Rotates every head of `x` (q heads then k heads, `head_dim` each) by `pos`: pair `i` (elements
/// `2i, 2i+1`) of the first half uses the row angle `freqs[row][i]`, pair `i` of the second
/// half the column angle `freqs[col][i]`; a condition row is multiplied by cos = sin = 0.
pub fn rope_row(x: &mut [f32], head_dim: usize, freqs: &[f32], pos: Pos) {
    let nf = head_dim / 4;
    match pos {
        Pos::Cond => x.iter_mut().for_each(|v| *v = 0.0),
        Pos::Grid { row, col } => {
            let tr = &freqs[row as usize * nf * 2..(row as usize + 1) * nf * 2];
            let tc = &freqs[col as usize * nf * 2..(col as usize + 1) * nf * 2];
            // Pairs `0..nf` by the row angles, `nf..2nf` by the column angles (two loops
            // without a per-pair branch, so they vectorise; the same operations per pair).
            let rotate = |xs: &mut [f32], t: &[f32]| {
                for (v, cs) in xs.chunks_exact_mut(2).zip(t.chunks_exact(2)) {
                    let (a, b, c, s) = (v[0], v[1], cs[0], cs[1]);
                    v[0] = a * c - b * s;
                    v[1] = b * c + a * s;
                }
            };
            for head in x.chunks_exact_mut(head_dim) {
                let (first, second) = head.split_at_mut(2 * nf);
                rotate(first, tr);
                rotate(&mut second[..2 * nf], tc);
            }
        }
    }
}

/// 3×3 (or k×k) convolution with zero padding k/2 in HWC layout via im2col in pixel blocks.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    pool: &Workers,
    tasks: usize,
    x: &[f32],
    h: usize,
    w: usize,
    cin: usize,
    weight: WRef<'_>,
    bias: Option<&[f32]>,
    cout: usize,
    k: usize,
    out: &mut [f32],
) {
    let p = h * w;
    if k == 1 {
        gemm::gemm(pool, tasks, x, p, cin, weight, cout, bias, out);
        return;
    }
    let kk = cin * k * k;
    let block = 512.min(p);
    let pad = (k / 2) as isize;
    COLS.with(|cell| {
        let mut cols = cell.borrow_mut();
        if cols.len() < block * kk {
            cols.resize(block * kk, 0.0);
        }
        let mut p0 = 0;
        while p0 < p {
            let nb = block.min(p - p0);
            for (bi, row) in cols[..nb * kk].chunks_exact_mut(kk).enumerate() {
                let pix = p0 + bi;
                let (y, xx) = ((pix / w) as isize, (pix % w) as isize);
                for ci in 0..cin {
                    for ky in 0..k as isize {
                        for kx in 0..k as isize {
                            let (sy, sx) = (y + ky - pad, xx + kx - pad);
                            let v = if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w
                            {
                                x[(sy as usize * w + sx as usize) * cin + ci]
                            } else {
                                0.0
                            };
                            row[(ci * k + ky as usize) * k + kx as usize] = v;
                        }
                    }
                }
            }
            gemm::gemm(
                pool,
                tasks,
                &cols[..nb * kk],
                nb,
                kk,
                weight,
                cout,
                bias,
                &mut out[p0 * cout..(p0 + nb) * cout],
            );
            p0 += nb;
        }
    });
}

/// GroupNorm over HWC `[pixels, c]` (statistics in f64), then optional SiLU.
#[allow(clippy::too_many_arguments)]
pub fn group_norm(
    x: &[f32],
    pixels: usize,
    c: usize,
    groups: usize,
    gamma: &CpuWeight,
    beta: &CpuWeight,
    eps: f32,
    silu: bool,
    out: &mut [f32],
) {
    let cpg = c / groups;
    let n = (pixels * cpg) as f64;
    for gi in 0..groups {
        let (c0, c1) = (gi * cpg, (gi + 1) * cpg);
        let mut s = 0f64;
        for p in 0..pixels {
            for v in &x[p * c + c0..p * c + c1] {
                s += *v as f64;
            }
        }
        let mean = s / n;
        let mut var = 0f64;
        for p in 0..pixels {
            for v in &x[p * c + c0..p * c + c1] {
                let d = *v as f64 - mean;
                var += d * d;
            }
        }
        let inv = 1.0 / (var / n + eps as f64).sqrt();
        for p in 0..pixels {
            for ch in c0..c1 {
                let v = ((x[p * c + ch] as f64 - mean) * inv) as f32 * gamma.get(ch) + beta.get(ch);
                out[p * c + ch] = if silu { silu_f32(v) } else { v };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-pair transcription of the rotation (one branch per pair).
    fn reference(x: &mut [f32], head_dim: usize, freqs: &[f32], row: usize, col: usize) {
        let nf = head_dim / 4;
        let tr = &freqs[row * nf * 2..(row + 1) * nf * 2];
        let tc = &freqs[col * nf * 2..(col + 1) * nf * 2];
        for head in x.chunks_exact_mut(head_dim) {
            for p in 0..head_dim / 2 {
                let (cs, sn) = if p < nf {
                    (tr[2 * p], tr[2 * p + 1])
                } else {
                    (tc[2 * (p - nf)], tc[2 * (p - nf) + 1])
                };
                let (a, b) = (head[2 * p], head[2 * p + 1]);
                head[2 * p] = a * cs - b * sn;
                head[2 * p + 1] = b * cs + a * sn;
            }
        }
    }

    #[test]
    fn rope_matches_the_per_pair_rotation_bit_for_bit() {
        let mut s = 0x9e3779b97f4a7c15u64;
        let mut r = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 22) as f32 - 2.0
        };
        for &hd in &[4usize, 8, 12, 64, 72] {
            let grid = 5;
            let freqs: Vec<f32> = (0..grid * hd / 2).map(|_| r()).collect();
            let x: Vec<f32> = (0..3 * hd).map(|_| r()).collect();
            for (row, col) in [(0, 0), (1, 4), (4, 2)] {
                let mut got = x.clone();
                rope_row(
                    &mut got,
                    hd,
                    &freqs,
                    Pos::Grid {
                        row: row as u32,
                        col: col as u32,
                    },
                );
                let mut want = x.clone();
                reference(&mut want, hd, &freqs, row, col);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "hd={hd} ({row}, {col})");
            }
        }
    }
}
