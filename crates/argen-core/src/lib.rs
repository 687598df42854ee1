//! # argen-core
//!
//! The `no_std` core of argen: deterministic keyed sampling, acceptance criteria for speculative
//! decoding, and the decoding state machines, for visual autoregressive image
//! generators such as LlamaGen, Janus-Pro and Lumina-mGPT.
//!
//! The core performs no I/O and needs no allocator: callers own every buffer. Feature `alloc` adds
//! conveniences that allocate, `std` (default) implies `alloc` and implements `std::error::Error`,
//! `defmt` derives `defmt::Format` on public types for embedded logging.
//!
//! Start with [`process()`] (logits → fixed-point distribution) and [`sample()`] (keyed draw);
//! the determinism contract is specified in [`rng`], [`mod@process`] and [`dist`]; decoders
//! live in [`decode`], acceptance rules in [`accept`], the device interface in [`backend`].
//!
//! [`trace`] records decoding runs in a compact, versioned binary format and replays them,
//! reporting the first divergence (golden traces of every decoder live in `fixtures/traces/`).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod accept;
pub mod backend;
pub mod chacha;
pub mod cost;
pub mod decode;
pub mod detmath;
pub mod dist;
pub mod error;
pub mod guidance;
pub mod logit;
pub mod process;
pub mod reduce;
pub mod rng;
pub mod sample;
pub mod trace;

pub use accept::{verify_siblings, Criterion, Draft, NodeKeys, Outcome};
#[cfg(feature = "alloc")]
pub use backend::SliceStorage;
pub use backend::{
    Backend, DraftTree, ProcessJob, RowGuidance, SampleJob, SliceBackend, TreeJob, TreeVerdict,
};
pub use dist::{Dist, SupportList, WEIGHT_ONE};
pub use error::{Error, Result};
pub use guidance::Guided;
pub use logit::{Dtype, Logit};
pub use process::{
    process, process_tracked_with, process_with, LogitRow, Processed, RowKernels, SamplerParams,
    Workspace,
};
pub use rng::{Key, KeyedStream, Purpose};
pub use sample::{sample, sample_with};

/// Largest supported vocabulary: `2^24 − 1` tokens (token ids fit the RNG counter layout and
/// `V · 2^40` total weights fit a `u64`).
pub const MAX_VOCAB: usize = (1 << 24) - 1;
