//! The safe embedding layer shared by the C ABI and the Python package.
//!
//! Both bindings reduce their foreign inputs (raw pointers and codes in C, NumPy arrays, DLPack
//! capsules and keyword arguments in Python) to the types of this module and call the same
//! methods, so the two bindings validate identically and produce the same bits: every method is a
//! thin wrapper over `argen-core`'s reference backend ([`argen_core::SliceBackend`], its row
//! processing with argen-cpu's run-time-dispatched SIMD passes, [`argen_cpu::row_kernels`], which
//! give the portable passes' bits) and free functions, never a reimplementation.
//!
//! - [`Dtype`] codes and [`Rows`], a borrowed batch of logit rows in f32, f16 or bf16;
//! - [`Sampler`]: a table of distribution rows (owned [`SliceStorage`]) with the row operations
//!   of the core's backend trait: process, sample, top-k, fill, verify a draft tree;
//! - [`OwnedCriterion`]: an acceptance criterion with its tables copied and validated once.

use crate::status::{argen_status, FfiError, FfiResult};
use argen_core::accept::{GroupedParams, LanternParams, NeighbourTable};
use argen_core::backend::{Fill, TreeVerdict};
use argen_core::{
    Backend, Criterion, ProcessJob, SampleJob, SliceBackend, SliceStorage, TreeJob, MAX_VOCAB,
};
use half::{bf16, f16};

/// Element type codes of logit rows (the values of `ARGEN_DTYPE_*` in `argen.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// IEEE binary32 (code 0).
    F32,
    /// IEEE binary16 (code 1).
    F16,
    /// bfloat16 (code 2).
    Bf16,
}

impl Dtype {
    /// The dtype with C code `code`, or a [`argen_status::ARGEN_ERR_BAD_DTYPE`] error.
    pub fn from_code(code: u32) -> FfiResult<Dtype> {
        match code {
            0 => Ok(Dtype::F32),
            1 => Ok(Dtype::F16),
            2 => Ok(Dtype::Bf16),
            _ => Err(FfiError::new(
                argen_status::ARGEN_ERR_BAD_DTYPE,
                format!("unknown dtype code {code} (0 = f32, 1 = f16, 2 = bf16)"),
            )),
        }
    }

    /// The C code.
    pub fn code(self) -> u32 {
        match self {
            Dtype::F32 => 0,
            Dtype::F16 => 1,
            Dtype::Bf16 => 2,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// Lower-case name (`"f32"`, `"f16"`, `"bf16"`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }
}

/// A borrowed, row-major batch of logit rows (`len` a multiple of the vocabulary).
#[derive(Clone, Copy, Debug)]
pub enum Rows<'a> {
    /// f32 rows.
    F32(&'a [f32]),
    /// f16 rows.
    F16(&'a [f16]),
    /// bf16 rows.
    Bf16(&'a [bf16]),
}

impl<'a> Rows<'a> {
    /// Views `len` elements of type `dtype` at `data` as rows.
    ///
    /// Checks the pointer (non-NULL unless `len == 0`, aligned for the type) and that the byte
    /// length fits an `isize`.
    ///
    /// # Safety
    /// If `data` is non-NULL it must point to `len` initialised elements of `dtype` that stay
    /// valid and unmodified for `'a`.
    pub unsafe fn from_raw(data: *const u8, dtype: Dtype, len: usize) -> FfiResult<Rows<'a>> {
        if len == 0 {
            return Ok(match dtype {
                Dtype::F32 => Rows::F32(&[]),
                Dtype::F16 => Rows::F16(&[]),
                Dtype::Bf16 => Rows::Bf16(&[]),
            });
        }
        if data.is_null() {
            return Err(FfiError::null("logits"));
        }
        if (data as usize) % dtype.size() != 0 {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_BAD_LAYOUT,
                format!(
                    "logits pointer {data:p} is not aligned to the {} bytes of a {} element",
                    dtype.size(),
                    dtype.name()
                ),
            ));
        }
        if len
            .checked_mul(dtype.size())
            .is_none_or(|b| b > isize::MAX as usize)
        {
            return Err(FfiError::invalid(format!(
                "{len} logits of {} do not fit in the address space",
                dtype.name()
            )));
        }
        // SAFETY: non-NULL, aligned, in-bounds (caller's contract), byte length <= isize::MAX;
        // f16/bf16 are `repr(transparent)` over u16, every bit pattern is a valid value.
        Ok(unsafe {
            match dtype {
                Dtype::F32 => Rows::F32(core::slice::from_raw_parts(data.cast(), len)),
                Dtype::F16 => Rows::F16(core::slice::from_raw_parts(data.cast(), len)),
                Dtype::Bf16 => Rows::Bf16(core::slice::from_raw_parts(data.cast(), len)),
            }
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Rows::F32(r) => r.len(),
            Rows::F16(r) => r.len(),
            Rows::Bf16(r) => r.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Rows::F32(_) => Dtype::F32,
            Rows::F16(_) => Dtype::F16,
            Rows::Bf16(_) => Dtype::Bf16,
        }
    }
}

/// The largest number of `u64` weights (all rows plus the scratch row) a [`Sampler`] allocates:
/// 2^31 weights, 16 GiB. Larger requests fail with [`argen_status::ARGEN_ERR_ALLOCATION`] instead
/// of aborting the process on an allocation failure.
pub const MAX_SAMPLER_WEIGHTS: usize = 1 << 31;

/// A table of distribution rows and the row operations of the core's backend trait.
///
/// Distribution row `r` (`0 <= r < rows`) holds fixed-point weights ([`argen_core::dist`]); it is
/// written by [`Sampler::process`] or [`Sampler::fill`] and read by the other operations. Every
/// operation is [`SliceBackend`]'s, so results equal `argen-core`'s bit for bit.
#[derive(Debug)]
pub struct Sampler {
    storage: SliceStorage,
    vocab: usize,
    rows: usize,
}

impl Sampler {
    /// A sampler for `rows` distribution rows over a vocabulary of `vocab` tokens.
    pub fn new(vocab: usize, rows: usize) -> FfiResult<Sampler> {
        if vocab == 0 || vocab > MAX_VOCAB {
            return Err(FfiError::invalid(format!(
                "vocab must be between 1 and {MAX_VOCAB}, got {vocab}"
            )));
        }
        if rows == 0 || rows > u32::MAX as usize {
            return Err(FfiError::invalid(format!(
                "rows must be between 1 and 2^32 - 1, got {rows}"
            )));
        }
        let weights = rows
            .checked_add(1)
            .and_then(|r| r.checked_mul(vocab))
            .filter(|&w| w <= MAX_SAMPLER_WEIGHTS);
        if weights.is_none() {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_ALLOCATION,
                format!(
                    "{rows} rows of {vocab} weights exceed the limit of {MAX_SAMPLER_WEIGHTS} weights"
                ),
            ));
        }
        Ok(Sampler {
            storage: SliceStorage::new(vocab, rows),
            vocab,
            rows,
        })
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Number of distribution rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn backend<L: argen_core::Logit>(&mut self) -> FfiResult<SliceBackend<'_, L>> {
        Ok(self
            .storage
            .backend::<L>()?
            .with_kernels(argen_cpu::row_kernels()))
    }

    fn check_logits(&self, logits: &Rows<'_>) -> FfiResult<()> {
        if logits.is_empty() || logits.len() % self.vocab != 0 {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!(
                    "logits hold {} elements, not a positive multiple of the vocabulary size {}",
                    logits.len(),
                    self.vocab
                ),
            ));
        }
        Ok(())
    }

    /// Runs `jobs` on `logits` (guidance → temperature → top-k → top-p/min-p → weights into row
    /// `job.out`), as [`Backend::process`].
    pub fn process(&mut self, logits: Rows<'_>, jobs: &[ProcessJob]) -> FfiResult<()> {
        self.check_logits(&logits)?;
        for job in jobs {
            self.check_row(job.out)?;
        }
        match logits {
            Rows::F32(l) => self.backend::<f32>()?.process(l, jobs)?,
            Rows::F16(l) => self.backend::<f16>()?.process(l, jobs)?,
            Rows::Bf16(l) => self.backend::<bf16>()?.process(l, jobs)?,
        }
        Ok(())
    }

    /// One keyed draw per job into `out[j]`, as [`Backend::sample`].
    pub fn sample(&mut self, jobs: &[SampleJob], out: &mut [u32]) -> FfiResult<()> {
        if out.len() < jobs.len() {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_BUFFER_TOO_SMALL,
                format!(
                    "{} sample jobs but room for {} tokens",
                    jobs.len(),
                    out.len()
                ),
            ));
        }
        for job in jobs {
            self.check_row(job.row)?;
        }
        self.backend::<f32>()?.sample(jobs, out)?;
        Ok(())
    }

    /// The `tokens.len()` most likely tokens of row `row` and their probabilities, as
    /// [`Backend::top_k`].
    pub fn top_k(&mut self, row: u32, tokens: &mut [u32], probs: &mut [f64]) -> FfiResult<()> {
        self.check_row(row)?;
        self.backend::<f32>()?.top_k(row, tokens, probs)?;
        Ok(())
    }

    /// Writes a synthetic row (uniform or one-hot), as [`Backend::fill_dist`].
    pub fn fill(&mut self, row: u32, fill: Fill) -> FfiResult<()> {
        self.check_row(row)?;
        self.backend::<f32>()?.fill_dist(row, fill)?;
        Ok(())
    }

    /// Copies row `row`'s weights into `out` (exactly `vocab` long) and returns its total.
    pub fn read_row(&mut self, row: u32, out: &mut [u64]) -> FfiResult<u64> {
        self.check_row(row)?;
        if out.len() != self.vocab {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!(
                    "weights buffer holds {} elements, the vocabulary has {}",
                    out.len(),
                    self.vocab
                ),
            ));
        }
        let backend = self.backend::<f32>()?;
        let dist = backend.dist(row)?;
        out.copy_from_slice(dist.weights());
        Ok(dist.total())
    }

    /// Verifies a draft tree, as [`Backend::verify_tree`]: writes the accepted node indices to
    /// `path` (root side first) and returns their number and the token committed after them.
    pub fn verify_tree(
        &mut self,
        job: &TreeJob<'_>,
        criterion: &OwnedCriterion,
        path: &mut [u32],
    ) -> FfiResult<TreeVerdict> {
        if let Some(v) = criterion.vocab().filter(|&v| v != self.vocab) {
            return Err(FfiError::new(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!(
                    "criterion is built for a vocabulary of {v}, the sampler has {}",
                    self.vocab
                ),
            ));
        }
        let c = criterion.criterion();
        Ok(self.backend::<f32>()?.verify_tree(job, &c, path)?)
    }

    fn check_row(&self, row: u32) -> FfiResult<()> {
        if row as usize >= self.rows {
            return Err(FfiError::invalid(format!(
                "distribution row {row} is out of range for a sampler of {} rows",
                self.rows
            )));
        }
        Ok(())
    }
}

/// Owns `&'static` storage handed out by [`Box::leak`] and frees it on drop, so that a validated
/// [`NeighbourTable<'static>`] can live next to the ids it borrows.
#[derive(Debug)]
struct LeakedIds(*mut [u32]);

impl Drop for LeakedIds {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::leak` in `OwnedCriterion::lantern`, is dropped once,
        // and the table borrowing it (a sibling field) is never used after `OwnedCriterion` drops.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

// SAFETY: `LeakedIds` is a uniquely owned heap allocation of plain integers, only read through
// shared references while it lives.
unsafe impl Send for LeakedIds {}
// SAFETY: as above; nothing mutates the ids.
unsafe impl Sync for LeakedIds {}

#[derive(Debug)]
enum Kind {
    Exact,
    Coupled,
    Lantern {
        table: NeighbourTable<'static>,
        _ids: LeakedIds,
        k: usize,
        delta: f32,
        lambda: Option<f32>,
    },
    Grouped {
        embedding: Vec<f32>,
        dim: usize,
        window: usize,
        prob_tol: f32,
        dist_tol: f32,
        vocab: usize,
    },
}

/// An acceptance criterion with its tables copied and validated once, so that each verification
/// borrows them without re-checking a `V × k` table.
#[derive(Debug)]
pub struct OwnedCriterion {
    kind: Kind,
}

impl OwnedCriterion {
    /// Lossless speculative sampling (Leviathan et al. 2023; Chen et al. 2023).
    pub fn exact() -> Self {
        OwnedCriterion { kind: Kind::Exact }
    }

    /// Accept iff the draft equals the target's own keyed draw (vanilla-identical output).
    pub fn coupled() -> Self {
        OwnedCriterion {
            kind: Kind::Coupled,
        }
    }

    /// LANTERN relaxed acceptance (Jang et al., ICLR 2025) over a row-major `vocab × table_k`
    /// latent-neighbour table (copied), considering the first `k` neighbours, budget `delta`, and
    /// LANTERN++'s `lambda` (`None`: plain LANTERN).
    pub fn lantern(
        ids: &[u32],
        vocab: usize,
        table_k: usize,
        k: usize,
        delta: f32,
        lambda: Option<f32>,
    ) -> FfiResult<Self> {
        NeighbourTable::new(ids, vocab, table_k)?;
        let leaked: &'static mut [u32] = Box::leak(ids.to_vec().into_boxed_slice());
        let raw: *mut [u32] = leaked;
        // SAFETY: `raw` stays allocated until `LeakedIds` drops, after the table's last use.
        let shared: &'static [u32] = unsafe { &*raw };
        let owner = LeakedIds(raw);
        let table = NeighbourTable::new(shared, vocab, table_k)?;
        let params = LanternParams {
            neighbours: table,
            k,
            delta,
            lambda,
        };
        params.validate(vocab)?;
        Ok(OwnedCriterion {
            kind: Kind::Lantern {
                table,
                _ids: owner,
                k,
                delta,
                lambda,
            },
        })
    }

    /// Grouped speculative decoding (So et al., ICCV 2025) with a row-major `vocab × dim` input
    /// embedding (copied), rank window, probability and squared-distance tolerances.
    pub fn grouped(
        embedding: &[f32],
        vocab: usize,
        dim: usize,
        window: usize,
        prob_tol: f32,
        dist_tol: f32,
    ) -> FfiResult<Self> {
        if vocab == 0 || vocab > MAX_VOCAB {
            return Err(FfiError::invalid(format!(
                "vocab must be between 1 and {MAX_VOCAB}, got {vocab}"
            )));
        }
        let params = GroupedParams {
            embedding,
            dim,
            window,
            prob_tol,
            dist_tol,
        };
        params.validate(vocab)?;
        Ok(OwnedCriterion {
            kind: Kind::Grouped {
                embedding: embedding.to_vec(),
                dim,
                window,
                prob_tol,
                dist_tol,
                vocab,
            },
        })
    }

    /// The vocabulary the criterion's tables are built for (`None` for Exact and Coupled).
    pub fn vocab(&self) -> Option<usize> {
        match &self.kind {
            Kind::Exact | Kind::Coupled => None,
            Kind::Lantern { table, .. } => Some(table.vocab()),
            Kind::Grouped { vocab, .. } => Some(*vocab),
        }
    }

    /// The criterion's name (`"exact"`, `"coupled"`, `"lantern"`, `"grouped"`).
    pub fn name(&self) -> &'static str {
        self.criterion().name()
    }

    /// The core criterion, borrowing this one's tables.
    pub fn criterion(&self) -> Criterion<'_> {
        match &self.kind {
            Kind::Exact => Criterion::Exact,
            Kind::Coupled => Criterion::Coupled,
            Kind::Lantern {
                table,
                k,
                delta,
                lambda,
                ..
            } => Criterion::Lantern(LanternParams {
                neighbours: *table,
                k: *k,
                delta: *delta,
                lambda: *lambda,
            }),
            Kind::Grouped {
                embedding,
                dim,
                window,
                prob_tol,
                dist_tol,
                ..
            } => Criterion::Grouped(GroupedParams {
                embedding,
                dim: *dim,
                window: *window,
                prob_tol: *prob_tol,
                dist_tol: *dist_tol,
            }),
        }
    }
}

/// Builds the `vocab × k` latent-neighbour table of a row-major `vocab × dim` codebook
/// ([`argen_core::accept::neighbours::build_table`]).
pub fn neighbour_table(codebook: &[f32], dim: usize, k: usize) -> FfiResult<Vec<u32>> {
    if dim > 0 && codebook.len() / dim > MAX_VOCAB {
        return Err(FfiError::invalid(format!(
            "a codebook of {} entries exceeds the maximum vocabulary {MAX_VOCAB}",
            codebook.len() / dim
        )));
    }
    Ok(argen_core::accept::neighbours::build_table(
        codebook, dim, k,
    )?)
}
