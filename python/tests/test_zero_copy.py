"""Logits are read in place: the address argen reads is the caller's buffer, for NumPy arrays
(DLPack and the array interface) and PyTorch tensors (DLPack), including views at an offset."""

from __future__ import annotations

import numpy as np
import pytest

import argen


def addr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_numpy_pointer_is_the_arrays(dtype):
    a = np.linspace(-3, 3, 64, dtype=dtype).reshape(4, 16)
    ptr, name, shape = argen.array_info(a)
    assert ptr == addr(a) == a.ctypes.data
    assert name == np.dtype(dtype).name
    assert shape == [4, 16]


def test_numpy_row_view_at_an_offset_is_not_copied():
    base = np.arange(5 * 16, dtype=np.float32).reshape(5, 16)
    view = base[2:4]
    ptr, _, shape = argen.array_info(view)
    assert ptr == base.ctypes.data + 2 * 16 * 4
    assert shape == [2, 16]


def test_read_only_numpy_array_is_read_in_place():
    a = np.arange(16, dtype=np.float32)
    a.flags.writeable = False  # NumPy refuses DLPack export: argen uses the array interface
    assert argen.array_info(a)[0] == addr(a)
    s = argen.Sampler(16, 1)
    s.process(a, argen.ProcessJob(0, temperature=0.0))
    assert s.sample(0, argen.Key(0, 0, 1, 0)) == 15


def test_argen_reads_the_current_contents_of_the_buffer():
    a = np.zeros((1, 8), dtype=np.float32)
    s = argen.Sampler(8, 1)
    for hot in (3, 6, 1):
        a[:] = 0
        a[0, hot] = 10.0  # written through the caller's array, seen by argen
        s.process(a, argen.ProcessJob(0, temperature=0.0))
        assert s.sample(0, argen.Key(0, 0, 1, 0)) == hot


def test_scalar_dimension_of_size_one_with_any_stride():
    base = np.zeros((8, 16), dtype=np.float32)
    col = base[3:4, :]  # shape (1, 16): contiguous in the sense that matters
    assert argen.array_info(col)[0] == base.ctypes.data + 3 * 16 * 4


@pytest.mark.parametrize("name", ["float32", "float16", "bfloat16"])
def test_torch_pointer_is_the_tensors(torch, name):
    t = torch.linspace(-2, 2, 48).to(getattr(torch, name)).reshape(3, 16)
    ptr, got, shape = argen.array_info(t)
    assert ptr == t.data_ptr()
    assert got == name and shape == [3, 16]
    s = argen.Sampler(16, 1)
    s.process(t, argen.ProcessJob(0, 2, temperature=0.0))
    assert s.sample(0, argen.Key(0, 0, 1, 0)) == 15


def test_torch_slice_at_an_offset_is_not_copied(torch):
    base = torch.arange(6 * 16, dtype=torch.float32).reshape(6, 16)
    view = base[1:3]
    assert argen.array_info(view)[0] == view.data_ptr() == base.data_ptr() + 16 * 4


def test_torch_non_contiguous_and_grad_tensors_are_refused(torch):
    t = torch.zeros(16, 4).t()
    with pytest.raises(argen.LayoutError, match="not C-contiguous"):
        argen.array_info(t)
    g = torch.zeros(2, 8, requires_grad=True)
    with pytest.raises(argen.LayoutError, match="DLPack"):
        argen.Sampler(8, 1).process(g, argen.ProcessJob(0))


class OnlyArrayInterface:
    """Exposes a NumPy array through the array interface alone."""

    def __init__(self, a):
        self._a = a
        self.__array_interface__ = a.__array_interface__


class OnlyDLPack:
    """Exposes a NumPy array through DLPack alone."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


@pytest.mark.parametrize("wrap", [OnlyArrayInterface, OnlyDLPack])
def test_each_protocol_alone_reads_in_place(wrap):
    a = np.linspace(0, 1, 32, dtype=np.float32).reshape(2, 16)
    obj = wrap(a)
    assert argen.array_info(obj)[0] == a.ctypes.data
    s = argen.Sampler(16, 1)
    s.process(obj, argen.ProcessJob(0, 1))
    t = argen.Sampler(16, 1)
    t.process(a, argen.ProcessJob(0, 1))
    assert s.weights(0) == t.weights(0)


def test_big_endian_arrays_are_refused():
    a = np.zeros((1, 16), dtype=">f4")
    with pytest.raises((argen.LayoutError, argen.DtypeError)):
        argen.array_info(OnlyArrayInterface(a))
