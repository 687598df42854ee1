//! `argen bench`: every decoding method's speed and quality side by side.
//!
//! The models are loaded once, with capacities for the largest row, and every row
//! ([`crate::bench_spec`]) runs on the same prompts × seeds through the same code path as
//! `argen generate` (a [`argen_core::decode::DecoderConfig`] run by
//! [`crate::generate::run_request`] on [`argen_engine::Engine`]). Per row:
//!
//! * **TPF** — image tokens per target forward pass (prefills counted as passes);
//! * **MAL** — mean accepted draft length per verification step, not counting the token the
//!   target adds (papers often report τ = MAL + 1);
//! * target and drafter forwards and logits **rows** per image (a CFG pass computes two rows per
//!   input, GridAR's three-way guidance three): rows are the cost measure of test-time scaling;
//! * verifier calls per image (GridAR's partial-canvas checks);
//! * seconds per image (decoding and judge calls; the final VQ decode is excluded) and the
//!   speed-up over vanilla (ratio of seconds per image), by the clock `--clock` names: wall
//!   clock (the default) or the CPU time of the runtime's threads ([`argen_engine::clock`], for
//!   a shared or loaded machine); the JSON keeps the wall clock in `wall_per_image` either way;
//! * ShapesWorld models only: alignment per category, in % of the images whose prompt exercises
//!   the category ([`argen_shapes::Prompt::tags`]), and overall (every constraint met); the
//!   **valid-scene rate**, the share of images the scene parser reads as 1–3 objects;
//! * **diversity** — mean pairwise Hamming distance between the token grids generated for the
//!   same prompt under different seeds, as a fraction of the positions (0: identical images,
//!   ≈1: unrelated), averaged over prompts;
//! * ShapesWorld models only: the partial verifier's audit on the finished images
//!   ([`crate::bench_audit`]: false-impossible and caught rates at GridAR's cuts).
//!
//! The JSON (`--json`) holds every row with its raw counters, its decoder configuration
//! (`config`, the `argen_core::decode::DecoderConfig` of seed 0 — the runs change only
//! `base.seed`) and every run (prompt index, seed, wall-clock, tokens), so the table can be
//! recomputed and any image regenerated with `argen generate` and the row's flags.
//!
//! Prompts: for ShapesWorld models the prompts of held-out scenes (test split, seeds from
//! [`SPLIT_TEST`], [`sample_for_scene`] variant 0); for class-conditional models the classes
//! `0, 1, …` — there the judge of Best-of-N and GridAR is the model's implicit classifier and the
//! alignment columns are "n/a".

use std::time::Instant;

use argen_core::decode::Stats;
use argen_cpu::Cpu;
use argen_model::{Condition, GptConfig, Judge, ModelType};
use argen_shapes::export::SPLIT_TEST;
use argen_shapes::generate::sample_for_scene;
use argen_shapes::{Category, GenConfig, Prompt, Scene};
use serde_json::{json, Value};

use crate::args::{BenchArgs, DeviceArg, GenerateArgs};
use crate::bench_audit::Audit;
use crate::bench_spec::{base_args, specs, Spec};
use crate::generate::{
    check_method_args, check_writable, config_json, decoder_config, fingerprint_files,
    requirements, run_request, RunCheck,
};
use crate::output::write_json;
use argen_engine::clock::{Clock, DecodeSpan};
use argen_engine::cost_file::CostFile;
use argen_engine::model_dir::resolve;
use argen_engine::predict::{predict_nanos, CallTimes, RowHistogram};
use argen_engine::shapes;
use argen_engine::{Engine, Input, Request, Runtime};

/// Version of the JSON layout written by `--json`.
pub const JSON_VERSION: u32 = 1;

/// One prompt of the benchmark.
pub(crate) struct BenchPrompt {
    /// Text (ShapesWorld) or `class N`.
    pub(crate) text: String,
    /// Conditional and unconditional inputs.
    pub(crate) conds: (Condition, Condition),
    /// The parsed prompt (ShapesWorld models).
    pub(crate) prompt: Option<Prompt>,
    /// The class id (class-conditional models).
    pub(crate) class: Option<u32>,
}

impl BenchPrompt {
    /// The engine's input for this prompt.
    fn input(&self) -> Input {
        match (&self.prompt, self.class) {
            (Some(_), _) | (None, None) => Input::Prompt(self.text.clone()),
            (None, Some(c)) => Input::Class(c),
        }
    }
}

/// A request without the final VQ decode and score (the bench scores with its own judge).
fn quiet_request(input: Input, config: argen_core::decode::DecoderConfig) -> Request {
    Request {
        image: false,
        score: false,
        ..Request::new(input, config)
    }
}

/// The prompts of a benchmark of `n` prompts on a model of config `cfg`.
pub(crate) fn bench_prompts(cfg: &GptConfig, n: usize) -> Result<Vec<BenchPrompt>, String> {
    match cfg.model_type {
        ModelType::C2i => Ok((0..n)
            .map(|i| {
                let c = (i % cfg.num_classes.max(1)) as u32;
                BenchPrompt {
                    text: format!("class {c}"),
                    conds: (Condition::Class(Some(c)), Condition::Class(None)),
                    prompt: None,
                    class: Some(c),
                }
            })
            .collect()),
        ModelType::T2i => {
            shapes::check_model(cfg).map_err(|e| {
                format!("argen bench needs a ShapesWorld or a class-conditional model: {e}")
            })?;
            let gen = GenConfig::default();
            (0..n)
                .map(|i| {
                    let scene =
                        Scene::generate(SPLIT_TEST + i as u64, &gen).map_err(|e| e.to_string())?;
                    let p = sample_for_scene(&scene, 0);
                    Ok(BenchPrompt {
                        text: p.to_string(),
                        conds: shapes::conditions(&p),
                        prompt: Some(p),
                        class: None,
                    })
                })
                .collect()
        }
    }
}

/// What one row accumulates over its runs.
#[derive(Default)]
struct Acc {
    stats: Stats,
    /// Model forwards run, `(target, drafter)`: a batched step counts once.
    calls: (u32, u32),
    runs: u32,
    wall: f64,
    /// Seconds by the run's clock (`--clock`; equal to `wall` for the wall clock).
    clocked: f64,
    /// `tokens[prompt][seed]`.
    tokens: Vec<Vec<Vec<u32>>>,
    scored: u32,
    aligned: u32,
    valid: u32,
    cat_ok: [u32; 5],
    cat_n: [u32; 5],
    /// One entry per run: prompt index, seed, tokens, aligned.
    runs_json: Vec<Value>,
    /// The partial verifier's verdicts on the finished images.
    audit: Audit,
    /// Model calls by row count, over every run.
    hist: RowHistogram,
    /// Measured time per action kind and rows, over every run.
    times: CallTimes,
}

/// Mean pairwise Hamming distance (fraction of positions) between the grids of each prompt,
/// averaged over prompts with at least two grids; `None` with fewer than two seeds.
pub(crate) fn diversity(tokens: &[Vec<Vec<u32>>]) -> Option<f64> {
    let mut per_prompt = Vec::new();
    for grids in tokens {
        let mut sum = 0.0;
        let mut pairs = 0u32;
        for i in 0..grids.len() {
            for j in i + 1..grids.len() {
                let (a, b) = (&grids[i], &grids[j]);
                let n = a.len().max(b.len()).max(1);
                let diff =
                    a.iter().zip(b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len());
                sum += diff as f64 / n as f64;
                pairs += 1;
            }
        }
        if pairs > 0 {
            per_prompt.push(sum / pairs as f64);
        }
    }
    (!per_prompt.is_empty()).then(|| per_prompt.iter().sum::<f64>() / per_prompt.len() as f64)
}

/// The standard error of the mean time per image (seconds by the run's clock) of a row whose
/// runs are `runs` (each with `clock_seconds`): `s / √n` with the sample standard deviation
/// `s`; `None` under two runs.
pub(crate) fn clock_stderr(runs: &[Value]) -> Option<f64> {
    let t: Vec<f64> = runs
        .iter()
        .filter_map(|r| r["clock_seconds"].as_f64())
        .collect();
    let n = t.len();
    if n < 2 {
        return None;
    }
    let mean = t.iter().sum::<f64>() / n as f64;
    let var = t.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    Some((var / n as f64).sqrt())
}

fn pct(ok: u32, n: u32) -> Option<f64> {
    (n > 0).then(|| 100.0 * ok as f64 / n as f64)
}

fn per(x: u32, images: u32) -> f64 {
    x as f64 / images.max(1) as f64
}

/// A finished row: the JSON object the table and the plots are made from.
fn row_json(
    spec: &Spec,
    acc: &Acc,
    image_tokens: u32,
    cut_rows: [u32; crate::bench_audit::CUTS],
    vanilla_time: Option<f64>,
    profile: &CostFile,
    vanilla_predicted: Option<f64>,
) -> Value {
    let s = &acc.stats;
    let images = acc.runs;
    let wall = acc.wall / images.max(1) as f64;
    let time = acc.clocked / images.max(1) as f64;
    let alignment = (acc.scored > 0).then(|| {
        let mut m = serde_json::Map::new();
        m.insert("overall".into(), json!(pct(acc.aligned, acc.scored)));
        for (i, c) in Category::ALL.iter().enumerate() {
            m.insert(c.name().into(), json!(pct(acc.cat_ok[i], acc.cat_n[i])));
        }
        Value::Object(m)
    });
    let mut row = json!({
        "name": spec.name,
        "family": spec.family,
        "method": spec.args.method.name(),
        "inner": spec.inner().map(|m| m.name()),
        "flags": spec.flags(),
        "sweep": spec.sweep,
        "images": images,
        "image_tokens": image_tokens,
        "target_model_calls": acc.calls.0,
        "drafter_model_calls": acc.calls.1,
        "per_image": {
            "target_forwards": per(s.target_forwards, images),
            "target_model_calls": per(acc.calls.0, images),
            "target_rows": per(s.target_rows, images),
            "draft_forwards": per(s.draft_forwards, images),
            "draft_rows": per(s.draft_rows, images),
            "verifier_calls": per(s.verifier_calls, images),
        },
        "wall_seconds": acc.wall,
        "wall_per_image": wall,
        "clock_seconds": acc.clocked,
        "clock_per_image": time,
        "clock_per_image_stderr": clock_stderr(&acc.runs_json),
        "speedup": vanilla_time.filter(|_| time > 0.0).map(|v| v / time),
        "alignment": alignment,
        "valid_scene_rate": pct(acc.valid, acc.scored),
        "diversity": diversity(&acc.tokens),
        "verifier_audit": acc.audit.to_json(cut_rows),
        "row_histogram": acc.hist.to_json(),
        "measured_actions": acc.times.to_json(),
        "predicted": prediction(profile, &acc.hist, images, time, vanilla_time, vanilla_predicted),
        "runs": acc.runs_json,
    });
    argen_engine::engine::add_counters(&mut row, s);
    row
}

/// The cost model's prediction for a row whose runs made the model calls `hist` over `images`
/// images (`argen_engine::predict`): predicted ms per image, the predicted speed-up over
/// vanilla (ratio of predicted times) and the error of the measured speed-up against it
/// (`measured / predicted − 1`); `time` and `vanilla_time` are seconds per image by the run's
/// clock, the profile's clock. Rows with judge calls get no prediction (the profile has no
/// cost for a judge call), and neither does a row the profile cannot cost.
pub(crate) fn prediction(
    profile: &CostFile,
    hist: &RowHistogram,
    images: u32,
    time: f64,
    vanilla_time: Option<f64>,
    vanilla_predicted: Option<f64>,
) -> Value {
    if hist.judge > 0 {
        return json!({ "ms_per_image": null, "speedup": null, "error": null,
                       "note": "judge calls are not in the cost profile" });
    }
    let ms = match predict_nanos(&profile.profile, profile.prefill, hist) {
        Ok(ns) => ns as f64 / 1e6 / images.max(1) as f64,
        Err(e) => {
            return json!({ "ms_per_image": null, "speedup": null, "error": null,
                                 "note": e.to_string() })
        }
    };
    // The vanilla row itself: its own prediction is the reference.
    let reference = vanilla_predicted.unwrap_or(ms);
    let speedup = (ms > 0.0).then(|| reference / ms);
    let measured = vanilla_time.filter(|_| time > 0.0).map(|v| v / time);
    let error = match (measured, speedup) {
        (Some(m), Some(p)) if p > 0.0 => Some(m / p - 1.0),
        _ => None,
    };
    json!({
        "ms_per_image": ms,
        "speedup": speedup,
        "error": error,
        "measured_over_predicted_ms": (ms > 0.0).then(|| time * 1e3 / ms),
    })
}

fn machine() -> Value {
    let t = argen_cpu::gemm::tuning();
    json!({
        "cpu": argen_engine::calibrate::cpu_name(),
        // The CPU kernels' speed-only settings in force: a table entry by name, or the spec of
        // a calibrated (`argen calibrate --kernels`) or overridden tuning.
        "cpu_kernel_settings": argen_cpu::gemm::entry_name(&t)
            .map_or_else(|| t.spec(), |n| format!("{n} entry")),
        "logical_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

/// `argen bench`.
/// A row name as a file-name part: lower-case letters, digits and `-`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

pub fn run(a: &BenchArgs) -> Result<(), String> {
    let dir = resolve(a.model.as_deref())?;
    let cfg = dir.gpt_config()?;
    let n_prompts = a.prompts.unwrap_or(if a.quick { 2 } else { 8 });
    let n_seeds = a.seeds.unwrap_or(if a.quick { 2 } else { 4 });
    if n_prompts == 0 || n_seeds == 0 {
        return Err("--prompts and --seeds must be at least 1".into());
    }
    if !(a.temperature.is_finite() && a.temperature >= 0.0) {
        return Err("--temperature must be a finite number ≥ 0".into());
    }
    let clock_device = match a.device {
        DeviceArg::Cpu => "cpu",
        DeviceArg::Cuda => "cuda",
    };
    a.clock.clock().check(clock_device)?;
    let mut base = base_args(a.cfg, a.temperature, a.threads)?;
    // The rows are checked here, before any model loads, with the directory's profile (if any)
    // standing in for the one `run_on` settles on (the `sd auto` rows need one to exist).
    base.cost_profile = argen_engine::cost_file::read(&argen_engine::cost_file::path_in(&dir.dir))?
        .map(|f| Box::new(f.profile));
    let rows = specs(a.quick, &a.methods, &a.inner, &base)?;
    for r in &rows {
        check_method_args(&r.args, &cfg).map_err(|e| format!("row {:?}: {e}", r.name))?;
    }
    if let Some(p) = &a.json {
        check_writable(p)?;
    }
    if let Some(p) = &a.plots {
        std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
    }
    if let Some(p) = &a.traces {
        std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
    }
    let prompts = bench_prompts(&cfg, n_prompts)?;
    let plan = Plan {
        a,
        dir: &dir,
        cfg: &cfg,
        base: &base,
        prompts: &prompts,
        n_prompts,
        n_seeds,
    };
    match a.device {
        DeviceArg::Cpu => {
            crate::calibrate::apply_kernel_tuning(&dir.dir);
            let cpu = Cpu::new(a.threads).map_err(|e| e.to_string())?;
            let threads = cpu.threads();
            run_on(&plan, &cpu, "cpu".into(), threads)
        }
        DeviceArg::Cuda => {
            let c = crate::device::cuda_compute()?;
            let name = format!(
                "cuda ({})",
                argen_cuda::launch::Executor::describe(c.executor())
            );
            // Host threads of the peer and of the row pipeline.
            let threads = Cpu::new(a.threads).map_err(|e| e.to_string())?.threads();
            run_on(&plan, &c, name, threads)
        }
    }
}

/// What one bench run measures, independent of the device.
struct Plan<'p> {
    a: &'p BenchArgs,
    dir: &'p argen_engine::ModelDir,
    cfg: &'p GptConfig,
    /// The rows' common flags; the rows themselves are built once the cost profile is known.
    base: &'p GenerateArgs,
    prompts: &'p [BenchPrompt],
    n_prompts: usize,
    n_seeds: u64,
}

/// `argen bench` on the compute device `c` (`device`: its name for the report).
fn run_on<C: Runtime>(
    plan: &Plan<'_>,
    c: &C,
    device: String,
    threads: usize,
) -> Result<(), String> {
    let Plan {
        a,
        dir,
        cfg,
        base,
        prompts,
        n_prompts,
        n_seeds,
    } = *plan;
    let cfg = cfg.clone();
    let load = Instant::now();
    let mut engine = Engine::with_compute(dir.clone(), c.clone())?;
    // The cost profile of the predictions and of the `sd auto` rows: the model directory's when
    // it was measured under this run's conditions, else measured now.
    let kind = match a.device {
        DeviceArg::Cpu => "cpu",
        DeviceArg::Cuda => "cuda",
    };
    let clock = a.clock.clock();
    let (profile, source) =
        crate::calibrate::profile_for(&mut engine, kind, &device, threads, clock, |l| {
            crate::errln!("argen bench: {l}")
        })?;
    let mut profile_source = match &source {
        crate::calibrate::ProfileSource::File(p) => {
            crate::errln!("argen bench: cost profile {}", p.display());
            json!({ "file": p.display().to_string() })
        }
        crate::calibrate::ProfileSource::Calibrated(why) => {
            crate::errln!("argen bench: calibrated the cost profile at the start ({why})");
            json!({ "calibrated": why })
        }
    };
    // A profile this run calibrated itself is measured again before later rounds of an
    // interleaved run, and the predictions use each point's median over those calibrations, so
    // that they see the machine in the states the rows were measured in (a host can change
    // speed between the start and the rows). The `auto` rows keep deciding with the profile
    // of the start, so their tokens do not depend on the recalibrations.
    let recalibrate =
        a.interleave && matches!(source, crate::calibrate::ProfileSource::Calibrated(_));
    let mut calibrations = vec![profile.clone()];
    let mut base = base.clone();
    base.cost_profile = Some(Box::new(profile.profile));
    let rows = &specs(a.quick, &a.methods, &a.inner, &base)?[..];
    for r in rows {
        check_method_args(&r.args, &cfg).map_err(|e| format!("row {:?}: {e}", r.name))?;
    }
    // Every row's decoder configuration (seed 0; the seed changes nothing else) and needs.
    let judged = prompts.iter().any(|p| p.prompt.is_some());
    let configs = rows
        .iter()
        .map(|r| decoder_config(&r.args, &cfg, judged))
        .collect::<Result<Vec<_>, _>>()?;
    let reqs = configs
        .iter()
        .map(requirements)
        .collect::<Result<Vec<_>, _>>()?;
    engine.reserve(&configs)?;
    crate::errln!(
        "argen bench: {} ({:?}, {} image tokens), {} rows × {} prompts × {} seeds, {threads} threads; \
         models loaded in {:.2} s",
        dir.dir.display(),
        cfg.model_type,
        cfg.block_size,
        rows.len(),
        n_prompts,
        n_seeds,
        load.elapsed().as_secs_f64()
    );
    let grid = cfg.grid();
    let cut_rows = crate::bench_audit::cuts(grid);
    // Warm-up (caches, thread pool, page faults): one vanilla image, not counted.
    run_request(
        &mut engine,
        &quiet_request(prompts[0].input(), configs[0]),
        &mut RunCheck::Off,
        true,
        &mut argen_core::decode::NoObserver,
    )?;
    let started = Instant::now();
    let mut out_rows: Vec<Value> = Vec::new();
    // The model fingerprints of recorded runs (without, with the drafter), computed once.
    let mut fingerprints: [Option<Result<String, String>>; 2] = [None, None];
    let mut vanilla_time = None;
    let mut vanilla_predicted = None;
    let mut accs: Vec<Acc> = rows
        .iter()
        .map(|_| Acc {
            tokens: vec![Vec::new(); prompts.len()],
            hist: RowHistogram::new(cfg.cls_token_num),
            ..Default::default()
        })
        .collect();
    // The runs, row by row or (--interleave) image by image across the rows.
    let per_row = prompts.len() * n_seeds as usize;
    let mut order = Vec::with_capacity(rows.len() * per_row);
    // Interleaved, each image's rows run in a fresh pseudo-random order (`round_order`): a
    // fixed rotation made the first row pay for what the previous image left behind.
    let mut round = Vec::new();
    for i in 0..rows.len() * per_row {
        let (ri, image) = if a.interleave {
            if i % rows.len() == 0 {
                round = argen_engine::round_order::round_order(rows.len(), (i / rows.len()) as u64);
            }
            (round[i % rows.len()], i / rows.len())
        } else {
            (i / per_row, i % per_row)
        };
        order.push((
            ri,
            image / n_seeds as usize,
            (image % n_seeds as usize) as u64,
        ));
    }
    // Rounds (of one image per row) before which an interleaved run recalibrates: a quarter,
    // half and three quarters of the way and before the last round, which precedes every
    // row's report.
    let recalibration = if recalibrate && per_row > 1 {
        Some(crate::calibrate::calibrate_options(
            kind, &device, threads, clock,
        )?)
    } else {
        None
    };
    let recalibrate_before: Vec<usize> = if recalibration.is_some() {
        let mut r: Vec<usize> = (1..4)
            .map(|q| q * per_row / 4)
            .chain([per_row - 1])
            .collect();
        r.retain(|&x| x > 0);
        r.dedup();
        r
    } else {
        Vec::new()
    };
    let mut merged: Option<CostFile> = None;
    let mut done = vec![0usize; rows.len()];
    let mut finished = 0;
    for (i, (ri, pi, seed)) in order.into_iter().enumerate() {
        if let Some(opts) = recalibration
            .as_ref()
            .filter(|_| i % rows.len() == 0 && recalibrate_before.contains(&(i / rows.len())))
        {
            let file = engine.calibrate(opts, &mut |_: &str| {})?;
            crate::errln!(
                "argen bench: recalibrated before round {} of {per_row} (1-row target step {:.3} ms)",
                i / rows.len() + 1,
                file.profile.target.points().next().map_or(0.0, |p| p.1 as f64 / 1e6)
            );
            calibrations.push(file);
        }
        let (spec, row_config, acc, p) = (&rows[ri], &configs[ri], &mut accs[ri], &prompts[pi]);
        let mut dc = *row_config;
        dc.base.seed = seed;
        let mut check = match a.traces {
            Some(_) => RunCheck::Record(None),
            None => RunCheck::Off,
        };
        let mut watch = (
            (
                RowHistogram::new(cfg.cls_token_num),
                CallTimes::new(clock, threads),
            ),
            DecodeSpan::new(clock, threads),
        );
        let o = run_request(
            &mut engine,
            &quiet_request(p.input(), dc),
            &mut check,
            true,
            &mut watch,
        )
        .map_err(|e| format!("{} on {:?}, seed {seed}: {e}", spec.name, p.text))?;
        acc.hist.add(&watch.0 .0);
        watch.0 .1.finish();
        acc.times.add(&watch.0 .1);
        let clocked = match clock {
            Clock::Wall => o.wall,
            Clock::Cpu => watch.1.seconds(),
        };
        let mut judge = p.prompt.clone().map(|pr| engine.judge(pr));
        if let (Some(d), RunCheck::Record(Some(trace))) = (&a.traces, &check) {
            let name = format!("{}-p{pi}-s{seed}.argrun", slug(&spec.name));
            let meta = json!({
                "argen": env!("CARGO_PKG_VERSION"),
                "rng_scheme": argen_core::rng::SCHEME_VERSION,
                "source": "argen bench",
                "row": spec.name,
                "config": config_json(&dc)?,
                "seed": seed,
                "prompt": p.prompt.as_ref().map(|_| p.text.clone()),
                "class": p.class,
                "model_dir": dir.dir.display().to_string(),
                "model": { "fingerprint": fingerprints[usize::from(reqs[ri].drafter)]
                    .get_or_insert_with(|| {
                        let files = fingerprint_files(dir, reqs[ri].drafter, None);
                        crate::replay::fingerprint(&files)
                    })
                    .clone()? },
                "device": format!("{:?}", a.device).to_lowercase(),
                "threads": a.threads,
            });
            crate::output::write_bytes(&d.join(name), &crate::replay::encode(&meta, trace)?)?;
        }
        acc.stats.add(&o.stats);
        acc.calls.0 += o.calls.0;
        acc.calls.1 += o.calls.1;
        acc.runs += 1;
        acc.wall += o.wall;
        acc.clocked += clocked;
        let mut aligned = None;
        if let (Some(j), Some(pr)) = (judge.as_mut(), &p.prompt) {
            let sc = j.score_tokens(&o.tokens)?;
            let mut possible = [true; crate::bench_audit::CUTS];
            for (v, r) in possible.iter_mut().zip(cut_rows) {
                *v = j.check(0, r, &o.tokens[..r as usize * grid])?;
            }
            acc.audit.add(sc.aligned, possible);
            aligned = Some(sc.aligned);
            acc.scored += 1;
            acc.aligned += u32::from(sc.aligned);
            acc.valid += u32::from((1..=3).contains(&sc.scene.objects.len()));
            let tags = pr.tags();
            for (i, c) in Category::ALL.iter().enumerate() {
                if tags.has(*c) {
                    acc.cat_n[i] += 1;
                    acc.cat_ok[i] += u32::from(sc.verdicts.get(*c));
                }
            }
        }
        acc.runs_json.push(json!({
            "prompt": pi,
            "seed": seed,
            "wall_seconds": o.wall,
            "clock_seconds": clocked,
            "aligned": aligned,
            "tokens": o.tokens,
        }));
        acc.tokens[pi].push(o.tokens);
        done[ri] += 1;
        // Rows are reported in order, each once all its runs are done.
        while finished < rows.len() && done[finished] == per_row {
            let (ri, spec, row_config, acc) = (
                finished,
                &rows[finished],
                &configs[finished],
                &accs[finished],
            );
            let predict_with = merged.get_or_insert_with(|| {
                crate::calibrate::median_profile(&calibrations).unwrap_or_else(|| profile.clone())
            });
            let mut row = row_json(
                spec,
                acc,
                cfg.block_size as u32,
                cut_rows,
                vanilla_time,
                predict_with,
                vanilla_predicted,
            );
            row["config"] = config_json(row_config)?;
            if spec.family == "vanilla" {
                vanilla_time = row["clock_per_image"].as_f64();
                vanilla_predicted = row["predicted"]["ms_per_image"].as_f64();
            }
            crate::errln!(
                "[{}/{}] {:<20} {:>6.2} tokens/target pass, {:>8.2} ms/image ({:.0} s elapsed)",
                ri + 1,
                rows.len(),
                spec.name,
                acc.stats.tokens_per_target_forward(),
                1e3 * row["clock_per_image"].as_f64().unwrap_or(0.0),
                started.elapsed().as_secs_f64()
            );
            out_rows.push(row);
            finished += 1;
        }
    }
    if calibrations.len() > 1 {
        profile_source["recalibrations"] = json!(calibrations.len() - 1);
    }
    let peer = if a.peer {
        Some(crate::bench_peer::run(
            &a.python,
            dir,
            &cfg,
            prompts,
            n_seeds,
            threads,
            a.cfg,
            a.temperature,
            &out_rows,
        )?)
    } else {
        None
    };
    let model = json!({
        "dir": dir.dir.display().to_string(),
        "model_type": format!("{:?}", cfg.model_type),
        "image_tokens": cfg.block_size,
        "vocab_size": cfg.vocab_size,
        "dim": cfg.dim,
        "n_layer": cfg.n_layer,
        "shapesworld": prompts.iter().any(|p| p.prompt.is_some()),
    });
    let mut plots = Vec::new();
    if let Some(d) = &a.plots {
        plots = crate::bench_plot::write_all(d, &out_rows)?;
    }
    let report = json!({
        "version": JSON_VERSION,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "machine": machine(),
        "device": device,
        "threads": threads,
        "clock": clock.name(),
        "model": model,
        "quick": a.quick,
        "prompts": prompts.iter().map(|p| json!({"text": p.text, "class": p.class})).collect::<Vec<_>>(),
        "seeds": n_seeds,
        "cfg": a.cfg,
        "temperature": a.temperature,
        "cost_profile": { "source": profile_source, "profile": serde_json::to_value(merged.as_ref().unwrap_or(&profile))
            .map_err(|e| format!("cannot write the cost profile: {e}"))? },
        "rows": out_rows,
        "peer": peer,
        "plots": plots,
        "total_seconds": started.elapsed().as_secs_f64(),
    });
    if let Some(p) = &a.json {
        write_json(p, &report)?;
    }
    crate::output::out(&markdown(&report))
}

fn num(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "n/a".into(),
    }
}

/// A row's milliseconds per image by the run's clock (`wall_per_image` in reports written before
/// `--clock` existed).
fn clock_ms(row: &Value) -> Option<f64> {
    row["clock_per_image"]
        .as_f64()
        .or_else(|| row["wall_per_image"].as_f64())
        .map(|t| t * 1e3)
}

/// The cost model's table: per row the measured and the predicted speed-up and ms per image,
/// and the prediction error (`measured / predicted − 1` of the speed-up).
pub(crate) fn cost_model_markdown(r: &Value) -> String {
    let p = &r["cost_profile"]["profile"];
    let source = &r["cost_profile"]["source"];
    let from = match (source["file"].as_str(), source["calibrated"].as_str()) {
        (Some(f), _) => format!("profile {f}"),
        (None, Some(_)) => match source["recalibrations"].as_u64() {
            Some(n) => format!(
                "profile calibrated at the start of the run and again before {n} later rounds, \
                 each point's median"
            ),
            None => "profile calibrated at the start of the run".into(),
        },
        _ => "profile ?".into(),
    };
    let mut s = format!(
        "\nCost model ({from}: {} kernels, {} threads, context {}, {} clock): predicted = Σ over \
         the row's model calls of the profile's cost for their rows; error = measured speed-up ÷ \
         predicted − 1.\n\n",
        p["kernels"].as_str().unwrap_or("?"),
        p["threads"],
        p["context"],
        p["clock"].as_str().unwrap_or("wall"),
    );
    s += "| method | speed-up | predicted speed-up | error % | ± % | ms/img | predicted ms/img |\n";
    s += "|---|---:|---:|---:|---:|---:|---:|\n";
    let rows: Vec<&Value> = r["rows"].as_array().into_iter().flatten().collect();
    let vanilla = vanilla_row(r);
    let rel = |row: &Value| {
        Some(row["clock_per_image_stderr"].as_f64()? / row["clock_per_image"].as_f64()?)
            .filter(|x| x.is_finite())
    };
    let (mut unresolved, mut any_noise) = (false, false);
    for row in &rows {
        let pr = &row["predicted"];
        let error = pr["error"].as_f64();
        let noise = match vanilla {
            Some(v) if !std::ptr::eq(v, *row) && error.is_some() => {
                rel(row).zip(rel(v)).map(|(a, b)| a.hypot(b))
            }
            _ => None,
        };
        any_noise |= noise.is_some();
        if let (Some(e), Some(n)) = (error, noise) {
            unresolved |= e.abs() > ERROR_TARGET && e.abs() <= 2.0 * n;
        }
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            row["name"].as_str().unwrap_or("?"),
            num(&row["speedup"], 2),
            num(&pr["speedup"], 2),
            num(&json!(error.map(|e| e * 100.0)), 1),
            num(&json!(noise.map(|n| n * 100.0)), 1),
            num(&json!(clock_ms(row)), 2),
            num(&pr["ms_per_image"], 2),
        );
    }
    if any_noise {
        s += "\n± = one standard error of the measured speed-up, from the spread of the row's \
              and vanilla's times per image (an upper estimate for rows whose images do unequal \
              work).\n";
    }
    if unresolved {
        s += &format!(
            "Some errors above {:.0} % lie within two standard errors: this many images cannot \
             resolve them (more --prompts / --seeds, or fewer threads, can).\n",
            ERROR_TARGET * 100.0
        );
    }
    s += &profile_drift_note(r);
    s
}

/// The cost model's target: a row's prediction error within this fraction (issue 16). An error
/// beyond it but within two standard errors of the measured speed-up gets a line under the
/// cost model's table.
const ERROR_TARGET: f64 = 0.15;

/// The report's vanilla row, the reference of every speed-up.
fn vanilla_row(r: &Value) -> Option<&Value> {
    r["rows"]
        .as_array()?
        .iter()
        .find(|row| row["name"].as_str() == Some("vanilla"))
}

/// How far vanilla's measured time per image may stray from the profile's prediction before
/// the report says that the profile does not describe the run's machine.
const PROFILE_DRIFT: f64 = 0.15;

/// A note under the cost model's table when vanilla (one- or two-row target steps only, the
/// row the profile predicts most directly) ran more than [`PROFILE_DRIFT`] away from its
/// prediction: the machine was not in the state it was calibrated in (other load, a host that
/// moved the VM, a profile from another run), and the rows' errors then mix that drift, which
/// need not be the same for every row count, with the cost model's own error.
fn profile_drift_note(r: &Value) -> String {
    let vanilla = vanilla_row(r);
    let Some((measured, predicted)) =
        vanilla.and_then(|row| Some((clock_ms(row)?, row["predicted"]["ms_per_image"].as_f64()?)))
    else {
        return String::new();
    };
    let drift = measured / predicted - 1.0;
    if !drift.is_finite() || drift.abs() <= PROFILE_DRIFT {
        return String::new();
    }
    format!(
        "\nNote: vanilla ran at {measured:.2} ms/img against the profile's {predicted:.2} \
         ({:+.0} %): the machine was not in the state the profile was calibrated in, so the \
         errors above include that drift. Calibrate again under the bench's conditions \
         (`argen calibrate`) or rerun before reading them as the cost model's.\n",
        drift * 100.0
    )
}

/// The Markdown report: the table, then the peer's ratios.
pub(crate) fn markdown(r: &Value) -> String {
    let mut s = String::new();
    let m = &r["model"];
    s += &format!(
        "argen bench — model {} ({}, {} image tokens), {} prompts × {} seeds, cfg {}, temperature {}, \
         {} threads on {} (CPU kernel settings: {}); times by the {} clock\n\n",
        m["dir"].as_str().unwrap_or("?"),
        m["model_type"].as_str().unwrap_or("?"),
        m["image_tokens"],
        r["prompts"].as_array().map_or(0, |p| p.len()),
        r["seeds"],
        r["cfg"],
        r["temperature"],
        r["threads"],
        r["machine"]["cpu"].as_str().unwrap_or("?"),
        r["machine"]["cpu_kernel_settings"]
            .as_str()
            .unwrap_or("not recorded"),
        r["clock"].as_str().unwrap_or("wall"),
    );
    s += "| method | TPF | MAL | target fwd/img | target rows/img | drafter fwd/img | drafter rows/img \
          | verifier calls/img | ms/img | speed-up | aligned % | count | shape | colour | spatial \
          | layout | valid % | diversity |\n";
    s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for row in r["rows"].as_array().into_iter().flatten() {
        let p = &row["per_image"];
        let al = &row["alignment"];
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row["name"].as_str().unwrap_or("?"),
            num(&row["tokens_per_target_forward"], 2),
            num(&row["mean_accepted_length"], 2),
            num(&p["target_forwards"], 1),
            num(&p["target_rows"], 1),
            num(&p["draft_forwards"], 1),
            num(&p["draft_rows"], 1),
            num(&p["verifier_calls"], 1),
            num(&json!(clock_ms(row)), 2),
            num(&row["speedup"], 2),
            num(&al["overall"], 1),
            num(&al["count"], 1),
            num(&al["shape"], 1),
            num(&al["colour"], 1),
            num(&al["spatial"], 1),
            num(&al["layout"], 1),
            num(&row["valid_scene_rate"], 1),
            num(&row["diversity"], 3),
        );
    }
    s += &cost_model_markdown(r);
    s += &crate::bench_audit::markdown(r["rows"].as_array().map_or(&[], |v| v.as_slice()));
    if let Some(peer) = r["peer"].as_object() {
        s += &format!(
            "\nPyTorch peer ({}, torch {}, {} threads), same weights, prompts and seeds count:\n\n",
            peer.get("script").and_then(Value::as_str).unwrap_or("?"),
            peer.get("torch").and_then(Value::as_str).unwrap_or("?"),
            peer.get("threads").cloned().unwrap_or(Value::Null),
        );
        s +=
            "| decoding | PyTorch ms/img | argen ms/img | argen speed-up |\n|---|---:|---:|---:|\n";
        for c in peer
            .get("comparisons")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            s += &format!(
                "| {} | {} | {} | {}× |\n",
                c["name"].as_str().unwrap_or("?"),
                num(
                    &json!(c["peer_wall_per_image"].as_f64().map(|w| w * 1e3)),
                    2
                ),
                num(
                    &json!(c["argen_wall_per_image"].as_f64().map(|w| w * 1e3)),
                    2
                ),
                num(&c["ratio"], 2),
            );
        }
    }
    if let Some(p) = r["plots"].as_array().filter(|p| !p.is_empty()) {
        s += "\nPlots: ";
        s += &p
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        s += "\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanilla_row_far_from_its_prediction_gets_a_note() {
        let report = |measured_s: f64| {
            json!({"rows": [{
                "name": "vanilla",
                "clock_per_image": measured_s,
                "predicted": {"ms_per_image": 10.0},
            }]})
        };
        // Within 15 %: no note; beyond it, either way: a note with the drift.
        assert_eq!(profile_drift_note(&report(0.0114)), "");
        assert_eq!(profile_drift_note(&report(0.0086)), "");
        let slow = profile_drift_note(&report(0.0158));
        assert!(
            slow.contains("15.80 ms/img") && slow.contains("+58 %"),
            "{slow}"
        );
        let fast = profile_drift_note(&report(0.0080));
        assert!(fast.contains("-20 %"), "{fast}");
        // No vanilla row or no prediction: nothing to say.
        assert_eq!(profile_drift_note(&json!({"rows": []})), "");
        assert_eq!(
            profile_drift_note(&json!({"rows": [{"name": "vanilla", "clock_per_image": 0.01}]})),
            ""
        );
        assert!(cost_model_markdown(&report(0.0158)).contains("Note: vanilla ran"));
    }

    #[test]
    fn the_cost_table_gives_each_speed_up_its_standard_error() {
        let runs = |t: &[f64]| {
            t.iter()
                .map(|&x| json!({"clock_seconds": x}))
                .collect::<Vec<_>>()
        };
        // Times 1, 2, 3, 4: mean 2.5, sample sd √(5/3), standard error √(5/12).
        let se = clock_stderr(&runs(&[1.0, 2.0, 3.0, 4.0])).unwrap();
        assert!((se - (5.0f64 / 12.0).sqrt()).abs() < 1e-12);
        assert_eq!(clock_stderr(&runs(&[1.0])), None);
        assert_eq!(clock_stderr(&[]), None);
        let row = |name: &str, t: f64, se: f64, error: Option<f64>| {
            json!({"name": name, "clock_per_image": t, "clock_per_image_stderr": se,
                   "speedup": 0.5, "predicted": {"error": error, "speedup": 0.6,
                                                 "ms_per_image": 1.0}})
        };
        // 3 % of vanilla and 4 % of the row: ± 5 %.
        let report = |error: f64| {
            json!({"rows": [row("vanilla", 0.01, 0.0003, None),
                            row("chain", 0.02, 0.0008, Some(error))]})
        };
        let table = cost_model_markdown(&report(-0.05));
        assert!(
            table.contains("| chain | 0.50 | 0.60 | -5.0 | 5.0 |"),
            "{table}"
        );
        // Vanilla is the reference: no error and no ± of its own.
        assert!(
            table.contains("| vanilla | 0.50 | 0.60 | n/a | n/a |"),
            "{table}"
        );
        assert!(!table.contains("cannot resolve"), "{table}");
        assert!(table.contains("± = one standard error"), "{table}");
        // Single-image rows have no spread: no ±, and no line explaining it.
        let single = json!({"rows": [
            {"name": "vanilla", "clock_per_image": 0.01, "predicted": {"ms_per_image": 10.0}},
            {"name": "chain", "clock_per_image": 0.02,
             "predicted": {"error": -0.3, "speedup": 0.6, "ms_per_image": 1.0}}]});
        let t1 = cost_model_markdown(&single);
        assert!(
            t1.contains("| -30.0 | n/a |") && !t1.contains("± = one"),
            "{t1}"
        );
        assert!(!t1.contains("cannot resolve"), "{t1}");
        // An error beyond 15 % but within two standard errors (here 10 %) is flagged…
        let wide = json!({"rows": [row("vanilla", 0.01, 0.0003, None),
                                   row("chain", 0.02, 0.0019, Some(-0.18))]});
        assert!(cost_model_markdown(&wide).contains("cannot resolve"));
        // … one beyond two standard errors is not.
        assert!(!cost_model_markdown(&report(-0.18)).contains("cannot resolve"));
    }

    #[test]
    fn diversity_is_mean_pairwise_hamming_fraction() {
        let t = vec![
            vec![vec![1, 2, 3, 4], vec![1, 2, 3, 5], vec![9, 9, 9, 9]],
            vec![vec![0, 0], vec![0, 0]],
        ];
        // prompt 0: pairs (1/4, 4/4, 4/4) → 0.75; prompt 1: 0 → mean 0.375.
        assert!((diversity(&t).unwrap() - 0.375).abs() < 1e-12);
        assert_eq!(diversity(&[vec![vec![1, 2]]]), None);
    }

    #[test]
    fn shapesworld_prompts_come_from_the_test_split_and_parse() {
        let mut cfg = GptConfig::preset("GPT-B", ModelType::T2i, 64).unwrap();
        cfg.cls_token_num = argen_shapes::vocab::MAX_WORDS;
        cfg.caption_dim = shapes::CAPTION_DIM;
        let p = bench_prompts(&cfg, 3).unwrap();
        assert_eq!(p.len(), 3);
        for bp in &p {
            assert_eq!(
                shapes::parse_prompt(&bp.text).unwrap(),
                *bp.prompt.as_ref().unwrap()
            );
        }
        assert_ne!(p[0].text, p[1].text);
    }
}
