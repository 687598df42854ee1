//! Attention over the KV cache: the 12 layers' attention of one GPT-B decode step (a CFG pair,
//! 12 heads of 64, keys `0 .. ctx`) through `Compute::attention`, from a cold cache.
//!
//! `cargo bench -p argen-cpu --bench attention -- [threads] [ctx=C,…] [warm]` prints, per
//! context length (default 8, 32, 96, 160, 256), the fastest and the median of 30 timed calls
//! (wall clock) and the rate at which they read the keys and values (`2 · ctx · 64` floats per
//! row and head). Before each call a 256 MiB buffer is written so that the cache (48 MiB of
//! keys and values at capacity 256) comes from memory as in a decode step, whose weights pass
//! through the caches in between; `warm` skips that (the cache then partly stays in L2/L3).
//! `ARGEN_GEMM_TUNING=attn_prefetch=0` turns the attention's prefetches off for comparison
//! (`argen_cpu::attn`).
//!
//! The cache is filled through `rope_store` with random rows at condition positions (zero
//! cos and sin, so keys and queries are zero and the softmax uniform): the time does not depend
//! on the values, only on the bytes read.

use argen_cpu::Cpu;
use argen_model::compute::{AttnRow, Compute, KvDest, KvGeometry, Pos};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1);
    let ctxs: Vec<usize> = args
        .iter()
        .find_map(|a| a.strip_prefix("ctx="))
        .map(|l| l.split(',').filter_map(|c| c.parse().ok()).collect())
        .unwrap_or_else(|| vec![8, 32, 96, 160, 256]);
    let warm = args.iter().any(|a| a == "warm");
    let cap = ctxs.iter().copied().max().unwrap_or(1).max(1);
    let g = KvGeometry {
        layers: 12,
        slots: 2,
        kv_heads: 12,
        heads: 12,
        head_dim: 64,
        capacity: cap,
    };
    let cpu = Cpu::new(threads).expect("threads");
    let stride = (g.heads + 2 * g.kv_heads) * g.head_dim;
    let mut kv = cpu.kv(g).expect("kv cache");
    // SplitMix64 values in [-1, 1).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let freqs = vec![0f32; g.head_dim];
    for slot in 0..g.slots {
        for layer in 0..g.layers {
            let mut qkv: Vec<f32> = (0..cap * stride).map(|_| rnd()).collect();
            let rot = vec![Pos::Cond; cap];
            let dest: Vec<KvDest> = (0..cap as u32)
                .map(|index| KvDest {
                    slot: slot as u32,
                    index,
                })
                .collect();
            cpu.rope_store(&mut qkv, &g, &freqs, &rot, &mut kv, layer, &dest);
        }
    }
    let qkv: Vec<f32> = (0..2 * stride).map(|_| rnd()).collect();
    let mut out = vec![0f32; 2 * g.heads * g.head_dim];
    let mut flush = vec![0u8; 256 << 20];
    println!(
        "threads {threads}; GPT-B attention, 12 layers × 2 CFG rows × 12 heads of 64; {}",
        if warm {
            "warm (no flush between calls)"
        } else {
            "cold (256 MiB written before each call)"
        }
    );
    println!();
    println!("| context | fastest | median | K+V read (fastest) |");
    println!("|---|---|---|---|");
    for &ctx in &ctxs {
        let rows: Vec<AttnRow> = (0..2)
            .map(|slot| AttnRow {
                slot,
                start: 0,
                end: ctx as u32,
                extra_off: 0,
                extra_len: 0,
            })
            .collect();
        let mut times = Vec::new();
        for _ in 0..30 {
            if !warm {
                for b in flush.iter_mut().step_by(64) {
                    *b = b.wrapping_add(1);
                }
                black_box(&flush);
            }
            let t = Instant::now();
            for layer in 0..g.layers {
                cpu.attention(&qkv, &g, &kv, layer, &rows, &[], &mut out);
            }
            black_box(&out);
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let bytes = (2 * 2 * ctx * g.head_dim * 4 * g.heads * g.layers) as f64;
        println!(
            "| {ctx} | {:.3} ms | {:.3} ms | {:.1} GB/s |",
            times[0] * 1e3,
            times[times.len() / 2] * 1e3,
            bytes / times[0] / 1e9
        );
    }
}
