//! `--device`: which runtime a command runs on.
//!
//! `cpu` is argen-cpu. `cuda` first asks [`argen_cuda::probe`] whether the driver, NVRTC and
//! cuBLAS libraries load and device 0 exists, so a machine without a GPU gets a one-line error
//! that names what is missing (library, driver, device). The CUDA model runtime (GEMMs and the
//! model-op kernels) is not written yet, so on a machine that does have a GPU the error names
//! the device found and says so; only the sampling and verification kernels exist.

use crate::args::DeviceArg;

/// Checks `device` for a command that needs the model runtime; `Ok` means "run on the CPU".
pub fn require_runtime(device: DeviceArg) -> Result<(), String> {
    match device {
        DeviceArg::Cpu => Ok(()),
        DeviceArg::Cuda => Err(match argen_cuda::probe(0) {
            Err(e) => one_line(&format!("--device cuda: {e}; use --device cpu")),
            Ok(info) => one_line(&format!(
                "--device cuda: found {} (sm_{}{}), but argen's CUDA model runtime is not \
                 implemented yet (only its sampling and verification kernels are); use --device cpu",
                info.name, info.compute_capability.0, info.compute_capability.1
            )),
        }),
    }
}

/// Folds any line breaks of a driver message into one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
