//! [`DeviceLogitSink`]: the `argen_model::LogitSink` that keeps a [`argen_model::ModelHost`]'s
//! answers on the device, as the [`DeviceLogits`] that [`crate::GpuBackend`] samples and
//! verifies.
//!
//! The models leave each forward's logits in their own device buffer, variant-major
//! (`argen_model::sink`). The sink copies the answer's rows, in the protocol's input-major
//! order, into its answer buffer with one `argen_gather` launch per forward (two for a drafter
//! run with a catch-up chain); the row-index list goes through a scratch buffer that is
//! uploaded only when it changes (a vanilla decode uploads it once). The answer buffer is an
//! f32 [`DeviceLogits`] that grows to the largest answer and is then reused, so after warm-up
//! nothing is allocated and **no logits cross the bus**: the only host↔device traffic of a
//! decode step is the model's index lists (tokens, RoPE records, attention plan), the EAGLE
//! features when a drafter is loaded, and the backend's job and result records (see
//! `docs/cuda.md`).
//!
//! The copy stays on the device (`rows × vocab × 4` bytes at device bandwidth, next to a
//! forward that reads every weight); it is what lets one answer hold rows of several forwards
//! (prefill variants, a drafter's catch-up chain and its tree), and what lets the model reuse
//! its own logits buffer on the next forward while the decoder still reads the answer.
//!
//! The sink and the [`crate::GpuBackend`] must run on the same executor (same context and
//! queue): build the backend over `GpuCompute::executor()` (a `&E` is an executor), so the
//! gather and the sampling kernels are ordered on one queue.

use crate::backend::DeviceLogits;
use crate::compute::GpuCompute;
use crate::launch::Executor;
use argen_core::Dtype;
use argen_model::{Compute, LogitSink, ModelError};

/// Device-resident answers for [`argen_model::ModelHost::with_sink`] (module docs).
pub struct DeviceLogitSink<E: Executor> {
    logits: DeviceLogits<E::Buffer>,
    /// Capacity of the answer buffer in floats.
    cap: usize,
    vocab: usize,
}

impl<E: Executor> std::fmt::Debug for DeviceLogitSink<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceLogitSink")
            .field("rows", &self.logits.rows)
            .field("vocab", &self.vocab)
            .field("capacity_floats", &self.cap)
            .finish()
    }
}

fn device_err(e: crate::Error) -> ModelError {
    ModelError::Device(e.to_string())
}

impl<E: Executor> DeviceLogitSink<E> {
    /// A sink on `c`'s executor with room for `rows` rows of `vocab` logits (it grows if an
    /// answer needs more; size it with the model's `Capacity::rows` to allocate only here).
    pub fn new(c: &GpuCompute<E>, rows: usize, vocab: usize) -> argen_model::Result<Self> {
        let cap = rows.checked_mul(vocab).ok_or_else(|| {
            ModelError::Input(format!("logit sink of {rows} rows x {vocab} overflows"))
        })?;
        Ok(DeviceLogitSink {
            logits: DeviceLogits {
                buf: Self::alloc(c, cap)?,
                dtype: Dtype::F32,
                rows: 0,
            },
            cap,
            vocab,
        })
    }

    fn alloc(c: &GpuCompute<E>, floats: usize) -> argen_model::Result<E::Buffer> {
        c.status()?;
        let bytes = floats
            .checked_mul(4)
            .ok_or_else(|| ModelError::Input(format!("logit sink of {floats} floats overflows")))?;
        c.executor().alloc(bytes.max(4)).map_err(device_err)
    }

    /// The current answer (also what `argen_model::LogitSink::logits` returns).
    pub fn device_logits(&self) -> &DeviceLogits<E::Buffer> {
        &self.logits
    }
}

impl<E: Executor> LogitSink<GpuCompute<E>> for DeviceLogitSink<E> {
    type Logits = DeviceLogits<E::Buffer>;

    fn begin(&mut self, c: &GpuCompute<E>, rows: usize, vocab: usize) -> argen_model::Result<()> {
        let need = rows.checked_mul(vocab).ok_or_else(|| {
            ModelError::Input(format!(
                "logit sink answer of {rows} rows x {vocab} overflows"
            ))
        })?;
        if need > self.cap {
            self.logits.buf = Self::alloc(c, need)?;
            self.cap = need;
        }
        self.logits.rows = rows;
        self.vocab = vocab;
        Ok(())
    }

    fn put(
        &mut self,
        c: &GpuCompute<E>,
        src: &<GpuCompute<E> as Compute>::Buf,
        src_rows: &[u32],
        at: usize,
    ) -> argen_model::Result<()> {
        argen_model::sink::check_put(at, src_rows.len(), self.logits.rows)?;
        if src_rows.is_empty() {
            return Ok(());
        }
        c.gather_rows_into(src, self.vocab, src_rows, &self.logits.buf, self.cap, at);
        c.status()
    }

    fn logits(&self) -> &DeviceLogits<E::Buffer> {
        &self.logits
    }
}
