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
//! 4. **Soft mask.** Around the component (its box padded by 3 px) each pixel gets a
//!    membership `α = clamp(((p − b)·(o − b)) / |o − b|², 0, 1)` (zeroed below 0.15), with `o`
//!    the core colour and `b` the per-channel median of the surrounding background pixels: the
//!    fraction of the pixel the object covers, once blur or compression has smeared it. It uses
//!    all three channels, so edges survive JPEG's chroma subsampling where the object differs
//!    from the background in brightness.
//! 5. **Shape, by blur-invariant moments** of `α` (Hu, "Visual pattern recognition by moment
//!    invariants", IRE Trans. Inf. Theory 1962, for moment features; Flusser & Suk, "Degraded
//!    image analysis: an invariant approach", IEEE TPAMI 1998, for invariance to symmetric
//!    blur). A Gaussian blur adds independent noise to the coordinates, so it leaves the
//!    centroid, the third central moment `μ₀₃` and the cumulant `μ₂₂ − μ₂₀μ₀₂` unchanged.
//!    The y-skewness `μ₀₃/μ₀₂^{3/2}` is −0.57 for an upright triangle and 0 for the symmetric
//!    circle and square (blur σ = 2 px keeps triangles below −0.28); the dependence
//!    `(μ₂₂ − μ₂₀μ₀₂)/(μ₂₀μ₀₂)` is −1/3 for a disc and 0 for a square (x and y independent).
//!    So: triangle when skewness < −0.2, else circle when dependence < −0.165, else square.
//!    The choice is confirmed by the intersection over union of the binary mask with that
//!    shape's ideal mask in the component's box: a box whose aspect ratio is outside
//!    `[0.6, 1/0.6]` or an IoU below [`ScorerConfig::min_shape_iou`] (0.45) gets no shape (a
//!    blob no prompt noun describes).
//! 6. **Position.** The centre is the soft centroid (blur-invariant), less a sixth of the box
//!    width in y for a triangle (whose centroid lies `h/6` below its box centre, `h` = base).
//! 7. **Partial canvas.** A component reaching within [`ScorerConfig::cut_margin`] rows of the
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
            min_area: ((12.0 * s * s).round() as usize).max(4),
            min_object: cfg.min_object_px(),
            max_object: cfg.max_object_px(),
            position_tolerance: 1.5 * s,
            hidden_rows: 6.0 * s,
            cut_margin: ((2.0 * s).round() as usize).max(1),
            min_shape_iou: 0.45,
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
    /// Skewness of the soft mask along y (upright triangle ≈ −0.57, circle and square 0;
    /// blur shrinks it but keeps its sign).
    pub skew: f64,
    /// `(E[x²y²] − E[x²]E[y²]) / (E[x²]E[y²])` of the soft mask, central moments (circle
    /// −1/3, square 0; the numerator is invariant to Gaussian blur).
    pub dependence: f64,
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
    found.sort_by_key(|d| (d.bbox.1, d.bbox.0));
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
    let mut max_c = 0u8;
    for &i in pixels {
        let (x, y) = (i % w, i / w);
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
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
    let obj = [rgb[0] / k, rgb[1] / k, rgb[2] / k];
    let m = soft_moments(img, chroma, label, id, (x0, y0, x1, y1), rows, obj, cfg);
    let (shape, shape_iou) = if cut {
        (None, 0.0)
    } else {
        classify_shape(label, id, w, (x0, y0, x1, y1), &m, cfg)
    };
    // Centre: the soft centroid (blur-invariant); an upright triangle's centroid lies a sixth
    // of its height (= its base, the box width) below its box centre. A cut object's visible
    // part says nothing of its centre y beyond `y_range`, so its visible box is reported.
    let bw = (x1 + 1 - x0) as f64;
    let (cx, cy) = match (cut, shape) {
        (true, _) => (m.mx, (y0 + y1 + 1) as f64 / 2.0),
        (false, Some(Shape::Triangle)) => (m.mx, m.my - bw / 6.0),
        (false, _) => (m.mx, m.my),
    };
    Detection {
        colour: Colour::nearest_to_hue(hue),
        hue,
        shape,
        shape_iou,
        cut,
        cx,
        cy,
        bbox: (x0, y0, x1, y1),
        area: pixels.len(),
        skew: m.skew,
        dependence: m.dependence,
    }
}

/// Blur-invariant shape statistics of the soft mask.
#[derive(Debug, Clone, Copy)]
struct Moments {
    mx: f64,
    my: f64,
    skew: f64,
    dependence: f64,
}

/// Soft membership `α` of each pixel near the component (projection of `pixel − background`
/// on `object − background`, clamped to `[0, 1]`, below 0.15 zeroed), and its moments.
#[allow(clippy::too_many_arguments)]
fn soft_moments(
    img: &RgbImage,
    chroma: &[u8],
    label: &[u32],
    id: u32,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    rows: usize,
    obj: [f64; 3],
    cfg: &ScorerConfig,
) -> Moments {
    let w = img.width();
    let pad = 3;
    let (ax0, ay0) = (x0.saturating_sub(pad), y0.saturating_sub(pad));
    let (ax1, ay1) = ((x1 + pad).min(w - 1), (y1 + pad).min(rows - 1));
    // Background: per-channel median of the ring (pixels of the padded box that are below
    // the threshold and in no component).
    let mut ring: [Vec<u8>; 3] = Default::default();
    for y in ay0..=ay1 {
        for x in ax0..=ax1 {
            let i = y * w + x;
            if label[i] == u32::MAX && chroma[i] < cfg.chroma_threshold {
                let p = img.get(x, y);
                for c in 0..3 {
                    ring[c].push(p[c]);
                }
            }
        }
    }
    let bg: [f64; 3] = std::array::from_fn(|c| {
        let v = &mut ring[c];
        if v.is_empty() {
            128.0
        } else {
            v.sort_unstable();
            v[v.len() / 2] as f64
        }
    });
    let dir = [obj[0] - bg[0], obj[1] - bg[1], obj[2] - bg[2]];
    let dd = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]).max(1.0);
    let alpha = |x: usize, y: usize| -> f64 {
        let i = y * w + x;
        if label[i] != u32::MAX && label[i] != id {
            return 0.0;
        }
        let p = img.get(x, y);
        let a = ((p[0] as f64 - bg[0]) * dir[0]
            + (p[1] as f64 - bg[1]) * dir[1]
            + (p[2] as f64 - bg[2]) * dir[2])
            / dd;
        let a = a.clamp(0.0, 1.0);
        if a < 0.15 {
            0.0
        } else {
            a
        }
    };
    let (mut m0, mut mx, mut my) = (0.0, 0.0, 0.0);
    for y in ay0..=ay1 {
        for x in ax0..=ax1 {
            let a = alpha(x, y);
            m0 += a;
            mx += a * (x as f64 + 0.5);
            my += a * (y as f64 + 0.5);
        }
    }
    if m0 <= 0.0 {
        return Moments {
            mx: (x0 + x1 + 1) as f64 / 2.0,
            my: (y0 + y1 + 1) as f64 / 2.0,
            skew: 0.0,
            dependence: 0.0,
        };
    }
    let (mx, my) = (mx / m0, my / m0);
    let (mut u20, mut u02, mut u03, mut u22) = (0.0, 0.0, 0.0, 0.0);
    for y in ay0..=ay1 {
        for x in ax0..=ax1 {
            let a = alpha(x, y);
            let dx = x as f64 + 0.5 - mx;
            let dy = y as f64 + 0.5 - my;
            u20 += a * dx * dx;
            u02 += a * dy * dy;
            u03 += a * dy * dy * dy;
            u22 += a * dx * dx * dy * dy;
        }
    }
    let (u20, u02, u03, u22) = (u20 / m0, u02 / m0, u03 / m0, u22 / m0);
    // u02^1.5 as u02·√u02: sqrt is exact IEEE, powf is the platform's and differs across CPUs.
    let skew = if u02 > 0.0 {
        u03 / (u02 * u02.sqrt())
    } else {
        0.0
    };
    let dependence = if u20 * u02 > 0.0 {
        (u22 - u20 * u02) / (u20 * u02)
    } else {
        0.0
    };
    Moments {
        mx,
        my,
        skew,
        dependence,
    }
}

/// Skewness below this: triangle.
const TRIANGLE_SKEW: f64 = -0.2;
/// Otherwise dependence below this: circle, else square.
const CIRCLE_DEPENDENCE: f64 = -0.165;

/// The shape by blur-invariant moments (see [`Detection::skew`], [`Detection::dependence`]),
/// confirmed by the IoU of the mask with that shape's ideal mask in the component's box.
fn classify_shape(
    label: &[u32],
    id: u32,
    w: usize,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    m: &Moments,
    cfg: &ScorerConfig,
) -> (Option<Shape>, f64) {
    let shape = if m.skew < TRIANGLE_SKEW {
        Shape::Triangle
    } else if m.dependence < CIRCLE_DEPENDENCE {
        Shape::Circle
    } else {
        Shape::Square
    };
    let bw = (x1 + 1 - x0) as f64;
    let bh = (y1 + 1 - y0) as f64;
    let aspect = bw / bh;
    let (mut inter, mut union) = (0usize, 0usize);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let in_mask = label[y * w + x] == id;
            let u = (x - x0) as f64 + 0.5;
            let v = (y - y0) as f64 + 0.5;
            let in_shape = shape.contains_unit(u / bw, v / bh);
            inter += (in_mask && in_shape) as usize;
            union += (in_mask || in_shape) as usize;
        }
    }
    let iou = inter as f64 / union.max(1) as f64;
    if !(0.6..=1.0 / 0.6).contains(&aspect) || iou < cfg.min_shape_iou {
        return (None, iou);
    }
    (Some(shape), iou)
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
