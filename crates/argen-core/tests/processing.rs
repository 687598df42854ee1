//! Logit processing semantics against an independent, naive reference of the specification in
//! `src/process.rs` (full sort instead of selection, `f64` instead of fixed-point tricks where the
//! spec allows, the lane-tree reduction written out from its definition), plus ties, masks,
//! guidance, input formats, and determinism across runs, batch composition and threads.

mod support;

use argen_core::detmath::exp_f32;
use argen_core::{
    process, sample, Dist, Error, Guided, Key, Logit, Processed, Purpose, SamplerParams, Workspace,
    WEIGHT_ONE,
};
use half::{bf16, f16};
use support::*;

/// Guidance written out from the specification in `src/guidance.rs`.
fn reference_combine(g: &Guided<'_, f32>) -> Vec<f32> {
    const NEG: f32 = f32::NEG_INFINITY;
    match *g {
        Guided::Plain(r) => r.to_vec(),
        Guided::TwoWay {
            cond,
            uncond,
            scale,
        } => cond
            .iter()
            .zip(uncond)
            .map(|(&c, &u)| {
                if c == NEG || u == NEG {
                    NEG
                } else {
                    u + scale * (c - u)
                }
            })
            .collect(),
        Guided::ThreeWay {
            cond,
            uncond,
            reformulated,
            w,
        } => {
            let n = cond.len();
            let masked = |i: usize| cond[i] == NEG || uncond[i] == NEG || reformulated[i] == NEG;
            // Lane tree (src/reduce.rs): lane i % 256 accumulates in index order, then halving.
            let lane_tree = |term: &dyn Fn(usize) -> f64| {
                let mut lanes = [0.0f64; 256];
                for i in 0..n {
                    lanes[i % 256] += term(i);
                }
                let mut width = 128;
                while width >= 1 {
                    for j in 0..width {
                        lanes[j] += lanes[j + width];
                    }
                    width /= 2;
                }
                lanes[0]
            };
            let d_o = |i: usize| {
                if masked(i) {
                    0.0
                } else {
                    (cond[i] - uncond[i]) as f64
                }
            };
            let d_r = |i: usize| {
                if masked(i) {
                    0.0
                } else {
                    (reformulated[i] - uncond[i]) as f64
                }
            };
            let dot = lane_tree(&|i| d_o(i) * d_r(i));
            let norm = lane_tree(&|i| d_o(i) * d_o(i));
            let rho = if norm > 0.0 { (dot / norm) as f32 } else { 0.0 };
            (0..n)
                .map(|i| {
                    if masked(i) {
                        NEG
                    } else {
                        let (c, u, r) = (cond[i], uncond[i], reformulated[i]);
                        (u + (w + 1.0) * (c - u)) + w * ((r - u) - rho * (c - u))
                    }
                })
                .collect()
        }
    }
}

/// Steps 2–8 of the specification, naively.
fn reference_process(x: &[f32], params: &SamplerParams) -> (Vec<u64>, Processed) {
    let v = x.len();
    let scale = if params.temperature > 0.0 {
        1.0f32 / params.temperature
    } else {
        1.0
    };
    let y: Vec<f32> = x
        .iter()
        .map(|&xi| {
            if xi == f32::NEG_INFINITY {
                xi
            } else {
                xi * scale + 0.0
            }
        })
        .collect();
    let mut ranked: Vec<usize> = (0..v).filter(|&i| y[i] != f32::NEG_INFINITY).collect();
    ranked.sort_by(|&a, &b| y[b].partial_cmp(&y[a]).unwrap().then(a.cmp(&b)));
    let argmax = ranked[0];
    let mut w = vec![0u64; v];
    if params.temperature == 0.0 {
        w[argmax] = WEIGHT_ONE;
        return (
            w,
            Processed {
                total: WEIGHT_ONE,
                argmax: argmax as u32,
                support: 1,
            },
        );
    }
    let k = params
        .top_k
        .map_or(ranked.len(), |k| (k as usize).min(ranked.len()));
    let cand = &ranked[..k];
    let m = y[argmax];
    for &i in cand {
        w[i] = (exp_f32(y[i] - m) as f64 * 1_099_511_627_776.0).trunc() as u64;
    }
    let z: u128 = cand.iter().map(|&i| w[i] as u128).sum();
    let mut keep = vec![true; v];
    if let Some(p) = params.top_p {
        let big_p = ((p as f64 * 4_294_967_296.0).trunc() as u128).max(1);
        let mut before = 0u128;
        for &i in cand {
            keep[i] &= (before << 32) < big_p * z;
            before += w[i] as u128;
        }
    }
    if let Some(p) = params.min_p {
        let big_m = (p as f64 * 4_294_967_296.0).trunc() as u128;
        for &i in cand {
            keep[i] &= ((w[i] as u128) << 32) >= big_m * (WEIGHT_ONE as u128);
        }
    }
    for i in 0..v {
        if !keep[i] {
            w[i] = 0;
        }
    }
    let total = w.iter().sum();
    let support = w.iter().filter(|&&x| x > 0).count() as u32;
    (
        w,
        Processed {
            total,
            argmax: argmax as u32,
            support,
        },
    )
}

fn run<L: Logit>(
    g: &Guided<'_, L>,
    params: &SamplerParams,
) -> Result<(Vec<u64>, Processed), Error> {
    let v = g.vocab();
    let (mut y, mut order, mut out) = (vec![0.0f32; v], vec![0u32; v], vec![0u64; v]);
    let mut ws = Workspace {
        logits: &mut y,
        order: &mut order,
    };
    let p = process(g, params, &mut ws, &mut out)?;
    Ok((out, p))
}

fn random_logits(rng: &mut TestRng, v: usize) -> Vec<f32> {
    // Wide rows (scale 30) put many tokens beyond the 32-nat cut-off of `process`.
    let scale = [0.3, 1.0, 3.0, 10.0, 30.0][rng.below(5) as usize];
    let quantise = rng.chance(0.3); // many exact ties
    let mask = [0.0, 0.1, 0.5][rng.below(3) as usize];
    let mut row: Vec<f32> = (0..v)
        .map(|_| {
            if rng.chance(mask) {
                f32::NEG_INFINITY
            } else if quantise {
                (rng.normal(scale) * 2.0).round() as f32 / 2.0
            } else {
                rng.normal(scale) as f32
            }
        })
        .collect();
    if row.iter().all(|x| *x == f32::NEG_INFINITY) {
        row[rng.below(v as u64) as usize] = 0.0;
    }
    if rng.chance(0.05) {
        row[0] = -0.0;
    }
    row
}

fn random_params(rng: &mut TestRng, v: usize) -> SamplerParams {
    SamplerParams {
        temperature: [0.0f32, 0.1, 0.5, 0.7, 1.0, 1.5, 3.0][rng.below(7) as usize],
        top_k: rng.chance(0.4).then(|| rng.range(1, v) as u32),
        top_p: rng
            .chance(0.4)
            .then(|| [0.01f32, 0.3, 0.5, 0.9, 0.95, 1.0][rng.below(6) as usize]),
        min_p: rng
            .chance(0.3)
            .then(|| [0.0f32, 0.01, 0.05, 0.3, 1.0][rng.below(5) as usize]),
    }
}

#[test]
fn process_matches_the_naive_reference() {
    let mut rng = TestRng(0x9e0c_0001);
    for case in 0..3000 {
        let v = if case % 100 == 0 {
            rng.range(300, 3000)
        } else {
            rng.range(1, 64)
        };
        let params = random_params(&mut rng, v);
        let c = random_logits(&mut rng, v);
        let u = random_logits(&mut rng, v);
        let r = random_logits(&mut rng, v);
        let g = match case % 3 {
            0 => Guided::Plain(&c[..]),
            1 => Guided::TwoWay {
                cond: &c,
                uncond: &u,
                scale: [1.0f32, 1.75, 4.0, 7.5][rng.below(4) as usize],
            },
            _ => Guided::ThreeWay {
                cond: &c,
                uncond: &u,
                reformulated: &r,
                w: [0.0f32, 1.0, 5.0][rng.below(3) as usize],
            },
        };
        let combined = reference_combine(&g);
        if combined.iter().all(|x| *x == f32::NEG_INFINITY) {
            assert_eq!(run(&g, &params).unwrap_err(), Error::AllMasked);
            continue;
        }
        let expected = reference_process(&combined, &params);
        let got = run(&g, &params).unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert_eq!(got.1, expected.1, "case {case}: summary, params {params:?}");
        assert_eq!(got.0, expected.0, "case {case}: weights, params {params:?}");
        assert!(got.1.total >= WEIGHT_ONE);
        assert_eq!(got.0[got.1.argmax as usize], WEIGHT_ONE);
    }
}

#[test]
fn greedy_and_ties() {
    let greedy = SamplerParams::GREEDY;
    // Ties go to the lowest id; −0 and +0 tie.
    assert_eq!(
        run(&Guided::Plain(&[1.0f32, 3.0, 3.0, 2.0][..]), &greedy)
            .unwrap()
            .1
            .argmax,
        1
    );
    assert_eq!(
        run(&Guided::Plain(&[-0.0f32, 0.0][..]), &greedy)
            .unwrap()
            .1
            .argmax,
        0
    );
    assert_eq!(
        run(&Guided::Plain(&[0.0f32, -0.0][..]), &greedy)
            .unwrap()
            .1
            .argmax,
        0
    );
    let (w, p) = run(&Guided::Plain(&[f32::NEG_INFINITY, 5.0, 5.0][..]), &greedy).unwrap();
    assert_eq!(
        (w, p.support, p.total),
        (vec![0, WEIGHT_ONE, 0], 1, WEIGHT_ONE)
    );
    // Top-k among ties keeps the lowest ids.
    let top2 = SamplerParams {
        top_k: Some(2),
        ..SamplerParams::default()
    };
    let (w, _) = run(&Guided::Plain(&[1.0f32; 4][..]), &top2).unwrap();
    assert_eq!(w, vec![WEIGHT_ONE, WEIGHT_ONE, 0, 0]);
    let (w, _) = run(&Guided::Plain(&[0.0f32, 2.0, 2.0, 2.0][..]), &top2).unwrap();
    assert_eq!(w, vec![0, WEIGHT_ONE, WEIGHT_ONE, 0]);
    // Top-p at exactly half the mass of two equal tokens keeps one; a hair more keeps both.
    let half = SamplerParams {
        top_p: Some(0.5),
        ..SamplerParams::default()
    };
    assert_eq!(
        run(&Guided::Plain(&[0.0f32, 0.0][..]), &half).unwrap().0,
        vec![WEIGHT_ONE, 0]
    );
    let more = SamplerParams {
        top_p: Some(0.500_001),
        ..SamplerParams::default()
    };
    assert_eq!(
        run(&Guided::Plain(&[0.0f32, 0.0][..]), &more).unwrap().0,
        vec![WEIGHT_ONE; 2]
    );
    // Top-p below 2^-32 (P would truncate to 0) still keeps the top token: P = max(1, ·).
    for p in [1e-12f32, 2.0e-10, f32::MIN_POSITIVE, 1e-45] {
        let tiny = SamplerParams {
            top_p: Some(p),
            ..SamplerParams::default()
        };
        let (w, pr) = run(&Guided::Plain(&[0.5f32, 2.0, 1.0][..]), &tiny).unwrap();
        assert_eq!(
            (w, pr.support, pr.total),
            (vec![0, WEIGHT_ONE, 0], 1, WEIGHT_ONE),
            "{p}"
        );
    }
    // Min-p 1 keeps exactly the tokens tied with the top.
    let minp = SamplerParams {
        min_p: Some(1.0),
        ..SamplerParams::default()
    };
    assert_eq!(
        run(&Guided::Plain(&[1.0f32, 0.5, 1.0][..]), &minp)
            .unwrap()
            .0,
        vec![WEIGHT_ONE, 0, WEIGHT_ONE]
    );
    // Tokens more than ~27.7 nats below the top get weight 0 but no error.
    let (w, p) = run(
        &Guided::Plain(&[0.0f32, -40.0, f32::NEG_INFINITY][..]),
        &SamplerParams::default(),
    )
    .unwrap();
    assert_eq!((w, p.support), (vec![WEIGHT_ONE, 0, 0], 1));
    // Masked tokens never get weight and are never sampled.
    let row = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.1];
    let (w, p) = run(&Guided::Plain(&row[..]), &SamplerParams::default()).unwrap();
    assert_eq!((w[0], w[2]), (0, 0));
    let d = Dist::with_total(&w, p.total).unwrap();
    for pos in 0..500 {
        let t = sample(&d, Key::new(1, 0, Purpose::SAMPLE, pos)).unwrap();
        assert!(t == 1 || t == 3);
    }
}

#[test]
fn temperature_scales_logits() {
    // T = 0.5 doubles every logit: the same weights as T = 1 on the doubled row (exact in f32).
    let row = [0.25f32, -1.5, 2.0, 0.0];
    let doubled: Vec<f32> = row.iter().map(|x| x * 2.0).collect();
    let a = run(
        &Guided::Plain(&row[..]),
        &SamplerParams {
            temperature: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    let b = run(&Guided::Plain(&doubled[..]), &SamplerParams::default()).unwrap();
    assert_eq!(a, b);
    // Very high temperature flattens towards uniform but keeps the order.
    let (w, _) = run(
        &Guided::Plain(&row[..]),
        &SamplerParams {
            temperature: 1e6,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(w[2] == WEIGHT_ONE && w[0] > w[3] && w[3] > w[1] && w[1] > WEIGHT_ONE - (1 << 24));
}

/// Values exactly representable in f16 and bf16 give bit-identical weights and draws in all
/// three formats.
#[test]
fn half_formats_agree_with_f32() {
    let mut rng = TestRng(0x9e0c_0002);
    for case in 0..300 {
        let v = rng.range(1, 200);
        let gen = |rng: &mut TestRng| -> Vec<f32> {
            (0..v)
                .map(|_| {
                    if rng.chance(0.05) {
                        f32::NEG_INFINITY
                    } else {
                        (rng.below(511) as i32 - 255) as f32 / 16.0
                    }
                })
                .collect()
        };
        let (c, u) = (gen(&mut rng), gen(&mut rng));
        let c16: Vec<f16> = c.iter().map(|&x| f16::from_f32(x)).collect();
        let u16: Vec<f16> = u.iter().map(|&x| f16::from_f32(x)).collect();
        let cb: Vec<bf16> = c.iter().map(|&x| bf16::from_f32(x)).collect();
        let ub: Vec<bf16> = u.iter().map(|&x| bf16::from_f32(x)).collect();
        assert!(
            c16.iter().zip(&c).all(|(h, f)| h.to_f32() == *f)
                && cb.iter().zip(&c).all(|(h, f)| h.to_f32() == *f)
        );
        let params = random_params(&mut rng, v);
        let a = run(
            &Guided::TwoWay {
                cond: &c,
                uncond: &u,
                scale: 4.0,
            },
            &params,
        );
        let b = run(
            &Guided::TwoWay {
                cond: &c16,
                uncond: &u16,
                scale: 4.0,
            },
            &params,
        );
        let d = run(
            &Guided::TwoWay {
                cond: &cb,
                uncond: &ub,
                scale: 4.0,
            },
            &params,
        );
        assert_eq!(a, b, "case {case}: f16");
        assert_eq!(a, d, "case {case}: bf16");
        let a1 = run(&Guided::Plain(&c[..]), &params);
        assert_eq!(a1, run(&Guided::Plain(&c16[..]), &params));
        assert_eq!(a1, run(&Guided::Plain(&cb[..]), &params));
        if let Ok((w, p)) = a {
            let dist = Dist::with_total(&w, p.total).unwrap();
            let (wb, pb) = d.unwrap();
            let distb = Dist::with_total(&wb, pb.total).unwrap();
            for pos in 0..16 {
                let key = Key::new(case, 0, Purpose::SAMPLE, pos);
                assert_eq!(sample(&dist, key), sample(&distb, key));
            }
        }
    }
}

struct Row {
    cond: Vec<f32>,
    uncond: Vec<f32>,
    params: SamplerParams,
}

fn batch(rng: &mut TestRng) -> Vec<Row> {
    (0..40)
        .map(|_| {
            let v = rng.range(1, 400);
            Row {
                cond: random_logits(rng, v),
                uncond: random_logits(rng, v),
                params: random_params(rng, v),
            }
        })
        .collect()
}

/// Processes `rows` in the order `order` with ONE reused workspace sized for the largest row,
/// returning per row (weights, summary, four keyed draws).
/// Per row: weights, summary, keyed draws (`None` where processing failed).
type BatchResult = Vec<Option<(Vec<u64>, Processed, Vec<u32>)>>;

fn process_batch(rows: &[Row], order: &[usize]) -> BatchResult {
    let vmax = rows.iter().map(|r| r.cond.len()).max().unwrap();
    let (mut y, mut ord, mut out) = (
        vec![f32::NAN; vmax],
        vec![u32::MAX; vmax],
        vec![u64::MAX; vmax],
    );
    let mut results = vec![None; rows.len()];
    for &i in order {
        let r = &rows[i];
        let v = r.cond.len();
        let mut ws = Workspace {
            logits: &mut y,
            order: &mut ord,
        };
        let g = Guided::TwoWay {
            cond: &r.cond,
            uncond: &r.uncond,
            scale: 3.0,
        };
        results[i] = process(&g, &r.params, &mut ws, &mut out).ok().map(|p| {
            let w = out[..v].to_vec();
            let d = Dist::with_total(&w, p.total).unwrap();
            let draws = (0..4)
                .map(|pos| sample(&d, Key::new(5, i as u32, Purpose::SAMPLE, pos)).unwrap())
                .collect();
            (w, p, draws)
        });
    }
    results
}

#[test]
fn results_do_not_depend_on_batch_order_or_thread() {
    let mut rng = TestRng(0x9e0c_0003);
    let rows = batch(&mut rng);
    let n = rows.len();
    let forward: Vec<usize> = (0..n).collect();
    let reference = process_batch(&rows, &forward);
    assert!(reference.iter().filter(|r| r.is_some()).count() > n / 2);
    // Each row alone (fresh buffers of exactly its size) equals its batched result.
    for (i, r) in rows.iter().enumerate() {
        let g = Guided::TwoWay {
            cond: &r.cond,
            uncond: &r.uncond,
            scale: 3.0,
        };
        let alone = run(&g, &r.params).ok();
        assert_eq!(
            alone.as_ref().map(|a| (&a.0, &a.1)),
            reference[i].as_ref().map(|b| (&b.0, &b.1)),
            "row {i}"
        );
    }
    let reversed: Vec<usize> = (0..n).rev().collect();
    assert_eq!(process_batch(&rows, &reversed), reference);
    let rows = std::sync::Arc::new(rows);
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let rows = rows.clone();
            std::thread::spawn(move || {
                let mut order: Vec<usize> = (0..rows.len()).collect();
                TestRng(t).shuffle(&mut order);
                // Repeat so threads overlap in time.
                (0..3)
                    .map(|_| process_batch(&rows, &order))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for result in h.join().unwrap() {
            assert_eq!(result, reference);
        }
    }
}
