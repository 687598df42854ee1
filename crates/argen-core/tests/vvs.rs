//! VVS (verification skipping) on the synthetic reference model: equivalence with speculative
//! decoding when skipping is off, bounds and accounting of every schedule, post-verification
//! through the strict host, robustness to wrong answers, and TPF.

mod common;

use argen_core::accept::Criterion;
use argen_core::decode::{
    drive, Action, Answer, Config, Decoder, DraftShape, GuidanceMode, Host, Observer, Schedule,
    Speculative, SpeculativeConfig, Stats, Vanilla, Vvs, VvsConfig,
};
use argen_core::{Error, SamplerParams};
use common::synthetic::{Storage, SyntheticHost, World};

const W: u32 = 6;
const N: u32 = 36;

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

fn spec(seed: u64, shape: DraftShape) -> SpeculativeConfig {
    SpeculativeConfig {
        base: config(seed),
        draft_sampler: config(seed).sampler,
        shape,
    }
}

const CHAIN: DraftShape = DraftShape::Chain { gamma: 4 };
const TREE: DraftShape = DraftShape::Tree {
    total: 20,
    depth: 4,
    top_k: 4,
};

/// Records every action as text.
#[derive(Default)]
struct Recorder(Vec<String>);

impl Observer for Recorder {
    fn before(&mut self, action: &Action<'_>) {
        self.0.push(format!("{action:?}"));
    }
    fn after<D: Decoder>(&mut self, _: &D) {}
}

struct Run {
    tokens: Vec<u32>,
    stats: Stats,
    actions: Vec<String>,
}

fn run<D: Decoder>(dec: &mut D) -> Run {
    let mut storage = Storage::new(dec.dist_rows_needed());
    let mut backend = storage.backend();
    let mut host = SyntheticHost::new(World::new(W), &[3]);
    host.stale_features = true;
    let mut rec = Recorder::default();
    let stats = drive(dec, &mut backend, &mut host, &mut rec).expect("decoding failed");
    let tokens = dec.tokens(dec.result_seq()).to_vec();
    assert_eq!(tokens.len() as u32, N);
    Run {
        tokens,
        stats,
        actions: rec.0,
    }
}

/// The synthetic codebook centred on the lattice centre, so that cosine similarity measures the
/// direction of a code from the centre (the raw codes all lie in the positive quadrant, where
/// every pair is similar).
fn centred_codebook() -> Vec<f32> {
    World::new(W).codebook().iter().map(|x| x - 0.5).collect()
}

fn vvs<'c>(
    seed: u64,
    shape: DraftShape,
    schedule: Schedule,
    codebook: &'c [f32],
    criterion: Criterion<'c>,
) -> Vvs<'c, 64, 64> {
    let cfg = VvsConfig {
        spec: spec(seed, shape),
        schedule,
        warmup: 5,
        codebook,
        dim: 2,
    };
    Vvs::new(cfg, criterion).unwrap()
}

#[test]
fn skipping_disabled_reproduces_speculative_actions_exactly() {
    let codebook = World::new(W).codebook();
    for seed in 0..60 {
        for shape in [CHAIN, TREE] {
            for criterion in [Criterion::Exact, Criterion::Coupled] {
                let s = run(&mut Speculative::<64, 64>::new(spec(seed, shape), criterion).unwrap());
                let v = run(&mut vvs(seed, shape, Schedule::Never, &codebook, criterion));
                assert_eq!(s.tokens, v.tokens, "seed {seed} {shape:?}");
                assert_eq!(s.stats, v.stats, "seed {seed} {shape:?}");
                assert_eq!(s.actions, v.actions, "seed {seed} {shape:?}");
                assert_eq!(v.stats.skipped_steps, 0);
            }
        }
    }
}

/// Target forwards and accepted drafts account for every non-skipped token.
fn check_accounting(s: &Stats, skipped_tokens: u32) {
    let accepted: u32 = s
        .accepted_hist
        .iter()
        .enumerate()
        .map(|(a, &n)| a as u32 * n)
        .sum();
    assert_eq!(s.tokens, N);
    assert_eq!(s.tokens, s.target_forwards + accepted + skipped_tokens);
    assert_eq!(s.prefills, 1);
}

/// Runs `seeds` seeds and returns the summed stats and the summed skipped tokens.
fn sweep(shape: DraftShape, schedule: Schedule, seeds: u64) -> (Stats, u32) {
    let codebook = centred_codebook();
    let mut total = Stats::default();
    let mut skipped = 0;
    for seed in 0..seeds {
        let mut dec = vvs(seed, shape, schedule, &codebook, Criterion::Exact);
        let r = run(&mut dec);
        // Skipped tokens: committed tokens not produced by a target forward or acceptance.
        let accepted: u32 = r
            .stats
            .accepted_hist
            .iter()
            .enumerate()
            .map(|(a, &n)| a as u32 * n)
            .sum();
        let sk = r.stats.tokens - r.stats.target_forwards - accepted;
        check_accounting(&r.stats, sk);
        if r.stats.skipped_steps == 0 {
            assert_eq!(sk, 0);
        } else {
            assert!(sk >= r.stats.skipped_steps);
            assert!(sk <= r.stats.skipped_steps * shape.depth());
        }
        // Verification steps and skip steps alternate at best: never two skips in a row.
        assert!(r.stats.skipped_steps <= r.stats.verify_steps + 1);
        total.add(&r.stats);
        skipped += sk;
    }
    (total, skipped)
}

#[test]
fn schedules_run_within_bound_and_cut_target_passes() {
    let seeds = 40;
    let mut vanilla = Stats::default();
    let mut base = Stats::default();
    for seed in 0..seeds {
        vanilla.add(&run(&mut Vanilla::<64>::new(config(seed)).unwrap()).stats);
        base.add(
            &run(&mut Speculative::<64, 64>::new(spec(seed, TREE), Criterion::Exact).unwrap())
                .stats,
        );
    }
    println!(
        "vanilla: TPF {:.3}; speculative tree 20/4/4 exact: TPF {:.3}, mean accepted {:.3}",
        vanilla.tokens_per_target_forward(),
        base.tokens_per_target_forward(),
        base.mean_accepted_length()
    );
    for (name, schedule) in [
        ("uniform 2", Schedule::Uniform { interval: 2 }),
        ("uniform 3", Schedule::Uniform { interval: 3 }),
        ("uniform 4", Schedule::Uniform { interval: 4 }),
        ("dynamic s=0.65", Schedule::DYNAMIC_PAPER),
        (
            "dynamic s=0.70",
            Schedule::Dynamic {
                threshold: 0.70,
                alpha: 0.9,
            },
        ),
        (
            "dynamic s=0.99",
            Schedule::Dynamic {
                threshold: 0.99,
                alpha: 0.9,
            },
        ),
    ] {
        for shape in [TREE, CHAIN] {
            let (s, skipped) = sweep(shape, schedule, seeds);
            println!(
                "VVS {name:<15} {}: TPF {:.3}, mean accepted {:.3}, skip steps {} ({} tokens), \
                 target passes vs vanilla {:.2}x fewer",
                if shape == TREE {
                    "tree 20/4/4"
                } else {
                    "chain γ=4 "
                },
                s.tokens_per_target_forward(),
                s.mean_accepted_length(),
                s.skipped_steps,
                skipped,
                vanilla.target_forwards as f64 / s.target_forwards as f64
            );
            if let Schedule::Uniform { .. } = schedule {
                assert!(s.skipped_steps > 0, "{name}: uniform schedules skip");
            }
            if shape == TREE {
                assert!(
                    s.target_forwards <= base.target_forwards,
                    "{name}: skipping never costs target passes here"
                );
            }
        }
    }
    // The dynamic schedule skips on this world's tree drafts (alternates are latent neighbours),
    // and a higher threshold skips less.
    let (lo, _) = sweep(TREE, Schedule::DYNAMIC_PAPER, seeds);
    let (hi, _) = sweep(
        TREE,
        Schedule::Dynamic {
            threshold: 0.99,
            alpha: 0.9,
        },
        seeds,
    );
    assert!(lo.skipped_steps > 0);
    assert!(hi.skipped_steps < lo.skipped_steps);
}

#[test]
fn uniform_schedule_skips_where_documented() {
    // Interval 2 from the warm-up on: every other drafting step is a skip, so roughly as many
    // skip steps as verification steps after the first tokens.
    let (s, _) = sweep(TREE, Schedule::Uniform { interval: 2 }, 20);
    assert!(s.skipped_steps * 2 >= s.verify_steps / 2);
    // Interval 1 never skips.
    let (s, _) = sweep(TREE, Schedule::Uniform { interval: 1 }, 5);
    assert_eq!(s.skipped_steps, 0);
}

#[test]
fn skipping_from_the_first_step_without_warmup() {
    // With no warm-up the first skip comes at t = 1 + accepted, before γ verified features
    // exist: the oldest skipped tokens fall back to the condition's feature.
    let codebook = centred_codebook();
    for seed in 0..20 {
        for shape in [TREE, CHAIN] {
            let cfg = VvsConfig {
                spec: spec(seed, shape),
                schedule: Schedule::Uniform { interval: 2 },
                warmup: 0,
                codebook: &codebook,
                dim: 2,
            };
            let r = run(&mut Vvs::<64, 64>::new(cfg, Criterion::Exact).unwrap());
            assert!(r.stats.skipped_steps > 0);
        }
    }
}

#[test]
fn vvs_is_deterministic() {
    let codebook = World::new(W).codebook();
    for seed in 0..10 {
        let a = run(&mut vvs(
            seed,
            TREE,
            Schedule::DYNAMIC_PAPER,
            &codebook,
            Criterion::Exact,
        ));
        let b = run(&mut vvs(
            seed,
            TREE,
            Schedule::DYNAMIC_PAPER,
            &codebook,
            Criterion::Exact,
        ));
        assert_eq!(a.tokens, b.tokens);
        assert_eq!(a.actions, b.actions);
    }
}

/// A target run: keep list, inputs, committed tokens and skip steps before it.
type LoggedRun = (Vec<u32>, Vec<argen_core::decode::Input>, Vec<u32>, u32);

/// Records target runs with the committed tokens and skip count before them.
#[derive(Default)]
struct TargetLog {
    runs: Vec<LoggedRun>,
    tokens: Vec<u32>,
    skipped: u32,
}

impl Observer for TargetLog {
    fn before(&mut self, action: &Action<'_>) {
        if let Action::Target(r) = action {
            self.runs.push((
                r.keep.to_vec(),
                r.inputs.to_vec(),
                self.tokens.clone(),
                self.skipped,
            ));
        }
    }
    fn after<D: Decoder>(&mut self, d: &D) {
        self.tokens = d.tokens(d.result_seq()).to_vec();
        self.skipped = d.stats().skipped_steps;
    }
}

#[test]
fn post_verification_runs_carry_the_skipped_chain() {
    let codebook = centred_codebook();
    let mut checked = 0;
    for seed in 0..10 {
        let mut dec = vvs(
            seed,
            TREE,
            Schedule::Uniform { interval: 2 },
            &codebook,
            Criterion::Exact,
        );
        let mut storage = Storage::new(dec.dist_rows_needed());
        let mut backend = storage.backend();
        let mut host = SyntheticHost::new(World::new(W), &[3]);
        host.stale_features = true;
        let mut log = TargetLog::default();
        drive(&mut dec, &mut backend, &mut host, &mut log).unwrap();
        for pair in log.runs.windows(2) {
            let (_, ref inputs, ref committed, skipped) = pair[1];
            if skipped == pair[0].3 {
                // No skip in between: a plain speculative run.
                assert_eq!(inputs[0].index as usize + 1, committed.len());
                continue;
            }
            // One skip step committed γ tokens since the previous run; they follow the last
            // token the previous run committed, as a chain, and the next run keeps them all.
            let t = committed.len();
            let first = inputs[0].index as usize;
            let gamma = t - 1 - first;
            assert!((1..=4).contains(&gamma), "γ = {gamma}");
            for (k, input) in inputs[..=gamma].iter().enumerate() {
                assert_eq!(input.index as usize, first + k);
                assert_eq!(input.token, committed[first + k]);
                assert_eq!(input.parent, if k == 0 { u32::MAX } else { k as u32 - 1 });
            }
            assert!(inputs[gamma + 1..]
                .iter()
                .all(|i| i.parent >= gamma as u32 && i.index as usize >= t));
            checked += 1;
        }
        for w in log.runs.windows(3) {
            let (post, next_keep) = (&w[1], &w[2].0);
            if post.3 != w[0].3 {
                // The run after a post-verification run keeps all its chain inputs.
                let gamma = post.2.len() - 1 - post.1[0].index as usize;
                let want: Vec<u32> = (0..=gamma as u32).collect();
                assert_eq!(next_keep[..=gamma], want[..]);
            }
        }
    }
    assert!(checked > 10, "post-verification runs seen: {checked}");
}

#[test]
fn invalid_settings_are_rejected() {
    let codebook = World::new(W).codebook();
    let mk = |schedule, codebook: &[f32], dim| {
        let cfg = VvsConfig {
            spec: spec(1, TREE),
            schedule,
            warmup: 5,
            codebook,
            dim,
        };
        Vvs::<64, 64>::new(cfg, Criterion::Exact).map(|_| ())
    };
    assert!(mk(Schedule::Uniform { interval: 0 }, &[], 0).is_err());
    assert!(mk(Schedule::DYNAMIC_PAPER, &[], 2).is_err());
    assert!(mk(Schedule::DYNAMIC_PAPER, &codebook[..5], 2).is_err());
    assert!(mk(
        Schedule::Dynamic {
            threshold: f32::NAN,
            alpha: 0.9
        },
        &codebook,
        2
    )
    .is_err());
    assert!(mk(
        Schedule::Dynamic {
            threshold: 0.6,
            alpha: 0.0
        },
        &codebook,
        2
    )
    .is_err());
    assert!(mk(Schedule::DYNAMIC_PAPER, &codebook, 2).is_ok());
    // T too small for the post-verified chain plus the tree.
    let cfg = VvsConfig {
        spec: spec(1, TREE),
        schedule: Schedule::Never,
        warmup: 5,
        codebook: &[],
        dim: 0,
    };
    assert!(Vvs::<64, 24>::new(cfg, Criterion::Exact).is_err());
    assert!(Vvs::<64, 25>::new(cfg, Criterion::Exact).is_ok());
    // A codebook with fewer rows than the vocabulary is refused at the first answer.
    let mut dec = vvs(
        1,
        TREE,
        Schedule::DYNAMIC_PAPER,
        &codebook[..64],
        Criterion::Exact,
    );
    let mut storage = Storage::new(dec.dist_rows_needed());
    let mut backend = storage.backend();
    let mut host = SyntheticHost::new(World::new(W), &[3]);
    let e = drive(
        &mut dec,
        &mut backend,
        &mut host,
        &mut argen_core::decode::NoObserver,
    );
    assert!(matches!(e, Err(Error::LengthMismatch { .. })));
}

/// Drives `dec`, first answering every action wrongly (a verdict, too few rows, a NaN logit),
/// checking each is refused, then correctly.
fn run_with_wrong_answers<D: Decoder>(dec: &mut D) -> Vec<u32> {
    let mut storage = Storage::new(dec.dist_rows_needed());
    let mut backend = storage.backend();
    let mut host = SyntheticHost::new(World::new(W), &[3]);
    host.stale_features = true;
    for _ in 0..=dec.action_bound() {
        let action = dec.poll();
        if action == Action::Done {
            return dec.tokens(dec.result_seq()).to_vec();
        }
        let logits = match host.answer(&action).unwrap() {
            Answer::Logits(l) => l.to_vec(),
            _ => unreachable!(),
        };
        let before = format!("{action:?}");
        assert!(dec.handle_verdict(true).is_err());
        assert!(dec.handle_score(1.0).is_err());
        let v = common::synthetic::V;
        assert!(dec
            .handle_logits(&mut backend, &logits[..logits.len() - v])
            .is_err());
        let mut bad = logits.clone();
        *bad.last_mut().unwrap() = f32::NAN;
        assert!(dec.handle_logits(&mut backend, &bad).is_err());
        assert_eq!(format!("{:?}", dec.poll()), before);
        dec.handle_logits(&mut backend, &logits).unwrap();
    }
    panic!("action bound exceeded");
}

#[test]
fn wrong_answers_change_nothing() {
    let codebook = World::new(W).codebook();
    for seed in 0..8 {
        for schedule in [Schedule::Uniform { interval: 2 }, Schedule::DYNAMIC_PAPER] {
            for shape in [TREE, CHAIN] {
                let clean = run(&mut vvs(seed, shape, schedule, &codebook, Criterion::Exact));
                let mut dec = vvs(seed, shape, schedule, &codebook, Criterion::Exact);
                assert_eq!(run_with_wrong_answers(&mut dec), clean.tokens);
                assert_eq!(dec.stats(), clean.stats);
            }
        }
    }
}
