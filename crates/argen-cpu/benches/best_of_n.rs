//! Best-of-N generation cost with lockstep batching (protocol v2), on the CPU runtime.
//!
//! `cargo bench -p argen-cpu --bench best_of_n -- [threads] [n=4] [tokens=256] [f32|bf16|f16]
//! [model=DIR]` generates one set of `n` images twice and prints a markdown row:
//!
//! * **n × vanilla**: `n` vanilla decoders (streams `0..n`) run one after another — one model
//!   forward per token per image, `2` CFG rows each;
//! * **Best-of-n**: `BestOfN<Vanilla>` over the same streams — every token step of all `n`
//!   candidates is **one** forward of `2n` rows.
//!
//! Generation only: the host's judge answers every score with 0 (no scorer cost), and the
//! tokens of both runs are checked to be identical (keyed randomness: batching changes no
//! token). The model is GPT-B-shaped with random weights (class-conditional, 16 × 16 tokens)
//! unless `model=DIR` names an argen model directory (e.g. `fixtures/models/shapesworld`, run
//! unconditioned: the null condition on both CFG rows, which costs the same). Reported against
//! the memory-bound expectation: a decode step streams every weight once however many rows it
//! carries, so `n` images in lockstep should cost little more than one.

use argen_core::decode::{drive, BestOfN, Config, Decoder, GuidanceMode, NoObserver, Vanilla};
use argen_core::{SamplerParams, SliceStorage};
use argen_cpu::{Cpu, Gpt};
use argen_model::safetensors::SafeTensors;
use argen_model::{host_capacity, Condition, GptConfig, Judge, ModelHost, ModelType};
use std::time::Instant;

mod common;

use common::{checkpoint, Dt};

/// Largest image the bench builds decoders for (32 × 32 tokens).
const MAX_TOKENS: usize = 1024;
/// Most candidates.
const MAX_N: usize = 16;

/// Scores every image 0 and judges nothing else: generation-only timing.
struct ZeroScore;

impl Judge for ZeroScore {
    fn check(&mut self, _: u32, _: u32, _: &[u32]) -> Result<bool, String> {
        Ok(true)
    }
    fn score(&mut self, _: u32, _: &[u32]) -> Result<f32, String> {
        Ok(0.0)
    }
    fn reformulate(&mut self, _: u32, _: u32, _: &[u32]) -> Result<Condition, String> {
        Err("the bench has no reformulator".into())
    }
}

fn config(tokens: u32, width: u32, vocab: usize, stream: u32) -> Config {
    Config {
        seed: 2026,
        stream,
        seq: stream,
        tokens,
        width,
        sampler: SamplerParams {
            temperature: 1.0,
            top_k: Some(1000.min(vocab as u32)),
            top_p: None,
            min_p: None,
        },
        guidance: GuidanceMode::TwoWay { scale: 4.0 },
    }
}

/// Runs `dec` on `gpt` for the sequences of `conds`; returns (seconds, tokens of each sequence).
fn run<D: Decoder>(
    dec: &mut D,
    gpt: &mut Gpt,
    conds: &[(Condition, Condition)],
    n: u32,
) -> (f64, Vec<Vec<u32>>) {
    let vocab = gpt.config().vocab_size;
    let mut storage = SliceStorage::new(vocab, dec.dist_rows_needed());
    let mut backend = storage.backend::<f32>().unwrap();
    let mut judge = ZeroScore;
    let mut host = ModelHost::new(gpt, None, Some(&mut judge), conds).unwrap();
    let t = Instant::now();
    drive(dec, &mut backend, &mut host, &mut NoObserver).unwrap();
    let secs = t.elapsed().as_secs_f64();
    (secs, (0..n).map(|s| dec.tokens(s).to_vec()).collect())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |key: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(key)?.strip_prefix('='))
    };
    let threads: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(2);
    let n: u32 = arg("n").and_then(|v| v.parse().ok()).unwrap_or(4);
    assert!((1..=MAX_N as u32).contains(&n), "n must lie in 1..=16");
    let dt = [Dt::Bf16, Dt::F16]
        .into_iter()
        .find(|d| args.iter().any(|a| a == d.name()))
        .unwrap_or(Dt::F32);
    let cpu = Cpu::new(threads).unwrap();
    let (cfg, st, name) = match arg("model") {
        Some(dir) => {
            let dir = std::path::Path::new(dir);
            let cfg = GptConfig::load(dir.join("gpt.json")).unwrap();
            let st = SafeTensors::open(dir.join("gpt.safetensors")).unwrap();
            (cfg, st, dir.display().to_string())
        }
        None => {
            let cfg = GptConfig::preset("GPT-B", ModelType::C2i, 256).unwrap();
            let st = SafeTensors::from_bytes("<bench>", checkpoint(&cfg, dt)).unwrap();
            (cfg, st, format!("GPT-B c2i random {}", dt.name()))
        }
    };
    let grid = cfg.grid() as u32;
    let tokens: u32 = arg("tokens")
        .and_then(|v| v.parse().ok())
        .unwrap_or(grid * grid)
        .min(grid * grid);
    assert!(
        tokens.is_multiple_of(grid) && tokens as usize <= MAX_TOKENS,
        "tokens must be whole rows"
    );
    let cap = host_capacity(&cfg, n as usize, 1);
    let mut gpt = Gpt::from_safetensors(&cpu, &cfg, &st, cap).unwrap();
    drop(st);
    let null = match cfg.model_type {
        ModelType::C2i => Condition::Class(None),
        ModelType::T2i => Condition::Caption {
            features: None,
            pad: 0,
        },
    };
    let cond = match cfg.model_type {
        ModelType::C2i => Condition::Class(Some(207)),
        ModelType::T2i => null.clone(),
    };
    let conds = vec![(cond, null); n as usize];

    // n × vanilla, one image after another.
    let mut solo_secs = 0.0;
    let mut solo_tokens = Vec::new();
    for c in 0..n {
        let mut dec =
            Box::new(Vanilla::<MAX_TOKENS>::new(config(tokens, grid, cfg.vocab_size, c)).unwrap());
        let (secs, mut t) = run(&mut *dec, &mut gpt, &conds, n);
        solo_secs += secs;
        solo_tokens.push(t.swap_remove(c as usize));
    }
    // Best-of-n in lockstep.
    let mut bon = Box::new(
        BestOfN::<Vanilla<MAX_TOKENS>, MAX_N>::new(
            config(tokens, grid, cfg.vocab_size, 0),
            n,
            Vanilla::new,
        )
        .unwrap(),
    );
    let (bon_secs, bon_tokens) = run(&mut *bon, &mut gpt, &conds, n);
    assert_eq!(
        bon_tokens, solo_tokens,
        "Best-of-n candidates differ from the solo runs"
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "model: {name}, {tokens} tokens per image, {threads} thread(s), load {}\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| n | {n} × vanilla | Best-of-{n} (lockstep) | ratio | per token step: solo / batched |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {n} | {:.2} s | {:.2} s | {:.2}× | {:.2} ms / {:.2} ms |",
        solo_secs,
        bon_secs,
        bon_secs / solo_secs,
        solo_secs / (n * tokens) as f64 * 1e3,
        bon_secs / tokens as f64 * 1e3,
    );
}
