//! Protocol v2: many decoders, one forward. Decoders of different methods and seeds multiplexed
//! into shared batched forwards ([`Mux`]) must each produce exactly the tokens and stats of
//! running alone — keyed randomness makes batching invisible — and the forwards must really be
//! shared.

mod common;

use argen_core::accept::neighbours::build_table;
use argen_core::accept::NeighbourTable;
use argen_core::decode::{
    drive, Action, AnyDecoder, Config, CriterionConfig, Decoder, DecoderConfig, DraftShape, Group,
    GuidanceMode, JacobiInit, JacobiParams, MethodConfig, Mux, NoObserver, Resources,
    ScalingConfig, Schedule, SpeculativeParams, Stats, VvsParams, RELEASE_W,
};
use argen_core::{Error, SamplerParams};
use common::synthetic::{Storage, SyntheticHost, World, V};

const W: u32 = 8;
const N: u32 = 64;
/// Sequences the host holds (classes vary by sequence).
const SEQS: u32 = 24;

fn classes() -> Vec<u32> {
    (0..SEQS).map(|s| s % 5).collect()
}

fn host() -> SyntheticHost {
    let mut h = SyntheticHost::new(World::new(W), &classes());
    h.stale_features = true; // VVS pairs skipped tokens with older features
    h
}

fn config(seed: u64, seq: u32) -> Config {
    Config {
        seed,
        stream: seq % 3,
        seq,
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

const CHAIN: DraftShape = DraftShape::Chain { gamma: 3 };
const TREE: DraftShape = DraftShape::Tree {
    total: 20,
    depth: 4,
    top_k: 4,
};

struct Tables {
    neighbours: Vec<u32>,
    codebook: Vec<f32>,
}

impl Tables {
    fn new() -> Self {
        let world = World::new(W);
        Tables {
            neighbours: build_table(&world.codebook(), 2, 8).unwrap(),
            codebook: world.codebook().iter().map(|x| x - 0.5).collect(),
        }
    }

    fn resources(&self) -> Resources<'_> {
        Resources::none()
            .with_neighbours(NeighbourTable::new(&self.neighbours, V, 8).unwrap())
            .with_codebook(&self.codebook, 2)
    }
}

fn speculative(shape: DraftShape, criterion: CriterionConfig) -> SpeculativeParams {
    SpeculativeParams {
        shape,
        criterion,
        draft_sampler: None,
    }
}

/// Eight requests of seven kinds; sequence ids are disjoint, seeds differ (`salt` shifts them).
fn requests(t: &Tables, salt: u64) -> Vec<AnyDecoder<'_>> {
    let s = |k: u64| k * 7 + salt;
    let lantern = CriterionConfig::Lantern {
        k: 8,
        delta: 0.2,
        lambda: None,
        metric: Default::default(),
    };
    let configs = [
        DecoderConfig::single(config(s(1), 0), MethodConfig::Vanilla),
        DecoderConfig::single(
            config(s(2), 1),
            MethodConfig::Speculative(speculative(CHAIN, CriterionConfig::Exact)),
        ),
        DecoderConfig::single(
            config(s(3), 2),
            MethodConfig::Speculative(speculative(TREE, lantern)),
        ),
        DecoderConfig::single(
            config(s(4), 3),
            MethodConfig::Vvs(VvsParams {
                speculative: speculative(TREE, CriterionConfig::Exact),
                schedule: Schedule::Uniform { interval: 2 },
                warmup: 5,
            }),
        ),
        DecoderConfig::single(
            config(s(5), 4),
            MethodConfig::Jacobi(JacobiParams {
                window: 8,
                init: JacobiInit::Random,
                criterion: CriterionConfig::Coupled,
            }),
        ),
        DecoderConfig {
            base: config(s(8), 5),
            method: MethodConfig::Vanilla,
            scaling: Some(ScalingConfig::BestOfN { n: 4 }),
        },
        DecoderConfig {
            base: config(s(6), 12),
            method: MethodConfig::Speculative(speculative(TREE, CriterionConfig::Coupled)),
            scaling: Some(ScalingConfig::BestOfN { n: 3 }),
        },
        DecoderConfig {
            base: config(s(7), 16),
            method: MethodConfig::Vanilla,
            scaling: Some(ScalingConfig::GridAr {
                n: 3,
                verifier: true,
                reformulate: false,
                w: RELEASE_W,
            }),
        },
    ];
    configs
        .iter()
        .map(|c| AnyDecoder::new(c, &t.resources()).unwrap())
        .collect()
}

fn alone(d: &mut AnyDecoder<'_>) -> Stats {
    let mut storage = Storage::new(d.dist_rows_needed());
    let mut backend = storage.backend();
    drive(d, &mut backend, &mut host(), &mut NoObserver).expect("decoding alone failed")
}

/// What a decoder ended with: stats, result sequence, tokens of every sequence.
fn outcome(d: &AnyDecoder<'_>) -> (Stats, u32, Vec<Vec<u32>>) {
    let seqs = d.sequences().map(|s| d.tokens(s).to_vec()).collect();
    (d.stats(), d.result_seq(), seqs)
}

#[test]
fn multiplexed_decoders_equal_their_standalone_runs() {
    let t = Tables::new();
    for salt in 0..3 {
        let want: Vec<_> = requests(&t, salt)
            .into_iter()
            .map(|mut d| {
                alone(&mut d);
                outcome(&d)
            })
            .collect();
        let mut mux = Mux::new();
        for d in requests(&t, salt) {
            mux.push(d).unwrap();
        }
        let mut h = host();
        let mut storage = Storage::new(mux.dist_rows_needed());
        let mut backend = storage.backend();
        let total = drive(&mut mux, &mut backend, &mut h, &mut NoObserver).unwrap();
        for (i, (d, w)) in mux.decoders().iter().zip(&want).enumerate() {
            assert_eq!(
                &outcome(d),
                w,
                "salt {salt}: request {i} differs from its solo run"
            );
        }
        let sum_forwards = want.iter().map(|w| w.0.target_forwards).sum::<u32>();
        assert_eq!(total.target_forwards, sum_forwards);
        // The forwards were shared: far fewer model calls than the decoders' own forwards.
        let model_calls = h.forwards.get("target").copied().unwrap_or(0);
        assert!(h.actions.get("batch").copied().unwrap_or(0) > 0);
        assert!(
            model_calls * 4 < sum_forwards,
            "salt {salt}: {model_calls} target calls for {sum_forwards} decoder forwards"
        );
        println!(
            "salt {salt}: 8 requests, {sum_forwards} target forwards in {model_calls} model calls, \
             {} drafter calls",
            h.forwards.get("drafter").copied().unwrap_or(0)
        );
    }
}

#[test]
fn requests_can_join_and_leave_a_running_set() {
    let t = Tables::new();
    let all = requests(&t, 11);
    let want: std::collections::BTreeMap<u32, _> = all
        .iter()
        .cloned()
        .map(|mut d| {
            alone(&mut d);
            (d.sequences().start, outcome(&d))
        })
        .collect();
    let mut pending = all;
    pending.reverse();
    let mut mux = Mux::new();
    let mut h = host();
    let mut storage = Storage::new(2048);
    let mut backend = storage.backend();
    let mut finished = Vec::new();
    let mut step = 0u32;
    // A new request joins every 7 actions; finished ones leave at once.
    while !(pending.is_empty() && mux.is_done()) {
        if step % 7 == 0 {
            if let Some(d) = pending.pop() {
                mux.push(d).unwrap();
            }
        }
        step += 1;
        let action = mux.poll();
        if action == Action::Done {
            continue;
        }
        use argen_core::decode::{Answer, Host};
        match h.answer(&action).unwrap() {
            Answer::Logits(l) => mux.handle_logits(&mut backend, l).unwrap(),
            Answer::Verdict(v) => mux.handle_verdict(v).unwrap(),
            Answer::Score(s) => mux.handle_score(s).unwrap(),
            Answer::Reformulated => mux.handle_reformulated().unwrap(),
        }
        for d in mux.take_done() {
            finished.push(d);
        }
        assert!(step < 100_000, "the set does not finish");
    }
    assert_eq!(finished.len(), want.len());
    for d in &finished {
        let first = d.sequences().start;
        assert_eq!(
            outcome(d),
            want[&first],
            "request at sequence {first} differs from its solo run"
        );
    }
}

#[test]
fn overlapping_sequences_and_bad_answers_are_refused() {
    let mut mux = Mux::new();
    let none = Resources::none();
    let vanilla = |seed, seq| {
        AnyDecoder::new(
            &DecoderConfig::single(config(seed, seq), MethodConfig::Vanilla),
            &none,
        )
        .unwrap()
    };
    mux.push(vanilla(1, 3)).unwrap();
    let bon = DecoderConfig {
        base: config(2, 1),
        method: MethodConfig::Vanilla,
        scaling: Some(ScalingConfig::BestOfN { n: 4 }),
    };
    let e = mux.push(AnyDecoder::new(&bon, &none).unwrap()).unwrap_err();
    assert!(matches!(
        e,
        Error::InvalidParameter {
            name: "decoder",
            ..
        }
    ));
    mux.push(vanilla(2, 4)).unwrap();
    // A batch of two prefills wants 4 rows; 3 rows are refused and change nothing.
    let before = format!("{:?}", mux.poll());
    let mut storage = Storage::new(4);
    let mut backend = storage.backend();
    let rows = vec![0.0f32; 3 * V];
    assert!(matches!(
        mux.handle_logits(&mut backend, &rows),
        Err(Error::LengthMismatch {
            expected: 4,
            found: 3
        })
    ));
    assert_eq!(format!("{:?}", mux.poll()), before);
    assert!(matches!(
        mux.handle_score(1.0),
        Err(Error::UnexpectedAnswer { .. })
    ));
    // NaN in the second group's rows: the first decoder takes its rows, the second does not,
    // and the next poll asks exactly for what is missing.
    let mut rows = vec![0.5f32; 4 * V];
    rows[2 * V + 5] = f32::NAN;
    assert!(mux.handle_logits(&mut backend, &rows).is_err());
    assert_eq!(mux.decoders()[0].tokens(3).len(), 1);
    assert_eq!(mux.decoders()[1].tokens(4).len(), 0);
    let Action::Batch(b) = mux.poll() else {
        panic!("expected a batch")
    };
    let groups: Vec<_> = b
        .iter()
        .map(|g| (g.seq(), matches!(g, Group::Prefill(_))))
        .collect();
    assert_eq!(groups, [(3, false), (4, true)]);
}
