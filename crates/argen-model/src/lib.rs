//! argen-model: the LlamaGen-family models of argen, written once over a compute trait.
//!
//! * [`config`]: GPT configs (GPT-B … GPT-7B presets and arbitrary sizes, c2i and t2i) and the
//!   VQ tokenizer config, read from the JSON written by `tools/convert_llamagen.py`.
//! * [`safetensors`]: a defensive, fuzzed parser for checkpoints (F32 / F16 / BF16 weights).
//! * [`Gpt`], [`Drafter`], [`VqDecoder`]: the models, generic over [`Compute`] (argen-cpu
//!   provides the CPU backend). Parameter names are the official LlamaGen state-dict names.
//! * [`host`]: [`ModelHost`], the host side of argen-core's decoding protocol; [`sink`]: where
//!   the answers' logits live ([`HostLogits`] on the host, or a device sink of argen-cuda).
//! * [`stack`]: the KV-cache contract (slots, pending entries, tree attention by parent index,
//!   commit, rollback).
//!
//! Design notes: `/work/shared/design.md` §2 and §6; API overview: `docs/runtime.md`.

pub mod compute;
pub mod config;
pub mod drafter;
pub mod error;
pub mod gpt;
pub mod host;
pub mod safetensors;
pub mod sink;
pub mod stack;
pub mod vq;

pub use compute::{AttnRow, Compute, KvDest, KvGeometry, Pos};
pub use config::{GptConfig, ModelType, VqConfig};
pub use drafter::Drafter;
pub use error::{ModelError, Result};
pub use gpt::{CaptionPrefill, ClassPrefill, Gpt};
pub use host::{host_capacity, Condition, HostError, Judge, ModelHost, NoJudge};
pub use sink::{HostLogits, LogitSink};
pub use stack::{Capacity, Step};
pub use vq::{Image, VqDecoder};
