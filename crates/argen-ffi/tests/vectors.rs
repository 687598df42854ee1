//! Known-answer vectors for the bindings, computed by `argen-core` directly, in
//! `fixtures/ffi_rows_v1.json`.
//!
//! The file holds pseudo-random logit rows (f32, f16 and bf16 bit patterns, some entries masked),
//! processing jobs (plain, two-way and three-way CFG; temperature, top-k, top-p, min-p, greedy)
//! with the weights and keyed draws the core produces, and draft trees (point-mass and sampled
//! drafts) with the verdicts of every acceptance criterion for several seeds. The C-ABI test
//! (`tests/c_abi.rs`) and the Python tests (`python/tests/`) replay it through their bindings and
//! require equality bit for bit — so neither binding can drift from the core unnoticed.
//!
//! This test regenerates the file's content from the core and compares it with the committed
//! file; `ARGEN_BLESS=1 cargo test -p argen-ffi --test vectors` rewrites it (deliberately: a change
//! means the core's outputs changed, i.e. a new scheme version).

mod common;

use argen_core::accept::{GroupedParams, LanternParams, NeighbourTable, NodeKeys};
use argen_core::backend::{DraftTree, TreeJob};
use argen_core::rng::{Key, Purpose};
use argen_core::{
    Backend, Criterion, ProcessJob, RowGuidance, SampleJob, SamplerParams, SliceStorage,
};
use common::{bits_of, case_rows, codebook, criterion_specs, tree_shapes, CriterionSpec, Dt};
use half::{bf16, f16};
use serde_json::{json, Value};

const VOCAB: usize = 257;
const SAMPLES: u32 = 24;

fn params_cycle(i: usize) -> (SamplerParams, Value) {
    let all = [
        (SamplerParams::default(), json!({"temperature": 1.0})),
        (
            SamplerParams {
                temperature: 0.7,
                top_k: Some(20),
                top_p: Some(0.9),
                min_p: None,
            },
            json!({"temperature": 0.7, "top_k": 20, "top_p": 0.9}),
        ),
        (
            SamplerParams {
                temperature: 1.3,
                top_k: None,
                top_p: None,
                min_p: Some(0.05),
            },
            json!({"temperature": 1.3, "min_p": 0.05}),
        ),
        (SamplerParams::GREEDY, json!({"temperature": 0.0})),
        (
            SamplerParams {
                temperature: 1.0,
                top_k: Some(5),
                top_p: None,
                min_p: None,
            },
            json!({"temperature": 1.0, "top_k": 5}),
        ),
    ];
    all[i % all.len()].clone()
}

fn process_any(
    storage: &mut SliceStorage,
    dt: Dt,
    values: &[f32],
    jobs: &[ProcessJob],
) -> argen_core::Result<()> {
    match dt {
        Dt::F32 => storage.backend::<f32>()?.process(values, jobs),
        Dt::F16 => {
            let v: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
            storage.backend::<f16>()?.process(&v, jobs)
        }
        Dt::Bf16 => {
            let v: Vec<bf16> = values.iter().map(|&x| bf16::from_f32(x)).collect();
            storage.backend::<bf16>()?.process(&v, jobs)
        }
    }
}

fn row_weights(storage: &mut SliceStorage, row: u32) -> (u64, Vec<u64>) {
    let b = storage.backend::<f32>().unwrap();
    let d = b.dist(row).unwrap();
    (d.total(), d.weights().to_vec())
}

fn process_cases() -> Vec<Value> {
    let mut out = Vec::new();
    let dts = [Dt::F32, Dt::F16, Dt::Bf16];
    let guidances = ["plain", "two_way", "three_way"];
    let mut i = 0;
    for dt in dts {
        for g in guidances {
            let values = case_rows(i as u64, 3, VOCAB, i % 2 == 1);
            let (params, pjson) = params_cycle(i);
            let (rows, scale) = match g {
                "plain" => (RowGuidance::Plain { row: 0 }, 0.0),
                "two_way" => (
                    RowGuidance::TwoWay {
                        cond: 0,
                        uncond: 1,
                        scale: 4.0,
                    },
                    4.0,
                ),
                _ => (
                    RowGuidance::ThreeWay {
                        cond: 0,
                        uncond: 1,
                        reformulated: 2,
                        w: 5.0,
                    },
                    5.0,
                ),
            };
            let job = ProcessJob {
                rows,
                params,
                out: 1,
            };
            let mut storage = SliceStorage::new(VOCAB, 2);
            process_any(&mut storage, dt, &values, &[job]).unwrap();
            let (total, weights) = row_weights(&mut storage, 1);
            let (seed, stream) = (1000 + i as u64, i as u32);
            let jobs: Vec<SampleJob> = (0..SAMPLES)
                .map(|p| SampleJob {
                    row: 1,
                    key: Key::new(seed, stream, Purpose::SAMPLE, p),
                })
                .collect();
            let mut tokens = vec![0u32; jobs.len()];
            storage
                .backend::<f32>()
                .unwrap()
                .sample(&jobs, &mut tokens)
                .unwrap();
            let mut top = vec![0u32; 5];
            let mut probs = vec![0f64; 5];
            storage
                .backend::<f32>()
                .unwrap()
                .top_k(1, &mut top, &mut probs)
                .unwrap();
            out.push(json!({
                "name": format!("{}_{}_{}", dt.name(), g, i),
                "dtype": dt.name(),
                "rows": 3,
                "bits": bits_of(dt, &values),
                "guidance": g, "cond": 0, "uncond": 1, "reformulated": 2, "scale": scale,
                "params": pjson,
                "out": 1,
                "total": total,
                "weights": weights,
                "seed": seed, "stream": stream,
                "samples": tokens,
                "top_k": top,
                "top_k_probs_bits": probs.iter().map(|p| format!("{:016x}", p.to_bits())).collect::<Vec<_>>(),
            }));
            i += 1;
        }
    }
    out
}

fn tree_inputs() -> Vec<Value> {
    tree_shapes()
        .into_iter()
        .enumerate()
        .map(|(i, (name, parents, sampled))| {
            let (values, tokens) = common::tree_rows(i as u64, VOCAB, &parents, sampled);
            json!({
                "name": name,
                "slots": parents.len() + 1,
                "sampled": sampled,
                "tokens": tokens,
                "parents": parents,
                "bits": bits_of(Dt::F32, &values),
            })
        })
        .collect()
}

fn tree_cases(cb: &[f32], table: &[u32]) -> Vec<Value> {
    let mut out = Vec::new();
    for (shape, (shape_name, parents, sampled)) in tree_shapes().into_iter().enumerate() {
        for spec in criterion_specs() {
            if sampled && spec.relaxed() && common::has_siblings(&parents) {
                continue; // relaxed criteria take one sampled sibling per node
            }
            let n = parents.len();
            let slots = n + 1;
            let (values, tokens) = common::tree_rows(shape as u64, VOCAB, &parents, sampled);
            let mut verdicts = Vec::new();
            for seed in 0..6u64 {
                let mut storage = SliceStorage::new(VOCAB, 2 * slots);
                let jobs: Vec<ProcessJob> = (0..2 * slots as u32)
                    .map(|r| ProcessJob {
                        rows: RowGuidance::Plain { row: r },
                        params: SamplerParams::default(),
                        out: r,
                    })
                    .collect();
                storage
                    .backend::<f32>()
                    .unwrap()
                    .process(&values, &jobs)
                    .unwrap();
                let table = NeighbourTable::new(table, VOCAB, common::TABLE_K).unwrap();
                let criterion = match spec {
                    CriterionSpec::Exact => Criterion::Exact,
                    CriterionSpec::Coupled => Criterion::Coupled,
                    CriterionSpec::Lantern { k, delta, lambda } => {
                        Criterion::Lantern(LanternParams {
                            neighbours: table,
                            k,
                            delta,
                            lambda,
                        })
                    }
                    CriterionSpec::Grouped {
                        window,
                        prob_tol,
                        dist_tol,
                    } => Criterion::Grouped(GroupedParams {
                        embedding: cb,
                        dim: common::DIM,
                        window,
                        prob_tol,
                        dist_tol,
                    }),
                };
                let job = TreeJob {
                    tree: DraftTree {
                        tokens: &tokens,
                        parents: &parents,
                    },
                    target_base: 0,
                    draft_base: sampled.then_some(slots as u32),
                    keys: NodeKeys {
                        seed,
                        stream: 3,
                        position: 40,
                    },
                };
                let mut path = vec![0u32; n];
                let v = storage
                    .backend::<f32>()
                    .unwrap()
                    .verify_tree(&job, &criterion, &mut path)
                    .unwrap();
                verdicts.push(json!({
                    "seed": seed,
                    "path": path[..v.accepted].to_vec(),
                    "token": v.token,
                }));
            }
            out.push(json!({
                "name": format!("{shape_name}_{}", spec.name()),
                "input": shape,
                "criterion": spec.to_json(),
                "stream": 3, "position": 40,
                "verdicts": verdicts,
            }));
        }
    }
    out
}

fn render() -> String {
    let cb = codebook(VOCAB);
    let table =
        argen_core::accept::neighbours::build_table(&cb, common::DIM, common::TABLE_K).unwrap();
    let mut s = String::new();
    s.push_str("{\n\"comment\": \"argen-ffi known answers, computed by argen-core; generated by crates/argen-ffi/tests/vectors.rs (ARGEN_BLESS=1 cargo test -p argen-ffi --test vectors). bits: hex strings of element bit patterns, 8 digits per f32, 4 per f16/bf16, row-major rows x vocab.\",\n");
    s.push_str(&format!(
        "\"vocab\": {VOCAB},\n\"dim\": {},\n\"table_k\": {},\n",
        common::DIM,
        common::TABLE_K
    ));
    s.push_str(&format!(
        "\"codebook_bits\": \"{}\",\n",
        bits_of(Dt::F32, &cb)
    ));
    s.push_str(&format!("\"neighbours\": {},\n", json!(table)));
    let mut section = |name: &str, items: Vec<Value>, last: bool| {
        s.push_str(&format!("\"{name}\": [\n"));
        let n = items.len();
        for (i, it) in items.into_iter().enumerate() {
            s.push_str(&it.to_string());
            s.push_str(if i + 1 < n { ",\n" } else { "\n" });
        }
        s.push_str(if last { "]\n" } else { "],\n" });
    };
    section("process", process_cases(), false);
    section("tree_inputs", tree_inputs(), false);
    section("trees", tree_cases(&cb, &table), true);
    s.push_str("}\n");
    s
}

#[test]
fn fixture_matches_the_core() {
    let text = render();
    let path = common::fixture_path();
    if std::env::var_os("ARGEN_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        println!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (generate it with ARGEN_BLESS=1)",
            path.display()
        )
    });
    for (i, (a, b)) in committed.lines().zip(text.lines()).enumerate() {
        assert!(
            a == b,
            "fixtures/ffi_rows_v1.json line {} differs from the core's output",
            i + 1
        );
    }
    assert_eq!(committed.lines().count(), text.lines().count());
    // The cases must exercise what they claim: some trees accept nodes, some reject.
    let v: Value = serde_json::from_str(&committed).unwrap();
    let verdicts: Vec<&Value> = v["trees"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["verdicts"].as_array().unwrap())
        .collect();
    let accepted: Vec<usize> = verdicts
        .iter()
        .map(|x| x["path"].as_array().unwrap().len())
        .collect();
    assert!(accepted.contains(&0));
    assert!(accepted.iter().any(|&a| a >= 2));
}
