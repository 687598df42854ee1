use super::*;

use crate::test_rng as rng;

/// Straight transcription of the documented reduction order, one element at a time.
fn reference(x: &[f32], w: &[f32], k: usize, bias: Option<f32>) -> f32 {
    let kb = k / 8 * 8;
    let mut lanes = [0f32; 8];
    for i in 0..kb {
        lanes[i % 8] = x[i].mul_add(w[i], lanes[i % 8]);
    }
    let mut t = hsum(lanes);
    for i in kb..k {
        t = x[i].mul_add(w[i], t);
    }
    bias.map_or(t, |b| t + b)
}

/// The variants this machine runs; prints `SKIPPED <name>: <reason>` for the others.
fn supported() -> Vec<Variant> {
    let mut v = Vec::new();
    for var in Variant::ALL {
        match var.unsupported() {
            None => v.push(var),
            Some(why) => println!("SKIPPED {}: {why}", var.name()),
        }
    }
    v
}

/// The [`Pairing`]s to check `isa` with: the CPU's own and, on
/// AVX-512 (the only variant that pairs), every packed row block of two or more rows paired
/// (swapping the line, and swapping the inputs), and none; with `k` loops whole and in panels
/// of 8 to 72 columns ([`Span`]), paired and not; and packed calls of 9 to 10, 12 or 14 rows
/// (f32) or 10 or 12 (half precision) as one tall block ([`tall_rows`]), whole and in panels,
/// the longer calls as before.
fn pairings(isa: Variant) -> Vec<Pairing> {
    let mut v = vec![Pairing::tuned()];
    if isa == Variant::Avx512 {
        for (m, xswap_max, panel_x_bytes, tall, half_tall) in [
            (2, 0, usize::MAX, 0, 0),
            (2, MR_WIDE, 100, 0, 0),
            (usize::MAX, 0, 300, 0, 0),
            (2, 0, 1000, 0, 0),
            (2, 0, usize::MAX, MR_TALL, MR_HALF_TALL),
            (usize::MAX, 0, 300, 12, 10),
            (2, MR_WIDE, 1000, 10, MR_HALF_TALL),
        ] {
            v.push(Pairing {
                f32: m,
                bf16: m,
                f16: m,
                xswap_max,
                min_k: 0,
                panel_min_x_bytes: panel_x_bytes,
                panel_x_bytes,
                tall,
                half_tall,
            });
        }
    }
    v
}

fn pools() -> Vec<Workers> {
    [1, 3].iter().map(|&t| Workers::new(t).unwrap()).collect()
}

#[test]
fn every_isa_dtype_and_shape_matches_the_documented_order_bit_for_bit() {
    let pools = pools();
    let isas = supported();
    let mut r = rng(7);
    for &k in &[1usize, 7, 8, 13, 64, 100, 769] {
        for &n in &[1usize, 3, 4, 5, 13, 37, 200] {
            // n = 200 at k = 769 spans several column blocks and task ranges; once is
            // enough.
            if n == 200 && k != 769 {
                continue;
            }
            // 10 and 17 rows: two and three AVX-512 row blocks (paired and not, `pairings`),
            // over several column blocks at n = 200; 9, 10, 13 and 14 rows: one tall block
            // (odd and even) where `pairings` turns it on.
            let rows_max = 30;
            let x: Vec<f32> = (0..rows_max * k).map(|_| r()).collect();
            let w32: Vec<f32> = (0..n * k).map(|_| r()).collect();
            let wb: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
            let wh: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
            let bias: Vec<f32> = (0..n).map(|_| r()).collect();
            let wbp = pack_bf16(&wb, n, k);
            let whp = pack(&wh, n, k, f16::ZERO);
            let w32p = pack(&w32, n, k, 0f32);
            let w32c = pack_class_major(&w32, n, k);
            let wbc = pack_class_major_bf16(&wb, n, k);
            let whc = pack_class_major_f16(&wh, n, k);
            let wides: [(WRef<'_>, Vec<f32>); 9] = [
                (
                    WRef::BF16ClassMajor(&wbc),
                    wb.iter().map(|v| v.to_f32()).collect(),
                ),
                (
                    WRef::F16ClassMajor(&whc),
                    wh.iter().map(|v| v.to_f32()).collect(),
                ),
                (WRef::F32(&w32), w32.clone()),
                (WRef::F32Packed(&w32p), w32.clone()),
                (WRef::F32ClassMajor(&w32c), w32.clone()),
                (WRef::BF16(&wb), wb.iter().map(|v| v.to_f32()).collect()),
                (WRef::F16(&wh), wh.iter().map(|v| v.to_f32()).collect()),
                (
                    WRef::BF16Packed(&wbp),
                    wb.iter().map(|v| v.to_f32()).collect(),
                ),
                (
                    WRef::F16Packed(&whp),
                    wh.iter().map(|v| v.to_f32()).collect(),
                ),
            ];
            for (wref, wide) in &wides {
                for rows in (1usize..=10).chain([13, 14, 17, 30]) {
                    if n == 200 && ![1, 2, 4, 9, 10, 17].contains(&rows) {
                        continue;
                    }
                    for (bi, b) in [None, Some(&bias[..])].into_iter().enumerate() {
                        let want: Vec<f32> = (0..rows * n)
                            .map(|e| {
                                let (ri, ni) = (e / n, e % n);
                                reference(&x[ri * k..], &wide[ni * k..], k, b.map(|b| b[ni]))
                            })
                            .collect();
                        for &isa in &isas {
                            for (pi, pool) in pools.iter().enumerate() {
                                let tasks = [1, 5][pi];
                                for pairing in pairings(isa) {
                                    let mut out = vec![f32::NAN; rows * n];
                                    gemm_run(
                                        isa, pairing, pool, tasks, &x, rows, k, *wref, n, b,
                                        &mut out,
                                    );
                                    for e in 0..rows * n {
                                        assert_eq!(
                                            out[e].to_bits(),
                                            want[e].to_bits(),
                                            "{isa:?} {pairing:?} {wref:?} k={k} n={n} \
                                             rows={rows} bias={bi} tasks={tasks} element {e}",
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `rows × n` products of the inputs `x` and the widened weights `wide` (`[n, k]`) in the
/// documented order, no bias.
fn products(x: &[f32], wide: &[f32], rows: usize, k: usize, n: usize) -> Vec<f32> {
    (0..rows * n)
        .map(|e| reference(&x[(e / n) * k..], &wide[(e % n) * k..], k, None))
        .collect()
}

/// One random `[n, k]` matrix in every layout a model stores (f32 row-major, packed and
/// class-major, bf16 and f16 packed).
struct Matrices {
    w32: Vec<f32>,
    w32p: Buf<f32>,
    w32c: Buf<f32>,
    wbc: Buf<bf16>,
    whc: Buf<f16>,
    wb: Vec<bf16>,
    wbp: Buf<bf16>,
    wh: Vec<f16>,
    whp: Buf<f16>,
}

impl Matrices {
    fn new(r: &mut impl FnMut() -> f32, k: usize, n: usize) -> Matrices {
        let w32: Vec<f32> = (0..n * k).map(|_| r()).collect();
        let wb: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
        let wh: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
        Matrices {
            w32p: pack(&w32, n, k, 0f32),
            w32c: pack_class_major(&w32, n, k),
            wbc: pack_class_major_bf16(&wb, n, k),
            whc: pack_class_major_f16(&wh, n, k),
            wbp: pack_bf16(&wb, n, k),
            whp: pack(&wh, n, k, f16::ZERO),
            w32,
            wb,
            wh,
        }
    }

    /// Each layout, the widened weights its products use, and its dtype's name.
    fn cases(&self) -> [(WRef<'_>, Vec<f32>, &'static str); 7] {
        [
            (
                WRef::BF16ClassMajor(&self.wbc),
                self.wb.iter().map(|v| v.to_f32()).collect(),
                "bf16",
            ),
            (
                WRef::F16ClassMajor(&self.whc),
                self.wh.iter().map(|v| v.to_f32()).collect(),
                "f16",
            ),
            (WRef::F32(&self.w32), self.w32.clone(), "f32"),
            (WRef::F32Packed(&self.w32p), self.w32.clone(), "f32"),
            (WRef::F32ClassMajor(&self.w32c), self.w32.clone(), "f32"),
            (
                WRef::BF16Packed(&self.wbp),
                self.wb.iter().map(|v| v.to_f32()).collect(),
                "bf16",
            ),
            (
                WRef::F16Packed(&self.whp),
                self.wh.iter().map(|v| v.to_f32()).collect(),
                "f16",
            ),
        ]
    }
}

/// Every variant the CPU runs, on 1–3 threads, against the documented order for an `[n, k]`
/// matrix in every layout (f32 row-major and packed, bf16 and f16 packed), at each of
/// `row_counts` rows. A row's result does not depend on the batch, so one reference per
/// layout serves every count.
fn check_layouts(r: &mut impl FnMut() -> f32, k: usize, n: usize, row_counts: &[usize]) {
    let isas = supported();
    let pools: Vec<(Workers, usize)> = [(1, 1), (2, 3), (3, 8)]
        .iter()
        .map(|&(t, tasks)| (Workers::new(t).unwrap(), tasks))
        .collect();
    let max_rows = row_counts.iter().copied().max().unwrap_or(0);
    let x: Vec<f32> = (0..max_rows * k).map(|_| r()).collect();
    let m = Matrices::new(r, k, n);
    for (wref, wide, _) in &m.cases() {
        let want = products(&x, wide, max_rows, k, n);
        for &isa in &isas {
            for pairing in pairings(isa) {
                for (pool, tasks) in &pools {
                    for &rows in row_counts {
                        let mut out = vec![f32::NAN; rows * n];
                        gemm_run(
                            isa, pairing, pool, *tasks, &x, rows, k, *wref, n, None, &mut out,
                        );
                        for e in 0..rows * n {
                            assert_eq!(
                                out[e].to_bits(),
                                want[e].to_bits(),
                                "{isa:?} {pairing:?} {wref:?} k={k} n={n} rows={rows} \
                                 tasks={tasks} element {e}",
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn every_variant_matches_the_documented_order_for_1_to_128_rows_and_thread_counts() {
    let mut r = rng(29);
    let rows: Vec<usize> = (1..=128).collect();
    for &(k, n) in &[(40usize, 9usize), (77, 36), (300, 5)] {
        check_layouts(&mut r, k, n, &rows);
    }
}

/// Tall tiles, the phased prefetch of the next column block (the first passes over later
/// blocks paired) and the even split of half-precision calls, each on and off whatever this
/// CPU's table says, over several column and row blocks: the documented bits on every
/// variant, pairing and thread count.
#[test]
fn tall_tiles_phased_prefetch_and_even_splits_keep_the_bits() {
    let _one = setting_tunings();
    let before = tuning();
    let (k, n) = (2053usize, 50usize);
    for (phased, tall, even) in [
        (true, MR_TALL, 15),
        (false, 0, 0),
        (true, 0, 12),
        (false, 12, 0),
    ] {
        set_tuning(Tuning {
            f32_phased_min_rows: if phased { 0 } else { usize::MAX },
            f32_tall_rows: tall,
            half_even_split_rows: even,
            half_tall_rows: tall.min(MR_HALF_TALL),
            ..before
        });
        check_layouts(
            &mut rng(47),
            k,
            n,
            &[2, 9, 10, 11, 12, 13, 15, 16, 17, 24, 40],
        );
    }
    set_tuning(before);
}

#[test]
fn several_column_and_row_blocks_match_the_documented_order() {
    // f32: column blocks of 20 columns at this k; half precision: 44.
    let (k, n) = (2053usize, 50usize);
    assert!(BLOCK_BYTES / (k * 4) / NR * NR < n && BLOCK_BYTES / (k * 2) / NR * NR < n);
    check_layouts(&mut rng(31), k, n, &[3, 6, 8, 9, 16, 17, 40]);
}

/// One- and two-row calls whose inputs are too long to stay in L1 (the prefetch-ahead path
/// of [`Tuning::no_prefetch_max_x_bytes`] on CPUs that set it), every variant and thread count.
#[test]
fn short_calls_of_long_inputs_match_the_documented_order() {
    for (k, seed) in [(2053usize, 37u64), (3100, 41)] {
        assert!(2 * k * 4 > 12 << 10);
        check_layouts(&mut rng(seed), k, 13, &[1, 2]);
    }
}

/// Asserts that `index` maps the elements of an `[n, k]` matrix one to one into a layout of
/// `tile`-row tiles (`⌈n/tile⌉·tile·k` elements), whose padding rows are the only elements
/// left over.
fn assert_bijection(index: fn(usize, usize, usize) -> usize, n: usize, k: usize, tile: usize) {
    let len = n.div_ceil(tile) * tile * k;
    let mut seen = vec![false; len];
    for r in 0..n {
        for c in 0..k {
            let i = index(r, c, k);
            assert!(!seen[i], "n={n} k={k} ({r},{c}) collides");
            seen[i] = true;
        }
    }
    assert_eq!(
        seen.iter().filter(|s| !**s).count(),
        len - n * k,
        "n={n} k={k}"
    );
}

#[test]
fn packed_index_is_a_bijection_onto_the_unpadded_elements() {
    for (n, k) in [
        (1usize, 1usize),
        (3, 7),
        (4, 8),
        (5, 13),
        (9, 16),
        (13, 100),
    ] {
        for index in [packed_index, packed_index_bf16] {
            assert_eq!(packed_len(n, k), n.div_ceil(NR) * NR * k);
            assert_bijection(index, n, k, NR);
        }
        let w: Vec<u32> = (0..(n * k) as u32).collect();
        let p = pack(&w, n, k, u32::MAX);
        let wb: Vec<bf16> = (0..n * k).map(|i| bf16::from_bits(i as u16 | 1)).collect();
        let pb = pack_bf16(&wb, n, k);
        for r in 0..n {
            for c in 0..k {
                assert_eq!(p[packed_index(r, c, k)], (r * k + c) as u32);
                assert_eq!(pb[packed_index_bf16(r, c, k)], wb[r * k + c]);
            }
        }
        // Padding is zero.
        let filled = pb.iter().filter(|v| v.to_bits() != 0).count();
        assert_eq!(filled, n * k, "n={n} k={k}");
    }
}

#[test]
fn class_major_index_is_a_bijection_and_packs_by_lane_class() {
    for (n, k) in [(1usize, 1usize), (3, 7), (32, 8), (33, 13), (70, 100)] {
        assert_eq!(class_major_len(n, k), n.div_ceil(CM_NC) * CM_NC * k);
        assert_bijection(class_major_index, n, k, CM_NC);
        let w: Vec<f32> = (0..n * k).map(|i| i as f32 + 1.0).collect();
        let p = pack_class_major(&w, n, k);
        for r in 0..n {
            for c in 0..k {
                assert_eq!(p[class_major_index(r, c, k)], w[r * k + c]);
            }
        }
        assert_eq!(
            p.iter().filter(|v| **v != 0.0).count(),
            n * k,
            "padding is zero"
        );
    }
    // bf16: within each column the rows pair into words (row c low, row 16 + c high).
    for (n, k) in [(3usize, 7usize), (33, 13), (70, 100)] {
        assert_bijection(class_major_index_bf16, n, k, CM_NC);
        for r in 0..n {
            for c in 0..k {
                let (i, j) = (class_major_index_bf16(r, c, k), class_major_index(r, c, k));
                assert_eq!(
                    i / CM_NC,
                    j / CM_NC,
                    "bf16 n={n} k={k} ({r},{c}): same column"
                );
            }
        }
    }
    assert_eq!(class_major_index_bf16(5, 0, 8), 10);
    assert_eq!(class_major_index_bf16(21, 0, 8), 11);
    // Tile 0, class 1, step 2 (column 17) of row 5; the tail column 17 of k = 18 (k8 = 2).
    assert_eq!(class_major_index(5, 17, 24), (3 + 2) * CM_NC + 5);
    assert_eq!(class_major_index(5, 17, 18), 17 * CM_NC + 5);
    assert_eq!(class_major_index(37, 0, 18), CM_NC * 18 + 5);
}

/// The class-major kernels ([`class_major`]) with one row block and several, each prefetch
/// kind, column blocks of one tile and more, and block sizes from 1 to [`CM_MR`] rows: the
/// documented bits on every variant and thread count.
#[test]
fn class_major_blocks_and_prefetch_kinds_keep_the_bits() {
    let _one = setting_tunings();
    let before = tuning();
    for (single, block, nta, block_bytes) in [
        (14, 12, true, BLOCK_BYTES),
        (1, 1, false, 1),
        (8, 5, true, 40 << 10),
        (CM_MR, CM_MR, false, 300 << 10),
        (0, 3, true, 1),
    ] {
        set_tuning(Tuning {
            cm_single_rows: single,
            cm_block_rows: block,
            cm_nta: nta,
            block_bytes,
            ..before
        });
        check_layouts(&mut rng(53), 203, 70, &[1, 2, 3, 8, 13, 14, 15, 29, 40]);
    }
    set_tuning(before);
}

#[test]
fn interleaved_bf16_lines_hold_rows_0_1_low_and_2_3_high() {
    // One tile, one block: word i = (row i/8, element i%8) low, (row 2 + i/8, same) high.
    let k = 8;
    let w: Vec<bf16> = (0..4 * k).map(|i| bf16::from_bits(i as u16)).collect();
    let p = pack_bf16(&w, 4, k);
    for i in 0..16 {
        let (lo, hi) = (p[2 * i].to_bits() as usize, p[2 * i + 1].to_bits() as usize);
        assert_eq!(lo, (i / 8) * k + i % 8, "word {i} low");
        assert_eq!(hi, (2 + i / 8) * k + i % 8, "word {i} high");
    }
}

#[test]
fn dot_matches_the_documented_order() {
    let mut r = rng(11);
    for k in [0usize, 1, 5, 8, 9, 64, 67, 300] {
        let a: Vec<f32> = (0..k).map(|_| r()).collect();
        let b: Vec<f32> = (0..k).map(|_| r()).collect();
        let want = reference(&a, &b, k, None);
        assert_eq!(dot(&a, &b).to_bits(), want.to_bits(), "k={k}");
        assert_eq!(portable_dot(&a, &b).to_bits(), want.to_bits(), "k={k}");
    }
}

#[test]
fn axpy_is_an_elementwise_fma() {
    let mut r = rng(5);
    for k in [0usize, 3, 8, 21, 64] {
        let a = r();
        let x: Vec<f32> = (0..k).map(|_| r()).collect();
        let y0: Vec<f32> = (0..k).map(|_| r()).collect();
        let mut y = y0.clone();
        axpy(a, &x, &mut y);
        for i in 0..k {
            assert_eq!(
                y[i].to_bits(),
                a.mul_add(x[i], y0[i]).to_bits(),
                "k={k} i={i}"
            );
        }
    }
}

#[test]
fn result_is_close_to_exact_arithmetic() {
    let mut r = rng(3);
    let (rows, k, n) = (5usize, 200usize, 9usize);
    let x: Vec<f32> = (0..rows * k).map(|_| r()).collect();
    let w: Vec<f32> = (0..n * k).map(|_| r()).collect();
    let mut out = vec![0f32; rows * n];
    let pool = Workers::new(1).unwrap();
    gemm(&pool, 2, &x, rows, k, WRef::F32(&w), n, None, &mut out);
    for ri in 0..rows {
        for ni in 0..n {
            let exact: f64 = (0..k)
                .map(|i| x[ri * k + i] as f64 * w[ni * k + i] as f64)
                .sum();
            assert!((out[ri * n + ni] as f64 - exact).abs() < 1e-4, "{ri},{ni}");
        }
    }
}

#[test]
fn a_tuning_spec_round_trips_and_bad_entries_are_named() {
    for t in [tuning(), Tuning::generic()] {
        assert_eq!(Tuning::generic().with_spec(&t.spec()).unwrap(), t);
    }
    let g = Tuning::generic();
    assert_eq!(entry_name(&g), Some("generic"));
    for (name, t) in known_tables() {
        assert_eq!(entry_name(&t), Some(name));
    }
    assert_eq!(
        entry_name(&g.with_spec("pf_packed_bytes=3072").unwrap()),
        None
    );
    assert_eq!(g.with_spec("").unwrap(), g);
    assert_eq!(g.with_spec(" , base=generic,").unwrap(), g);
    let u = g.with_spec("pf_packed_bytes=4096, l2_prefetch=1").unwrap();
    assert_eq!((u.pf_packed_bytes, u.l2_prefetch), (4096, true));
    for (bad, why) in [
        ("pf_packed_bytes", "not key=value"),
        ("no_such_key=1", "unknown kernel tuning key"),
        ("pf_packed_bytes=-1", "not a whole number"),
        ("l2_prefetch=2", "a switch is 0 or 1"),
    ] {
        let e = g.with_spec(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    // Every key of the search spaces is a key, and every value they try is accepted.
    let cm = Tuning {
        f32_class_major: true,
        f16_class_major: true,
        bf16_class_major: true,
        ..g
    };
    let spaces = [
        ("f32", g),
        ("f32", tuning()),
        ("f32", cm),
        ("bf16", g),
        ("bf16", cm),
        ("f16", g),
        ("f16", cm),
    ]
    .map(|(dtype, t)| search_space(&t, dtype, 2));
    for space in spaces.into_iter().chain([fast_search_space(2)]) {
        for (key, values) in space {
            assert!(SPEC_KEYS.contains(&key), "{key}");
            for v in values {
                g.with_spec(&format!("{key}={v}")).unwrap();
            }
        }
    }
}

/// The kernel calibration swaps the global tuning while GEMMs may run on other threads: any
/// tuning from its search space, set at any time, gives the documented bits (every call reads
/// the tuning once, so its tasks agree on how to split the work).
#[test]
fn every_calibration_candidate_gives_the_documented_bits() {
    let _one = setting_tunings();
    let before = tuning();
    let mut r = rng(41);
    let (k, n) = (769, 37);
    let x: Vec<f32> = (0..17 * k).map(|_| r()).collect();
    let m = Matrices::new(&mut r, k, n);
    let cases = m.cases();
    let pools: Vec<(Workers, usize)> = [(1, 1), (3, 6)]
        .iter()
        .map(|&(t, tasks)| (Workers::new(t).unwrap(), tasks))
        .collect();
    let mut pick = 0x9E37_79B9_7F4A_7C15u64;
    for (wref, wide, dtype) in &cases {
        let want = products(&x, wide, 17, k, n);
        // Both f32 layouts' settings (`pack_f32_max_k` between GPT-B's k = 768 and 2048), for
        // packed f32 in either layout.
        let space: Vec<(&str, Vec<usize>)> = [false, true]
            .into_iter()
            .flat_map(|class_major| {
                let both = Tuning {
                    pack_f32_max_k: 1024,
                    f32_class_major: class_major,
                    f16_class_major: class_major,
                    bf16_class_major: class_major,
                    ..before
                };
                search_space(&both, dtype, 3)
            })
            .collect();
        // Each value of each key once, over a random base drawn from the space.
        for (key, values) in &space {
            for &v in values {
                let mut t = before;
                for (other, vals) in &space {
                    pick ^= pick << 13;
                    pick ^= pick >> 7;
                    pick ^= pick << 17;
                    t.set(other, vals[(pick % vals.len() as u64) as usize]);
                }
                t.set(key, v);
                set_tuning(t);
                assert_eq!(tuning(), t);
                for (pool, tasks) in &pools {
                    for rows in [1, 2, 3, 8, 9, 17] {
                        let mut out = vec![f32::NAN; rows * n];
                        gemm(pool, *tasks, &x, rows, k, *wref, n, None, &mut out);
                        for e in 0..rows * n {
                            assert_eq!(
                                out[e].to_bits(),
                                want[e].to_bits(),
                                "{t:?} {wref:?} rows={rows} tasks={tasks} element {e}",
                            );
                        }
                    }
                }
            }
        }
    }
    set_tuning(before);
}

/// A tuning changed by another thread while calls run (as `argen calibrate --kernels` may,
/// or an embedding runtime applying a profile) leaves every call's bits as documented: a call
/// reads the tuning once, so its tasks cannot mix two (pairing and padding included).
#[test]
fn a_tuning_changed_while_calls_run_keeps_the_bits() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let _one = setting_tunings();
    let before = tuning();
    let mut r = rng(43);
    let (k, n) = (769, 37);
    let x: Vec<f32> = (0..17 * k).map(|_| r()).collect();
    let m = Matrices::new(&mut r, k, n);
    let pool = Workers::new(3).unwrap();
    // Every table entry, and each with pairing, padding and the class-major blocks turned the
    // other way.
    let mut flips: Vec<Tuning> = known_tables().iter().map(|e| e.1).collect();
    for t in flips.clone() {
        let mut u = t;
        for key in [
            "f32_paired_min_rows",
            "bf16_paired_min_rows",
            "f16_paired_min_rows",
        ] {
            let v = if t.get(key) == Some(usize::MAX) {
                2
            } else {
                usize::MAX
            };
            u = candidate(&u, key, v);
        }
        u.f32_min_tile_rows = if t.f32_min_tile_rows == 0 { 8 } else { 0 };
        // Class-major: one padded block against several (`class_major::blocks`).
        u.cm_single_rows = if t.cm_single_rows > 2 { 2 } else { CM_MR };
        u.cm_min_rows = if t.cm_min_rows == 0 { 6 } else { 0 };
        flips.push(u);
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                set_tuning(flips[i % flips.len()]);
                i += 1;
                std::thread::yield_now();
            }
        });
        // Stops the other thread however this one ends (a failed assertion included).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        for (wref, wide, _) in &m.cases() {
            let want = products(&x, wide, 17, k, n);
            for _ in 0..200 {
                for rows in [2, 8, 9, 17] {
                    let mut out = vec![f32::NAN; rows * n];
                    gemm(&pool, 6, &x, rows, k, *wref, n, None, &mut out);
                    for e in 0..rows * n {
                        assert_eq!(
                            out[e].to_bits(),
                            want[e].to_bits(),
                            "{wref:?} rows={rows} element {e}"
                        );
                    }
                }
            }
        }
    });
    set_tuning(before);
}
