//! Every kernel executed on an OpenCL device (PoCL in CI) through the same launch layer that
//! drives CUDA, compared bit for bit with the `argen-core` reference.
//!
//! Skips with a printed message when no OpenCL platform exists; `ARGEN_REQUIRE_OPENCL=1` turns
//! that into a failure (CI sets it). The cases live in `tests/common` and are shared with
//! `gpu_parity.rs` (CUDA).

mod common;

use common::opencl_device;

#[test]
fn process_sample_topk_f32() {
    if let Some(dev) = opencl_device() {
        common::process_sample_topk_f32(dev);
    }
}

#[test]
fn process_sample_topk_f16_bf16() {
    if let Some(dev) = opencl_device() {
        common::process_sample_topk_f16_bf16(dev);
    }
}

#[test]
fn process_error_rows() {
    if let Some(dev) = opencl_device() {
        common::process_error_rows(dev);
    }
}

#[test]
fn exp_and_rng_known_answers() {
    if let Some(dev) = opencl_device() {
        common::exp_and_rng_known_answers(dev);
    }
}

#[test]
fn verify_tree_all_criteria() {
    if let Some(dev) = opencl_device() {
        common::verify_tree_all_criteria(dev);
    }
}

#[test]
fn fill_dist_rows() {
    if let Some(dev) = opencl_device() {
        common::fill_dist_rows(dev);
    }
}
