//! The engine's typed errors: a kind and one line of text.

use core::fmt;

/// What went wrong, coarsely (bindings map it onto their own codes and exception classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bad request or option: unknown method, option out of range, class out of range,
    /// malformed prompt, invalid decoder configuration, wrong input kind for the model.
    InvalidArgument,
    /// The model directory: a file missing or unreadable, a malformed config or weights file, a
    /// method that needs a file the directory lacks (the drafter).
    Model,
    /// The runtime failed while generating (thread pool, device, a decoder error).
    Runtime,
}

impl ErrorKind {
    /// Lower-case name (`"invalid argument"`, `"model"`, `"runtime"`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Model => "model",
            ErrorKind::Runtime => "runtime",
        }
    }
}

/// An engine error: its [`ErrorKind`] and a one-line message (line breaks are folded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of `kind` with `message` (folded into one line).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        let m: String = message.into();
        let message = if m.contains(['\n', '\r']) {
            m.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            m
        };
        Error { kind, message }
    }

    /// An [`ErrorKind::InvalidArgument`] error.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// An [`ErrorKind::Model`] error.
    pub fn model(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Model, message)
    }

    /// An [`ErrorKind::Runtime`] error.
    pub fn runtime(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Runtime, message)
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<Error> for String {
    fn from(e: Error) -> String {
        e.message
    }
}
