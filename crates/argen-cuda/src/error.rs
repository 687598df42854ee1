//! Typed errors of `argen-cuda`. Nothing in this crate panics on a missing library, a missing
//! device or a failed compile: each becomes one of these, with a one-line message that says what
//! is missing and where it was looked for.

use std::fmt;

/// Everything that can go wrong in `argen-cuda`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A row-level error with the meaning of the reference implementation (bit-identical
    /// semantics: the same variant the `argen-core` reference returns for the same input).
    Core(argen_core::Error),
    /// A shared library the backend needs was not found.
    LibraryNotFound {
        /// What the library is ("CUDA driver", "NVRTC", "cuBLAS", "OpenCL ICD loader").
        what: &'static str,
        /// File names tried.
        names: Vec<String>,
        /// Folders searched in addition to the dynamic loader's own path.
        searched: Vec<String>,
    },
    /// The driver loaded but reports no usable device.
    NoDevice {
        /// The driver's explanation.
        reason: String,
    },
    /// A device index beyond the devices present.
    DeviceOutOfRange {
        /// Requested index.
        index: usize,
        /// Devices present.
        count: usize,
    },
    /// A driver, runtime or OpenCL call failed.
    Driver {
        /// The call.
        call: &'static str,
        /// What it reported.
        detail: String,
    },
    /// A kernel failed to compile, or compiled with warnings (treated as errors).
    Compile {
        /// The compiler ("NVRTC", "OpenCL").
        compiler: &'static str,
        /// Target architecture or device.
        target: String,
        /// The compiler's log.
        log: String,
    },
    /// A cuBLAS call failed.
    Blas {
        /// The call.
        call: &'static str,
        /// What it reported.
        detail: String,
    },
    /// A buffer range, launch shape or GEMM shape the executor cannot serve (a caller bug or
    /// a size beyond the device API's integer types); nothing was enqueued.
    Invalid {
        /// The operation ("write", "read", "launch argen_process", "gemm", …).
        op: String,
        /// What is wrong.
        detail: String,
    },
    /// A model operation was called with arguments that do not fit its buffers or the
    /// kernels' limits (checked on the host before anything is launched).
    Op {
        /// The operation (`linear`, `attention`, ...).
        op: &'static str,
        /// What does not fit.
        detail: String,
    },
    /// A kernel reported a status the host does not know (a bug guard).
    KernelStatus {
        /// The kernel.
        kernel: &'static str,
        /// The status word.
        status: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Core(e) => write!(f, "{e}"),
            Error::LibraryNotFound {
                what,
                names,
                searched,
            } => {
                write!(f, "{what} library not found (tried {}", names.join(", "))?;
                if searched.is_empty() {
                    write!(f, " on the loader path)")
                } else {
                    write!(f, " on the loader path and in {})", searched.join(", "))
                }
            }
            Error::NoDevice { reason } => write!(f, "no CUDA device: {reason}"),
            Error::DeviceOutOfRange { index, count } => {
                write!(f, "CUDA device {index} requested but {count} present")
            }
            Error::Driver { call, detail } => write!(f, "{call} failed: {detail}"),
            Error::Compile {
                compiler,
                target,
                log,
            } => {
                let first = log.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                write!(f, "{compiler} compile for {target} failed: {first}")
            }
            Error::Blas { call, detail } => write!(f, "cuBLAS {call} failed: {detail}"),
            Error::Invalid { op, detail } => write!(f, "invalid {op}: {detail}"),
            Error::Op { op, detail } => write!(f, "{op}: {detail}"),
            Error::KernelStatus { kernel, status } => {
                write!(f, "kernel {kernel} reported unknown status {status}")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<argen_core::Error> for Error {
    fn from(e: argen_core::Error) -> Self {
        Error::Core(e)
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of [`crate::GpuBackend`] inside `argen_model::ModelHost`'s decoding loop: a row-level
/// error stays the core error the reference would return; a device failure becomes a model
/// device error.
impl From<Error> for argen_model::HostError {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(c) => argen_model::HostError::Core(c),
            other => {
                argen_model::HostError::Model(argen_model::ModelError::Device(other.to_string()))
            }
        }
    }
}
