//! The scorer's accuracy harness: renders held-out scenes, builds true and corrupted prompts,
//! and compares the scorer with the ground-truth [`crate::oracle`] on full canvases (per
//! category) and partial canvases (per kind of corruption and rows known).
//!
//! Prompts per scene: the training-style prompt ([`sample_for_scene`]), a full description
//! with a layout clause for every object whose region is clear, and a spatial prompt when a
//! pair of objects is clearly related; then one corruption of each kind that applies to each
//! of them: a colour changed, a shape changed, a count changed (or a phrase dropped), the
//! relation reversed, a layout region changed. A corrupted prompt is not necessarily false
//! (e.g. `top left` → `top` stays true): the oracle decides.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::degrade::Degradation;
use crate::generate::{clear_bands, region_for, sample_for_scene, PromptStyle};
use crate::image::RgbImage;
use crate::oracle::{self, Truth};
use crate::palette::{Colour, Shape};
use crate::perceive::{perceive, ScorerConfig};
use crate::prompt::{Body, Category, LayoutClause, Pattern, Prompt, Region};
use crate::render::render;
use crate::rng::Rng;
use crate::scene::{GenConfig, Scene};
use crate::score::{check_graph, score_graph};

/// What a test prompt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Case {
    /// A true description of the scene.
    True,
    /// A colour changed.
    Colour,
    /// A shape changed.
    Shape,
    /// A count changed or a phrase dropped.
    Count,
    /// The relation reversed.
    Spatial,
    /// A layout region changed.
    Layout,
}

impl Case {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Case::True => "true prompt",
            Case::Colour => "colour changed",
            Case::Shape => "shape changed",
            Case::Count => "count changed",
            Case::Spatial => "relation reversed",
            Case::Layout => "region changed",
        }
    }
}

/// Correct / wrong / ambiguous (excluded) counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// The scorer agreed with a definite truth.
    pub correct: usize,
    /// The scorer disagreed with a definite truth.
    pub wrong: usize,
    /// The truth was too close to call (not counted in the accuracy).
    pub ambiguous: usize,
}

impl Tally {
    /// Records one judgement (`None`: ambiguous).
    pub fn add(&mut self, judged: Option<bool>) {
        match judged {
            Some(true) => self.correct += 1,
            Some(false) => self.wrong += 1,
            None => self.ambiguous += 1,
        }
    }

    /// Accuracy on the definite cases (1 when there are none).
    pub fn accuracy(&self) -> f64 {
        let n = self.correct + self.wrong;
        if n == 0 {
            1.0
        } else {
            self.correct as f64 / n as f64
        }
    }
}

/// What to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    /// Number of scenes.
    pub scenes: usize,
    /// Seed of the first scene (use [`crate::export::SPLIT_TEST`] for held-out scenes).
    pub first_seed: u64,
    /// Degradation applied to every rendered image.
    pub degradation: Option<Degradation>,
    /// Images to judge instead of the renders: `DIR/{index:06}.png` for scene `index` (0-based,
    /// seed `first_seed + index`), e.g. a tokenizer's reconstructions of the renders. The
    /// degradation, if any, applies on top. Every image must have the world's canvas size.
    pub images: Option<PathBuf>,
    /// Rows known of the partial canvases (for 64 px and an 8×8 grid: 16 = GridAR's first
    /// quarter, 32 = half).
    pub partial_rows: Vec<usize>,
    /// The world.
    pub gen: GenConfig,
}

/// Evaluation results.
#[derive(Debug, Clone, Default)]
pub struct EvalReport {
    /// Objects of the full canvases found with the right colour, shape and centre (±1.5 px):
    /// one entry per true object, plus a wrong one per detection beyond the true count.
    pub objects: Tally,
    /// Full canvas: each category's verdict, over every test prompt.
    pub categories: BTreeMap<Category, Tally>,
    /// Full canvas: alignment, per kind of test prompt.
    pub aligned: BTreeMap<Case, Tally>,
    /// Partial canvases: possible / impossible, per rows known and kind of test prompt.
    pub partial: BTreeMap<(usize, Case), Tally>,
    /// Partial canvases per rows known: `(definitely impossible, of which the verifier said
    /// impossible, definitely possible, of which the verifier said impossible)`.
    pub impossible: BTreeMap<usize, (usize, usize, usize, usize)>,
    /// Number of (scene, prompt) pairs.
    pub prompts: usize,
}

impl EvalReport {
    /// Total full-canvas category tally.
    pub fn category(&self, c: Category) -> Tally {
        self.categories.get(&c).copied().unwrap_or_default()
    }

    /// Tally of partial canvases with `rows` known, over all kinds.
    pub fn partial_rows(&self, rows: usize) -> Tally {
        let mut t = Tally::default();
        for ((r, _), v) in &self.partial {
            if *r == rows {
                t.correct += v.correct;
                t.wrong += v.wrong;
                t.ambiguous += v.ambiguous;
            }
        }
        t
    }

    /// The results as a JSON object: `prompts`, `objects`, `categories` (per category),
    /// `aligned` (per kind of test prompt) and `partial` (per rows known: `all` and per kind),
    /// each tally as `{"accuracy", "correct", "wrong", "ambiguous"}`.
    pub fn to_json(&self) -> String {
        let tally = |t: &Tally| {
            format!(
                "{{\"accuracy\": {:.6}, \"correct\": {}, \"wrong\": {}, \"ambiguous\": {}}}",
                t.accuracy(),
                t.correct,
                t.wrong,
                t.ambiguous
            )
        };
        let map = |entries: Vec<(String, String)>| {
            let body: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("\"{k}\": {v}"))
                .collect();
            format!("{{{}}}", body.join(", "))
        };
        let mut rows: Vec<usize> = self.partial.keys().map(|k| k.0).collect();
        rows.dedup();
        let partial = rows
            .iter()
            .map(|&r| {
                let mut e = vec![("all".to_string(), tally(&self.partial_rows(r)))];
                e.extend(
                    self.partial
                        .iter()
                        .filter(|((rr, _), _)| *rr == r)
                        .map(|((_, c), t)| (c.name().to_string(), tally(t))),
                );
                (r.to_string(), map(e))
            })
            .collect();
        map(vec![
            ("prompts".into(), self.prompts.to_string()),
            ("objects".into(), tally(&self.objects)),
            (
                "categories".into(),
                map(self
                    .categories
                    .iter()
                    .map(|(c, t)| (c.name().to_string(), tally(t)))
                    .collect()),
            ),
            (
                "aligned".into(),
                map(self
                    .aligned
                    .iter()
                    .map(|(c, t)| (c.name().to_string(), tally(t)))
                    .collect()),
            ),
            ("partial".into(), map(partial)),
        ])
    }

    /// A plain-text table of the results.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let line = |s: &mut String, name: &str, t: &Tally| {
            s.push_str(&format!(
                "  {name:<28} {:>7.3}%  ({} / {}, {} ambiguous)\n",
                100.0 * t.accuracy(),
                t.correct,
                t.correct + t.wrong,
                t.ambiguous
            ));
        };
        s.push_str(&format!(
            "{} test prompts\nscene parsing (objects):\n",
            self.prompts
        ));
        line(&mut s, "objects", &self.objects);
        s.push_str("full canvas, per category verdict:\n");
        for (c, t) in &self.categories {
            line(&mut s, c.name(), t);
        }
        s.push_str("full canvas, alignment per prompt kind:\n");
        for (c, t) in &self.aligned {
            line(&mut s, c.name(), t);
        }
        let rows: Vec<usize> = {
            let mut r: Vec<usize> = self.partial.keys().map(|k| k.0).collect();
            r.dedup();
            r
        };
        for r in rows {
            s.push_str(&format!(
                "partial canvas, {r} rows known, possible/impossible:\n"
            ));
            for ((rr, c), t) in &self.partial {
                if *rr == r {
                    line(&mut s, c.name(), t);
                }
            }
            line(&mut s, "all", &self.partial_rows(r));
            if let Some((ni, di, np, fi)) = self.impossible.get(&r) {
                s.push_str(&format!(
                    "  impossible found: {di} of {ni} definitely impossible; false impossible: {fi} of {np} possible\n"
                ));
            }
        }
        s
    }
}

fn patterns_mut(p: &mut Prompt) -> Vec<&mut Pattern> {
    match &mut p.body {
        Body::List(ps) => ps.iter_mut().map(|ph| &mut ph.pattern).collect(),
        Body::Relation {
            subject,
            object,
            extra,
            ..
        } => {
            let mut v = vec![subject, object];
            if let Some(e) = extra {
                v.push(e);
            }
            v
        }
    }
}

fn mutate(p: &Prompt, case: Case, rng: &mut Rng) -> Option<Prompt> {
    let mut q = p.clone();
    match case {
        Case::True => return None,
        Case::Colour => {
            let mut pats: Vec<&mut Pattern> = patterns_mut(&mut q)
                .into_iter()
                .filter(|p| p.colour.is_some())
                .collect();
            if pats.is_empty() {
                return None;
            }
            let k = rng.below(pats.len() as u64) as usize;
            let old = pats[k].colour;
            let others: Vec<Colour> = Colour::ALL
                .into_iter()
                .filter(|c| Some(*c) != old)
                .collect();
            pats[k].colour = Some(others[rng.below(others.len() as u64) as usize]);
        }
        Case::Shape => {
            let mut pats: Vec<&mut Pattern> = patterns_mut(&mut q)
                .into_iter()
                .filter(|p| p.shape.is_some())
                .collect();
            if pats.is_empty() {
                return None;
            }
            let k = rng.below(pats.len() as u64) as usize;
            let old = pats[k].shape;
            let others: Vec<Shape> = Shape::ALL.into_iter().filter(|s| Some(*s) != old).collect();
            pats[k].shape = Some(others[rng.below(others.len() as u64) as usize]);
        }
        Case::Count => {
            let Body::List(ps) = &mut q.body else {
                return None;
            };
            let total: u8 = ps.iter().map(|p| p.count).sum();
            let k = rng.below(ps.len() as u64) as usize;
            let c = ps[k].count;
            let options: Vec<u8> = (0..=3u8)
                .filter(|&n| n != c && total - c + n <= 3 && total - c + n >= 1)
                .filter(|&n| n > 0 || ps.len() > 1)
                .collect();
            if options.is_empty() {
                return None;
            }
            let n = options[rng.below(options.len() as u64) as usize];
            if n == 0 {
                ps.remove(k);
            } else {
                ps[k].count = n;
            }
        }
        Case::Spatial => {
            let Body::Relation { relation, .. } = &mut q.body else {
                return None;
            };
            *relation = relation.converse();
        }
        Case::Layout => {
            if q.layout.is_empty() {
                return None;
            }
            let k = rng.below(q.layout.len() as u64) as usize;
            let old = q.layout[k].region;
            let others: Vec<Region> = Region::ALL.into_iter().filter(|r| *r != old).collect();
            q.layout[k].region = others[rng.below(others.len() as u64) as usize];
        }
    }
    Some(q)
}

/// The test prompts of a scene (see the module doc), each with its kind.
pub fn test_prompts(scene: &Scene) -> Vec<(Case, Prompt)> {
    let mut rng = Rng::new(scene.seed, 0xe7a1);
    let mut base = vec![sample_for_scene(scene, 0)];
    if let Some(mut full) = Prompt::from_scene(scene, PromptStyle::Full, 1) {
        let margin = scene.size as f64 / 32.0;
        for o in &scene.objects {
            let (row, col) = clear_bands(o.cx, o.cy, scene.size as f64, margin);
            if let Some(region) = region_for(row, col) {
                full.layout.push(LayoutClause {
                    target: Pattern::new(o.colour, o.shape),
                    region,
                });
            }
        }
        base.push(full);
    }
    if let Some(sp) = Prompt::from_scene(scene, PromptStyle::Spatial, 2) {
        base.push(sp);
    }
    let mut out = Vec::new();
    for b in base {
        for case in [
            Case::Colour,
            Case::Shape,
            Case::Count,
            Case::Spatial,
            Case::Layout,
        ] {
            if let Some(m) = mutate(&b, case, &mut rng) {
                out.push((case, m));
            }
        }
        out.push((Case::True, b));
    }
    out
}

/// Runs the evaluation.
pub fn evaluate(cfg: &EvalConfig) -> crate::Result<EvalReport> {
    let scfg = ScorerConfig::for_world(&cfg.gen);
    let mut rep = EvalReport::default();
    for i in 0..cfg.scenes {
        let seed = cfg.first_seed.wrapping_add(i as u64);
        let scene = Scene::generate(seed, &cfg.gen)?;
        let mut img = match &cfg.images {
            Some(dir) => RgbImage::load_png_sized(
                &dir.join(format!("{i:06}.png")),
                cfg.gen.size,
                cfg.gen.size,
            )?,
            None => render(&scene),
        };
        if let Some(d) = &cfg.degradation {
            img = d.apply(&img, seed);
        }
        let full = perceive(&img, img.height(), &scfg);
        tally_objects(&scene, &full, &mut rep.objects);
        let partials: Vec<_> = cfg
            .partial_rows
            .iter()
            .map(|&r| (r, perceive(&img, r, &scfg)))
            .collect();
        for (case, prompt) in test_prompts(&scene) {
            rep.prompts += 1;
            let truth = oracle::verdicts(&prompt, &scene);
            let s = score_graph(&prompt, full.clone());
            for c in Category::ALL {
                rep.categories
                    .entry(c)
                    .or_default()
                    .add(truth.get(c).judge(s.verdicts.get(c)));
            }
            rep.aligned
                .entry(case)
                .or_default()
                .add(truth.aligned.judge(s.aligned));
            for (rows, graph) in &partials {
                let t = oracle::partial(&prompt, &scene, *rows, &scfg);
                let got = check_graph(&prompt, graph, &scfg).is_possible();
                rep.partial
                    .entry((*rows, case))
                    .or_default()
                    .add(t.judge(got));
                let e = rep.impossible.entry(*rows).or_default();
                match t {
                    Truth::No => {
                        e.0 += 1;
                        e.1 += !got as usize;
                    }
                    Truth::Yes => {
                        e.2 += 1;
                        e.3 += !got as usize;
                    }
                    Truth::Ambiguous => {}
                }
            }
        }
    }
    Ok(rep)
}

fn tally_objects(scene: &Scene, g: &crate::SceneGraph, t: &mut Tally) {
    let tol = 1.5 * scene.size as f64 / 64.0;
    let mut used = vec![false; g.objects.len()];
    for o in &scene.objects {
        let hit = g.objects.iter().enumerate().position(|(k, d)| {
            !used[k]
                && (d.cx - o.cx).abs() <= tol
                && (d.cy - o.cy).abs() <= tol
                && d.colour == o.colour
                && d.shape == Some(o.shape)
        });
        match hit {
            Some(k) => {
                used[k] = true;
                t.add(Some(true));
            }
            None => t.add(Some(false)),
        }
    }
    // Detections beyond the true count are spurious (misread objects are already counted).
    t.wrong += g.objects.len().saturating_sub(scene.objects.len());
}

/// Whether `truth` is definite (helper for reports).
pub fn is_definite(truth: Truth) -> bool {
    truth != Truth::Ambiguous
}
