//! Predicted speed-ups of every speculative method for LlamaGen's GPT-B / L / XL shapes on
//! this machine: **predictions, not measurements** (docs/results.md §5).
//!
//! ```text
//! cargo run --release -p argen-engine --example shape_predictions -- \
//!     --bench docs/results/shapesworld.json [--shapes GPT-B,GPT-L,GPT-XL] [--dtype f32|bf16] \
//!     [--threads N] [--profiles DIR] [--budget SECONDS] [--reuse] [--kernels]
//! ```
//!
//! `--kernels` first tunes the CPU kernels for each shape ([`argen_engine::kernel_tune`], as
//! `argen calibrate --kernels`) and calibrates under the chosen tuning (recorded in the
//! profile).
//!
//! 1. For each shape, a class-conditional 256-token GPT of that shape (`GptConfig::preset`,
//!    vocabulary 16384, official tensor names) and an EAGLE drafter (one decoder layer and
//!    `fc`, the target's `lm_head`) with deterministic random weights are built in memory and
//!    calibrated with [`argen_engine::calibrate`] — the same measurement as `argen calibrate`
//!    (default row counts 1…128, context `1 + 128` tokens). The profile is written to
//!    `DIR/<shape>-<dtype>.json` (`--reuse` reads it instead if it exists). Random weights cost
//!    what trained ones do: the kernels' work does not depend on the values.
//! 2. Each speculative row of the bench JSON (`argen bench --json`, ShapesWorld) gives its model
//!    calls by row count (`row_histogram`): ShapesWorld's acceptance statistics. They are
//!    transplanted to a 256-token image — every target and drafter call repeated
//!    `256 / 64 = 4` times, the prefill once with the shape's condition length — and costed
//!    with the shape's profile ([`argen_engine::predict::predict_nanos`]); the predicted
//!    speed-up is vanilla's predicted time over the row's.
//!
//! Progress goes to stderr, the Markdown table to stdout.

use std::path::PathBuf;

use argen_cpu::Cpu;
use argen_engine::calibrate::{calibrate_models, capacity, CalibrateOptions};
use argen_engine::cost_file::{self, CostFile};
use argen_engine::kernel_tune::{tune_kernels_loading, KernelTuneOptions};
use argen_engine::predict::{predict_nanos, RowHistogram};
use argen_model::safetensors::SafeTensors;
use argen_model::{Drafter, Gpt, GptConfig, ModelType};
use serde_json::Value;

struct Args {
    bench: Option<PathBuf>,
    shapes: Vec<String>,
    dtype: String,
    threads: usize,
    profiles: PathBuf,
    budget: f64,
    reuse: bool,
    kernels: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        bench: None,
        shapes: vec!["GPT-B".into(), "GPT-L".into(), "GPT-XL".into()],
        dtype: "f32".into(),
        threads: 0,
        profiles: std::env::temp_dir().join("argen-shape-profiles"),
        budget: 10.0,
        reuse: false,
        kernels: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bench" => a.bench = Some(value()?.into()),
            "--shapes" => a.shapes = value()?.split(',').map(str::to_string).collect(),
            "--dtype" => a.dtype = value()?,
            "--threads" => a.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--profiles" => a.profiles = value()?.into(),
            "--budget" => a.budget = value()?.parse().map_err(|e| format!("--budget: {e}"))?,
            "--reuse" => a.reuse = true,
            "--kernels" => a.kernels = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !matches!(a.dtype.as_str(), "f32" | "bf16") {
        return Err("--dtype is f32 or bf16".into());
    }
    Ok(a)
}

/// Deterministic random tensors in safetensors layout (`dtype` F32 or BF16): norms near 1,
/// everything else uniform in ±0.02.
fn safetensors(tensors: &[(String, Vec<usize>)], dtype: &str) -> Vec<u8> {
    let es = if dtype == "f32" { 4 } else { 2 };
    let mut header = String::from("{");
    let mut off = 0usize;
    for (i, (n, s)) in tensors.iter().enumerate() {
        let bytes = s.iter().product::<usize>() * es;
        header += &format!(
            "{}\"{n}\":{{\"dtype\":\"{}\",\"shape\":{s:?},\"data_offsets\":[{off},{}]}}",
            if i > 0 { "," } else { "" },
            dtype.to_uppercase(),
            off + bytes
        );
        off += bytes;
    }
    header += "}";
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.reserve(off);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for (n, s) in tensors {
        let norm = n.ends_with("norm.weight");
        for _ in 0..s.iter().product::<usize>() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let x = if norm { 1.0 + 0.1 * u } else { 0.04 * u };
            if es == 4 {
                out.extend_from_slice(&x.to_le_bytes());
            } else {
                // Round to nearest even into the upper 16 bits (finite values only here).
                let b = x.to_bits();
                let r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16;
                out.extend_from_slice(&r.to_le_bytes());
            }
        }
    }
    out
}

fn block(cfg: &GptConfig, i: usize) -> Vec<(String, Vec<usize>)> {
    let (d, f) = (cfg.dim, cfg.ffn_hidden());
    [
        ("attention_norm.weight", vec![d]),
        ("attention.wqkv.weight", vec![cfg.qkv_dim(), d]),
        ("attention.wo.weight", vec![d, d]),
        ("ffn_norm.weight", vec![d]),
        ("feed_forward.w1.weight", vec![f, d]),
        ("feed_forward.w3.weight", vec![f, d]),
        ("feed_forward.w2.weight", vec![d, f]),
    ]
    .into_iter()
    .map(|(n, s)| (format!("layers.{i}.{n}"), s))
    .collect()
}

fn calibrate_shape(a: &Args, shape: &str) -> Result<CostFile, String> {
    let path = a.profiles.join(format!("{shape}-{}.json", a.dtype));
    if a.reuse {
        if let Some(f) = cost_file::read(&path)? {
            eprintln!("{shape}: profile {}", path.display());
            return Ok(f);
        }
    }
    let cfg = GptConfig::preset(shape, ModelType::C2i, 256).map_err(|e| e.to_string())?;
    let cpu = Cpu::new(a.threads).map_err(|e| e.to_string())?;
    let mut opts = CalibrateOptions::for_cpu(&cpu);
    opts.budget_seconds = a.budget;
    opts.min_rounds = 3;
    let cap = capacity(&cfg, &opts);
    let d = cfg.dim;
    let mut t = vec![
        (
            "cls_embedding.embedding_table.weight".to_string(),
            vec![cfg.class_rows(), d],
        ),
        ("tok_embeddings.weight".into(), vec![cfg.vocab_size, d]),
        ("norm.weight".into(), vec![d]),
        ("output.weight".into(), vec![cfg.vocab_size, d]),
    ];
    for i in 0..cfg.n_layer {
        t.extend(block(&cfg, i));
    }
    eprintln!("{shape}: building random {} weights", a.dtype);
    let st = SafeTensors::from_bytes(format!("<{shape}>"), safetensors(&t, &a.dtype))
        .map_err(|e| e.to_string())?;
    let kernel_tuning = if a.kernels {
        let mut load = || {
            Gpt::from_safetensors(&cpu, &cfg, &st, cap)
                .map_err(|e| argen_engine::Error::model(e.to_string()))
        };
        let report = tune_kernels_loading(
            &mut load,
            &a.dtype,
            &opts,
            &KernelTuneOptions::default(),
            &mut |l: &str| eprintln!("{shape}: {l}"),
        )?;
        eprintln!("{shape}: kernel tuning {}", report.tuning.spec());
        Some(report.tuning.spec())
    } else {
        None
    };
    let mut gpt = Gpt::from_safetensors(&cpu, &cfg, &st, cap).map_err(|e| e.to_string())?;
    drop(st);
    let mut dt = vec![("fc.weight".to_string(), vec![d, 2 * d])];
    dt.extend(block(&cfg, 0));
    let st = SafeTensors::from_bytes(format!("<{shape} drafter>"), safetensors(&dt, &a.dtype))
        .map_err(|e| e.to_string())?;
    let mut drafter = Drafter::from_safetensors(&cpu, &cfg, &st, cap).map_err(|e| e.to_string())?;
    drop(st);
    let file = CostFile {
        kernel_tuning,
        ..calibrate_models(
            &mut gpt,
            Some(&mut drafter),
            &a.dtype,
            &opts,
            &mut |l: &str| eprintln!("{shape}: {l}"),
        )?
    };
    std::fs::create_dir_all(&a.profiles)
        .map_err(|e| format!("cannot create {}: {e}", a.profiles.display()))?;
    cost_file::write(&path, &file)?;
    eprintln!("{shape}: wrote {}", path.display());
    Ok(file)
}

fn run() -> Result<(), String> {
    let a = parse()?;
    let mut profiles = Vec::new();
    for s in &a.shapes {
        profiles.push((s.clone(), calibrate_shape(&a, s)?));
    }
    let Some(bench) = &a.bench else {
        return Ok(());
    };
    let text = std::fs::read_to_string(bench)
        .map_err(|e| format!("cannot read {}: {e}", bench.display()))?;
    let r: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", bench.display()))?;
    let bench_tokens = r["model"]["image_tokens"].as_u64().unwrap_or(0);
    if bench_tokens == 0 || 256 % bench_tokens != 0 {
        return Err(format!(
            "{}: the bench's image tokens ({bench_tokens}) must divide 256",
            bench.display()
        ));
    }
    let factor = 256 / bench_tokens;
    let rows = r["rows"].as_array().ok_or("the bench JSON has no rows")?;
    // Per row: (name, measured speed-up on ShapesWorld, ShapesWorld prediction, per-shape ms).
    let mut table = Vec::new();
    for row in rows {
        let h = RowHistogram::from_json(&row["row_histogram"])?;
        if h.judge > 0 {
            continue;
        }
        let images = row["images"].as_u64().unwrap_or(1).max(1) as f64;
        let mut per_shape = Vec::new();
        for (_, p) in &profiles {
            let mut t = h.scaled(factor);
            t.cls = 1;
            per_shape.push(predict_nanos(&p.profile, p.prefill, &t)? as f64 / images / 1e6);
        }
        table.push((
            row["name"].as_str().unwrap_or("?").to_string(),
            row["speedup"].as_f64(),
            row["predicted"]["speedup"].as_f64(),
            per_shape,
        ));
    }
    let vanilla = table
        .iter()
        .find(|r| r.0 == "vanilla")
        .map(|r| r.3.clone())
        .ok_or("the bench JSON has no vanilla row")?;
    let f = |x: Option<f64>| x.map_or("n/a".into(), |x| format!("{x:.2}"));
    let mut head = "| method | ShapesWorld measured | ShapesWorld predicted |".to_string();
    let mut rule = "|---|---:|---:|".to_string();
    for (s, p) in &profiles {
        head += &format!(" {s} ({}, {} thr) |", p.dtype, p.threads);
        rule += "---:|";
    }
    println!("{head}\n{rule}");
    for (name, measured, predicted, ms) in &table {
        let mut line = format!("| {name} | {} | {} |", f(*measured), f(*predicted));
        for (v, m) in vanilla.iter().zip(ms) {
            line += &format!(" {:.2} |", v / m);
        }
        println!("{line}");
    }
    let mut line = "| vanilla ms/img (predicted) | | |".to_string();
    for v in &vanilla {
        line += &format!(" {v:.0} |");
    }
    println!("{line}");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("shape_predictions: error: {e}");
        std::process::exit(1);
    }
}
