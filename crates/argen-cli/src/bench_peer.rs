//! `argen bench --peer`: runs the PyTorch peer (`tools/bench_peer.py`) on the same weights,
//! prompts, seed count, thread count, guidance and temperature, right after argen's own rows, and
//! compares wall-clock per image for the decodings both ran (ratio = PyTorch / argen, so > 1 means
//! argen is faster).
//!
//! The script is found at `$ARGEN_PEER_SCRIPT`, else `tools/bench_peer.py` in the source tree
//! this binary was built from.

use std::path::PathBuf;
use std::process::Command;

use argen_model::{Condition, GptConfig};
use serde_json::{json, Value};

use crate::bench::BenchPrompt;
use crate::output::write_json_now;
use argen_engine::ModelDir;

/// The peer script's path.
fn script() -> PathBuf {
    match std::env::var_os("ARGEN_PEER_SCRIPT") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tools/bench_peer.py"
        )),
    }
}

/// Runs the peer and returns its results with the comparisons against `rows` (argen's rows, by
/// name).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    python: &str,
    dir: &ModelDir,
    cfg: &GptConfig,
    prompts: &[BenchPrompt],
    seeds: u64,
    threads: usize,
    guidance: f32,
    temperature: f32,
    rows: &[Value],
) -> Result<Value, String> {
    let script = script();
    if !script.is_file() {
        return Err(format!(
            "--peer: the peer script {} is missing (set ARGEN_PEER_SCRIPT)",
            script.display()
        ));
    }
    let tmp = std::env::temp_dir().join(format!("argen-bench-peer-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let spec_path = tmp.join("spec.json");
    let out_path = tmp.join("result.json");
    let ps: Vec<Value> = prompts
        .iter()
        .map(|p| match &p.conds.0 {
            Condition::Class(c) => json!({ "class": c }),
            Condition::Caption { features, pad } => json!({ "caption": features, "pad": pad }),
        })
        .collect();
    let model_dir = std::fs::canonicalize(&dir.dir).unwrap_or_else(|_| dir.dir.clone());
    write_json_now(
        &spec_path,
        &json!({
            "model": model_dir.display().to_string(),
            "prompts": ps,
            "seeds": seeds,
            "threads": threads,
            "cfg": guidance,
            "temperature": temperature,
            "image_tokens": cfg.block_size,
        }),
    )?;
    crate::errln!(
        "argen bench: running the PyTorch peer: {python} {} ({} images)",
        script.display(),
        prompts.len() as u64 * seeds
    );
    let status = Command::new(python)
        .arg(&script)
        .arg("--spec")
        .arg(&spec_path)
        .arg("--out")
        .arg(&out_path)
        .status()
        .map_err(|e| {
            format!(
                "--peer: cannot run {python:?} ({e}); install Python 3 with torch and \
                 safetensors, or pass --python PATH"
            )
        })?;
    if !status.success() {
        return Err(format!(
            "--peer: {python} {} failed ({status}); see its message above (it needs torch and \
             safetensors)",
            script.display()
        ));
    }
    let text = std::fs::read_to_string(&out_path)
        .map_err(|e| format!("--peer: cannot read {}: {e}", out_path.display()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    let mut peer: Value = serde_json::from_str(&text)
        .map_err(|e| format!("--peer: {} is not JSON: {e}", out_path.display()))?;
    let mut comparisons = Vec::new();
    for r in peer["results"].as_array().into_iter().flatten() {
        let name = r["name"].as_str().unwrap_or("");
        let theirs = r["wall_per_image"].as_f64();
        let ours = rows
            .iter()
            .find(|row| row["name"].as_str() == Some(name))
            .and_then(|row| row["wall_per_image"].as_f64());
        if let (Some(t), Some(o)) = (theirs, ours) {
            if t.is_finite() && o > 0.0 {
                comparisons.push(json!({
                    "name": name,
                    "peer_wall_per_image": t,
                    "argen_wall_per_image": o,
                    "ratio": t / o,
                }));
            }
        }
    }
    peer["comparisons"] = json!(comparisons);
    peer["script"] = json!("tools/bench_peer.py");
    Ok(peer)
}
