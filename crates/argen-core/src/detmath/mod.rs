//! Deterministic transcendental functions.
//!
//! Platform math libraries (`expf`/`tanhf` in glibc, CUDA, OpenCL, the `std` methods `f32::exp`,
//! `f32::tanh`, `f32::powf`, `f64::sin`, …) differ in their last bits between vendors, versions
//! and CPU architectures (glibc's `tanhf` disagrees between x86-64 and aarch64 on thousands of
//! inputs), so nothing that feeds a logit, a weight or a pixel may call them. These functions use
//! only IEEE-754 basic operations (`+ − × /`, `sqrt`, `floor`, exact conversions and bit
//! manipulation), each rounded to nearest-even, in one fixed order with no fused multiply-add;
//! Rust never contracts `a·b + c`, and the CUDA/OpenCL kernels port the `f32` functions line for
//! line and are compiled with contraction off — so the same bits come out on every machine.
//!
//! | function | used by | module |
//! |---|---|---|
//! | [`exp_f32`] | logit processing (sampling weights), attention softmax, SiLU, GELU | [`exp`] |
//! | [`silu_f32`], [`gelu_tanh_f32`] | model activations (SwiGLU, VQ decoder, caption projection) | [`activation`] |
//! | [`exp_f64`], [`ln_f64`], [`sin_cos_f64`] | host-side tables (2D RoPE) and scores (implicit PMI judge) | [`wide`] |
//!
//! The bit-exact definitions are normative in `docs/spec/determinism-v1.md` (section 4).

pub mod activation;
pub mod exp;
pub mod wide;

pub use activation::{gelu_tanh_f32, silu_f32};
pub use exp::exp_f32;
pub use wide::{exp_f64, ln_f64, sin_cos_f64};
