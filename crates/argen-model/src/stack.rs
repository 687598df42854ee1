//! Llama blocks over a KV cache with sequence slots, pending (speculative) entries, tree
//! attention by parent indices, commit and rollback. Shared by the GPT and the drafter.
//!
//! # KV-cache contract
//! Each slot holds `committed` entries (indices `0..committed`) followed by `pending` entries.
//! A forward call appends its rows to their slot as pending entries. Pending entry `p` has a
//! parent: `-1` (the committed prefix) or an earlier pending entry `< p`. A row attends to the
//! committed prefix (from the slot's `start`, see below) plus its ancestors among the pending
//! entries and itself — tree attention. `Stack::commit` keeps a root-to-leaf path of pending
//! entries, compacted right after the prefix, and drops the rest; `Stack::rollback` drops all
//! pending entries. Because a row's K/V depend only on its ancestors, the kept entries are
//! exactly what a plain causal pass over the accepted tokens would have stored.
//!
//! `start` > 0 masks the first `start` entries as keys for every later row (the left padding of
//! a t2i caption, as the official `emb_masks`); a masked row still attends to itself.

use crate::compute::{AttnRow, Compute, KvDest, KvGeometry, Pos};
use crate::config::GptConfig;
use crate::error::{input_err, Result};
use crate::safetensors::SafeTensors;

/// Capacities fixed when a model is created; nothing is allocated per token afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Sequence slots (e.g. 2 per image with CFG).
    pub slots: usize,
    /// KV entries per slot, committed plus pending.
    pub seq: usize,
    /// Most rows (tokens over all slots) in one forward call.
    pub rows: usize,
    /// Most pending entries per slot between commits (tree size).
    pub pending: usize,
}

impl Capacity {
    /// Capacities for generating `batch` images of `cfg` with CFG (2 slots each) and trees of
    /// up to `tree` nodes.
    pub fn for_generation(cfg: &GptConfig, batch: usize, tree: usize) -> Capacity {
        let slots = 2 * batch.max(1);
        Capacity {
            slots,
            seq: cfg.cls_token_num + cfg.block_size + tree.max(1),
            rows: (slots * tree.max(1)).max(slots * cfg.cls_token_num),
            pending: tree.max(cfg.cls_token_num).max(1),
        }
    }
}

/// One forward request for one slot.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    /// Slot index.
    pub slot: usize,
    /// Input token ids.
    pub tokens: &'a [u32],
    /// Their positions.
    pub positions: &'a [Pos],
    /// Parent of each row among the slot's pending entries (see the module docs); `None`
    /// chains the rows after the slot's most recent pending entry (or the prefix).
    pub parents: Option<&'a [i32]>,
}

#[derive(Clone, Debug)]
struct Slot {
    start: usize,
    committed: usize,
    parents: Vec<i32>,
}

/// Weights of one Llama block.
pub(crate) struct Block<C: Compute> {
    attention_norm: C::Weight,
    wqkv: C::Weight,
    wo: C::Weight,
    ffn_norm: C::Weight,
    w1: C::Weight,
    w3: C::Weight,
    w2: C::Weight,
}

/// The names of block `i`'s tensors (prefix `layers.{i}.`), in the official layout.
pub(crate) fn block_tensor_names(i: usize) -> [String; 7] {
    [
        format!("layers.{i}.attention_norm.weight"),
        format!("layers.{i}.attention.wqkv.weight"),
        format!("layers.{i}.attention.wo.weight"),
        format!("layers.{i}.ffn_norm.weight"),
        format!("layers.{i}.feed_forward.w1.weight"),
        format!("layers.{i}.feed_forward.w3.weight"),
        format!("layers.{i}.feed_forward.w2.weight"),
    ]
}

impl<C: Compute> Block<C> {
    pub(crate) fn load(c: &C, st: &SafeTensors, cfg: &GptConfig, i: usize) -> Result<Self> {
        let n = block_tensor_names(i);
        let (d, f) = (cfg.dim, cfg.ffn_hidden());
        Ok(Block {
            attention_norm: c.weight(st.expect(&n[0], &[d])?)?,
            wqkv: c.weight(st.expect(&n[1], &[cfg.qkv_dim(), d])?)?,
            wo: c.weight(st.expect(&n[2], &[d, d])?)?,
            ffn_norm: c.weight(st.expect(&n[3], &[d])?)?,
            w1: c.weight(st.expect(&n[4], &[f, d])?)?,
            w3: c.weight(st.expect(&n[5], &[f, d])?)?,
            w2: c.weight(st.expect(&n[6], &[d, f])?)?,
        })
    }
}

/// Transformer blocks + KV cache + slot bookkeeping + preallocated workspace.
pub(crate) struct Stack<C: Compute> {
    pub(crate) geom: KvGeometry,
    pub(crate) cap: Capacity,
    blocks: Vec<Block<C>>,
    kv: C::Kv,
    slots: Vec<Slot>,
    freqs: C::Buf,
    grid: usize,
    dim: usize,
    ffn: usize,
    eps: f32,
    /// Residual stream `[rows, dim]`; holds the input embeddings before `run` and the last
    /// block's output after.
    pub(crate) x: C::Buf,
    h: C::Buf,
    qkv: C::Buf,
    att: C::Buf,
    tmp: C::Buf,
    g: C::Buf,
    u: C::Buf,
    rot: Vec<Pos>,
    dest: Vec<KvDest>,
    arows: Vec<AttnRow>,
    extra: Vec<u32>,
    chain: Vec<u32>,
    scratch_pending: Vec<usize>,
}

impl<C: Compute> Stack<C> {
    pub(crate) fn new(
        c: &C,
        cfg: &GptConfig,
        blocks: Vec<Block<C>>,
        cap: Capacity,
    ) -> Result<Self> {
        if cap.slots == 0 || cap.seq == 0 || cap.rows == 0 || cap.pending == 0 {
            return Err(input_err(
                "capacities (slots, seq, rows, pending) must be positive",
            ));
        }
        if cap.pending > cap.seq {
            return Err(input_err("pending capacity exceeds the sequence capacity"));
        }
        let geom = KvGeometry {
            layers: blocks.len(),
            slots: cap.slots,
            kv_heads: cfg.kv_heads(),
            heads: cfg.n_head,
            head_dim: cfg.head_dim(),
            capacity: cap.seq,
        };
        let grid = cfg.grid();
        let freqs = c.buf(grid * cfg.head_dim() / 2)?;
        let mut s = Stack {
            geom,
            cap,
            blocks,
            kv: c.kv(geom)?,
            slots: vec![
                Slot {
                    start: 0,
                    committed: 0,
                    parents: Vec::with_capacity(cap.pending),
                };
                cap.slots
            ],
            freqs,
            grid,
            dim: cfg.dim,
            ffn: cfg.ffn_hidden(),
            eps: cfg.norm_eps,
            x: c.buf(cap.rows * cfg.dim)?,
            h: c.buf(cap.rows * cfg.dim)?,
            qkv: c.buf(cap.rows * cfg.qkv_dim())?,
            att: c.buf(cap.rows * cfg.dim)?,
            tmp: c.buf(cap.rows * cfg.dim)?,
            g: c.buf(cap.rows * cfg.ffn_hidden())?,
            u: c.buf(cap.rows * cfg.ffn_hidden())?,
            rot: Vec::with_capacity(cap.rows),
            dest: Vec::with_capacity(cap.rows),
            arows: Vec::with_capacity(cap.rows),
            extra: Vec::with_capacity(cap.rows * cap.pending),
            chain: Vec::with_capacity(cap.pending),
            scratch_pending: vec![0; cap.slots],
        };
        let table = rope_table(grid, cfg.head_dim(), cfg.rope_base);
        c.upload(&mut s.freqs, 0, &table)?;
        Ok(s)
    }

    /// Validates `steps` without touching any state; returns the row count.
    pub(crate) fn check(&mut self, steps: &[Step<'_>]) -> Result<usize> {
        for (i, s) in self.slots.iter().enumerate() {
            self.scratch_pending[i] = s.parents.len();
        }
        let mut rows = 0usize;
        for (si, st) in steps.iter().enumerate() {
            let slot = self.slots.get(st.slot).ok_or_else(|| {
                input_err(format!(
                    "step {si}: slot {} out of range (capacity {} slots)",
                    st.slot, self.cap.slots
                ))
            })?;
            let n = st.tokens.len();
            if st.positions.len() != n {
                return Err(input_err(format!(
                    "step {si}: {} tokens but {} positions",
                    n,
                    st.positions.len()
                )));
            }
            if let Some(p) = st.parents {
                if p.len() != n {
                    return Err(input_err(format!(
                        "step {si}: {n} tokens but {} parents",
                        p.len()
                    )));
                }
            }
            let pend = self.scratch_pending[st.slot];
            for (j, pos) in st.positions.iter().enumerate() {
                if let Pos::Grid { row, col } = *pos {
                    if row as usize >= self.grid || col as usize >= self.grid {
                        return Err(input_err(format!(
                            "step {si}: position ({row}, {col}) outside the {0}x{0} token grid",
                            self.grid
                        )));
                    }
                }
                if let Some(p) = st.parents {
                    let own = (pend + j) as i64;
                    let par = p[j] as i64;
                    if par < -1 || par >= own {
                        return Err(input_err(format!(
                            "step {si}: parent {par} of row {j} must be -1 or a pending entry before it (< {own})"
                        )));
                    }
                }
            }
            let new_pend = pend + n;
            if new_pend > self.cap.pending {
                return Err(input_err(format!(
                    "slot {}: {new_pend} pending entries exceed the capacity {}",
                    st.slot, self.cap.pending
                )));
            }
            if slot.committed + new_pend > self.cap.seq {
                return Err(input_err(format!(
                    "slot {}: {} entries exceed the sequence capacity {}",
                    st.slot,
                    slot.committed + new_pend,
                    self.cap.seq
                )));
            }
            self.scratch_pending[st.slot] = new_pend;
            rows += n;
        }
        if rows > self.cap.rows {
            return Err(input_err(format!(
                "{rows} rows in one forward exceed the capacity {}",
                self.cap.rows
            )));
        }
        Ok(rows)
    }

    /// Appends the rows of `steps` (already checked) as pending entries and builds the
    /// attention plan.
    pub(crate) fn plan(&mut self, steps: &[Step<'_>]) {
        self.rot.clear();
        self.dest.clear();
        self.arows.clear();
        self.extra.clear();
        for st in steps {
            let slot = &mut self.slots[st.slot];
            for j in 0..st.tokens.len() {
                let own = slot.parents.len();
                let parent = match st.parents {
                    Some(p) => p[j],
                    None => own as i32 - 1,
                };
                slot.parents.push(parent);
                // Ancestors (including self), walked upwards then reversed to ascending.
                self.chain.clear();
                let mut a = own as i32;
                while a >= 0 {
                    self.chain.push(a as u32);
                    a = slot.parents[a as usize];
                }
                let extra_off = self.extra.len() as u32;
                for &p in self.chain.iter().rev() {
                    let idx = slot.committed + p as usize;
                    if idx >= slot.start || p as usize == own {
                        self.extra.push(idx as u32);
                    }
                }
                let extra_len = self.extra.len() as u32 - extra_off;
                let start = slot.start.min(slot.committed);
                self.arows.push(AttnRow {
                    slot: st.slot as u32,
                    start: start as u32,
                    end: slot.committed as u32,
                    extra_off,
                    extra_len,
                });
                self.rot.push(st.positions[j]);
                self.dest.push(KvDest {
                    slot: st.slot as u32,
                    index: (slot.committed + own) as u32,
                });
            }
        }
    }

    /// Runs the blocks over the `rows` rows in `self.x`.
    pub(crate) fn run(&mut self, c: &C, rows: usize) {
        let (d, f) = (self.dim, self.ffn);
        for (l, b) in self.blocks.iter().enumerate() {
            c.rms_norm(&self.x, rows, &b.attention_norm, self.eps, &mut self.h);
            c.linear(&self.h, rows, &b.wqkv, None, &mut self.qkv);
            c.rope_store(
                &mut self.qkv,
                &self.geom,
                &self.freqs,
                &self.rot,
                &mut self.kv,
                l,
                &self.dest,
            );
            c.attention(
                &self.qkv,
                &self.geom,
                &self.kv,
                l,
                &self.arows,
                &self.extra,
                &mut self.att,
            );
            c.linear(&self.att, rows, &b.wo, None, &mut self.tmp);
            c.add_assign(&mut self.x, &self.tmp, rows * d);
            c.rms_norm(&self.x, rows, &b.ffn_norm, self.eps, &mut self.h);
            c.linear(&self.h, rows, &b.w1, None, &mut self.g);
            c.linear(&self.h, rows, &b.w3, None, &mut self.u);
            c.silu_mul(&mut self.g, &self.u, rows * f);
            c.linear(&self.g, rows, &b.w2, None, &mut self.tmp);
            c.add_assign(&mut self.x, &self.tmp, rows * d);
        }
    }

    fn slot_mut(&mut self, slot: usize) -> Result<&mut Slot> {
        let n = self.cap.slots;
        self.slots
            .get_mut(slot)
            .ok_or_else(|| input_err(format!("slot {slot} out of range (capacity {n} slots)")))
    }

    /// Keeps the pending entries `keep` (a root-to-leaf path, in order) after the prefix.
    pub(crate) fn commit(&mut self, c: &C, slot: usize, keep: &[usize]) -> Result<()> {
        let geom = self.geom;
        let s = self.slot_mut(slot)?;
        let mut prev: i32 = -1;
        for (j, &k) in keep.iter().enumerate() {
            let par = *s.parents.get(k).ok_or_else(|| {
                input_err(format!(
                    "commit on slot {slot}: entry {k} is not pending ({} pending)",
                    s.parents.len()
                ))
            })?;
            if par != prev {
                return Err(input_err(format!(
                    "commit on slot {slot}: keep[{j}] = {k} has parent {par}, not {prev}: not a root-to-leaf path"
                )));
            }
            prev = k as i32;
        }
        let base = s.committed;
        // Compact runs: keep is strictly increasing, so moving left in order is safe.
        let mut j = 0;
        while j < keep.len() {
            let mut r = 1;
            while j + r < keep.len() && keep[j + r] == keep[j] + r {
                r += 1;
            }
            if keep[j] != j {
                c.kv_move(&mut self.kv, &geom, slot, base + keep[j], base + j, r);
            }
            j += r;
        }
        let s = &mut self.slots[slot];
        s.committed += keep.len();
        s.parents.clear();
        Ok(())
    }

    /// Drops all pending entries of `slot`.
    pub(crate) fn rollback(&mut self, slot: usize) -> Result<()> {
        self.slot_mut(slot)?.parents.clear();
        Ok(())
    }

    /// Empties `slot` and sets its key-mask start.
    pub(crate) fn reset(&mut self, slot: usize, start: usize) -> Result<()> {
        let s = self.slot_mut(slot)?;
        s.committed = 0;
        s.start = start;
        s.parents.clear();
        Ok(())
    }

    /// (committed, pending) entries of `slot`.
    pub(crate) fn len(&self, slot: usize) -> Option<(usize, usize)> {
        self.slots.get(slot).map(|s| (s.committed, s.parents.len()))
    }
}

/// The 2D RoPE table `[grid, head_dim/4, (cos, sin)]`: entry `(t, i)` is the angle
/// `t · base^(−2i/(head_dim/2))`, computed in f32 like the official
/// `precompute_freqs_cis_2d` (rows and columns share the frequencies).
///
/// No platform math library is used (its last bits differ between CPU architectures): with
/// `e = f32(2i) / f32(head_dim/2)` rounded to `f32`, `base^e` is
/// `f32(exp_f64(f64(e) · ln_f64(f64(base))))`, the frequency is `1 / base^e` and the angle
/// `f32(t) · freq` in `f32` (the official order), and cos / sin are
/// [`sin_cos_f64`](argen_core::detmath::sin_cos_f64) of the angle rounded to `f32` — the same
/// bits on every machine, and almost always the correctly rounded values PyTorch computes.
pub fn rope_table(grid: usize, head_dim: usize, base: f32) -> Vec<f32> {
    use argen_core::detmath::{exp_f64, ln_f64, sin_cos_f64};
    let half = head_dim / 2;
    let nf = half / 2;
    let ln_base = ln_f64(base as f64);
    let mut t = Vec::with_capacity(grid * nf * 2);
    for pos in 0..grid {
        for i in 0..nf {
            let e = (2 * i) as f32 / half as f32;
            let powered = exp_f64(e as f64 * ln_base) as f32;
            let freq = 1.0f32 / powered;
            let ang = pos as f32 * freq;
            let (sin, cos) = sin_cos_f64(ang as f64);
            t.push(cos as f32);
            t.push(sin as f32);
        }
    }
    t
}
