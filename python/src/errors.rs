//! argen's status codes as Python exceptions.
//!
//! The exception classes live in `argen/errors.py` (so that they can inherit from both
//! `ArgenError` and the matching builtin, e.g. `ValueError`); this module picks the class for a
//! status code — the same codes the C ABI returns — and raises it with argen's one-line message.
//! Every exception carries `.code` (the `argen_status` number) and `.status` (its C name).

use argen_ffi::{argen_status, FfiError};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// The `argen.errors` class raised for `status`.
pub fn class_name(status: argen_status) -> &'static str {
    use argen_status::*;
    match status {
        ARGEN_ERR_BAD_DTYPE => "DtypeError",
        ARGEN_ERR_BAD_LAYOUT => "LayoutError",
        ARGEN_ERR_WRONG_TYPE => "ArgenTypeError",
        ARGEN_ERR_LENGTH_MISMATCH | ARGEN_ERR_BUFFER_TOO_SMALL => "LengthError",
        ARGEN_ERR_NON_FINITE_LOGIT | ARGEN_ERR_ALL_MASKED | ARGEN_ERR_OVERFLOW => "LogitsError",
        ARGEN_ERR_ZERO_MASS => "DistributionError",
        ARGEN_ERR_PROTOCOL | ARGEN_ERR_INVALID_HANDLE => "ProtocolError",
        ARGEN_ERR_CAPACITY | ARGEN_ERR_ALLOCATION => "CapacityError",
        ARGEN_ERR_PANIC | ARGEN_ERR_UNKNOWN | ARGEN_OK => "InternalError",
        ARGEN_ERR_MODEL => "ModelError",
        ARGEN_ERR_RUNTIME => "ArgenRuntimeError",
        ARGEN_ERR_NULL_POINTER
        | ARGEN_ERR_STRUCT_SIZE
        | ARGEN_ERR_INVALID_ARGUMENT
        | ARGEN_ERR_TOKEN_OUT_OF_RANGE
        | ARGEN_ERR_NEIGHBOUR_TABLE => "InvalidArgumentError",
    }
}

/// An `argen.errors` exception for `status` with `message`.
pub fn err(status: argen_status, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::with_gil(|py| {
        let made = (|| -> PyResult<PyErr> {
            let cls = py.import("argen.errors")?.getattr(class_name(status))?;
            let exc = cls.call1((message.clone(), status as i32, status.name()))?;
            Ok(PyErr::from_value(exc))
        })();
        made.unwrap_or_else(|e| {
            PyRuntimeError::new_err(format!(
                "{message} ({}; argen.errors unavailable: {e})",
                status.name()
            ))
        })
    })
}

/// The Python exception of an embedding-layer error.
pub fn to_py(e: FfiError) -> PyErr {
    err(e.status, e.message)
}

/// A `LayoutError` (non-contiguous, misaligned, not in host memory, ...).
pub fn layout(message: impl Into<String>) -> PyErr {
    err(argen_status::ARGEN_ERR_BAD_LAYOUT, message)
}

/// An `ArgenTypeError` (a Python object of the wrong type).
pub fn wrong_type(message: impl Into<String>) -> PyErr {
    err(argen_status::ARGEN_ERR_WRONG_TYPE, message)
}

/// An `InvalidArgumentError`.
pub fn invalid(message: impl Into<String>) -> PyErr {
    err(argen_status::ARGEN_ERR_INVALID_ARGUMENT, message)
}
