//! Vanilla autoregressive decoding: one target pass per token.
//!
//! After the condition prefill, the token at raster index `i` is drawn from the processed target
//! distribution `p_i` with key `(seed, stream, SAMPLE, i, 0)`; the next target run feeds it back.
//! `N` tokens take exactly `N` target passes (the prefill produces token 0) and `N + 1` actions.
//!
//! Vanilla is [`Restartable`]: GridAR stops it at a row boundary ([`Restartable::set_stop`]),
//! lets it continue from its KV cache, or restarts it from an anchor prefix
//! ([`Restartable::restart`]: one prefill of the condition and the prefix, whose answer draws the
//! token at index `prefix.len()` with that index's key — exactly what an uninterrupted run draws
//! there given the same prefix).

use super::{
    check_dist_rows, check_rows, unexpected, Action, Config, Decoder, GuidanceMode, Input, Prefill,
    Restartable, Stats, TargetRun,
};
use crate::backend::{Backend, ProcessJob, SampleJob};
use crate::error::{Error, Result};
use crate::rng::{Key, Purpose};

/// Vanilla decoding of up to `N` tokens.
#[derive(Clone, Debug)]
pub struct Vanilla<const N: usize> {
    cfg: Config,
    tokens: heapless::Vec<u32, N>,
    prefilled: bool,
    /// The input of the last target run is pending in the KV cache (keep it next time).
    pending: bool,
    /// Decoding stops (poll returns Done) when this many tokens are committed.
    stop: u32,
    /// The single input of the current target run.
    input: [Input; 1],
    stats: Stats,
}

const KEEP_ONE: [u32; 1] = [0];

impl<const N: usize> Vanilla<N> {
    /// A decoder for `cfg`.
    pub fn new(cfg: Config) -> Result<Self> {
        cfg.validate(N)?;
        Ok(Vanilla {
            cfg,
            tokens: heapless::Vec::new(),
            prefilled: false,
            pending: false,
            stop: cfg.tokens,
            input: [Input::root(0, 0)],
            stats: Stats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }
}

impl<const N: usize> Decoder for Vanilla<N> {
    fn poll(&self) -> Action<'_> {
        if !self.prefilled {
            return Action::Prefill(Prefill {
                seq: self.cfg.seq,
                tokens: &self.tokens,
                guidance: self.cfg.guidance,
            });
        }
        if self.tokens.len() >= self.stop as usize {
            return Action::Done;
        }
        Action::Target(TargetRun {
            seq: self.cfg.seq,
            keep: if self.pending { &KEEP_ONE } else { &[] },
            inputs: &self.input,
            guidance: self.cfg.guidance,
        })
    }

    fn handle_logits<B: Backend>(
        &mut self,
        backend: &mut B,
        logits: &B::Logits,
    ) -> Result<(), B::Error> {
        let action = self.poll();
        let rows = action
            .logits_rows()
            .ok_or_else(|| unexpected(action, "logits"))?;
        check_rows(backend, logits, rows)?;
        check_dist_rows(backend, 1)?;
        let index = self.tokens.len() as u32;
        backend.process(
            logits,
            &[ProcessJob {
                rows: self.cfg.guidance.rows(0),
                params: self.cfg.sampler,
                out: 0,
            }],
        )?;
        let key = Key::new(self.cfg.seed, self.cfg.stream, Purpose::SAMPLE, index);
        let mut token = [0u32];
        backend.sample(&[SampleJob { row: 0, key }], &mut token)?;
        // Capacity was checked against cfg.tokens in `new`, and Done stops before it is reached.
        let _ = self.tokens.push(token[0]);
        self.input = [Input::root(token[0], index)];
        self.pending = self.prefilled;
        self.stats.tokens += 1;
        self.stats.target_forwards += 1;
        self.stats.target_rows += rows as u32;
        if !self.prefilled {
            self.prefilled = true;
            self.stats.prefills += 1;
        }
        Ok(())
    }

    fn tokens(&self, seq: u32) -> &[u32] {
        if seq == self.cfg.seq {
            &self.tokens
        } else {
            &[]
        }
    }

    fn result_seq(&self) -> u32 {
        self.cfg.seq
    }

    fn stats(&self) -> Stats {
        self.stats
    }

    fn dist_rows_needed(&self) -> usize {
        1
    }

    fn action_bound(&self) -> u32 {
        self.cfg.tokens + 1
    }
}

impl<const N: usize> Restartable for Vanilla<N> {
    fn set_stop(&mut self, stop: u32) -> Result<()> {
        if stop as usize <= self.tokens.len() || stop > self.cfg.tokens {
            return Err(Error::InvalidParameter {
                name: "stop",
                reason: "must lie after the committed tokens and within the image",
            });
        }
        self.stop = stop;
        Ok(())
    }

    fn restart(&mut self, prefix: &[u32], guidance: GuidanceMode) -> Result<()> {
        if prefix.len() >= self.cfg.tokens as usize {
            return Err(Error::InvalidParameter {
                name: "prefix",
                reason: "a restart prefix must be shorter than the image",
            });
        }
        self.tokens.clear();
        // prefix.len() < cfg.tokens <= N.
        let _ = self.tokens.extend_from_slice(prefix);
        self.reguide(guidance)
    }

    fn reguide(&mut self, guidance: GuidanceMode) -> Result<()> {
        if self.tokens.len() >= self.cfg.tokens as usize {
            return Err(Error::InvalidParameter {
                name: "prefix",
                reason: "a finished decoder cannot restart",
            });
        }
        self.cfg.guidance = guidance;
        self.prefilled = false;
        self.pending = false;
        Ok(())
    }

    fn restart_actions(&self) -> u32 {
        // The prefill draws the token a target step would have drawn.
        0
    }
}
