//! Seeded scene generation: how many objects, which shapes and colours, how big, where, and the
//! parameters of the textured background.
//!
//! A scene is a pure function of `(seed, GenConfig)` (ChaCha8 keyed by the seed and a stream per aspect: layout, texture, noise, prompt wording).
//! Objects are placed by rejection sampling: each object's square bounding box lies inside the
//! canvas with a one-pixel margin and is at least `min_gap` pixels away (on the x or the y axis)
//! from every other object's box, so objects never touch and each is one connected blob. If a
//! draw cannot be placed in 50 tries the whole layout is redrawn (64 times at most), then the
//! object count is lowered by one; a single object always fits, so generation terminates.
//!
//! Default geometry (64 px canvas): 1–3 objects, sizes 12–28 px, gap ≥ 3 px. All pixel
//! quantities scale linearly with `size / 64`.

use crate::error::{Error, Result};
use crate::palette::{Colour, Shape};
use crate::rng::{Rng, STREAM_LAYOUT, STREAM_TEXTURE};

/// Parameters of the ShapesWorld generator.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Canvas side in pixels (square canvas). Default 64: with an 8× downsampling VQ this is an
    /// 8×8 token grid. Must lie in `32..=1024`.
    pub size: usize,
    /// Fewest objects in a scene (≥ 1).
    pub min_objects: usize,
    /// Most objects in a scene (≤ 3, the most a prompt can describe).
    pub max_objects: usize,
    /// Smallest object side as a fraction of the canvas (default 12/64).
    pub min_object_frac: f64,
    /// Largest object side as a fraction of the canvas (default 28/64).
    pub max_object_frac: f64,
    /// Smallest gap between object boxes as a fraction of the canvas (default 3/64).
    pub min_gap_frac: f64,
    /// Range of the background texture amplitude in grey levels (default 6–18: low contrast).
    pub texture_amplitude: (f64, f64),
    /// Range of the per-pixel background noise amplitude in grey levels (default 2–6).
    pub pixel_noise: (f64, f64),
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            size: 64,
            min_objects: 1,
            max_objects: 3,
            min_object_frac: 12.0 / 64.0,
            max_object_frac: 28.0 / 64.0,
            min_gap_frac: 3.0 / 64.0,
            texture_amplitude: (6.0, 18.0),
            pixel_noise: (2.0, 6.0),
        }
    }
}

impl GenConfig {
    /// The default configuration at another canvas size.
    pub fn with_size(size: usize) -> Self {
        GenConfig {
            size,
            ..GenConfig::default()
        }
    }

    /// Smallest object side in pixels.
    pub fn min_object_px(&self) -> f64 {
        self.min_object_frac * self.size as f64
    }

    /// Largest object side in pixels.
    pub fn max_object_px(&self) -> f64 {
        self.max_object_frac * self.size as f64
    }

    /// Checks every parameter, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |param, reason: String| Err(Error::Config { param, reason });
        if !(32..=1024).contains(&self.size) {
            return bad(
                "GenConfig::size",
                format!("{} is not in 32..=1024", self.size),
            );
        }
        if self.min_objects < 1 || self.max_objects > 3 || self.min_objects > self.max_objects {
            return bad(
                "GenConfig::min_objects/max_objects",
                format!(
                    "need 1 <= min_objects ({}) <= max_objects ({}) <= 3",
                    self.min_objects, self.max_objects
                ),
            );
        }
        let finite = [
            self.min_object_frac,
            self.max_object_frac,
            self.min_gap_frac,
            self.texture_amplitude.0,
            self.texture_amplitude.1,
            self.pixel_noise.0,
            self.pixel_noise.1,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return bad(
                "GenConfig",
                "all fractions and amplitudes must be finite".into(),
            );
        }
        if !(self.min_object_frac * self.size as f64 >= 8.0
            && self.min_object_frac <= self.max_object_frac
            && self.max_object_frac <= 0.45)
        {
            return bad(
                "GenConfig::min_object_frac/max_object_frac",
                format!(
                    "need 8 px <= min ({:.1} px) <= max ({:.1} px) <= 0.45 of the canvas",
                    self.min_object_px(),
                    self.max_object_px()
                ),
            );
        }
        if !(0.0..=0.1).contains(&self.min_gap_frac) {
            return bad(
                "GenConfig::min_gap_frac",
                format!("{} is not in [0, 0.1]", self.min_gap_frac),
            );
        }
        for (param, (lo, hi), max) in [
            ("GenConfig::texture_amplitude", self.texture_amplitude, 30.0),
            ("GenConfig::pixel_noise", self.pixel_noise, 12.0),
        ] {
            if !(0.0 <= lo && lo <= hi && hi <= max) {
                return bad(param, format!("need 0 <= {lo} <= {hi} <= {max}"));
            }
        }
        Ok(())
    }
}

/// One object of a scene.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Its shape.
    pub shape: Shape,
    /// Its colour.
    pub colour: Colour,
    /// Centre of its bounding box, x in pixels (0 = left edge of the canvas).
    pub cx: f64,
    /// Centre of its bounding box, y in pixels (0 = top edge, y grows downwards).
    pub cy: f64,
    /// Side of its square bounding box in pixels.
    pub size: f64,
    /// Brightness offset added to all three channels of its colour (−20..20 grey levels).
    pub shade: f64,
}

impl Object {
    /// Bounding box `(x0, y0, x1, y1)` in continuous pixel coordinates.
    pub fn bbox(&self) -> (f64, f64, f64, f64) {
        let h = self.size / 2.0;
        (self.cx - h, self.cy - h, self.cx + h, self.cy + h)
    }

    /// Whether the point `(x, y)` (continuous pixel coordinates) is inside the shape.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let (x0, y0, _, _) = self.bbox();
        self.shape
            .contains_unit((x - x0) / self.size, (y - y0) / self.size)
    }
}

/// Parameters of the textured background (the texture lattice itself is drawn at render time
/// from the scene seed).
#[derive(Debug, Clone, PartialEq)]
pub struct Background {
    /// Mean grey level (70–180).
    pub level: f64,
    /// Per-channel tint added to the grey (−8..8 each): the background stays nearly grey.
    pub tint: [f64; 3],
    /// Value-noise amplitude in grey levels.
    pub amplitude: f64,
    /// Value-noise lattice cell in pixels (a second octave uses half of it).
    pub cell: f64,
    /// Linear brightness gradient across the canvas `(x, y)`, grey levels end to end (−15..15).
    pub gradient: [f64; 2],
    /// Per-pixel, per-channel uniform noise amplitude of the background.
    pub noise: f64,
    /// Per-pixel, per-channel uniform noise amplitude of the objects (0–4).
    pub object_noise: f64,
}

/// A ShapesWorld scene: a square canvas, its background and 1–3 objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// The seed it was generated from (also keys the background texture and pixel noise).
    pub seed: u64,
    /// Canvas side in pixels.
    pub size: usize,
    /// The objects, in generation order.
    pub objects: Vec<Object>,
    /// The background.
    pub background: Background,
}

const PLACE_TRIES: usize = 50;
const LAYOUT_TRIES: usize = 64;

impl Scene {
    /// Generates the scene of `seed` under `cfg` (deterministic; see the module doc).
    pub fn generate(seed: u64, cfg: &GenConfig) -> Result<Scene> {
        cfg.validate()?;
        let mut rng = Rng::new(seed, STREAM_LAYOUT);
        let span = (cfg.max_objects - cfg.min_objects + 1) as u64;
        let mut n = cfg.min_objects + rng.below(span) as usize;
        let objects = loop {
            if let Some(objs) = (0..LAYOUT_TRIES).find_map(|_| try_layout(&mut rng, cfg, n)) {
                break objs;
            }
            // Cannot happen for n == 1 (validate() guarantees one object fits).
            n = n.saturating_sub(1).max(1);
        };
        let background = draw_background(seed, cfg);
        Ok(Scene {
            seed,
            size: cfg.size,
            objects,
            background,
        })
    }
}

fn try_layout(rng: &mut Rng, cfg: &GenConfig, n: usize) -> Option<Vec<Object>> {
    let w = cfg.size as f64;
    let margin = 1.0;
    let gap = cfg.min_gap_frac * w;
    let mut objs: Vec<Object> = Vec::with_capacity(n);
    for i in 0..n {
        let shape = if i > 0 && rng.chance(0.3) {
            objs[rng.below(i as u64) as usize].shape
        } else {
            Shape::ALL[rng.below(3) as usize]
        };
        let colour = if i > 0 && rng.chance(0.25) {
            objs[rng.below(i as u64) as usize].colour
        } else {
            Colour::ALL[rng.below(Colour::ALL.len() as u64) as usize]
        };
        let size = rng.uniform(cfg.min_object_px(), cfg.max_object_px());
        let shade = rng.uniform(-20.0, 20.0);
        let lo = size / 2.0 + margin;
        let hi = w - size / 2.0 - margin;
        let mut placed = None;
        for _ in 0..PLACE_TRIES {
            let cx = rng.uniform(lo, hi);
            let cy = rng.uniform(lo, hi);
            let clear = objs.iter().all(|o| {
                let need = (o.size + size) / 2.0 + gap;
                (o.cx - cx).abs() >= need || (o.cy - cy).abs() >= need
            });
            if clear {
                placed = Some((cx, cy));
                break;
            }
        }
        let (cx, cy) = placed?;
        objs.push(Object {
            shape,
            colour,
            cx,
            cy,
            size,
            shade,
        });
    }
    Some(objs)
}

fn draw_background(seed: u64, cfg: &GenConfig) -> Background {
    let mut rng = Rng::new(seed, STREAM_TEXTURE);
    let scale = cfg.size as f64 / 64.0;
    let level = rng.uniform(70.0, 180.0);
    let tint = [
        rng.uniform(-8.0, 8.0),
        rng.uniform(-8.0, 8.0),
        rng.uniform(-8.0, 8.0),
    ];
    let amplitude = rng.uniform(cfg.texture_amplitude.0, cfg.texture_amplitude.1);
    let cell = [4.0, 8.0, 16.0][rng.below(3) as usize] * scale;
    let gradient = [rng.uniform(-15.0, 15.0), rng.uniform(-15.0, 15.0)];
    let noise = rng.uniform(cfg.pixel_noise.0, cfg.pixel_noise.1);
    let object_noise = rng.uniform(0.0, 4.0);
    Background {
        level,
        tint,
        amplitude,
        cell,
        gradient,
        noise,
        object_noise,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        let cfg = GenConfig::default();
        for seed in 0..20 {
            assert_eq!(
                Scene::generate(seed, &cfg).unwrap(),
                Scene::generate(seed, &cfg).unwrap()
            );
        }
        assert_ne!(
            Scene::generate(1, &cfg).unwrap(),
            Scene::generate(2, &cfg).unwrap()
        );
    }

    #[test]
    fn objects_respect_bounds_sizes_and_gaps() {
        let cfg = GenConfig::default();
        let mut counts = [0usize; 4];
        for seed in 0..500 {
            let s = Scene::generate(seed, &cfg).unwrap();
            counts[s.objects.len()] += 1;
            for (i, o) in s.objects.iter().enumerate() {
                let (x0, y0, x1, y1) = o.bbox();
                assert!(
                    x0 >= 1.0 && y0 >= 1.0 && x1 <= 63.0 && y1 <= 63.0,
                    "seed {seed}"
                );
                assert!((12.0..28.0).contains(&o.size));
                for p in &s.objects[i + 1..] {
                    let need = (o.size + p.size) / 2.0 + 3.0;
                    assert!((o.cx - p.cx).abs() >= need || (o.cy - p.cy).abs() >= need);
                }
            }
        }
        assert_eq!(counts[0], 0);
        assert!(counts[1..].iter().all(|&c| c > 100), "{counts:?}");
    }

    #[test]
    fn bad_configs_are_rejected_with_the_parameter_name() {
        let cfg = GenConfig {
            size: 16,
            ..GenConfig::default()
        };
        let e = Scene::generate(0, &cfg).unwrap_err().to_string();
        assert!(e.contains("GenConfig::size"), "{e}");
        let cfg = GenConfig {
            max_objects: 4,
            ..GenConfig::default()
        };
        assert!(Scene::generate(0, &cfg).is_err());
        let cfg = GenConfig {
            min_object_frac: f64::NAN,
            ..GenConfig::default()
        };
        assert!(Scene::generate(0, &cfg).is_err());
    }
}
