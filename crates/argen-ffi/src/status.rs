//! Status codes and the error type of the embedding layer.
//!
//! Every fallible entry point of the C ABI returns an [`argen_status`]; on anything but
//! [`argen_status::ARGEN_OK`] the thread-local last-error text ([`crate::argen_last_error`]) holds
//! one line saying what was wrong. The Python package maps the same codes onto its exception
//! hierarchy, so both bindings classify errors identically.
//!
//! Codes are part of the ABI: a code's number never changes and new codes are only appended.

#![allow(non_camel_case_types)]

use argen_core::Error;
use core::fmt;

/// Result of every fallible C entry point (a C `enum`, i.e. an `int`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum argen_status {
    /// Success.
    ARGEN_OK = 0,
    /// A required pointer argument was NULL.
    ARGEN_ERR_NULL_POINTER = 1,
    /// A handle is not live: never created, already freed, of another kind, or in use on another
    /// thread at the same time.
    ARGEN_ERR_INVALID_HANDLE = 2,
    /// A versioned struct's `struct_size` is smaller than version 1 of the struct, or larger with
    /// non-zero bytes past the fields this library knows.
    ARGEN_ERR_STRUCT_SIZE = 3,
    /// An element type code is unknown, or not the one the operation needs.
    ARGEN_ERR_BAD_DTYPE = 4,
    /// An array has the wrong layout: misaligned, non-contiguous, wrong number of dimensions, or
    /// not in host memory.
    ARGEN_ERR_BAD_LAYOUT = 5,
    /// A (Python) object is of the wrong type. The C ABI itself never returns it.
    ARGEN_ERR_WRONG_TYPE = 6,
    /// A parameter lies outside its documented range (also: empty rows, unknown enum codes,
    /// vocabularies above the maximum).
    ARGEN_ERR_INVALID_ARGUMENT = 7,
    /// Two lengths that must agree do not.
    ARGEN_ERR_LENGTH_MISMATCH = 8,
    /// An output buffer is too small.
    ARGEN_ERR_BUFFER_TOO_SMALL = 9,
    /// A token id is not below the vocabulary size.
    ARGEN_ERR_TOKEN_OUT_OF_RANGE = 10,
    /// A logit is NaN or `+inf` (`-inf` means masked and is allowed).
    ARGEN_ERR_NON_FINITE_LOGIT = 11,
    /// Every logit of a row is `-inf`.
    ARGEN_ERR_ALL_MASKED = 12,
    /// Guidance or temperature scaling overflowed to infinity.
    ARGEN_ERR_OVERFLOW = 13,
    /// A distribution has zero mass where a draw needs a positive one (also: a drafted token with
    /// zero draft probability, an unprocessed distribution row).
    ARGEN_ERR_ZERO_MASS = 14,
    /// A latent-neighbour table is malformed.
    ARGEN_ERR_NEIGHBOUR_TABLE = 15,
    /// A decoder was answered out of order.
    ARGEN_ERR_PROTOCOL = 16,
    /// A fixed capacity or step bound would be exceeded.
    ARGEN_ERR_CAPACITY = 17,
    /// A requested allocation is larger than this library accepts.
    ARGEN_ERR_ALLOCATION = 18,
    /// argen panicked (a bug); the panic was caught at the boundary. The handle involved may hold
    /// partial results but stays safe to free.
    ARGEN_ERR_PANIC = 19,
    /// An error this version of the embedding layer does not classify.
    ARGEN_ERR_UNKNOWN = 20,
    /// A model directory cannot be used: a file missing, unreadable or malformed, or a file the
    /// method needs (the drafter) absent.
    ARGEN_ERR_MODEL = 21,
    /// The runtime failed while generating (thread pool, device, a decoding error).
    ARGEN_ERR_RUNTIME = 22,
}

/// Every status, in code order (the index is the code).
const ALL_STATUSES: [argen_status; 23] = [
    argen_status::ARGEN_OK,
    argen_status::ARGEN_ERR_NULL_POINTER,
    argen_status::ARGEN_ERR_INVALID_HANDLE,
    argen_status::ARGEN_ERR_STRUCT_SIZE,
    argen_status::ARGEN_ERR_BAD_DTYPE,
    argen_status::ARGEN_ERR_BAD_LAYOUT,
    argen_status::ARGEN_ERR_WRONG_TYPE,
    argen_status::ARGEN_ERR_INVALID_ARGUMENT,
    argen_status::ARGEN_ERR_LENGTH_MISMATCH,
    argen_status::ARGEN_ERR_BUFFER_TOO_SMALL,
    argen_status::ARGEN_ERR_TOKEN_OUT_OF_RANGE,
    argen_status::ARGEN_ERR_NON_FINITE_LOGIT,
    argen_status::ARGEN_ERR_ALL_MASKED,
    argen_status::ARGEN_ERR_OVERFLOW,
    argen_status::ARGEN_ERR_ZERO_MASS,
    argen_status::ARGEN_ERR_NEIGHBOUR_TABLE,
    argen_status::ARGEN_ERR_PROTOCOL,
    argen_status::ARGEN_ERR_CAPACITY,
    argen_status::ARGEN_ERR_ALLOCATION,
    argen_status::ARGEN_ERR_PANIC,
    argen_status::ARGEN_ERR_UNKNOWN,
    argen_status::ARGEN_ERR_MODEL,
    argen_status::ARGEN_ERR_RUNTIME,
];

impl argen_status {
    /// Every status, in code order.
    pub fn all() -> &'static [argen_status] {
        &ALL_STATUSES
    }

    /// The status with numeric code `code`, if there is one.
    pub fn from_code(code: i64) -> Option<argen_status> {
        usize::try_from(code)
            .ok()
            .and_then(|i| ALL_STATUSES.get(i).copied())
    }

    /// The enumerator's name as spelled in `argen.h` (a static, NUL-terminated string).
    pub fn name_cstr(self) -> &'static core::ffi::CStr {
        match self {
            argen_status::ARGEN_OK => c"ARGEN_OK",
            argen_status::ARGEN_ERR_NULL_POINTER => c"ARGEN_ERR_NULL_POINTER",
            argen_status::ARGEN_ERR_INVALID_HANDLE => c"ARGEN_ERR_INVALID_HANDLE",
            argen_status::ARGEN_ERR_STRUCT_SIZE => c"ARGEN_ERR_STRUCT_SIZE",
            argen_status::ARGEN_ERR_BAD_DTYPE => c"ARGEN_ERR_BAD_DTYPE",
            argen_status::ARGEN_ERR_BAD_LAYOUT => c"ARGEN_ERR_BAD_LAYOUT",
            argen_status::ARGEN_ERR_WRONG_TYPE => c"ARGEN_ERR_WRONG_TYPE",
            argen_status::ARGEN_ERR_INVALID_ARGUMENT => c"ARGEN_ERR_INVALID_ARGUMENT",
            argen_status::ARGEN_ERR_LENGTH_MISMATCH => c"ARGEN_ERR_LENGTH_MISMATCH",
            argen_status::ARGEN_ERR_BUFFER_TOO_SMALL => c"ARGEN_ERR_BUFFER_TOO_SMALL",
            argen_status::ARGEN_ERR_TOKEN_OUT_OF_RANGE => c"ARGEN_ERR_TOKEN_OUT_OF_RANGE",
            argen_status::ARGEN_ERR_MODEL => c"ARGEN_ERR_MODEL",
            argen_status::ARGEN_ERR_RUNTIME => c"ARGEN_ERR_RUNTIME",
            argen_status::ARGEN_ERR_NON_FINITE_LOGIT => c"ARGEN_ERR_NON_FINITE_LOGIT",
            argen_status::ARGEN_ERR_ALL_MASKED => c"ARGEN_ERR_ALL_MASKED",
            argen_status::ARGEN_ERR_OVERFLOW => c"ARGEN_ERR_OVERFLOW",
            argen_status::ARGEN_ERR_ZERO_MASS => c"ARGEN_ERR_ZERO_MASS",
            argen_status::ARGEN_ERR_NEIGHBOUR_TABLE => c"ARGEN_ERR_NEIGHBOUR_TABLE",
            argen_status::ARGEN_ERR_PROTOCOL => c"ARGEN_ERR_PROTOCOL",
            argen_status::ARGEN_ERR_CAPACITY => c"ARGEN_ERR_CAPACITY",
            argen_status::ARGEN_ERR_ALLOCATION => c"ARGEN_ERR_ALLOCATION",
            argen_status::ARGEN_ERR_PANIC => c"ARGEN_ERR_PANIC",
            argen_status::ARGEN_ERR_UNKNOWN => c"ARGEN_ERR_UNKNOWN",
        }
    }

    /// The enumerator's name as a Rust string.
    pub fn name(self) -> &'static str {
        // The names are ASCII literals.
        self.name_cstr().to_str().unwrap_or("ARGEN_ERR_UNKNOWN")
    }
}

/// Which status a core error maps to.
pub fn status_of(e: &Error) -> argen_status {
    use argen_status::*;
    match e {
        Error::EmptyRow
        | Error::VocabTooLarge { .. }
        | Error::InvalidParameter { .. }
        | Error::MissingResource { .. } => ARGEN_ERR_INVALID_ARGUMENT,
        Error::LengthMismatch { .. } => ARGEN_ERR_LENGTH_MISMATCH,
        Error::NonFiniteLogit { .. } => ARGEN_ERR_NON_FINITE_LOGIT,
        Error::AllMasked => ARGEN_ERR_ALL_MASKED,
        Error::TokenOutOfRange { .. } => ARGEN_ERR_TOKEN_OUT_OF_RANGE,
        Error::Overflow { .. } => ARGEN_ERR_OVERFLOW,
        Error::ZeroMass | Error::DraftZeroMass { .. } => ARGEN_ERR_ZERO_MASS,
        Error::InvalidNeighbourTable { .. } => ARGEN_ERR_NEIGHBOUR_TABLE,
        Error::BufferTooSmall { .. } => ARGEN_ERR_BUFFER_TOO_SMALL,
        Error::UnexpectedAnswer { .. } => ARGEN_ERR_PROTOCOL,
        Error::StepBoundExceeded { .. } | Error::CapacityExceeded { .. } => ARGEN_ERR_CAPACITY,
        _ => ARGEN_ERR_UNKNOWN,
    }
}

/// An error of the embedding layer: a status plus a one-line message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FfiError {
    /// The classification.
    pub status: argen_status,
    /// What went wrong, one line.
    pub message: String,
}

impl FfiError {
    /// An error with `status` and `message`.
    pub fn new(status: argen_status, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
        }
    }

    /// A NULL pointer passed for argument `name`.
    pub fn null(name: &str) -> Self {
        Self::new(
            argen_status::ARGEN_ERR_NULL_POINTER,
            format!("argument `{name}` is NULL"),
        )
    }

    /// A parameter outside its range.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(argen_status::ARGEN_ERR_INVALID_ARGUMENT, message)
    }

    /// Prefixes the message with the operation's name (`"argen_sampler_process: ..."`).
    pub fn context(mut self, op: &str) -> Self {
        self.message = format!("{op}: {}", self.message);
        self
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        FfiError::new(status_of(&e), e.to_string())
    }
}

impl fmt::Display for FfiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.status.name())
    }
}

impl std::error::Error for FfiError {}

/// Result alias of the embedding layer.
pub type FfiResult<T> = Result<T, FfiError>;
