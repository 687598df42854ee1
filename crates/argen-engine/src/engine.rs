//! [`Engine`]: a loaded model directory that generates images on request.
//!
//! One request ([`Request`]: an [`Input`] and a [`DecoderConfig`]) runs as
//! 1. conditions: the input's conditional and unconditional inputs, one pair per sequence of
//!    the configuration (ShapesWorld prompts become caption features, [`crate::shapes`]);
//! 2. models sized by the configuration's [`argen_core::decode::Requirements`]: the target (and
//!    the drafter, iff required) are loaded on first use with
//!    [`argen_model::host_capacity`] for the largest request seen, and reloaded only when a
//!    request needs more ([`Engine::reserve`] sizes them for several configurations at once);
//! 3. tables the criterion borrows (LANTERN's neighbours, GSD's embedding), built once;
//! 4. [`AnyDecoder`] driven by [`argen_model::ModelHost`] on the engine's [`Runtime`], with the
//!    ShapesWorld judge for prompts (else the model's implicit classifier);
//! 5. the chosen sequence's tokens, VQ-decoded to RGB8, and the ShapesWorld alignment score.
//!
//! Determinism: every draw is keyed by the configuration's seed, so a request's tokens and
//! pixels do not depend on the thread count, on earlier requests, or on how many engines run in
//! parallel (the Ray example relies on this).

use std::path::Path;

use argen_core::decode::{AnyDecoder, Decoder, DecoderConfig, NoObserver, Observer, Stats};
use argen_cpu::Cpu;
use argen_model::VqDecoder;
use argen_model::{host_capacity, Capacity, Condition, Drafter, Gpt, GptConfig, Judge, ModelType};
use argen_shapes::Prompt;
use serde_json::json;

use crate::calibrate::CalibrateOptions;
use crate::cost_file::CostFile;
use crate::method::{requirements, Method, MethodOptions};
use crate::model_dir::ModelDir;
use crate::runtime::{Recorded, Runtime};
use crate::shapes::{self, ShapesJudge};
use crate::tables::Tables;
use crate::Error;

/// Most worker threads [`Engine::open`] accepts.
pub const MAX_THREADS: usize = 256;

/// How to open an [`Engine`] on the CPU runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// Worker threads (0 = all cores, at most [`MAX_THREADS`]). Results do not depend on it.
    pub threads: usize,
}

/// What an image is conditioned on.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A ShapesWorld prompt (ShapesWorld models), e.g. `"two red circles left of a blue square"`.
    Prompt(String),
    /// A class id (class-conditional models).
    Class(u32),
    /// Caption features (text-conditional models): `cls_token_num × caption_dim` finite values,
    /// row-major, with `pad` leading padding positions.
    Caption {
        /// The features.
        features: Vec<f32>,
        /// Leading padding positions.
        pad: usize,
    },
}

/// One image to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// What the image is conditioned on.
    pub input: Input,
    /// How to decode it (seed included: `config.base.seed`).
    pub config: DecoderConfig,
    /// VQ-decode the tokens to RGB (default true).
    pub image: bool,
    /// Score a ShapesWorld prompt's image against the prompt (default true).
    pub score: bool,
}

impl Request {
    /// A request for `input` decoded with `config`, image and score included.
    pub fn new(input: Input, config: DecoderConfig) -> Request {
        Request {
            input,
            config,
            image: true,
            score: true,
        }
    }
}

/// An RGB8 image, row-major, `width × height × 3` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height` rows of `width` pixels of R, G, B.
    pub rgb: Vec<u8>,
}

/// The result of a [`Request`].
#[derive(Clone, Debug)]
pub struct Generation {
    /// The chosen image's tokens, in raster order.
    pub tokens: Vec<u32>,
    /// The decoded image (`None` if the request said `image: false`).
    pub image: Option<Image>,
    /// The decoder's counters.
    pub stats: Stats,
    /// Seconds spent decoding (judge calls included, model loading and the final VQ decode
    /// excluded).
    pub wall: f64,
    /// Model forwards run, `(target, drafter)`: a batched step counts once.
    pub calls: (u32, u32),
    /// The class of compute kernels that ran (`exact`, `avx512-bf16`, `amx-bf16`, `cuda`).
    pub kernels: &'static str,
    /// ShapesWorld prompts: the image's alignment with the prompt (`None` otherwise, or if the
    /// request said `score: false`).
    pub alignment: Option<argen_shapes::Score>,
    /// The configuration that ran.
    pub config: DecoderConfig,
    /// The prompt (ShapesWorld inputs).
    pub prompt: Option<String>,
    /// Image width and height in pixels (also without `image`).
    pub size: (usize, usize),
}

impl Generation {
    /// The statistics as JSON: the counters, TPF and MAL, the configuration, image size, prompt,
    /// alignment and wall-clock (the `argen generate --stats` file, less the method names).
    pub fn stats_json(&self) -> Result<serde_json::Value, Error> {
        let mut value = json!({
            "seed": self.config.base.seed,
            "image_tokens": self.config.base.tokens,
            "target_model_calls": self.calls.0,
            "drafter_model_calls": self.calls.1,
            "config": config_json(&self.config)?,
            "image": { "width": self.size.0, "height": self.size.1 },
            "prompt": self.prompt,
            "alignment": self.alignment.as_ref().map(shapes::alignment_json),
            "wall_seconds": self.wall,
            "kernels": self.kernels,
        });
        add_counters(&mut value, &self.stats);
        Ok(value)
    }
}

/// Adds the decoder's counters to the JSON object `value`: `tokens`, `target_forwards`,
/// `target_rows`, `prefills`, `draft_forwards`, `draft_rows`, `verify_steps`, `skipped_steps`,
/// `verifier_calls`, `scorer_calls`, `reformulations`, `accepted_hist`, `draft_depth_hist`
/// (speculative steps by the depth they drafted, 0 = plain target step: what `--draft auto`
/// chose), `tokens_per_target_forward` (TPF), `mean_accepted_length` (MAL) and
/// `mean_draft_depth`. Does nothing if `value`
/// is not an object.
pub fn add_counters(value: &mut serde_json::Value, s: &Stats) {
    let counters = json!({
        "tokens": s.tokens,
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
        "accepted_hist": s.accepted_hist.to_vec(),
        "draft_depth_hist": s.draft_depth_hist.to_vec(),
        "tokens_per_target_forward": s.tokens_per_target_forward(),
        "mean_accepted_length": s.mean_accepted_length(),
        "mean_draft_depth": s.mean_draft_depth(),
    });
    if let (Some(obj), serde_json::Value::Object(c)) = (value.as_object_mut(), counters) {
        obj.extend(c);
    }
}

/// A decoder configuration as JSON (`argen_core::decode::any`, "JSON shape").
pub fn config_json(dc: &DecoderConfig) -> Result<serde_json::Value, Error> {
    serde_json::to_value(dc)
        .map_err(|e| Error::runtime(format!("cannot write the decoder configuration: {e}")))
}

/// The conditional and unconditional inputs of `input` on a model of config `cfg`, checked
/// against the model (kind, class range, caption shape, prompt grammar).
pub fn conditions(cfg: &GptConfig, input: &Input) -> Result<(Condition, Condition), Error> {
    match input {
        Input::Prompt(text) => {
            shapes::check_model(cfg).map_err(Error::invalid)?;
            Ok(shapes::conditions(
                &shapes::parse_prompt(text).map_err(Error::invalid)?,
            ))
        }
        Input::Class(class) => {
            if cfg.model_type != ModelType::C2i {
                return Err(Error::invalid(
                    "a class id needs a class-conditional model; this model is text-conditional",
                ));
            }
            if *class as usize >= cfg.num_classes {
                return Err(Error::invalid(format!(
                    "class {class} is out of range: the model has {} classes",
                    cfg.num_classes
                )));
            }
            Ok((Condition::Class(Some(*class)), Condition::Class(None)))
        }
        Input::Caption { features, pad } => {
            if cfg.model_type != ModelType::T2i {
                return Err(Error::invalid(
                    "caption features need a text-conditional model; this model is \
                     class-conditional",
                ));
            }
            let want = cfg.cls_token_num * cfg.caption_dim;
            if features.len() != want {
                return Err(Error::invalid(format!(
                    "caption features: {} values, expected {want} ({} × {})",
                    features.len(),
                    cfg.cls_token_num,
                    cfg.caption_dim
                )));
            }
            if features.iter().any(|x| !x.is_finite()) {
                return Err(Error::invalid("caption features contain NaN or infinity"));
            }
            if *pad > cfg.cls_token_num {
                return Err(Error::invalid(format!(
                    "caption padding {pad} exceeds the {} caption positions",
                    cfg.cls_token_num
                )));
            }
            Ok((
                Condition::Caption {
                    features: Some(features.clone()),
                    pad: *pad,
                },
                Condition::Caption {
                    features: None,
                    pad: *pad,
                },
            ))
        }
    }
}

/// A model directory loaded on a runtime, ready to generate (see the module documentation).
pub struct Engine<C: Runtime = Cpu> {
    compute: C,
    dir: ModelDir,
    cfg: GptConfig,
    vq: VqDecoder<C>,
    gpt: Option<Gpt<C>>,
    drafter: Option<Drafter<C>>,
    cap: Option<Capacity>,
    tables: Tables,
}

impl Engine<Cpu> {
    /// Opens the model directory `dir` on the CPU runtime: checks its files, reads the configs
    /// and loads the VQ decoder (the target and drafter load on first use). A kernel tuning
    /// that `argen calibrate --kernels` recorded in the directory's cost profile on this CPU is
    /// applied first ([`crate::kernel_tune::apply_from`]: speed only, the same bits); a
    /// malformed one is an error naming the file (a profile that cannot be read at all is
    /// left to `--draft auto`, which reports it when it needs it).
    pub fn open(dir: impl AsRef<Path>, options: &EngineOptions) -> Result<Engine<Cpu>, Error> {
        if options.threads > MAX_THREADS {
            return Err(Error::invalid(format!(
                "threads must be at most {MAX_THREADS} (0 = all cores), not {}",
                options.threads
            )));
        }
        let dir = ModelDir::open(dir.as_ref()).map_err(Error::model)?;
        crate::kernel_tune::apply_in(&dir.dir).map_err(Error::model)?;
        let cpu = Cpu::new(options.threads).map_err(|e| Error::invalid(e.to_string()))?;
        Engine::with_compute(dir, cpu)
    }
}

fn covers(have: &Capacity, need: &Capacity) -> bool {
    have.slots >= need.slots
        && have.seq >= need.seq
        && have.rows >= need.rows
        && have.pending >= need.pending
}

impl<C: Runtime> Engine<C> {
    /// An engine for the (checked) model directory `dir` on `compute`.
    pub fn with_compute(dir: ModelDir, compute: C) -> Result<Engine<C>, Error> {
        let cfg = dir.gpt_config().map_err(Error::model)?;
        let vq = dir.vq(&compute, Some(&cfg)).map_err(Error::model)?;
        Ok(Engine {
            compute,
            dir,
            cfg,
            vq,
            gpt: None,
            drafter: None,
            cap: None,
            tables: Tables::default(),
        })
    }

    /// The model directory.
    pub fn model_dir(&self) -> &ModelDir {
        &self.dir
    }

    /// The target's configuration.
    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    /// The VQ decoder.
    pub fn vq(&self) -> &VqDecoder<C> {
        &self.vq
    }

    /// The runtime.
    pub fn compute(&self) -> &C {
        &self.compute
    }

    /// Image width (= height) in pixels.
    pub fn image_size(&self) -> usize {
        self.cfg.grid() * self.vq.config().downsample()
    }

    /// The decoder configuration of `method` with `options` and `seed` for `input` (GridAR
    /// reformulates only ShapesWorld prompts).
    pub fn decoder_config(
        &self,
        method: Method,
        options: &MethodOptions,
        seed: u64,
        input: &Input,
    ) -> Result<DecoderConfig, Error> {
        options.decoder_config(method, seed, &self.cfg, matches!(input, Input::Prompt(_)))
    }

    /// Loads (or reloads, larger) the target and — if any of `configs` needs it — the drafter
    /// with room for every configuration in `configs`.
    pub fn reserve(&mut self, configs: &[DecoderConfig]) -> Result<(), Error> {
        let mut seqs = 1;
        let mut pending = 1;
        let mut drafter = self.drafter.is_some();
        for dc in configs {
            let r = requirements(dc)?;
            seqs = seqs.max(r.sequences as usize);
            pending = pending.max(r.pending as usize);
            drafter |= r.drafter;
        }
        self.reserve_capacity(host_capacity(&self.cfg, seqs, pending), drafter)
    }

    /// Loads (or reloads, larger) the target — and the drafter if `drafter` — with at least
    /// capacity `cap`.
    fn reserve_capacity(&mut self, mut cap: Capacity, mut drafter: bool) -> Result<(), Error> {
        drafter |= self.drafter.is_some();
        if let Some(have) = &self.cap {
            if covers(have, &cap) && (!drafter || self.drafter.is_some()) && self.gpt.is_some() {
                return Ok(());
            }
            cap = Capacity {
                slots: cap.slots.max(have.slots),
                seq: cap.seq.max(have.seq),
                rows: cap.rows.max(have.rows),
                pending: cap.pending.max(have.pending),
            };
        }
        self.gpt = None;
        self.drafter = None;
        self.gpt = Some(
            self.dir
                .gpt(&self.compute, &self.cfg, cap)
                .map_err(Error::model)?,
        );
        if drafter {
            self.drafter = Some(
                self.dir
                    .drafter(&self.compute, &self.cfg, cap)
                    .map_err(Error::model)?,
            );
        }
        self.cap = Some(cap);
        Ok(())
    }

    /// Measures the cost profile of this engine's own model instances
    /// ([`crate::calibrate`]): the target and, if the directory has one, the drafter, loaded or
    /// enlarged as the probe needs. Calibrating the instances that generate (rather than a
    /// second copy) matters on machines where a forward's speed depends on where its buffers
    /// landed in memory.
    pub fn calibrate(
        &mut self,
        opts: &CalibrateOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<CostFile, Error> {
        let need = crate::calibrate::capacity(&self.cfg, opts);
        let has_drafter = self.dir.file("drafter.safetensors").exists();
        self.reserve_capacity(need, has_drafter)?;
        let dtype = crate::calibrate::weight_dtype(&self.dir.file("gpt.safetensors"));
        let gpt = self
            .gpt
            .as_mut()
            .ok_or_else(|| Error::runtime("the target is not loaded"))?;
        crate::calibrate::calibrate_models(gpt, self.drafter.as_mut(), &dtype, opts, progress)
    }

    /// A ShapesWorld judge for `prompt` (scores and partial checks of this model's images).
    pub fn judge(&self, prompt: Prompt) -> ShapesJudge<'_, C> {
        ShapesJudge::new(&self.vq, prompt, self.cfg.grid())
    }

    /// VQ-decodes `grid × grid` tokens to an RGB8 image.
    pub fn decode_image(&self, tokens: &[u32]) -> Result<Image, Error> {
        let grid = self.cfg.grid();
        if tokens.len() != grid * grid {
            return Err(Error::invalid(format!(
                "{} tokens, expected {} ({grid} × {grid})",
                tokens.len(),
                grid * grid
            )));
        }
        let size = self.vq.config().codebook_size;
        if let Some((i, &t)) = tokens.iter().enumerate().find(|(_, &t)| t as usize >= size) {
            return Err(Error::invalid(format!(
                "token {t} at position {i} is out of range for a codebook of {size}"
            )));
        }
        let img = self
            .vq
            .decode(tokens, grid, grid)
            .map_err(|e| Error::runtime(e.to_string()))?;
        Ok(Image {
            width: img.width,
            height: img.height,
            rgb: img.to_rgb8(),
        })
    }

    /// Generates one image (see the module documentation).
    pub fn generate(&mut self, request: &Request) -> Result<Generation, Error> {
        self.generate_with(request, &mut NoObserver)
    }

    /// [`Engine::generate`] with `observer` watching the decoding loop (a progress bar).
    pub fn generate_with<O: Observer>(
        &mut self,
        request: &Request,
        observer: &mut O,
    ) -> Result<Generation, Error> {
        self.generate_observed(request, observer, |_, _| ())
            .map(|(g, ())| g)
    }

    /// [`Engine::generate_with`], and `finish` called with the observer and the finished
    /// decoder after a successful decode (a trace recorder or replayer consumes itself against
    /// the decoder's final state there); returns the generation and what `finish` returned.
    pub fn generate_observed<O: Observer, R>(
        &mut self,
        request: &Request,
        observer: O,
        finish: impl FnOnce(O, &AnyDecoder<'_>) -> R,
    ) -> Result<(Generation, R), Error> {
        self.generate_inner(request, observer, finish, None)
    }

    /// [`Engine::generate`] that also returns every answer the model host gave, in order: the
    /// logits rows of each forward action, the verdicts, scores and reformulations
    /// ([`Recorded`]). A host that runs its own model (the Python package's PyTorch host) answers
    /// the same actions with these rows to show that its action handling gives exactly these
    /// tokens. CPU runtime only; it copies every logits row (a testing aid).
    pub fn generate_recorded(
        &mut self,
        request: &Request,
    ) -> Result<(Generation, Vec<Recorded>), Error> {
        let mut log = Vec::new();
        let (g, ()) = self.generate_inner(request, NoObserver, |_, _| (), Some(&mut log))?;
        Ok((g, log))
    }

    fn generate_inner<O: Observer, R>(
        &mut self,
        request: &Request,
        mut observer: O,
        finish: impl FnOnce(O, &AnyDecoder<'_>) -> R,
        record: Option<&mut Vec<Recorded>>,
    ) -> Result<(Generation, R), Error> {
        let dc = &request.config;
        let req = requirements(dc)?;
        if dc.base.tokens as usize != self.cfg.block_size
            || dc.base.width as usize != self.cfg.grid()
        {
            return Err(Error::invalid(format!(
                "the decoder configuration asks for {} tokens {} wide; this model generates {} \
                 tokens {} wide",
                dc.base.tokens,
                dc.base.width,
                self.cfg.block_size,
                self.cfg.grid()
            )));
        }
        let conds = conditions(&self.cfg, &request.input)?;
        let prompt = match &request.input {
            Input::Prompt(text) => Some(shapes::parse_prompt(text).map_err(Error::invalid)?),
            _ => None,
        };
        if req.reformulate && prompt.is_none() {
            return Err(Error::invalid(
                "GridAR's reformulation needs a ShapesWorld prompt (set reformulate off)",
            ));
        }
        self.reserve(core::slice::from_ref(dc))?;
        self.tables.prepare(&req, &self.dir, &self.vq, &self.cfg)?;
        let res = self.tables.resources(&req, &self.vq, &self.cfg)?;
        let mut dec = AnyDecoder::new(dc, &res).map_err(|e| Error::invalid(e.to_string()))?;
        let mut judge = prompt
            .clone()
            .map(|p| ShapesJudge::new(&self.vq, p, self.cfg.grid()));
        let all_conds = vec![conds; req.sequences as usize];
        let gpt = self
            .gpt
            .as_mut()
            .ok_or_else(|| Error::runtime("the target is not loaded"))?;
        let decoded = C::decode(
            &mut dec,
            gpt,
            self.drafter.as_mut(),
            judge.as_mut().map(|j| j as &mut dyn Judge),
            &all_conds,
            &mut observer,
            record,
        )
        .map_err(Error::runtime)?;
        let finished = finish(observer, &dec);
        let tokens = dec.tokens(dec.result_seq()).to_vec();
        drop(dec);
        let alignment = match (&judge, request.score) {
            (Some(j), true) => Some(j.score_tokens(&tokens).map_err(Error::runtime)?),
            _ => None,
        };
        let image = if request.image {
            Some(self.decode_image(&tokens)?)
        } else {
            None
        };
        let size = self.image_size();
        let generation = Generation {
            tokens,
            image,
            stats: decoded.stats,
            wall: decoded.wall,
            calls: decoded.calls,
            kernels: decoded.kernels,
            alignment,
            config: *dc,
            prompt: match &request.input {
                Input::Prompt(t) => Some(t.clone()),
                _ => None,
            },
            size: (size, size),
        };
        Ok((generation, finished))
    }
}
