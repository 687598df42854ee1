//! A complete, minimal host for argen's decoders (protocol v2), with a toy "model".
//!
//! `cargo run -p argen-core --example minimal_host` serves three requests — vanilla decoding,
//! Best-of-3 and speculative decoding with a drafter — through one [`Mux`], so every token step
//! of every request that waits on the same model runs as **one** batched forward, and checks
//! that each request's tokens equal those of running it alone. A real runtime replaces
//! `ToyModel::logits` by its model (one forward over all the groups of an action) and keeps a
//! KV cache per sequence instead of token lists; the bookkeeping of `keep`, `commit` and
//! parents stays exactly as here. See `docs/embedding.md`.

use argen_core::backend::ROOT;
use argen_core::decode::{
    drive, Action, Answer, AnyDecoder, Config, CriterionConfig, Decoder, DecoderConfig, DraftInput,
    DraftShape, Group, GuidanceMode, Host, Input, MethodConfig, Mux, NoObserver, Resources,
    ScalingConfig, SpeculativeParams,
};
use argen_core::{Error, SamplerParams, SliceBackend, SliceStorage};

const V: usize = 32;
const W: u32 = 4;
const TOKENS: u32 = 16;

/// A toy model: logits of the token after `context` (the drafter is a blurred copy).
struct ToyModel;

impl ToyModel {
    fn logits(&self, drafter: bool, variant: usize, context: &[u32], out: &mut Vec<f32>) {
        let i = context.len() as u32;
        let prev = context.last().copied().unwrap_or(0);
        let centre = ((prev * 7 + i * 3 + variant as u32 * 5) % V as u32) as f32;
        let width = if drafter { 6.0 } else { 4.0 };
        out.extend((0..V).map(|v| -((v as f32 - centre) / width).powi(2)));
    }
}

/// What the host keeps per sequence: committed tokens and the last run's pending inputs.
#[derive(Default, Clone)]
struct Sequence {
    target: Vec<u32>,
    target_pending: Vec<(u32, u32)>, // (token, parent)
    drafter: Vec<u32>,
    draft_entries: Vec<(u32, u32)>, // this drafting step's entries: (token, parent entry)
}

/// Tokens on the chain from `parent` up to the root of `nodes`, root side first.
fn chain(nodes: &[(u32, u32)], mut parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    while parent != ROOT {
        let (token, p) = nodes[parent as usize];
        out.push(token);
        parent = p;
    }
    out.reverse();
    out
}

struct ToyHost {
    model: ToyModel,
    seqs: Vec<Sequence>,
    logits: Vec<f32>,
    /// Model calls, to show the batching.
    forwards: u32,
}

impl ToyHost {
    fn new(sequences: usize) -> Self {
        ToyHost {
            model: ToyModel,
            seqs: vec![Sequence::default(); sequences],
            logits: Vec::new(),
            forwards: 0,
        }
    }

    /// Appends the rows of one group: inputs in order, guidance variants innermost.
    fn run_group(&mut self, group: Group<'_>) {
        let variants = group.guidance().variants();
        let s = &mut self.seqs[group.seq() as usize];
        let mut contexts = Vec::new();
        let drafter = matches!(group, Group::Draft(_));
        match group {
            Group::Prefill(p) => {
                // Reset the sequence; commit the condition and the prefix tokens.
                *s = Sequence {
                    target: p.tokens.to_vec(),
                    ..Sequence::default()
                };
                contexts.push(s.target.clone());
            }
            Group::Target(r) => {
                // `keep` commits pending entries of the previous run, in order; the rest drop.
                for &k in r.keep {
                    s.target.push(s.target_pending[k as usize].0);
                }
                s.target_pending.clear();
                for &Input { token, parent, .. } in r.inputs {
                    let mut ctx = s.target.clone();
                    ctx.extend(chain(&s.target_pending, parent));
                    ctx.push(token);
                    contexts.push(ctx);
                    s.target_pending.push((token, parent));
                }
            }
            Group::Draft(r) => {
                if r.new_step {
                    s.draft_entries.clear();
                }
                // The first `commit` inputs join the drafter's committed prefix (a chain).
                let (catch_up, rest) = r.inputs.split_at(r.commit as usize);
                for &DraftInput { token, .. } in catch_up {
                    s.drafter.push(token);
                    contexts.push(s.drafter.clone());
                    s.draft_entries.push((token, ROOT));
                }
                // The others stay pending; `parent` numbers the step's entries from 0 (catch-up
                // entries included) or is ROOT, the committed prefix.
                for &DraftInput { token, parent, .. } in rest {
                    let mut ctx = s.drafter.clone();
                    ctx.extend(chain(&s.draft_entries, parent));
                    ctx.push(token);
                    contexts.push(ctx);
                    s.draft_entries.push((token, parent));
                }
                // A real drafter would also read the EAGLE feature named by each input.
            }
            _ => panic!("a group kind this host does not know"),
        }
        for ctx in contexts {
            for variant in 0..variants {
                self.model.logits(drafter, variant, &ctx, &mut self.logits);
            }
        }
    }
}

impl<'b> Host<SliceBackend<'b, f32>> for ToyHost {
    type Error = Error;

    fn answer(&mut self, action: &Action<'_>) -> Result<Answer<'_, [f32]>, Error> {
        self.logits.clear();
        if action.model().is_some() {
            // One model forward for every group of the action, rows group after group.
            self.forwards += 1;
            for group in action.groups() {
                self.run_group(group);
            }
            return Ok(Answer::Logits(&self.logits));
        }
        match action {
            Action::Score(s) => Ok(Answer::Score(s.tokens.iter().sum::<u32>() as f32)),
            Action::Check(_) => Ok(Answer::Verdict(true)),
            _ => Err(Error::InvalidParameter {
                name: "action",
                reason: "the toy host has no reformulator",
            }),
        }
    }
}

fn config(seed: u64, seq: u32) -> Config {
    Config {
        seed,
        stream: 0,
        seq,
        tokens: TOKENS,
        width: W,
        sampler: SamplerParams {
            temperature: 1.0,
            top_k: Some(8),
            top_p: None,
            min_p: None,
        },
        guidance: GuidanceMode::TwoWay { scale: 2.0 },
    }
}

/// The three requests, each a [`DecoderConfig`] (serialisable; what a request would carry) built
/// into the one decoder type [`AnyDecoder`], so one `Mux` holds them all. None of them borrows
/// a table (LANTERN's neighbours, GSD's embedding), so the resources are empty.
fn requests() -> Vec<AnyDecoder<'static>> {
    let speculative = MethodConfig::Speculative(SpeculativeParams {
        shape: DraftShape::Chain { gamma: 3 },
        criterion: CriterionConfig::Exact,
        draft_sampler: None,
    });
    let configs = [
        DecoderConfig::single(config(1, 0), MethodConfig::Vanilla),
        DecoderConfig {
            base: config(2, 1),
            method: MethodConfig::Vanilla,
            scaling: Some(ScalingConfig::BestOfN { n: 3 }),
        },
        DecoderConfig::single(config(3, 4), speculative),
    ];
    configs
        .iter()
        .map(|c| {
            // What the host must provide: sequences, rows per forward, distribution rows.
            let req = c.requirements().unwrap();
            assert!(req.sequences <= 3 && req.logits_rows <= 3 * 4 * 2);
            AnyDecoder::new(c, &Resources::none()).unwrap()
        })
        .collect()
}

fn run(decoder: &mut impl Decoder) -> u32 {
    let mut storage = SliceStorage::new(V, decoder.dist_rows_needed());
    let mut backend = storage.backend::<f32>().unwrap();
    let mut host = ToyHost::new(5);
    drive(decoder, &mut backend, &mut host, &mut NoObserver).unwrap();
    host.forwards
}

fn main() {
    // Each request alone.
    let mut alone = requests();
    let solo_forwards: u32 = alone.iter_mut().map(run).sum();
    // All of them together.
    let mut mux = Mux::new();
    for r in requests() {
        mux.push(r).unwrap();
    }
    let shared_forwards = run(&mut mux);
    for (i, (a, m)) in alone.iter().zip(mux.decoders()).enumerate() {
        let (ta, tm) = (a.tokens(a.result_seq()), m.tokens(m.result_seq()));
        assert_eq!(
            ta, tm,
            "request {i}: multiplexed tokens differ from the solo run"
        );
        println!("request {i}: {tm:?}");
    }
    println!(
        "model calls: {solo_forwards} when run one by one, {shared_forwards} multiplexed; \
         tokens identical"
    );
}
