//! [`GpuBackend`]: `argen_core::Backend` over any [`Executor`] (CUDA or OpenCL).
//!
//! The distribution table (`rows + 1` rows of `vocab` u64 weights, the last one the verifier's
//! scratch row), the per-row totals and the processing scratch live on the device. Each call
//! validates on the host exactly what the reference validates from its arguments (row indices,
//! parameters, tree shape), packs job records, launches one work-group per job, and reads back
//! only the small result records (status words, token ids, accepted paths). Those records, the
//! accepted path and the top-k outputs live in read-back buffers ([`Executor::alloc_readback`]:
//! host-mapped memory on an integrated GPU under the CUDA executor).
//!
//! Error semantics match [`argen_core::SliceBackend`]: the error returned for a call is the one
//! the reference returns (the first failing job in job order). After an error the contents of
//! the destination rows of that call are unspecified (the reference leaves later jobs undone; the
//! device may have run them). Jobs that write the same distribution row run in separate launches,
//! in order, so the last one wins as in the reference.

use crate::error::{Error, Result};
use crate::kernels::{Kernel, LANES};
use crate::launch::{push_words, read_u64s, read_words, Arg, Executor, Launch};
use argen_core::accept::{Criterion, DeviceTable, DEVICE_PARAM_WORDS};
use argen_core::backend::ROOT;
use argen_core::{Backend, Dtype, Logit, ProcessJob, RowGuidance, SampleJob, TreeJob, TreeVerdict};
use half::{bf16, f16};

const PROCESS_JOB_WORDS: usize = 12;
/// Words of a verify job record: 9 fixed words, the criterion's parameter block
/// ([`argen_core::accept::DeviceParams`]), the scratch row, the invalid-criterion flag.
const VERIFY_JOB_WORDS: usize = PARAM_WORD + DEVICE_PARAM_WORDS + 2;
const PARAM_WORD: usize = 9;
/// Criterion codes `0..KERNEL_CRITERIA` have a branch in `argen_verify_tree` (exact, coupled,
/// LANTERN, grouped); a criterion added to `argen_core::accept` raises it with its branch.
const KERNEL_CRITERIA: u32 = 4;
const SCRATCH_WORD: usize = PARAM_WORD + DEVICE_PARAM_WORDS;
const INVALID_WORD: usize = SCRATCH_WORD + 1;
const FP32: f64 = 4_294_967_296.0;

/// A logit element type whose raw bits the device reads.
pub trait LogitBits: Logit {
    /// The device format.
    const DTYPE: Dtype;
    /// The raw bits (zero-extended for 16-bit formats).
    fn bits(self) -> u32;
}

impl LogitBits for f32 {
    const DTYPE: Dtype = Dtype::F32;
    fn bits(self) -> u32 {
        self.to_bits()
    }
}
impl LogitBits for f16 {
    const DTYPE: Dtype = Dtype::F16;
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
}
impl LogitBits for bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
}

fn dtype_code(d: Dtype) -> u32 {
    match d {
        Dtype::F32 => 0,
        Dtype::F16 => 1,
        Dtype::Bf16 => 2,
    }
}

/// A batch of logit rows in device memory (row-major, `rows × vocab`, in `dtype`).
#[derive(Debug)]
pub struct DeviceLogits<B> {
    pub(crate) buf: B,
    pub(crate) dtype: Dtype,
    pub(crate) rows: usize,
}

impl<B> DeviceLogits<B> {
    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Element format.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }
    /// The device buffer (a model runtime writes its output projection here).
    pub fn buffer_mut(&mut self) -> &mut B {
        &mut self.buf
    }
}

/// Identity of an uploaded host table: address and length of the borrowed slice.
type TableId = (usize, usize);

/// The device backend (see the module documentation).
pub struct GpuBackend<E: Executor> {
    exec: E,
    vocab: usize,
    rows: usize,
    max_jobs: usize,
    weights: E::Buffer,
    totals: E::Buffer,
    ys: E::Buffer,
    jobs: E::Buffer,
    results: E::Buffer,
    dummy: E::Buffer,
    tree_tokens: Option<E::Buffer>,
    tree_parents: Option<E::Buffer>,
    path: Option<E::Buffer>,
    topk_tokens: Option<E::Buffer>,
    topk_weights: Option<E::Buffer>,
    /// The last id table a criterion shipped ([`DeviceTable::Ids`]).
    ids_table: Option<(TableId, E::Buffer)>,
    /// The last `f32` table a criterion shipped ([`DeviceTable::F32`]).
    f32_table: Option<(TableId, E::Buffer)>,
    staging: Vec<u8>,
    words: Vec<u32>,
    pairs: Vec<(u64, u32)>,
    seen: Vec<u32>,
    epoch: u32,
}

impl<E: Executor> std::fmt::Debug for GpuBackend<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBackend")
            .field("device", &self.exec.describe())
            .field("vocab", &self.vocab)
            .field("rows", &self.rows)
            .finish()
    }
}

/// Which allocation a growable slot uses.
#[derive(Clone, Copy)]
enum Kind {
    /// Device memory (inputs).
    Device,
    /// A buffer the host reads back ([`Executor::alloc_readback`]).
    Readback,
}

/// The device layout of RNG keys: six little-endian words each, `(seed lo, seed hi, stream,
/// purpose, position, token)`.
fn key_bytes(keys: &[argen_core::Key]) -> Vec<u8> {
    let mut kb = Vec::with_capacity(keys.len() * 24);
    for k in keys {
        push_words(
            &mut kb,
            &[
                k.seed as u32,
                (k.seed >> 32) as u32,
                k.stream,
                k.purpose.0,
                k.position,
                k.token,
            ],
        );
    }
    kb
}

/// Launches `kernel` on `grid` work-groups of [`LANES`] lanes with no dynamic shared memory:
/// the launch shape of every sampling and verification kernel.
fn launch_lanes<E: Executor>(
    exec: &E,
    kernel: Kernel,
    grid: u32,
    args: &[Arg<'_, E::Buffer>],
) -> Result<()> {
    exec.launch(&Launch {
        kernel,
        grid,
        block: LANES,
        shared_bytes: 0,
        args,
    })
}

fn grow<E: Executor>(
    exec: &E,
    slot: &mut Option<E::Buffer>,
    bytes: usize,
    kind: Kind,
) -> Result<()> {
    if slot.as_ref().is_none_or(|b| exec.len(b) < bytes) {
        let bytes = bytes.max(64);
        *slot = Some(match kind {
            Kind::Device => exec.alloc(bytes)?,
            Kind::Readback => exec.alloc_readback(bytes)?,
        });
    }
    Ok(())
}

impl<E: Executor> GpuBackend<E> {
    /// A backend with `rows` distribution rows of `vocab` tokens, launching at most `max_jobs`
    /// process/sample jobs at once (larger batches run in several launches).
    pub fn new(exec: E, vocab: usize, rows: usize, max_jobs: usize) -> Result<Self> {
        if vocab == 0 {
            return Err(argen_core::Error::EmptyRow.into());
        }
        if vocab > argen_core::MAX_VOCAB {
            return Err(argen_core::Error::VocabTooLarge { vocab }.into());
        }
        let max_jobs = max_jobs.max(1);
        let weights = exec.alloc((rows + 1) * vocab * 8)?;
        let totals = exec.alloc((rows + 1) * 8)?;
        let ys = exec.alloc(max_jobs * vocab * 4)?;
        let jobs = exec.alloc(max_jobs * VERIFY_JOB_WORDS.max(PROCESS_JOB_WORDS) * 4)?;
        let results = exec.alloc_readback(max_jobs * 8 * 4)?;
        let dummy = exec.alloc(64)?;
        Ok(GpuBackend {
            exec,
            vocab,
            rows,
            max_jobs,
            weights,
            totals,
            ys,
            jobs,
            results,
            dummy,
            tree_tokens: None,
            tree_parents: None,
            path: None,
            topk_tokens: None,
            topk_weights: None,
            ids_table: None,
            f32_table: None,
            staging: Vec::with_capacity(max_jobs * VERIFY_JOB_WORDS * 4),
            words: Vec::with_capacity(max_jobs * 8),
            pairs: Vec::new(),
            seen: vec![0; rows],
            epoch: 0,
        })
    }

    /// The executor.
    pub fn executor(&self) -> &E {
        &self.exec
    }

    /// Uploads host logits (`rows × vocab`, row-major) into a new device batch.
    pub fn upload_logits<L: LogitBits>(&self, data: &[L]) -> Result<DeviceLogits<E::Buffer>> {
        let bytes = data.len() * L::DTYPE.size();
        let mut logits = DeviceLogits {
            buf: self.exec.alloc(bytes.div_ceil(4) * 4)?,
            dtype: L::DTYPE,
            rows: 0,
        };
        self.write_logits(&mut logits, data)?;
        Ok(logits)
    }

    /// Overwrites a device batch with host logits of the same format and no more elements than
    /// it holds.
    pub fn write_logits<L: LogitBits>(
        &self,
        logits: &mut DeviceLogits<E::Buffer>,
        data: &[L],
    ) -> Result<()> {
        if data.len() % self.vocab != 0 {
            return Err(argen_core::Error::LengthMismatch {
                expected: data.len().div_ceil(self.vocab) * self.vocab,
                found: data.len(),
            }
            .into());
        }
        let size = L::DTYPE.size();
        let needed = data.len() * size;
        if logits.dtype != L::DTYPE || needed > self.exec.len(&logits.buf) {
            return Err(argen_core::Error::BufferTooSmall {
                needed: data.len(),
                found: self.exec.len(&logits.buf) / size,
            }
            .into());
        }
        let mut bytes = Vec::with_capacity(needed.div_ceil(4) * 4);
        for &x in data {
            if size == 4 {
                bytes.extend_from_slice(&x.bits().to_le_bytes());
            } else {
                bytes.extend_from_slice(&(x.bits() as u16).to_le_bytes());
            }
        }
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        self.exec.write(&mut logits.buf, 0, &bytes)?;
        logits.rows = data.len() / self.vocab;
        Ok(())
    }

    /// Reads distribution row `row` into `out` (`vocab` long) and returns its total.
    pub fn read_row(&mut self, row: u32, out: &mut [u64]) -> Result<u64> {
        let r = self.check_row(row)?;
        let v = self.vocab;
        if out.len() < v {
            return Err(argen_core::Error::BufferTooSmall {
                needed: v,
                found: out.len(),
            }
            .into());
        }
        self.staging.resize(v * 8, 0);
        self.exec
            .read(&self.weights, r * v * 8, &mut self.staging)?;
        read_u64s(&self.staging, &mut out[..v]);
        self.read_total(r)
    }

    /// Reads the verifier's scratch row (the residual of the last tree node tested).
    pub fn read_scratch_row(&mut self, out: &mut [u64]) -> Result<()> {
        let v = self.vocab;
        self.staging.resize(v * 8, 0);
        self.exec
            .read(&self.weights, self.rows * v * 8, &mut self.staging)?;
        read_u64s(&self.staging, &mut out[..v]);
        Ok(())
    }

    /// Writes distribution row `row` (weights and total) from the host, e.g. a drafter's
    /// distribution computed elsewhere, or test fixtures.
    pub fn write_row(&mut self, row: u32, weights: &[u64], total: u64) -> Result<()> {
        let r = self.check_row(row)?;
        let v = self.vocab;
        if weights.len() != v {
            return Err(argen_core::Error::LengthMismatch {
                expected: v,
                found: weights.len(),
            }
            .into());
        }
        self.staging.clear();
        for w in weights {
            self.staging.extend_from_slice(&w.to_le_bytes());
        }
        self.exec
            .write(&mut self.weights, r * v * 8, &self.staging)?;
        self.exec
            .write(&mut self.totals, r * 8, &total.to_le_bytes())
    }

    fn read_total(&self, r: usize) -> Result<u64> {
        let mut b = [0u8; 8];
        self.exec.read(&self.totals, r * 8, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn check_row(&self, row: u32) -> Result<usize> {
        if row as usize >= self.rows {
            return Err(argen_core::Error::InvalidParameter {
                name: "row",
                reason: "distribution row index out of range",
            }
            .into());
        }
        Ok(row as usize)
    }

    fn check_logit_row(&self, logits: &DeviceLogits<E::Buffer>, row: u32) -> Result<u32> {
        if row as usize >= logits.rows {
            return Err(argen_core::Error::InvalidParameter {
                name: "logit row",
                reason: "index beyond the logits batch",
            }
            .into());
        }
        Ok(row)
    }

    /// Validates one process job in the reference's order and packs its record into `words`.
    fn pack_process(&mut self, logits: &DeviceLogits<E::Buffer>, job: &ProcessJob) -> Result<()> {
        let out = self.check_row(job.out)? as u32;
        let finite = |v: f32, name: &'static str| -> Result<()> {
            if v.is_finite() {
                Ok(())
            } else {
                Err(argen_core::Error::InvalidParameter {
                    name,
                    reason: "must be finite",
                }
                .into())
            }
        };
        let (kind, a, b, c, s) = match job.rows {
            RowGuidance::Plain { row } => (0, self.check_logit_row(logits, row)?, 0, 0, 0.0),
            RowGuidance::TwoWay {
                cond,
                uncond,
                scale,
            } => {
                let a = self.check_logit_row(logits, cond)?;
                let b = self.check_logit_row(logits, uncond)?;
                finite(scale, "cfg_scale")?;
                (1, a, b, 0, scale)
            }
            RowGuidance::ThreeWay {
                cond,
                uncond,
                reformulated,
                w,
            } => {
                let a = self.check_logit_row(logits, cond)?;
                let b = self.check_logit_row(logits, uncond)?;
                let c = self.check_logit_row(logits, reformulated)?;
                finite(w, "cfg_w")?;
                (2, a, b, c, w)
            }
        };
        let p = &job.params;
        p.validate(self.vocab)?;
        let greedy = p.temperature == 0.0;
        let inv_t = if greedy { 1.0f32 } else { 1.0 / p.temperature };
        let mut flags = greedy as u32;
        let mut k = 0;
        if let Some(kk) = p.top_k {
            flags |= 2;
            k = kk;
        }
        let mut top_p = 0u32;
        if let Some(pp) = p.top_p.filter(|&pp| pp < 1.0) {
            flags |= 4;
            // P = max(1, trunc(p·2^32)): the top token survives any valid p (process.rs).
            top_p = ((pp as f64 * FP32) as u64 as u32).max(1);
        }
        let mut floor = 0u64;
        if let Some(mp) = p.min_p.filter(|&mp| mp > 0.0) {
            flags |= 8;
            floor = ((mp as f64 * FP32) as u64) << 8;
        }
        self.words.extend_from_slice(&[
            kind,
            a,
            b,
            c,
            s.to_bits(),
            inv_t.to_bits(),
            flags,
            k,
            top_p,
            floor as u32,
            (floor >> 32) as u32,
            out,
        ]);
        Ok(())
    }

    fn run_process(&mut self, logits: &DeviceLogits<E::Buffer>, n: usize) -> Result<()> {
        self.staging.clear();
        push_words(&mut self.staging, &self.words);
        self.exec.write(&mut self.jobs, 0, &self.staging)?;
        let args = [
            Arg::Buf(&logits.buf),
            Arg::U32(dtype_code(logits.dtype)),
            Arg::U32(self.vocab as u32),
            Arg::Buf(&self.jobs),
            Arg::Buf(&self.ys),
            Arg::Buf(&self.weights),
            Arg::Buf(&self.totals),
            Arg::Buf(&self.results),
        ];
        launch_lanes(&self.exec, Kernel::Process, n as u32, &args)?;
        self.staging.resize(n * 16, 0);
        self.exec.read(&self.results, 0, &mut self.staging)?;
        self.words.resize(n * 4, 0);
        read_words(&self.staging, &mut self.words);
        for r in self.words.chunks_exact(4) {
            let index = r[1] as usize;
            match r[0] {
                0 => {}
                1 => return Err(argen_core::Error::NonFiniteLogit { index }.into()),
                2 => return Err(argen_core::Error::Overflow { index }.into()),
                3 => return Err(argen_core::Error::AllMasked.into()),
                s => {
                    return Err(Error::KernelStatus {
                        kernel: "argen_process",
                        status: s,
                    })
                }
            }
        }
        Ok(())
    }

    fn upload_table<T: Copy>(
        exec: &E,
        staging: &mut Vec<u8>,
        slot: &mut Option<(TableId, E::Buffer)>,
        data: &[T],
        bytes_of: impl Fn(T) -> [u8; 4],
    ) -> Result<()> {
        let id = (data.as_ptr() as usize, data.len());
        if slot.as_ref().is_some_and(|(have, _)| *have == id) {
            return Ok(());
        }
        staging.clear();
        for &x in data {
            staging.extend_from_slice(&bytes_of(x));
        }
        let mut buf = exec.alloc(staging.len())?;
        exec.write(&mut buf, 0, staging)?;
        *slot = Some((id, buf));
        Ok(())
    }

    /// Forgets the device copies of criterion tables (latent-neighbour tables, embeddings).
    /// Tables are cached by the address and length of the borrowed host slice; call this if a
    /// table's contents change in place between calls.
    pub fn invalidate_tables(&mut self) {
        self.ids_table = None;
        self.f32_table = None;
    }

    /// The first `n` words of each key's stream (known-answer checks of the RNG port). Keys are
    /// `(seed, stream, purpose, position, token)`.
    pub fn rng_words(&mut self, keys: &[argen_core::Key], n: usize, out: &mut [u64]) -> Result<()> {
        let kb = key_bytes(keys);
        let mut kbuf = self.exec.alloc(kb.len())?;
        self.exec.write(&mut kbuf, 0, &kb)?;
        let obuf = self.exec.alloc(keys.len() * n * 8)?;
        let args = [Arg::Buf(&kbuf), Arg::U32(n as u32), Arg::Buf(&obuf)];
        launch_lanes(&self.exec, Kernel::RngWords, keys.len() as u32, &args)?;
        let mut bytes = vec![0u8; keys.len() * n * 8];
        self.exec.read(&obuf, 0, &mut bytes)?;
        read_u64s(&bytes, out);
        Ok(())
    }

    /// `below(n[j])` from each key's stream (known-answer checks of the 128-bit emulation).
    pub fn rng_below(
        &mut self,
        keys: &[argen_core::Key],
        n: &[u128],
        out: &mut [u128],
    ) -> Result<()> {
        let kb = key_bytes(keys);
        let mut nb = Vec::new();
        for &x in n {
            nb.extend_from_slice(&(x as u64).to_le_bytes());
            nb.extend_from_slice(&((x >> 64) as u64).to_le_bytes());
        }
        let mut kbuf = self.exec.alloc(kb.len())?;
        self.exec.write(&mut kbuf, 0, &kb)?;
        let mut nbuf = self.exec.alloc(nb.len())?;
        self.exec.write(&mut nbuf, 0, &nb)?;
        let obuf = self.exec.alloc(nb.len())?;
        let args = [Arg::Buf(&kbuf), Arg::Buf(&nbuf), Arg::Buf(&obuf)];
        launch_lanes(&self.exec, Kernel::RngBelow, keys.len() as u32, &args)?;
        let mut bytes = vec![0u8; nb.len()];
        self.exec.read(&obuf, 0, &mut bytes)?;
        let mut w = vec![0u64; 2 * n.len()];
        read_u64s(&bytes, &mut w);
        for (o, c) in out.iter_mut().zip(w.chunks_exact(2)) {
            *o = c[0] as u128 | ((c[1] as u128) << 64);
        }
        Ok(())
    }

    /// The device's `exp_f32` of each input (known-answer checks of the detmath port).
    pub fn exp_f32(&mut self, x: &[f32], out: &mut [f32]) -> Result<()> {
        let mut xb = Vec::with_capacity(x.len() * 4);
        for v in x {
            xb.extend_from_slice(&v.to_le_bytes());
        }
        let mut xbuf = self.exec.alloc(xb.len())?;
        self.exec.write(&mut xbuf, 0, &xb)?;
        let obuf = self.exec.alloc(xb.len())?;
        let args = [Arg::Buf(&xbuf), Arg::U32(x.len() as u32), Arg::Buf(&obuf)];
        launch_lanes(
            &self.exec,
            Kernel::Exp,
            (x.len() as u32).div_ceil(LANES),
            &args,
        )?;
        self.exec.read(&obuf, 0, &mut xb)?;
        for (o, c) in out.iter_mut().zip(xb.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }
}

impl<E: Executor> Backend for GpuBackend<E> {
    type Error = Error;
    type Logits = DeviceLogits<E::Buffer>;

    /// One launch of `argen_fill_dist` (one work-item per token); nothing crosses the bus but
    /// the launch. Errors as the reference: the row index first, then the one-hot token.
    fn fill_dist(&mut self, row: u32, fill: argen_core::dist::Fill) -> Result<()> {
        self.check_row(row)?;
        let v = self.vocab;
        let hot = match fill {
            argen_core::dist::Fill::Uniform => u32::MAX,
            argen_core::dist::Fill::OneHot(token) => {
                if token as usize >= v {
                    return Err(argen_core::Error::TokenOutOfRange { token, vocab: v }.into());
                }
                token
            }
        };
        let args = [
            Arg::Buf(&self.weights),
            Arg::Buf(&self.totals),
            Arg::U32(v as u32),
            Arg::U32(row),
            Arg::U32(hot),
        ];
        launch_lanes(
            &self.exec,
            Kernel::FillDist,
            (v as u32).div_ceil(LANES),
            &args,
        )
    }

    fn vocab(&self) -> usize {
        self.vocab
    }

    fn logit_rows(&self, logits: &Self::Logits) -> usize {
        logits.rows
    }

    fn dist_rows(&self) -> usize {
        self.rows
    }

    fn process(&mut self, logits: &Self::Logits, jobs: &[ProcessJob]) -> Result<()> {
        // A batch built elsewhere (a device logit sink) must hold its rows at this vocabulary,
        // or the kernels would read past it.
        let needed = logits.rows * self.vocab;
        let found = self.exec.len(&logits.buf) / logits.dtype.size();
        if found < needed {
            return Err(argen_core::Error::BufferTooSmall { needed, found }.into());
        }
        let mut start = 0;
        while start < jobs.len() {
            // A batch: distinct output rows, at most max_jobs, stopping at an invalid job.
            self.epoch = self.epoch.wrapping_add(1);
            if self.epoch == 0 {
                self.seen.fill(0);
                self.epoch = 1;
            }
            self.words.clear();
            let mut end = start;
            let mut invalid = None;
            while end < jobs.len() && end - start < self.max_jobs {
                let out = jobs[end].out as usize;
                if out < self.rows && self.seen[out] == self.epoch {
                    break;
                }
                if let Err(e) = self.pack_process(logits, &jobs[end]) {
                    invalid = Some(e);
                    break;
                }
                self.seen[out] = self.epoch;
                end += 1;
            }
            if end > start {
                self.run_process(logits, end - start)?;
            }
            if let Some(e) = invalid {
                return Err(e);
            }
            start = end;
        }
        Ok(())
    }

    fn sample(&mut self, jobs: &[SampleJob], out: &mut [u32]) -> Result<()> {
        if out.len() < jobs.len() {
            return Err(argen_core::Error::BufferTooSmall {
                needed: jobs.len(),
                found: out.len(),
            }
            .into());
        }
        let mut start = 0;
        while start < jobs.len() {
            self.words.clear();
            let mut end = start;
            let mut invalid = None;
            while end < jobs.len() && end - start < self.max_jobs {
                let j = &jobs[end];
                if let Err(e) = self.check_row(j.row) {
                    invalid = Some(e);
                    break;
                }
                let k = j.key;
                self.words.extend_from_slice(&[
                    j.row,
                    k.seed as u32,
                    (k.seed >> 32) as u32,
                    k.stream,
                    k.purpose.0,
                    k.position,
                    k.token,
                ]);
                end += 1;
            }
            let n = end - start;
            if n > 0 {
                self.staging.clear();
                push_words(&mut self.staging, &self.words);
                self.exec.write(&mut self.jobs, 0, &self.staging)?;
                let args = [
                    Arg::Buf(&self.weights),
                    Arg::Buf(&self.totals),
                    Arg::U32(self.vocab as u32),
                    Arg::Buf(&self.jobs),
                    Arg::Buf(&self.results),
                ];
                launch_lanes(&self.exec, Kernel::Sample, n as u32, &args)?;
                self.staging.resize(n * 8, 0);
                self.exec.read(&self.results, 0, &mut self.staging)?;
                self.words.resize(2 * n, 0);
                read_words(&self.staging, &mut self.words);
                for (r, o) in self.words.chunks_exact(2).zip(out[start..end].iter_mut()) {
                    match r[0] {
                        0 => *o = r[1],
                        4 => return Err(argen_core::Error::ZeroMass.into()),
                        11 => {
                            return Err(argen_core::Error::InvalidParameter {
                                name: "key.token",
                                reason: "must be below 2^24",
                            }
                            .into())
                        }
                        s => {
                            return Err(Error::KernelStatus {
                                kernel: "argen_sample",
                                status: s,
                            })
                        }
                    }
                }
            }
            if let Some(e) = invalid {
                return Err(e);
            }
            start = end;
        }
        Ok(())
    }

    fn top_k(&mut self, row: u32, tokens: &mut [u32], probs: &mut [f64]) -> Result<()> {
        let r = self.check_row(row)?;
        let total = self.read_total(r)?;
        if total == 0 {
            return Err(argen_core::Error::ZeroMass.into());
        }
        let k = tokens.len();
        if probs.len() != k {
            return Err(argen_core::Error::LengthMismatch {
                expected: k,
                found: probs.len(),
            }
            .into());
        }
        if k == 0 || k > self.vocab {
            return Err(argen_core::Error::InvalidParameter {
                name: "k",
                reason: "must be between 1 and the vocabulary size",
            }
            .into());
        }
        grow(&self.exec, &mut self.topk_tokens, k * 4, Kind::Readback)?;
        grow(&self.exec, &mut self.topk_weights, k * 8, Kind::Readback)?;
        let (Some(tt), Some(tw)) = (&self.topk_tokens, &self.topk_weights) else {
            return Err(Error::Driver {
                call: "alloc",
                detail: "top-k buffers".into(),
            });
        };
        // A status the kernel never writes: a launch that did not run is reported, not
        // mistaken for the previous launch's result record.
        self.exec.write(&mut self.results, 0, &[0xff; 8])?;
        let args = [
            Arg::Buf(&self.weights),
            Arg::Buf(&self.totals),
            Arg::U32(self.vocab as u32),
            Arg::U32(row),
            Arg::U32(k as u32),
            Arg::Buf(tt),
            Arg::Buf(tw),
            Arg::Buf(&self.results),
        ];
        launch_lanes(&self.exec, Kernel::TopK, 1, &args)?;
        let mut res = [0u8; 8];
        self.exec.read(&self.results, 0, &mut res)?;
        let mut rw = [0u32; 2];
        read_words(&res, &mut rw);
        if rw[0] != 0 || rw[1] as usize != k {
            return Err(Error::KernelStatus {
                kernel: "argen_top_k",
                status: rw[0],
            });
        }
        self.staging.resize(k * 12, 0);
        let (tb, wb) = self.staging.split_at_mut(k * 4);
        self.exec.read(tt, 0, tb)?;
        self.exec.read(tw, 0, wb)?;
        read_words(tb, tokens);
        self.pairs.clear();
        for (i, &t) in tokens.iter().enumerate() {
            let c = &wb[8 * i..8 * i + 8];
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.pairs.push((u64::from_le_bytes(b), t));
        }
        self.pairs
            .sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for ((t, p), &(w, id)) in tokens.iter_mut().zip(probs.iter_mut()).zip(&self.pairs) {
            *t = id;
            *p = w as f64 / total as f64;
        }
        Ok(())
    }

    fn verify_tree(
        &mut self,
        job: &TreeJob<'_>,
        criterion: &Criterion<'_>,
        path: &mut [u32],
    ) -> Result<TreeVerdict> {
        job.tree.validate()?;
        let v = self.vocab;
        let n = job.tree.tokens.len();
        for &t in job.tree.tokens {
            if t as usize >= v {
                return Err(argen_core::Error::TokenOutOfRange { token: t, vocab: v }.into());
            }
        }
        for base in core::iter::once(job.target_base).chain(job.draft_base) {
            if base as usize + n >= self.rows {
                return Err(argen_core::Error::InvalidParameter {
                    name: "tree rows",
                    reason: "slot rows exceed the distribution table",
                }
                .into());
            }
        }
        let crit_err = criterion.validate(v).err();
        // The criterion packs itself (its module in argen_core::accept documents the words).
        let params = criterion.device();
        if params.code >= KERNEL_CRITERIA {
            return Err(Error::Invalid {
                op: "verify_tree".into(),
                detail: format!(
                    "criterion {} (device code {}) has no branch in argen_verify_tree",
                    criterion.name(),
                    params.code
                ),
            });
        }
        let mut w = [0u32; VERIFY_JOB_WORDS];
        w[0] = n as u32;
        w[1] = job.target_base;
        w[2] = job.draft_base.unwrap_or(u32::MAX);
        w[3] = job.keys.seed as u32;
        w[4] = (job.keys.seed >> 32) as u32;
        w[5] = job.keys.stream;
        w[6] = job.keys.position;
        w[7] = params.code;
        w[8] = path.len().min(u32::MAX as usize) as u32;
        w[SCRATCH_WORD] = self.rows as u32;
        w[INVALID_WORD] = crit_err.is_some() as u32;
        if crit_err.is_none() {
            w[PARAM_WORD..PARAM_WORD + DEVICE_PARAM_WORDS].copy_from_slice(&params.words);
            match params.table {
                DeviceTable::None => {}
                DeviceTable::Ids(ids) => Self::upload_table(
                    &self.exec,
                    &mut self.staging,
                    &mut self.ids_table,
                    ids,
                    u32::to_le_bytes,
                )?,
                DeviceTable::F32(values) => Self::upload_table(
                    &self.exec,
                    &mut self.staging,
                    &mut self.f32_table,
                    values,
                    f32::to_le_bytes,
                )?,
            }
        }
        grow(&self.exec, &mut self.tree_tokens, n * 4, Kind::Device)?;
        grow(&self.exec, &mut self.tree_parents, n * 4, Kind::Device)?;
        grow(&self.exec, &mut self.path, path.len() * 4, Kind::Readback)?;
        let (Some(tt), Some(tp), Some(pb)) =
            (&mut self.tree_tokens, &mut self.tree_parents, &self.path)
        else {
            return Err(Error::Driver {
                call: "alloc",
                detail: "tree buffers".into(),
            });
        };
        self.staging.clear();
        push_words(&mut self.staging, job.tree.tokens);
        self.exec.write(tt, 0, &self.staging)?;
        self.staging.clear();
        for &p in job.tree.parents {
            self.staging
                .extend_from_slice(&(if p == ROOT { u32::MAX } else { p }).to_le_bytes());
        }
        self.exec.write(tp, 0, &self.staging)?;
        self.staging.clear();
        push_words(&mut self.staging, &w);
        self.exec.write(&mut self.jobs, 0, &self.staging)?;
        // A table of the kind this criterion ships goes to its kernel argument; the other gets
        // the dummy buffer.
        let (ib, fb) = match (params.table, &self.ids_table, &self.f32_table) {
            (DeviceTable::Ids(_), Some((_, b)), _) if crit_err.is_none() => (b, &self.dummy),
            (DeviceTable::F32(_), _, Some((_, b))) if crit_err.is_none() => (&self.dummy, b),
            _ => (&self.dummy, &self.dummy),
        };
        let args = [
            Arg::Buf(&self.weights),
            Arg::Buf(&self.totals),
            Arg::U32(v as u32),
            Arg::Buf(&self.jobs),
            Arg::Buf(&*tt),
            Arg::Buf(&*tp),
            Arg::Buf(ib),
            Arg::Buf(fb),
            Arg::Buf(pb),
            Arg::Buf(&self.results),
        ];
        launch_lanes(&self.exec, Kernel::VerifyTree, 1, &args)?;
        let mut rb = [0u8; 20];
        self.exec.read(&self.results, 0, &mut rb)?;
        let mut r = [0u32; 5];
        read_words(&rb, &mut r);
        let accepted = r[3] as usize;
        if accepted > 0 {
            self.staging.resize(accepted * 4, 0);
            self.exec.read(pb, 0, &mut self.staging)?;
            read_words(&self.staging, &mut path[..accepted]);
        }
        let core = |e: argen_core::Error| -> Result<TreeVerdict> { Err(e.into()) };
        match r[0] {
            0 => Ok(TreeVerdict {
                accepted,
                token: r[4],
            }),
            4 => core(argen_core::Error::ZeroMass),
            5 => core(argen_core::Error::CapacityExceeded {
                capacity: r[1] as usize,
            }),
            6 => core(argen_core::Error::BufferTooSmall {
                needed: r[1] as usize,
                found: r[2] as usize,
            }),
            7 => core(argen_core::Error::InvalidParameter {
                name: "total",
                reason: "does not equal the sum of the target weights",
            }),
            8 => core(argen_core::Error::InvalidParameter {
                name: "weights",
                reason: "total weight must be below 2^64",
            }),
            9 => core(argen_core::Error::DraftZeroMass { token: r[1] }),
            10 => core(argen_core::Error::InvalidParameter {
                name: "siblings",
                reason:
                    "relaxed criteria support one sampled sibling per node; use point-mass drafts",
            }),
            12 => match crit_err {
                Some(e) => core(e),
                None => Err(Error::KernelStatus {
                    kernel: "argen_verify_tree",
                    status: 12,
                }),
            },
            s => Err(Error::KernelStatus {
                kernel: "argen_verify_tree",
                status: s,
            }),
        }
    }
}
