//! # argen-cuda
//!
//! The GPU backend of argen for desktop, datacenter and Jetson NVIDIA GPUs.
//!
//! * [`kernels`]: one kernel source for NVRTC and OpenCL C (portability header, deterministic
//!   exp, ChaCha20 keyed streams, logit processing, keyed sampling, top-k, draft-tree
//!   verification under every acceptance criterion of `argen-core`).
//! * [`launch`]: device-independent launch descriptions and the [`launch::Executor`] trait.
//! * [`backend::GpuBackend`]: `argen_core::Backend` over any executor, bit-identical to
//!   `argen_core::SliceBackend`.
//! * [`compute::GpuCompute`]: the model runtime's `argen_model::Compute` over any executor
//!   (GEMM, RMSNorm, 2D RoPE, tree attention, SwiGLU, the VQ decoder's ops), so the GPT,
//!   the drafter and the VQ decoder of `argen-model` run unchanged on the device.
//! * [`sink::DeviceLogitSink`]: `argen_model::LogitSink` on the device, so
//!   `argen_model::ModelHost` hands [`GpuBackend`] logits that never leave the device.
//! * [`opencl::OpenClExecutor`]: OpenCL executor (PoCL in CI runs every kernel on the CPU).
//! * [`cuda`]: library discovery (incl. Jetson's Tegra folders), [`probe`] and NVRTC compilation.
//! * [`ptx_cache`]: the PTX disk cache (keyed by source, options, architecture, NVRTC and argen
//!   versions).
//! * [`cuda_exec::CudaExecutor`]: the executor over cudarc's driver API (one stream, PTX modules,
//!   mapped host memory for read-backs on Jetson, cuBLAS GEMMs).
//!
//! Everything is loaded at run time: the crate builds with no CUDA toolkit and no OpenCL, and a
//! missing library or device is a typed [`Error`], never a panic.

pub mod backend;
pub mod compute;
pub mod cuda;
pub mod cuda_exec;
pub mod error;
pub mod kernels;
pub mod launch;
pub mod opencl;
pub mod ptx_cache;
pub mod sink;

pub use backend::{DeviceLogits, GpuBackend, LogitBits};
pub use compute::GpuCompute;
pub use sink::DeviceLogitSink;

pub use cuda::{probe, DeviceInfo};
pub use cuda_exec::{CudaExecutor, CudaOptions, GemmMode, ReadbackMemory};
pub use error::{Error, Result};
