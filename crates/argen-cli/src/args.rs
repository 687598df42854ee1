//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Fast, deterministic decoding for visual autoregressive image generators.
#[derive(Parser, Debug)]
#[command(name = "argen", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate an image.
    Generate(GenerateArgs),
    /// Turn a JSON array of token ids into an image.
    Decode(DecodeArgs),
    /// Judge a ShapesWorld image against a prompt, per category.
    Score(ScoreArgs),
    /// Benchmark every decoding method: speed and quality side by side (Markdown table on
    /// stdout, progress on stderr).
    Bench(BenchArgs),
    /// Measure what one target and one drafter action cost on this machine for 1…128 model
    /// rows and write the model directory's cost profile (`cost-profile.json`), which
    /// `argen bench` predicts speed-ups from (progress on stderr).
    Calibrate(CalibrateArgs),
    /// Re-run a run recorded with `argen generate --trace FILE` and report "identical" or the
    /// first divergence (exit 1).
    Replay(ReplayArgs),
    /// Read recorded runs.
    #[command(subcommand)]
    Trace(TraceCommand),
}

/// `argen replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The run file (`argen generate --trace FILE`).
    pub file: PathBuf,
    /// Model directory [default: the one the run recorded, else $ARGEN_MODEL, else the bundled
    /// ShapesWorld model]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Device to replay on [default: the recorded one].
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    /// Worker threads (0 = all cores); results do not depend on it.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `argen trace …`.
#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// Print a run file readably: how it was asked for, every step, the stats and tokens.
    Show(TraceShowArgs),
}

/// `argen trace show`.
#[derive(Args, Debug)]
pub struct TraceShowArgs {
    /// The run file.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Devices `argen generate` and `argen bench` can run on.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    /// The CPU runtime (argen-cpu).
    Cpu,
    /// The CUDA runtime (argen-cuda) on device 0: the models, sampling and verification all run
    /// on the GPU (logits never leave it); without a usable GPU, a one-line error naming what
    /// is missing (library, driver, device).
    Cuda,
}

/// `argen bench`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct BenchArgs {
    /// Model directory [default: $ARGEN_MODEL, else the bundled ShapesWorld model]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A short run (under two minutes): fewer prompts and seeds, shortened sweeps.
    #[arg(long)]
    pub quick: bool,
    /// Write every row (and the peer's timings) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the plots (PNG) into this directory.
    #[arg(long)]
    pub plots: Option<PathBuf>,
    /// Record every image the bench makes as a run file in this directory
    /// (`ROW-pPROMPT-sSEED.argrun`, for `argen replay` and `argen trace show`).
    #[arg(long)]
    pub traces: Option<PathBuf>,
    /// Device to run on.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Method families to run, comma-separated: vanilla, sd, coupled, lantern, vvs, sjd, gsd,
    /// bon, gridar [default: all]. Vanilla always runs: it is the speed-up baseline.
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Prompts (ShapesWorld: held-out test-split scenes; class-conditional models: classes),
    /// 1 to 1000 [default: 8, --quick: 2]
    #[arg(long)]
    pub prompts: Option<usize>,
    /// Seeds per prompt, 1 to 1000 [default: 4, --quick: 2]
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 4.0, allow_hyphen_values = true)]
    pub cfg: f32,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub temperature: f32,
    /// Also run the PyTorch peer (tools/bench_peer.py) on the same weights and prompts and
    /// report wall-clock ratios.
    #[arg(long)]
    pub peer: bool,
    /// Python interpreter for --peer.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Worker threads (0 = all cores, at most 256); the peer uses as many.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Run the images interleaved — image 1 of every row (in a fresh pseudo-random order per
    /// image), then image 2, … — instead of row by row, so that a change in the machine's load
    /// over the run hits every row alike (the speed-ups and the cost model's errors are ratios
    /// between rows); rows are reported at the end. A profile the run calibrates itself is
    /// measured again before later images and the predictions use each point's median. Tokens
    /// do not depend on the order.
    #[arg(long)]
    pub interleave: bool,
    /// Clock the images are timed with: wall (elapsed time) or cpu (CPU time of the runtime's
    /// threads, for a shared or loaded machine; CPU device only). The model directory's cost
    /// profile is used only if it was measured with the same clock.
    #[arg(long, value_enum, default_value = "wall")]
    pub clock: ClockArg,
    /// Candidate methods of the `bon` and `gridar` rows, comma-separated (vanilla, sd, lantern,
    /// gsd, vvs, sjd): one set of rows per method, named `… inner=METHOD` [default: vanilla].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub inner: Vec<Method>,
}

/// `argen calibrate`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct CalibrateArgs {
    /// Model directory [default: $ARGEN_MODEL, else the bundled ShapesWorld model]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Where to write the profile [default: MODEL/cost-profile.json]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device to measure.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Worker threads (0 = all cores, at most 256); a profile holds for one thread count.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Row counts to measure, comma-separated, strictly increasing, at most 16.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,4,6,8,10,12,16,18,24,32,34,48,64,96,128"
    )]
    pub rows: Vec<u32>,
    /// Image tokens in the KV cache while measuring [default: half the image]
    #[arg(long)]
    pub context: Option<u32>,
    /// Seconds the measured rounds should take (5 to 25 rounds whatever the budget).
    #[arg(long, default_value_t = 2.0)]
    pub budget: f64,
    /// How a point's times are summarised: median (an undisturbed call) or mean (disturbances
    /// from other processes included, for shared machines).
    #[arg(long, value_enum, default_value = "median")]
    pub statistic: StatisticArg,
    /// Clock the calls and images are timed with: wall (elapsed time) or cpu (CPU time of the
    /// runtime's threads, for a shared or loaded machine; CPU device only). A profile records
    /// its clock.
    #[arg(long, value_enum, default_value = "wall")]
    pub clock: ClockArg,
    /// First tune the CPU kernels' speed-only settings (prefetch, pairing, panels, blocks)
    /// for this machine by timing the model, then measure the profile under them and record
    /// them in it; `argen generate` and `argen bench` apply them on this CPU. Results are the
    /// same bits whatever the settings. With `ARGEN_FAST_KERNELS=1` (bf16 weights) it tunes the
    /// fast class's own settings. CPU device only.
    #[arg(long)]
    pub kernels: bool,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// `argen calibrate --statistic`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatisticArg {
    /// The median of the rounds.
    Median,
    /// The mean of the rounds.
    Mean,
}

/// `argen calibrate --clock` and `argen bench --clock`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockArg {
    /// Wall-clock time.
    Wall,
    /// CPU time of the runtime's threads (`argen_engine::clock`).
    Cpu,
}

impl ClockArg {
    /// The engine's clock.
    pub fn clock(self) -> argen_engine::clock::Clock {
        match self {
            ClockArg::Wall => argen_engine::clock::Clock::Wall,
            ClockArg::Cpu => argen_engine::clock::Clock::Cpu,
        }
    }
}

/// `argen score`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct ScoreArgs {
    /// The prompt, in the ShapesWorld grammar.
    #[arg(long)]
    pub prompt: String,
    /// The image (PNG, square, 32–1024 px).
    pub image: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Decoding methods (the engine's, with their command-line names).
pub use argen_engine::Method;

/// Acceptance criteria of `--method sd`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CriterionArg {
    /// Lossless speculative sampling.
    Exact,
    /// Token-for-token identical to vanilla decoding with the same seed.
    Coupled,
}

/// LANTERN's neighbour metric (`argen_core::accept::neighbours::Metric`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LanternMetricArg {
    /// L2 between the raw codebook rows (the official LANTERN `generate_codebook.py`).
    Raw,
    /// L2 between l2-normalised rows: the latent space LlamaGen's VQ looks codes up in.
    Normalised,
}

impl From<LanternMetricArg> for argen_core::accept::Metric {
    fn from(m: LanternMetricArg) -> Self {
        match m {
            LanternMetricArg::Raw => argen_core::accept::Metric::Raw,
            LanternMetricArg::Normalised => argen_core::accept::Metric::Normalised,
        }
    }
}

/// Draft shapes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DraftArg {
    /// A chain of `--gamma` sampled drafts.
    Chain,
    /// An EAGLE-2 dynamic tree (`--tree-total`, `--tree-depth`, `--tree-top-k`).
    Tree,
    /// Cost-aware chains: each step drafts 0 to `--gamma` tokens, whatever is fastest on this
    /// machine (reads the model directory's cost-profile.json, written by `argen calibrate`).
    /// --method sd, lantern, gsd.
    Auto,
    /// Cost-aware EAGLE-2 trees: each step drafts to depth 0 to `--tree-depth`.
    AutoTree,
}

/// VVS skip schedules.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VvsScheduleArg {
    /// Skip every `--vvs-interval`-th step.
    Uniform,
    /// Skip when the draft tree's candidate paths look alike (`--vvs-threshold`).
    Dynamic,
}

/// Jacobi window initialisations.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum JacobiInitArg {
    /// Uniformly random tokens.
    Random,
    /// Copy of the left neighbour (random in the first column).
    CopyLeft,
}

/// `argen generate`.
#[derive(Args, Clone, Debug)]
#[command(allow_negative_numbers = true)]
pub struct GenerateArgs {
    /// Model directory: gpt.json, gpt.safetensors, vq.json, vq.safetensors, and
    /// drafter.safetensors for speculative methods [default: $ARGEN_MODEL, else the bundled
    /// ShapesWorld model]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// ShapesWorld prompt, e.g. "two red circles left of a blue square" (ShapesWorld models).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Device to run on.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Decoding method.
    #[arg(long, value_enum, default_value = "vanilla")]
    pub method: Method,
    /// Seed: the same seed gives the same image, on any thread count.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output PNG.
    #[arg(long, default_value = "out.png")]
    pub out: PathBuf,
    /// Write statistics as JSON here.
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// Write the generated token ids as a JSON array here.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Record the run here (a run file: arguments, decoder configuration, model fingerprint and
    /// the decoding trace) for `argen replay FILE` and `argen trace show FILE`.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Class id (class-conditional models).
    #[arg(long)]
    pub class: Option<u32>,
    /// Caption features (text-conditional models): raw little-endian f32,
    /// `cls_token_num × caption_dim` values.
    #[arg(long)]
    pub caption: Option<PathBuf>,
    /// Leading padding positions of the caption.
    #[arg(long, default_value_t = 0)]
    pub caption_pad: usize,
    /// Classifier-free guidance scale (1 = no guidance), in [-1000, 1000].
    #[arg(long, default_value_t = 4.0, allow_hyphen_values = true)]
    pub cfg: f32,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub temperature: f32,
    /// Top-k truncation (0 = off; at most the vocabulary size).
    #[arg(long, default_value_t = 0)]
    pub top_k: u32,
    /// Top-p (nucleus) truncation, in (0, 1] (1 = off; the top token always survives).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub top_p: f32,
    /// Acceptance criterion of `--method sd`, `vvs` and `sjd`.
    #[arg(long, value_enum, default_value = "exact")]
    pub criterion: CriterionArg,
    /// Draft shape of speculative methods.
    #[arg(long, value_enum, default_value = "tree")]
    pub draft: DraftArg,
    /// The cost profile `--draft auto` decides with (set from the model directory's
    /// cost-profile.json, or by `argen bench`; never a flag).
    #[arg(skip)]
    pub cost_profile: Option<Box<argen_core::cost::CostProfile>>,
    /// Chain draft length (1 to 63; --method vvs: 1 to 31).
    #[arg(long, default_value_t = 4)]
    pub gamma: u32,
    /// Nodes of the EAGLE-2 tree (total plus depth at most 63).
    #[arg(long, default_value_t = 59)]
    pub tree_total: u32,
    /// Depth of the EAGLE-2 tree.
    #[arg(long, default_value_t = 4)]
    pub tree_depth: u32,
    /// Children per expanded node of the EAGLE-2 tree (top-k + (depth − 1)·top-k² ≤ 512).
    #[arg(long, default_value_t = 10)]
    pub tree_top_k: u32,
    /// LANTERN total-variation budget δ.
    #[arg(long, default_value_t = 0.2, allow_hyphen_values = true)]
    pub delta: f32,
    /// LANTERN latent neighbours per token, 1 to 4096 (capped at vocabulary − 1).
    #[arg(long, default_value_t = 1000)]
    pub lantern_k: usize,
    /// LANTERN neighbour metric: `normalised` (default) ranks codebook rows as LlamaGen's VQ
    /// looks them up (l2-normalised); `raw` ranks the stored rows, as the official LANTERN code
    /// does (reproduces the paper's setting with official checkpoints).
    #[arg(long, value_enum, default_value = "normalised")]
    pub lantern_metric: LanternMetricArg,
    /// LANTERN++ factor λ (off by default).
    #[arg(long, allow_hyphen_values = true)]
    pub lambda: Option<f32>,
    /// VVS skip schedule.
    #[arg(long, value_enum, default_value = "uniform")]
    pub vvs_schedule: VvsScheduleArg,
    /// VVS uniform schedule: skip when `step % interval == 1`.
    #[arg(long, default_value_t = 2)]
    pub vvs_interval: u32,
    /// VVS dynamic schedule: similarity threshold.
    #[arg(long, default_value_t = 0.65, allow_hyphen_values = true)]
    pub vvs_threshold: f32,
    /// Jacobi window length (1 to 63).
    #[arg(long, default_value_t = 16)]
    pub window: u32,
    /// Jacobi initialisation of new window positions.
    #[arg(long, value_enum, default_value = "random")]
    pub jacobi_init: JacobiInitArg,
    /// Candidates of Best-of-N and GridAR (1 to 16).
    #[arg(long, default_value_t = 4)]
    pub n: u32,
    /// The method of each candidate of `--method bon` and `gridar` (its own flags — `--criterion`,
    /// `--draft`, `--delta`, … — apply) [default: vanilla]. GridAR needs restartable
    /// candidates (not sjd; speculative ones once they are restartable).
    #[arg(long, value_enum)]
    pub inner: Option<Method>,
    /// GridAR: keep the user's prompt at the pruning points (no layout reformulation, no
    /// three-way guidance). Reformulation needs the ShapesWorld judge; other models never
    /// reformulate.
    #[arg(long)]
    pub no_reformulate: bool,
    /// Worker threads (0 = all cores, at most 256).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// CPU: opt-in fast kernels (AVX512-BF16 dot products for bf16 weights, where the CPU has
    /// them) with their own reduction order, so results differ from the default exact
    /// kernels; the stats record the class that ran. Also `ARGEN_FAST_KERNELS=1`.
    #[arg(long)]
    pub fast_kernels: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `argen decode`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct DecodeArgs {
    /// Model directory (vq.json, vq.safetensors) [default: as for `generate`]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// JSON array of token ids, in raster order (a square grid of at most 1024 ids; the file at
    /// most 1 MiB).
    #[arg(long)]
    pub tokens: PathBuf,
    /// Output PNG.
    #[arg(long, default_value = "out.png")]
    pub out: PathBuf,
    /// Worker threads (0 = all cores, at most 256).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

// ---------------------------------------------------------------------------------------------
// Limits and validation. Every option is checked against these documented bounds before any
// file is read or memory reserved; each message names the option as the user typed it.

/// Most worker threads (`--threads`).
pub const MAX_THREADS: usize = 256;
/// Most prompts of `argen bench --prompts`.
pub const MAX_BENCH_PROMPTS: usize = 1000;
/// Most seeds per prompt of `argen bench --seeds`.
pub const MAX_BENCH_SEEDS: u64 = 1000;
/// Largest `|--cfg|`: far beyond any useful guidance scale, small enough that guided logits
/// stay finite in `f32`.
pub const MAX_CFG: f32 = 1000.0;
/// Most LANTERN neighbours per token (`--lantern-k`): the table holds `vocab × k` ids.
pub const MAX_LANTERN_K: usize = 4096;
/// Largest candidate pool of the EAGLE-2 tree, `top_k + (depth − 1)·top_k²`
/// ([`argen_core::decode`]'s `MAX_POOL`).
pub const MAX_TREE_POOL: u64 = 512;
/// Longest text an error message echoes, and how it is cut (shared with the engine's prompt
/// errors).
pub use argen_engine::shapes::clip;

fn check_threads(threads: usize) -> Result<(), String> {
    if threads > MAX_THREADS {
        return Err(format!(
            "--threads {threads} is too many: at most {MAX_THREADS} (0 = all cores)"
        ));
    }
    Ok(())
}

fn check_real(flag: &str, x: f32, lo: f32, hi: f32, what: &str) -> Result<(), String> {
    if !(x.is_finite() && x >= lo && x <= hi) {
        return Err(format!("{flag} {} is out of range: {what}", show(x)));
    }
    Ok(())
}

/// A number as a user would write it (exponent form when very large or small).
fn show(x: f32) -> String {
    if x != 0.0 && x.is_finite() && !(1e-4..1e7).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

/// Checks guidance and temperature (shared by `generate` and `bench`).
fn check_sampling(cfg: f32, temperature: f32) -> Result<(), String> {
    check_real(
        "--cfg",
        cfg,
        -MAX_CFG,
        MAX_CFG,
        &format!("the guidance scale must be a finite number in [-{MAX_CFG}, {MAX_CFG}] (1 = no guidance)"),
    )?;
    check_real(
        "--temperature",
        temperature,
        0.0,
        f32::MAX,
        "must be a finite number ≥ 0 (0 = greedy)",
    )?;
    if temperature > 0.0 && !(1.0 / temperature).is_finite() {
        return Err(format!(
            "--temperature {temperature} is too small (1/temperature overflows); use 0 for greedy"
        ));
    }
    Ok(())
}

impl Cli {
    /// Checks every option against its documented bounds (model-independent checks; see
    /// [`GenerateArgs::check_for_model`] for the rest).
    pub fn check(&self) -> Result<(), String> {
        match &self.command {
            Command::Generate(g) => g.check(),
            Command::Decode(d) => check_threads(d.threads),
            Command::Score(_) => Ok(()),
            Command::Bench(b) => b.check(),
            Command::Calibrate(c) => {
                check_threads(c.threads)?;
                if !(c.budget.is_finite() && (0.0..=3600.0).contains(&c.budget)) {
                    return Err(format!(
                        "--budget {} is out of range: 0 to 3600 seconds",
                        c.budget
                    ));
                }
                Ok(())
            }
            Command::Replay(r) => check_threads(r.threads),
            Command::Trace(_) => Ok(()),
        }
    }
}

impl BenchArgs {
    /// Checks the options against their bounds.
    pub fn check(&self) -> Result<(), String> {
        check_threads(self.threads)?;
        if let Some(p) = self.prompts {
            if !(1..=MAX_BENCH_PROMPTS).contains(&p) {
                return Err(format!(
                    "--prompts {p} is out of range: 1 to {MAX_BENCH_PROMPTS}"
                ));
            }
        }
        if let Some(s) = self.seeds {
            if !(1..=MAX_BENCH_SEEDS).contains(&s) {
                return Err(format!(
                    "--seeds {s} is out of range: 1 to {MAX_BENCH_SEEDS}"
                ));
            }
        }
        check_sampling(self.cfg, self.temperature)
    }
}

impl GenerateArgs {
    /// Checks the options against their bounds, each message naming the option.
    pub fn check(&self) -> Result<(), String> {
        use argen_core::decode::{MAX_CANDIDATES, MAX_INPUTS};
        check_threads(self.threads)?;
        check_sampling(self.cfg, self.temperature)?;
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!(
                "--top-p {} is out of range: the nucleus mass must be in (0, 1] (1 = off)",
                self.top_p
            ));
        }
        if !(1..=MAX_CANDIDATES as u32).contains(&self.n) {
            return Err(format!(
                "--n {} is out of range: 1 to {MAX_CANDIDATES} candidates",
                self.n
            ));
        }
        let max_nodes = MAX_INPUTS as u32 - 1;
        let speculative = matches!(
            self.method,
            Method::Sd | Method::Lantern | Method::Gsd | Method::Vvs
        );
        if self.method == Method::Sjd && !(1..=max_nodes).contains(&self.window) {
            return Err(format!(
                "--window {} is out of range: 1 to {max_nodes}",
                self.window
            ));
        }
        if speculative {
            if self.method == Method::Vvs
                && matches!(self.draft, DraftArg::Auto | DraftArg::AutoTree)
            {
                return Err(
                    "--draft auto is not available for --method vvs (its skip schedule is its own \
                     policy; hint: --draft chain or tree)"
                        .into(),
                );
            }
            match self.draft {
                DraftArg::Chain | DraftArg::Auto => {
                    // VVS runs the chain after up to `gamma` post-verified tokens.
                    let most = if self.method == Method::Vvs {
                        (max_nodes - 1) / 2
                    } else {
                        max_nodes
                    };
                    if !(1..=most).contains(&self.gamma) {
                        return Err(format!(
                            "--gamma {} is out of range: 1 to {most} for --method {}",
                            self.gamma,
                            self.method.name()
                        ));
                    }
                }
                DraftArg::Tree | DraftArg::AutoTree => {
                    let (total, depth, k) = (self.tree_total, self.tree_depth, self.tree_top_k);
                    if total == 0 || depth == 0 || k == 0 {
                        return Err(
                            "--tree-total, --tree-depth and --tree-top-k must be at least 1".into(),
                        );
                    }
                    if u64::from(total) + u64::from(depth) > u64::from(max_nodes) {
                        return Err(format!(
                            "drafts too large: --tree-total {total} plus --tree-depth {depth} \
                             must not exceed {max_nodes}"
                        ));
                    }
                    let pool = u64::from(k) + u64::from(depth - 1) * u64::from(k) * u64::from(k);
                    if k > max_nodes || pool > MAX_TREE_POOL {
                        return Err(format!(
                            "--tree-top-k {k} is too large for --tree-depth {depth}: \
                             top-k + (depth − 1)·top-k² must not exceed {MAX_TREE_POOL}"
                        ));
                    }
                }
            }
        }
        if self.method == Method::Lantern {
            check_real("--delta", self.delta, 0.0, 1.0, "must be in [0, 1]")?;
            if !(1..=MAX_LANTERN_K).contains(&self.lantern_k) {
                return Err(format!(
                    "--lantern-k {} is out of range: 1 to {MAX_LANTERN_K}",
                    self.lantern_k
                ));
            }
            if let Some(l) = self.lambda {
                check_real("--lambda", l, 1.0, 2147483648.0, "must be in [1, 2^31]")?;
            }
        }
        if self.method == Method::Vvs {
            if self.vvs_interval == 0 {
                return Err("--vvs-interval must be at least 1 (1 = never skip)".into());
            }
            check_real(
                "--vvs-threshold",
                self.vvs_threshold,
                -1.0,
                1.0,
                "must be in [-1, 1]",
            )?;
        }
        Ok(())
    }

    /// Checks the options that depend on the model: `--top-k` against the vocabulary,
    /// `--caption-pad` against the condition tokens.
    pub fn check_for_model(&self, cfg: &argen_model::GptConfig) -> Result<(), String> {
        if self.top_k as usize > cfg.vocab_size {
            return Err(format!(
                "--top-k {} is out of range: 0 (off) to the vocabulary size {}",
                self.top_k, cfg.vocab_size
            ));
        }
        if self.caption_pad > cfg.cls_token_num {
            return Err(format!(
                "--caption-pad {} is out of range: 0 to the {} condition tokens",
                self.caption_pad, cfg.cls_token_num
            ));
        }
        Ok(())
    }
}

/// Turns a clap error into `argen`'s one-line format: the message (first paragraph, joined),
/// clap's tips, and a pointer to the right `--help`. Help and version requests pass through.
pub fn clap_error_line(e: &clap::Error) -> Option<String> {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => return None,
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            return Some(
                "no command given: use one of generate, decode, score, bench (see `argen --help`)"
                    .into(),
            )
        }
        _ => {}
    }
    let text = e.render().to_string();
    let mut paragraphs = text.split("\n\n").map(str::trim).filter(|p| !p.is_empty());
    let first = paragraphs.next().unwrap_or("invalid arguments");
    let mut msg = first
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_string();
    // Without a usage paragraph, the subcommand typed (if any) names the help to read.
    let mut command = match std::env::args().nth(1) {
        Some(s) if ["generate", "decode", "score", "bench"].contains(&s.as_str()) => {
            format!("argen {s}")
        }
        _ => "argen".to_string(),
    };
    for p in paragraphs {
        if let Some(tip) = p.strip_prefix("tip: ") {
            msg.push_str(&format!(" (tip: {})", tip.lines().next().unwrap_or("")));
        } else if let Some(usage) = p.strip_prefix("Usage: ") {
            command = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    Some(format!("{}; see `{command} --help`", clip_quoted(&msg)))
}

/// Clips every `'…'`-quoted value in `msg` with [`clip`].
fn clip_quoted(msg: &str) -> String {
    let parts: Vec<&str> = msg.split('\'').collect();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| if i % 2 == 1 { clip(p) } else { p.to_string() })
        .collect::<Vec<_>>()
        .join("'")
}
