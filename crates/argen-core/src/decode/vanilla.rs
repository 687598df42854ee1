//! Vanilla autoregressive decoding: one target pass per token.
//!
//! After the condition prefill, the token at raster index `i` is drawn from the processed target
//! distribution `p_i` with key `(seed, stream, SAMPLE, i, 0)`; the next target run feeds it back.
//! `N` tokens take exactly `N` target passes (the prefill produces token 0) and `N + 1` actions.

use super::{
    check_dist_rows, check_rows, unexpected, Action, Config, Decoder, Input, Prefill, Stats,
    TargetRun,
};
use crate::backend::{Backend, ProcessJob, SampleJob};
use crate::error::Result;
use crate::rng::{Key, Purpose};

/// Vanilla decoding of up to `N` tokens.
#[derive(Clone, Debug)]
pub struct Vanilla<const N: usize> {
    cfg: Config,
    tokens: heapless::Vec<u32, N>,
    prefilled: bool,
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
                tokens: &[],
                guidance: self.cfg.guidance,
            });
        }
        if self.tokens.len() == self.cfg.tokens as usize {
            return Action::Done;
        }
        Action::Target(TargetRun {
            seq: self.cfg.seq,
            keep: if self.tokens.len() > 1 {
                &KEEP_ONE
            } else {
                &[]
            },
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
