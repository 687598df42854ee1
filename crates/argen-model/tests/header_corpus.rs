//! Deterministic stand-in for fuzzing (CI cannot run nightly cargo-fuzz): the safetensors
//! header parser runs over the committed corpus and many mutations of it — bit flips, byte
//! overwrites, truncations, insertions, header-length tampering — and must return, never panic;
//! whatever it accepts must lie inside the input.

use argen_model::safetensors::{parse_header, SafeTensors};
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

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/safetensors_header");
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

fn check(data: &[u8]) -> bool {
    match parse_header(data) {
        Ok(h) => {
            for t in h.tensors.values() {
                assert!(t.begin <= t.end && h.data_start + t.end <= data.len());
            }
            assert!(SafeTensors::from_bytes("mutant", data.to_vec()).is_ok());
            true
        }
        Err(_) => {
            assert!(SafeTensors::from_bytes("mutant", data.to_vec()).is_err());
            false
        }
    }
}

#[test]
fn corpus_parses_as_labelled() {
    let c = corpus();
    assert!(c.len() >= 8);
    for (name, data) in &c {
        let ok = check(data);
        let expect = name.starts_with("valid") || name.starts_with("real");
        assert_eq!(ok, expect, "{name}");
    }
}

#[test]
fn mutated_corpus_never_panics() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    let mut total = 0;
    for (_, seed) in corpus() {
        for _ in 0..400 {
            let mut d = seed.clone();
            let ops = 1 + rng.below(4);
            for _ in 0..ops {
                match rng.below(6) {
                    0 if !d.is_empty() => {
                        let i = rng.below(d.len());
                        d[i] ^= 1 << rng.below(8);
                    }
                    1 if !d.is_empty() => {
                        let i = rng.below(d.len());
                        d[i] = b"{}[]\":,0123456789-eE.FI "[rng.below(24)];
                    }
                    2 => {
                        let n = rng.below(d.len() + 1);
                        d.truncate(n);
                    }
                    3 => {
                        let i = rng.below(d.len() + 1);
                        d.insert(i, rng.next() as u8);
                    }
                    4 if d.len() >= 8 => {
                        let n = match rng.below(3) {
                            0 => rng.next(),
                            1 => (d.len() as u64).wrapping_sub(8 + rng.below(16) as u64),
                            _ => rng.below(64) as u64,
                        };
                        d[..8].copy_from_slice(&n.to_le_bytes());
                    }
                    _ => d.extend((0..rng.below(32)).map(|_| rng.next() as u8)),
                }
            }
            total += 1;
            if check(&d) {
                accepted += 1;
            }
        }
    }
    // Some mutants stay valid (trailing bytes, flips inside data): the test exercises both paths.
    assert!(accepted > 0 && accepted < total, "{accepted}/{total}");
}
