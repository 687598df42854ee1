//! The partial-canvas verifier's audit on *generated* images (ShapesWorld models).
//!
//! GridAR (Kim et al., "GridAR: Grid-based test-time scaling for autoregressive image
//! generation", 2025) prunes a candidate when the verifier calls its top rows *impossible* for
//! the prompt. Its value rests on two rates that a benchmark of renders or VQ reconstructions
//! cannot show, because generated canvases fail differently:
//!
//! * **false impossible** — of the finished images that *are* aligned with their prompt, the
//!   share whose own top rows the verifier calls impossible at a cut. Such a verdict is wrong by
//!   construction (the image's completion exists and meets the prompt), so this rate is a lower
//!   bound on the verifier's error and an upper bound on how much pruning can hurt by discarding
//!   good candidates;
//! * **caught** — of the finished images that are *not* aligned, the share already called
//!   impossible at a cut: what pruning at that cut can save.
//!
//! Each finished image is judged at GridAR's pruning cuts (token rows `⌊H/4⌋` and `⌊H/2⌋`,
//! `argen_core::decode::gridar`) with the same [`argen_engine::shapes::ShapesJudge`] that GridAR uses,
//! on the decoded top rows of the image's own tokens. The audit runs after the timed decode, so
//! it does not change a row's wall-clock.

use serde_json::{json, Value};

/// Number of cuts audited (GridAR's pruning points).
pub const CUTS: usize = argen_core::decode::PRUNING_POINTS;

/// GridAR's pruning cuts, in token rows, for a canvas of `grid` rows.
pub fn cuts(grid: usize) -> [u32; CUTS] {
    argen_core::decode::pruning_rows(u32::try_from(grid).unwrap_or(u32::MAX))
}

/// Counters of one benchmark row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Aligned finished images.
    pub aligned: u32,
    /// Aligned images called impossible at each cut.
    pub false_impossible: [u32; CUTS],
    /// Aligned images called impossible at either cut.
    pub false_impossible_any: u32,
    /// Finished images that are not aligned.
    pub misaligned: u32,
    /// Misaligned images called impossible at each cut.
    pub caught: [u32; CUTS],
    /// Misaligned images called impossible at either cut.
    pub caught_any: u32,
}

impl Audit {
    /// Records one finished image: whether it is aligned and the verifier's "possible" verdict
    /// at each cut.
    pub fn add(&mut self, aligned: bool, possible: [bool; CUTS]) {
        let any = possible.iter().any(|p| !p);
        let (n, per, total) = if aligned {
            (
                &mut self.aligned,
                &mut self.false_impossible,
                &mut self.false_impossible_any,
            )
        } else {
            (&mut self.misaligned, &mut self.caught, &mut self.caught_any)
        };
        *n += 1;
        for (c, p) in per.iter_mut().zip(possible) {
            *c += u32::from(!p);
        }
        *total += u32::from(any);
    }

    /// Whether any image was audited.
    pub fn is_empty(&self) -> bool {
        self.aligned + self.misaligned == 0
    }

    /// The JSON object of a row (`None` when nothing was audited): counts and percentages.
    pub fn to_json(&self, cuts: [u32; CUTS]) -> Option<Value> {
        if self.is_empty() {
            return None;
        }
        let pct = |k: u32, n: u32| (n > 0).then(|| 100.0 * f64::from(k) / f64::from(n));
        Some(json!({
            "cut_rows": cuts,
            "aligned_images": self.aligned,
            "false_impossible": self.false_impossible,
            "false_impossible_pct": self.false_impossible.map(|k| pct(k, self.aligned)),
            "false_impossible_any_pct": pct(self.false_impossible_any, self.aligned),
            "misaligned_images": self.misaligned,
            "caught": self.caught,
            "caught_pct": self.caught.map(|k| pct(k, self.misaligned)),
            "caught_any_pct": pct(self.caught_any, self.misaligned),
        }))
    }
}

fn cell(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "n/a".into(), |x| format!("{x:.1}"))
}

/// The Markdown table of the rows that carry an audit (empty when none does).
pub fn markdown(rows: &[Value]) -> String {
    let audited: Vec<&Value> = rows
        .iter()
        .filter(|r| r["verifier_audit"].is_object())
        .collect();
    let Some(first) = audited.first() else {
        return String::new();
    };
    let cuts = &first["verifier_audit"]["cut_rows"];
    let mut s = format!(
        "\nPartial-canvas verifier on the generated images (cuts after token rows {} and {}): \
         *false impossible* = aligned finished images whose own top rows were called impossible \
         (verifier errors); *caught* = misaligned images called impossible at the cut.\n\n",
        cuts[0], cuts[1]
    );
    s += "| method | aligned imgs | false impossible % (1st / 2nd / either) | misaligned imgs \
          | caught % (1st / 2nd / either) |\n|---|---:|---:|---:|---:|\n";
    for r in audited {
        let a = &r["verifier_audit"];
        s += &format!(
            "| {} | {} | {} / {} / {} | {} | {} / {} / {} |\n",
            r["name"].as_str().unwrap_or("?"),
            a["aligned_images"],
            cell(&a["false_impossible_pct"][0]),
            cell(&a["false_impossible_pct"][1]),
            cell(&a["false_impossible_any_pct"]),
            a["misaligned_images"],
            cell(&a["caught_pct"][0]),
            cell(&a["caught_pct"][1]),
            cell(&a["caught_any_pct"]),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_split_by_alignment_and_cut() {
        let mut a = Audit::default();
        a.add(true, [true, true]);
        a.add(true, [true, false]);
        a.add(false, [false, false]);
        a.add(false, [true, true]);
        a.add(false, [false, true]);
        assert_eq!(
            a,
            Audit {
                aligned: 2,
                false_impossible: [0, 1],
                false_impossible_any: 1,
                misaligned: 3,
                caught: [2, 1],
                caught_any: 2,
            }
        );
        let j = a.to_json(cuts(8)).unwrap();
        assert_eq!(j["cut_rows"], json!([2, 4]));
        assert_eq!(j["false_impossible_pct"], json!([0.0, 50.0]));
        assert_eq!(j["caught_any_pct"].as_f64().unwrap(), 100.0 * 2.0 / 3.0);
        let md = markdown(&[json!({"name": "vanilla", "verifier_audit": j})]);
        assert!(
            md.contains("| vanilla | 2 | 0.0 / 50.0 / 50.0 | 3 | 66.7 / 33.3 / 66.7 |"),
            "{md}"
        );
    }

    #[test]
    fn empty_audit_is_absent() {
        assert_eq!(Audit::default().to_json(cuts(16)), None);
        assert_eq!(
            markdown(&[json!({"name": "x", "verifier_audit": null})]),
            ""
        );
        assert_eq!(cuts(16), [4, 8]);
    }
}
