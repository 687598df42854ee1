//! The CUDA executor on a real GPU: every kernel through [`GpuBackend`] over [`CudaExecutor`],
//! bit for bit against the `argen-core` reference (the same cases as `pocl_parity.rs`, from
//! `tests/common`), once with read-backs in device memory and once in mapped host memory (the
//! Jetson path, which works on any GPU); the PTX disk cache; and `gemm` (cuBLAS) against a CPU
//! reference.
//!
//! Without a usable GPU (no driver, no device — this machine and CI) every test prints
//! `SKIPPED gpu_parity::<test>: <reason>` and passes; `ARGEN_REQUIRE_GPU=1` turns that into a
//! failure. Run on a GPU machine with `cargo test --release -p argen-cuda --test gpu_parity`.
//!
//! The model runtime (`GpuCompute<&CudaExecutor>`, i.e. what `argen generate --device cuda`
//! runs) against argen-cpu: every case of `tests/common/model.rs` (GPT logits and hidden
//! states of the f32/f16/bf16 fixtures, incremental decoding, tree attention and commits, the
//! drafter, VQ pixels, and an end-to-end teacher-forced vanilla decode through `ModelHost`)
//! and the GEMM-based cases of `tests/common/ops.rs`, once per [`GemmMode`]:
//! `*_portable` (the portable kernels only: the PoCL bound `1e-5`, rows batch-independent bit
//! for bit), `*_cublas_f32` (`cublasSgemm` for f32 weights with TF32 off — math mode
//! `CUBLAS_DEFAULT_MATH | DISALLOW_REDUCED_PRECISION_REDUCTION`, compute type f32, so only the
//! summation order differs: `1e-5`; 16-bit weights on the portable kernel) and `*_cublas`
//! (16-bit weights multiply activations rounded to the weight format: `8u`, i.e. `3.125e-2`
//! relative for bf16 and `3.9e-3` for f16 — derivation in `tests/common/model.rs`, checked on
//! PoCL by `pocl_model.rs`'s `*_cublas_rounding` tests, which measure up to `4.4u`). Under cuBLAS a row's result may
//! depend on the batch shape, so the bit-exact batch-independence checks become `1e-5` checks.
//! The GEMM-free operations run once (`model_ops_*`). Device-resident decoding
//! (`device_logits_decode_like_the_host`, `no_logits_cross_the_bus`, `tests/common/decode.rs`):
//! `ModelHost` + `DeviceLogitSink` + `GpuBackend` on one executor equals the host path on the
//! same logits, and reads back no logits row.
//!
//! GEMM tolerance: with `x̃` the activations as cuBLAS multiplies them (f32, or rounded to the
//! 16-bit weight format) and `p_l = x̃_l · w_l` (exact in f64), every output must satisfy
//! `|out − Σ p_l| ≤ 4 · k · 2⁻²⁴ · Σ |p_l|`: the classic bound `γ_k ≈ k·u` for any summation
//! order in f32 (u = 2⁻²⁴), with a factor 4 of slack for tensor-core accumulation. The
//! activation rounding itself is checked bit for bit with `k = 1` and unit weights.

mod common;

use argen_core::Dtype;
use argen_cuda::cuda_exec::{CudaBuffer, CudaOptions, GemmMode, ReadbackMemory};
use argen_cuda::launch::{Executor, GemmDesc};
use argen_cuda::ptx_cache::{Origin, PtxCache};
use argen_cuda::{CudaExecutor, GpuCompute};
use common::model::Bounds;
use half::{bf16, f16};
use std::path::PathBuf;
use std::sync::OnceLock;

/// A PTX cache folder private to this test process.
fn cache_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("argen-gpu-parity-{}-{tag}", std::process::id()))
}

fn open(readback: ReadbackMemory, gemm: GemmMode, cache: &str) -> Result<CudaExecutor, String> {
    let info = argen_cuda::probe(0).map_err(|e| e.to_string())?;
    CudaExecutor::open_with(
        &info,
        CudaOptions {
            readback: Some(readback),
            gemm,
            cache: Some(PtxCache::open(Some(cache_dir(cache)))),
        },
    )
    .map_err(|e| format!("{} found but the executor failed: {e}", info.name))
}

/// Returns the executor, or prints the test's skip line and `None`.
fn usable(test: &str, dev: &'static Result<CudaExecutor, String>) -> Option<&'static CudaExecutor> {
    match dev {
        Ok(d) => Some(d),
        Err(reason) => {
            if std::env::var("ARGEN_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("ARGEN_REQUIRE_GPU=1 but gpu_parity::{test} cannot run: {reason}");
            }
            eprintln!("SKIPPED gpu_parity::{test}: {reason}");
            None
        }
    }
}

/// The executor with the device's default read-back memory and cuBLAS for every format.
fn device(test: &str) -> Option<&'static CudaExecutor> {
    static DEV: OnceLock<Result<CudaExecutor, String>> = OnceLock::new();
    usable(
        test,
        DEV.get_or_init(|| open(ReadbackMemory::Device, GemmMode::Cublas, "device")),
    )
}

/// The executor with read-backs in mapped page-locked host memory (Jetson's path). Only called
/// once [`device`] succeeded, so a failure here is a failure of the mapped path.
fn mapped() -> &'static CudaExecutor {
    static DEV: OnceLock<Result<CudaExecutor, String>> = OnceLock::new();
    match DEV.get_or_init(|| open(ReadbackMemory::Mapped, GemmMode::Cublas, "mapped")) {
        Ok(d) => d,
        Err(e) => panic!("device 0 opens, but not with mapped read-backs: {e}"),
    }
}

/// The executor for `mode` (device read-backs), opened once. Only called after [`device`]
/// succeeded, so a failure here is a failure of that mode.
fn mode_executor(mode: GemmMode) -> &'static CudaExecutor {
    static PORTABLE: OnceLock<Result<CudaExecutor, String>> = OnceLock::new();
    static F32: OnceLock<Result<CudaExecutor, String>> = OnceLock::new();
    let (cell, tag) = match mode {
        GemmMode::Portable => (&PORTABLE, "device-portable"),
        GemmMode::CublasF32 => (&F32, "device-cublas-f32"),
        GemmMode::Cublas => {
            static CUBLAS: OnceLock<Result<CudaExecutor, String>> = OnceLock::new();
            (&CUBLAS, "device-cublas")
        }
    };
    match cell.get_or_init(|| open(ReadbackMemory::Device, mode, tag)) {
        Ok(d) => {
            assert_eq!(d.gemm_mode(), mode);
            d
        }
        Err(e) => panic!("device 0 opens, but not with {mode:?}: {e}"),
    }
}

/// The bounds of the model cases for `mode` (module docs).
fn bounds(mode: GemmMode) -> Bounds {
    match mode {
        GemmMode::Portable => Bounds::STRICT,
        GemmMode::CublasF32 => Bounds::CUBLAS_F32,
        GemmMode::Cublas => Bounds::CUBLAS,
    }
}

/// Runs a shared model-runtime case (`common::model` or `common::ops`) on
/// `GpuCompute<&CudaExecutor>` in each GEMM mode, one test per mode.
macro_rules! model_modes {
    ($module:ident :: $case:ident => $portable:ident, $f32:ident, $cublas:ident) => {
        model_modes!(@one $module::$case, $portable, GemmMode::Portable);
        model_modes!(@one $module::$case, $f32, GemmMode::CublasF32);
        model_modes!(@one $module::$case, $cublas, GemmMode::Cublas);
    };
    (@one $module:ident :: $case:ident, $test:ident, $mode:expr) => {
        #[test]
        fn $test() {
            if device(stringify!($test)).is_none() {
                return;
            }
            let gc = GpuCompute::new(mode_executor($mode));
            common::$module::$case(&gc, &bounds($mode));
            assert!(gc.error().is_none(), "{:?}", gc.error());
        }
    };
}

model_modes!(model::gpt_logits_and_hidden =>
    gpt_logits_and_hidden_portable, gpt_logits_and_hidden_cublas_f32, gpt_logits_and_hidden_cublas);
model_modes!(model::incremental_decoding_equals_the_full_forward =>
    incremental_decoding_portable, incremental_decoding_cublas_f32, incremental_decoding_cublas);
model_modes!(model::tree_attention_and_commit =>
    tree_attention_and_commit_portable, tree_attention_and_commit_cublas_f32,
    tree_attention_and_commit_cublas);
model_modes!(model::drafter_matches_cpu_and_pytorch =>
    drafter_portable, drafter_cublas_f32, drafter_cublas);
model_modes!(model::vq_decoder_matches_cpu_and_pytorch =>
    vq_decoder_portable, vq_decoder_cublas_f32, vq_decoder_cublas);
model_modes!(model::vanilla_decode_teacher_forced =>
    vanilla_decode_teacher_forced_portable, vanilla_decode_teacher_forced_cublas_f32,
    vanilla_decode_teacher_forced_cublas);
model_modes!(ops::linear_matches_cpu_for_all_dtypes_and_odd_shapes =>
    model_ops_linear_portable, model_ops_linear_cublas_f32, model_ops_linear_cublas);
model_modes!(ops::linear_rows_do_not_depend_on_the_batch =>
    model_ops_linear_rows_portable, model_ops_linear_rows_cublas_f32,
    model_ops_linear_rows_cublas);
model_modes!(ops::vq_decoder_ops_match_cpu =>
    model_ops_vq_portable, model_ops_vq_cublas_f32, model_ops_vq_cublas);

/// Runs a GEMM-free shared operation case once (the GEMM mode does not reach it).
macro_rules! model_op {
    ($case:ident, $test:ident) => {
        #[test]
        fn $test() {
            if device(stringify!($test)).is_none() {
                return;
            }
            let gc = GpuCompute::new(mode_executor(GemmMode::Portable));
            common::ops::$case(&gc);
            assert!(gc.error().is_none(), "{:?}", gc.error());
        }
    };
}

model_op!(gather_embed_and_gather_rows_are_exact, model_ops_gathers);
model_op!(
    rms_norm_and_elementwise_match_cpu,
    model_ops_norm_and_elementwise
);
model_op!(
    rope_store_and_tree_attention_match_cpu,
    model_ops_rope_and_attention
);
model_op!(kv_move_is_a_memmove, model_ops_kv_move);

#[test]
fn model_ops_sticky_error() {
    if device("model_ops_sticky_error").is_none() {
        return;
    }
    common::ops::a_bad_argument_is_a_sticky_device_error(mode_executor(GemmMode::Portable));
}

/// Runs a shared parity case on both executors.
macro_rules! parity {
    ($name:ident) => {
        #[test]
        fn $name() {
            if let Some(dev) = device(stringify!($name)) {
                common::$name(dev);
                let m = mapped();
                assert_eq!(m.readback_memory(), ReadbackMemory::Mapped);
                common::$name(m);
            }
        }
    };
}

parity!(process_sample_topk_f32);
parity!(process_sample_topk_f16_bf16);
parity!(process_error_rows);
parity!(exp_and_rng_known_answers);
parity!(verify_tree_all_criteria);
parity!(fill_dist_rows);

#[test]
fn ptx_is_compiled_once_then_loaded_from_the_cache() {
    // Probe through the shared executor so the skip message is uniform.
    if device("ptx_is_compiled_once_then_loaded_from_the_cache").is_none() {
        return;
    }
    let tag = "fresh-cache";
    let _ = std::fs::remove_dir_all(cache_dir(tag));
    let first = open(ReadbackMemory::Device, GemmMode::Portable, tag).unwrap();
    let r = first.ptx_report().clone();
    assert_eq!(
        (r.program.1, r.convert.1),
        (Origin::Compiled, Origin::Compiled)
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    drop(first);
    let second = open(ReadbackMemory::Device, GemmMode::Portable, tag).unwrap();
    let r2 = second.ptx_report();
    assert_eq!((r2.program.1, r2.convert.1), (Origin::Cache, Origin::Cache));
    assert_eq!((&r2.program.0, &r2.convert.0), (&r.program.0, &r.convert.0));
    // The cached module runs: a known-answer kernel through the second executor.
    common::exp_and_rng_known_answers(&second);
    // Corrupting the entry costs a recompile and a warning, not a failure.
    let entry = cache_dir(tag).join(format!("{}.ptx", r.program.0));
    std::fs::write(&entry, b"argen-ptx-cache 1 garbage").unwrap();
    drop(second);
    let third = open(ReadbackMemory::Device, GemmMode::Portable, tag).unwrap();
    assert_eq!(third.ptx_report().program.1, Origin::Compiled);
    assert_eq!(third.ptx_report().warnings.len(), 1);
    let _ = std::fs::remove_dir_all(cache_dir(tag));
}

#[test]
fn mapped_readback_buffers_round_trip() {
    let Some(other) = device("mapped_readback_buffers_round_trip") else {
        return;
    };
    let dev = mapped();
    let mut b = dev.alloc_readback(100).unwrap();
    assert!(b.is_mapped());
    let mut zeros = [1u8; 100];
    dev.read(&b, 0, &mut zeros).unwrap();
    assert_eq!(zeros, [0u8; 100], "alloc_readback zero-fills");
    let data: Vec<u8> = (0..40).map(|i| i as u8 * 3).collect();
    dev.write(&mut b, 50, &data).unwrap();
    let mut back = [0u8; 40];
    dev.read(&b, 50, &mut back).unwrap();
    assert_eq!(&back[..], &data[..]);
    assert!(dev.read(&b, 90, &mut back).is_err(), "out of range");
    // Memory of another executor is refused.
    let foreign = other.alloc(8).unwrap();
    assert!(!foreign.is_mapped());
    let mut out = [0u8; 8];
    assert!(dev.read(&foreign, 0, &mut out).is_err());
}

fn upload(dev: &CudaExecutor, bytes: &[u8]) -> CudaBuffer {
    let mut b = dev.alloc(bytes.len()).unwrap();
    dev.write(&mut b, 0, bytes).unwrap();
    b
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn read_f32(dev: &CudaExecutor, b: &CudaBuffer, elems: usize) -> Vec<f32> {
    let mut bytes = vec![0u8; elems * 4];
    dev.read(b, 0, &mut bytes).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Weights in `dtype`: device bytes and the exact values.
fn weights(dtype: Dtype, w: &[f32]) -> (Vec<u8>, Vec<f64>) {
    match dtype {
        Dtype::F32 => (f32_bytes(w), w.iter().map(|&v| v as f64).collect()),
        Dtype::F16 => {
            let h: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            (
                h.iter().flat_map(|v| v.to_le_bytes()).collect(),
                h.iter().map(|v| v.to_f64()).collect(),
            )
        }
        Dtype::Bf16 => {
            let h: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
            (
                h.iter().flat_map(|v| v.to_le_bytes()).collect(),
                h.iter().map(|v| v.to_f64()).collect(),
            )
        }
    }
}

/// `x` as cuBLAS multiplies it: itself for f32 weights, rounded to the weight format otherwise.
fn as_multiplied(dtype: Dtype, x: f32) -> f64 {
    match dtype {
        Dtype::F32 => x as f64,
        Dtype::F16 => f16::from_f32(x).to_f64(),
        Dtype::Bf16 => bf16::from_f32(x).to_f64(),
    }
}

const SENTINEL: f32 = -12345.5;

#[test]
fn gemm_matches_cpu_reference() {
    let Some(dev) = device("gemm_matches_cpu_reference") else {
        return;
    };
    let mut rng = common::Rng(0x6e44);
    for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
        for (rows, n, k) in [
            (1, 1, 1),
            (3, 17, 33),
            (1, 256, 768),
            (7, 300, 1000),
            (64, 96, 128),
        ] {
            let (x_off, out_off) = (5, 3);
            let x: Vec<f32> = (0..x_off + rows * k)
                .map(|_| (rng.unit() - 0.5) * 8.0)
                .collect();
            let w: Vec<f32> = (0..n * k).map(|_| (rng.unit() - 0.5) * 0.5).collect();
            let (wb, wv) = weights(dtype, &w);
            let xb = upload(dev, &f32_bytes(&x));
            let wbuf = upload(dev, &wb);
            let out_len = out_off + rows * n + 4;
            let ob = upload(dev, &f32_bytes(&vec![SENTINEL; out_len]));
            let desc = GemmDesc {
                x: &xb,
                x_offset: x_off,
                w: &wbuf,
                w_dtype: dtype,
                out: &ob,
                out_offset: out_off,
                rows,
                n,
                k,
            };
            assert!(dev.gemm(&desc).unwrap(), "{dtype:?}: cuBLAS path taken");
            let got = read_f32(dev, &ob, out_len);
            for r in 0..rows {
                for c in 0..n {
                    let (mut sum, mut abs) = (0f64, 0f64);
                    for l in 0..k {
                        let p = as_multiplied(dtype, x[x_off + r * k + l]) * wv[c * k + l];
                        sum += p;
                        abs += p.abs();
                    }
                    let g = got[out_off + r * n + c] as f64;
                    let tol = 4.0 * k as f64 * f64::powi(2.0, -24) * abs + 1e-30;
                    assert!(
                        (g - sum).abs() <= tol,
                        "{dtype:?} ({rows},{n},{k}) [{r},{c}]: {g} vs {sum} (tol {tol})"
                    );
                }
            }
            // Nothing outside the output range was written.
            assert!(got[..out_off].iter().all(|&v| v == SENTINEL));
            assert!(got[out_off + rows * n..].iter().all(|&v| v == SENTINEL));
            // Same inputs, same bits (one stream, fixed workspace).
            let ob2 = upload(dev, &f32_bytes(&vec![SENTINEL; out_len]));
            dev.gemm(&GemmDesc { out: &ob2, ..desc }).unwrap();
            let again = read_f32(dev, &ob2, out_len);
            assert!(
                got.iter()
                    .zip(&again)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{dtype:?} ({rows},{n},{k}): not reproducible"
            );
        }
    }
}

/// With `k = 1` and unit weights, `out = x̃` exactly: the activation rounding to f16/bf16 is
/// round-to-nearest-even, bit for bit as `half` does it (NaNs compared as NaNs), including
/// subnormals, ties, overflow to infinity and the f16 range limit.
#[test]
fn gemm_rounds_activations_like_half() {
    let Some(dev) = device("gemm_rounds_activations_like_half") else {
        return;
    };
    let mut rng = common::Rng(0xbf16);
    let mut x: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        65504.0,
        65520.0, // rounds to +inf in f16
        -1e9,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-6,                        // f16 subnormal range
        f32::from_bits(0x3f80_8000), // bf16 tie, rounds to even (down)
        f32::from_bits(0x3f81_8000), // bf16 tie, rounds to even (up)
        f32::from_bits(0x7f7f_ffff), // f32::MAX: bf16 rounds to +inf
        f32::MIN_POSITIVE,
    ];
    x.extend((0..2000).map(|_| f32::from_bits(rng.next() as u32)));
    let rows = x.len();
    let xb = upload(dev, &f32_bytes(&x));
    for dtype in [Dtype::F16, Dtype::Bf16] {
        let (wb, _) = weights(dtype, &[1.0]);
        let wbuf = upload(dev, &wb);
        let ob = dev.alloc(rows * 4).unwrap();
        let done = dev
            .gemm(&GemmDesc {
                x: &xb,
                x_offset: 0,
                w: &wbuf,
                w_dtype: dtype,
                out: &ob,
                out_offset: 0,
                rows,
                n: 1,
                k: 1,
            })
            .unwrap();
        assert!(done);
        let got = read_f32(dev, &ob, rows);
        for (v, g) in x.iter().zip(&got) {
            let want = as_multiplied(dtype, *v) as f32;
            assert!(
                want.to_bits() == g.to_bits() || (want.is_nan() && g.is_nan()),
                "{dtype:?}: {v:e} ({:#010x}) → {g:e}, want {want:e}",
                v.to_bits()
            );
        }
    }
}

#[test]
fn gemm_modes_decline_what_they_do_not_serve() {
    if device("gemm_modes_decline_what_they_do_not_serve").is_none() {
        return;
    }
    let f32_only = open(ReadbackMemory::Device, GemmMode::CublasF32, "device").unwrap();
    let portable = open(ReadbackMemory::Device, GemmMode::Portable, "device").unwrap();
    for (dev, dtype, served) in [
        (&f32_only, Dtype::F32, true),
        (&f32_only, Dtype::F16, false),
        (&f32_only, Dtype::Bf16, false),
        (&portable, Dtype::F32, false),
        (&portable, Dtype::Bf16, false),
    ] {
        let xb = upload(dev, &f32_bytes(&[1.0, 2.0]));
        let wbuf = upload(dev, &weights(dtype, &[3.0, 4.0]).0);
        let ob = dev.alloc(4).unwrap();
        let desc = GemmDesc {
            x: &xb,
            x_offset: 0,
            w: &wbuf,
            w_dtype: dtype,
            out: &ob,
            out_offset: 0,
            rows: 1,
            n: 1,
            k: 2,
        };
        assert_eq!(
            dev.gemm(&desc).unwrap(),
            served,
            "{:?} {dtype:?}",
            dev.gemm_mode()
        );
        if served {
            assert_eq!(read_f32(dev, &ob, 1), vec![11.0]);
        }
    }
    // A bad shape is a typed error, not a crash.
    let dev = &f32_only;
    let xb = dev.alloc(8).unwrap();
    let ob = dev.alloc(8).unwrap();
    let r = dev.gemm(&GemmDesc {
        x: &xb,
        x_offset: 0,
        w: &xb,
        w_dtype: Dtype::F32,
        out: &ob,
        out_offset: 0,
        rows: 4,
        n: 4,
        k: 4,
    });
    assert!(matches!(r, Err(argen_cuda::Error::Invalid { .. })), "{r:?}");
}

/// Device-resident logits (`ModelHost` + `DeviceLogitSink` + `GpuBackend` on one
/// `CudaExecutor`, what `argen generate --device cuda` runs) decode exactly like the same
/// logits downloaded into `SliceBackend` (`tests/common/decode.rs`).
#[test]
fn device_logits_decode_like_the_host() {
    if let Some(dev) = device("device_logits_decode_like_the_host") {
        common::decode::device_logits_decode_like_the_host(dev);
    }
}

/// No logits row is read back per decoding step on CUDA (device and mapped read-backs).
#[test]
fn no_logits_cross_the_bus() {
    if let Some(dev) = device("no_logits_cross_the_bus") {
        common::decode::no_logits_cross_the_bus(dev);
        common::decode::no_logits_cross_the_bus(mapped());
    }
}
