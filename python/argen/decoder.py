"""Decoders of any method, driven by a Python host through ``poll()`` / ``handle_*``.

A :class:`Decoder` is argen's sans-IO state machine for one request (protocol v2, the
``argen_core::decode::protocol`` module documentation): it never runs a model, it says which
forward to run next. The host loop::

    dec = argen.Decoder(config, vocab=16384)
    while True:
        a = dec.poll()
        if a.kind == "done":
            break
        if a.model is not None:                 # "target" or "drafter": one forward
            for g in a.groups:                  # one group per sequence, in answer order
                ...                             # prefill / target (keep) / draft (new_step, commit)
            dec.handle_logits(rows)             # (a.logits_rows, vocab), group after group
        elif a.kind == "check":
            dec.handle_verdict(judge(a.seq, a.canvas))
        elif a.kind == "score":
            dec.handle_score(score(a.canvas))
        elif a.kind == "reformulate":
            dec.handle_reformulated()
    tokens = dec.tokens(dec.result_seq())

``config`` is a ``DecoderConfig`` as a dict (JSON shape: ``crates/argen-core/src/decode/any.rs``
module documentation). Arrays of an action (``tokens``, ``keep``, ``inputs``, ``canvas``) are
read-only NumPy ``uint32`` arrays owned by the action object. Logits are read in place (NumPy
arrays, PyTorch CPU tensors; float32, float16, bfloat16; C-contiguous).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from ._argen import RawDecoder
from ._argen import config_requirements as _config_requirements

_ACTIONS = ["prefill", "target", "draft", "check", "score", "reformulate", "batch", "done"]
_GROUPS = ["prefill", "target", "draft"]
_MODELS = [None, "target", "drafter"]
_GUIDANCE = [None, "two_way", "three_way"]
#: Names of ``Group.inputs["feature_kind"]`` codes.
FEATURES = ["none", "condition", "target", "last_target", "draft"]

#: The dtype of :attr:`Group.inputs`: one record per input.
INPUT_DTYPE = np.dtype(
    [
        ("token", np.uint32),
        ("index", np.uint32),
        ("parent", np.uint32),
        ("feature_kind", np.uint32),
        ("feature_index", np.uint32),
    ]
)


def _u32(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.uint32)


class Group:
    """One sequence's part of a forward (read-only).

    * ``kind``: ``"prefill"`` (reset ``seq``, run its condition and then ``tokens`` teacher-forced
      at raster indices ``0..``, commit everything), ``"target"`` (commit the ``keep`` entries of
      the previous target run in this order, drop the others, run ``inputs``), ``"draft"``
      (drafter: if ``new_step`` drop pending drafter entries; the first ``commit`` inputs join
      the committed prefix, the others stay pending);
    * ``guidance``: ``None``, ``"two_way"`` or ``"three_way"`` with ``scale``; ``variants`` rows per
      input (cond, uncond, reformulated — innermost);
    * ``inputs``: structured array (:data:`INPUT_DTYPE`): ``token``, ``index`` (raster index),
      ``parent`` (input within the run / drafting-step entry, or :data:`argen.ROOT`),
      ``feature_kind`` / ``feature_index`` (the EAGLE feature of a drafter input, :data:`FEATURES`);
    * ``first_row``, ``rows``: where this group's logits rows lie in the answer.

    The arrays are built on first access (a host that reads only some fields pays for those).
    """

    __slots__ = ("_g", "_tokens", "_keep", "_inputs")

    def __init__(self, raw: tuple) -> None:
        self._g = raw
        self._tokens = self._keep = self._inputs = None

    @property
    def kind(self) -> str:
        """``"prefill"``, ``"target"`` or ``"draft"``."""
        return _GROUPS[self._g[0]]

    @property
    def seq(self) -> int:
        """The sequence."""
        return self._g[1]

    @property
    def guidance(self) -> Optional[str]:
        """``None``, ``"two_way"`` or ``"three_way"``."""
        return _GUIDANCE[self._g[2]]

    @property
    def scale(self) -> float:
        """The guidance scale (two-way) or weight (three-way)."""
        return self._g[3]

    @property
    def variants(self) -> int:
        """Logits rows per input (guidance variants)."""
        return self._g[4]

    @property
    def tokens(self) -> np.ndarray:
        """A prefill's teacher-forced image tokens (``uint32``)."""
        if self._tokens is None:
            self._tokens = _u32(self._g[5])
        return self._tokens

    @property
    def keep(self) -> np.ndarray:
        """A target run's keep list (``uint32``)."""
        if self._keep is None:
            self._keep = _u32(self._g[6])
        return self._keep

    @property
    def new_step(self) -> bool:
        """A drafter run that starts a new drafting step."""
        return self._g[7]

    @property
    def commit(self) -> int:
        """A drafter run's committed catch-up inputs."""
        return self._g[8]

    @property
    def inputs(self) -> np.ndarray:
        """The inputs (:data:`INPUT_DTYPE`)."""
        if self._inputs is None:
            self._inputs = np.frombuffer(self._g[9], dtype=INPUT_DTYPE)
        return self._inputs

    @property
    def first_row(self) -> int:
        """The first answer row of this group."""
        return self._g[10]

    @property
    def rows(self) -> int:
        """Answer rows of this group."""
        return self._g[11]

    def __repr__(self) -> str:
        return (
            f"Group(kind={self.kind!r}, seq={self.seq}, guidance={self.guidance!r}, "
            f"variants={self.variants}, inputs={len(self.inputs)}, first_row={self.first_row}, "
            f"rows={self.rows})"
        )


class Action:
    """What the decoder asks for next (read-only).

    ``kind``: ``"prefill"``, ``"target"``, ``"draft"`` (a forward of one group), ``"batch"`` (a
    forward of several groups), ``"check"``, ``"score"``, ``"reformulate"`` (judges, about
    ``seq`` and its ``canvas`` of ``canvas_rows`` token rows) or ``"done"``. ``model`` is
    ``"target"`` or ``"drafter"`` for forwards, else ``None``; a forward is answered with
    ``logits_rows`` rows laid out group after group (``groups``, built on first access).
    """

    __slots__ = ("_a", "_groups", "_canvas")

    def __init__(self, raw: tuple) -> None:
        self._a = raw
        self._groups = self._canvas = None

    @property
    def kind(self) -> str:
        """The action's kind."""
        return _ACTIONS[self._a[0]]

    @property
    def model(self) -> Optional[str]:
        """``"target"`` or ``"drafter"`` for a forward, else ``None``."""
        return _MODELS[self._a[1]]

    @property
    def logits_rows(self) -> int:
        """Rows of the answer of a forward."""
        return self._a[2]

    @property
    def seq(self) -> int:
        """The sequence a judge action is about."""
        return self._a[3]

    @property
    def canvas_rows(self) -> int:
        """Token rows of a judge action's canvas."""
        return self._a[4]

    @property
    def canvas(self) -> np.ndarray:
        """A judge action's canvas (``uint32``, ``canvas_rows × width`` tokens)."""
        if self._canvas is None:
            self._canvas = _u32(self._a[5])
        return self._canvas

    @property
    def groups(self) -> List[Group]:
        """The groups of a forward, in answer order."""
        if self._groups is None:
            self._groups = [Group(g) for g in self._a[6]]
        return self._groups

    @property
    def is_forward(self) -> bool:
        """Whether the answer is logits (``model`` is set)."""
        return self._a[1] != 0

    def __repr__(self) -> str:
        return (
            f"Action(kind={self.kind!r}, model={self.model!r}, logits_rows={self.logits_rows}, "
            f"groups={self.groups!r})"
        )


def _config_json(config: Any) -> str:
    if isinstance(config, str):
        return config
    if isinstance(config, Mapping):
        return json.dumps(config)
    from .errors import ArgenTypeError

    raise ArgenTypeError("config must be a dict (or a JSON string)", 6, "ARGEN_ERR_WRONG_TYPE")


def config_requirements(config: Any) -> Dict[str, Any]:
    """What a host must provide for ``config`` before building a decoder: ``sequences``,
    ``tokens``, ``inputs_per_run``, ``pending``, ``variants``, ``logits_rows``, ``dist_rows``,
    ``drafter``, ``check``, ``score``, ``reformulate``, ``neighbours`` (``(k, metric)`` or
    ``None``), ``embedding``, ``codebook``."""
    return _config_requirements(_config_json(config))


class Decoder:
    """A decoder of any method (vanilla, speculative, VVS, Jacobi; Best-of-N, GridAR).

    ``Decoder(config, vocab, *, neighbours=None, neighbour_codebook=None, embedding=None,
    codebook=None)``: ``config`` a ``DecoderConfig`` dict; ``vocab`` the model's vocabulary.
    Tables (2-D, ``vocab`` rows, copied): LANTERN's neighbour ids (or a codebook to build them
    from, ranked by the configuration's metric), GSD's input embedding, VVS's VQ codebook. A
    missing table the configuration needs raises :class:`argen.InvalidArgumentError`.
    """

    def __init__(
        self,
        config: Any,
        vocab: int,
        *,
        neighbours: Any = None,
        neighbour_codebook: Any = None,
        embedding: Any = None,
        codebook: Any = None,
    ) -> None:
        self._raw = RawDecoder(
            _config_json(config), vocab, neighbours, neighbour_codebook, embedding, codebook
        )

    @property
    def vocab(self) -> int:
        """The vocabulary size."""
        return self._raw.vocab

    def poll(self) -> Action:
        """The current action (the same until it is answered)."""
        return Action(self._raw.poll())

    def handle_logits(self, logits: Any) -> None:
        """Answers a forward with its rows: ``(logits_rows, vocab)`` or flat, float32 / float16 /
        bfloat16, C-contiguous, in host memory; read in place. A wrong row count raises
        :class:`argen.LengthError` and changes nothing."""
        self._raw.handle_logits(logits)

    @property
    def last_logits_address(self) -> int:
        """Address of the buffer the last :meth:`handle_logits` read (zero-copy checks)."""
        return self._raw.last_logits_address

    def handle_verdict(self, possible: bool) -> None:
        """Answers a ``"check"``: whether the canvas can still match the prompt."""
        self._raw.handle_verdict(possible)

    def handle_score(self, score: float) -> None:
        """Answers a ``"score"`` with a finite score (higher is better)."""
        self._raw.handle_score(score)

    def handle_reformulated(self) -> None:
        """Answers a ``"reformulate"``."""
        self._raw.handle_reformulated()

    def tokens(self, seq: Optional[int] = None) -> np.ndarray:
        """Tokens committed so far for ``seq`` (default: the result sequence)."""
        if seq is None:
            seq = self._raw.result_seq()
        return _u32(self._raw.tokens(seq))

    def result_seq(self) -> int:
        """The sequence holding the final image (once done)."""
        return self._raw.result_seq()

    def sequences(self) -> range:
        """The sequence ids the decoder uses."""
        first, count = self._raw.sequences()
        return range(first, first + count)

    def stats(self) -> Dict[str, Any]:
        """The counters so far (``tokens``, ``target_forwards``, ..., ``tokens_per_forward``,
        ``mean_accepted_length``)."""
        return self._raw.stats()

    def requirements(self) -> Dict[str, Any]:
        """What the host must provide (see :func:`config_requirements`)."""
        return self._raw.requirements()
