//! Typed errors of the crate.
//!
//! Every error names what went wrong and where (file, parameter, word of a prompt), so that a
//! user can fix the input without reading the source.

use std::fmt;
use std::path::PathBuf;

use crate::prompt::grammar::GRAMMAR;

/// Everything that can go wrong in ShapesWorld.
#[derive(Debug)]
pub enum Error {
    /// A prompt that is not in the ShapesWorld grammar. The message shows the grammar.
    Prompt(PromptError),
    /// A file could not be read or written.
    Io {
        /// The file (or directory) concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file that is not a PNG image, or a PNG the decoder rejects.
    NotPng {
        /// The file concerned (`<memory>` for in-memory data).
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// An image whose size is not the one the caller expects.
    WrongSize {
        /// The file concerned (`<memory>` for in-memory data).
        path: PathBuf,
        /// Expected `(width, height)`.
        expected: (usize, usize),
        /// Actual `(width, height)`.
        found: (usize, usize),
    },
    /// A configuration parameter out of its valid range.
    Config {
        /// The parameter name, e.g. `GenConfig::size`.
        param: &'static str,
        /// Why the value is not accepted.
        reason: String,
    },
    /// An argument (other than a prompt or an image) that is not valid.
    Argument {
        /// The argument name, e.g. `rows_known`.
        param: &'static str,
        /// Why the value is not accepted.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Prompt(e) => e.fmt(f),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::NotPng { path, reason } => {
                write!(f, "{}: not a readable PNG image ({reason})", path.display())
            }
            Error::WrongSize {
                path,
                expected,
                found,
            } => write!(
                f,
                "{}: image is {}x{} pixels but {}x{} is expected",
                path.display(),
                found.0,
                found.1,
                expected.0,
                expected.1
            ),
            Error::Config { param, reason } => write!(f, "invalid configuration {param}: {reason}"),
            Error::Argument { param, reason } => write!(f, "invalid argument {param}: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Prompt(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PromptError> for Error {
    fn from(e: PromptError) -> Self {
        Error::Prompt(e)
    }
}

/// A prompt outside the ShapesWorld grammar.
///
/// Its `Display` names the offending word and shows the whole (compact) grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptError {
    /// The prompt as given.
    pub prompt: String,
    /// Byte offset in `prompt` where the problem was found (`prompt.len()` at the end).
    pub offset: usize,
    /// What was found there (a word, a character, or `end of prompt`).
    pub found: String,
    /// What went wrong, e.g. `expected a colour or a shape noun`.
    pub message: String,
}

impl fmt::Display for PromptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "prompt {:?} is not in the ShapesWorld grammar: {} (found {} at byte {})\n{}",
            self.prompt, self.message, self.found, self.offset, GRAMMAR
        )
    }
}

impl std::error::Error for PromptError {}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
