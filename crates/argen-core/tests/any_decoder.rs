//! `AnyDecoder`: one decoder type built from a serialisable `DecoderConfig`.
//!
//! * every method through `AnyDecoder` issues the same actions and produces the same tokens,
//!   stats and result as the concrete decoder built by hand;
//! * `DecoderConfig::requirements` is sufficient (a run never exceeds it, and it runs with
//!   exactly `dist_rows` distribution rows) and tight where documented;
//! * configurations round-trip through JSON, the documented JSON shape parses, and the stable
//!   encoding tells configurations apart;
//! * bad configurations and missing resources are typed errors.

mod common;

use std::collections::BTreeMap;

use argen_core::accept::neighbours::build_table;
use argen_core::accept::{Criterion, GroupedParams, LanternParams, Metric, NeighbourTable};
use argen_core::cost::{CostCurve, CostProfile};
use argen_core::decode::{
    drive, Action, AnyDecoder, AutoParams, AutoSpeculative, BestOfN, Config, CriterionConfig,
    Decoder, DecoderConfig, DraftShape, GridAr, GridArConfig, Group, GuidanceMode, Jacobi,
    JacobiInit, JacobiParams, MethodConfig, NeighbourNeeds, Observer, Requirements, Resources,
    ScalingConfig, Schedule, Speculative, SpeculativeParams, Stats, Vanilla, Vvs, VvsConfig,
    VvsParams, MAX_CANDIDATES, MAX_INPUTS, MAX_TOKENS, RELEASE_W,
};
use argen_core::trace::config_hash;
use argen_core::{Error, SamplerParams};
use common::synthetic::{Storage, SyntheticHost, World, V};

const W: u32 = 8;
const N: u32 = 64;
const SEQS: u32 = 8;

fn host() -> SyntheticHost {
    let classes: Vec<u32> = (0..SEQS).map(|s| s % 5).collect();
    let mut h = SyntheticHost::new(World::new(W), &classes);
    h.stale_features = true; // VVS pairs skipped tokens with older features
    h
}

fn base(seed: u64) -> Config {
    Config {
        seed,
        stream: 1,
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

const CHAIN: DraftShape = DraftShape::Chain { gamma: 3 };
const TREE: DraftShape = DraftShape::Tree {
    total: 20,
    depth: 4,
    top_k: 4,
};
const LANTERN: CriterionConfig = CriterionConfig::Lantern {
    k: 6,
    delta: 0.2,
    lambda: None,
    metric: Metric::Normalised,
};
const GROUPED: CriterionConfig = CriterionConfig::Grouped {
    window: 4,
    prob_tol: 0.15,
    dist_tol: 0.05,
};

fn spec(shape: DraftShape, criterion: CriterionConfig) -> MethodConfig {
    MethodConfig::Speculative(SpeculativeParams {
        shape,
        criterion,
        draft_sampler: None,
    })
}

/// Cost-aware drafting up to `shape` under a profile near the break-even point (plain steps and
/// drafts of several depths).
fn auto(shape: DraftShape, criterion: CriterionConfig) -> MethodConfig {
    let curve = |p: &[(u32, u64)]| CostCurve::new(p).unwrap();
    MethodConfig::AutoSpeculative(AutoParams {
        speculative: SpeculativeParams {
            shape,
            criterion,
            draft_sampler: None,
        },
        profile: CostProfile {
            target: curve(&[(2, 1000), (10, 1300), (128, 20_000)]),
            drafter: Some(curve(&[(2, 120), (64, 400)])),
        },
    })
}

fn vvs(schedule: Schedule) -> MethodConfig {
    MethodConfig::Vvs(VvsParams {
        speculative: SpeculativeParams {
            shape: TREE,
            criterion: CriterionConfig::Exact,
            draft_sampler: None,
        },
        schedule,
        warmup: 5,
    })
}

fn jacobi(init: JacobiInit, criterion: CriterionConfig) -> MethodConfig {
    MethodConfig::Jacobi(JacobiParams {
        window: 8,
        init,
        criterion,
    })
}

fn gridar(n: u32, reformulate: bool) -> Option<ScalingConfig> {
    Some(ScalingConfig::GridAr {
        n,
        verifier: true,
        reformulate,
        w: RELEASE_W,
    })
}

/// The tables the criteria and schedules borrow.
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

    fn table(&self) -> NeighbourTable<'_> {
        NeighbourTable::new(&self.neighbours, V, 8).unwrap()
    }

    fn resources(&self) -> Resources<'_> {
        Resources::none()
            .with_neighbours(self.table())
            .with_embedding(&self.codebook, 2)
            .with_codebook(&self.codebook, 2)
    }

    /// The criterion built by hand (independently of `CriterionConfig::build`).
    fn criterion(&self, c: CriterionConfig) -> Criterion<'_> {
        match c {
            CriterionConfig::Exact => Criterion::Exact,
            CriterionConfig::Coupled => Criterion::Coupled,
            CriterionConfig::Lantern {
                k, delta, lambda, ..
            } => Criterion::Lantern(LanternParams {
                neighbours: self.table(),
                k: k as usize,
                delta,
                lambda,
            }),
            CriterionConfig::Grouped {
                window,
                prob_tol,
                dist_tol,
            } => Criterion::Grouped(GroupedParams {
                embedding: &self.codebook,
                dim: 2,
                window: window as usize,
                prob_tol,
                dist_tol,
            }),
            _ => unreachable!("no other criterion in these tests"),
        }
    }
}

/// Every method and composition the tests cover, with seeds that differ per case.
fn cases() -> Vec<(&'static str, DecoderConfig)> {
    let one = |name, seed, method| (name, DecoderConfig::single(base(seed), method));
    let scaled = |name, seed, method, scaling| {
        (
            name,
            DecoderConfig {
                base: base(seed),
                method,
                scaling,
            },
        )
    };
    vec![
        one("vanilla", 1, MethodConfig::Vanilla),
        one("sd chain exact", 2, spec(CHAIN, CriterionConfig::Exact)),
        one("sd tree exact", 3, spec(TREE, CriterionConfig::Exact)),
        one("sd tree coupled", 4, spec(TREE, CriterionConfig::Coupled)),
        one("lantern tree", 5, spec(TREE, LANTERN)),
        one("gsd tree", 6, spec(TREE, GROUPED)),
        one("vvs uniform", 7, vvs(Schedule::Uniform { interval: 2 })),
        one("vvs dynamic", 8, vvs(Schedule::DYNAMIC_PAPER)),
        one(
            "jacobi random coupled",
            9,
            jacobi(JacobiInit::Random, CriterionConfig::Coupled),
        ),
        one(
            "jacobi copy-left exact",
            10,
            jacobi(JacobiInit::CopyLeft, CriterionConfig::Exact),
        ),
        one("auto chain exact", 19, auto(CHAIN, CriterionConfig::Exact)),
        one("auto tree lantern", 20, auto(TREE, LANTERN)),
        scaled(
            "bon auto chain coupled",
            21,
            auto(CHAIN, CriterionConfig::Coupled),
            Some(ScalingConfig::BestOfN { n: 2 }),
        ),
        scaled(
            "gridar auto chain exact",
            22,
            auto(CHAIN, CriterionConfig::Exact),
            gridar(2, false),
        ),
        scaled(
            "bon vanilla",
            11,
            MethodConfig::Vanilla,
            Some(ScalingConfig::BestOfN { n: 4 }),
        ),
        scaled(
            "bon sd tree",
            12,
            spec(TREE, CriterionConfig::Exact),
            Some(ScalingConfig::BestOfN { n: 3 }),
        ),
        scaled(
            "bon lantern",
            13,
            spec(TREE, LANTERN),
            Some(ScalingConfig::BestOfN { n: 2 }),
        ),
        scaled(
            "bon gsd chain",
            14,
            spec(CHAIN, GROUPED),
            Some(ScalingConfig::BestOfN { n: 2 }),
        ),
        scaled(
            "bon vvs",
            15,
            vvs(Schedule::Uniform { interval: 2 }),
            Some(ScalingConfig::BestOfN { n: 2 }),
        ),
        scaled(
            "bon jacobi",
            16,
            jacobi(JacobiInit::Random, CriterionConfig::Exact),
            Some(ScalingConfig::BestOfN { n: 3 }),
        ),
        scaled(
            "gridar reformulate",
            17,
            MethodConfig::Vanilla,
            gridar(4, true),
        ),
        scaled(
            "gridar prompt kept",
            18,
            MethodConfig::Vanilla,
            gridar(3, false),
        ),
    ]
}

/// What a run did: every action (debug form), stats, result sequence, tokens of every sequence.
#[derive(Debug, PartialEq)]
struct Outcome {
    actions: Vec<String>,
    stats: Stats,
    result: u32,
    tokens: Vec<Vec<u32>>,
}

struct Record(Vec<String>);

impl Observer for Record {
    fn before(&mut self, action: &Action<'_>) {
        self.0.push(format!("{action:?}"));
    }
    fn after<D: Decoder>(&mut self, _: &D) {}
}

fn run<D: Decoder>(d: &mut D) -> Outcome {
    let mut storage = Storage::new(d.dist_rows_needed());
    let mut backend = storage.backend();
    let mut rec = Record(Vec::new());
    let stats = drive(d, &mut backend, &mut host(), &mut rec).expect("decoding failed");
    Outcome {
        actions: rec.0,
        stats,
        result: d.result_seq(),
        tokens: d.sequences().map(|s| d.tokens(s).to_vec()).collect(),
    }
}

/// The concrete decoder of `cfg`, built by hand, run.
fn concrete(cfg: &DecoderConfig, t: &Tables) -> Outcome {
    let b = cfg.base;
    match (cfg.method, cfg.scaling) {
        (MethodConfig::Vanilla, None) => run(&mut Vanilla::<64>::new(b).unwrap()),
        (MethodConfig::Speculative(s), None) => {
            run(&mut Speculative::<64, 64>::new(s.config(b), t.criterion(s.criterion)).unwrap())
        }
        (MethodConfig::Vvs(v), None) => run(&mut Vvs::<64, 64>::new(
            VvsConfig {
                spec: v.speculative.config(b),
                schedule: v.schedule,
                warmup: v.warmup,
                codebook: &t.codebook,
                dim: 2,
            },
            t.criterion(v.speculative.criterion),
        )
        .unwrap()),
        (MethodConfig::AutoSpeculative(a), None) => run(&mut AutoSpeculative::<64, 64>::new(
            a.config(b),
            t.criterion(a.speculative.criterion),
        )
        .unwrap()),
        (MethodConfig::Jacobi(j), None) => {
            run(&mut Jacobi::<64, 64>::new(j.config(b), t.criterion(j.criterion)).unwrap())
        }
        (MethodConfig::Vanilla, Some(ScalingConfig::BestOfN { n })) => {
            run(&mut BestOfN::<Vanilla<64>, 4>::new(b, n, Vanilla::new).unwrap())
        }
        (MethodConfig::Speculative(s), Some(ScalingConfig::BestOfN { n })) => {
            run(&mut BestOfN::<Speculative<64, 64>, 4>::new(b, n, |c| {
                Speculative::new(s.config(c), t.criterion(s.criterion))
            })
            .unwrap())
        }
        (MethodConfig::Vvs(v), Some(ScalingConfig::BestOfN { n })) => {
            run(&mut BestOfN::<Vvs<64, 64>, 4>::new(b, n, |c| {
                Vvs::new(
                    VvsConfig {
                        spec: v.speculative.config(c),
                        schedule: v.schedule,
                        warmup: v.warmup,
                        codebook: &t.codebook,
                        dim: 2,
                    },
                    t.criterion(v.speculative.criterion),
                )
            })
            .unwrap())
        }
        (MethodConfig::AutoSpeculative(a), Some(ScalingConfig::BestOfN { n })) => {
            run(&mut BestOfN::<AutoSpeculative<64, 64>, 4>::new(b, n, |c| {
                AutoSpeculative::new(a.config(c), t.criterion(a.speculative.criterion))
            })
            .unwrap())
        }
        (
            MethodConfig::AutoSpeculative(a),
            Some(ScalingConfig::GridAr {
                n,
                verifier,
                reformulate,
                w,
            }),
        ) => run(&mut GridAr::<AutoSpeculative<64, 64>, 4>::new(
            GridArConfig {
                base: b,
                n,
                verifier,
                reformulate,
                w,
            },
            |c| AutoSpeculative::new(a.config(c), t.criterion(a.speculative.criterion)),
        )
        .unwrap()),
        (MethodConfig::Jacobi(j), Some(ScalingConfig::BestOfN { n })) => {
            run(&mut BestOfN::<Jacobi<64, 64>, 4>::new(b, n, |c| {
                Jacobi::new(j.config(c), t.criterion(j.criterion))
            })
            .unwrap())
        }
        (
            MethodConfig::Vanilla,
            Some(ScalingConfig::GridAr {
                n,
                verifier,
                reformulate,
                w,
            }),
        ) => run(&mut GridAr::<Vanilla<64>, 4>::vanilla(GridArConfig {
            base: b,
            n,
            verifier,
            reformulate,
            w,
        })
        .unwrap()),
        (
            MethodConfig::Speculative(s),
            Some(ScalingConfig::GridAr {
                n,
                verifier,
                reformulate,
                w,
            }),
        ) => run(&mut GridAr::<Speculative<64, 64>, 4>::new(
            GridArConfig {
                base: b,
                n,
                verifier,
                reformulate,
                w,
            },
            |c| Speculative::new(s.config(c), t.criterion(s.criterion)),
        )
        .unwrap()),
        (
            MethodConfig::Vvs(v),
            Some(ScalingConfig::GridAr {
                n,
                verifier,
                reformulate,
                w,
            }),
        ) => run(&mut GridAr::<Vvs<64, 64>, 4>::new(
            GridArConfig {
                base: b,
                n,
                verifier,
                reformulate,
                w,
            },
            |c| {
                Vvs::new(
                    VvsConfig {
                        spec: v.speculative.config(c),
                        schedule: v.schedule,
                        warmup: v.warmup,
                        codebook: &t.codebook,
                        dim: 2,
                    },
                    t.criterion(v.speculative.criterion),
                )
            },
        )
        .unwrap()),
        other => panic!("no concrete decoder for {other:?}"),
    }
}

#[test]
fn every_method_equals_its_concrete_decoder() {
    let t = Tables::new();
    for (name, cfg) in cases() {
        let want = concrete(&cfg, &t);
        let mut d = AnyDecoder::new(&cfg, &t.resources()).unwrap();
        let got = run(&mut d);
        assert_eq!(got.tokens, want.tokens, "{name}: tokens");
        assert_eq!(got.stats, want.stats, "{name}: stats");
        assert_eq!(got.result, want.result, "{name}: result sequence");
        assert_eq!(got.actions, want.actions, "{name}: actions");
        assert_eq!(
            got.tokens.iter().map(Vec::len).sum::<usize>(),
            (N * cfg.scaling.map_or(1, |s| s.n())) as usize,
            "{name}: every sequence complete"
        );
    }
}

/// What a run used, measured action by action.
#[derive(Debug, Default)]
struct Usage {
    inputs: u32,
    pending: u32,
    rows: u32,
    variants: u32,
    seqs: std::collections::BTreeSet<u32>,
    drafter: bool,
    kinds: BTreeMap<&'static str, u32>,
    /// Drafter entries pending in the current step, per sequence.
    step: BTreeMap<u32, u32>,
}

impl Observer for Usage {
    fn before(&mut self, action: &Action<'_>) {
        *self.kinds.entry(action.kind()).or_default() += 1;
        if let Some(rows) = action.logits_rows() {
            self.rows = self.rows.max(rows as u32);
        }
        if let Action::Check(c) = action {
            self.seqs.insert(c.seq);
        }
        if let Action::Score(s) = action {
            self.seqs.insert(s.seq);
        }
        if let Action::Reformulate(r) = action {
            self.seqs.insert(r.seq);
        }
        for g in action.groups() {
            self.seqs.insert(g.seq());
            self.variants = self.variants.max(g.guidance().variants() as u32);
            // Inputs of this sequence in this forward (a prefill answers for one).
            let inputs = (g.logits_rows() / g.guidance().variants()) as u32;
            self.inputs = self.inputs.max(inputs);
            let pending = match g {
                Group::Draft(r) => {
                    self.drafter = true;
                    let step = self.step.entry(r.seq).or_default();
                    if r.new_step {
                        *step = 0;
                    }
                    let now = *step + inputs;
                    *step += inputs - r.commit;
                    now
                }
                _ => inputs,
            };
            self.pending = self.pending.max(pending);
        }
    }
    fn after<D: Decoder>(&mut self, _: &D) {}
}

#[test]
fn requirements_are_sufficient_and_tight_where_documented() {
    let t = Tables::new();
    // Exact maxima: vanilla, Jacobi, speculative without skipping, and their candidates.
    let tight = [
        "vanilla",
        "sd chain exact",
        "sd tree exact",
        "sd tree coupled",
        "lantern tree",
        "gsd tree",
        "jacobi random coupled",
        "jacobi copy-left exact",
        "bon vanilla",
        "bon sd tree",
        "bon jacobi",
        "gridar reformulate",
        "gridar prompt kept",
    ];
    for (name, cfg) in cases() {
        let req = cfg.requirements().unwrap();
        let mut d = AnyDecoder::new(&cfg, &t.resources()).unwrap();
        assert_eq!(req.dist_rows as usize, d.dist_rows_needed(), "{name}");
        assert_eq!(
            d.sequences(),
            cfg.base.seq..cfg.base.seq + req.sequences,
            "{name}"
        );
        // Exactly the required distribution rows.
        let mut storage = Storage::new(req.dist_rows as usize);
        let mut backend = storage.backend();
        let mut u = Usage::default();
        drive(&mut d, &mut backend, &mut host(), &mut u).unwrap();
        assert!(u.inputs <= req.inputs_per_run, "{name}: {u:?} vs {req:?}");
        assert!(u.pending <= req.pending, "{name}: {u:?} vs {req:?}");
        assert!(u.rows <= req.logits_rows, "{name}: {u:?} vs {req:?}");
        assert!(u.variants <= req.variants, "{name}: {u:?} vs {req:?}");
        assert!(req.inputs_per_run <= req.pending, "{name}");
        assert!(
            u.seqs.iter().all(|s| (0..req.sequences).contains(s)),
            "{name}: {u:?}"
        );
        if name.contains("auto") {
            // Cost-aware drafting may never draft (for GridAR's three guidance variants this
            // profile rules drafting out, and the plain decoder runs): the drafter is allowed.
            assert!(!u.drafter || req.drafter, "{name}");
        } else {
            assert_eq!(u.drafter, req.drafter, "{name}");
        }
        assert_eq!(u.kinds.contains_key("check"), req.check, "{name}");
        assert_eq!(u.kinds.contains_key("score"), req.score, "{name}");
        assert_eq!(
            u.kinds.contains_key("reformulate"),
            req.reformulate,
            "{name}"
        );
        assert_eq!(u.variants, req.variants, "{name}");
        assert_eq!(u.seqs.len() as u32, req.sequences, "{name}");
        if tight.contains(&name) {
            assert_eq!(u.inputs, req.inputs_per_run, "{name}: inputs not tight");
            assert_eq!(u.rows, req.logits_rows, "{name}: rows not tight");
            assert_eq!(u.pending, req.pending, "{name}: pending not tight");
        }
    }
}

#[test]
fn requirements_name_the_resources_and_follow_the_rules() {
    let req = |method, scaling| {
        DecoderConfig {
            base: base(0),
            method,
            scaling,
        }
        .requirements()
        .unwrap()
    };
    let r = req(spec(TREE, LANTERN), None);
    assert_eq!(
        r.neighbours,
        Some(NeighbourNeeds {
            k: 6,
            metric: Metric::Normalised
        })
    );
    assert!(!r.embedding && !r.codebook && r.drafter && !r.score);
    let r = req(spec(CHAIN, GROUPED), Some(ScalingConfig::BestOfN { n: 5 }));
    assert!(r.embedding && r.neighbours.is_none() && r.score && !r.check);
    // Chain γ = 3: target runs of 4 inputs, 2 rows each, five candidates.
    assert_eq!((r.inputs_per_run, r.logits_rows), (4, 5 * 4 * 2));
    assert_eq!(r.dist_rows, 5 * 2 * MAX_INPUTS as u32);
    let r = req(vvs(Schedule::DYNAMIC_PAPER), None);
    assert!(r.codebook && !r.embedding);
    // A tree of 20 nodes after the last token and up to 4 skipped ones.
    assert_eq!(r.inputs_per_run, 1 + 4 + 20);
    assert!(!req(vvs(Schedule::Uniform { interval: 2 }), None).codebook);
    let r = req(MethodConfig::Vanilla, gridar(4, true));
    assert_eq!(
        (
            r.variants,
            r.logits_rows,
            r.sequences,
            r.check,
            r.reformulate
        ),
        (3, 12, 4, true, true)
    );
    let r = req(
        jacobi(JacobiInit::Random, CriterionConfig::Exact),
        Some(ScalingConfig::BestOfN { n: 2 }),
    );
    assert_eq!(
        (r.inputs_per_run, r.dist_rows, r.drafter),
        (9, 2 * 4 * MAX_INPUTS as u32, false)
    );
}

#[test]
fn bad_configs_and_missing_resources_are_typed_errors() {
    let t = Tables::new();
    let param = |cfg: DecoderConfig| -> &'static str {
        let e = cfg.validate().unwrap_err();
        assert_eq!(cfg.requirements().unwrap_err(), e);
        assert_eq!(AnyDecoder::new(&cfg, &t.resources()).unwrap_err(), e);
        match e {
            Error::InvalidParameter { name, .. } => name,
            other => panic!("{other:?}"),
        }
    };
    let single = |method| DecoderConfig::single(base(0), method);
    let scaled = |method, scaling| DecoderConfig {
        base: base(0),
        method,
        scaling: Some(scaling),
    };
    let bon = |n| scaled(MethodConfig::Vanilla, ScalingConfig::BestOfN { n });
    assert_eq!(param(bon(0)), "n");
    assert_eq!(param(bon(MAX_CANDIDATES as u32 + 1)), "n");
    let mut big = single(MethodConfig::Vanilla);
    big.base.tokens = MAX_TOKENS as u32 + 8;
    assert_eq!(param(big), "tokens");
    let mut ragged = single(MethodConfig::Vanilla);
    ragged.base.width = 7;
    assert_eq!(param(ragged), "width");
    let mut hot = single(MethodConfig::Vanilla);
    hot.base.sampler.temperature = f32::NAN;
    assert!(hot.validate().is_err());
    let shape = |s| spec(s, CriterionConfig::Exact);
    assert_eq!(
        param(single(shape(DraftShape::Chain { gamma: 0 }))),
        "gamma"
    );
    assert_eq!(
        param(single(shape(DraftShape::Chain {
            gamma: MAX_INPUTS as u32
        }))),
        "gamma"
    );
    for tree in [(64, 4, 4), (20, 0, 4), (20, 4, 0), (20, 4, 16)] {
        let s = DraftShape::Tree {
            total: tree.0,
            depth: tree.1,
            top_k: tree.2,
        };
        assert_eq!(param(single(shape(s))), "tree", "{tree:?}");
    }
    let lantern = |k, delta, lambda| {
        spec(
            TREE,
            CriterionConfig::Lantern {
                k,
                delta,
                lambda,
                metric: Metric::Raw,
            },
        )
    };
    assert_eq!(param(single(lantern(0, 0.2, None))), "lantern_k");
    assert_eq!(param(single(lantern(6, 1.5, None))), "delta");
    assert_eq!(param(single(lantern(6, 0.2, Some(0.5)))), "lambda");
    let grouped = |window, prob_tol, dist_tol| {
        spec(
            TREE,
            CriterionConfig::Grouped {
                window,
                prob_tol,
                dist_tol,
            },
        )
    };
    assert_eq!(param(single(grouped(0, 0.1, 0.1))), "window");
    assert_eq!(param(single(grouped(17, 0.1, 0.1))), "window");
    assert_eq!(param(single(grouped(7, 2.0, 0.1))), "prob_tol");
    assert_eq!(param(single(grouped(7, 0.1, -1.0))), "dist_tol");
    assert_eq!(
        param(single(vvs(Schedule::Uniform { interval: 0 }))),
        "interval"
    );
    let dynamic = |threshold, alpha| vvs(Schedule::Dynamic { threshold, alpha });
    assert_eq!(param(single(dynamic(2.0, 0.9))), "threshold");
    assert_eq!(param(single(dynamic(0.5, 0.0))), "alpha");
    let mut wide = VvsParams {
        speculative: SpeculativeParams {
            shape: DraftShape::Tree {
                total: 60,
                depth: 4,
                top_k: 8,
            },
            criterion: CriterionConfig::Exact,
            draft_sampler: None,
        },
        schedule: Schedule::Never,
        warmup: 5,
    };
    assert_eq!(param(single(MethodConfig::Vvs(wide))), "T");
    wide.speculative.shape = DraftShape::Tree {
        total: 59,
        depth: 4,
        top_k: 8,
    };
    single(MethodConfig::Vvs(wide)).validate().unwrap();
    let window = |window| {
        MethodConfig::Jacobi(JacobiParams {
            window,
            init: JacobiInit::Random,
            criterion: CriterionConfig::Exact,
        })
    };
    assert_eq!(param(single(window(0))), "window");
    assert_eq!(param(single(window(MAX_INPUTS as u32))), "window");
    // GridAR: restartable candidates only (Jacobi is not), finite w, four rows.
    assert!(!window(8).restartable() && MethodConfig::Vanilla.restartable());
    assert_eq!(param(scaled(window(8), gridar(2, true).unwrap())), "inner");
    let grid_w = |w| ScalingConfig::GridAr {
        n: 2,
        verifier: true,
        reformulate: false,
        w,
    };
    assert_eq!(param(scaled(MethodConfig::Vanilla, grid_w(f32::NAN))), "w");
    let mut flat = scaled(MethodConfig::Vanilla, grid_w(RELEASE_W));
    flat.base.tokens = 3 * W;
    assert_eq!(param(flat), "tokens");
    let mut edge = bon(4);
    edge.base.seq = u32::MAX - 2;
    assert_eq!(param(edge), "seq");

    // Missing tables name the resource; present but wrong ones are the criterion's error.
    let missing = |cfg: DecoderConfig, res: Resources<'_>| {
        cfg.validate().unwrap();
        match AnyDecoder::new(&cfg, &res).unwrap_err() {
            Error::MissingResource { resource, .. } => resource,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        missing(single(spec(TREE, LANTERN)), Resources::none()),
        "neighbours"
    );
    assert_eq!(
        missing(
            scaled(spec(CHAIN, GROUPED), ScalingConfig::BestOfN { n: 2 }),
            Resources::none().with_neighbours(t.table())
        ),
        "embedding"
    );
    assert_eq!(
        missing(single(vvs(Schedule::DYNAMIC_PAPER)), Resources::none()),
        "codebook"
    );
    let e = Error::MissingResource {
        resource: "codebook",
        needed_by: "vvs dynamic schedule",
    };
    assert_eq!(
        e.to_string(),
        "missing resource `codebook`: the vvs dynamic schedule needs it (decode::Resources)"
    );
    // Methods without tables build without resources.
    for method in [
        MethodConfig::Vanilla,
        spec(TREE, CriterionConfig::Exact),
        vvs(Schedule::Uniform { interval: 2 }),
        window(4),
    ] {
        AnyDecoder::new(&single(method), &Resources::none()).unwrap();
    }
    // A LANTERN k beyond the table's k is the criterion's own error, at construction.
    let too_many = single(lantern(9, 0.2, None));
    assert!(matches!(
        AnyDecoder::new(&too_many, &t.resources()),
        Err(Error::InvalidParameter {
            name: "lantern_k",
            ..
        })
    ));
}

#[test]
fn configs_round_trip_through_json() {
    for (name, cfg) in cases() {
        let json = serde_json::to_string(&cfg).unwrap();
        let back: DecoderConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg, "{name}: {json}");
        let req = cfg.requirements().unwrap();
        serde_json::to_value(req).unwrap();
    }
    let mut with_sampler = DecoderConfig::single(base(3), spec(CHAIN, LANTERN));
    if let MethodConfig::Speculative(s) = &mut with_sampler.method {
        s.draft_sampler = Some(SamplerParams {
            temperature: 0.5,
            top_k: None,
            top_p: Some(0.9),
            min_p: Some(0.05),
        });
    }
    let json = serde_json::to_string(&with_sampler).unwrap();
    assert_eq!(
        serde_json::from_str::<DecoderConfig>(&json).unwrap(),
        with_sampler
    );
}

/// The example of the module documentation (`decode::any`, "JSON shape").
const DOC_EXAMPLE: &str = r#"{
  "base": {
    "seed": 7, "stream": 0, "seq": 0, "tokens": 256, "width": 16,
    "sampler": { "temperature": 1.0, "top_k": null, "top_p": null, "min_p": null },
    "guidance": { "two_way": { "scale": 4.0 } }
  },
  "method": { "speculative": {
    "shape": { "tree": { "total": 59, "depth": 4, "top_k": 10 } },
    "criterion": { "lantern": { "k": 1000, "delta": 0.2, "lambda": null, "metric": "normalised" } },
    "draft_sampler": null
  } },
  "scaling": { "best_of_n": { "n": 4 } }
}"#;

#[test]
fn the_documented_json_shape_parses() {
    let cfg: DecoderConfig = serde_json::from_str(DOC_EXAMPLE).unwrap();
    let want = DecoderConfig {
        base: Config {
            seed: 7,
            stream: 0,
            seq: 0,
            tokens: 256,
            width: 16,
            sampler: SamplerParams::default(),
            guidance: GuidanceMode::TwoWay { scale: 4.0 },
        },
        method: spec(
            DraftShape::EAGLE2_LLAMAGEN,
            CriterionConfig::Lantern {
                k: 1000,
                delta: 0.2,
                lambda: None,
                metric: Metric::Normalised,
            },
        ),
        scaling: Some(ScalingConfig::BestOfN { n: 4 }),
    };
    assert_eq!(cfg, want);
    // The other spellings of the shape.
    let v: serde_json::Value = serde_json::from_str(
        r#"{"base": {"seed": 1, "stream": 0, "seq": 2, "tokens": 64, "width": 8,
             "sampler": {}, "guidance": "none"},
            "method": {"vvs": {"speculative": {"shape": {"chain": {"gamma": 4}},
                                               "criterion": "coupled"},
                               "schedule": {"dynamic": {"threshold": 0.65, "alpha": 0.9}},
                               "warmup": 5}}}"#,
    )
    .unwrap();
    let cfg: DecoderConfig = serde_json::from_value(v).unwrap();
    assert_eq!(cfg.scaling, None);
    assert_eq!(cfg.base.guidance, GuidanceMode::None);
    assert_eq!(cfg.base.sampler, SamplerParams::default());
    assert!(matches!(
        cfg.method,
        MethodConfig::Vvs(VvsParams {
            schedule: Schedule::Dynamic { .. },
            warmup: 5,
            ..
        })
    ));
    let grid = serde_json::to_value(DecoderConfig {
        base: base(0),
        method: jacobi(JacobiInit::CopyLeft, CriterionConfig::Exact),
        scaling: gridar(2, false),
    })
    .unwrap();
    assert_eq!(grid["scaling"]["gridar"]["n"], 2);
    assert_eq!(grid["method"]["jacobi"]["init"], "copy_left");
    assert_eq!(grid["method"]["jacobi"]["criterion"], "exact");
    assert_eq!(grid["base"]["guidance"]["two_way"]["scale"], 2.0);
    // An absent metric is the default (normalised).
    let old = DOC_EXAMPLE.replace(", \"metric\": \"normalised\"", "");
    assert_ne!(old, DOC_EXAMPLE);
    assert_eq!(serde_json::from_str::<DecoderConfig>(&old).unwrap(), want);
    // Typos are errors, not silently ignored settings.
    let typo = DOC_EXAMPLE
        .replace("\"warmup\"", "\"x\"")
        .replace("\"delta\"", "\"detla\"");
    assert!(serde_json::from_str::<DecoderConfig>(&typo).is_err());
    let unknown = DOC_EXAMPLE.replace("best_of_n", "best_of");
    assert!(serde_json::from_str::<DecoderConfig>(&unknown).is_err());
}

#[test]
fn the_stable_encoding_tells_configs_apart_and_is_pinned() {
    let all = cases();
    let hashes: std::collections::BTreeSet<u64> = all.iter().map(|(_, c)| config_hash(c)).collect();
    assert_eq!(hashes.len(), all.len());
    let one = DecoderConfig::single(base(0), MethodConfig::Vanilla);
    let mut seeded = one;
    seeded.base.seed = 1;
    assert_ne!(config_hash(&one), config_hash(&seeded));
    // λ and the neighbour metric each change the digest.
    let lantern = |lambda, metric| {
        config_hash(&DecoderConfig::single(
            base(0),
            spec(
                TREE,
                CriterionConfig::Lantern {
                    k: 6,
                    delta: 0.2,
                    lambda,
                    metric,
                },
            ),
        ))
    };
    let plain = lantern(None, Metric::Normalised);
    assert_eq!(
        plain,
        config_hash(&DecoderConfig::single(base(0), spec(TREE, LANTERN)))
    );
    assert_ne!(lantern(Some(1.0), Metric::Normalised), plain);
    assert_ne!(lantern(None, Metric::Raw), plain);
    // The documented example's digest: a change to the encoding shows here.
    let doc: DecoderConfig = serde_json::from_str(DOC_EXAMPLE).unwrap();
    assert_eq!(config_hash(&doc), PINNED);
}

/// FNV-1a of the documented example's stable encoding.
const PINNED: u64 = 3_768_095_348_891_985_600;

#[test]
fn requirements_struct_is_the_one_documented() {
    // Guards the field list hosts rely on (a new field must be added here on purpose).
    let r: Requirements = DecoderConfig::single(base(0), MethodConfig::Vanilla)
        .requirements()
        .unwrap();
    let v = serde_json::to_value(r).unwrap();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "check",
            "codebook",
            "dist_rows",
            "drafter",
            "embedding",
            "inputs_per_run",
            "logits_rows",
            "neighbours",
            "pending",
            "reformulate",
            "score",
            "sequences",
            "tokens",
            "variants"
        ]
    );
    assert_eq!(
        (r.inputs_per_run, r.pending, r.logits_rows, r.dist_rows),
        (1, 1, 2, 1)
    );
}

#[test]
fn cost_profile_json_round_trips_and_rejects_bad_curves() {
    use argen_core::cost::{CostCurve, CostProfile};
    let p = CostProfile {
        target: CostCurve::new(&[(2, 300_000), (8, 420_000)]).unwrap(),
        drafter: Some(CostCurve::new(&[(1, 50_000)]).unwrap()),
    };
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(
        json,
        r#"{"target":[[2,300000],[8,420000]],"drafter":[[1,50000]]}"#
    );
    assert_eq!(serde_json::from_str::<CostProfile>(&json).unwrap(), p);
    let no_drafter: CostProfile = serde_json::from_str(r#"{"target":[[1,5]]}"#).unwrap();
    assert_eq!(no_drafter.drafter, None);
    for bad in [
        r#"{"target":[]}"#,
        r#"{"target":[[0,5]]}"#,
        r#"{"target":[[2,5],[1,6]]}"#,
        r#"{"target":[[1,0]]}"#,
        r#"{"target":[[1,5]],"extra":1}"#,
    ] {
        assert!(serde_json::from_str::<CostProfile>(bad).is_err(), "{bad}");
    }
}
