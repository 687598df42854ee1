//! `argen generate` and `argen decode`: flags → one [`DecoderConfig`] → the engine.
//!
//! The flags become the engine's [`MethodOptions`] and a [`DecoderConfig`]
//! ([`decoder_config`]); [`argen_engine::Engine`] loads the models its requirements ask for,
//! builds the tables, drives [`argen_core::decode::AnyDecoder`] and VQ-decodes the result. This
//! module only checks flags, reads `--caption`, shows progress and writes the outputs.
//! `argen bench` uses the same path per row.

use argen_core::decode::{DecoderConfig, Requirements, MAX_CANDIDATES, MAX_INPUTS, MAX_TOKENS};
use argen_cpu::Cpu;
use argen_engine::method::{Criterion, Draft, VvsSchedule, WindowInit};
use argen_engine::{Engine, Input, MethodOptions, Request, Runtime};
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
/// from `--caption`); the engine checks it against the model.
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
            Ok(Input::Class(class))
        }
        ModelType::T2i => {
            let path = a.caption.as_ref().ok_or(
                "this is a text-conditional model: give --prompt TEXT (ShapesWorld) or --caption \
                 FILE (raw f32 caption features)",
            )?;
            let bytes =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let want = cfg.cls_token_num * cfg.caption_dim;
            if bytes.len() != want * 4 {
                return Err(format!(
                    "{}: {} bytes, expected {want} little-endian f32 values ({} × {})",
                    path.display(),
                    bytes.len(),
                    cfg.cls_token_num,
                    cfg.caption_dim
                ));
            }
            let features: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if features.iter().any(|x| !x.is_finite()) {
                return Err(format!(
                    "{}: caption features contain NaN or infinity",
                    path.display()
                ));
            }
            Ok(Input::Caption {
                features,
                pad: a.caption_pad,
            })
        }
    }
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
    }
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
        DraftArg::Chain => a.gamma as usize,
        DraftArg::Tree => a.tree_total as usize + a.tree_depth as usize,
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
    check_method_args(a, &cfg)?;
    let input = input(a, &cfg)?;
    argen_engine::conditions(&cfg, &input)?;
    for path in [Some(&a.out), a.stats.as_ref(), a.tokens.as_ref()]
        .into_iter()
        .flatten()
    {
        check_writable(path)?;
    }
    match a.device {
        DeviceArg::Cpu => run_on(
            a,
            Engine::with_compute(dir, Cpu::new(a.threads).map_err(|e| e.to_string())?)?,
            input,
        ),
        DeviceArg::Cuda => run_on(
            a,
            Engine::with_compute(dir, crate::device::cuda_compute()?)?,
            input,
        ),
    }
}

/// `argen generate` with the engine `engine` (on the chosen device).
fn run_on<C: Runtime>(a: &GenerateArgs, mut engine: Engine<C>, input: Input) -> Result<(), String> {
    let dc = decoder_config(a, engine.config(), a.prompt.is_some())?;
    let req = requirements(&dc)?;
    let mut progress = Progress::new(req.tokens * req.sequences, a.quiet);
    let result = engine.generate_with(&Request::new(input, dc), &mut progress);
    progress.finish();
    let g = result?;
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
    println!(
        "{}: {} tokens, {} target forwards ({:.2} tokens/forward), {} drafter forwards, {:.2} s → {}",
        a.method.name(),
        s.tokens,
        s.target_forwards,
        s.tokens_per_target_forward(),
        s.draft_forwards,
        g.wall,
        a.out.display()
    );
    Ok(())
}

/// The decoder configuration as JSON (`argen_core::decode::any`, "JSON shape").
pub(crate) fn config_json(dc: &DecoderConfig) -> Result<serde_json::Value, String> {
    Ok(argen_engine::config_json(dc)?)
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
    let img = argen_shapes::RgbImage::load_png(&a.image).map_err(|e| e.to_string())?;
    let s = argen_shapes::score(&prompt, &img).map_err(|e| {
        e.to_string()
            .replace("<memory>", &a.image.display().to_string())
    })?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&alignment_json(&s)).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let v = &s.verdicts;
    println!("prompt:  {prompt}");
    println!("objects: {}", s.scene.objects.len());
    for d in &s.scene.objects {
        println!("{}", detection_line(d));
    }
    for (name, ok) in [
        ("count", v.count),
        ("shape", v.shape),
        ("colour", v.colour),
        ("spatial", v.spatial),
        ("layout", v.layout),
    ] {
        println!("{name:8} {}", if ok { "yes" } else { "no" });
    }
    println!(
        "aligned: {} (soft score {:.3})",
        if s.aligned { "yes" } else { "no" },
        s.soft
    );
    Ok(())
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
    println!(
        "decoded {} tokens → {}×{} px → {}",
        tokens.len(),
        image.width,
        image.height,
        a.out.display()
    );
    Ok(())
}
