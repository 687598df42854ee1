//! Device-resident logits on an OpenCL device (PoCL in CI): `argen_model::ModelHost` over
//! `GpuCompute` with `DeviceLogitSink`, sampled and verified by `GpuBackend` on the same
//! executor — the path of `argen generate --device cuda` — decodes exactly like the host path
//! (the same device logits downloaded into `SliceBackend`) for vanilla CFG, exact speculative
//! decoding (chain, tree), LANTERN and VVS; and no logits row is read back per step. The
//! bodies are `tests/common/decode.rs`, shared with `gpu_parity.rs`.
//!
//! Skips with a printed message when no OpenCL platform exists; `ARGEN_REQUIRE_OPENCL=1` turns
//! that into a failure (CI sets it).

mod common;

use common::opencl_device;

#[test]
fn device_logits_decode_like_the_host() {
    if let Some(dev) = opencl_device() {
        common::decode::device_logits_decode_like_the_host(dev);
    }
}

#[test]
fn no_logits_cross_the_bus() {
    if let Some(dev) = opencl_device() {
        common::decode::no_logits_cross_the_bus(dev);
    }
}
