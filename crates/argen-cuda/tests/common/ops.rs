//! Every model-operation kernel (`GpuCompute`, the `argen_model::Compute` trait) through an
//! executor, against argen-cpu's implementation of the same trait on the same random inputs:
//! odd sizes, f32 / f16 / bf16 weights, grouped-query heads, condition rows, tree-shaped key
//! lists. Shared by `pocl_model_ops.rs` (PoCL) and `gpu_parity.rs` (CUDA); each `pub fn`
//! taking `dev` is one test body.
//!
//! Metric: per output tensor, `max_i |gpu_i − cpu_i| / max(max_i |cpu_i|, 1e-30)` (the
//! largest absolute error relative to the tensor's largest magnitude), bound `1e-5` ([`TOL`];
//! the GEMM-based operations take theirs from [`Bounds`], which is `1e-5` except for cuBLAS's
//! 16-bit path, see `model.rs`). The elementwise and normalisation outputs (RMSNorm,
//! GroupNorm) must also meet the per-element bound
//! `|gpu_i − cpu_i| ≤ 1e-6 · max(|cpu_i|, 1)` (relative above 1, absolute below). Gathers,
//! copies, upsampling, transposes, the KV store/move and the activations SiLU·mul and GELU (both
//! sides evaluate `argen_core::detmath`'s formulas) are checked bit for bit.

pub use super::Rng;

use super::model::{Bounds, TOL};
use argen_cpu::Cpu;
use argen_cuda::compute::GpuCompute;
use argen_cuda::launch::Executor;
use argen_model::compute::{AttnRow, Compute, KvDest, KvGeometry, Pos};
use argen_model::safetensors::{Dtype, TensorView};
use half::{bf16, f16};

/// Per-element bound of the elementwise and normalisation outputs (measured worst: 2.5e-7).
pub const ELEM_TOL: f32 = 1e-6;

pub const DTYPES: [Dtype; 3] = [Dtype::F32, Dtype::F16, Dtype::BF16];

fn cpu() -> Cpu {
    Cpu::new(1).expect("cpu backend")
}

/// The tensor metric of the module docs.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-30);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Raw bytes of `data` in `dt` (the same bytes go to both backends).
pub fn raw(data: &[f32], dt: Dtype) -> Vec<u8> {
    match dt {
        Dtype::F32 => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F16 => data
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect(),
        Dtype::BF16 => data
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
            .collect(),
        Dtype::Other(_) => unreachable!("test dtypes"),
    }
}

pub fn weight<C: Compute>(c: &C, data: &[f32], shape: &[usize], dt: Dtype) -> C::Weight {
    let bytes = raw(data, dt);
    c.weight(TensorView {
        dtype: dt,
        shape,
        data: &bytes,
    })
    .expect("weight")
}

pub fn buf<C: Compute>(c: &C, data: &[f32]) -> C::Buf {
    let mut b = c.buf(data.len()).expect("buf");
    c.upload(&mut b, 0, data).expect("upload");
    b
}

pub fn get<C: Compute>(c: &C, b: &C::Buf, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    c.download(b, 0, &mut out).expect("download");
    out
}

fn check(what: &str, gpu: &[f32], cpu: &[f32], tol: f32) {
    let e = rel_err(gpu, cpu);
    eprintln!("{what}: rel err {e:e}");
    assert!(e <= tol, "{what}: rel err {e:e} > {tol:e}");
    assert!(
        gpu.iter().all(|v| v.is_finite()),
        "{what}: non-finite output"
    );
}

/// The per-element metric of the module docs: `max_i |a_i − b_i| / max(|b_i|, 1)`.
pub fn elem_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs() / y.abs().max(1.0)))
}

/// [`check`] plus the per-element bound.
fn check_elem(what: &str, gpu: &[f32], cpu: &[f32]) {
    check(what, gpu, cpu, TOL);
    let e = elem_err(gpu, cpu);
    eprintln!("{what}: per-element err {e:e}");
    assert!(
        e <= ELEM_TOL,
        "{what}: per-element err {e:e} > {ELEM_TOL:e}"
    );
}

pub fn gather_embed_and_gather_rows_are_exact<E: Executor>(dev: &GpuCompute<E>) {
    let (g, c) = (dev.clone(), cpu());
    let mut rng = Rng(11);
    for dt in DTYPES {
        for (rows_t, cols) in [(1usize, 1usize), (9, 37), (50, 300)] {
            let table = rng.vec(rows_t * cols, 3.0);
            let ids: Vec<u32> = (0..23).map(|_| rng.index(rows_t) as u32).collect();
            let (wg, wc) = (
                weight(&g, &table, &[rows_t, cols], dt),
                weight(&c, &table, &[rows_t, cols], dt),
            );
            let mut og = g.buf(ids.len() * cols).unwrap();
            let mut oc = c.buf(ids.len() * cols).unwrap();
            g.embed(&wg, cols, &ids, &mut og);
            c.embed(&wc, cols, &ids, &mut oc);
            let (a, b) = (
                get(&g, &og, ids.len() * cols),
                get(&c, &oc, ids.len() * cols),
            );
            assert_eq!(a, b, "embed {dt:?} {rows_t}x{cols}");
            // gather_rows from the embedded rows.
            let pick: Vec<u32> = (0..7).map(|_| rng.index(ids.len()) as u32).collect();
            let mut pg = g.buf(pick.len() * cols).unwrap();
            let mut pc = c.buf(pick.len() * cols).unwrap();
            g.gather_rows(&og, cols, &pick, &mut pg);
            c.gather_rows(&oc, cols, &pick, &mut pc);
            assert_eq!(
                get(&g, &pg, pick.len() * cols),
                get(&c, &pc, pick.len() * cols),
                "gather_rows {cols}"
            );
        }
    }
}

pub fn linear_matches_cpu_for_all_dtypes_and_odd_shapes<E: Executor>(
    dev: &GpuCompute<E>,
    bounds: &Bounds,
) {
    let (g, c) = (dev.clone(), cpu());
    let mut rng = Rng(12);
    let mut worst = 0f32;
    for dt in DTYPES {
        for (n, k) in [(1usize, 1usize), (5, 7), (65, 33), (130, 300), (64, 64)] {
            for rows in [1usize, 2, 3, 33, 70] {
                for bias_dt in [None, Some(Dtype::F32), Some(Dtype::BF16)] {
                    let w = rng.vec(n * k, 1.0);
                    let x = rng.vec(rows * k, 2.0);
                    let b = rng.vec(n, 1.0);
                    let (wg, wc) = (weight(&g, &w, &[n, k], dt), weight(&c, &w, &[n, k], dt));
                    let bg = bias_dt.map(|d| weight(&g, &b, &[n], d));
                    let bc = bias_dt.map(|d| weight(&c, &b, &[n], d));
                    let (xg, xc) = (buf(&g, &x), buf(&c, &x));
                    let mut og = g.buf(rows * n).unwrap();
                    let mut oc = c.buf(rows * n).unwrap();
                    g.linear(&xg, rows, &wg, bg.as_ref(), &mut og);
                    c.linear(&xc, rows, &wc, bc.as_ref(), &mut oc);
                    let (a, r) = (get(&g, &og, rows * n), get(&c, &oc, rows * n));
                    worst = worst.max(rel_err(&a, &r));
                    check(
                        &format!("linear {dt:?} rows {rows} n {n} k {k} bias {bias_dt:?}"),
                        &a,
                        &r,
                        bounds.cpu(dt),
                    );
                }
            }
        }
    }
    eprintln!("linear: worst rel err {worst:e}");
}

pub fn linear_rows_do_not_depend_on_the_batch<E: Executor>(dev: &GpuCompute<E>, bounds: &Bounds) {
    // The determinism rule: row r of a 70-row GEMM equals the same row computed alone.
    let g = dev.clone();
    let mut rng = Rng(13);
    let (n, k, rows) = (70usize, 129usize, 70usize);
    let w = rng.vec(n * k, 1.0);
    let x = rng.vec(rows * k, 1.0);
    let wg = weight(&g, &w, &[n, k], Dtype::BF16);
    let xg = buf(&g, &x);
    let mut all = g.buf(rows * n).unwrap();
    g.linear(&xg, rows, &wg, None, &mut all);
    let all = get(&g, &all, rows * n);
    for r in [0usize, 31, 32, 69] {
        let one = buf(&g, &x[r * k..(r + 1) * k]);
        let mut o = g.buf(n).unwrap();
        g.linear(&one, 1, &wg, None, &mut o);
        let one = get(&g, &o, n);
        if bounds.batch_exact {
            assert_eq!(one, all[r * n..(r + 1) * n].to_vec(), "row {r}");
        } else {
            check(
                &format!("row {r} (vendor GEMM)"),
                &one,
                &all[r * n..(r + 1) * n],
                TOL,
            );
        }
    }
}

pub fn rms_norm_and_elementwise_match_cpu<E: Executor>(dev: &GpuCompute<E>) {
    let (g, c) = (dev.clone(), cpu());
    let mut rng = Rng(14);
    for dt in DTYPES {
        for (rows, d) in [(1usize, 1usize), (3, 7), (5, 300), (2, 513)] {
            let x = rng.vec(rows * d, 4.0);
            let w = rng.vec(d, 2.0);
            let (wg, wc) = (weight(&g, &w, &[d], dt), weight(&c, &w, &[d], dt));
            let (xg, xc) = (buf(&g, &x), buf(&c, &x));
            let mut og = g.buf(rows * d).unwrap();
            let mut oc = c.buf(rows * d).unwrap();
            g.rms_norm(&xg, rows, &wg, 1e-5, &mut og);
            c.rms_norm(&xc, rows, &wc, 1e-5, &mut oc);
            check_elem(
                &format!("rms_norm {dt:?} {rows}x{d}"),
                &get(&g, &og, rows * d),
                &get(&c, &oc, rows * d),
            );
        }
    }
    for len in [1usize, 255, 257, 1000] {
        let a = rng.vec(len, 9.0);
        let b = rng.vec(len, 3.0);
        // add_assign
        let (mut ag, mut ac) = (buf(&g, &a), buf(&c, &a));
        let (bg, bc) = (buf(&g, &b), buf(&c, &b));
        g.add_assign(&mut ag, &bg, len);
        c.add_assign(&mut ac, &bc, len);
        assert_eq!(get(&g, &ag, len), get(&c, &ac, len), "add_assign {len}");
        // silu_mul
        let (mut ag, mut ac) = (buf(&g, &a), buf(&c, &a));
        g.silu_mul(&mut ag, &bg, len);
        c.silu_mul(&mut ac, &bc, len);
        // Both sides evaluate detmath's silu (no platform tanh/exp): bit for bit.
        assert_eq!(
            bits(&get(&g, &ag, len)),
            bits(&get(&c, &ac, len)),
            "silu_mul {len}"
        );
        // gelu_tanh
        let (mut ag, mut ac) = (buf(&g, &a), buf(&c, &a));
        g.gelu_tanh(&mut ag, len);
        c.gelu_tanh(&mut ac, len);
        assert_eq!(
            bits(&get(&g, &ag, len)),
            bits(&get(&c, &ac, len)),
            "gelu_tanh {len}"
        );
    }
}

/// The bit patterns of a row, for bit-for-bit comparisons.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Reads a GPU cache as host vectors (K, V).
fn read_kv<E: Executor>(
    g: &GpuCompute<E>,
    kv: &<GpuCompute<E> as Compute>::Kv,
) -> (Vec<f32>, Vec<f32>) {
    let exec = g.executor();
    let (kb, vb) = kv.buffers();
    let mut out = Vec::new();
    for b in [kb, vb] {
        let mut bytes = vec![0u8; exec.len(b)];
        exec.read(b, 0, &mut bytes).unwrap();
        out.push(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<f32>>(),
        );
    }
    let v = out.pop().unwrap();
    let k = out.pop().unwrap();
    (k, v)
}

fn kv_off(g: &KvGeometry, layer: usize, slot: usize, head: usize, index: usize) -> usize {
    (((layer * g.slots + slot) * g.kv_heads + head) * g.capacity + index) * g.head_dim
}

/// Fills every entry `0..filled` of every slot and layer through `rope_store` on both backends
/// (random rows, random grid positions, every 5th a condition row); returns the caches.
#[allow(clippy::type_complexity)]
fn filled_caches<E: Executor>(
    g: &GpuCompute<E>,
    c: &Cpu,
    geom: &KvGeometry,
    grid: usize,
    filled: usize,
    rng: &mut Rng,
) -> (
    <GpuCompute<E> as Compute>::Kv,
    <Cpu as Compute>::Kv,
    <GpuCompute<E> as Compute>::Buf,
    <Cpu as Compute>::Buf,
) {
    let hd = geom.head_dim;
    let stride = (geom.heads + 2 * geom.kv_heads) * hd;
    let table = argen_model::stack::rope_table(grid, hd, 10000.0);
    let (fg, fc) = (buf(g, &table), buf(c, &table));
    let mut kg = g.kv(*geom).unwrap();
    let mut kc = c.kv(*geom).unwrap();
    for layer in 0..geom.layers {
        let mut rot = Vec::new();
        let mut dest = Vec::new();
        for slot in 0..geom.slots {
            for index in 0..filled {
                rot.push(if index % 5 == 0 {
                    Pos::Cond
                } else {
                    Pos::Grid {
                        row: rng.index(grid) as u32,
                        col: rng.index(grid) as u32,
                    }
                });
                dest.push(KvDest {
                    slot: slot as u32,
                    index: index as u32,
                });
            }
        }
        let rows = rot.len();
        let qkv = rng.vec(rows * stride, 2.0);
        let (mut qg, mut qc) = (buf(g, &qkv), buf(c, &qkv));
        g.rope_store(&mut qg, geom, &fg, &rot, &mut kg, layer, &dest);
        c.rope_store(&mut qc, geom, &fc, &rot, &mut kc, layer, &dest);
        let (a, b) = (get(g, &qg, rows * stride), get(c, &qc, rows * stride));
        check(&format!("rope {geom:?} layer {layer}"), &a, &b, TOL);
        // The cache holds exactly the rotated k and the v of each row.
        let (kk, vv) = read_kv(g, &kg);
        for (r, d) in dest.iter().enumerate() {
            for h in 0..geom.kv_heads {
                let o = kv_off(geom, layer, d.slot as usize, h, d.index as usize);
                let ks = r * stride + (geom.heads + h) * hd;
                let vs = r * stride + (geom.heads + geom.kv_heads + h) * hd;
                assert_eq!(&kk[o..o + hd], &a[ks..ks + hd], "k store");
                assert_eq!(&vv[o..o + hd], &a[vs..vs + hd], "v store");
            }
        }
    }
    (kg, kc, fg, fc)
}

pub fn rope_store_and_tree_attention_match_cpu<E: Executor>(dev: &GpuCompute<E>) {
    let (g, c) = (dev.clone(), cpu());
    let mut rng = Rng(15);
    let mut worst = 0f32;
    for (heads, kv_heads, hd) in [
        (4usize, 2usize, 8usize),
        (2, 2, 64),
        (3, 1, 12),
        (1, 1, 256),
    ] {
        let geom = KvGeometry {
            layers: 2,
            slots: 3,
            kv_heads,
            heads,
            head_dim: hd,
            capacity: 300,
        };
        let grid = 6;
        let filled = 290;
        let (kg, kc, _, _) = filled_caches(&g, &c, &geom, grid, filled, &mut rng);
        let stride = (heads + 2 * kv_heads) * hd;
        // Rows: a contiguous range [start, end) then ascending extra keys >= end (a tree path);
        // some rows with no range, one with a single key, one with 280 keys.
        let mut rows = Vec::new();
        let mut extra = Vec::new();
        for i in 0..9 {
            let slot = rng.index(geom.slots) as u32;
            let end = match i {
                0 => 0,
                1 => 280,
                _ => rng.index(200),
            };
            let start = if i == 3 { end } else { rng.index(end + 1) };
            let extra_off = extra.len() as u32;
            let mut key = end;
            let want = if i == 1 { 1 } else { 1 + rng.index(6) };
            let mut n = 0;
            while n < want && key < filled {
                key += rng.index(4);
                if key >= filled {
                    break;
                }
                extra.push(key as u32);
                key += 1;
                n += 1;
            }
            if i == 0 && n == 0 {
                extra.push(0);
                n = 1;
            }
            rows.push(AttnRow {
                slot,
                start: start as u32,
                end: end as u32,
                extra_off,
                extra_len: n as u32,
            });
        }
        let qkv = rng.vec(rows.len() * stride, 2.0);
        let (qg, qc) = (buf(&g, &qkv), buf(&c, &qkv));
        for layer in 0..geom.layers {
            let n_out = rows.len() * heads * hd;
            let mut og = g.buf(n_out).unwrap();
            let mut oc = c.buf(n_out).unwrap();
            g.attention(&qg, &geom, &kg, layer, &rows, &extra, &mut og);
            c.attention(&qc, &geom, &kc, layer, &rows, &extra, &mut oc);
            let (a, b) = (get(&g, &og, n_out), get(&c, &oc, n_out));
            worst = worst.max(rel_err(&a, &b));
            check(&format!("attention {geom:?} layer {layer}"), &a, &b, TOL);
        }
    }
    eprintln!("attention: worst rel err {worst:e}");
}

pub fn kv_move_is_a_memmove<E: Executor>(dev: &GpuCompute<E>) {
    let (g, c) = (dev.clone(), cpu());
    let mut rng = Rng(16);
    let geom = KvGeometry {
        layers: 2,
        slots: 2,
        kv_heads: 2,
        heads: 4,
        head_dim: 8,
        capacity: 30,
    };
    let (mut kg, _, _, _) = filled_caches(&g, &c, &geom, 4, 30, &mut rng);
    for (slot, src, dst, n) in [
        (1usize, 10usize, 4usize, 9usize),
        (0, 3, 7, 12),
        (1, 0, 1, 29),
        (0, 5, 5, 3),
    ] {
        let (mut k0, mut v0) = read_kv(&g, &kg);
        g.kv_move(&mut kg, &geom, slot, src, dst, n);
        for l in 0..geom.layers {
            for h in 0..geom.kv_heads {
                let base = kv_off(&geom, l, slot, h, 0);
                let (s, d) = (base + src * 8, base + dst * 8);
                k0.copy_within(s..s + n * 8, d);
                v0.copy_within(s..s + n * 8, d);
            }
        }
        let (k1, v1) = read_kv(&g, &kg);
        assert_eq!(k1, k0, "K after move {src} -> {dst} x {n}");
        assert_eq!(v1, v0, "V after move {src} -> {dst} x {n}");
    }
    assert!(g.error().is_none());
}

pub fn vq_decoder_ops_match_cpu<E: Executor>(dev: &GpuCompute<E>, bounds: &Bounds) {
    let (g, c) = (dev.clone(), cpu());
    let mut rng = Rng(17);
    // conv2d: 1x1 and 3x3, odd image, all weight dtypes, bias in f32 or bf16.
    for dt in DTYPES {
        for (h, w, cin, cout, k) in [
            (5usize, 7usize, 6usize, 10usize, 3usize),
            (5, 7, 6, 10, 1),
            (1, 1, 3, 2, 3),
            (8, 8, 64, 65, 3),
        ] {
            let x = rng.vec(h * w * cin, 2.0);
            let wt = rng.vec(cout * cin * k * k, 0.5);
            let b = rng.vec(cout, 1.0);
            let shape = [cout, cin, k, k];
            let (wg, wc) = (weight(&g, &wt, &shape, dt), weight(&c, &wt, &shape, dt));
            let bdt = if dt == Dtype::F32 {
                Dtype::BF16
            } else {
                Dtype::F32
            };
            let (bg, bc) = (weight(&g, &b, &[cout], bdt), weight(&c, &b, &[cout], bdt));
            let (xg, xc) = (buf(&g, &x), buf(&c, &x));
            let mut og = g.buf(h * w * cout).unwrap();
            let mut oc = c.buf(h * w * cout).unwrap();
            g.conv2d(&xg, h, w, cin, &wg, Some(&bg), cout, k, &mut og);
            c.conv2d(&xc, h, w, cin, &wc, Some(&bc), cout, k, &mut oc);
            check(
                &format!("conv2d {dt:?} {h}x{w} {cin}->{cout} k{k}"),
                &get(&g, &og, h * w * cout),
                &get(&c, &oc, h * w * cout),
                bounds.cpu(dt),
            );
        }
    }
    // group_norm with and without SiLU (32 groups of 2 channels; and 32 of 1).
    for (pixels, ch) in [(35usize, 64usize), (4, 32), (300, 96)] {
        for silu in [false, true] {
            let x: Vec<f32> = rng.vec(pixels * ch, 3.0).iter().map(|v| v + 5.0).collect();
            let gm = rng.vec(ch, 2.0);
            let bt = rng.vec(ch, 1.0);
            let (gg, gc) = (
                weight(&g, &gm, &[ch], Dtype::F32),
                weight(&c, &gm, &[ch], Dtype::F32),
            );
            let (tg, tc) = (
                weight(&g, &bt, &[ch], Dtype::BF16),
                weight(&c, &bt, &[ch], Dtype::BF16),
            );
            let (xg, xc) = (buf(&g, &x), buf(&c, &x));
            let mut og = g.buf(pixels * ch).unwrap();
            let mut oc = c.buf(pixels * ch).unwrap();
            g.group_norm(&xg, pixels, ch, 32, &gg, &tg, 1e-6, silu, &mut og);
            c.group_norm(&xc, pixels, ch, 32, &gc, &tc, 1e-6, silu, &mut oc);
            check_elem(
                &format!("group_norm {pixels}x{ch} silu {silu}"),
                &get(&g, &og, pixels * ch),
                &get(&c, &oc, pixels * ch),
            );
        }
    }
    // upsample2x and transpose: exact.
    let (h, w, ch) = (3usize, 5usize, 7usize);
    let x = rng.vec(h * w * ch, 1.0);
    let (xg, xc) = (buf(&g, &x), buf(&c, &x));
    let mut og = g.buf(4 * h * w * ch).unwrap();
    let mut oc = c.buf(4 * h * w * ch).unwrap();
    g.upsample2x(&xg, h, w, ch, &mut og);
    c.upsample2x(&xc, h, w, ch, &mut oc);
    assert_eq!(get(&g, &og, 4 * h * w * ch), get(&c, &oc, 4 * h * w * ch));
    let mut og = g.buf(h * w * ch).unwrap();
    let mut oc = c.buf(h * w * ch).unwrap();
    g.transpose(&xg, h * w, ch, &mut og);
    c.transpose(&xc, h * w, ch, &mut oc);
    assert_eq!(get(&g, &og, h * w * ch), get(&c, &oc, h * w * ch));
    // matmul_nt with a scale, then softmax_rows.
    for (m, n, k) in [(1usize, 1usize, 1usize), (12, 12, 64), (35, 300, 17)] {
        let a = rng.vec(m * k, 2.0);
        let b = rng.vec(n * k, 2.0);
        let (ag, ac) = (buf(&g, &a), buf(&c, &a));
        let (bg, bc) = (buf(&g, &b), buf(&c, &b));
        let mut og = g.buf(m * n).unwrap();
        let mut oc = c.buf(m * n).unwrap();
        let scale = 1.0 / (k as f32).sqrt();
        g.matmul_nt(&ag, m, &bg, n, k, scale, &mut og);
        c.matmul_nt(&ac, m, &bc, n, k, scale, &mut oc);
        check(
            &format!("matmul_nt {m}x{n}x{k}"),
            &get(&g, &og, m * n),
            &get(&c, &oc, m * n),
            bounds.f32,
        );
        g.softmax_rows(&mut og, m, n);
        c.softmax_rows(&mut oc, m, n);
        check(
            &format!("softmax_rows {m}x{n}"),
            &get(&g, &og, m * n),
            &get(&c, &oc, m * n),
            bounds.f32,
        );
    }
    assert!(g.error().is_none());
}

pub fn a_bad_argument_is_a_sticky_device_error<E: Executor>(dev: E) {
    let g = GpuCompute::new(dev);
    let w = weight(&g, &[1.0; 12], &[3, 4], Dtype::F32);
    let x = g.buf(4).unwrap();
    let mut out = g.buf(2).unwrap(); // too small for 1 x 3
    g.linear(&x, 1, &w, None, &mut out);
    let mut host = [0f32; 2];
    let e = g.download(&out, 0, &mut host).unwrap_err();
    assert!(e.to_string().contains("linear"), "{e}");
    // Later operations are skipped and every fallible call reports the first error.
    g.linear(&x, 1, &w, None, &mut out);
    match g.buf(3) {
        Err(argen_model::ModelError::Device(m)) => assert!(m.contains("linear"), "{m}"),
        other => panic!(
            "expected the sticky error, got {:?}",
            other.map(|b| b.len())
        ),
    }
    assert!(g.error().is_some());
}
