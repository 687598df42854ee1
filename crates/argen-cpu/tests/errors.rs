//! Bad input yields clear, typed errors naming the file and the problem — never a panic.

mod common;
use argen_cpu::{Cpu, Gpt};
use argen_model::safetensors::SafeTensors;
use argen_model::{Capacity, ClassPrefill, GptConfig, ModelError};
use common::fixture;
use std::path::{Path, PathBuf};

fn cap() -> Capacity {
    Capacity {
        slots: 2,
        seq: 32,
        rows: 32,
        pending: 20,
    }
}

fn cfg() -> GptConfig {
    GptConfig::load(fixture("c2i_tiny", "gpt.json")).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("argen-cpu-errors-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Rewrites the c2i checkpoint with `edit` applied to its (name → (dtype, shape, bytes)) table.
fn rewrite(
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, String, Vec<usize>, Vec<u8>)>),
) -> PathBuf {
    let st = SafeTensors::open(fixture("c2i_tiny", "gpt.safetensors")).unwrap();
    let mut t: Vec<(String, String, Vec<usize>, Vec<u8>)> = st
        .names()
        .map(|n| {
            let v = st.get(n).unwrap();
            (
                n.to_string(),
                v.dtype.name().to_string(),
                v.shape.to_vec(),
                v.data.to_vec(),
            )
        })
        .collect();
    edit(&mut t);
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (n, dt, shape, bytes) in &t {
        header.insert(
            n.clone(),
            serde_json::json!({"dtype": dt, "shape": shape, "data_offsets": [data.len(), data.len() + bytes.len()]}),
        );
        data.extend_from_slice(bytes);
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    let p = tmp(name);
    std::fs::write(&p, out).unwrap();
    p
}

fn load(p: &Path) -> Result<Gpt, ModelError> {
    Gpt::load(&Cpu::new(1).unwrap(), &cfg(), p, cap())
}

fn msg(e: ModelError) -> String {
    e.to_string()
}

#[test]
fn missing_file() {
    let e = load(Path::new("/nonexistent/gpt.safetensors"))
        .err()
        .unwrap();
    assert!(matches!(e, ModelError::Io { .. }));
    assert!(msg(e).contains("/nonexistent/gpt.safetensors"));
    let e = GptConfig::load("/nonexistent/gpt.json").err().unwrap();
    assert!(msg(e).contains("gpt.json"));
}

#[test]
fn truncated_and_corrupt_files() {
    let bytes = std::fs::read(fixture("c2i_tiny", "gpt.safetensors")).unwrap();
    for (i, cut) in [0usize, 5, 9, 100, bytes.len() / 2, bytes.len() - 1]
        .iter()
        .enumerate()
    {
        let p = tmp(&format!("trunc{i}.safetensors"));
        std::fs::write(&p, &bytes[..*cut]).unwrap();
        let e = load(&p).err().unwrap();
        assert!(matches!(e, ModelError::Safetensors { .. }), "{e}");
        assert!(msg(e).contains(&format!("trunc{i}.safetensors")));
    }
    let mut bad = bytes.clone();
    bad[8] = b'#'; // corrupt the JSON
    let p = tmp("corrupt.safetensors");
    std::fs::write(&p, &bad).unwrap();
    let e = load(&p).err().unwrap();
    assert!(msg(e).contains("not valid JSON"));
}

#[test]
fn missing_tensor() {
    let p = rewrite("missing.safetensors", |t| {
        t.retain(|x| x.0 != "norm.weight")
    });
    let e = load(&p).err().unwrap();
    assert!(
        matches!(&e, ModelError::MissingTensor { name, .. } if name == "norm.weight"),
        "{e}"
    );
    assert!(msg(e).contains("missing.safetensors"));
}

#[test]
fn wrong_shape() {
    let p = rewrite("shape.safetensors", |t| {
        let x = t
            .iter_mut()
            .find(|x| x.0 == "layers.1.attention.wo.weight")
            .unwrap();
        x.2 = vec![x.2[0] / 2, x.2[1] * 2];
    });
    let e = load(&p).err().unwrap();
    assert!(matches!(e, ModelError::Shape { .. }), "{e}");
    assert!(msg(e).contains("layers.1.attention.wo.weight"));
}

#[test]
fn wrong_dtype() {
    let p = rewrite("dtype.safetensors", |t| {
        let x = t.iter_mut().find(|x| x.0 == "output.weight").unwrap();
        x.1 = "I32".into();
    });
    let e = load(&p).err().unwrap();
    assert!(matches!(e, ModelError::Dtype { .. }), "{e}");
    assert!(msg(e).contains("output.weight"));
}

#[test]
fn config_mismatch() {
    // More layers in the file than in the config.
    let p = rewrite("extra.safetensors", |t| {
        let x = t
            .iter()
            .find(|x| x.0 == "layers.1.ffn_norm.weight")
            .unwrap()
            .clone();
        t.push(("layers.2.ffn_norm.weight".into(), x.1, x.2, x.3));
    });
    let e = load(&p).err().unwrap();
    assert!(matches!(e, ModelError::UnexpectedTensor { .. }), "{e}");
    // A config with a different width.
    let mut c = cfg();
    c.dim = 64;
    c.n_head = 4;
    let e = Gpt::load(
        &Cpu::new(1).unwrap(),
        &c,
        fixture("c2i_tiny", "gpt.safetensors"),
        cap(),
    )
    .err()
    .unwrap();
    assert!(matches!(e, ModelError::Shape { .. }), "{e}");
    // Invalid config JSON.
    let p = tmp("bad.json");
    std::fs::write(
        &p,
        r#"{"model_type": "c2i", "dim": 48, "n_layer": 2, "n_head": 5}"#,
    )
    .unwrap();
    let e = GptConfig::load(&p).err().unwrap();
    assert!(msg(e).contains("bad.json"));
}

#[test]
fn class_out_of_range_and_bad_steps() {
    let mut g = load(&fixture("c2i_tiny", "gpt.safetensors")).unwrap();
    let v = g.config().vocab_size;
    let mut logits = vec![0f32; 2 * v];
    let e = g
        .prefill_class(
            &[ClassPrefill {
                slot: 0,
                class: Some(10),
            }],
            &mut logits,
            None,
        )
        .err()
        .unwrap();
    assert!(msg(e).contains("class id 10 out of range"));
    let e = g
        .prefill_class(
            &[ClassPrefill {
                slot: 7,
                class: Some(1),
            }],
            &mut logits,
            None,
        )
        .err()
        .unwrap();
    assert!(msg(e).contains("slot 7"));
    g.prefill_class(
        &[ClassPrefill {
            slot: 0,
            class: Some(1),
        }],
        &mut logits,
        None,
    )
    .unwrap();
    let pos = [argen_model::Pos::Grid { row: 0, col: 0 }];
    let step = |tokens: &'static [u32], parents: Option<&'static [i32]>| argen_model::Step {
        slot: 0,
        tokens,
        positions: &[argen_model::Pos::Grid { row: 0, col: 0 }],
        parents,
    };
    let _ = pos;
    assert!(g
        .forward(&[step(&[9999], None)], &mut logits, None)
        .is_err());
    assert!(g
        .forward(&[step(&[1], Some(&[0]))], &mut logits, None)
        .is_err());
    let far = [argen_model::Pos::Grid { row: 9, col: 0 }];
    let e = g
        .forward(
            &[argen_model::Step {
                slot: 0,
                tokens: &[1],
                positions: &far,
                parents: None,
            }],
            &mut logits,
            None,
        )
        .err()
        .unwrap();
    assert!(msg(e).contains("outside"));
    // Errors left no pending entries behind.
    assert_eq!(g.slot_len(0), Some((1, 0)));
}
