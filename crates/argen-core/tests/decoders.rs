//! Decoder behaviour on the synthetic reference model: equivalences, bounds, accounting.

mod common;

use argen_core::accept::neighbours::build_table;
use argen_core::accept::{Criterion, LanternParams, NeighbourTable};
use argen_core::cost::{CostCurve, CostProfile};
use argen_core::decode::{
    drive, AutoDraft, AutoDraftConfig, AutoSpeculative, Config, Decoder, DraftShape, DraftedStep,
    GuidanceMode, NoObserver, PlanStep, Restartable, Skip, Speculative, SpeculativeConfig, Stats,
    Vanilla, VerifyPolicy,
};
use argen_core::SamplerParams;
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

fn run<D: Decoder>(dec: &mut D) -> (Vec<u32>, Stats) {
    let mut storage = Storage::new(dec.dist_rows_needed());
    let mut backend = storage.backend();
    let mut host = SyntheticHost::new(World::new(W), &[3]);
    let stats = drive(dec, &mut backend, &mut host, &mut NoObserver).expect("decoding failed");
    let tokens = dec.tokens(dec.result_seq()).to_vec();
    assert_eq!(tokens.len() as u32, N);
    (tokens, stats)
}

fn vanilla(seed: u64) -> (Vec<u32>, Stats) {
    run(&mut Vanilla::<64>::new(config(seed)).unwrap())
}

fn speculative(seed: u64, shape: DraftShape, criterion: Criterion<'_>) -> (Vec<u32>, Stats) {
    let cfg = SpeculativeConfig {
        base: config(seed),
        draft_sampler: config(seed).sampler,
        shape,
    };
    run(&mut Speculative::<64, 64>::new(cfg, criterion).unwrap())
}

const CHAIN: DraftShape = DraftShape::Chain { gamma: 4 };
const TREE: DraftShape = DraftShape::Tree {
    total: 20,
    depth: 4,
    top_k: 4,
};

#[test]
fn vanilla_is_deterministic_and_seed_dependent() {
    let (a, sa) = vanilla(1);
    let (b, _) = vanilla(1);
    let (c, _) = vanilla(2);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(sa.target_forwards, N);
    assert_eq!(sa.target_rows, 2 * N);
    assert_eq!(sa.tokens_per_target_forward(), 1.0);
}

#[test]
fn coupled_speculative_equals_vanilla_for_200_seeds() {
    let mut chain_stats = Stats::default();
    let mut tree_stats = Stats::default();
    for seed in 0..200 {
        let (v, _) = vanilla(seed);
        let (c, sc) = speculative(seed, CHAIN, Criterion::Coupled);
        let (t, st) = speculative(seed, TREE, Criterion::Coupled);
        assert_eq!(v, c, "chain, seed {seed}");
        assert_eq!(v, t, "tree, seed {seed}");
        chain_stats.add(&sc);
        tree_stats.add(&st);
    }
    println!(
        "coupled chain γ=4: TPF {:.3}, mean accepted {:.3}; tree 20/4/4: TPF {:.3}, mean accepted {:.3}",
        chain_stats.tokens_per_target_forward(),
        chain_stats.mean_accepted_length(),
        tree_stats.tokens_per_target_forward(),
        tree_stats.mean_accepted_length()
    );
    assert!(
        tree_stats.tokens_per_target_forward() > 1.2,
        "the drafter should help"
    );
}

#[test]
fn speculative_accounting_adds_up() {
    let world = World::new(W);
    let table = build_table(&world.codebook(), 2, 8).unwrap();
    let lantern = Criterion::Lantern(LanternParams {
        neighbours: NeighbourTable::new(&table, 64, 8).unwrap(),
        k: 8,
        delta: 0.2,
        lambda: None,
    });
    for (shape, criterion) in [
        (CHAIN, Criterion::Exact),
        (TREE, Criterion::Exact),
        (TREE, lantern),
        (CHAIN, lantern),
    ] {
        let (_, s) = speculative(7, shape, criterion);
        assert_eq!(s.tokens, N);
        let accepted: u32 = s
            .accepted_hist
            .iter()
            .enumerate()
            .map(|(a, &n)| a as u32 * n)
            .sum();
        // Every target forward commits one token of its own, plus the accepted drafts.
        assert_eq!(
            s.tokens,
            s.target_forwards + accepted,
            "{shape:?} {}",
            criterion.name()
        );
        assert_eq!(s.prefills, 1);
        assert!(s.draft_forwards >= s.verify_steps);
    }
}

/// Two-sample chi-square statistic over categories with at least 10 expected counts (smaller ones
/// pooled), with its degrees of freedom.
fn chi_square(a: &[u32], b: &[u32]) -> (f64, usize) {
    let (mut stat, mut df, mut pool_a, mut pool_b) = (0.0, 0usize, 0u32, 0u32);
    let mut add = |x: u32, y: u32| {
        let (x, y) = (x as f64, y as f64);
        stat += (x - y).powi(2) / (x + y);
        df += 1;
    };
    for (&x, &y) in a.iter().zip(b) {
        if x + y >= 20 {
            add(x, y);
        } else {
            pool_a += x;
            pool_b += y;
        }
    }
    if pool_a + pool_b > 0 {
        add(pool_a, pool_b);
    }
    (stat, df.saturating_sub(1))
}

/// Upper `1e-6` quantile of χ²(k) by the Wilson–Hilferty approximation (z = 4.7534).
fn chi_square_critical(k: usize) -> f64 {
    let k = k.max(1) as f64;
    let h = 2.0 / (9.0 * k);
    k * (1.0 - h + 4.7534 * h.sqrt()).powi(3)
}

/// Per-position token histograms of `runs` decodes.
fn histograms(runs: u64, positions: &[usize], decode: impl Fn(u64) -> Vec<u32>) -> Vec<[u32; 64]> {
    let mut h = vec![[0u32; 64]; positions.len()];
    for seed in 0..runs {
        let t = decode(seed);
        for (k, &p) in positions.iter().enumerate() {
            h[k][t[p] as usize] += 1;
        }
    }
    h
}

/// The marginal test below has power: a relaxed (lossy) rule at δ = 1 is caught.
#[test]
fn marginal_test_detects_a_lossy_decoder() {
    let world = World::new(W);
    let table = build_table(&world.codebook(), 2, 8).unwrap();
    let lossy = Criterion::Lantern(LanternParams {
        neighbours: NeighbourTable::new(&table, 64, 8).unwrap(),
        k: 8,
        delta: 1.0,
        lambda: None,
    });
    let positions = [7usize, 20, 35];
    let van = histograms(3000, &positions, |s| vanilla(s).0);
    let las = histograms(3000, &positions, |s| {
        speculative(s + 1_000_000, TREE, lossy).0
    });
    let worst = positions
        .iter()
        .enumerate()
        .map(|(k, _)| {
            let (stat, df) = chi_square(&van[k], &las[k]);
            stat / chi_square_critical(df)
        })
        .fold(0.0, f64::max);
    println!("lossy decoder: largest chi2 / critical = {worst:.2}");
    assert!(
        worst > 1.0,
        "the marginal test failed to see a lossy decoder"
    );
}

/// Exact speculative decoding samples every position from the same marginal as vanilla decoding.
/// Two-sample chi-square per checked position at α = 1e-6 each (5 positions × 2 shapes = 10
/// tests, family-wise α ≈ 1e-5); seeds are fixed, so the outcome is deterministic.
#[test]
fn exact_speculative_marginals_match_vanilla() {
    const RUNS: u64 = 3000;
    let positions = [1usize, 7, 13, 20, 35];
    for shape in [CHAIN, TREE] {
        let van = histograms(RUNS, &positions, |s| vanilla(s).0);
        // Disjoint seeds, so the two samples are independent.
        let spec = histograms(RUNS, &positions, |s| {
            speculative(s + 1_000_000, shape, Criterion::Exact).0
        });
        for (k, &p) in positions.iter().enumerate() {
            let (stat, df) = chi_square(&van[k], &spec[k]);
            let crit = chi_square_critical(df);
            println!("{shape:?} position {p}: chi2 {stat:.1} on {df} df (critical {crit:.1})");
            assert!(
                stat < crit,
                "{shape:?} position {p}: chi2 {stat:.1} >= {crit:.1}"
            );
        }
    }
}

/// Stopping a speculative decoder ([`Restartable::set_stop`]) limits the draft depth of the steps
/// before the stop, so its tokens are not those of an uninterrupted run — except with Coupled
/// (tests/compose.rs). What must hold for Exact is the output distribution: every verification
/// samples exactly from the target whatever the tree's depth, so a run stopped at GridAR's cuts
/// (6 and 18 tokens) and continued from its KV caches still has vanilla's marginals, at the
/// positions around the cuts too. Same two-sample test as above (5 positions × 2 shapes).
#[test]
fn exact_speculative_stopped_and_continued_keeps_vanilla_marginals() {
    const RUNS: u64 = 3000;
    let positions = [5usize, 6, 7, 18, 19];
    let stopped = |seed: u64, shape: DraftShape| {
        let cfg = SpeculativeConfig {
            base: config(seed),
            draft_sampler: config(seed).sampler,
            shape,
        };
        let mut dec = Speculative::<64, 64>::new(cfg, Criterion::Exact).unwrap();
        let mut storage = Storage::new(dec.dist_rows_needed());
        let mut backend = storage.backend();
        let mut host = SyntheticHost::new(World::new(W), &[3]);
        for stop in [6, 18, N] {
            dec.set_stop(stop).unwrap();
            drive(&mut dec, &mut backend, &mut host, &mut NoObserver).expect("decoding failed");
            assert_eq!(dec.tokens(0).len() as u32, stop);
        }
        dec.tokens(0).to_vec()
    };
    let van = histograms(RUNS, &positions, |s| vanilla(s).0);
    for shape in [CHAIN, TREE] {
        let spec = histograms(RUNS, &positions, |s| stopped(s + 2_000_000, shape));
        for (k, &p) in positions.iter().enumerate() {
            let (stat, df) = chi_square(&van[k], &spec[k]);
            let crit = chi_square_critical(df);
            println!(
                "stopped {shape:?} position {p}: chi2 {stat:.1} on {df} df (critical {crit:.1})"
            );
            assert!(
                stat < crit,
                "{shape:?} position {p}: chi2 {stat:.1} >= {crit:.1}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cost-aware drafting (`argen_core::decode::auto_draft`).

/// Profiles that make the policy never draft, always draft to the maximum depth, or change its
/// mind along the way (its choices depend on the acceptance it measures).
fn profiles() -> [(&'static str, CostProfile); 3] {
    let curve = |p: &[(u32, u64)]| CostCurve::new(p).unwrap();
    [
        (
            "never",
            CostProfile {
                target: curve(&[(2, 1000), (128, 64_000)]),
                drafter: Some(curve(&[(1, 1_000_000_000)])),
            },
        ),
        (
            "deep",
            CostProfile {
                target: curve(&[(2, 1_000_000_000), (128, 1_000_000_000)]),
                drafter: Some(curve(&[(1, 1)])),
            },
        ),
        (
            "mixed",
            CostProfile {
                target: curve(&[(2, 1000), (10, 1300), (128, 20_000)]),
                drafter: Some(curve(&[(2, 120), (64, 400)])),
            },
        ),
    ]
}

fn auto(
    seed: u64,
    shape: DraftShape,
    profile: CostProfile,
    criterion: Criterion<'_>,
) -> (Vec<u32>, Stats) {
    let cfg = AutoDraftConfig {
        spec: SpeculativeConfig {
            base: config(seed),
            draft_sampler: config(seed).sampler,
            shape,
        },
        profile,
    };
    run(&mut AutoSpeculative::<64, 64>::new(cfg, criterion).unwrap())
}

const DEEP_CHAIN: DraftShape = DraftShape::Chain { gamma: 6 };

/// With Coupled the tokens are vanilla's whatever depths the policy chooses: never drafting,
/// always drafting to the maximum, and choices that change along the run (catch-up after
/// plain steps included); chains and trees.
#[test]
fn coupled_auto_equals_vanilla_whatever_it_chooses() {
    for (name, profile) in profiles() {
        for shape in [DEEP_CHAIN, TREE] {
            let mut total = Stats::default();
            for seed in 0..60 {
                let (v, _) = vanilla(seed);
                let (a, s) = auto(seed, shape, profile, Criterion::Coupled);
                assert_eq!(v, a, "{name} {shape:?} seed {seed}");
                let steps: u32 = s.draft_depth_hist.iter().sum();
                assert_eq!(
                    steps + s.prefills,
                    s.target_forwards,
                    "{name}: a step per target run"
                );
                total.add(&s);
            }
            let h = &total.draft_depth_hist;
            println!(
                "auto {name} {shape:?}: depths {:?}, mean depth {:.2}, TPF {:.3}",
                &h[..8],
                total.mean_draft_depth(),
                total.tokens_per_target_forward()
            );
            let steps: u32 = h.iter().sum();
            let max = shape.depth() as usize;
            match name {
                "never" => {
                    assert_eq!(h[0], steps, "never drafts");
                    assert_eq!(total.draft_forwards, 0);
                }
                // Depths below the maximum only where the stop limits them (the last `max`
                // tokens of each image).
                "deep" => assert!(steps - h[max] <= 60 * max as u32, "drafts deep: {h:?}"),
                _ => {
                    // Plain steps beyond the last token of each image, and drafting steps.
                    let drafted: u32 = h[1..].iter().sum();
                    assert!(h[0] > 60 && drafted > 60, "changes its mind: {h:?}");
                }
            }
        }
    }
}

/// The choices are a function of the configuration and seed: two runs agree in every token and
/// counter, and a different profile changes the actions, not the Coupled tokens.
#[test]
fn auto_is_deterministic() {
    let [_, (_, deep), (_, mixed)] = profiles();
    for seed in [3, 11] {
        let a = auto(seed, DEEP_CHAIN, mixed, Criterion::Exact);
        let b = auto(seed, DEEP_CHAIN, mixed, Criterion::Exact);
        assert_eq!(a, b);
        let c = auto(seed, DEEP_CHAIN, deep, Criterion::Exact);
        assert_ne!(a.1, c.1);
    }
}

/// Exact auto samples every position from vanilla's marginal, with the mixed profile (whose
/// depths vary with the verdicts seen so far, plain steps and catch-ups included; the deep
/// profile drafts like the fixed chains of `exact_speculative_marginals_match_vanilla`); the
/// same two-sample chi-square test (5 positions at α = 1e-6).
#[test]
fn exact_auto_marginals_match_vanilla() {
    const RUNS: u64 = 3000;
    let positions = [1usize, 7, 13, 20, 35];
    let van = histograms(RUNS, &positions, |s| vanilla(s).0);
    let [_, _, mixed] = profiles();
    for (name, profile) in [mixed] {
        let spec = histograms(RUNS, &positions, |s| {
            auto(s + 3_000_000, DEEP_CHAIN, profile, Criterion::Exact).0
        });
        for (k, &p) in positions.iter().enumerate() {
            let (stat, df) = chi_square(&van[k], &spec[k]);
            let crit = chi_square_critical(df);
            println!("auto {name} position {p}: chi2 {stat:.1} on {df} df (critical {crit:.1})");
            assert!(
                stat < crit,
                "{name} position {p}: chi2 {stat:.1} >= {crit:.1}"
            );
        }
    }
}

thread_local! {
    /// `(chosen, offered)` node counts of every tree sized by [`Recorded`] on this thread.
    static SIZES: std::cell::RefCell<Vec<(usize, usize)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`AutoDraft`] with its tree-size answers recorded in [`SIZES`].
#[derive(Clone, Debug)]
struct Recorded(AutoDraft);

impl VerifyPolicy for Recorded {
    type Config = AutoDraftConfig;

    fn build(
        cfg: AutoDraftConfig,
        max_inputs: usize,
    ) -> argen_core::Result<(SpeculativeConfig, Self)> {
        let (spec, policy) = AutoDraft::build(cfg, max_inputs)?;
        Ok((spec, Recorded(policy)))
    }

    fn decide(&mut self, step: &DraftedStep<'_>) -> Option<Skip> {
        self.0.decide(step)
    }

    fn plan_depth(&mut self, step: &PlanStep) -> u32 {
        self.0.plan_depth(step)
    }

    fn observe(&mut self, drafted: u32, accepted: u32) {
        self.0.observe(drafted, accepted)
    }

    fn plan_nodes(&mut self, values: &[f64]) -> usize {
        let n = self.0.plan_nodes(values);
        SIZES.with(|s| s.borrow_mut().push((n, values.len())));
        n
    }
}

/// Auto-tree sizes each tree from its nodes' EAGLE-2 values (none, some or all of the offered
/// nodes, as the values and costs say) and Coupled still gives vanilla's tokens, over many
/// seeds; the same run twice makes the same choices.
#[test]
fn coupled_auto_tree_sizes_vary_and_equal_vanilla() {
    let [_, (_, deep), (_, mixed)] = profiles();
    // A second row is dear (+40 %), more are nearly free: a tree is worth verifying only if
    // its best node is likely to be accepted.
    let step = CostProfile {
        target: CostCurve::new(&[(2, 1000), (4, 1400), (128, 1600)]).unwrap(),
        drafter: Some(CostCurve::new(&[(1, 1)]).unwrap()),
    };
    for (name, profile) in [("deep", deep), ("mixed", mixed), ("step", step)] {
        SIZES.with(|s| s.borrow_mut().clear());
        let cfg = |seed| AutoDraftConfig {
            spec: SpeculativeConfig {
                base: config(seed),
                draft_sampler: config(seed).sampler,
                shape: TREE,
            },
            profile,
        };
        for seed in 0..100 {
            let (v, _) = vanilla(seed);
            let mut dec =
                Speculative::<64, 64, Recorded>::new(cfg(seed), Criterion::Coupled).unwrap();
            let (a, s) = run(&mut dec);
            assert_eq!(v, a, "{name} seed {seed}");
            let mut again =
                Speculative::<64, 64, Recorded>::new(cfg(seed), Criterion::Coupled).unwrap();
            assert_eq!(run(&mut again), (a, s), "{name} seed {seed}: replay");
        }
        let sizes = SIZES.with(|s| s.borrow().clone());
        let none = sizes.iter().filter(|&&(n, _)| n == 0).count();
        let some = sizes.iter().filter(|&&(n, m)| n > 0 && n < m).count();
        let all = sizes.iter().filter(|&&(n, m)| n == m).count();
        println!(
            "{name}: {} trees: none {none}, some {some}, all {all}",
            sizes.len()
        );
        assert!(sizes.iter().all(|&(n, m)| n <= m && m <= 20));
        match name {
            // Flat target: every node with a positive value is worth its (free) row.
            "deep" => assert_eq!(all, sizes.len()),
            // Rows dearer beyond 10: larger trees are cut.
            "mixed" => assert!(some > 100 && all > 100, "{name}: {some} / {all}"),
            // The second row is dear: trees whose best value is low are not verified at all.
            _ => assert!(none > 0 && all > 100, "{name}: {none} / {all}"),
        }
    }
}
