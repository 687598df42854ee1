//! Typed errors of `argen-core`.
//!
//! Every public function of the core validates what a caller can get wrong and returns one of these
//! variants instead of panicking. The variants carry enough context (an index, a parameter name, the
//! expected and found sizes) for a host to print a useful message without a backtrace.

use core::fmt;

/// Everything that can go wrong in `argen-core`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// A row of logits or weights has no elements.
    EmptyRow,
    /// Two rows (or a row and a declared vocabulary) that must have the same length do not.
    LengthMismatch {
        /// Length that was required.
        expected: usize,
        /// Length that was supplied.
        found: usize,
    },
    /// A logit is NaN or `+∞`. (`−∞` is allowed and means "masked".)
    NonFiniteLogit {
        /// Index of the offending element in its row.
        index: usize,
    },
    /// Every logit of a row is `−∞`, so there is nothing to sample.
    AllMasked,
    /// The vocabulary is larger than [`crate::MAX_VOCAB`].
    VocabTooLarge {
        /// The vocabulary size that was supplied.
        vocab: usize,
    },
    /// A token id is not smaller than the vocabulary size.
    TokenOutOfRange {
        /// The offending token id.
        token: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// A parameter lies outside its documented range.
    InvalidParameter {
        /// Name of the parameter, as spelled in the API.
        name: &'static str,
        /// The documented range or rule it violates.
        reason: &'static str,
    },
    /// Scaling a logit by the inverse temperature overflowed to infinity.
    Overflow {
        /// Index of the element whose scaled value overflowed.
        index: usize,
    },
    /// A distribution has zero total mass where a draw or a ratio needs a positive one.
    ZeroMass,
    /// A drafted token has zero probability under the draft distribution it was drawn from.
    DraftZeroMass {
        /// The drafted token.
        token: u32,
    },
    /// A latent-neighbour table has the wrong shape or an invalid entry.
    InvalidNeighbourTable {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A caller-provided buffer is too small.
    BufferTooSmall {
        /// Elements needed.
        needed: usize,
        /// Elements supplied.
        found: usize,
    },
    /// A decoder received an answer that does not match the action it is waiting on.
    UnexpectedAnswer {
        /// What the decoder is waiting for.
        expected: &'static str,
        /// The answer it was given.
        found: &'static str,
    },
    /// A decoder exceeded its documented bound on steps (a bug guard; never expected).
    StepBoundExceeded {
        /// The bound.
        bound: u32,
    },
    /// A fixed capacity (a const generic of a state machine) would be exceeded.
    CapacityExceeded {
        /// The capacity.
        capacity: usize,
    },
    /// A decoder configuration needs a table the caller did not supply
    /// ([`crate::decode::Resources`]).
    MissingResource {
        /// The resource, as spelled in [`crate::decode::Resources`] (`neighbours`, `embedding`,
        /// `codebook`).
        resource: &'static str,
        /// What needs it (`lantern criterion`, `grouped criterion`, `vvs dynamic schedule`).
        needed_by: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::EmptyRow => write!(f, "empty row: a row needs at least one element"),
            Error::LengthMismatch { expected, found } => {
                write!(
                    f,
                    "length mismatch: expected {expected} elements, found {found}"
                )
            }
            Error::NonFiniteLogit { index } => {
                write!(
                    f,
                    "logit {index} is NaN or +inf (only -inf, meaning masked, is allowed)"
                )
            }
            Error::AllMasked => write!(f, "every logit of the row is -inf: nothing can be sampled"),
            Error::VocabTooLarge { vocab } => write!(
                f,
                "vocabulary of {vocab} tokens exceeds the maximum of {}",
                crate::MAX_VOCAB
            ),
            Error::TokenOutOfRange { token, vocab } => {
                write!(
                    f,
                    "token id {token} is out of range for a vocabulary of {vocab}"
                )
            }
            Error::InvalidParameter { name, reason } => {
                write!(f, "invalid parameter `{name}`: {reason}")
            }
            Error::Overflow { index } => write!(
                f,
                "logit {index} overflowed when divided by the temperature (temperature too small)"
            ),
            Error::ZeroMass => write!(f, "distribution has zero total mass"),
            Error::DraftZeroMass { token } => write!(
                f,
                "drafted token {token} has zero probability under its draft distribution"
            ),
            Error::InvalidNeighbourTable { reason } => {
                write!(f, "invalid latent-neighbour table: {reason}")
            }
            Error::BufferTooSmall { needed, found } => {
                write!(f, "buffer too small: need {needed} elements, got {found}")
            }
            Error::UnexpectedAnswer { expected, found } => {
                write!(
                    f,
                    "protocol error: decoder waits for {expected}, got {found}"
                )
            }
            Error::StepBoundExceeded { bound } => {
                write!(f, "decoder exceeded its bound of {bound} steps")
            }
            Error::CapacityExceeded { capacity } => {
                write!(f, "fixed capacity of {capacity} would be exceeded")
            }
            Error::MissingResource {
                resource,
                needed_by,
            } => write!(
                f,
                "missing resource `{resource}`: the {needed_by} needs it (decode::Resources)"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Result alias of the core.
pub type Result<T, E = Error> = core::result::Result<T, E>;
