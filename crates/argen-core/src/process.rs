//! Logit processing: guidance → temperature → top-k → top-p / min-p → fixed-point weights.
//!
//! # Specification (sampling scheme v1)
//!
//! Input: a [`Guided`] row (any [`Logit`] format) of `V` logits, `1 <= V <= MAX_VOCAB`; `−∞` marks a
//! masked token, NaN and `+∞` are errors. Output: fixed-point weights ([`crate::dist`]).
//!
//! 1. **Guidance** combines the rows into one `f32` row `x` ([`crate::guidance`]).
//! 2. **Temperature** `T`: `T = 0` selects greedy decoding — the output is one-hot on the top-ranked
//!    token. Otherwise `y_i = x_i · (1/T)` with `1/T` rounded to `f32` once; then `−0` becomes `+0`.
//! 3. **Ranking**: tokens are ordered by `y` descending, ties by token id ascending. `m` is the `y` of
//!    the top-ranked token. (Implemented with the monotone key `ord(y) << 32 | !id`.)
//! 4. **Top-k**: only the `k` top-ranked unmasked tokens stay candidates (`k = None`: all unmasked).
//! 5. **Weights**: a candidate gets `w_i = trunc(exp(y_i − m) · 2^40)` with the deterministic
//!    [`crate::detmath::exp_f32`]; so the top token has exactly [`WEIGHT_ONE`] `= 2^40` and tokens
//!    more than about 27.7 nats below it get weight 0. Non-candidates get 0. `Z = Σ w`.
//! 6. **Top-p** (`p ∈ (0, 1]`): with `P = max(1, trunc(p · 2^32))`, candidate `j` survives iff the
//!    weight of the candidates ranked strictly before it, `S_j`, satisfies `S_j · 2^32 < P · Z`
//!    (exact integer arithmetic): the shortest top-ranked prefix whose mass reaches `p`. `P ≥ 1`
//!    makes the top token survive for every valid `p`, also below `2^-32` (where `trunc` alone
//!    would give `P = 0` and keep nothing): `S = 0 < P · Z`.
//! 7. **Min-p** (`p ∈ [0, 1]`): with `M = trunc(p · 2^32)`, candidate `i` survives iff
//!    `w_i · 2^32 >= M · 2^40`, i.e. its probability is at least `p` times the top token's.
//! 8. Top-p and min-p are both evaluated against the weights of step 5; the kept set is their
//!    intersection (so their order does not matter). The top token always survives, so the output
//!    total is at least `2^40`.
//!
//! (Implementation note: tokens more than 32 nats below the top are dropped before step 4; they
//! would get weight 0 in step 5 and rank below every other candidate, so no output changes.)
//!
//! Every step after the `exp` is exact integer arithmetic, which is why any backend that reproduces
//! [`crate::detmath::exp_f32`] reproduces the weights bit for bit.

use crate::dist::WEIGHT_ONE;
use crate::error::{Error, Result};
use crate::guidance::Guided;
use crate::logit::Logit;
use crate::MAX_VOCAB;

/// Logits more than this far below the top (after temperature) always get weight 0:
/// `exp(−32) · 2^40 ≈ 0.014 < 1`.
const HOPELESS: f32 = -32.0;

/// Sampling parameters of one row.
///
/// With the `serde` feature, a missing field takes its [`Default`] value (`temperature` 1, no
/// truncation), so `{}` is plain sampling.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct SamplerParams {
    /// Temperature `T >= 0`; `0` means greedy.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (`1 <= k <= V`); `None` disables.
    pub top_k: Option<u32>,
    /// Nucleus mass in `(0, 1]`; `None` disables.
    pub top_p: Option<f32>,
    /// Minimum probability relative to the top token, in `[0, 1]`; `None` disables.
    pub min_p: Option<f32>,
}

impl Default for SamplerParams {
    /// Plain sampling at temperature 1 with no truncation.
    fn default() -> Self {
        SamplerParams {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            min_p: None,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding (argmax, ties to the lowest id).
    pub const GREEDY: SamplerParams = SamplerParams {
        temperature: 0.0,
        top_k: None,
        top_p: None,
        min_p: None,
    };

    /// Checks every parameter against its documented range for a vocabulary of `vocab` tokens.
    pub fn validate(&self, vocab: usize) -> Result<()> {
        let t = self.temperature;
        if !(t.is_finite() && t >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "temperature",
                reason: "must be finite and >= 0 (0 means greedy)",
            });
        }
        if t > 0.0 && !(1.0 / t).is_finite() {
            return Err(Error::InvalidParameter {
                name: "temperature",
                reason: "is so small that 1/temperature overflows; use 0 for greedy",
            });
        }
        if let Some(k) = self.top_k {
            if k == 0 || k as usize > vocab {
                return Err(Error::InvalidParameter {
                    name: "top_k",
                    reason: "must be between 1 and the vocabulary size",
                });
            }
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::InvalidParameter {
                    name: "top_p",
                    reason: "must be in (0, 1]",
                });
            }
        }
        if let Some(p) = self.min_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::InvalidParameter {
                    name: "min_p",
                    reason: "must be in [0, 1]",
                });
            }
        }
        Ok(())
    }
}

/// Caller-owned scratch space for [`process`]: one `f32` and one `u32` per vocabulary entry.
#[derive(Debug)]
pub struct Workspace<'a> {
    /// The combined, temperature-scaled row.
    pub logits: &'a mut [f32],
    /// Candidate token ids.
    pub order: &'a mut [u32],
}

/// Summary of a processed row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Processed {
    /// Total weight `Z` of the output row (at least `2^40`).
    pub total: u64,
    /// The top-ranked token (greedy choice).
    pub argmax: u32,
    /// Number of tokens with positive weight.
    pub support: u32,
}

/// The monotone ranking key of step 3: larger key = higher rank.
#[inline(always)]
pub fn rank_key(y: f32, id: u32) -> u64 {
    let bits = y.to_bits();
    let ord = if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    ((ord as u64) << 32) | (!id) as u64
}

/// Processes one guided row into fixed-point weights `out[..V]` (see the module documentation).
///
/// Implementation: one fused, branch-free pass combines the rows, applies the temperature
/// and finds the maximum (vectorisable; two-way guidance reads each input once); candidates
/// are compacted with a branch-free store; top-k selects on `u64` rank keys
/// (`select_nth_unstable`, expected linear); top-p buckets the weights and sorts only the
/// bucket where the cut falls instead of sorting every candidate. A row
/// with any NaN, `+∞` or overflow goes through the straightforward implementation, which
/// reports the error exactly as the specification orders it. The integer results are
/// identical to the specification's (tested against the straightforward implementation on
/// random rows with ties, `±0` and `−∞`).
pub fn process<L: Logit>(
    input: &Guided<'_, L>,
    params: &SamplerParams,
    ws: &mut Workspace<'_>,
    out: &mut [u64],
) -> Result<Processed> {
    let v = input.validate()?;
    if v > MAX_VOCAB {
        return Err(Error::VocabTooLarge { vocab: v });
    }
    params.validate(v)?;
    for len in [ws.logits.len(), ws.order.len(), out.len()] {
        if len < v {
            return Err(Error::BufferTooSmall {
                needed: v,
                found: len,
            });
        }
    }
    let scale = if params.temperature > 0.0 {
        1.0 / params.temperature
    } else {
        1.0
    };
    // Steps 1–3, fused. `None`: some value is not finite (the reference reports it).
    let top = {
        let y = &mut ws.logits[..v];
        match *input {
            Guided::Plain(row) => scaled_plain(row, scale, y),
            Guided::TwoWay {
                cond,
                uncond,
                scale: s,
            } => scaled_two_way(cond, uncond, s, scale, y),
            Guided::ThreeWay { .. } => {
                input.combine(y)?;
                scale_in_place(scale, y)
            }
        }
    };
    let Some(m) = top else {
        return process_reference(input, params, ws, out);
    };
    if m == f32::NEG_INFINITY {
        return Err(Error::AllMasked);
    }
    let y = &ws.logits[..v];
    let order = &mut ws.order[..v];
    let out = &mut out[..v];
    // The top-ranked token: the lowest id holding the maximum (−0 became +0 in step 2).
    let argmax = first_equal(y, m) as u32;
    if params.temperature == 0.0 {
        out.fill(0);
        out[argmax as usize] = WEIGHT_ONE;
        return Ok(Processed {
            total: WEIGHT_ONE,
            argmax,
            support: 1,
        });
    }
    // Candidates (see the reference): a vectorised bit mask per chunk, then one store per
    // candidate.
    let is_cand = |yi: f32| yi != f32::NEG_INFINITY && yi - m >= HOPELESS;
    let mut candidates = 0usize;
    let n = v / LANES * LANES;
    for (c, ys) in y[..n].chunks_exact(LANES).enumerate() {
        let mut mask = ys
            .iter()
            .zip(LANE_BITS)
            .fold(0u32, |a, (&yi, bit)| a | if is_cand(yi) { bit } else { 0 });
        while mask != 0 {
            order[candidates] = (c * LANES) as u32 + mask.trailing_zeros();
            candidates += 1;
            mask &= mask - 1;
        }
    }
    for (i, &yi) in y.iter().enumerate().skip(n) {
        order[candidates] = i as u32;
        candidates += is_cand(yi) as usize;
    }
    // Step 4: select the k best on rank keys (`out` is free scratch until the weights).
    if let Some(k) = params.top_k {
        let k = k as usize;
        if k < candidates {
            let keys = &mut out[..candidates];
            for (key, &i) in keys.iter_mut().zip(order.iter()) {
                *key = rank_key(y[i as usize], i);
            }
            keys.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
            for (o, &key) in order.iter_mut().zip(keys[..k].iter()) {
                *o = !(key as u32);
            }
            candidates = k;
        }
    }
    out.fill(0);
    let cand = &mut order[..candidates];

    // Step 5: weights.
    let mut total = 0u64;
    for &i in cand.iter() {
        let e = crate::detmath::exp_f32(y[i as usize] - m);
        // 0 <= e·2^40 <= 2^40: the signed conversion (one instruction) truncates exactly as
        // the unsigned one.
        let w = (e * WEIGHT_ONE as f32) as i64 as u64;
        out[i as usize] = w;
        total += w;
    }

    // Step 6: top-p, by partitioning on the rank.
    if let Some(p) = params.top_p.filter(|&p| p < 1.0) {
        let threshold = (p as f64 * 4_294_967_296.0) as u128 * total as u128;
        top_p_cut(y, cand, out, threshold);
    }

    // Step 7: min-p relative to the top token's weight 2^40.
    if let Some(p) = params.min_p.filter(|&p| p > 0.0) {
        let floor = (p as f64 * 4_294_967_296.0) as u128 * WEIGHT_ONE as u128;
        for &i in cand.iter() {
            if ((out[i as usize] as u128) << 32) < floor {
                out[i as usize] = 0;
            }
        }
    }

    let mut total = 0u64;
    let mut support = 0u32;
    for &i in cand.iter() {
        let w = out[i as usize];
        total += w;
        support += (w > 0) as u32;
    }
    Ok(Processed {
        total,
        argmax,
        support,
    })
}

/// Lanes of the fused passes: independent maxima and flags the compiler keeps in vectors.
const LANES: usize = 16;

/// `1 << l` for every lane `l` (a constant vector: the mask fold vectorises).
const LANE_BITS: [u32; LANES] = {
    let mut b = [0u32; LANES];
    let mut l = 0;
    while l < LANES {
        b[l] = 1 << l;
        l += 1;
    }
    b
};

/// Index of the first element of `y` equal to `m` (`y.len()` if none): a vectorised test per
/// chunk, then a scan of the chunk that holds it.
fn first_equal(y: &[f32], m: f32) -> usize {
    let n = y.len() / LANES * LANES;
    for (c, ys) in y[..n].chunks_exact(LANES).enumerate() {
        if ys.iter().fold(false, |a, &yi| a | (yi == m)) {
            return c * LANES + ys.iter().position(|&yi| yi == m).unwrap_or(0);
        }
    }
    n + y[n..].iter().position(|&yi| yi == m).unwrap_or(y.len() - n)
}

/// 1 if `x` is not finite, else 0.
#[inline(always)]
fn non_finite(x: f32) -> u32 {
    (x.to_bits() & 0x7f80_0000 == 0x7f80_0000) as u32
}

/// Lane-wise maximum of `LANES` accumulators (no NaN reaches it: such rows are flagged).
#[inline(always)]
fn lane_max(acc: [f32; LANES]) -> f32 {
    acc.iter()
        .copied()
        .fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a })
}

/// Steps 1–2 of an unguided row into `y` and its maximum; `None` if a value is NaN, `+∞` or
/// overflows (exactly when the reference errs).
fn scaled_plain<L: Logit>(row: &[L], scale: f32, y: &mut [f32]) -> Option<f32> {
    let mut mx = [f32::NEG_INFINITY; LANES];
    let mut bad = [0u32; LANES];
    #[inline(always)]
    fn body(x: f32, scale: f32, o: &mut f32, mx: &mut f32, bad: &mut u32) {
        let masked = x == f32::NEG_INFINITY;
        let s = x * scale + 0.0;
        // As in `scaled_two_way`.
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
/// maximum; `None` as [`scaled_plain`].
fn scaled_two_way<L: Logit>(
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
fn scale_in_place(scale: f32, y: &mut [f32]) -> Option<f32> {
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

/// Buckets of [`weight_bucket`]: 0 for weight 0, then 8 per binary order of magnitude.
const BUCKETS: usize = 1 + 64 * 8;

/// A bucket index that never decreases as the weight grows: 0 for 0, else the position of
/// the top bit and the 3 bits below it (a tiny float).
#[inline(always)]
fn weight_bucket(w: u64) -> usize {
    if w == 0 {
        return 0;
    }
    let msb = 63 - w.leading_zeros() as usize;
    let sub = if msb >= 3 {
        (w >> (msb - 3)) & 7
    } else {
        (w << (3 - msb)) & 7
    };
    1 + msb * 8 + sub as usize
}

/// Step 6 without sorting all candidates: zeroes the weights of the candidates `cand` that
/// top-p drops. Survivors are a prefix in rank order (the mass ranked before a candidate
/// grows with its rank), and a heavier weight always ranks earlier, so bucketing the weights
/// ([`weight_bucket`]) cuts the rank order into consecutive segments: whole buckets survive
/// while the mass up to and including them stays below the threshold; the first bucket that
/// reaches it is walked exactly, in rank order (sorted by key: usually a handful of tokens);
/// every lighter bucket is dropped.
fn top_p_cut(y: &[f32], cand: &mut [u32], out: &mut [u64], threshold: u128) {
    let mut mass = [0u64; BUCKETS];
    for &i in cand.iter() {
        let w = out[i as usize];
        mass[weight_bucket(w)] += w;
    }
    // The boundary bucket: the heaviest one whose cumulative mass reaches the threshold.
    let mut before = 0u64;
    let mut cut = None;
    for b in (0..BUCKETS).rev() {
        if (((before + mass[b]) as u128) << 32) >= threshold {
            cut = Some(b);
            break;
        }
        before += mass[b];
    }
    let Some(cut) = cut else {
        return; // everything survives
    };
    // Boundary bucket's candidates to the front, walked in rank order.
    let mut n = 0;
    for j in 0..cand.len() {
        if weight_bucket(out[cand[j] as usize]) == cut {
            cand.swap(n, j);
            n += 1;
        }
    }
    cand[..n].sort_unstable_by_key(|&i| core::cmp::Reverse(rank_key(y[i as usize], i)));
    for &i in &cand[..n] {
        if ((before as u128) << 32) < threshold {
            before += out[i as usize];
        } else {
            out[i as usize] = 0;
        }
    }
    // Lighter buckets rank after the cut.
    for &i in &cand[n..] {
        let w = &mut out[i as usize];
        if weight_bucket(*w) < cut {
            *w = 0;
        }
    }
}

/// The straightforward implementation of the specification: the fallback of [`process`] for
/// rows with non-finite values (it produces the errors), and the reference its tests compare
/// against.
fn process_reference<L: Logit>(
    input: &Guided<'_, L>,
    params: &SamplerParams,
    ws: &mut Workspace<'_>,
    out: &mut [u64],
) -> Result<Processed> {
    let v = input.validate()?;
    if v > MAX_VOCAB {
        return Err(Error::VocabTooLarge { vocab: v });
    }
    params.validate(v)?;
    for len in [ws.logits.len(), ws.order.len(), out.len()] {
        if len < v {
            return Err(Error::BufferTooSmall {
                needed: v,
                found: len,
            });
        }
    }
    let y = &mut ws.logits[..v];
    let order = &mut ws.order[..v];
    let out = &mut out[..v];
    input.combine(y)?;

    // Step 2: temperature (1/T rounded once) and −0 → +0; step 3: the top-ranked token.
    let scale = if params.temperature > 0.0 {
        1.0 / params.temperature
    } else {
        1.0
    };
    let mut best: Option<(u64, u32)> = None;
    for (i, yi) in y.iter_mut().enumerate() {
        if *yi == f32::NEG_INFINITY {
            continue;
        }
        let s = *yi * scale + 0.0;
        if !s.is_finite() {
            return Err(Error::Overflow { index: i });
        }
        *yi = s;
        let key = rank_key(s, i as u32);
        if best.is_none_or(|(k, _)| key > k) {
            best = Some((key, i as u32));
        }
    }
    let (_, argmax) = best.ok_or(Error::AllMasked)?;
    out.fill(0);
    if params.temperature == 0.0 {
        out[argmax as usize] = WEIGHT_ONE;
        return Ok(Processed {
            total: WEIGHT_ONE,
            argmax,
            support: 1,
        });
    }
    // Candidates: tokens within HOPELESS nats of the top. A token further below gets weight
    // trunc(exp(y − m)·2^40) = 0 whatever happens, and it ranks below every candidate, so
    // leaving it out of the top-k selection and the top-p walk changes no output bit — it only
    // spares the selection most of a peaked row.
    let m = y[argmax as usize];
    let mut candidates = 0usize;
    for (i, &yi) in y.iter().enumerate() {
        if yi != f32::NEG_INFINITY && yi - m >= HOPELESS {
            order[candidates] = i as u32;
            candidates += 1;
        }
    }

    // Step 4: top-k partitions the k best candidates to the front.
    let by_rank =
        |a: &u32, b: &u32| rank_key(y[*b as usize], *b).cmp(&rank_key(y[*a as usize], *a));
    if let Some(k) = params.top_k {
        let k = k as usize;
        if k < candidates {
            order[..candidates].select_nth_unstable_by(k - 1, by_rank);
            candidates = k;
        }
    }
    let cand = &mut order[..candidates];

    // Step 5: weights.
    let mut total = 0u64;
    for &i in cand.iter() {
        let e = crate::detmath::exp_f32(y[i as usize] - m);
        let w = (e * WEIGHT_ONE as f32) as u64;
        out[i as usize] = w;
        total += w;
    }

    // Step 6: top-p over the candidates in rank order.
    if let Some(p) = params.top_p.filter(|&p| p < 1.0) {
        let threshold = ((p as f64 * 4_294_967_296.0) as u128).max(1) * total as u128;
        cand.sort_unstable_by(by_rank);
        let mut before = 0u64;
        for &i in cand.iter() {
            if ((before as u128) << 32) < threshold {
                before += out[i as usize];
            } else {
                out[i as usize] = 0;
            }
        }
    }

    // Step 7: min-p relative to the top token's weight 2^40.
    if let Some(p) = params.min_p.filter(|&p| p > 0.0) {
        let floor = (p as f64 * 4_294_967_296.0) as u128 * WEIGHT_ONE as u128;
        for &i in cand.iter() {
            if ((out[i as usize] as u128) << 32) < floor {
                out[i as usize] = 0;
            }
        }
    }

    let mut total = 0u64;
    let mut support = 0u32;
    for &i in cand.iter() {
        let w = out[i as usize];
        total += w;
        support += (w > 0) as u32;
    }
    Ok(Processed {
        total,
        argmax,
        support,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use half::bf16;
    use std::vec;
    use std::vec::Vec;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// A logit from a few regimes: wide normal-ish values, a handful of repeated values
        /// (ties), ±0, −∞ (masks), occasionally huge values that overflow under guidance.
        fn logit(&mut self, style: u64) -> f32 {
            match self.below(20) {
                0 => f32::NEG_INFINITY,
                1 => 0.0,
                2 => -0.0,
                _ => match style {
                    0 => ((self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 40.0,
                    1 => [1.0f32, 2.0, -3.5, 7.25, 0.5][self.below(5) as usize],
                    2 => ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 3.0,
                    _ => {
                        if self.below(200) == 0 {
                            [f32::NAN, f32::INFINITY, 3.0e38][self.below(3) as usize]
                        } else {
                            (self.below(64) as f32) * 0.25
                        }
                    }
                },
            }
        }
    }

    fn run<L: Logit>(
        f: fn(&Guided<'_, L>, &SamplerParams, &mut Workspace<'_>, &mut [u64]) -> Result<Processed>,
        g: &Guided<'_, L>,
        p: &SamplerParams,
        v: usize,
    ) -> (Result<Processed>, Vec<u64>) {
        let (mut y, mut o, mut w) = (vec![7.0f32; v], vec![3u32; v], vec![5u64; v]);
        let mut ws = Workspace {
            logits: &mut y,
            order: &mut o,
        };
        let r = f(g, p, &mut ws, &mut w);
        (r, w)
    }

    fn check<L: Logit>(g: &Guided<'_, L>, p: &SamplerParams, v: usize, what: &str) {
        let (want, ww) = run(process_reference, g, p, v);
        let (got, gw) = run(process, g, p, v);
        assert_eq!(got, want, "{what} {p:?}");
        if want.is_ok() {
            assert_eq!(gw, ww, "{what} {p:?}");
        }
    }

    #[test]
    fn fast_pipeline_equals_the_reference_on_random_rows() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..3000 {
            let v = [1usize, 2, 5, 16, 17, 33, 100, 1000][r.below(8) as usize];
            let style = r.below(4);
            let rows: [Vec<f32>; 3] =
                core::array::from_fn(|_| (0..v).map(|_| r.logit(style)).collect());
            let params = SamplerParams {
                temperature: [0.0, 1.0, 0.7, 1.3, 1e-3][r.below(5) as usize],
                top_k: (r.below(3) > 0).then(|| 1 + r.below(v as u64) as u32),
                top_p: (r.below(3) > 0)
                    .then(|| [0.05f32, 0.5, 0.9, 0.999, 1.0][r.below(5) as usize]),
                min_p: (r.below(3) == 0).then(|| [0.0f32, 0.01, 0.3, 1.0][r.below(4) as usize]),
            };
            let scale = [4.0f32, 1.0, 0.0, -2.0, 1e30][r.below(5) as usize];
            let what = std::format!("case {case} v={v} style={style} cfg={scale}");
            check(&Guided::Plain(&rows[0][..]), &params, v, &what);
            let two = Guided::TwoWay {
                cond: &rows[0][..],
                uncond: &rows[1][..],
                scale,
            };
            check(&two, &params, v, &what);
            let three = Guided::ThreeWay {
                cond: &rows[0][..],
                uncond: &rows[1][..],
                reformulated: &rows[2][..],
                w: scale,
            };
            check(&three, &params, v, &what);
            let b: [Vec<bf16>; 2] =
                core::array::from_fn(|i| rows[i].iter().map(|&x| bf16::from_f32(x)).collect());
            let two_b = Guided::TwoWay {
                cond: &b[0][..],
                uncond: &b[1][..],
                scale,
            };
            check(&two_b, &params, v, &what);
        }
    }
}
