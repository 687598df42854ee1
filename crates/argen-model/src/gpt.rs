//! The LlamaGen GPT (class- or text-conditional), design §6.
//!
//! `x₀ = embed(input)`; each block: `h = x + Attn(RMSNorm(x))`, `x = h + W2(silu(W1 n) ⊙ W3 n)`
//! with `n = RMSNorm(h)`; then `hidden = RMSNorm(x)` and `logits = output · hidden`.
//! Condition rows: c2i uses `cls_embedding.embedding_table[class]` (the row `num_classes` is the
//! null class); t2i uses `cap_proj` = fc2(gelu_tanh(fc1(caption))) with `uncond_embedding` as the
//! null caption. Condition rows get zero RoPE rotation. See [`crate::stack`] for the KV-cache
//! contract shared with the drafter.

use crate::compute::{Compute, Pos};
use crate::config::{GptConfig, ModelType};
use crate::error::{input_err, ModelError, Result};
use crate::safetensors::SafeTensors;
use crate::stack::{block_tensor_names, Block, Capacity, Stack, Step};
use std::collections::BTreeSet;
use std::path::Path;

enum Cond<C: Compute> {
    Class(C::Weight),
    Caption {
        fc1: C::Weight,
        fc2: C::Weight,
        uncond: Vec<f32>,
    },
}

/// A class-conditional prefill request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassPrefill {
    /// Slot to (re)fill.
    pub slot: usize,
    /// Class id, or `None` for the null class (the unconditional CFG row).
    pub class: Option<u32>,
}

/// A text-conditional prefill request.
#[derive(Clone, Copy, Debug)]
pub struct CaptionPrefill<'a> {
    /// Slot to (re)fill.
    pub slot: usize,
    /// Caption features `[cls_token_num, caption_dim]`, or `None` for the null caption.
    pub features: Option<&'a [f32]>,
    /// Number of leading padding positions (masked as keys, as the official `emb_masks` with
    /// left-padded captions).
    pub pad: usize,
}

/// The GPT with its KV cache.
pub struct Gpt<C: Compute> {
    c: C,
    cfg: GptConfig,
    pub(crate) stack: Stack<C>,
    pub(crate) tok_embeddings: C::Weight,
    cond: Cond<C>,
    norm: C::Weight,
    pub(crate) output: C::Weight,
    hid: C::Buf,
    last: C::Buf,
    logits: C::Buf,
    ids: Vec<u32>,
    cap_in: C::Buf,
    cap_h: C::Buf,
    gather: Vec<u32>,
    keep_all: Vec<usize>,
    prefill_pos: Vec<Pos>,
    prefill_tok: Vec<u32>,
}

impl<C: Compute> Gpt<C> {
    /// Loads `weights` (safetensors, official names) for `cfg`.
    pub fn load(c: &C, cfg: &GptConfig, weights: impl AsRef<Path>, cap: Capacity) -> Result<Self> {
        let st = SafeTensors::open(weights)?;
        Self::from_safetensors(c, cfg, &st, cap)
    }

    /// Loads a config JSON and its weights.
    pub fn load_with_config(
        c: &C,
        config: impl AsRef<Path>,
        weights: impl AsRef<Path>,
        cap: impl FnOnce(&GptConfig) -> Capacity,
    ) -> Result<Self> {
        let cfg = GptConfig::load(config)?;
        let cap = cap(&cfg);
        Self::load(c, &cfg, weights, cap)
    }

    /// Builds the model from an opened checkpoint. Every tensor is checked against `cfg`;
    /// a missing, mis-shaped, non-float or unexpected tensor is an error naming it.
    pub fn from_safetensors(
        c: &C,
        cfg: &GptConfig,
        st: &SafeTensors,
        cap: Capacity,
    ) -> Result<Self> {
        cfg.validate(st.path())?;
        let d = cfg.dim;
        let mut expected: BTreeSet<String> = BTreeSet::new();
        let cond = match cfg.model_type {
            ModelType::C2i => {
                let n = "cls_embedding.embedding_table.weight";
                expected.insert(n.into());
                Cond::Class(c.weight(st.expect(n, &[cfg.class_rows(), d])?)?)
            }
            ModelType::T2i => {
                let names = [
                    "cls_embedding.cap_proj.fc1.weight",
                    "cls_embedding.cap_proj.fc2.weight",
                    "cls_embedding.uncond_embedding",
                ];
                for n in names {
                    expected.insert(n.into());
                }
                let un = st.expect(names[2], &[cfg.cls_token_num, cfg.caption_dim])?;
                Cond::Caption {
                    fc1: c.weight(st.expect(names[0], &[d, cfg.caption_dim])?)?,
                    fc2: c.weight(st.expect(names[1], &[d, d])?)?,
                    uncond: un.to_f32().unwrap_or_default(),
                }
            }
        };
        for n in ["tok_embeddings.weight", "norm.weight", "output.weight"] {
            expected.insert(n.into());
        }
        let tok_embeddings = c.weight(st.expect("tok_embeddings.weight", &[cfg.vocab_size, d])?)?;
        let norm = c.weight(st.expect("norm.weight", &[d])?)?;
        let output = c.weight(st.expect("output.weight", &[cfg.vocab_size, d])?)?;
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            expected.extend(block_tensor_names(i));
            blocks.push(Block::load(c, st, cfg, i)?);
        }
        for name in st.names() {
            if !expected.contains(name) && !is_ignored(name) {
                return Err(ModelError::UnexpectedTensor {
                    path: st.path().to_path_buf(),
                    name: name.to_string(),
                });
            }
        }
        let stack = Stack::new(c, cfg, blocks, cap)?;
        let r = cap.rows;
        Ok(Gpt {
            c: c.clone(),
            cfg: cfg.clone(),
            stack,
            tok_embeddings,
            cond,
            norm,
            output,
            hid: c.buf(r * d)?,
            last: c.buf(r * d)?,
            logits: c.buf(r * cfg.vocab_size)?,
            ids: Vec::with_capacity(r),
            cap_in: c.buf(if cfg.model_type == ModelType::T2i {
                r * cfg.caption_dim
            } else {
                0
            })?,
            cap_h: c.buf(if cfg.model_type == ModelType::T2i {
                r * d
            } else {
                0
            })?,
            gather: Vec::with_capacity(r),
            keep_all: Vec::with_capacity(cfg.cls_token_num),
            prefill_pos: vec![Pos::Cond; cfg.cls_token_num],
            prefill_tok: vec![0; cfg.cls_token_num],
        })
    }

    /// The config.
    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    /// The capacities.
    pub fn capacity(&self) -> Capacity {
        self.stack.cap
    }

    /// `(committed, pending)` entries of `slot`.
    pub fn slot_len(&self, slot: usize) -> Option<(usize, usize)> {
        self.stack.len(slot)
    }

    /// Runs the image-token rows of `steps` (all slots batched: weights are read once), appending
    /// them to their slots as pending entries. Writes `[rows, vocab]` logits and, if asked,
    /// `[rows, dim]` hidden states (after the final norm: the drafter's input) in step order.
    pub fn forward(
        &mut self,
        steps: &[Step<'_>],
        logits: &mut [f32],
        hidden: Option<&mut [f32]>,
    ) -> Result<()> {
        self.forward_to(steps, Some(logits), hidden)
    }

    /// [`Gpt::forward`] that leaves the `[rows, vocab]` logits in the model's device buffer
    /// (returned; valid until the next call that computes logits) instead of downloading them.
    /// Hidden states are still downloaded when asked for. Ends with [`Compute::status`], so a
    /// failed device is reported here.
    pub fn forward_device(
        &mut self,
        steps: &[Step<'_>],
        hidden: Option<&mut [f32]>,
    ) -> Result<&C::Buf> {
        self.forward_to(steps, None, hidden)?;
        self.c.status()?;
        Ok(&self.logits)
    }

    /// The compute backend the model runs on.
    pub fn compute(&self) -> &C {
        &self.c
    }

    fn forward_to(
        &mut self,
        steps: &[Step<'_>],
        logits: Option<&mut [f32]>,
        hidden: Option<&mut [f32]>,
    ) -> Result<()> {
        let rows = self.stack.check(steps)?;
        let (v, d) = (self.cfg.vocab_size, self.cfg.dim);
        if let Some(l) = logits.as_deref() {
            check_out("logits", l.len(), rows * v)?;
        }
        if let Some(h) = hidden.as_deref() {
            check_out("hidden", h.len(), rows * d)?;
        }
        self.ids.clear();
        for (si, st) in steps.iter().enumerate() {
            for &t in st.tokens {
                if t as usize >= v {
                    return Err(input_err(format!(
                        "step {si}: token id {t} out of range (vocab {v})"
                    )));
                }
                self.ids.push(t);
            }
        }
        self.stack.plan(steps);
        self.c
            .embed(&self.tok_embeddings, d, &self.ids, &mut self.stack.x);
        self.stack.run(&self.c, rows);
        self.c.rms_norm(
            &self.stack.x,
            rows,
            &self.norm,
            self.cfg.norm_eps,
            &mut self.hid,
        );
        self.c
            .linear(&self.hid, rows, &self.output, None, &mut self.logits);
        if let Some(l) = logits {
            self.c.download(&self.logits, 0, &mut l[..rows * v])?;
        }
        if let Some(h) = hidden {
            self.c.download(&self.hid, 0, &mut h[..rows * d])?;
        }
        Ok(())
    }

    /// Keeps the pending entries `keep` of `slot` (a root-to-leaf path, in order), compacted
    /// right after the committed prefix; drops the other pending entries.
    pub fn commit(&mut self, slot: usize, keep: &[usize]) -> Result<()> {
        self.stack.commit(&self.c, slot, keep)
    }

    /// Drops all pending entries of `slot`.
    pub fn rollback(&mut self, slot: usize) -> Result<()> {
        self.stack.rollback(slot)
    }

    /// Empties `slot`.
    pub fn reset(&mut self, slot: usize) -> Result<()> {
        self.stack.reset(slot, 0)
    }

    /// Class-conditional prefill: empties each slot, runs its condition token and commits it.
    /// Writes the logits of the first image token, `[reqs, vocab]`, and optionally the hidden
    /// states of the last condition row, `[reqs, dim]`.
    pub fn prefill_class(
        &mut self,
        reqs: &[ClassPrefill],
        logits: &mut [f32],
        hidden: Option<&mut [f32]>,
    ) -> Result<()> {
        self.prefill_class_to(reqs, Some(logits), hidden)
    }

    /// [`Gpt::prefill_class`] that leaves the `[reqs, vocab]` logits on the device (as
    /// [`Gpt::forward_device`]).
    pub fn prefill_class_device(
        &mut self,
        reqs: &[ClassPrefill],
        hidden: Option<&mut [f32]>,
    ) -> Result<&C::Buf> {
        self.prefill_class_to(reqs, None, hidden)?;
        self.c.status()?;
        Ok(&self.logits)
    }

    fn prefill_class_to(
        &mut self,
        reqs: &[ClassPrefill],
        logits: Option<&mut [f32]>,
        hidden: Option<&mut [f32]>,
    ) -> Result<()> {
        let table_rows = self.cfg.class_rows();
        if !matches!(self.cond, Cond::Class(_)) {
            return Err(input_err("prefill_class on a text-conditional (t2i) model"));
        }
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        for r in reqs {
            let id = match r.class {
                Some(k) if (k as usize) < self.cfg.num_classes => k,
                Some(k) => {
                    self.ids = ids;
                    return Err(input_err(format!(
                        "class id {k} out of range (num_classes {})",
                        self.cfg.num_classes
                    )));
                }
                None if table_rows > self.cfg.num_classes => self.cfg.num_classes as u32,
                None => {
                    self.ids = ids;
                    return Err(input_err(
                        "the model has no null class row (class_dropout_prob = 0), so no CFG",
                    ));
                }
            };
            ids.push(id);
        }
        let slots: Vec<(usize, usize)> = reqs.iter().map(|r| (r.slot, 0)).collect();
        let res = self.prefill_common(&slots, CondIn::Class(&ids), logits, hidden);
        self.ids = ids;
        res
    }

    /// Text-conditional prefill (see [`CaptionPrefill`]); outputs as [`Gpt::prefill_class`].
    pub fn prefill_caption(
        &mut self,
        reqs: &[CaptionPrefill<'_>],
        logits: &mut [f32],
        hidden: Option<&mut [f32]>,
    ) -> Result<()> {
        self.prefill_caption_to(reqs, Some(logits), hidden)
    }

    /// [`Gpt::prefill_caption`] that leaves the `[reqs, vocab]` logits on the device (as
    /// [`Gpt::forward_device`]).
    pub fn prefill_caption_device(
        &mut self,
        reqs: &[CaptionPrefill<'_>],
        hidden: Option<&mut [f32]>,
    ) -> Result<&C::Buf> {
        self.prefill_caption_to(reqs, None, hidden)?;
        self.c.status()?;
        Ok(&self.logits)
    }

    fn prefill_caption_to(
        &mut self,
        reqs: &[CaptionPrefill<'_>],
        logits: Option<&mut [f32]>,
        hidden: Option<&mut [f32]>,
    ) -> Result<()> {
        let (t, cd) = (self.cfg.cls_token_num, self.cfg.caption_dim);
        if !matches!(self.cond, Cond::Caption { .. }) {
            return Err(input_err(
                "prefill_caption on a class-conditional (c2i) model",
            ));
        }
        for (i, r) in reqs.iter().enumerate() {
            if let Some(f) = r.features {
                if f.len() != t * cd {
                    return Err(input_err(format!(
                        "caption {i}: {} features, expected {t}x{cd}",
                        f.len()
                    )));
                }
            }
            if r.pad >= t {
                return Err(input_err(format!(
                    "caption {i}: pad {} must be < {t}",
                    r.pad
                )));
            }
        }
        let slots: Vec<(usize, usize)> = reqs.iter().map(|r| (r.slot, r.pad)).collect();
        self.prefill_common(&slots, CondIn::Caption(reqs), logits, hidden)
    }

    fn prefill_common(
        &mut self,
        slots: &[(usize, usize)],
        cond: CondIn<'_>,
        logits: Option<&mut [f32]>,
        hidden: Option<&mut [f32]>,
    ) -> Result<()> {
        let t = self.cfg.cls_token_num;
        let (v, d) = (self.cfg.vocab_size, self.cfg.dim);
        let n = slots.len();
        let cap = self.stack.cap;
        for (i, &(s, _)) in slots.iter().enumerate() {
            if s >= cap.slots {
                return Err(input_err(format!(
                    "prefill {i}: slot {s} out of range (capacity {} slots)",
                    cap.slots
                )));
            }
            if slots[..i].iter().any(|&(o, _)| o == s) {
                return Err(input_err(format!("prefill {i}: slot {s} appears twice")));
            }
        }
        if t > cap.pending || t > cap.seq || n * t > cap.rows {
            return Err(input_err(format!(
                "prefill of {n} slots x {t} condition tokens exceeds the capacities {cap:?}"
            )));
        }
        if let Some(l) = logits.as_deref() {
            check_out("logits", l.len(), n * v)?;
        }
        if let Some(h) = hidden.as_deref() {
            check_out("hidden", h.len(), n * d)?;
        }
        for &(s, pad) in slots {
            self.stack.reset(s, pad)?;
        }
        let steps: Vec<Step<'_>> = slots
            .iter()
            .map(|&(s, _)| Step {
                slot: s,
                tokens: &self.prefill_tok,
                positions: &self.prefill_pos,
                parents: None,
            })
            .collect();
        let rows = self.stack.check(&steps)?;
        self.stack.plan(&steps);
        drop(steps);
        match (&self.cond, cond) {
            (Cond::Class(table), CondIn::Class(ids)) => {
                self.c.embed(table, d, ids, &mut self.stack.x);
            }
            (Cond::Caption { fc1, fc2, uncond }, CondIn::Caption(reqs)) => {
                let cd = self.cfg.caption_dim;
                for (i, r) in reqs.iter().enumerate() {
                    let f = r.features.unwrap_or(uncond);
                    self.c.upload(&mut self.cap_in, i * t * cd, f)?;
                }
                self.c
                    .linear(&self.cap_in, rows, fc1, None, &mut self.cap_h);
                self.c.gelu_tanh(&mut self.cap_h, rows * d);
                self.c
                    .linear(&self.cap_h, rows, fc2, None, &mut self.stack.x);
            }
            _ => return Err(input_err("condition kind does not match the model type")),
        }
        self.stack.run(&self.c, rows);
        self.gather.clear();
        self.gather.extend((0..n).map(|i| ((i + 1) * t - 1) as u32));
        self.c
            .gather_rows(&self.stack.x, d, &self.gather, &mut self.last);
        self.c
            .rms_norm(&self.last, n, &self.norm, self.cfg.norm_eps, &mut self.hid);
        self.c
            .linear(&self.hid, n, &self.output, None, &mut self.logits);
        if let Some(l) = logits {
            self.c.download(&self.logits, 0, &mut l[..n * v])?;
        }
        if let Some(h) = hidden {
            self.c.download(&self.hid, 0, &mut h[..n * d])?;
        }
        self.keep_all.clear();
        self.keep_all.extend(0..t);
        for &(s, _) in slots {
            self.stack.commit(&self.c, s, &self.keep_all)?;
        }
        Ok(())
    }
}

enum CondIn<'a> {
    Class(&'a [u32]),
    Caption(&'a [CaptionPrefill<'a>]),
}

fn check_out(what: &str, len: usize, need: usize) -> Result<()> {
    if len < need {
        return Err(input_err(format!(
            "{what} buffer holds {len} floats, needs {need}"
        )));
    }
    Ok(())
}

/// Tensors an official checkpoint may carry that inference does not use.
fn is_ignored(name: &str) -> bool {
    name.contains(".kv_cache.") || name == "freqs_cis" || name == "causal_mask"
}
