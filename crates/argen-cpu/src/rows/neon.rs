//! The NEON (Advanced SIMD, the aarch64 baseline) row kernels (see [`super`] for the contracts
//! and the table of variants).
//!
//! Clean pass, 16 elements per step in four 4-lane vectors: `d = c − u`, `t = s·d`,
//! `g = u + t`, `y = g·scale + 0` (`fsub`, `fmul`, `fadd` — the intrinsics `vsubq_f32`,
//! `vmulq_f32`, `vaddq_f32`, never `vfmaq_f32`, and LLVM does not contract them since Rust sets
//! no fast-math flags), stored; the maximum in `fmax` accumulators (a NaN reaches them only when
//! the finiteness flag is set, and the maximum is then discarded; `y` is never `−0`, since
//! `−0 + 0 = +0`); finiteness as the OR of `(bits & 0x7fff_ffff) + 0x0080_0000` (bit 31 set iff
//! the exponent is all ones). Widening: `bf16` is the upper half of an `f32` (`shll` by 16,
//! exact, NaNs stay NaN); `f16` by `fcvtl`/`fcvtl2` (the instructions of `vcvt_f32_f16`,
//! `vcvt_high_f32_f16`, in a two-line `asm!` block while the crate's MSRV predates them),
//! which convert every binary16 value exactly — subnormal halves become normal `f32`s (Linux
//! runs with the flush-to-zero bits of `FPCR` clear), infinities stay infinite and a NaN stays
//! a NaN (quieted; the clean pass treats any NaN alike); `tests/rows.rs` feeds raw half bit
//! patterns (subnormals, NaN payloads) through it. The last `len mod 16` elements go through
//! argen-core's portable pass.
//!
//! Candidate scan, 8 elements per step: two ordered `fcmge` of `y − m` against `−32`, narrowed
//! (`xtn`) to eight 16-bit lanes, ANDed with the lane bits `1, 2, …, 128` and summed (`addv`)
//! into an 8-bit mask. The ids of a group are its first index plus the positions of its set
//! bits, so each 4-bit half of the mask indexes a 16-row table of set-bit positions
//! (`SET_BITS`): base + row is stored whole (4 ids) at the current count, which then grows by
//! the half's popcount (`POPCOUNT`, a table) — no shuffle at all, and one move from a vector
//! to a general register per 8 elements (the bases stay in vector registers).
//!
//! Top-k's partition at the cut bucket, 4 pairs per step: the buckets
//! `min(bits(d·16 + 2^23) − bits(2^23), 512)` with `d = m − y` (`fsub`, `fmul`, `fadd`, never
//! fused; `sub`, `umin`), the keep (`cmhi`) and cut-bucket (`cmeq`) masks as 4 bits each in
//! one `addv`, and the kept values and ids moved to the front of their registers by one byte
//! shuffle each (`tbl` with the row of `COMPACT` for the mask), stored whole at the kept count
//! (in place: the count never passes the step's first index, so the store ends inside the
//! step's 4 pairs, which are already loaded); the cut bucket's members (one narrow bucket:
//! rarely any) from their mask, read before the store. The last `len mod 4` pairs go through
//! the scalar step.
//!
//! No aarch64 hardware was at hand: these kernels are tested bit for bit under qemu-user, and
//! their speed against argen-core's passes is estimated with llvm-mca, not measured
//! (`docs/runtime-performance.md`, `tools/aarch64_loop_mca.py`).

use super::join;
use argen_core::process::{portable_plain, portable_two_way, rank_key, HOPELESS};
use argen_core::LogitRow;
use core::arch::aarch64::*;
use half::{bf16, f16};

/// For each 4-bit mask, the positions of its set bits, lowest first (padded with 0).
static SET_BITS: [[u32; 4]; 16] = super::set_bits::<4, 16>();

/// The number of set bits of each 4-bit mask (a table load: `count_ones` would move the mask
/// to a vector register and back).
static POPCOUNT: [u8; 16] = [0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4];

/// For each 4-bit mask, the `tbl` byte indices that move the 32-bit lanes of its set bits to
/// the front, lowest first (the remaining bytes pick lane 0; they land past the kept count).
static COMPACT: [[u8; 16]; 16] = {
    let mut t = [[0u8; 16]; 16];
    let mut mask = 0;
    while mask < 16 {
        let (mut n, mut lane) = (0, 0);
        while lane < 4 {
            if mask >> lane & 1 == 1 {
                let mut b = 0;
                while b < 4 {
                    t[mask][4 * n + b] = (4 * lane + b) as u8;
                    b += 1;
                }
                n += 1;
            }
            lane += 1;
        }
        mask += 1;
    }
    t
};

/// Exact widening of 8 elements to two 4-lane `f32` vectors.
trait Lanes: Copy {
    /// Loads and widens 8 elements.
    ///
    /// # Safety
    /// `p` must be valid for reading 8 elements.
    unsafe fn load8(p: *const Self) -> (float32x4_t, float32x4_t);
}

impl Lanes for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> (float32x4_t, float32x4_t) {
        // SAFETY: the caller guarantees 8 readable elements; Advanced SIMD is baseline.
        unsafe { (vld1q_f32(p), vld1q_f32(p.add(4))) }
    }
}

impl Lanes for bf16 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> (float32x4_t, float32x4_t) {
        // SAFETY: the caller guarantees 8 readable elements (16 bytes). bf16 is the upper half
        // of an f32: widen each 16-bit lane shifted left by 16 (`shll`, `shll2`; exact).
        unsafe {
            let h = vld1q_u16(p as *const u16);
            (
                vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h))),
                vreinterpretq_f32_u32(vshll_high_n_u16::<16>(h)),
            )
        }
    }
}

impl Lanes for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> (float32x4_t, float32x4_t) {
        // SAFETY: the caller guarantees 8 readable elements (16 bytes). `fcvtl`/`fcvtl2`
        // convert every binary16 value exactly (module docs); the asm reads only its register
        // operand and writes only its two outputs (no memory, stack or flags). The intrinsics
        // `vcvt_f32_f16`/`vcvt_high_f32_f16` are these instructions, but stable only since
        // Rust 1.94 (the crate's MSRV is older).
        unsafe {
            let h = vld1q_u16(p as *const u16);
            let (lo, hi): (float32x4_t, float32x4_t);
            core::arch::asm!(
                "fcvtl {lo:v}.4s, {h:v}.4h",
                "fcvtl2 {hi:v}.4s, {h:v}.8h",
                h = in(vreg) h,
                lo = out(vreg) lo,
                hi = out(vreg) hi,
                options(pure, nomem, nostack, preserves_flags),
            );
            (lo, hi)
        }
    }
}

/// Finiteness flags and maximum of a 16-lane body (four independent 4-lane maxima).
struct Acc {
    mx: [float32x4_t; 4],
    flags: uint32x4_t,
}

impl Acc {
    #[inline(always)]
    fn new() -> Self {
        // SAFETY: register initialisation; Advanced SIMD is baseline.
        unsafe {
            Acc {
                mx: [vdupq_n_f32(f32::NEG_INFINITY); 4],
                flags: vdupq_n_u32(0),
            }
        }
    }

    /// Folds the lanes `s` into accumulator `a`.
    #[inline(always)]
    fn add(&mut self, a: usize, s: float32x4_t) {
        // SAFETY: register arithmetic; Advanced SIMD is baseline.
        unsafe {
            let e = vaddq_u32(
                vandq_u32(vreinterpretq_u32_f32(s), vdupq_n_u32(0x7fff_ffff)),
                vdupq_n_u32(0x0080_0000),
            );
            self.flags = vorrq_u32(self.flags, e);
            self.mx[a] = vmaxq_f32(self.mx[a], s);
        }
    }

    /// The body's maximum, or `None` if some lane was not finite.
    #[inline(always)]
    fn finish(&self) -> Option<f32> {
        // SAFETY: register reductions; Advanced SIMD is baseline.
        unsafe {
            if vmaxvq_u32(self.flags) & 0x8000_0000 != 0 {
                return None;
            }
            let m = vmaxq_f32(
                vmaxq_f32(self.mx[0], self.mx[1]),
                vmaxq_f32(self.mx[2], self.mx[3]),
            );
            Some(vmaxvq_f32(m))
        }
    }
}

fn plain_body<E: Lanes>(x: &[E], scale: f32, y: &mut [f32]) -> Option<f32> {
    let body = x.len() / 16 * 16;
    assert!(y.len() >= body, "output row shorter than the input");
    // SAFETY: register initialisation; Advanced SIMD is baseline.
    let (vscale, zero) = unsafe { (vdupq_n_f32(scale), vdupq_n_f32(0.0)) };
    let mut acc = Acc::new();
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 16 <= body <= x.len()`, and `<= y.len()` (asserted).
        unsafe {
            let (a, b) = E::load8(px.add(i));
            let (c, d) = E::load8(px.add(i + 8));
            for (l, v) in [a, b, c, d].into_iter().enumerate() {
                let s = vaddq_f32(vmulq_f32(v, vscale), zero);
                vst1q_f32(py.add(i + 4 * l), s);
                acc.add(l, s);
            }
        }
        i += 16;
    }
    acc.finish()
}

fn two_way_body<E: Lanes>(c: &[E], u: &[E], cfg: f32, scale: f32, y: &mut [f32]) -> Option<f32> {
    let body = c.len() / 16 * 16;
    assert!(
        u.len() >= body && y.len() >= body,
        "rows of different lengths"
    );
    // SAFETY: register initialisation; Advanced SIMD is baseline.
    let (vcfg, vscale, zero) = unsafe { (vdupq_n_f32(cfg), vdupq_n_f32(scale), vdupq_n_f32(0.0)) };
    let mut acc = Acc::new();
    let (pc, pu, py) = (c.as_ptr(), u.as_ptr(), y.as_mut_ptr());
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 16 <= body`, within `c`, `u` and `y` (asserted).
        unsafe {
            let (c0, c1) = E::load8(pc.add(i));
            let (c2, c3) = E::load8(pc.add(i + 8));
            let (u0, u1) = E::load8(pu.add(i));
            let (u2, u3) = E::load8(pu.add(i + 8));
            for (l, (cv, uv)) in [(c0, u0), (c1, u1), (c2, u2), (c3, u3)]
                .into_iter()
                .enumerate()
            {
                let g = vaddq_f32(uv, vmulq_f32(vcfg, vsubq_f32(cv, uv)));
                let s = vaddq_f32(vmulq_f32(g, vscale), zero);
                vst1q_f32(py.add(i + 4 * l), s);
                acc.add(l, s);
            }
        }
        i += 16;
    }
    acc.finish()
}

/// The length of a row.
fn row_len(row: LogitRow<'_>) -> usize {
    match row {
        LogitRow::F32(r) => r.len(),
        LogitRow::F16(r) => r.len(),
        LogitRow::Bf16(r) => r.len(),
    }
}

/// The clean pass of an unguided row.
pub fn plain(row: LogitRow<'_>, scale: f32, y: &mut [f32]) -> Option<f32> {
    let n = row_len(row);
    let body = n / 16 * 16;
    let (b, tail) = match row {
        LogitRow::F32(r) => (plain_body(r, scale, y), LogitRow::F32(&r[body..])),
        LogitRow::F16(r) => (plain_body(r, scale, y), LogitRow::F16(&r[body..])),
        LogitRow::Bf16(r) => (plain_body(r, scale, y), LogitRow::Bf16(&r[body..])),
    };
    let t = portable_plain(tail, scale, &mut y[body..n]);
    join(b, t, n - body)
}

/// The clean pass of a two-way guided row.
pub fn two_way(
    cond: LogitRow<'_>,
    uncond: LogitRow<'_>,
    cfg: f32,
    scale: f32,
    y: &mut [f32],
) -> Option<f32> {
    let n = row_len(cond);
    if row_len(uncond) != n {
        return None;
    }
    let body = n / 16 * 16;
    let (b, tc, tu) = match (cond, uncond) {
        (LogitRow::F32(c), LogitRow::F32(u)) => (
            two_way_body(c, u, cfg, scale, y),
            LogitRow::F32(&c[body..]),
            LogitRow::F32(&u[body..]),
        ),
        (LogitRow::F16(c), LogitRow::F16(u)) => (
            two_way_body(c, u, cfg, scale, y),
            LogitRow::F16(&c[body..]),
            LogitRow::F16(&u[body..]),
        ),
        (LogitRow::Bf16(c), LogitRow::Bf16(u)) => (
            two_way_body(c, u, cfg, scale, y),
            LogitRow::Bf16(&c[body..]),
            LogitRow::Bf16(&u[body..]),
        ),
        _ => return None,
    };
    let t = portable_two_way(tc, tu, cfg, scale, &mut y[body..n]);
    join(b, t, n - body)
}

/// The candidate scan: ids with `y − m ≥ −32`, ascending, into `order`.
pub fn candidates(y: &[f32], m: f32, order: &mut [u32]) -> usize {
    assert!(order.len() >= y.len(), "order shorter than the row");
    let body = y.len() / 8 * 8;
    // SAFETY: register initialisation; Advanced SIMD is baseline.
    let (vm, floor, bits) = unsafe {
        (
            vdupq_n_f32(m),
            vdupq_n_f32(HOPELESS),
            vld1q_u16([1u16, 2, 4, 8, 16, 32, 64, 128].as_ptr()),
        )
    };
    let (py, po) = (y.as_ptr(), order.as_mut_ptr());
    // The group's first id in every lane, for each 4-lane half (kept in vector registers:
    // moves between the general and the vector registers are the scarce resource here).
    // SAFETY: register initialisation; Advanced SIMD is baseline.
    let (mut base_lo, mut base_hi, eight) =
        unsafe { (vdupq_n_u32(0), vdupq_n_u32(4), vdupq_n_u32(8)) };
    let mut count = 0usize;
    let mut i = 0;
    while i < body {
        // SAFETY: `i + 8 <= body <= y.len()`; the stores write `order[count..count + 4]` with
        // `count <= i + 4` (the first with `count <= i`), so they end by `i + 8 <= body <=
        // order.len()` (asserted); the table rows hold 4 entries.
        unsafe {
            let c0 = vcgeq_f32(vsubq_f32(vld1q_f32(py.add(i)), vm), floor);
            let c1 = vcgeq_f32(vsubq_f32(vld1q_f32(py.add(i + 4)), vm), floor);
            let c = vcombine_u16(vmovn_u32(c0), vmovn_u32(c1));
            let mask = vaddvq_u16(vandq_u16(c, bits)) as usize;
            let (lo, hi) = (mask & 15, (mask >> 4) & 15);
            vst1q_u32(
                po.add(count),
                vaddq_u32(base_lo, vld1q_u32(SET_BITS[lo].as_ptr())),
            );
            count += POPCOUNT[lo] as usize;
            vst1q_u32(
                po.add(count),
                vaddq_u32(base_hi, vld1q_u32(SET_BITS[hi].as_ptr())),
            );
            count += POPCOUNT[hi] as usize;
            base_lo = vaddq_u32(base_lo, eight);
            base_hi = vaddq_u32(base_hi, eight);
        }
        i += 8;
    }
    for (j, &yj) in y.iter().enumerate().skip(body) {
        order[count] = j as u32;
        count += (yj - m >= HOPELESS) as usize;
    }
    count
}

/// Top-k's partition at the bucket `cut` (argen-core's `RowKernels::split_cut`; the method in
/// the module docs).
pub fn split_cut(
    m: f32,
    cut: usize,
    cy: &mut [f32],
    cid: &mut [u32],
    keys: &mut [u64],
) -> (usize, usize) {
    let len = cy.len();
    assert!(
        cid.len() == len && keys.len() >= len,
        "split_cut: slices of different lengths"
    );
    let body = len / 4 * 4;
    // `cut` above 512 keeps everything (no bucket reaches it); clamp so the lane compare is exact.
    // SAFETY: register initialisation; Advanced SIMD is baseline.
    let (vm, scale, round, bias, top, vcut, lanes, lanes_eq) = unsafe {
        (
            vdupq_n_f32(m),
            vdupq_n_f32(16.0),
            vdupq_n_f32(8_388_608.0),
            vdupq_n_u32(0x4b00_0000),
            vdupq_n_u32(512),
            vdupq_n_u32(cut.min(513) as u32),
            vld1q_u32([1u32, 2, 4, 8].as_ptr()),
            vld1q_u32([16u32, 32, 64, 128].as_ptr()),
        )
    };
    let (py, pi) = (cy.as_mut_ptr(), cid.as_mut_ptr());
    let (mut kept, mut tied) = (0usize, 0usize);
    let mut j = 0;
    while j < body {
        // SAFETY: `j + 4 <= body <= len`; the stores write `[kept, kept + 4)` with `kept <= j`,
        // inside both slices, after this step's pairs were loaded (and the tied ones read);
        // `tied < len <= keys.len()` for each tied pair; the table row holds 16 bytes.
        unsafe {
            let y = vld1q_f32(py.add(j));
            let ids = vld1q_u32(pi.add(j));
            let d = vsubq_f32(vm, y);
            let t = vaddq_f32(vmulq_f32(d, scale), round);
            let b = vminq_u32(vsubq_u32(vreinterpretq_u32_f32(t), bias), top);
            // Keep in bits 0–3, the cut bucket in bits 4–7: one move to a general register.
            let both = vorrq_u32(
                vandq_u32(vcltq_u32(b, vcut), lanes),
                vandq_u32(vceqq_u32(b, vcut), lanes_eq),
            );
            let mask = vaddvq_u32(both) as usize;
            let (keep, mut e) = (mask & 15, (mask >> 4) & 15);
            while e != 0 {
                let l = e.trailing_zeros() as usize;
                keys[tied] = rank_key(*py.add(j + l), *pi.add(j + l));
                tied += 1;
                e &= e - 1;
            }
            let idx = vld1q_u8(COMPACT[keep].as_ptr());
            let ky = vqtbl1q_u8(vreinterpretq_u8_f32(y), idx);
            let ki = vqtbl1q_u8(vreinterpretq_u8_u32(ids), idx);
            vst1q_f32(py.add(kept), vreinterpretq_f32_u8(ky));
            vst1q_u32(pi.add(kept), vreinterpretq_u32_u8(ki));
            kept += POPCOUNT[keep] as usize;
        }
        j += 4;
    }
    super::split_cut_tail(m, cut, cy, cid, keys, body, (kept, tied))
}
