"""The high-level model API: load an argen model directory, generate images with any method.

Example::

    import argen
    model = argen.Model("fixtures/models/shapesworld", threads=2)
    g = model.generate(prompt="a red circle above a blue square", method="sd", seed=7,
                       criterion="coupled")
    g.tokens   # np.ndarray, uint32, (tokens,)
    g.image    # np.ndarray, uint8, (height, width, 3)
    g.stats    # dict: counters, tokens_per_target_forward, config, alignment, wall_seconds, ...

It runs the pipeline of the ``argen`` command (crate ``argen-engine``) on the CPU runtime, so
``generate(prompt=P, method=M, seed=S, **options)`` gives exactly the tokens and pixels of
``argen generate --prompt P --method M --seed S`` with the same options as flags (``top_k=…``
for ``--top-k …``; ``reformulate=False`` for ``--no-reformulate``), on any thread count.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

from . import errors
from ._argen import Engine as _Engine

__all__ = ["Model", "Generation", "Recorded", "Judge", "METHODS"]

METHODS = ("vanilla", "sd", "lantern", "gsd", "vvs", "sjd", "bon", "gridar")
"""The decoding methods ``Model.generate`` accepts."""


@dataclass(frozen=True)
class Generation:
    """One generated image.

    Attributes:
        tokens: the image's token ids in raster order (``np.ndarray``, ``uint32``).
        image: the decoded image (``np.ndarray``, ``uint8``, ``height × width × 3``, RGB).
        stats: the decoder's statistics (the ``argen generate --stats`` fields less the method
            names): counters, ``tokens_per_target_forward``, ``mean_accepted_length``, the
            decoder ``config``, ``image`` size, ``prompt``, ShapesWorld ``alignment`` and
            ``wall_seconds`` (decoding only).
    """

    tokens: Any
    image: Any
    stats: Dict[str, Any] = field(repr=False)


class Recorded(NamedTuple):
    """One answer the model host gave during :meth:`Model.generate_recorded`.

    ``kind`` is ``"logits"`` (``logits``: a float32 array ``(rows, vocab)`` in the protocol's
    layout — group after group, input-major, guidance variants innermost), ``"verdict"``
    (``value``: bool), ``"score"`` (``value``: float) or ``"reformulated"``.
    """

    kind: str
    logits: Any
    value: Any


class Judge:
    """ShapesWorld's judge for one prompt: the verifier, scorer and reformulator the engine
    gives GridAR and Best-of-N (:meth:`Model.judge`). Canvases are token rows from the top.

    Raises :class:`InvalidArgumentError` for a canvas of the wrong size and a token outside the
    codebook.
    """

    def __init__(self, engine: Any, prompt: str) -> None:
        self._engine = engine
        self.prompt = prompt

    def check(self, rows: int, tokens: Any) -> bool:
        """Whether the top ``rows`` token rows (``tokens``) can still match the prompt."""
        return bool(self._engine.judge(self.prompt, "check", rows, _tokens(tokens))[0])

    def score(self, tokens: Any) -> float:
        """The soft alignment score of a finished image (higher is better)."""
        return float(self._engine.judge(self.prompt, "score", 0, _tokens(tokens))[0])

    def reformulate(self, rows: int, tokens: Any) -> Any:
        """The caption features (``(cls_token_num, caption_dim)`` float32) of the prompt with
        the layout clauses the top ``rows`` token rows suggest (GridAR's reformulation)."""
        import numpy as np

        _, f = self._engine.judge(self.prompt, "reformulate", rows, _tokens(tokens))
        _, _, caption_rows, _, _ = self._engine.condition(self.prompt, None)
        return np.frombuffer(f, dtype=np.float32).reshape(caption_rows, -1)


def _tokens(tokens: Any) -> List[int]:
    try:
        return [int(t) for t in tokens]
    except (TypeError, ValueError):
        raise errors.ArgenTypeError(
            f"tokens must be a sequence of ints, not {type(tokens).__name__}"
        ) from None


class Model:
    """An argen model directory loaded on the CPU runtime.

    Args:
        path: the model directory (``gpt.json``, ``gpt.safetensors``, ``vq.json``,
            ``vq.safetensors``, and ``drafter.safetensors`` for the speculative methods).
        threads: worker threads (0 = all cores, at most 256); results do not depend on it.

    Raises:
        ModelError: the directory or one of its files is missing, unreadable or malformed.
        InvalidArgumentError: ``threads`` out of range.
        ArgenTypeError: ``path`` or ``threads`` of the wrong type.

    A model is safe to share between threads; calls are serialised (open one model per thread,
    or per Ray actor, to generate in parallel). The GIL is released while an image is generated.
    """

    def __init__(self, path: Union[str, os.PathLike], threads: int = 0) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise errors.ArgenTypeError(
                f"path must be a str or os.PathLike, not {type(path).__name__}"
            )
        if isinstance(threads, bool) or not isinstance(threads, int):
            raise errors.ArgenTypeError(f"threads must be an int, not {type(threads).__name__}")
        if threads < 0:
            raise errors.InvalidArgumentError(f"threads must be >= 0, not {threads}")
        self.path = os.fspath(path)
        self._engine = _Engine(self.path, threads)

    @property
    def tokens(self) -> int:
        """Tokens per image."""
        return self._engine.tokens

    @property
    def image_size(self) -> int:
        """Image width (= height) in pixels."""
        return self._engine.image_size

    def generate(
        self,
        prompt: Optional[str] = None,
        class_id: Optional[int] = None,
        method: Optional[str] = None,
        seed: int = 0,
        config: Optional[Union[Dict[str, Any], str]] = None,
        **options: Any,
    ) -> Generation:
        """Generates one image.

        Args:
            prompt: a ShapesWorld prompt (ShapesWorld models), e.g. ``"two red circles"``.
            class_id: a class id (class-conditional models). Exactly one of ``prompt`` and
                ``class_id``.
            method: ``"vanilla"`` (default), ``"sd"``, ``"lantern"``, ``"gsd"``, ``"vvs"``,
                ``"sjd"``, ``"bon"`` or ``"gridar"``.
            seed: the seed (0 ≤ seed < 2**64): the same seed gives the same image.
            config: instead of ``method`` and options, a whole decoder configuration (the dict
                ``stats["config"]`` records, or its JSON); its seed is replaced by ``seed``.
            **options: the method's options, named like the ``argen generate`` flags with
                ``_`` for ``-``: ``cfg``, ``temperature``, ``top_k``, ``top_p``, ``criterion``
                (``"exact"``/``"coupled"``), ``draft`` (``"chain"``/``"tree"``, or the
                cost-aware ``"auto"``/``"auto_tree"`` with ``cost_profile``, a dict
                ``{"target": [[rows, ns], …], "drafter": [[rows, ns], …]}``), ``gamma``,
                ``tree_total``, ``tree_depth``, ``tree_top_k``, ``delta``, ``lantern_k``,
                ``lantern_metric`` (``"raw"``/``"normalised"``), ``lambda`` (pass it as
                ``**{"lambda": 1.5}``), ``vvs_schedule``, ``vvs_interval``, ``vvs_threshold``,
                ``window``, ``jacobi_init`` (``"random"``/``"copy_left"``), ``n``, ``inner``,
                ``reformulate``.

        Returns:
            A :class:`Generation`.

        Raises:
            InvalidArgumentError: unknown method or option, a value out of range, both or
                neither of ``prompt`` and ``class_id``, a prompt outside the ShapesWorld
                grammar, an input the model does not take.
            ModelError: the method needs a file the directory lacks (the drafter).
            ArgenTypeError: an argument of the wrong type.
        """
        raw = self._engine.generate(
            *_request(prompt, class_id, method, seed, config, options)
        )
        return _generation(raw)

    def generate_recorded(
        self,
        prompt: Optional[str] = None,
        class_id: Optional[int] = None,
        method: Optional[str] = None,
        seed: int = 0,
        config: Optional[Union[Dict[str, Any], str]] = None,
        **options: Any,
    ) -> Tuple[Generation, List[Recorded]]:
        """:meth:`generate`, and every answer the model host gave, in order (:class:`Recorded`):
        the logits rows of each forward, the judge's verdicts, scores and reformulations. A host
        that runs its own model answers the same decoder with these rows to check its action
        handling (``examples/python/torch_host.py``). It copies every logits row: a testing
        aid."""
        import numpy as np

        raw, log = self._engine.generate_recorded(
            *_request(prompt, class_id, method, seed, config, options)
        )
        answers = []
        for kind, rows, values, value in log:
            if kind == "logits":
                a = np.frombuffer(values, dtype=np.float32)
                answers.append(Recorded(kind, a.reshape(rows, -1) if rows else a, None))
            elif kind == "verdict":
                answers.append(Recorded(kind, None, bool(value)))
            elif kind == "score":
                answers.append(Recorded(kind, None, float(value)))
            else:
                answers.append(Recorded(kind, None, None))
        return _generation(raw), answers

    def decoder_config(
        self,
        prompt: Optional[str] = None,
        class_id: Optional[int] = None,
        method: Optional[str] = None,
        seed: int = 0,
        config: Optional[Union[Dict[str, Any], str]] = None,
        **options: Any,
    ) -> Dict[str, Any]:
        """The decoder configuration (a dict for :class:`argen.Decoder`) that :meth:`generate`
        runs for the same arguments."""
        return json.loads(
            self._engine.decoder_config(*_request(prompt, class_id, method, seed, config, options))
        )

    def condition(self, prompt: Optional[str] = None, class_id: Optional[int] = None) -> Dict[str, Any]:
        """The conditional input the engine feeds the target for a prompt or a class (exactly
        one): ``{"kind": "caption", "features": (cls_token_num, caption_dim) float32, "pad": n}``
        or ``{"kind": "class", "class_id": c}``. The unconditional input is the model's null
        caption (``uncond_embedding``) or null class."""
        import numpy as np

        if prompt is not None and not isinstance(prompt, str):
            raise errors.ArgenTypeError(f"prompt must be a str, not {type(prompt).__name__}")
        if class_id is not None and (isinstance(class_id, bool) or not isinstance(class_id, int)):
            raise errors.ArgenTypeError(f"class_id must be an int, not {type(class_id).__name__}")
        if class_id is not None and not 0 <= class_id < 2**32:
            raise errors.InvalidArgumentError(f"class_id {class_id} is out of range")
        kind, f, rows, cols, extra = self._engine.condition(prompt, class_id)
        if kind == "caption":
            feats = np.frombuffer(f, dtype=np.float32).reshape(rows, cols)
            return {"kind": kind, "features": feats, "pad": extra}
        return {"kind": kind, "class_id": extra}

    def table(self, name: str) -> Any:
        """A float32 table ``(rows, cols)``: ``"codebook"`` (the VQ codebook as the decoder
        looks it up; VVS's ``codebook``), ``"raw_codebook"`` (as stored; LANTERN's
        ``neighbour_codebook``) or ``"embedding"`` (the token embedding; GSD)."""
        import numpy as np

        if not isinstance(name, str):
            raise errors.ArgenTypeError(f"name must be a str, not {type(name).__name__}")
        values, rows, cols = self._engine.table(name)
        return np.frombuffer(values, dtype=np.float32).reshape(rows, cols)

    def judge(self, prompt: str) -> Judge:
        """ShapesWorld's judge for ``prompt`` (:class:`Judge`)."""
        if not isinstance(prompt, str):
            raise errors.ArgenTypeError(f"prompt must be a str, not {type(prompt).__name__}")
        return Judge(self._engine, prompt)

    def __repr__(self) -> str:
        return f"argen.Model({self.path!r})"


def _request(prompt, class_id, method, seed, config, options) -> tuple:
    """The engine's request arguments, type-checked."""
    if prompt is not None and not isinstance(prompt, str):
        raise errors.ArgenTypeError(f"prompt must be a str, not {type(prompt).__name__}")
    for name, value in (("class_id", class_id), ("seed", seed)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise errors.ArgenTypeError(f"{name} must be an int, not {type(value).__name__}")
    if class_id is not None and not 0 <= class_id < 2**32:
        raise errors.InvalidArgumentError(f"class_id {class_id} is out of range")
    if not 0 <= seed < 2**64:
        raise errors.InvalidArgumentError(f"seed {seed} is out of range (0 <= seed < 2**64)")
    if method is not None and not isinstance(method, str):
        raise errors.ArgenTypeError(f"method must be a str, not {type(method).__name__}")
    config_json = None
    if config is not None:
        if options:
            raise errors.InvalidArgumentError(
                "give config or method options, not both: " + ", ".join(sorted(options))
            )
        if isinstance(config, str):
            config_json = config
        elif isinstance(config, dict):
            config_json = json.dumps(config)
        else:
            raise errors.ArgenTypeError(
                f"config must be a dict or a JSON str, not {type(config).__name__}"
            )
    try:
        options_json = json.dumps(options, allow_nan=False) if options else None
    except (TypeError, ValueError) as e:
        raise errors.ArgenTypeError(f"method options must be JSON values: {e}") from None
    return (prompt, class_id, method, options_json, config_json, seed)


def _generation(raw: tuple) -> Generation:
    import numpy as np

    tokens, rgb, width, height, stats = raw
    return Generation(
        tokens=np.frombuffer(tokens, dtype="<u4").astype(np.uint32),
        image=np.frombuffer(rgb, dtype=np.uint8).reshape(height, width, 3).copy(),
        stats=json.loads(stats),
    )
