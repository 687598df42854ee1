//! Zero-copy views of NumPy arrays and PyTorch tensors.
//!
//! An array argument is resolved, in this order, through
//! 1. **DLPack** (`obj.__dlpack__()`, the protocol of NumPy >= 1.22, PyTorch, JAX, CuPy, ...): the
//!    capsule's `DLManagedTensor` gives the data pointer, dtype, shape and strides. The capsule is
//!    *not* consumed: it is kept alive while argen reads and then released, and the producer's
//!    capsule destructor frees the export (the DLPack rule for unconsumed capsules);
//! 2. the **NumPy array interface** (`obj.__array_interface__`, version 3), which also covers
//!    read-only NumPy arrays that NumPy refuses to export through DLPack.
//!
//! (The Python buffer protocol is not in the stable ABI before Python 3.11, and this package is
//! one abi3 wheel for Python >= 3.9; every NumPy array and PyTorch CPU tensor speaks one of the
//! two protocols above.)
//!
//! Either way argen reads the caller's memory in place: it never copies logits. The view demands
//! host (CPU) memory, one lane per element, C-contiguous layout (dimensions of size 1 may have any
//! stride) and alignment for the element type; anything else is a `LayoutError`, never a silent
//! copy.

use crate::errors::{err, layout, wrong_type};
use argen_ffi::argen_status;
use argen_ffi::embed::{Dtype, Rows};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::ffi::{c_void, CStr};

/// Element types an array may hold (floats for logits and embeddings, integers for ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// float32.
    F32,
    /// float16.
    F16,
    /// bfloat16.
    Bf16,
    /// float64.
    F64,
    /// Signed integer of this many bytes.
    Int(usize),
    /// Unsigned integer of this many bytes.
    UInt(usize),
    /// Boolean.
    Bool,
}

impl Elem {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F16 | Elem::Bf16 => 2,
            Elem::F64 => 8,
            Elem::Int(n) | Elem::UInt(n) => n,
            Elem::Bool => 1,
        }
    }

    /// The name NumPy / PyTorch users know (`"float32"`, `"bfloat16"`, `"int64"`, ...).
    pub fn name(self) -> String {
        match self {
            Elem::F32 => "float32".into(),
            Elem::F16 => "float16".into(),
            Elem::Bf16 => "bfloat16".into(),
            Elem::F64 => "float64".into(),
            Elem::Int(n) => format!("int{}", 8 * n),
            Elem::UInt(n) => format!("uint{}", 8 * n),
            Elem::Bool => "bool".into(),
        }
    }

    /// The logits dtype, if this is one.
    pub fn logit_dtype(self) -> Option<Dtype> {
        match self {
            Elem::F32 => Some(Dtype::F32),
            Elem::F16 => Some(Dtype::F16),
            Elem::Bf16 => Some(Dtype::Bf16),
            _ => None,
        }
    }
}

/// A resolved, contiguous, host-memory array borrowed from a Python object.
pub struct ArrayView<'py> {
    /// First element.
    pub ptr: *const u8,
    /// Element type.
    pub elem: Elem,
    /// Shape (row-major, contiguous).
    pub shape: Vec<usize>,
    /// The object the memory belongs to (and the DLPack capsule, if one was made); kept alive
    /// while the view is.
    _keep: Vec<Bound<'py, PyAny>>,
}

impl ArrayView<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The elements as logit rows (f32, f16 or bf16).
    pub fn rows(&self) -> PyResult<Rows<'_>> {
        let dtype = self.elem.logit_dtype().ok_or_else(|| {
            err(
                argen_status::ARGEN_ERR_BAD_DTYPE,
                format!(
                    "logits must be float32, float16 or bfloat16, got {}",
                    self.elem.name()
                ),
            )
        })?;
        // SAFETY: `ptr` points to `len()` contiguous, aligned elements of `dtype` owned by an
        // object `_keep` holds alive for the lifetime of `self`; argen only reads them, with the GIL
        // held throughout.
        unsafe { Rows::from_raw(self.ptr, dtype, self.len()) }.map_err(crate::errors::to_py)
    }

    /// Copies integer elements into `u32`s (token ids, parents, neighbour ids), checking range.
    pub fn to_u32(&self, what: &str) -> PyResult<Vec<u32>> {
        let n = self.len();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: `i < len()` elements of `elem.size()` bytes each, aligned (checked when
            // the view was made); read unaligned anyway to keep this independent of that check.
            let v: i128 = unsafe {
                let p = self.ptr.add(i * self.elem.size());
                match self.elem {
                    Elem::Int(1) => p.cast::<i8>().read_unaligned() as i128,
                    Elem::Int(2) => p.cast::<i16>().read_unaligned() as i128,
                    Elem::Int(4) => p.cast::<i32>().read_unaligned() as i128,
                    Elem::Int(8) => p.cast::<i64>().read_unaligned() as i128,
                    Elem::UInt(1) => p.read_unaligned() as i128,
                    Elem::UInt(2) => p.cast::<u16>().read_unaligned() as i128,
                    Elem::UInt(4) => p.cast::<u32>().read_unaligned() as i128,
                    Elem::UInt(8) => p.cast::<u64>().read_unaligned() as i128,
                    _ => {
                        return Err(err(
                            argen_status::ARGEN_ERR_BAD_DTYPE,
                            format!("{what} must hold integers, got {}", self.elem.name()),
                        ))
                    }
                }
            };
            out.push(u32::try_from(v).map_err(|_| {
                err(
                    argen_status::ARGEN_ERR_INVALID_ARGUMENT,
                    format!("{what}[{i}] = {v} is not in 0..2^32"),
                )
            })?);
        }
        Ok(out)
    }

    /// Copies float32 elements (embeddings, codebooks).
    pub fn to_f32(&self, what: &str) -> PyResult<Vec<f32>> {
        if self.elem != Elem::F32 {
            return Err(err(
                argen_status::ARGEN_ERR_BAD_DTYPE,
                format!("{what} must be float32, got {}", self.elem.name()),
            ));
        }
        // SAFETY: `len()` contiguous aligned f32 kept alive by `_keep` (see `rows`).
        let s = unsafe { std::slice::from_raw_parts(self.ptr.cast::<f32>(), self.len()) };
        Ok(s.to_vec())
    }
}

// ---- DLPack (legacy, unversioned `DLManagedTensor`, as `__dlpack__()` returns by default) ----

#[repr(C)]
struct DLDevice {
    device_type: i32,
    device_id: i32,
}

#[repr(C)]
struct DLDataType {
    code: u8,
    bits: u8,
    lanes: u16,
}

#[repr(C)]
struct DLTensor {
    data: *mut c_void,
    device: DLDevice,
    ndim: i32,
    dtype: DLDataType,
    shape: *mut i64,
    strides: *mut i64,
    byte_offset: u64,
}

#[repr(C)]
struct DLManagedTensor {
    dl_tensor: DLTensor,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}

const DLPACK_NAME: &CStr = c"dltensor";
const KDL_CPU: i32 = 1;
const KDL_CUDA_HOST: i32 = 3;

fn dl_elem(code: u8, bits: u8, lanes: u16) -> PyResult<Elem> {
    if lanes != 1 {
        return Err(layout(format!(
            "vector element types ({lanes} lanes) are not supported"
        )));
    }
    let bytes = bits as usize / 8;
    Ok(match (code, bits) {
        (2, 32) => Elem::F32,
        (2, 16) => Elem::F16,
        (2, 64) => Elem::F64,
        (4, 16) => Elem::Bf16,
        (0, 8 | 16 | 32 | 64) => Elem::Int(bytes),
        (1, 8 | 16 | 32 | 64) => Elem::UInt(bytes),
        (6, 8) => Elem::Bool,
        _ => {
            return Err(err(
                argen_status::ARGEN_ERR_BAD_DTYPE,
                format!("unsupported DLPack dtype (code {code}, {bits} bits)"),
            ))
        }
    })
}

/// Checks that `strides` (in elements, or `None` for compact) describe a C-contiguous `shape`.
fn check_contiguous(shape: &[usize], strides: Option<&[i64]>, unit: i64) -> PyResult<()> {
    let Some(strides) = strides else {
        return Ok(());
    };
    if shape.contains(&0) {
        return Ok(()); // no element: any strides describe the same (empty) memory
    }
    let mut expected: i64 = unit;
    for (&n, &s) in shape.iter().zip(strides).rev() {
        if n != 1 && s != expected {
            return Err(layout(format!(
                "array is not C-contiguous (shape {shape:?}, strides {strides:?}); pass \
                 a contiguous array (e.g. `numpy.ascontiguousarray(x)` or `x.contiguous()`) — \
                 argen reads logits in place and never copies them"
            )));
        }
        expected = expected.saturating_mul(n as i64);
    }
    Ok(())
}

fn finish<'py>(
    ptr: *const u8,
    elem: Elem,
    shape: Vec<usize>,
    keep: Vec<Bound<'py, PyAny>>,
) -> PyResult<ArrayView<'py>> {
    let len = shape.iter().try_fold(1usize, |a, &n| a.checked_mul(n));
    if len.is_none_or(|l| {
        l.checked_mul(elem.size())
            .is_none_or(|b| b > isize::MAX as usize)
    }) {
        return Err(layout(format!("array shape {shape:?} is too large")));
    }
    if len != Some(0) {
        if ptr.is_null() {
            return Err(layout("array has a NULL data pointer"));
        }
        if (ptr as usize) % elem.size() != 0 {
            return Err(layout(format!(
                "array data at {ptr:p} is not aligned for {}",
                elem.name()
            )));
        }
    }
    Ok(ArrayView {
        ptr,
        elem,
        shape,
        _keep: keep,
    })
}

fn from_dlpack<'py>(
    obj: &Bound<'py, PyAny>,
    capsule: Bound<'py, PyAny>,
) -> PyResult<ArrayView<'py>> {
    let raw = capsule.as_ptr();
    // SAFETY: `raw` is a live object (we hold `capsule`); both calls are stable-ABI capsule API.
    let managed = unsafe {
        if pyo3::ffi::PyCapsule_IsValid(raw, DLPACK_NAME.as_ptr()) != 1 {
            return Err(wrong_type(
                "`__dlpack__()` did not return an unconsumed \"dltensor\" capsule",
            ));
        }
        pyo3::ffi::PyCapsule_GetPointer(raw, DLPACK_NAME.as_ptr()).cast::<DLManagedTensor>()
    };
    if managed.is_null() {
        return Err(wrong_type("DLPack capsule holds a NULL tensor"));
    }
    // SAFETY: a valid "dltensor" capsule holds a `DLManagedTensor` that lives as long as the
    // unconsumed capsule; its shape/strides arrays hold `ndim` entries (DLPack contract).
    let (ptr, elem, shape) = unsafe {
        let t = &(*managed).dl_tensor;
        if t.device.device_type != KDL_CPU && t.device.device_type != KDL_CUDA_HOST {
            return Err(layout(format!(
                "tensor is on DLPack device type {} (id {}); argen's Python API reads host \
                 (CPU) memory: move it with `.cpu()` first",
                t.device.device_type, t.device.device_id
            )));
        }
        let elem = dl_elem(t.dtype.code, t.dtype.bits, t.dtype.lanes)?;
        let ndim = usize::try_from(t.ndim).map_err(|_| layout("negative ndim"))?;
        let dims: &[i64] = if ndim == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(t.shape, ndim)
        };
        let shape: Vec<usize> = dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| layout("negative dimension")))
            .collect::<PyResult<_>>()?;
        let strides =
            (!t.strides.is_null() && ndim > 0).then(|| std::slice::from_raw_parts(t.strides, ndim));
        check_contiguous(&shape, strides, 1)?;
        let ptr = (t.data as *const u8).wrapping_add(t.byte_offset as usize);
        (ptr, elem, shape)
    };
    finish(ptr, elem, shape, vec![obj.clone(), capsule])
}

fn typestr_elem(typestr: &str) -> PyResult<Elem> {
    let b = typestr.as_bytes();
    if b.len() < 3 {
        return Err(wrong_type(format!(
            "bad __array_interface__ typestr {typestr:?}"
        )));
    }
    let little = cfg!(target_endian = "little");
    let native = match b[0] {
        b'|' | b'=' => true,
        b'<' => little,
        b'>' => !little,
        _ => false,
    };
    let size: usize = typestr[2..]
        .parse()
        .map_err(|_| wrong_type(format!("bad __array_interface__ typestr {typestr:?}")))?;
    let elem = match (b[1], size) {
        (b'f', 4) => Elem::F32,
        (b'f', 2) => Elem::F16,
        (b'f', 8) => Elem::F64,
        (b'i', 1 | 2 | 4 | 8) => Elem::Int(size),
        (b'u', 1 | 2 | 4 | 8) => Elem::UInt(size),
        (b'b', 1) => Elem::Bool,
        _ => {
            return Err(err(
                argen_status::ARGEN_ERR_BAD_DTYPE,
                format!("unsupported array dtype {typestr:?}"),
            ))
        }
    };
    if !native && size > 1 {
        return Err(layout(format!(
            "array is not in native byte order ({typestr:?})"
        )));
    }
    Ok(elem)
}

fn from_array_interface<'py>(
    obj: &Bound<'py, PyAny>,
    ai: Bound<'py, PyAny>,
) -> PyResult<ArrayView<'py>> {
    let ai = ai
        .downcast::<PyDict>()
        .map_err(|_| wrong_type("__array_interface__ is not a dict"))?;
    let get = |k: &str| -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(ai.get_item(k)?.filter(|v| !v.is_none()))
    };
    if get("mask")?.is_some() {
        return Err(layout("masked arrays are not supported"));
    }
    let typestr: String = get("typestr")?
        .ok_or_else(|| wrong_type("__array_interface__ has no typestr"))?
        .extract()?;
    let elem = typestr_elem(&typestr)?;
    let shape: Vec<usize> = get("shape")?
        .ok_or_else(|| wrong_type("__array_interface__ has no shape"))?
        .extract()?;
    let data = get("data")?.ok_or_else(|| {
        layout("array exposes no data pointer (__array_interface__ data is None)")
    })?;
    let data = data
        .downcast::<PyTuple>()
        .map_err(|_| layout("array data is a buffer object, not a pointer; pass a NumPy array"))?;
    let addr: usize = data.get_item(0)?.extract()?;
    let offset: usize = get("offset")?
        .map(|o| o.extract())
        .transpose()?
        .unwrap_or(0);
    let strides: Option<Vec<i64>> = get("strides")?.map(|s| s.extract()).transpose()?;
    check_contiguous(&shape, strides.as_deref(), elem.size() as i64)?;
    let ptr = (addr as *const u8).wrapping_add(offset);
    finish(ptr, elem, shape, vec![obj.clone()])
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Resolves `obj` (a NumPy array, a PyTorch tensor, anything with `__dlpack__` or
/// `__array_interface__`) into a view of its memory, without copying.
pub fn view<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<ArrayView<'py>> {
    let py = obj.py();
    let mut dlpack_error = None;
    // NumPy cannot export a read-only array through DLPack 0.x: it raises BufferError, and
    // building that exception costs microseconds per call. Such arrays go straight to the array
    // interface (which reads them in place too).
    // (Looked up on the type: on a NumPy array the attribute is a property that builds a dict.)
    let type_ai = obj.get_type().hasattr("__array_interface__")?;
    let readonly = type_ai
        && obj
            .getattr("flags")
            .and_then(|f| f.getattr("writeable"))
            .and_then(|w| w.extract::<bool>())
            .is_ok_and(|w| !w);
    if !readonly && obj.hasattr("__dlpack__")? {
        match obj.call_method0("__dlpack__") {
            Ok(capsule) => return from_dlpack(obj, capsule),
            Err(e) => dlpack_error = Some(e.value(py).to_string()),
        }
    }
    if type_ai || obj.hasattr("__array_interface__")? {
        let ai = obj.getattr("__array_interface__")?;
        return from_array_interface(obj, ai);
    }
    if let Some(e) = dlpack_error {
        return Err(layout(format!(
            "{what}: cannot read the {} through DLPack: {e}",
            type_name(obj)
        )));
    }
    Err(wrong_type(format!(
        "{what} must be a NumPy array or a tensor (an object with __dlpack__ or \
         __array_interface__), got {}",
        type_name(obj)
    )))
}
