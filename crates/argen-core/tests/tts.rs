//! Test-time scaling decoders (Best-of-N, GridAR) on the synthetic reference model: equivalences
//! with standalone decoders and with a plain reference implementation of GridAR, round-robin
//! replacement, accounting, action bounds and rejected answers.

mod common;

use argen_core::accept::Criterion;
use argen_core::backend::{Backend, ProcessJob, SampleJob};
use argen_core::decode::{
    drive, Action, Answer, BestOfN, Config, Decoder, DraftShape, GridAr, GridArConfig,
    GuidanceMode, Host, Observer, Speculative, SpeculativeConfig, Stats, Vanilla, RELEASE_W,
};
use argen_core::{Error, Key, Purpose, SamplerParams};
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
        let mut h = host(4);
        let (stats, actions) = run_on(&mut dec, &mut h);
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
        // The four candidates run in lockstep: N batched forwards (one per token step, the first
        // a batch of four prefills), then one score per candidate (vanilla's own bound is N + 1).
        assert_eq!(actions, N + 4);
        assert_eq!(h.forwards.get("target"), Some(&N));
        assert_eq!(h.actions.get("batch"), Some(&N));
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
// GridAR

fn gridar_cfg(seed: u64, n: u32, verifier: bool, reformulate: bool) -> GridArConfig {
    GridArConfig {
        base: config(seed),
        n,
        verifier,
        reformulate,
        w: RELEASE_W,
    }
}

type Grid = GridAr<Vanilla<64>, 8>;

/// A plain, allocating implementation of GridAR straight from the paper's description, used as
/// the reference: returns every candidate's final canvas.
fn reference_gridar(
    cfg: &GridArConfig,
    verdict: &mut dyn FnMut(u32, &[u32], u32) -> bool,
) -> Vec<Vec<u32>> {
    let world = World::new(W);
    let mut storage = Storage::new(1);
    let mut backend = storage.backend();
    let b = cfg.base;
    let n = cfg.n as usize;
    let rows = b.tokens / b.width;
    let mut canvas: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut three_way = vec![false; n];
    for (stage, cut) in [rows / 4, rows / 2, rows].into_iter().enumerate() {
        for c in 0..n {
            while canvas[c].len() < (cut * b.width) as usize {
                let g = if three_way[c] {
                    GuidanceMode::ThreeWay { w: cfg.w }
                } else {
                    b.guidance
                };
                let mut logits = Vec::new();
                let mut row = [0f32; V];
                for variant in 0..g.variants() {
                    world.logits(false, CLASS, variant, &canvas[c], &mut row);
                    logits.extend_from_slice(&row);
                }
                backend
                    .process(
                        &logits,
                        &[ProcessJob {
                            rows: g.rows(0),
                            params: b.sampler,
                            out: 0,
                        }],
                    )
                    .unwrap();
                let key = Key::new(
                    b.seed,
                    b.stream + c as u32,
                    Purpose::SAMPLE,
                    canvas[c].len() as u32,
                );
                let mut t = [0];
                backend
                    .sample(&[SampleJob { row: 0, key }], &mut t)
                    .unwrap();
                canvas[c].push(t[0]);
            }
        }
        if stage == 2 {
            break;
        }
        if cfg.verifier {
            let ok: Vec<bool> = (0..n)
                .map(|c| verdict(b.seq + c as u32, &canvas[c], cut))
                .collect();
            let possible: Vec<usize> = (0..n).filter(|&c| ok[c]).collect();
            if !possible.is_empty() {
                let impossible = (0..n).filter(|&c| !ok[c]);
                for (j, dst) in impossible.enumerate() {
                    canvas[dst] = canvas[possible[j % possible.len()]].clone();
                }
            }
        }
        if cfg.reformulate {
            three_way.iter_mut().for_each(|t| *t = true);
        }
    }
    canvas
}

fn run_gridar(cfg: GridArConfig, host: &mut SyntheticHost) -> (Grid, Stats, u32) {
    let mut dec = Grid::vanilla(cfg).unwrap();
    let (stats, actions) = run_on(&mut dec, host);
    (dec, stats, actions)
}

#[test]
fn gridar_with_one_candidate_and_no_reformulation_reproduces_vanilla() {
    for seed in 0..40 {
        let vanilla = vanilla_tokens(seed, 0);
        // Verifier off; verifier always "possible"; the default verifier (whatever it says, a
        // lone candidate is never replaced).
        for (verifier, script) in [(false, false), (true, true), (true, false)] {
            let mut h = host(1);
            if script {
                h.check_script = Some(Box::new(|_, _, _| true));
            }
            let (dec, stats, actions) = run_gridar(gridar_cfg(seed, 1, verifier, false), &mut h);
            assert_eq!(cand(&dec, 0), vanilla, "seed {seed} verifier {verifier}");
            assert_eq!(stats.prefills, 1, "no re-prefill without change");
            assert_eq!(stats.target_forwards, N);
            assert_eq!(stats.target_rows, 2 * N);
            assert_eq!(h.actions.get("target"), Some(&(N - 1)));
            assert_eq!(actions, N + 2 * u32::from(verifier) + 1);
            assert!(actions <= dec.action_bound());
        }
    }
}

#[test]
fn gridar_equals_the_reference_implementation() {
    type Script = fn(u32, &[u32], u32) -> bool;
    let scripts: [(&str, Script); 4] = [
        ("default", |_, t, r| {
            common::synthetic::default_check(&World::new(W), t, r)
        }),
        ("all-possible", |_, _, _| true),
        ("all-impossible", |_, _, _| false),
        ("token-parity", |seq, t, r| {
            (t[t.len() - 1] + seq + r) % 3 != 0
        }),
    ];
    let mut replaced = 0;
    for seed in 0..12 {
        for n in [1, 2, 4, 5] {
            for verifier in [false, true] {
                for reformulate in [false, true] {
                    for (name, script) in scripts {
                        let cfg = gridar_cfg(seed, n, verifier, reformulate);
                        let mut h = host(n);
                        h.check_script = Some(Box::new(script));
                        let (dec, stats, actions) = run_gridar(cfg, &mut h);
                        let want = reference_gridar(&cfg, &mut |s, t, r| script(s, t, r));
                        for c in 0..n {
                            assert_eq!(
                                cand(&dec, c),
                                want[c as usize],
                                "seed {seed} n {n} verifier {verifier} reformulate \
                                 {reformulate} {name} candidate {c}"
                            );
                        }
                        let scores: Vec<f32> =
                            want.iter().map(|t| default_score(&h.world, t)).collect();
                        assert_eq!(dec.result_seq(), first_argmax(&scores));
                        assert_eq!(dec.scores().collect::<Vec<_>>(), scores);
                        assert!(actions <= dec.action_bound());
                        // Lockstep: one forward per token step for all candidates, re-prefills
                        // included (they share the step's batch).
                        assert_eq!(h.forwards.get("target"), Some(&N));
                        assert_eq!(stats.tokens, n * N);
                        replaced += dec.report().replaced.iter().sum::<u32>();
                        if !verifier {
                            assert!(h.checks.is_empty());
                        }
                        if !reformulate {
                            assert!(h.reformulations.is_empty());
                            assert!(h.prefills.iter().all(|p| p.2 == 2));
                        }
                    }
                }
            }
        }
    }
    assert!(
        replaced > 100,
        "the scripts must exercise replacement ({replaced})"
    );
}

#[test]
fn gridar_replaces_impossible_candidates_round_robin() {
    // n = 5. First pruning point (row 1): 0, 2, 3 impossible, possible = [1, 4], so
    // 0 ← 1, 2 ← 4, 3 ← 1. Second (row 3): only 1 impossible, possible = [0, 2, 3, 4], 1 ← 0.
    let cfg = gridar_cfg(77, 5, true, false);
    let mut h = host(5);
    h.check_script = Some(Box::new(|seq, _, rows| match rows {
        1 => ![0, 2, 3].contains(&seq),
        3 => seq != 1,
        _ => panic!("check at an unexpected row {rows}"),
    }));
    let (dec, stats, _) = run_gridar(cfg, &mut h);
    let r = dec.report();
    assert_eq!(r.possible, [2, 4]);
    assert_eq!(r.replaced, [3, 1]);
    assert_eq!(r.all_impossible, [false, false]);

    // What the verifier saw at each point, per sequence.
    let seen = |rows: u32, seq: u32| -> Vec<u32> {
        h.checks
            .iter()
            .find(|(s, r, _)| *s == seq && *r == rows)
            .unwrap()
            .2
            .clone()
    };
    let q = (W) as usize; // one row
    let half = (3 * W) as usize;
    // After the first pruning, the replaced candidates carry their source's first row...
    for (dst, src) in [(0, 1), (2, 4), (3, 1)] {
        assert_eq!(
            seen(3, dst)[..q],
            seen(1, src)[..],
            "{dst} ← {src} at row 1"
        );
    }
    // ... the kept ones their own ...
    for c in [1, 4] {
        assert_eq!(seen(3, c)[..q], seen(1, c)[..]);
    }
    // ... and a replaced candidate continues with its own stream, not as a copy of its source.
    assert_ne!(seen(3, 0)[q..], seen(3, 1)[q..]);
    assert_ne!(seen(3, 3)[q..], seen(3, 1)[q..]);
    // After the second pruning, 1 carries 0's top half.
    assert_eq!(cand(&dec, 1)[..half], seen(3, 0)[..]);
    for c in [0, 2, 3, 4] {
        assert_eq!(cand(&dec, c)[..half], seen(3, c)[..]);
    }
    assert_ne!(cand(&dec, 1)[half..], cand(&dec, 0)[half..]);

    // Re-prefills: exactly the replaced candidates, each with its anchor.
    let anchors: Vec<(u32, usize)> = h
        .prefills
        .iter()
        .filter(|p| !p.1.is_empty())
        .map(|p| (p.0, p.1.len()))
        .collect();
    assert_eq!(anchors, vec![(0, q), (2, q), (3, q), (1, half)]);
    assert_eq!(h.prefills[5].1, seen(1, 1));
    assert_eq!(r.anchor_prefills, 4);
    assert_eq!(r.anchor_tokens, 3 * q as u32 + half as u32);
    assert_eq!(r.anchor_rows, 2 * r.anchor_tokens);
    assert_eq!(stats.prefills, 5 + 4);
    assert_eq!(stats.verifier_calls, 10);
    assert_eq!(stats.tokens, 5 * N);
    assert_eq!(stats.target_forwards, 5 * N);
}

#[test]
fn gridar_keeps_every_candidate_when_all_are_impossible() {
    for seed in 0..10 {
        let mut h = host(4);
        h.check_script = Some(Box::new(|_, _, _| false));
        let (dec, stats, _) = run_gridar(gridar_cfg(seed, 4, true, false), &mut h);
        let r = dec.report();
        assert_eq!(r.all_impossible, [true, true]);
        assert_eq!(r.replaced, [0, 0]);
        assert_eq!(r.possible, [0, 0]);
        assert_eq!(r.anchor_prefills, 0);
        assert_eq!(stats.prefills, 4);
        // Nothing was pruned, so every candidate is the standalone vanilla run of its stream.
        for c in 0..4 {
            assert_eq!(cand(&dec, c), vanilla_tokens(seed, c));
        }
    }
}

#[test]
fn gridar_token_budget_equals_best_of_n_and_accounting_adds_up() {
    let n = 4;
    let (q, half) = (W, 3 * W);
    for seed in 0..10 {
        let mut bon = vanilla_bon::<8>(config(seed), n);
        let (bs, _) = run_on(&mut bon, &mut host(n));

        // Verifier and reformulation on: every candidate is reformulated (and so re-prefilled)
        // at both pruning points and sampled with three-way CFG after the first.
        let mut h = host(n);
        let (dec, s, actions) = run_gridar(gridar_cfg(seed, n, true, true), &mut h);
        let r = dec.report();
        assert_eq!(s.tokens, bs.tokens, "same token budget as Best-of-N");
        assert_eq!(s.tokens, n * N);
        assert_eq!(s.target_forwards, bs.target_forwards);
        assert_eq!(s.prefills, n + 2 * n);
        assert_eq!(r.anchor_prefills, 2 * n);
        assert_eq!(
            r.anchor_tokens,
            n * (q + half),
            "anchor tokens are prefill work"
        );
        assert_eq!(r.anchor_rows, 3 * r.anchor_tokens, "three-way prefills");
        assert_eq!(
            s.target_rows,
            n * (2 * q + 3 * (N - q)),
            "3 rows per three-way input"
        );
        assert_eq!(s.verifier_calls, 2 * n);
        assert_eq!(s.reformulations, 2 * n);
        assert_eq!(s.scorer_calls, n);
        assert_eq!(bs.scorer_calls, n);
        assert_eq!(h.actions.get("check"), Some(&(2 * n)));
        assert_eq!(h.actions.get("reformulate"), Some(&(2 * n)));
        assert_eq!(h.actions.get("score"), Some(&n));
        assert!(actions <= dec.action_bound());
        assert_eq!(actions, N + 2 * n + 2 * n + n);
        assert_eq!(h.forwards.get("target"), Some(&N));
        // Reformulations see the post-pruning canvases.
        for (seq, rows, canvas) in &h.reformulations {
            assert_eq!(canvas.len() as u32, rows * W);
            assert_eq!(cand(&dec, *seq)[..canvas.len()], canvas[..]);
        }
        // Every prefill after a reformulation is three-way, the first ones two-way.
        for (i, p) in h.prefills.iter().enumerate() {
            assert_eq!(p.2, if i < n as usize { 2 } else { 3 });
        }

        // Reformulation only: three-way rows, re-prefills, no verifier calls.
        let (dec, s, _) = run_gridar(gridar_cfg(seed, n, false, true), &mut host(n));
        assert_eq!(s.verifier_calls, 0);
        assert_eq!(s.reformulations, 2 * n);
        assert_eq!(s.target_rows, n * (2 * q + 3 * (N - q)));
        assert_eq!(dec.report().possible, [0, 0]);

        // Neither: GridAR is Best-of-N with the same candidates.
        let (dec, s, _) = run_gridar(gridar_cfg(seed, n, false, false), &mut host(n));
        assert_eq!(s, bs);
        for c in 0..n {
            assert_eq!(cand(&dec, c), cand(&bon, c));
        }
        assert_eq!(dec.result_seq(), bon.result_seq());
    }
}

#[test]
fn gridar_picks_the_scorers_argmax_ties_by_lowest_index() {
    for (scores, best) in [
        (&[1.0f32, 3.0, 3.0, 2.0][..], 1),
        (&[2.0, 2.0, 2.0, 2.0][..], 0),
        (&[-1.0, -5.0, -1.0, 0.5][..], 3),
    ] {
        let mut dec = Grid::vanilla(gridar_cfg(4, 4, true, true)).unwrap();
        run_scripted_scores(&mut dec, &mut host(4), scores);
        assert_eq!(dec.best(), best);
        assert_eq!(dec.result_seq(), best);
    }
}

#[test]
fn gridar_rejects_bad_configurations() {
    let bad = |cfg: GridArConfig| Grid::vanilla(cfg).expect_err("accepted");
    let mut c = gridar_cfg(0, 0, true, true);
    assert!(matches!(bad(c), Error::InvalidParameter { name: "n", .. }));
    c.n = 9;
    assert!(matches!(bad(c), Error::InvalidParameter { name: "n", .. }));
    c.n = 2;
    c.w = f32::NAN;
    assert!(matches!(bad(c), Error::InvalidParameter { name: "w", .. }));
    c.w = RELEASE_W;
    c.base.tokens = 18; // 3 rows of 6
    assert!(matches!(
        bad(c),
        Error::InvalidParameter { name: "tokens", .. }
    ));
    c.base.tokens = 128; // over capacity
    assert!(matches!(
        bad(c),
        Error::InvalidParameter { name: "tokens", .. }
    ));
    c.base.tokens = 24; // 4 rows: cuts 1, 2, 4
    assert_eq!(Grid::vanilla(c).unwrap().cut_rows(), [1, 2, 4]);
    c.base.stream = u32::MAX;
    assert!(matches!(
        bad(c),
        Error::InvalidParameter { name: "stream", .. }
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
        // GridAR with replacements and reformulation.
        let cfg = gridar_cfg(seed, 4, true, true);
        let script = |seq: u32, _: &[u32], rows: u32| (seq + rows) % 3 != 0;
        let mut clean_host = host(4);
        clean_host.check_script = Some(Box::new(script));
        let (clean, clean_stats, _) = run_gridar(cfg, &mut clean_host);
        let mut dec = Grid::vanilla(cfg).unwrap();
        let mut h = host(4);
        h.check_script = Some(Box::new(script));
        let stats = run_with_wrong_answers(&mut dec, &mut h);
        assert_eq!(stats, clean_stats);
        assert!(clean.report().replaced.iter().sum::<u32>() > 0);
        assert_eq!(dec.report(), clean.report());
        for c in 0..4 {
            assert_eq!(cand(&dec, c), cand(&clean, c));
        }
        assert_eq!(dec.result_seq(), clean.result_seq());
        // After Done every answer is rejected.
        assert!(dec.handle_score(1.0).is_err());
        assert!(dec.handle_verdict(true).is_err());
        assert_eq!(dec.poll(), Action::Done);

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

// ---------------------------------------------------------------------------------------------
// Cost report

#[test]
fn report_cost_of_gridar_n4_against_best_of_n_n8() {
    let seeds = 20;
    let (mut bon, mut grid, mut grid_report) = (Stats::default(), Stats::default(), (0u32, 0u32));
    let (mut bon_best, mut grid_best) = (0.0f64, 0.0f64);
    for seed in 0..seeds {
        let mut b = vanilla_bon::<8>(config(seed), 8);
        let mut h = host(8);
        bon.add(&run_on(&mut b, &mut h).0);
        bon_best += default_score(&h.world, b.tokens(b.result_seq())) as f64;
        let mut h = host(4);
        let (g, s, _) = run_gridar(gridar_cfg(seed, 4, true, true), &mut h);
        grid.add(&s);
        grid_report.0 += g.report().anchor_rows;
        grid_report.1 += g.report().replaced.iter().sum::<u32>();
        grid_best += default_score(&h.world, g.tokens(g.result_seq())) as f64;
    }
    println!(
        "synthetic 6x6, {seeds} seeds, per image: Best-of-8: {} tokens, {} target forwards, {} \
         target rows, {} scorer calls, mean best score {:.4}",
        bon.tokens / seeds as u32,
        bon.target_forwards / seeds as u32,
        bon.target_rows / seeds as u32,
        bon.scorer_calls / seeds as u32,
        bon_best / seeds as f64
    );
    println!(
        "GridAR N=4 (verifier, reformulation, w=5): {} tokens, {} target forwards, {} target \
         rows + {:.1} anchor prefill rows, {} verifier + {} scorer calls, {} reformulations, {:.2} \
         replacements, mean best score {:.4}; TPF {:.3}",
        grid.tokens / seeds as u32,
        grid.target_forwards / seeds as u32,
        grid.target_rows / seeds as u32,
        grid_report.0 as f64 / seeds as f64,
        grid.verifier_calls / seeds as u32,
        grid.scorer_calls / seeds as u32,
        grid.reformulations / seeds as u32,
        grid_report.1 as f64 / seeds as f64,
        grid_best / seeds as f64,
        grid.tokens_per_target_forward()
    );
    assert_eq!(
        grid.tokens * 2,
        bon.tokens,
        "GridAR N=4 samples half of Best-of-8's tokens"
    );
}
