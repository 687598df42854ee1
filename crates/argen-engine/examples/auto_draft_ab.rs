//! Interleaved wall-clock comparison of `--draft auto` with vanilla decoding and fixed chains.
//!
//! ```text
//! cargo run --release -p argen-engine --example auto_draft_ab -- MODEL_DIR [THREADS] [ROUNDS] [INPUTS] [SEEDS] [CFG]
//! ```
//!
//! `MODEL_DIR` must hold a `cost-profile.json` (`argen calibrate --model MODEL_DIR --threads
//! THREADS`). Every round decodes the same `INPUTS` inputs (default 8: ShapesWorld prompts of the
//! bench's held-out set, or classes 0–7) × `SEEDS` seeds (default 4) with every method (guidance
//! scale `CFG`, default 4; 1 = no guidance, one model row per input), switching method after each image and
//! rotating the method order per image, so that a changing machine load (this machine is shared)
//! falls on all methods alike. Prints ms/img per method per round and over all rounds, the ratio
//! to vanilla, what auto chose, and the load average before and after. Images are not VQ-decoded
//! (as in `argen bench`, whose ms/img excludes the final decode).

use std::time::Instant;

use argen_engine::{
    cost_file, Draft, Engine, EngineOptions, Input, Method, MethodOptions, Request, Stats,
};
use argen_model::ModelType;

const PROMPTS: [&str; 8] = [
    "a red circle below a red triangle",
    "two triangles and a circle",
    "a circle",
    "a yellow circle",
    "a yellow circle, a yellow triangle and a yellow square",
    "a red square and a red triangle",
    "two green circles and a purple triangle",
    "a purple triangle and a red triangle",
];

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .ok_or("usage: auto_draft_ab MODEL_DIR [THREADS] [ROUNDS]")?;
    let threads: usize = args
        .get(2)
        .map_or(Ok(1), |s| s.parse())
        .map_err(|e| format!("{e}"))?;
    let rounds: usize = args
        .get(3)
        .map_or(Ok(3), |s| s.parse())
        .map_err(|e| format!("{e}"))?;
    let n_inputs: usize = args
        .get(4)
        .map_or(Ok(8), |s| s.parse())
        .map_err(|e| format!("{e}"))?;
    let seeds: u64 = args
        .get(5)
        .map_or(Ok(4), |s| s.parse())
        .map_err(|e| format!("{e}"))?;
    let profile = cost_file::read(&cost_file::path_in(std::path::Path::new(dir)))?
        .ok_or("the model directory has no cost-profile.json (run `argen calibrate`)")?;
    let mut engine = Engine::open(dir, &EngineOptions { threads }).map_err(|e| e.to_string())?;
    let inputs: Vec<Input> = match engine.config().model_type {
        ModelType::T2i => PROMPTS
            .iter()
            .take(n_inputs)
            .map(|p| Input::Prompt(p.to_string()))
            .collect(),
        _ => (0..n_inputs as u32).map(Input::Class).collect(),
    };
    let cfg: f32 = args
        .get(6)
        .map_or(Ok(4.0), |s| s.parse())
        .map_err(|e| format!("{e}"))?;
    let base = MethodOptions {
        cfg,
        cost_profile: Some(profile.profile),
        ..MethodOptions::default()
    };
    let chain = |gamma| MethodOptions {
        draft: Draft::Chain,
        gamma,
        ..base
    };
    let methods: Vec<(String, MethodOptions)> = vec![
        ("vanilla".into(), base),
        (
            "sd auto (exact, γ ≤ 4)".into(),
            MethodOptions {
                draft: Draft::Auto,
                ..base
            },
        ),
        (
            "coupled auto (γ ≤ 4)".into(),
            MethodOptions {
                draft: Draft::Auto,
                criterion: argen_engine::Criterion::Coupled,
                ..base
            },
        ),
        ("exact chain γ=1".into(), chain(1)),
        ("exact chain γ=2".into(), chain(2)),
        ("exact chain γ=3".into(), chain(3)),
        ("exact chain γ=4".into(), chain(4)),
    ];
    let method_of = |i: usize| if i == 0 { Method::Vanilla } else { Method::Sd };
    // Requests, built once; the engine is sized for all of them before timing.
    let mut requests = Vec::new();
    for (i, (_, opts)) in methods.iter().enumerate() {
        let mut per = Vec::new();
        for input in &inputs {
            for seed in 0..seeds {
                let dc = engine
                    .decoder_config(method_of(i), opts, seed, input)
                    .map_err(|e| e.to_string())?;
                per.push(Request {
                    image: false,
                    score: false,
                    ..Request::new(input.clone(), dc)
                });
            }
        }
        requests.push(per);
    }
    let configs: Vec<_> = requests.iter().map(|r| r[0].config).collect();
    engine.reserve(&configs).map_err(|e| e.to_string())?;
    // Warm-up: one image per method.
    for per in &requests {
        engine.generate(&per[0]).map_err(|e| e.to_string())?;
    }
    let images = requests[0].len();
    // `by_image[k][m]`: image `k` of method `m`.
    let by_image: Vec<Vec<&Request>> = (0..images)
        .map(|k| requests.iter().map(|per| &per[k]).collect())
        .collect();
    let mut total = vec![0f64; methods.len()];
    let mut stats = vec![Stats::default(); methods.len()];
    println!(
        "model {dir}, {threads} thread(s), cfg {cfg}, {} inputs × {seeds} seeds, {rounds} rounds; load before: {}",
        inputs.len(),
        loadavg()
    );
    for round in 0..rounds {
        let mut wall = vec![0f64; methods.len()];
        for (k, row) in by_image.iter().enumerate() {
            for j in 0..methods.len() {
                let m = (j + k + round) % methods.len();
                let t = Instant::now();
                let g = engine.generate(row[m]).map_err(|e| e.to_string())?;
                wall[m] += t.elapsed().as_secs_f64();
                if round == 0 {
                    stats[m].add(&g.stats);
                }
            }
        }
        let line: Vec<String> = methods
            .iter()
            .zip(&wall)
            .map(|((n, _), w)| format!("{n} {:.2}", 1e3 * w / images as f64))
            .collect();
        println!(
            "round {round} (load {}): ms/img {}",
            loadavg(),
            line.join(", ")
        );
        for (t, w) in total.iter_mut().zip(&wall) {
            *t += w;
        }
    }
    let n = (images * rounds) as f64;
    println!(
        "\n| method | ms/img | vs vanilla | TPF | mean draft depth | steps per depth 0/1/2/3/4 |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    for ((name, _), (t, s)) in methods.iter().zip(total.iter().zip(&stats)) {
        let h = &s.draft_depth_hist;
        println!(
            "| {name} | {:.2} | {:.3}× | {:.2} | {:.2} | {}/{}/{}/{}/{} |",
            1e3 * t / n,
            total[0] / t,
            s.tokens_per_target_forward(),
            s.mean_draft_depth(),
            h[0],
            h[1],
            h[2],
            h[3],
            h[4]
        );
    }
    println!("load after: {}", loadavg());
    Ok(())
}
