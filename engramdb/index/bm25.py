"""BM25 sums and top k over postings, compiled (numba): the lexical index's hot loop.

A query's terms are scored posting by posting into one float64 accumulator by
label, in the order the caller gives (term id order: every sum is the float the
same additions in numpy give), skipping stale postings (by generation) and labels
outside ``allowed``; the labels touched are listed as they are first met, so the
top k is chosen among them (a heap of k) and only they are reset afterwards. In
numpy the same work was a dozen passes and temporary arrays per term, a scatter
and a partition over every label, 0.8-1.0 ms for a query whose terms have 37,000
postings at 100,000 memories; here it is one pass, about a third of that.

The accumulator, the seen flags and the list of touched labels are scratch
arrays kept per thread (grown to the largest index the thread has searched), so
a recall allocates nothing of the agent's size, and many indexes (one per agent)
share them: 13 bytes per memory of the largest agent a thread has searched (up to
twice that, as they grow by doubling), kept for the thread's life.

numba is optional (the ``fast`` extra): :class:`~engramdb.index.lexical.LexicalIndex`
uses these kernels when it is installed and the index holds at least
:data:`MIN_POSTINGS` postings, and its own numpy path, which gives the same
floats, otherwise. numba is imported, and the kernels compiled or
loaded from numba's cache, on the first search, so importing engramdb stays
cheap; that first search takes about 0.5 s and the process about 165 MB more
resident memory (47 MB of it heap: LLVM, which numba needs to load even cached
code), once per process whatever the number of agents.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engramdb._types import BoolArray, IntArray

__all__ = ["Terms", "available", "search", "sums"]


@dataclass(frozen=True, slots=True)
class Terms:
    """What scoring needs besides the postings: shared by a query's terms.

    Attributes:
        doc_gen: Each label's document generation (uint16); a posting matches only
            at its label's generation, where ``stale`` says to check it.
        norm: ``k1 * (1 - b + b * length / avg)`` of every label (float64).
        w_own: Weight of the own-text count.
        w_ctx: Weight of the context count.
        k1p1: ``k1 + 1``.
    """

    doc_gen: np.ndarray
    norm: np.ndarray
    w_own: float
    w_ctx: float
    k1p1: float


Posting = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool, float]
"""One term: labels (int32), generations and own and context counts (uint16), whether
any posting is stale, and its IDF."""

MIN_POSTINGS = 500_000
"""Indexes with fewer live postings (about 20,000 memories of conversation) are
scored in numpy: there a search takes under 0.2 ms either way, and loading numba
(0.5 s, once per process) would not pay for itself in a short-lived one, such as
a CLI call."""

_kernels: Any = None
_lock = threading.Lock()
_available: bool | None = None


def available() -> bool:
    """Whether the compiled kernels can be used: numba is installed and they load.

    The first call imports numba and loads (or compiles) the kernels; call it
    only when about to search.
    """
    global _available, _kernels
    # Read without the lock: while one thread loads numba, others see False and score
    # in numpy, which gives the same floats.
    if _available is not None:
        return _available
    with _lock:
        if _available is None:
            _available = False
            if importlib.util.find_spec("numba") is not None:
                try:
                    from engramdb.index import _bm25_kernels
                except Exception as exc:  # numba broken, or no directory to cache in: numpy
                    warnings.warn(
                        f"engramdb: BM25 runs on numpy, numba's kernels did not load "
                        f"({type(exc).__name__}: {exc}); if numba has no directory to "
                        f"cache them in, set NUMBA_CACHE_DIR to a writable one",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                else:
                    _kernels = _bm25_kernels
                    _available = True
    return _available


def _require() -> Any:
    if not available():
        raise RuntimeError(
            "the compiled BM25 kernels need numba: pip install 'engramdb[fast]' "
            "(LexicalIndex uses its numpy path without it)"
        )
    return _kernels


class _Scratch(threading.local):
    def __init__(self) -> None:
        self.acc = np.zeros(0, np.float64)
        self.seen = np.zeros(0, np.bool_)
        self.touched = np.zeros(0, np.int32)

    def fit(self, size: int) -> None:
        have = min(len(self.acc), len(self.seen), len(self.touched))
        if have < size:
            size = max(size, 2 * have)
            # All three made before any is kept: the kernels check no bounds, so the
            # arrays must never differ in length (after a MemoryError, say).
            acc, seen = np.zeros(size, np.float64), np.zeros(size, np.bool_)
            touched = np.zeros(size, np.int32)
            self.acc, self.seen, self.touched = acc, seen, touched

    def clear(self) -> None:
        """Zero it all (after an interruption left some labels' sums in it)."""
        self.acc.fill(0.0)
        self.seen.fill(False)


_scratch = _Scratch()


def _accumulate(
    kern: Any, terms: Terms, postings: Sequence[Posting], allowed: BoolArray | None
) -> int:
    s = _scratch
    use_allowed = allowed is not None
    mask = allowed if allowed is not None else s.seen[:0]
    n = 0
    w_own, w_ctx, k1p1 = np.float32(terms.w_own), np.float32(terms.w_ctx), np.float32(terms.k1p1)
    for labels, gens, own, ctx, stale, idf in postings:
        n = kern.accumulate(
            s.acc,
            s.seen,
            s.touched,
            n,
            labels,
            gens,
            own,
            ctx,
            terms.doc_gen,
            stale,
            mask,
            use_allowed,
            w_own,
            w_ctx,
            np.float32(idf),
            k1p1,
            terms.norm,
        )
    return int(n)


def search(
    terms: Terms,
    postings: Sequence[Posting],
    size: int,
    k: int,
    allowed: BoolArray | None,
) -> tuple[IntArray, np.ndarray, int]:
    """The best ``k`` labels by BM25 sum, best first (ties: the lower label first),
    their sums (float64), and how many labels matched. Needs :func:`available`.

    Args:
        terms: Scoring parameters shared by the terms.
        postings: The query's terms, in the order their parts are added.
        size: One more than the largest label a posting can name.
        k: How many to return.
        allowed: Labels that may match (beyond its length: none); None: all.
    """
    kern, s = _require(), _scratch
    s.fit(size)
    try:
        n = _accumulate(kern, terms, postings, allowed)
        labels, values = kern.top_k(s.acc, s.seen, s.touched, n, k)
    except BaseException:  # a KeyboardInterrupt between two calls: no sum may linger
        s.clear()
        raise
    return labels.astype(np.int64), values, n


def sums(terms: Terms, postings: Sequence[Posting], size: int, labels: IntArray) -> np.ndarray:
    """The BM25 sum of each of ``labels`` (float64; 0 where none matches). Needs
    :func:`available`.

    Args:
        terms: Scoring parameters shared by the terms.
        postings: The query's terms, in the order their parts are added.
        size: One more than the largest label a posting can name.
        labels: The labels to score (any order, repeats and unknown labels allowed).
    """
    kern, s = _require(), _scratch
    s.fit(size)
    allowed = np.zeros(int(labels.max()) + 1 if len(labels) else 0, np.bool_)
    allowed[labels] = True
    try:
        n = _accumulate(kern, terms, postings, allowed)
        out: np.ndarray = kern.collect(s.acc, s.seen, s.touched, n, labels)
    except BaseException:  # as in search
        s.clear()
        raise
    return out
