//! Recorded runs: `argen generate --trace FILE`, `argen replay FILE`, `argen trace show FILE`.
//!
//! A run file holds what a replay needs — how the run was asked for and what it decided:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic, ASCII `ARGENRUN` |
//! | 8 | 2 | run-file version, `u16` little-endian = [`RUN_VERSION`] (1) |
//! | 10 | 4 | `J`, bytes of the metadata, `u32` little-endian, at most [`MAX_META`] |
//! | 14 | J | metadata, UTF-8 JSON (below) |
//! | 14 + J | rest | the decoding trace in argen-core's binary format (`argen_core::trace`: every action, answer and committed-token digest, the final stats and tokens, CRC-32) |
//!
//! The metadata object: `argen` (version of the writer), `rng_scheme`, `args` (the `argen
//! generate` arguments that decide the run — prompt or class, method and every option — without
//! output paths, device, threads and model directory), `config` (the full
//! [`DecoderConfig`] as JSON), `seed`, `prompt`, `class`,
//! `model` (`fingerprint`: FNV-64 of the model files the run loaded, name, length and bytes of
//! each, in the order `files` lists them), `caption` (the caption file's fingerprint, if any),
//! `device`, `threads`, `kernels`.
//!
//! Runs recorded by `argen bench --traces DIR` hold `config`, `prompt` / `class` and no `args`:
//! their replay runs that configuration with that condition.
//!
//! `argen replay` re-runs the recorded arguments on the model (`--model`, else the directory the
//! run recorded, else the default), checks the fingerprint first, then compares the new run with
//! the trace action by action and prints `identical` (exit 0) or the first divergence — step,
//! field, expected and found values — and the final tokens around the first token that differs
//! (exit 1).

use std::io::Read;
use std::path::{Path, PathBuf};

use argen_core::decode::{DecoderConfig, MethodConfig};
use argen_core::trace::{Fnv64, Trace};
use serde_json::{json, Value};

use crate::args::{ReplayArgs, TraceShowArgs};

/// Magic bytes of a run file.
pub const RUN_MAGIC: [u8; 8] = *b"ARGENRUN";
/// The run-file version this module writes and reads.
pub const RUN_VERSION: u16 = 1;
/// Largest metadata block, in bytes.
pub const MAX_META: u32 = 1 << 20;
/// Largest run file read, in bytes (a trace of 1024 tokens with trees is a few hundred KiB).
pub const MAX_RUN_FILE: u64 = 256 << 20;

/// `argen generate` flags that do not decide the run (outputs and where it runs); they are left
/// out of the recorded arguments. Each takes a value.
const NOT_RECORDED: [&str; 7] = [
    "--out",
    "--stats",
    "--tokens",
    "--trace",
    "--device",
    "--threads",
    "--model",
];
/// Flags without a value that are left out.
const NOT_RECORDED_SWITCHES: [&str; 1] = ["--quiet"];

/// The `argen generate` arguments of this process that decide the run (module docs).
pub fn recorded_args() -> Vec<String> {
    let argv: Vec<String> = std::env::args().collect();
    let start = argv
        .iter()
        .position(|a| a == "generate")
        .map_or(argv.len(), |i| i + 1);
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in &argv[start..] {
        if skip_value {
            skip_value = false;
            continue;
        }
        let name = a.split('=').next().unwrap_or(a);
        if NOT_RECORDED.contains(&name) {
            skip_value = !a.contains('=');
            continue;
        }
        if NOT_RECORDED_SWITCHES.contains(&a.as_str()) {
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// FNV-64 over `files` (name, length and bytes of each), read in 1 MiB chunks.
pub fn fingerprint(files: &[PathBuf]) -> Result<String, String> {
    let mut h = Fnv64::new();
    let mut buf = vec![0u8; 1 << 20];
    for p in files {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        h.bytes(name.as_bytes());
        let mut f = std::fs::File::open(p)
            .map_err(|e| format!("cannot read {} for the model fingerprint: {e}", p.display()))?;
        let mut len = 0u64;
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            if n == 0 {
                break;
            }
            h.bytes(&buf[..n]);
            len += n as u64;
        }
        h.u64(len);
    }
    Ok(format!("{:016x}", h.value()))
}

/// The bytes of a run file (module docs).
pub fn encode(meta: &Value, trace: &[u8]) -> Result<Vec<u8>, String> {
    let meta = serde_json::to_vec(meta).map_err(|e| format!("cannot encode the run: {e}"))?;
    let len = u32::try_from(meta.len())
        .ok()
        .filter(|&n| n <= MAX_META)
        .ok_or("the run's metadata is larger than 1 MiB")?;
    let mut out = Vec::with_capacity(14 + meta.len() + trace.len());
    out.extend_from_slice(&RUN_MAGIC);
    out.extend_from_slice(&RUN_VERSION.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(trace);
    Ok(out)
}

/// A run file read and checked: its metadata and trace bytes.
pub struct RunFile {
    /// The metadata object.
    pub meta: Value,
    /// The trace bytes (validated by [`Trace::parse`]).
    pub trace: Vec<u8>,
}

impl RunFile {
    /// Reads and checks `path` (bounded read; typed one-line errors).
    pub fn read(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let f = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        if f.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(format!("{shown} is a directory, not a run file"));
        }
        let mut bytes = Vec::new();
        f.take(MAX_RUN_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if bytes.len() as u64 > MAX_RUN_FILE {
            return Err(format!("{shown} is larger than 256 MiB; not a run file"));
        }
        if bytes.len() < 14 || bytes[..8] != RUN_MAGIC {
            return Err(format!(
                "{shown} is not an argen run file (record one with `argen generate --trace FILE`)"
            ));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != RUN_VERSION {
            return Err(format!(
                "{shown}: run-file version {version} is not supported (this argen reads version {RUN_VERSION})"
            ));
        }
        let len = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
        if len > MAX_META || 14 + len as usize > bytes.len() {
            return Err(format!(
                "{shown}: truncated or corrupt run file (metadata length {len})"
            ));
        }
        let meta: Value = serde_json::from_slice(&bytes[14..14 + len as usize])
            .map_err(|e| format!("{shown}: corrupt run metadata ({e})"))?;
        if !meta.is_object() {
            return Err(format!("{shown}: corrupt run metadata (not an object)"));
        }
        let trace = bytes.split_off(14 + len as usize);
        Trace::parse(&trace).map_err(|e| format!("{shown}: {e}"))?;
        Ok(RunFile { meta, trace })
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.meta.get(key).and_then(Value::as_str)
    }
}

/// The recorded arguments as a string list.
fn args_of(run: &RunFile, path: &Path) -> Result<Vec<String>, String> {
    run.meta
        .get("args")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
        .ok_or_else(|| format!("{}: the run file records no arguments", path.display()))
}

/// `argen replay`: `Ok(true)` identical, `Ok(false)` diverged (printed).
pub fn run(a: &ReplayArgs) -> Result<bool, String> {
    let run = RunFile::read(&a.file)?;
    let mut argv = vec!["argen".to_owned(), "generate".to_owned()];
    // Runs of `argen generate` record their arguments; runs of `argen bench` their decoder
    // configuration and condition.
    let config: Option<DecoderConfig> = match run.meta.get("args") {
        Some(_) => {
            argv.extend(args_of(&run, &a.file)?);
            // `--draft auto` decided with the cost profile the model directory held when the run
            // was recorded; the recorded configuration holds that profile, so the replay runs it
            // whatever the file says today.
            run.meta
                .get("config")
                .and_then(|c| serde_json::from_value::<DecoderConfig>(c.clone()).ok())
                .filter(|dc| matches!(dc.method, MethodConfig::AutoSpeculative(_)))
        }
        None => {
            let config = run
                .meta
                .get("config")
                .and_then(|c| serde_json::from_value(c.clone()).ok())
                .ok_or_else(|| {
                    format!(
                        "{}: the run file records neither arguments nor a configuration",
                        a.file.display()
                    )
                })?;
            if let Some(p) = run.str_field("prompt") {
                argv.extend(["--prompt".to_owned(), p.to_owned()]);
            }
            if let Some(c) = run.meta.get("class").and_then(Value::as_u64) {
                argv.extend(["--class".to_owned(), c.to_string()]);
            }
            Some(config)
        }
    };
    let model = a
        .model
        .clone()
        .or_else(|| run.str_field("model_dir").map(PathBuf::from));
    if let Some(m) = &model {
        argv.extend(["--model".to_owned(), m.display().to_string()]);
    }
    let device = a
        .device
        .map(|d| format!("{d:?}").to_lowercase())
        .or_else(|| run.str_field("device").map(str::to_owned))
        .unwrap_or_else(|| "cpu".into());
    argv.extend(["--device".to_owned(), device]);
    argv.extend(["--threads".to_owned(), a.threads.to_string()]);
    if a.quiet {
        argv.push("--quiet".into());
    }
    let g = match <crate::args::Cli as clap::Parser>::try_parse_from(&argv) {
        Ok(crate::args::Cli {
            command: crate::args::Command::Generate(g),
        }) => g,
        Ok(_) => unreachable!("argv starts with `generate`"),
        Err(e) => {
            return Err(format!(
                "{}: the recorded arguments do not parse with this argen ({})",
                a.file.display(),
                e.to_string().lines().next().unwrap_or("")
            ))
        }
    };
    let trace = Trace::parse(&run.trace).map_err(|e| e.to_string())?;
    let recorded = run
        .meta
        .get("model")
        .and_then(|m| m.get("fingerprint"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let outcome = crate::generate::replay_run(&g, config.as_ref(), trace, recorded)?;
    match outcome {
        crate::generate::ReplayOutcome::ModelDiffers { recorded, found } => {
            crate::outln!(
                "model differs: the run was recorded with model fingerprint {recorded}, \
                 {} has {found}; not replayed (pass --model with the recorded model)",
                model.map_or("the model directory".into(), |m| m.display().to_string())
            )?;
            Ok(false)
        }
        crate::generate::ReplayOutcome::Identical { steps } => {
            crate::outln!("identical ({steps} steps, {})", a.file.display())?;
            Ok(true)
        }
        crate::generate::ReplayOutcome::Diverged {
            kernels,
            divergence,
            expected,
            found,
        } => {
            let recorded = run.str_field("kernels").unwrap_or("exact");
            if recorded != kernels {
                // Another kernel class sums in another order: a difference is expected, not a
                // divergence of argen's determinism.
                crate::outln!(
                    "not comparable: the run was recorded with the {recorded} kernels and replayed                      with the {kernels} kernels (different reduction orders); replay with the                      recorded class to check it"
                )?;
                return Ok(false);
            }
            crate::outln!("diverged at {divergence}")?;
            print_tokens_around(&expected, &found)?;
            Ok(false)
        }
    }
}

/// The final tokens of both runs around the first index where they differ.
fn print_tokens_around(expected: &[u32], found: &[u32]) -> Result<(), String> {
    let first = expected
        .iter()
        .zip(found)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(found.len()));
    if first == expected.len() && first == found.len() {
        return Ok(());
    }
    let lo = first.saturating_sub(4);
    let show = |t: &[u32]| {
        let hi = (first + 5).min(t.len());
        let cells: Vec<String> = (lo..hi)
            .map(|i| {
                if i == first {
                    format!("[{}]", t[i])
                } else {
                    t[i].to_string()
                }
            })
            .collect();
        cells.join(" ")
    };
    crate::outln!("first differing token: index {first} (tokens {lo}..)")?;
    crate::outln!("  trace: {}", show(expected))?;
    crate::outln!("  run:   {}", show(found))?;
    Ok(())
}

/// `argen trace show`.
pub fn show(a: &TraceShowArgs) -> Result<(), String> {
    let run = RunFile::read(&a.file)?;
    let trace = Trace::parse(&run.trace).map_err(|e| e.to_string())?;
    let h = trace.header();
    let records: Vec<Value> = trace
        .records()
        .map(|r| {
            json!({
                "kind": r.kind.name(),
                "seq": r.seq,
                "items": r.items,
                "aux": r.aux,
                "answer": r.answer,
                "committed": r.committed,
                "action_digest": format!("{:016x}", r.action_digest),
                "token_digest": format!("{:016x}", r.token_digest),
            })
        })
        .collect();
    let s = trace.stats();
    let stats = json!({
        "tokens": s.tokens, "target_forwards": s.target_forwards, "target_rows": s.target_rows,
        "prefills": s.prefills, "draft_forwards": s.draft_forwards, "draft_rows": s.draft_rows,
        "verify_steps": s.verify_steps, "skipped_steps": s.skipped_steps,
        "verifier_calls": s.verifier_calls, "scorer_calls": s.scorer_calls,
        "reformulations": s.reformulations,
    });
    let tokens: Vec<u32> = trace.tokens().collect();
    if a.json {
        let v = json!({
            "run": run.meta,
            "trace": {
                "format_version": trace.version(),
                "rng_scheme": h.scheme,
                "decoder": h.decoder,
                "config_hash": format!("{:016x}", h.config_hash),
                "seed": h.seed,
                "image_tokens": h.tokens,
                "records": records,
                "stats": stats,
                "result_seq": trace.result_seq(),
                "tokens": tokens,
            }
        });
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        )?;
        return Ok(());
    }
    crate::outln!("run file {}", a.file.display())?;
    for key in [
        "argen", "device", "threads", "kernels", "prompt", "class", "seed",
    ] {
        if let Some(v) = run.meta.get(key).filter(|v| !v.is_null()) {
            crate::outln!("  {key}: {v}")?;
        }
    }
    if let Some(m) = run.meta.get("model") {
        crate::outln!(
            "  model fingerprint: {}",
            m.get("fingerprint").unwrap_or(&Value::Null)
        )?;
    }
    if let Some(args) = run.meta.get("args").and_then(Value::as_array) {
        let args: Vec<&str> = args.iter().filter_map(Value::as_str).collect();
        crate::outln!("  arguments: {}", args.join(" "))?;
    }
    crate::outln!(
        "trace: format v{}, RNG scheme {}, decoder {}, seed {}, {} image tokens, {} steps",
        trace.version(),
        h.scheme,
        h.decoder,
        h.seed,
        h.tokens,
        trace.record_count()
    )?;
    crate::outln!("| step | action | seq | items | aux | answer | committed |")?;
    crate::outln!("|---|---|---|---|---|---|---|")?;
    for (i, r) in trace.records().enumerate() {
        crate::outln!(
            "| {i} | {} | {} | {} | {} | {} | {} |",
            r.kind.name(),
            r.seq,
            r.items,
            r.aux,
            r.answer,
            r.committed
        )?;
    }
    crate::outln!(
        "stats: {} tokens, {} target forwards, {} drafter forwards; result sequence {}",
        s.tokens,
        s.target_forwards,
        s.draft_forwards,
        trace.result_seq()
    )?;
    crate::outln!("tokens: {tokens:?}")?;
    Ok(())
}
