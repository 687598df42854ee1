//! `argen calibrate`: measure what one target action and one drafter action cost on this
//! machine, as a function of the model rows they compute, and write the
//! [`argen_core::cost::CostProfile`] that `--draft auto` and the bench's predictions read.
//!
//! # What is timed
//! A point `(r, t)` of a curve is the median time `t` of one action of `r` model
//! rows, from the host receiving the action to the decoder having handled its logits — exactly
//! the span a decoding step pays (`argen_core::cost` defines the unit). The actions are real
//! protocol actions driven through the runtime's own host and backend
//! ([`Runtime::decode`], the code path of `argen generate`), issued by a *probe decoder*:
//!
//! 1. a prefill of the condition and the first `m` image tokens (teacher-forced), so the KV
//!    cache holds the context `cls_token_num + m`; with a drafter, one drafter run catches up on
//!    the same `m` tokens;
//! 2. for each row count `r` (default 1, 2, 4, …, 128) a target run and, with a drafter, a
//!    drafter run of `n = r / 2` inputs with two-way guidance (`r = 1`: one input, no guidance),
//!    every input a child of the committed prefix at raster index `m` — the attention pattern of
//!    a one-level draft tree, each input reading the whole context; before each run the previous
//!    run's entries are dropped, so the context stays `cls_token_num + m`;
//! 3. the decoder handles each answer as a decoding step does: every input's guided rows are
//!    processed into a distribution (CFG, temperature, top-k/top-p, integer weights) and one
//!    keyed token is drawn from each;
//! 4. a prefill of the condition alone with two-way guidance on a second sequence (the first
//!    action of every decode; [`CostFile::prefill`]).
//!
//! A span runs from the host receiving the action to it receiving the next one (the last: to
//! the answer being handled), as the bench's per-action accounting does, so the decoder's
//! choice of the next action is included. It is timed by the [`Clock`] of the options: wall
//! clock (the default) or the CPU time of the runtime's threads ([`crate::clock`], for a shared
//! or loaded machine); the file records which.
//!
//! # Context length
//! Per row, the forward's matrix products cost the same at every position; only attention
//! grows with the context `c` (reading `c` cached keys and values per layer). A decode fills the
//! cache from `cls_token_num` to `cls_token_num + tokens`, and a cost linear in `c` averaged over
//! the image equals the cost at the mean context, so the default is `m = tokens / 2`: context
//! `cls_token_num + tokens / 2` (ShapesWorld: 36 + 32 = 68; a 256-token t2i GPT: 120 + 128). On
//! ShapesWorld attention is a few per cent of a row's work (dim 128, 6 layers: ~0.3 MFLOP of
//! attention at context 100 against 1.2 MFLOP of projections), on GPT-B at 256 tokens about 5 %
//! of the weight stream, so a representative context is enough; `--context` overrides it.
//!
//! # Statistics
//! One warm-up round runs every point twice (caches, thread pool, page faults), times each
//! point's second call and sizes the measurement:
//! `rounds = clamp(⌈budget / round⌉, min_rounds, max_rounds)`, `round` being the warm-up's
//! estimate of a measured round (each point's time × its calls in a row, below). The measured
//! rounds then visit the points round-robin — round 1 all points, round 2 all points, … — so a
//! burst of load from another process spreads over every point instead of inflating one, and
//! each point's cost is the median of its `rounds` times (rounded to whole nanoseconds, at
//! least 1).
//!
//! Within a round each point runs **several times in a row and the last call is timed**: the
//! cost of a call in a stream of calls of its size, as vanilla decoding makes them. A call
//! right after calls of another size costs more, and the shorter the call, the longer that
//! lasts, so the calls before the timed one span at least [`RUN_NANOS`] (1 ms), 2 to
//! [`MAX_REPEATS`] calls in all ([`repeats_for`]; a GPT-B step is timed as the second of two,
//! a ShapesWorld 2-row call on 2 threads as the eighth; progress lines say which). Measured on
//! ShapesWorld (Zen 4, 2 threads, four calibrations each, alternating), the 2-row target call
//! timed as the second of its run cost
//! 0.143–0.162 ms, as the fourth 0.142–0.146 ms, as the eighth 0.117–0.121 ms, and inside
//! vanilla decodes of the same hour 0.117–0.134 ms; with 1 thread the eighth and the second
//! agree within 2 %. Session 9 timed the second of two: its 2-thread profiles put vanilla
//! 5–18 % slower than it ran, which every predicted speed-up inherited.
//!
//! **Each call sees new data, as in a decode**: the tokens of a call's inputs are the tokens
//! drawn from the previous call's answer (the draws keyed by the call's ordinal), so every call
//! computes new logits. Repeating one call with identical inputs is measurably cheaper — on
//! ShapesWorld (1 thread, on-CPU clock, 18:52–19:00) a 2-row target call cost 0.237 ms with
//! fixed inputs against 0.264 ms inside a vanilla decode and 0.265–0.269 ms with fed-back
//! tokens; the 128-row call 14.2 ms against 13.3 ms — the branch predictors and caches learn a
//! call repeated bit for bit, which no decode repeats.
//!
//! The median is the cost of an undisturbed call. On a machine whose CPU is shared with other
//! processes, a call shorter than a scheduler time slice is rarely preempted, so its median
//! misses the time that a decode of many such calls loses to the other processes; a call longer
//! than a slice is preempted nearly every time, and its median includes it.
//! [`Statistic::Mean`] summarises by the mean instead, which contains those losses in proportion
//! (noisier: the disturbances are rare and large).

use std::path::Path;
use std::time::Instant;

use crate::clock::Clock;

use argen_core::backend::{Backend, ProcessJob, SampleJob, ROOT};
use argen_core::cost::{CostCurve, CostProfile, MAX_POINTS};
use argen_core::decode::{
    Action, Decoder, DraftInput, DraftRun, FeatureRef, GuidanceMode, Input, Observer, Prefill,
    Stats, TargetRun,
};
use argen_core::rng::{Key, Purpose};
use argen_core::SamplerParams;
use argen_cpu::Cpu;
use argen_model::{host_capacity, Condition, Drafter, Gpt, GptConfig, ModelType};

use crate::cost_file::{CostFile, VERSION};
use crate::method::MethodOptions;
use crate::model_dir::ModelDir;
use crate::runtime::Runtime;
use crate::Error;

/// The default row counts measured ([`MAX_POINTS`] of them): 1-token steps without and with
/// guidance up to a 59-node tree with CFG (118 rows) and batches of candidates, with the chain
/// and Jacobi shapes in between measured rather than interpolated.
///
/// A curve is linear between its points, and a kernel's cost is not linear in the rows: the
/// AVX-512 GEMM computes tiles of up to 8 rows, so 10 rows are a tile of 8 and a tile of 2 —
/// two passes over each weight block — and cost a step more than 8. Measured on ShapesWorld
/// (Zen 4, 1 thread, one calibration at rows 2, 4, …, 32): 8 rows 0.590 ms, 10 rows 0.838 ms,
/// 16 rows 1.215 ms; the line from 8 to 16 gives 0.746 ms at 10 rows, 11 % low. In `argen bench`
/// (2 threads) the chain of γ = 4's 10-row verifications measured 8–12 % above the profile
/// of the powers of two alone, and Jacobi's 6- to 20-row calls 6–17 %. So the
/// points after 8, 16 and 32 rows (10, 18, 34: a chain of γ = 4, a window-8 and a window-16
/// Jacobi step with CFG) are measured, as are 6 and 12 (chains of γ = 2 and 5) and 24, 48, 96
/// between the powers of two.
pub const DEFAULT_ROWS: [u32; MAX_POINTS] =
    [1, 2, 4, 6, 8, 10, 12, 16, 18, 24, 32, 34, 48, 64, 96, 128];

/// How to calibrate.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrateOptions {
    /// Row counts to measure: strictly increasing, 1 to [`MAX_POINTS`] of them, each at least 1;
    /// an even count runs `r / 2` inputs with two-way guidance, an odd one `r` inputs without.
    pub rows: Vec<u32>,
    /// Image tokens in the KV cache while measuring (`None`: half the image, module doc).
    pub context: Option<u32>,
    /// Seconds the measured rounds should take in all (the warm-up round estimates a round).
    pub budget_seconds: f64,
    /// Fewest measured rounds.
    pub min_rounds: u32,
    /// Most measured rounds.
    pub max_rounds: u32,
    /// How a point's times are summarised.
    pub statistic: Statistic,
    /// Guidance scale of the two-way rows.
    pub cfg: f32,
    /// Sampling parameters of the processed rows.
    pub sampler: SamplerParams,
    /// Processor name recorded in the file (`lscpu`'s model name, or the GPU's name).
    pub cpu: String,
    /// `"cpu"` or `"cuda"`.
    pub device: String,
    /// Worker threads of the runtime, recorded in the file.
    pub threads: usize,
    /// The clock the calls are timed with ([`Clock`], module doc), recorded in the file.
    pub clock: Clock,
}

impl CalibrateOptions {
    /// The defaults for the CPU runtime `cpu`: [`DEFAULT_ROWS`], half-image context, a 2-second
    /// budget of 5 to 25 rounds, and the guidance and sampler of `argen generate`'s defaults.
    pub fn for_cpu(cpu: &Cpu) -> CalibrateOptions {
        let m = MethodOptions::default();
        CalibrateOptions {
            rows: DEFAULT_ROWS.to_vec(),
            context: None,
            budget_seconds: 2.0,
            min_rounds: 5,
            max_rounds: 25,
            statistic: Statistic::Median,
            cfg: m.cfg,
            sampler: m.sampler(),
            cpu: cpu_name(),
            device: "cpu".into(),
            threads: cpu.threads(),
            clock: Clock::Wall,
        }
    }

    fn check(&self) -> Result<(), Error> {
        if self.rows.is_empty() || self.rows.len() > MAX_POINTS {
            return Err(Error::invalid(format!(
                "calibration needs 1 to {MAX_POINTS} row counts, not {}",
                self.rows.len()
            )));
        }
        if self.rows[0] == 0 || self.rows.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::invalid(
                "calibration row counts must be at least 1 and strictly increasing",
            ));
        }
        if !(self.budget_seconds.is_finite() && self.budget_seconds >= 0.0) {
            return Err(Error::invalid(
                "the calibration budget must be a finite number of seconds ≥ 0",
            ));
        }
        if self.min_rounds == 0 || self.min_rounds > self.max_rounds {
            return Err(Error::invalid(
                "calibration rounds: need 1 ≤ min_rounds ≤ max_rounds",
            ));
        }
        self.clock.check(&self.device)?;
        if !self.cfg.is_finite() {
            return Err(Error::invalid("the guidance scale must be finite"));
        }
        Ok(())
    }

    /// Inputs per run and guidance of a point of `rows` model rows.
    fn shape(&self, rows: u32) -> (usize, GuidanceMode) {
        if rows % 2 == 0 {
            (rows as usize / 2, GuidanceMode::TwoWay { scale: self.cfg })
        } else {
            (rows as usize, GuidanceMode::None)
        }
    }

    /// Most inputs of one run.
    fn max_inputs(&self) -> usize {
        self.rows
            .iter()
            .map(|&r| self.shape(r).0)
            .max()
            .unwrap_or(1)
    }
}

/// How the times of a calibration point are summarised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    /// The median: the cost of an undisturbed call (the default; robust to outliers).
    Median,
    /// The mean: the cost of an average call, disturbances included. On a machine whose CPU
    /// is shared, calls shorter than a scheduler time slice are rarely preempted, so their
    /// median misses the time a long sequence of them loses to other processes, which their
    /// mean contains (module doc).
    Mean,
}

impl Statistic {
    /// `median` or `mean`.
    pub fn name(self) -> &'static str {
        match self {
            Statistic::Median => "median",
            Statistic::Mean => "mean",
        }
    }
}

/// This machine's processor name: `/proc/cpuinfo`'s first `model name` (else the
/// architecture), with the x86 family and model numbers where the file gives them, e.g.
/// `AMD EPYC (family 26, model 2)`. Virtual machines often report a bare `AMD EPYC` for
/// every generation, and a profile measured on Zen 4 should not pass for one of Zen 5.
pub fn cpu_name() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpu_name_from(&info)
}

/// [`cpu_name`] from the text of `/proc/cpuinfo`.
pub fn cpu_name_from(info: &str) -> String {
    // The value of the first line whose key (before the colon, trimmed) is `key`.
    let field = |key: &str| {
        info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let name = field("model name")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) if !f.is_empty() && !m.is_empty() => {
            format!("{name} (family {f}, model {m})")
        }
        _ => name,
    }
}

/// The image tokens of the calibration context for a model of `cfg` (module doc): `opts.context`,
/// which must lie in `1 ..= tokens − 1`, else half the image.
pub fn context_tokens(cfg: &GptConfig, opts: &CalibrateOptions) -> Result<u32, Error> {
    let tokens = cfg.block_size as u32;
    match opts.context {
        None => Ok((tokens / 2).max(1)),
        Some(c) if (1..tokens).contains(&c) => Ok(c),
        Some(c) => Err(Error::invalid(format!(
            "the calibration context must be 1 to {} image tokens for this {tokens}-token model, \
             not {c}",
            tokens.saturating_sub(1)
        ))),
    }
}

/// The weight dtype of the safetensors file at `path` (that of `output.weight`), read from the
/// header only; `"unknown"` if the header cannot be read.
pub fn weight_dtype(path: &Path) -> String {
    use std::io::Read;
    let read = || -> Option<String> {
        let mut f = std::fs::File::open(path).ok()?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).ok()?;
        let n = u64::from_le_bytes(len);
        if n > argen_model::safetensors::MAX_HEADER_LEN {
            return None;
        }
        let mut h = vec![0u8; n as usize];
        f.read_exact(&mut h).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&h).ok()?;
        Some(v["output.weight"]["dtype"].as_str()?.to_ascii_lowercase())
    };
    read().unwrap_or_else(|| "unknown".into())
}

/// The model capacity the probe needs on a model of `cfg` (two sequences: the context and the
/// prefill point).
pub fn capacity(cfg: &GptConfig, opts: &CalibrateOptions) -> argen_model::Capacity {
    host_capacity(cfg, 2, opts.max_inputs())
}

/// Calibrates the model directory `dir` (target, and the drafter if it has one) on `compute`,
/// reporting progress lines to `progress`.
pub fn calibrate_dir<C: Runtime>(
    dir: &ModelDir,
    compute: &C,
    opts: &CalibrateOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<CostFile, Error> {
    opts.check()?;
    let cfg = dir.gpt_config().map_err(Error::model)?;
    let cap = capacity(&cfg, opts);
    let mut gpt = dir.gpt(compute, &cfg, cap).map_err(Error::model)?;
    let mut drafter = if dir.file("drafter.safetensors").exists() {
        Some(dir.drafter(compute, &cfg, cap).map_err(Error::model)?)
    } else {
        None
    };
    let dtype = weight_dtype(&dir.file("gpt.safetensors"));
    calibrate_models(&mut gpt, drafter.as_mut(), &dtype, opts, progress)
}

/// Calibrates loaded models (capacity at least [`capacity`]); `dtype` names their weights'
/// dtype for the file.
pub fn calibrate_models<C: Runtime>(
    gpt: &mut Gpt<C>,
    mut drafter: Option<&mut Drafter<C>>,
    dtype: &str,
    opts: &CalibrateOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<CostFile, Error> {
    opts.check()?;
    let cfg = gpt.config().clone();
    let m = context_tokens(&cfg, opts)?;
    let conds = [probe_conditions(&cfg), probe_conditions(&cfg)];
    let kernels = Runtime::kernel_class(gpt.compute());
    let has_drafter = drafter.is_some();
    let mut points: Vec<Point> = opts.rows.iter().map(|&r| Point::Target(r)).collect();
    if has_drafter {
        points.extend(opts.rows.iter().map(|&r| Point::Drafter(r)));
    }
    points.push(Point::Prefill);
    // `repeats[i]`: calls of point `i` in a row, the last one timed (module doc).
    let run =
        |rounds: u32, repeats: &[usize], gpt: &mut Gpt<C>, drafter: Option<&mut Drafter<C>>| {
            let mut probe = Probe::new(&cfg, m, opts, &points, repeats, rounds, has_drafter);
            let mut timer = Timer::new(opts.clock, opts.threads);
            C::decode(&mut probe, gpt, drafter, None, &conds, &mut timer, None)
                .map_err(Error::runtime)?;
            timer.finish();
            // The first one or two actions set up the context; of each run of a point's calls
            // the last is timed.
            let skip = 1 + usize::from(has_drafter);
            let mut timed = Vec::with_capacity(points.len() * rounds as usize);
            let mut at = skip;
            for _ in 0..rounds {
                for &n in repeats {
                    at += n;
                    if let Some(&t) = timer.nanos.get(at - 1) {
                        timed.push(t);
                    }
                }
            }
            if timed.len() != points.len() * rounds as usize || timer.nanos.len() != at {
                return Err(Error::runtime(format!(
                    "calibration timed {} actions, expected {}",
                    timer.nanos.len(),
                    at
                )));
            }
            Ok::<_, Error>(timed)
        };
    progress(&format!(
        "calibrating {} target{} at context {} ({} + {m} image tokens): {} row counts",
        describe(&cfg),
        if has_drafter { " and drafter" } else { "" },
        cfg.cls_token_num as u32 + m,
        cfg.cls_token_num,
        opts.rows.len()
    ));
    let start = Instant::now();
    let warm = run(1, &vec![2; points.len()], gpt, drafter.as_deref_mut())?;
    let repeats: Vec<usize> = warm.iter().map(|&t| repeats_for(t)).collect();
    let round: u64 = warm.iter().zip(&repeats).map(|(&t, &n)| t * n as u64).sum();
    let want = (opts.budget_seconds * 1e9 / round.max(1) as f64).ceil();
    let rounds = (want.min(u32::MAX as f64) as u32).clamp(opts.min_rounds, opts.max_rounds);
    progress(&format!(
        "warmed up; a measured round takes ~{:.1} ms; measuring {rounds} rounds",
        round as f64 / 1e6
    ));
    let times = run(rounds, &repeats, gpt, drafter)?;
    let mut target = Vec::new();
    let mut draft = Vec::new();
    let mut prefill = 0;
    for (i, &p) in points.iter().enumerate() {
        let mut t: Vec<u64> = (0..rounds as usize)
            .map(|k| times[k * points.len() + i])
            .collect();
        let med = match opts.statistic {
            Statistic::Median => median(&mut t),
            Statistic::Mean => t.iter().sum::<u64>() / t.len().max(1) as u64,
        }
        .max(1);
        let what = match p {
            Point::Target(r) => {
                target.push((r, med));
                format!("target  {r:>4} rows")
            }
            Point::Drafter(r) => {
                draft.push((r, med));
                format!("drafter {r:>4} rows")
            }
            Point::Prefill => {
                prefill = med;
                "prefill (condition)".to_string()
            }
        };
        progress(&format!(
            "  {what}: {:>10.3} ms ({} of {rounds}; call {n} of {n} in a row)",
            med as f64 / 1e6,
            opts.statistic.name(),
            n = repeats[i],
        ));
    }
    let curve = |p: &[(u32, u64)]| CostCurve::new(p).map_err(|e| Error::runtime(e.to_string()));
    let profile = CostProfile {
        target: curve(&target)?,
        drafter: if has_drafter {
            Some(curve(&draft)?)
        } else {
            None
        },
    };
    progress(&format!(
        "calibrated in {:.1} s",
        start.elapsed().as_secs_f64()
    ));
    Ok(CostFile {
        version: VERSION,
        cpu: opts.cpu.clone(),
        device: opts.device.clone(),
        kernels: kernels.into(),
        threads: opts.threads,
        dtype: dtype.into(),
        context: cfg.cls_token_num as u32 + m,
        prefill: Some(prefill),
        clock: opts.clock.name().into(),
        kernel_tuning: None,
        profile,
    })
}

fn describe(cfg: &GptConfig) -> String {
    format!(
        "{}-layer dim-{} {:?} GPT",
        cfg.n_layer, cfg.dim, cfg.model_type
    )
}

/// Nanoseconds of calls that a point runs in a row before the timed one should at least
/// span (module doc, "Statistics").
pub const RUN_NANOS: u64 = 1_000_000;
/// Most calls of a point in a row.
pub const MAX_REPEATS: usize = 8;

/// Calls in a row for a point whose call took `nanos` in the warm-up round: enough that the
/// calls before the timed one span [`RUN_NANOS`], 2 to [`MAX_REPEATS`].
pub fn repeats_for(nanos: u64) -> usize {
    let before = RUN_NANOS.div_ceil(nanos.max(1));
    (before.saturating_add(1)).clamp(2, MAX_REPEATS as u64) as usize
}

/// The median of `t` (the lower middle of an even count), sorting it.
pub fn median(t: &mut [u64]) -> u64 {
    if t.is_empty() {
        return 0;
    }
    t.sort_unstable();
    t[(t.len() - 1) / 2]
}

/// Conditions of the probe's sequence: class 0 / the null class, or all-zero caption features
/// / the null caption (the cost does not depend on their values).
fn probe_conditions(cfg: &GptConfig) -> (Condition, Condition) {
    match cfg.model_type {
        ModelType::C2i => (Condition::Class(Some(0)), Condition::Class(None)),
        ModelType::T2i => (
            Condition::Caption {
                features: Some(vec![0.0; cfg.cls_token_num * cfg.caption_dim]),
                pad: 0,
            },
            Condition::Caption {
                features: None,
                pad: 0,
            },
        ),
    }
}

/// Times each action by the options' clock from the host receiving it to the host receiving
/// the next one; the last action's span ends when its answer was handled.
struct Timer {
    clock: Clock,
    threads: usize,
    start: Option<u64>,
    last_after: Option<u64>,
    nanos: Vec<u64>,
}

impl Timer {
    fn new(clock: Clock, threads: usize) -> Timer {
        Timer {
            clock,
            threads,
            start: None,
            last_after: None,
            nanos: Vec::new(),
        }
    }

    fn close(&mut self, end: u64) {
        if let Some(s) = self.start.take() {
            self.nanos.push(end.saturating_sub(s));
        }
    }

    fn finish(&mut self) {
        if let Some(end) = self.last_after {
            self.close(end);
        }
    }
}

impl Observer for Timer {
    fn before(&mut self, _: &Action<'_>) {
        let now = self.clock.now(self.threads);
        self.close(now);
        self.start = Some(now);
    }

    fn after<D: Decoder>(&mut self, _: &D) {
        self.last_after = Some(self.clock.now(self.threads));
    }
}

/// A measured point: a target or drafter call of some rows, or the condition prefill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Point {
    Target(u32),
    Drafter(u32),
    Prefill,
}

/// Where the probe is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Prefill,
    CatchUp,
    /// Measured action `i` of the schedule.
    Run(usize),
}

/// The probe decoder (module doc): a prefill, a drafter catch-up, then `rounds` rounds of the
/// points.
struct Probe {
    phase: Phase,
    prefix: Vec<u32>,
    catch_up: Vec<DraftInput>,
    inputs: Vec<Input>,
    drafts: Vec<DraftInput>,
    /// The point of each action after the set-up, each point's calls in a row (module doc).
    schedule: Vec<Point>,
    opts_cfg: f32,
    sampler: SamplerParams,
    has_drafter: bool,
    process: Vec<ProcessJob>,
    sample: Vec<SampleJob>,
    drawn: Vec<u32>,
    max_inputs: usize,
    stats: Stats,
    /// Answers handled so far (the sampling key's seed).
    calls: u64,
    vocab: u32,
}

impl Probe {
    fn new(
        cfg: &GptConfig,
        m: u32,
        opts: &CalibrateOptions,
        points: &[Point],
        repeats: &[usize],
        rounds: u32,
        has_drafter: bool,
    ) -> Probe {
        let vocab = cfg.vocab_size as u32;
        let token = |i: u32| (i.wrapping_mul(2_654_435_761) >> 7) % vocab;
        let prefix: Vec<u32> = (0..m).map(token).collect();
        let catch_up = (0..m)
            .map(|i| DraftInput {
                token: prefix[i as usize],
                index: i,
                parent: if i == 0 { ROOT } else { i - 1 },
                feature: if i == 0 {
                    FeatureRef::Condition
                } else {
                    FeatureRef::Target(i - 1)
                },
            })
            .collect();
        let n = opts.max_inputs();
        let inputs = (0..n as u32)
            .map(|i| Input::root(token(m + i), m))
            .collect();
        let drafts = (0..n as u32)
            .map(|i| DraftInput {
                token: token(m + i),
                index: m,
                parent: ROOT,
                feature: FeatureRef::Target(m - 1),
            })
            .collect();
        let schedule = (0..rounds)
            .flat_map(|_| {
                points
                    .iter()
                    .zip(repeats)
                    .flat_map(|(&p, &n)| std::iter::repeat_n(p, n))
            })
            .collect();
        Probe {
            phase: Phase::Prefill,
            prefix,
            catch_up,
            inputs,
            drafts,
            schedule,
            opts_cfg: opts.cfg,
            sampler: opts.sampler,
            has_drafter,
            process: Vec::with_capacity(n),
            sample: Vec::with_capacity(n),
            drawn: vec![0; n],
            max_inputs: n,
            stats: Stats::default(),
            calls: 0,
            vocab,
        }
    }

    fn shape(&self, rows: u32) -> (usize, GuidanceMode) {
        if rows % 2 == 0 {
            (
                rows as usize / 2,
                GuidanceMode::TwoWay {
                    scale: self.opts_cfg,
                },
            )
        } else {
            (rows as usize, GuidanceMode::None)
        }
    }

    fn two_way(&self) -> GuidanceMode {
        GuidanceMode::TwoWay {
            scale: self.opts_cfg,
        }
    }

    fn next_phase(&self) -> Phase {
        match self.phase {
            Phase::Prefill if self.has_drafter => Phase::CatchUp,
            Phase::Prefill | Phase::CatchUp => Phase::Run(0),
            Phase::Run(i) => Phase::Run(i + 1),
        }
    }
}

impl Decoder for Probe {
    fn poll(&self) -> Action<'_> {
        match self.phase {
            Phase::Prefill => Action::Prefill(Prefill {
                seq: 0,
                tokens: &self.prefix,
                guidance: self.two_way(),
            }),
            Phase::CatchUp => Action::Draft(DraftRun {
                seq: 0,
                new_step: true,
                commit: self.catch_up.len() as u32,
                inputs: &self.catch_up,
                guidance: self.two_way(),
            }),
            Phase::Run(i) => match self.schedule.get(i) {
                None => Action::Done,
                Some(&Point::Target(rows)) => {
                    let (n, guidance) = self.shape(rows);
                    Action::Target(TargetRun {
                        seq: 0,
                        keep: &[],
                        inputs: &self.inputs[..n],
                        guidance,
                    })
                }
                Some(&Point::Drafter(rows)) => {
                    let (n, guidance) = self.shape(rows);
                    Action::Draft(DraftRun {
                        seq: 0,
                        new_step: true,
                        commit: 0,
                        inputs: &self.drafts[..n],
                        guidance,
                    })
                }
                Some(Point::Prefill) => Action::Prefill(Prefill {
                    seq: 1,
                    tokens: &[],
                    guidance: self.two_way(),
                }),
            },
        }
    }

    fn handle_logits<B: Backend>(
        &mut self,
        backend: &mut B,
        logits: &B::Logits,
    ) -> Result<(), B::Error> {
        let (rows, guidance, draft) = match self.poll() {
            Action::Prefill(p) => (p.guidance.variants(), p.guidance, false),
            Action::Target(r) => (r.inputs.len() * r.guidance.variants(), r.guidance, false),
            Action::Draft(r) => (r.inputs.len() * r.guidance.variants(), r.guidance, true),
            other => return Err(argen_core::decode::unexpected(other, "logits").into()),
        };
        if backend.logit_rows(logits) != rows {
            return Err(argen_core::Error::InvalidParameter {
                name: "logits",
                reason: "the answer has the wrong number of rows",
            }
            .into());
        }
        let v = guidance.variants();
        let n = rows / v;
        let index = self.prefix.len() as u32;
        self.process.clear();
        self.sample.clear();
        for i in 0..n.min(self.max_inputs) {
            self.process.push(ProcessJob {
                rows: guidance.rows((i * v) as u32),
                params: self.sampler,
                out: i as u32,
            });
            self.sample.push(SampleJob {
                row: i as u32,
                key: Key::new(self.calls, 0, Purpose::SAMPLE, index).with_token(i as u32),
            });
        }
        backend.process(logits, &self.process)?;
        let k = self.sample.len();
        backend.sample(&self.sample, &mut self.drawn[..k])?;
        // The next call's inputs are the tokens just drawn, as in a decode: every call sees
        // new tokens and new logits (module doc, "Statistics").
        self.calls += 1;
        if matches!(self.phase, Phase::Run(_)) {
            let vocab = self.vocab;
            for (i, &t) in self.drawn[..k].iter().enumerate() {
                let t = t % vocab;
                if draft {
                    self.drafts[i].token = t;
                } else {
                    self.inputs[i].token = t;
                }
            }
        }
        if draft {
            self.stats.draft_forwards += 1;
            self.stats.draft_rows += rows as u32;
        } else {
            self.stats.target_forwards += 1;
            self.stats.target_rows += rows as u32;
        }
        self.phase = self.next_phase();
        Ok(())
    }

    fn tokens(&self, seq: u32) -> &[u32] {
        if seq == 0 {
            &self.prefix
        } else {
            &[]
        }
    }

    fn result_seq(&self) -> u32 {
        0
    }

    fn stats(&self) -> Stats {
        self.stats
    }

    fn dist_rows_needed(&self) -> usize {
        self.max_inputs.max(1)
    }

    fn action_bound(&self) -> u32 {
        self.schedule.len() as u32 + 2
    }
}

#[cfg(test)]
mod tests {
    use super::{cpu_name_from, median, repeats_for, MAX_REPEATS, RUN_NANOS};

    #[test]
    fn the_cpu_name_carries_the_x86_family_and_model() {
        let zen5 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\n\
                    model\t\t: 2\nmodel name\t: AMD EPYC\nstepping\t: 1\n";
        assert_eq!(cpu_name_from(zen5), "AMD EPYC (family 26, model 2)");
        // Another generation under the same bare name is another CPU.
        let zen4 = zen5
            .replace("26", "25")
            .replace("model\t\t: 2", "model\t\t: 17");
        assert_eq!(cpu_name_from(&zen4), "AMD EPYC (family 25, model 17)");
        // aarch64 (no family), and no file at all: the name, else the architecture.
        assert_eq!(
            cpu_name_from("processor\t: 0\nmodel name\t: ARMv8 Processor rev 1 (v8l)\n"),
            "ARMv8 Processor rev 1 (v8l)"
        );
        assert_eq!(cpu_name_from(""), std::env::consts::ARCH);
    }

    #[test]
    fn short_calls_run_longer_before_the_timed_one() {
        // A GPT-B step (milliseconds) is timed as the second call of its run.
        assert_eq!(repeats_for(8_000_000), 2);
        assert_eq!(repeats_for(RUN_NANOS), 2);
        // Just under 1 ms: two calls before the timed one.
        assert_eq!(repeats_for(RUN_NANOS - 1), 3);
        // A 0.44 ms call: ⌈1 / 0.44⌉ = 3 before, the fourth timed.
        assert_eq!(repeats_for(440_000), 4);
        // ShapesWorld's 0.14 ms 2-row call, and degenerate times, stop at the cap.
        assert_eq!(repeats_for(140_000), MAX_REPEATS);
        assert_eq!(repeats_for(1), MAX_REPEATS);
        assert_eq!(repeats_for(0), MAX_REPEATS);
    }

    #[test]
    fn median_is_the_lower_middle() {
        assert_eq!(median(&mut []), 0);
        assert_eq!(median(&mut [5]), 5);
        assert_eq!(median(&mut [9, 1, 5, 7]), 5);
        assert_eq!(median(&mut [3, 1, 2]), 2);
    }
}
