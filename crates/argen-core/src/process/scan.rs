//! Steps 1–3 of logit processing (guidance, temperature, the maximum) fused into one pass, and
//! the candidate scan.
//!
//! # The clean pass
//!
//! Most rows hold no mask and no error. For those, one branch-free pass computes, per element,
//! exactly the specification's operations — `g = u + s·(c − u)` (two-way) or `g = x` (plain),
//! then `y = g·(1/T) + 0` — stores `y`, and keeps the maximum and an OR of per-element
//! "exponent all ones" flags, so it knows at the end whether every `y` is finite. A finite `y`
//! everywhere means that no input was NaN, `±∞` (a NaN or infinite `c` or `u` always gives a
//! non-finite `g`: `s` and `1/T` are finite, `1/T > 0`) and nothing overflowed — so no mask, no
//! error, and the stored row is exactly the specification's. Otherwise the row is redone by
//! the *masked* pass, which evaluates the specification's mask and error rules per element
//! and hands rows with errors to [`super::reference`]. Every operation is a plain IEEE
//! operation on independent lanes, so the compiler vectorises the pass at the target's
//! baseline width (SSE2 on x86-64, NEON on aarch64).
//!
//! # Candidates
//!
//! A candidate is an unmasked token with `y − m ≥ HOPELESS` (`m` the maximum). Since `m` is
//! finite, a masked `y = −∞` gives `y − m = −∞` and fails the same comparison, so one compare
//! per element decides; the tests of a group of 4 elements form a bit mask, and the group is
//! compacted branch-free with a table of set-bit positions ([`candidates`]).

use super::HOPELESS;
use crate::logit::Logit;

/// Lanes of the fused passes: independent maxima and flags the compiler keeps in vectors.
pub(super) const LANES: usize = 16;

/// Lane-wise maximum of `LANES` accumulators (no NaN reaches it).
#[inline(always)]
fn lane_max(acc: [f32; LANES]) -> f32 {
    acc.iter()
        .copied()
        .fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a })
}

/// The order-preserving integer key of a finite `f32` (an involution: it also maps a key
/// back): positive values keep their bits, negative ones flip their magnitude bits, so signed
/// integer order is float order.
#[inline(always)]
fn ord_i32(bits: u32) -> u32 {
    bits ^ (((bits as i32) >> 31) as u32 >> 1)
}

/// Bit 31 set iff `bits` is an infinity or a NaN (exponent all ones).
#[inline(always)]
fn non_finite_bit(bits: u32) -> u32 {
    (bits & 0x7fff_ffff).wrapping_add(0x0080_0000)
}

/// The maximum of a clean pass from its key maximum and its non-finite flags, or `None`.
#[inline(always)]
fn clean_max(key: i32, flags: u32) -> Option<f32> {
    (flags & 0x8000_0000 == 0).then(|| f32::from_bits(ord_i32(key as u32)))
}

/// The clean pass of an unguided row: `y = x·scale + 0` into `y`; the maximum if every `y` is
/// finite, else `None` (a mask, an error or an overflow somewhere: use [`masked_plain`]).
///
/// The maximum is kept as a signed integer key ([`ord_i32`], exact for finite values) and
/// non-finiteness as an OR of flag bits, both integer reductions the loop vectoriser
/// handles (a float maximum in a fixed order is not one).
pub(super) fn clean_plain<L: Logit>(row: &[L], scale: f32, y: &mut [f32]) -> Option<f32> {
    let (mut key, mut flags) = (i32::MIN, 0u32);
    for (x, o) in row.iter().zip(y.iter_mut()) {
        let s = x.widen() * scale + 0.0;
        *o = s;
        let b = s.to_bits();
        flags |= non_finite_bit(b);
        key = key.max(ord_i32(b) as i32);
    }
    clean_max(key, flags)
}

/// The clean pass of a two-way guided row: `y = (u + cfg·(c − u))·scale + 0` into `y`; the
/// maximum if every `y` is finite, else `None` (use [`masked_two_way`]).
pub(super) fn clean_two_way<L: Logit>(
    cond: &[L],
    uncond: &[L],
    cfg: f32,
    scale: f32,
    y: &mut [f32],
) -> Option<f32> {
    let (mut key, mut flags) = (i32::MIN, 0u32);
    for ((c, u), o) in cond.iter().zip(uncond).zip(y.iter_mut()) {
        let (c, u) = (c.widen(), u.widen());
        let s = (u + cfg * (c - u)) * scale + 0.0;
        *o = s;
        let b = s.to_bits();
        flags |= non_finite_bit(b);
        key = key.max(ord_i32(b) as i32);
    }
    clean_max(key, flags)
}

/// 1 if `x` is not finite, else 0.
#[inline(always)]
fn non_finite(x: f32) -> u32 {
    (x.to_bits() & 0x7f80_0000 == 0x7f80_0000) as u32
}

/// Steps 1–2 of an unguided row into `y` and its maximum; `None` if a value is NaN, `+∞` or
/// overflows (exactly when the reference errs).
pub(super) fn masked_plain<L: Logit>(row: &[L], scale: f32, y: &mut [f32]) -> Option<f32> {
    let mut mx = [f32::NEG_INFINITY; LANES];
    let mut bad = [0u32; LANES];
    #[inline(always)]
    fn body(x: f32, scale: f32, o: &mut f32, mx: &mut f32, bad: &mut u32) {
        let masked = x == f32::NEG_INFINITY;
        let s = x * scale + 0.0;
        // As in `masked_two_way`.
        let ok = (x < f32::INFINITY) & (masked | ((s < f32::INFINITY) & (s > f32::NEG_INFINITY)));
        *bad |= !ok as u32;
        let s = if masked { f32::NEG_INFINITY } else { s };
        *mx = if s > *mx { s } else { *mx };
        *o = s;
    }
    let n = row.len() / LANES * LANES;
    for (xs, os) in row[..n].chunks_exact(LANES).zip(y.chunks_exact_mut(LANES)) {
        for l in 0..LANES {
            body(xs[l].to_f32(), scale, &mut os[l], &mut mx[l], &mut bad[l]);
        }
    }
    for (x, o) in row[n..].iter().zip(&mut y[n..]) {
        body(x.to_f32(), scale, o, &mut mx[0], &mut bad[0]);
    }
    (bad.iter().fold(0, |a, &b| a | b) == 0).then(|| lane_max(mx))
}

/// Steps 1–2 of a two-way guided row (`u + s·(c − u)`, then the temperature) into `y` and its
/// maximum; `None` as [`masked_plain`].
pub(super) fn masked_two_way<L: Logit>(
    cond: &[L],
    uncond: &[L],
    cfg: f32,
    scale: f32,
    y: &mut [f32],
) -> Option<f32> {
    let mut mx = [f32::NEG_INFINITY; LANES];
    let mut bad = [0u32; LANES];
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn body(c: f32, u: f32, cfg: f32, scale: f32, o: &mut f32, mx: &mut f32, bad: &mut u32) {
        let masked = (c == f32::NEG_INFINITY) | (u == f32::NEG_INFINITY);
        let g = u + cfg * (c - u);
        let s = g * scale + 0.0;
        // An input NaN / +∞, or an unmasked result that is not finite (a non-finite `g`
        // gives a non-finite `s`, since `scale` is finite and positive): exactly when the
        // reference errs. Plain comparisons, so the pass vectorises.
        let ok = (c < f32::INFINITY)
            & (u < f32::INFINITY)
            & (masked | ((s < f32::INFINITY) & (s > f32::NEG_INFINITY)));
        *bad |= !ok as u32;
        let s = if masked { f32::NEG_INFINITY } else { s };
        *mx = if s > *mx { s } else { *mx };
        *o = s;
    }
    let n = cond.len() / LANES * LANES;
    for ((cs, us), os) in cond[..n]
        .chunks_exact(LANES)
        .zip(uncond[..n].chunks_exact(LANES))
        .zip(y.chunks_exact_mut(LANES))
    {
        for l in 0..LANES {
            let (c, u) = (cs[l].to_f32(), us[l].to_f32());
            body(c, u, cfg, scale, &mut os[l], &mut mx[l], &mut bad[l]);
        }
    }
    for ((c, u), o) in cond[n..].iter().zip(&uncond[n..]).zip(&mut y[n..]) {
        body(
            c.to_f32(),
            u.to_f32(),
            cfg,
            scale,
            o,
            &mut mx[0],
            &mut bad[0],
        );
    }
    (bad.iter().fold(0, |a, &b| a | b) == 0).then(|| lane_max(mx))
}

/// Step 2 on an already combined row (finite or `−∞`), in place, and its maximum; `None` if a
/// value overflows.
pub(super) fn scale_in_place(scale: f32, y: &mut [f32]) -> Option<f32> {
    let mut mx = f32::NEG_INFINITY;
    for yi in y.iter_mut() {
        if *yi != f32::NEG_INFINITY {
            let s = *yi * scale + 0.0;
            if non_finite(s) != 0 {
                return None;
            }
            *yi = s;
            mx = if s > mx { s } else { mx };
        }
    }
    Some(mx)
}

/// Index of the first element of `y` equal to `m` (`y.len()` if none): a vectorised test per
/// chunk, then a scan of the chunk that holds it.
pub(super) fn first_equal(y: &[f32], m: f32) -> usize {
    let n = y.len() / LANES * LANES;
    for (c, ys) in y[..n].chunks_exact(LANES).enumerate() {
        if ys.iter().fold(false, |a, &yi| a | (yi == m)) {
            return c * LANES + ys.iter().position(|&yi| yi == m).unwrap_or(0);
        }
    }
    n + y[n..].iter().position(|&yi| yi == m).unwrap_or(y.len() - n)
}

/// For each 4-bit mask, the positions of its set bits, lowest first (padded with 0).
const SET_BITS: [[u32; 4]; 16] = {
    let mut t = [[0u32; 4]; 16];
    let mut mask = 0;
    while mask < 16 {
        let (mut n, mut bit) = (0, 0);
        while bit < 4 {
            if mask >> bit & 1 == 1 {
                t[mask][n] = bit as u32;
                n += 1;
            }
            bit += 1;
        }
        mask += 1;
    }
    t
};

/// Writes the candidates of `y` (maximum `m`, finite) to `order` in ascending id order and
/// returns their number.
///
/// Per group of 4 elements: the 4-bit mask of the tests (one packed compare and mask
/// extraction), one 4-id store from [`SET_BITS`], and an advance by the mask's popcount — no
/// branch per candidate or per group. A store may write up to 3 ids past the candidates found
/// so far, never past the group's own last index, so it stays inside `order` and later
/// stores overwrite it.
pub(super) fn candidates(y: &[f32], m: f32, order: &mut [u32]) -> usize {
    let mut count = 0usize;
    let n = y.len() / 4 * 4;
    let hit = |yi: f32| (yi - m >= HOPELESS) as usize;
    for (c, ys) in y[..n].chunks_exact(4).enumerate() {
        let bits = hit(ys[0]) | hit(ys[1]) << 1 | hit(ys[2]) << 2 | hit(ys[3]) << 3;
        let base = (c * 4) as u32;
        order[count..count + 4].copy_from_slice(&SET_BITS[bits].map(|l| base + l));
        count += bits.count_ones() as usize;
    }
    for (i, &yi) in y.iter().enumerate().skip(n) {
        order[count] = i as u32;
        count += hit(yi);
    }
    count
}
