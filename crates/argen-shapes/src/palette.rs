//! The closed vocabularies of ShapesWorld: colours (with their RGB values and hues) and shapes.
//!
//! The five colours are saturated (chroma `max − min ≥ 125`) and far apart in hue
//! (red 0°, yellow ≈ 52°, green ≈ 128°, blue ≈ 223°, purple ≈ 279°; the closest pair is 52°
//! apart), so that a colour survives blur, blending with the grey background (which keeps the
//! hue) and moderate colour shifts: the scorer classifies by nearest hue.

use std::fmt;

/// An object colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Colour {
    /// Red, RGB (210, 40, 40).
    Red,
    /// Yellow, RGB (225, 200, 35).
    Yellow,
    /// Green, RGB (45, 170, 65).
    Green,
    /// Blue, RGB (45, 85, 215).
    Blue,
    /// Purple, RGB (145, 60, 195).
    Purple,
}

impl Colour {
    /// All colours, in vocabulary order.
    pub const ALL: [Colour; 5] = [
        Colour::Red,
        Colour::Yellow,
        Colour::Green,
        Colour::Blue,
        Colour::Purple,
    ];

    /// The nominal RGB value the renderer paints (before per-object shade and noise).
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [210, 40, 40],
            Colour::Yellow => [225, 200, 35],
            Colour::Green => [45, 170, 65],
            Colour::Blue => [45, 85, 215],
            Colour::Purple => [145, 60, 195],
        }
    }

    /// The prompt word, e.g. `"red"`.
    pub fn word(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Yellow => "yellow",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Purple => "purple",
        }
    }

    /// The colour named by `word` (exact, lower case).
    pub fn from_word(word: &str) -> Option<Colour> {
        Colour::ALL.into_iter().find(|c| c.word() == word)
    }

    /// Hue of the nominal RGB value, degrees in `[0, 360)`.
    pub fn hue(self) -> f64 {
        let [r, g, b] = self.rgb();
        hue_of(r as f64, g as f64, b as f64)
    }

    /// The palette colour nearest to `hue` (degrees), on the hue circle.
    pub fn nearest_to_hue(hue: f64) -> Colour {
        let mut best = Colour::Red;
        let mut best_d = f64::INFINITY;
        for c in Colour::ALL {
            let d = hue_distance(hue, c.hue());
            if d < best_d {
                best_d = d;
                best = c;
            }
        }
        best
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// An object shape. All three are drawn upright inside a square bounding box of side `size`
/// and are symmetric about the vertical line through the box centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// A disc of diameter `size` (fills π/4 ≈ 0.785 of its box).
    Circle,
    /// An axis-aligned square of side `size` (fills its box).
    Square,
    /// An upright isosceles triangle, apex at the top centre, base = height = `size` (fills 1/2).
    Triangle,
}

impl Shape {
    /// All shapes, in vocabulary order.
    pub const ALL: [Shape; 3] = [Shape::Circle, Shape::Square, Shape::Triangle];

    /// The singular prompt noun, e.g. `"circle"`.
    pub fn word(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
        }
    }

    /// The plural prompt noun, e.g. `"circles"`.
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
        }
    }

    /// Whether the point `(u, v)`, in box coordinates (`[0, 1]²`, `v` downwards), is inside.
    pub fn contains_unit(self, u: f64, v: f64) -> bool {
        match self {
            Shape::Circle => {
                let du = u - 0.5;
                let dv = v - 0.5;
                du * du + dv * dv <= 0.25
            }
            Shape::Square => (0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&v),
            Shape::Triangle => (0.0..=1.0).contains(&v) && (u - 0.5).abs() * 2.0 <= v,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// HSV hue of an RGB triple, degrees in `[0, 360)`; 0 for greys.
pub fn hue_of(r: f64, g: f64, b: f64) -> f64 {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let c = max - min;
    if c <= 0.0 {
        return 0.0;
    }
    let h = if max == r {
        ((g - b) / c).rem_euclid(6.0)
    } else if max == g {
        (b - r) / c + 2.0
    } else {
        (r - g) / c + 4.0
    };
    (h * 60.0).rem_euclid(360.0)
}

/// Distance between two hues on the circle, degrees in `[0, 180]`.
pub fn hue_distance(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_hues_are_far_apart_and_self_classify() {
        for a in Colour::ALL {
            assert_eq!(Colour::nearest_to_hue(a.hue()), a);
            for b in Colour::ALL {
                if a != b {
                    assert!(hue_distance(a.hue(), b.hue()) > 50.0, "{a} vs {b}");
                }
            }
            let [r, g, b] = a.rgb();
            assert!(r.max(g).max(b) - r.min(g).min(b) >= 125, "{a} chroma");
        }
    }

    #[test]
    fn words_round_trip() {
        for c in Colour::ALL {
            assert_eq!(Colour::from_word(c.word()), Some(c));
        }
        assert_eq!(Colour::from_word("orange"), None);
    }

    #[test]
    fn shape_fill_fractions() {
        let n = 200;
        for (s, want) in [
            (Shape::Circle, std::f64::consts::FRAC_PI_4),
            (Shape::Square, 1.0),
            (Shape::Triangle, 0.5),
        ] {
            let mut inside = 0;
            for i in 0..n {
                for j in 0..n {
                    let u = (i as f64 + 0.5) / n as f64;
                    let v = (j as f64 + 0.5) / n as f64;
                    inside += s.contains_unit(u, v) as usize;
                }
            }
            let fill = inside as f64 / (n * n) as f64;
            assert!((fill - want).abs() < 0.01, "{s}: {fill}");
        }
    }
}
