//! `argen generate` and `argen decode`: one generic path for every decoding method.

use argen_core::accept::neighbours::build_table_with;
use argen_core::accept::{Criterion, GroupedParams, LanternParams, Metric, NeighbourTable};
use argen_core::decode::{
    BestOfN, Config, Decoder, DraftShape, GridAr, GridArConfig, GuidanceMode, Jacobi, JacobiConfig,
    JacobiInit, Schedule, Speculative, SpeculativeConfig, Stats, Vanilla, Vvs, VvsConfig,
    RELEASE_W,
};
use argen_core::SamplerParams;
use argen_cpu::Cpu;
use argen_model::{
    host_capacity, Compute, Condition, Drafter, Gpt, GptConfig, Judge, ModelType, VqDecoder,
};
use serde_json::json;

use crate::args::{
    CriterionArg, DecodeArgs, DeviceArg, DraftArg, GenerateArgs, JacobiInitArg, Method, ScoreArgs,
    VvsScheduleArg,
};
use crate::device::Runtime;
use crate::model_dir::resolve;
use crate::output::{read_tokens, write_json, write_png};
use crate::progress::Progress;
use crate::shapes::{self, ShapesJudge};

/// Most image tokens (32 × 32: LlamaGen at 512 px).
pub const MAX_TOKENS: usize = 1024;
/// Most inputs of one target run (draft tree nodes + 1).
pub const MAX_INPUTS: usize = 64;
/// Most candidates of Best-of-N and GridAR.
pub const MAX_CANDIDATES: usize = 16;

/// What every method's run needs: the loaded models (loaded once, reused by every run) and the
/// conditions of the run's sequences.
pub(crate) struct Env<C: Compute> {
    /// The target.
    pub(crate) gpt: Gpt<C>,
    /// The drafter, if speculative methods will run.
    pub(crate) drafter: Option<Drafter<C>>,
    /// Conditional and unconditional inputs, one pair per sequence.
    pub(crate) conds: Vec<(Condition, Condition)>,
    /// No progress bar.
    pub(crate) quiet: bool,
}

/// The result of one run.
pub(crate) struct Outcome {
    /// The chosen image's tokens.
    pub(crate) tokens: Vec<u32>,
    /// The decoder's counters.
    pub(crate) stats: Stats,
    /// Seconds spent decoding (judge calls included, final VQ decode excluded).
    pub(crate) wall: f64,
}

/// Inputs derived from the model directory that some methods need, built on first use and
/// kept for later runs (LANTERN's neighbour tables, GSD's embedding table).
pub(crate) struct Resources<'d> {
    dir: &'d crate::model_dir::ModelDir,
    tables: Vec<(usize, Metric, Vec<u32>)>,
    embedding: Option<Vec<f32>>,
}

impl<'d> Resources<'d> {
    /// Nothing built yet.
    pub(crate) fn new(dir: &'d crate::model_dir::ModelDir) -> Self {
        Resources {
            dir,
            tables: Vec::new(),
            embedding: None,
        }
    }

    /// Builds (once per `k` and metric) LANTERN's `vocab × k` latent-neighbour table from the
    /// stored codebook rows under `metric` (`Metric::Normalised` ranks exactly the rows the VQ
    /// decoder looks up when the model normalises at lookup).
    fn lantern_table<C: Compute>(
        &mut self,
        vq: &VqDecoder<C>,
        k: usize,
        metric: Metric,
    ) -> Result<&[u32], String> {
        let i = match self.tables.iter().position(|t| (t.0, t.1) == (k, metric)) {
            Some(i) => i,
            None => {
                let dim = vq.config().codebook_embed_dim;
                let t = build_table_with(vq.raw_codebook(), dim, k, metric)
                    .map_err(|e| e.to_string())?;
                self.tables.push((k, metric, t));
                self.tables.len() - 1
            }
        };
        Ok(&self.tables[i].2)
    }

    /// Reads (once) the target's input embedding table.
    fn embedding(&mut self, cfg: &GptConfig) -> Result<&[f32], String> {
        if self.embedding.is_none() {
            self.embedding = Some(self.dir.token_embeddings(cfg)?);
        }
        Ok(self.embedding.as_deref().unwrap_or(&[]))
    }
}

fn execute<'a, D: Decoder, C: Runtime>(
    dec: &mut D,
    env: &'a mut Env<C>,
    judge: Option<&'a mut (dyn Judge + 'a)>,
    total_tokens: u32,
) -> Result<Outcome, String> {
    let mut progress = Progress::new(total_tokens, env.quiet);
    let result = C::decode(
        dec,
        &mut env.gpt,
        env.drafter.as_mut(),
        judge,
        &env.conds,
        &mut progress,
    );
    progress.finish();
    let (stats, wall) = result?;
    Ok(Outcome {
        tokens: dec.tokens(dec.result_seq()).to_vec(),
        stats,
        wall,
    })
}

pub(crate) fn condition(
    a: &GenerateArgs,
    cfg: &GptConfig,
) -> Result<(Condition, Condition), String> {
    if let Some(text) = &a.prompt {
        shapes::check_model(cfg)?;
        return Ok(shapes::conditions(&shapes::parse_prompt(text)?));
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
            Ok((Condition::Class(Some(class)), Condition::Class(None)))
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
            Ok((
                Condition::Caption {
                    features: Some(features),
                    pad: a.caption_pad,
                },
                Condition::Caption {
                    features: None,
                    pad: a.caption_pad,
                },
            ))
        }
    }
}

fn criterion_of(a: &GenerateArgs) -> Criterion<'static> {
    match a.criterion {
        CriterionArg::Exact => Criterion::Exact,
        CriterionArg::Coupled => Criterion::Coupled,
    }
}

fn sampler(a: &GenerateArgs) -> SamplerParams {
    SamplerParams {
        temperature: a.temperature,
        top_k: (a.top_k > 0).then_some(a.top_k),
        top_p: (a.top_p != 1.0).then_some(a.top_p),
        min_p: None,
    }
}

fn shape(a: &GenerateArgs) -> DraftShape {
    match a.draft {
        DraftArg::Chain => DraftShape::Chain { gamma: a.gamma },
        DraftArg::Tree => DraftShape::Tree {
            total: a.tree_total,
            depth: a.tree_depth,
            top_k: a.tree_top_k,
        },
    }
}

/// Uncommitted entries the runs of this method can leave: target inputs and drafted nodes.
pub(crate) fn pending_needed(a: &GenerateArgs) -> usize {
    match (a.method, a.draft) {
        (Method::Vanilla | Method::Bon | Method::Gridar, _) => 1,
        (Method::Sjd, _) => a.window as usize + 1,
        (_, DraftArg::Chain) => a.gamma as usize + 1,
        (_, DraftArg::Tree) => {
            let expanded = a.tree_top_k as usize * a.tree_depth.saturating_sub(1) as usize;
            // VVS prepends up to `depth` skipped tokens to the next tree.
            (a.tree_total as usize + a.tree_depth as usize + 1).max(expanded)
        }
    }
}

/// Checks `a`'s method parameters against the model before any compute.
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
    if a.method == Method::Sjd && !(1..MAX_INPUTS as u32).contains(&a.window) {
        return Err(format!("--window must be between 1 and {}", MAX_INPUTS - 1));
    }
    let nodes = match a.draft {
        DraftArg::Chain => a.gamma as usize,
        DraftArg::Tree => a.tree_total as usize + a.tree_depth as usize,
    };
    if matches!(
        a.method,
        Method::Sd | Method::Lantern | Method::Gsd | Method::Vvs
    ) && nodes >= MAX_INPUTS
    {
        return Err(format!(
            "drafts too large: --gamma, or --tree-total plus --tree-depth, must stay below {MAX_INPUTS}"
        ));
    }
    if !a.cfg.is_finite() {
        return Err("--cfg must be a finite number".into());
    }
    sampler(a)
        .validate(cfg.vocab_size)
        .map_err(|e| e.to_string())
}

/// Whether `method` needs the drafter.
pub(crate) fn is_speculative(method: Method) -> bool {
    matches!(
        method,
        Method::Sd | Method::Lantern | Method::Gsd | Method::Vvs
    )
}

/// Sequences a run of `a` decodes at once.
pub(crate) fn sequences(a: &GenerateArgs) -> usize {
    if matches!(a.method, Method::Bon | Method::Gridar) {
        a.n as usize
    } else {
        1
    }
}

/// `argen generate`.
pub fn run(a: &GenerateArgs) -> Result<(), String> {
    let dir = resolve(a.model.as_deref())?;
    let cfg = dir.gpt_config()?;
    check_method_args(a, &cfg)?;
    let conds = condition(a, &cfg)?;
    for path in [Some(&a.out), a.stats.as_ref(), a.tokens.as_ref()]
        .into_iter()
        .flatten()
    {
        check_writable(path)?;
    }
    match a.device {
        DeviceArg::Cpu => run_on(
            a,
            &dir,
            &cfg,
            conds,
            Cpu::new(a.threads).map_err(|e| e.to_string())?,
        ),
        DeviceArg::Cuda => run_on(a, &dir, &cfg, conds, crate::device::cuda_compute()?),
    }
}

/// `argen generate` on the compute device `c`.
fn run_on<C: Runtime>(
    a: &GenerateArgs,
    dir: &crate::model_dir::ModelDir,
    cfg: &GptConfig,
    conds: (Condition, Condition),
    c: C,
) -> Result<(), String> {
    let seqs = sequences(a);
    let cap = host_capacity(cfg, seqs, pending_needed(a));
    let speculative = is_speculative(a.method);
    let vq = dir.vq(&c, Some(cfg))?;
    let gpt = dir.gpt(&c, cfg, cap)?;
    let drafter = if speculative {
        Some(dir.drafter(&c, cfg, cap)?)
    } else {
        None
    };
    let mut env = Env {
        gpt,
        drafter,
        conds: vec![conds; seqs],
        quiet: a.quiet,
    };
    let prompt = a.prompt.as_deref().map(shapes::parse_prompt).transpose()?;
    let mut shapes_judge = match &prompt {
        Some(p) => Some(ShapesJudge::new(&vq, p.clone(), cfg.grid())?),
        None => None,
    };
    let mut res = Resources::new(dir);
    let (outcome, params) = run_method(a, cfg, &vq, &mut res, &mut env, shapes_judge.as_mut())?;
    let n_tokens = cfg.block_size as u32;
    let grid = cfg.grid();
    let alignment = match &shapes_judge {
        Some(j) => Some(alignment_json(&j.score_tokens(&outcome.tokens)?)),
        None => None,
    };
    let image = vq
        .decode(&outcome.tokens, grid, grid)
        .map_err(|e| e.to_string())?;
    write_png(&a.out, image.width, image.height, &image.to_rgb8())?;
    let s = &outcome.stats;
    if let Some(path) = &a.stats {
        let value = json!({
            "method": a.method.name(),
            "seed": a.seed,
            "tokens": s.tokens,
            "image_tokens": n_tokens,
            "target_forwards": s.target_forwards,
            "target_rows": s.target_rows,
            "prefills": s.prefills,
            "draft_forwards": s.draft_forwards,
            "draft_rows": s.draft_rows,
            "verify_steps": s.verify_steps,
            "skipped_steps": s.skipped_steps,
            "verifier_calls": s.verifier_calls,
            "scorer_calls": s.scorer_calls,
            "reformulations": s.reformulations,
            "tokens_per_target_forward": s.tokens_per_target_forward(),
            "mean_accepted_length": s.mean_accepted_length(),
            "accepted_hist": s.accepted_hist.to_vec(),
            "params": params,
            "image": { "width": image.width, "height": image.height },
            "prompt": a.prompt,
            "alignment": alignment,
            "wall_seconds": outcome.wall,
        });
        write_json(path, &value)?;
    }
    if let Some(path) = &a.tokens {
        write_json(path, &json!(outcome.tokens))?;
    }
    println!(
        "{}: {} tokens, {} target forwards ({:.2} tokens/forward), {} drafter forwards, {:.2} s → {}",
        a.method.name(),
        s.tokens,
        s.target_forwards,
        s.tokens_per_target_forward(),
        s.draft_forwards,
        outcome.wall,
        a.out.display()
    );
    Ok(())
}

/// Runs method `a.method` once with the loaded models in `env` (their conditions set for
/// [`sequences`]`(a)` sequences) and returns the outcome and the method's parameters for stats.
/// `judge`: the ShapesWorld judge (else the model's implicit classifier judges).
pub(crate) fn run_method<C: Runtime>(
    a: &GenerateArgs,
    cfg: &GptConfig,
    vq: &VqDecoder<C>,
    res: &mut Resources<'_>,
    env: &mut Env<C>,
    shapes_judge: Option<&mut ShapesJudge<'_, C>>,
) -> Result<(Outcome, serde_json::Map<String, serde_json::Value>), String> {
    let reformulate = shapes_judge.is_some() && !a.no_reformulate;
    let guidance = if a.cfg == 1.0 {
        GuidanceMode::None
    } else {
        GuidanceMode::TwoWay { scale: a.cfg }
    };
    let base = Config {
        seed: a.seed,
        stream: 0,
        seq: 0,
        tokens: cfg.block_size as u32,
        width: cfg.grid() as u32,
        sampler: sampler(a),
        guidance,
    };
    let n_tokens = base.tokens;
    let err = |e: argen_core::Error| e.to_string();
    let mut params = serde_json::Map::new();
    let outcome = match a.method {
        Method::Vanilla => {
            let mut dec = Box::new(Vanilla::<MAX_TOKENS>::new(base).map_err(err)?);
            execute(
                &mut *dec,
                env,
                shapes_judge.map(|j| j as &mut dyn Judge),
                n_tokens,
            )?
        }
        Method::Sd | Method::Lantern | Method::Gsd => {
            let criterion = match a.method {
                Method::Sd => criterion_of(a),
                Method::Lantern => {
                    let k = a.lantern_k.min(cfg.vocab_size - 1).max(1);
                    let metric = Metric::from(a.lantern_metric);
                    let table = res.lantern_table(vq, k, metric)?;
                    params.insert("lantern_metric".into(), json!(metric.name()));
                    params.insert("delta".into(), json!(a.delta));
                    params.insert("lantern_k".into(), json!(k));
                    params.insert("lambda".into(), json!(a.lambda));
                    Criterion::Lantern(LanternParams {
                        neighbours: NeighbourTable::new(table, cfg.vocab_size, k).map_err(err)?,
                        k,
                        delta: a.delta,
                        lambda: a.lambda,
                    })
                }
                _ => Criterion::Grouped(GroupedParams::paper(res.embedding(cfg)?, cfg.dim)),
            };
            params.insert("criterion".into(), json!(criterion.name()));
            params.insert("draft".into(), json!(format!("{:?}", shape(a))));
            let sc = SpeculativeConfig {
                base,
                draft_sampler: base.sampler,
                shape: shape(a),
            };
            let mut dec =
                Box::new(Speculative::<MAX_TOKENS, MAX_INPUTS>::new(sc, criterion).map_err(err)?);
            execute(
                &mut *dec,
                env,
                shapes_judge.map(|j| j as &mut dyn Judge),
                n_tokens,
            )?
        }
        Method::Vvs => {
            let schedule = match a.vvs_schedule {
                VvsScheduleArg::Uniform => Schedule::Uniform {
                    interval: a.vvs_interval,
                },
                VvsScheduleArg::Dynamic => Schedule::Dynamic {
                    threshold: a.vvs_threshold,
                    alpha: 0.9,
                },
            };
            params.insert("criterion".into(), json!(criterion_of(a).name()));
            params.insert("schedule".into(), json!(format!("{schedule:?}")));
            params.insert("draft".into(), json!(format!("{:?}", shape(a))));
            let vc = VvsConfig {
                spec: SpeculativeConfig {
                    base,
                    draft_sampler: base.sampler,
                    shape: shape(a),
                },
                schedule,
                warmup: 5,
                codebook: vq.codebook(),
                dim: vq.config().codebook_embed_dim as u32,
            };
            let mut dec =
                Box::new(Vvs::<MAX_TOKENS, MAX_INPUTS>::new(vc, criterion_of(a)).map_err(err)?);
            execute(
                &mut *dec,
                env,
                shapes_judge.map(|j| j as &mut dyn Judge),
                n_tokens,
            )?
        }
        Method::Sjd => {
            let init = match a.jacobi_init {
                JacobiInitArg::Random => JacobiInit::Random,
                JacobiInitArg::CopyLeft => JacobiInit::CopyLeft,
            };
            params.insert("criterion".into(), json!(criterion_of(a).name()));
            params.insert("window".into(), json!(a.window));
            params.insert("init".into(), json!(format!("{init:?}")));
            let jc = JacobiConfig {
                base,
                window: a.window,
                init,
            };
            let mut dec =
                Box::new(Jacobi::<MAX_TOKENS, MAX_INPUTS>::new(jc, criterion_of(a)).map_err(err)?);
            execute(
                &mut *dec,
                env,
                shapes_judge.map(|j| j as &mut dyn Judge),
                n_tokens,
            )?
        }
        Method::Bon => {
            params.insert("n".into(), json!(a.n));
            let mut dec = Box::new(
                BestOfN::<Vanilla<MAX_TOKENS>, MAX_CANDIDATES>::new(base, a.n, Vanilla::new)
                    .map_err(err)?,
            );
            execute(
                &mut *dec,
                env,
                shapes_judge.map(|j| j as &mut dyn Judge),
                n_tokens * a.n,
            )?
        }
        Method::Gridar => {
            params.insert("n".into(), json!(a.n));
            let gc = GridArConfig {
                base,
                n: a.n,
                verifier: true,
                reformulate,
                w: RELEASE_W,
            };
            params.insert("reformulate".into(), json!(reformulate));
            let mut dec =
                Box::new(GridAr::<Vanilla<MAX_TOKENS>, MAX_CANDIDATES>::vanilla(gc).map_err(err)?);
            execute(
                &mut *dec,
                env,
                shapes_judge.map(|j| j as &mut dyn Judge),
                n_tokens * a.n,
            )?
        }
    };
    Ok((outcome, params))
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

pub(crate) fn alignment_json(s: &argen_shapes::Score) -> serde_json::Value {
    let v = &s.verdicts;
    json!({
        "aligned": s.aligned,
        "soft": s.soft,
        "count": v.count,
        "shape": v.shape,
        "colour": v.colour,
        "spatial": v.spatial,
        "layout": v.layout,
        "objects": s.scene.objects.len(),
        "detections": s.scene.objects.iter().map(detection_json).collect::<Vec<_>>(),
    })
}

/// What the scorer saw of one object (`shape` null: a blob no shape noun describes).
fn detection_json(d: &argen_shapes::Detection) -> serde_json::Value {
    json!({
        "colour": d.colour.to_string(),
        "shape": d.shape.map(|s| s.to_string()),
        "cx": d.cx,
        "cy": d.cy,
        "width": d.width(),
        "height": d.height(),
        "area": d.area,
        "shape_iou": d.shape_iou,
        "skew": d.skew,
        "dependence": d.dependence,
        "cut": d.cut,
    })
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
