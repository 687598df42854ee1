//! Scene parsing: an image — or the known top rows of a partial canvas — into a scene graph.
//!
//! 1. **Segmentation.** Objects are saturated, the background nearly grey, so a pixel is
//!    foreground when its chroma `max(r,g,b) − min(r,g,b)` is at least
//!    [`ScorerConfig::chroma_threshold`] (64; background chroma stays below ~30, object chroma
//!    is 117–190, so the threshold sits near the half-coverage edge of every object, where
//!    blur leaves the edge). Only rows `< rows_known` are read.
//! 2. **Components.** 4-connected components of the mask; those smaller than
//!    [`ScorerConfig::min_area`] are noise. ShapesWorld objects never touch, so each
//!    component is one object. At most [`ScorerConfig::max_objects`] (the largest) are kept.
//! 3. **Colour.** The mean RGB of the component's *core* pixels (chroma at least halfway
//!    between the threshold and the component's maximum, i.e. away from blended edges) gives a
//!    hue; the colour is the palette colour of nearest hue. Hue is invariant to blending with
//!    grey and to brightness, the typical VQ reconstruction errors.
//! 4. **Shape.** The component's mask is compared, by intersection over union, with the ideal
//!    mask of each shape rasterised in the component's bounding box; the best wins (an upright
//!    triangle, circle and square differ by ≥ 0.2 IoU where the true shape scores ≥ 0.85).
//!    A box whose aspect ratio is outside `[0.6, 1/0.6]` or whose best IoU is below
//!    [`ScorerConfig::min_shape_iou`] gets no shape (a blob no prompt noun describes).
//! 5. **Position.** Centre x is the mean x of the component (all shapes are symmetric about
//!    their vertical axis, so this is the box centre, robust to edge noise); centre y is the
//!    middle of the component's rows (the box centre; a triangle's centroid would be lower).
//! 6. **Partial canvas.** A component reaching within [`ScorerConfig::cut_margin`] rows of the
//!    last known row is *cut*: it is an object whose colour is known, whose centre x is known
//!    (symmetry), whose shape is unknown and whose centre y lies in an interval (see
//!    [`Detection::y_range`]).

use crate::image::RgbImage;
use crate::palette::{hue_of, Colour, Shape};
use crate::scene::GenConfig;

/// Parameters of the scene parser and verifier. [`ScorerConfig::for_world`] derives them
/// from the generator's configuration; all pixel quantities scale with the canvas.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorerConfig {
    /// Canvas side the configuration was made for.
    pub size: usize,
    /// Foreground when chroma ≥ this (0–255).
    pub chroma_threshold: u8,
    /// Smaller components are noise (pixels).
    pub min_area: usize,
    /// Smallest object side of the world (pixels).
    pub min_object: f64,
    /// Largest object side of the world (pixels).
    pub max_object: f64,
    /// Uncertainty of a measured centre (pixels), used by the partial verifier.
    pub position_tolerance: f64,
    /// An object whose top is fewer than this many rows above the last known row may show
    /// fewer than `min_area` pixels, i.e. be invisible yet (pixels).
    pub hidden_rows: f64,
    /// A component whose bottom row is within this many rows of the last known row is cut.
    pub cut_margin: usize,
    /// Below this best IoU a component gets no shape.
    pub min_shape_iou: f64,
    /// Most components kept (largest first).
    pub max_objects: usize,
}

impl ScorerConfig {
    /// The configuration for images of the world `cfg` generates.
    pub fn for_world(cfg: &GenConfig) -> Self {
        let s = cfg.size as f64 / 64.0;
        ScorerConfig {
            size: cfg.size,
            chroma_threshold: 64,
            min_area: ((8.0 * s * s).round() as usize).max(4),
            min_object: cfg.min_object_px(),
            max_object: cfg.max_object_px(),
            position_tolerance: 1.5 * s,
            hidden_rows: 5.0 * s,
            cut_margin: ((2.0 * s).round() as usize).max(1),
            min_shape_iou: 0.6,
            max_objects: 12,
        }
    }

    /// The default world's configuration at canvas side `size`.
    pub fn for_canvas(size: usize) -> Self {
        Self::for_world(&GenConfig::with_size(size))
    }
}

/// One object found in an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Nearest palette colour.
    pub colour: Colour,
    /// Hue of its core pixels (degrees).
    pub hue: f64,
    /// Best-matching shape; `None` when cut by the canvas boundary or matching no shape.
    pub shape: Option<Shape>,
    /// IoU of the best shape (0 when cut).
    pub shape_iou: f64,
    /// Whether the object continues below the known rows.
    pub cut: bool,
    /// Centre x (pixels).
    pub cx: f64,
    /// Centre y of the visible part's box (pixels); for a cut object see [`Detection::y_range`].
    pub cy: f64,
    /// Bounding box of the visible pixels, `(x0, y0, x1, y1)` inclusive.
    pub bbox: (usize, usize, usize, usize),
    /// Number of pixels.
    pub area: usize,
}

impl Detection {
    /// Visible width in pixels.
    pub fn width(&self) -> usize {
        self.bbox.2 + 1 - self.bbox.0
    }

    /// Visible height in pixels.
    pub fn height(&self) -> usize {
        self.bbox.3 + 1 - self.bbox.1
    }

    /// Interval `(lo, hi)` holding the true centre y. A fully seen object: `cy ± tol`. A cut
    /// object: its box has side `h ≥ max(visible height, visible width, min_object)` and at
    /// most `max_object`, its top at the visible top, so the centre lies in
    /// `[top + max(vh, vw, min)/2 − tol, top + max(max_object, vh, vw)/2 + tol]`.
    pub fn y_range(&self, cfg: &ScorerConfig) -> (f64, f64) {
        let tol = cfg.position_tolerance;
        if !self.cut {
            return (self.cy - tol, self.cy + tol);
        }
        let top = self.bbox.1 as f64;
        let seen = (self.height() as f64).max(self.width() as f64);
        let lo = top + seen.max(cfg.min_object) / 2.0 - tol;
        let hi = top + seen.max(cfg.max_object) / 2.0 + tol;
        (lo, hi)
    }
}

/// What an image shows: its objects, and how much of it is known.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneGraph {
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Rows known (the full height for a finished image).
    pub rows_known: usize,
    /// The objects, ordered by top row then left column.
    pub objects: Vec<Detection>,
}

/// Parses the top `rows_known` rows of `img` (clamped to its height) into a scene graph.
pub fn perceive(img: &RgbImage, rows_known: usize, cfg: &ScorerConfig) -> SceneGraph {
    let (w, h) = (img.width(), img.height());
    let rows = rows_known.min(h);
    let n = w * rows;
    let raw = img.as_raw();
    let chroma: Vec<u8> = raw[..n * 3]
        .chunks_exact(3)
        .map(|p| p[0].max(p[1]).max(p[2]) - p[0].min(p[1]).min(p[2]))
        .collect();
    let thr = cfg.chroma_threshold;
    let mut label = vec![u32::MAX; n];
    let mut stack = Vec::new();
    let mut pixels: Vec<usize> = Vec::new();
    let mut found: Vec<Detection> = Vec::new();
    let mut next = 0u32;
    for start in 0..n {
        if chroma[start] < thr || label[start] != u32::MAX {
            continue;
        }
        pixels.clear();
        label[start] = next;
        stack.push(start);
        while let Some(i) = stack.pop() {
            pixels.push(i);
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if chroma[j] >= thr && label[j] == u32::MAX {
                    label[j] = next;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < rows {
                visit(i + w);
            }
        }
        if pixels.len() >= cfg.min_area {
            found.push(describe(img, &chroma, &label, next, &pixels, rows, h, cfg));
        }
        next += 1;
    }
    if found.len() > cfg.max_objects {
        found.sort_by(|a, b| b.area.cmp(&a.area).then(a.bbox.cmp(&b.bbox)));
        found.truncate(cfg.max_objects);
    }
    found.sort_by(|a, b| (a.bbox.1, a.bbox.0).cmp(&(b.bbox.1, b.bbox.0)));
    SceneGraph {
        width: w,
        height: h,
        rows_known: rows,
        objects: found,
    }
}

#[allow(clippy::too_many_arguments)]
fn describe(
    img: &RgbImage,
    chroma: &[u8],
    label: &[u32],
    id: u32,
    pixels: &[usize],
    rows: usize,
    height: usize,
    cfg: &ScorerConfig,
) -> Detection {
    let w = img.width();
    let raw = img.as_raw();
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    let mut sum_x = 0.0;
    let mut max_c = 0u8;
    for &i in pixels {
        let (x, y) = (i % w, i / w);
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
        sum_x += x as f64 + 0.5;
        max_c = max_c.max(chroma[i]);
    }
    let core = ((cfg.chroma_threshold as u16 + max_c as u16) / 2) as u8;
    let mut rgb = [0f64; 3];
    let mut k = 0usize;
    for &i in pixels {
        if chroma[i] >= core {
            for c in 0..3 {
                rgb[c] += raw[i * 3 + c] as f64;
            }
            k += 1;
        }
    }
    let k = k.max(1) as f64;
    let hue = hue_of(rgb[0] / k, rgb[1] / k, rgb[2] / k);
    let cut = rows < height && y1 + 1 + cfg.cut_margin >= rows;
    let (shape, shape_iou) = if cut {
        (None, 0.0)
    } else {
        classify_shape(label, id, w, (x0, y0, x1, y1), cfg)
    };
    Detection {
        colour: Colour::nearest_to_hue(hue),
        hue,
        shape,
        shape_iou,
        cut,
        cx: sum_x / pixels.len() as f64,
        cy: (y0 + y1 + 1) as f64 / 2.0,
        bbox: (x0, y0, x1, y1),
        area: pixels.len(),
    }
}

/// Best shape by IoU with the ideal masks in the component's box.
fn classify_shape(
    label: &[u32],
    id: u32,
    w: usize,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    cfg: &ScorerConfig,
) -> (Option<Shape>, f64) {
    let bw = (x1 + 1 - x0) as f64;
    let bh = (y1 + 1 - y0) as f64;
    let aspect = bw / bh;
    let mut best = (None, 0.0);
    for shape in Shape::ALL {
        let (mut inter, mut union) = (0usize, 0usize);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let m = label[y * w + x] == id;
                let u = (x - x0) as f64 + 0.5;
                let v = (y - y0) as f64 + 0.5;
                let t = shape.contains_unit(u / bw, v / bh);
                inter += (m && t) as usize;
                union += (m || t) as usize;
            }
        }
        let iou = inter as f64 / union.max(1) as f64;
        if iou > best.1 {
            best = (Some(shape), iou);
        }
    }
    if !(0.6..=1.0 / 0.6).contains(&aspect) || best.1 < cfg.min_shape_iou {
        return (None, best.1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::render;
    use crate::scene::Scene;

    #[test]
    fn finds_the_rendered_objects() {
        let gen = GenConfig::default();
        let cfg = ScorerConfig::for_world(&gen);
        for seed in 0..50 {
            let s = Scene::generate(seed, &gen).unwrap();
            let g = perceive(&render(&s), 64, &cfg);
            assert_eq!(g.objects.len(), s.objects.len(), "seed {seed}: {g:?}");
            for o in &s.objects {
                let d = g
                    .objects
                    .iter()
                    .find(|d| (d.cx - o.cx).abs() < 1.0 && (d.cy - o.cy).abs() < 1.0)
                    .unwrap_or_else(|| panic!("seed {seed}: {o:?} not found in {g:?}"));
                assert_eq!(d.colour, o.colour, "seed {seed}");
                assert_eq!(d.shape, Some(o.shape), "seed {seed} {d:?}");
                assert!(!d.cut);
            }
        }
    }

    #[test]
    fn a_grey_image_has_no_objects_and_rows_are_clamped() {
        let mut img = RgbImage::new(64, 64);
        img.as_raw_mut().fill(128);
        let g = perceive(&img, 1000, &ScorerConfig::for_canvas(64));
        assert!(g.objects.is_empty());
        assert_eq!(g.rows_known, 64);
    }
}
