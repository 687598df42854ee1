//! Describing a scene: prompts generated from scenes, so that every training image has a true
//! prompt, tagged with the categories it exercises.
//!
//! Styles ([`PromptStyle`]):
//! - `Full`: every object with colour and shape, equal descriptions grouped and counted
//!   (`two red circles and a blue square`);
//! - `Shapes`: shapes only (`two circles and a triangle`);
//! - `Colours`: colours only (`a red shape and two blue shapes`);
//! - `Count`: the number only (`three shapes`);
//! - `Spatial`: two objects with a clear relation (their centres at least `size/8` apart on the
//!   dominant axis), full descriptions, plus the third object if any.
//!
//! Phrase order is a seeded shuffle. [`sample_for_scene`] draws a style (Full 40%, Spatial 30%
//! when some pair is clear, else Full; Shapes 12%, Colours 12%, Count 6%) and, with
//! probability 0.3, one or two layout clauses about objects whose region is clear (centre at
//! least `size/32` from the thirds' borders; a corner region loses one of its words with
//! probability 1/4 so both region forms occur in training). All draws come from the prompt
//! stream of `(scene seed, variant)`, never from the image streams.

use crate::palette::{Colour, Shape};
use crate::prompt::{Band, Body, LayoutClause, Pattern, Phrase, Prompt, Region, Relation};
use crate::rng::{Rng, STREAM_PROMPT};
use crate::scene::{Object, Scene};

/// How a scene is described.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromptStyle {
    /// Colour and shape of every object.
    Full,
    /// Shapes only.
    Shapes,
    /// Colours only.
    Colours,
    /// The number of objects only.
    Count,
    /// A spatial relation between two objects (plus the third).
    Spatial,
}

impl PromptStyle {
    /// All styles.
    pub const ALL: [PromptStyle; 5] = [
        PromptStyle::Full,
        PromptStyle::Shapes,
        PromptStyle::Colours,
        PromptStyle::Count,
        PromptStyle::Spatial,
    ];
}

fn prompt_rng(scene: &Scene, variant: u64) -> Rng {
    Rng::new(scene.seed, STREAM_PROMPT ^ (variant << 8))
}

impl Prompt {
    /// A true prompt for `scene` in `style`; `None` for `Spatial` when no pair of objects is
    /// clearly related. `variant` reseeds the wording (phrase order, relation choice).
    pub fn from_scene(scene: &Scene, style: PromptStyle, variant: u64) -> Option<Prompt> {
        let mut rng = prompt_rng(scene, variant);
        describe(scene, style, &mut rng)
    }
}

fn describe(scene: &Scene, style: PromptStyle, rng: &mut Rng) -> Option<Prompt> {
    let mut order: Vec<usize> = (0..scene.objects.len()).collect();
    rng.shuffle(&mut order);
    let key = |o: &Object| -> Pattern {
        match style {
            PromptStyle::Full | PromptStyle::Spatial => Pattern::new(o.colour, o.shape),
            PromptStyle::Shapes => Pattern {
                colour: None,
                shape: Some(o.shape),
            },
            PromptStyle::Colours => Pattern {
                colour: Some(o.colour),
                shape: None,
            },
            PromptStyle::Count => Pattern::default(),
        }
    };
    if style == PromptStyle::Spatial {
        let pairs = clear_pairs(scene);
        if pairs.is_empty() {
            return None;
        }
        let (i, j, rel) = pairs[rng.below(pairs.len() as u64) as usize];
        let (i, j, rel) = if rng.chance(0.5) {
            (j, i, rel.converse())
        } else {
            (i, j, rel)
        };
        let extra = order
            .iter()
            .find(|&&k| k != i && k != j)
            .map(|&k| key(&scene.objects[k]));
        return Some(Prompt {
            body: Body::Relation {
                subject: key(&scene.objects[i]),
                relation: rel,
                object: key(&scene.objects[j]),
                extra,
            },
            layout: Vec::new(),
        });
    }
    let mut phrases: Vec<Phrase> = Vec::new();
    for k in order {
        let pat = key(&scene.objects[k]);
        match phrases.iter_mut().find(|p| p.pattern == pat) {
            Some(p) => p.count += 1,
            None => phrases.push(Phrase {
                count: 1,
                pattern: pat,
            }),
        }
    }
    Some(Prompt {
        body: Body::List(phrases),
        layout: Vec::new(),
    })
}

/// Ordered pairs `(i, j, rel)` with `rel(i, j)` clear: dominant-axis distance ≥ size/8.
fn clear_pairs(scene: &Scene) -> Vec<(usize, usize, Relation)> {
    let margin = scene.size as f64 / 8.0;
    let mut out = Vec::new();
    for (i, a) in scene.objects.iter().enumerate() {
        for (j, b) in scene.objects.iter().enumerate().skip(i + 1) {
            let dx = b.cx - a.cx;
            let dy = b.cy - a.cy;
            let rel = if dx.abs() >= dy.abs() {
                if dx.abs() < margin {
                    continue;
                }
                if dx > 0.0 {
                    Relation::LeftOf
                } else {
                    Relation::RightOf
                }
            } else {
                if dy.abs() < margin {
                    continue;
                }
                if dy > 0.0 {
                    Relation::Above
                } else {
                    Relation::Below
                }
            };
            out.push((i, j, rel));
        }
    }
    out
}

/// The clearly determined `(row, column)` bands of a point, each `None` when the point is
/// within `margin` pixels of a thirds border on that axis.
pub fn clear_bands(cx: f64, cy: f64, size: f64, margin: f64) -> (Option<Band>, Option<Band>) {
    let band = |v: f64| {
        let b = Band::of(v / size);
        let near = [size / 3.0, 2.0 * size / 3.0]
            .iter()
            .any(|t| (v - t).abs() < margin);
        (!near).then_some(b)
    };
    (band(cy), band(cx))
}

/// The most specific region the grammar can name for the clear bands `(row, col)`.
pub fn region_for(row: Option<Band>, col: Option<Band>) -> Option<Region> {
    use Band::*;
    match (row, col) {
        (Some(Middle), Some(Middle)) => Some(Region::Center),
        (Some(Middle), c) => c.and_then(|c| Region::from_bands(None, Some(c))),
        (r, Some(Middle)) => r.and_then(|r| Region::from_bands(Some(r), None)),
        (r, c) => Region::from_bands(r, c),
    }
}

/// A true training prompt for `scene` (style mixture and layout clauses: see the module doc).
/// `variant` selects one of many prompts for the same scene.
pub fn sample_for_scene(scene: &Scene, variant: u64) -> Prompt {
    let mut rng = prompt_rng(scene, variant);
    let u = rng.unit();
    let style = if u < 0.4 {
        PromptStyle::Full
    } else if u < 0.7 {
        PromptStyle::Spatial
    } else if u < 0.82 {
        PromptStyle::Shapes
    } else if u < 0.94 {
        PromptStyle::Colours
    } else {
        PromptStyle::Count
    };
    let mut prompt = describe(scene, style, &mut rng)
        .or_else(|| describe(scene, PromptStyle::Full, &mut rng))
        .expect("Full always describes a scene");
    if rng.chance(0.3) {
        let n = 1 + rng.below(2) as usize;
        let mut idx: Vec<usize> = (0..scene.objects.len()).collect();
        rng.shuffle(&mut idx);
        let margin = scene.size as f64 / 32.0;
        for k in idx {
            if prompt.layout.len() >= n {
                break;
            }
            let o = &scene.objects[k];
            let (mut row, mut col) = clear_bands(o.cx, o.cy, scene.size as f64, margin);
            if row.is_some_and(|b| b != Band::Middle)
                && col.is_some_and(|b| b != Band::Middle)
                && rng.chance(0.25)
            {
                if rng.chance(0.5) {
                    row = None;
                } else {
                    col = None;
                }
            }
            if let Some(region) = region_for(row, col) {
                prompt.layout.push(LayoutClause {
                    target: Pattern::new(o.colour, o.shape),
                    region,
                });
            }
        }
    }
    prompt
}

/// The describing pattern of an object with both attributes (convenience for callers).
pub fn full_pattern(colour: Colour, shape: Shape) -> Pattern {
    Pattern::new(colour, shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::GenConfig;

    #[test]
    fn generated_prompts_round_trip_and_describe_every_object() {
        let cfg = GenConfig::default();
        let mut spatial = 0;
        let mut layout = 0;
        for seed in 0..300 {
            let s = Scene::generate(seed, &cfg).unwrap();
            for style in PromptStyle::ALL {
                if let Some(p) = Prompt::from_scene(&s, style, 0) {
                    assert_eq!(p.slots().len(), s.objects.len(), "{p}");
                    assert_eq!(Prompt::parse(&p.to_string()).unwrap(), p);
                }
            }
            let p = sample_for_scene(&s, 0);
            assert_eq!(Prompt::parse(&p.to_string()).unwrap(), p, "{p}");
            assert_eq!(p, sample_for_scene(&s, 0));
            spatial += p.tags().spatial as usize;
            layout += p.tags().layout as usize;
        }
        assert!(spatial > 40 && layout > 40, "{spatial} {layout}");
    }

    #[test]
    fn regions_cover_the_grid() {
        use Band::*;
        assert_eq!(region_for(Some(Low), Some(Low)), Some(Region::TopLeft));
        assert_eq!(region_for(Some(Low), Some(Middle)), Some(Region::Top));
        assert_eq!(region_for(Some(Middle), Some(High)), Some(Region::Right));
        assert_eq!(region_for(Some(Middle), None), None);
        assert_eq!(region_for(None, Some(Low)), Some(Region::Left));
        assert_eq!(region_for(None, None), None);
        assert_eq!(
            clear_bands(32.0, 10.0, 64.0, 2.0),
            (Some(Low), Some(Middle))
        );
        assert_eq!(clear_bands(21.0, 10.0, 64.0, 2.0), (Some(Low), None));
    }
}
