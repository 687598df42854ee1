//! Composition on the synthetic reference model: speculative decoders (sd, LANTERN, GSD) as
//! restartable inner decoders of GridAR and as Best-of-N candidates.
//!
//! * [`Restartable`] for [`Speculative`]: a Coupled decoder stopped at arbitrary token counts and
//!   continued from its KV caches, or restarted from a prefix, commits exactly vanilla's tokens
//!   (with chain and tree drafts, and with a run capacity small enough that the drafter's
//!   catch-up after a restart takes several runs).
//! * GridAR over Coupled speculative candidates gives exactly the tokens, verdicts, pruning and
//!   result of GridAR over vanilla candidates (n ∈ {1, 2, 4}, verifier and reformulation on and
//!   off), within its action bound.
//! * VVS (speculative with the VVS policy) is restartable too: with skipping off it is GridAR's
//!   Coupled speculative candidate; with skipping on it stops exactly at the cuts.
//! * Best-of-N over sd / LANTERN / GSD candidates (also mixed in one set) steps them in lockstep
//!   batches, and each candidate equals its standalone run.

mod common;

use argen_core::accept::neighbours::build_table;
use argen_core::accept::{Criterion, GroupedParams, LanternParams, NeighbourTable};
use argen_core::decode::{
    drive, Action, BestOfN, Config, Decoder, DraftShape, GridAr, GridArConfig, GuidanceMode,
    Observer, Restartable, Schedule, Speculative, SpeculativeConfig, Stats, Vanilla, Vvs,
    VvsConfig, RELEASE_W,
};
use argen_core::SamplerParams;
use common::synthetic::{Storage, SyntheticHost, World, V};

const W: u32 = 6;
/// 6 × 6 canvas: GridAR stages end at rows 1, 3 and 6.
const N: u32 = 36;
const CLASS: u32 = 3;

const CHAIN: DraftShape = DraftShape::Chain { gamma: 4 };
const TREE: DraftShape = DraftShape::Tree {
    total: 20,
    depth: 4,
    top_k: 4,
};

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

fn spec_cfg(base: Config, shape: DraftShape) -> SpeculativeConfig {
    SpeculativeConfig {
        base,
        draft_sampler: base.sampler,
        shape,
    }
}

fn host(n: u32) -> SyntheticHost {
    SyntheticHost::new(World::new(W), &vec![CLASS; n as usize])
}

/// The acceptance criteria that borrow tables built from the synthetic world.
struct Tables {
    neighbours: Vec<u32>,
    codebook: Vec<f32>,
}

impl Tables {
    fn new() -> Self {
        let world = World::new(W);
        Tables {
            neighbours: build_table(&world.codebook(), 2, 8).unwrap(),
            codebook: world.codebook(),
        }
    }

    fn lantern(&self) -> Criterion<'_> {
        Criterion::Lantern(LanternParams {
            neighbours: NeighbourTable::new(&self.neighbours, V, 8).unwrap(),
            k: 8,
            delta: 0.2,
            lambda: None,
        })
    }

    fn grouped(&self) -> Criterion<'_> {
        Criterion::Grouped(GroupedParams {
            embedding: &self.codebook,
            dim: 2,
            window: 7,
            prob_tol: 0.15,
            dist_tol: 0.02,
        })
    }
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

/// Drives `dec` against `host` until Done; returns its stats and the number of actions, and
/// holds it to its action bound.
fn run_on<D: Decoder>(dec: &mut D, host: &mut SyntheticHost, storage: &mut Storage) -> u32 {
    let mut backend = storage.backend();
    let mut count = Count::default();
    drive(dec, &mut backend, host, &mut count).expect("decoding failed");
    assert!(count.0 <= dec.action_bound(), "action bound exceeded");
    count.0
}

fn vanilla_tokens(base: Config) -> Vec<u32> {
    let mut dec = Vanilla::<64>::new(base).unwrap();
    run_on(&mut dec, &mut host(1), &mut Storage::new(1));
    dec.tokens(0).to_vec()
}

/// Runs `dec` through the stops `stops` (each a `set_stop`, then a drive to Done) on one host.
fn run_with_stops<D: Restartable>(dec: &mut D, stops: &[u32]) -> Vec<u32> {
    let mut h = host(1);
    let mut storage = Storage::new(dec.dist_rows_needed());
    for &stop in stops {
        dec.set_stop(stop).unwrap();
        run_on(dec, &mut h, &mut storage);
        assert_eq!(
            dec.tokens(0).len() as u32,
            stop,
            "stopped exactly at {stop}"
        );
        assert_eq!(dec.poll(), Action::Done);
    }
    dec.tokens(0).to_vec()
}

#[test]
fn coupled_speculative_stopped_and_continued_commits_vanilla_tokens() {
    let stop_sets: [&[u32]; 4] = [&[N], &[6, 18, N], &[1, 2, 3, 5, 8, 13, 21, 34, N], &[35, N]];
    for seed in 0..25 {
        let want = vanilla_tokens(config(seed));
        for stops in stop_sets {
            let mut v = Vanilla::<64>::new(config(seed)).unwrap();
            assert_eq!(run_with_stops(&mut v, stops), want);
            for shape in [CHAIN, TREE] {
                let cfg = spec_cfg(config(seed), shape);
                let mut s = Speculative::<64, 64>::new(cfg, Criterion::Coupled).unwrap();
                assert_eq!(
                    run_with_stops(&mut s, stops),
                    want,
                    "seed {seed} {shape:?} stops {stops:?}"
                );
            }
        }
    }
}

#[test]
fn coupled_speculative_restarted_from_a_prefix_draws_what_vanilla_draws() {
    for seed in 0..25 {
        // The prefix: another run's first 18 tokens (as GridAR's anchors are).
        let donor = vanilla_tokens(config(seed + 1000));
        for cut in [1usize, 6, 18, 35] {
            let prefix = &donor[..cut];
            let mut v = Vanilla::<64>::new(config(seed)).unwrap();
            v.set_stop(6).unwrap();
            run_on(&mut v, &mut host(1), &mut Storage::new(1));
            v.restart(prefix, config(seed).guidance).unwrap();
            let want = run_with_stops(&mut v, &[N]);
            assert_eq!(&want[..cut], prefix);
            // T = 8: the drafter catches up on an 18-token prefix in three runs.
            for (shape, small) in [(CHAIN, false), (TREE, false), (CHAIN, true)] {
                let cfg = spec_cfg(config(seed), shape);
                let got = if small {
                    let mut s = Speculative::<64, 8>::new(cfg, Criterion::Coupled).unwrap();
                    s.set_stop(6).unwrap();
                    run_on(&mut s, &mut host(1), &mut Storage::new(16));
                    s.restart(prefix, cfg.base.guidance).unwrap();
                    run_with_stops(&mut s, &[N])
                } else {
                    let mut s = Speculative::<64, 64>::new(cfg, Criterion::Coupled).unwrap();
                    s.set_stop(6).unwrap();
                    run_on(&mut s, &mut host(1), &mut Storage::new(128));
                    s.restart(prefix, cfg.base.guidance).unwrap();
                    // A reguide before the prefill changes nothing but the guidance.
                    s.reguide(cfg.base.guidance).unwrap();
                    run_with_stops(&mut s, &[N])
                };
                assert_eq!(got, want, "seed {seed} cut {cut} {shape:?} small {small}");
            }
        }
    }
}

#[test]
fn speculative_restart_rejects_bad_stops_and_prefixes() {
    let cfg = spec_cfg(config(1), TREE);
    let mut s = Speculative::<64, 64>::new(cfg, Criterion::Coupled).unwrap();
    let mut h = host(1);
    s.set_stop(6).unwrap();
    run_on(&mut s, &mut h, &mut Storage::new(128));
    assert!(s.set_stop(6).is_err(), "a stop at the committed count");
    assert!(s.set_stop(N + 1).is_err(), "a stop beyond the image");
    assert!(s.restart(&[0; N as usize], cfg.base.guidance).is_err());
    assert_eq!(s.tokens(0).len(), 6, "rejected calls change nothing");
    assert_eq!(s.poll(), Action::Done);
    s.set_stop(N).unwrap();
    run_on(&mut s, &mut h, &mut Storage::new(128));
    assert!(s.reguide(cfg.base.guidance).is_err(), "a finished decoder");
    assert_eq!(s.tokens(0), vanilla_tokens(config(1)));
}

// ---------------------------------------------------------------------------------------------
// GridAR over speculative candidates.

fn gridar_cfg(seed: u64, n: u32, verifier: bool, reformulate: bool) -> GridArConfig {
    GridArConfig {
        base: config(seed),
        n,
        verifier,
        reformulate,
        w: RELEASE_W,
    }
}

/// What a GridAR run produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    tokens: Vec<Vec<u32>>,
    result: u32,
    checks: Vec<(u32, u32, Vec<u32>)>,
    reformulations: Vec<(u32, u32, Vec<u32>)>,
    anchors: Vec<(u32, Vec<u32>, usize)>,
    scores: Vec<f32>,
}

type Script = fn(u32, &[u32], u32) -> bool;

/// Runs `dec` with the verdicts of `script`; returns the outcome and its stats and the host's
/// target forwards.
fn run_gridar<D: Restartable, const C: usize>(
    dec: &mut GridAr<D, C>,
    n: u32,
    script: Script,
) -> (Outcome, Stats, u32) {
    let mut h = host(n);
    h.check_script = Some(Box::new(script));
    let mut storage = Storage::new(dec.dist_rows_needed());
    run_on(dec, &mut h, &mut storage);
    let outcome = Outcome {
        tokens: (0..n).map(|c| dec.tokens(c).to_vec()).collect(),
        result: dec.result_seq(),
        checks: h.checks.clone(),
        reformulations: h.reformulations.clone(),
        anchors: h
            .prefills
            .iter()
            .filter(|p| !p.1.is_empty())
            .cloned()
            .collect(),
        scores: dec.scores().collect(),
    };
    let forwards = h.forwards.get("target").copied().unwrap_or(0);
    (outcome, dec.stats(), forwards)
}

#[test]
fn gridar_over_coupled_speculative_equals_gridar_over_vanilla() {
    let scripts: [(&str, Script); 3] = [
        ("default", |_, t, r| {
            common::synthetic::default_check(&World::new(W), t, r)
        }),
        ("token-parity", |seq, t, r| {
            (t[t.len() - 1] + seq + r) % 3 != 0
        }),
        ("all-impossible", |_, _, _| false),
    ];
    let (mut replaced, mut fewer_forwards) = (0, 0);
    for seed in 0..4 {
        for n in [1u32, 2, 4] {
            for verifier in [false, true] {
                for reformulate in [false, true] {
                    for (name, script) in scripts {
                        let cfg = gridar_cfg(seed, n, verifier, reformulate);
                        let mut van = GridAr::<Vanilla<64>, 4>::vanilla(cfg).unwrap();
                        let (want, vs, _) = run_gridar(&mut van, n, script);
                        replaced += van.report().replaced.iter().sum::<u32>();
                        let what = format!(
                            "seed {seed} n {n} verifier {verifier} reformulate {reformulate} \
                             {name}"
                        );
                        for shape in [CHAIN, TREE] {
                            let mut spec = GridAr::<Speculative<'_, 64, 64>, 4>::new(cfg, |c| {
                                Speculative::new(spec_cfg(c, shape), Criterion::Coupled)
                            })
                            .unwrap();
                            let (got, ss, _) = run_gridar(&mut spec, n, script);
                            assert_eq!(got, want, "{what} {shape:?}");
                            assert_eq!(spec.report(), van.report(), "{what} {shape:?}");
                            assert_eq!(ss.tokens, vs.tokens);
                            assert_eq!(ss.prefills, vs.prefills);
                            assert_eq!(ss.verifier_calls, vs.verifier_calls);
                            assert_eq!(ss.reformulations, vs.reformulations);
                            assert_eq!(ss.scorer_calls, vs.scorer_calls);
                            // Speculative candidates need fewer target forwards than vanilla's
                            // one per token.
                            assert!(ss.target_forwards <= vs.target_forwards, "{what} {shape:?}");
                            fewer_forwards += u32::from(ss.target_forwards < vs.target_forwards);
                        }
                        // A run capacity of 8: long catch-ups after restarts take several runs.
                        let mut small = GridAr::<Speculative<'_, 64, 8>, 4>::new(cfg, |c| {
                            Speculative::new(spec_cfg(c, CHAIN), Criterion::Coupled)
                        })
                        .unwrap();
                        let (got, _, _) = run_gridar(&mut small, n, script);
                        assert_eq!(got, want, "{what} T = 8");
                    }
                }
            }
        }
    }
    assert!(
        replaced > 20,
        "the scripts must exercise replacement ({replaced})"
    );
    assert!(
        fewer_forwards > 100,
        "speculation must save forwards ({fewer_forwards})"
    );
}

#[test]
fn gridar_over_lantern_and_gsd_candidates_runs_and_accounts() {
    let t = Tables::new();
    for seed in 0..6 {
        for criterion in [Criterion::Exact, t.lantern(), t.grouped()] {
            let cfg = gridar_cfg(seed, 4, true, true);
            let mut dec = GridAr::<Speculative<'_, 64, 64>, 4>::new(cfg, |c| {
                Speculative::new(spec_cfg(c, TREE), criterion)
            })
            .unwrap();
            let (got, s, forwards) =
                run_gridar(&mut dec, 4, |_, t, r| (t[t.len() - 1] + r) % 2 == 0);
            assert!(got.tokens.iter().all(|c| c.len() as u32 == N));
            // Every candidate's final canvas continues its canvas at the second pruning point.
            for (seq, rows, canvas) in got.reformulations.iter().filter(|r| r.1 == 3) {
                assert_eq!(got.tokens[*seq as usize][..(rows * W) as usize], canvas[..]);
            }
            assert_eq!(s.tokens, 4 * N, "{}", criterion.name());
            assert_eq!(s.verifier_calls, 8);
            assert_eq!(s.reformulations, 8);
            assert_eq!(s.prefills, 4 + 8);
            assert!(s.target_forwards < 4 * N, "{}", criterion.name());
            assert!(forwards <= s.target_forwards, "lockstep shares forwards");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Best-of-N over speculative candidates.

#[test]
fn best_of_n_over_sd_lantern_gsd_runs_in_lockstep_and_equals_standalone_runs() {
    let t = Tables::new();
    let criteria = [Criterion::Exact, t.lantern(), t.grouped()];
    // Each criterion alone, then the three mixed in one set (candidate c uses criteria[c % 3]).
    let sets: [&[usize]; 4] = [&[0], &[1], &[2], &[0, 1, 2]];
    for seed in 0..8 {
        for shape in [CHAIN, TREE] {
            for set in sets {
                let pick = |c: u32| criteria[set[c as usize % set.len()]];
                let mut base = config(seed);
                base.stream = 5;
                let mut bon = BestOfN::<Speculative<'_, 64, 64>, 4>::new(base, 4, |c| {
                    Speculative::new(spec_cfg(c, shape), pick(c.stream - 5))
                })
                .unwrap();
                let mut h = host(4);
                let mut storage = Storage::new(bon.dist_rows_needed());
                run_on(&mut bon, &mut h, &mut storage);
                let (mut alone_target, mut alone_draft) = (0, 0);
                for c in 0..4u32 {
                    let mut ccfg = base;
                    ccfg.stream += c;
                    let mut one =
                        Speculative::<64, 64>::new(spec_cfg(ccfg, shape), pick(c)).unwrap();
                    let mut h1 = host(1);
                    run_on(&mut one, &mut h1, &mut Storage::new(128));
                    assert_eq!(bon.tokens(c), one.tokens(0), "seed {seed} {set:?} cand {c}");
                    assert_eq!(bon.candidates()[c as usize].stats(), one.stats());
                    alone_target += h1.forwards.get("target").copied().unwrap_or(0);
                    alone_draft += h1.forwards.get("drafter").copied().unwrap_or(0);
                }
                let target = h.forwards.get("target").copied().unwrap_or(0);
                let draft = h.forwards.get("drafter").copied().unwrap_or(0);
                // Lockstep: the four candidates share forwards.
                assert!(h.actions.get("batch").copied().unwrap_or(0) > 0);
                assert!(target + draft < alone_target + alone_draft);
                assert!(target < alone_target, "{target} vs {alone_target}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GridAR over VVS candidates.

fn vvs_cfg(base: Config, schedule: Schedule, codebook: &[f32]) -> VvsConfig<'_> {
    VvsConfig {
        spec: spec_cfg(base, TREE),
        schedule,
        warmup: 5,
        codebook,
        dim: 2,
    }
}

#[test]
fn gridar_over_vvs_candidates_stops_at_the_cuts_and_without_skips_equals_vanilla() {
    let codebook = World::new(W).codebook();
    let mut skipped = 0;
    for seed in 0..6 {
        for (verifier, reformulate) in [(false, false), (true, true)] {
            let cfg = gridar_cfg(seed, 4, verifier, reformulate);
            let script: Script = |seq, t, r| (t[t.len() - 1] + seq + r) % 3 != 0;
            let mut van = GridAr::<Vanilla<64>, 4>::vanilla(cfg).unwrap();
            let (want, _, _) = run_gridar(&mut van, 4, script);
            // Skipping off: exactly vanilla's tokens (Coupled).
            let mut never = GridAr::<Vvs<'_, 64, 64>, 4>::new(cfg, |c| {
                Vvs::new(vvs_cfg(c, Schedule::Never, &codebook), Criterion::Coupled)
            })
            .unwrap();
            let (got, s, _) = run_gridar(&mut never, 4, script);
            assert_eq!(got, want, "seed {seed}");
            assert_eq!(s.skipped_steps, 0);
            // Skipping on: lossy, but every canvas the verifier and reformulator see is whole
            // rows (the stop is exact) and the final canvases are complete.
            let mut skip = GridAr::<Vvs<'_, 64, 64>, 4>::new(cfg, |c| {
                Vvs::new(
                    vvs_cfg(c, Schedule::Uniform { interval: 2 }, &codebook),
                    Criterion::Coupled,
                )
            })
            .unwrap();
            let mut h = host(4);
            h.stale_features = true;
            h.check_script = Some(Box::new(script));
            let mut storage = Storage::new(skip.dist_rows_needed());
            run_on(&mut skip, &mut h, &mut storage);
            assert!((0..4).all(|c| skip.tokens(c).len() as u32 == N));
            assert_eq!(h.checks.len(), if verifier { 8 } else { 0 });
            skipped += skip.stats().skipped_steps;
        }
    }
    assert!(skipped > 50, "the uniform schedule must skip ({skipped})");
}
