//! Image degradations that imitate what a small VQ tokenizer does to a ShapesWorld image, to
//! test the scorer's robustness before a tokenizer exists: Gaussian blur (lost detail),
//! JPEG-like compression (8×8 block DCT quantisation with 4:2:0 chroma subsampling: blocky
//! edges and colour bleeding), colour jitter (per-channel gain and offset: colour shifts) and
//! additive noise. All are deterministic functions of their parameters and seed.

use crate::image::RgbImage;
use crate::rng::Rng;

/// Stream of degradation randomness (separate from the scene streams).
const STREAM_DEGRADE: u64 = 0xdeb1;

/// A degradation, or a chain of them.
#[derive(Debug, Clone, PartialEq)]
pub enum Degradation {
    /// Gaussian blur of standard deviation `sigma` pixels.
    Blur(f64),
    /// JPEG-like compression at `quality` (1–100, IJG scaling of the standard tables).
    Jpeg(u8),
    /// Per-channel gain in `1 ± s` and offset in `± 100·s` grey levels, drawn per image.
    ColourJitter(f64),
    /// Uniform noise of amplitude `a` grey levels, per pixel and channel.
    Noise(f64),
    /// The degradations in order.
    Chain(Vec<Degradation>),
}

impl Degradation {
    /// A combination approximating a small VQ's reconstruction: blur 0.8, JPEG 50, jitter
    /// 0.08, noise 6.
    pub fn vq_like() -> Degradation {
        Degradation::Chain(vec![
            Degradation::Blur(0.8),
            Degradation::Jpeg(50),
            Degradation::ColourJitter(0.08),
            Degradation::Noise(6.0),
        ])
    }

    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            Degradation::Blur(s) => format!("blur σ={s}"),
            Degradation::Jpeg(q) => format!("jpeg q={q}"),
            Degradation::ColourJitter(s) => format!("colour jitter {s}"),
            Degradation::Noise(a) => format!("noise ±{a}"),
            Degradation::Chain(v) => v.iter().map(|d| d.name()).collect::<Vec<_>>().join(" + "),
        }
    }

    /// Applies the degradation; `seed` keys the random parts.
    pub fn apply(&self, img: &RgbImage, seed: u64) -> RgbImage {
        match self {
            Degradation::Blur(s) => gaussian_blur(img, *s),
            Degradation::Jpeg(q) => jpeg_like(img, *q),
            Degradation::ColourJitter(s) => colour_jitter(img, seed, *s),
            Degradation::Noise(a) => add_noise(img, seed, *a),
            Degradation::Chain(v) => {
                let mut out = img.clone();
                for (i, d) in v.iter().enumerate() {
                    out = d.apply(&out, seed.wrapping_add(i as u64));
                }
                out
            }
        }
    }
}

fn to_u8(v: f64) -> u8 {
    (v + 0.5).floor().clamp(0.0, 255.0) as u8
}

/// Separable Gaussian blur (radius ⌈3σ⌉, edges clamped).
pub fn gaussian_blur(img: &RgbImage, sigma: f64) -> RgbImage {
    if sigma.is_nan() || sigma <= 0.0 {
        return img.clone();
    }
    let r = (3.0 * sigma).ceil().min(32.0) as isize;
    let k: Vec<f64> = (-r..=r)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let norm: f64 = k.iter().sum();
    let (w, h) = (img.width() as isize, img.height() as isize);
    let src = img.as_raw();
    let mut tmp = vec![0f64; src.len()];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let xx = (x + j as isize - r).clamp(0, w - 1);
                    acc += kv * src[((y * w + xx) * 3 + c as isize) as usize] as f64;
                }
                tmp[((y * w + x) * 3 + c as isize) as usize] = acc / norm;
            }
        }
    }
    let mut out = img.clone();
    let dst = out.as_raw_mut();
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let yy = (y + j as isize - r).clamp(0, h - 1);
                    acc += kv * tmp[((yy * w + x) * 3 + c as isize) as usize];
                }
                dst[((y * w + x) * 3 + c as isize) as usize] = to_u8(acc / norm);
            }
        }
    }
    out
}

const LUMA_Q: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

const CHROMA_Q: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

fn scaled_table(base: &[u16; 64], quality: u8) -> [f64; 64] {
    let q = quality.clamp(1, 100) as u32;
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    base.map(|t| ((t as u32 * scale + 50) / 100).clamp(1, 255) as f64)
}

/// Quantises one plane (`w × h`, any size) in 8×8 DCT blocks with `table`.
fn dct_quantise(plane: &mut [f64], w: usize, h: usize, table: &[f64; 64]) {
    let cos: Vec<f64> = (0..64)
        .map(|i| {
            let (x, u) = (i / 8, i % 8);
            (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / 16.0).cos()
        })
        .collect();
    let alpha = |u: usize| if u == 0 { (0.5f64).sqrt() } else { 1.0 };
    let mut block = [0f64; 64];
    let mut coef = [0f64; 64];
    for by in (0..h).step_by(8) {
        for bx in (0..w).step_by(8) {
            for y in 0..8 {
                for x in 0..8 {
                    let (xx, yy) = ((bx + x).min(w - 1), (by + y).min(h - 1));
                    block[y * 8 + x] = plane[yy * w + xx] - 128.0;
                }
            }
            for v in 0..8 {
                for u in 0..8 {
                    let mut s = 0.0;
                    for y in 0..8 {
                        for x in 0..8 {
                            s += block[y * 8 + x] * cos[x * 8 + u] * cos[y * 8 + v];
                        }
                    }
                    let c = 0.25 * alpha(u) * alpha(v) * s;
                    let t = table[v * 8 + u];
                    coef[v * 8 + u] = (c / t).round() * t;
                }
            }
            for y in 0..8 {
                for x in 0..8 {
                    let mut s = 0.0;
                    for v in 0..8 {
                        for u in 0..8 {
                            s += alpha(u)
                                * alpha(v)
                                * coef[v * 8 + u]
                                * cos[x * 8 + u]
                                * cos[y * 8 + v];
                        }
                    }
                    let (xx, yy) = (bx + x, by + y);
                    if xx < w && yy < h {
                        plane[yy * w + xx] = 0.25 * s + 128.0;
                    }
                }
            }
        }
    }
}

/// JPEG-like compression: YCbCr (BT.601 full range), chroma averaged over 2×2, 8×8 DCT
/// quantisation with the standard tables at `quality`, then back to RGB.
pub fn jpeg_like(img: &RgbImage, quality: u8) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return img.clone();
    }
    let src = img.as_raw();
    let mut yp = vec![0f64; w * h];
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut cb = vec![0f64; cw * ch];
    let mut cr = vec![0f64; cw * ch];
    let mut cnt = vec![0f64; cw * ch];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let (r, g, b) = (src[i] as f64, src[i + 1] as f64, src[i + 2] as f64);
            yp[y * w + x] = 0.299 * r + 0.587 * g + 0.114 * b;
            let j = (y / 2) * cw + x / 2;
            cb[j] += 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b;
            cr[j] += 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b;
            cnt[j] += 1.0;
        }
    }
    for j in 0..cw * ch {
        cb[j] /= cnt[j];
        cr[j] /= cnt[j];
    }
    dct_quantise(&mut yp, w, h, &scaled_table(&LUMA_Q, quality));
    let cq = scaled_table(&CHROMA_Q, quality);
    dct_quantise(&mut cb, cw, ch, &cq);
    dct_quantise(&mut cr, cw, ch, &cq);
    let mut out = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let l = yp[y * w + x];
            let j = (y / 2) * cw + x / 2;
            let (b, r) = (cb[j] - 128.0, cr[j] - 128.0);
            out.put(
                x,
                y,
                [
                    to_u8(l + 1.402 * r),
                    to_u8(l - 0.344136 * b - 0.714136 * r),
                    to_u8(l + 1.772 * b),
                ],
            );
        }
    }
    out
}

/// Per-channel gain in `1 ± strength` and offset in `± 100·strength`, drawn from `seed`.
pub fn colour_jitter(img: &RgbImage, seed: u64, strength: f64) -> RgbImage {
    let s = if strength.is_finite() {
        strength.abs()
    } else {
        0.0
    };
    let mut rng = Rng::new(seed, STREAM_DEGRADE);
    let gain: [f64; 3] = std::array::from_fn(|_| rng.uniform(1.0 - s, 1.0 + s));
    let off: [f64; 3] = std::array::from_fn(|_| rng.uniform(-100.0 * s, 100.0 * s));
    let mut out = img.clone();
    for px in out.as_raw_mut().chunks_exact_mut(3) {
        for c in 0..3 {
            px[c] = to_u8(px[c] as f64 * gain[c] + off[c]);
        }
    }
    out
}

/// Uniform noise in `± amplitude` per pixel and channel, drawn from `seed`.
pub fn add_noise(img: &RgbImage, seed: u64, amplitude: f64) -> RgbImage {
    let a = if amplitude.is_finite() {
        amplitude.abs()
    } else {
        0.0
    };
    let mut rng = Rng::new(seed, STREAM_DEGRADE + 1);
    let mut out = img.clone();
    for v in out.as_raw_mut() {
        *v = to_u8(*v as f64 + rng.uniform(-a, a));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(v: [u8; 3]) -> RgbImage {
        let mut img = RgbImage::new(16, 16);
        for y in 0..16 {
            for x in 0..16 {
                img.put(x, y, v);
            }
        }
        img
    }

    #[test]
    fn flat_images_survive_blur_and_jpeg() {
        let img = flat([200, 40, 40]);
        assert_eq!(gaussian_blur(&img, 1.0), img);
        let j = jpeg_like(&img, 50);
        for y in 0..16 {
            for x in 0..16 {
                let p = j.get(x, y);
                for c in 0..3 {
                    assert!((p[c] as i32 - img.get(x, y)[c] as i32).abs() <= 3, "{p:?}");
                }
            }
        }
    }

    #[test]
    fn degradations_change_images_deterministically() {
        let mut img = flat([100, 100, 100]);
        img.put(8, 8, [250, 0, 0]);
        for d in [
            Degradation::Blur(1.0),
            Degradation::Jpeg(30),
            Degradation::ColourJitter(0.1),
            Degradation::Noise(5.0),
            Degradation::vq_like(),
        ] {
            let a = d.apply(&img, 3);
            assert_ne!(a, img, "{}", d.name());
            assert_eq!(a, d.apply(&img, 3));
        }
    }
}
