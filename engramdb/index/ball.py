"""An agent's points in the Poincaré ball, indexed for recall by distance, kept in step.

In the Poincaré space each memory is a point whose direction is its text
embedding and whose norm is its depth in the hierarchy (see
:mod:`engramdb.index.hierarchy`); ``recall(..., rank="distance")`` searches
these points. A write moves few of them: the memories written and, because a
leaf sits deeper than a parent, the parents that gain their first child or
lose their last. Rebuilding the index after every write would make the next
recall cost a pass over every memory (at 100k memories, minutes for an HNSW
graph), so :class:`BallIndex` remembers the depth at which it indexed each
label, compares it with the current depths, and removes and re-adds only the
points that moved, came or went. A change to more than
:data:`REBUILD_FRACTION` of the points rebuilds the index instead.

The index follows the agent's vector index: exact
(:class:`~engramdb.hyperbolic.index.PoincareFlatIndex`) while that is exact,
approximate (:class:`~engramdb.hyperbolic.index.PoincareHNSWIndex`, exact
distances re-ranked over graph candidates) once the engine has chosen an
approximate index for the agent (``index="hnsw"`` or ``"ivf"``, or ``"auto"``
past ``settings.exact_threshold`` memories).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engramdb._types import BoolArray, Float64Array, FloatMatrix, IntArray
from engramdb.hyperbolic.index import PoincareFlatIndex, PoincareHNSWIndex, SearchResult
from engramdb.index.hierarchy import points
from engramdb.index.vector import build_threads, faiss_threads

__all__ = ["REBUILD_FRACTION", "BallIndex"]

REBUILD_FRACTION = 0.25
"""Rebuild rather than update when more than this fraction of the points changed."""
HNSW_EF_SEARCH = 160
"""The graph's search beam (the engine's Euclidean HNSW uses 128). A query
mostly needs one graph pass (see :class:`~engramdb.hyperbolic.index.PoincareHNSWIndex`),
started from a point nearer the origin than the query, where the graph's greedy
search does worse than from a stored point; on ``benchmarks/hierarchy.py``
part 3 at 10k memories, recall@10 was 0.989 at 128, 0.994 at 160 and 0.996 at
192, at p95 1.5x, 1.8x and 1.9x Euclidean HNSW recall."""
HNSW_CANDIDATES = 80
"""Graph candidates per pass, or ``4k`` if more (the index's default is
``max(4k, 40)``). On 384-d clustered vectors under a random tree (as in
``benchmarks/hierarchy.py``, part 3), 40 gave recall@10 0.98 at 10k memories and
80 gave 0.996, no slower: a wider first pass more often covers the answer, which
saves a second pass."""


class BallIndex:
    """Poincaré k-NN over an agent's live labels, updated point by point.

    Args:
        dim: Dimension of the embeddings (and of the ball).
        approximate: Use the HNSW index (else the exact flat one).

    Attributes:
        builds: How many times the index was built from scratch.
        moved: How many points were removed or (re-)added by updates in place.
    """

    def __init__(self, dim: int, *, approximate: bool) -> None:
        self.dim = dim
        self.approximate = approximate
        self.index: PoincareFlatIndex | PoincareHNSWIndex = self._new_index()
        # Depth at which each label was indexed; NaN for labels not in the index.
        self._depths: Float64Array = np.zeros(0, dtype=np.float64)
        self.builds = 0
        self.moved = 0
        self.generation = -1
        """The view's generation this index was last synced at (see AgentView.ball)."""

    def _new_index(self) -> PoincareFlatIndex | PoincareHNSWIndex:
        if self.approximate:
            return PoincareHNSWIndex(self.dim, ef_search=HNSW_EF_SEARCH)
        return PoincareFlatIndex(self.dim)

    def __len__(self) -> int:
        return len(self.index)

    def sync(
        self,
        alive: BoolArray,
        depths: Float64Array,
        vectors: Callable[[IntArray], FloatMatrix],
    ) -> None:
        """Bring the index in line with the live labels and their current depths.

        Args:
            alive: Which labels hold a memory, by label.
            depths: Each label's depth (norm in the ball), NaN for dead labels.
            vectors: Unit embeddings of the labels given (read from the vector index).
        """
        n = len(depths)
        old = np.full(n, np.nan)
        old[: len(self._depths)] = self._depths
        wanted = alive[:n] & ~np.isnan(depths)
        # NaN never equals NaN, so a label indexed at no depth is never "same".
        same = wanted & (old == depths)
        drop = np.flatnonzero(~np.isnan(old) & ~same)
        put = np.flatnonzero(wanted & ~same)
        if not len(drop) and not len(put) and self.builds:
            return
        with faiss_threads(build_threads()):
            if not self.builds or len(drop) + len(put) > REBUILD_FRACTION * len(self.index):
                # clear() rather than a new index: the HNSW index keeps what
                # it learned about where queries' neighbours lie.
                self.index.clear()
                labels = np.flatnonzero(wanted).astype(np.int64)
                self.builds += 1
            else:
                self.index.remove(drop)
                labels = put.astype(np.int64)
                self.moved += len(drop) + len(put)
            if len(labels):
                self.index.add(labels, points(vectors(labels), depths[labels]))
        self._depths = np.where(wanted, depths, np.nan)

    def search(self, query: Float64Array, k: int, allowed: BoolArray | None) -> SearchResult:
        """The ``k`` labels nearest ``query`` (a ball point) among ``allowed`` ones."""
        if isinstance(self.index, PoincareHNSWIndex):
            self.index.candidates = max(HNSW_CANDIDATES, 4 * k)
        return self.index.search(query, k, allowed=allowed)
