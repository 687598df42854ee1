//! Typed errors of model loading and running.
//!
//! Every variant names the file, tensor or parameter at fault so that a user can act on the
//! message without a debugger. Nothing in this crate panics on user-supplied input.

use std::fmt;
use std::path::PathBuf;

/// An error from loading or running a model.
#[derive(Debug)]
pub enum ModelError {
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A safetensors file is malformed (truncated, corrupt header, bad offsets, ...).
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A config file is malformed or inconsistent.
    Config {
        /// The file (or `<preset>` / `<inline>`).
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A tensor the model needs is absent from the checkpoint.
    MissingTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// The checkpoint holds a tensor the configured model does not have (usually a config
    /// that does not match the weights).
    UnexpectedTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A tensor's shape differs from what the config implies.
    Shape {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// Shape the config implies.
        expected: Vec<usize>,
        /// Shape found in the file.
        found: Vec<usize>,
    },
    /// A tensor has a dtype the runtime does not support (F32, F16 and BF16 are supported).
    Dtype {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// A weight is NaN or infinite: the checkpoint is corrupt (such a weight turns every
    /// output into NaN, e.g. an all-black image).
    NonFinite {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// Index of the first non-finite element (row-major).
        index: usize,
        /// The value found there (NaN, inf or -inf).
        value: f32,
    },
    /// A caller-supplied argument is invalid (class id out of range, unknown slot, bad parent
    /// index, capacity exceeded, buffer too small, ...).
    Input(String),
    /// The compute device failed (a launch, a transfer, an allocation, a lost device); the
    /// message is the backend's.
    Device(String),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Io { path, source } => write!(f, "{}: {}", path.display(), source),
            ModelError::Safetensors { path, msg } => {
                write!(f, "{}: invalid safetensors file: {}", path.display(), msg)
            }
            ModelError::Config { path, msg } => {
                write!(f, "{}: invalid model config: {}", path.display(), msg)
            }
            ModelError::MissingTensor { path, name } => {
                write!(f, "{}: tensor `{}` is missing", path.display(), name)
            }
            ModelError::UnexpectedTensor { path, name } => write!(
                f,
                "{}: unexpected tensor `{}` (does the config match the weights?)",
                path.display(),
                name
            ),
            ModelError::Shape {
                path,
                name,
                expected,
                found,
            } => write!(
                f,
                "{}: tensor `{}` has shape {:?}, the config implies {:?}",
                path.display(),
                name,
                found,
                expected
            ),
            ModelError::Dtype { path, name, dtype } => write!(
                f,
                "{}: tensor `{}` has dtype {}, expected F32, F16 or BF16",
                path.display(),
                name,
                dtype
            ),
            ModelError::NonFinite {
                path,
                name,
                index,
                value,
            } => write!(
                f,
                "{}: tensor `{}` holds {} at element {} (a corrupt checkpoint: every weight must \
                 be finite)",
                path.display(),
                name,
                value,
                index
            ),
            ModelError::Input(msg) => write!(f, "invalid input: {msg}"),
            ModelError::Device(msg) => write!(f, "compute device error: {msg}"),
        }
    }
}

impl std::error::Error for ModelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ModelError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

/// Builds a [`ModelError::Input`].
pub(crate) fn input_err(msg: impl Into<String>) -> ModelError {
    ModelError::Input(msg.into())
}
