//! The kernel sources: one program, written once for NVRTC (CUDA C++) and OpenCL C.
//!
//! `kernels/portable.h` maps qualifiers, barriers, atomics and bit casts onto each dialect;
//! `rng.h` ports `argen_core::{detmath, chacha, rng}` line for line; `coop.h` holds the
//! work-group cooperative reductions; `process.krn`, `sample.krn` and `verify.krn` are the
//! sampling kernels, `model.krn` the model operations behind `GpuCompute`.
//! [`program_source`] concatenates them (no `#include`, so neither compiler needs a file
//! system).
//!
//! Compile flags that are part of the determinism contract (design §5): NVRTC gets
//! `--fmad=false` (no contraction) and IEEE division and square root; OpenCL C gets
//! `#pragma OPENCL FP_CONTRACT OFF` from the header, `-cl-fp32-correctly-rounded-divide-sqrt`
//! and no fast-math options.

/// The portability header.
pub const PORTABLE_H: &str = include_str!("../kernels/portable.h");
/// Deterministic exp, ChaCha20 and keyed streams.
pub const RNG_H: &str = include_str!("../kernels/rng.h");
/// Cooperative reductions.
pub const COOP_H: &str = include_str!("../kernels/coop.h");
/// Logit processing.
pub const PROCESS: &str = include_str!("../kernels/process.krn");
/// Keyed sampling and RNG test kernels.
pub const SAMPLE: &str = include_str!("../kernels/sample.krn");
/// Draft-tree verification.
pub const VERIFY: &str = include_str!("../kernels/verify.krn");
/// Model operations (the `argen_model::Compute` trait: GEMM, norms, RoPE, attention, VQ ops).
pub const MODEL: &str = include_str!("../kernels/model.krn");

/// Work-group width every kernel is written for (`ARGEN_LANES`, the lane count of
/// `argen_core::reduce`).
pub const LANES: u32 = 256;

/// The kernels of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Logit rows → distribution rows.
    Process,
    /// Keyed draws.
    Sample,
    /// Draft-tree verification.
    VerifyTree,
    /// The k most likely tokens of a row.
    TopK,
    /// First words of keyed streams (known-answer tests).
    RngWords,
    /// `below(n)` draws (known-answer tests).
    RngBelow,
    /// Elementwise deterministic exp (known-answer tests).
    Exp,
    /// Synthetic (uniform or one-hot) distribution rows.
    FillDist,
    /// Row gather from an f32/f16/bf16 table (embedding lookup, `gather_rows`).
    Gather,
    /// Tiled GEMM `x · wᵀ (+ bias) · scale`, dense or implicit-im2col convolution.
    Gemm,
    /// Bias and scale epilogue after a vendor GEMM.
    BiasScale,
    /// RMSNorm of rows.
    RmsNorm,
    /// Elementwise add, SiLU·mul, GELU-tanh.
    Eltwise,
    /// 2D RoPE of q and k, then the K/V store.
    RopeStore,
    /// Attention over the KV cache with per-row key lists.
    Attention,
    /// K/V cache memmove within a slot.
    KvMove,
    /// GroupNorm statistics (f64).
    GroupNormStats,
    /// GroupNorm normalisation, affine and optional SiLU.
    GroupNormApply,
    /// Nearest-neighbour ×2 upsampling (HWC).
    Upsample2x,
    /// Matrix transpose.
    Transpose,
    /// Row-wise softmax, in place.
    SoftmaxRows,
}

impl Kernel {
    /// Every kernel.
    pub const ALL: [Kernel; 21] = [
        Kernel::Process,
        Kernel::Sample,
        Kernel::VerifyTree,
        Kernel::TopK,
        Kernel::RngWords,
        Kernel::RngBelow,
        Kernel::Exp,
        Kernel::FillDist,
        Kernel::Gather,
        Kernel::Gemm,
        Kernel::BiasScale,
        Kernel::RmsNorm,
        Kernel::Eltwise,
        Kernel::RopeStore,
        Kernel::Attention,
        Kernel::KvMove,
        Kernel::GroupNormStats,
        Kernel::GroupNormApply,
        Kernel::Upsample2x,
        Kernel::Transpose,
        Kernel::SoftmaxRows,
    ];

    /// The kernel's symbol in the program.
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Process => "argen_process",
            Kernel::Sample => "argen_sample",
            Kernel::VerifyTree => "argen_verify_tree",
            Kernel::TopK => "argen_top_k",
            Kernel::RngWords => "argen_rng_words",
            Kernel::RngBelow => "argen_rng_below",
            Kernel::Exp => "argen_exp",
            Kernel::FillDist => "argen_fill_dist",
            Kernel::Gather => "argen_gather",
            Kernel::Gemm => "argen_gemm",
            Kernel::BiasScale => "argen_bias_scale",
            Kernel::RmsNorm => "argen_rms_norm",
            Kernel::Eltwise => "argen_eltwise",
            Kernel::RopeStore => "argen_rope_store",
            Kernel::Attention => "argen_attention",
            Kernel::KvMove => "argen_kv_move",
            Kernel::GroupNormStats => "argen_group_norm_stats",
            Kernel::GroupNormApply => "argen_group_norm_apply",
            Kernel::Upsample2x => "argen_upsample2x",
            Kernel::Transpose => "argen_transpose",
            Kernel::SoftmaxRows => "argen_softmax_rows",
        }
    }
}

/// The whole program's source, in dependency order.
pub fn program_source() -> String {
    let mut s = String::with_capacity(
        PORTABLE_H.len()
            + RNG_H.len()
            + COOP_H.len()
            + PROCESS.len()
            + SAMPLE.len()
            + VERIFY.len()
            + MODEL.len(),
    );
    for part in [PORTABLE_H, RNG_H, COOP_H, PROCESS, SAMPLE, VERIFY, MODEL] {
        s.push_str(part);
        s.push('\n');
    }
    s
}

/// NVRTC options of the determinism contract, for `arch` (e.g. `sm_87`).
pub fn nvrtc_options(arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        "--fmad=false".into(),
        "--prec-div=true".into(),
        "--prec-sqrt=true".into(),
        "--ftz=false".into(),
        "--std=c++17".into(),
    ]
}

/// The NVRTC log with the one message that is about the toolkit rather than the source
/// removed: NVRTC 12.9 announces that architectures below `sm_75` (Xavier's `sm_72`) are
/// deprecated, and has no option to silence only that. Every other line counts as a warning.
pub fn significant_nvrtc_log(log: &str) -> String {
    log.lines()
        .filter(|l| !(l.contains("Architectures prior to") && l.contains("are deprecated")))
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// OpenCL C build options (no fast-math flags; contraction is off in the header). OpenCL
/// allows single-precision `/` and `sqrt` errors of 2.5 and 3 ulp by default; the kernels divide
/// in `f32` (SiLU, GELU, softmax, RMSNorm), so IEEE rounding is requested explicitly.
pub const OPENCL_OPTIONS: &str = "-cl-std=CL1.2 -cl-fp32-correctly-rounded-divide-sqrt";
