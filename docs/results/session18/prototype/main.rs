#![allow(clippy::all)]
use std::arch::x86_64::*;
use std::time::Instant;

const NB: usize = 2;
const NV: usize = 16 * NB;
static TWO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static PF2: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static NTA: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false); // columns per tile

/// Pack w [n][k] row-major into tiles of 16 columns: per tile [l][j][16] then tail [t][16].
fn pack(w: &[f32], n: usize, k: usize) -> Vec<f32> {
    let nt = (n + NV - 1) / NV;
    let k8 = k / 8;
    let mut p = vec![0f32; nt * NV * k];
    for t in 0..nt {
        let base = t * NV * k;
        for l in 0..8 {
            for j in 0..k8 {
                for c in 0..NV {
                    let col = t * NV + c;
                    let v = if col < n { w[col * k + l + 8 * j] } else { 0.0 };
                    p[base + (l * k8 + j) * NV + c] = v;
                }
            }
        }
        for tt in 0..(k - 8 * k8) {
            for c in 0..NV {
                let col = t * NV + c;
                let v = if col < n { w[col * k + 8 * k8 + tt] } else { 0.0 };
                p[base + (8 * k8 + tt) * NV + c] = v;
            }
        }
    }
    p
}

fn reference(x: &[f32], w: &[f32], rows: usize, n: usize, k: usize) -> Vec<f32> {
    let k8 = k / 8;
    let mut out = vec![0f32; rows * n];
    for r in 0..rows {
        for c in 0..n {
            let mut a = [0f32; 8];
            for l in 0..8 {
                for j in 0..k8 {
                    a[l] = x[r * k + l + 8 * j].mul_add(w[c * k + l + 8 * j], a[l]);
                }
            }
            let mut s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
            for t in 8 * k8..k {
                s = x[r * k + t].mul_add(w[c * k + t], s);
            }
            out[r * n + c] = s;
        }
    }
    out
}

/// xr: [l][j][mr] then tail [t][mr] for one row block
fn repack_x(x: &[f32], r0: usize, mr: usize, k: usize, xr: &mut Vec<f32>) {
    let k8 = k / 8;
    xr.clear();
    xr.resize(k * mr, 0.0);
    for l in 0..8 {
        for j in 0..k8 {
            for r in 0..mr {
                xr[(l * k8 + j) * mr + r] = x[(r0 + r) * k + l + 8 * j];
            }
        }
    }
    for t in 0..(k - 8 * k8) {
        for r in 0..mr {
            xr[(8 * k8 + t) * mr + r] = x[(r0 + r) * k + 8 * k8 + t];
        }
    }
}

#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn tile<const MR: usize, const PF: bool>(
    w: *const f32, k: usize, xr: *const f32, out: *mut f32, ldo: usize, ncols: usize, pf: usize,
) {
    let k8 = k / 8;
    let nta = NTA.load(std::sync::atomic::Ordering::Relaxed);
    let pf2 = PF2.load(std::sync::atomic::Ordering::Relaxed);
    let mut part = [[[_mm512_setzero_ps(); NB]; MR]; 8];
    if MR <= 4 && TWO.load(std::sync::atomic::Ordering::Relaxed) {
    for l in 0..4 {
        let mut acc = [[_mm512_setzero_ps(); NB]; MR];
        let mut acc2 = [[_mm512_setzero_ps(); NB]; MR];
        let mut wp = w.add(l * k8 * NV);
        let mut xp = xr.add(l * k8 * MR);
        let d = 4 * k8 * NV; let dx = 4 * k8 * MR;
        for _ in 0..k8 {
            if PF {
                _mm_prefetch::<_MM_HINT_NTA>((wp as *const i8).add(pf));
                _mm_prefetch::<_MM_HINT_NTA>((wp as *const i8).add(pf + 64));
                _mm_prefetch::<_MM_HINT_NTA>((wp.add(d) as *const i8).add(pf));
                _mm_prefetch::<_MM_HINT_NTA>((wp.add(d) as *const i8).add(pf + 64));
            }
            let mut wv = [_mm512_setzero_ps(); NB];
            let mut wv2 = [_mm512_setzero_ps(); NB];
            for b in 0..NB { wv[b] = _mm512_loadu_ps(wp.add(16 * b)); wv2[b] = _mm512_loadu_ps(wp.add(d + 16 * b)); }
            for r in 0..MR {
                let xb = _mm512_set1_ps(*xp.add(r));
                let xb2 = _mm512_set1_ps(*xp.add(dx + r));
                for b in 0..NB { acc[r][b] = _mm512_fmadd_ps(xb, wv[b], acc[r][b]); acc2[r][b] = _mm512_fmadd_ps(xb2, wv2[b], acc2[r][b]); }
            }
            wp = wp.add(NV);
            xp = xp.add(MR);
        }
        part[l] = acc;
        part[l + 4] = acc2;
    }
    } else {
    for l in 0..8 {
        let mut acc = [[_mm512_setzero_ps(); NB]; MR];
        let mut wp = w.add(l * k8 * NV);
        let mut xp = xr.add(l * k8 * MR);
        for _ in 0..k8 {
            if PF {
                if !nta { _mm_prefetch::<_MM_HINT_T0>((wp as *const i8).add(pf)); } else { _mm_prefetch::<_MM_HINT_NTA>((wp as *const i8).add(pf)); }
                if NB == 2 { if !nta { _mm_prefetch::<_MM_HINT_T0>((wp as *const i8).add(pf + 64)); } else { _mm_prefetch::<_MM_HINT_NTA>((wp as *const i8).add(pf + 64)); } }
                if pf2 > 0 { _mm_prefetch::<_MM_HINT_T1>((wp as *const i8).add(pf2)); _mm_prefetch::<_MM_HINT_T1>((wp as *const i8).add(pf2 + 64)); }
            }
            let mut wv = [_mm512_setzero_ps(); NB];
            for b in 0..NB { wv[b] = _mm512_loadu_ps(wp.add(16 * b)); }
            for r in 0..MR {
                let xb = _mm512_set1_ps(*xp.add(r));
                for b in 0..NB { acc[r][b] = _mm512_fmadd_ps(xb, wv[b], acc[r][b]); }
            }
            wp = wp.add(NV);
            xp = xp.add(MR);
        }
        part[l] = acc;
    }
    }
    for r in 0..MR {
        for b in 0..NB {
        let p = |l: usize| part[l][r][b];
        let mut s = _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(p(0), p(4)), _mm512_add_ps(p(2), p(6))),
            _mm512_add_ps(_mm512_add_ps(p(1), p(5)), _mm512_add_ps(p(3), p(7))),
        );
        for t in 0..(k - 8 * k8) {
            let wv = _mm512_loadu_ps(w.add((8 * k8 + t) * NV + 16 * b));
            s = _mm512_fmadd_ps(_mm512_set1_ps(*xr.add((8 * k8 + t) * MR + r)), wv, s);
        }
        let c0 = 16 * b;
        if ncols >= c0 + 16 {
            _mm512_storeu_ps(out.add(r * ldo + c0), s);
        } else if ncols > c0 {
            let m: __mmask16 = ((1u32 << (ncols - c0)) - 1) as u16;
            _mm512_mask_storeu_ps(out.add(r * ldo + c0), m, s);
        }
        }
    }
}

type TileFn = unsafe fn(*const f32, usize, *const f32, *mut f32, usize, usize, usize);

fn pick(mr: usize, pf: bool) -> TileFn {
    macro_rules! m { ($($n:literal)*) => { match (mr, pf) { $(($n, true) => tile::<$n, true>, ($n, false) => tile::<$n, false>,)* _ => panic!("mr {mr}") } } }
    m!(1 2 3 4 5 6 7 8 9 10 11 12 13 14)
}

struct Mat { n: usize, k: usize, p: &'static [f32] }
fn huge(len: usize) -> &'static mut [f32] {
    unsafe {
        let bytes = (len * 4 + (2 << 20) - 1) / (2 << 20) * (2 << 20);
        let raw = libc::mmap(std::ptr::null_mut(), bytes + (2 << 20), libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        let p = ((raw as usize + (2 << 20) - 1) & !((2 << 20) - 1)) as *mut libc::c_void;
        let rc = libc::madvise(p, bytes, libc::MADV_HUGEPAGE);
        assert_eq!(rc, 0);
        std::slice::from_raw_parts_mut(p as *mut f32, len)
    }
}
fn leak(v: Vec<f32>) -> &'static [f32] { let h = huge(v.len()); h.copy_from_slice(&v); h }

fn gemm(m: &Mat, x: &[f32], rows: usize, out: &mut [f32], maxmr: usize, block_tiles: usize, pf: usize, xr: &mut Vec<Vec<f32>>) {
    let (n, k) = (m.n, m.k);
    let nt = (n + NV - 1) / NV;
    // row blocks: even split into ceil(rows/maxmr) blocks
    let nb = (rows + maxmr - 1) / maxmr;
    let base = rows / nb;
    let extra = rows % nb;
    let mut blocks = vec![];
    let mut r0 = 0;
    for b in 0..nb { let mr = base + (b < extra) as usize; blocks.push((r0, mr)); r0 += mr; }
    if xr.len() < nb { xr.resize(nb, vec![]); }
    if std::env::var("NOREPACK").is_err() || xr[0].len() != k * blocks[0].1 { for (b, &(r0, mr)) in blocks.iter().enumerate() { repack_x(x, r0, mr, k, &mut xr[b]); } }
    let mut t0 = 0;
    while t0 < nt {
        let t1 = (t0 + block_tiles).min(nt);
        for (b, &(r0, mr)) in blocks.iter().enumerate() {
            let f = pick(mr, pf > 0);
            for t in t0..t1 {
                let ncols = (n - t * NV).min(NV);
                unsafe { f(m.p.as_ptr().add(t * NV * k), k, xr[b].as_ptr(), out.as_mut_ptr().add(r0 * n + t * NV), n, ncols, pf); }
            }
        }
        t0 = t1;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    TWO.store(std::env::var_os("TWO").is_some(), std::sync::atomic::Ordering::Relaxed);
    PF2.store(std::env::var("PF2").ok().map(|v| v.parse().unwrap()).unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    NTA.store(std::env::var_os("X").is_some(), std::sync::atomic::Ordering::Relaxed);
    let rows_list: Vec<usize> = args.get(1).map(|s| s.split(',').map(|v| v.parse().unwrap()).collect()).unwrap_or(vec![2, 4, 8, 16, 24, 32, 128]);
    let maxmr: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(24);
    let block_tiles: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(4);
    let pf: usize = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(0);
    // correctness on small odd shape
    {
        let (n, k, rows) = (37usize, 77usize, 11usize);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 337.0).collect();
        let x: Vec<f32> = (0..rows * k).map(|i| ((i * 104729 % 1000) as f32 - 500.0) / 411.0).collect();
        let m = Mat { n, k, p: leak(pack(&w, n, k)) };
        let mut out = vec![0f32; rows * n];
        let mut xr = vec![];
        gemm(&m, &x, rows, &mut out, 4, 2, 0, &mut xr);
        let r = reference(&x, &w, rows, n, k);
        assert!(out.iter().zip(&r).all(|(a, b)| a.to_bits() == b.to_bits()), "mismatch");
        gemm(&m, &x, rows, &mut out, 12, 2, 256, &mut xr);
        assert!(out.iter().zip(&r).all(|(a, b)| a.to_bits() == b.to_bits()), "mismatch2");
        eprintln!("bit-exact ok");
    }
    let d = 768; let h = 2048; let vocab = 16384;
    if args.get(5).map(|s| s == "tile").unwrap_or(false) {
        let k = d; let ntiles = 4;
        let p: Vec<f32> = (0..ntiles*NV*k).map(|i| (i % 97) as f32 * 0.001).collect();
        for &mr in &rows_list {
            let x: Vec<f32> = (0..mr*k).map(|i| (i % 13) as f32 * 0.01).collect();
            let mut xr = vec![]; repack_x(&x, 0, mr, k, &mut xr);
            let mut out = vec![0f32; mr * NV * ntiles];
            let f = pick(mr, false);
            let iters = 20000;
            let mut best = f64::MAX;
            for _ in 0..5 { let t = Instant::now();
            for _ in 0..iters { for tt in 0..ntiles { unsafe { f(p.as_ptr().add(tt*NV*k), k, xr.as_ptr(), out.as_mut_ptr().add(tt*NV), NV*ntiles, NV, 0); } } }
            best = best.min(t.elapsed().as_secs_f64()); }
            let fl = 2.0 * (iters * ntiles * NV * k * mr) as f64;
            println!("tile mr {mr}: {:.1} GFLOP/s", fl / best / 1e9);
        }
        return;
    }
    let mut shapes = vec![];
    if args.get(5).map(|s| s == "l1").unwrap_or(false) { for _ in 0..2000 { shapes.push((128, d)); } } else {
    for _ in 0..12 { shapes.extend([(3 * d, d), (d, d), (h, d), (h, d), (d, h)]); }
    shapes.push((vocab, d)); }
    let l1 = args.get(5).map(|s| s == "l1").unwrap_or(false);
    let mats: Vec<Mat> = if l1 { let p: Vec<f32> = (0..128*d).map(|i| (i % 97) as f32 * 0.001).collect(); vec![Mat { n: 128, k: d, p: leak(p) }] } else { shapes.iter().map(|&(n, k)| { let len = (n + NV - 1) / NV * NV * k; let h = huge(len); for (i, v) in h.iter_mut().enumerate() { *v = (i % 97) as f32 * 0.001; } Mat { n, k, p: &*h } }).collect() };
    let bytes: usize = shapes.iter().map(|&(n, k)| n * k * 4).sum();
    let flops1: f64 = shapes.iter().map(|&(n, k)| 2.0 * (n * k) as f64).sum();
    let mut xr = vec![];
    for &rows in &rows_list {
        let x: Vec<f32> = (0..rows * h).map(|i| (i % 13) as f32 * 0.01).collect();
        let mut outs: Vec<Vec<f32>> = shapes.iter().map(|&(n, _)| vec![0f32; rows * n]).collect();
        let mut best = f64::MAX; let mut times = vec![];
        for _ in 0..7 {
            let t = Instant::now();
            if l1 { for i in 0..shapes.len() { let m = &mats[0]; gemm(m, &x[..rows * m.k], rows, &mut outs[i], maxmr, block_tiles, pf, &mut xr); } } else { for (i, m) in mats.iter().enumerate() { gemm(m, &x[..rows * m.k], rows, &mut outs[i], maxmr, block_tiles, pf, &mut xr); } }
            let e = t.elapsed().as_secs_f64(); times.push(e); best = best.min(e);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("rows {rows:3}: best {:.2} ms median {:.2} ms  {:.1} GB/s  {:.1} GFLOP/s", best * 1e3, times[3] * 1e3, bytes as f64 / best / 1e9, flops1 * rows as f64 / best / 1e9);
    }
}
