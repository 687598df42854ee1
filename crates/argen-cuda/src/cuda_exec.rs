//! [`CudaExecutor`]: the [`Executor`] that drives an NVIDIA GPU through cudarc's driver API,
//! NVRTC-compiled PTX (with the [`crate::ptx_cache`] disk cache) and cuBLAS.
//!
//! **Device and stream.** [`CudaExecutor::open`] probes the device ([`crate::probe`]: the driver,
//! NVRTC and cuBLAS load, the device exists) before anything touches cudarc, retains the
//! device's primary context and creates **one** non-blocking stream. Every copy, launch and
//! GEMM is enqueued on that stream, so stream order is the only synchronisation needed:
//! `write` returns once the host bytes are consumed (CUDA stages pageable memory before
//! returning), `read` blocks until the stream has drained and the bytes are in host memory,
//! `launch` and `gemm` only enqueue. Errors of asynchronous work surface at the next `read`.
//! Every method binds the context to the calling thread first, so the executor may be shared
//! between threads (calls are then interleaved on the one stream).
//!
//! **Program.** The kernel program ([`crate::kernels::program_source`]) and the small
//! activation-conversion program ([`CONVERT_SOURCE`]) are compiled for the device's own
//! architecture (`sm_XY` from the compute capability) with the determinism options, through the
//! PTX disk cache, loaded with `cuModuleLoadData`, and each kernel is looked up by
//! [`Kernel::name`]. A launch passes `Arg::Buf` as the buffer's device address and `Arg::U32`
//! as a 32-bit value, in order, with the launch's grid, block and dynamic shared memory.
//!
//! **Buffer kinds.** [`Executor::alloc`] is `cuMemAlloc` + an enqueued zero fill.
//! [`Executor::alloc_readback`] depends on [`ReadbackMemory`]: `Device` is the same as `alloc`;
//! `Mapped` is page-locked host memory allocated with `cuMemHostAlloc(DEVICEMAP)` whose device
//! alias (`cuMemHostGetDevicePointer`) the kernels write directly. On an integrated GPU (Jetson:
//! `CU_DEVICE_ATTRIBUTE_INTEGRATED`, one DRAM shared by CPU and GPU) that turns every read-back
//! of a result record into a stream synchronisation plus a `memcpy`, with no DMA copy; it is the
//! default there. On a discrete GPU kernel writes to mapped memory cross PCIe, so `Device` is the
//! default. Host access to a mapped buffer (`read` and `write`) first waits for the stream, so a
//! kernel still running can never race with the host.
//!
//! **GEMM.** [`Executor::gemm`] runs cuBLAS (see [`gemm_plan`] for the row-major ↔ column-major
//! mapping, with the math). f32 weights: `cublasSgemm`. f16/bf16 weights: cuBLAS has no mixed
//! f32 × f16 GEMM (`cublasGemmEx` needs A and B in one type), so the f32 activations are first
//! rounded to the weight format (round to nearest even; [`CONVERT_SOURCE`]) into a scratch
//! buffer owned by the executor, then `cublasGemmEx` multiplies with f32 accumulation
//! (`CUBLAS_COMPUTE_32F`) and f32 output. Precision consequence: each activation carries a
//! relative error up to 2⁻¹¹ (f16) or 2⁻⁸ (bf16) before the f32 dot product — the precision of
//! PyTorch's f16/bf16 inference — and an f16 activation beyond ±65504 becomes ±∞ (bf16 has the
//! f32 range). [`GemmMode`] chooses: `Cublas` (default) uses cuBLAS for every weight format,
//! `CublasF32` only for f32 weights, `Portable` never (the caller then launches its portable
//! GEMM kernel, which reads 16-bit weights exactly).
//!
//! **GEMM determinism.** One stream, one handle, a fixed workspace set with
//! `cublasSetWorkspace` (so the algorithm choice cannot depend on a shared pool), math mode
//! `CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION` (no TF32 for f32
//! GEMMs; split-K partial sums, when cuBLAS picks split-K, are reduced in f32 rather than the
//! output type), atomics not allowed (the default). cuBLAS documents bit-wise identical results
//! run to run for the same toolkit version, GPU architecture and SM count under these
//! conditions; results may differ across cuBLAS versions or GPUs, and are not bit-identical to
//! the portable kernel (different summation order). Setting `NVIDIA_TF32_OVERRIDE=1` in the
//! environment would re-enable TF32; do not. `CUBLAS_PEDANTIC_MATH` is deliberately not used: it
//! disables tensor cores for the 16-bit path (an order of magnitude slower) and buys no
//! reproducibility that the settings above do not already give.

use crate::cuda::{compile_source, nvrtc_version, probe, DeviceInfo};
use crate::error::{Error, Result};
use crate::kernels::{nvrtc_options, program_source, Kernel};
use crate::launch::{Arg, Executor, GemmDesc, Launch};
use crate::ptx_cache::{cache_key, KeyParts, Origin, PtxCache};
use argen_core::Dtype;
use cudarc::cublas::{result as blas, sys as bsys};
use cudarc::driver::{result as dr, sys as dsys, CudaContext, CudaStream};
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex};

/// The activation-conversion kernels used by the 16-bit cuBLAS path (CUDA only; the portable
/// program needs no such kernels). `argen_f32_to_f16` uses the hardware conversion
/// `cvt.rn.f16.f32` (IEEE round to nearest even, overflow to ±∞, NaN stays NaN);
/// `argen_f32_to_bf16` rounds to nearest even in integer arithmetic (every architecture,
/// including `sm_72`, which has no bf16 conversion instruction) and keeps NaNs quiet — the
/// same bits as `half::bf16::from_f32`.
pub const CONVERT_SOURCE: &str = r#"
extern "C" __global__ void argen_f32_to_f16(const unsigned int* __restrict__ x,
                                            unsigned short* __restrict__ y, unsigned int n) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float v = __uint_as_float(x[i]);
        unsigned short h;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
        y[i] = h;
    }
}

extern "C" __global__ void argen_f32_to_bf16(const unsigned int* __restrict__ x,
                                             unsigned short* __restrict__ y, unsigned int n) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        unsigned int u = x[i];
        unsigned int r;
        if ((u & 0x7fffffffu) > 0x7f800000u) {
            r = (u >> 16) | 0x40u;
        } else {
            r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        }
        y[i] = (unsigned short)r;
    }
}
"#;

/// Entry points of [`CONVERT_SOURCE`].
const CONVERT_F16: &str = "argen_f32_to_f16";
const CONVERT_BF16: &str = "argen_f32_to_bf16";
/// Threads per block of the conversion kernels.
const CONVERT_BLOCK: u32 = 256;

/// Most arguments one launch may pass.
pub const MAX_ARGS: usize = 32;

/// Dynamic shared memory every device grants without an opt-in.
const DEFAULT_SHARED_LIMIT: u32 = 48 * 1024;

/// What backs [`Executor::alloc_readback`] buffers (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadbackMemory {
    /// Device memory, read back with a DMA copy.
    Device,
    /// Page-locked host memory mapped into the device's address space.
    Mapped,
}

impl ReadbackMemory {
    /// The default for a device: `Mapped` on integrated GPUs, `Device` elsewhere.
    pub fn for_device(info: &DeviceInfo) -> Self {
        if info.integrated {
            ReadbackMemory::Mapped
        } else {
            ReadbackMemory::Device
        }
    }
}

/// Which weight formats [`Executor::gemm`] serves with cuBLAS (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GemmMode {
    /// f32, f16 and bf16 weights (16-bit ones round the activations to the weight format).
    #[default]
    Cublas,
    /// f32 weights only; 16-bit weights go to the portable kernel.
    CublasF32,
    /// Never: `gemm` always returns `Ok(false)` and no cuBLAS handle is created.
    Portable,
}

/// How to open a [`CudaExecutor`].
#[derive(Clone, Debug, Default)]
pub struct CudaOptions {
    /// Read-back memory; `None` picks [`ReadbackMemory::for_device`].
    pub readback: Option<ReadbackMemory>,
    /// cuBLAS use.
    pub gemm: GemmMode,
    /// PTX cache; `None` opens [`PtxCache::open_default`].
    pub cache: Option<PtxCache>,
}

/// How the two PTX programs were obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtxReport {
    /// The kernel program's cache key and origin.
    pub program: (String, Origin),
    /// The conversion program's cache key and origin.
    pub convert: (String, Origin),
    /// Cache problems met on the way (already printed to stderr once).
    pub warnings: Vec<String>,
}

/// A buffer of a [`CudaExecutor`]: device memory or mapped page-locked host memory.
pub struct CudaBuffer {
    /// Device address (the device alias for mapped memory).
    ptr: dsys::CUdeviceptr,
    /// Host address of mapped memory; null for device memory.
    host: *mut u8,
    len: usize,
    /// Keeps the context alive and orders the free after pending work.
    stream: Arc<CudaStream>,
}

// SAFETY: the buffer exclusively owns its allocation. The host pointer is only dereferenced by
// `CudaExecutor::read` (through `&CudaBuffer`, reading) and `CudaExecutor::write` (through
// `&mut CudaBuffer`), each after synchronising the stream, so Rust's borrow rules make host
// accesses data-race free and the device never runs concurrently with them.
unsafe impl Send for CudaBuffer {}
// SAFETY: see `Send`; shared references only read.
unsafe impl Sync for CudaBuffer {}

impl std::fmt::Debug for CudaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBuffer")
            .field("len", &self.len)
            .field("mapped", &!self.host.is_null())
            .finish()
    }
}

impl CudaBuffer {
    /// Whether this is mapped host memory.
    pub fn is_mapped(&self) -> bool {
        !self.host.is_null()
    }
}

impl Drop for CudaBuffer {
    fn drop(&mut self) {
        let ctx = self.stream.context();
        // Raw calls: `bind_to_thread` would return an error recorded earlier without binding,
        // and the free below needs the context current.
        // SAFETY: the context is alive (held through the stream this buffer holds).
        ctx.record_err(unsafe { dr::ctx::set_current(ctx.cu_ctx()) });
        // A launch still queued may use the memory: drain the stream first.
        // SAFETY: the stream is alive (held by this buffer).
        ctx.record_err(unsafe { dr::stream::synchronize(self.stream.cu_stream()) });
        if self.host.is_null() {
            // SAFETY: `ptr` came from cuMemAlloc in this context and is freed once, here.
            ctx.record_err(unsafe { dr::free_sync(self.ptr) });
        } else {
            // SAFETY: `host` came from cuMemHostAlloc and is freed once, here; the stream is idle.
            ctx.record_err(unsafe { dr::free_host(self.host as *mut c_void) });
        }
    }
}

/// A loaded module, unloaded on drop.
struct Module {
    raw: dsys::CUmodule,
    ctx: Arc<CudaContext>,
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: the context is alive (held by this module).
        self.ctx
            .record_err(unsafe { dr::ctx::set_current(self.ctx.cu_ctx()) });
        // SAFETY: `raw` came from cuModuleLoadData and is unloaded once; the functions looked
        // up from it are dropped with the executor that owns this module.
        self.ctx.record_err(unsafe { dr::module::unload(self.raw) });
    }
}

/// A cuBLAS handle with its fixed workspace.
struct Blas {
    handle: bsys::cublasHandle_t,
    /// Declared after `handle`, so it is freed after the handle is destroyed.
    _workspace: CudaBuffer,
}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: the handle was created by cublasCreate and is destroyed once, here. A failure
        // cannot be reported from drop and leaks nothing but the handle.
        let _ = unsafe { blas::destroy_handle(self.handle) };
    }
}

/// Mutable GEMM state, used under a lock: the cuBLAS handle (not to be used by two threads at
/// once) and the activation scratch of the 16-bit path.
struct GemmState {
    blas: Blas,
    scratch: Option<CudaBuffer>,
}

/// The CUDA executor (see the module documentation).
pub struct CudaExecutor {
    info: DeviceInfo,
    readback: ReadbackMemory,
    gemm_mode: GemmMode,
    functions: HashMap<Kernel, dsys::CUfunction>,
    to_f16: dsys::CUfunction,
    to_bf16: dsys::CUfunction,
    ptx: PtxReport,
    /// Dropped before the modules and the stream.
    gemm: Option<Mutex<GemmState>>,
    _modules: [Module; 2],
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
}

// SAFETY: the raw function handles are immutable driver objects valid while `_modules` lives
// and usable from any thread once the context is bound, which every method does first. The
// cuBLAS handle and the scratch buffer, the only mutable state, are behind a `Mutex`.
unsafe impl Send for CudaExecutor {}
// SAFETY: as for `Send`.
unsafe impl Sync for CudaExecutor {}

impl std::fmt::Debug for CudaExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaExecutor")
            .field("device", &self.describe())
            .finish()
    }
}

fn drv(call: &'static str) -> impl Fn(dr::DriverError) -> Error {
    move |e| Error::Driver {
        call,
        detail: format!("{e:?}"),
    }
}

fn blas_err(call: &'static str) -> impl Fn(blas::CublasError) -> Error {
    move |e| Error::Blas {
        call,
        detail: format!("{:?}", e.0),
    }
}

fn invalid(op: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::Invalid {
        op: op.into(),
        detail: detail.into(),
    }
}

/// Checks that `offset..offset + n` lies inside a buffer of `len` bytes.
pub fn check_range(op: &str, len: usize, offset: usize, n: usize) -> Result<()> {
    match offset.checked_add(n) {
        Some(end) if end <= len => Ok(()),
        _ => Err(invalid(
            op,
            format!("bytes {offset}..{offset}+{n} outside a buffer of {len} bytes"),
        )),
    }
}

/// A cuBLAS GEMM call derived from a [`GemmDesc`] (see [`gemm_plan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmPlan {
    /// cuBLAS `m` (= `desc.n`).
    pub m: i32,
    /// cuBLAS `n` (= `desc.rows`).
    pub n: i32,
    /// cuBLAS `k` (= `desc.k`).
    pub k: i32,
    /// `lda` (= `desc.k`), A = the weights, transposed (`CUBLAS_OP_T`).
    pub lda: i32,
    /// `ldb` (= `desc.k`), B = the activations, not transposed (`CUBLAS_OP_N`).
    pub ldb: i32,
    /// `ldc` (= `desc.n`), C = the output.
    pub ldc: i32,
    /// Byte offset of the first activation.
    pub x_byte_offset: usize,
    /// Byte offset of the first output element.
    pub out_byte_offset: usize,
    /// Elements to convert for the 16-bit path (`rows · k`), and the scratch bytes they need.
    pub convert: Option<(u32, usize)>,
}

/// What [`gemm_plan`] needs to know of a buffer: device address and length in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Extent {
    /// Device address of byte 0.
    pub addr: u64,
    /// Length in bytes.
    pub len: usize,
}

/// Maps a row-major GEMM onto cuBLAS's column-major one and validates it.
///
/// Row-major storage of an `a × b` matrix with leading dimension `b` is, read column-major,
/// the `b × a` matrix with leading dimension `b`: its transpose. So with `X` (`rows × k`),
/// `W` (`n × k`) and `Out` (`rows × n`) all row-major, cuBLAS sees `Xᵀ` (`k × rows`, ld `k`),
/// `Wᵀ` (`k × n`, ld `k`) and `Outᵀ` (`n × rows`, ld `n`). The wanted `Out = X · Wᵀ` is
/// equivalent to `Outᵀ = W · Xᵀ = op(A) · op(B)` with A = the buffer `W` seen as `Wᵀ` and
/// `op(A) = (Wᵀ)ᵀ = W` (`CUBLAS_OP_T`), B = the buffer `X` seen as `Xᵀ` and `op(B) = Xᵀ`
/// (`CUBLAS_OP_N`). Hence `m = n`, `n = rows`, `k = k`, `lda = k`, `ldb = k`, `ldc = n`,
/// `α = 1`, `β = 0`, and element `(i, j)` of the column-major result,
/// `C[i + j·ldc] = Σ_l A[l + i·lda] · B[l + j·ldb] = Σ_l w[i, l] · x[j, l]`, is `out[j, i]`.
///
/// Errors (nothing is enqueued) when a dimension exceeds `i32::MAX`, an operand range lies
/// outside its buffer, or the output overlaps an input. `None` when there is nothing to compute
/// (`rows = 0` or `n = 0`).
pub fn gemm_plan(g: &GemmDesc<'_, Extent>) -> Result<Option<GemmPlan>> {
    let GemmDesc {
        x,
        x_offset,
        w,
        w_dtype,
        out,
        out_offset,
        rows,
        n,
        k,
    } = *g;
    let dim = |what: &str, v: usize| {
        i32::try_from(v).map_err(|_| invalid("gemm", format!("{what} = {v} exceeds i32::MAX")))
    };
    let (m32, n32, k32) = (dim("n", n)?, dim("rows", rows)?, dim("k", k)?);
    let bytes = |what: &str, elems: Option<usize>, size: usize| {
        elems
            .and_then(|e| e.checked_mul(size))
            .ok_or_else(|| invalid("gemm", format!("{what} size overflows")))
    };
    let x_start = bytes("x offset", Some(x_offset), 4)?;
    let x_bytes = bytes("x", rows.checked_mul(k), 4)?;
    let w_bytes = bytes("w", n.checked_mul(k), w_dtype.size())?;
    let out_start = bytes("out offset", Some(out_offset), 4)?;
    let out_bytes = bytes("out", rows.checked_mul(n), 4)?;
    check_range("gemm x", x.len, x_start, x_bytes)?;
    check_range("gemm w", w.len, 0, w_bytes)?;
    check_range("gemm out", out.len, out_start, out_bytes)?;
    if rows == 0 || n == 0 {
        return Ok(None);
    }
    let overlaps = |a: u64, al: usize, b: u64, bl: usize| {
        al > 0 && bl > 0 && a < b.saturating_add(bl as u64) && b < a.saturating_add(al as u64)
    };
    let o = out.addr + out_start as u64;
    if overlaps(o, out_bytes, x.addr + x_start as u64, x_bytes)
        || overlaps(o, out_bytes, w.addr, w_bytes)
    {
        return Err(invalid("gemm", "the output overlaps an input"));
    }
    let convert = match w_dtype {
        Dtype::F32 => None,
        Dtype::F16 | Dtype::Bf16 => {
            let elems = rows * k; // fits: x_bytes = 4·rows·k did not overflow
            let count = u32::try_from(elems)
                .map_err(|_| invalid("gemm", format!("rows · k = {elems} exceeds u32::MAX")))?;
            Some((count, elems * 2))
        }
    };
    Ok(Some(GemmPlan {
        m: m32,
        n: n32,
        k: k32,
        lda: k32.max(1),
        ldb: k32.max(1),
        ldc: m32,
        x_byte_offset: x_start,
        out_byte_offset: out_start,
        convert,
    }))
}

/// Packs launch arguments into the storage `cuLaunchKernel` reads: device addresses and 32-bit
/// values in `slots` (one per argument, a u32 in the low half), in order. Errors beyond
/// [`MAX_ARGS`] or for a buffer of another executor (`owns` false).
pub fn pack_args<B>(
    args: &[Arg<'_, B>],
    addr: impl Fn(&B) -> Option<u64>,
    slots: &mut [ArgSlot; MAX_ARGS],
) -> Result<usize> {
    if args.len() > MAX_ARGS {
        return Err(invalid(
            "launch",
            format!("{} arguments, at most {MAX_ARGS}", args.len()),
        ));
    }
    for (slot, a) in slots.iter_mut().zip(args) {
        *slot = match a {
            Arg::Buf(b) => ArgSlot::Ptr(
                addr(b).ok_or_else(|| invalid("launch", "a buffer of another executor"))?,
            ),
            Arg::U32(v) => ArgSlot::U32(*v),
        };
    }
    Ok(args.len())
}

/// One packed kernel argument (see [`pack_args`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgSlot {
    /// A device address (a pointer parameter).
    Ptr(u64),
    /// A 32-bit value.
    U32(u32),
}

impl CudaExecutor {
    /// Probes device `index` and opens it with default options.
    pub fn open(index: usize) -> Result<Self> {
        Self::open_with(&probe(index)?, CudaOptions::default())
    }

    /// Opens the device `info` describes (from a successful [`probe`], which guarantees the
    /// libraries are loaded before cudarc is touched).
    pub fn open_with(info: &DeviceInfo, options: CudaOptions) -> Result<Self> {
        let ctx = CudaContext::new(info.index).map_err(drv("cuDevicePrimaryCtxRetain"))?;
        let stream = ctx.new_stream().map_err(drv("cuStreamCreate"))?;
        let arch = info.arch();
        let cache = options.cache.unwrap_or_else(PtxCache::open_default);
        let mut warnings: Vec<String> = cache.warning().map(String::from).into_iter().collect();
        let version = nvrtc_version()?;
        let opts = nvrtc_options(&arch);
        let mut build = |source: &str| -> Result<(String, String, Origin)> {
            let key = cache_key(&KeyParts {
                source,
                options: &opts,
                arch: &arch,
                nvrtc_version: version,
                argen_version: env!("CARGO_PKG_VERSION"),
            });
            let got = cache.get_or_compile(&key, || compile_source(source, &arch))?;
            warnings.extend(got.warnings);
            Ok((got.ptx, key, got.origin))
        };
        let (program_ptx, program_key, program_origin) = build(&program_source())?;
        let (convert_ptx, convert_key, convert_origin) = build(CONVERT_SOURCE)?;
        for w in &warnings {
            eprintln!("argen: warning: {w}");
        }
        let program = load_module(&ctx, &program_ptx, info)?;
        let convert = load_module(&ctx, &convert_ptx, info)?;
        let mut functions = HashMap::new();
        for k in Kernel::ALL {
            functions.insert(k, get_function(&program, k.name())?);
        }
        let to_f16 = get_function(&convert, CONVERT_F16)?;
        let to_bf16 = get_function(&convert, CONVERT_BF16)?;
        let gemm = match options.gemm {
            GemmMode::Portable => None,
            GemmMode::Cublas | GemmMode::CublasF32 => {
                let blas = create_blas(&stream, info)?;
                Some(Mutex::new(GemmState {
                    blas,
                    scratch: None,
                }))
            }
        };
        Ok(CudaExecutor {
            info: info.clone(),
            readback: options
                .readback
                .unwrap_or_else(|| ReadbackMemory::for_device(info)),
            gemm_mode: options.gemm,
            functions,
            to_f16,
            to_bf16,
            ptx: PtxReport {
                program: (program_key, program_origin),
                convert: (convert_key, convert_origin),
                warnings,
            },
            gemm,
            _modules: [program, convert],
            stream,
            ctx,
        })
    }

    /// The device.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// What backs read-back buffers.
    pub fn readback_memory(&self) -> ReadbackMemory {
        self.readback
    }

    /// cuBLAS use.
    pub fn gemm_mode(&self) -> GemmMode {
        self.gemm_mode
    }

    /// How the PTX was obtained (cache hit or compile).
    pub fn ptx_report(&self) -> &PtxReport {
        &self.ptx
    }

    /// Waits until everything enqueued so far has finished; reports asynchronous errors.
    pub fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.stream
            .synchronize()
            .map_err(drv("cuStreamSynchronize"))
    }

    fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(drv("cuCtxSetCurrent"))
    }

    fn owns(&self, b: &CudaBuffer) -> bool {
        Arc::ptr_eq(&b.stream, &self.stream)
    }

    fn check_owned(&self, op: &str, b: &CudaBuffer) -> Result<()> {
        if self.owns(b) {
            Ok(())
        } else {
            Err(invalid(op, "a buffer of another executor"))
        }
    }

    fn alloc_device(&self, bytes: usize) -> Result<CudaBuffer> {
        let len = bytes.max(1);
        self.bind()?;
        // SAFETY: the context is current; the allocation is owned by the returned buffer.
        let ptr = unsafe { dr::malloc_sync(len) }.map_err(drv("cuMemAlloc"))?;
        let buf = CudaBuffer {
            ptr,
            host: std::ptr::null_mut(),
            len,
            stream: self.stream.clone(),
        };
        // SAFETY: `len` bytes at `ptr` were just allocated; the fill is ordered on the stream
        // before any later use of the buffer.
        unsafe { dr::memset_d8_async(buf.ptr, 0, len, self.stream.cu_stream()) }
            .map_err(drv("cuMemsetD8Async"))?;
        Ok(buf)
    }

    fn alloc_mapped(&self, bytes: usize) -> Result<CudaBuffer> {
        let len = bytes.max(1);
        self.bind()?;
        // SAFETY: the context is current; DEVICEMAP asks for a device alias of the pages.
        let host = unsafe { dr::malloc_host(len, dsys::CU_MEMHOSTALLOC_DEVICEMAP) }
            .map_err(drv("cuMemHostAlloc"))? as *mut u8;
        let mut ptr: dsys::CUdeviceptr = 0;
        // SAFETY: `host` is a live cuMemHostAlloc allocation made with DEVICEMAP; flags must
        // be 0.
        let mapped =
            unsafe { dsys::cuMemHostGetDevicePointer_v2(&mut ptr, host as *mut c_void, 0) }
                .result();
        let buf = CudaBuffer {
            ptr,
            host,
            len,
            stream: self.stream.clone(),
        };
        // On failure `buf` is dropped here and frees the host allocation.
        mapped.map_err(drv("cuMemHostGetDevicePointer"))?;
        // SAFETY: `len` bytes of fresh host memory that no device work references yet.
        unsafe { std::ptr::write_bytes(buf.host, 0, len) };
        Ok(buf)
    }

    fn enqueue_launch(
        &self,
        f: dsys::CUfunction,
        grid: u32,
        block: u32,
        shared: u32,
        slots: &[ArgSlot],
    ) -> Result<()> {
        let mut ptrs = [0u64; MAX_ARGS];
        let mut words = [0u32; MAX_ARGS];
        let mut params = [std::ptr::null_mut::<c_void>(); MAX_ARGS];
        for (i, s) in slots.iter().enumerate() {
            match *s {
                ArgSlot::Ptr(p) => ptrs[i] = p,
                ArgSlot::U32(v) => words[i] = v,
            }
        }
        for (i, s) in slots.iter().enumerate() {
            params[i] = match s {
                ArgSlot::Ptr(_) => (&mut ptrs[i]) as *mut u64 as *mut c_void,
                ArgSlot::U32(_) => (&mut words[i]) as *mut u32 as *mut c_void,
            };
        }
        self.bind()?;
        if shared > DEFAULT_SHARED_LIMIT {
            // SAFETY: `f` is a live function of a loaded module; this only raises its limit.
            unsafe {
                dr::function::set_function_attribute(
                    f,
                    dsys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    shared as i32,
                )
            }
            .map_err(drv("cuFuncSetAttribute"))?;
        }
        // SAFETY: `f` is a live function of a loaded module; `params[..n]` points at one value
        // per kernel parameter, in order (device addresses for pointers, u32 for scalars; the
        // launch sites list them next to each kernel's signature), all alive until
        // cuLaunchKernel returns (it copies them); every address belongs to a live buffer of
        // this executor, freed only after the stream drains.
        unsafe {
            dr::launch_kernel(
                f,
                (grid, 1, 1),
                (block, 1, 1),
                shared,
                self.stream.cu_stream(),
                &mut params[..slots.len()],
            )
        }
        .map_err(drv("cuLaunchKernel"))
    }
}

fn load_module(ctx: &Arc<CudaContext>, ptx: &str, info: &DeviceInfo) -> Result<Module> {
    let image = CString::new(ptx).map_err(|_| Error::Compile {
        compiler: "NVRTC",
        target: info.arch(),
        log: "PTX contains a NUL byte".into(),
    })?;
    ctx.bind_to_thread().map_err(drv("cuCtxSetCurrent"))?;
    // SAFETY: the context is current and `image` is a NUL-terminated PTX text that outlives
    // the call (the driver copies and JIT-compiles it).
    let raw = unsafe { dr::module::load_data(image.as_ptr() as *const c_void) }.map_err(|e| {
        let hint = if e.0 == dsys::cudaError_enum::CUDA_ERROR_UNSUPPORTED_PTX_VERSION {
            "; the driver is older than the NVRTC that produced the PTX: update the driver or \
             use a matching NVRTC"
        } else {
            ""
        };
        Error::Driver {
            call: "cuModuleLoadData",
            detail: format!("{e:?} for {} ({}){hint}", info.name, info.arch()),
        }
    })?;
    Ok(Module {
        raw,
        ctx: ctx.clone(),
    })
}

fn get_function(module: &Module, name: &str) -> Result<dsys::CUfunction> {
    let c = CString::new(name).map_err(|_| invalid("kernel lookup", name))?;
    // SAFETY: `module.raw` is a loaded module; the handle stays valid while it is loaded.
    unsafe { dr::module::get_function(module.raw, c) }.map_err(|e| Error::Driver {
        call: "cuModuleGetFunction",
        detail: format!("{name}: {e:?}"),
    })
}

fn create_blas(stream: &Arc<CudaStream>, info: &DeviceInfo) -> Result<Blas> {
    let ctx = stream.context();
    ctx.bind_to_thread().map_err(drv("cuCtxSetCurrent"))?;
    // cuBLAS's recommendation: 32 MiB on Hopper and later, 4 MiB elsewhere.
    let ws_len: usize = if info.compute_capability.0 >= 9 {
        32 << 20
    } else {
        4 << 20
    };
    // SAFETY: the context is current; the allocation is owned by the workspace buffer.
    let ws_ptr = unsafe { dr::malloc_sync(ws_len) }.map_err(drv("cuMemAlloc"))?;
    let workspace = CudaBuffer {
        ptr: ws_ptr,
        host: std::ptr::null_mut(),
        len: ws_len,
        stream: stream.clone(),
    };
    let handle = blas::create_handle().map_err(blas_err("cublasCreate"))?;
    let b = Blas {
        handle,
        _workspace: workspace,
    };
    // SAFETY: `b.handle` is live; the stream belongs to the current context and outlives the
    // handle (the executor drops the handle first).
    unsafe { blas::set_stream(b.handle, stream.cu_stream() as bsys::cudaStream_t) }
        .map_err(blas_err("cublasSetStream"))?;
    // SAFETY: the workspace is `ws_len` bytes of device memory owned by `b`, freed only after
    // the handle is destroyed.
    unsafe { bsys::cublasSetWorkspace_v2(b.handle, ws_ptr as *mut c_void, ws_len) }
        .result()
        .map_err(blas_err("cublasSetWorkspace"))?;
    // SAFETY: `b.handle` is live. DISALLOW_REDUCED_PRECISION_REDUCTION (= DEFAULT_MATH | 16):
    // no TF32, split-K reductions in the compute type (module documentation).
    unsafe {
        bsys::cublasSetMathMode(
            b.handle,
            bsys::cublasMath_t::CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION,
        )
    }
    .result()
    .map_err(blas_err("cublasSetMathMode"))?;
    Ok(b)
}

impl Executor for CudaExecutor {
    type Buffer = CudaBuffer;

    fn describe(&self) -> String {
        let origin = |o: Origin| match o {
            Origin::Cache => "cached",
            Origin::Compiled => "compiled",
        };
        format!(
            "CUDA {} ({}, {}; read-backs in {} memory; PTX {}; GEMM {:?})",
            self.info.name,
            self.info.arch(),
            if self.info.integrated {
                "integrated"
            } else {
                "discrete"
            },
            match self.readback {
                ReadbackMemory::Device => "device",
                ReadbackMemory::Mapped => "mapped host",
            },
            origin(self.ptx.program.1),
            self.gemm_mode,
        )
    }

    fn alloc(&self, bytes: usize) -> Result<CudaBuffer> {
        self.alloc_device(bytes)
    }

    fn alloc_readback(&self, bytes: usize) -> Result<CudaBuffer> {
        match self.readback {
            ReadbackMemory::Device => self.alloc_device(bytes),
            ReadbackMemory::Mapped => self.alloc_mapped(bytes),
        }
    }

    fn len(&self, buf: &CudaBuffer) -> usize {
        buf.len
    }

    fn write(&self, buf: &mut CudaBuffer, offset: usize, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.check_owned("write", buf)?;
        check_range("write", buf.len, offset, data.len())?;
        self.bind()?;
        if buf.is_mapped() {
            self.stream
                .synchronize()
                .map_err(drv("cuStreamSynchronize"))?;
            // SAFETY: the range is inside the host allocation (checked above), the stream is
            // idle so no kernel touches it, and `&mut buf` excludes other host accesses.
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), buf.host.add(offset), data.len())
            };
            return Ok(());
        }
        // SAFETY: the destination range is inside the allocation (checked above); from pageable
        // memory the driver stages `data` before returning, and the copy is ordered on the
        // stream with every launch.
        unsafe { dr::memcpy_htod_async(buf.ptr + offset as u64, data, self.stream.cu_stream()) }
            .map_err(drv("cuMemcpyHtoDAsync"))
    }

    fn read(&self, buf: &CudaBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        self.check_owned("read", buf)?;
        check_range("read", buf.len, offset, out.len())?;
        self.bind()?;
        if buf.is_mapped() {
            self.stream
                .synchronize()
                .map_err(drv("cuStreamSynchronize"))?;
            // SAFETY: the range is inside the host allocation (checked above) and the stream is
            // idle, so every kernel write to it has completed and is visible.
            unsafe {
                std::ptr::copy_nonoverlapping(buf.host.add(offset), out.as_mut_ptr(), out.len())
            };
            return Ok(());
        }
        // SAFETY: the source range is inside the allocation (checked above); `out` stays
        // borrowed until the stream is synchronised below.
        unsafe { dr::memcpy_dtoh_async(out, buf.ptr + offset as u64, self.stream.cu_stream()) }
            .map_err(drv("cuMemcpyDtoHAsync"))?;
        self.stream
            .synchronize()
            .map_err(drv("cuStreamSynchronize"))
    }

    fn launch(&self, launch: &Launch<'_, CudaBuffer>) -> Result<()> {
        if launch.grid == 0 {
            return Ok(());
        }
        let op = || format!("launch {}", launch.kernel.name());
        if launch.block == 0 || launch.block > 1024 {
            return Err(invalid(op(), format!("block of {} threads", launch.block)));
        }
        let f = *self
            .functions
            .get(&launch.kernel)
            .ok_or_else(|| invalid(op(), "kernel not in the loaded module"))?;
        let mut slots = [ArgSlot::U32(0); MAX_ARGS];
        let n = pack_args(launch.args, |b| self.owns(b).then_some(b.ptr), &mut slots)?;
        self.enqueue_launch(
            f,
            launch.grid,
            launch.block,
            launch.shared_bytes,
            &slots[..n],
        )
    }

    fn gemm(&self, g: &GemmDesc<'_, CudaBuffer>) -> Result<bool> {
        let Some(state) = &self.gemm else {
            return Ok(false);
        };
        if self.gemm_mode == GemmMode::CublasF32 && g.w_dtype != Dtype::F32 {
            return Ok(false);
        }
        for b in [g.x, g.w, g.out] {
            self.check_owned("gemm", b)?;
        }
        let ext = |b: &CudaBuffer| Extent {
            addr: b.ptr,
            len: b.len,
        };
        let (xe, we, oe) = (ext(g.x), ext(g.w), ext(g.out));
        let Some(plan) = gemm_plan(&GemmDesc {
            x: &xe,
            x_offset: g.x_offset,
            w: &we,
            w_dtype: g.w_dtype,
            out: &oe,
            out_offset: g.out_offset,
            rows: g.rows,
            n: g.n,
            k: g.k,
        })?
        else {
            return Ok(true);
        };
        let x_ptr = g.x.ptr + plan.x_byte_offset as u64;
        let out_ptr = g.out.ptr + plan.out_byte_offset as u64;
        self.bind()?;
        if g.k == 0 {
            // An empty sum: zeros (done here rather than trusting BLAS's k = 0 convention).
            // SAFETY: the output range was validated by `gemm_plan`.
            unsafe { dr::memset_d8_async(out_ptr, 0, g.rows * g.n * 4, self.stream.cu_stream()) }
                .map_err(drv("cuMemsetD8Async"))?;
            return Ok(true);
        }
        let mut st = state.lock().map_err(|_| Error::Driver {
            call: "gemm state",
            detail: "poisoned lock".into(),
        })?;
        let (one, zero) = (1.0f32, 0.0f32);
        use bsys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        match plan.convert {
            None => {
                // SAFETY: every operand range was validated against its live buffer by
                // `gemm_plan`, dimensions fit i32, the output does not overlap the inputs,
                // α/β are host scalars (the default pointer mode), and the handle runs on the
                // executor's stream under the lock.
                unsafe {
                    blas::sgemm(
                        st.blas.handle,
                        CUBLAS_OP_T,
                        CUBLAS_OP_N,
                        plan.m,
                        plan.n,
                        plan.k,
                        &one,
                        g.w.ptr as *const f32,
                        plan.lda,
                        x_ptr as *const f32,
                        plan.ldb,
                        &zero,
                        out_ptr as *mut f32,
                        plan.ldc,
                    )
                }
                .map_err(blas_err("cublasSgemm"))?;
            }
            Some((count, scratch_bytes)) => {
                if st.scratch.as_ref().is_none_or(|s| s.len < scratch_bytes) {
                    // Dropping the old scratch drains the stream first (no use-after-free).
                    st.scratch = None;
                    st.scratch = Some(self.alloc_device(scratch_bytes)?);
                }
                let scratch = st
                    .scratch
                    .as_ref()
                    .map(|s| s.ptr)
                    .ok_or_else(|| invalid("gemm", "scratch missing"))?;
                let (f, ty) = match g.w_dtype {
                    Dtype::F16 => (self.to_f16, bsys::cudaDataType::CUDA_R_16F),
                    _ => (self.to_bf16, bsys::cudaDataType::CUDA_R_16BF),
                };
                let grid = count.div_ceil(CONVERT_BLOCK);
                self.enqueue_launch(
                    f,
                    grid,
                    CONVERT_BLOCK,
                    0,
                    &[
                        ArgSlot::Ptr(x_ptr),
                        ArgSlot::Ptr(scratch),
                        ArgSlot::U32(count),
                    ],
                )?;
                // SAFETY: as for sgemm; B is the scratch holding `rows · k` converted
                // activations (written by the launch above, ordered on the same stream), A the
                // weights in `ty`, C f32; the scratch is not reallocated while the lock is held.
                unsafe {
                    blas::gemm_ex(
                        st.blas.handle,
                        CUBLAS_OP_T,
                        CUBLAS_OP_N,
                        plan.m,
                        plan.n,
                        plan.k,
                        (&one) as *const f32 as *const c_void,
                        g.w.ptr as *const c_void,
                        ty,
                        plan.lda,
                        scratch as *const c_void,
                        ty,
                        plan.ldb,
                        (&zero) as *const f32 as *const c_void,
                        out_ptr as *mut c_void,
                        bsys::cudaDataType::CUDA_R_32F,
                        plan.ldc,
                        bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                        bsys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                    )
                }
                .map_err(blas_err("cublasGemmEx"))?;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column-major GEMM as cuBLAS defines it: `C = op(A) · op(B)` with `op(A)` `m × k`,
    /// `op(B)` `k × n`, `C[i + j·ldc]`.
    #[allow(clippy::too_many_arguments)]
    fn colmajor_gemm(
        ta: bool,
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        a: &[f64],
        lda: usize,
        b: &[f64],
        ldb: usize,
        c: &mut [f64],
        ldc: usize,
    ) {
        for j in 0..n {
            for i in 0..m {
                let mut s = 0.0;
                for l in 0..k {
                    let av = if ta { a[l + i * lda] } else { a[i + l * lda] };
                    let bv = if tb { b[j + l * ldb] } else { b[l + j * ldb] };
                    s += av * bv;
                }
                c[i + j * ldc] = s;
            }
        }
    }

    fn ext(addr: u64, len: usize) -> Extent {
        Extent { addr, len }
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_of(
        x: Extent,
        x_offset: usize,
        w: Extent,
        w_dtype: Dtype,
        out: Extent,
        out_offset: usize,
        rows: usize,
        n: usize,
        k: usize,
    ) -> Result<Option<GemmPlan>> {
        gemm_plan(&GemmDesc {
            x: &x,
            x_offset,
            w: &w,
            w_dtype,
            out: &out,
            out_offset,
            rows,
            n,
            k,
        })
    }

    #[test]
    fn plan_maps_row_major_onto_column_major() {
        for (rows, n, k) in [(1, 1, 1), (3, 5, 7), (4, 2, 9), (7, 3, 1)] {
            let x_off = 2;
            let out_off = 3;
            // Distinct small integers: the f64 sums are exact.
            let x: Vec<f64> = (0..x_off + rows * k)
                .map(|i| (i % 11) as f64 - 5.0)
                .collect();
            let w: Vec<f64> = (0..n * k).map(|i| (i % 7) as f64 - 3.0).collect();
            let plan = plan_of(
                ext(0x1000, x.len() * 4),
                x_off,
                ext(0x100000, w.len() * 4),
                Dtype::F32,
                ext(0x200000, (out_off + rows * n) * 4),
                out_off,
                rows,
                n,
                k,
            )
            .unwrap()
            .unwrap();
            assert_eq!((plan.m, plan.n, plan.k), (n as i32, rows as i32, k as i32));
            assert_eq!((plan.x_byte_offset, plan.out_byte_offset), (8, 12));
            let mut out = vec![f64::NAN; out_off + rows * n];
            colmajor_gemm(
                true,
                false,
                plan.m as usize,
                plan.n as usize,
                plan.k as usize,
                &w,
                plan.lda as usize,
                &x[x_off..],
                plan.ldb as usize,
                &mut out[out_off..],
                plan.ldc as usize,
            );
            for r in 0..rows {
                for c in 0..n {
                    let want: f64 = (0..k).map(|l| x[x_off + r * k + l] * w[c * k + l]).sum();
                    assert_eq!(out[out_off + r * n + c], want, "({rows},{n},{k}) [{r},{c}]");
                }
            }
            assert!(
                out[..out_off].iter().all(|v| v.is_nan()),
                "prefix untouched"
            );
        }
    }

    #[test]
    fn plan_validates_ranges_overlap_and_sizes() {
        let ok = |xl, wl, ol| {
            plan_of(
                ext(0, xl),
                1,
                ext(1 << 20, wl),
                Dtype::Bf16,
                ext(2 << 20, ol),
                2,
                3,
                4,
                5,
            )
        };
        // x needs (1 + 15)·4, w 20·2, out (2 + 12)·4 bytes.
        let plan = ok(64, 40, 56).unwrap().unwrap();
        assert_eq!(plan.convert, Some((15, 30)));
        assert!(matches!(ok(63, 40, 56), Err(Error::Invalid { .. })));
        assert!(matches!(ok(64, 39, 56), Err(Error::Invalid { .. })));
        assert!(matches!(ok(64, 40, 55), Err(Error::Invalid { .. })));
        // Nothing to do, but ranges are still checked.
        let empty = plan_of(ext(0, 4), 0, ext(8, 12), Dtype::F32, ext(32, 4), 0, 0, 3, 1);
        assert_eq!(empty.unwrap(), None);
        // Output overlapping x (same buffer) or w.
        let same = ext(0, 1024);
        // x = bytes 0..32 (2 × 4 f32); out at element 7 = bytes 28..44 overlaps, at 8 not.
        let r = plan_of(same, 0, ext(4096, 64), Dtype::F32, same, 7, 2, 2, 4);
        assert!(matches!(r, Err(Error::Invalid { .. })));
        let r = plan_of(same, 0, ext(4096, 64), Dtype::F32, same, 8, 2, 2, 4);
        assert!(
            r.unwrap().is_some(),
            "disjoint ranges of one buffer are fine"
        );
        // w = bytes 0..32 of `same`; out at element 4 = bytes 16..32.
        let r = plan_of(ext(8192, 64), 0, same, Dtype::F32, same, 4, 2, 2, 4);
        assert!(matches!(r, Err(Error::Invalid { .. })));
        // Dimensions beyond i32 and size overflow.
        let big = plan_of(
            ext(0, usize::MAX),
            0,
            ext(0, usize::MAX),
            Dtype::F32,
            ext(0, usize::MAX),
            0,
            1 << 31,
            1,
            1,
        );
        assert!(matches!(big, Err(Error::Invalid { .. })));
        let overflow = plan_of(
            ext(0, usize::MAX),
            usize::MAX,
            ext(0, 4),
            Dtype::F32,
            ext(0, 4),
            0,
            1,
            1,
            1,
        );
        assert!(matches!(overflow, Err(Error::Invalid { .. })));
    }

    #[test]
    fn args_pack_in_order_and_reject_foreign_buffers() {
        struct B(u64, bool);
        let (a, b) = (B(0xdead_0000, true), B(0xbeef_0000, true));
        let args = [Arg::Buf(&a), Arg::U32(7), Arg::Buf(&b), Arg::U32(u32::MAX)];
        let mut slots = [ArgSlot::U32(0); MAX_ARGS];
        let n = pack_args(&args, |x: &B| x.1.then_some(x.0), &mut slots).unwrap();
        assert_eq!(
            &slots[..n],
            &[
                ArgSlot::Ptr(0xdead_0000),
                ArgSlot::U32(7),
                ArgSlot::Ptr(0xbeef_0000),
                ArgSlot::U32(u32::MAX)
            ]
        );
        let foreign = B(1, false);
        let r = pack_args(
            &[Arg::Buf(&foreign)],
            |x: &B| x.1.then_some(x.0),
            &mut slots,
        );
        assert!(matches!(r, Err(Error::Invalid { .. })));
        let many: Vec<Arg<'_, B>> = (0..MAX_ARGS as u32 + 1).map(Arg::U32).collect();
        let r = pack_args(&many, |x: &B| Some(x.0), &mut slots);
        assert!(matches!(r, Err(Error::Invalid { .. })));
    }

    #[test]
    fn ranges() {
        assert!(check_range("read", 10, 0, 10).is_ok());
        assert!(check_range("read", 10, 10, 0).is_ok());
        assert!(check_range("read", 10, 5, 6).is_err());
        assert!(check_range("read", 10, usize::MAX, 2).is_err());
    }

    #[test]
    fn readback_default_follows_integration() {
        let mut info = DeviceInfo {
            index: 0,
            name: "Orin".into(),
            compute_capability: (8, 7),
            integrated: true,
            count: 1,
            libraries: Default::default(),
        };
        assert_eq!(ReadbackMemory::for_device(&info), ReadbackMemory::Mapped);
        info.integrated = false;
        assert_eq!(ReadbackMemory::for_device(&info), ReadbackMemory::Device);
    }
}
