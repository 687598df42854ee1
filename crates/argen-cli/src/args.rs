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
    /// Device to run on.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Method families to run, comma-separated: vanilla, sd, coupled, lantern, vvs, sjd, gsd,
    /// bon, gridar [default: all]. Vanilla always runs: it is the speed-up baseline.
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Prompts (ShapesWorld: held-out test-split scenes; class-conditional models: classes)
    /// [default: 8, --quick: 2]
    #[arg(long)]
    pub prompts: Option<usize>,
    /// Seeds per prompt [default: 4, --quick: 2]
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 4.0)]
    pub cfg: f32,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Also run the PyTorch peer (tools/bench_peer.py) on the same weights and prompts and
    /// report wall-clock ratios.
    #[arg(long)]
    pub peer: bool,
    /// Python interpreter for --peer.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Worker threads (0 = all cores); the peer uses as many.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Candidate methods of the `bon` and `gridar` rows, comma-separated (vanilla, sd, lantern,
    /// gsd, vvs, sjd): one set of rows per method, named `… inner=METHOD` [default: vanilla].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub inner: Vec<Method>,
}

/// `argen score`.
#[derive(Args, Debug)]
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
    /// Classifier-free guidance scale (1 = no guidance).
    #[arg(long, default_value_t = 4.0)]
    pub cfg: f32,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Top-k truncation (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: u32,
    /// Top-p (nucleus) truncation (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Acceptance criterion of `--method sd`, `vvs` and `sjd`.
    #[arg(long, value_enum, default_value = "exact")]
    pub criterion: CriterionArg,
    /// Draft shape of speculative methods.
    #[arg(long, value_enum, default_value = "tree")]
    pub draft: DraftArg,
    /// Chain draft length.
    #[arg(long, default_value_t = 4)]
    pub gamma: u32,
    /// Nodes of the EAGLE-2 tree.
    #[arg(long, default_value_t = 59)]
    pub tree_total: u32,
    /// Depth of the EAGLE-2 tree.
    #[arg(long, default_value_t = 4)]
    pub tree_depth: u32,
    /// Children per expanded node of the EAGLE-2 tree.
    #[arg(long, default_value_t = 10)]
    pub tree_top_k: u32,
    /// LANTERN total-variation budget δ.
    #[arg(long, default_value_t = 0.2)]
    pub delta: f32,
    /// LANTERN latent neighbours per token (capped at vocabulary − 1).
    #[arg(long, default_value_t = 1000)]
    pub lantern_k: usize,
    /// LANTERN neighbour metric: `normalised` (default) ranks codebook rows as LlamaGen's VQ
    /// looks them up (l2-normalised); `raw` ranks the stored rows, as the official LANTERN code
    /// does (reproduces the paper's setting with official checkpoints).
    #[arg(long, value_enum, default_value = "normalised")]
    pub lantern_metric: LanternMetricArg,
    /// LANTERN++ factor λ (off by default).
    #[arg(long)]
    pub lambda: Option<f32>,
    /// VVS skip schedule.
    #[arg(long, value_enum, default_value = "uniform")]
    pub vvs_schedule: VvsScheduleArg,
    /// VVS uniform schedule: skip when `step % interval == 1`.
    #[arg(long, default_value_t = 2)]
    pub vvs_interval: u32,
    /// VVS dynamic schedule: similarity threshold.
    #[arg(long, default_value_t = 0.65)]
    pub vvs_threshold: f32,
    /// Jacobi window length.
    #[arg(long, default_value_t = 16)]
    pub window: u32,
    /// Jacobi initialisation of new window positions.
    #[arg(long, value_enum, default_value = "random")]
    pub jacobi_init: JacobiInitArg,
    /// Candidates of Best-of-N and GridAR.
    #[arg(long, default_value_t = 4)]
    pub n: u32,
    /// The method of each candidate of `--method bon` and `gridar` (its own flags — `--criterion`,
    /// `--draft`, `--delta`, … — apply) [default: vanilla]. GridAR needs restartable candidates:
    /// vanilla only, for now.
    #[arg(long, value_enum)]
    pub inner: Option<Method>,
    /// GridAR: keep the user's prompt at the pruning points (no layout reformulation, no
    /// three-way guidance). Reformulation needs the ShapesWorld judge; other models never
    /// reformulate.
    #[arg(long)]
    pub no_reformulate: bool,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `argen decode`.
#[derive(Args, Debug)]
pub struct DecodeArgs {
    /// Model directory (vq.json, vq.safetensors) [default: as for `generate`]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// JSON array of token ids, in raster order.
    #[arg(long)]
    pub tokens: PathBuf,
    /// Output PNG.
    #[arg(long, default_value = "out.png")]
    pub out: PathBuf,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}
