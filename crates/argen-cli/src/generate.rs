//! `argen generate`, `argen decode` and the runs `argen replay` checks: flags → one
//! [`DecoderConfig`] → the engine.
//!
//! The flags become the engine's [`MethodOptions`] and a [`DecoderConfig`]
//! ([`decoder_config`]); [`argen_engine::Engine`] loads the models its requirements ask for,
//! builds the tables, drives [`argen_core::decode::AnyDecoder`] and VQ-decodes the result
//! ([`run_request`], which also records or checks a trace). This module only checks flags, reads
//! `--caption`, shows progress and writes the outputs. `argen bench` uses the same path per row.

use argen_core::decode::{
    DecoderConfig, MethodConfig, NoObserver, Observer, Requirements, MAX_CANDIDATES, MAX_INPUTS,
    MAX_TOKENS,
};
use argen_core::trace::{config_hash, Divergence, Header, Recorder, Replayer, Trace};
use argen_cpu::Cpu;
use argen_engine::method::{Criterion, Draft, VvsSchedule, WindowInit};
use argen_engine::{Engine, Generation, Input, MethodOptions, Request, Runtime};
use argen_model::{GptConfig, ModelType};
use serde_json::json;

use crate::args::{
    CriterionArg, DecodeArgs, DeviceArg, DraftArg, GenerateArgs, JacobiInitArg, Method, ScoreArgs,
    VvsScheduleArg,
};
use crate::output::{read_tokens, write_json, write_png};
use crate::progress::Progress;
use argen_engine::model_dir::resolve;
use argen_engine::shapes::{self, alignment_json};

/// The input `a` names on a model of config `cfg` (a prompt, a class, or caption features read
/// from `--caption`); the engine checks it against the model ([`argen_engine::conditions`]).
pub(crate) fn input(a: &GenerateArgs, cfg: &GptConfig) -> Result<Input, String> {
    if let Some(text) = &a.prompt {
        return Ok(Input::Prompt(text.clone()));
    }
    match cfg.model_type {
        ModelType::C2i => {
            let class = a.class.ok_or_else(|| {
                format!(
                    "this is a class-conditional model: give --class N with N in 0..{}",
                    cfg.num_classes
                )
            })?;
            if class as usize >= cfg.num_classes {
                return Err(format!(
                    "--class {class} is out of range: the model has {} classes",
                    cfg.num_classes
                ));
            }
            Ok(Input::Class(class))
        }
        ModelType::T2i => {
            let path = a.caption.as_ref().ok_or(
                "this is a text-conditional model: give --prompt TEXT (ShapesWorld) or --caption \
                 FILE (raw f32 caption features)",
            )?;
            let want = cfg.cls_token_num as u64 * cfg.caption_dim as u64 * 4;
            let bytes = crate::output::read_bounded("--caption", path, want)?;
            let features = crate::parse::parse_caption(&bytes, cfg.cls_token_num, cfg.caption_dim)
                .map_err(|e| format!("--caption {}: {e}", path.display()))?;
            Ok(Input::Caption {
                features,
                pad: a.caption_pad,
            })
        }
    }
}

/// The input of `a`, checked against the model before any compute.
pub(crate) fn checked_input(a: &GenerateArgs, cfg: &GptConfig) -> Result<Input, String> {
    let input = input(a, cfg)?;
    argen_engine::conditions(cfg, &input)?;
    Ok(input)
}

/// The engine's method options of `a`'s flags.
pub(crate) fn options(a: &GenerateArgs) -> MethodOptions {
    MethodOptions {
        cfg: a.cfg,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        criterion: match a.criterion {
            CriterionArg::Exact => Criterion::Exact,
            CriterionArg::Coupled => Criterion::Coupled,
        },
        draft: match a.draft {
            DraftArg::Chain => Draft::Chain,
            DraftArg::Tree => Draft::Tree,
            DraftArg::Auto => Draft::Auto,
            DraftArg::AutoTree => Draft::AutoTree,
        },
        gamma: a.gamma,
        tree_total: a.tree_total,
        tree_depth: a.tree_depth,
        tree_top_k: a.tree_top_k,
        delta: a.delta,
        lantern_k: a.lantern_k,
        lantern_metric: a.lantern_metric.into(),
        lambda: a.lambda,
        vvs_schedule: match a.vvs_schedule {
            VvsScheduleArg::Uniform => VvsSchedule::Uniform,
            VvsScheduleArg::Dynamic => VvsSchedule::Dynamic,
        },
        vvs_interval: a.vvs_interval,
        vvs_threshold: a.vvs_threshold,
        window: a.window,
        jacobi_init: match a.jacobi_init {
            JacobiInitArg::Random => WindowInit::Random,
            JacobiInitArg::CopyLeft => WindowInit::CopyLeft,
        },
        n: a.n,
        inner: a.inner,
        reformulate: !a.no_reformulate,
        cost_profile: a.cost_profile.as_deref().copied(),
    }
}

/// Whether `a` asks for cost-aware drafting in a method that drafts (`--draft auto` or
/// `auto-tree` with `sd`, `lantern`, `gsd`, directly or as the candidates of `bon` / `gridar`).
pub(crate) fn wants_cost_profile(a: &GenerateArgs) -> bool {
    let m = match (a.method, a.inner) {
        (Method::Bon | Method::Gridar, Some(i)) => i,
        (m, _) => m,
    };
    matches!(a.draft, DraftArg::Auto | DraftArg::AutoTree)
        && matches!(m, Method::Sd | Method::Lantern | Method::Gsd)
}

/// `a` with the cost profile of model directory `dir` when it asks for cost-aware drafting
/// (and has none yet): the profile file must exist.
pub(crate) fn with_cost_profile(
    a: &GenerateArgs,
    dir: &argen_engine::ModelDir,
) -> Result<GenerateArgs, String> {
    let mut a = a.clone();
    if a.cost_profile.is_none() && wants_cost_profile(&a) {
        let path = argen_engine::cost_file::path_in(&dir.dir);
        match argen_engine::cost_file::read(&path)? {
            Some(f) => {
                if let Some(why) = profile_elsewhere(&f, &a) {
                    crate::errln!(
                        "argen: warning: {} was {why}; --draft auto uses it as it is (its \
                         choices stay deterministic, but they were costed for that machine): \
                         `argen calibrate --model {}` measures this one",
                        path.display(),
                        dir.dir.display()
                    );
                }
                a.cost_profile = Some(Box::new(f.profile))
            }
            None => {
                return Err(format!(
                    "--draft auto needs this machine's cost profile and {} does not exist (run \
                     `argen calibrate --model {}` first)",
                    path.display(),
                    dir.dir.display()
                ))
            }
        }
    }
    Ok(a)
}

/// How the profile `f` was measured elsewhere than a CPU run of `a` will run: on another
/// device, processor or thread count (`None` when it matches, and on CUDA, whose processor is
/// known only once the device is open).
fn profile_elsewhere(f: &argen_engine::cost_file::CostFile, a: &GenerateArgs) -> Option<String> {
    if !matches!(a.device, DeviceArg::Cpu) {
        return None;
    }
    let threads = match a.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    };
    let cpu = argen_engine::calibrate::cpu_name();
    let mut diff = Vec::new();
    if f.device != "cpu" {
        diff.push(format!("measured on {} (this run: cpu)", f.device));
    }
    if f.cpu != cpu {
        diff.push(format!("measured on {} (this processor: {cpu})", f.cpu));
    }
    if f.threads != threads {
        diff.push(format!(
            "measured with {} threads (this run: {threads})",
            f.threads
        ));
    }
    (!diff.is_empty()).then(|| diff.join(", "))
}

/// Whether candidates of method `m` (with `a`'s flags) can run under GridAR.
pub(crate) fn restartable(m: Method, a: &GenerateArgs) -> bool {
    options(a).restartable(m)
}

/// The decoder configuration of `a` on a model of config `cfg`: the one construction path of
/// `argen generate` and `argen bench` ([`MethodOptions::decoder_config`]). `judged`: a
/// ShapesWorld judge is present (GridAR reformulates prompts only with it).
pub(crate) fn decoder_config(
    a: &GenerateArgs,
    cfg: &GptConfig,
    judged: bool,
) -> Result<DecoderConfig, String> {
    Ok(options(a).decoder_config(a.method, a.seed, cfg, judged)?)
}

/// The requirements of `dc` (validated by [`decoder_config`]).
pub(crate) fn requirements(dc: &DecoderConfig) -> Result<Requirements, String> {
    Ok(argen_engine::requirements(dc)?)
}

/// Checks `a`'s method parameters against the model before any compute (flag-level messages
/// first, then the decoder configuration's own checks).
pub(crate) fn check_method_args(a: &GenerateArgs, cfg: &GptConfig) -> Result<(), String> {
    if cfg.block_size > MAX_TOKENS {
        return Err(format!(
            "images of {} tokens exceed argen's limit of {MAX_TOKENS}",
            cfg.block_size
        ));
    }
    if !(1..=MAX_CANDIDATES as u32).contains(&a.n) {
        return Err(format!("--n must be between 1 and {MAX_CANDIDATES}"));
    }
    let m = match (a.method, a.inner) {
        (Method::Bon | Method::Gridar, Some(i)) => i,
        (m, _) => m,
    };
    if m == Method::Sjd && !(1..MAX_INPUTS as u32).contains(&a.window) {
        return Err(format!("--window must be between 1 and {}", MAX_INPUTS - 1));
    }
    let nodes = match a.draft {
        DraftArg::Chain | DraftArg::Auto => a.gamma as usize,
        DraftArg::Tree | DraftArg::AutoTree => a.tree_total as usize + a.tree_depth as usize,
    };
    if matches!(m, Method::Sd | Method::Lantern | Method::Gsd | Method::Vvs) && nodes >= MAX_INPUTS
    {
        return Err(format!(
            "drafts too large: --gamma, or --tree-total plus --tree-depth, must stay below {MAX_INPUTS}"
        ));
    }
    if !a.cfg.is_finite() {
        return Err("--cfg must be a finite number".into());
    }
    options(a)
        .sampler()
        .validate(cfg.vocab_size)
        .map_err(|e| e.to_string())?;
    decoder_config(a, cfg, a.prompt.is_some()).map(|_| ())
}

/// `argen generate`.
pub fn run(a: &GenerateArgs) -> Result<(), String> {
    let dir = resolve(a.model.as_deref())?;
    let cfg = dir.gpt_config()?;
    let a = &with_cost_profile(a, &dir)?;
    check_method_args(a, &cfg)?;
    let input = checked_input(a, &cfg)?;
    for path in [
        Some(&a.out),
        a.stats.as_ref(),
        a.tokens.as_ref(),
        a.trace.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        check_writable(path)?;
    }
    let mut check = match a.trace {
        Some(_) => RunCheck::Record(None),
        None => RunCheck::Off,
    };
    run_on_device(
        a,
        dir,
        input,
        Mode {
            check: &mut check,
            write: true,
            config: None,
        },
    )?;
    Ok(())
}

/// [`run_on`] on the device `a.device` asks for (the CPU runtime with `--fast-kernels` or
/// `ARGEN_FAST_KERNELS`, or CUDA device 0).
fn run_on_device(
    a: &GenerateArgs,
    dir: argen_engine::ModelDir,
    input: Input,
    mode: Mode<'_, '_>,
) -> Result<Generation, String> {
    match a.device {
        DeviceArg::Cpu => {
            crate::calibrate::apply_kernel_tuning(&dir.dir);
            let fast = a.fast_kernels || argen_cpu::fast_kernels_from_env();
            let cpu = Cpu::with_fast_kernels(a.threads, fast).map_err(|e| e.to_string())?;
            run_on(a, Engine::with_compute(dir, cpu)?, input, mode)
        }
        DeviceArg::Cuda => run_on(
            a,
            Engine::with_compute(dir, crate::device::cuda_compute()?)?,
            input,
            mode,
        ),
    }
}

/// The files a run of `dc` loads, whose bytes make the model fingerprint of a run file: the
/// configs, the target and VQ weights, the drafter's if the method drafts, and the caption file
/// if one was given.
pub(crate) fn fingerprint_files(
    dir: &argen_engine::ModelDir,
    drafter: bool,
    caption: Option<&std::path::Path>,
) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = ["gpt.json", "gpt.safetensors", "vq.json", "vq.safetensors"]
        .iter()
        .map(|f| dir.file(f))
        .collect();
    if drafter {
        files.push(dir.file("drafter.safetensors"));
    }
    files.extend(caption.map(std::path::Path::to_path_buf));
    files
}

/// What `argen replay` found.
pub(crate) enum ReplayOutcome {
    /// The model files differ from the recorded run's; nothing was replayed.
    ModelDiffers {
        /// The recorded fingerprint.
        recorded: String,
        /// This model's.
        found: String,
    },
    /// Every step, the stats and the tokens are identical.
    Identical {
        /// Steps compared.
        steps: u32,
    },
    /// The first divergence, and the final tokens of the trace and of the run.
    Diverged {
        /// The kernel class the replay ran (a run of another class is not expected to match).
        kernels: &'static str,
        /// Where and what.
        divergence: Divergence,
        /// The trace's final tokens.
        expected: Vec<u32>,
        /// The run's final tokens.
        found: Vec<u32>,
    },
}

/// Re-runs the recorded arguments `g` (or, for runs `argen bench` recorded, the recorded
/// decoder `config` with `g`'s prompt or class) against `trace` (`argen replay`), after checking
/// the model fingerprint against `recorded`.
pub(crate) fn replay_run(
    g: &GenerateArgs,
    config: Option<&DecoderConfig>,
    trace: Trace<'_>,
    recorded: &str,
) -> Result<ReplayOutcome, String> {
    let dir = resolve(g.model.as_deref())?;
    let cfg = dir.gpt_config()?;
    let dc = match config {
        Some(dc) => *dc,
        None => {
            let g = &with_cost_profile(g, &dir)?;
            check_method_args(g, &cfg)?;
            decoder_config(g, &cfg, g.prompt.is_some())?
        }
    };
    let input = checked_input(g, &cfg)?;
    let req = requirements(&dc)?;
    let found =
        crate::replay::fingerprint(&fingerprint_files(&dir, req.drafter, g.caption.as_deref()))?;
    if found != recorded {
        return Ok(ReplayOutcome::ModelDiffers {
            recorded: recorded.to_owned(),
            found,
        });
    }
    let mut check = RunCheck::Replay(trace, None);
    let outcome = run_on_device(
        g,
        dir,
        input,
        Mode {
            check: &mut check,
            write: false,
            config,
        },
    )?;
    match check {
        RunCheck::Replay(_, Some(Ok(steps))) => Ok(ReplayOutcome::Identical { steps }),
        RunCheck::Replay(t, Some(Err(divergence))) => Ok(ReplayOutcome::Diverged {
            kernels: outcome.kernels,
            divergence,
            expected: t.tokens().collect(),
            found: outcome.tokens,
        }),
        _ => Err("the replay did not run".into()),
    }
}

/// `argen generate` with `engine` (on the chosen device); with `write`, writes the outputs (and
/// the run file when `check` records).
fn run_on<C: Runtime>(
    a: &GenerateArgs,
    mut engine: Engine<C>,
    input: Input,
    mode: Mode<'_, '_>,
) -> Result<Generation, String> {
    let Mode {
        check,
        write,
        config,
    } = mode;
    let dc = match config {
        Some(dc) => *dc,
        None => decoder_config(a, engine.config(), a.prompt.is_some())?,
    };
    let req = requirements(&dc)?;
    let request = Request {
        image: write,
        score: write,
        ..Request::new(input, dc)
    };
    let g = run_request(&mut engine, &request, check, a.quiet, &mut NoObserver)?;
    if !write {
        return Ok(g);
    }
    let image = g.image.as_ref().ok_or("internal error: no image decoded")?;
    write_png(&a.out, image.width, image.height, &image.rgb)?;
    let s = &g.stats;
    if let Some(path) = &a.stats {
        let mut value = g.stats_json()?;
        value["method"] = json!(a.method.name());
        value["inner"] = json!(dc
            .scaling
            .map(|_| a.inner.unwrap_or(Method::Vanilla).name()));
        write_json(path, &value)?;
    }
    if let Some(path) = &a.tokens {
        write_json(path, &json!(g.tokens))?;
    }
    if let (Some(path), RunCheck::Record(Some(trace))) = (&a.trace, &*check) {
        let dir = engine.model_dir();
        let files = fingerprint_files(dir, req.drafter, a.caption.as_deref());
        let meta = json!({
            "argen": env!("CARGO_PKG_VERSION"),
            "rng_scheme": argen_core::rng::SCHEME_VERSION,
            "args": crate::replay::recorded_args(),
            "config": config_json(&dc)?,
            "seed": a.seed,
            "prompt": a.prompt,
            "class": a.class,
            "model_dir": dir.dir.display().to_string(),
            "model": {
                "fingerprint": crate::replay::fingerprint(&files)?,
                "files": files.iter().map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned())).collect::<Vec<_>>(),
            },
            "device": format!("{:?}", a.device).to_lowercase(),
            "threads": a.threads,
            "kernels": g.kernels,
            "stats": {
                "tokens": s.tokens,
                "target_forwards": s.target_forwards,
                "wall_seconds": g.wall,
            },
        });
        crate::output::write_bytes(path, &crate::replay::encode(&meta, trace)?)?;
    }
    crate::outln!(
        "{}: {} tokens, {} target forwards ({:.2} tokens/forward), {} drafter forwards, {:.2} s → {}",
        a.method.name(),
        s.tokens,
        s.target_forwards,
        s.tokens_per_target_forward(),
        s.draft_forwards,
        g.wall,
        a.out.display()
    )?;
    if matches!(dc.method, MethodConfig::AutoSpeculative(_)) {
        // What the cost-aware policy chose: steps per draft depth (0 = plain target step).
        let h = &s.draft_depth_hist;
        if h.iter().all(|&n| n == 0) {
            // `argen_core::decode::auto_draft`, "Never drafting".
            crate::outln!(
                "draft auto: the cost profile rules drafting out at every step; decoded with \
                 the plain (vanilla) decoder"
            )?;
        } else {
            let last = h.iter().rposition(|&n| n > 0).unwrap_or(0);
            let hist: Vec<String> = (0..=last).map(|d| format!("{d}:{}", h[d])).collect();
            crate::outln!(
                "draft auto: mean depth {:.2}, steps per depth {}",
                s.mean_draft_depth(),
                hist.join(" ")
            )?;
        }
    }
    Ok(g)
}

/// The decoder configuration as JSON (`argen_core::decode::any`, "JSON shape").
pub(crate) fn config_json(dc: &DecoderConfig) -> Result<serde_json::Value, String> {
    serde_json::to_value(dc).map_err(|e| format!("cannot write the decoder configuration: {e}"))
}

/// How [`run_on`] runs: recorded or checked (`check`), whether it writes the outputs, and the
/// decoder configuration when it is given rather than derived from the flags (replays of runs
/// `argen bench` recorded).
struct Mode<'a, 't> {
    check: &'a mut RunCheck<'t>,
    write: bool,
    config: Option<&'a DecoderConfig>,
}

/// Whether a run is recorded or checked against a recording (`argen generate --trace`,
/// `argen replay`).
#[allow(clippy::large_enum_variant)] // one per run, never in a loop
pub(crate) enum RunCheck<'t> {
    /// Neither.
    Off,
    /// Record the run; the trace bytes are left here.
    Record(Option<Vec<u8>>),
    /// Compare the run with this trace; the first divergence (or none) is left here.
    Replay(Trace<'t>, Option<Result<u32, Divergence>>),
}

/// The trace header of a run of `dc`: decoder name `argen/<method>`, the configuration's hash.
fn trace_header(dc: &DecoderConfig) -> (String, u64) {
    let name = match dc.scaling {
        Some(s) => format!("argen/{}/{}", s.name(), dc.method.name()),
        None => format!("argen/{}", dc.method.name()),
    };
    (name, config_hash(dc))
}

/// Runs `request` on `engine`, recording or checking it as `check` says, with a progress bar
/// unless `quiet`, with `extra` watching the decoding loop too (the bench's call counts).
pub(crate) fn run_request<C: Runtime, O: Observer>(
    engine: &mut Engine<C>,
    request: &Request,
    check: &mut RunCheck<'_>,
    quiet: bool,
    extra: &mut O,
) -> Result<Generation, String> {
    let dc = &request.config;
    let req = requirements(dc)?;
    let mut progress = (Progress::new(req.tokens * req.sequences, quiet), extra);
    let (name, hash) = trace_header(dc);
    let header = Header::new(&name, hash, dc.base.seed, dc.base.tokens);
    let result = match check {
        RunCheck::Off => engine.generate_with(request, &mut progress),
        RunCheck::Record(out) => {
            let rec = Recorder::new(Vec::new(), &header);
            engine
                .generate_observed(request, (&mut progress, rec), |(_, rec), dec| {
                    rec.finish(dec)
                })
                .and_then(|(g, finished)| {
                    let (bytes, _) = finished.map_err(|e| {
                        argen_engine::Error::runtime(format!("cannot record the run: {e}"))
                    })?;
                    *out = Some(bytes);
                    Ok(g)
                })
        }
        RunCheck::Replay(trace, out) => {
            if let Err(d) = trace.check_header(&header) {
                *out = Some(Err(d));
                progress.0.finish();
                return Ok(Generation {
                    tokens: Vec::new(),
                    image: None,
                    stats: Default::default(),
                    wall: 0.0,
                    calls: (0, 0),
                    kernels: "",
                    alignment: None,
                    config: *dc,
                    prompt: None,
                    size: (0, 0),
                });
            }
            let rp = Replayer::new(*trace);
            engine
                .generate_observed(request, (&mut progress, rp), |(_, rp), dec| {
                    let steps = rp.steps();
                    rp.finish(dec).map(|()| steps)
                })
                .map(|(g, finished)| {
                    *out = Some(finished);
                    g
                })
        }
    };
    progress.0.finish();
    Ok(result?)
}

/// Fails early, before any compute, if `path` cannot be created.
pub(crate) fn check_writable(path: &std::path::Path) -> Result<(), String> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            parent.display()
        ));
    }
    if path.is_dir() {
        return Err(format!(
            "cannot write {}: it is a directory",
            path.display()
        ));
    }
    Ok(())
}

/// One line per detected object, for `argen score`'s text output.
fn detection_line(d: &argen_shapes::Detection) -> String {
    format!(
        "  {} {} at ({:.1}, {:.1}), {}×{} px",
        d.colour,
        d.shape
            .map_or("blob (no shape)".to_string(), |s| s.to_string()),
        d.cx,
        d.cy,
        d.width(),
        d.height()
    )
}

/// `argen score`.
pub fn score_image(a: &ScoreArgs) -> Result<(), String> {
    let prompt = shapes::parse_prompt(&a.prompt)?;
    let img = crate::output::read_score_png(&a.image, 32, 1024)?;
    let s = argen_shapes::score(&prompt, &img).map_err(|e| {
        e.to_string()
            .replace("<memory>", &a.image.display().to_string())
    })?;
    if a.json {
        let text = serde_json::to_string_pretty(&alignment_json(&s)).map_err(|e| e.to_string())?;
        return crate::outln!("{text}");
    }
    let v = &s.verdicts;
    let mut text = format!("prompt:  {prompt}\nobjects: {}\n", s.scene.objects.len());
    for d in &s.scene.objects {
        text.push_str(&detection_line(d));
        text.push('\n');
    }
    for (name, ok) in [
        ("count", v.count),
        ("shape", v.shape),
        ("colour", v.colour),
        ("spatial", v.spatial),
        ("layout", v.layout),
    ] {
        text.push_str(&format!("{name:8} {}\n", if ok { "yes" } else { "no" }));
    }
    crate::outln!(
        "{text}aligned: {} (soft score {:.3})",
        if s.aligned { "yes" } else { "no" },
        s.soft
    )
}

/// `argen decode`.
pub fn decode(a: &DecodeArgs) -> Result<(), String> {
    let dir = resolve(a.model.as_deref())?;
    check_writable(&a.out)?;
    let tokens = read_tokens(&a.tokens)?;
    let cpu = Cpu::new(a.threads).map_err(|e| e.to_string())?;
    let gpt_cfg = dir.gpt_config().ok();
    let vq = dir.vq(&cpu, gpt_cfg.as_ref())?;
    let size = vq.config().codebook_size;
    if let Some((i, &t)) = tokens.iter().enumerate().find(|(_, &t)| t as usize >= size) {
        return Err(format!(
            "{}: token {t} at position {i} is out of range for a codebook of {size}",
            a.tokens.display()
        ));
    }
    let grid = (tokens.len() as f64).sqrt() as usize;
    if grid == 0 || grid * grid != tokens.len() {
        return Err(format!(
            "{}: {} tokens do not form a square grid",
            a.tokens.display(),
            tokens.len()
        ));
    }
    let image = vq.decode(&tokens, grid, grid).map_err(|e| e.to_string())?;
    write_png(&a.out, image.width, image.height, &image.to_rgb8())?;
    crate::outln!(
        "decoded {} tokens → {}×{} px → {}",
        tokens.len(),
        image.width,
        image.height,
        a.out.display()
    )
}
