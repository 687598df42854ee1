//! Model runtimes and the backends that read their logits.
//!
//! [`Runtime`] pairs each model runtime with the backend that samples and verifies its logits:
//! on the CPU `argen_core::SliceBackend` over host rows ([`argen_model::HostLogits`]); with the
//! `cuda` feature, on CUDA `argen_cuda::GpuBackend` on the model's own executor, fed by
//! `argen_cuda::DeviceLogitSink`, so the logits never leave the device (per step only index
//! lists, job and result records, and — with a drafter — the EAGLE features cross the bus;
//! docs/cuda.md).

use std::time::Instant;

use argen_core::backend::Backend;
use argen_core::decode::{drive, Action, Answer, Decoder, Host, Observer, Stats};
use argen_core::SliceStorage;
use argen_cpu::Cpu;
use argen_model::{Compute, Condition, Drafter, Gpt, Judge, ModelHost};

/// A model runtime and the sampling / verification backend that reads its logits.
pub trait Runtime: Compute + Sized {
    /// Drives `dec` to [`argen_core::decode::Action::Done`] with the models, the judge (else
    /// the model's implicit classifier) and the sequences' conditions; returns the decoder's
    /// counters, the seconds spent in the decoding loop (backend setup excluded) and the model
    /// forwards run. With `record`, every answer the host gives is appended to it, in order
    /// ([`Recorded`]: the logits rows as host `f32`); runtimes whose logits never leave the
    /// device refuse to record.
    fn decode<'a, D: Decoder, O: Observer>(
        dec: &mut D,
        gpt: &'a mut Gpt<Self>,
        drafter: Option<&'a mut Drafter<Self>>,
        judge: Option<&'a mut (dyn Judge + 'a)>,
        conds: &[(Condition, Condition)],
        observer: &mut O,
        record: Option<&mut Vec<Recorded>>,
    ) -> Result<Decoded, String>;

    /// The class of compute kernels that runs (for the stats): the CPU's `exact` or
    /// `avx512-bf16` (`argen_cpu::Class`), `cuda` on the GPU.
    fn kernel_class(&self) -> &'static str;
}

impl Runtime for Cpu {
    fn kernel_class(&self) -> &'static str {
        Cpu::kernel_class(self).name()
    }

    /// `SliceBackend` over host rows: the logits are host memory already.
    fn decode<'a, D: Decoder, O: Observer>(
        dec: &mut D,
        gpt: &'a mut Gpt<Self>,
        drafter: Option<&'a mut Drafter<Self>>,
        judge: Option<&'a mut (dyn Judge + 'a)>,
        conds: &[(Condition, Condition)],
        observer: &mut O,
        record: Option<&mut Vec<Recorded>>,
    ) -> Result<Decoded, String> {
        let kernels = Runtime::kernel_class(gpt.compute());
        let vocab = gpt.config().vocab_size;
        let mut storage = SliceStorage::new(vocab, dec.dist_rows_needed());
        // The per-element passes of row processing with this CPU's SIMD (same bits).
        let mut backend = storage
            .backend::<f32>()
            .map_err(|e| e.to_string())?
            .with_kernels(argen_cpu::row_kernels());
        let mut host = ModelHost::new(gpt, drafter, judge, conds).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let stats = match record {
            Some(log) => {
                let mut rec = Recording {
                    inner: &mut host,
                    log,
                    vocab,
                };
                drive(dec, &mut backend, &mut rec, observer)
            }
            None => drive(dec, &mut backend, &mut host, observer),
        }
        .map_err(|e| e.to_string())?;
        Ok(Decoded {
            stats,
            wall: start.elapsed().as_secs_f64(),
            calls: host.forward_calls(),
            kernels,
        })
    }
}

/// One answer a host gave, as [`Runtime::decode`] records it.
#[derive(Clone, Debug, PartialEq)]
pub enum Recorded {
    /// The logits rows of a forward (prefill, target or drafter action), `rows × vocab` values,
    /// laid out as the protocol says (group after group, input-major, variants innermost).
    Logits {
        /// Rows of the answer.
        rows: usize,
        /// The values, row-major.
        values: Vec<f32>,
    },
    /// The verdict of a check.
    Verdict(bool),
    /// The score of a finished image.
    Score(f32),
    /// A reformulation was carried out.
    Reformulated,
}

/// A host that answers as `inner` does and appends a copy of every answer to `log` (host
/// logits only: this is a debugging and testing aid, it copies every row).
struct Recording<'h, 'l, H> {
    inner: &'h mut H,
    log: &'l mut Vec<Recorded>,
    vocab: usize,
}

impl<B, H> Host<B> for Recording<'_, '_, H>
where
    B: Backend<Logits = [f32]>,
    H: Host<B>,
{
    type Error = H::Error;

    fn answer(&mut self, action: &Action<'_>) -> Result<Answer<'_, [f32]>, H::Error> {
        let answer = self.inner.answer(action)?;
        self.log.push(match &answer {
            Answer::Logits(l) => Recorded::Logits {
                rows: l.len().checked_div(self.vocab).unwrap_or(0),
                values: l.to_vec(),
            },
            Answer::Verdict(v) => Recorded::Verdict(*v),
            Answer::Score(s) => Recorded::Score(*s),
            Answer::Reformulated => Recorded::Reformulated,
        });
        Ok(answer)
    }
}

/// What a decode returned: the decoder's counters, the seconds in the decoding loop, and the
/// model forwards the host ran, `(target, drafter)` — a batched step of several candidates is
/// one forward.
#[derive(Clone, Copy, Debug)]
pub struct Decoded {
    /// The decoder's counters.
    pub stats: Stats,
    /// Seconds in the decoding loop.
    pub wall: f64,
    /// Forward actions run, by model.
    pub calls: (u32, u32),
    /// The class of compute kernels that ran ([`Runtime::kernel_class`]).
    pub kernels: &'static str,
}

/// Most sampling jobs `GpuBackend` launches at once (larger batches take several launches);
/// bounds its `max_jobs · vocab` floats of processing scratch (16 MiB at vocab 16384).
#[cfg(feature = "cuda")]
const MAX_DEVICE_JOBS: usize = 256;

#[cfg(feature = "cuda")]
impl<E: argen_cuda::launch::Executor> Runtime for argen_cuda::GpuCompute<E> {
    fn kernel_class(&self) -> &'static str {
        "cuda"
    }

    /// `GpuBackend` on the model's executor, fed by a `DeviceLogitSink`: no logits row is read
    /// back.
    fn decode<'a, D: Decoder, O: Observer>(
        dec: &mut D,
        gpt: &'a mut Gpt<Self>,
        drafter: Option<&'a mut Drafter<Self>>,
        judge: Option<&'a mut (dyn Judge + 'a)>,
        conds: &[(Condition, Condition)],
        observer: &mut O,
        record: Option<&mut Vec<Recorded>>,
    ) -> Result<Decoded, String> {
        use argen_cuda::{DeviceLogitSink, GpuBackend};
        if record.is_some() {
            return Err(
                "recording the answers needs the CPU runtime (on CUDA the logits stay on the \
                 device)"
                    .into(),
            );
        }
        let gc = gpt.compute().clone();
        let v = gpt.config().vocab_size;
        let rows = dec.dist_rows_needed();
        let jobs = rows.clamp(1, MAX_DEVICE_JOBS);
        let mut backend = GpuBackend::new(gc.executor(), v, rows, jobs).map_err(|e| {
            format!("--device cuda: cannot set up sampling on the device ({rows} rows of {v}): {e}")
        })?;
        let sink = DeviceLogitSink::new(&gc, gpt.capacity().rows, v)
            .map_err(|e| format!("--device cuda: cannot allocate the logits buffer: {e}"))?;
        let mut host =
            ModelHost::with_sink(gpt, drafter, judge, conds, sink).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let stats = drive(dec, &mut backend, &mut host, observer).map_err(|e| e.to_string())?;
        Ok(Decoded {
            stats,
            wall: start.elapsed().as_secs_f64(),
            calls: host.forward_calls(),
            kernels: "cuda",
        })
    }
}
