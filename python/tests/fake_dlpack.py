"""A minimal DLPack producer written with ctypes, to exercise argen's DLPack reader on layouts
no installed library may produce here: bfloat16 without PyTorch, device memory, vector lanes,
explicit strides and byte offsets."""

from __future__ import annotations

import ctypes

import numpy as np


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [
        ("dl_tensor", DLTensor),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
    ]


_NAME = b"dltensor"
_new_capsule = ctypes.pythonapi.PyCapsule_New
_new_capsule.restype = ctypes.py_object
_new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]

CPU, CUDA = 1, 2
FLOAT, BFLOAT = 2, 4


class FakeTensor:
    """Exports `buffer` (a NumPy array holding the raw elements) through `__dlpack__` with the
    given DLPack dtype, shape, strides (elements; None = compact), byte offset and device."""

    def __init__(self, buffer, code, bits, shape, strides=None, byte_offset=0, device=CPU, lanes=1):
        self.buffer = buffer  # keeps the memory alive
        n = len(shape)
        self._shape = (ctypes.c_int64 * n)(*shape)
        self._strides = (ctypes.c_int64 * n)(*strides) if strides is not None else None
        self._managed = DLManagedTensor()
        t = self._managed.dl_tensor
        t.data = buffer.ctypes.data
        t.device = DLDevice(device, 0)
        t.ndim = n
        t.dtype = DLDataType(code, bits, lanes)
        t.shape = ctypes.cast(self._shape, ctypes.POINTER(ctypes.c_int64))
        t.strides = (
            ctypes.cast(self._strides, ctypes.POINTER(ctypes.c_int64))
            if self._strides is not None
            else None
        )
        t.byte_offset = byte_offset

    @property
    def data_address(self) -> int:
        return self.buffer.ctypes.data + self._managed.dl_tensor.byte_offset

    def __dlpack__(self, stream=None):
        # No destructor: the memory belongs to this object, which outlives the call.
        return _new_capsule(ctypes.addressof(self._managed), _NAME, None)

    def __dlpack_device__(self):
        return (self._managed.dl_tensor.device.device_type, 0)


def bf16(bits_u16: np.ndarray, shape) -> FakeTensor:
    """A bfloat16 tensor over raw u16 bit patterns."""
    buf = np.ascontiguousarray(bits_u16, dtype=np.uint16)
    return FakeTensor(buf, BFLOAT, 16, shape)
