"""The similarity graph consolidation works on: O(n k) memory, never O(n^2).

An edge joins two rows whose cosine is at least a threshold; each row keeps at
most its ``k`` most similar such neighbours (ties by index), and an edge found
from either end is kept in both directions.

Up to :data:`EXACT_LIMIT` vectors every pair is compared, in blocks of matrix
products: the graph is then a function of the set of vectors alone, which is
what makes consolidation idempotent. Above it the vectors are partitioned by
k-means (trained on an evenly spaced sample with a fixed seed, so the same
vectors give the same graph) into cells of about :data:`CELL_SIZE`; each vector
is listed in its ``spill`` nearest cells, and each cell's rows are compared with
the rows listed in the ``probe`` cells nearest to it. Pairs as similar as
consolidation looks for (0.7 and above) nearly always meet that way, and every
comparison is still a dense matrix product: 100k memories take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from engramdb._types import FloatMatrix

__all__ = ["CELL_SIZE", "EXACT_LIMIT", "Graph", "similarity_graph"]

EXACT_LIMIT = 16_384
"""Up to this many vectors every pair is compared."""
CELL_SIZE = 256
"""Target rows per k-means cell above the exact limit."""
PROBE = 3
"""Cells (its own and the nearest others) each cell is compared with."""
_BLOCK = 2048
"""Query rows per matrix product: bounds the (block x candidates) score matrix."""
_TRAIN_PER_CELL = 32
_SEED = 1234


def _edges(
    queries: FloatMatrix,
    q_ids: np.ndarray,
    base: FloatMatrix,
    b_ids: np.ndarray,
    threshold: float,
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (query id, base id, cosine) at or above ``threshold``, at most k per query.

    ``b_ids`` must be sorted; a query never pairs with itself.
    """
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, len(queries), _BLOCK):
        stop = min(start + _BLOCK, len(queries))
        scores = queries[start:stop] @ base.T
        q = q_ids[start:stop]
        pos = np.minimum(np.searchsorted(b_ids, q), len(b_ids) - 1)
        own = np.flatnonzero(b_ids[pos] == q)
        scores[own, pos[own]] = -np.inf
        rows, cols = np.nonzero(scores >= threshold)
        if not len(rows):
            continue
        vals = scores[rows, cols]
        cols = b_ids[cols]
        # Keep each row's k most similar (ties by id): sort by row, -sim, id; rank in row.
        order = np.lexsort((cols, -vals, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        starts = np.searchsorted(rows, rows)
        keep = np.arange(len(rows)) - starts < k
        out.append((q[rows[keep]], cols[keep], vals[keep]))
    if not out:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    return tuple(np.concatenate(part) for part in zip(*out, strict=True))  # type: ignore[return-value]


def _pairs(
    x: FloatMatrix, threshold: float, k: int, probe: int, spill: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, dim = x.shape
    ids = np.arange(n, dtype=np.int64)
    if n <= EXACT_LIMIT:
        return _edges(x, ids, x, ids, threshold, k)
    cells = max(2, n // CELL_SIZE)
    sample = x[np.linspace(0, n - 1, min(n, cells * _TRAIN_PER_CELL)).astype(np.int64)]
    kmeans = faiss.Kmeans(dim, cells, niter=8, seed=_SEED, spherical=True, verbose=False)
    kmeans.cp.min_points_per_centroid = 1
    kmeans.train(sample)
    spill = max(1, min(spill, cells))
    _, assign = kmeans.index.search(x, spill)
    flat = assign.ravel()
    by_cell = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[by_cell], np.arange(cells + 1))
    listed = [by_cell[bounds[c] : bounds[c + 1]] // spill for c in range(cells)]
    centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    _, near = faiss.knn(centroids, centroids, min(probe, cells), faiss.METRIC_INNER_PRODUCT)
    primary = assign[:, 0]
    home = np.argsort(primary, kind="stable")
    hb = np.searchsorted(primary[home], np.arange(cells + 1))
    parts = []
    for c in range(cells):
        rows = home[hb[c] : hb[c + 1]]
        if len(rows):
            cand = np.unique(np.concatenate([listed[int(j)] for j in near[c] if j >= 0]))
            parts.append(_edges(x[rows], rows, x[cand], cand, threshold, k))
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True)
class Graph:
    """A symmetric similarity graph in CSR form: row i's neighbours, most similar first."""

    indptr: np.ndarray
    indices: np.ndarray
    sims: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def neighbours(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.indices[lo:hi], self.sims[lo:hi]

    def degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def strength(self) -> np.ndarray:
        """Sum of edge similarities per row."""
        if not len(self.sims):
            return np.zeros(len(self), np.float64)
        return np.add.reduceat(np.append(self.sims.astype(np.float64), 0.0), self.indptr[:-1]) * (
            self.degree() > 0
        )


def similarity_graph(
    vectors: FloatMatrix, *, k: int, threshold: float, probe: int = PROBE, spill: int = 2
) -> Graph:
    """The graph of pairs at or above ``threshold``, each row keeping its k most similar.

    Args:
        vectors: Unit rows, shape (n, dim), in a stable order.
        k: Most neighbours a row keeps from its own search.
        threshold: Least cosine of an edge.
        probe: Above :data:`EXACT_LIMIT`, cells each cell is compared with.
        spill: Above it, cells each row is listed in.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    if n < 2 or k < 1:
        return Graph(np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    rows, cols, vals = _pairs(x, threshold, k, probe, spill)
    rows, cols = np.concatenate([rows, cols]), np.concatenate([cols, rows])
    vals = np.concatenate([vals, vals])
    # One entry per pair, then within a row most similar first, ties by index.
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    pair = rows * n + cols
    _, first = np.unique(pair, return_index=True)
    first.sort()
    rows, cols, vals = rows[first], cols[first], vals[first]
    indptr = np.zeros(n + 1, np.int64)
    np.add.at(indptr, rows + 1, 1)
    return Graph(np.cumsum(indptr), cols, vals.astype(np.float32))
