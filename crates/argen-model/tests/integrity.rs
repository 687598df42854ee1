//! Checkpoint integrity (issue 14): tensors must tile the data section exactly (no overlap, no
//! gap, no trailing bytes), `SafeTensors::open` rejects a hostile header length from the first
//! 8 bytes, and a NaN or infinite weight is an error naming the file and the tensor.

use argen_model::safetensors::{parse_header, SafeTensors};
use argen_model::ModelError;

fn file(entries: &[(&str, &str, Vec<usize>, [usize; 2])], data: &[u8]) -> Vec<u8> {
    let mut h = serde_json::Map::new();
    for (name, dtype, shape, offs) in entries {
        h.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": offs}),
        );
    }
    let h = serde_json::to_vec(&serde_json::Value::Object(h)).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

#[test]
fn tensors_must_tile_the_data_section() {
    let ok = file(
        &[
            ("a", "F32", vec![2], [0, 8]),
            ("b", "F16", vec![4], [8, 16]),
        ],
        &[0; 16],
    );
    assert!(parse_header(&ok).is_ok());
    let mut trailing = ok.clone();
    trailing.push(0);
    let e = parse_header(&trailing).unwrap_err();
    assert!(e.contains("1 bytes after the last tensor"), "{e}");
    let overlap = file(
        &[
            ("a", "F32", vec![2], [0, 8]),
            ("b", "F32", vec![2], [4, 12]),
        ],
        &[0; 12],
    );
    let e = parse_header(&overlap).unwrap_err();
    assert!(
        e.contains("`b`") && e.contains("overlaps tensor `a`"),
        "{e}"
    );
    let gap = file(
        &[
            ("a", "F32", vec![2], [0, 8]),
            ("b", "F32", vec![2], [12, 20]),
        ],
        &[0; 20],
    );
    let e = parse_header(&gap).unwrap_err();
    assert!(e.contains("gap of 4 bytes after tensor `a`"), "{e}");
    let late = file(&[("a", "F32", vec![2], [4, 12])], &[0; 12]);
    assert!(parse_header(&late)
        .unwrap_err()
        .contains("after the header"));
    // Zero-sized tensors may share an offset.
    let empty = file(
        &[
            ("a", "F32", vec![2], [0, 8]),
            ("z", "F32", vec![0], [8, 8]),
            ("y", "BF16", vec![0, 3], [8, 8]),
        ],
        &[0; 8],
    );
    assert!(parse_header(&empty).is_ok());
}

#[test]
fn open_rejects_a_huge_header_length_before_reading_the_file() {
    let dir = std::env::temp_dir().join(format!("argen-integrity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("sparse.safetensors");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(3 << 30).unwrap(); // sparse: 3 GB of zeros that are never read
    drop(f);
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all(&u64::MAX.to_le_bytes()).unwrap();
    drop(f);
    let e = SafeTensors::open(&p).unwrap_err().to_string();
    assert!(
        e.contains("sparse.safetensors") && e.contains("header length"),
        "{e}"
    );
    // A directory is not a checkpoint.
    let e = SafeTensors::open(&dir).unwrap_err().to_string();
    assert!(!e.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_finite_weights_name_file_and_tensor() {
    for (dtype, bytes, what) in [
        ("F32", f32::NAN.to_le_bytes().to_vec(), "NaN"),
        ("F32", f32::NEG_INFINITY.to_le_bytes().to_vec(), "-inf"),
        ("F16", 0x7c00u16.to_le_bytes().to_vec(), "inf"),
        ("BF16", 0x7fc0u16.to_le_bytes().to_vec(), "NaN"),
    ] {
        let size = bytes.len();
        let mut data = vec![0u8; 3 * size];
        data[2 * size..].copy_from_slice(&bytes);
        let f = file(&[("w.weight", dtype, vec![3], [0, 3 * size])], &data);
        let st = SafeTensors::from_bytes("ckpt.safetensors", f).unwrap();
        let e = st.expect("w.weight", &[3]).unwrap_err();
        assert!(
            matches!(e, ModelError::NonFinite { index: 2, .. }),
            "{dtype}: {e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("ckpt.safetensors") && msg.contains("`w.weight`") && msg.contains(what),
            "{msg}"
        );
        // The raw view is still available to callers that want it.
        assert!(st.get("w.weight").is_some());
    }
}
