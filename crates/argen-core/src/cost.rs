//! Device cost profiles: how long one model call of `r` rows takes on a given machine.
//!
//! A [`CostProfile`] is what `argen calibrate` measures and what cost-aware drafting
//! (`--draft auto`) and the bench's predicted speed-ups read. It holds one [`CostCurve`] for
//! the target model and, for speculative decoding with a drafter, one for the drafter.
//!
//! # What a point means
//! A point `(r, t)` says: one action answered by the host whose model call computes `r` **model
//! rows** — inputs × guidance variants, the unit of the bench's "target rows" column (a CFG pair
//! of one token is 2 rows) — takes `t` nanoseconds of wall clock, from the host receiving the
//! action to the decoder having handled its logits (the forward pass, the logit processing and
//! sampling or verification of its rows). Costs are measured at a representative context length
//! (the calibration documents which); they are a model, not a promise.
//!
//! # Evaluation ([`CostCurve::nanos`])
//! Points are sorted by strictly increasing `r ≥ 1`. For a row count `r`:
//! * `r = 0`: 0 (no call);
//! * `r ≤ r_0`: `t_0` (a call has a fixed cost: fewer rows are not cheaper than the first point);
//! * `r_i ≤ r ≤ r_{i+1}`: linear interpolation
//!   `t_i + (t_{i+1} − t_i)·(r − r_i) / (r_{i+1} − r_i)`, in `u128` integer arithmetic rounded
//!   toward `t_i` (a non-monotone curve is allowed: measurements may dip);
//! * `r > r_last`: linear extrapolation with the slope of the last two points, never below
//!   `t_last` (one point: `t_0 · r / r_0`, proportional), saturating at `u64::MAX`.
//!
//! Everything is integer arithmetic, so a profile gives the same costs on every machine and
//! runtime, which is what makes decisions taken from it deterministic and replayable.
use crate::error::{Error, Result};
use crate::trace::{Fnv64, StableEncode};

/// Most points a [`CostCurve`] holds.
pub const MAX_POINTS: usize = 16;

/// Measured cost of one model call as a function of its row count (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CostCurve {
    len: u8,
    rows: [u32; MAX_POINTS],
    nanos: [u64; MAX_POINTS],
}

impl CostCurve {
    /// A curve through `points` (`(rows, nanoseconds)`): 1 to [`MAX_POINTS`] points, rows
    /// strictly increasing from at least 1, every cost positive.
    pub fn new(points: &[(u32, u64)]) -> Result<Self> {
        let bad = |reason| {
            Err(Error::InvalidParameter {
                name: "cost curve",
                reason,
            })
        };
        if points.is_empty() || points.len() > MAX_POINTS {
            return bad("must have between 1 and 16 points");
        }
        let mut c = CostCurve {
            len: points.len() as u8,
            rows: [0; MAX_POINTS],
            nanos: [0; MAX_POINTS],
        };
        let mut prev = 0u32;
        for (i, &(r, t)) in points.iter().enumerate() {
            if r <= prev {
                return bad("rows must be at least 1 and strictly increasing");
            }
            if t == 0 {
                return bad("every cost must be positive");
            }
            prev = r;
            c.rows[i] = r;
            c.nanos[i] = t;
        }
        Ok(c)
    }

    /// The number of points.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: a curve has at least one point.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The points `(rows, nanoseconds)`, in increasing row order.
    pub fn points(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        (0..self.len()).map(move |i| (self.rows[i], self.nanos[i]))
    }

    /// The largest row count measured (beyond it the curve is extrapolated).
    pub fn max_rows(&self) -> u32 {
        self.rows[self.len() - 1]
    }

    /// The modelled cost in nanoseconds of one call of `rows` rows (module doc for the rule).
    pub fn nanos(&self, rows: u32) -> u64 {
        if rows == 0 {
            return 0;
        }
        let n = self.len();
        if rows <= self.rows[0] {
            return self.nanos[0];
        }
        if n == 1 {
            let t = self.nanos[0] as u128 * rows as u128 / self.rows[0] as u128;
            return u64::try_from(t).unwrap_or(u64::MAX);
        }
        // The segment [i, i + 1] holding `rows`, or the last one for extrapolation.
        let mut i = 0;
        while i + 2 < n && rows > self.rows[i + 1] {
            i += 1;
        }
        let (r0, r1) = (self.rows[i] as i128, self.rows[i + 1] as i128);
        let (t0, t1) = (self.nanos[i] as i128, self.nanos[i + 1] as i128);
        let dr = rows as i128 - r0;
        // Rounded toward t0 (division truncates toward zero).
        let t = t0 + (t1 - t0) * dr / (r1 - r0);
        let t = if rows > self.rows[n - 1] {
            t.max(self.nanos[n - 1] as i128)
        } else {
            t
        };
        u64::try_from(t.max(0)).unwrap_or(u64::MAX)
    }
}

/// Byte `len`, then each point's rows (`u32`) and nanoseconds (`u64`).
impl StableEncode for CostCurve {
    fn encode(&self, h: &mut Fnv64) {
        h.u8(self.len);
        for (r, t) in self.points() {
            h.u32(r);
            h.u64(t);
        }
    }
}

/// The cost curves of one model (and its drafter) on one machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CostProfile {
    /// One target-model action of `r` rows.
    pub target: CostCurve,
    /// One drafter action of `r` rows; `None` when the model has no drafter.
    pub drafter: Option<CostCurve>,
}

/// The target curve, then byte 0 (no drafter) or byte 1 and the drafter curve.
impl StableEncode for CostProfile {
    fn encode(&self, h: &mut Fnv64) {
        self.target.encode(h);
        match &self.drafter {
            None => h.u8(0),
            Some(d) => {
                h.u8(1);
                d.encode(h);
            }
        }
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! A curve is a JSON array of `[rows, nanoseconds]` pairs; a profile is
    //! `{"target": [...], "drafter": [...] | null}`.
    use super::{CostCurve, MAX_POINTS};
    use core::fmt;
    use serde::de::{self, SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    impl Serialize for CostCurve {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.len()))?;
            for p in self.points() {
                seq.serialize_element(&p)?;
            }
            seq.end()
        }
    }

    struct CurveVisitor;

    impl<'de> Visitor<'de> for CurveVisitor {
        type Value = CostCurve;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("1 to 16 [rows, nanoseconds] pairs with strictly increasing rows")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CostCurve, A::Error> {
            let mut points = [(0u32, 0u64); MAX_POINTS];
            let mut n = 0;
            while let Some(p) = seq.next_element::<(u32, u64)>()? {
                if n == MAX_POINTS {
                    return Err(de::Error::invalid_length(n + 1, &self));
                }
                points[n] = p;
                n += 1;
            }
            CostCurve::new(&points[..n]).map_err(de::Error::custom)
        }
    }

    impl<'de> Deserialize<'de> for CostCurve {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CostCurve, D::Error> {
            d.deserialize_seq(CurveVisitor)
        }
    }

    #[derive(Serialize, Deserialize)]
    #[serde(remote = "super::CostProfile", deny_unknown_fields)]
    struct ProfileDef {
        target: CostCurve,
        #[serde(default)]
        drafter: Option<CostCurve>,
    }

    impl Serialize for super::CostProfile {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            ProfileDef::serialize(self, s)
        }
    }

    impl<'de> Deserialize<'de> for super::CostProfile {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<super::CostProfile, D::Error> {
            ProfileDef::deserialize(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_points() {
        assert!(CostCurve::new(&[]).is_err());
        assert!(CostCurve::new(&[(0, 5)]).is_err());
        assert!(CostCurve::new(&[(1, 0)]).is_err());
        assert!(CostCurve::new(&[(2, 5), (2, 6)]).is_err());
        assert!(CostCurve::new(&[(3, 5), (2, 6)]).is_err());
        let many = [(1u32, 1u64); 17];
        let many: [(u32, u64); 17] = core::array::from_fn(|i| (i as u32 + 1, many[i].1));
        assert!(CostCurve::new(&many).is_err());
        assert!(CostCurve::new(&many[..16]).is_ok());
    }

    #[test]
    fn interpolates_and_extrapolates_in_integers() {
        let c = CostCurve::new(&[(2, 1000), (4, 1100), (16, 2300)]).unwrap();
        assert_eq!(c.nanos(0), 0);
        assert_eq!(c.nanos(1), 1000);
        assert_eq!(c.nanos(2), 1000);
        assert_eq!(c.nanos(3), 1050);
        assert_eq!(c.nanos(4), 1100);
        assert_eq!(c.nanos(10), 1700);
        assert_eq!(c.nanos(16), 2300);
        assert_eq!(c.nanos(28), 3500);
        assert_eq!(c.max_rows(), 16);
        // One point: proportional beyond it.
        let p = CostCurve::new(&[(2, 1000)]).unwrap();
        assert_eq!(p.nanos(1), 1000);
        assert_eq!(p.nanos(6), 3000);
        assert_eq!(p.nanos(u32::MAX), 1000 * u32::MAX as u64 / 2);
        // A dip is kept inside the range, but extrapolation never goes below the last point.
        let d = CostCurve::new(&[(1, 500), (2, 900), (3, 800)]).unwrap();
        assert_eq!(d.nanos(2), 900);
        assert_eq!(d.nanos(3), 800);
        assert_eq!(d.nanos(10), 800);
        // Saturation instead of overflow.
        let big = CostCurve::new(&[(1, 1), (2, u64::MAX)]).unwrap();
        assert_eq!(big.nanos(u32::MAX), u64::MAX);
    }

    #[test]
    fn the_hash_sees_every_point() {
        use crate::trace::config_hash;
        let a = CostCurve::new(&[(2, 1000), (4, 1100)]).unwrap();
        let b = CostCurve::new(&[(2, 1000), (4, 1101)]).unwrap();
        assert_ne!(config_hash(&a), config_hash(&b));
        let p = CostProfile {
            target: a,
            drafter: None,
        };
        let q = CostProfile {
            target: a,
            drafter: Some(a),
        };
        assert_ne!(config_hash(&p), config_hash(&q));
    }
}
