"""Float64 points of the Poincaré ball by integer id: the storage under both indexes.

:mod:`engramdb.hyperbolic.index` answers k-NN queries from FAISS candidates;
this module holds what both of its indexes share: validation of points and ids,
exact float64 distances, the row store with its id map and tombstones, exact
scans and re-ranking of candidates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import faiss
import numpy as np
from numpy.typing import ArrayLike, NDArray

from engramdb.errors import ValidationError

__all__ = [
    "Allowed",
    "PointStore",
    "SearchResult",
    "as_points",
    "check_c",
    "check_k",
    "distances",
    "hyperboloid",
    "ids_array",
    "selector",
]

Allowed = NDArray[np.bool_] | Iterable[int] | None
"""A search filter: a boolean mask indexed by id, or a collection of ids."""

# Float64 points keep this margin from the boundary (geoopt's float64 margin):
# nearer, 1 - c|x|^2 is a few ulps and distances are noise.
_MARGIN64 = 1e-5
# Rows handled at once by float64 scans, to bound temporary memory.
_SCAN_BLOCK = 1 << 20


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


def check_c(c: float) -> float:
    if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
        raise ValidationError(f"curvature c={c!r} must be a positive finite number, e.g. 1.0")
    return float(c)


def as_points(points: ArrayLike, dim: int, c: float, what: str) -> NDArray[np.float64]:
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


def distances(q: NDArray[np.float64], x: NDArray[np.float64], c: float) -> NDArray[np.float64]:
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


def hyperboloid(x: NDArray[np.float64], c: float) -> NDArray[np.float64]:
    sq = c * np.einsum("ij,ij->i", x, x)[:, None]
    den = 1.0 - sq
    return np.concatenate([(1.0 + sq) / (np.sqrt(c) * den), 2.0 * x / den], axis=1)


def ids_array(ids: ArrayLike, n: int | None = None) -> NDArray[np.int64]:
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


class PointStore:
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
            d = distances(queries[:, None, :], self.points[part][None, :, :], c)
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


def selector(mask: NDArray[np.bool_] | None) -> tuple[faiss.IDSelector | None, object]:
    """A FAISS bitmap selector over labels, and the buffer it must outlive."""
    if mask is None:
        return None, None
    bits = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits)), bits


def check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValidationError(f"k={k!r} must be a positive integer")
    return int(k)
