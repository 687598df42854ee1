//! # argen-shapes — ShapesWorld
//!
//! No visual autoregressive checkpoint can be downloaded where argen is built, so argen trains
//! its own tiny model family on a world it can render and judge exactly (design §7). This crate
//! is that world's single source of truth:
//!
//! - [`Scene::generate`]: a deterministic, seeded scene of 1–3 objects (circle, square,
//!   triangle; five colours; varied sizes and positions) on a textured, noisy, low-contrast
//!   background;
//! - [`render()`]: the scene as an 8-bit RGB image (64×64 by default);
//! - [`Prompt`]: a small closed grammar (colour binding, shape, counting, 2D spatial relations,
//!   layout clauses) with a parser whose errors show the grammar, and
//!   [`Prompt::from_scene`] / [`generate::sample_for_scene`] to describe a scene;
//! - [`vocab`]: the fixed word vocabulary and fixed-length id encoding shared with the
//!   Python trainer (caption conditioning through `cap_proj`);
//! - [`perceive()`]: an image, or the known top rows of a partial canvas, parsed back into a
//!   scene graph; [`score()`]: per-category prompt alignment (Best-of-N / final scorer);
//!   [`check_partial`]: GridAR's possible / impossible verifier; [`infer_layout`]: the layout
//!   clause for GridAR's reformulator;
//! - [`export`]: the training set for Python (`.npy` images and prompt ids, JSON-lines
//!   scenes, the vocabulary);
//! - [`degrade`]: blur, JPEG-like blockiness, colour jitter and noise, to test the scorer's
//!   robustness to the artefacts of a small VQ tokenizer.

pub mod degrade;
pub mod error;
pub mod eval;
pub mod export;
pub mod fuzzing;
pub mod image;
pub mod oracle;
pub mod palette;
pub mod perceive;
pub mod prompt;
pub mod render;
mod rng;
pub mod scene;
pub mod score;
pub mod vocab;

mod align;
mod npy;

pub use error::{Error, PromptError, Result};
pub use image::RgbImage;
pub use palette::{Colour, Shape};
pub use perceive::{perceive, Detection, SceneGraph, ScorerConfig};
pub use prompt::generate;
pub use prompt::{Body, Category, LayoutClause, Pattern, Phrase, Prompt, Region, Relation, Tags};
pub use render::render;
pub use scene::{Background, GenConfig, Object, Scene};
pub use score::{check_partial, infer_layout, score, Feasibility, Score, Verdicts};
