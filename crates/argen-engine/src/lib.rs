//! # argen-engine
//!
//! argen's generation pipeline as a library: open a model directory, generate an image — tokens,
//! RGB pixels, statistics — with any decoding method. The `argen` command, the C ABI's
//! high-level API (`argen_engine_open` / `argen_generate` in `argen-ffi`) and Python's
//! `argen.Model` are thin front ends over this one implementation.
//!
//! ```no_run
//! use argen_engine::{Engine, EngineOptions, Input, Method, MethodOptions, Request};
//!
//! let mut engine = Engine::open("fixtures/models/shapesworld", &EngineOptions { threads: 0 })?;
//! let input = Input::Prompt("a red circle above a blue square".into());
//! let config = engine.decoder_config(Method::Sd, &MethodOptions::default(), 7, &input)?;
//! let g = engine.generate(&Request::new(input, config))?;
//! let image = g.image.unwrap(); // width × height × 3 bytes of RGB
//! println!("{} tokens, {:.2} tokens/forward", g.tokens.len(), g.stats.tokens_per_target_forward());
//! # Ok::<(), argen_engine::Error>(())
//! ```
//!
//! ## Why a crate of its own (and not a `lib` target of argen-cli)
//! The bindings must not pull the command line's dependencies: clap, the PNG encoder, the
//! plotting stack of `argen bench`, and argen-cuda (dynamic loading of the CUDA libraries). A
//! `lib` target of argen-cli would share the package's dependency list, so every C or Python
//! build would compile all of them; features could hide some, but `argen-cli` would then be a
//! library crate whose default build is not its binary. `argen-engine` depends only on the core,
//! the model runtime, the CPU runtime and ShapesWorld (the judge and prompt encoding); the
//! optional `cuda` feature adds the CUDA runtime, which only the command turns on. Files and
//! terminals — PNG and JSON outputs, progress bars, flag parsing — stay in the command.
//!
//! ## Modules
//! - [`engine`]: [`Engine`], [`Request`], [`Generation`];
//! - [`calibrate`]: measuring a model's cost profile on this machine (`argen calibrate`);
//! - [`clock`]: the wall or on-CPU clock that calibration and the bench time with;
//! - [`cost_file`]: the model directory's measured cost profile (`cost-profile.json`);
//! - [`predict`]: a run's model calls by row count, and the time a cost profile predicts for them;
//! - [`method`]: methods by name with flat options → one `DecoderConfig`;
//! - [`model_dir`]: model directories, with errors that name the file;
//! - [`shapes`]: ShapesWorld prompts as caption features, and the scene-parsing judge;
//! - [`runtime`]: model runtimes paired with the backends that read their logits.
//!
//! Errors are [`Error`]s: an [`ErrorKind`] and one line of text.

pub mod calibrate;
pub mod clock;
pub mod cost_file;
pub mod engine;
mod error;
pub mod kernel_tune;
pub mod method;
pub mod model_dir;
pub mod predict;
pub mod round_order;
pub mod runtime;
pub mod shapes;
mod tables;

pub use argen_core::decode::{DecoderConfig, Stats};
pub use engine::{
    conditions, config_json, Engine, EngineOptions, Generation, Image, Input, Request,
};
pub use error::{Error, ErrorKind};
pub use method::{
    parse_config, requirements, Criterion, Draft, Method, MethodOptions, VvsSchedule, WindowInit,
};
pub use model_dir::{resolve, ModelDir, BUNDLED};
pub use runtime::{Decoded, Recorded, Runtime};
