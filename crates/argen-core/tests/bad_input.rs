//! Bad input: every public function of the core answers a typed error — never a panic, never a
//! NaN-driven draw. First explicit cases for each documented error, then property tests (proptest)
//! that throw arbitrary rows (NaN, ±∞, huge values, zeros) and arbitrary parameters at every public
//! entry point and check that any `Ok` result is consistent.

mod support;

use argen_core::accept::exact::residual_in_place;
use argen_core::accept::neighbours::build_table;
use argen_core::accept::{
    Acceptance, Borrowed, GroupedParams, LanternParams, NeighbourTable, NodeVerifier,
};
use argen_core::rng::MAX_KEY_TOKEN;
use argen_core::{
    process, sample, verify_siblings, Criterion, Dist, Draft, Error, Guided, Key, NodeKeys,
    Outcome, Purpose, SamplerParams, Workspace, WEIGHT_ONE,
};
use proptest::prelude::*;

fn run(g: &Guided<'_, f32>, params: &SamplerParams) -> Result<Vec<u64>, Error> {
    let v = g.vocab();
    let (mut y, mut o, mut out) = (vec![0.0; v], vec![0; v], vec![0; v]);
    let mut ws = Workspace {
        logits: &mut y,
        order: &mut o,
    };
    process(g, params, &mut ws, &mut out).map(|_| out)
}

fn is_param(e: Result<impl std::fmt::Debug, Error>, name: &str) -> bool {
    matches!(e, Err(Error::InvalidParameter { name: n, .. }) if n == name)
}

const KEYS: NodeKeys = NodeKeys {
    seed: 1,
    stream: 0,
    position: 0,
};

#[test]
fn bad_logit_rows() {
    let d = SamplerParams::default();
    let plain = |r: &[f32]| run(&Guided::Plain(r), &d);
    assert_eq!(
        plain(&[0.0, f32::NAN]),
        Err(Error::NonFiniteLogit { index: 1 })
    );
    assert_eq!(
        plain(&[f32::INFINITY, 0.0]),
        Err(Error::NonFiniteLogit { index: 0 })
    );
    assert_eq!(plain(&[f32::NEG_INFINITY; 3]), Err(Error::AllMasked));
    assert_eq!(plain(&[]), Err(Error::EmptyRow));
    assert_eq!(
        run(
            &Guided::TwoWay {
                cond: &[0.0; 3],
                uncond: &[0.0; 2],
                scale: 1.0
            },
            &d
        ),
        Err(Error::LengthMismatch {
            expected: 3,
            found: 2
        })
    );
    assert_eq!(
        run(
            &Guided::ThreeWay {
                cond: &[0.0; 3],
                uncond: &[0.0; 3],
                reformulated: &[0.0; 4],
                w: 5.0
            },
            &d
        ),
        Err(Error::LengthMismatch {
            expected: 3,
            found: 4
        })
    );
    assert!(is_param(
        run(
            &Guided::TwoWay {
                cond: &[0.0],
                uncond: &[0.0],
                scale: f32::NAN
            },
            &d
        ),
        "cfg_scale"
    ));
    assert!(is_param(
        run(
            &Guided::ThreeWay {
                cond: &[0.0],
                uncond: &[0.0],
                reformulated: &[0.0],
                w: f32::INFINITY
            },
            &d
        ),
        "cfg_w"
    ));
    // NaN in the *unconditional* row of CFG, and a combination that overflows.
    assert_eq!(
        run(
            &Guided::TwoWay {
                cond: &[0.0, 0.0],
                uncond: &[0.0, f32::NAN],
                scale: 2.0
            },
            &d
        ),
        Err(Error::NonFiniteLogit { index: 1 })
    );
    assert_eq!(
        run(
            &Guided::TwoWay {
                cond: &[3e38],
                uncond: &[-3e38],
                scale: 2.0
            },
            &d
        ),
        Err(Error::Overflow { index: 0 })
    );
    // Scaling by 1/T overflows.
    let hot = SamplerParams {
        temperature: 0.01,
        ..d
    };
    assert_eq!(
        run(&Guided::Plain(&[1.0, 3e38]), &hot),
        Err(Error::Overflow { index: 1 })
    );
}

#[test]
fn bad_sampler_parameters() {
    let row = [0.0f32, 1.0, 2.0];
    let g = Guided::Plain(&row[..]);
    let with = |p: SamplerParams| run(&g, &p);
    let d = SamplerParams::default();
    for t in [-1.0f32, f32::NAN, f32::INFINITY, -0.0 - 1e-30, 1e-45] {
        assert!(
            is_param(
                with(SamplerParams {
                    temperature: t,
                    ..d
                }),
                "temperature"
            ),
            "T = {t}"
        );
    }
    for k in [0u32, 4, u32::MAX] {
        assert!(
            is_param(
                with(SamplerParams {
                    top_k: Some(k),
                    ..d
                }),
                "top_k"
            ),
            "k = {k}"
        );
    }
    for p in [0.0f32, -0.5, 1.000_001, f32::NAN, f32::INFINITY] {
        assert!(
            is_param(
                with(SamplerParams {
                    top_p: Some(p),
                    ..d
                }),
                "top_p"
            ),
            "top_p = {p}"
        );
    }
    for p in [-0.01f32, 1.5, f32::NAN] {
        assert!(
            is_param(
                with(SamplerParams {
                    min_p: Some(p),
                    ..d
                }),
                "min_p"
            ),
            "min_p = {p}"
        );
    }
    // Buffers too small.
    let (mut y, mut o, mut out) = (vec![0.0; 2], vec![0; 3], vec![0; 3]);
    let mut ws = Workspace {
        logits: &mut y,
        order: &mut o,
    };
    assert_eq!(
        process(&g, &d, &mut ws, &mut out),
        Err(Error::BufferTooSmall {
            needed: 3,
            found: 2
        })
    );
    let (mut y, mut o, mut out) = (vec![0.0; 3], vec![0; 3], vec![0; 1]);
    let mut ws = Workspace {
        logits: &mut y,
        order: &mut o,
    };
    assert_eq!(
        process(&g, &d, &mut ws, &mut out),
        Err(Error::BufferTooSmall {
            needed: 3,
            found: 1
        })
    );
}

#[test]
fn bad_distributions_and_keys() {
    assert_eq!(Dist::new(&[]), Err(Error::EmptyRow));
    assert_eq!(Dist::new(&[0, 0]), Err(Error::ZeroMass));
    assert!(is_param(Dist::new(&[u64::MAX, 1]), "weights"));
    assert_eq!(Dist::with_total(&[1], 0), Err(Error::ZeroMass));
    assert_eq!(Dist::with_total(&[], 1), Err(Error::EmptyRow));
    let d = Dist::new(&[1, 2]).unwrap();
    assert_eq!(
        d.weight(2),
        Err(Error::TokenOutOfRange { token: 2, vocab: 2 })
    );
    assert!(d.prob(5).is_err());
    assert_eq!(d.locate(3), Err(Error::ZeroMass));
    let key = Key::new(0, 0, Purpose::SAMPLE, 0).with_token(MAX_KEY_TOKEN);
    assert!(is_param(sample(&d, key), "key.token"));
    assert_eq!(
        Key::new(0, 0, Purpose::SAMPLE, 0).stream().below(0),
        Err(Error::ZeroMass)
    );
    // A total larger than the real sum: a draw past the last weight is an error, not a panic.
    let w = [1u64, 1];
    let inflated = Dist::with_total(&w, 1 << 60).unwrap();
    let errors = (0..64)
        .filter(|&pos| sample(&inflated, Key::new(0, 0, Purpose::SAMPLE, pos)).is_err())
        .count();
    assert!(errors > 60);
}

#[test]
fn bad_verifier_input() {
    let p = [3u64, 1, 0, 4];
    let q = [1u64, 1, 1, 0];
    let dq = Dist::new(&q).unwrap();
    let z = 8;
    let verify = |crit: &Criterion<'_>, draft: Draft<'_>, sib: &[u32], total: u64| {
        let mut w = p.to_vec();
        verify_siblings(crit, &mut w, total, draft, sib, KEYS)
    };
    let ids: Vec<u32> = (0..4u32)
        .flat_map(|t| (0..4u32).filter(move |&o| o != t))
        .collect();
    let table = NeighbourTable::new(&ids, 4, 3).unwrap();
    let lantern = LanternParams {
        neighbours: table,
        k: 2,
        delta: 0.2,
        lambda: None,
    };
    let emb = [0.0f32; 8];
    let grouped = GroupedParams::paper(&emb, 2);
    let crits = [
        Criterion::Exact,
        Criterion::Coupled,
        Criterion::Lantern(lantern),
        Criterion::Grouped(grouped),
    ];
    for crit in &crits {
        for draft in [Draft::Sampled(dq), Draft::PointMass] {
            assert_eq!(
                verify(crit, draft, &[4], z),
                Err(Error::TokenOutOfRange { token: 4, vocab: 4 }),
                "{}",
                crit.name()
            );
            assert!(verify(crit, draft, &[0], 0).is_err(), "{}", crit.name());
        }
        let mut empty: [u64; 0] = [];
        assert!(verify_siblings(crit, &mut empty, 0, Draft::PointMass, &[], KEYS).is_err());
    }
    for crit in &crits[..1] {
        assert!(is_param(verify(crit, Draft::PointMass, &[0], 7), "total"));
        let short = Dist::new(&[1, 1]).unwrap();
        assert_eq!(
            verify(crit, Draft::Sampled(short), &[0], z),
            Err(Error::LengthMismatch {
                expected: 4,
                found: 2
            })
        );
        assert_eq!(
            verify(crit, Draft::Sampled(dq), &[3], z),
            Err(Error::DraftZeroMass { token: 3 })
        );
    }
    assert_eq!(
        verify(&crits[2], Draft::Sampled(dq), &[3], z),
        Err(Error::DraftZeroMass { token: 3 })
    );
    assert_eq!(
        verify(&crits[3], Draft::Sampled(dq), &[3], z),
        Err(Error::DraftZeroMass { token: 3 })
    );
    // Relaxed criteria refuse several sampled siblings (when the first is rejected).
    let mut p2 = [0u64, 0, 0, 100];
    let r = verify_siblings(
        &crits[3],
        &mut p2,
        100,
        Draft::Sampled(dq),
        &[0, 1, 2],
        KEYS,
    );
    assert!(is_param(r, "siblings"));

    // LANTERN parameters.
    let lp = |delta: f32, lambda: Option<f32>, k: usize| {
        Criterion::Lantern(LanternParams {
            neighbours: table,
            k,
            delta,
            lambda,
        })
    };
    for (c, name) in [
        (lp(-0.1, None, 2), "delta"),
        (lp(f32::NAN, None, 2), "delta"),
        (lp(1.5, None, 2), "delta"),
        (lp(0.1, Some(0.5), 2), "lambda"),
        (lp(0.1, Some(f32::NAN), 2), "lambda"),
        (lp(0.1, None, 0), "lantern_k"),
        (lp(0.1, None, 4), "lantern_k"),
    ] {
        assert!(
            is_param(verify(&c, Draft::PointMass, &[0], z), name),
            "{name}"
        );
    }
    // Neighbour tables of the wrong shape or content.
    assert!(NeighbourTable::new(&ids[..11], 4, 3).is_err());
    assert!(NeighbourTable::new(&ids, 4, 4).is_err());
    assert!(NeighbourTable::new(&ids, 3, 4).is_err());
    assert!(NeighbourTable::new(&[1], 1, 1).is_err());
    assert!(NeighbourTable::new(&[0; 12], 4, 3).is_err());
    assert!(NeighbourTable::new(&[9; 12], 4, 3).is_err());
    let small_ids = [1u32, 0, 0, 1];
    let small = NeighbourTable::new(&small_ids[..3], 3, 1).unwrap();
    let c = Criterion::Lantern(LanternParams {
        neighbours: small,
        k: 1,
        delta: 0.1,
        lambda: None,
    });
    assert!(matches!(
        verify(&c, Draft::PointMass, &[0], z),
        Err(Error::InvalidNeighbourTable { .. })
    ));
    assert!(build_table(&[0.0; 6], 4, 1).is_err());
    assert!(build_table(&[], 1, 1).is_err());
    assert!(build_table(&[0.0, 1.0], 0, 1).is_err());
    assert!(build_table(&[0.0, f32::INFINITY], 1, 1).is_err());

    // Grouped parameters: wrong embedding size, window, tolerances.
    let gp = |e: &'static [f32], dim: usize, window: usize, prob_tol: f32, dist_tol: f32| {
        Criterion::Grouped(GroupedParams {
            embedding: e,
            dim,
            window,
            prob_tol,
            dist_tol,
        })
    };
    static E8: [f32; 8] = [0.0; 8];
    for (c, name) in [
        (gp(&E8[..6], 2, 7, 0.15, 0.5), "embedding"),
        (gp(&E8, 0, 7, 0.15, 0.5), "embedding"),
        (gp(&E8, 3, 7, 0.15, 0.5), "embedding"),
        (gp(&E8, 2, 0, 0.15, 0.5), "window"),
        (gp(&E8, 2, 17, 0.15, 0.5), "window"),
        (gp(&E8, 2, 7, -0.1, 0.5), "prob_tol"),
        (gp(&E8, 2, 7, f32::NAN, 0.5), "prob_tol"),
        (gp(&E8, 2, 7, 0.15, -1.0), "dist_tol"),
        (gp(&E8, 2, 7, 0.15, f32::INFINITY), "dist_tol"),
    ] {
        assert!(
            is_param(verify(&c, Draft::PointMass, &[0], z), name),
            "{name}"
        );
    }
    // Too many siblings for the key layout.
    let many = vec![0u32; MAX_KEY_TOKEN as usize];
    let mut w = p.to_vec();
    assert!(matches!(
        verify_siblings(&Criterion::Exact, &mut w, z, Draft::PointMass, &many, KEYS),
        Err(Error::CapacityExceeded { .. })
    ));
}

/// The low-level pieces reachable from outside: a `NodeVerifier` driven out of order or with a
/// foreign `Acceptance`, the residual with wrong totals, the LANTERN borrow and GSD group with
/// mismatched rows.
#[test]
fn low_level_misuse_is_an_error_not_a_panic() {
    let ids: Vec<u32> = (0..4u32)
        .flat_map(|t| (0..4u32).filter(move |&o| o != t))
        .collect();
    let table = NeighbourTable::new(&ids, 4, 3).unwrap();
    let lantern = LanternParams {
        neighbours: table,
        k: 3,
        delta: 0.5,
        lambda: None,
    };
    let crit = Criterion::Lantern(lantern);
    let mut p = [3u64, 1, 1, 4];
    let mut node = NodeVerifier::new(&crit, &mut p, 9, Draft::PointMass).unwrap();
    assert!(node.acceptance(4).is_err());
    let foreign = Acceptance {
        num: 1,
        den: 2,
        borrowed_weight: u64::MAX,
        borrowed: Borrowed::Prefix(10),
    };
    assert!(node.reject(4, &foreign).is_err());
    assert!(node.reject(0, &foreign).is_err());
    // The node is still usable after refused calls.
    let acc = node.acceptance(0).unwrap();
    assert!(acc.num <= acc.den);
    // Residual with totals that do not match the rows.
    let mut big = [u64::MAX; 4];
    assert!(residual_in_place(&mut big, 1, &[0; 4], u64::MAX).is_err());
    assert!(residual_in_place(&mut [1, 2], 3, &[1], 1).is_err());
    // LANTERN borrow with a row shorter than the table, and with weights summing past u64.
    assert!(lantern.borrow(&[1, 1], 0, u128::MAX).is_err());
    assert!(lantern.borrow(&[u64::MAX; 4], 0, u128::MAX).is_err());
    // GSD group with an embedding that does not match the row.
    let emb = [0.0f32; 2];
    let g = GroupedParams::paper(&emb, 1);
    assert!(g.group(&[1, 1, 1, 1], 4, 3).is_err());
}

// ---------------------------------------------------------------------------------------------
// Property tests.

fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -30.0f32..30.0,
        1 => Just(f32::NEG_INFINITY),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NAN),
        1 => prop::num::f32::ANY,
        1 => prop_oneof![Just(3.4e38f32), Just(-3.4e38f32), Just(1e-45f32), Just(-0.0f32)],
    ]
}

fn any_param() -> impl Strategy<Value = f32> {
    prop_oneof![4 => 0.0f32..1.2, 1 => prop::num::f32::ANY, 1 => Just(f32::NAN), 1 => Just(0.0f32)]
}

fn any_params() -> impl Strategy<Value = SamplerParams> {
    (
        prop_oneof![3 => 0.0f32..3.0, 1 => prop::num::f32::ANY, 1 => Just(0.0f32)],
        prop::option::of(0u32..70),
        prop::option::of(any_param()),
        prop::option::of(any_param()),
    )
        .prop_map(|(temperature, top_k, top_p, min_p)| SamplerParams {
            temperature,
            top_k,
            top_p,
            min_p,
        })
}

fn any_weights() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(
        prop_oneof![3 => 0u64..20, 2 => 0u64..(1 << 40), 1 => Just(0u64), 1 => Just(u64::MAX), 1 => any::<u64>()],
        0..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn process_never_panics_and_is_consistent(
        c in prop::collection::vec(any_f32(), 0..64),
        u in prop::collection::vec(any_f32(), 0..64),
        r in prop::collection::vec(any_f32(), 0..64),
        mode in 0u8..3,
        scale in any_param(),
        params in any_params(),
        seed in any::<u64>(),
    ) {
        let g = match mode {
            0 => Guided::Plain(&c[..]),
            1 => Guided::TwoWay { cond: &c, uncond: &u, scale: scale * 10.0 },
            _ => Guided::ThreeWay { cond: &c, uncond: &u, reformulated: &r, w: scale * 5.0 },
        };
        let v = c.len();
        let (mut y, mut o, mut out) = (vec![0.0; v], vec![0; v], vec![7u64; v]);
        let mut ws = Workspace { logits: &mut y, order: &mut o };
        if let Ok(p) = process(&g, &params, &mut ws, &mut out) {
            prop_assert_eq!(out.iter().sum::<u64>(), p.total);
            prop_assert_eq!(out[p.argmax as usize], WEIGHT_ONE);
            prop_assert_eq!(out.iter().filter(|&&w| w > 0).count() as u32, p.support);
            // Masked (−∞) inputs never get weight.
            if mode == 0 {
                for (i, &x) in c.iter().enumerate() {
                    if x == f32::NEG_INFINITY { prop_assert_eq!(out[i], 0); }
                }
            }
            let d = Dist::with_total(&out, p.total).unwrap();
            let t = sample(&d, Key::new(seed, 0, Purpose::SAMPLE, 0)).unwrap();
            prop_assert!(out[t as usize] > 0);
        }
    }

    #[test]
    fn distributions_never_panic(w in any_weights(), claimed in any::<u64>(), seed in any::<u64>(), tok in any::<u32>(), r in any::<u64>()) {
        if let Ok(d) = Dist::new(&w) {
            let t = sample(&d, Key::new(seed, 1, Purpose::SAMPLE, 3)).unwrap();
            prop_assert!(w[t as usize] > 0);
            let _ = d.locate(r);
            let _ = d.prob(tok);
            let _ = argen_core::sample::argmax(&d);
        }
        if let Ok(d) = Dist::with_total(&w, claimed) {
            if let Ok(t) = sample(&d, Key::new(seed, 1, Purpose::SAMPLE, 3).with_token(tok)) {
                prop_assert!(w[t as usize] > 0);
            }
        }
    }

    #[test]
    fn verification_never_panics_and_is_consistent(
        p in any_weights(),
        q in any_weights(),
        claimed in prop_oneof![Just(None), any::<u64>().prop_map(Some)],
        siblings in prop::collection::vec(0u32..26, 0..5),
        which in 0u8..4,
        sampled in any::<bool>(),
        delta in any_param(),
        lambda in prop::option::of(prop_oneof![1.0f32..4.0, prop::num::f32::ANY]),
        k in 0usize..4,
        table_seed in any::<u64>(),
        emb in prop::collection::vec(any_f32(), 0..60),
        dim in 0usize..4,
        window in 0usize..20,
        tol in any_param(),
        dist_tol in any_param(),
        seed in any::<u64>(),
    ) {
        let v = p.len();
        let total = claimed.unwrap_or_else(|| p.iter().fold(0u64, |a, &b| a.wrapping_add(b)));
        // Arbitrary (possibly invalid) neighbour table of the rows' vocabulary.
        let kt = 3usize;
        let mut rng = support::TestRng(table_seed);
        let ids: Vec<u32> = (0..v * kt).map(|_| rng.below(v as u64 + 1) as u32).collect();
        let valid_ids: Vec<u32> = if v > kt {
            (0..v as u32).flat_map(|t| (1..=kt as u32).map(move |j| (t + j) % v as u32)).collect()
        } else { Vec::new() };
        let table = NeighbourTable::new(&ids, v, kt).or_else(|_| NeighbourTable::new(&valid_ids, v, kt));
        let crit = match which {
            0 => Criterion::Exact,
            1 => Criterion::Coupled,
            2 => match table {
                Ok(t) => Criterion::Lantern(LanternParams { neighbours: t, k, delta, lambda }),
                Err(_) => Criterion::Exact,
            },
            _ => Criterion::Grouped(GroupedParams { embedding: &emb, dim, window, prob_tol: tol, dist_tol }),
        };
        let dq = Dist::new(&q);
        let draft = match (&dq, sampled) {
            (Ok(d), true) => Draft::Sampled(*d),
            _ => Draft::PointMass,
        };
        let mut w = p.clone();
        let keys = NodeKeys { seed, stream: 2, position: 9 };
        match verify_siblings(&crit, &mut w, total, draft, &siblings, keys) {
            Ok(Outcome::Accepted { index }) => prop_assert!(index < siblings.len()),
            Ok(Outcome::Rejected { token }) => {
                prop_assert!((token as usize) < v);
                prop_assert!(p[token as usize] > 0, "rejected token {} has zero target mass", token);
            }
            Err(_) => {}
        }
        // Drive a NodeVerifier by hand, rejecting whatever it will take.
        let mut w = p.clone();
        if let Ok(mut node) = NodeVerifier::new(&crit, &mut w, total, draft) {
            for &x in &siblings {
                match node.acceptance(x) {
                    Ok(acc) => {
                        prop_assert!(acc.den > 0);
                        if node.reject(x, &acc).is_err() { break; }
                    }
                    Err(_) => break,
                }
            }
            if let Ok(r) = node.residual() {
                prop_assert_eq!(r.weights().iter().sum::<u64>(), r.total());
            }
        }
    }

    #[test]
    fn neighbour_tables_never_panic(
        codebook in prop::collection::vec(any_f32(), 0..40),
        dim in 0usize..5,
        k in 0usize..8,
        ids in prop::collection::vec(0u32..12, 0..40),
        vocab in 0usize..12,
    ) {
        if let Ok(t) = build_table(&codebook, dim, k) {
            let v = codebook.len() / dim;
            prop_assert!(NeighbourTable::new(&t, v, k).is_ok());
        }
        if let Ok(t) = NeighbourTable::new(&ids, vocab, k) {
            for tok in 0..vocab as u32 + 2 {
                let _ = t.row(tok);
            }
        }
    }
}

#[test]
fn slice_storage_checks_the_vocabulary() {
    use argen_core::{Backend, SliceStorage};
    assert_eq!(
        SliceStorage::new(0, 2).backend::<f32>().err(),
        Some(Error::EmptyRow)
    );
    let too_big = argen_core::MAX_VOCAB + 1;
    assert_eq!(
        SliceStorage::new(too_big, 0).backend::<f32>().err(),
        Some(Error::VocabTooLarge { vocab: too_big })
    );
    let mut s = SliceStorage::new(5, 3);
    let b = s.backend::<f32>().unwrap();
    assert_eq!((b.vocab(), b.dist_rows()), (5, 3));
}
