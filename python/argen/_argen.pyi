"""Type stubs of argen's extension module (``argen._argen``); everything is re-exported by
``argen``."""

from typing import Any, List, Optional, Sequence, Tuple, Union, overload

__version__: str
ROOT: int
"""Parent index of a child of the root in a draft tree (``2**32 - 1``)."""
WORDS_PER_KEY: int
"""Number of 64-bit words one key's stream provides (2048)."""
MAX_KEY_TOKEN: int
"""``Key.token`` must be below this (``2**24``)."""
PURPOSE_SAMPLE: int
"""Drawing the committed token of a position (vanilla sampling, bonus tokens)."""
PURPOSE_ACCEPT: int
"""The uniform of an acceptance test."""
PURPOSE_RESIDUAL: int
"""A draw from a residual distribution after a rejection."""
PURPOSE_DRAFT: int
"""Drawing a drafted token."""
PURPOSE_PATH: int
"""Choosing a root-to-leaf path of a draft tree (VVS skip steps)."""
PURPOSE_JACOBI_INIT: int
"""Initialising a Jacobi window."""
PURPOSE_CANDIDATE: int
"""Per-candidate seeds of test-time scaling."""

ArrayLike = Any
"""A NumPy array, a PyTorch CPU tensor, or anything with ``__dlpack__`` or
``__array_interface__`` (C-contiguous, host memory)."""

class Key:
    """The identity of one random draw stream (RNG scheme v1): every draw is a pure function of
    ``(seed, stream, purpose, position, token)``."""

    def __init__(
        self, seed: int, stream: int, purpose: int, position: int, token: int = 0
    ) -> None:
        """Raises ``InvalidArgumentError`` if ``token >= MAX_KEY_TOKEN``; ``OverflowError`` if
        a field does not fit its width (u64 seed, u32 others)."""
    @property
    def seed(self) -> int:
        """The user's seed."""
    @property
    def stream(self) -> int:
        """The sequence (image, candidate) the draw belongs to."""
    @property
    def purpose(self) -> int:
        """What the draw is for (``PURPOSE_*``)."""
    @property
    def position(self) -> int:
        """Absolute position of the token being decided."""
    @property
    def token(self) -> int:
        """Distinguishes several draws at one position."""
    @property
    def nonce(self) -> int:
        """The ChaCha nonce ``(purpose << 32) | stream``."""
    def counter(self, block: int) -> int:
        """The ChaCha block counter of block ``block`` (0..=255)."""
    def words(self, n: int = 1) -> List[int]:
        """The first ``n`` (<= 2048) 64-bit words of the key's stream."""
    def below(self, n: int) -> int:
        """A uniform integer in ``[0, n)``, ``1 <= n < 2**128``, from a fresh stream."""
    def unit(self) -> float:
        """A uniform float in ``[0, 1)`` with 53 random bits, from a fresh stream."""
    @staticmethod
    def chacha_key(seed: int) -> List[int]:
        """The 256-bit ChaCha20 key of ``seed`` as eight 32-bit words."""
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class ProcessJob:
    """Which logit rows, combined how, with which sampling parameters, into which distribution
    row. Plain: ``row`` only; two-way CFG: ``uncond`` and ``cfg_scale``; three-way CFG (GridAR):
    ``uncond``, ``reformulated`` and ``cfg_w``. ``temperature=0`` is greedy; ``top_k``, ``top_p``
    and ``min_p`` are disabled by ``None``."""

    def __init__(
        self,
        out: int,
        row: int = 0,
        *,
        uncond: Optional[int] = None,
        reformulated: Optional[int] = None,
        cfg_scale: Optional[float] = None,
        cfg_w: Optional[float] = None,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        min_p: Optional[float] = None,
    ) -> None: ...
    @property
    def out(self) -> int:
        """Destination distribution row."""

class Criterion:
    """An acceptance criterion for :meth:`Sampler.verify_tree`."""

    @staticmethod
    def exact() -> Criterion:
        """Exact speculative sampling: the output distribution is exactly the target's."""
    @staticmethod
    def coupled() -> Criterion:
        """Accept iff the draft equals the target's own keyed draw (vanilla-identical output)."""
    @staticmethod
    def lantern(
        neighbours: Union[ArrayLike, Sequence[Sequence[int]]],
        k: int,
        delta: float,
        lam: Optional[float] = None,
    ) -> Criterion:
        """LANTERN relaxed acceptance over a ``vocab × table_k`` neighbour table (see
        :func:`neighbour_table`), ``k`` neighbours, TV budget ``delta``, LANTERN++ ``lam``."""
    @staticmethod
    def grouped(
        embedding: Union[ArrayLike, Sequence[Sequence[float]]],
        window: int = 7,
        prob_tol: float = 0.15,
        dist_tol: float = 0.5,
    ) -> Criterion:
        """Grouped speculative decoding with the target's ``vocab × dim`` float32 embedding."""
    @property
    def name(self) -> str:
        """``"exact"``, ``"coupled"``, ``"lantern"`` or ``"grouped"``."""
    @property
    def vocab(self) -> Optional[int]:
        """The vocabulary of the criterion's tables (None for exact and coupled)."""

class Sampler:
    """A table of ``rows`` distribution rows over ``vocab`` tokens and argen's row operations on
    it. Results equal argen-core's bit for bit."""

    def __init__(self, vocab: int, rows: int) -> None: ...
    @property
    def vocab(self) -> int:
        """Vocabulary size."""
    @property
    def rows(self) -> int:
        """Number of distribution rows."""
    def process(
        self, logits: ArrayLike, jobs: Union[ProcessJob, Sequence[ProcessJob]]
    ) -> None:
        """Processes ``logits`` (float32/float16/bfloat16, shape ``(vocab,)`` or
        ``(n, vocab)``, read in place) into distribution rows."""
    @overload
    def sample(self, row: int, key: Key) -> int: ...
    @overload
    def sample(self, row: Sequence[int], key: Sequence[Key]) -> List[int]: ...
    def sample(self, row: Any, key: Any) -> Any:
        """Keyed draws from distribution rows (one key per row index)."""
    def top_k(self, row: int, k: int) -> Tuple[List[int], List[float]]:
        """The ``k`` most likely tokens of a row and their probabilities."""
    def fill_uniform(self, row: int) -> None:
        """Makes a row uniform."""
    def fill_one_hot(self, row: int, token: int) -> None:
        """Makes a row a point mass on ``token``."""
    def weights(self, row: int) -> Tuple[int, List[int]]:
        """``(total, weights)``: token ``t`` has probability exactly ``weights[t] / total``."""
    def verify_tree(
        self,
        tokens: Union[ArrayLike, Sequence[int]],
        parents: Union[ArrayLike, Sequence[int]],
        criterion: Criterion,
        *,
        seed: int,
        stream: int,
        position: int,
        target_base: int = 0,
        draft_base: Optional[int] = None,
    ) -> Tuple[List[int], int]:
        """Verifies a draft tree; returns the accepted node indices (root side first) and the
        token committed after them. Target rows are overwritten by residuals."""

def sample_rows(
    logits: ArrayLike,
    keys: Sequence[Key],
    *,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    min_p: Optional[float] = None,
) -> List[int]:
    """One keyed draw per row of ``logits`` (no guidance)."""

def neighbour_table(
    codebook: Union[ArrayLike, Sequence[Sequence[float]]], k: int
) -> List[List[int]]:
    """The ``vocab × k`` latent-neighbour table of a ``vocab × dim`` float32 codebook."""

def array_info(obj: ArrayLike) -> Tuple[int, str, List[int]]:
    """``(address, dtype, shape)`` of the memory argen reads for ``obj`` (no copy is made)."""

def status_name(code: int) -> str:
    """The C name of an argen status code."""

class RawDecoder:
    """A decoder of any method built from a JSON ``DecoderConfig`` (use :class:`argen.Decoder`,
    which wraps it and returns action objects with NumPy arrays)."""

    def __init__(
        self,
        config_json: str,
        vocab: int,
        neighbours: Optional[Any] = None,
        neighbour_codebook: Optional[Any] = None,
        embedding: Optional[Any] = None,
        codebook: Optional[Any] = None,
    ) -> None: ...
    @property
    def vocab(self) -> int:
        """The vocabulary size."""
    def poll(self) -> Tuple[int, int, int, int, int, bytes, List[Tuple[Any, ...]]]:
        """The current action as ``(kind, model, logits_rows, seq, canvas_rows, canvas, groups)``
        with uint32 arrays as native-endian bytes."""
    def handle_logits(self, logits: ArrayLike) -> None:
        """Answers a forward with its logits rows, read in place."""
    @property
    def last_logits_address(self) -> int:
        """Address of the buffer the last ``handle_logits`` read."""
    def handle_verdict(self, possible: bool) -> None:
        """Answers a Check."""
    def handle_score(self, score: float) -> None:
        """Answers a Score with a finite float."""
    def handle_reformulated(self) -> None:
        """Answers a Reformulate."""
    def tokens(self, seq: int) -> bytes:
        """Tokens committed so far for ``seq`` (native-endian uint32 bytes)."""
    def result_seq(self) -> int:
        """The sequence holding the final image."""
    def sequences(self) -> Tuple[int, int]:
        """``(first, count)`` of the sequence ids the decoder uses."""
    def stats(self) -> dict:
        """The counters as a dict."""
    def requirements(self) -> dict:
        """The requirements of the configuration as a dict."""

def config_requirements(config_json: str) -> dict:
    """What a host must provide for a JSON ``DecoderConfig``, before building anything."""
class Engine:
    """A model directory loaded on the CPU runtime (use ``argen.Model``, which wraps it)."""

    def __init__(self, path: str, threads: int = 0) -> None:
        """Raises ``ModelError`` for an unusable directory, ``InvalidArgumentError`` for more
        than 256 threads."""
    @property
    def tokens(self) -> int:
        """Tokens per image."""
    @property
    def image_size(self) -> int:
        """Image width (= height) in pixels."""
    def generate(
        self,
        prompt: Optional[str],
        class_id: Optional[int],
        method: Optional[str],
        options_json: Optional[str],
        config_json: Optional[str],
        seed: int,
    ) -> Tuple[bytes, bytes, int, int, str]:
        """``(tokens as little-endian u32 bytes, RGB bytes, width, height, stats JSON)``."""
    def generate_recorded(
        self,
        prompt: Optional[str],
        class_id: Optional[int],
        method: Optional[str],
        options_json: Optional[str],
        config_json: Optional[str],
        seed: int,
    ) -> Tuple[
        Tuple[bytes, bytes, int, int, str], List[Tuple[str, int, Optional[bytes], float]]
    ]:
        """``generate`` plus every answer of the model host, in order: ``(kind, rows, values,
        value)``, kind ``"logits"`` (float32 bytes), ``"verdict"``, ``"score"`` or
        ``"reformulated"``."""
    def decoder_config(
        self,
        prompt: Optional[str],
        class_id: Optional[int],
        method: Optional[str],
        options_json: Optional[str],
        config_json: Optional[str],
        seed: int,
    ) -> str:
        """The decoder configuration ``generate`` runs, as JSON."""
    def condition(
        self, prompt: Optional[str], class_id: Optional[int]
    ) -> Tuple[str, Optional[bytes], int, int, int]:
        """``("caption", float32 bytes, rows, cols, pad)`` or ``("class", None, 0, 0, id)``."""
    def table(self, name: str) -> Tuple[bytes, int, int]:
        """``"codebook"``, ``"raw_codebook"`` or ``"embedding"``: ``(float32 bytes, rows, cols)``."""
    def judge(
        self, prompt: str, what: str, rows: int, tokens: List[int]
    ) -> Tuple[float, Optional[bytes]]:
        """ShapesWorld's judge: ``"check"``, ``"score"`` or ``"reformulate"``."""
