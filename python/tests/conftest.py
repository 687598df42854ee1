"""Shared helpers: the known-answer fixtures of the repository (computed by argen-core)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"


def bits(hexstr: str, dtype: str) -> np.ndarray:
    """Element bit patterns of a fixture hex string (8 digits per f32, 4 per f16/bf16)."""
    raw = bytes.fromhex(hexstr)
    if dtype == "f32":
        return np.frombuffer(raw, dtype=">u4").astype(np.uint32)
    return np.frombuffer(raw, dtype=">u2").astype(np.uint16)


def as_numpy(hexstr: str, dtype: str, rows: int) -> np.ndarray:
    """A fixture row batch as a NumPy array (f32 or f16)."""
    b = bits(hexstr, dtype)
    arr = b.view(np.float32) if dtype == "f32" else b.view(np.float16)
    return arr.reshape(rows, -1)


def as_torch(hexstr: str, dtype: str, rows: int):
    """A fixture row batch as a PyTorch tensor (f32, f16 or bf16)."""
    import torch

    b = bits(hexstr, dtype)
    if dtype == "f32":
        return torch.from_numpy(b.view(np.int32).copy()).view(torch.float32).reshape(rows, -1)
    t = torch.from_numpy(b.view(np.int16).copy())
    return t.view(torch.float16 if dtype == "f16" else torch.bfloat16).reshape(rows, -1)


@pytest.fixture(scope="session")
def vectors() -> dict:
    """fixtures/ffi_rows_v1.json (generated from argen-core by crates/argen-ffi/tests/vectors.rs)."""
    return json.loads((FIXTURES / "ffi_rows_v1.json").read_text())


@pytest.fixture(scope="session")
def rng_lines() -> list:
    """The lines of fixtures/rng_v1.txt (argen-core's RNG and pipeline known answers)."""
    return (FIXTURES / "rng_v1.txt").read_text().splitlines()


@pytest.fixture
def torch():
    """PyTorch, or a skip when it is not installed (or not importable on this machine)."""
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install (e.g. missing CUDA libraries)
        pytest.skip(f"torch not usable: {e}")
    return torch
