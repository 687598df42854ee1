//! A synthetic, image-like reference model and a strict host for the decoding protocol.
//!
//! * **Vocabulary**: `V = 64` tokens with 2-D latent codes on a jittered 8 × 8 lattice, so every
//!   token has close latent neighbours (what LANTERN exploits).
//! * **Target**: at raster index `i` of a `W`-wide grid the distribution favours tokens whose code
//!   is near `μ = 0.4·z(left) + 0.4·z(above) + 0.2·anchor`, where the anchor depends on the
//!   sequence's class (conditional rows), is the lattice centre (unconditional rows), or is shifted
//!   (reformulated rows); plus a pseudo-random term hashed from the last two tokens. Logits are a
//!   pure function of the context, so any correct decoder sees the same numbers.
//! * **Drafter**: the same structure with a different temperature and hash — imperfect, so
//!   acceptance rates are non-trivial.
//! * **Host**: executes the protocol and *checks* it: raster indices equal context lengths, parents
//!   precede children, keep lists are contiguous, feature references point at the input that
//!   predicted the token, three-way CFG only after a reformulation, check / reformulate canvases
//!   of `rows · W` tokens. Any violation panics, failing the test. It logs checks,
//!   reformulations and prefills, and takes scripted verdicts (`check_script`) for GridAR tests.
//!   With [`SyntheticHost::stale_features`] set (VVS), a drafter feature may instead come from an
//!   *older* raster index than the one that predicted the token, but it must exist.
//! * **Features**: the host keeps its EAGLE feature bookkeeping in the core's [`FeatureStore`],
//!   with a buffer whose rows are *tags* (what produced the row: the condition, a target input's
//!   index and token, a draft entry's index and token, and the variant) instead of hidden states.
//!   Every drafter input's feature is resolved through the store, for every variant, and the tag
//!   must be the state that predicted the input's token — so the store's row moves are checked
//!   end to end.

use argen_core::backend::ROOT;
use argen_core::decode::{
    Action, Answer, FeatureRef, FeatureStore, Group, GuidanceMode, Host, Model,
};
use argen_core::{Error, SliceBackend, SupportList};

/// Vocabulary of the synthetic model.
pub const V: usize = 64;

fn hash(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn unit(x: u64) -> f32 {
    (hash(x) >> 40) as f32 / (1u64 << 24) as f32
}

/// The synthetic world: codebook and model parameters.
#[derive(Clone, Debug)]
pub struct World {
    /// Latent code of each token (x, y).
    pub codes: Vec<[f32; 2]>,
    /// Grid width.
    pub width: u32,
    /// Target temperature of the distance term.
    pub target_tau: f32,
    /// Drafter temperature of the distance term.
    pub draft_tau: f32,
    /// Weight of the hashed noise term in target logits.
    pub noise: f32,
}

impl World {
    /// The standard world for a grid `width` wide.
    pub fn new(width: u32) -> Self {
        let codes = (0..V as u64)
            .map(|t| {
                let (r, c) = ((t / 8) as f32, (t % 8) as f32);
                [
                    (c + 0.3 * unit(t * 2 + 1)) / 8.0,
                    (r + 0.3 * unit(t * 2 + 2)) / 8.0,
                ]
            })
            .collect();
        World {
            codes,
            width,
            target_tau: 0.02,
            draft_tau: 0.03,
            noise: 1.2,
        }
    }

    /// Codebook as a flat row-major `V × 2` slice.
    pub fn codebook(&self) -> Vec<f32> {
        self.codes.iter().flat_map(|c| c.iter().copied()).collect()
    }

    fn anchor(&self, class: u32, variant: usize, index: u32) -> [f32; 2] {
        let (r, c) = ((index / self.width) as f32, (index % self.width) as f32);
        match variant {
            1 => [0.5, 0.5],
            v => {
                let shift = if v == 2 { 0.25 } else { 0.0 };
                let a = class as f32 * 0.7;
                [
                    (0.5 + 0.35 * (a + c * 0.3).sin() + shift).fract(),
                    (0.5 + 0.35 * (a + r * 0.4).cos()).fract(),
                ]
            }
        }
    }

    /// Logits for the token at raster index `context.len()` given the context.
    pub fn logits(
        &self,
        drafter: bool,
        class: u32,
        variant: usize,
        context: &[u32],
        out: &mut [f32],
    ) {
        let i = context.len() as u32;
        let w = self.width;
        let anchor = self.anchor(class, variant, i);
        let left = (i % w != 0).then(|| self.codes[context[i as usize - 1] as usize]);
        let above = (i >= w).then(|| self.codes[context[(i - w) as usize] as usize]);
        let mut mu = [0.0f32; 2];
        for d in 0..2 {
            let l = left.map_or(anchor[d], |z| z[d]);
            let a = above.map_or(anchor[d], |z| z[d]);
            mu[d] = 0.4 * l + 0.4 * a + 0.2 * anchor[d];
        }
        let tau = if drafter {
            self.draft_tau
        } else {
            self.target_tau
        };
        let prev: u64 = context
            .iter()
            .rev()
            .take(2)
            .fold(i as u64, |h, &t| hash(h ^ t as u64));
        let salt = if drafter { 0x5eed } else { 0 };
        for (v, o) in out.iter_mut().enumerate() {
            let z = self.codes[v];
            let d2 = (z[0] - mu[0]).powi(2) + (z[1] - mu[1]).powi(2);
            let noise = unit(prev ^ salt ^ (v as u64) << 20) - 0.5;
            *o = -d2 / tau + self.noise * noise;
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Pending {
    token: u32,
    index: u32,
    parent: u32,
}

#[derive(Clone, Debug, Default)]
struct SeqState {
    class: u32,
    prefilled: bool,
    reformulated: bool,
    target_committed: Vec<u32>,
    target_pending: Vec<Pending>,
    drafter_committed: Vec<u32>,
    /// Drafter entries of the current step: (token, index, parent entry or ROOT).
    entries: Vec<Pending>,
}

/// What produced a feature row (the synthetic host's stand-in for a hidden state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    /// Never written.
    Unset,
    /// The condition's last position, variant.
    Cond(usize),
    /// A target input: raster index, token, variant.
    Target(u32, u32, usize),
    /// A drafter entry: raster index, token, variant.
    Draft(u32, u32, usize),
}

/// Image tokens per sequence the host's feature store covers.
const STORE_TOKENS: u32 = 4096;

/// A scripted verifier: `(seq, canvas, rows) -> possible`.
pub type CheckScript = Box<dyn FnMut(u32, &[u32], u32) -> bool>;

/// The strict protocol host over the synthetic world.
pub struct SyntheticHost {
    /// The world.
    pub world: World,
    seqs: Vec<SeqState>,
    logits: Vec<f32>,
    /// Counts of actions answered, by kind.
    pub actions: std::collections::BTreeMap<&'static str, u32>,
    /// Model forwards run (single or batched), by model: "target", "drafter".
    pub forwards: std::collections::BTreeMap<&'static str, u32>,
    /// Scores are `score_fn(tokens)`.
    pub score_fn: fn(&World, &[u32]) -> f32,
    /// Verdicts are `check_fn(tokens, rows)`.
    pub check_fn: fn(&World, &[u32], u32) -> bool,
    /// If set, verdicts are `check_script(seq, tokens, rows)` instead (scripted verifiers that
    /// need the sequence id or state).
    pub check_script: Option<CheckScript>,
    /// Every [`Action::Check`] answered: (seq, rows, canvas).
    pub checks: Vec<(u32, u32, Vec<u32>)>,
    /// Every [`Action::Reformulate`] answered: (seq, rows, canvas).
    pub reformulations: Vec<(u32, u32, Vec<u32>)>,
    /// Every [`Action::Prefill`] answered: (seq, image tokens prefilled, guidance variants).
    pub prefills: Vec<(u32, Vec<u32>, usize)>,
    /// Accept drafter features from older indices than `index − 1` (VVS stale features).
    pub stale_features: bool,
    /// The EAGLE feature bookkeeping (the core's store) and its rows.
    features: FeatureStore,
    rows: Vec<Tag>,
}

/// Default scorer: how far right the image's mean latent x lies (an arbitrary, deterministic
/// preference that differs between candidates).
pub fn default_score(world: &World, tokens: &[u32]) -> f32 {
    tokens
        .iter()
        .map(|&t| world.codes[t as usize][0])
        .sum::<f32>()
        / tokens.len().max(1) as f32
}

/// Default partial verifier: possible iff the canvas so far is not dominated by the left third.
pub fn default_check(world: &World, tokens: &[u32], _rows: u32) -> bool {
    let left = tokens
        .iter()
        .filter(|&&t| world.codes[t as usize][0] < 0.33)
        .count();
    left * 2 <= tokens.len()
}

impl SyntheticHost {
    /// A host with sequence `s` conditioned on class `classes[s]`.
    pub fn new(world: World, classes: &[u32]) -> Self {
        let seqs = classes
            .iter()
            .map(|&class| SeqState {
                class,
                ..Default::default()
            })
            .collect();
        SyntheticHost {
            world,
            seqs,
            logits: Vec::new(),
            actions: Default::default(),
            forwards: Default::default(),
            score_fn: default_score,
            check_fn: default_check,
            check_script: None,
            checks: Vec::new(),
            reformulations: Vec::new(),
            prefills: Vec::new(),
            stale_features: false,
            features: FeatureStore::new(classes.len(), STORE_TOKENS),
            rows: Vec::new(),
        }
    }

    fn put(&mut self, row: u32, tag: Tag) {
        self.rows.resize(self.features.rows(), Tag::Unset);
        self.rows[row as usize] = tag;
    }

    fn seq(&mut self, seq: u32) -> &mut SeqState {
        let n = self.seqs.len();
        self.seqs
            .get_mut(seq as usize)
            .unwrap_or_else(|| panic!("unknown sequence {seq} of {n}"))
    }

    fn variants_allowed(&self, seq: u32, g: GuidanceMode) {
        if g.variants() == 3 {
            assert!(
                self.seqs[seq as usize].reformulated,
                "three-way CFG before a reformulation"
            );
        }
    }

    fn push_rows(&mut self, drafter: bool, class: u32, g: GuidanceMode, context: &[u32]) {
        let mut row = [0f32; V];
        for variant in 0..g.variants() {
            self.world
                .logits(drafter, class, variant, context, &mut row);
            self.logits.extend_from_slice(&row);
        }
    }

    /// The committed target tokens of a sequence (after the last applied keep).
    pub fn committed(&self, seq: u32) -> &[u32] {
        &self.seqs[seq as usize].target_committed
    }
}

/// Ancestor chain (root side first) of `parent` within `nodes`, as tokens.
fn chain(nodes: &[Pending], mut parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    while parent != ROOT {
        let p = &nodes[parent as usize];
        out.push(p.token);
        parent = p.parent;
    }
    out.reverse();
    out
}

impl SyntheticHost {
    /// Appends the logits rows of one group of a forward (checking the protocol).
    fn group(&mut self, group: Group<'_>) {
        match group {
            Group::Prefill(p) => {
                self.variants_allowed(p.seq, p.guidance);
                self.prefills
                    .push((p.seq, p.tokens.to_vec(), p.guidance.variants()));
                let s = self.seq(p.seq);
                s.prefilled = true;
                s.target_committed = p.tokens.to_vec();
                s.target_pending.clear();
                s.drafter_committed.clear();
                s.entries.clear();
                let (class, ctx) = (s.class, s.target_committed.clone());
                self.push_rows(false, class, p.guidance, &ctx);
                let variants = p.guidance.variants();
                self.features
                    .prefill(p.seq, variants, p.tokens.len() as u32)
                    .expect("feature store: prefill");
                for var in 0..variants {
                    let r = self.features.condition_row(p.seq, var).unwrap();
                    self.put(r, Tag::Cond(var));
                    for (i, &t) in p.tokens.iter().enumerate() {
                        let r = self.features.committed_row(p.seq, i as u32, var).unwrap();
                        self.put(r, Tag::Target(i as u32, t, var));
                    }
                }
            }
            Group::Target(r) => {
                self.variants_allowed(r.seq, r.guidance);
                let s = self.seq(r.seq);
                assert!(s.prefilled, "target run before prefill");
                for &k in r.keep {
                    let p = s
                        .target_pending
                        .get(k as usize)
                        .expect("keep index out of range")
                        .clone();
                    assert_eq!(
                        p.index as usize,
                        s.target_committed.len(),
                        "keep not contiguous"
                    );
                    s.target_committed.push(p.token);
                }
                let mut nodes: Vec<Pending> = Vec::new();
                let mut contexts = Vec::new();
                for (i, input) in r.inputs.iter().enumerate() {
                    assert!(
                        input.parent == ROOT || (input.parent as usize) < i,
                        "parent order"
                    );
                    let mut ctx = s.target_committed.clone();
                    ctx.extend(chain(&nodes, input.parent));
                    assert_eq!(
                        ctx.len() as u32,
                        input.index,
                        "input index != context length"
                    );
                    ctx.push(input.token);
                    nodes.push(Pending {
                        token: input.token,
                        index: input.index,
                        parent: input.parent,
                    });
                    contexts.push(ctx);
                }
                s.target_pending = nodes;
                let class = s.class;
                for ctx in contexts {
                    self.push_rows(false, class, r.guidance, &ctx);
                }
                let variants = r.guidance.variants();
                self.features
                    .keep(r.seq, r.keep)
                    .expect("feature store: keep");
                self.features
                    .target_run(r.seq, r.inputs.iter().map(|i| i.index), variants)
                    .expect("feature store: target run");
                for (k, input) in r.inputs.iter().enumerate() {
                    for var in 0..variants {
                        let row = self.features.last_row(r.seq, k as u32, var).unwrap();
                        self.put(row, Tag::Target(input.index, input.token, var));
                    }
                }
            }
            Group::Draft(r) => {
                self.variants_allowed(r.seq, r.guidance);
                let stale = self.stale_features;
                let variants = r.guidance.variants();
                if r.new_step {
                    self.features
                        .new_draft_step(r.seq)
                        .expect("feature store: new step");
                }
                let features = &mut self.features;
                let rows = &mut self.rows;
                let s = self
                    .seqs
                    .get_mut(r.seq as usize)
                    .unwrap_or_else(|| panic!("unknown sequence {}", r.seq));
                assert!(s.prefilled, "drafter run before prefill");
                if r.new_step {
                    s.entries.clear();
                }
                let mut contexts = Vec::new();
                let first_entry = s.entries.len();
                for (i, input) in r.inputs.iter().enumerate() {
                    let mut ctx = s.drafter_committed.clone();
                    if (i as u32) < r.commit {
                        assert_eq!(input.parent, ROOT, "catch-up input with a parent");
                        // Earlier catch-up inputs of this run are committed before this one.
                        ctx.extend(r.inputs[..i].iter().map(|x| x.token));
                    } else {
                        assert!(input.parent == ROOT || (input.parent as usize) < first_entry + i);
                        ctx.extend(r.inputs[..r.commit as usize].iter().map(|x| x.token));
                        ctx.extend(chain(&s.entries, input.parent));
                    }
                    assert_eq!(
                        ctx.len() as u32,
                        input.index,
                        "draft index != context length"
                    );
                    // The feature must be the state that predicted this token: index − 1 (or,
                    // stale, an older target state), in every variant.
                    let want = input.index.checked_sub(1);
                    for var in 0..variants {
                        let row = features
                            .resolve(r.seq, input.feature, var)
                            .unwrap_or_else(|e| panic!("feature {:?}: {e}", input.feature));
                        let tag = rows[row as usize];
                        match (tag, want) {
                            (Tag::Cond(v), None) => assert_eq!(v, var),
                            (Tag::Cond(v), Some(_)) if stale => assert_eq!(v, var),
                            (Tag::Target(i, t, v), Some(w)) => {
                                assert_eq!(v, var, "feature variant");
                                assert!(
                                    matches!(
                                        input.feature,
                                        FeatureRef::Target(_) | FeatureRef::LastTarget(_)
                                    ),
                                    "a target state under {:?}",
                                    input.feature
                                );
                                if stale {
                                    assert!(i <= w, "stale target feature from the future");
                                } else {
                                    assert_eq!(i, w, "target feature index");
                                    assert_eq!(t, ctx[w as usize], "target feature token");
                                }
                            }
                            (Tag::Draft(i, t, v), Some(w)) => {
                                assert_eq!(v, var, "feature variant");
                                assert!(matches!(input.feature, FeatureRef::Draft(_)));
                                assert_eq!(i, w, "draft feature index");
                                assert_eq!(t, ctx[w as usize], "draft feature token");
                            }
                            (tag, want) => panic!(
                                "feature {:?} resolves to {tag:?}, want index {want:?}",
                                input.feature
                            ),
                        }
                    }
                    let e = features
                        .add_entries(r.seq, 1, variants)
                        .expect("feature store: entries");
                    for var in 0..variants {
                        let row = features.entry_row(r.seq, e, var).unwrap();
                        rows.resize(features.rows(), Tag::Unset);
                        rows[row as usize] = Tag::Draft(input.index, input.token, var);
                    }
                    ctx.push(input.token);
                    s.entries.push(Pending {
                        token: input.token,
                        index: input.index,
                        parent: input.parent,
                    });
                    contexts.push(ctx);
                }
                for input in &r.inputs[..r.commit as usize] {
                    s.drafter_committed.push(input.token);
                }
                let class = s.class;
                for ctx in contexts {
                    self.push_rows(true, class, r.guidance, &ctx);
                }
            }
            _ => panic!("a group kind the synthetic host does not know"),
        }
    }
}

impl Host<SliceBackend<'_, f32>> for SyntheticHost {
    type Error = Error;

    fn answer(&mut self, action: &Action<'_>) -> Result<Answer<'_, [f32]>, Error> {
        *self.actions.entry(action.kind()).or_default() += 1;
        self.logits.clear();
        if action.model().is_some() {
            let mut seqs = std::collections::BTreeSet::new();
            let model = action.model();
            for g in action.groups() {
                assert!(
                    seqs.insert(g.seq()),
                    "sequence {} twice in one forward",
                    g.seq()
                );
                assert_eq!(
                    Some(g.model()),
                    model,
                    "a group of another model in a batch"
                );
                self.group(g);
            }
            if let Action::Batch(b) = action {
                assert!(b.len() >= 2, "a batch of fewer than two groups");
                assert_eq!(b.logits_rows(), self.logits.len() / V, "batch rows");
            }
            *self
                .forwards
                .entry(model.map_or("?", |m| match m {
                    Model::Target => "target",
                    Model::Drafter => "drafter",
                }))
                .or_default() += 1;
            return Ok(Answer::Logits(&self.logits));
        }
        match *action {
            Action::Check(c) => {
                assert_eq!(
                    c.tokens.len() as u32,
                    c.rows * self.world.width,
                    "check canvas size"
                );
                self.checks.push((c.seq, c.rows, c.tokens.to_vec()));
                let verdict = match self.check_script.as_mut() {
                    Some(script) => script(c.seq, c.tokens, c.rows),
                    None => (self.check_fn)(&self.world, c.tokens, c.rows),
                };
                Ok(Answer::Verdict(verdict))
            }
            Action::Score(sc) => Ok(Answer::Score((self.score_fn)(&self.world, sc.tokens))),
            Action::Reformulate(r) => {
                assert_eq!(
                    r.tokens.len() as u32,
                    r.rows * self.world.width,
                    "reformulate canvas size"
                );
                self.reformulations.push((r.seq, r.rows, r.tokens.to_vec()));
                self.seq(r.seq).reformulated = true;
                Ok(Answer::Reformulated)
            }
            Action::Done => panic!("host asked to answer Done"),
            _ => unreachable!("forwards are answered above"),
        }
    }
}

/// Storage for a [`SliceBackend`] with `rows` distribution rows over the synthetic vocabulary.
pub struct Storage {
    weights: Vec<u64>,
    totals: Vec<u64>,
    f: Vec<f32>,
    u: Vec<u32>,
    lists: Vec<SupportList>,
}

impl Storage {
    /// Storage for `rows` rows.
    pub fn new(rows: usize) -> Self {
        Storage {
            weights: vec![0; (rows + 1) * V],
            totals: vec![0; rows],
            f: vec![0.0; V],
            u: vec![0; V],
            lists: vec![SupportList::new(); rows],
        }
    }

    /// The backend over this storage with support lists (sparse clears and draws; the same
    /// results as [`Storage::backend`]).
    pub fn backend_with_lists(&mut self) -> SliceBackend<'_, f32> {
        SliceBackend::new(
            V,
            &mut self.weights,
            &mut self.totals,
            &mut self.f,
            &mut self.u,
        )
        .unwrap()
        .with_supports(&mut self.lists)
    }

    /// The backend over this storage.
    pub fn backend(&mut self) -> SliceBackend<'_, f32> {
        SliceBackend::new(
            V,
            &mut self.weights,
            &mut self.totals,
            &mut self.f,
            &mut self.u,
        )
        .unwrap()
    }
}
