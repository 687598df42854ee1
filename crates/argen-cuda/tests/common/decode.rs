//! Whole decodes with device-resident logits, shared by `pocl_decode.rs` (OpenCL / PoCL) and
//! `gpu_parity.rs` (CUDA): `argen_model::ModelHost` over `GpuCompute` with argen-cuda's
//! [`DeviceLogitSink`], sampled and verified by [`GpuBackend`] on the same executor — the path
//! of `argen generate --device cuda`.
//!
//! Three decodes of each case (the tiny `c2i_tiny` fixture with its drafter: vanilla with
//! two-way CFG; exact speculative decoding with a chain and with a tree; LANTERN with a tree;
//! VVS with a tree and a uniform skip schedule; several seeds each):
//!
//! * **device**: device model + `DeviceLogitSink` + `GpuBackend` (no logits leave the device);
//! * **host**: the same device model + `HostLogits` (the logits downloaded) + `SliceBackend`;
//! * **cpu**: argen-cpu's model + `HostLogits` + `SliceBackend` (the CPU runtime).
//!
//! *device* and *host* see the same logits bits (the same kernels on the same device, which
//! are deterministic), and `GpuBackend` is bit-identical to `SliceBackend` (`pocl_parity.rs`),
//! so their tokens and counters must be identical: this checks the sink's interleave (rows of
//! several variants and forwards), the device gather, and `GpuBackend` reading the logits
//! where the model left them — a teacher-forced comparison of the two backends on the same
//! logits bits. Against *cpu* the model logits differ by ~1e-6 (different summation order,
//! `pocl_model.rs`), so equal tokens are not guaranteed; the agreement is printed and the
//! logits' closeness is `pocl_model.rs`'s job.
//!
//! [`no_logits_cross_the_bus`] counts every byte the executor reads back, per phase of each
//! decoding step (host: the model forward and the sink; backend: sampling / verification).

use super::model::fixture;
use argen_core::accept::neighbours::build_table;
use argen_core::accept::{Criterion, LanternParams, NeighbourTable};
use argen_core::decode::{
    drive, Action, Answered, BestOfN, Config, Decoder, DraftShape, GuidanceMode, NoObserver,
    Observer, Schedule, Speculative, SpeculativeConfig, Stats, Vanilla, Vvs, VvsConfig,
};
use argen_core::{SamplerParams, SliceStorage};
use argen_cpu::Cpu;
use argen_cuda::compute::GpuCompute;
use argen_cuda::launch::{Executor, GemmDesc, Launch};
use argen_cuda::{DeviceLogitSink, GpuBackend};
use argen_model::{host_capacity, Compute, Condition, Drafter, Gpt, GptConfig, Judge, ModelHost};
use std::sync::atomic::{AtomicU64, Ordering};

/// Most inputs of one target run in these cases.
const TREE: usize = 16;
/// Image tokens of the decoders (the fixture has 16).
const TOKENS: usize = 64;

/// A target, its drafter and the config, on one compute backend.
pub struct Models<C: Compute> {
    gpt: Gpt<C>,
    drafter: Drafter<C>,
    cfg: GptConfig,
}

/// `c2i_tiny`'s GPT and drafter on `c`.
pub fn models<C: Compute>(c: &C) -> Models<C> {
    let case = "c2i_tiny";
    let cfg = GptConfig::load(fixture(case, "gpt.json")).unwrap();
    let cap = host_capacity(&cfg, SEQS, TREE);
    let gpt = Gpt::load(c, &cfg, fixture(case, "gpt.safetensors"), cap).unwrap();
    let drafter = Drafter::load(c, &cfg, fixture(case, "drafter.safetensors"), cap).unwrap();
    Models { gpt, drafter, cfg }
}

/// Sequences of the host: Best-of-2's candidates (the single-image cases use sequence 0).
const SEQS: usize = 2;

fn conds() -> [(Condition, Condition); SEQS] {
    [
        (Condition::Class(Some(3)), Condition::Class(None)),
        (Condition::Class(Some(5)), Condition::Class(None)),
    ]
}

/// The decoding settings of every model-level decode test: CFG 3, top-k 32, temperature 1.
pub fn config(cfg: &GptConfig, seed: u64) -> Config {
    Config {
        seed,
        stream: 0,
        seq: 0,
        tokens: cfg.block_size as u32,
        width: cfg.grid() as u32,
        sampler: SamplerParams {
            temperature: 1.0,
            top_k: Some(32),
            top_p: None,
            min_p: None,
        },
        guidance: GuidanceMode::TwoWay { scale: 3.0 },
    }
}

/// Scores every image 0 (Best-of-N keeps candidate 0); judges nothing else.
struct ZeroScore;

impl Judge for ZeroScore {
    fn check(&mut self, _: u32, _: u32, _: &[u32]) -> Result<bool, String> {
        Ok(true)
    }
    fn score(&mut self, _: u32, _: &[u32]) -> Result<f32, String> {
        Ok(0.0)
    }
    fn reformulate(&mut self, _: u32, _: u32, _: &[u32]) -> Result<Condition, String> {
        Err("no reformulator".into())
    }
}

/// Runs `dec` on the host path: `m` (any compute) + `HostLogits` + `SliceBackend`.
pub fn run_host<C: Compute, D: Decoder>(
    m: &mut Models<C>,
    drafter: bool,
    dec: &mut D,
    obs: &mut impl Observer,
) -> (Vec<u32>, Stats) {
    let mut storage = SliceStorage::new(m.cfg.vocab_size, dec.dist_rows_needed());
    let mut backend = storage.backend::<f32>().unwrap();
    let mut judge = ZeroScore;
    let dr = drafter.then_some(&mut m.drafter);
    let mut host = ModelHost::new(&mut m.gpt, dr, Some(&mut judge), &conds()).unwrap();
    let stats = drive(dec, &mut backend, &mut host, obs).unwrap();
    (dec.tokens(dec.result_seq()).to_vec(), stats)
}

/// Runs `dec` on the device path: `m` on `gc` + `DeviceLogitSink` + `GpuBackend`, both on
/// `gc`'s executor.
pub fn run_device<E: Executor, D: Decoder>(
    gc: &GpuCompute<E>,
    m: &mut Models<GpuCompute<E>>,
    drafter: bool,
    dec: &mut D,
    obs: &mut impl Observer,
) -> (Vec<u32>, Stats) {
    let v = m.cfg.vocab_size;
    let rows = dec.dist_rows_needed();
    let mut backend = GpuBackend::new(gc.executor(), v, rows, rows.max(1)).unwrap();
    let sink = DeviceLogitSink::new(gc, m.gpt.capacity().rows, v).unwrap();
    let mut judge = ZeroScore;
    let dr = drafter.then_some(&mut m.drafter);
    let mut host = ModelHost::with_sink(&mut m.gpt, dr, Some(&mut judge), &conds(), sink).unwrap();
    let stats = drive(dec, &mut backend, &mut host, obs).unwrap();
    (dec.tokens(dec.result_seq()).to_vec(), stats)
}

/// Something that runs one decoder (built fresh by `make` as often as it needs).
trait Runner {
    fn run<D: Decoder>(&mut self, name: &str, make: impl Fn() -> D);
}

/// The pseudo-codebook of `host_loop.rs` (the tiny VQ's codebook is smaller than the GPT's
/// vocabulary): `vocab × 4`.
fn codebook(vocab: usize) -> Vec<f32> {
    (0..vocab * 4)
        .map(|i| ((i * 37 % 101) as f32 / 101.0) - 0.5)
        .collect()
}

/// Every case of the module docs for `seed`.
fn each_case(cfg: &GptConfig, seed: u64, r: &mut impl Runner) {
    let v = cfg.vocab_size;
    let base = config(cfg, seed);
    let tree = DraftShape::Tree {
        total: 10,
        depth: 3,
        top_k: 3,
    };
    let spec = |shape| SpeculativeConfig {
        base,
        draft_sampler: base.sampler,
        shape,
    };
    let book = codebook(v);
    let table = build_table(&book, 4, 6).unwrap();
    let lantern = Criterion::Lantern(LanternParams {
        neighbours: NeighbourTable::new(&table, v, 6).unwrap(),
        k: 6,
        delta: 0.3,
        lambda: None,
    });
    r.run("vanilla", || Vanilla::<TOKENS>::new(base).unwrap());
    r.run("exact chain", || {
        Speculative::<TOKENS, TREE>::new(spec(DraftShape::Chain { gamma: 3 }), Criterion::Exact)
            .unwrap()
    });
    r.run("exact tree", || {
        Speculative::<TOKENS, TREE>::new(spec(tree), Criterion::Exact).unwrap()
    });
    r.run("lantern tree", || {
        Speculative::<TOKENS, TREE>::new(spec(tree), lantern).unwrap()
    });
    r.run("vvs tree", || {
        let vc = VvsConfig {
            spec: spec(tree),
            schedule: Schedule::Uniform { interval: 2 },
            warmup: 2,
            codebook: &book,
            dim: 4,
        };
        Vvs::<TOKENS, TREE>::new(vc, Criterion::Exact).unwrap()
    });
    // Batched forwards (protocol v2): both candidates' drafter and verification runs go through
    // one forward each and the backend's row windows.
    r.run("best-of-2 exact tree", || {
        BestOfN::<_, SEQS>::new(base, SEQS as u32, |c| {
            Speculative::<TOKENS, TREE>::new(
                SpeculativeConfig {
                    base: c,
                    draft_sampler: c.sampler,
                    shape: tree,
                },
                Criterion::Exact,
            )
        })
        .unwrap()
    });
}

struct Compare<'a, E: Executor> {
    gc: &'a GpuCompute<E>,
    dev: &'a mut Models<GpuCompute<E>>,
    cpu: &'a mut Models<Cpu>,
    seed: u64,
    cases: u32,
    same_as_cpu: u32,
}

impl<E: Executor> Runner for Compare<'_, E> {
    fn run<D: Decoder>(&mut self, name: &str, make: impl Fn() -> D) {
        let seed = self.seed;
        let (dt, ds) = run_device(self.gc, self.dev, true, &mut make(), &mut NoObserver);
        let (ht, hs) = run_host(self.dev, true, &mut make(), &mut NoObserver);
        let (ct, _) = run_host(self.cpu, true, &mut make(), &mut NoObserver);
        assert_eq!(dt.len(), self.dev.cfg.block_size, "{name}, seed {seed}");
        assert_eq!(
            dt, ht,
            "{name}, seed {seed}: device-resident logits + GpuBackend decode differently from \
             the same logits downloaded + SliceBackend"
        );
        assert_eq!(ds, hs, "{name}, seed {seed}: counters differ");
        self.cases += 1;
        let same = dt.iter().zip(&ct).take_while(|(a, b)| a == b).count();
        self.same_as_cpu += u32::from(same == ct.len());
        eprintln!(
            "{name}, seed {seed}: device == host path ({} tokens, {} target forwards, {} \
             drafter forwards); agrees with the CPU runtime on the first {same} of {} tokens",
            dt.len(),
            ds.target_forwards,
            ds.draft_forwards,
            ct.len()
        );
    }
}

/// Device-resident decoding equals the host path on the same device model, token for token
/// and counter for counter, for every case and seeds 0–2 (module docs); the agreement with the
/// CPU runtime is printed.
pub fn device_logits_decode_like_the_host<E: Executor>(exec: E) {
    let gc = GpuCompute::new(exec);
    let mut dev = models(&gc);
    let mut cpu = models(&Cpu::new(1).unwrap());
    let cfg = dev.cfg.clone();
    let mut cmp = Compare {
        gc: &gc,
        dev: &mut dev,
        cpu: &mut cpu,
        seed: 0,
        cases: 0,
        same_as_cpu: 0,
    };
    for seed in 0..3 {
        cmp.seed = seed;
        each_case(&cfg, seed, &mut cmp);
    }
    eprintln!(
        "{} of {} decodes equal the CPU runtime's tokens",
        cmp.same_as_cpu, cmp.cases
    );
    assert_eq!(cmp.cases, 18);
    assert!(gc.error().is_none(), "{:?}", gc.error());
}

/// An executor that counts the bytes and calls of every read-back (`Executor::read`).
pub struct Counting<E> {
    inner: E,
    bytes: AtomicU64,
    calls: AtomicU64,
}

impl<E: Executor> Counting<E> {
    pub fn new(inner: E) -> Self {
        Counting {
            inner,
            bytes: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }
    /// Bytes read back so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl<E: Executor> Executor for Counting<E> {
    type Buffer = E::Buffer;
    fn describe(&self) -> String {
        format!("{} (read-backs counted)", self.inner.describe())
    }
    fn alloc(&self, bytes: usize) -> argen_cuda::Result<Self::Buffer> {
        self.inner.alloc(bytes)
    }
    fn alloc_readback(&self, bytes: usize) -> argen_cuda::Result<Self::Buffer> {
        self.inner.alloc_readback(bytes)
    }
    fn len(&self, buf: &Self::Buffer) -> usize {
        self.inner.len(buf)
    }
    fn write(&self, buf: &mut Self::Buffer, offset: usize, data: &[u8]) -> argen_cuda::Result<()> {
        self.inner.write(buf, offset, data)
    }
    fn read(&self, buf: &Self::Buffer, offset: usize, out: &mut [u8]) -> argen_cuda::Result<()> {
        self.bytes.fetch_add(out.len() as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.read(buf, offset, out)
    }
    fn launch(&self, launch: &Launch<'_, Self::Buffer>) -> argen_cuda::Result<()> {
        self.inner.launch(launch)
    }
    fn gemm(&self, g: &GemmDesc<'_, Self::Buffer>) -> argen_cuda::Result<bool> {
        self.inner.gemm(g)
    }
}

/// Read-back bytes of one decoding step with logits: `(action, answer rows, bytes read while
/// the host answered (forward + sink), bytes read while the decoder handled the answer
/// (sampling / verification))`.
type Phase = (&'static str, u64, u64, u64);

/// Splits the executor's read-back bytes by phase of each step (an [`Observer`]).
struct Phases<'a, E: Executor> {
    exec: &'a Counting<E>,
    mark: u64,
    kind: &'static str,
    rows: Option<u64>,
    host: u64,
    steps: Vec<Phase>,
}

impl<'a, E: Executor> Phases<'a, E> {
    fn new(exec: &'a Counting<E>) -> Self {
        Phases {
            exec,
            mark: exec.bytes(),
            kind: "",
            rows: None,
            host: 0,
            steps: Vec::new(),
        }
    }
}

impl<E: Executor> Observer for Phases<'_, E> {
    fn before(&mut self, action: &Action<'_>) {
        if std::env::var_os("ARGEN_DEBUG_DECODE").is_some() {
            eprintln!("{:?}", action);
        }
        self.mark = self.exec.bytes();
        self.kind = action.kind();
        self.rows = None;
    }
    fn answered(&mut self, answer: Answered) {
        let now = self.exec.bytes();
        self.host = now - self.mark;
        self.mark = now;
        if let Answered::Logits { rows } = answer {
            self.rows = Some(rows as u64);
        }
    }
    fn after<D: Decoder>(&mut self, _: &D) {
        if let Some(rows) = self.rows {
            let backend = self.exec.bytes() - self.mark;
            self.steps.push((self.kind, rows, self.host, backend));
        }
    }
}

/// Per-row budget of the backend's result records (bytes): a process record (16), a sample
/// record (8), a top-k expansion of a tree node (8-byte total + 8-byte status + 12 bytes per
/// candidate, 3 candidates here) and a verification record (20 + 4 per accepted token) spread
/// over the rows they serve — far below one logits row (`vocab · 4` = 256 bytes here).
const RECORD_BYTES_PER_ROW: u64 = 128;

/// No logits row is read back on the device path: for vanilla decoding (no drafter) the host
/// phase of every step reads nothing; with a drafter (exact chain and tree speculative decoding)
/// it reads exactly the EAGLE features, `rows × dim × 4` bytes; the backend phase reads only
/// result records (at most [`RECORD_BYTES_PER_ROW`] per answer row, and less than one logits
/// row per step). The same counter on the host path sees `rows × vocab × 4` more bytes per
/// step — the logits downloads this path removes — so the accounting is checked to detect them.
pub fn no_logits_cross_the_bus<E: Executor>(exec: E) {
    let gc = GpuCompute::new(Counting::new(exec));
    let mut m = models(&gc);
    let (v, d) = (m.cfg.vocab_size as u64, m.cfg.dim as u64);
    let base = config(&m.cfg, 7);
    let spec = |shape| SpeculativeConfig {
        base,
        draft_sampler: base.sampler,
        shape,
    };
    let chain = || {
        Speculative::<TOKENS, TREE>::new(spec(DraftShape::Chain { gamma: 3 }), Criterion::Exact)
            .unwrap()
    };
    let tree = || {
        let shape = DraftShape::Tree {
            total: 10,
            depth: 3,
            top_k: 3,
        };
        Speculative::<TOKENS, TREE>::new(spec(shape), Criterion::Exact).unwrap()
    };
    let vanilla = || Vanilla::<TOKENS>::new(base).unwrap();
    let exec = gc.executor();
    for (name, drafter) in [
        ("vanilla", false),
        ("exact chain", true),
        ("exact tree", true),
    ] {
        let mut obs = Phases::new(exec);
        let mut fresh = models(&gc);
        let t0 = std::time::Instant::now();
        let (tokens, _) = match name {
            "vanilla" => run_device(&gc, &mut fresh, drafter, &mut vanilla(), &mut obs),
            "exact chain" => run_device(&gc, &mut fresh, drafter, &mut chain(), &mut obs),
            _ => run_device(&gc, &mut fresh, drafter, &mut tree(), &mut obs),
        };
        assert_eq!(tokens.len(), m.cfg.block_size);
        let steps = obs.steps;
        assert!(
            steps.len() >= m.cfg.block_size / 4,
            "{name}: {} steps",
            steps.len()
        );
        let (mut host_total, mut backend_total, mut rows_total) = (0, 0, 0);
        for (i, &(kind, rows, host, backend)) in steps.iter().enumerate() {
            let features = if drafter { rows * d * 4 } else { 0 };
            assert_eq!(
                host, features,
                "{name} step {i} ({kind}, {rows} rows): the host phase read {host} bytes, \
                 expected the EAGLE features only ({features})"
            );
            assert!(
                backend <= rows * RECORD_BYTES_PER_ROW && backend < v * 4,
                "{name} step {i} ({kind}, {rows} rows): the backend read {backend} bytes"
            );
            host_total += host;
            backend_total += backend;
            rows_total += rows;
        }
        eprintln!(
            "{name}: {} steps, {rows_total} logits rows ({} bytes if downloaded); read back: \
             {host_total} bytes of features, {backend_total} bytes of result records \
             ({:.1} per step); {:.1} s",
            steps.len(),
            rows_total * v * 4,
            backend_total as f64 / steps.len() as f64,
            t0.elapsed().as_secs_f64()
        );
    }
    // The same accounting on the host path (same device model, logits downloaded).
    for (name, drafter) in [("vanilla", false), ("exact chain", true)] {
        let mut obs = Phases::new(exec);
        if drafter {
            run_host(&mut m, true, &mut chain(), &mut obs);
        } else {
            run_host(&mut m, false, &mut vanilla(), &mut obs);
        }
        for (i, &(kind, rows, host, backend)) in obs.steps.iter().enumerate() {
            let features = if drafter { rows * d * 4 } else { 0 };
            assert_eq!(
                host,
                features + rows * v * 4,
                "host path, {name} step {i} ({kind}): the counter missed the logits download"
            );
            assert_eq!(
                backend, 0,
                "host path, {name} step {i}: SliceBackend reads nothing"
            );
        }
    }
    assert!(gc.error().is_none(), "{:?}", gc.error());
}
