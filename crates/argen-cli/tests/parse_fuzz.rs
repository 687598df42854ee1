//! Deterministic stand-in for the `tokens_json` and `caption` fuzz targets: the committed
//! corpus (labelled `valid*` / `bad*`) plus byte mutations, splices and hostile numbers, through
//! the parsers of `src/parse.rs` (included by path: argen-cli is a binary crate). No input may
//! panic; accepted token arrays respect the cap, accepted captions are exactly rows × dim
//! finite values. CI runs it in the dev profile (overflow checks on).

#[path = "../src/parse.rs"]
#[allow(dead_code)]
mod parse;

use std::path::PathBuf;

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn mutate(rng: &mut XorShift, seed: &[u8], alphabet: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        let i = rng.below(d.len() + 1);
        match rng.below(5) {
            0 if i < d.len() => d[i] ^= 1 << rng.below(8),
            1 if i < d.len() => {
                d.remove(i);
            }
            2 => d.insert(i, alphabet[rng.below(alphabet.len())]),
            3 => {
                let num = [
                    "4294967295",
                    "4294967296",
                    "-0",
                    "1e999",
                    "18446744073709551616",
                    "0.0",
                    "[",
                    "]]]]",
                ][rng.below(8)];
                for (k, b) in num.bytes().enumerate() {
                    d.insert((i + k).min(d.len()), b);
                }
            }
            _ => d.truncate(i),
        }
    }
    d
}

fn check_tokens(d: &[u8]) -> bool {
    match parse::parse_tokens(d) {
        Ok(t) => {
            assert!(t.len() <= parse::MAX_DECODE_TOKENS);
            true
        }
        Err(e) => {
            assert!(!e.contains('\n'), "{e}");
            false
        }
    }
}

fn check_caption(d: &[u8]) -> bool {
    if d.len() < 8 {
        return false;
    }
    let rows = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
    let dim = u32::from_le_bytes([d[4], d[5], d[6], d[7]]) as usize;
    match parse::parse_caption(&d[8..], rows, dim) {
        Ok(f) => {
            assert_eq!(f.len(), rows * dim);
            assert!(f.iter().all(|x| x.is_finite()));
            true
        }
        Err(_) => false,
    }
}

#[test]
fn tokens_json_corpus_and_mutations() {
    let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
    let (mut accepted, mut total) = (0, 0);
    for (name, seed) in corpus("tokens_json") {
        assert_eq!(check_tokens(&seed), name.starts_with("valid"), "{name}");
        let rounds = if seed.len() > 10_000 { 20 } else { 2000 };
        for _ in 0..rounds {
            total += 1;
            accepted += check_tokens(&mutate(&mut rng, &seed, b"0123456789,[] -.e\"")) as usize;
        }
    }
    eprintln!("tokens_json: {accepted} of {total} mutants accepted");
    assert!(accepted > 100 && accepted < total);
}

#[test]
fn caption_corpus_and_mutations() {
    let mut rng = XorShift(0x005E_ED0F_CA97_1011);
    let (mut accepted, mut total) = (0, 0);
    for (name, seed) in corpus("caption") {
        assert_eq!(check_caption(&seed), name.starts_with("valid"), "{name}");
        for _ in 0..3000 {
            total += 1;
            // Mutate the features, keep the dimensions most of the time.
            let mut d = seed.clone();
            if rng.below(4) == 0 {
                d = mutate(&mut rng, &seed, &[0, 0x7f, 0x80, 0xff, 0xc0]);
            } else if d.len() > 8 {
                let i = 8 + rng.below(d.len() - 8);
                d[i] = [0x7f, 0x80, 0xff, 0x00, 0x3f][rng.below(5)];
            }
            accepted += check_caption(&d) as usize;
        }
    }
    eprintln!("caption: {accepted} of {total} mutants accepted");
    assert!(accepted > 100 && accepted < total);
}
