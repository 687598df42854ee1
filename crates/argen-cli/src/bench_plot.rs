//! The plots of `argen bench --plots DIR` (PNG, 760 × 500):
//!
//! * `speed_quality.png` — every row: speed-up over vanilla (x) against quality (y);
//! * `lantern_delta.png` — LANTERN's δ sweep: mean accepted length (x) against quality (y), each
//!   point labelled with its δ, the Exact tree as reference;
//! * `vvs_interval.png` — VVS: tokens per target forward (x) against quality (y), labelled with
//!   the uniform interval or `dyn`, the Exact tree and vanilla as references.
//!
//! Quality is the overall alignment (%) on ShapesWorld models, else the diversity (class-
//! conditional models have no alignment judge); the y-axis title says which.
//!
//! Drawn with `plotters`' bitmap backend into a buffer (no font or image-codec features, so no
//! system fonts are needed); every text is drawn afterwards with the 8 × 8 bitmap font of
//! `font8x8`, and the PNG is written by the `png` crate.

use std::path::Path;

use font8x8::UnicodeFonts;
use plotters::prelude::*;
use serde_json::Value;

use crate::output::write_png;

const W: u32 = 760;
const H: u32 = 500;
const LEFT: u32 = 80;
const BOTTOM: u32 = 60;
const TOP: u32 = 40;
const RIGHT: u32 = 30;

/// A point: coordinates and its label.
type Point = (f64, f64, String);

/// A series of points in one colour, joined by a line if `line`.
struct Series {
    name: String,
    points: Vec<Point>,
    line: bool,
}

/// Draws `text` into an RGB buffer of width `W` at pixel `(x, y)` (top left), `scale`× size.
fn draw_text(buf: &mut [u8], x: i32, y: i32, text: &str, scale: i32, rgb: [u8; 3]) {
    let mut cx = x;
    for ch in text.chars() {
        let glyph = font8x8::BASIC_FONTS
            .get(ch)
            .or_else(|| font8x8::GREEK_FONTS.get(ch))
            .or_else(|| font8x8::LATIN_FONTS.get(ch))
            .unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let px = cx + col * scale + dx;
                        let py = y + row as i32 * scale + dy;
                        if px >= 0 && py >= 0 && (px as u32) < W && (py as u32) < H {
                            let i = (py as usize * W as usize + px as usize) * 3;
                            buf[i..i + 3].copy_from_slice(&rgb);
                        }
                    }
                }
            }
        }
        cx += 8 * scale;
    }
}

fn text_width(text: &str, scale: i32) -> i32 {
    text.chars().count() as i32 * 8 * scale
}

/// Round tick positions covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 20 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn fmt_tick(t: f64) -> String {
    if t.abs() >= 100.0 || (t.round() - t).abs() < 1e-6 {
        format!("{t:.0}")
    } else if ((t * 10.0).round() - t * 10.0).abs() < 1e-6 {
        format!("{t:.1}")
    } else {
        format!("{t:.2}")
    }
}

const COLOURS: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(80, 80, 80),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Places point labels right of their points (left near the right edge), moving a label down
/// while it overlaps one already placed.
fn place(labels: &mut [(i32, i32, String, [u8; 3], i32)], first: usize) {
    let mut placed: Vec<(i32, i32, i32)> = Vec::new();
    for l in labels.iter_mut().skip(first) {
        let w = text_width(&l.2, l.4);
        if l.0 + w > W as i32 - 2 {
            l.0 -= w + 14;
        }
        for _ in 0..6 {
            let hit = placed
                .iter()
                .any(|&(x, y, pw)| l.0 < x + pw && x < l.0 + w && (l.1 - y).abs() < 9);
            if !hit {
                break;
            }
            l.1 += 10;
        }
        placed.push((l.0, l.1, w));
    }
}

/// Draws one scatter/line chart and writes it as PNG.
fn chart(path: &Path, title: &str, xl: &str, yl: &str, series: &[Series]) -> Result<(), String> {
    let all: Vec<&Point> = series.iter().flat_map(|s| s.points.iter()).collect();
    if all.is_empty() {
        return Err(format!("{}: nothing to plot", path.display()));
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in &all {
        x0 = x0.min(p.0);
        x1 = x1.max(p.0);
        y0 = y0.min(p.1);
        y1 = y1.max(p.1);
    }
    let pad = |lo: f64, hi: f64| {
        let d = ((hi - lo) * 0.08).max(hi.abs().max(1.0) * 0.02);
        (lo - d, hi + d)
    };
    let (x0, x1) = pad(x0, x1);
    let (y0, y1) = pad(y0, y1);
    let mut buf = vec![255u8; (W * H * 3) as usize];
    let mut labels: Vec<(i32, i32, String, [u8; 3], i32)> = Vec::new();
    let mut point_labels: Vec<(i32, i32, String, [u8; 3], i32)> = Vec::new();
    let e = |e: &dyn std::fmt::Display| format!("{}: plotting failed: {e}", path.display());
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        let mut c = ChartBuilder::on(&root)
            .margin_top(TOP)
            .margin_right(RIGHT)
            .x_label_area_size(BOTTOM)
            .y_label_area_size(LEFT)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|x| e(&x))?;
        let grey = RGBColor(225, 225, 225);
        for t in ticks(x0, x1) {
            c.draw_series(LineSeries::new([(t, y0), (t, y1)], grey))
                .map_err(|x| e(&x))?;
            let (px, py) = c.backend_coord(&(t, y0));
            let s = fmt_tick(t);
            labels.push((px - text_width(&s, 1) / 2, py + 8, s, [0, 0, 0], 1));
        }
        for t in ticks(y0, y1) {
            c.draw_series(LineSeries::new([(x0, t), (x1, t)], grey))
                .map_err(|x| e(&x))?;
            let (px, py) = c.backend_coord(&(x0, t));
            let s = fmt_tick(t);
            labels.push((px - text_width(&s, 1) - 8, py - 4, s, [0, 0, 0], 1));
        }
        c.draw_series(LineSeries::new(
            [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)],
            BLACK,
        ))
        .map_err(|x| e(&x))?;
        for (i, s) in series.iter().enumerate() {
            let col = COLOURS[i % COLOURS.len()];
            if s.line && s.points.len() > 1 {
                c.draw_series(LineSeries::new(
                    s.points.iter().map(|p| (p.0, p.1)),
                    col.stroke_width(2),
                ))
                .map_err(|x| e(&x))?;
            }
            c.draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 4, col.filled())),
            )
            .map_err(|x| e(&x))?;
            for p in &s.points {
                let (px, py) = c.backend_coord(&(p.0, p.1));
                point_labels.push((px + 7, py - 10, p.2.clone(), [col.0, col.1, col.2], 1));
            }
            // Legend, top left inside the plot.
            let (lx, ly) = c.backend_coord(&(x0, y1));
            let y = ly + 8 + 12 * i as i32;
            labels.push((lx + 10, y, s.name.clone(), [col.0, col.1, col.2], 1));
        }
        place(&mut point_labels, 0);
        labels.extend(point_labels);
        root.present().map_err(|x| e(&x))?;
    }
    draw_text(
        &mut buf,
        (W as i32 - text_width(title, 2)) / 2,
        10,
        title,
        2,
        [0, 0, 0],
    );
    let xw = text_width(xl, 1);
    draw_text(
        &mut buf,
        LEFT as i32 + ((W - LEFT - RIGHT) as i32 - xw) / 2,
        H as i32 - 20,
        xl,
        1,
        [0, 0, 0],
    );
    draw_text(&mut buf, 6, TOP as i32 - 14, yl, 1, [0, 0, 0]);
    for (x, y, s, rgb, scale) in labels {
        draw_text(&mut buf, x, y, &s, scale, rgb);
    }
    write_png(path, W as usize, H as usize, &buf)
}

fn f(row: &Value, key: &str) -> Option<f64> {
    row[key].as_f64().filter(|x| x.is_finite())
}

/// The quality measure of the plots: overall alignment when the rows have it, else diversity.
#[derive(Clone, Copy)]
enum Quality {
    Alignment,
    Diversity,
}

impl Quality {
    fn of_rows(rows: &[Value]) -> Self {
        if rows.iter().any(|r| r["alignment"].is_object()) {
            Quality::Alignment
        } else {
            Quality::Diversity
        }
    }

    fn value(self, r: &Value) -> Option<f64> {
        match self {
            Quality::Alignment => r["alignment"]["overall"].as_f64(),
            Quality::Diversity => f(r, "diversity"),
        }
    }

    fn title(self) -> &'static str {
        match self {
            Quality::Alignment => "overall alignment (%)",
            Quality::Diversity => "diversity (no alignment judge for this model)",
        }
    }
}

/// Writes every plot whose rows are present into `dir`; returns the files written.
pub fn write_all(dir: &Path, rows: &[Value]) -> Result<Vec<String>, String> {
    let quality = Quality::of_rows(rows);
    let q = |r: &Value| quality.value(r);
    let ql = quality.title();
    let mut written = Vec::new();
    let short = |r: &Value| r["name"].as_str().unwrap_or("?").to_string();
    let family = |r: &Value, f: &str| r["family"].as_str() == Some(f);
    // Speed vs quality, all rows, one series per family.
    let mut series: Vec<Series> = Vec::new();
    for r in rows {
        let speedup = if family(r, "vanilla") {
            Some(1.0)
        } else {
            f(r, "speedup")
        };
        let (Some(x), Some(y)) = (speedup, q(r)) else {
            continue;
        };
        let fam = r["family"].as_str().unwrap_or("?").to_string();
        match series.iter_mut().find(|s| s.name == fam) {
            Some(s) => s.points.push((x, y, short(r))),
            None => series.push(Series {
                name: fam,
                points: vec![(x, y, short(r))],
                line: false,
            }),
        }
    }
    if !series.is_empty() {
        let p = dir.join("speed_quality.png");
        chart(
            &p,
            "speed vs quality",
            "speed-up over vanilla (time per image by the run's --clock)",
            ql,
            &series,
        )?;
        written.push(p.display().to_string());
    }
    let exact = rows
        .iter()
        .find(|r| r["name"].as_str() == Some("exact tree"));
    // LANTERN δ sweep (k = 1000 rows).
    let mut pts: Vec<Point> = rows
        .iter()
        .filter(|r| family(r, "lantern") && !short(r).contains("k="))
        .filter_map(|r| {
            Some((
                f(r, "mean_accepted_length")?,
                q(r)?,
                format!("δ={}", fmt_tick(f(r, "sweep")?)),
            ))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !pts.is_empty() {
        let mut s = vec![Series {
            name: "LANTERN (tree, k=1000)".into(),
            points: pts,
            line: true,
        }];
        if let Some(r) = exact {
            if let (Some(x), Some(y)) = (f(r, "mean_accepted_length"), q(r)) {
                s.push(Series {
                    name: "Exact (tree)".into(),
                    points: vec![(x, y, "exact".into())],
                    line: false,
                });
            }
        }
        let p = dir.join("lantern_delta.png");
        chart(
            &p,
            "LANTERN: δ trade-off",
            "mean accepted length (drafts per verification)",
            ql,
            &s,
        )?;
        written.push(p.display().to_string());
    }
    // VVS intervals.
    let mut pts: Vec<Point> = rows
        .iter()
        .filter(|r| family(r, "vvs"))
        .filter_map(|r| {
            let sw = f(r, "sweep")?;
            let label = if sw == 0.0 {
                "dyn".to_string()
            } else {
                format!("{}", sw as u32)
            };
            Some((f(r, "tokens_per_target_forward")?, q(r)?, label))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !pts.is_empty() {
        let mut s = vec![Series {
            name: "VVS (label: skip interval)".into(),
            points: pts,
            line: true,
        }];
        for (name, label) in [("exact tree", "exact"), ("vanilla", "vanilla")] {
            if let Some(r) = rows.iter().find(|r| r["name"].as_str() == Some(name)) {
                if let (Some(x), Some(y)) = (f(r, "tokens_per_target_forward"), q(r)) {
                    s.push(Series {
                        name: name.into(),
                        points: vec![(x, y, label.into())],
                        line: false,
                    });
                }
            }
        }
        let p = dir.join("vvs_interval.png");
        chart(
            &p,
            "VVS: verification skipping trade-off",
            "tokens per target forward",
            ql,
            &s,
        )?;
        written.push(p.display().to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let t = ticks(0.13, 2.9);
        assert_eq!(t.first().copied(), Some(0.5));
        assert!(t.len() >= 3 && t.len() <= 7, "{t:?}");
        assert!(t.windows(2).all(|w| (w[1] - w[0] - 0.5).abs() < 1e-9));
        assert_eq!(fmt_tick(0.5), "0.5");
        assert_eq!(fmt_tick(2.0), "2");
        assert_eq!(fmt_tick(0.25), "0.25");
        assert_eq!(fmt_tick(0.1f32 as f64), "0.1");
    }

    #[test]
    fn text_sets_pixels_inside_the_canvas_only() {
        let mut buf = vec![255u8; (W * H * 3) as usize];
        draw_text(&mut buf, W as i32, H as i32 - 4, "δ=0.2", 2, [0, 0, 0]);
        draw_text(&mut buf, -20, -20, "γ", 3, [0, 0, 0]);
        assert!(buf.iter().all(|&b| b == 255), "nothing visible was drawn");
        draw_text(&mut buf, 10, 10, "A", 1, [0, 0, 0]);
        let dark: Vec<usize> = (0..(W * H) as usize).filter(|&i| buf[3 * i] == 0).collect();
        assert!(!dark.is_empty());
        for i in dark {
            let (x, y) = (i % W as usize, i / W as usize);
            assert!((10..18).contains(&x) && (10..18).contains(&y), "({x}, {y})");
        }
    }
}
