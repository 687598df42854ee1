//! `--device`: which runtime a command runs on.
//!
//! `cpu` is argen-cpu. `cuda` first asks [`argen_cuda::probe`] whether the driver, NVRTC and
//! cuBLAS libraries load and device 0 exists, so a machine without a GPU gets a one-line error
//! that names what is missing (library, driver, device). Where a GPU exists, [`open_cuda`]
//! opens the CUDA executor on it (context, stream, PTX through the disk cache, kernels,
//! cuBLAS), so a broken driver/NVRTC pairing is reported here too, in one line. The CUDA
//! *model* runtime (the model-op kernels and `GpuCompute`) is not part of this build, so after a
//! successful open the command still stops with a one-line error that names the device.

use crate::args::DeviceArg;
use argen_cuda::launch::Executor;
use argen_cuda::{CudaExecutor, CudaOptions};

/// Checks `device` for a command that needs the model runtime; `Ok` means "run on the CPU".
pub fn require_runtime(device: DeviceArg) -> Result<(), String> {
    match device {
        DeviceArg::Cpu => Ok(()),
        DeviceArg::Cuda => {
            let exec = open_cuda()?;
            Err(one_line(&format!(
                "--device cuda: {} opened, but argen's CUDA model runtime is not implemented \
                 yet in this build (only its sampling and verification kernels are); use \
                 --device cpu",
                exec.describe()
            )))
        }
    }
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
    fn cuda_without_a_gpu_fails_in_one_line_and_cpu_passes() {
        assert!(require_runtime(DeviceArg::Cpu).is_ok());
        // With or without a GPU this build cannot run the model on CUDA: always an error, one
        // line, with the way out.
        let e = require_runtime(DeviceArg::Cuda).unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.starts_with("--device cuda: ") && e.ends_with("use --device cpu"),
            "{e}"
        );
    }
}
