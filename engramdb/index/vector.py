"""In-memory vector indexes over FAISS, one per agent, rebuildable from the store.

Every index maps int64 *labels* (the agent view's slots) to unit vectors and
answers inner-product (cosine) search, optionally restricted to an ``allowed``
boolean mask over labels: filters apply before top-k, so when k memories match,
k come back. A ``Hit.score`` is higher for a better match; so are the scores here.

- :class:`FlatIndex`: exact; ``IndexIDMap2`` over ``IndexFlatIP``, removes in place.
- :class:`HNSWIndex`: approximate graph index. HNSW cannot remove, so removals
  are tombstones, masked at search time, and the graph is rebuilt when they pass
  a fraction of the index.
- :class:`IVFIndex`: inverted lists over k-means cells; removes in place.

The approximate indexes can keep a *recall target*: given ``recall_target``,
they tune their search breadth (HNSW's ``efSearch``, IVF's ``nprobe``) on the
agent's own data when they are built and each time they have doubled since (see
:func:`tune_breadth`), so recall@10 against exact search stays near the target
whatever the data's intrinsic dimension, and no broader than it needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import faiss as _faiss
import numpy as np

from engramdb._types import BoolArray, FloatMatrix, IntArray
from engramdb.errors import ValidationError

# faiss's bundled stubs lag its SWIG API (SearchParameters(sel=...), DirectMap,
# remove_ids on arrays): use it untyped rather than scatter ignores.
faiss: Any = _faiss

__all__ = [
    "INDEX_KINDS",
    "FlatIndex",
    "HNSWIndex",
    "IVFIndex",
    "NoIndex",
    "Tuning",
    "VectorIndex",
    "faiss_threads",
    "make_index",
    "tune_breadth",
]

INDEX_KINDS = ("auto", "flat", "hnsw", "ivf", "lance")
_HNSW_M = 32
_HNSW_EF_CONSTRUCTION = 128
_HNSW_EF_SEARCH = 128
_TOMBSTONE_REBUILD = 0.25
"""Rebuild an HNSW graph once this fraction of its nodes are removed."""
_SELECTIVE = 0.02
"""When fewer than this fraction of labels pass a filter, search them exhaustively."""
_BEAMS_KEPT = 32
"""Beam widths whose search parameters an HNSW index keeps made (one per pool depth)."""
_HASH_ENTRY_BYTES = 32
"""About what one entry of a C++ hash map from int64 to int64 takes."""
_INT_BYTES = 100
"""About what one entry of a Python dict or set of ints takes (the entry and its int objects)."""
TUNE_QUERIES = 200
"""Queries that estimate recall@10 when an index tunes itself."""
TUNE_K = 10
TUNE_CONFIDENCE = 2.0
"""The estimate must pass the target by this many of its standard errors (the
spread of the per-query recalls over the square root of their number): about
0.02 on hard data at recall 0.95, nothing where every query finds its 10."""
PROBE_MARGIN = 0.03
"""A :func:`probe_queries` estimate must pass the target by this much more (it flatters)."""
TUNE_GROWTH = 2.0
"""Tune again once the index has grown by this factor since the last tuning."""
TUNE_SEED = 0
_EF_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
"""HNSW ``efSearch`` values tried, each about 1.5 times the last."""


def _pair(result: Any) -> tuple[FloatMatrix, IntArray]:
    scores, labels = result
    return np.asarray(scores, dtype=np.float32), np.asarray(labels, dtype=np.int64)


@contextlib.contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` FAISS OpenMP threads (index builds want all cores)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def build_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _bitmap(allowed: BoolArray) -> tuple[faiss.IDSelectorBitmap, np.ndarray]:
    # FAISS reads bit i of byte i >> 3, least significant first; keep the buffer alive.
    bits = np.packbits(allowed.astype(np.uint8), bitorder="little")
    return faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits)), bits


@dataclasses.dataclass(frozen=True, slots=True)
class Tuning:
    """The outcome of one :func:`tune_breadth`: the breadth chosen and its recall estimate.

    Attributes:
        breadth: The search breadth chosen (``efSearch`` or ``nprobe``).
        estimate: Mean recall@10 at that breadth over the tuning queries.
        size: Live vectors in the index when it was tuned.
        queries: How many queries measured it.
        tried: Every breadth tried, with its estimate, in order.
        held_out: Whether the queries were vectors held out of the index while it
            was tuned (a bulk add), else :func:`probe_queries`.
        met: Whether the estimate cleared the target at ``breadth``.
        exhaustive: No breadth narrow enough to be cheaper than an exact scan
            met the target, so the index scans every vector (recall 1.0).
        seconds: How long the tuning took.
    """

    breadth: int
    estimate: float
    size: int
    queries: int
    tried: tuple[tuple[int, float], ...]
    held_out: bool = False
    met: bool = True
    exhaustive: bool = False
    seconds: float = dataclasses.field(default=0.0, compare=False)


def probe_queries(
    live: IntArray,
    queries_of: Callable[[IntArray], FloatMatrix],
    exact: Callable[[FloatMatrix, int], tuple[FloatMatrix, IntArray]],
) -> FloatMatrix:
    """Queries near the stored vectors, for when no held-out vectors are at hand.

    :data:`TUNE_QUERIES` live vectors (seeded), each moved in a random direction by
    its distance to its nearest other vector. A stored vector itself is no fair
    query: a graph search lands on its node, whose links are its nearest
    neighbours (on 200 Gaussian clusters in 384-d, 6k points, HNSW at efSearch 16
    found 0.62 of the top 10 of stored vectors and 0.40 of held-out ones). The
    moved vectors are fairer but still easier than held-out ones (0.97 against
    0.94 at efSearch 128 there), so their estimate needs :data:`PROBE_MARGIN`.
    """
    rng = np.random.default_rng(TUNE_SEED)
    picked = np.sort(live[rng.choice(len(live), size=min(TUNE_QUERIES, len(live)), replace=False)])
    points = np.ascontiguousarray(queries_of(picked), dtype=np.float32)
    sims, ids = exact(points, 2)
    # The nearest other vector: the second hit, or the first if the point lost its place.
    other = np.where(ids[:, 0] == picked, sims[:, 1], sims[:, 0]).astype(np.float64)
    step = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * other))[:, None]
    direction = rng.standard_normal(points.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    queries = points + step * direction
    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(queries, dtype=np.float32)


def held_out(n: int) -> IntArray:
    """Which of ``n`` vectors being added to hold out as tuning queries (seeded)."""
    rng = np.random.default_rng(TUNE_SEED)
    return np.sort(rng.choice(n, size=min(TUNE_QUERIES, n), replace=False))


def tune_breadth(
    queries: FloatMatrix,
    exact: Callable[[FloatMatrix, int], tuple[FloatMatrix, IntArray]],
    approx: Callable[[FloatMatrix, int, int], IntArray],
    breadths: Sequence[int],
    *,
    size: int,
    target: float,
    held_out: bool,
) -> Tuning | None:
    """The narrowest breadth whose estimated recall@10 reaches the target with a margin.

    The breadths are tried in order until the mean share of each query's exact
    top 10 found in its approximate top 10, less :data:`TUNE_CONFIDENCE`
    standard errors (and :data:`PROBE_MARGIN` for probes), reaches ``target``;
    the last breadth is kept otherwise.

    Args:
        queries: Vectors of the data's distribution that are not in the index
            (held out of it, or from :func:`probe_queries`).
        exact: ``exact(queries, k)``: the exact top k, (scores, ids), each (nq, k).
        approx: ``approx(queries, k, breadth)``: the approximate top-k ids at a breadth.
        breadths: Breadths to try, narrowest first.
        size: Live vectors in the index.
        target: Recall@10 wanted, in (0, 1].
        held_out: Whether the queries were held out of the index (else probes).

    Returns:
        The tuning, or None when the index holds too few vectors to measure.
    """
    started = time.perf_counter()
    k = min(TUNE_K, size)
    if k < 1 or not breadths or not len(queries):
        return None
    want = [set(row[row >= 0].tolist()) for row in exact(queries, k)[1]]
    bias = 0.0 if held_out else PROBE_MARGIN
    tried: list[tuple[int, float]] = []
    met = False
    for breadth in breadths:
        got = approx(queries, k, breadth)
        pairs = zip(want, got, strict=True)
        shares = np.array([len(w.intersection(row.tolist())) / max(1, len(w)) for w, row in pairs])
        estimate = float(shares.mean())
        error = float(shares.std()) / np.sqrt(len(shares))
        tried.append((breadth, estimate))
        # Exact agreement on every query passes whatever the target (1.0 included).
        if estimate == 1.0 or estimate - TUNE_CONFIDENCE * error - bias >= target:
            met = True
            break
    breadth, estimate = tried[-1]
    seconds = time.perf_counter() - started
    return Tuning(
        breadth, estimate, size, len(queries), tuple(tried), held_out, met, False, seconds
    )


class _Tunable(Protocol):
    recall_target: float | None
    _tuned_size: int

    def __len__(self) -> int: ...

    def tune(self, queries: FloatMatrix | None = None) -> Tuning | None: ...


def _add_tuned(
    index: _Tunable,
    insert: Callable[[IntArray, FloatMatrix], None],
    labels: IntArray,
    vectors: FloatMatrix,
) -> None:
    """Insert, and tune when the index has grown enough since its last tuning.

    A batch large enough lends its held-out vectors as queries: the index is tuned
    with them outside, and they are inserted after.
    """
    due = (
        index.recall_target is not None
        and len(index) + len(labels) >= TUNE_GROWTH * index._tuned_size
    )
    if not due or len(labels) < 2 * TUNE_QUERIES:
        insert(labels, vectors)
        if due:
            index.tune()
        return
    hold = held_out(len(labels))
    rest = np.ones(len(labels), dtype=bool)
    rest[hold] = False
    insert(labels[rest], vectors[rest])
    index.tune(np.ascontiguousarray(vectors[hold], dtype=np.float32))
    insert(labels[hold], vectors[hold])
    index._tuned_size = len(index)


class VectorIndex(Protocol):
    """What the engine needs of an index. Labels are int64, vectors unit float32."""

    kind: str
    exact: bool
    tuning: Tuning | None
    """The last recall-target tuning (None: exact, untuned, or too small to tune)."""

    @property
    def breadth(self) -> int | None:
        """The search breadth in use (``efSearch``, ``nprobe``); None for exact search."""
        ...

    def nbytes(self) -> int:
        """Bytes the index holds in memory (vectors, graph or lists, label maps)."""
        ...

    def add(self, labels: IntArray, vectors: FloatMatrix) -> None: ...

    def remove(self, labels: IntArray) -> None: ...

    def search(
        self, query: FloatMatrix, k: int, allowed: BoolArray | None = None
    ) -> tuple[FloatMatrix, IntArray]:
        """Top-k by inner product: (scores, labels), each (nq, k); missing slots are -1."""
        ...

    def vectors(self, labels: IntArray) -> FloatMatrix:
        """The stored unit vectors of live labels, in the order given."""
        ...

    def __len__(self) -> int: ...


class FlatIndex:
    """Exact inner-product search; the reference every other index is measured against."""

    kind = "flat"
    exact = True
    tuning: Tuning | None = None
    breadth = None

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def nbytes(self) -> int:
        # The vectors, the id array and IndexIDMap2's reverse map (a hash map).
        return int(self.index.ntotal) * (4 * self.dim + 8 + _HASH_ENTRY_BYTES)

    def add(self, labels: IntArray, vectors: FloatMatrix) -> None:
        if len(labels):
            self.index.add_with_ids(vectors, labels.astype(np.int64))

    def remove(self, labels: IntArray) -> None:
        if len(labels):
            self.index.remove_ids(np.asarray(labels, dtype=np.int64))

    def vectors(self, labels: IntArray) -> FloatMatrix:
        return np.asarray(self.index.reconstruct_batch(labels), dtype=np.float32)

    def search(
        self, query: FloatMatrix, k: int, allowed: BoolArray | None = None
    ) -> tuple[FloatMatrix, IntArray]:
        if allowed is None:
            return _pair(self.index.search(query, k))
        sel, _bits = _bitmap(allowed)
        params = faiss.SearchParameters(sel=sel)
        return _pair(self.index.search(query, k, params=params))


class HNSWIndex:
    """Approximate search on an HNSW graph (inner product on unit vectors).

    Internal FAISS ids are insertion positions; ``_labels`` maps them to labels
    and ``_pos`` (an array indexed by label, -1 for none) back, both in 32 bits.
    Removed nodes stay in the graph as tombstones, masked out of every search,
    until they reach a quarter of the graph and it is rebuilt from the live nodes.

    Args:
        dim: Vector dimension.
        m: Graph degree.
        ef_construction: Build beam.
        ef_search: Search beam; with a ``recall_target`` only until the first tuning.
        recall_target: Keep recall@10 against exact search at this level by tuning
            ``ef_search`` on the index's own vectors (see :func:`tune_breadth`)
            when it is built and each time it doubles; None keeps ``ef_search``.
    """

    kind = "hnsw"
    exact = False

    def __init__(
        self,
        dim: int,
        *,
        m: int = _HNSW_M,
        ef_construction: int = _HNSW_EF_CONSTRUCTION,
        ef_search: int = _HNSW_EF_SEARCH,
        recall_target: float | None = None,
    ) -> None:
        self.dim = dim
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.recall_target = recall_target
        self.tuning: Tuning | None = None
        self.tunings = 0
        """How many times the index tuned itself."""
        self._reset()

    def _reset(self) -> None:
        self.index = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = self.ef_construction
        self._labels = np.zeros(0, dtype=np.int32)
        self._alive = np.zeros(0, dtype=bool)
        self._pos = np.zeros(0, dtype=np.int32)
        self._live = 0
        self._tuned_size = 0
        self._params: dict[int, faiss.SearchParametersHNSW] = {}
        """Selector-free search parameters by beam width (see :meth:`_beam`)."""

    @classmethod
    def restore(
        cls,
        index: Any,
        labels: IntArray,
        *,
        ef_search: int,
        tuning: Tuning | None,
        recall_target: float | None,
    ) -> HNSWIndex:
        """An index around a FAISS HNSW graph read back from a cache.

        Args:
            index: The ``IndexHNSWFlat`` (inner product) as it was saved; the
                restored index takes it over.
            labels: The label of each graph node in insertion order; -1 marks
                a node whose memory is gone (a tombstone from now on).
            ef_search: The search beam it was saved with.
            tuning: The tuning it was saved with (it is tuned again when it has
                doubled since, as if it had never left memory).
            recall_target: As for the constructor.
        """
        # Not downcast_index(): its result would not own the index, the caller's would.
        graph = index
        if not isinstance(graph, faiss.IndexHNSWFlat) or int(graph.ntotal) != len(labels):
            raise ValidationError(
                f"the index given holds {int(graph.ntotal)} vectors of a "
                f"{type(graph).__name__}, not {len(labels)} of an IndexHNSWFlat"
            )
        out = cls(
            int(graph.d),
            m=int(graph.hnsw.nb_neighbors(1)),
            ef_construction=int(graph.hnsw.efConstruction),
            ef_search=ef_search,
            recall_target=recall_target,
        )
        out.index = graph
        labels = np.asarray(labels, dtype=np.int64)
        out._alive = labels >= 0
        out._labels = np.where(out._alive, labels, 0).astype(np.int32)
        live = labels[out._alive]
        if len(np.unique(live)) != len(live):
            raise ValidationError("a label appears twice among the restored graph's nodes")
        out._set_positions(live, np.flatnonzero(out._alive))
        out.tuning = tuning
        out._tuned_size = tuning.size if tuning is not None else 0
        if out.tombstones > _TOMBSTONE_REBUILD * max(int(out.index.ntotal), 1):
            out.rebuild()
        return out

    def node_labels(self) -> IntArray:
        """The label of each graph node in insertion order, -1 for tombstones."""
        return np.where(self._alive, self._labels, -1).astype(np.int64)

    def node_vectors(self) -> FloatMatrix:
        """Every graph node's vector in insertion order (tombstones included)."""
        n = int(self.index.ntotal)
        if not n:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._storage().reconstruct_n(0, n), dtype=np.float32)

    @property
    def breadth(self) -> int | None:
        return None if self.exhaustive else self.ef_search

    @property
    def exhaustive(self) -> bool:
        """Whether searches scan every vector: no beam cheaper than that kept the target."""
        return self.tuning is not None and self.tuning.exhaustive

    def nbytes(self) -> int:
        n = int(self.index.ntotal)
        hnsw = self.index.hnsw
        graph = 4 * int(hnsw.neighbors.size()) + 8 * int(hnsw.offsets.size())
        graph += 4 * int(hnsw.levels.size())
        own = self._labels.nbytes + self._alive.nbytes + self._pos.nbytes
        return n * 4 * self.dim + graph + own

    def __len__(self) -> int:
        return self._live

    @property
    def tombstones(self) -> int:
        return int(self.index.ntotal) - self._live

    def _positions(self, labels: IntArray) -> IntArray:
        """Each label's graph position, -1 for a label not in the index."""
        labels = np.asarray(labels, dtype=np.int64)
        if not len(self._pos):
            return np.full(len(labels), -1, np.int64)
        inside = (labels >= 0) & (labels < len(self._pos))
        return np.where(inside, self._pos[np.where(inside, labels, 0)], -1).astype(np.int64)

    def _set_positions(self, labels: IntArray, positions: np.ndarray) -> None:
        """Point ``labels`` at graph ``positions`` (the label -> position array grows)."""
        if len(labels) and int(labels.max()) >= len(self._pos):
            grown = np.full(max(int(labels.max()) + 1, 2 * len(self._pos)), -1, np.int32)
            grown[: len(self._pos)] = self._pos
            self._pos = grown
        fresh = self._pos[labels] < 0
        self._pos[labels] = positions
        self._live += len(np.unique(labels[fresh]))

    def add(self, labels: IntArray, vectors: FloatMatrix) -> None:
        if not len(labels):
            return
        labels = np.asarray(labels, dtype=np.int64)
        known = self._positions(labels) >= 0
        if known.any():
            self.remove(labels[known])
        _add_tuned(self, self._insert, labels, vectors)

    def _insert(self, labels: IntArray, vectors: FloatMatrix) -> None:
        start = int(self.index.ntotal)
        with faiss_threads(build_threads()):
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self._labels = np.concatenate([self._labels, labels.astype(np.int32)])
        self._alive = np.concatenate([self._alive, np.ones(len(labels), dtype=bool)])
        self._set_positions(labels, start + np.arange(len(labels), dtype=np.int64))

    def tune(self, queries: FloatMatrix | None = None) -> Tuning | None:
        """Set ``ef_search`` to the narrowest beam that keeps the recall target.

        Costs one brute-force pass for the exact top 10 of :data:`TUNE_QUERIES`
        queries and one batched graph search per beam tried. None (and nothing
        changes) without a target or an empty index.

        Args:
            queries: Vectors held out of the index; default: :func:`probe_queries`.
        """
        if self.recall_target is None:
            return None
        live = np.flatnonzero(self._alive).astype(np.int64)
        storage = self._storage()
        sel, _bits = _bitmap(self._alive)
        self._tuned_size = len(live)
        if not len(live):
            return None

        def exact(queries: FloatMatrix, k: int) -> tuple[FloatMatrix, IntArray]:
            return _pair(storage.search(queries, k, params=faiss.SearchParameters(sel=sel)))

        def approx(queries: FloatMatrix, k: int, ef: int) -> IntArray:
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
            return _pair(self.index.search(queries, k, params=params))[1]

        # A beam visits about ef * 2m vectors; past the live count a scan is cheaper.
        steps = [ef for ef in _EF_STEPS if ef * 2 * self.m < len(live)] or [_EF_STEPS[0]]
        with faiss_threads(build_threads()):
            probes = queries is None
            if queries is None:
                queries = probe_queries(
                    live,
                    lambda pos: np.asarray(storage.reconstruct_batch(pos), dtype=np.float32),
                    exact,
                )
            tuning = tune_breadth(
                queries,
                exact,
                approx,
                steps,
                size=len(live),
                target=self.recall_target,
                held_out=not probes,
            )
        if tuning is not None and not tuning.met and len(steps) < len(_EF_STEPS):
            tuning = dataclasses.replace(tuning, exhaustive=True)
        if tuning is not None:
            self.tuning = tuning
            self.ef_search = tuning.breadth
            self.tunings += 1
        return tuning

    def remove(self, labels: IntArray) -> None:
        labels = np.unique(np.asarray(labels, dtype=np.int64))
        pos = self._positions(labels)
        known = pos >= 0
        self._alive[pos[known]] = False
        self._pos[labels[known]] = -1
        self._live -= int(known.sum())
        if self.tombstones > _TOMBSTONE_REBUILD * max(int(self.index.ntotal), 1):
            self.rebuild()

    def rebuild(self) -> None:
        """Rebuild the graph from its live nodes, dropping every tombstone."""
        live = np.flatnonzero(self._alive)
        vectors = self._storage().reconstruct_batch(live) if len(live) else None
        labels = self._labels[live].astype(np.int64)
        self._reset()
        if vectors is not None:
            self.add(labels, vectors)

    def vectors(self, labels: IntArray) -> FloatMatrix:
        pos = self._positions(labels)
        if (pos < 0).any():
            raise KeyError(int(np.asarray(labels)[pos < 0][0]))
        return np.asarray(self._storage().reconstruct_batch(pos), dtype=np.float32)

    def _storage(self) -> faiss.IndexFlat:
        return faiss.downcast_index(self.index.storage)

    def search(
        self, query: FloatMatrix, k: int, allowed: BoolArray | None = None
    ) -> tuple[FloatMatrix, IntArray]:
        ntotal = int(self.index.ntotal)
        if allowed is None and ntotal == self._live and ntotal >= k and not self.exhaustive:
            # The common case, kept lean: nothing to exclude (no selector, whose
            # checks slow the walk) and at least k nodes, so the beam fills every slot.
            scores, pos = self.index.search(query, k, params=self._beam(k))
            if pos[:, k - 1].min() >= 0:
                return scores, self._labels[pos].astype(np.int64)
            return self._search(query, k, None)  # the walk fell short: scan
        return self._search(query, k, allowed)

    def _beam(self, k: int) -> faiss.SearchParametersHNSW:
        """Search parameters without a selector for ``k`` results, made once per beam."""
        # The tuned breadth keeps recall@10; a deeper pool needs at least k in the beam.
        ef = max(self.ef_search, k)
        params = self._params.get(ef)
        if params is None:
            if len(self._params) >= _BEAMS_KEPT:
                self._params.clear()
            params = self._params[ef] = faiss.SearchParametersHNSW(efSearch=ef)
        return params

    def _search(
        self, query: FloatMatrix, k: int, allowed: BoolArray | None
    ) -> tuple[FloatMatrix, IntArray]:
        """Search with a filter, tombstones, a sparse pool or a scan: the general path."""
        ntotal = int(self.index.ntotal)
        sel: faiss.IDSelectorBitmap | None = None
        if allowed is None and not self.tombstones:
            n_ok = ntotal
        else:
            mask = self._alive.copy()
            if allowed is not None:
                inside = self._labels < len(allowed)
                mask &= inside
                mask[inside] &= allowed[self._labels[inside]]
            n_ok = int(mask.sum())
            sel, _bits = _bitmap(mask)  # _bits keeps the selector's buffer alive
        k_eff = min(k, n_ok)
        if k_eff == 0:
            return (
                np.full((len(query), k), -np.inf, dtype=np.float32),
                np.full((len(query), k), -1, dtype=np.int64),
            )
        if n_ok < _SELECTIVE * ntotal or self.exhaustive:
            # A graph walk through a sparse filter finds too few nodes (or, on data the
            # graph serves badly, costs more than a scan for the recall target): scan.
            scores, pos = self._storage().search(query, k, params=faiss.SearchParameters(sel=sel))
        else:
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.ef_search, k))
            scores, pos = self.index.search(query, k, params=params)
            short = pos[:, k_eff - 1] < 0  # results come best first, -1 after the last
            if short.any():
                exact_s, exact_p = self._storage().search(
                    query[short], k, params=faiss.SearchParameters(sel=sel)
                )
                scores[short], pos[short] = exact_s, exact_p
        labels = np.where(pos >= 0, self._labels[np.maximum(pos, 0)], -1).astype(np.int64)
        return scores, labels


class IVFIndex:
    """Inverted-file search: k-means cells, ``nprobe`` of them visited per query.

    Built once from the vectors it starts with (k-means needs data); later
    additions go to their nearest cell. ``nlist`` defaults to ``4 * sqrt(n)``.
    """

    kind = "ivf"
    exact = False

    def __init__(
        self,
        dim: int,
        train: FloatMatrix,
        *,
        nprobe: int | None = None,
        recall_target: float | None = None,
    ) -> None:
        self.dim = dim
        self.recall_target = recall_target
        self.tuning: Tuning | None = None
        self._tuned_size = 0
        self._present = np.zeros(0, dtype=bool)
        n = len(train)
        if n < 64:
            raise ValidationError(
                f"an IVF index needs at least 64 vectors to train, got {n}; use index='flat'"
            )
        nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
        quantizer = faiss.IndexFlatIP(dim)
        self.index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        with faiss_threads(build_threads()):
            self.index.train(np.ascontiguousarray(train, dtype=np.float32))
        self.index.nprobe = nprobe or max(1, min(nlist, nlist // 8 + 8))
        # A hashtable direct map allows both add_with_ids and reconstruct by label.
        self.index.set_direct_map_type(faiss.DirectMap.Hashtable)
        self.quantizer = quantizer  # the IVF index does not own it in the SWIG wrapper

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def breadth(self) -> int:
        return int(self.index.nprobe)

    def nbytes(self) -> int:
        n = int(self.index.ntotal)
        lists = n * (4 * self.dim + 8 + _HASH_ENTRY_BYTES)
        return lists + 4 * self.dim * int(self.index.nlist) + self._present.nbytes

    def add(self, labels: IntArray, vectors: FloatMatrix) -> None:
        if not len(labels):
            return
        _add_tuned(self, self._insert, np.asarray(labels, dtype=np.int64), vectors)

    def _insert(self, labels: IntArray, vectors: FloatMatrix) -> None:
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), labels)
        top = int(labels.max()) + 1
        if top > len(self._present):
            grown = np.zeros(max(top, 2 * len(self._present)), dtype=bool)
            grown[: len(self._present)] = self._present
            self._present = grown
        self._present[labels] = True

    def tune(self, queries: FloatMatrix | None = None) -> Tuning | None:
        """Set ``nprobe`` to the fewest cells (powers of two) that keep the recall target.

        Exact search is the same index probing every cell.

        Args:
            queries: Vectors held out of the index; default: :func:`probe_queries`.
        """
        self._tuned_size = len(self)
        if self.recall_target is None or not len(self):
            return None
        nlist = int(self.index.nlist)
        probes = [p for p in (2**i for i in range(nlist.bit_length())) if p < nlist] + [nlist]

        def search(queries: FloatMatrix, k: int, nprobe: int) -> tuple[FloatMatrix, IntArray]:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            return _pair(self.index.search(queries, k, params=params))

        def exact(queries: FloatMatrix, k: int) -> tuple[FloatMatrix, IntArray]:
            return search(queries, k, nlist)

        with faiss_threads(build_threads()):
            held = queries is not None
            if queries is None:
                live = np.flatnonzero(self._present).astype(np.int64)
                queries = probe_queries(live, self.vectors, exact)
            tuning = tune_breadth(
                queries,
                exact,
                lambda queries, k, nprobe: search(queries, k, nprobe)[1],
                probes,
                size=len(self),
                target=self.recall_target,
                held_out=held,
            )
        if tuning is not None:
            self.tuning = tuning
            self.index.nprobe = tuning.breadth
        return tuning

    def vectors(self, labels: IntArray) -> FloatMatrix:
        if not len(labels):
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.index.reconstruct(int(x)) for x in labels]).astype(np.float32)

    def remove(self, labels: IntArray) -> None:
        if len(labels):
            labels = np.asarray(labels, dtype=np.int64)
            self.index.remove_ids(labels)
            self._present[labels[labels < len(self._present)]] = False

    def search(
        self, query: FloatMatrix, k: int, allowed: BoolArray | None = None
    ) -> tuple[FloatMatrix, IntArray]:
        if allowed is None:
            return _pair(self.index.search(query, k))
        labels = np.flatnonzero(allowed)
        if len(labels) < _SELECTIVE * len(self) or len(labels) <= 4 * k:
            # Too few candidates in the probed cells: rank the selected vectors exactly.
            present = labels  # the engine only allows labels it has added
            vectors = np.stack([self.index.reconstruct(int(x)) for x in present])
            scores = vectors @ query.T
            order = np.argsort(-scores, axis=0, kind="stable")[:k].T
            top = np.take_along_axis(scores.T, order, axis=1)
            out_s = np.full((len(query), k), -np.inf, dtype=np.float32)
            out_l = np.full((len(query), k), -1, dtype=np.int64)
            out_s[:, : top.shape[1]] = top
            out_l[:, : top.shape[1]] = present[order]
            return out_s, out_l
        sel, _bits = _bitmap(allowed)
        params = faiss.SearchParametersIVF(sel=sel, nprobe=self.index.nprobe)
        return _pair(self.index.search(query, k, params=params))


class NoIndex:
    """For ``index="lance"``: vectors stay on disk and LanceDB answers recall."""

    kind = "lance"
    exact = False
    tuning: Tuning | None = None
    breadth = None

    def __init__(self) -> None:
        self._labels: set[int] = set()

    def __len__(self) -> int:
        return len(self._labels)

    def nbytes(self) -> int:
        return sys.getsizeof(self._labels) + len(self._labels) * _INT_BYTES

    def add(self, labels: IntArray, vectors: FloatMatrix) -> None:
        self._labels.update(int(x) for x in labels)

    def vectors(self, labels: IntArray) -> FloatMatrix:
        raise ValidationError(
            "the 'lance' index keeps no vectors in memory; open the store with "
            "index='auto' for operations that read them back"
        )

    def remove(self, labels: IntArray) -> None:
        self._labels.difference_update(int(x) for x in labels)

    def search(
        self, query: FloatMatrix, k: int, allowed: BoolArray | None = None
    ) -> tuple[FloatMatrix, IntArray]:
        raise NotImplementedError("index='lance' searches through LanceDB, not in memory")


def make_index(
    kind: str,
    dim: int,
    n_expected: int,
    *,
    exact_threshold: int,
    train: FloatMatrix | None,
    recall_target: float | None = None,
) -> VectorIndex:
    """The index for an agent: ``auto`` is exact below ``exact_threshold`` memories, else HNSW.

    ``recall_target`` makes an approximate index tune its search breadth to keep it.
    """
    if kind == "auto":
        kind = "flat" if n_expected < exact_threshold else "hnsw"
    if kind == "flat":
        return FlatIndex(dim)
    if kind == "lance":
        return NoIndex()
    if kind == "hnsw":
        return HNSWIndex(dim, recall_target=recall_target)
    if kind == "ivf":
        if train is None or len(train) < 64:
            return FlatIndex(dim)
        return IVFIndex(dim, train, recall_target=recall_target)
    raise ValidationError(f"index {kind!r} is not known; use one of {', '.join(INDEX_KINDS)}")
