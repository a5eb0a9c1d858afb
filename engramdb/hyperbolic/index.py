"""k-nearest-neighbour search under the Poincaré distance, through FAISS.

Two indexes share one interface (``add`` / ``remove`` / ``search`` / ``len``):

* :class:`PoincareFlatIndex` is exact. On the hyperboloid, with
  ``y = (1 + c|x|^2, 2 sqrt(c) x) / (sqrt(c) (1 - c|x|^2))``, the distance is
  ``arccosh(-c <q, y>_L) / sqrt(c)`` where ``<q, y>_L = -q0 y0 + q_1..n . y_1..n``.
  Negating the query's time coordinate turns the Minkowski product into a
  Euclidean inner product, so a flat inner-product index ranks by distance:
  largest product, nearest point. FAISS computes it in float32, which cannot
  resolve points near the boundary (the coordinates grow like ``1/(1-|x|^2)``
  and the product cancels), so the flat index fetches extra candidates, re-ranks
  them with float64 distances, and proves the result with a float32 error bound;
  a query that fails the proof is answered by a float64 scan.

* :class:`PoincareHNSWIndex` is approximate, for large stores. Its candidates
  come from an L2 HNSW graph over the *ball* coordinates and are re-ranked by
  exact Poincaré distance. The method (``method="conformal"``) rests on a fact of
  the ball model: a hyperbolic ball ``B_h(q, rho)`` is a Euclidean ball with centre
  ``a = q (1 - t^2) / (1 - c|q|^2 t^2)`` and radius
  ``s = t (1 - c|q|^2) / (sqrt(c) (1 - c|q|^2 t^2))``, ``t = tanh(sqrt(c) rho / 2)``.
  So the hyperbolic k nearest neighbours of ``q`` are exactly the Euclidean k
  nearest neighbours of ``a(rho_k)``, with ``rho_k`` the k-th neighbour distance.
  A first HNSW pass from ``q`` gives candidates whose k-th exact distance
  ``rho_hat >= rho_k`` (a subset's k-th distance can only be larger); a second
  pass from ``a(rho_hat)`` must then contain the true neighbours among the first
  ``|B_h(q, rho_hat)|`` Euclidean hits, so the only approximation left is HNSW's
  own Euclidean recall. The graph is built on well-conditioned vectors (the ball
  is conformal: locally its metric is Euclidean up to scale).

  A pass is needed only while the hits do not yet cover the hyperbolic ball
  through the k-th best point, so the first pass need not start from ``q``:
  the index keeps a running estimate of ``rho_k`` for queries of similar norm
  (and the same ``k``) and starts from ``a`` of that estimate. When the estimate
  is good, as it is for a stream of queries of one kind, one pass covers the
  ball and the second is skipped; when it is not, the next pass re-centres as
  before. The estimate only chooses where to look first: the stopping test is
  the same, so it changes the cost of a query, not what it may return.

  The method suggested by the MIPS literature (Bachrach et al., 2014), an L2
  graph over hyperboloid vectors augmented with ``sqrt(M^2 - |y|^2)``, is kept as
  ``method="mips"`` for comparison: it is exact in principle but the graph is
  poor, because ``|y|`` spans orders of magnitude between the origin and the
  boundary; nearly all the mass of shallow points sits in the extra coordinate,
  and float32 products of deep points cancel. The benchmark measures both.

HNSW cannot delete: :meth:`PoincareHNSWIndex.remove` tombstones labels (searches
skip them through a FAISS selector) and :meth:`PoincareHNSWIndex.rebuild`
compacts; it runs by itself when over half the labels are tombstones. Both
indexes take a removed id back with a new point (a new row, and for HNSW a new
graph node), so moving a point is ``remove`` then ``add``; the flat index also
compacts its float64 rows once removed ones outnumber live ones.
"""

from __future__ import annotations

import math
from typing import Literal

import faiss
import numpy as np
from numpy.typing import ArrayLike, NDArray

from engramdb.errors import ValidationError
from engramdb.hyperbolic.points import (
    Allowed,
    PointStore,
    SearchResult,
    as_points,
    check_c,
    check_k,
    hyperboloid,
    ids_array,
    selector,
)

__all__ = ["Allowed", "PoincareFlatIndex", "PoincareHNSWIndex", "SearchResult"]

# The running estimate of the k-th distance is kept per bucket of sqrt(c)|q|
# (and per k): queries at one depth have similar k-th distances, queries at
# different depths do not.
_HINT_BUCKETS = 64
# Weight of the newest query in the running estimate.
_HINT_WEIGHT = 0.2

# Unit roundoff of float32, for the flat index's error bound.
_U32 = 2.0**-24


class PoincareFlatIndex:
    """Exact k-NN under the Poincaré distance (see the module docstring).

    Args:
        dim: Dimension of the ball.
        c: Curvature magnitude; points lie in the ball of radius ``1/sqrt(c)``.

    Example:
        >>> import numpy as np
        >>> index = PoincareFlatIndex(2)
        >>> index.add(np.array([7, 8]), np.array([[0.1, 0.0], [0.0, 0.9]]))
        >>> res = index.search(np.array([[0.2, 0.0]]), k=1)
        >>> int(res.ids[0, 0])
        7
    """

    def __init__(self, dim: int, *, c: float = 1.0) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ValidationError(f"dim={dim!r} must be a positive integer")
        self.dim = dim
        self.c = check_c(c)
        self._store = PointStore(dim, self.c)
        # Labels (store rows) serve as FAISS ids so that results map back to
        # float64 points without a Python lookup; IDMap2 makes them removable.
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim + 1))
        self._max_norm = 0.0

    def __len__(self) -> int:
        return len(self._store.label_of)

    def add(self, ids: ArrayLike, points: ArrayLike) -> None:
        """Add points under integer ids (which must not be in the index yet).

        Raises:
            ValidationError: for ids and points that do not match, points outside
                the ball, or an id already present; nothing is added then.
        """
        pts = as_points(points, self.dim, self.c, "points")
        self._insert(ids_array(ids, len(pts)), pts)

    def _insert(self, ids: NDArray[np.int64], pts: NDArray[np.float64]) -> None:
        labels = self._store.add(ids, pts)
        hyp = hyperboloid(pts, self.c)
        if len(hyp):
            self._max_norm = max(self._max_norm, float(np.linalg.norm(hyp, axis=1).max()))
        self._index.add_with_ids(np.ascontiguousarray(hyp, dtype=np.float32), labels)

    def remove(self, ids: ArrayLike) -> int:
        """Remove ids (unknown ids are ignored); returns how many were removed.

        A removed id may be added again, with a new point. Once removed rows
        outnumber live ones the index compacts itself (see :meth:`rebuild`).
        """
        labels = self._store.remove(ids_array(ids))
        if len(labels):
            self._index.remove_ids(labels)  # type: ignore[arg-type]
            if self._store.dead > len(self):
                self.rebuild()
        return len(labels)

    def clear(self) -> None:
        """Remove every point."""
        self._store = PointStore(self.dim, self.c)
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim + 1))
        self._max_norm = 0.0

    def rebuild(self) -> None:
        """Compact the index: drop the rows of removed points, keep ids and points."""
        ids, pts = self._store.live()
        self.clear()
        self._insert(ids, pts)

    def search(self, queries: ArrayLike, k: int, *, allowed: Allowed = None) -> SearchResult:
        """The ``k`` nearest points of each query, nearest first.

        Args:
            queries: ``(n, dim)`` points of the ball.
            k: Number of neighbours.
            allowed: Optional filter: a boolean mask indexed by id, or ids.

        Returns:
            A :class:`SearchResult` of exact Poincaré distances and ids.
        """
        k = check_k(k)
        q = as_points(queries, self.dim, self.c, "queries")
        mask = self._store.allowed_labels(allowed)
        n_live = len(self) if mask is None else int(mask.sum())
        if n_live == 0 or len(q) == 0:
            return self._store.result(
                np.full((len(q), k), np.inf), np.full((len(q), k), -1, dtype=np.int64)
            )
        fetch = min(n_live, max(2 * k, k + 32))
        hq = hyperboloid(q, self.c)
        hq[:, 0] = -hq[:, 0]
        sel, _keep = selector(mask)
        params = faiss.SearchParameters(sel=sel) if sel is not None else None  # type: ignore[call-arg]
        ip, labels = self._index.search(
            np.ascontiguousarray(hq, dtype=np.float32), fetch, params=params
        )
        dist, best = self._store.rerank(q, labels, k)
        # Certificate: every point left out has a float32 product <= the last one
        # fetched; its true product can exceed that by at most the float32 error.
        # If even that cannot beat the k-th exact neighbour, the answer is exact.
        err = (self.dim + 4) * _U32 * np.linalg.norm(hq, axis=1) * self._max_norm
        floor_ip = np.where(labels[:, -1] >= 0, ip[:, -1].astype(np.float64), -np.inf)
        kth_ip = -np.cosh(np.sqrt(self.c) * dist[:, -1]) / self.c
        unsure = (fetch < n_live) & (floor_ip + err >= kth_ip)
        result = self._store.result(dist, best)
        if unsure.any():
            exact = self._store.scan(q[unsure], k, mask, self.c)
            result.distances[unsure] = exact.distances
            result.ids[unsure] = exact.ids
        return result


class PoincareHNSWIndex:
    """Approximate k-NN under the Poincaré distance (see the module docstring).

    Args:
        dim: Dimension of the ball.
        c: Curvature magnitude.
        m: HNSW graph degree.
        ef_construction: HNSW build beam width.
        ef_search: HNSW search beam width (raised to the candidate count).
        candidates: Candidates fetched per pass (at least ``k``); ``None`` means
            ``max(4k, 40)``.
        method: ``"conformal"`` (two-pass search on ball coordinates) or
            ``"mips"`` (augmented hyperboloid vectors, for comparison).
        max_passes: Most graph searches per query for ``"conformal"``. Each pass
            re-centres on the hyperbolic ball through the k-th best point so
            far; a query stops once the last pass's L2 neighbourhood covers it.
    """

    def __init__(
        self,
        dim: int,
        *,
        c: float = 1.0,
        m: int = 32,
        ef_construction: int = 100,
        ef_search: int = 64,
        candidates: int | None = None,
        method: Literal["conformal", "mips"] = "conformal",
        max_passes: int = 4,
    ) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ValidationError(f"dim={dim!r} must be a positive integer")
        if method not in ("conformal", "mips"):
            raise ValidationError(f"method={method!r} is unknown; use 'conformal' or 'mips'")
        for name, value in (
            ("m", m),
            ("ef_construction", ef_construction),
            ("ef_search", ef_search),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name}={value!r} must be a positive integer")
        if not isinstance(max_passes, int) or max_passes < 1:
            raise ValidationError(f"max_passes={max_passes!r} must be a positive integer")
        if candidates is not None and (not isinstance(candidates, int) or candidates < 1):
            raise ValidationError(f"candidates={candidates!r} must be a positive integer or None")
        self.dim = dim
        self.c = check_c(c)
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.candidates = candidates
        self.method = method
        self.max_passes = max_passes
        self._store = PointStore(dim, self.c)
        self._mips_norm = 0.0
        self._index = self._new_index()
        # Running estimate of the k-th distance by (k, norm bucket); see the
        # module docstring. NaN where no unfiltered query has set it yet.
        self._hints: dict[int, NDArray[np.float64]] = {}
        self.graph_searches = 0
        """Graph searches run so far, one per query per pass (a statistic)."""

    def __len__(self) -> int:
        return len(self._store.label_of)

    def _new_index(self) -> faiss.IndexHNSWFlat:
        width = self.dim if self.method == "conformal" else self.dim + 2
        index = faiss.IndexHNSWFlat(width, self.m, faiss.METRIC_L2)
        index.hnsw.efConstruction = self.ef_construction
        return index

    def _vectors(self, pts: NDArray[np.float64]) -> NDArray[np.float32]:
        if self.method == "conformal":
            return np.ascontiguousarray(pts, dtype=np.float32)
        hyp = hyperboloid(pts, self.c)
        sq = np.einsum("ij,ij->i", hyp, hyp)
        # Points added after the norm bound was fixed are clamped onto it; the
        # bound is recomputed by rebuild().
        extra = np.sqrt(np.maximum(self._mips_norm**2 - sq, 0.0))[:, None]
        return np.ascontiguousarray(np.concatenate([hyp, extra], axis=1), dtype=np.float32)

    def add(self, ids: ArrayLike, points: ArrayLike) -> None:
        """Add points under integer ids (which must not be in the index yet)."""
        pts = as_points(points, self.dim, self.c, "points")
        self._insert(ids_array(ids, len(pts)), pts)

    def _insert(self, ids: NDArray[np.int64], pts: NDArray[np.float64]) -> None:
        self._store.add(ids, pts)
        if self.method == "mips" and self._index.ntotal == 0 and len(pts):
            self._mips_norm = float(np.linalg.norm(hyperboloid(pts, self.c), axis=1).max())
        # Graph node numbers are store rows: both count every add from zero.
        self._index.add(self._vectors(pts))

    def remove(self, ids: ArrayLike) -> int:
        """Tombstone ids (unknown ids are ignored); returns how many were removed.

        A removed id may be added again, with a new point (a new graph node).
        Once tombstones outnumber live points the graph is rebuilt.
        """
        removed = len(self._store.remove(ids_array(ids)))
        if self._store.dead > len(self):
            self.rebuild()
        return removed

    @property
    def tombstones(self) -> int:
        """Graph nodes of removed points, dropped by the next :meth:`rebuild`."""
        return self._store.dead

    def clear(self) -> None:
        """Remove every point and start a new graph.

        The running estimate of where the k-th neighbour lies is kept: it
        describes the queries and the shape of the data, and a wrong estimate
        costs graph passes, never answers.
        """
        self._store = PointStore(self.dim, self.c)
        self._index = self._new_index()
        self._mips_norm = 0.0

    def rebuild(self) -> None:
        """Rebuild the graph from the live points, dropping tombstones."""
        ids, pts = self._store.live()
        self.clear()
        if len(ids):
            self._insert(ids, pts)

    def _euclidean_ball(
        self, q: NDArray[np.float64], sq_q: NDArray[np.float64], rho: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Euclidean centre and radius of the hyperbolic balls ``B(q, rho)``."""
        t = np.tanh(np.sqrt(self.c) * np.where(np.isfinite(rho), rho, 0.0) / 2.0)
        den = 1.0 - sq_q * t**2
        return q * ((1.0 - t**2) / den)[:, None], t * (1.0 - sq_q) / (np.sqrt(self.c) * den)

    def _hnsw(
        self, vectors: NDArray[np.float64], fetch: int, sel: faiss.IDSelector | None
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Labels of the ``fetch`` L2-nearest and the L2 radius they cover.

        The radius is inf when the graph returned fewer than ``fetch`` hits,
        that is every point the filter allows.
        """
        self.graph_searches += len(vectors)
        params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, fetch))  # type: ignore[attr-defined]
        if sel is not None:
            params.sel = sel
        sq, labels = self._index.search(
            np.ascontiguousarray(vectors, dtype=np.float32), fetch, params=params
        )
        radius = np.where(labels[:, -1] >= 0, np.sqrt(sq[:, -1].astype(np.float64)), np.inf)
        return labels, radius

    def search(self, queries: ArrayLike, k: int, *, allowed: Allowed = None) -> SearchResult:
        """Approximately the ``k`` nearest points of each query, nearest first.

        Distances are exact Poincaré distances of the points returned.

        Args:
            queries: ``(n, dim)`` points of the ball.
            k: Number of neighbours.
            allowed: Optional filter: a boolean mask indexed by id, or ids. A
                filter that keeps few points is answered by an exact scan.

        Returns:
            A :class:`SearchResult`.
        """
        k = check_k(k)
        q = as_points(queries, self.dim, self.c, "queries")
        mask = self._store.allowed_labels(allowed)
        if mask is None and self._store.dead:
            mask = self._store.alive
        n_live = len(self) if mask is None else int(mask.sum())
        # Fewer candidates than k would leave slots empty however the passes go.
        fetch = min(n_live, max(self.candidates, k) if self.candidates else max(4 * k, 40))
        # Graph search under a selective filter wanders; a scan is cheaper there.
        if n_live <= max(8 * fetch, 2048) or len(q) == 0:
            return self._store.scan(q, k, mask, self.c)
        sel, _keep = selector(mask)
        if self.method == "mips":
            hq = hyperboloid(q, self.c)
            hq[:, 0] = -hq[:, 0]
            # Minimising |(hq, 0) - (y, extra)|^2 = |hq|^2 + M^2 - 2 <hq, y>
            # maximises the Minkowski product: nearest in distance.
            labels, _ = self._hnsw(np.concatenate([hq, np.zeros((len(q), 1))], 1), fetch, sel)
            dist, best = self._store.rerank(q, labels, k)
            return self._store.result(dist, best)
        sq_q = self.c * np.einsum("ij,ij->i", q, q)
        # A filter changes the k-th distance: start filtered queries from q and
        # keep them out of the estimate.
        filtered = allowed is not None
        bucket = np.minimum((np.sqrt(sq_q) * _HINT_BUCKETS).astype(np.int64), _HINT_BUCKETS - 1)
        hints = self._hints.get(k)
        if hints is None:
            hints = self._hints[k] = np.full(_HINT_BUCKETS, np.nan)
        guess = np.full(len(q), np.nan) if filtered else hints[bucket]
        # With no estimate (NaN) the ball has radius 0 and its centre is q itself.
        centre = self._euclidean_ball(q, sq_q, guess)[0]
        labels, reach = self._hnsw(centre, fetch, sel)
        dist, best = self._store.rerank(q, labels, k)
        for _ in range(self.max_passes - 1):
            ball_centre, ball_radius = self._euclidean_ball(q, sq_q, dist[:, -1])
            # Done when the last pass's L2 neighbourhood covers the hyperbolic
            # ball through the k-th best so far: nothing outside it can be nearer.
            # The slack absorbs float32 rounding of the graph's distances.
            gap = np.linalg.norm(ball_centre - centre, axis=1) + ball_radius
            todo = np.flatnonzero(np.isfinite(dist[:, -1]) & (gap > reach * (1.0 - 1e-4)))
            if len(todo) == 0:
                break
            if len(todo) == len(q):
                more, reach = self._hnsw(ball_centre, fetch, sel)
                centre = ball_centre
            else:
                more = np.full((len(q), fetch), -1, dtype=np.int64)
                more[todo], reach_todo = self._hnsw(ball_centre[todo], fetch, sel)
                centre = centre.copy()
                centre[todo] = ball_centre[todo]
                reach = reach.copy()
                reach[todo] = reach_todo
            # Keep the k best so far plus the new hits: the pool stays small.
            pool = np.concatenate([best, more], axis=1)
            dist, best = self._store.rerank(q, pool, k, unique=False)
        if not filtered:
            self._update_hints(hints, bucket, dist[:, -1])
        return self._store.result(dist, best)

    @staticmethod
    def _update_hints(
        hints: NDArray[np.float64], bucket: NDArray[np.int64], kth: NDArray[np.float64]
    ) -> None:
        """Fold the k-th distances found into the running estimate, in query order."""
        for b, rho in zip(bucket.tolist(), kth.tolist(), strict=True):
            if math.isfinite(rho):
                old = hints[b]
                hints[b] = rho if math.isnan(old) else old + _HINT_WEIGHT * (rho - old)
