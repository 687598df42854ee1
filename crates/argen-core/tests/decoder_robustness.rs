//! Decoders under hostile hosts: wrong, malformed and out-of-order answers are typed errors that
//! leave the decoder's state untouched, so answering correctly afterwards gives the clean result.

mod common;

use argen_core::decode::{
    drive, Action, Answer, Config, Decoder, DraftShape, GuidanceMode, Host, NoObserver,
    Speculative, SpeculativeConfig, Vanilla,
};
use argen_core::{Criterion, Error, SamplerParams, SliceBackend};
use common::synthetic::{Storage, SyntheticHost, World, V};

const W: u32 = 5;
const N: u32 = 25;

fn config(seed: u64) -> Config {
    Config {
        seed,
        stream: 0,
        seq: 0,
        tokens: N,
        width: W,
        sampler: SamplerParams {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.95),
            min_p: None,
        },
        guidance: GuidanceMode::TwoWay { scale: 1.5 },
    }
}

fn spec_config(seed: u64, shape: DraftShape) -> SpeculativeConfig {
    SpeculativeConfig {
        base: config(seed),
        draft_sampler: config(seed).sampler,
        shape,
    }
}

/// Drives `dec` to the end; before answering action number `k` of each kind listed, throws a
/// battery of wrong answers at it and checks each is refused without a state change.
fn hostile_run<D: Decoder + Clone + core::fmt::Debug>(dec: &mut D) -> Vec<u32> {
    let mut storage = Storage::new(dec.dist_rows_needed());
    let mut backend = storage.backend();
    let mut host = SyntheticHost::new(World::new(W), &[1]);
    let mut step = 0u32;
    loop {
        let action = dec.poll();
        if action == Action::Done {
            break;
        }
        let kind = action.kind();
        let expected_rows = action.logits_rows();
        let before = format!("{:?}", action);
        let good: Vec<f32> = match host.answer(&action).unwrap() {
            Answer::Logits(l) => l.to_vec(),
            _ => unreachable!("plain decoders only issue forwards"),
        };
        if step % 3 == 1 {
            let rows = expected_rows.unwrap();
            // 1. Wrong kind of answer.
            assert!(matches!(
                dec.handle_verdict(true),
                Err(Error::UnexpectedAnswer { .. })
            ));
            assert!(matches!(
                dec.handle_score(1.0),
                Err(Error::UnexpectedAnswer { .. })
            ));
            assert!(matches!(
                dec.handle_reformulated(),
                Err(Error::UnexpectedAnswer { .. })
            ));
            // 2. Wrong number of rows.
            let short = &good[..(rows - 1) * V];
            assert_eq!(
                dec.handle_logits(&mut backend, short),
                Err(Error::LengthMismatch {
                    expected: rows,
                    found: rows - 1
                })
            );
            let mut long = good.clone();
            long.extend_from_slice(&good[..V]);
            assert!(dec.handle_logits(&mut backend, &long).is_err());
            // 3. NaN / +inf in the last row.
            for bad in [f32::NAN, f32::INFINITY] {
                let mut poisoned = good.clone();
                let n = poisoned.len();
                poisoned[n - 3] = bad;
                assert!(matches!(
                    dec.handle_logits(&mut backend, &poisoned),
                    Err(Error::NonFiniteLogit { .. })
                ));
            }
            // 4. All rows masked.
            let masked = vec![f32::NEG_INFINITY; good.len()];
            assert_eq!(
                dec.handle_logits(&mut backend, &masked),
                Err(Error::AllMasked)
            );
            assert_eq!(
                format!("{:?}", dec.poll()),
                before,
                "{kind}: state changed by a refused answer"
            );
        }
        dec.handle_logits(&mut backend, &good).unwrap();
        step += 1;
        assert!(step <= dec.action_bound());
    }
    assert!(matches!(
        dec.handle_score(0.0),
        Err(Error::UnexpectedAnswer { .. })
    ));
    dec.tokens(dec.result_seq()).to_vec()
}

fn clean_run<D: Decoder>(dec: &mut D) -> Vec<u32> {
    let mut storage = Storage::new(dec.dist_rows_needed());
    let mut backend = storage.backend();
    let mut host = SyntheticHost::new(World::new(W), &[1]);
    drive(dec, &mut backend, &mut host, &mut NoObserver).unwrap();
    dec.tokens(dec.result_seq()).to_vec()
}

#[test]
fn vanilla_survives_a_hostile_host() {
    for seed in 0..5 {
        let clean = clean_run(&mut Vanilla::<32>::new(config(seed)).unwrap());
        let hostile = hostile_run(&mut Vanilla::<32>::new(config(seed)).unwrap());
        assert_eq!(clean, hostile);
    }
}

#[test]
fn speculative_survives_a_hostile_host() {
    for shape in [
        DraftShape::Chain { gamma: 3 },
        DraftShape::Tree {
            total: 12,
            depth: 3,
            top_k: 3,
        },
    ] {
        for criterion in [Criterion::Exact, Criterion::Coupled] {
            for seed in 0..4 {
                let mk =
                    || Speculative::<32, 16>::new(spec_config(seed, shape), criterion).unwrap();
                assert_eq!(clean_run(&mut mk()), hostile_run(&mut mk()), "{shape:?}");
            }
        }
    }
}

#[test]
fn configuration_errors_are_typed() {
    let bad_tokens = Config {
        tokens: 0,
        ..config(0)
    };
    assert!(Vanilla::<32>::new(bad_tokens).is_err());
    assert!(Vanilla::<8>::new(config(0)).is_err()); // capacity below N
    assert!(Vanilla::<32>::new(Config {
        width: 4,
        ..config(0)
    })
    .is_err()); // 4 ∤ 25
    let nan_cfg = Config {
        guidance: GuidanceMode::TwoWay { scale: f32::NAN },
        ..config(0)
    };
    assert!(Vanilla::<32>::new(nan_cfg).is_err());
    let mk = |shape| Speculative::<32, 16>::new(spec_config(0, shape), Criterion::Exact);
    assert!(mk(DraftShape::Chain { gamma: 0 }).is_err());
    assert!(mk(DraftShape::Chain { gamma: 16 }).is_err()); // needs gamma + 1 inputs
    assert!(mk(DraftShape::Tree {
        total: 10,
        depth: 0,
        top_k: 2
    })
    .is_err());
    assert!(mk(DraftShape::Tree {
        total: 10,
        depth: 8,
        top_k: 10
    })
    .is_err()); // pool too big
                // A backend with too few distribution rows is refused at the first answer.
    let mut dec = Speculative::<32, 16>::new(
        spec_config(0, DraftShape::Chain { gamma: 2 }),
        Criterion::Exact,
    )
    .unwrap();
    let mut storage = Storage::new(4);
    let mut backend: SliceBackend<'_, f32> = storage.backend();
    let mut host = SyntheticHost::new(World::new(W), &[1]);
    let Answer::Logits(l) = host.answer(&dec.poll()).unwrap() else {
        unreachable!()
    };
    let l = l.to_vec();
    assert!(matches!(
        dec.handle_logits(&mut backend, &l),
        Err(Error::BufferTooSmall { .. })
    ));
}
