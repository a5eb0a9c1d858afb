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
from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

import faiss
import numpy as np
from numpy.typing import ArrayLike, NDArray

from engramdb.errors import ValidationError

__all__ = ["Allowed", "PoincareFlatIndex", "PoincareHNSWIndex", "SearchResult"]

Allowed = NDArray[np.bool_] | Iterable[int] | None
"""A search filter: a boolean mask indexed by id, or a collection of ids."""

# Float64 points keep this margin from the boundary (geoopt's float64 margin):
# nearer, 1 - c|x|^2 is a few ulps and distances are noise.
_MARGIN64 = 1e-5
# Rows handled at once by float64 scans, to bound temporary memory.
_SCAN_BLOCK = 1 << 20
# Unit roundoff of float32, for the flat index's error bound.
_U32 = 2.0**-24


class SearchResult(NamedTuple):
    """Neighbours per query, nearest first; missing slots have id -1, distance inf.

    Attributes:
        distances: ``(n_queries, k)`` Poincaré distances, float64.
        ids: ``(n_queries, k)`` int64 ids.
    """

    distances: NDArray[np.float64]
    ids: NDArray[np.int64]

    @property
    def scores(self) -> NDArray[np.float64]:
        """Higher-is-better scores: the negated distances."""
        return -self.distances


def _check_c(c: float) -> float:
    if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
        raise ValidationError(f"curvature c={c!r} must be a positive finite number, e.g. 1.0")
    return float(c)


def _as_points(points: ArrayLike, dim: int, c: float, what: str) -> NDArray[np.float64]:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValidationError(
            f"{what} must have shape (n, {dim}), got {arr.shape}; pass one row per point"
        )
    if not np.isfinite(arr).all():
        raise ValidationError(f"{what} contain NaN or inf; clean them before indexing")
    norms = np.sqrt(c) * np.linalg.norm(arr, axis=1)
    if (norms >= 1.0).any():
        worst = float(norms.max())
        raise ValidationError(
            f"{what} include a point with sqrt(c)*|x| = {worst:.6g} >= 1, outside the "
            "Poincaré ball; project the points first (engramdb.hyperbolic.project)"
        )
    # Pull points that sit closer to the boundary than float64 can resolve.
    limit = 1.0 - _MARGIN64
    scale = np.where(norms > limit, limit / np.maximum(norms, 1e-300), 1.0)
    return arr * scale[:, None]


def _distances(q: NDArray[np.float64], x: NDArray[np.float64], c: float) -> NDArray[np.float64]:
    """Poincaré distances between ``q[..., None, :]``-broadcast rows and ``x``.

    ``arccosh(1 + 2c|q-x|^2 / ((1-c|q|^2)(1-c|x|^2))) / sqrt(c)`` through
    ``log1p``, exact for near points where ``arccosh`` cancels.
    """
    sq_q = c * np.einsum("...i,...i->...", q, q)
    sq_x = c * np.einsum("...i,...i->...", x, x)
    diff = q - x
    arg = 2.0 * c * np.einsum("...i,...i->...", diff, diff) / ((1.0 - sq_q) * (1.0 - sq_x))
    out: NDArray[np.float64] = np.log1p(arg + np.sqrt(arg * (arg + 2.0))) / np.sqrt(c)
    return out


def _hyperboloid(x: NDArray[np.float64], c: float) -> NDArray[np.float64]:
    sq = c * np.einsum("ij,ij->i", x, x)[:, None]
    den = 1.0 - sq
    return np.concatenate([(1.0 + sq) / (np.sqrt(c) * den), 2.0 * x / den], axis=1)


def _ids_array(ids: ArrayLike, n: int | None = None) -> NDArray[np.int64]:
    arr = np.asarray(ids)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValidationError(
            f"ids must be a 1-d array of integers, got dtype {arr.dtype} shape {arr.shape}"
        )
    arr = arr.astype(np.int64)
    if n is not None and len(arr) != n:
        raise ValidationError(f"got {len(arr)} ids for {n} points; pass one id per point")
    if (arr < 0).any():
        raise ValidationError(f"ids must be >= 0, got {int(arr.min())}; -1 marks a missing hit")
    if len(np.unique(arr)) != len(arr):
        raise ValidationError("ids contain duplicates; pass each id once")
    return arr


class _Store:
    """Float64 points by label (row), with a label <-> id map and tombstones.

    Rows live in buffers that grow by doubling, so adding a few points to a
    large index costs in proportion to the few: concatenating would copy every
    stored point on each add. Removing an id leaves its row dead; adding the id
    again gives it a new row.
    """

    def __init__(self, dim: int, c: float) -> None:
        self.c = c
        self.n = 0
        """Rows in use, live and dead."""
        self._points = np.zeros((0, dim), dtype=np.float64)
        # The conformal factor's inverse square root 1 / (1 - c|x|^2), kept per
        # point so that re-ranking a candidate costs one difference and one dot.
        self._lam = np.zeros(0, dtype=np.float64)
        self._label_ids = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)
        self.label_of: dict[int, int] = {}

    @property
    def points(self) -> NDArray[np.float64]:
        return self._points[: self.n]

    @property
    def lam(self) -> NDArray[np.float64]:
        return self._lam[: self.n]

    @property
    def label_ids(self) -> NDArray[np.int64]:
        return self._label_ids[: self.n]

    @property
    def alive(self) -> NDArray[np.bool_]:
        return self._alive[: self.n]

    @property
    def dead(self) -> int:
        """Rows of removed points, reclaimed only by a rebuild."""
        return self.n - len(self.label_of)

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self._alive):
            return
        cap = max(need, 2 * len(self._alive), 64)

        def grown(arr: NDArray[Any]) -> NDArray[Any]:
            out = np.zeros((cap, *arr.shape[1:]), dtype=arr.dtype)
            out[: self.n] = arr[: self.n]
            return out

        self._points = grown(self._points)
        self._lam = grown(self._lam)
        self._label_ids = grown(self._label_ids)
        self._alive = grown(self._alive)

    def add(self, ids: NDArray[np.int64], points: NDArray[np.float64]) -> NDArray[np.int64]:
        clash = [int(i) for i in ids if int(i) in self.label_of]
        if clash:
            raise ValidationError(
                f"id {clash[0]} is already in the index ({len(clash)} clashing ids); "
                "remove it first to replace its point"
            )
        self._reserve(len(ids))
        start, stop = self.n, self.n + len(ids)
        labels = np.arange(start, stop, dtype=np.int64)
        self._points[start:stop] = points
        self._lam[start:stop] = 1.0 / (1.0 - self.c * np.einsum("ij,ij->i", points, points))
        self._label_ids[start:stop] = ids
        self._alive[start:stop] = True
        self.n = stop
        self.label_of.update(zip(ids.tolist(), labels.tolist(), strict=True))
        return labels

    def remove(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        labels = [self.label_of.pop(int(i)) for i in ids if int(i) in self.label_of]
        out = np.asarray(labels, dtype=np.int64)
        self._alive[out] = False
        return out

    def live(self) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Copies of the ids and points of live rows, in row order."""
        alive = self.alive
        return self.label_ids[alive].copy(), self.points[alive].copy()

    def allowed_labels(self, allowed: Allowed) -> NDArray[np.bool_] | None:
        """Mask over labels of live points passing ``allowed``; None for all."""
        if allowed is None:
            return None
        if isinstance(allowed, np.ndarray) and allowed.dtype == np.bool_:
            if allowed.ndim != 1:
                raise ValidationError(
                    f"a boolean allowed mask must be 1-d (indexed by id), got shape {allowed.shape}"
                )
            inside = self.label_ids < len(allowed)
            mask = np.zeros(len(self.label_ids), dtype=bool)
            mask[inside] = allowed[self.label_ids[inside]]
        else:
            wanted = np.fromiter((int(i) for i in allowed), dtype=np.int64)
            mask = np.isin(self.label_ids, wanted)
        return mask & self.alive

    def scan(
        self, queries: NDArray[np.float64], k: int, mask: NDArray[np.bool_] | None, c: float
    ) -> SearchResult:
        """Exact float64 search over live (and allowed) points."""
        labels = np.flatnonzero(self.alive if mask is None else mask)
        nq = len(queries)
        best_d = np.full((nq, k), np.inf)
        best_l = np.full((nq, k), -1, dtype=np.int64)
        block = max(1, _SCAN_BLOCK // max(1, nq))
        for lo in range(0, len(labels), block):
            part = labels[lo : lo + block]
            d = _distances(queries[:, None, :], self.points[part][None, :, :], c)
            all_d = np.concatenate([best_d, d], axis=1)
            all_l = np.concatenate([best_l, np.broadcast_to(part, d.shape)], axis=1)
            keep = np.argsort(all_d, axis=1, kind="stable")[:, :k]
            best_d = np.take_along_axis(all_d, keep, axis=1)
            best_l = np.take_along_axis(all_l, keep, axis=1)
        return self.result(best_d, best_l)

    def rerank(
        self,
        queries: NDArray[np.float64],
        labels: NDArray[np.int64],
        k: int,
        *,
        unique: bool = True,
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Exact top-k among candidate labels (-1 = none).

        ``unique=False`` says a row may repeat a label (pools merged from several
        graph passes); repeats are then dropped. This runs once or twice per
        query, so it keeps the number of numpy calls small: at a few dozen
        candidates their overhead, not the arithmetic, is the cost.
        """
        if not unique:
            labels = np.sort(labels, axis=1)
            labels[:, 1:][labels[:, 1:] == labels[:, :-1]] = -1
        missing = labels < 0
        safe = np.where(missing, 0, labels)
        diff = queries[:, None, :] - self.points[safe]
        lam_q = 1.0 / (1.0 - self.c * np.einsum("ij,ij->i", queries, queries))
        arg = (2.0 * self.c) * np.einsum("ijk,ijk->ij", diff, diff) * self.lam[safe]
        arg *= lam_q[:, None]
        # Distance is increasing in arg: select on arg, take arccosh of the k kept.
        arg[missing] = np.inf
        if arg.shape[1] > k:
            part = np.argpartition(arg, k - 1, axis=1)[:, :k]
            rows = np.arange(len(arg))[:, None]
            arg, safe = arg[rows, part], safe[rows, part]
        order = np.argsort(arg, axis=1, kind="stable")
        rows = np.arange(len(arg))[:, None]
        arg, best = arg[rows, order], safe[rows, order]
        best_d = np.log1p(arg + np.sqrt(arg * (arg + 2.0))) / np.sqrt(self.c)
        best_l = np.where(np.isfinite(best_d), best, -1)
        if best_d.shape[1] < k:
            pad = k - best_d.shape[1]
            best_d = np.pad(best_d, ((0, 0), (0, pad)), constant_values=np.inf)
            best_l = np.pad(best_l, ((0, 0), (0, pad)), constant_values=-1)
        return best_d, best_l

    def result(self, dist: NDArray[np.float64], labels: NDArray[np.int64]) -> SearchResult:
        ids = np.where(labels >= 0, self.label_ids[np.maximum(labels, 0)], -1)
        return SearchResult(dist, ids.astype(np.int64))


def _selector(mask: NDArray[np.bool_] | None) -> tuple[faiss.IDSelector | None, object]:
    """A FAISS bitmap selector over labels, and the buffer it must outlive."""
    if mask is None:
        return None, None
    bits = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits)), bits


def _check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValidationError(f"k={k!r} must be a positive integer")
    return int(k)


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
        self.c = _check_c(c)
        self._store = _Store(dim, self.c)
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
        pts = _as_points(points, self.dim, self.c, "points")
        self._insert(_ids_array(ids, len(pts)), pts)

    def _insert(self, ids: NDArray[np.int64], pts: NDArray[np.float64]) -> None:
        labels = self._store.add(ids, pts)
        hyp = _hyperboloid(pts, self.c)
        if len(hyp):
            self._max_norm = max(self._max_norm, float(np.linalg.norm(hyp, axis=1).max()))
        self._index.add_with_ids(np.ascontiguousarray(hyp, dtype=np.float32), labels)

    def remove(self, ids: ArrayLike) -> int:
        """Remove ids (unknown ids are ignored); returns how many were removed.

        A removed id may be added again, with a new point. Once removed rows
        outnumber live ones the index compacts itself (see :meth:`rebuild`).
        """
        labels = self._store.remove(_ids_array(ids))
        if len(labels):
            self._index.remove_ids(labels)  # type: ignore[arg-type]
            if self._store.dead > len(self):
                self.rebuild()
        return len(labels)

    def rebuild(self) -> None:
        """Compact the index: drop the rows of removed points, keep ids and points."""
        ids, pts = self._store.live()
        self._store = _Store(self.dim, self.c)
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim + 1))
        self._max_norm = 0.0
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
        k = _check_k(k)
        q = _as_points(queries, self.dim, self.c, "queries")
        mask = self._store.allowed_labels(allowed)
        n_live = len(self) if mask is None else int(mask.sum())
        if n_live == 0 or len(q) == 0:
            return self._store.result(
                np.full((len(q), k), np.inf), np.full((len(q), k), -1, dtype=np.int64)
            )
        fetch = min(n_live, max(2 * k, k + 32))
        hq = _hyperboloid(q, self.c)
        hq[:, 0] = -hq[:, 0]
        sel, _keep = _selector(mask)
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
        self.c = _check_c(c)
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.candidates = candidates
        self.method = method
        self.max_passes = max_passes
        self._store = _Store(dim, self.c)
        self._mips_norm = 0.0
        self._index = self._new_index()

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
        hyp = _hyperboloid(pts, self.c)
        sq = np.einsum("ij,ij->i", hyp, hyp)
        # Points added after the norm bound was fixed are clamped onto it; the
        # bound is recomputed by rebuild().
        extra = np.sqrt(np.maximum(self._mips_norm**2 - sq, 0.0))[:, None]
        return np.ascontiguousarray(np.concatenate([hyp, extra], axis=1), dtype=np.float32)

    def add(self, ids: ArrayLike, points: ArrayLike) -> None:
        """Add points under integer ids (which must not be in the index yet)."""
        pts = _as_points(points, self.dim, self.c, "points")
        self._insert(_ids_array(ids, len(pts)), pts)

    def _insert(self, ids: NDArray[np.int64], pts: NDArray[np.float64]) -> None:
        self._store.add(ids, pts)
        if self.method == "mips" and self._index.ntotal == 0 and len(pts):
            self._mips_norm = float(np.linalg.norm(_hyperboloid(pts, self.c), axis=1).max())
        # Graph node numbers are store rows: both count every add from zero.
        self._index.add(self._vectors(pts))

    def remove(self, ids: ArrayLike) -> int:
        """Tombstone ids (unknown ids are ignored); returns how many were removed.

        A removed id may be added again, with a new point (a new graph node).
        Once tombstones outnumber live points the graph is rebuilt.
        """
        removed = len(self._store.remove(_ids_array(ids)))
        if self._store.dead > len(self):
            self.rebuild()
        return removed

    @property
    def tombstones(self) -> int:
        """Graph nodes of removed points, dropped by the next :meth:`rebuild`."""
        return self._store.dead

    def rebuild(self) -> None:
        """Rebuild the graph from the live points, dropping tombstones."""
        ids, pts = self._store.live()
        self._store = _Store(self.dim, self.c)
        self._index = self._new_index()
        self._mips_norm = 0.0
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
        k = _check_k(k)
        q = _as_points(queries, self.dim, self.c, "queries")
        mask = self._store.allowed_labels(allowed)
        if mask is None and self._store.dead:
            mask = self._store.alive
        n_live = len(self) if mask is None else int(mask.sum())
        # Fewer candidates than k would leave slots empty however the passes go.
        fetch = min(n_live, max(self.candidates, k) if self.candidates else max(4 * k, 40))
        # Graph search under a selective filter wanders; a scan is cheaper there.
        if n_live <= max(8 * fetch, 2048) or len(q) == 0:
            return self._store.scan(q, k, mask, self.c)
        sel, _keep = _selector(mask)
        if self.method == "mips":
            hq = _hyperboloid(q, self.c)
            hq[:, 0] = -hq[:, 0]
            # Minimising |(hq, 0) - (y, extra)|^2 = |hq|^2 + M^2 - 2 <hq, y>
            # maximises the Minkowski product: nearest in distance.
            labels, _ = self._hnsw(np.concatenate([hq, np.zeros((len(q), 1))], 1), fetch, sel)
            dist, best = self._store.rerank(q, labels, k)
            return self._store.result(dist, best)
        sq_q = self.c * np.einsum("ij,ij->i", q, q)
        labels, reach = self._hnsw(q, fetch, sel)
        dist, best = self._store.rerank(q, labels, k)
        centre = q
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
        return self._store.result(dist, best)
