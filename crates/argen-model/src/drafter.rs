//! EAGLE-style drafter (Li et al., "EAGLE: Speculative Sampling Requires Rethinking Feature
//! Uncertainty", ICML 2024), as LANTERN (Jang et al., ICLR 2025) and VVS use it with LlamaGen.
//!
//! For input token `x` and a target hidden state `f` (the target's last hidden state after its
//! final norm, [`crate::Gpt::forward`]'s `hidden` output):
//! `h = Block(fc([tok_embeddings(x); f]))`, `logits = output(h)`,
//! where `tok_embeddings` and `output` are the target's (frozen) and `Block` is one Llama block
//! with the target's 2D RoPE. `h` is returned so the host can feed it back as the feature of
//! deeper tree levels. Checkpoint names: `fc.weight` `[dim, 2·dim]`, optional `fc.bias`, and
//! `layers.0.*` as in a GPT block. The drafter has its own KV cache with the same slot /
//! pending / commit / rollback contract as the GPT ([`crate::stack`]).

use crate::compute::Compute;
use crate::config::GptConfig;
use crate::error::{input_err, ModelError, Result};
use crate::gpt::Gpt;
use crate::safetensors::SafeTensors;
use crate::stack::{block_tensor_names, Block, Capacity, Stack, Step};
use std::path::Path;

/// The drafter with its KV cache.
pub struct Drafter<C: Compute> {
    c: C,
    cfg: GptConfig,
    stack: Stack<C>,
    fc_emb: C::Weight,
    fc_hid: C::Weight,
    fc_bias: Option<C::Weight>,
    emb: C::Buf,
    hin: C::Buf,
    tmp: C::Buf,
    logits: C::Buf,
    ids: Vec<u32>,
}

impl<C: Compute> Drafter<C> {
    /// Loads drafter weights for a target of config `cfg`.
    pub fn load(c: &C, cfg: &GptConfig, weights: impl AsRef<Path>, cap: Capacity) -> Result<Self> {
        let st = SafeTensors::open(weights)?;
        Self::from_safetensors(c, cfg, &st, cap)
    }

    /// Builds the drafter from an opened checkpoint (every tensor checked, as for the GPT).
    pub fn from_safetensors(
        c: &C,
        cfg: &GptConfig,
        st: &SafeTensors,
        cap: Capacity,
    ) -> Result<Self> {
        cfg.validate(st.path())?;
        let d = cfg.dim;
        let fc = st.expect("fc.weight", &[d, 2 * d])?;
        let fc = fc.to_f32().unwrap_or_default();
        let mut left = Vec::with_capacity(d * d);
        let mut right = Vec::with_capacity(d * d);
        for r in 0..d {
            left.extend_from_slice(&fc[r * 2 * d..r * 2 * d + d]);
            right.extend_from_slice(&fc[r * 2 * d + d..(r + 1) * 2 * d]);
        }
        let fc_bias = match st.get("fc.bias") {
            Some(_) => Some(c.weight(st.expect("fc.bias", &[d])?)?),
            None => None,
        };
        let block = Block::load(c, st, cfg, 0)?;
        let names = block_tensor_names(0);
        for name in st.names() {
            if name != "fc.weight" && name != "fc.bias" && !names.iter().any(|n| n == name) {
                return Err(ModelError::UnexpectedTensor {
                    path: st.path().to_path_buf(),
                    name: name.to_string(),
                });
            }
        }
        let stack = Stack::new(c, cfg, vec![block], cap)?;
        let r = cap.rows;
        Ok(Drafter {
            c: c.clone(),
            cfg: cfg.clone(),
            stack,
            fc_emb: c.weight_f32(&left, d, d)?,
            fc_hid: c.weight_f32(&right, d, d)?,
            fc_bias,
            emb: c.buf(r * d)?,
            hin: c.buf(r * d)?,
            tmp: c.buf(r * d)?,
            logits: c.buf(r * cfg.vocab_size)?,
            ids: Vec::with_capacity(r),
        })
    }

    /// `(committed, pending)` entries of `slot`.
    pub fn slot_len(&self, slot: usize) -> Option<(usize, usize)> {
        self.stack.len(slot)
    }

    /// Drafts: rows as in [`Gpt::forward`]; `features` holds one target hidden state (or a
    /// drafter hidden state, for deeper tree levels) per row, `[rows, dim]`. Writes `[rows,
    /// vocab]` logits and optionally the drafter hidden states `[rows, dim]`.
    pub fn forward(
        &mut self,
        target: &Gpt<C>,
        steps: &[Step<'_>],
        features: &[f32],
        logits: &mut [f32],
        hidden: Option<&mut [f32]>,
    ) -> Result<()> {
        self.forward_to(target, steps, features, Some(logits), hidden)
    }

    /// [`Drafter::forward`] that leaves the `[rows, vocab]` logits in the drafter's device
    /// buffer (returned; valid until the next forward) instead of downloading them; as
    /// [`Gpt::forward_device`].
    pub fn forward_device(
        &mut self,
        target: &Gpt<C>,
        steps: &[Step<'_>],
        features: &[f32],
        hidden: Option<&mut [f32]>,
    ) -> Result<&C::Buf> {
        self.forward_to(target, steps, features, None, hidden)?;
        self.c.status()?;
        Ok(&self.logits)
    }

    fn forward_to(
        &mut self,
        target: &Gpt<C>,
        steps: &[Step<'_>],
        features: &[f32],
        logits: Option<&mut [f32]>,
        hidden: Option<&mut [f32]>,
    ) -> Result<()> {
        if target.config() != &self.cfg {
            return Err(input_err("drafter and target configs differ"));
        }
        let rows = self.stack.check(steps)?;
        let (v, d) = (self.cfg.vocab_size, self.cfg.dim);
        if features.len() != rows * d {
            return Err(input_err(format!(
                "features hold {} floats, expected {rows} rows x {d}",
                features.len()
            )));
        }
        if let Some(l) = logits.as_deref() {
            if l.len() < rows * v {
                return Err(input_err(format!(
                    "logits buffer holds {} floats, needs {}",
                    l.len(),
                    rows * v
                )));
            }
        }
        if let Some(h) = hidden.as_deref() {
            if h.len() < rows * d {
                return Err(input_err(format!(
                    "hidden buffer holds {} floats, needs {}",
                    h.len(),
                    rows * d
                )));
            }
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
        let c = &self.c;
        c.embed(&target.tok_embeddings, d, &self.ids, &mut self.emb);
        c.upload(&mut self.hin, 0, features)?;
        c.linear(
            &self.emb,
            rows,
            &self.fc_emb,
            self.fc_bias.as_ref(),
            &mut self.stack.x,
        );
        c.linear(&self.hin, rows, &self.fc_hid, None, &mut self.tmp);
        c.add_assign(&mut self.stack.x, &self.tmp, rows * d);
        self.stack.run(c, rows);
        c.linear(&self.stack.x, rows, &target.output, None, &mut self.logits);
        if let Some(l) = logits {
            c.download(&self.logits, 0, &mut l[..rows * v])?;
        }
        if let Some(h) = hidden {
            c.download(&self.stack.x, 0, &mut h[..rows * d])?;
        }
        Ok(())
    }

    /// Keeps a root-to-leaf path of pending entries (see [`Gpt::commit`]).
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
}
