//! Shared by the CPU benches: GPT-shaped checkpoints with random weights.

/// Weight dtype of a bench checkpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dt {
    F32,
    Bf16,
    F16,
}

impl Dt {
    pub fn name(self) -> &'static str {
        match self {
            Dt::F32 => "f32",
            Dt::Bf16 => "bf16",
            Dt::F16 => "f16",
        }
    }

    pub fn bytes(self) -> usize {
        if self == Dt::F32 {
            4
        } else {
            2
        }
    }
}

/// A safetensors checkpoint of `cfg` (c2i, official names) with deterministic random weights.
pub fn checkpoint(cfg: &argen_model::GptConfig, dt: Dt) -> Vec<u8> {
    let d = cfg.dim;
    let mut t: Vec<(String, Vec<usize>)> = vec![
        (
            "cls_embedding.embedding_table.weight".into(),
            vec![cfg.class_rows(), d],
        ),
        ("tok_embeddings.weight".into(), vec![cfg.vocab_size, d]),
        ("norm.weight".into(), vec![d]),
        ("output.weight".into(), vec![cfg.vocab_size, d]),
    ];
    for i in 0..cfg.n_layer {
        let f = cfg.ffn_hidden();
        for (n, s) in [
            ("attention_norm.weight", vec![d]),
            ("attention.wqkv.weight", vec![cfg.qkv_dim(), d]),
            ("attention.wo.weight", vec![d, d]),
            ("ffn_norm.weight", vec![d]),
            ("feed_forward.w1.weight", vec![f, d]),
            ("feed_forward.w3.weight", vec![f, d]),
            ("feed_forward.w2.weight", vec![d, f]),
        ] {
            t.push((format!("layers.{i}.{n}"), s));
        }
    }
    let mut header = String::from("{");
    let mut off = 0usize;
    let es = dt.bytes();
    for (i, (n, s)) in t.iter().enumerate() {
        let bytes = s.iter().product::<usize>() * es;
        header += &format!(
            "{}\"{n}\":{{\"dtype\":\"{}\",\"shape\":{:?},\"data_offsets\":[{off},{}]}}",
            if i > 0 { "," } else { "" },
            dt.name().to_uppercase(),
            s,
            off + bytes
        );
        off += bytes;
    }
    header += "}";
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    out.reserve(off);
    for (n, s) in &t {
        let norm = n.ends_with("norm.weight");
        for _ in 0..s.iter().product::<usize>() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let x = if norm { 1.0 + 0.1 * u } else { 0.04 * u };
            match dt {
                Dt::F32 => out.extend_from_slice(&x.to_le_bytes()),
                Dt::Bf16 => out.extend_from_slice(&half::bf16::from_f32(x).to_le_bytes()),
                Dt::F16 => out.extend_from_slice(&half::f16::from_f32(x).to_le_bytes()),
            }
        }
    }
    out
}
