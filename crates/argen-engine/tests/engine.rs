//! The engine on the bundled ShapesWorld model: determinism, model reuse across requests of
//! different sizes, and typed errors.

use argen_engine::{
    Engine, EngineOptions, Error, ErrorKind, Input, Method, MethodOptions, Recorded, Request,
    BUNDLED,
};

const PROMPT: &str = "a red circle left of a blue square";

fn engine(threads: usize) -> Engine {
    Engine::open(BUNDLED, &EngineOptions { threads }).unwrap()
}

fn request(e: &Engine, method: Method, options: &MethodOptions, seed: u64) -> Request {
    let input = Input::Prompt(PROMPT.into());
    let config = e.decoder_config(method, options, seed, &input).unwrap();
    Request::new(input, config)
}

#[test]
fn results_do_not_depend_on_threads_or_earlier_requests() {
    let opts = MethodOptions::default();
    let mut one = engine(1);
    let mut two = engine(2);
    // `two` serves a vanilla request first (models sized for it), then Best-of-3 over SD, which
    // needs more sequences and the drafter: the engine reloads larger and decodes the same.
    let v = two
        .generate(&request(&two, Method::Vanilla, &opts, 3))
        .unwrap();
    let bon = MethodOptions {
        n: 3,
        inner: Some(Method::Sd),
        ..opts
    };
    let a = one.generate(&request(&one, Method::Bon, &bon, 3)).unwrap();
    let b = two.generate(&request(&two, Method::Bon, &bon, 3)).unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.image, b.image);
    assert!(a.stats.draft_forwards > 0 && a.stats.scorer_calls > 0);
    // Back to vanilla on the larger models: the same as before.
    let v2 = two
        .generate(&request(&two, Method::Vanilla, &opts, 3))
        .unwrap();
    assert_eq!(v.tokens, v2.tokens);
    let img = v.image.as_ref().unwrap();
    assert_eq!(
        (img.width, img.height),
        (two.image_size(), two.image_size())
    );
    assert_eq!(img.rgb.len(), img.width * img.height * 3);
    assert_eq!(two.decode_image(&v.tokens).unwrap(), *img);
    assert!(v.alignment.is_some());
    let stats = v.stats_json().unwrap();
    assert_eq!(stats["seed"], 3);
    assert_eq!(stats["config"]["method"], "vanilla");
}

#[test]
fn coupled_speculative_decoding_equals_vanilla() {
    let mut e = engine(1);
    let opts = MethodOptions::default();
    let coupled = MethodOptions {
        criterion: argen_engine::Criterion::Coupled,
        ..opts
    };
    let v = e.generate(&request(&e, Method::Vanilla, &opts, 8)).unwrap();
    let c = e.generate(&request(&e, Method::Sd, &coupled, 8)).unwrap();
    assert_eq!(v.tokens, c.tokens);
    assert!(c.stats.target_forwards < v.stats.target_forwards);
}

#[test]
fn recorded_answers_are_the_runs_answers() {
    // GridAR over SD: target and drafter forwards, batches of candidates, checks,
    // reformulations and scores.
    let opts = MethodOptions {
        inner: Some(Method::Sd),
        ..MethodOptions::default()
    };
    let mut e = engine(1);
    let req = request(&e, Method::Gridar, &opts, 5);
    let plain = e.generate(&req).unwrap();
    let (g, log) = e.generate_recorded(&req).unwrap();
    assert_eq!(g.tokens, plain.tokens, "recording changes nothing");
    let vocab = e.config().vocab_size;
    let (mut forwards, mut rows, mut verdicts, mut reforms, mut scores) = (0, 0, 0, 0, 0);
    for r in &log {
        match r {
            Recorded::Logits { rows: n, values } => {
                assert_eq!(values.len(), n * vocab);
                assert!(values.iter().all(|x| x.is_finite()));
                forwards += 1;
                rows += n;
            }
            Recorded::Verdict(_) => verdicts += 1,
            Recorded::Score(s) => {
                assert!(s.is_finite());
                scores += 1
            }
            Recorded::Reformulated => reforms += 1,
        }
    }
    let s = &g.stats;
    assert_eq!(forwards, g.calls.0 + g.calls.1);
    // Every target and drafter row, plus one row per prefill variant.
    assert!(rows as u32 >= s.target_rows + s.draft_rows, "{rows} rows");
    assert_eq!(verdicts, s.verifier_calls);
    assert_eq!(reforms, s.reformulations);
    assert_eq!(scores, s.scorer_calls);
    assert!(verdicts > 0 && scores > 0);
}

fn kind(r: Result<impl Sized, Error>) -> (ErrorKind, String) {
    let e = r.map(|_| ()).unwrap_err();
    assert!(!e.message().contains('\n'), "{e}");
    (e.kind(), e.message().to_string())
}

#[test]
fn errors_are_typed_one_liners() {
    let (k, m) = kind(Engine::open(
        "/nonexistent/argen",
        &EngineOptions::default(),
    ));
    assert_eq!(k, ErrorKind::Model);
    assert!(m.contains("does not exist"), "{m}");
    let (k, _) = kind(Engine::open(BUNDLED, &EngineOptions { threads: 100_000 }));
    assert_eq!(k, ErrorKind::InvalidArgument);
    assert_eq!(kind(Method::parse("warp")).0, ErrorKind::InvalidArgument);
    assert_eq!(
        kind(MethodOptions::from_json("{\"gama\": 3}")).0,
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        MethodOptions::from_json("{}").unwrap(),
        MethodOptions::default()
    );

    let mut e = engine(1);
    let opts = MethodOptions::default();
    let mut bad = request(&e, Method::Vanilla, &opts, 0);
    bad.input = Input::Class(2);
    let (k, m) = kind(e.generate(&bad));
    assert_eq!(k, ErrorKind::InvalidArgument);
    assert!(m.contains("class-conditional"), "{m}");
    bad.input = Input::Prompt("a purple elephant".into());
    assert!(kind(e.generate(&bad)).1.contains("elephant"));
    bad.input = Input::Caption {
        features: vec![0.0; 3],
        pad: 0,
    };
    assert!(kind(e.generate(&bad)).1.contains("expected"));
    let mut wrong = request(&e, Method::Vanilla, &opts, 0);
    wrong.config.base.tokens = 16;
    assert!(kind(e.generate(&wrong)).1.contains("this model generates"));
    let mut gridar = request(&e, Method::Gridar, &opts, 0);
    gridar.input = Input::Caption {
        features: vec![0.0; e.config().cls_token_num * e.config().caption_dim],
        pad: 0,
    };
    assert!(kind(e.generate(&gridar)).1.contains("reformulation"));
    // The engine keeps working after errors.
    e.generate(&request(&e, Method::Vanilla, &opts, 0)).unwrap();
}
