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
