//! The straightforward implementation of the logit-processing specification (steps 1–8 of
//! [`super`]), written to be read against `docs/spec/determinism-v1.md` section 6 rather than to
//! be fast: guidance, temperature and the top-ranked token in one scalar pass, candidates,
//! top-k by `select_nth_unstable` on the rank order, weights, then top-p by sorting every
//! candidate and walking the rank order with exact integer sums.
//!
//! It is the fallback of [`super::process`] for rows with a NaN, `+∞` or overflow (it reports
//! the errors in the specified order), and the reference that the tests of the fast path
//! compare against bit for bit.

use super::{rank_key, Processed, SamplerParams, Workspace, HOPELESS};
use crate::dist::{PROB_SCALE, WEIGHT_ONE};
use crate::error::{Error, Result};
use crate::guidance::Guided;
use crate::logit::Logit;
use crate::MAX_VOCAB;

/// The straightforward implementation of the specification: the fallback of [`process`] for
/// rows with non-finite values (it produces the errors), and the reference its tests compare
/// against.
pub fn process_reference<L: Logit>(
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
        let threshold = ((p as f64 * PROB_SCALE) as u128).max(1) * total as u128;
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
        let floor = (p as f64 * PROB_SCALE) as u128 * WEIGHT_ONE as u128;
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
