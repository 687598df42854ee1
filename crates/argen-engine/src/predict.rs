//! What a decode costs according to a cost profile: the model calls of a run, counted by model
//! and row count ([`RowHistogram`], an [`Observer`] of the decoding loop), and the time a
//! [`CostProfile`] predicts for them ([`predict_nanos`]).
//!
//! # The model
//! A decode is a sequence of model calls; a call of `r` model rows costs what the profile's
//! curve gives for `r` (`argen_core::cost`: forward plus the processing and sampling or
//! verification of its rows, measured by [`crate::calibrate`]). The prediction of a run is
//!
//! ```text
//! T = Σ_r  n_target(r) · t_target(r)  +  Σ_r  n_drafter(r) · t_drafter(r)
//! ```
//!
//! with `n_model(r)` the number of calls of `r` rows, and the predicted speed-up of a method
//! over vanilla is `T_vanilla / T_method` for the same images. Everything else the loop does —
//! the decoder's own bookkeeping between calls, judge calls (GridAR's verifier, Best-of-N's
//! scorer: [`RowHistogram::judge`] counts them, the profile has no cost for them) — is outside
//! the model; the bench shows how far off that leaves the prediction.
//!
//! # What counts as one call of how many rows
//! The counts follow what the host runs (`argen_model::ModelHost`), not only what the protocol
//! names:
//! * a target run or a batch of target runs: one call of `inputs × variants` rows summed over
//!   its groups;
//! * a prefill: one call of `(cls_token_num + prefilled tokens) × variants` rows — the condition
//!   positions are computed like any other row;
//! * a drafter run: its committed catch-up inputs and its pending inputs are two forwards, so
//!   up to two calls (`commit × variants` and `(inputs − commit) × variants` rows), summed over
//!   the groups of a batch.
//!
//! Counts are integers taken from the actions, so a run's histogram is as deterministic as its
//! tokens.

use std::collections::BTreeMap;

use argen_core::cost::CostProfile;
use argen_core::decode::{Action, Decoder, Group, Observer};
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::Error;

/// Model calls by model and row count, and judge calls (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowHistogram {
    /// Condition positions of a prefill (the model's `cls_token_num`).
    pub cls: u32,
    /// Prefills by `(prefilled image tokens, guidance variants)`: each is a target call of
    /// `(cls + tokens) × variants` rows, kept apart so that a histogram can be costed for a
    /// model with another condition length.
    pub prefill: BTreeMap<(u32, u32), u64>,
    /// Target calls by rows (prefills excluded).
    pub target: BTreeMap<u32, u64>,
    /// Drafter calls by rows.
    pub drafter: BTreeMap<u32, u64>,
    /// Check, Score and Reformulate actions.
    pub judge: u64,
}

fn bump(map: &mut BTreeMap<u32, u64>, rows: usize) {
    if rows > 0 {
        *map.entry(u32::try_from(rows).unwrap_or(u32::MAX))
            .or_insert(0) += 1;
    }
}

impl RowHistogram {
    /// An empty histogram for a model with `cls_token_num` condition positions.
    pub fn new(cls_token_num: usize) -> RowHistogram {
        RowHistogram {
            cls: u32::try_from(cls_token_num).unwrap_or(u32::MAX),
            ..Default::default()
        }
    }

    /// Counts the model calls of `action` (module doc).
    pub fn count(&mut self, action: &Action<'_>) {
        match action {
            Action::Check(_) | Action::Score(_) | Action::Reformulate(_) => {
                self.judge += 1;
                return;
            }
            _ => {}
        }
        let (mut target, mut catch_up, mut pending) = (0usize, 0usize, 0usize);
        for g in action.groups() {
            match g {
                Group::Prefill(p) => {
                    let key = (
                        u32::try_from(p.tokens.len()).unwrap_or(u32::MAX),
                        p.guidance.variants() as u32,
                    );
                    *self.prefill.entry(key).or_insert(0) += 1;
                }
                Group::Target(r) => target += r.inputs.len() * r.guidance.variants(),
                Group::Draft(r) => {
                    let v = r.guidance.variants();
                    let c = (r.commit as usize).min(r.inputs.len());
                    catch_up += c * v;
                    pending += (r.inputs.len() - c) * v;
                }
                _ => {}
            }
        }
        bump(&mut self.target, target);
        bump(&mut self.drafter, catch_up);
        bump(&mut self.drafter, pending);
    }

    /// Adds `other`'s counts to these (the condition length stays this histogram's).
    pub fn add(&mut self, other: &RowHistogram) {
        for (mine, theirs) in [
            (&mut self.target, &other.target),
            (&mut self.drafter, &other.drafter),
        ] {
            for (&r, &n) in theirs {
                *mine.entry(r).or_insert(0) += n;
            }
        }
        for (&k, &n) in &other.prefill {
            *self.prefill.entry(k).or_insert(0) += n;
        }
        self.judge += other.judge;
    }

    /// Total target calls (prefills included) and drafter calls.
    pub fn calls(&self) -> (u64, u64) {
        (
            self.target.values().sum::<u64>() + self.prefill.values().sum::<u64>(),
            self.drafter.values().sum(),
        )
    }

    /// The same calls with the target and drafter calls (not the prefills or judge calls)
    /// repeated `factor` times: a histogram of `tokens` image tokens stretched to
    /// `tokens · factor` (the same acceptance statistics on a larger image).
    pub fn scaled(&self, factor: u64) -> RowHistogram {
        let mut h = self.clone();
        for m in [&mut h.target, &mut h.drafter] {
            for n in m.values_mut() {
                *n = n.saturating_mul(factor);
            }
        }
        h
    }

    /// As JSON: `{"cls_token_num": c, "prefill": [[tokens, variants, calls], …],
    /// "target": [[rows, calls], …], "drafter": […], "judge": n}`, keys ascending.
    pub fn to_json(&self) -> Value {
        let pairs =
            |m: &BTreeMap<u32, u64>| m.iter().map(|(r, n)| json!([r, n])).collect::<Vec<_>>();
        json!({
            "cls_token_num": self.cls,
            "prefill": self.prefill.iter().map(|((t, v), n)| json!([t, v, n])).collect::<Vec<_>>(),
            "target": pairs(&self.target),
            "drafter": pairs(&self.drafter),
            "judge": self.judge,
        })
    }

    /// Reads [`RowHistogram::to_json`]'s layout.
    pub fn from_json(v: &Value) -> Result<RowHistogram, Error> {
        let bad = || {
            Error::invalid(
                "a row histogram is {\"cls_token_num\": c, \"prefill\": [[tokens, variants, \
                 calls], …], \"target\": [[rows, calls], …], \"drafter\": […], \"judge\": n}",
            )
        };
        let int = |v: &Value| {
            v.as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(bad)
        };
        let pairs = |v: &Value| -> Result<BTreeMap<u32, u64>, Error> {
            let mut m = BTreeMap::new();
            for p in v.as_array().ok_or_else(bad)? {
                let n = p.get(1).and_then(Value::as_u64).ok_or_else(bad)?;
                *m.entry(int(&p[0])?).or_insert(0) += n;
            }
            Ok(m)
        };
        let mut prefill = BTreeMap::new();
        for p in v["prefill"].as_array().ok_or_else(bad)? {
            let n = p.get(2).and_then(Value::as_u64).ok_or_else(bad)?;
            *prefill.entry((int(&p[0])?, int(&p[1])?)).or_insert(0) += n;
        }
        Ok(RowHistogram {
            cls: int(&v["cls_token_num"])?,
            prefill,
            target: pairs(&v["target"])?,
            drafter: pairs(&v["drafter"])?,
            judge: v["judge"].as_u64().ok_or_else(bad)?,
        })
    }
}

impl Observer for RowHistogram {
    fn before(&mut self, action: &Action<'_>) {
        self.count(action);
    }

    fn after<D: Decoder>(&mut self, _: &D) {}
}

/// Measured time per action, by kind and logits rows, by a [`Clock`] (wall clock by default):
/// the span from the host receiving an action to it receiving the next one (the model call,
/// the decoder handling the answer, and the decoder choosing the next action), the last
/// action's span ending when its answer was handled. Timings, so not deterministic: the bench
/// reports them beside the prediction to show where it is off.
#[derive(Clone, Debug, Default)]
pub struct CallTimes {
    /// `(kind, rows)` → (actions, total nanoseconds).
    pub spans: BTreeMap<(&'static str, u32), (u64, u64)>,
    clock: Clock,
    threads: usize,
    pending: Option<((&'static str, u32), u64)>,
    last_after: Option<u64>,
}

impl CallTimes {
    /// Times by `clock` for a runtime of `threads` threads ([`Clock::now`]).
    pub fn new(clock: Clock, threads: usize) -> CallTimes {
        CallTimes {
            clock,
            threads,
            ..CallTimes::default()
        }
    }

    fn close(&mut self, end: u64) {
        if let Some((key, start)) = self.pending.take() {
            let e = self.spans.entry(key).or_insert((0, 0));
            e.0 += 1;
            e.1 += end.saturating_sub(start);
        }
    }

    /// Ends the last action's span (call once the decode finished).
    pub fn finish(&mut self) {
        if let Some(end) = self.last_after {
            self.close(end);
        }
    }

    /// Adds `other`'s spans to these.
    pub fn add(&mut self, other: &CallTimes) {
        for (k, (n, t)) in &other.spans {
            let e = self.spans.entry(*k).or_insert((0, 0));
            e.0 += n;
            e.1 += t;
        }
    }

    /// As JSON: `[[kind, rows, actions, mean nanoseconds], …]`.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.spans
                .iter()
                .map(|((k, r), (n, t))| json!([k, r, n, t / (*n).max(1)]))
                .collect(),
        )
    }
}

impl Observer for CallTimes {
    fn before(&mut self, action: &Action<'_>) {
        let now = self.clock.now(self.threads);
        self.close(now);
        let rows = u32::try_from(action.logits_rows().unwrap_or(0)).unwrap_or(u32::MAX);
        self.pending = Some(((action.kind(), rows), now));
    }

    fn after<D: Decoder>(&mut self, _: &D) {
        self.last_after = Some(self.clock.now(self.threads));
    }
}

/// The time in nanoseconds `profile` predicts for the model calls of `h` (module doc), with
/// `prefill` the measured cost of a prefill of the condition alone with two-way guidance
/// ([`crate::cost_file::CostFile::prefill`]) if known — other prefills, and all of them without
/// it, cost a target call of their rows. An error if `h` has drafter calls and the profile no
/// drafter curve. Judge calls are not included.
pub fn predict_nanos(
    profile: &CostProfile,
    prefill: Option<u64>,
    h: &RowHistogram,
) -> Result<u64, Error> {
    let mut total: u128 = 0;
    for (&(tokens, variants), &n) in &h.prefill {
        let rows = (h.cls as u64 + tokens as u64) * variants as u64;
        let rows = u32::try_from(rows).unwrap_or(u32::MAX);
        let t = match prefill {
            Some(t) if (tokens, variants) == (0, 2) => t,
            _ => profile.target.nanos(rows),
        };
        total += t as u128 * n as u128;
    }
    for (&r, &n) in &h.target {
        total += profile.target.nanos(r) as u128 * n as u128;
    }
    if !h.drafter.is_empty() {
        let d = profile.drafter.as_ref().ok_or_else(|| {
            Error::invalid(
                "the run drafts, but the cost profile has no drafter curve (calibrate a model \
                 directory with drafter.safetensors)",
            )
        })?;
        for (&r, &n) in &h.drafter {
            total += d.nanos(r) as u128 * n as u128;
        }
    }
    Ok(u64::try_from(total).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argen_core::cost::CostCurve;
    use argen_core::decode::{
        DraftInput, DraftRun, FeatureRef, GuidanceMode, Input, Prefill, TargetRun,
    };

    #[test]
    fn counts_follow_the_host_and_predictions_are_exact() {
        let two = GuidanceMode::TwoWay { scale: 4.0 };
        let mut h = RowHistogram::new(36);
        h.count(&Action::Prefill(Prefill {
            seq: 0,
            tokens: &[1, 2],
            guidance: two,
        }));
        let inputs = [Input::root(5, 0); 3];
        for _ in 0..4 {
            h.count(&Action::Target(TargetRun {
                seq: 0,
                keep: &[],
                inputs: &inputs,
                guidance: two,
            }));
        }
        let d = DraftInput {
            token: 1,
            index: 0,
            parent: argen_core::backend::ROOT,
            feature: FeatureRef::Condition,
        };
        let drafts = [d; 5];
        // Two catch-up inputs and three pending ones: two drafter forwards.
        h.count(&Action::Draft(DraftRun {
            seq: 0,
            new_step: true,
            commit: 2,
            inputs: &drafts,
            guidance: two,
        }));
        h.count(&Action::Draft(DraftRun {
            seq: 0,
            new_step: false,
            commit: 0,
            inputs: &drafts[..1],
            guidance: GuidanceMode::None,
        }));
        assert_eq!(h.target, BTreeMap::from([(6, 4)]));
        assert_eq!(h.prefill, BTreeMap::from([((2, 2), 1)]));
        assert_eq!(h.drafter, BTreeMap::from([(1, 1), (4, 1), (6, 1)]));
        assert_eq!(h.calls(), (5, 3));
        let profile = CostProfile {
            target: CostCurve::new(&[(2, 1000), (8, 1600), (64, 4400)]).unwrap(),
            drafter: Some(CostCurve::new(&[(2, 100), (4, 180)]).unwrap()),
        };
        // target: 4 · t(6) + t(76) = 4 · 1400 + (4400 + 12 · 50) = 5600 + 5000;
        // drafter: t(1) + t(4) + t(6) = 100 + 180 + 260.
        assert_eq!(predict_nanos(&profile, None, &h).unwrap(), 10_600 + 540);
        let round = RowHistogram::from_json(&h.to_json()).unwrap();
        assert_eq!(round, h);
        let mut sum = round.clone();
        sum.add(&h);
        assert_eq!(predict_nanos(&profile, None, &sum).unwrap(), 2 * 11_140);
        // Another condition length changes the prefill only: (1 + 2) · 2 = 6 rows, 1400 ns.
        let short = RowHistogram {
            cls: 1,
            ..h.clone()
        };
        assert_eq!(
            predict_nanos(&profile, None, &short).unwrap(),
            11_140 - 5000 + 1400
        );
        // Stretched twice: every target and drafter call twice, the prefill once.
        assert_eq!(
            predict_nanos(&profile, None, &h.scaled(2)).unwrap(),
            2 * 11_140 - 5000
        );
        let no_drafter = CostProfile {
            drafter: None,
            ..profile
        };
        assert!(predict_nanos(&no_drafter, None, &h).is_err());
        // A measured prefill replaces the rows rule for condition-only two-way prefills only:
        // this one prefilled two tokens.
        assert_eq!(predict_nanos(&profile, Some(7), &h).unwrap(), 11_140);
        let mut cond_only = h.clone();
        cond_only.prefill = BTreeMap::from([((0, 2), 3)]);
        assert_eq!(
            predict_nanos(&profile, Some(7), &cond_only).unwrap(),
            11_140 - 5000 + 3 * 7
        );
    }
}
