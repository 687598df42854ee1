//! Shared helpers of the argen-cpu integration tests.
#![allow(dead_code)]

use argen_model::safetensors::{Dtype, SafeTensors};
use std::path::PathBuf;

pub fn fixture(case: &str, file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/model")
        .join(case)
        .join(file)
}

pub struct Golden(pub SafeTensors);

impl Golden {
    pub fn open(case: &str) -> Golden {
        Golden(SafeTensors::open(fixture(case, "golden.safetensors")).expect("golden file"))
    }
    pub fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let v = self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("golden `{name}`"));
        (v.to_f32().expect("float"), v.shape.to_vec())
    }
    pub fn i64(&self, name: &str) -> Vec<i64> {
        let v = self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("golden `{name}`"));
        assert_eq!(
            v.dtype,
            Dtype::Other(argen_model::safetensors::OtherDtype::I64)
        );
        v.data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// max |a - b| / max |b|.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-30);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}
