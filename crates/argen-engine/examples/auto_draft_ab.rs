//! Interleaved comparison of `--draft auto` with vanilla decoding and fixed shapes, on the
//! process's CPU clock, with confidence intervals.
//!
//! ```text
//! cargo run --release -p argen-engine --example auto_draft_ab -- MODEL_DIR [THREADS] [ROUNDS] [INPUTS] [SEEDS] [CFG] [METHODS]
//! ```
//!
//! `MODEL_DIR` must hold a `cost-profile.json` (`argen calibrate --model MODEL_DIR --threads
//! THREADS`). Every round decodes the same `INPUTS` inputs (default 8: ShapesWorld prompts of the
//! bench's held-out set, or classes 0–7) × `SEEDS` seeds (default 4) with every method (guidance
//! scale `CFG`, default 4; 1 = no guidance, one model row per input), switching method after each
//! image in a pseudo-random order drawn afresh per image, so that a changing machine load (this machine
//! is shared) falls on all methods alike. `METHODS` is a comma-separated list of keys (vanilla
//! always runs): `auto`, `cauto` (Coupled), `autotree`, `cautotree`, `g1`…`g4` (Exact chains),
//! `cg1`, `tree`, `ctree` (59/4/10); default `auto,cauto,g1,g2,g3,g4`.
//!
//! Times are the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`; with one worker thread the
//! time the decoding ran, not the time it waited for a core other engineers' jobs held), and
//! wall-clock time next to it. Per round the speed ratio vanilla ÷ method is taken over the
//! same images; the table gives the ratio of the CPU-time sums with a 95 % confidence interval
//! from the paired images (ratio estimator, Student t), the mean per-round ratio with its
//! interval, what auto chose, and the verified rows per target call. Images are not VQ-decoded
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
    let tree = |draft, criterion| MethodOptions {
        draft,
        criterion,
        ..base
    };
    use argen_engine::Criterion::{Coupled, Exact};
    let all: Vec<(&str, String, MethodOptions)> = vec![
        ("vanilla", "vanilla".into(), base),
        (
            "vanilla2",
            "vanilla again (A/A: the noise floor)".into(),
            base,
        ),
        (
            "auto",
            "sd auto (exact, γ ≤ 4)".into(),
            tree(Draft::Auto, Exact),
        ),
        (
            "cauto",
            "coupled auto (γ ≤ 4)".into(),
            tree(Draft::Auto, Coupled),
        ),
        (
            "autotree",
            "sd auto-tree (exact)".into(),
            tree(Draft::AutoTree, Exact),
        ),
        (
            "cautotree",
            "coupled auto-tree".into(),
            tree(Draft::AutoTree, Coupled),
        ),
        ("g1", "exact chain γ=1".into(), chain(1)),
        ("g2", "exact chain γ=2".into(), chain(2)),
        ("g3", "exact chain γ=3".into(), chain(3)),
        ("g4", "exact chain γ=4".into(), chain(4)),
        (
            "cg1",
            "coupled chain γ=1".into(),
            MethodOptions {
                criterion: Coupled,
                ..chain(1)
            },
        ),
        (
            "tree",
            "exact tree 59/4/10".into(),
            tree(Draft::Tree, Exact),
        ),
        (
            "ctree",
            "coupled tree 59/4/10".into(),
            tree(Draft::Tree, Coupled),
        ),
    ];
    // Which methods (argument 7, comma-separated keys; vanilla always first).
    let keys = args
        .get(7)
        .map_or("vanilla,auto,cauto,g1,g2,g3,g4", |s| s.as_str());
    let mut methods: Vec<(String, MethodOptions)> = vec![(all[0].1.clone(), all[0].2)];
    for key in keys.split(',').filter(|k| *k != "vanilla") {
        let (_, name, opts) = all
            .iter()
            .find(|(k, _, _)| *k == key)
            .ok_or(format!("unknown method key {key}"))?;
        methods.push((name.clone(), *opts));
    }
    let is_vanilla: Vec<bool> = std::iter::once(true)
        .chain(
            keys.split(',')
                .filter(|k| *k != "vanilla")
                .map(|k| k == "vanilla2"),
        )
        .collect();
    let method_of = |i: usize| {
        if is_vanilla[i] {
            Method::Vanilla
        } else {
            Method::Sd
        }
    };
    let cpu_now = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + 1e-9 * ts.tv_nsec as f64
    };
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
    let mut total_cpu = vec![0f64; methods.len()];
    let mut per_round: Vec<Vec<f64>> = Vec::new();
    // CPU seconds of every image, in the same order for every method (pairs).
    let mut per_image: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
    let mut stats = vec![Stats::default(); methods.len()];
    println!(
        "model {dir}, {threads} thread(s), cfg {cfg}, {} inputs × {seeds} seeds, {rounds} rounds; load before: {}",
        inputs.len(),
        loadavg()
    );
    for round in 0..rounds {
        let mut wall = vec![0f64; methods.len()];
        let mut cpu = vec![0f64; methods.len()];
        for (k, row) in by_image.iter().enumerate() {
            // A fresh pseudo-random order per image (Fisher–Yates, SplitMix64 from round and
            // image): each method follows every other equally often, so what the previous image
            // left in the caches (the same model's weights, or the drafter's) favours none.
            let order = argen_engine::round_order::round_order(
                methods.len(),
                ((round as u64) << 32) ^ k as u64,
            );
            for &m in &order {
                let c = cpu_now();
                let t = Instant::now();
                let g = engine.generate(row[m]).map_err(|e| e.to_string())?;
                wall[m] += t.elapsed().as_secs_f64();
                let spent = cpu_now() - c;
                cpu[m] += spent;
                per_image[m].push(spent);
                if round == 0 {
                    stats[m].add(&g.stats);
                }
            }
        }
        let line: Vec<String> = methods
            .iter()
            .zip(&cpu)
            .map(|((n, _), w)| format!("{n} {:.2}", 1e3 * w / images as f64))
            .collect();
        per_round.push(cpu.clone());
        println!(
            "round {round} (load {}): CPU ms/img {}",
            loadavg(),
            line.join(", ")
        );
        for (t, w) in total.iter_mut().zip(&wall) {
            *t += w;
        }
        for (t, w) in total_cpu.iter_mut().zip(&cpu) {
            *t += w;
        }
    }
    let n = (images * rounds) as f64;
    println!(
        "\n| method | CPU ms/img | vanilla ÷ method (CPU, ± 95 % CI over image pairs) | same, mean ± 95 % CI over rounds | wall ms/img | vs vanilla (wall) | TPF | mean draft depth | steps per depth 0/1/2/3/4 | verified rows per target call |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for (m, ((name, _), s)) in methods.iter().zip(&stats).enumerate() {
        let h = &s.draft_depth_hist;
        // Per-round speed ratio to vanilla (same images, interleaved), mean and Student-t CI.
        let ratios: Vec<f64> = per_round.iter().map(|r| r[0] / r[m]).collect();
        let k = ratios.len() as f64;
        let mean = ratios.iter().sum::<f64>() / k;
        let var = ratios.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (k - 1.0).max(1.0);
        let half = student_t95(ratios.len().saturating_sub(1)) * (var / k).sqrt();
        // Ratio estimator over the paired images (vanilla's and this method's run of the same
        // image, adjacent in time): r = Σv / Σm, var(r) ≈ var(v − r·m) / (n·mean(m)²).
        let (v, x) = (&per_image[0], &per_image[m]);
        let pairs = v.len() as f64;
        let r = v.iter().sum::<f64>() / x.iter().sum::<f64>();
        let mx = x.iter().sum::<f64>() / pairs;
        let d: Vec<f64> = v.iter().zip(x).map(|(a, b)| a - r * b).collect();
        let md = d.iter().sum::<f64>() / pairs;
        let vd = d.iter().map(|e| (e - md) * (e - md)).sum::<f64>() / (pairs - 1.0).max(1.0);
        let half_pairs = student_t95(v.len().saturating_sub(1)) * (vd / pairs).sqrt() / mx;
        println!(
            "| {name} | {:.2} | {:.3}× ± {:.3} | {:.3}× ± {:.3} | {:.2} | {:.3}× | {:.2} | {:.2} | {}/{}/{}/{}/{} | {:.2} |",
            1e3 * total_cpu[m] / n,
            r,
            half_pairs,
            mean,
            half,
            1e3 * total[m] / n,
            total[0] / total[m],
            s.tokens_per_target_forward(),
            s.mean_draft_depth(),
            h[0],
            h[1],
            h[2],
            h[3],
            h[4],
            s.target_rows as f64 / s.target_forwards.max(1) as f64,
        );
    }
    println!("load after: {}", loadavg());
    Ok(())
}

/// Two-sided 95 % quantile of Student's t with `df` degrees of freedom (table; ∞ beyond 30).
fn student_t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        d if d <= 30 => T[d - 1],
        _ => 1.960,
    }
}
