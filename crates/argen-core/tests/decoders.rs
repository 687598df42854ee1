//! Decoder behaviour on the synthetic reference model: equivalences, bounds, accounting.

mod common;

use argen_core::accept::neighbours::build_table;
use argen_core::accept::{Criterion, LanternParams, NeighbourTable};
use argen_core::decode::{
    drive, Config, Decoder, DraftShape, GuidanceMode, NoObserver, Speculative, SpeculativeConfig,
    Stats, Vanilla,
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
