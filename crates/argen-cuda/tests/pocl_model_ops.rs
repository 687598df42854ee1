//! Every model-operation kernel (`GpuCompute`, the `argen_model::Compute` trait) run on an
//! OpenCL device (PoCL in CI) through the launch layer that drives CUDA, against argen-cpu's
//! implementation of the same trait on the same random inputs: odd sizes, f32 / f16 / bf16
//! weights, grouped-query heads, condition rows, tree-shaped key lists.
//!
//! Metric: per output tensor, `max_i |gpu_i − cpu_i| / max(max_i |cpu_i|, 1e-30)` (the
//! largest absolute error relative to the tensor's largest magnitude), bound `1e-5`. The
//! elementwise and normalisation outputs (RMSNorm, SiLU·mul, GELU, GroupNorm) must also meet
//! the per-element bound `|gpu_i − cpu_i| ≤ 1e-6 · max(|cpu_i|, 1)` (relative above 1,
//! absolute below). Gathers, copies, upsampling, transposes and the KV store/move are checked
//! bit for bit. The test bodies are `tests/common/ops.rs`, shared with `gpu_parity.rs`;
//! `linear_and_vq_ops_with_cublas_rounding` checks the GEMM-based ones with cuBLAS's 16-bit
//! activation rounding emulated (`RoundingGemm`) at the bounds `gpu_parity.rs` uses for it.
//!
//! Skips with a printed message when no OpenCL platform exists; `ARGEN_REQUIRE_OPENCL=1` turns
//! that into a failure (CI sets it).

mod common;

use common::opencl_device;

use argen_cuda::compute::GpuCompute;
use argen_cuda::kernels::Kernel;
use argen_cuda::launch::{Executor, GemmDesc, Launch};
use argen_cuda::opencl::OpenClExecutor;
use argen_model::compute::Compute;
use argen_model::safetensors::Dtype;
use common::model::{launch_portable_gemm, Bounds, RoundingGemm};
use common::ops::{self, buf, get, weight, Rng};

/// Runs a shared case on `GpuCompute<&OpenClExecutor>` (at [`Bounds::STRICT`] where it
/// takes bounds).
macro_rules! strict {
    ($name:ident) => {
        #[test]
        fn $name() {
            let Some(dev) = opencl_device() else { return };
            let gc = GpuCompute::new(dev);
            ops::$name(&gc);
            assert!(gc.error().is_none(), "{:?}", gc.error());
        }
    };
    ($name:ident, bounds) => {
        #[test]
        fn $name() {
            let Some(dev) = opencl_device() else { return };
            let gc = GpuCompute::new(dev);
            ops::$name(&gc, &Bounds::STRICT);
            assert!(gc.error().is_none(), "{:?}", gc.error());
        }
    };
}

strict!(gather_embed_and_gather_rows_are_exact);
strict!(linear_matches_cpu_for_all_dtypes_and_odd_shapes, bounds);
strict!(linear_rows_do_not_depend_on_the_batch, bounds);
strict!(rms_norm_and_elementwise_match_cpu);
strict!(rope_store_and_tree_attention_match_cpu);
strict!(kv_move_is_a_memmove);
strict!(vq_decoder_ops_match_cpu, bounds);

#[test]
fn a_bad_argument_is_a_sticky_device_error() {
    let Some(dev) = opencl_device() else { return };
    ops::a_bad_argument_is_a_sticky_device_error(dev);
}

/// The GEMM-based operations with cuBLAS's activation rounding emulated ([`RoundingGemm`]),
/// at the bounds `gpu_parity.rs` applies to `GemmMode::Cublas`.
#[test]
fn linear_and_vq_ops_with_cublas_rounding() {
    let Some(dev) = opencl_device() else { return };
    let gc = GpuCompute::new(RoundingGemm(dev));
    ops::linear_matches_cpu_for_all_dtypes_and_odd_shapes(&gc, &Bounds::CUBLAS);
    ops::vq_decoder_ops_match_cpu(&gc, &Bounds::CUBLAS);
    assert!(gc.error().is_none(), "{:?}", gc.error());
}

/// An executor whose "vendor GEMM" is the portable kernel launched without bias and scale:
/// exercises the `Executor::gemm` protocol (descriptor fields, the bias/scale epilogue).
struct HookedGemm {
    dev: &'static OpenClExecutor,
    calls: std::sync::atomic::AtomicUsize,
}

impl Executor for HookedGemm {
    type Buffer = <OpenClExecutor as Executor>::Buffer;
    fn describe(&self) -> String {
        format!("hooked {}", self.dev.describe())
    }
    fn alloc(&self, bytes: usize) -> argen_cuda::Result<Self::Buffer> {
        self.dev.alloc(bytes)
    }
    fn len(&self, buf: &Self::Buffer) -> usize {
        self.dev.len(buf)
    }
    fn write(&self, buf: &mut Self::Buffer, offset: usize, data: &[u8]) -> argen_cuda::Result<()> {
        self.dev.write(buf, offset, data)
    }
    fn read(&self, buf: &Self::Buffer, offset: usize, out: &mut [u8]) -> argen_cuda::Result<()> {
        self.dev.read(buf, offset, out)
    }
    fn launch(&self, launch: &Launch<'_, Self::Buffer>) -> argen_cuda::Result<()> {
        assert_ne!(
            launch.kernel,
            Kernel::Gemm,
            "a dense GEMM bypassed the vendor hook"
        );
        self.dev.launch(launch)
    }
    fn gemm(&self, g: &GemmDesc<'_, Self::Buffer>) -> argen_cuda::Result<bool> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let code = match g.w_dtype {
            argen_core::Dtype::F32 => 0,
            argen_core::Dtype::F16 => 1,
            argen_core::Dtype::Bf16 => 2,
        };
        launch_portable_gemm(self.dev, g.x, g.x_offset, code, g)?;
        Ok(true)
    }
}

#[test]
fn vendor_gemm_hook_gets_dense_gemms_and_the_epilogue_matches() {
    let Some(dev) = opencl_device() else { return };
    let hooked = GpuCompute::new(HookedGemm {
        dev,
        calls: std::sync::atomic::AtomicUsize::new(0),
    });
    let plain = GpuCompute::new(dev);
    let mut rng = Rng(18);
    let (rows, n, k) = (5usize, 70usize, 33usize);
    let w = rng.vec(n * k, 1.0);
    let x = rng.vec(rows * k, 1.0);
    let b = rng.vec(n, 1.0);
    // linear with a bf16 bias: kernel bias-in-GEMM and hook + epilogue agree bit for bit.
    let (wh, wp) = (
        weight(&hooked, &w, &[n, k], Dtype::BF16),
        weight(&plain, &w, &[n, k], Dtype::BF16),
    );
    let (bh, bp) = (
        weight(&hooked, &b, &[n], Dtype::BF16),
        weight(&plain, &b, &[n], Dtype::BF16),
    );
    let (xh, xp) = (buf(&hooked, &x), buf(&plain, &x));
    let mut oh = hooked.buf(rows * n).unwrap();
    let mut op = plain.buf(rows * n).unwrap();
    hooked.linear(&xh, rows, &wh, Some(&bh), &mut oh);
    plain.linear(&xp, rows, &wp, Some(&bp), &mut op);
    assert_eq!(
        get(&hooked, &oh, rows * n),
        get(&plain, &op, rows * n),
        "linear"
    );
    // matmul_nt with a scale.
    let (bh2, bp2) = (buf(&hooked, &w), buf(&plain, &w));
    hooked.matmul_nt(&xh, rows, &bh2, n, k, 0.125, &mut oh);
    plain.matmul_nt(&xp, rows, &bp2, n, k, 0.125, &mut op);
    assert_eq!(
        get(&hooked, &oh, rows * n),
        get(&plain, &op, rows * n),
        "matmul_nt"
    );
    // A 1x1 conv is a dense GEMM: it goes to the hook too (a k x k conv, implicit im2col,
    // always runs argen_gemm).
    let img = rng.vec(4 * 5 * k, 1.0);
    let (ih, ip) = (buf(&hooked, &img), buf(&plain, &img));
    let (wc_h, wc_p) = (
        weight(&hooked, &w, &[n, k, 1, 1], Dtype::F32),
        weight(&plain, &w, &[n, k, 1, 1], Dtype::F32),
    );
    let mut ch = hooked.buf(20 * n).unwrap();
    let mut cp = plain.buf(20 * n).unwrap();
    hooked.conv2d(&ih, 4, 5, k, &wc_h, Some(&bh), n, 1, &mut ch);
    plain.conv2d(&ip, 4, 5, k, &wc_p, Some(&bp), n, 1, &mut cp);
    assert_eq!(
        get(&hooked, &ch, 20 * n),
        get(&plain, &cp, 20 * n),
        "conv 1x1"
    );
    assert_eq!(
        hooked
            .executor()
            .calls
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert!(hooked.error().is_none());
}
