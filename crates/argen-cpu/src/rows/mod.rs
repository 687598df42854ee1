//! Run-time-dispatched SIMD for the per-element passes of logit processing: argen-core's
//! [`RowKernels`] (the clean pass — guidance, temperature, maximum, finiteness — the candidate
//! scan, and the per-candidate passes of truncation and sampling), which argen-core, being
//! `no_std` and free of `unsafe`, can only vectorise at the target's baseline width (SSE2 on
//! x86-64).
//!
//! The contracts are exact (argen-core's `process::kernels` module): the same IEEE operations
//! in the same order per element (no fused multiply-add), exact widening of `f16`/`bf16`, an
//! ordered `y − m ≥ −32` test; a lane-wise maximum is exact whatever the order. So every
//! variant gives the same bits as [`argen_core::process::Portable`] — tested on random rows of
//! every format with tails, odd lengths, masks, NaN and infinities (`tests/rows.rs`).
//!
//! | variant | clean pass | candidate scan |
//! |---|---|---|
//! | AVX-512F (`avx512`, x86-64) | 16 lanes; `bf16` by a 16-bit shift, `f16` by `vcvtph2ps` | compare to a mask, `vpcompressd` into a register, one 64-byte store |
//! | AVX2 + F16C (`avx2`, x86-64) | 8 lanes, same conversions | `vmovmskps`, a 256-entry table of set-bit positions, `vpermd`, one 32-byte store |
//! | NEON (`neon`, aarch64) | 4 lanes × 4 per step; `bf16` by `shll` #16, `f16` by `fcvtl`/`fcvtl2` | 8 per step: `fcmge`, narrowed to an 8-bit mask (`addv`); each 4-bit half indexes a 16-entry table of set-bit positions, added to the group's first id, one 16-byte store |
//! | portable | argen-core's | argen-core's |
//!
//! Top-k's and top-p's partition at the cut bucket (`split_cut`): AVX-512F compresses the
//! values and ids into registers (`vpcompressd`) and stores them whole at the kept count; NEON
//! does the same 4 pairs at a time with a byte shuffle (`tbl`) from a 16-entry table; AVX2 and
//! portable run argen-core's. AVX-512F also computes the rank buckets of top-k's histogram and
//! top-p's bucket masses (`buckets`: 16 lanes, narrowed by `vpmovdw`, masked tail) and a
//! draw's skipping of whole chunks of weights by their exact sums (`skip_chunks`: 8 `u64`
//! lanes, `vpaddq` and `vporq`); the other variants run argen-core's. Top-p's bucket masses
//! (`bucket_masses`): AVX-512F computes each candidate's fixed-point weight in vector lanes
//! (the exponential, then `trunc(e · 2^40)` from its bits with `vpsrlvq` in 8-lane `u64`
//! halves) and its bucket, 16 at a time, leaving only the histogram's additions scalar; the
//! other variants compose their `exp_shifted` and `buckets` as argen-core does. The x86 compacting
//! kernels count set mask bits with `popcnt` (part of both x86 variants' requirements).
//!
//! The exponentials of the weights (`exp_shifted`) are the crate's `vmath` `exp_f32` lanes
//! (16 with AVX-512F and a masked tail, 8 with AVX2 and a scalar tail; bit-identical to
//! `exp_f32` everywhere, so to argen-core's `exp_f32_nonpos` on the contract's `[−87, 0]`).
//! NEON keeps argen-core's: on aarch64 the compiler already vectorises `exp_f32_nonpos` at
//! the full NEON width (4 lanes), and it is leaner than `vmath`'s general `exp_f32` lanes
//! (no overflow, subnormal or NaN branches to select between): llvm-mca puts its loop at
//! 4.0 cycles per element on Neoverse N2 and 10.8 on Cortex-A57 against 6.0 and 12.8 for the
//! `vmath` NEON lanes (static estimates; `docs/runtime-performance.md`).
//!
//! On aarch64 argen-core's passes are already vectorised at NEON's width (the baseline), so
//! the NEON kernels win by cheaper steps, not wider ones: `fcvtl` instead of integer `f16`
//! widening, vector compares and one vector-to-general move per 8 candidates tested, a
//! vectorised partition. They cannot run on the x86-64 development machine:
//! `.ci/cross-arch.sh` builds the suites for `aarch64-unknown-linux-gnu` and runs them under
//! qemu-user, where `tests/rows.rs` checks them bit for bit like the x86 variants.
//!
//! The variant is the one [`crate::gemm::best_variant`] picks (`ARGEN_CPU_VARIANT` overrides
//! it), so the row kernels follow the GEMM kernels' choice. A compacting store writes a whole
//! vector at the current count, up to 15 ids past the candidates found so far but never past
//! the chunk's own last index, so it stays inside `order` (which the kernels check is at least
//! as long as `y`) and later stores overwrite it.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use crate::gemm::Variant;
use argen_core::dist::portable_skip_chunks;
use argen_core::process::{
    composed_bucket_masses, portable_buckets, portable_candidates, portable_exp_shifted,
    portable_plain, portable_split_cut, portable_two_way, BUCKETS,
};
use argen_core::{LogitRow, RowKernels};

/// For each `W`-bit mask (`N = 2^W` of them), the positions of its set bits, lowest first
/// and padded with 0: the compaction tables of the AVX2 (8 lanes) and NEON (4 lanes)
/// candidate scans.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
const fn set_bits<const W: usize, const N: usize>() -> [[u32; W]; N] {
    let mut t = [[0u32; W]; N];
    let mut mask = 0;
    while mask < N {
        let (mut n, mut bit) = (0, 0);
        while bit < W {
            if mask >> bit & 1 == 1 {
                t[mask][n] = bit as u32;
                n += 1;
            }
            bit += 1;
        }
        mask += 1;
    }
    t
}

/// The scalar end of a SIMD `split_cut` (argen-core's contract): elements `from..` of
/// `cy`/`cid` after the vector body, continuing its `kept` and `tied` counts.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
fn split_cut_tail(
    m: f32,
    cut: usize,
    cy: &mut [f32],
    cid: &mut [u32],
    keys: &mut [u64],
    from: usize,
    (mut kept, mut tied): (usize, usize),
) -> (usize, usize) {
    for j in from..cy.len() {
        let (yj, i) = (cy[j], cid[j]);
        let b = argen_core::process::rank_bucket(m - yj);
        cy[kept] = yj;
        cid[kept] = i;
        kept += (b < cut) as usize;
        if b == cut {
            keys[tied] = argen_core::process::rank_key(yj, i);
            tied += 1;
        }
    }
    (kept, tied)
}

/// argen-core's [`RowKernels`] with the SIMD variant of this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowSimd {
    variant: Variant,
}

impl RowSimd {
    /// The row kernels of `variant`, or why this CPU cannot run them. [`Variant::Portable`]
    /// runs argen-core's portable passes.
    pub fn new(variant: Variant) -> Result<Self, &'static str> {
        match variant.unsupported() {
            Some(why) => Err(why),
            None => Ok(RowSimd { variant }),
        }
    }

    /// The variant whose passes run.
    pub fn variant(&self) -> Variant {
        self.variant
    }
}

/// The row kernels of [`crate::gemm::best_variant`], for [`argen_core::SliceBackend::with_kernels`].
pub fn row_kernels() -> &'static RowSimd {
    static BEST: std::sync::OnceLock<RowSimd> = std::sync::OnceLock::new();
    BEST.get_or_init(|| RowSimd {
        variant: crate::gemm::best_variant(),
    })
}

/// Combines a vector body's maximum and finiteness with the portable tail's.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn join(body: Option<f32>, tail: Option<f32>, tail_len: usize) -> Option<f32> {
    match (body, tail_len) {
        (b, 0) => b,
        (Some(b), _) => tail.map(|t| if t > b { t } else { b }),
        (None, _) => None,
    }
}

impl RowKernels for RowSimd {
    fn name(&self) -> &'static str {
        match self.variant {
            Variant::Avx512 | Variant::Avx2 | Variant::Neon => self.variant.name(),
            Variant::Portable => "portable",
        }
    }

    fn scale_plain(&self, row: LogitRow<'_>, scale: f32, y: &mut [f32]) -> Option<f32> {
        match self.variant {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `RowSimd::new` / `row_kernels` checked that the CPU has AVX-512F.
            Variant::Avx512 => unsafe { avx512::plain(row, scale, y) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, AVX2 and F16C.
            Variant::Avx2 => unsafe { avx2::plain(row, scale, y) },
            #[cfg(target_arch = "aarch64")]
            Variant::Neon => neon::plain(row, scale, y),
            _ => portable_plain(row, scale, y),
        }
    }

    fn scale_two_way(
        &self,
        cond: LogitRow<'_>,
        uncond: LogitRow<'_>,
        cfg: f32,
        scale: f32,
        y: &mut [f32],
    ) -> Option<f32> {
        match self.variant {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `RowSimd::new` / `row_kernels` checked that the CPU has AVX-512F.
            Variant::Avx512 => unsafe { avx512::two_way(cond, uncond, cfg, scale, y) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, AVX2 and F16C.
            Variant::Avx2 => unsafe { avx2::two_way(cond, uncond, cfg, scale, y) },
            #[cfg(target_arch = "aarch64")]
            Variant::Neon => neon::two_way(cond, uncond, cfg, scale, y),
            _ => portable_two_way(cond, uncond, cfg, scale, y),
        }
    }

    fn candidates(&self, y: &[f32], m: f32, order: &mut [u32]) -> usize {
        match self.variant {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `RowSimd::new` / `row_kernels` checked that the CPU has AVX-512F.
            Variant::Avx512 => unsafe { avx512::candidates(y, m, order) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, AVX2.
            Variant::Avx2 => unsafe { avx2::candidates(y, m, order) },
            #[cfg(target_arch = "aarch64")]
            Variant::Neon => neon::candidates(y, m, order),
            _ => portable_candidates(y, m, order),
        }
    }

    fn exp_shifted(&self, y: &[f32], m: f32, e: &mut [f32]) {
        match self.variant {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `RowSimd::new` / `row_kernels` checked that the CPU has AVX-512F; the
            // kernel asserts `e.len() >= y.len()`.
            Variant::Avx512 => unsafe { crate::vmath::avx512::exp_sub_to(y, m, e) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, AVX2.
            Variant::Avx2 => unsafe { crate::vmath::avx2::exp_sub_to(y, m, e) },
            _ => portable_exp_shifted(y, m, e),
        }
    }

    fn split_cut(
        &self,
        m: f32,
        cut: usize,
        cy: &mut [f32],
        cid: &mut [u32],
        keys: &mut [u64],
    ) -> (usize, usize) {
        match self.variant {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `RowSimd::new` / `row_kernels` checked that the CPU has AVX-512F; the
            // kernel asserts the slice lengths.
            Variant::Avx512 => unsafe { avx512::split_cut(m, cut, cy, cid, keys) },
            #[cfg(target_arch = "aarch64")]
            Variant::Neon => neon::split_cut(m, cut, cy, cid, keys),
            _ => portable_split_cut(m, cut, cy, cid, keys),
        }
    }

    fn buckets(&self, m: f32, y: &[f32], b: &mut [u16]) {
        match self.variant {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `RowSimd::new` / `row_kernels` checked that the CPU has AVX-512F; the
            // kernel asserts `b.len() >= y.len()`.
            Variant::Avx512 => unsafe { avx512::buckets(m, y, b) },
            _ => portable_buckets(m, y, b),
        }
    }

    fn bucket_masses(&self, m: f32, y: &[f32], mass: &mut [u64; BUCKETS]) -> u64 {
        match self.variant {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `RowSimd::new` / `row_kernels` checked that the CPU has AVX-512F.
            Variant::Avx512 => unsafe { avx512::bucket_masses(m, y, mass) },
            // This variant's `exp_shifted` and `buckets`, composed.
            _ => composed_bucket_masses(self, m, y, mass),
        }
    }

    fn skip_chunks(&self, weights: &[u64], r: u128) -> (usize, u128) {
        match self.variant {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `RowSimd::new` / `row_kernels` checked that the CPU has AVX-512F.
            Variant::Avx512 => unsafe { avx512::skip_chunks(weights, r) },
            _ => portable_skip_chunks(weights, r),
        }
    }
}
