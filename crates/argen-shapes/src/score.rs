//! The prompt-alignment scorer (Best-of-N and final scorer), GridAR's partial-canvas verifier
//! and its layout inference for prompt reformulation.
//!
//! - [`score`]: parse the image ([`crate::perceive()`]) and decide each category
//!   ([`Verdicts`], meaning in [`crate::prompt`]) plus a soft score in `[0, 1]` for ranking
//!   (fraction of atomic constraints met by the best assignment; 1 exactly when aligned).
//!   Fully seen objects are taken at their measured centres; an object of no recognisable
//!   shape matches only the noun `shape`.
//! - [`check_partial`]: GridAR's verifier (Park et al., "GridAR: test-time scaling for
//!   autoregressive image generation"): can the unknown rows still complete the canvas into an
//!   image aligned with the prompt? The visible objects must all be objects of the prompt
//!   (closed world). A cut object keeps its colour and centre x but its shape is free and its
//!   centre y an interval ([`Detection::y_range`]); the missing objects are free in colour and
//!   shape, anywhere horizontally, and no higher than a box of the smallest size whose top is
//!   [`ScorerConfig::hidden_rows`] above the last known row (an object could hide there);
//!   measured centres carry ± [`ScorerConfig::position_tolerance`]. The answer is
//!   [`Feasibility::Impossible`] only when no such completion satisfies the prompt — e.g. more
//!   objects already than the prompt has, a fully seen object of a shape or colour the prompt
//!   has no room for, a relation violated by two seen objects or by a seen object and one that
//!   can only appear below it, no rows left for a missing object, a layout clause pointing to a
//!   region that is already decided otherwise. Certain up to the perception, never a guess.
//! - [`infer_layout`]: where the objects seen so far sit, as layout clauses to append to the
//!   prompt (`the red circle on the top left`): a region word is given for an axis only when
//!   the object's centre interval lies inside one third of it.

use std::fmt;

use crate::align::{self, Cand, Interval, Level, Problem, Quant};
use crate::error::{Error, Result};
use crate::image::RgbImage;
use crate::perceive::{perceive, Detection, SceneGraph, ScorerConfig};
use crate::prompt::generate::region_for;
use crate::prompt::{layout_text, Band, Category, LayoutClause, Pattern, Prompt};

/// Per-category alignment verdicts (see [`crate::prompt`] for what each checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verdicts {
    /// As many objects as the prompt describes.
    pub count: bool,
    /// An injective assignment of prompt objects to image objects matches every named shape.
    pub shape: bool,
    /// ... and every named colour (attribute binding).
    pub colour: bool,
    /// ... and the spatial relation.
    pub spatial: bool,
    /// ... and every layout clause.
    pub layout: bool,
}

impl Verdicts {
    /// The verdict of `category`.
    pub fn get(&self, category: Category) -> bool {
        match category {
            Category::Count => self.count,
            Category::Shape => self.shape,
            Category::Colour => self.colour,
            Category::Spatial => self.spatial,
            Category::Layout => self.layout,
        }
    }
}

/// The scorer's judgement of an image against a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Per-category verdicts.
    pub verdicts: Verdicts,
    /// Aligned: the count is right and the layout-level assignment exists (all constraints).
    pub aligned: bool,
    /// Fraction of atomic constraints met by the best assignment (1 exactly when aligned).
    pub soft: f64,
    /// What the image shows.
    pub scene: SceneGraph,
}

/// GridAR's verdict on a partial canvas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feasibility {
    /// Some completion of the unknown rows is aligned with the prompt.
    Possible,
    /// No completion can be aligned.
    Impossible {
        /// The first category (weakest first) that cannot be met.
        category: Category,
        /// Why, in words.
        reason: String,
    },
}

impl Feasibility {
    /// Whether the verdict is `Possible`.
    pub fn is_possible(&self) -> bool {
        matches!(self, Feasibility::Possible)
    }
}

impl fmt::Display for Feasibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Feasibility::Possible => f.write_str("possible"),
            Feasibility::Impossible { category, reason } => {
                write!(f, "impossible ({category}): {reason}")
            }
        }
    }
}

/// The default configuration for `img`, erroring on a canvas ShapesWorld cannot have.
fn config_for(img: &RgbImage) -> Result<ScorerConfig> {
    let (w, h) = (img.width(), img.height());
    if w != h || !(32..=1024).contains(&w) {
        return Err(Error::WrongSize {
            path: "<memory>".into(),
            expected: (w.clamp(32, 1024), w.clamp(32, 1024)),
            found: (w, h),
        });
    }
    Ok(ScorerConfig::for_canvas(w))
}

/// Scores `img` against `prompt` with the default world configuration for its size (square,
/// 32–1024 px, else [`Error::WrongSize`]).
pub fn score(prompt: &Prompt, img: &RgbImage) -> Result<Score> {
    let cfg = config_for(img)?;
    score_with(prompt, img, &cfg)
}

/// Scores `img` against `prompt` under `cfg` (the image must be `cfg.size` square).
pub fn score_with(prompt: &Prompt, img: &RgbImage, cfg: &ScorerConfig) -> Result<Score> {
    img.expect_size(cfg.size, cfg.size)?;
    let scene = perceive(img, img.height(), cfg);
    Ok(score_graph(prompt, scene))
}

/// Scores an already parsed scene graph (all of it taken as fully seen).
pub fn score_graph(prompt: &Prompt, scene: SceneGraph) -> Score {
    let cands: Vec<Cand> = scene
        .objects
        .iter()
        .map(|d| Cand {
            colour: Some(d.colour),
            shape: d.shape,
            x: Interval::point(d.cx),
            y: Interval::point(d.cy),
        })
        .collect();
    let p = Problem::new(prompt, scene.width, scene.height);
    let verdicts = verdicts_of(&p, &cands, Quant::ForAll);
    let aligned = verdicts.count && verdicts.layout;
    let soft = align::soft_score(&p, &cands);
    Score {
        verdicts,
        aligned,
        soft,
        scene,
    }
}

/// Per-category satisfiability of `cands` (shared with the oracle).
pub(crate) fn verdicts_of(p: &Problem<'_>, cands: &[Cand], q: Quant) -> Verdicts {
    let sat = |level| align::satisfiable(p, cands, level, q, false);
    Verdicts {
        count: cands.len() == p.slots.len(),
        shape: sat(Level::Shape),
        colour: sat(Level::Colour),
        spatial: sat(Level::Spatial),
        layout: sat(Level::Layout),
    }
}

fn check_rows(img: &RgbImage, rows_known: usize) -> Result<()> {
    if rows_known > img.height() {
        return Err(Error::Argument {
            param: "rows_known",
            reason: format!(
                "{rows_known} rows known but the image has {} rows",
                img.height()
            ),
        });
    }
    Ok(())
}

/// GridAR's verifier on the top `rows_known` rows of `img` (rows below are ignored), with the
/// default world configuration for its size. See the module doc.
pub fn check_partial(prompt: &Prompt, img: &RgbImage, rows_known: usize) -> Result<Feasibility> {
    let cfg = config_for(img)?;
    check_partial_with(prompt, img, rows_known, &cfg)
}

/// [`check_partial`] under `cfg`.
pub fn check_partial_with(
    prompt: &Prompt,
    img: &RgbImage,
    rows_known: usize,
    cfg: &ScorerConfig,
) -> Result<Feasibility> {
    img.expect_size(cfg.size, cfg.size)?;
    check_rows(img, rows_known)?;
    let graph = perceive(img, rows_known, cfg);
    Ok(check_graph(prompt, &graph, cfg))
}

/// The verifier on an already parsed partial scene graph.
pub fn check_graph(prompt: &Prompt, graph: &SceneGraph, cfg: &ScorerConfig) -> Feasibility {
    let tol = cfg.position_tolerance;
    let seen: Vec<Cand> = graph
        .objects
        .iter()
        .map(|d| {
            let (lo, hi) = d.y_range(cfg);
            Cand {
                colour: Some(d.colour),
                shape: d.shape,
                x: Interval::around(d.cx, tol),
                y: Interval { lo, hi },
            }
        })
        .collect();
    feasibility(
        prompt,
        seen,
        graph.rows_known,
        (graph.width, graph.height),
        cfg,
    )
}

/// Whether the visible objects `seen` (intervals already widened by the tolerance) can be
/// completed into an aligned image (shared with the oracle).
pub(crate) fn feasibility(
    prompt: &Prompt,
    mut cands: Vec<Cand>,
    rows_known: usize,
    (width, height): (usize, usize),
    cfg: &ScorerConfig,
) -> Feasibility {
    let p = Problem::new(prompt, width, height);
    let n_slots = p.slots.len();
    if cands.len() > n_slots {
        return Feasibility::Impossible {
            category: Category::Count,
            reason: format!(
                "{} objects are already visible but the prompt describes {n_slots}",
                cands.len()
            ),
        };
    }
    let missing = n_slots - cands.len();
    if missing > 0 {
        let tol = cfg.position_tolerance;
        let half = cfg.min_object / 2.0;
        let y_lo = rows_known as f64 - cfg.hidden_rows + half;
        let y_hi = height as f64 - half + tol;
        if y_lo > y_hi {
            return Feasibility::Impossible {
                category: Category::Count,
                reason: format!(
                    "{missing} more object(s) needed but no room is left below row {rows_known}"
                ),
            };
        }
        let free = Cand {
            colour: None,
            shape: None,
            x: Interval {
                lo: half - tol,
                hi: width as f64 - half + tol,
            },
            y: Interval { lo: y_lo, hi: y_hi },
        };
        cands.extend(std::iter::repeat_n(free, missing));
    }
    for (level, category, what) in [
        (Level::Shape, Category::Shape, "shapes"),
        (Level::Colour, Category::Colour, "colours and shapes"),
        (Level::Spatial, Category::Spatial, "spatial relation"),
        (Level::Layout, Category::Layout, "layout clauses"),
    ] {
        if !align::satisfiable(&p, &cands, level, Quant::Exists, true) {
            return Feasibility::Impossible {
                category,
                reason: format!(
                    "no completion of the {} visible object(s) and {missing} missing one(s) \
                     can satisfy the prompt's {what}",
                    cands.len() - missing
                ),
            };
        }
    }
    Feasibility::Possible
}

/// Layout clauses for the objects seen in the top `rows_known` rows of `img`, as text to
/// append to the prompt after a comma (`the red circle on the top left, the blue shape on the
/// right`); `None` when no seen object has a clear region. See the module doc.
pub fn infer_layout(prompt: &Prompt, img: &RgbImage, rows_known: usize) -> Result<Option<String>> {
    let cfg = config_for(img)?;
    check_rows(img, rows_known)?;
    let graph = perceive(img, rows_known, &cfg);
    let clauses = infer_layout_clauses(prompt, &graph, &cfg);
    Ok((!clauses.is_empty()).then(|| layout_text(&clauses)))
}

/// The layout clauses [`infer_layout`] writes, structured (at most 3; objects whose colour no
/// prompt object can have are left out). Use [`Prompt::with_layout`] to reformulate.
pub fn infer_layout_clauses(
    prompt: &Prompt,
    graph: &SceneGraph,
    cfg: &ScorerConfig,
) -> Vec<LayoutClause> {
    let slots = prompt.slots();
    let tol = cfg.position_tolerance;
    let (w, h) = (graph.width as f64, graph.height as f64);
    let band = |lo: f64, hi: f64, extent: f64| {
        let (a, b) = (Band::of(lo / extent), Band::of(hi / extent));
        (a == b).then_some(a)
    };
    let mut out = Vec::new();
    for d in &graph.objects {
        let compatible: Vec<&Pattern> = slots
            .iter()
            .filter(|s| s.colour.is_none_or(|c| c == d.colour))
            .filter(|s| d.shape.is_none() || s.shape.is_none_or(|sh| Some(sh) == d.shape))
            .collect();
        if compatible.is_empty() {
            continue;
        }
        let shape = d.shape.or_else(|| {
            let first = compatible[0].shape;
            compatible
                .iter()
                .all(|s| s.shape == first)
                .then_some(first)
                .flatten()
        });
        let (ylo, yhi) = region_y(d, cfg);
        let row = band(ylo, yhi, h);
        let col = band(d.cx - tol, d.cx + tol, w);
        if let Some(region) = region_for(row, col) {
            out.push(LayoutClause {
                target: Pattern {
                    colour: Some(d.colour),
                    shape,
                },
                region,
            });
        }
        if out.len() == crate::prompt::MAX_LAYOUT {
            break;
        }
    }
    out
}

fn region_y(d: &Detection, cfg: &ScorerConfig) -> (f64, f64) {
    d.y_range(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::palette::{Colour, Shape};
    use crate::render::render;
    use crate::scene::{Background, Object, Scene};

    fn scene(objects: Vec<Object>) -> RgbImage {
        render(&Scene {
            seed: 11,
            size: 64,
            objects,
            background: Background {
                level: 120.0,
                tint: [2.0, -3.0, 1.0],
                amplitude: 12.0,
                cell: 8.0,
                gradient: [5.0, -5.0],
                noise: 4.0,
                object_noise: 2.0,
            },
        })
    }

    fn obj(shape: Shape, colour: Colour, cx: f64, cy: f64, size: f64) -> Object {
        Object {
            shape,
            colour,
            cx,
            cy,
            size,
            shade: 0.0,
        }
    }

    fn p(s: &str) -> Prompt {
        Prompt::parse(s).unwrap()
    }

    #[test]
    fn full_scores_per_category() {
        let img = scene(vec![
            obj(Shape::Circle, Colour::Red, 14.0, 14.0, 16.0),
            obj(Shape::Square, Colour::Blue, 48.0, 44.0, 18.0),
        ]);
        let s = score(&p("a red circle left of a blue square"), &img).unwrap();
        assert!(s.aligned && s.soft == 1.0, "{s:?}");
        let s = score(&p("a red circle right of a blue square"), &img).unwrap();
        assert!(!s.aligned && !s.verdicts.spatial && s.verdicts.colour);
        let s = score(&p("a blue circle and a red square"), &img).unwrap();
        assert!(s.verdicts.count && s.verdicts.shape && !s.verdicts.colour);
        let s = score(&p("three shapes"), &img).unwrap();
        // Three slots cannot be assigned injectively to two objects.
        assert!(!s.verdicts.count && !s.verdicts.shape && !s.aligned);
        let s = score(&p("two circles"), &img).unwrap();
        assert!(s.verdicts.count && !s.verdicts.shape);
        let s = score(&p("a red circle and a blue square, the red circle on the top left, the blue square on the bottom"), &img).unwrap();
        assert!(s.aligned);
        let s = score(
            &p("a red circle and a blue square, the red circle on the right"),
            &img,
        )
        .unwrap();
        assert!(s.verdicts.spatial && !s.verdicts.layout && !s.aligned);
        assert!(s.soft > 0.8 && s.soft < 1.0);
    }

    #[test]
    fn partial_canvas_verdicts() {
        let img = scene(vec![
            obj(Shape::Circle, Colour::Red, 14.0, 10.0, 14.0),
            obj(Shape::Square, Colour::Blue, 48.0, 46.0, 18.0),
        ]);
        let poss = |s: &str, rows| check_partial(&p(s), &img, rows).unwrap();
        // The red circle is fully seen in the first 20 rows; the square is not visible yet.
        assert!(poss("a red circle above a blue square", 20).is_possible());
        assert!(poss("a red circle and a blue square", 20).is_possible());
        assert!(poss("a red circle and two triangles", 20).is_possible());
        let e = poss("a blue circle and a blue square", 20);
        assert!(
            matches!(
                e,
                Feasibility::Impossible {
                    category: Category::Colour,
                    ..
                }
            ),
            "{e}"
        );
        let e = poss("a red square", 20);
        assert!(
            matches!(
                e,
                Feasibility::Impossible {
                    category: Category::Shape,
                    ..
                }
            ),
            "{e}"
        );
        let e = poss("a blue square above a red circle", 20);
        assert!(
            matches!(
                e,
                Feasibility::Impossible {
                    category: Category::Spatial,
                    ..
                }
            ),
            "{e}"
        );
        let e = poss("a red circle, the red circle on the bottom", 20);
        assert!(
            matches!(
                e,
                Feasibility::Impossible {
                    category: Category::Layout,
                    ..
                }
            ),
            "{e}"
        );
        // Once everything is known, the count is decided.
        let e = poss("a red circle", 64);
        assert!(
            matches!(
                e,
                Feasibility::Impossible {
                    category: Category::Count,
                    ..
                }
            ),
            "{e}"
        );
        assert!(poss("a red circle and a blue square", 64).is_possible());
        // No room below row 60 for a missing object.
        let e = poss("three shapes", 60);
        assert!(
            matches!(
                e,
                Feasibility::Impossible {
                    category: Category::Count,
                    ..
                }
            ),
            "{e}"
        );
        // Cut square at rows 40: colour known, shape unknown.
        assert!(poss("a red circle and a blue triangle", 42).is_possible());
        let e = poss("a red circle and a green triangle", 42);
        assert!(!e.is_possible());
        assert!(check_partial(&p("a red circle"), &img, 65).is_err());
    }

    #[test]
    fn layout_inference() {
        let img = scene(vec![
            obj(Shape::Circle, Colour::Red, 10.0, 10.0, 14.0),
            obj(Shape::Square, Colour::Blue, 50.0, 46.0, 18.0),
        ]);
        let prompt = p("a red circle and a blue square");
        let l = infer_layout(&prompt, &img, 20).unwrap().unwrap();
        assert_eq!(l, "the red circle on the top left");
        let l = infer_layout(&prompt, &img, 64).unwrap().unwrap();
        assert_eq!(
            l,
            "the red circle on the top left, the blue square on the bottom right"
        );
        let re = p(&format!("{prompt}, {l}"));
        assert!(score(&re, &img).unwrap().aligned);
        // A cut object gets its shape from the prompt; its 18 px visible width puts its
        // centre at least 9 px below its top (row 37), i.e. in the bottom third.
        let l = infer_layout(&prompt, &img, 40).unwrap().unwrap();
        assert_eq!(
            l,
            "the red circle on the top left, the blue square on the bottom right"
        );
        // Only its top two rows (a narrow sliver of a circle) leave the row undecided.
        let img2 = scene(vec![obj(Shape::Circle, Colour::Blue, 50.0, 40.0, 24.0)]);
        let l = infer_layout(&p("a blue circle"), &img2, 31)
            .unwrap()
            .unwrap();
        assert_eq!(l, "the blue circle on the right");
        assert_eq!(infer_layout(&prompt, &img, 2).unwrap(), None);
    }

    #[test]
    fn odd_sizes_are_errors() {
        let img = RgbImage::new(64, 32);
        let e = score(&p("a red circle"), &img).unwrap_err().to_string();
        assert!(e.contains("64x32"), "{e}");
        let cfg = ScorerConfig::for_canvas(128);
        let e = score_with(&p("a red circle"), &RgbImage::new(64, 64), &cfg).unwrap_err();
        assert!(e.to_string().contains("128x128"), "{e}");
    }
}
