"""argen for Python: deterministic keyed sampling and speculative-decoding verification for
visual autoregressive image generators (LlamaGen, Janus-Pro, Lumina-mGPT, ...).

The low-level API lets a Python host that runs its own model (e.g. in PyTorch) hand argen its
logits and get tokens back, bit for bit as argen's Rust core and C ABI produce them:

* :class:`Key` — the keyed RNG (scheme v1): stream words, uniform integers and floats;
* :class:`Sampler` — distribution rows processed from logit rows (float32, float16, bfloat16;
  plain, two-way or three-way CFG; temperature, top-k, top-p, min-p), keyed sampling, top-k,
  and draft-tree verification with a :class:`Criterion` (exact, coupled, LANTERN, grouped);
* :func:`sample_rows` — one keyed draw per row, in one call;
* :func:`neighbour_table` — LANTERN's latent-neighbour table of a codebook;
* :class:`Decoder` — a decoder of any method (vanilla, speculative decoding with the exact,
  coupled, LANTERN or grouped criterion, VVS, Jacobi; Best-of-N, GridAR) from a config dict,
  driven through ``poll()`` / ``handle_logits()`` by a host that runs its own model
  (:mod:`argen.decoder`; needs NumPy).

The high-level API loads an argen model directory and generates images with any method, the
pipeline of the ``argen`` command: :class:`Model` (``Model(dir).generate(prompt=…, method=…,
seed=…, **options)`` → :class:`Generation` with tokens, an RGB image array and stats).

Logits are NumPy arrays or PyTorch CPU tensors, read in place through DLPack or the NumPy array
interface — never copied (:func:`array_info` shows the address argen reads). Errors are
:mod:`argen.errors` exceptions carrying argen's message and C status code.

Example::

    import numpy as np, argen
    logits = np.random.default_rng(0).standard_normal((2, 16384), dtype=np.float32)
    s = argen.Sampler(vocab=16384, rows=1)
    s.process(logits, argen.ProcessJob(out=0, row=0, uncond=1, cfg_scale=4.0, top_k=1000))
    token = s.sample(0, argen.Key(seed=7, stream=0, purpose=argen.PURPOSE_SAMPLE, position=0))
"""

from . import errors
from ._argen import (
    MAX_KEY_TOKEN,
    PURPOSE_ACCEPT,
    PURPOSE_CANDIDATE,
    PURPOSE_DRAFT,
    PURPOSE_JACOBI_INIT,
    PURPOSE_PATH,
    PURPOSE_RESIDUAL,
    PURPOSE_SAMPLE,
    ROOT,
    WORDS_PER_KEY,
    Criterion,
    Key,
    ProcessJob,
    Sampler,
    __version__,
    array_info,
    neighbour_table,
    sample_rows,
    status_name,
)
from .model import METHODS, Generation, Model
from .errors import (
    ArgenError,
    ArgenRuntimeError,
    ModelError,
    ArgenTypeError,
    CapacityError,
    DistributionError,
    DtypeError,
    InternalError,
    InvalidArgumentError,
    LayoutError,
    LengthError,
    LogitsError,
    ProtocolError,
)



def __getattr__(name: str):
    # The decoder API needs NumPy; import it on first use so that the rest works without it.
    if name in ("Decoder", "Action", "Group", "config_requirements", "decoder"):
        import importlib

        decoder = importlib.import_module(".decoder", __name__)
        return decoder if name == "decoder" else getattr(decoder, name)
    raise AttributeError(f"module 'argen' has no attribute {name!r}")


__all__ = [
    "Decoder",
    "Action",
    "Group",
    "config_requirements",
    "Model",
    "Generation",
    "METHODS",
    "ModelError",
    "ArgenRuntimeError",
    "Key",
    "ProcessJob",
    "Criterion",
    "Sampler",
    "sample_rows",
    "neighbour_table",
    "array_info",
    "status_name",
    "errors",
    "ArgenError",
    "ArgenTypeError",
    "CapacityError",
    "DistributionError",
    "DtypeError",
    "InternalError",
    "InvalidArgumentError",
    "LayoutError",
    "LengthError",
    "LogitsError",
    "ProtocolError",
    "ROOT",
    "WORDS_PER_KEY",
    "MAX_KEY_TOKEN",
    "PURPOSE_SAMPLE",
    "PURPOSE_ACCEPT",
    "PURPOSE_RESIDUAL",
    "PURPOSE_DRAFT",
    "PURPOSE_PATH",
    "PURPOSE_JACOBI_INIT",
    "PURPOSE_CANDIDATE",
    "__version__",
]
