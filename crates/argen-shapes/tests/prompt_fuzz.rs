//! Deterministic fuzzing of the prompt parser and of image input, for CI on stable (the
//! cargo-fuzz targets in `fuzz/` need nightly): the committed corpus, then seeded mutations of
//! it (byte flips, deletions, insertions of grammar words and of odd characters, duplications,
//! word swaps, splices of two prompts), each checked with
//! [`argen_shapes::fuzzing::prompt_properties`].

use argen_shapes::fuzzing::{png_properties, prompt_properties};
use argen_shapes::{render, GenConfig, RgbImage, Scene};

const CORPUS: &str = include_str!("corpus/prompts.txt");

/// xorshift64*: a tiny deterministic generator for the mutations.
struct Xs(u64);

impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "a",
    "an",
    "one",
    "two",
    "three",
    "red",
    "yellow",
    "green",
    "blue",
    "purple",
    "circle",
    "circles",
    "square",
    "squares",
    "triangle",
    "triangles",
    "shape",
    "shapes",
    "and",
    ",",
    "left",
    "right",
    "of",
    "to",
    "the",
    "above",
    "below",
    "on",
    "in",
    "at",
    "top",
    "bottom",
    "center",
    "centre",
    "middle",
    ".",
    "orange",
    "four",
    "é",
    "\u{0}",
    "\t",
    "  ",
    "ǅ",
    "🟥",
];

fn mutate(rng: &mut Xs, base: &str, other: &str) -> String {
    let mut b: Vec<u8> = base.as_bytes().to_vec();
    let n = if rng.below(2) == 0 {
        1
    } else {
        2 + rng.below(3)
    };
    for _ in 0..n {
        match rng.below(9) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                let j = (i + 1 + rng.below(8)).min(b.len());
                b.drain(i..j);
            }
            2 => {
                let i = rng.below(b.len() + 1);
                let w = WORDS[rng.below(WORDS.len())];
                let ins = if rng.below(2) == 0 {
                    format!(" {w} ")
                } else {
                    w.to_string()
                };
                b.splice(i..i, ins.bytes());
            }
            3 if !b.is_empty() => {
                let i = rng.below(b.len());
                let j = (i + 1 + rng.below(16)).min(b.len());
                let seg = b[i..j].to_vec();
                b.splice(j..j, seg);
            }
            4 => {
                let s = String::from_utf8_lossy(&b).into_owned();
                let mut ws: Vec<&str> = s.split(' ').collect();
                if ws.len() > 1 {
                    let (i, j) = (rng.below(ws.len()), rng.below(ws.len()));
                    ws.swap(i, j);
                }
                b = ws.join(" ").into_bytes();
            }
            5 | 6 => {
                // Word-level: drop or replace one word.
                let s = String::from_utf8_lossy(&b).into_owned();
                let mut ws: Vec<&str> = s.split(' ').collect();
                let i = rng.below(ws.len());
                if rng.below(2) == 0 {
                    ws.remove(i);
                } else {
                    ws[i] = WORDS[rng.below(WORDS.len())];
                }
                b = ws.join(" ").into_bytes();
            }
            7 => {
                let cut = rng.below(b.len() + 1);
                let o = other.as_bytes();
                let oc = rng.below(o.len() + 1);
                b.truncate(cut);
                b.extend_from_slice(&o[oc..]);
            }
            _ => {
                let i = rng.below(b.len() + 1);
                b.insert(i, rng.below(256) as u8);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

#[test]
fn corpus_prompts_hold_the_properties() {
    let lines: Vec<&str> = CORPUS.lines().collect();
    assert!(lines.len() >= 30);
    let mut accepted = 0;
    for l in &lines {
        prompt_properties(l).unwrap_or_else(|e| panic!("{e}"));
        accepted += argen_shapes::Prompt::parse(l).is_ok() as usize;
    }
    // The corpus holds both valid and invalid prompts.
    assert!(accepted >= 20 && accepted < lines.len(), "{accepted}");
}

#[test]
fn mutated_prompts_hold_the_properties() {
    let lines: Vec<&str> = CORPUS.lines().collect();
    let mut rng = Xs(0x5eed_0f5b_a9e5);
    let (mut ok, mut err) = (0, 0);
    for round in 0..20_000 {
        let base = lines[round % lines.len()];
        let other = lines[rng.below(lines.len())];
        let text = mutate(&mut rng, base, other);
        prompt_properties(&text).unwrap_or_else(|e| panic!("{e}"));
        if argen_shapes::Prompt::parse(&text).is_ok() {
            ok += 1;
        } else {
            err += 1;
        }
    }
    // Mutations must explore both sides of the grammar.
    assert!(ok > 500 && err > 1500, "{ok} accepted, {err} rejected");
}

#[test]
fn mutated_pngs_hold_the_properties() {
    let scene = Scene::generate(1, &GenConfig::default()).unwrap();
    let good = render(&scene).to_png();
    png_properties(&good).unwrap();
    png_properties(&RgbImage::new(40, 20).to_png()).unwrap();
    png_properties(b"not a png").unwrap();
    let mut rng = Xs(0x0b16_b00b5);
    for _ in 0..300 {
        let mut b = good.clone();
        for _ in 0..1 + rng.below(4) {
            if b.is_empty() {
                break;
            }
            let i = rng.below(b.len());
            match rng.below(3) {
                0 => b[i] ^= 1 << rng.below(8),
                1 => b.truncate(i),
                _ => b[i] = rng.next() as u8,
            }
        }
        png_properties(&b).unwrap_or_else(|e| panic!("{e}"));
    }
}
