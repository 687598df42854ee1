//! The launch layer: device-independent launch descriptions and the executor trait.
//!
//! Everything above the FFI — job packing, validation, buffer management, status decoding,
//! the [`argen_core::Backend`] implementation — is written against [`Executor`]. It has two
//! implementations: [`crate::opencl::OpenClExecutor`] (any OpenCL 1.2 device; PoCL in CI) and
//! [`crate::cuda_exec::CudaExecutor`] (cudarc's driver API, NVRTC PTX, cuBLAS). A [`Launch`]
//! names the kernel, the grid (work-groups), the block (work-items per group), dynamic shared
//! memory and the arguments, in order, so that both executors translate the same description
//! and CI on PoCL exercises the code path that drives the GPU.
//!
//! Buffer kinds: [`Executor::alloc`] gives device memory; [`Executor::alloc_readback`] asks for
//! a buffer the host reads after most launches (status words, token ids, accepted paths). On an
//! integrated GPU (Jetson) the CUDA executor backs those with page-locked host memory mapped
//! into the device's address space, so a read-back is a `memcpy` after the stream is idle
//! instead of a DMA copy; elsewhere both kinds are device memory.
//!
//! [`Executor::gemm`] is the one optional vendor hook: an executor with a vendor BLAS (cuBLAS)
//! takes the dense GEMMs of [`crate::compute::GpuCompute`] described by a [`GemmDesc`]; the
//! default declines and the portable `argen_gemm` kernel runs instead.

use crate::error::Result;
use crate::kernels::Kernel;

/// One kernel argument.
#[derive(Debug)]
pub enum Arg<'a, B> {
    /// A device buffer (passed as a pointer).
    Buf(&'a B),
    /// A 32-bit unsigned scalar.
    U32(u32),
}

/// A kernel launch: `grid` work-groups of `block` work-items.
#[derive(Debug)]
pub struct Launch<'a, B> {
    /// Which kernel.
    pub kernel: Kernel,
    /// Number of work-groups (CUDA blocks).
    pub grid: u32,
    /// Work-items per group (CUDA threads per block).
    pub block: u32,
    /// Dynamic shared (local) memory in bytes; the current kernels use static sizes only.
    pub shared_bytes: u32,
    /// Arguments in declaration order.
    pub args: &'a [Arg<'a, B>],
}

/// Operands of [`Executor::gemm`]: `out[r, n] = Σ_k x[r, k] · w[n, k]` for `r < rows`,
/// `n < self.n`, `k < self.k`. All matrices are row-major and dense; offsets count elements.
#[derive(Debug)]
pub struct GemmDesc<'a, B> {
    /// Activations: f32, `rows × k`, starting at element `x_offset`.
    pub x: &'a B,
    /// First element of `x` (f32 elements).
    pub x_offset: usize,
    /// Weights: `n × k` in `w_dtype`, from element 0.
    pub w: &'a B,
    /// Element format of `w`.
    pub w_dtype: argen_core::Dtype,
    /// Output: f32, `rows × n`, starting at element `out_offset`.
    pub out: &'a B,
    /// First element of `out` (f32 elements).
    pub out_offset: usize,
    /// Rows of `x` and `out`.
    pub rows: usize,
    /// Rows of `w` = columns of `out`.
    pub n: usize,
    /// The reduced dimension.
    pub k: usize,
}

/// A device that can hold buffers and run the argen program.
pub trait Executor {
    /// A device buffer of bytes.
    type Buffer;

    /// A short description of the device, for logs and reports.
    fn describe(&self) -> String;
    /// Allocates `bytes` (at least 1) zeroed bytes.
    fn alloc(&self, bytes: usize) -> Result<Self::Buffer>;
    /// Allocates `bytes` (at least 1) zeroed bytes for a small buffer the host reads back after
    /// most launches (result records). Same contract as [`Executor::alloc`]; an executor may
    /// back it with host-visible memory (the CUDA executor does on integrated GPUs, see the
    /// module documentation). The default is [`Executor::alloc`].
    fn alloc_readback(&self, bytes: usize) -> Result<Self::Buffer> {
        self.alloc(bytes)
    }
    /// Size of a buffer in bytes.
    fn len(&self, buf: &Self::Buffer) -> usize;
    /// Copies `data` to `buf[offset..]` (blocking).
    fn write(&self, buf: &mut Self::Buffer, offset: usize, data: &[u8]) -> Result<()>;
    /// Copies `buf[offset..offset + out.len()]` to `out` (blocking: waits for prior launches).
    fn read(&self, buf: &Self::Buffer, offset: usize, out: &mut [u8]) -> Result<()>;
    /// Enqueues a launch.
    fn launch(&self, launch: &Launch<'_, Self::Buffer>) -> Result<()>;
    /// Optional vendor GEMM: `out[r, n] = Σ_k x[r, k] · w[n, k]` (f32 out, f32 accumulation)
    /// for `rows × n`, `w` in `w_dtype` ([n, k] row-major), `x` f32 at element offset
    /// `x_offset`, `out` f32 at element offset `out_offset`. Returns Ok(false) when the
    /// executor has none (the caller then launches the portable GEMM kernel).
    fn gemm(&self, _g: &GemmDesc<'_, Self::Buffer>) -> Result<bool> {
        Ok(false)
    }
}

/// Appends `u32` words as little-endian bytes.
pub fn push_words(out: &mut Vec<u8>, words: &[u32]) {
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Reads little-endian `u32` words.
pub fn read_words(bytes: &[u8], out: &mut [u32]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

/// Reads little-endian `u64` words.
pub fn read_u64s(bytes: &[u8], out: &mut [u64]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        *o = u64::from_le_bytes(b);
    }
}

impl<T: Executor> Executor for &T {
    type Buffer = T::Buffer;
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn alloc(&self, bytes: usize) -> Result<Self::Buffer> {
        (**self).alloc(bytes)
    }
    fn alloc_readback(&self, bytes: usize) -> Result<Self::Buffer> {
        (**self).alloc_readback(bytes)
    }
    fn len(&self, buf: &Self::Buffer) -> usize {
        (**self).len(buf)
    }
    fn write(&self, buf: &mut Self::Buffer, offset: usize, data: &[u8]) -> Result<()> {
        (**self).write(buf, offset, data)
    }
    fn read(&self, buf: &Self::Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        (**self).read(buf, offset, out)
    }
    fn launch(&self, launch: &Launch<'_, Self::Buffer>) -> Result<()> {
        (**self).launch(launch)
    }
    fn gemm(&self, g: &GemmDesc<'_, Self::Buffer>) -> Result<bool> {
        (**self).gemm(g)
    }
}
