"""argen's exceptions.

Every error argen raises is an :class:`ArgenError`. Each class also derives from the builtin
exception a Python user would expect (``ValueError`` for bad values, ``TypeError`` for bad types),
so ``except ValueError`` keeps working. Every instance carries

* ``code``: the status number, the same the C ABI (``include/argen.h``) returns;
* ``status``: its C name, e.g. ``"ARGEN_ERR_LENGTH_MISMATCH"``;

and ``str(exc)`` is argen's one-line message.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "ArgenError",
    "InvalidArgumentError",
    "LengthError",
    "DtypeError",
    "LayoutError",
    "ArgenTypeError",
    "LogitsError",
    "DistributionError",
    "ProtocolError",
    "CapacityError",
    "InternalError",
    "ModelError",
    "ArgenRuntimeError",
]


class ArgenError(Exception):
    """Base class of every argen error."""

    code: Optional[int]
    status: Optional[str]

    def __init__(self, message: str, code: Optional[int] = None, status: Optional[str] = None):
        super().__init__(message)
        self.code = code
        self.status = status


class InvalidArgumentError(ArgenError, ValueError):
    """A parameter outside its documented range: temperature, top-k/p, row or token indices,
    criterion parameters, malformed neighbour tables, draft trees whose parents do not precede
    their children."""


class LengthError(InvalidArgumentError):
    """Lengths that must agree do not (logits not a multiple of the vocabulary, too small
    outputs, tokens and parents of different lengths)."""


class DtypeError(ArgenError, TypeError):
    """An array holds the wrong element type (logits must be float32, float16 or bfloat16)."""


class LayoutError(ArgenError, ValueError):
    """An array cannot be read in place: non-contiguous, misaligned, not in host memory, or
    a tensor that refuses export (e.g. one that requires grad). argen never copies logits."""


class ArgenTypeError(ArgenError, TypeError):
    """A Python object of the wrong type (e.g. a list where an array is needed)."""


class LogitsError(ArgenError, ValueError):
    """Logits argen cannot sample from: NaN or +inf, every entry masked (-inf), or scaling that
    overflows."""


class DistributionError(ArgenError, ValueError):
    """A distribution with zero mass where a draw needs mass (e.g. a row never processed, or a
    drafted token with zero draft probability)."""


class ProtocolError(ArgenError):
    """An object used out of order or after it was released."""


class CapacityError(ArgenError):
    """A fixed capacity, step bound or allocation limit would be exceeded."""


class InternalError(ArgenError):
    """A bug in argen (a caught panic); please report it."""


class ModelError(ArgenError, OSError):
    """A model directory argen cannot use: a file missing, unreadable or malformed, or a file
    the method needs (the drafter of speculative methods) absent."""


class ArgenRuntimeError(ArgenError, RuntimeError):
    """The runtime failed while generating (thread pool, a decoding error)."""
