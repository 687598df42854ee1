//! Where the logits of a forward pass go: [`LogitSink`] decides what a [`crate::ModelHost`]
//! answers `Action::Prefill / Target / Draft` with.
//!
//! The models leave their output-head result in a device buffer ([`crate::Gpt::forward_device`],
//! [`crate::Drafter::forward_device`], [`crate::Gpt::prefill_class_device`], …), one row per
//! input, **variant-major** (all rows of the conditional slot, then the unconditional, …). The
//! decoding protocol wants the rows **input-major** (variants innermost). The host therefore
//! hands each forward's rows to the sink as a list `src_rows` ("answer row `at + i` is model
//! row `src_rows[i]`"), and the sink assembles the answer:
//!
//! * [`HostLogits`] (`Logits = [f32]`, for `argen_core::SliceBackend` and any host backend)
//!   downloads the rows with [`Compute::download`] — one download per run of consecutive rows,
//!   or, for an interleave, one download of the covering span into a staging vector followed
//!   by row copies: exactly the copies the host made before sinks existed, so the answer is
//!   bit-identical, and after warm-up nothing is allocated;
//! * a device sink (argen-cuda's `DeviceLogitSink`, `Logits = argen_cuda::DeviceLogits`, for
//!   `argen_cuda::GpuBackend`) gathers the rows into its own device buffer with one kernel
//!   launch; nothing but the row-index list crosses the bus, and the sampling / verification
//!   kernels then read the logits where the model wrote them.
//!
//! argen-model cannot depend on a device crate (the dependency points the other way), so the
//! trait is generic over the [`Compute`] backend and the device crate implements it for its own
//! `Compute`.
//!
//! Not logits, and still read back by the host: the target's and the drafter's hidden states
//! (EAGLE features, `rows × dim` floats per forward, only when a drafter is loaded) and the
//! teacher-forced passes of the built-in implicit-classifier judge.

use crate::compute::Compute;
use crate::error::{input_err, Result};

/// Receives the logits rows of the forwards that make up one answer.
pub trait LogitSink<C: Compute> {
    /// What `Answer::Logits` carries (the backend's `Backend::Logits`).
    type Logits: ?Sized;

    /// Starts an answer of `rows` rows of `vocab` logits; earlier contents may be dropped.
    fn begin(&mut self, c: &C, rows: usize, vocab: usize) -> Result<()>;

    /// Copies row `src_rows[i]` of `src` (a model's `[_, vocab]` logits buffer) to answer row
    /// `at + i`, for every `i`.
    fn put(&mut self, c: &C, src: &C::Buf, src_rows: &[u32], at: usize) -> Result<()>;

    /// The answer.
    fn logits(&self) -> &Self::Logits;
}

/// The host sink: answers are `[f32]` rows in host memory (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct HostLogits {
    logits: Vec<f32>,
    staging: Vec<f32>,
    rows: usize,
    vocab: usize,
}

impl HostLogits {
    /// An empty sink (buffers grow to the largest answer and are then reused).
    pub fn new() -> Self {
        Self::default()
    }
}

/// Errors unless answer rows `at .. at + n` exist in an answer of `rows` rows (the range check
/// of [`LogitSink::put`], shared with device sinks).
pub fn check_put(at: usize, n: usize, rows: usize) -> Result<()> {
    if at.checked_add(n).is_none_or(|end| end > rows) {
        return Err(input_err(format!(
            "logit sink: rows {at}..{} beyond the answer's {rows} rows",
            at.saturating_add(n)
        )));
    }
    Ok(())
}

impl<C: Compute> LogitSink<C> for HostLogits {
    type Logits = [f32];

    fn begin(&mut self, _: &C, rows: usize, vocab: usize) -> Result<()> {
        self.rows = rows;
        self.vocab = vocab;
        self.logits.resize(rows * vocab, 0.0);
        Ok(())
    }

    fn put(&mut self, c: &C, src: &C::Buf, src_rows: &[u32], at: usize) -> Result<()> {
        check_put(at, src_rows.len(), self.rows)?;
        let v = self.vocab;
        let (Some(&first), n) = (src_rows.first(), src_rows.len()) else {
            return Ok(());
        };
        if v == 0 {
            return Ok(());
        }
        let dst = &mut self.logits[at * v..(at + n) * v];
        let consecutive = src_rows.windows(2).all(|w| w[1] == w[0].wrapping_add(1));
        if consecutive {
            return c.download(src, first as usize * v, dst);
        }
        // An interleave: one download of the covering span, then row copies.
        let lo = src_rows.iter().copied().min().unwrap_or(first) as usize;
        let hi = src_rows.iter().copied().max().unwrap_or(first) as usize;
        self.staging.resize((hi + 1 - lo) * v, 0.0);
        c.download(src, lo * v, &mut self.staging)?;
        for (row, &s) in dst.chunks_exact_mut(v).zip(src_rows) {
            let o = (s as usize - lo) * v;
            row.copy_from_slice(&self.staging[o..o + v]);
        }
        Ok(())
    }

    fn logits(&self) -> &[f32] {
        &self.logits
    }
}
