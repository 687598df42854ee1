//! Calibration on the tiny random checkpoint (`fixtures/model/tiny`) and the model-call counts
//! that the cost model's predictions rest on (bundled ShapesWorld model).

use std::path::{Path, PathBuf};

use argen_cpu::Cpu;
use argen_engine::calibrate::{calibrate_dir, CalibrateOptions, DEFAULT_ROWS};
use argen_engine::cost_file;
use argen_engine::predict::{predict_nanos, RowHistogram};
use argen_engine::{
    Engine, EngineOptions, Input, Method, MethodOptions, ModelDir, Request, BUNDLED,
};

fn tiny() -> ModelDir {
    ModelDir::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/model/tiny"))
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("argen-calibrate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn calibration_gives_a_valid_profile_for_target_and_drafter() {
    let cpu = Cpu::new(1).unwrap();
    let mut opts = CalibrateOptions::for_cpu(&cpu);
    opts.budget_seconds = 0.0;
    opts.min_rounds = 3;
    let mut lines = Vec::new();
    let file = calibrate_dir(&tiny(), &cpu, &opts, &mut |l: &str| {
        lines.push(l.to_string())
    })
    .unwrap();
    // Tiny: 16 image tokens, 1 condition position → context 1 + 8.
    assert_eq!(file.context, 9);
    assert_eq!((file.device.as_str(), file.threads), ("cpu", 1));
    assert_eq!(file.kernels, cpu.kernel_class().name());
    assert_eq!(file.dtype, "f16");
    assert_eq!(file.version, cost_file::VERSION);
    let rows = |c: &argen_core::cost::CostCurve| c.points().map(|(r, _)| r).collect::<Vec<_>>();
    assert_eq!(rows(&file.profile.target), DEFAULT_ROWS);
    let d = file
        .profile
        .drafter
        .as_ref()
        .expect("the tiny model has a drafter");
    assert_eq!(rows(d), DEFAULT_ROWS);
    // One progress line per point (16 target, 16 drafter, the prefill), after the header and
    // warm-up lines.
    assert_eq!(
        lines.iter().filter(|l| l.contains("median of 3")).count(),
        33
    );
    assert!(file.prefill.is_some_and(|t| t > 0));
    // The file round-trips through cost-profile.json.
    let dir = temp_dir("valid");
    let p = cost_file::path_in(&dir);
    cost_file::write(&p, &file).unwrap();
    assert_eq!(cost_file::read(&p).unwrap(), Some(file));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_options_are_typed_errors() {
    let cpu = Cpu::new(1).unwrap();
    for f in [
        (|o: &mut CalibrateOptions| o.rows = vec![4, 2]) as fn(&mut CalibrateOptions),
        |o| o.rows = vec![0, 2],
        |o| o.rows = vec![],
        |o| o.rows = (1..=17).collect(),
        |o| o.budget_seconds = f64::NAN,
        |o| o.min_rounds = 0,
        |o| o.context = Some(0),
        |o| o.context = Some(16),
    ] {
        let mut opts = CalibrateOptions::for_cpu(&cpu);
        f(&mut opts);
        let e = calibrate_dir(&tiny(), &cpu, &opts, &mut |_: &str| ()).unwrap_err();
        assert_eq!(e.kind(), argen_engine::ErrorKind::InvalidArgument, "{e}");
    }
}

/// The histogram of a decode: deterministic, and tied to the decoder's own counters.
fn counted(
    engine: &mut Engine,
    method: Method,
    seed: u64,
) -> (RowHistogram, argen_core::decode::Stats) {
    let input = Input::Prompt("a red circle left of a blue square".into());
    let config = engine
        .decoder_config(method, &MethodOptions::default(), seed, &input)
        .unwrap();
    let mut h = RowHistogram::new(engine.config().cls_token_num);
    let g = engine
        .generate_with(&Request::new(input, config), &mut h)
        .unwrap();
    (h, g.stats)
}

#[test]
fn model_call_counts_match_the_decoders_counters() {
    let mut one = Engine::open(BUNDLED, &EngineOptions { threads: 1 }).unwrap();
    let mut two = Engine::open(BUNDLED, &EngineOptions { threads: 2 }).unwrap();
    // Vanilla: one prefill of the condition (no tokens, two variants), 63 two-row steps.
    let (v, _) = counted(&mut one, Method::Vanilla, 5);
    assert_eq!(v.prefill.into_iter().collect::<Vec<_>>(), [((0, 2), 1)]);
    assert_eq!(v.target.into_iter().collect::<Vec<_>>(), [(2, 63)]);
    assert!(v.drafter.is_empty());
    for method in [Method::Sd, Method::Vvs, Method::Sjd, Method::Lantern] {
        let (h, s) = counted(&mut one, method, 5);
        let rows = |m: &std::collections::BTreeMap<u32, u64>| -> u64 {
            m.iter().map(|(r, n)| *r as u64 * n).sum()
        };
        let prefill_rows: u64 = h.prefill.iter().map(|((_, v), n)| *v as u64 * n).sum();
        assert_eq!(
            rows(&h.target) + prefill_rows,
            s.target_rows as u64,
            "{method:?}"
        );
        assert_eq!(rows(&h.drafter), s.draft_rows as u64, "{method:?}");
        assert_eq!(
            h.prefill.values().sum::<u64>(),
            s.prefills as u64,
            "{method:?}"
        );
        assert_eq!(h.judge, 0);
        // The same counts on two threads (deterministic decode, deterministic counts).
        assert_eq!(counted(&mut two, method, 5).0, h, "{method:?}");
    }
    // Best-of-N scores its candidates: judge calls, which a profile does not cost.
    let (b, s) = counted(&mut one, Method::Bon, 5);
    assert_eq!(b.judge, s.scorer_calls as u64);
    assert!(b.judge > 0);
}

#[test]
fn a_prediction_is_the_sum_of_the_calls_costs() {
    // On a hand-made profile, vanilla's 63 two-row steps and its 72-row prefill.
    let mut one = Engine::open(BUNDLED, &EngineOptions { threads: 1 }).unwrap();
    let (v, _) = counted(&mut one, Method::Vanilla, 1);
    let profile = argen_core::cost::CostProfile {
        target: argen_core::cost::CostCurve::new(&[
            (2, 300_000),
            (64, 2_000_000),
            (128, 3_000_000),
        ])
        .unwrap(),
        drafter: None,
    };
    // 63 · 300 µs + t(72) = 18.9 ms + (2 ms + 8 · 1 ms / 64 · …): t(72) = 2_000_000 + 1_000_000 · 8 / 64.
    assert_eq!(
        predict_nanos(&profile, None, &v).unwrap(),
        63 * 300_000 + 2_000_000 + 125_000
    );
}
