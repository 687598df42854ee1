//! The backend ("tensor") trait: the row operations a device provides so that sampling and
//! verification stay where the logits are.
//!
//! A decoding step produces a batch of logit rows (`V` wide: 16384 for LlamaGen) on the device. What
//! the decoding state machines need back is tiny — a few token ids, an accepted length — so a backend
//! keeps a table of **distribution rows** (fixed-point weights, [`crate::dist`]) in its own memory,
//! fills them from logit rows ([`Backend::process`]) and answers questions about them
//! ([`Backend::sample`], [`Backend::top_k`], [`Backend::verify_tree`]); synthetic rows (uniform,
//! one-hot) are written by [`Backend::fill_dist`]. Only the answers cross to
//! the host. Every operation is specified by the free functions of this crate; a backend must agree
//! with them bit for bit, which [`SliceBackend`] — the portable reference implementation over
//! caller-owned slices, needing no allocator — does by calling them.
//!
//! Row indices: logit rows are indexed within the `Logits` batch passed to each call; distribution
//! rows are indexed within the backend's table (`0..dist_rows()`).

use crate::accept::{verify_siblings, Criterion, Draft, NodeKeys, Outcome};
pub use crate::dist::Fill;
use crate::dist::{Dist, SupportList};
use crate::error::{Error, Result};
use crate::guidance::Guided;
use crate::logit::Logit;
use crate::process::{process_tracked_with, process_with, RowKernels, SamplerParams, Workspace};
use crate::rng::{Key, Purpose};
use crate::sample::sample_with;

/// Marks the root in [`DraftTree::parents`].
pub const ROOT: u32 = u32::MAX;

/// How the logit rows of one job combine (indices into the `Logits` batch).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RowGuidance {
    /// One row, no guidance.
    Plain {
        /// Logit row.
        row: u32,
    },
    /// Two-way CFG.
    TwoWay {
        /// Conditional row.
        cond: u32,
        /// Unconditional row.
        uncond: u32,
        /// Guidance scale.
        scale: f32,
    },
    /// Three-way CFG (GridAR).
    ThreeWay {
        /// Conditional row.
        cond: u32,
        /// Unconditional row.
        uncond: u32,
        /// Row conditioned on the reformulated prompt.
        reformulated: u32,
        /// Weight `w`.
        w: f32,
    },
}

/// Turn logit rows into distribution row `out`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProcessJob {
    /// Which logit rows and how they combine.
    pub rows: RowGuidance,
    /// Sampling parameters.
    pub params: SamplerParams,
    /// Destination distribution row.
    pub out: u32,
}

/// Draw one token from distribution row `row` with `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SampleJob {
    /// Distribution row.
    pub row: u32,
    /// Key of the draw.
    pub key: Key,
}

/// A draft tree: node `i` holds token `tokens[i]` and hangs below `parents[i]` (an earlier node, or
/// [`ROOT`]). Children of a node are tested in node order.
#[derive(Clone, Copy, Debug)]
pub struct DraftTree<'a> {
    /// Drafted tokens.
    pub tokens: &'a [u32],
    /// Parent of each node.
    pub parents: &'a [u32],
}

impl DraftTree<'_> {
    /// Checks that parents precede their children and lengths agree.
    pub fn validate(&self) -> Result<()> {
        if self.tokens.len() != self.parents.len() {
            return Err(Error::LengthMismatch {
                expected: self.tokens.len(),
                found: self.parents.len(),
            });
        }
        for (i, &p) in self.parents.iter().enumerate() {
            if p != ROOT && p as usize >= i {
                return Err(Error::InvalidParameter {
                    name: "parents",
                    reason: "every parent must be ROOT or an earlier node",
                });
            }
        }
        Ok(())
    }
}

/// Verify a draft tree against the target.
///
/// Distribution rows are per *slot*: slot 0 is the root (the context before the first drafted
/// position), slot `i + 1` is node `i`. The target row of slot `s` is `target_base + s`; with
/// sampled drafts the draft row of slot `s` is `draft_base + s`, the distribution its children were
/// drawn from (`None`: point-mass drafts). Target rows are overwritten by residuals.
#[derive(Clone, Copy, Debug)]
pub struct TreeJob<'a> {
    /// The tree.
    pub tree: DraftTree<'a>,
    /// First target distribution row.
    pub target_base: u32,
    /// First draft distribution row, for sampled drafts.
    pub draft_base: Option<u32>,
    /// Seed, stream, and the absolute position of the root's children.
    pub keys: NodeKeys,
}

/// Result of [`Backend::verify_tree`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TreeVerdict {
    /// Number of accepted nodes (written to the `path` argument, root side first).
    pub accepted: usize,
    /// The token committed after them: the residual draw after a rejection, or the target's own
    /// draw (key purpose SAMPLE) when a leaf was reached.
    pub token: u32,
}

/// The row operations of a device (see the module documentation).
pub trait Backend {
    /// The backend's error type; core errors convert into it.
    type Error: From<Error> + core::fmt::Debug;
    /// A batch of logit rows as the host's model left them.
    type Logits: ?Sized;

    /// Vocabulary size of every row.
    fn vocab(&self) -> usize;

    /// Number of logit rows in a batch.
    fn logit_rows(&self, logits: &Self::Logits) -> usize;

    /// Number of distribution rows the backend holds.
    fn dist_rows(&self) -> usize;

    /// Runs each job: guidance, sampling parameters, fixed-point weights into row `job.out`.
    fn process(&mut self, logits: &Self::Logits, jobs: &[ProcessJob]) -> Result<(), Self::Error>;

    /// One keyed draw per job, written to `out[j]`.
    fn sample(&mut self, jobs: &[SampleJob], out: &mut [u32]) -> Result<(), Self::Error>;

    /// The `tokens.len()` most likely tokens of distribution row `row` (weight descending, id
    /// ascending) and their probabilities `weight / total` as `f64`.
    fn top_k(&mut self, row: u32, tokens: &mut [u32], probs: &mut [f64])
        -> Result<(), Self::Error>;

    /// Tests the tree from its root (see [`TreeJob`]); writes accepted node indices to `path`.
    fn verify_tree(
        &mut self,
        job: &TreeJob<'_>,
        criterion: &Criterion<'_>,
        path: &mut [u32],
    ) -> Result<TreeVerdict, Self::Error>;

    /// Writes the synthetic distribution `fill` into row `row`, as [`crate::dist::fill`]
    /// specifies (uniform: every weight `2^40`; one-hot: weight `2^40` on the token only).
    /// Jacobi decoding uses such rows as the draft distributions of freshly initialised window
    /// tokens.
    fn fill_dist(&mut self, row: u32, fill: Fill) -> Result<(), Self::Error>;
}

/// The portable reference backend over caller-owned slices (no allocator needed).
///
/// Holds `rows` distribution rows of `vocab` weights plus one scratch row for residuals, and the
/// processing workspace. Logits are host slices of `L`, row-major.
#[derive(Debug)]
pub struct SliceBackend<'s, L> {
    vocab: usize,
    weights: &'s mut [u64],
    totals: &'s mut [u64],
    work_f32: &'s mut [f32],
    work_u32: &'s mut [u32],
    kernels: &'s dyn RowKernels,
    /// One support list per distribution row, or none ([`SliceBackend::with_supports`]).
    supports: &'s mut [SupportList],
    _logit: core::marker::PhantomData<L>,
}

/// Storage a [`SliceBackend`] needs for `rows` distribution rows of `vocab` tokens:
/// `(weights, totals, work_f32, work_u32)` lengths.
pub const fn slice_backend_sizes(vocab: usize, rows: usize) -> (usize, usize, usize, usize) {
    ((rows + 1) * vocab, rows, vocab, vocab)
}

/// Owned storage for a [`SliceBackend`] (feature `alloc`): the four buffers of
/// [`slice_backend_sizes`], allocated once, borrowed by [`SliceStorage::backend`].
///
/// The storage also keeps a [`SupportList`] per row, which its backends use and keep up to date
/// from one [`SliceStorage::backend`] call to the next (the rows are written only through
/// them), so a truncated row with few positive weights is cleared and sampled without touching
/// the whole row.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default)]
pub struct SliceStorage {
    vocab: usize,
    weights: alloc::vec::Vec<u64>,
    totals: alloc::vec::Vec<u64>,
    work_f32: alloc::vec::Vec<f32>,
    work_u32: alloc::vec::Vec<u32>,
    supports: alloc::vec::Vec<SupportList>,
}

#[cfg(feature = "alloc")]
impl SliceStorage {
    /// Zeroed storage for `rows` distribution rows of `vocab` tokens.
    pub fn new(vocab: usize, rows: usize) -> Self {
        let (w, t, f, u) = slice_backend_sizes(vocab, rows);
        SliceStorage {
            vocab,
            weights: alloc::vec![0; w],
            totals: alloc::vec![0; t],
            work_f32: alloc::vec![0.0; f],
            work_u32: alloc::vec![0; u],
            supports: alloc::vec![SupportList::new(); t],
        }
    }

    /// A [`SliceBackend`] over this storage (errors as [`SliceBackend::new`]), with the
    /// storage's support lists.
    pub fn backend<L: Logit>(&mut self) -> Result<SliceBackend<'_, L>> {
        let mut b = SliceBackend::new(
            self.vocab,
            &mut self.weights,
            &mut self.totals,
            &mut self.work_f32,
            &mut self.work_u32,
        )?;
        // Kept, not reset: only this storage's backends write its rows, and they keep the
        // lists true (`SliceBackend::with_supports` resets lists of caller-owned rows).
        b.supports = &mut self.supports;
        Ok(b)
    }
}

impl<'s, L: Logit> SliceBackend<'s, L> {
    /// The same backend with the per-element passes of row processing taken from `kernels`
    /// (e.g. argen-cpu's SIMD kernels; the results are the same bits, see [`RowKernels`]).
    pub fn with_kernels(mut self, kernels: &'s dyn RowKernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// The same backend keeping one [`SupportList`] per distribution row in `supports` (one
    /// per row: `supports.len()` must equal the number of rows, i.e. the `totals` length; any
    /// other length leaves the backend without lists): processing then clears a row with few
    /// positive weights entry by entry and draws walk only those entries
    /// ([`crate::dist`], "Rows with a known, small support"). Every result is the same bits.
    /// The lists are reset (they know nothing of rows the caller may have written).
    pub fn with_supports(mut self, supports: &'s mut [SupportList]) -> Self {
        if supports.len() == self.totals.len() {
            supports.iter_mut().for_each(SupportList::forget);
            self.supports = supports;
        }
        self
    }

    /// Builds the backend over storage of at least [`slice_backend_sizes`] elements.
    pub fn new(
        vocab: usize,
        weights: &'s mut [u64],
        totals: &'s mut [u64],
        work_f32: &'s mut [f32],
        work_u32: &'s mut [u32],
    ) -> Result<Self> {
        if vocab == 0 {
            return Err(Error::EmptyRow);
        }
        if vocab > crate::MAX_VOCAB {
            return Err(Error::VocabTooLarge { vocab });
        }
        let rows = totals.len();
        let (nw, _, nf, nu) = slice_backend_sizes(vocab, rows);
        for (needed, found) in [
            (nw, weights.len()),
            (nf, work_f32.len()),
            (nu, work_u32.len()),
        ] {
            if found < needed {
                return Err(Error::BufferTooSmall { needed, found });
            }
        }
        Ok(SliceBackend {
            vocab,
            weights,
            totals,
            work_f32,
            work_u32,
            kernels: &crate::process::PORTABLE,
            supports: &mut [],
            _logit: core::marker::PhantomData,
        })
    }

    fn check_row(&self, row: u32) -> Result<usize> {
        let r = row as usize;
        if r >= self.totals.len() {
            return Err(Error::InvalidParameter {
                name: "row",
                reason: "distribution row index out of range",
            });
        }
        Ok(r)
    }

    /// Distribution row `row`.
    ///
    /// With support lists ([`SliceBackend::with_supports`]), a row with few positive weights
    /// carries their ids ([`Dist::support`]) and draws from it walk only those.
    pub fn dist(&self, row: u32) -> Result<Dist<'_>> {
        let r = self.check_row(row)?;
        let w = &self.weights[r * self.vocab..(r + 1) * self.vocab];
        match self.supports.get(r) {
            Some(list) => list.dist(w, self.totals[r]),
            None => Dist::with_total(w, self.totals[r]),
        }
    }

    fn logit_row<'l>(&self, logits: &'l [L], row: u32) -> Result<&'l [L]> {
        let v = self.vocab;
        let start = row as usize * v;
        logits.get(start..start + v).ok_or(Error::InvalidParameter {
            name: "logit row",
            reason: "index beyond the logits batch",
        })
    }
}

impl<L: Logit> Backend for SliceBackend<'_, L> {
    type Error = Error;
    type Logits = [L];

    fn vocab(&self) -> usize {
        self.vocab
    }

    fn logit_rows(&self, logits: &[L]) -> usize {
        logits.len() / self.vocab
    }

    fn dist_rows(&self) -> usize {
        self.totals.len()
    }

    fn process(&mut self, logits: &[L], jobs: &[ProcessJob]) -> Result<()> {
        if logits.len() % self.vocab != 0 {
            return Err(Error::LengthMismatch {
                expected: logits.len().div_ceil(self.vocab) * self.vocab,
                found: logits.len(),
            });
        }
        for job in jobs {
            let out = self.check_row(job.out)?;
            let guided = match job.rows {
                RowGuidance::Plain { row } => Guided::Plain(self.logit_row(logits, row)?),
                RowGuidance::TwoWay {
                    cond,
                    uncond,
                    scale,
                } => Guided::TwoWay {
                    cond: self.logit_row(logits, cond)?,
                    uncond: self.logit_row(logits, uncond)?,
                    scale,
                },
                RowGuidance::ThreeWay {
                    cond,
                    uncond,
                    reformulated,
                    w,
                } => Guided::ThreeWay {
                    cond: self.logit_row(logits, cond)?,
                    uncond: self.logit_row(logits, uncond)?,
                    reformulated: self.logit_row(logits, reformulated)?,
                    w,
                },
            };
            let v = self.vocab;
            let mut ws = Workspace {
                logits: self.work_f32,
                order: self.work_u32,
            };
            let row = &mut self.weights[out * v..(out + 1) * v];
            let done = match self.supports.get_mut(out) {
                Some(list) => {
                    process_tracked_with(self.kernels, &guided, &job.params, &mut ws, row, list)
                }
                None => process_with(self.kernels, &guided, &job.params, &mut ws, row),
            }?;
            self.totals[out] = done.total;
        }
        Ok(())
    }

    fn sample(&mut self, jobs: &[SampleJob], out: &mut [u32]) -> Result<()> {
        if out.len() < jobs.len() {
            return Err(Error::BufferTooSmall {
                needed: jobs.len(),
                found: out.len(),
            });
        }
        for (job, o) in jobs.iter().zip(out.iter_mut()) {
            *o = sample_with(self.kernels, &self.dist(job.row)?, job.key)?;
        }
        Ok(())
    }

    fn top_k(&mut self, row: u32, tokens: &mut [u32], probs: &mut [f64]) -> Result<()> {
        let dist = self.dist(row)?;
        let k = tokens.len();
        if probs.len() != k {
            return Err(Error::LengthMismatch {
                expected: k,
                found: probs.len(),
            });
        }
        if k == 0 || k > self.vocab {
            return Err(Error::InvalidParameter {
                name: "k",
                reason: "must be between 1 and the vocabulary size",
            });
        }
        // Insertion into a sorted prefix: O(V·k) worst case, O(V) typical for small k.
        let w = dist.weights();
        let better = |a: u32, b: u32| (w[a as usize], !a) > (w[b as usize], !b);
        let mut len = 0usize;
        for t in 0..self.vocab as u32 {
            if len == k && !better(t, tokens[k - 1]) {
                continue;
            }
            let mut pos = len.min(k - 1);
            if len < k {
                len += 1;
            }
            while pos > 0 && better(t, tokens[pos - 1]) {
                tokens[pos] = tokens[pos - 1];
                pos -= 1;
            }
            tokens[pos] = t;
        }
        for (p, &t) in probs.iter_mut().zip(tokens.iter()) {
            *p = w[t as usize] as f64 / dist.total() as f64;
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
                return Err(Error::TokenOutOfRange { token: t, vocab: v });
            }
        }
        for base in core::iter::once(job.target_base).chain(job.draft_base) {
            if base as usize + n >= self.totals.len() {
                return Err(Error::InvalidParameter {
                    name: "tree rows",
                    reason: "slot rows exceed the distribution table",
                });
            }
        }
        let mut siblings: heapless::Vec<u32, MAX_SIBLINGS> = heapless::Vec::new();
        let mut nodes: heapless::Vec<u32, MAX_SIBLINGS> = heapless::Vec::new();
        let mut slot = 0u32; // current node slot (0 = root)
        let mut accepted = 0usize;
        let scratch = self.totals.len(); // the extra row after the table
        loop {
            siblings.clear();
            nodes.clear();
            let parent = if slot == 0 { ROOT } else { slot - 1 };
            for (i, (&t, &p)) in job.tree.tokens.iter().zip(job.tree.parents).enumerate() {
                if p == parent {
                    siblings.push(t).map_err(|_| Error::CapacityExceeded {
                        capacity: MAX_SIBLINGS,
                    })?;
                    let _ = nodes.push(i as u32);
                }
            }
            let keys = NodeKeys {
                position: job.keys.position + accepted as u32,
                ..job.keys
            };
            let trow = (job.target_base + slot) as usize;
            if siblings.is_empty() {
                let dist = self.dist(trow as u32)?;
                let token = sample_with(self.kernels, &dist, keys.key(Purpose::SAMPLE, 0))?;
                return Ok(TreeVerdict { accepted, token });
            }
            // Work on a copy of the target row so the table keeps the processed target.
            let (table, extra) = self.weights.split_at_mut(scratch * v);
            let work = &mut extra[..v];
            work.copy_from_slice(&table[trow * v..(trow + 1) * v]);
            let draft = match job.draft_base {
                Some(b) => {
                    let r = (b + slot) as usize;
                    Draft::Sampled(Dist::with_total(
                        &table[r * v..(r + 1) * v],
                        self.totals[r],
                    )?)
                }
                None => Draft::PointMass,
            };
            match verify_siblings(criterion, work, self.totals[trow], draft, &siblings, keys)? {
                Outcome::Accepted { index } => {
                    let node = nodes[index];
                    let found = path.len();
                    *path.get_mut(accepted).ok_or(Error::BufferTooSmall {
                        needed: accepted + 1,
                        found,
                    })? = node;
                    accepted += 1;
                    slot = node + 1;
                }
                Outcome::Rejected { token } => return Ok(TreeVerdict { accepted, token }),
            }
        }
    }

    fn fill_dist(&mut self, row: u32, fill: Fill) -> Result<()> {
        let r = self.check_row(row)?;
        let v = self.vocab;
        if let Some(list) = self.supports.get_mut(r) {
            list.forget();
        }
        self.totals[r] = crate::dist::fill(&mut self.weights[r * v..(r + 1) * v], fill)?;
        Ok(())
    }
}

/// Most children one node of a draft tree may have in [`SliceBackend::verify_tree`].
pub const MAX_SIBLINGS: usize = 64;
