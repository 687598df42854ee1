//! Every row-kernel variant this CPU runs gives the bits of argen-core's portable passes and,
//! through `process_with`, the same distributions as `process` (formats f32/f16/bf16, plain
//! and two-way rows, tails and odd lengths, masks, NaN/±∞/overflow, ties, ±0, every
//! truncation). Variants the machine lacks print `SKIPPED rows-<name>: <reason>`.

use argen_core::process::{
    portable_candidates, portable_exp_shifted, portable_plain, portable_split_cut,
    portable_two_way, rank_bucket, rank_key, HOPELESS,
};
use argen_core::{process, process_with, Guided, Logit, SamplerParams, Workspace};
use argen_cpu::{RowSimd, Variant};
use half::{bf16, f16};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Logits from several regimes: wide values, a few repeated values (ties), ±0, −∞,
    /// subnormals, rare NaN / +∞ / huge values.
    fn logit(&mut self, style: u64) -> f32 {
        match self.below(24) {
            0 => f32::NEG_INFINITY,
            1 => 0.0,
            2 => -0.0,
            3 if style == 4 => f32::from_bits(self.below(1 << 23) as u32), // subnormal
            _ => match style {
                0 => ((self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 40.0,
                1 => [1.0f32, 2.0, -3.5, 7.25, 0.5][self.below(5) as usize],
                2 => ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 3.0,
                _ => {
                    if self.below(300) == 0 {
                        [f32::NAN, f32::INFINITY, 3.0e38, -3.0e38][self.below(4) as usize]
                    } else {
                        (self.below(64) as f32) * 0.25 - 8.0
                    }
                }
            },
        }
    }
}

/// The variants this machine runs; prints a SKIPPED line for the others.
fn variants() -> Vec<RowSimd> {
    let mut out = Vec::new();
    for v in Variant::ALL {
        match RowSimd::new(v) {
            Ok(k) => out.push(k),
            Err(why) => println!("SKIPPED rows-{}: {why}", v.name()),
        }
    }
    out
}

const LENGTHS: [usize; 14] = [1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 513, 4099];

/// The exponentials of the weights equal argen-core's (and `exp_f32`) bit for bit on the whole
/// contract domain `y − m ∈ [−87, 0]`: random candidates (wide, clustered near the top, tied,
/// ±0, the ends −32 / −87, subnormal differences), every length 0…67 and long blocks, and a
/// sweep of every 97th float of `[−87, 0]`; nothing past `y.len()` is written.
#[test]
fn exp_shifted_equals_the_portable_one() {
    let mut rng = Rng(0x5eed_e4b0_11f7_0001);
    let mut rows: Vec<(Vec<f32>, f32)> = Vec::new();
    for n in (0..=67).chain([100, 513, 4099]) {
        for style in 0..4u64 {
            let m = [0.0f32, 3.25, -7.5, 1.0e4][style as usize];
            let y: Vec<f32> = (0..n)
                .map(|_| {
                    let d = match rng.below(8) {
                        0 => 0.0,
                        1 => -0.0,
                        2 => -32.0,
                        3 => -87.0,
                        4 => -(f32::from_bits(rng.below(1 << 23) as u32)),
                        _ => -((rng.next() >> 40) as f32 / (1u64 << 24) as f32) * 87.0,
                    };
                    m + d
                })
                .filter(|&v| (-87.0..=0.0).contains(&(v - m)))
                .collect();
            rows.push((y, m));
        }
    }
    // A sweep of `[−87, 0]` (m = 0): every 97th bit pattern of the non-positive floats.
    let lim = (-87.0f32).to_bits();
    let sweep: Vec<f32> = (0x8000_0000u32..=lim)
        .step_by(97)
        .map(f32::from_bits)
        .collect();
    rows.push((sweep, 0.0));
    for k in variants() {
        let what = k.variant().name();
        for (y, m) in &rows {
            let n = y.len();
            let mut a = vec![f32::NAN; n + 3];
            let mut b = vec![f32::NAN; n + 3];
            portable_exp_shifted(y, *m, &mut a);
            argen_core::RowKernels::exp_shifted(&k, y, *m, &mut b);
            for j in 0..n {
                let x = y[j] - m;
                assert_eq!(a[j].to_bits(), b[j].to_bits(), "{what}: exp({x}), n={n}");
                let e = argen_core::detmath::exp_f32(x);
                assert_eq!(e.to_bits(), b[j].to_bits(), "{what}: exp_f32({x})");
            }
            assert!(
                b[n..].iter().all(|v| v.is_nan()),
                "{what}: wrote past y.len()"
            );
        }
        println!("rows-{what}: exp_shifted ran");
    }
}

/// Top-k's partition at the cut bucket equals argen-core's: the kept pairs (in input order),
/// the cut bucket's keys (in input order) and the counts, for every cut 0…513, candidate rows
/// of every length 0…67 and longer ones (values on bucket edges, ties, ±0, `d` outside
/// `[0, 32]`), checked against the definition too.
#[test]
fn split_cut_equals_the_portable_one() {
    let mut rng = Rng(0x0005_9117_c075_0002);
    for k in variants() {
        let what = k.variant().name();
        for n in (0..=67).chain([100, 513, 1700, 4099]) {
            let m = [0.0f32, 2.75, -11.0][n % 3];
            let y: Vec<f32> = (0..n)
                .map(|_| match rng.below(10) {
                    0 => m,
                    1 => m - (rng.below(513) as f32) / 16.0,
                    2 => m - (rng.below(1026) as f32 + 1.0) / 32.0,
                    3 => -0.0,
                    4 => m - 40.0,
                    5 => m + 1.0,
                    _ => m - ((rng.next() >> 40) as f32 / (1u64 << 24) as f32) * 32.0,
                })
                .collect();
            let ids: Vec<u32> = (0..n as u32).map(|i| i * 3 + 1).collect();
            let cuts: Vec<usize> = if n == 1700 {
                (0..=513).collect()
            } else {
                vec![
                    0,
                    1,
                    rng.below(514) as usize,
                    rng.below(64) as usize,
                    512,
                    513,
                ]
            };
            for cut in cuts {
                let (mut ya, mut ia, mut ka) = (y.clone(), ids.clone(), vec![0u64; n]);
                let (mut yb, mut ib, mut kb) = (y.clone(), ids.clone(), vec![0u64; n]);
                let (kept, tied) = portable_split_cut(m, cut, &mut ya, &mut ia, &mut ka);
                let got = argen_core::RowKernels::split_cut(&k, m, cut, &mut yb, &mut ib, &mut kb);
                assert_eq!((kept, tied), got, "{what}: counts, n={n} cut={cut}");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&ya[..kept]),
                    bits(&yb[..kept]),
                    "{what}: values, n={n} cut={cut}"
                );
                assert_eq!(ia[..kept], ib[..kept], "{what}: ids, n={n} cut={cut}");
                assert_eq!(ka[..tied], kb[..tied], "{what}: keys, n={n} cut={cut}");
                // The definition.
                let b = |j: usize| rank_bucket(m - y[j]);
                let want: Vec<u32> = (0..n).filter(|&j| b(j) < cut).map(|j| ids[j]).collect();
                let keys: Vec<u64> = (0..n)
                    .filter(|&j| b(j) == cut)
                    .map(|j| rank_key(y[j], ids[j]))
                    .collect();
                assert_eq!(ib[..kept], want[..], "{what}: kept ids by definition");
                assert_eq!(kb[..tied], keys[..], "{what}: keys by definition");
            }
        }
        println!("rows-{what}: split_cut ran");
    }
}

fn same(a: Option<f32>, b: Option<f32>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x.to_bits() == y.to_bits(),
        (None, None) => true,
        _ => false,
    }
}

fn check_clean<L: Logit>(k: &RowSimd, c: &[L], u: &[L], cfg: f32, scale: f32, what: &str) {
    let n = c.len();
    let (mut y0, mut y1) = (vec![1.5f32; n], vec![2.5f32; n]);
    let want = portable_plain(L::row(c), scale, &mut y0);
    let got = argen_core::RowKernels::scale_plain(k, L::row(c), scale, &mut y1);
    assert!(same(want, got), "{what}: plain {want:?} vs {got:?}");
    if want.is_some() {
        assert!(
            y0.iter().zip(&y1).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: plain rows differ"
        );
    }
    let want = portable_two_way(L::row(c), L::row(u), cfg, scale, &mut y0);
    let got = argen_core::RowKernels::scale_two_way(k, L::row(c), L::row(u), cfg, scale, &mut y1);
    assert!(same(want, got), "{what}: two-way {want:?} vs {got:?}");
    if want.is_some() {
        assert!(
            y0.iter().zip(&y1).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: two-way rows differ"
        );
    }
}

#[test]
fn clean_pass_and_candidates_equal_the_portable_ones() {
    for k in variants() {
        let mut r = Rng(0x5851_f42d_4c95_7f2d);
        for case in 0..3000 {
            let n = LENGTHS[case % LENGTHS.len()];
            let style = r.below(5);
            let c: Vec<f32> = (0..n).map(|_| r.logit(style)).collect();
            let u: Vec<f32> = (0..n).map(|_| r.logit(style)).collect();
            let cfg = [4.0f32, 1.0, 0.0, -2.0, 1e30][r.below(5) as usize];
            let scale = [1.0f32, 1.0 / 0.7, 1e3, 0.5][r.below(4) as usize];
            let what = format!("{} case {case} n={n} style={style}", k.variant().name());
            check_clean(&k, &c, &u, cfg, scale, &what);
            let cb: Vec<bf16> = c.iter().map(|&x| bf16::from_f32(x)).collect();
            let ub: Vec<bf16> = u.iter().map(|&x| bf16::from_f32(x)).collect();
            check_clean(&k, &cb, &ub, cfg, scale, &what);
            // f16: also raw bit patterns (subnormal halves, NaN payloads).
            let ch: Vec<f16> = if style == 4 {
                (0..n).map(|_| f16::from_bits(r.next() as u16)).collect()
            } else {
                c.iter().map(|&x| f16::from_f32(x)).collect()
            };
            let uh: Vec<f16> = u.iter().map(|&x| f16::from_f32(x)).collect();
            check_clean(&k, &ch, &uh, cfg, scale, &what);

            // Candidates on a row of finite values and −∞ with its maximum (and a maximum
            // far above, leaving few or none).
            let y: Vec<f32> = c
                .iter()
                .map(|&x| {
                    if x.is_finite() || x == f32::NEG_INFINITY {
                        x
                    } else {
                        1.0
                    }
                })
                .collect();
            let top = y.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for m in [top, top + 20.0, top + 40.0, 1.0] {
                if !m.is_finite() {
                    continue;
                }
                let (mut o0, mut o1) = (vec![0u32; n], vec![0u32; n]);
                let a = portable_candidates(&y, m, &mut o0);
                let b = argen_core::RowKernels::candidates(&k, &y, m, &mut o1);
                assert_eq!(a, b, "{what}: candidate count, m={m}");
                assert_eq!(o0[..a], o1[..b], "{what}: candidates, m={m}");
                let direct = y.iter().filter(|&&v| v - m >= HOPELESS).count();
                assert_eq!(a, direct, "{what}: candidate definition");
            }
        }
        println!("rows-{}: ran", k.variant().name());
    }
}

fn run<L: Logit>(
    k: Option<&RowSimd>,
    g: &Guided<'_, L>,
    p: &SamplerParams,
    v: usize,
) -> (argen_core::Result<argen_core::Processed>, Vec<u64>) {
    let (mut y, mut o, mut w) = (vec![7.0f32; v], vec![3u32; v], vec![5u64; v]);
    let mut ws = Workspace {
        logits: &mut y,
        order: &mut o,
    };
    let res = match k {
        Some(k) => process_with(k, g, p, &mut ws, &mut w),
        None => process(g, p, &mut ws, &mut w),
    };
    (res, w)
}

fn check<L: Logit>(k: &RowSimd, g: &Guided<'_, L>, p: &SamplerParams, v: usize, what: &str) {
    let (want, ww) = run(None, g, p, v);
    let (got, gw) = run(Some(k), g, p, v);
    assert_eq!(got, want, "{what} {p:?}");
    if want.is_ok() {
        assert_eq!(gw, ww, "{what} {p:?}");
    }
}

#[test]
fn process_with_each_variant_equals_process() {
    for k in variants() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..1500 {
            let v = LENGTHS[r.below(LENGTHS.len() as u64) as usize];
            let style = r.below(4);
            let c: Vec<f32> = (0..v).map(|_| r.logit(style)).collect();
            let u: Vec<f32> = (0..v).map(|_| r.logit(style)).collect();
            let params = SamplerParams {
                temperature: [0.0, 1.0, 0.7, 1.3, 1e-3][r.below(5) as usize],
                top_k: match r.below(4) {
                    0 => None,
                    1 => Some(1),
                    2 => Some(v as u32),
                    _ => Some(1 + r.below(v as u64) as u32),
                },
                top_p: (r.below(3) > 0)
                    .then(|| [0.05f32, 0.5, 0.9, 0.999, 1.0][r.below(5) as usize]),
                min_p: (r.below(3) == 0).then(|| [0.0f32, 0.01, 0.3, 1.0][r.below(4) as usize]),
            };
            let cfg = [4.0f32, 1.0, 0.0, -2.0, 1e30][r.below(5) as usize];
            let what = format!(
                "{} case {case} v={v} style={style} cfg={cfg}",
                k.variant().name()
            );
            check(&k, &Guided::Plain(&c[..]), &params, v, &what);
            let two = Guided::TwoWay {
                cond: &c[..],
                uncond: &u[..],
                scale: cfg,
            };
            check(&k, &two, &params, v, &what);
            let cb: Vec<bf16> = c.iter().map(|&x| bf16::from_f32(x)).collect();
            let ub: Vec<bf16> = u.iter().map(|&x| bf16::from_f32(x)).collect();
            let two_b = Guided::TwoWay {
                cond: &cb[..],
                uncond: &ub[..],
                scale: cfg,
            };
            check(&k, &two_b, &params, v, &what);
            let ch: Vec<f16> = c.iter().map(|&x| f16::from_f32(x)).collect();
            check(&k, &Guided::Plain(&ch[..]), &params, v, &what);
        }
    }
}

/// `process_tracked_with` and each variant, into ONE reused weight row with its support list,
/// equals `process` into a fresh row, row after row: the same result and whole row (the
/// partial clear removed every earlier weight and the variant's scratch keys), the list holds
/// exactly the positive ids whenever there are at most `SUPPORT_CAP`, and the listed draw
/// gives the dense draw's token for every key tried.
#[test]
fn process_tracked_with_each_variant_equals_process() {
    use argen_core::dist::SUPPORT_CAP;
    use argen_core::{process_tracked_with, sample_with, Dist, Key, Purpose, SupportList};
    for k in variants() {
        let mut r = Rng(0x7ac4_ed00_0000_0005);
        let vmax = 4099;
        let (mut y, mut o, mut out) = (vec![0.0f32; vmax], vec![0u32; vmax], vec![0u64; vmax]);
        let mut list = SupportList::new();
        let mut listed = 0usize;
        let mut v = 1000usize;
        for case in 0..1500 {
            if r.below(30) == 0 {
                v = LENGTHS[r.below(LENGTHS.len() as u64) as usize].min(vmax);
            }
            let style = r.below(5);
            let spread = if style == 0 { 40.0 } else { 1.0 };
            let c: Vec<f32> = (0..v).map(|_| r.logit(style) * spread).collect();
            let u: Vec<f32> = (0..v).map(|_| r.logit(style)).collect();
            let params = SamplerParams {
                temperature: [0.0, 1.0, 1.0, 0.7][r.below(4) as usize],
                top_k: match r.below(4) {
                    0 => None,
                    1 => Some(1),
                    _ => Some(1 + r.below(v as u64) as u32),
                },
                top_p: (r.below(4) > 0).then(|| [0.05f32, 0.5, 0.9, 1.0][r.below(4) as usize]),
                min_p: (r.below(4) == 0).then(|| [0.0f32, 0.01, 0.3][r.below(3) as usize]),
            };
            let g = Guided::TwoWay {
                cond: &c[..],
                uncond: &u[..],
                scale: 2.0,
            };
            let what = format!("{} case {case} v={v} style={style}", k.variant().name());
            let (want, fresh) = run(None, &g, &params, v);
            let mut ws = Workspace {
                logits: &mut y,
                order: &mut o,
            };
            let got = process_tracked_with(&k, &g, &params, &mut ws, &mut out, &mut list);
            assert_eq!(got, want, "{what} {params:?}");
            let Ok(p) = want else { continue };
            assert_eq!(&out[..v], &fresh[..], "{what} {params:?}");
            let positive: Vec<u32> = (0..v as u32).filter(|&i| fresh[i as usize] > 0).collect();
            match list.ids_for(&out[..v]) {
                Some(ids) => {
                    assert_eq!(ids, &positive[..], "{what}");
                    listed += 1;
                }
                None => assert!(positive.len() > SUPPORT_CAP, "{what}: not listed"),
            }
            let sparse = list.dist(&out[..v], p.total).unwrap();
            let dense = Dist::with_total(&fresh, p.total).unwrap();
            for pos in 0..16 {
                let key = Key::new(case, 1, Purpose::SAMPLE, pos);
                assert_eq!(
                    sample_with(&k, &sparse, key),
                    sample_with(&k, &dense, key),
                    "{what}"
                );
            }
        }
        assert!(listed > 500, "{listed}");
        println!("rows-{}: tracked processing ran", k.variant().name());
    }
}

#[test]
fn row_simd_names_its_variant() {
    let best = argen_cpu::row_kernels();
    assert_eq!(Some(*best), RowSimd::new(best.variant()).ok());
    for k in variants() {
        let name = argen_core::RowKernels::name(&k);
        match k.variant() {
            Variant::Avx512 | Variant::Avx2 | Variant::Neon => {
                assert_eq!(name, k.variant().name())
            }
            Variant::Portable => assert_eq!(name, "portable"),
        }
    }
}

/// The chunk skipping of a draw equals argen-core's (`portable_skip_chunks`), and so does the
/// located token (`Dist::locate_with` vs `Dist::locate`): rows of every length around the
/// chunk size (tails), processed-row weights (below `2^56`), huge weights (the exact 32-bit
/// halves path, chunk sums near `2^64` and beyond), zero chunks, and `r` on every chunk
/// boundary, either side of it, random, and at the ends.
#[test]
fn skip_chunks_equals_the_portable_one() {
    use argen_core::dist::{portable_skip_chunks, LOCATE_CHUNK};
    use argen_core::{Dist, RowKernels};
    let mut rng = Rng(0x0c4a_7c5e_0000_0003);
    for k in variants() {
        let what = k.variant().name();
        for case in 0..400 {
            let v = [1usize, 127, 128, 129, 255, 256, 257, 1000, 4096, 16384][case % 10];
            let style = (case / 10) % 4;
            let w: Vec<u64> = (0..v)
                .map(|_| match (style, rng.below(4)) {
                    (_, 0) => 0,
                    (0, _) => rng.next() >> 23, // processed rows: below 2^41
                    (1, _) => rng.next() >> (rng.below(3) * 4), // huge, sums wrap u64
                    (2, _) if rng.below(50) == 0 => u64::MAX >> rng.below(8),
                    _ => rng.next() >> 40,
                })
                .collect();
            let d = Dist::with_total(&w, 1).unwrap();
            let mut rs: Vec<u128> = vec![0, 1, u64::MAX as u128 - 1, u64::MAX as u128];
            let mut acc = 0u128;
            for c in w.chunks(LOCATE_CHUNK) {
                acc += c.iter().map(|&x| x as u128).sum::<u128>();
                rs.extend([acc.saturating_sub(1), acc, acc + 1]);
            }
            for _ in 0..8 {
                rs.push((rng.next() as u128) % acc.max(1));
            }
            for r in rs {
                let want = portable_skip_chunks(&w, r);
                let got = k.skip_chunks(&w, r);
                assert_eq!(got, want, "{what}: case {case} v={v} style={style} r={r}");
                if r < u64::MAX as u128 {
                    let r = r as u64;
                    assert_eq!(d.locate_with(&k, r), d.locate(r), "{what}: locate r={r}");
                }
            }
        }
        println!("rows-{what}: skip_chunks ran");
    }
}

/// The rank buckets equal argen-core's (`portable_buckets`, and `rank_bucket` by definition)
/// for every length 0…67 and longer rows (masked tails), values on and between bucket edges,
/// `d = m − y` outside `[0, 32]` (negative, beyond 32, infinite, NaN), `±0`; nothing past
/// `y.len()` is written.
#[test]
fn buckets_equal_the_portable_one() {
    use argen_core::process::portable_buckets;
    let mut rng = Rng(0x0b0c_4e75_0000_0004);
    for k in variants() {
        let what = k.variant().name();
        for n in (0..=67).chain([100, 513, 4099]) {
            for m in [0.0f32, 2.75, -11.0, 1.0e4] {
                let y: Vec<f32> = (0..n)
                    .map(|_| match rng.below(12) {
                        0 => m,
                        1 => m - (rng.below(600) as f32) / 16.0,
                        2 => m - (rng.below(1200) as f32 + 1.0) / 32.0,
                        3 => -0.0,
                        4 => 0.0,
                        5 => m - 40.0,
                        6 => m + 1.0,
                        7 => [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.below(3) as usize],
                        _ => m - ((rng.next() >> 40) as f32 / (1u64 << 24) as f32) * 32.0,
                    })
                    .collect();
                let mut a = vec![0xeeeeu16; n + 5];
                let mut b = vec![0xeeeeu16; n + 5];
                portable_buckets(m, &y, &mut a);
                argen_core::RowKernels::buckets(&k, m, &y, &mut b);
                assert_eq!(a, b, "{what}: n={n} m={m}");
                for j in 0..n {
                    assert_eq!(b[j] as usize, rank_bucket(m - y[j]), "{what}: y={}", y[j]);
                }
                assert!(
                    b[n..].iter().all(|&x| x == 0xeeee),
                    "{what}: wrote past y.len()"
                );
            }
        }
        println!("rows-{what}: buckets ran");
    }
}

/// Top-p's bucket masses of candidates and their total equal argen-core's
/// (`portable_bucket_masses`) and the specification's, summed here from
/// `trunc(exp_f32(y − m) · 2^40)` computed in `f64` (exact: the product by `2^40` of an
/// `f32`) and `rank_bucket(m − y)`, for every length 0…67 and longer rows (masked tails),
/// candidates across `[m − 32, m]` (on bucket edges, at `m`, at `m − 32`, where the weight
/// falls to 0 near `m − 27.7`, `±0`), added onto masses that are not zero.
#[test]
fn bucket_masses_equal_the_portable_ones() {
    use argen_core::detmath::exp_f32;
    use argen_core::process::{portable_bucket_masses, BUCKETS};
    let mut rng = Rng(0x3e19_4b5c_0000_0006);
    for k in variants() {
        let what = k.variant().name();
        for n in (0..=67).chain([100, 513, 4099]) {
            for m in [0.0f32, 2.75, -11.0, 1.0e4, 31.5] {
                let y: Vec<f32> = (0..n)
                    .map(|_| match rng.below(10) {
                        0 => m,
                        1 => m - (rng.below(513) as f32) / 16.0,
                        2 => m - 32.0,
                        3 => m - 27.72 - (rng.below(100) as f32) * 1e-4,
                        4 if m == 0.0 => -0.0,
                        _ => m - ((rng.next() >> 40) as f32 / (1u64 << 24) as f32) * 32.0,
                    })
                    .map(|y: f32| if m - y > 32.0 { m - 32.0 } else { y })
                    .collect();
                let start: Vec<u64> = (0..BUCKETS).map(|_| rng.next() >> 30).collect();
                let mut want: [u64; BUCKETS] = start.clone().try_into().unwrap();
                let mut total = 0u64;
                for &yj in &y {
                    let w = (exp_f32(yj - m) as f64 * (1u64 << 40) as f64) as u64;
                    want[rank_bucket(m - yj)] += w;
                    total += w;
                }
                let mut a: [u64; BUCKETS] = start.clone().try_into().unwrap();
                let mut b = a;
                assert_eq!(
                    portable_bucket_masses(m, &y, &mut a),
                    total,
                    "{what}: n={n}"
                );
                assert_eq!(a, want, "portable: n={n} m={m}");
                let got = argen_core::RowKernels::bucket_masses(&k, m, &y, &mut b);
                assert_eq!(got, total, "{what}: n={n} m={m}");
                assert_eq!(b, want, "{what}: n={n} m={m}");
            }
        }
        println!("rows-{what}: bucket_masses ran");
    }
}
