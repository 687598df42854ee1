//! Test-time scaling decoders (Best-of-N) on the synthetic reference model: equivalences with
//! standalone decoders, accounting, action bounds and rejected answers.

mod common;

use argen_core::accept::Criterion;
use argen_core::decode::{
    drive, Action, Answer, BestOfN, Config, Decoder, DraftShape, GuidanceMode, Host, Observer,
    Speculative, SpeculativeConfig, Stats, Vanilla,
};
use argen_core::{Error, SamplerParams};
use common::synthetic::{default_score, Storage, SyntheticHost, World, V};

const W: u32 = 6;
/// 6 × 6 canvas: GridAR stages end at rows 1, 3 and 6.
const N: u32 = 36;
const CLASS: u32 = 3;

fn config(seed: u64) -> Config {
    Config {
        seed,
        stream: 0,
        seq: 0,
        tokens: N,
        width: W,
        sampler: SamplerParams {
            temperature: 1.0,
            top_k: Some(40),
            top_p: None,
            min_p: None,
        },
        guidance: GuidanceMode::TwoWay { scale: 2.0 },
    }
}

fn host(n: u32) -> SyntheticHost {
    SyntheticHost::new(World::new(W), &vec![CLASS; n as usize])
}

/// Counts the actions a run issues.
#[derive(Default)]
struct Count(u32);

impl Observer for Count {
    fn before(&mut self, _: &Action<'_>) {
        self.0 += 1;
    }
    fn after<D: Decoder>(&mut self, _: &D) {}
}

/// Drives `dec` against `host`; returns stats and the number of actions.
fn run_on<D: Decoder>(dec: &mut D, host: &mut SyntheticHost) -> (Stats, u32) {
    let mut storage = Storage::new(dec.dist_rows_needed());
    let mut backend = storage.backend();
    let mut count = Count::default();
    let stats = drive(dec, &mut backend, host, &mut count).expect("decoding failed");
    assert!(count.0 <= dec.action_bound(), "action bound exceeded");
    (stats, count.0)
}

/// Tokens of candidate `c` (sequence `c`) of a test-time-scaling decoder.
fn cand<D: Decoder>(dec: &D, c: u32) -> Vec<u32> {
    dec.tokens(c).to_vec()
}

fn vanilla_tokens(seed: u64, stream: u32) -> Vec<u32> {
    let mut cfg = config(seed);
    cfg.stream = stream;
    let mut dec = Vanilla::<64>::new(cfg).unwrap();
    run_on(&mut dec, &mut host(1));
    dec.tokens(0).to_vec()
}

fn vanilla_bon<const C: usize>(base: Config, n: u32) -> BestOfN<Vanilla<64>, C> {
    BestOfN::new(base, n, Vanilla::<64>::new).unwrap()
}

const TREE: DraftShape = DraftShape::Tree {
    total: 20,
    depth: 4,
    top_k: 4,
};

fn speculative_bon(base: Config, n: u32) -> BestOfN<Speculative<'static, 64, 64>, 4> {
    BestOfN::new(base, n, |cfg| {
        Speculative::new(
            SpeculativeConfig {
                base: cfg,
                draft_sampler: cfg.sampler,
                shape: TREE,
            },
            Criterion::Coupled,
        )
    })
    .unwrap()
}

/// Drives `dec`, answering the i-th Score action with `scores[i]` and everything else from
/// `host`.
fn run_scripted_scores<D: Decoder>(dec: &mut D, host: &mut SyntheticHost, scores: &[f32]) {
    let mut storage = Storage::new(dec.dist_rows_needed());
    let mut backend = storage.backend();
    let mut next = scores.iter();
    for _ in 0..=dec.action_bound() {
        let action = dec.poll();
        if action == Action::Done {
            assert!(next.next().is_none(), "fewer Score actions than scripted");
            return;
        }
        if let Action::Score(_) = action {
            dec.handle_score(*next.next().expect("more Score actions than scripted"))
                .unwrap();
            continue;
        }
        match host.answer(&action).unwrap() {
            Answer::Logits(l) => dec.handle_logits(&mut backend, l).unwrap(),
            Answer::Verdict(v) => dec.handle_verdict(v).unwrap(),
            Answer::Score(_) => unreachable!(),
            Answer::Reformulated => dec.handle_reformulated().unwrap(),
        }
    }
    panic!("action bound exceeded");
}

/// Index of the first maximum.
fn first_argmax(scores: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best as u32
}

// ---------------------------------------------------------------------------------------------
// Best-of-N

#[test]
fn best_of_n_candidate_c_equals_standalone_vanilla_with_stream_base_plus_c() {
    for seed in 0..20 {
        let mut base = config(seed);
        base.stream = 5;
        let mut dec = vanilla_bon::<8>(base, 4);
        let (stats, actions) = run_on(&mut dec, &mut host(4));
        let mut scores = Vec::new();
        for c in 0..4 {
            let tokens = cand(&dec, c);
            assert_eq!(
                tokens,
                vanilla_tokens(seed, 5 + c),
                "seed {seed} candidate {c}"
            );
            scores.push(default_score(&World::new(W), &tokens));
        }
        assert_ne!(cand(&dec, 0), cand(&dec, 1), "streams must differ");
        assert_eq!(dec.result_seq(), first_argmax(&scores));
        assert_eq!(
            dec.tokens(dec.result_seq()),
            &cand(&dec, first_argmax(&scores))[..]
        );
        assert_eq!(dec.scores(), &scores[..]);
        assert_eq!(stats.tokens, 4 * N);
        assert_eq!(stats.target_forwards, 4 * N);
        assert_eq!(stats.target_rows, 4 * N * 2);
        assert_eq!(stats.prefills, 4);
        assert_eq!(stats.scorer_calls, 4);
        assert_eq!(stats.verifier_calls, 0);
        // N forwards and one score per candidate (vanilla's own bound is N + 1).
        assert_eq!(actions, 4 * N + 4);
        assert_eq!(dec.action_bound(), 4 * (N + 1) + 4);
    }
}

#[test]
fn best_of_n_picks_the_scorers_argmax_ties_by_lowest_index() {
    for (scores, best) in [
        (&[1.0f32, 3.0, 3.0, 2.0][..], 1),
        (&[2.0, 2.0, 2.0, 2.0][..], 0),
        (&[-1.0, -5.0, -1.0, 0.5][..], 3),
        (&[0.0, -0.0, 0.0, -1.0][..], 0),
        (&[-3.0, -2.0, -2.0, -2.5][..], 1),
    ] {
        let mut base = config(9);
        base.seq = 10;
        let mut dec = vanilla_bon::<4>(base, 4);
        let mut h = SyntheticHost::new(World::new(W), &[CLASS; 14]);
        run_scripted_scores(&mut dec, &mut h, scores);
        assert_eq!(dec.best(), best, "{scores:?}");
        assert_eq!(dec.result_seq(), 10 + best);
        assert_eq!(dec.tokens(10 + best).len() as u32, N);
        assert_eq!(dec.scores(), scores);
        assert!(dec.tokens(9).is_empty() && dec.tokens(14).is_empty());
    }
}

#[test]
fn best_of_n_over_speculative_candidates_equals_vanilla_candidates() {
    let mut total = Stats::default();
    for seed in 0..30 {
        let mut base = config(seed);
        base.stream = 2;
        let mut spec = speculative_bon(base, 3);
        let (s, actions) = run_on(&mut spec, &mut host(3));
        let mut van = vanilla_bon::<4>(base, 3);
        run_on(&mut van, &mut host(3));
        for c in 0..3 {
            assert_eq!(cand(&spec, c), cand(&van, c), "seed {seed} candidate {c}");
        }
        assert_eq!(spec.result_seq(), van.result_seq());
        assert_eq!(s.tokens, 3 * N);
        assert_eq!(s.scorer_calls, 3);
        assert_eq!(s.prefills, 3);
        assert!(actions <= spec.action_bound());
        total.add(&s);
    }
    println!(
        "Best-of-3 over Coupled speculative (tree 20/4/4), 30 seeds: TPF {:.3}, mean accepted {:.3}",
        total.tokens_per_target_forward(),
        total.mean_accepted_length()
    );
    assert!(total.tokens_per_target_forward() > 1.2);
}

#[test]
fn best_of_n_rejects_bad_configurations() {
    let base = config(1);
    let err = |r: Result<BestOfN<Vanilla<64>, 4>, Error>| r.expect_err("accepted");
    assert!(matches!(
        err(BestOfN::new(base, 0, Vanilla::<64>::new)),
        Error::InvalidParameter { name: "n", .. }
    ));
    assert!(matches!(
        err(BestOfN::new(base, 5, Vanilla::<64>::new)),
        Error::InvalidParameter { name: "n", .. }
    ));
    // A factory that ignores the candidate's sequence id.
    assert!(matches!(
        err(BestOfN::new(base, 2, |cfg| Vanilla::<64>::new(Config {
            seq: 0,
            ..cfg
        }))),
        Error::InvalidParameter { name: "make", .. }
    ));
    let mut far = base;
    far.stream = u32::MAX;
    assert!(matches!(
        err(BestOfN::new(far, 2, Vanilla::<64>::new)),
        Error::InvalidParameter { name: "stream", .. }
    ));
    // Errors of the inner factory propagate.
    let mut big = base;
    big.tokens = 128;
    assert!(matches!(
        err(BestOfN::new(big, 2, Vanilla::<64>::new)),
        Error::InvalidParameter { name: "tokens", .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Rejected answers leave the state unchanged

/// Drives `dec`, first answering every action with a series of wrong answers (wrong kind, wrong
/// row count, NaN logits, non-finite scores) that must each be rejected without any change to
/// the action or the counters, then correctly.
fn run_with_wrong_answers<D: Decoder>(dec: &mut D, host: &mut SyntheticHost) -> Stats {
    let mut storage = Storage::new(dec.dist_rows_needed());
    let mut backend = storage.backend();
    let dummy = vec![0.5f32; V];
    for _ in 0..=dec.action_bound() {
        let action = dec.poll();
        if action == Action::Done {
            return dec.stats();
        }
        let before = format!("{action:?}");
        let stats = dec.stats();
        let unchanged = |dec: &D, what: &str| {
            assert_eq!(
                format!("{:?}", dec.poll()),
                before,
                "{what} changed the action"
            );
            assert_eq!(dec.stats(), stats, "{what} changed the counters");
        };
        let answer = host.answer(&action).unwrap();
        if !matches!(answer, Answer::Logits(_)) {
            assert!(dec.handle_logits(&mut backend, &dummy[..]).is_err());
            unchanged(dec, "logits");
        }
        if !matches!(answer, Answer::Verdict(_)) {
            assert!(matches!(
                dec.handle_verdict(true),
                Err(Error::UnexpectedAnswer { .. })
            ));
            unchanged(dec, "verdict");
        }
        if !matches!(answer, Answer::Score(_)) {
            assert!(matches!(
                dec.handle_score(1.0),
                Err(Error::UnexpectedAnswer { .. })
            ));
            unchanged(dec, "score");
        }
        if !matches!(answer, Answer::Reformulated) {
            assert!(matches!(
                dec.handle_reformulated(),
                Err(Error::UnexpectedAnswer { .. })
            ));
            unchanged(dec, "reformulated");
        }
        match answer {
            Answer::Logits(l) => {
                let mut more = l.to_vec();
                more.extend_from_slice(&dummy);
                assert!(matches!(
                    dec.handle_logits(&mut backend, &more[..]),
                    Err(Error::LengthMismatch { .. })
                ));
                unchanged(dec, "extra logits row");
                assert!(matches!(
                    dec.handle_logits(&mut backend, &l[..l.len() - V]),
                    Err(Error::LengthMismatch { .. })
                ));
                unchanged(dec, "missing logits row");
                let mut nan = l.to_vec();
                for row in nan.chunks_mut(V) {
                    row[7] = f32::NAN;
                }
                assert!(matches!(
                    dec.handle_logits(&mut backend, &nan[..]),
                    Err(Error::NonFiniteLogit { .. })
                ));
                unchanged(dec, "NaN logits");
                dec.handle_logits(&mut backend, l).unwrap();
            }
            Answer::Verdict(v) => dec.handle_verdict(v).unwrap(),
            Answer::Score(s) => {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    assert!(matches!(
                        dec.handle_score(bad),
                        Err(Error::InvalidParameter { name: "score", .. })
                    ));
                    unchanged(dec, "non-finite score");
                }
                dec.handle_score(s).unwrap();
            }
            Answer::Reformulated => dec.handle_reformulated().unwrap(),
        }
    }
    panic!("action bound exceeded");
}

#[test]
fn wrong_answers_are_rejected_and_change_nothing() {
    for seed in 0..3 {
        // Best-of-N over speculative candidates (prefill, draft and target actions).
        let mut base = config(seed);
        base.stream = 7;
        let mut clean = speculative_bon(base, 3);
        let (clean_stats, _) = run_on(&mut clean, &mut host(3));
        let mut dec = speculative_bon(base, 3);
        let stats = run_with_wrong_answers(&mut dec, &mut host(3));
        assert_eq!(stats, clean_stats);
        for c in 0..3 {
            assert_eq!(cand(&dec, c), cand(&clean, c));
        }
        assert_eq!(dec.result_seq(), clean.result_seq());
    }
}
