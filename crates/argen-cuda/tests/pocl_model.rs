//! Whole-model parity on an OpenCL device (PoCL in CI): `argen_model`'s GPT, drafter and VQ
//! decoder built on [`GpuCompute`] against the same models on argen-cpu, on the tiny fixtures
//! of `fixtures/model` (c2i and t2i, f32 / f16 / bf16 checkpoints): prefill and chain logits and
//! hidden states, KV-cache incremental decoding, tree attention with commit compaction,
//! drafter logits and hidden states, VQ-decoded pixels, and an end-to-end vanilla decode
//! through `ModelHost` (teacher-forced logits of every step). The PyTorch goldens are checked
//! too, at argen-cpu's own bound (1e-4). The test bodies are `tests/common/model.rs`, shared
//! with `gpu_parity.rs`.
//!
//! Metric: per output tensor, `max_i |gpu_i − cpu_i| / max(max_i |cpu_i|, 1e-30)`; bound
//! `1e-5` ([`Bounds::STRICT`]). On the device the KV-cache properties are exact: incremental
//! decoding equals the full forward bit for bit, a tree equals its branches run separately bit
//! for bit.
//!
//! The `*_cublas_rounding` tests run the same cases through [`RoundingGemm`], which rounds
//! every 16-bit-weight GEMM's activations as `GemmMode::Cublas` does, at the bounds
//! [`Bounds::CUBLAS`] that `gpu_parity.rs` applies to cuBLAS: the bound's derivation is
//! checked here, without a GPU (the summation order is the portable kernel's).
//!
//! Skips with a printed message when no OpenCL platform exists; `ARGEN_REQUIRE_OPENCL=1` turns
//! that into a failure (CI sets it).

mod common;

use common::opencl_device;

use argen_cuda::compute::GpuCompute;
use common::model::{self, Bounds, RoundingGemm};

/// Runs a shared case on `GpuCompute<&OpenClExecutor>` at [`Bounds::STRICT`].
macro_rules! strict {
    ($name:ident) => {
        #[test]
        fn $name() {
            let Some(dev) = opencl_device() else { return };
            let gc = GpuCompute::new(dev);
            model::$name(&gc, &Bounds::STRICT);
            assert!(gc.error().is_none(), "{:?}", gc.error());
        }
    };
}

strict!(gpt_logits_and_hidden);
strict!(incremental_decoding_equals_the_full_forward);
strict!(tree_attention_and_commit);
strict!(drafter_matches_cpu_and_pytorch);
strict!(vq_decoder_matches_cpu_and_pytorch);
strict!(vanilla_decode_teacher_forced);

/// Runs a shared case with cuBLAS's activation rounding emulated, at [`Bounds::CUBLAS`].
macro_rules! rounding {
    ($test:ident, $name:ident) => {
        #[test]
        fn $test() {
            let Some(dev) = opencl_device() else { return };
            let gc = GpuCompute::new(RoundingGemm(dev));
            model::$name(&gc, &Bounds::CUBLAS);
            assert!(gc.error().is_none(), "{:?}", gc.error());
        }
    };
}

rounding!(gpt_logits_and_hidden_cublas_rounding, gpt_logits_and_hidden);
rounding!(
    vq_decoder_matches_cpu_and_pytorch_cublas_rounding,
    vq_decoder_matches_cpu_and_pytorch
);
rounding!(
    vanilla_decode_teacher_forced_cublas_rounding,
    vanilla_decode_teacher_forced
);
