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
    /// An f16 gain widened once per [`rms_norm`] call.
    static GAIN: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out[r] = x[r] · rsqrt(mean(x[r]²) + eps) · w`.
///
/// An f16 gain is widened once per call (exactly, so the same bits): `f16::to_f32` element by
/// element checks for F16C at run time and does not vectorise, which made the norms of a
/// 128-row f16 verification forward cost 2 % of it (session 12, Zen 5).
///
/// With `pool` (calls of many rows on several threads) the rows are split into pieces run on
/// the workers; each row is computed the same way either way, so the bits do not change.
pub fn rms_norm(
    x: &[f32],
    rows: usize,
    w: &CpuWeight,
    eps: f32,
    out: &mut [f32],
    pool: Option<&Workers>,
) {
    let mut run = |gain: Gain<'_>| match pool {
        Some(pool) if rows > 1 => {
            let d = w.cols;
            pool.rows_mut(&mut out[..rows * d], d, |r0, piece| {
                let n = piece.len() / d;
                norm_rows(&x[r0 * d..(r0 + n) * d], n, w, eps, piece, gain);
            });
        }
        _ => norm_rows(x, rows, w, eps, out, gain),
    };
    match w.data_1d() {
        Gain::F16(g) => GAIN.with_borrow_mut(|buf| {
            buf.clear();
            buf.resize(g.len(), 0.0);
            half::slice::HalfFloatSliceExt::convert_to_f32_slice(g, buf);
            run(Gain::F32(buf));
        }),
        gain => run(gain),
    }
}

/// [`rms_norm`] with the gain `gain` (`w`'s, or `w`'s widened).
fn norm_rows(x: &[f32], rows: usize, w: &CpuWeight, eps: f32, out: &mut [f32], gain: Gain<'_>) {
    let d = w.cols;
    for r in 0..rows {
        let xr = &x[r * d..(r + 1) * d];
        let ss = dot(xr, xr);
        let inv = 1.0 / (ss / d as f32 + eps).sqrt();
        let or = &mut out[r * d..(r + 1) * d];
        // The gain read in its stored dtype without a per-element dispatch (the same
        // `(x · inv) · w` in each arm, so the same bits; the loops vectorise).
        match gain {
            Gain::F32(g) => or
                .iter_mut()
                .zip(xr.iter().zip(g))
                .for_each(|(o, (x, g))| *o = (x * inv) * g),
            Gain::BF16(g) => or
                .iter_mut()
                .zip(xr.iter().zip(g))
                .for_each(|(o, (x, g))| *o = (x * inv) * g.to_f32()),
            // (`rms_norm` passes an f16 gain widened, as `Gain::F32`.)
            Gain::F16(_) | Gain::Other => {
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

/// k×k convolution with zero padding k/2 in HWC layout via im2col in pixel blocks: row `pix`
/// of a block holds input element `(ci·k + ky)·k + kx` = `x[pix + (ky − k/2, kx − k/2), ci]`
/// (zero outside the image), the order of the weight's `[cout, cin, k, k]` flattening, and a
/// GEMM against the weights gives the block's outputs.
///
/// The rows are filled in parallel on `pool`: each tap of a pixel reads from the pixel's `cin`
/// contiguous input channels (or from zeros, outside the image), and the row is written in
/// order. Only the copying changed from the element-by-element gather before (session 8), so
/// the bits are the same (tested against it below); on the 2-core Zen 4 dev box the ShapesWorld
/// VQ decoder's convolutions spent about a third of the image's decode time gathering.
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
    COLS.with(|cell| {
        let mut cols = cell.borrow_mut();
        if cols.len() < block * kk {
            cols.resize(block * kk, 0.0);
        }
        let mut p0 = 0;
        while p0 < p {
            let nb = block.min(p - p0);
            // Rows in pieces of 32 pixels per task.
            pool.chunks_mut(&mut cols[..nb * kk], 32 * kk, |i, rows| {
                for (bi, row) in rows.chunks_exact_mut(kk).enumerate() {
                    im2col_row(x, h, w, cin, k, p0 + i * 32 + bi, row);
                }
            });
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

/// Row `pix` of the im2col matrix ([`conv2d`]): `row[(ci·k + ky)·k + kx]` for every tap.
/// Each tap's source is the pixel's `cin` contiguous channels, or zeros outside the image; the
/// row is then written in order, `k²` taps per channel.
fn im2col_row(x: &[f32], h: usize, w: usize, cin: usize, k: usize, pix: usize, row: &mut [f32]) {
    const MAX_TAPS: usize = 49;
    let taps = k * k;
    if taps > MAX_TAPS || cin > ZEROS.len() {
        return im2col_row_by_tap(x, h, w, cin, k, pix, row);
    }
    let pad = k / 2;
    let (y, xx) = (pix / w, pix % w);
    let mut src: [&[f32]; MAX_TAPS] = [&ZEROS[..0]; MAX_TAPS];
    for (t, s) in src[..taps].iter_mut().enumerate() {
        let (ky, kx) = (t / k, t % k);
        // Source pixel (y + ky − pad, xx + kx − pad), if inside the image.
        let sy = (y + ky).checked_sub(pad).filter(|&sy| sy < h);
        let sx = (xx + kx).checked_sub(pad).filter(|&sx| sx < w);
        *s = match (sy, sx) {
            (Some(sy), Some(sx)) => &x[(sy * w + sx) * cin..(sy * w + sx + 1) * cin],
            _ => &ZEROS[..cin],
        };
    }
    for (ci, out) in row[..cin * taps].chunks_exact_mut(taps).enumerate() {
        for (o, s) in out.iter_mut().zip(&src[..taps]) {
            *o = s[ci];
        }
    }
}

/// Zeros standing in for a tap outside the image ([`im2col_row`]).
static ZEROS: [f32; 4096] = [0.0; 4096];

/// [`im2col_row`] for kernels above 7×7 or more than 4096 input channels: one tap at a time.
fn im2col_row_by_tap(
    x: &[f32],
    h: usize,
    w: usize,
    cin: usize,
    k: usize,
    pix: usize,
    row: &mut [f32],
) {
    let pad = k / 2;
    let (y, xx) = (pix / w, pix % w);
    for ky in 0..k {
        for kx in 0..k {
            let tap = ky * k + kx;
            let sy = (y + ky).checked_sub(pad).filter(|&sy| sy < h);
            let sx = (xx + kx).checked_sub(pad).filter(|&sx| sx < w);
            match (sy, sx) {
                (Some(sy), Some(sx)) => {
                    let src = &x[(sy * w + sx) * cin..(sy * w + sx + 1) * cin];
                    for (d, &v) in row[tap..].iter_mut().step_by(k * k).zip(src) {
                        *d = v;
                    }
                }
                _ => row[tap..].iter_mut().step_by(k * k).for_each(|d| *d = 0.0),
            }
        }
    }
}

/// GroupNorm over HWC `[pixels, c]`, then optional SiLU. Per group `g` of `c/groups`
/// channels: the mean `m = Σ x / n` and variance `Σ (x − m)² / n` in f64, each sum running over
/// the pixels in order and, within a pixel, over the group's channels in order; then
/// `y = f32((x − m) · inv) · γ + β` with `inv = 1 / sqrt(var + eps)` (f64) and the product and
/// sum in f32, and `silu_f32(y)` if asked.
///
/// Session 8 rewrote the loops without changing an operation: the sums of all groups advance
/// together (one pass over the image per statistic, each group's own chain of additions
/// unchanged, so the CPU overlaps the groups' chains instead of waiting on one), `γ` and `β`
/// are widened once instead of read through a per-element dispatch, the normalisation runs
/// on `pool` in pieces of pixels, and SiLU is [`crate::vmath::silu`] (bit for bit the scalar
/// `silu_f32`). Tested against the previous element-by-element code, bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn group_norm(
    pool: &Workers,
    variant: gemm::Variant,
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
    let cpg = c.checked_div(groups).unwrap_or(0);
    if cpg == 0 || cpg * groups != c {
        // Channels that no group covers stay as they are (as in the reference).
        return group_norm_by_element(x, pixels, c, groups, gamma, beta, eps, silu, out);
    }
    let n = (pixels * cpg) as f64;
    let x = &x[..pixels * c];
    let mut sum = vec![0f64; groups];
    for px in x.chunks_exact(c) {
        for (s, ch) in sum.iter_mut().zip(px.chunks_exact(cpg)) {
            *s = ch.iter().fold(*s, |a, &v| a + v as f64);
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let mut var = vec![0f64; groups];
    for px in x.chunks_exact(c) {
        for ((s, ch), &m) in var.iter_mut().zip(px.chunks_exact(cpg)).zip(&mean) {
            *s = ch.iter().fold(*s, |a, &v| {
                let d = v as f64 - m;
                a + d * d
            });
        }
    }
    // Per channel: the group's mean and 1/sqrt(var + eps), and γ, β widened.
    let chan = |g: &[f64]| -> Vec<f64> { (0..c).map(|ch| g[(ch / cpg).min(groups - 1)]).collect() };
    let inv: Vec<f64> = var
        .iter()
        .map(|v| 1.0 / (v / n + eps as f64).sqrt())
        .collect();
    let (mean_c, inv_c) = (chan(&mean), chan(&inv));
    let gam: Vec<f32> = (0..c).map(|ch| gamma.get(ch)).collect();
    let bet: Vec<f32> = (0..c).map(|ch| beta.get(ch)).collect();
    let rows = 64.max(4096 / c.max(1));
    pool.chunks_mut(&mut out[..pixels * c], rows * c, |i, o| {
        let xs = &x[i * rows * c..i * rows * c + o.len()];
        for (orow, xrow) in o.chunks_exact_mut(c).zip(xs.chunks_exact(c)) {
            for ch in 0..c {
                orow[ch] = ((xrow[ch] as f64 - mean_c[ch]) * inv_c[ch]) as f32 * gam[ch] + bet[ch];
            }
        }
        if silu {
            crate::vmath::silu(variant, o);
        }
    });
}

/// [`group_norm`] element by element, as it was before session 8: the reference its tests
/// hold the fast path to, and the path for channel counts that the groups do not divide.
#[allow(clippy::too_many_arguments)]
pub(crate) fn group_norm_by_element(
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
    let cpg = c.checked_div(groups).unwrap_or(0);
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

    /// [`crate::test_rng`] scaled to [−2, 2) (exactly: the scaling is by a power of two).
    fn rng(seed: u64) -> impl FnMut() -> f32 {
        let mut r = crate::test_rng(seed);
        move || 4.0 * r()
    }

    /// The element-by-element im2col gather that [`conv2d`] replaced.
    fn im2col_by_element(
        x: &[f32],
        h: usize,
        w: usize,
        cin: usize,
        k: usize,
        pix: usize,
    ) -> Vec<f32> {
        let pad = (k / 2) as isize;
        let mut row = vec![f32::NAN; cin * k * k];
        let (y, xx) = ((pix / w) as isize, (pix % w) as isize);
        for ci in 0..cin {
            for ky in 0..k as isize {
                for kx in 0..k as isize {
                    let (sy, sx) = (y + ky - pad, xx + kx - pad);
                    let v = if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        x[(sy as usize * w + sx as usize) * cin + ci]
                    } else {
                        0.0
                    };
                    row[(ci * k + ky as usize) * k + kx as usize] = v;
                }
            }
        }
        row
    }

    /// An f16 gain (widened once per call) gives the bits of the same gain stored as f32,
    /// and of the per-element `(x · inv) · w.get(i)`, for 1 and several rows.
    #[test]
    fn rms_norm_f16_gain_equals_the_gain_widened() {
        let mut r = rng(7);
        let d = 77;
        let g16: Vec<half::f16> = (0..d).map(|_| half::f16::from_f32(r())).collect();
        let g32: Vec<f32> = g16.iter().map(|g| g.to_f32()).collect();
        let w16 = CpuWeight {
            data: crate::WData::F16(crate::hugemem::Buf::from_slice(&g16)),
            rows: 1,
            cols: d,
        };
        let w32 = CpuWeight {
            data: crate::WData::F32(crate::hugemem::Buf::from_slice(&g32)),
            rows: 1,
            cols: d,
        };
        // Split over the rows on 2 and 3 threads (pieces of whole rows, the last shorter):
        // the same bits as on the calling thread alone.
        let pools = [Workers::new(2).unwrap(), Workers::new(3).unwrap()];
        for rows in [1usize, 3, 7, 13] {
            let x: Vec<f32> = (0..rows * d).map(|_| r()).collect();
            let (mut a, mut b) = (vec![0.0; rows * d], vec![0.0; rows * d]);
            rms_norm(&x, rows, &w16, 1e-5, &mut a, None);
            rms_norm(&x, rows, &w32, 1e-5, &mut b, None);
            let mut c = vec![0.0; rows * d];
            norm_rows(&x, rows, &w16, 1e-5, &mut c, crate::Gain::Other);
            for i in 0..rows * d {
                assert_eq!(a[i].to_bits(), b[i].to_bits(), "rows {rows}, element {i}");
                assert_eq!(a[i].to_bits(), c[i].to_bits(), "rows {rows}, element {i}");
            }
            for pool in &pools {
                for w in [&w16, &w32] {
                    let mut p = vec![0.0; rows * d];
                    rms_norm(&x, rows, w, 1e-5, &mut p, Some(pool));
                    for i in 0..rows * d {
                        assert_eq!(p[i].to_bits(), a[i].to_bits(), "rows {rows}, element {i}");
                    }
                }
            }
        }
    }

    /// The convolution equals the GEMM of the element-by-element im2col rows, bit for bit,
    /// on one and two threads, for odd sizes, 1×1, 3×3 and 9×9 kernels (the tap-by-tap path)
    /// and pixel counts above one block (512).
    #[test]
    fn conv2d_equals_the_gemm_of_the_gathered_rows() {
        let mut r = rng(41);
        let pools = [(Workers::new(1).unwrap(), 1), (Workers::new(2).unwrap(), 8)];
        for &(h, w, cin, cout, k) in &[
            (5usize, 7usize, 3usize, 4usize, 3usize),
            (8, 8, 16, 8, 3),
            (1, 1, 4, 4, 3),
            (3, 3, 5, 2, 1),
            (23, 25, 6, 5, 3),
            (4, 5, 2, 3, 9),
        ] {
            let x: Vec<f32> = (0..h * w * cin).map(|_| r()).collect();
            let wt: Vec<f32> = (0..cout * cin * k * k).map(|_| r()).collect();
            let bias: Vec<f32> = (0..cout).map(|_| r()).collect();
            let kk = cin * k * k;
            let cols: Vec<f32> = if k == 1 {
                x.clone()
            } else {
                (0..h * w)
                    .flat_map(|p| im2col_by_element(&x, h, w, cin, k, p))
                    .collect()
            };
            let mut want = vec![0f32; h * w * cout];
            gemm::gemm(
                &pools[0].0,
                1,
                &cols,
                h * w,
                kk,
                WRef::F32(&wt),
                cout,
                Some(&bias),
                &mut want,
            );
            for (pool, tasks) in &pools {
                let mut got = vec![f32::NAN; h * w * cout];
                conv2d(
                    pool,
                    *tasks,
                    &x,
                    h,
                    w,
                    cin,
                    WRef::F32(&wt),
                    Some(&bias),
                    cout,
                    k,
                    &mut got,
                );
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{h}x{w} cin {cin} cout {cout} k {k}"
                );
            }
        }
    }

    /// The fast GroupNorm equals the element-by-element one bit for bit (f32 and bf16 gains,
    /// with and without SiLU, one and two threads, every kernel variant the CPU runs).
    #[test]
    fn group_norm_equals_the_element_by_element_reference() {
        use crate::hugemem::Buf;
        use crate::WData;
        use half::bf16;
        let mut r = rng(43);
        let pools = [Workers::new(1).unwrap(), Workers::new(2).unwrap()];
        let variants: Vec<gemm::Variant> = gemm::Variant::ALL
            .into_iter()
            .filter(|v| v.unsupported().is_none())
            .collect();
        for &(pixels, c, groups) in &[
            (1usize, 8usize, 1usize),
            (37, 32, 4),
            (300, 96, 32),
            (70, 6, 4),
        ] {
            let x: Vec<f32> = (0..pixels * c).map(|_| 3.0 * r() + 0.5).collect();
            let g: Vec<f32> = (0..c).map(|_| r()).collect();
            let b: Vec<f32> = (0..c).map(|_| r()).collect();
            let weights = [
                (
                    CpuWeight {
                        data: WData::F32(Buf::from_slice(&g)),
                        rows: 1,
                        cols: c,
                    },
                    CpuWeight {
                        data: WData::F32(Buf::from_slice(&b)),
                        rows: 1,
                        cols: c,
                    },
                ),
                (
                    CpuWeight {
                        data: WData::BF16(Buf::from_fn(c, |i| bf16::from_f32(g[i]))),
                        rows: 1,
                        cols: c,
                    },
                    CpuWeight {
                        data: WData::BF16(Buf::from_fn(c, |i| bf16::from_f32(b[i]))),
                        rows: 1,
                        cols: c,
                    },
                ),
            ];
            for (gamma, beta) in &weights {
                for silu in [false, true] {
                    let mut want = vec![7.0f32; pixels * c];
                    group_norm_by_element(
                        &x, pixels, c, groups, gamma, beta, 1e-6, silu, &mut want,
                    );
                    for pool in &pools {
                        for &var in &variants {
                            let mut got = vec![7.0f32; pixels * c];
                            group_norm(
                                pool, var, &x, pixels, c, groups, gamma, beta, 1e-6, silu, &mut got,
                            );
                            let bits =
                                |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                            assert_eq!(
                                bits(&got),
                                bits(&want),
                                "{pixels} px, {c} ch, {groups} groups, silu {silu}, {var:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rope_matches_the_per_pair_rotation_bit_for_bit() {
        let mut r = rng(0x9e3779b97f4a7c15);
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
