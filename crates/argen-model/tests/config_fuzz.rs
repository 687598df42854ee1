//! Deterministic stand-in for the `gpt_config` and `vq_config` fuzz targets (CI runs stable,
//! without cargo-fuzz): every committed corpus file, JSON-aware mutations (each numeric field
//! set to hostile values alone and in random combinations, fields removed, types changed) and
//! byte mutations. No input may panic; every accepted config's derived sizes must be computed
//! without overflow — CI runs this file in the dev profile, where overflow checks are on
//! (`cargo test -p argen-model --test config_fuzz`) — and lie within the documented bounds.

use argen_model::config::{MAX_PARAMS, MAX_VQ_CHANNELS};
use argen_model::{GptConfig, VqConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

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

/// Values that break naive size arithmetic.
fn hostile(rng: &mut XorShift) -> Value {
    const INTS: [u64; 24] = [
        0,
        1,
        2,
        3,
        4,
        8,
        31,
        32,
        33,
        255,
        256,
        1023,
        1024,
        65535,
        65536,
        65537,
        1 << 20,
        (1 << 20) + 1,
        1 << 24,
        (1 << 31) - 1,
        1 << 32,
        1 << 53,
        1 << 63,
        u64::MAX,
    ];
    match rng.below(10) {
        0 => json!(-1),
        1 => json!(1.5),
        2 => json!(1e300),
        3 => json!("12"),
        4 => Value::Null,
        5 => json!(-1e-300),
        _ => json!(INTS[rng.below(INTS.len())]),
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

fn check_gpt(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    match GptConfig::from_json(Path::new("fuzz"), text) {
        Ok(c) => {
            let g = c.grid();
            assert_eq!(g * g, c.block_size, "{text}");
            let p = c.checked_param_count().expect("param count overflows");
            assert!(p as u64 <= MAX_PARAMS, "{text}");
            assert_eq!(c.param_count(), p);
            let _ = (c.ffn_hidden(), c.qkv_dim(), c.class_rows());
            assert!(c.n_layer <= argen_model::config::MAX_LAYERS);
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

fn check_vq(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    match VqConfig::from_json(Path::new("fuzz"), text) {
        Ok(c) => {
            assert!(c.downsample() <= 128);
            for &m in &c.decoder_ch_mult {
                assert!(m * c.ch <= MAX_VQ_CHANNELS);
            }
            true
        }
        Err(_) => false,
    }
}

/// Runs `check` over the corpus (labels by file name) and `rounds` mutations per file.
fn fuzz(name: &str, check: fn(&[u8]) -> bool, rounds: usize) -> (usize, usize) {
    let mut rng = XorShift(0x0123_4567_89AB_CDEF ^ name.len() as u64);
    let (mut accepted, mut total) = (0, 0);
    for (file, seed) in corpus(name) {
        let ok = check(&seed);
        assert_eq!(ok, file.starts_with("valid"), "{name}/{file}");
        let base: Option<Value> = serde_json::from_slice(&seed).ok();
        for _ in 0..rounds {
            total += 1;
            let mutated = match (&base, rng.below(4)) {
                (Some(Value::Object(m)), 0..=2) => {
                    let mut m = m.clone();
                    let keys: Vec<String> = m.keys().cloned().collect();
                    for _ in 0..1 + rng.below(3) {
                        let k = &keys[rng.below(keys.len())];
                        match rng.below(8) {
                            0 => {
                                m.remove(k);
                            }
                            1 => {
                                m.insert(k.clone(), json!([hostile(&mut rng)]));
                            }
                            _ => {
                                m.insert(k.clone(), hostile(&mut rng));
                            }
                        }
                    }
                    serde_json::to_vec(&Value::Object(m)).unwrap()
                }
                _ => {
                    let mut d = seed.clone();
                    for _ in 0..1 + rng.below(4) {
                        if d.is_empty() {
                            break;
                        }
                        let i = rng.below(d.len());
                        match rng.below(3) {
                            0 => d[i] = b"0123456789-.e,:{}[]\""[rng.below(20)],
                            1 => {
                                d.remove(i);
                            }
                            _ => d.insert(i, b"9"[0]),
                        }
                    }
                    d
                }
            };
            if check(&mutated) {
                accepted += 1;
            }
        }
    }
    (accepted, total)
}

#[test]
fn gpt_config_corpus_and_mutations() {
    let (accepted, total) = fuzz("gpt_config", check_gpt, 1500);
    eprintln!("gpt_config: {accepted} of {total} mutants accepted");
    assert!(accepted > 50 && accepted < total);
}

#[test]
fn vq_config_corpus_and_mutations() {
    let (accepted, total) = fuzz("vq_config", check_vq, 1500);
    eprintln!("vq_config: {accepted} of {total} mutants accepted");
    assert!(accepted > 50 && accepted < total);
}

/// Every numeric field of a valid config at every hostile integer, one at a time, and in
/// pairs: the sweep that found overflows in `grid`, `param_count`, `ffn_hidden`, `class_rows`
/// and `qkv_dim`.
#[test]
fn gpt_config_field_sweep() {
    let base: Value = serde_json::from_slice(
        &std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../fuzz/corpus/gpt_config/valid_gpt_xl_t2i_gqa.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let fields = [
        "dim",
        "n_layer",
        "n_head",
        "n_kv_head",
        "multiple_of",
        "num_classes",
        "caption_dim",
        "vocab_size",
        "cls_token_num",
        "block_size",
    ];
    let values: Vec<u64> = (0..64)
        .flat_map(|b| [1u64 << b, (1u64 << b).wrapping_sub(1), (1u64 << b) + 1])
        .chain([u64::MAX, 1000, 4096, 16384])
        .collect();
    let mut n = 0;
    for (i, f) in fields.iter().enumerate() {
        for &v in &values {
            for c2i in [false, true] {
                let mut c = base.clone();
                c[*f] = json!(v);
                if c2i {
                    c["model_type"] = json!("c2i");
                    c["cls_token_num"] = json!(1);
                }
                check_gpt(&serde_json::to_vec(&c).unwrap());
                n += 1;
            }
            let g = fields[(i + 1 + (v as usize % (fields.len() - 1))) % fields.len()];
            let mut c = base.clone();
            c[*f] = json!(v);
            c[g] = json!(v.rotate_left(7));
            check_gpt(&serde_json::to_vec(&c).unwrap());
            n += 1;
        }
    }
    assert!(n > 5000);
}
