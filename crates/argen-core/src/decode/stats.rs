//! Accounting of a decoding run: the numbers every method is compared by.

/// Longest accepted draft length tracked individually by [`Stats::accepted_hist`].
pub const HIST_LEN: usize = 32;

/// Counters of one decoding run (all sequences of the decoder together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Image tokens committed.
    pub tokens: u32,
    /// Target forward passes, prefills included.
    pub target_forwards: u32,
    /// Target logits rows computed (inputs × guidance variants; CFG doubles).
    pub target_rows: u32,
    /// Of which prefills.
    pub prefills: u32,
    /// Drafter forward passes.
    pub draft_forwards: u32,
    /// Drafter logits rows computed (inputs × guidance variants).
    pub draft_rows: u32,
    /// Verification steps (target passes that tested drafts).
    pub verify_steps: u32,
    /// Steps that committed drafted tokens without running the target (VVS).
    pub skipped_steps: u32,
    /// Partial-canvas verifier calls (sequences judged).
    pub verifier_calls: u32,
    /// Final scorer calls (sequences scored).
    pub scorer_calls: u32,
    /// Prompt reformulations.
    pub reformulations: u32,
    /// `accepted_hist[a]`: verification steps that accepted `a` drafted tokens (the last bucket
    /// collects `a >= HIST_LEN − 1`).
    pub accepted_hist: [u32; HIST_LEN],
    /// `draft_depth_hist[d]`: steps of a speculative decoder that drafted to depth `d` (0: a
    /// plain target step; the last bucket collects `d >= HIST_LEN − 1`) — what a fixed shape
    /// or the cost-aware policy ([`super::auto_draft`]) chose. Not part of trace footers (each
    /// trace step records its run's inputs instead).
    pub draft_depth_hist: [u32; HIST_LEN],
}

impl Stats {
    /// Tokens per target forward (TPF).
    pub fn tokens_per_target_forward(&self) -> f64 {
        if self.target_forwards == 0 {
            0.0
        } else {
            self.tokens as f64 / self.target_forwards as f64
        }
    }

    /// Mean accepted draft length per verification step, not counting the token the target adds.
    pub fn mean_accepted_length(&self) -> f64 {
        let steps: u32 = self.accepted_hist.iter().sum();
        if steps == 0 {
            return 0.0;
        }
        let total: u64 = self
            .accepted_hist
            .iter()
            .enumerate()
            .map(|(a, &n)| a as u64 * n as u64)
            .sum();
        total as f64 / steps as f64
    }

    /// Records a verification step that accepted `accepted` drafted tokens.
    pub fn record_accepted(&mut self, accepted: usize) {
        self.accepted_hist[accepted.min(HIST_LEN - 1)] += 1;
        self.verify_steps += 1;
    }

    /// Records a drafting step of depth `depth` (0: a plain target step).
    pub fn record_depth(&mut self, depth: u32) {
        self.draft_depth_hist[(depth as usize).min(HIST_LEN - 1)] += 1;
    }

    /// Mean draft depth per step of a speculative decoder (plain target steps count 0).
    pub fn mean_draft_depth(&self) -> f64 {
        let steps: u32 = self.draft_depth_hist.iter().sum();
        if steps == 0 {
            return 0.0;
        }
        let total: u64 = self
            .draft_depth_hist
            .iter()
            .enumerate()
            .map(|(d, &n)| d as u64 * n as u64)
            .sum();
        total as f64 / steps as f64
    }

    /// Adds another run's counters (used by test-time-scaling decoders).
    pub fn add(&mut self, other: &Stats) {
        self.tokens += other.tokens;
        self.target_forwards += other.target_forwards;
        self.target_rows += other.target_rows;
        self.prefills += other.prefills;
        self.draft_forwards += other.draft_forwards;
        self.draft_rows += other.draft_rows;
        self.verify_steps += other.verify_steps;
        self.skipped_steps += other.skipped_steps;
        self.verifier_calls += other.verifier_calls;
        self.scorer_calls += other.scorer_calls;
        self.reformulations += other.reformulations;
        for (a, b) in self
            .accepted_hist
            .iter_mut()
            .zip(other.accepted_hist.iter())
        {
            *a += b;
        }
        for (a, b) in self
            .draft_depth_hist
            .iter_mut()
            .zip(other.draft_depth_hist.iter())
        {
            *a += b;
        }
    }
}
