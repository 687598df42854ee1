"""argen's DLPack reader on hand-made DLPack exports (see fake_dlpack.py): bfloat16 parity with
the core without PyTorch, and refusals of what cannot be read in place."""

from __future__ import annotations

import numpy as np
import pytest

import argen
from conftest import bits
from fake_dlpack import BFLOAT, CUDA, FLOAT, FakeTensor, bf16
from test_parity import check_case


def test_bf16_rows_equal_the_core(vectors):
    cases = [c for c in vectors["process"] if c["dtype"] == "bf16"]
    assert cases
    for case in cases:
        t = bf16(bits(case["bits"], "bf16"), (case["rows"], vectors["vocab"]))
        assert argen.array_info(t) == (t.data_address, "bfloat16", [case["rows"], vectors["vocab"]])
        check_case(case, t, vectors["vocab"])


def test_explicit_compact_strides_and_byte_offset_are_read_in_place():
    base = np.arange(4 * 16, dtype=np.float32)
    t = FakeTensor(base, FLOAT, 32, (2, 16), strides=(16, 1), byte_offset=2 * 16 * 4)
    ptr, name, shape = argen.array_info(t)
    assert ptr == base.ctypes.data + 128 and name == "float32" and shape == [2, 16]
    s = argen.Sampler(16, 1)
    s.process(t, argen.ProcessJob(0, 1, temperature=0.0))
    assert s.sample(0, argen.Key(0, 0, 1, 0)) == 15  # row 1 of the view = row 3 of base


def test_device_memory_is_refused():
    t = FakeTensor(np.zeros(16, dtype=np.float32), FLOAT, 32, (1, 16), device=CUDA)
    with pytest.raises(argen.LayoutError, match="device type 2"):
        argen.Sampler(16, 1).process(t, argen.ProcessJob(0))


def test_non_contiguous_strides_are_refused():
    t = FakeTensor(np.zeros(64, dtype=np.float32), FLOAT, 32, (2, 16), strides=(32, 2))
    with pytest.raises(argen.LayoutError, match="not C-contiguous"):
        argen.array_info(t)


def test_vector_lanes_and_odd_dtypes_are_refused():
    t = FakeTensor(np.zeros(32, dtype=np.float32), FLOAT, 32, (1, 16), lanes=2)
    with pytest.raises(argen.LayoutError, match="lanes"):
        argen.array_info(t)
    t = FakeTensor(np.zeros(32, dtype=np.uint8), 5, 8, (1, 16))
    with pytest.raises(argen.DtypeError, match="code 5"):
        argen.array_info(t)
    t = FakeTensor(np.zeros(16, dtype=np.uint16), BFLOAT, 16, (1, 16))
    assert argen.array_info(t)[1] == "bfloat16"


def test_misaligned_data_is_refused():
    raw = np.zeros(70, dtype=np.uint8)
    t = FakeTensor(raw, FLOAT, 32, (1, 16), byte_offset=1 if (raw.ctypes.data + 1) % 4 else 2)
    with pytest.raises(argen.LayoutError, match="aligned"):
        argen.array_info(t)
