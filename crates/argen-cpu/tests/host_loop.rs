//! The generic host loop on the real runtime: every core decoder runs end to end on the tiny
//! fixture models, and the Coupled speculative decoders reproduce vanilla decoding exactly — which
//! only holds if tree attention, KV commits and EAGLE feature plumbing are all right.

mod common;

use argen_core::accept::{Criterion, LanternParams, NeighbourTable};
use argen_core::decode::{
    candidate_config, drive, BestOfN, Config, Decoder, DraftShape, GuidanceMode, NoObserver,
    Speculative, SpeculativeConfig, Stats, Vanilla,
};
use argen_core::{SamplerParams, SliceStorage};
use argen_cpu::{Cpu, Drafter, Gpt};
use argen_model::{host_capacity, Condition, GptConfig, ModelHost};
use common::fixture;

const TREE: usize = 16;
/// Sequences the host holds (Best-of-N candidates).
const SEQS: usize = 4;

struct Models {
    gpt: Gpt,
    drafter: Drafter,
    cfg: GptConfig,
}

fn models(case: &str) -> Models {
    let cpu = Cpu::new(1).unwrap();
    let cfg = GptConfig::load(fixture(case, "gpt.json")).unwrap();
    let cap = host_capacity(&cfg, SEQS, TREE);
    let gpt = Gpt::load(&cpu, &cfg, fixture(case, "gpt.safetensors"), cap).unwrap();
    let drafter = Drafter::load(&cpu, &cfg, fixture(case, "drafter.safetensors"), cap).unwrap();
    Models { gpt, drafter, cfg }
}

fn config(cfg: &GptConfig, seed: u64) -> Config {
    Config {
        seed,
        stream: 0,
        seq: 0,
        tokens: cfg.block_size as u32,
        width: cfg.grid() as u32,
        sampler: SamplerParams {
            temperature: 1.0,
            top_k: Some(32),
            top_p: None,
            min_p: None,
        },
        guidance: GuidanceMode::TwoWay { scale: 3.0 },
    }
}

fn run<D: Decoder>(m: &mut Models, dec: &mut D) -> (Vec<u32>, Stats) {
    let mut storage = SliceStorage::new(m.cfg.vocab_size, dec.dist_rows_needed());
    let mut backend = storage.backend::<f32>().unwrap();
    let mut judge = ZeroScore;
    let conds: Vec<_> = (0..SEQS as u32)
        .map(|s| (Condition::Class(Some(3 + s)), Condition::Class(None)))
        .collect();
    let mut host =
        ModelHost::new(&mut m.gpt, Some(&mut m.drafter), Some(&mut judge), &conds).unwrap();
    let stats = drive(dec, &mut backend, &mut host, &mut NoObserver).unwrap();
    (dec.tokens(dec.result_seq()).to_vec(), stats)
}

/// Scores every image 0 (Best-of-N then keeps candidate 0).
struct ZeroScore;

impl argen_model::Judge for ZeroScore {
    fn check(&mut self, _: u32, _: u32, _: &[u32]) -> Result<bool, String> {
        Ok(true)
    }
    fn score(&mut self, _: u32, _: &[u32]) -> Result<f32, String> {
        Ok(0.0)
    }
    fn reformulate(&mut self, _: u32, _: u32, _: &[u32]) -> Result<Condition, String> {
        Err("no reformulator".into())
    }
}

/// Batched forwards (protocol v2) on the real runtime: Best-of-4 over tree speculative decoders
/// runs every candidate's target verification and drafter steps as one forward each, and every
/// candidate must equal its solo run — tokens and stats — so a row's logits may not depend on
/// the rows beside it, and the batched KV commits and EAGLE features must be right.
#[test]
fn batched_forwards_equal_solo_runs_on_the_real_runtime() {
    let mut m = models("c2i_tiny");
    let shape = DraftShape::Tree {
        total: 10,
        depth: 3,
        top_k: 3,
    };
    for (seed, criterion) in [(1, Criterion::Coupled), (2, Criterion::Exact)] {
        let spec = |cfg: Config| {
            Speculative::<256, TREE>::new(
                SpeculativeConfig {
                    base: cfg,
                    draft_sampler: cfg.sampler,
                    shape,
                },
                criterion,
            )
        };
        let base = config(&m.cfg, seed);
        let mut bon = BestOfN::<_, SEQS>::new(base, SEQS as u32, spec).unwrap();
        let (_, total) = run(&mut m, &mut bon);
        let mut sum = Stats::default();
        for c in 0..SEQS as u32 {
            let cfg = candidate_config(&base, c).unwrap();
            let (tokens, stats) = run(&mut m, &mut spec(cfg).unwrap());
            assert_eq!(
                bon.tokens(c),
                &tokens[..],
                "seed {seed}, {criterion:?}: candidate {c} differs from its solo run"
            );
            assert_eq!(bon.candidates()[c as usize].stats(), stats, "candidate {c}");
            sum.add(&stats);
        }
        sum.scorer_calls += SEQS as u32;
        assert_eq!(total, sum);
    }
}

#[test]
fn coupled_speculative_equals_vanilla_on_the_real_runtime() {
    let mut m = models("c2i_tiny");
    let shapes = [
        DraftShape::Chain { gamma: 3 },
        DraftShape::Tree {
            total: 10,
            depth: 3,
            top_k: 3,
        },
    ];
    let mut tpf = [Stats::default(), Stats::default()];
    for seed in 0..12 {
        let cfg = config(&m.cfg, seed);
        let (vanilla, vs) = run(&mut m, &mut Vanilla::<256>::new(cfg).unwrap());
        assert_eq!(vs.target_forwards, m.cfg.block_size as u32);
        for (k, shape) in shapes.into_iter().enumerate() {
            let sc = SpeculativeConfig {
                base: cfg,
                draft_sampler: cfg.sampler,
                shape,
            };
            let mut dec = Speculative::<256, TREE>::new(sc, Criterion::Coupled).unwrap();
            let (tokens, stats) = run(&mut m, &mut dec);
            assert_eq!(tokens, vanilla, "seed {seed}, {shape:?}");
            tpf[k].add(&stats);
        }
    }
    println!(
        "tiny random c2i: chain TPF {:.2}, tree TPF {:.2} (random weights: little to accept)",
        tpf[0].tokens_per_target_forward(),
        tpf[1].tokens_per_target_forward()
    );
}

#[test]
fn exact_and_lantern_run_end_to_end() {
    let mut m = models("c2i_tiny");
    let v = m.cfg.vocab_size;
    // A latent table from a deterministic pseudo-codebook (the tiny VQ's codebook is smaller than
    // this GPT's vocabulary).
    let codebook: Vec<f32> = (0..v * 4)
        .map(|i| ((i * 37 % 101) as f32 / 101.0) - 0.5)
        .collect();
    let table = argen_core::accept::neighbours::build_table(&codebook, 4, 6).unwrap();
    let lantern = Criterion::Lantern(LanternParams {
        neighbours: NeighbourTable::new(&table, v, 6).unwrap(),
        k: 6,
        delta: 0.3,
        lambda: None,
    });
    for criterion in [Criterion::Exact, lantern] {
        for shape in [
            DraftShape::Chain { gamma: 4 },
            DraftShape::Tree {
                total: 12,
                depth: 4,
                top_k: 3,
            },
        ] {
            let cfg = config(&m.cfg, 5);
            let sc = SpeculativeConfig {
                base: cfg,
                draft_sampler: cfg.sampler,
                shape,
            };
            let mut dec = Speculative::<256, TREE>::new(sc, criterion).unwrap();
            let (tokens, stats) = run(&mut m, &mut dec);
            assert_eq!(tokens.len(), m.cfg.block_size);
            assert!(tokens.iter().all(|&t| (t as usize) < v));
            assert_eq!(stats.tokens, m.cfg.block_size as u32);
        }
    }
}
