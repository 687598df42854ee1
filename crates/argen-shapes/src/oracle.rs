//! Ground truth from scene geometry, to measure the scorer against.
//!
//! The oracle applies the scorer's own decision rules to the *true* objects of a scene instead
//! of to what perception measures, and says [`Truth::Ambiguous`] when the answer flips within
//! the precision any pixel-level measurement can have:
//! - full canvas: every category is decided with each centre widened by ± [`MARGIN`] pixels
//!   (scaled with the canvas) under both "some position" and "every position"; if they
//!   disagree, a relation or a layout third is too close to call;
//! - partial canvas: an object whose bottom is within ±1 px of the cut threshold may be seen
//!   as cut or as whole, one whose visible area is near the noise threshold may be seen or not
//!   (every combination is tried), and the position tolerance is varied by ±1 px; the truth
//!   is definite when all variants agree.
//!
//! Scorer accuracy is then measured on the definite cases; the share of ambiguous cases is
//! reported alongside.

use crate::align::{Cand, Interval, Problem, Quant};
use crate::palette::Shape;
use crate::perceive::ScorerConfig;
use crate::prompt::{Category, Prompt};
use crate::scene::{Object, Scene};
use crate::score::{feasibility, verdicts_of, Feasibility};

/// Positional ambiguity margin of the full-canvas oracle at 64 px.
pub const MARGIN: f64 = 1.0;

/// A ground-truth answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Truth {
    /// Definitely true.
    Yes,
    /// Definitely false.
    No,
    /// Too close to call at pixel precision.
    Ambiguous,
}

impl Truth {
    fn of(lenient: bool, strict: bool) -> Truth {
        match (lenient, strict) {
            (true, true) => Truth::Yes,
            (false, false) => Truth::No,
            _ => Truth::Ambiguous,
        }
    }

    /// Whether `answer` agrees with a definite truth (`None` for an ambiguous one).
    pub fn judge(self, answer: bool) -> Option<bool> {
        match self {
            Truth::Yes => Some(answer),
            Truth::No => Some(!answer),
            Truth::Ambiguous => None,
        }
    }
}

/// Ground-truth per-category verdicts and alignment of `scene` against `prompt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruthVerdicts {
    /// Per category, in [`Category::ALL`] order.
    pub categories: [Truth; 5],
    /// Alignment.
    pub aligned: Truth,
}

impl TruthVerdicts {
    /// The truth of `category`.
    pub fn get(&self, category: Category) -> Truth {
        self.categories[Category::ALL
            .iter()
            .position(|c| *c == category)
            .unwrap_or(0)]
    }
}

/// The oracle's full-canvas verdicts.
pub fn verdicts(prompt: &Prompt, scene: &Scene) -> TruthVerdicts {
    let m = MARGIN * scene.size as f64 / 64.0;
    let cands: Vec<Cand> = scene
        .objects
        .iter()
        .map(|o| Cand {
            colour: Some(o.colour),
            shape: Some(o.shape),
            x: Interval::around(o.cx, m),
            y: Interval::around(o.cy, m),
        })
        .collect();
    let p = Problem::new(prompt, scene.size, scene.size);
    let lenient = verdicts_of(&p, &cands, Quant::Exists);
    let strict = verdicts_of(&p, &cands, Quant::ForAll);
    let categories = Category::ALL.map(|c| Truth::of(lenient.get(c), strict.get(c)));
    let aligned = Truth::of(
        lenient.count && lenient.layout,
        strict.count && strict.layout,
    );
    TruthVerdicts {
        categories,
        aligned,
    }
}

/// How an object can appear on a partial canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Hidden,
    Cut,
    Whole,
}

fn appearances(o: &Object, rows: usize, size: usize, cfg: &ScorerConfig) -> Vec<Seen> {
    if rows >= size {
        return vec![Seen::Whole];
    }
    let r = rows as f64;
    let (_, top, _, bottom) = o.bbox();
    let area = visible_area(o, rows);
    let min_area = cfg.min_area as f64;
    let mut visible = Vec::new();
    if area < 2.0 * min_area {
        visible.push(Seen::Hidden);
    }
    if area >= 0.5 * min_area && top < r {
        let cut_at = r - cfg.cut_margin as f64;
        if bottom + 1.0 < cut_at {
            visible.push(Seen::Whole);
        } else if bottom - 1.0 >= cut_at {
            visible.push(Seen::Cut);
        } else {
            visible.push(Seen::Whole);
            visible.push(Seen::Cut);
        }
    }
    visible
}

/// Covered area (pixels) of the object above row `rows`, by 4×4 supersampling.
fn visible_area(o: &Object, rows: usize) -> f64 {
    let (x0, y0, x1, y1) = o.bbox();
    let mut n = 0usize;
    let ys = (y0.floor().max(0.0) as usize)..((y1.ceil() as usize).min(rows));
    for y in ys {
        for x in (x0.floor().max(0.0) as usize)..(x1.ceil() as usize) {
            for sy in 0..4 {
                for sx in 0..4 {
                    let qx = x as f64 + (sx as f64 + 0.5) / 4.0;
                    let qy = y as f64 + (sy as f64 + 0.5) / 4.0;
                    n += o.contains(qx, qy) as usize;
                }
            }
        }
    }
    n as f64 / 16.0
}

fn cut_cand(o: &Object, rows: usize, cfg: &ScorerConfig, tol: f64) -> Cand {
    let (_, top, _, _) = o.bbox();
    let vh = (rows as f64 - top).clamp(0.0, o.size);
    let vw = match o.shape {
        Shape::Square => o.size,
        Shape::Triangle => vh,
        Shape::Circle => {
            let r = o.size / 2.0;
            let d = (r - vh).abs().min(r);
            2.0 * (r * r - d * d).sqrt()
        }
    };
    let seen = vh.max(vw);
    Cand {
        colour: Some(o.colour),
        shape: None,
        x: Interval::around(o.cx, tol),
        y: Interval {
            lo: top + seen.max(cfg.min_object) / 2.0 - tol,
            hi: top + seen.max(cfg.max_object) / 2.0 + tol,
        },
    }
}

/// The oracle's answer to "can the top `rows` rows of `scene` still complete into an image
/// aligned with `prompt`?" (`Yes` = possible).
pub fn partial(prompt: &Prompt, scene: &Scene, rows: usize, cfg: &ScorerConfig) -> Truth {
    let options: Vec<Vec<Seen>> = scene
        .objects
        .iter()
        .map(|o| appearances(o, rows, scene.size, cfg))
        .collect();
    let mut any_possible = false;
    let mut any_impossible = false;
    let mut choice = vec![0usize; options.len()];
    let d = scene.size as f64 / 64.0;
    loop {
        for tol in [cfg.position_tolerance - d, cfg.position_tolerance + d] {
            let cands: Vec<Cand> = scene
                .objects
                .iter()
                .zip(&choice)
                .zip(&options)
                .filter_map(|((o, &k), opts)| match opts[k] {
                    Seen::Hidden => None,
                    Seen::Whole => Some(Cand {
                        colour: Some(o.colour),
                        shape: Some(o.shape),
                        x: Interval::around(o.cx, tol),
                        y: Interval::around(o.cy, tol),
                    }),
                    Seen::Cut => Some(cut_cand(o, rows, cfg, tol)),
                })
                .collect();
            match feasibility(prompt, cands, rows, (scene.size, scene.size), cfg) {
                Feasibility::Possible => any_possible = true,
                Feasibility::Impossible { .. } => any_impossible = true,
            }
        }
        // Next combination.
        let mut i = 0;
        loop {
            if i == choice.len() {
                return Truth::of(any_possible, !any_impossible);
            }
            choice[i] += 1;
            if choice[i] < options[i].len() {
                break;
            }
            choice[i] = 0;
            i += 1;
        }
    }
}
