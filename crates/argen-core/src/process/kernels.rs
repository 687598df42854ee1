//! The two per-element passes of logit processing behind a trait, so that a crate that may
//! use run-time-dispatched SIMD (argen-cpu: AVX-512, AVX2) can supply them while this crate
//! stays `no_std` and free of `unsafe`.
//!
//! [`process_with`](super::process_with) spends most of its time in two passes over the whole
//! row; everything after them touches only the candidates:
//!
//! 1. the **clean pass** ([`RowKernels::scale_plain`], [`RowKernels::scale_two_way`]): steps 1–2
//!    of the specification and the maximum, for rows without masks or errors;
//! 2. the **candidate scan** ([`RowKernels::candidates`]): the ids with `y − m ≥ HOPELESS`;
//!
//! and one pass over the candidates: the **exponentials of the weights**
//! ([`RowKernels::exp_shifted`], step 5, in blocks of up to 64 candidates), and top-k's
//! **partition** of the candidates at the cut bucket ([`RowKernels::split_cut`], step 4).
//!
//! Sampling from the processed row skips whole chunks of weights by their exact sums
//! ([`RowKernels::skip_chunks`], the inner loop of [`crate::Dist::locate_with`]) — unless the
//! row's few positive weights are listed ([`crate::SupportList`]), when the draw walks only
//! those.
//!
//! Their contracts are exact, so every implementation gives the same bits (argen-cpu's tests
//! compare each variant it can run with [`Portable`] on random rows, every format, tails and
//! odd lengths):
//!
//! * a clean pass writes `y_i = (u_i + s·(c_i − u_i))·scale + 0` (two-way) or
//!   `y_i = x_i·scale + 0` (plain), each operation one IEEE `f32` operation in that order (no
//!   fused multiply-add), inputs widened exactly ([`crate::Logit::to_f32`]); it returns the maximum
//!   of `y` if every `y_i` is finite and `None` otherwise (what it wrote is then ignored);
//! * the candidate scan writes the ids `i` with `y_i − m ≥ −32` (IEEE subtraction, ordered
//!   comparison) in ascending order to `order[..n]` and returns `n`; it may write anything to
//!   `order[n..]`;
//! * the exponentials write `e_j = exp_f32(y_j − m)` ([`crate::detmath::exp_f32`], the IEEE
//!   subtraction first) for every `j < y.len()` with `y_j − m ∈ [−87, 0]`, bit for bit; for
//!   other `j` the value of `e_j` is unspecified (the caller passes candidates only, all in
//!   `[−32, 0]`). `e.len() >= y.len()`; it writes nothing past `e[y.len() − 1]`;
//! * the partition, with `b_j = rank_bucket(m − cy_j)` ([`super::rank_bucket`], IEEE
//!   subtraction) of the input pairs `(cy_j, cid_j)`: moves the pairs with `b_j < cut` to
//!   `cy[..kept]`, `cid[..kept]` in their input order, writes `rank_key(cy_j, cid_j)`
//!   ([`super::rank_key`]) of the pairs with `b_j == cut` to `keys[..tied]` in their input
//!   order, and returns `(kept, tied)`; `cy[kept..]`, `cid[kept..]` are unspecified afterwards
//!   and nothing else is written (`cid.len() == cy.len() <= keys.len()`).
//! * the rank buckets write `b_j = rank_bucket(m − y_j)` ([`super::rank_bucket`], IEEE
//!   subtraction) for every `j < y.len()` (`b.len() >= y.len()`) and nothing past `b[y.len() − 1]`;
//! * the bucket masses, for candidates `y` (`y_j − m ∈ [−32, 0]`), add each candidate's
//!   fixed-point weight `w_j = trunc(exp_f32(y_j − m) · 2^40)` (the exponential as above; the
//!   product is exact, truncated toward zero) to `mass[rank_bucket(m − y_j)]` and return
//!   `Σ w_j` (exact integer sums, so the order of the additions does not matter);
//! * the chunk skipping returns exactly [`crate::dist::portable_skip_chunks`]'s pair (whole
//!   chunks of [`crate::dist::LOCATE_CHUNK`] weights summed exactly).
//!
//! [`Portable`] is this crate's implementation (vectorised by the compiler at the target's
//! baseline width, see [`super::scan`]).

use super::buckets::BUCKETS;
use super::scan;
use half::{bf16, f16};

/// A borrowed row of logits in one of the element formats (see [`crate::Logit::row`]).
#[derive(Clone, Copy, Debug)]
pub enum LogitRow<'a> {
    /// `f32` elements.
    F32(&'a [f32]),
    /// IEEE binary16 elements.
    F16(&'a [f16]),
    /// bfloat16 elements.
    Bf16(&'a [bf16]),
}

/// The per-element passes of logit processing (see the module documentation for the exact
/// contracts). Every method has the portable implementation as its default.
pub trait RowKernels: Sync + core::fmt::Debug {
    /// Short name of the implementation (`portable`, `avx512`, …), for benchmarks and tests.
    fn name(&self) -> &'static str {
        "portable"
    }

    /// The clean pass of an unguided row into `y` (`y.len() == row length`).
    fn scale_plain(&self, row: LogitRow<'_>, scale: f32, y: &mut [f32]) -> Option<f32> {
        portable_plain(row, scale, y)
    }

    /// The clean pass of a two-way guided row into `y` (rows of equal length, `y` as long).
    fn scale_two_way(
        &self,
        cond: LogitRow<'_>,
        uncond: LogitRow<'_>,
        cfg: f32,
        scale: f32,
        y: &mut [f32],
    ) -> Option<f32> {
        portable_two_way(cond, uncond, cfg, scale, y)
    }

    /// The candidate scan of `y` (maximum `m`, finite) into `order` (`order.len() >= y.len()`).
    fn candidates(&self, y: &[f32], m: f32, order: &mut [u32]) -> usize {
        scan::candidates(y, m, order)
    }

    /// The exponentials `e_j = exp_f32(y_j − m)` of the weights for `y_j − m ∈ [−87, 0]`
    /// (`e.len() >= y.len()`).
    fn exp_shifted(&self, y: &[f32], m: f32, e: &mut [f32]) {
        portable_exp_shifted(y, m, e)
    }

    /// Top-k's partition of the candidates `(cy, cid)` at the bucket `cut` (`keys.len() >=
    /// cy.len() == cid.len()`): returns `(kept, tied)`.
    fn split_cut(
        &self,
        m: f32,
        cut: usize,
        cy: &mut [f32],
        cid: &mut [u32],
        keys: &mut [u64],
    ) -> (usize, usize) {
        portable_split_cut(m, cut, cy, cid, keys)
    }

    /// The rank buckets `b_j = rank_bucket(m − y_j)` of candidates (`b.len() >= y.len()`), for
    /// top-k's histogram and top-p's bucket masses.
    fn buckets(&self, m: f32, y: &[f32], b: &mut [u16]) {
        portable_buckets(m, y, b)
    }

    /// Top-p's bucket masses of candidates `y`: adds each fixed-point weight
    /// `trunc(exp_f32(y_j − m) · 2^40)` to `mass[rank_bucket(m − y_j)]` and returns their sum.
    /// The default composes [`RowKernels::exp_shifted`] and [`RowKernels::buckets`] of `self`
    /// ([`composed_bucket_masses`]).
    fn bucket_masses(&self, m: f32, y: &[f32], mass: &mut [u64; BUCKETS]) -> u64 {
        composed_bucket_masses(self, m, y, mass)
    }

    /// The whole chunks of weights that a draw skips before `r`
    /// ([`crate::dist::portable_skip_chunks`]): `(first index not skipped, exact sum before it)`.
    fn skip_chunks(&self, weights: &[u64], r: u128) -> (usize, u128) {
        crate::dist::portable_skip_chunks(weights, r)
    }
}

/// This crate's implementation of [`RowKernels`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

/// A `'static` [`Portable`], the default kernels of [`crate::SliceBackend`].
pub static PORTABLE: Portable = Portable;

impl RowKernels for Portable {}

/// [`Portable`]'s clean pass of an unguided row.
pub fn portable_plain(row: LogitRow<'_>, scale: f32, y: &mut [f32]) -> Option<f32> {
    match row {
        LogitRow::F32(r) => scan::clean_plain(r, scale, y),
        LogitRow::F16(r) => scan::clean_plain(r, scale, y),
        LogitRow::Bf16(r) => scan::clean_plain(r, scale, y),
    }
}

/// [`Portable`]'s clean pass of a two-way guided row (`None` also for rows of different
/// formats, which no caller passes).
pub fn portable_two_way(
    cond: LogitRow<'_>,
    uncond: LogitRow<'_>,
    cfg: f32,
    scale: f32,
    y: &mut [f32],
) -> Option<f32> {
    match (cond, uncond) {
        (LogitRow::F32(c), LogitRow::F32(u)) => scan::clean_two_way(c, u, cfg, scale, y),
        (LogitRow::F16(c), LogitRow::F16(u)) => scan::clean_two_way(c, u, cfg, scale, y),
        (LogitRow::Bf16(c), LogitRow::Bf16(u)) => scan::clean_two_way(c, u, cfg, scale, y),
        _ => None,
    }
}

/// [`Portable`]'s candidate scan.
pub fn portable_candidates(y: &[f32], m: f32, order: &mut [u32]) -> usize {
    scan::candidates(y, m, order)
}

/// [`Portable`]'s exponentials of the weights: [`crate::detmath::exp::exp_f32_nonpos`] per
/// element (bit-identical to [`crate::detmath::exp_f32`] on `[−87, 0]`; a loop the compiler
/// vectorises at the baseline width).
pub fn portable_exp_shifted(y: &[f32], m: f32, e: &mut [f32]) {
    for (ej, &yj) in e.iter_mut().zip(y) {
        *ej = crate::detmath::exp::exp_f32_nonpos(yj - m);
    }
}

/// [`Portable`]'s rank buckets (a loop the compiler vectorises at the baseline width).
pub fn portable_buckets(m: f32, y: &[f32], b: &mut [u16]) {
    for (bj, &yj) in b.iter_mut().zip(y) {
        *bj = super::rank_bucket(m - yj) as u16;
    }
}

/// [`Portable`]'s bucket masses of candidates ([`RowKernels::bucket_masses`]).
pub fn portable_bucket_masses(m: f32, y: &[f32], mass: &mut [u64; BUCKETS]) -> u64 {
    composed_bucket_masses(&Portable, m, y, mass)
}

/// [`RowKernels::bucket_masses`] from `kernels`' [`RowKernels::exp_shifted`] and
/// [`RowKernels::buckets`], in blocks of 64: the weight `trunc(e · 2^40)` of each exponential
/// taken from its bits (exact; module `process::weights`), added to its bucket and the total.
pub fn composed_bucket_masses<K: RowKernels + ?Sized>(
    kernels: &K,
    m: f32,
    y: &[f32],
    mass: &mut [u64; BUCKETS],
) -> u64 {
    let (mut e, mut b) = ([0.0f32; 64], [0u16; 64]);
    let mut total = 0u64;
    for ys in y.chunks(64) {
        kernels.exp_shifted(ys, m, &mut e[..ys.len()]);
        kernels.buckets(m, ys, &mut b);
        for (&bj, &ej) in b[..ys.len()].iter().zip(&e) {
            let w = super::weights::fixed_point(ej);
            total += w;
            mass[bj as usize] += w;
        }
    }
    total
}

/// [`Portable`]'s partition of the candidates at the cut bucket: compacted in place, never
/// ahead of the read position, branch-free (about half the candidates stay, in no predictable
/// pattern); the cut bucket's keys by a branch (one narrow bucket, rarely taken).
pub fn portable_split_cut(
    m: f32,
    cut: usize,
    cy: &mut [f32],
    cid: &mut [u32],
    keys: &mut [u64],
) -> (usize, usize) {
    let (mut kept, mut tied) = (0usize, 0usize);
    for j in 0..cy.len().min(cid.len()) {
        let (yj, i) = (cy[j], cid[j]);
        let b = super::rank_bucket(m - yj);
        cy[kept] = yj;
        cid[kept] = i;
        kept += (b < cut) as usize;
        if b == cut {
            keys[tied] = super::rank_key(yj, i);
            tied += 1;
        }
    }
    (kept, tied)
}
