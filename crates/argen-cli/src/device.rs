//! `--device`: which runtime a command runs on.
//!
//! `cpu` is argen-cpu. `cuda` first asks [`argen_cuda::probe`] whether the driver, NVRTC and
//! cuBLAS libraries load and device 0 exists, so a machine without a GPU gets a one-line error
//! that names what is missing (library, driver, device). Where a GPU exists, [`open_cuda`]
//! opens the CUDA executor on it (context, stream, PTX through the disk cache, kernels,
//! cuBLAS), so a broken driver/NVRTC pairing is reported here too, in one line, and
//! [`cuda_compute`] puts the model runtime ([`argen_cuda::GpuCompute`]) on it.
//!
//! The runtimes themselves and the backends that read their logits are
//! [`argen_engine::Runtime`] (the engine's `cuda` feature, which this crate turns on).

use argen_cuda::{CudaExecutor, CudaOptions, GpuCompute};

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
