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
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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
    "VectorIndex",
    "faiss_threads",
    "make_index",
]

INDEX_KINDS = ("auto", "flat", "hnsw", "ivf", "lance")
_HNSW_M = 32
_HNSW_EF_CONSTRUCTION = 128
_HNSW_EF_SEARCH = 128
_TOMBSTONE_REBUILD = 0.25
"""Rebuild an HNSW graph once this fraction of its nodes are removed."""
_SELECTIVE = 0.02
"""When fewer than this fraction of labels pass a filter, search them exhaustively."""


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


class VectorIndex(Protocol):
    """What the engine needs of an index. Labels are int64, vectors unit float32."""

    kind: str
    exact: bool

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

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self.index.ntotal)

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

    Internal FAISS ids are insertion positions; ``_labels`` maps them to labels.
    Removed nodes stay in the graph as tombstones, masked out of every search,
    until they reach a quarter of the graph and it is rebuilt from the live nodes.
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
    ) -> None:
        self.dim = dim
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self._reset()

    def _reset(self) -> None:
        self.index = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = self.ef_construction
        self._labels = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)
        self._pos: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._pos)

    @property
    def tombstones(self) -> int:
        return int(self.index.ntotal) - len(self._pos)

    def add(self, labels: IntArray, vectors: FloatMatrix) -> None:
        if not len(labels):
            return
        labels = np.asarray(labels, dtype=np.int64)
        if any(int(label) in self._pos for label in labels):
            self.remove(np.array([x for x in labels if int(x) in self._pos], dtype=np.int64))
        start = int(self.index.ntotal)
        with faiss_threads(build_threads()):
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self._labels = np.concatenate([self._labels, labels])
        self._alive = np.concatenate([self._alive, np.ones(len(labels), dtype=bool)])
        self._pos.update({int(label): start + i for i, label in enumerate(labels)})

    def remove(self, labels: IntArray) -> None:
        for label in labels:
            pos = self._pos.pop(int(label), None)
            if pos is not None:
                self._alive[pos] = False
        if self.tombstones > _TOMBSTONE_REBUILD * max(int(self.index.ntotal), 1):
            self.rebuild()

    def rebuild(self) -> None:
        """Rebuild the graph from its live nodes, dropping every tombstone."""
        live = np.flatnonzero(self._alive)
        vectors = self._storage().reconstruct_batch(live) if len(live) else None
        labels = self._labels[live]
        self._reset()
        if vectors is not None:
            self.add(labels, vectors)

    def vectors(self, labels: IntArray) -> FloatMatrix:
        pos = np.array([self._pos[int(x)] for x in labels], dtype=np.int64)
        return np.asarray(self._storage().reconstruct_batch(pos), dtype=np.float32)

    def _storage(self) -> faiss.IndexFlat:
        return faiss.downcast_index(self.index.storage)

    def search(
        self, query: FloatMatrix, k: int, allowed: BoolArray | None = None
    ) -> tuple[FloatMatrix, IntArray]:
        ntotal = int(self.index.ntotal)
        mask = self._alive.copy()
        if allowed is not None:
            inside = self._labels < len(allowed)
            mask &= inside
            mask[inside] &= allowed[self._labels[inside]]
        n_ok = int(mask.sum())
        k_eff = min(k, n_ok)
        if k_eff == 0:
            return (
                np.full((len(query), k), -np.inf, dtype=np.float32),
                np.full((len(query), k), -1, dtype=np.int64),
            )
        sel, _bits = _bitmap(mask)
        if n_ok < _SELECTIVE * ntotal:
            # A graph walk through a sparse filter finds too few nodes: scan the selected ones.
            scores, pos = self._storage().search(query, k, params=faiss.SearchParameters(sel=sel))
        else:
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.ef_search, 2 * k))
            scores, pos = self.index.search(query, k, params=params)
            short = (pos[:, :k_eff] < 0).any(axis=1)
            if short.any():
                exact_s, exact_p = self._storage().search(
                    query[short], k, params=faiss.SearchParameters(sel=sel)
                )
                scores[short], pos[short] = exact_s, exact_p
        labels = np.where(pos >= 0, self._labels[np.maximum(pos, 0)], -1)
        return scores, labels


class IVFIndex:
    """Inverted-file search: k-means cells, ``nprobe`` of them visited per query.

    Built once from the vectors it starts with (k-means needs data); later
    additions go to their nearest cell. ``nlist`` defaults to ``4 * sqrt(n)``.
    """

    kind = "ivf"
    exact = False

    def __init__(self, dim: int, train: FloatMatrix, *, nprobe: int | None = None) -> None:
        self.dim = dim
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

    def add(self, labels: IntArray, vectors: FloatMatrix) -> None:
        if len(labels):
            self.index.add_with_ids(vectors, np.asarray(labels, dtype=np.int64))

    def vectors(self, labels: IntArray) -> FloatMatrix:
        if not len(labels):
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.index.reconstruct(int(x)) for x in labels]).astype(np.float32)

    def remove(self, labels: IntArray) -> None:
        if len(labels):
            self.index.remove_ids(np.asarray(labels, dtype=np.int64))

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

    def __init__(self) -> None:
        self._labels: set[int] = set()

    def __len__(self) -> int:
        return len(self._labels)

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
    kind: str, dim: int, n_expected: int, *, exact_threshold: int, train: FloatMatrix | None
) -> VectorIndex:
    """The index for an agent: ``auto`` is exact below ``exact_threshold`` memories, else HNSW."""
    if kind == "auto":
        kind = "flat" if n_expected < exact_threshold else "hnsw"
    if kind == "flat":
        return FlatIndex(dim)
    if kind == "lance":
        return NoIndex()
    if kind == "hnsw":
        return HNSWIndex(dim)
    if kind == "ivf":
        if train is None or len(train) < 64:
            return FlatIndex(dim)
        return IVFIndex(dim, train)
    raise ValidationError(f"index {kind!r} is not known; use one of {', '.join(INDEX_KINDS)}")
