//! The renderer: a scene to an 8-bit RGB image.
//!
//! Background, per pixel centre `(x + ½, y + ½)`:
//! `L = level + A·(n₁ + ½·n₂)/1.5 + gx·(x/W − ½) + gy·(y/H − ½)`, where `n₁`, `n₂` are value
//! noise in `[−1, 1]` (random lattice values, smoothstep-bilinear interpolation) with cells
//! `cell` and `cell/2`; channel `c` is `L + tint[c] + u`, `u` uniform in `[−noise, noise]`.
//! The background is thus nearly grey (chroma ≤ ~30) and low-contrast, while its fine
//! texture makes many VQ codes near-interchangeable, as in natural images.
//!
//! Objects are anti-aliased by 4×4 supersampling: with coverage `a`, the pixel is
//! `(1 − a)·background + a·(rgb + shade + u')`, `u'` uniform in `[−object_noise, object_noise]`.
//! Values are rounded half up and clamped to `0..=255`. Only `+ − × ÷` on f64 are used, so the
//! output is bit-identical on every IEEE-754 platform. Noise is drawn for every pixel in raster
//! order (three background and three object draws per pixel) whatever the objects, so the
//! noise field depends only on the seed.

use crate::image::RgbImage;
use crate::rng::{Rng, STREAM_NOISE};
use crate::scene::Scene;

/// Stream of the texture lattice values (separate from the background parameters).
const STREAM_LATTICE: u64 = 5;

/// Supersampling factor per axis.
const SS: usize = 4;

/// Renders `scene` (deterministic, see the module doc).
pub fn render(scene: &Scene) -> RgbImage {
    let n = scene.size;
    let w = n as f64;
    let bg = &scene.background;
    let lattice = Lattice::new(scene.seed, n, bg.cell);
    let lattice2 = Lattice::new(scene.seed ^ 0x9e37_79b9_7f4a_7c15, n, bg.cell / 2.0);
    let mut noise = Rng::new(scene.seed, STREAM_NOISE);
    let mut img = RgbImage::new(n, n);
    for y in 0..n {
        for x in 0..n {
            let px = x as f64 + 0.5;
            let py = y as f64 + 0.5;
            let tex = (lattice.at(px, py) + 0.5 * lattice2.at(px, py)) / 1.5;
            let lum = bg.level
                + bg.amplitude * tex
                + bg.gradient[0] * (px / w - 0.5)
                + bg.gradient[1] * (py / w - 0.5);
            let mut back = [0f64; 3];
            for (c, v) in back.iter_mut().enumerate() {
                *v = lum + bg.tint[c] + noise.uniform(-bg.noise, bg.noise);
            }
            let obj_noise = [
                noise.uniform(-bg.object_noise, bg.object_noise),
                noise.uniform(-bg.object_noise, bg.object_noise),
                noise.uniform(-bg.object_noise, bg.object_noise),
            ];
            let mut out = back;
            for o in &scene.objects {
                let (x0, y0, x1, y1) = o.bbox();
                if px + 0.5 <= x0 || px - 0.5 >= x1 || py + 0.5 <= y0 || py - 0.5 >= y1 {
                    continue;
                }
                let mut inside = 0usize;
                for sy in 0..SS {
                    for sx in 0..SS {
                        let qx = x as f64 + (sx as f64 + 0.5) / SS as f64;
                        let qy = y as f64 + (sy as f64 + 0.5) / SS as f64;
                        inside += o.contains(qx, qy) as usize;
                    }
                }
                if inside == 0 {
                    continue;
                }
                let a = inside as f64 / (SS * SS) as f64;
                let rgb = o.colour.rgb();
                for c in 0..3 {
                    let col = rgb[c] as f64 + o.shade + obj_noise[c];
                    out[c] = (1.0 - a) * out[c] + a * col;
                }
            }
            img.put(x, y, out.map(to_u8));
        }
    }
    img
}

fn to_u8(v: f64) -> u8 {
    (v + 0.5).floor().clamp(0.0, 255.0) as u8
}

/// Value noise: random values in `[−1, 1]` on a square lattice, smoothstep-bilinear in between.
struct Lattice {
    cols: usize,
    cell: f64,
    values: Vec<f64>,
}

impl Lattice {
    fn new(seed: u64, size: usize, cell: f64) -> Self {
        let cell = cell.max(1.0);
        let cols = (size as f64 / cell) as usize + 2;
        let mut rng = Rng::new(seed, STREAM_LATTICE);
        let values = (0..cols * cols).map(|_| rng.uniform(-1.0, 1.0)).collect();
        Lattice { cols, cell, values }
    }

    fn at(&self, x: f64, y: f64) -> f64 {
        let gx = x / self.cell;
        let gy = y / self.cell;
        let ix = (gx as usize).min(self.cols - 2);
        let iy = (gy as usize).min(self.cols - 2);
        let fx = smooth(gx - ix as f64);
        let fy = smooth(gy - iy as f64);
        let v = |i: usize, j: usize| self.values[j * self.cols + i];
        let top = v(ix, iy) * (1.0 - fx) + v(ix + 1, iy) * fx;
        let bot = v(ix, iy + 1) * (1.0 - fx) + v(ix + 1, iy + 1) * fx;
        top * (1.0 - fy) + bot * fy
    }
}

fn smooth(t: f64) -> f64 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::GenConfig;

    fn chroma(p: [u8; 3]) -> u8 {
        p.iter().max().unwrap() - p.iter().min().unwrap()
    }

    #[test]
    fn render_is_deterministic_and_sized() {
        let cfg = GenConfig::default();
        let s = Scene::generate(3, &cfg).unwrap();
        let a = render(&s);
        assert_eq!((a.width(), a.height()), (64, 64));
        assert_eq!(a, render(&s));
    }

    #[test]
    fn background_is_grey_and_objects_are_saturated() {
        let cfg = GenConfig::default();
        for seed in 0..30 {
            let s = Scene::generate(seed, &cfg).unwrap();
            let img = render(&s);
            for y in 0..64 {
                for x in 0..64 {
                    let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
                    // Farther than one pixel from every object: background.
                    let near = s.objects.iter().any(|o| {
                        let (x0, y0, x1, y1) = o.bbox();
                        px > x0 - 1.0 && px < x1 + 1.0 && py > y0 - 1.0 && py < y1 + 1.0
                    });
                    let deep = s.objects.iter().any(|o| {
                        [-1.0f64, 1.0].iter().all(|&d| {
                            [(d, 0.0), (0.0, d)]
                                .iter()
                                .all(|(dx, dy)| o.contains(px + dx, py + dy))
                        })
                    });
                    let c = chroma(img.get(x, y));
                    if !near {
                        assert!(c <= 36, "seed {seed} ({x},{y}) background chroma {c}");
                    }
                    if deep {
                        assert!(c >= 90, "seed {seed} ({x},{y}) object chroma {c}");
                    }
                }
            }
        }
    }
}
