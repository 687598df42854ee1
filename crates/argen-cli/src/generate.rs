//! `argen generate` and `argen decode`: one construction path and one drive loop for every
//! decoding method.
//!
//! The flags become a [`DecoderConfig`] ([`decoder_config`]); its [`Requirements`] size the
//! models' capacities, say whether the drafter is loaded and which tables ([`Tables`]) are
//! built; [`AnyDecoder`] runs it ([`run_config`]). `argen bench` uses the same path per row.

use argen_core::accept::neighbours::build_table_with;
use argen_core::accept::{Metric, NeighbourTable};
use argen_core::decode::{
    AnyDecoder, Config, CriterionConfig, Decoder, DecoderConfig, DraftShape, GuidanceMode,
    JacobiInit, JacobiParams, MethodConfig, Requirements, Resources, ScalingConfig, Schedule,
    SpeculativeParams, Stats, VvsParams, MAX_CANDIDATES, MAX_INPUTS, MAX_TOKENS, RELEASE_W,
};
use argen_core::trace::{config_hash, Divergence, Header, Recorder, Replayer, Trace};
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

/// What every run needs: the loaded models (loaded once, reused by every run) and the
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
    /// Model forwards run, `(target, drafter)`: a batched step counts once.
    pub(crate) calls: (u32, u32),
}

/// The tables criteria borrow, derived from the model directory, built on first use and kept
/// for later runs (LANTERN's neighbour tables per `k` and metric, GSD's embedding); the VQ
/// codebook (VVS's dynamic schedule) is the VQ decoder's own.
pub(crate) struct Tables<'d> {
    dir: &'d crate::model_dir::ModelDir,
    neighbours: Vec<(usize, Metric, Vec<u32>)>,
    embedding: Option<Vec<f32>>,
}

impl<'d> Tables<'d> {
    /// Nothing built yet.
    pub(crate) fn new(dir: &'d crate::model_dir::ModelDir) -> Self {
        Tables {
            dir,
            neighbours: Vec::new(),
            embedding: None,
        }
    }

    /// Builds what `req` asks for and has not been built yet.
    fn prepare<C: Compute>(
        &mut self,
        req: &Requirements,
        vq: &VqDecoder<C>,
        cfg: &GptConfig,
    ) -> Result<(), String> {
        if let Some(n) = req.neighbours {
            let (k, metric) = (n.k as usize, n.metric);
            if !self.neighbours.iter().any(|t| (t.0, t.1) == (k, metric)) {
                // `Metric::Normalised` ranks exactly the rows the VQ decoder looks up.
                let dim = vq.config().codebook_embed_dim;
                let t = build_table_with(vq.raw_codebook(), dim, k, metric)
                    .map_err(|e| e.to_string())?;
                self.neighbours.push((k, metric, t));
            }
        }
        if req.embedding && self.embedding.is_none() {
            self.embedding = Some(self.dir.token_embeddings(cfg)?);
        }
        Ok(())
    }

    /// The resources `req` asks for (built by [`Tables::prepare`]).
    fn resources<'t, C: Compute>(
        &'t self,
        req: &Requirements,
        vq: &'t VqDecoder<C>,
        cfg: &GptConfig,
    ) -> Result<Resources<'t>, String> {
        let mut res = Resources::none();
        if let Some(n) = req.neighbours {
            let (k, metric) = (n.k as usize, n.metric);
            if let Some((_, _, ids)) = self.neighbours.iter().find(|t| (t.0, t.1) == (k, metric)) {
                let table =
                    NeighbourTable::new(ids, cfg.vocab_size, k).map_err(|e| e.to_string())?;
                res = res.with_neighbours(table);
            }
        }
        if let Some(e) = self.embedding.as_deref().filter(|_| req.embedding) {
            res = res.with_embedding(e, cfg.dim);
        }
        if req.codebook {
            res = res.with_codebook(vq.codebook(), vq.config().codebook_embed_dim);
        }
        Ok(res)
    }
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
            let want = cfg.cls_token_num as u64 * cfg.caption_dim as u64 * 4;
            let bytes = crate::output::read_bounded("--caption", path, want)?;
            let features = crate::parse::parse_caption(&bytes, cfg.cls_token_num, cfg.caption_dim)
                .map_err(|e| format!("--caption {}: {e}", path.display()))?;
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

fn criterion_of(a: &GenerateArgs) -> CriterionConfig {
    match a.criterion {
        CriterionArg::Exact => CriterionConfig::Exact,
        CriterionArg::Coupled => CriterionConfig::Coupled,
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

/// The single-image method `m` with `a`'s flags, for a vocabulary of `vocab` tokens (LANTERN's
/// `k` is capped at `vocab − 1`). `None` for the test-time scaling methods.
fn method_config(m: Method, a: &GenerateArgs, vocab: usize) -> Option<MethodConfig> {
    let speculative = |criterion| SpeculativeParams {
        shape: shape(a),
        criterion,
        draft_sampler: None,
    };
    Some(match m {
        Method::Vanilla => MethodConfig::Vanilla,
        Method::Sd => MethodConfig::Speculative(speculative(criterion_of(a))),
        Method::Lantern => MethodConfig::Speculative(speculative(CriterionConfig::Lantern {
            k: a.lantern_k.min(vocab.saturating_sub(1)).max(1) as u32,
            delta: a.delta,
            lambda: a.lambda,
            metric: Metric::from(a.lantern_metric),
        })),
        Method::Gsd => MethodConfig::Speculative(speculative(CriterionConfig::GROUPED_PAPER)),
        Method::Vvs => MethodConfig::Vvs(VvsParams {
            speculative: speculative(criterion_of(a)),
            schedule: match a.vvs_schedule {
                VvsScheduleArg::Uniform => Schedule::Uniform {
                    interval: a.vvs_interval,
                },
                VvsScheduleArg::Dynamic => Schedule::Dynamic {
                    threshold: a.vvs_threshold,
                    alpha: 0.9,
                },
            },
            warmup: 5,
        }),
        Method::Sjd => MethodConfig::Jacobi(JacobiParams {
            window: a.window,
            init: match a.jacobi_init {
                JacobiInitArg::Random => JacobiInit::Random,
                JacobiInitArg::CopyLeft => JacobiInit::CopyLeft,
            },
            criterion: criterion_of(a),
        }),
        Method::Bon | Method::Gridar => return None,
    })
}

/// Whether candidates of method `m` (with `a`'s flags) can run under GridAR.
pub(crate) fn restartable(m: Method, a: &GenerateArgs) -> bool {
    method_config(m, a, 2).is_some_and(|c| c.restartable())
}

/// The decoder configuration of `a` on a model of config `cfg`: the one construction path of
/// `argen generate` and `argen bench`. `judged`: a ShapesWorld judge is present (GridAR
/// reformulates prompts only with it).
pub(crate) fn decoder_config(
    a: &GenerateArgs,
    cfg: &GptConfig,
    judged: bool,
) -> Result<DecoderConfig, String> {
    let base = Config {
        seed: a.seed,
        stream: 0,
        seq: 0,
        tokens: cfg.block_size as u32,
        width: cfg.grid() as u32,
        sampler: sampler(a),
        guidance: if a.cfg == 1.0 {
            GuidanceMode::None
        } else {
            GuidanceMode::TwoWay { scale: a.cfg }
        },
    };
    let scaling = match a.method {
        Method::Bon => Some(ScalingConfig::BestOfN { n: a.n }),
        Method::Gridar => Some(ScalingConfig::GridAr {
            n: a.n,
            verifier: true,
            reformulate: judged && !a.no_reformulate,
            w: RELEASE_W,
        }),
        _ => None,
    };
    let inner = match (scaling, a.inner) {
        (None, Some(i)) => {
            return Err(format!(
            "--inner {} applies to --method bon and gridar only (hint: --method bon --inner {})",
            i.name(),
            i.name()
        ))
        }
        (None, None) => a.method,
        (Some(_), i) => i.unwrap_or(Method::Vanilla),
    };
    let method = method_config(inner, a, cfg.vocab_size).ok_or_else(|| {
        format!(
            "--inner {}: the candidates of bon and gridar are single-image methods (hint: --inner \
             vanilla, sd, lantern, gsd, vvs or sjd)",
            inner.name()
        )
    })?;
    if matches!(scaling, Some(ScalingConfig::GridAr { .. })) && !method.restartable() {
        return Err(format!(
            "--method gridar --inner {}: GridAR restarts its candidates from anchors and only \
             vanilla candidates are restartable today (hint: --method bon --inner {}, or --inner \
             vanilla)",
            inner.name(),
            inner.name()
        ));
    }
    let dc = DecoderConfig {
        base,
        method,
        scaling,
    };
    dc.validate()
        .map_err(|e| format!("invalid decoder configuration: {e}"))?;
    Ok(dc)
}

/// The requirements of `dc` (validated by [`decoder_config`]).
pub(crate) fn requirements(dc: &DecoderConfig) -> Result<Requirements, String> {
    dc.requirements()
        .map_err(|e| format!("invalid decoder configuration: {e}"))
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
    sampler(a)
        .validate(cfg.vocab_size)
        .map_err(|e| e.to_string())?;
    decoder_config(a, cfg, a.prompt.is_some()).map(|_| ())
}

/// `argen generate`.
pub fn run(a: &GenerateArgs) -> Result<(), String> {
    let dir = resolve(a.model.as_deref())?;
    let cfg = dir.gpt_config()?;
    check_method_args(a, &cfg)?;
    let conds = condition(a, &cfg)?;
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
    match a.device {
        DeviceArg::Cpu => run_on(
            a,
            &dir,
            &cfg,
            conds,
            Cpu::new(a.threads).map_err(|e| e.to_string())?,
            Mode {
                check: &mut check,
                write: true,
                config: None,
            },
        )?,
        DeviceArg::Cuda => run_on(
            a,
            &dir,
            &cfg,
            conds,
            crate::device::cuda_compute()?,
            Mode {
                check: &mut check,
                write: true,
                config: None,
            },
        )?,
    };
    Ok(())
}

/// The files a run of `dc` loads, whose bytes make the model fingerprint of a run file: the
/// configs, the target and VQ weights, the drafter's if the method drafts, and the caption file
/// if one was given.
pub(crate) fn fingerprint_files(
    dir: &crate::model_dir::ModelDir,
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
            check_method_args(g, &cfg)?;
            decoder_config(g, &cfg, g.prompt.is_some())?
        }
    };
    let conds = condition(g, &cfg)?;
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
    let outcome = match g.device {
        DeviceArg::Cpu => run_on(
            g,
            &dir,
            &cfg,
            conds,
            Cpu::new(g.threads).map_err(|e| e.to_string())?,
            Mode {
                check: &mut check,
                write: false,
                config,
            },
        )?,
        DeviceArg::Cuda => run_on(
            g,
            &dir,
            &cfg,
            conds,
            crate::device::cuda_compute()?,
            Mode {
                check: &mut check,
                write: false,
                config,
            },
        )?,
    };
    match check {
        RunCheck::Replay(_, Some(Ok(steps))) => Ok(ReplayOutcome::Identical { steps }),
        RunCheck::Replay(t, Some(Err(divergence))) => Ok(ReplayOutcome::Diverged {
            divergence,
            expected: t.tokens().collect(),
            found: outcome.tokens,
        }),
        _ => Err("the replay did not run".into()),
    }
}

/// `argen generate` on the compute device `c`; with `write`, writes the outputs (and the run
/// file when `check` records).
fn run_on<C: Runtime>(
    a: &GenerateArgs,
    dir: &crate::model_dir::ModelDir,
    cfg: &GptConfig,
    conds: (Condition, Condition),
    c: C,
    mode: Mode<'_, '_>,
) -> Result<Outcome, String> {
    let Mode {
        check,
        write,
        config,
    } = mode;
    let dc = match config {
        Some(dc) => *dc,
        None => decoder_config(a, cfg, a.prompt.is_some())?,
    };
    let req = requirements(&dc)?;
    let cap = host_capacity(cfg, req.sequences as usize, req.pending as usize);
    let vq = dir.vq(&c, Some(cfg))?;
    let gpt = dir.gpt(&c, cfg, cap)?;
    let drafter = if req.drafter {
        Some(dir.drafter(&c, cfg, cap)?)
    } else {
        None
    };
    let mut env = Env {
        gpt,
        drafter,
        conds: vec![conds; req.sequences as usize],
        quiet: a.quiet,
    };
    let prompt = a.prompt.as_deref().map(shapes::parse_prompt).transpose()?;
    let mut shapes_judge = match &prompt {
        Some(p) => Some(ShapesJudge::new(&vq, p.clone(), cfg.grid())?),
        None => None,
    };
    let mut tables = Tables::new(dir);
    let outcome = run_config(
        &dc,
        cfg,
        &vq,
        &mut tables,
        &mut env,
        shapes_judge.as_mut(),
        check,
    )?;
    if !write {
        return Ok(outcome);
    }
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
            "inner": dc.scaling.map(|_| a.inner.unwrap_or(Method::Vanilla).name()),
            "seed": a.seed,
            "tokens": s.tokens,
            "image_tokens": n_tokens,
            "target_forwards": s.target_forwards,
            "target_model_calls": outcome.calls.0,
            "drafter_model_calls": outcome.calls.1,
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
            "config": config_json(&dc)?,
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
    if let (Some(path), RunCheck::Record(Some(trace))) = (&a.trace, &*check) {
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
            "stats": {
                "tokens": s.tokens,
                "target_forwards": s.target_forwards,
                "wall_seconds": outcome.wall,
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
        outcome.wall,
        a.out.display()
    )?;
    Ok(outcome)
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

/// Runs `dc` once with the loaded models in `env` (their conditions set for the configuration's
/// sequences): builds the tables it needs, the decoder, and drives it, recording or checking
/// it as `check` says. `judge`: the ShapesWorld judge (else the model's implicit classifier
/// judges).
pub(crate) fn run_config<C: Runtime>(
    dc: &DecoderConfig,
    cfg: &GptConfig,
    vq: &VqDecoder<C>,
    tables: &mut Tables<'_>,
    env: &mut Env<C>,
    judge: Option<&mut ShapesJudge<'_, C>>,
    check: &mut RunCheck<'_>,
) -> Result<Outcome, String> {
    let req = requirements(dc)?;
    tables.prepare(&req, vq, cfg)?;
    let res = tables.resources(&req, vq, cfg)?;
    let mut dec = AnyDecoder::new(dc, &res).map_err(|e| e.to_string())?;
    let mut progress = Progress::new(req.tokens * req.sequences, env.quiet);
    let (name, hash) = trace_header(dc);
    let header = Header::new(&name, hash, dc.base.seed, dc.base.tokens);
    let judge = judge.map(|j| j as &mut dyn Judge);
    let (gpt, drafter, conds) = (&mut env.gpt, env.drafter.as_mut(), &env.conds);
    let result = match check {
        RunCheck::Off => C::decode(&mut dec, gpt, drafter, judge, conds, &mut progress),
        RunCheck::Record(out) => {
            let mut rec = Recorder::new(Vec::new(), &header);
            let r = C::decode(
                &mut dec,
                gpt,
                drafter,
                judge,
                conds,
                &mut (&mut progress, &mut rec),
            );
            if r.is_ok() {
                let (bytes, _) = rec
                    .finish(&dec)
                    .map_err(|e| format!("cannot record the run: {e}"))?;
                *out = Some(bytes);
            }
            r
        }
        RunCheck::Replay(trace, out) => {
            if let Err(d) = trace.check_header(&header) {
                *out = Some(Err(d));
                progress.finish();
                return Ok(Outcome {
                    tokens: Vec::new(),
                    stats: Stats::default(),
                    wall: 0.0,
                    calls: (0, 0),
                });
            }
            let mut rp = Replayer::new(*trace);
            let r = C::decode(
                &mut dec,
                gpt,
                drafter,
                judge,
                conds,
                &mut (&mut progress, &mut rp),
            );
            let steps = rp.steps();
            *out = Some(rp.finish(&dec).map(|()| steps));
            r
        }
    };
    progress.finish();
    let d = result?;
    Ok(Outcome {
        tokens: dec.tokens(dec.result_seq()).to_vec(),
        stats: d.stats,
        wall: d.wall,
        calls: d.calls,
    })
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
