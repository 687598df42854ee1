//! Logit processing: guidance → temperature → top-k → top-p / min-p → fixed-point weights.
//!
//! # Specification (sampling scheme v1)
//!
//! Normative text: section 6 of `docs/spec/determinism-v1.md` (error order, every rounding, the
//! known-answer vectors of `fixtures/spec_v1.txt`); this summary agrees with it.
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
//!
//! [`process_tracked_with`] writes the same row into a weight row that a
//! [`SupportList`] tracks: when the previous result had at most [`crate::dist::SUPPORT_CAP`]
//! positive weights only those entries are zeroed (not all `V`), and the new ones are listed
//! for the draw ([`crate::dist`], "Rows with a known, small support"). `SliceBackend` does this
//! for every distribution row it rewrites when it has lists (`SliceStorage`'s backends do).

use crate::dist::{SupportList, PROB_SCALE, WEIGHT_ONE};
use crate::error::{Error, Result};
use crate::guidance::Guided;
use crate::logit::Logit;
use crate::MAX_VOCAB;

mod buckets;
mod kernels;
mod reference;
mod scan;
mod weights;

pub use buckets::{rank_bucket, BUCKETS};
pub use kernels::{
    composed_bucket_masses, portable_bucket_masses, portable_buckets, portable_candidates,
    portable_exp_shifted, portable_plain, portable_split_cut, portable_two_way, LogitRow, Portable,
    RowKernels, PORTABLE,
};

/// Logits more than this far below the top (after temperature) always get weight 0:
/// `exp(−32) · 2^40 ≈ 0.014 < 1`.
pub const HOPELESS: f32 = -32.0;

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
/// Implementation (each part's argument in its module): one fused, branch-free pass combines
/// the rows, applies the temperature and finds the maximum (module `process::scan`); candidates are
/// compacted branch-free (these two passes over the whole row are the [`RowKernels`] of
/// [`process_with`]); top-k and top-p select by counting candidates and
/// weight per *rank bucket* and order only the one bucket where the cut falls (module `process::buckets`);
/// the weights are computed by a branch-free `exp` in vectorised blocks (module
/// `process::weights`), and with top-p only the survivors' weights are written to `out`. A row with a mask takes a slower per-element first pass; a row with any NaN,
/// `+∞` or overflow goes through the straightforward implementation (module `process::reference`), which
/// reports the error exactly as the specification orders it. The integer results are
/// identical to the specification's (tested against the reference on random rows with ties,
/// `±0` and `−∞`, in every element format).
pub fn process<L: Logit>(
    input: &Guided<'_, L>,
    params: &SamplerParams,
    ws: &mut Workspace<'_>,
    out: &mut [u64],
) -> Result<Processed> {
    process_with(&Portable, input, params, ws, out)
}

/// [`process`] with the per-element passes of `kernels` (e.g. argen-cpu's run-time-dispatched
/// SIMD kernels): the same results bit for bit, since every [`RowKernels`] meets the exact
/// contracts documented on [`RowKernels`]' module (`process::kernels`).
pub fn process_with<L: Logit>(
    kernels: &dyn RowKernels,
    input: &Guided<'_, L>,
    params: &SamplerParams,
    ws: &mut Workspace<'_>,
    out: &mut [u64],
) -> Result<Processed> {
    run(kernels, input, params, ws, out, None)
}

/// [`process_with`] into a row whose support `list` tracks ([`crate::dist`], "Rows with a
/// known, small support"): the same weights in `out[..V]` and the same result, bit for bit.
///
/// If `list` describes `out[..V]` (it recorded this row's previous result), the previous
/// weights are cleared by zeroing only the listed entries (and the few entries top-k and top-p
/// used as scratch) instead of all `V`; afterwards `list` lists the new positive weights if
/// there are at most [`crate::dist::SUPPORT_CAP`], so that [`SupportList::dist`] draws over
/// them instead of the row. After an error the list is still true of the row (it forgets the
/// row wherever an error path may have written it).
pub fn process_tracked_with<L: Logit>(
    kernels: &dyn RowKernels,
    input: &Guided<'_, L>,
    params: &SamplerParams,
    ws: &mut Workspace<'_>,
    out: &mut [u64],
    list: &mut SupportList,
) -> Result<Processed> {
    run(kernels, input, params, ws, out, Some(list))
}

/// Zeroes `out` before the weights are written: with a list that describes `out`, only the
/// listed entries and the scratch prefix `out[..scratch]` (every other entry is 0 already).
fn clear(out: &mut [u64], list: Option<&mut SupportList>, scratch: usize) {
    match list {
        Some(list) if list.describes(out) => {
            out[..scratch].fill(0);
            list.clear(out);
        }
        _ => out.fill(0),
    }
}

fn run<L: Logit>(
    kernels: &dyn RowKernels,
    input: &Guided<'_, L>,
    params: &SamplerParams,
    ws: &mut Workspace<'_>,
    out: &mut [u64],
    mut list: Option<&mut SupportList>,
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
    // Steps 1–3.
    let y = &mut ws.logits[..v];
    let clean = match *input {
        Guided::Plain(row) => kernels.scale_plain(L::row(row), scale, y),
        Guided::TwoWay {
            cond,
            uncond,
            scale: s,
        } => kernels.scale_two_way(L::row(cond), L::row(uncond), s, scale, y),
        Guided::ThreeWay { .. } => None,
    };
    let m = match clean {
        Some(m) => m,
        None => {
            // A mask or an error somewhere. `None`: an error (the reference reports it).
            let top = match *input {
                Guided::Plain(row) => scan::masked_plain(row, scale, y),
                Guided::TwoWay {
                    cond,
                    uncond,
                    scale: s,
                } => scan::masked_two_way(cond, uncond, s, scale, y),
                Guided::ThreeWay { .. } => {
                    input.combine(y)?;
                    scan::scale_in_place(scale, y)
                }
            };
            let Some(m) = top else {
                if let Some(list) = list {
                    list.forget();
                }
                return reference::process_reference(input, params, ws, out);
            };
            if m == f32::NEG_INFINITY {
                return Err(Error::AllMasked);
            }
            m
        }
    };
    let y = &mut ws.logits[..v];
    let order = &mut ws.order[..v];
    let out = &mut out[..v];
    if params.temperature == 0.0 {
        // The top-ranked token: the lowest id holding the maximum (−0 became +0 in step 2).
        let argmax = scan::first_equal(y, m) as u32;
        clear(out, list.as_deref_mut(), 0);
        out[argmax as usize] = WEIGHT_ONE;
        if let Some(list) = list {
            list.record(out, &[argmax]);
        }
        return Ok(Processed {
            total: WEIGHT_ONE,
            argmax,
            support: 1,
        });
    }
    let n = kernels.candidates(y, m, order);
    // From here on only candidates matter: their values move to the front of `y`, beside
    // their ids (in place: `order[j] >= j`, and entries below `j` are never read again), so
    // every later pass reads two compact arrays in step.
    for j in 0..n {
        y[j] = y[order[j] as usize];
    }
    let (mut cy, mut cid) = (&mut y[..n], &mut order[..n]);
    // The top-ranked token is the first candidate (ascending ids) holding the maximum.
    let argmax = scan::first_equal(cy, m);
    let argmax = cid.get(argmax).copied().unwrap_or(0);
    // Step 4 (`out` is free scratch until the weights; `scratch` of it is used).
    let mut scratch = 0;
    if let Some(k) = params.top_k {
        let k = k as usize;
        if k < n {
            scratch = buckets::top_k(kernels, m, cy, cid, k, out);
            (cy, cid) = (&mut cy[..k], &mut cid[..k]);
        }
    }
    // Steps 5–6: with top-p, the weights' total and bucket masses first, then the survivors
    // move to the front (`out` still scratch).
    if let Some(p) = params.top_p.filter(|&p| p < 1.0) {
        let mut mass = [0u64; buckets::BUCKETS];
        let z = weights::mass(kernels, m, cy, &mut mass);
        let threshold = ((p as f64 * PROB_SCALE) as u128).max(1) * z as u128;
        let (s, used) = buckets::top_p(kernels, m, cy, cid, &mass, threshold, out);
        scratch = scratch.max(used);
        (cy, cid) = (&mut cy[..s], &mut cid[..s]);
    }
    clear(out, list.as_deref_mut(), scratch);

    // Step 7 (min-p relative to the top token's weight 2^40) as the survivors' weights are
    // written.
    let floor = params
        .min_p
        .filter(|&p| p > 0.0)
        .map_or(0, |p| (p as f64 * PROB_SCALE) as u128 * WEIGHT_ONE as u128);
    let (total, support) = weights::scatter(kernels, m, cy, cid, out, floor);
    if let Some(list) = list {
        list.record(out, cid);
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
    use super::reference::process_reference;
    use super::*;
    use half::{bf16, f16};
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
            let v =
                [1usize, 2, 3, 5, 7, 16, 17, 31, 33, 100, 513, 1000, 4099][r.below(13) as usize];
            let style = r.below(4);
            let rows: [Vec<f32>; 3] =
                core::array::from_fn(|_| (0..v).map(|_| r.logit(style)).collect());
            let params = SamplerParams {
                temperature: [0.0, 1.0, 0.7, 1.3, 1e-3][r.below(5) as usize],
                // k = 1, k = V, k = V + 1 (an error both must report), or random.
                top_k: match r.below(6) {
                    0 | 1 => None,
                    2 => Some(1),
                    3 => Some(v as u32 + r.below(2) as u32),
                    _ => Some(1 + r.below(v as u64) as u32),
                },
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
            check(&Guided::Plain(&b[0][..]), &params, v, &what);
            let two_b = Guided::TwoWay {
                cond: &b[0][..],
                uncond: &b[1][..],
                scale,
            };
            check(&two_b, &params, v, &what);
            let h: [Vec<f16>; 2] =
                core::array::from_fn(|i| rows[i].iter().map(|&x| f16::from_f32(x)).collect());
            check(&Guided::Plain(&h[0][..]), &params, v, &what);
            let two_h = Guided::TwoWay {
                cond: &h[0][..],
                uncond: &h[1][..],
                scale,
            };
            check(&two_h, &params, v, &what);
        }
    }

    /// Tracked processing into one reused row equals processing into a fresh row, row after
    /// row: the same result, the same weights in the whole row (so the partial clear removed
    /// every earlier weight and every scratch entry of top-k and top-p), a list that holds
    /// exactly the positive weights' ids whenever there are at most `SUPPORT_CAP`, and the
    /// same token from the listed draw as from the dense one at every prefix boundary and at
    /// random `r`. Rows mix wide and tied values, masks, errors (the reference path writes the
    /// row), greedy rows, top-p keeping everything, min-p, and a vocabulary change (a list of
    /// another row length describes nothing).
    #[test]
    fn tracked_processing_equals_fresh_processing_row_after_row() {
        use crate::dist::{Dist, SupportList, SUPPORT_CAP};
        let mut r = Rng(0x5eed_0f5b_a25e);
        let (mut y, mut o, mut out) = (vec![0.0f32; 4099], vec![0u32; 4099], vec![0u64; 4099]);
        let mut list = SupportList::new();
        let (mut listed, mut sparse_draws) = (0usize, 0usize);
        let mut v = 1000usize;
        for case in 0..4000 {
            if r.below(40) == 0 {
                v = [1usize, 2, 17, 100, 513, 1000, 4099][r.below(7) as usize];
            }
            let style = r.below(5);
            let row: Vec<f32> = (0..v)
                .map(|_| match style {
                    // Ties in one bucket: many keys in top-k's and top-p's scratch.
                    4 => [1.0f32, 1.0, 1.0 + 1e-3, 0.97][r.below(4) as usize],
                    _ => r.logit(style),
                })
                .collect();
            let params = SamplerParams {
                temperature: [0.0, 1.0, 1.0, 0.7, 0.05][r.below(5) as usize],
                top_k: match r.below(5) {
                    0 | 1 => None,
                    2 => Some(1),
                    _ => Some(1 + r.below(v as u64) as u32),
                },
                top_p: (r.below(4) > 0)
                    .then(|| [0.05f32, 0.5, 0.9, 0.999, 1.0][r.below(5) as usize]),
                min_p: (r.below(4) == 0).then(|| [0.0f32, 0.01, 0.3, 1.0][r.below(4) as usize]),
            };
            let g = Guided::Plain(&row[..]);
            let what = std::format!("case {case} v={v} style={style} {params:?}");
            let (want, fresh) = run(process, &g, &params, v);
            let mut ws = Workspace {
                logits: &mut y,
                order: &mut o,
            };
            let got = process_tracked_with(&Portable, &g, &params, &mut ws, &mut out, &mut list);
            assert_eq!(got, want, "{what}");
            let Ok(p) = want else { continue };
            let row_out = &out[..v];
            assert_eq!(row_out, &fresh[..], "{what}");
            let positive: Vec<u32> = (0..v as u32).filter(|&i| fresh[i as usize] > 0).collect();
            match list.ids_for(row_out) {
                Some(ids) => {
                    assert_eq!(ids, &positive[..], "{what}");
                    listed += 1;
                }
                None => assert!(positive.len() > SUPPORT_CAP, "{what}: not listed"),
            }
            let sparse = list.dist(row_out, p.total).unwrap();
            let dense = Dist::with_total(&fresh, p.total).unwrap();
            assert_eq!(dense.support(), None);
            sparse_draws += sparse.support().is_some() as usize;
            let mut rs = vec![0u64, p.total - 1, p.total, u64::MAX - 1];
            let mut acc = 0u64;
            for &i in &positive {
                acc += fresh[i as usize];
                rs.extend([acc - 1, acc, acc + 1]);
            }
            rs.extend((0..8).map(|_| r.below(p.total)));
            for x in rs {
                assert_eq!(sparse.locate(x), dense.locate(x), "{what}: r={x}");
            }
            for pos in 0..4 {
                let key = crate::rng::Key::new(case as u64, 3, crate::rng::Purpose::SAMPLE, pos);
                assert_eq!(
                    crate::sample::sample(&sparse, key),
                    crate::sample::sample(&dense, key),
                    "{what}"
                );
            }
        }
        // The fast paths ran (the bounds are far below what this seed gives).
        assert!(
            listed > 1500 && sparse_draws > 1500,
            "{listed} {sparse_draws}"
        );
    }

    /// A list describes only the row it recorded: another row (or the same memory with another
    /// length) is cleared in full and drawn from densely.
    #[test]
    fn a_list_describes_only_its_own_row() {
        use crate::dist::SupportList;
        let row = [3.0f32, 1.0, 2.0, 0.5];
        let params = SamplerParams {
            top_p: Some(0.5),
            ..SamplerParams::default()
        };
        let (mut y, mut o) = (vec![0.0f32; 4], vec![0u32; 4]);
        let mut ws = Workspace {
            logits: &mut y,
            order: &mut o,
        };
        let (mut a, mut b) = ([0u64; 4], [9u64; 4]);
        let mut list = SupportList::new();
        let g = Guided::Plain(&row[..]);
        let p = process_tracked_with(&Portable, &g, &params, &mut ws, &mut a, &mut list).unwrap();
        assert_eq!(list.ids_for(&a), Some(&[0u32][..]));
        assert_eq!(list.ids_for(&a[..3]), None);
        assert_eq!(list.ids_for(&b), None);
        assert_eq!(list.dist(&b, p.total).unwrap().support(), None);
        // Processing `b` (full of stale weights) with `a`'s list clears `b` in full.
        process_tracked_with(&Portable, &g, &params, &mut ws, &mut b, &mut list).unwrap();
        assert_eq!(b, a);
        list.forget();
        assert_eq!(list.ids_for(&b), None);
    }

    /// Flat and nearly flat rows put every candidate into one rank bucket: the top-k
    /// selection and the top-p sort then work on the whole row.
    #[test]
    fn one_bucket_rows_equal_the_reference() {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        for case in 0..300 {
            let v = [2usize, 64, 1000, 5000][case % 4];
            let row: Vec<f32> = (0..v)
                .map(|_| match case % 3 {
                    0 => 1.0,
                    1 => 1.0 + (r.below(4) as f32) * 1e-3,
                    _ => -(r.below(3) as f32) * 0.01,
                })
                .collect();
            let params = SamplerParams {
                temperature: 1.0,
                top_k: (case % 2 == 0).then(|| 1 + r.below(v as u64) as u32),
                top_p: Some([0.1f32, 0.5, 0.9][r.below(3) as usize]),
                min_p: None,
            };
            check(
                &Guided::Plain(&row[..]),
                &params,
                v,
                &std::format!("flat case {case}"),
            );
        }
    }
}
