//! `--device`: which runtime a command runs on.
//!
//! `cpu` is argen-cpu. `cuda` first asks [`argen_cuda::probe`] whether the driver, NVRTC and
//! cuBLAS libraries load and device 0 exists, so a machine without a GPU gets a one-line error
//! that names what is missing (library, driver, device). Where a GPU exists, [`open_cuda`]
//! opens the CUDA executor on it (context, stream, PTX through the disk cache, kernels,
//! cuBLAS), so a broken driver/NVRTC pairing is reported here too, in one line, and
//! [`cuda_compute`] puts the model runtime ([`argen_cuda::GpuCompute`]) on it.
//!
//! [`Runtime`] pairs each model runtime with the backend that samples and verifies its logits:
//! on the CPU `argen_core::SliceBackend` over host rows ([`argen_model::HostLogits`]); on CUDA
//! `argen_cuda::GpuBackend` on the model's own executor, fed by `argen_cuda::DeviceLogitSink`,
//! so the logits never leave the device (per step only index lists, job and result records,
//! and — with a drafter — the EAGLE features cross the bus; docs/cuda.md).

use std::time::Instant;

use argen_core::decode::{drive, Decoder, Observer, Stats};
use argen_core::SliceStorage;
use argen_cpu::Cpu;
use argen_cuda::launch::Executor;
use argen_cuda::{CudaExecutor, CudaOptions, DeviceLogitSink, GpuBackend, GpuCompute};
use argen_model::{Compute, Condition, Drafter, Gpt, Judge, ModelHost};

/// Most sampling jobs `GpuBackend` launches at once (larger batches take several launches);
/// bounds its `max_jobs · vocab` floats of processing scratch (16 MiB at vocab 16384).
const MAX_DEVICE_JOBS: usize = 256;

/// A model runtime and the sampling / verification backend that reads its logits.
pub(crate) trait Runtime: Compute + Sized {
    /// Drives `dec` to [`argen_core::decode::Action::Done`] with the models, the judge (else
    /// the model's implicit classifier) and the sequences' conditions; returns the decoder's
    /// counters and the seconds spent in the decoding loop (backend setup excluded).
    fn decode<'a, D: Decoder>(
        dec: &mut D,
        gpt: &'a mut Gpt<Self>,
        drafter: Option<&'a mut Drafter<Self>>,
        judge: Option<&'a mut (dyn Judge + 'a)>,
        conds: &[(Condition, Condition)],
        observer: &mut impl Observer,
    ) -> Result<Decoded, String>;
}

impl Runtime for Cpu {
    /// `SliceBackend` over host rows: the logits are host memory already.
    fn decode<'a, D: Decoder>(
        dec: &mut D,
        gpt: &'a mut Gpt<Self>,
        drafter: Option<&'a mut Drafter<Self>>,
        judge: Option<&'a mut (dyn Judge + 'a)>,
        conds: &[(Condition, Condition)],
        observer: &mut impl Observer,
    ) -> Result<Decoded, String> {
        let mut storage = SliceStorage::new(gpt.config().vocab_size, dec.dist_rows_needed());
        let mut backend = storage.backend::<f32>().map_err(|e| e.to_string())?;
        let mut host = ModelHost::new(gpt, drafter, judge, conds).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let stats = drive(dec, &mut backend, &mut host, observer).map_err(|e| e.to_string())?;
        Ok(Decoded {
            stats,
            wall: start.elapsed().as_secs_f64(),
            calls: host.forward_calls(),
        })
    }
}

impl<E: Executor> Runtime for GpuCompute<E> {
    /// `GpuBackend` on the model's executor, fed by a `DeviceLogitSink`: no logits row is read
    /// back.
    fn decode<'a, D: Decoder>(
        dec: &mut D,
        gpt: &'a mut Gpt<Self>,
        drafter: Option<&'a mut Drafter<Self>>,
        judge: Option<&'a mut (dyn Judge + 'a)>,
        conds: &[(Condition, Condition)],
        observer: &mut impl Observer,
    ) -> Result<Decoded, String> {
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
        })
    }
}

/// What a decode returned: the decoder's counters, the seconds in the decoding loop, and the
/// model forwards the host ran, `(target, drafter)` — a batched step of several candidates is
/// one forward.
pub struct Decoded {
    /// The decoder's counters.
    pub stats: Stats,
    /// Seconds in the decoding loop.
    pub wall: f64,
    /// Forward actions run, by model.
    pub calls: (u32, u32),
}

/// The model runtime on CUDA device 0 (see [`open_cuda`]); every failure is one line.
pub fn cuda_compute() -> Result<GpuCompute<CudaExecutor>, String> {
    Ok(GpuCompute::new(open_cuda()?))
}

/// Probes CUDA device 0 and opens the executor on it, with the device's defaults (mapped
/// read-back buffers on integrated GPUs, cuBLAS GEMMs, the PTX cache in
/// `$ARGEN_CACHE_DIR` / `$XDG_CACHE_HOME/argen` / `~/.cache/argen`). Every failure is one line
/// that names what is missing or what failed, and suggests `--device cpu`.
pub fn open_cuda() -> Result<CudaExecutor, String> {
    let info = argen_cuda::probe(0)
        .map_err(|e| one_line(&format!("--device cuda: {e}; use --device cpu")))?;
    CudaExecutor::open_with(&info, CudaOptions::default()).map_err(|e| {
        one_line(&format!(
            "--device cuda: found {} ({}), but opening it failed: {e}; use --device cpu",
            info.name,
            info.arch()
        ))
    })
}

/// Folds any line breaks of a driver message into one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_folded_into_one_line() {
        assert_eq!(one_line("a\n  b\tc \r\n"), "a b c");
    }

    #[test]
    fn cuda_without_a_gpu_fails_in_one_line() {
        if argen_cuda::probe(0).is_ok() {
            crate::errln!(
                "SKIPPED device::tests::cuda_without_a_gpu_fails_in_one_line: a GPU is present"
            );
            return;
        }
        let e = cuda_compute().map(|_| ()).unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.starts_with("--device cuda: ") && e.ends_with("use --device cpu"),
            "{e}"
        );
    }
}
