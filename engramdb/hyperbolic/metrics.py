"""Reconstruction metrics for embedded hierarchies (Nickel & Kiela, 2017).

The protocol: embed every node of a hierarchy's transitive closure, then ask how
well distances recover the closure. The edge set is treated as undirected: the
neighbours ``N(u)`` of a node are its ancestors and descendants. For each node
``u`` every other node is ranked by distance from ``u``:

* the rank of a true neighbour ``v`` is ``1 +`` the number of non-neighbours
  strictly closer to ``u`` than ``v``; the mean rank averages over all pairs
  ``(u, v)``, so 1.0 is perfect;
* the average precision of ``u`` scores the ranking of ``N(u)`` among all other
  nodes, with tied distances sharing one threshold as in scikit-learn's
  ``average_precision_score``; MAP averages it over nodes with a neighbour.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from engramdb.errors import ValidationError
from engramdb.hyperbolic.ball import pairwise_distance

__all__ = ["reconstruction_metrics"]

# Rows of the distance matrix handled at once: a block of this many cells
# (float64 distances plus sort indices) stays around a few hundred MB at most.
_BLOCK_CELLS = 1 << 22


def _index_edges(
    edges: Iterable[tuple[Hashable, Hashable]], embedding: Mapping[Hashable, ArrayLike]
) -> tuple[list[Hashable], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    nodes = list(embedding)
    position = {node: i for i, node in enumerate(nodes)}
    us: list[int] = []
    vs: list[int] = []
    for pair in edges:
        u, v = pair[0], pair[1]
        if u not in position or v not in position:
            missing = u if u not in position else v
            raise ValidationError(
                f"edge ({u!r}, {v!r}) names node {missing!r} that has no embedding; "
                "embed every node of the closure or drop its edges"
            )
        if u != v:
            us.append(position[u])
            vs.append(position[v])
    if not us:
        raise ValidationError("the edge list has no edge between distinct nodes; nothing to rank")
    points = np.stack([np.asarray(embedding[n], dtype=np.float64) for n in nodes])
    if points.ndim != 2:
        raise ValidationError(
            f"embedding values must be 1-d vectors of one length, got array shape {points.shape}"
        )
    u_arr = np.asarray(us + vs, dtype=np.int64)
    v_arr = np.asarray(vs + us, dtype=np.int64)
    return nodes, points, u_arr, v_arr


def _distances(
    points: NDArray[np.float64], rows: slice, metric: Literal["poincare", "euclidean"]
) -> NDArray[np.float64]:
    block = points[rows]
    if metric == "poincare":
        return np.asarray(pairwise_distance(block, points, c=1.0), dtype=np.float64)
    sq = (
        np.einsum("ij,ij->i", block, block)[:, None]
        + np.einsum("ij,ij->i", points, points)[None, :]
        - 2.0 * block @ points.T
    )
    out: NDArray[np.float64] = np.sqrt(np.maximum(sq, 0.0))
    return out


def _block_metrics(
    dist: NDArray[np.float64], labels: NDArray[np.bool_]
) -> tuple[float, int, NDArray[np.float64]]:
    """Sum of ranks, number of pairs and per-row AP for one block of rows.

    ``dist`` has the anchor itself set to +inf and ``labels`` marks neighbours.
    """
    order = np.argsort(dist, axis=1, kind="stable")
    sd = np.take_along_axis(dist, order, axis=1)
    sl = np.take_along_axis(labels, order, axis=1)
    n_rows, n_cols = sd.shape
    cols = np.arange(n_cols)
    # Ties: a run of equal distances acts as one threshold. ``start`` is the
    # first position of each element's run and ``end`` one past its last.
    new_run = np.ones_like(sd, dtype=bool)
    new_run[:, 1:] = sd[:, 1:] != sd[:, :-1]
    start = np.maximum.accumulate(np.where(new_run, cols, 0), axis=1)
    run_end = np.ones_like(sd, dtype=bool)
    run_end[:, :-1] = new_run[:, 1:]
    end = np.minimum.accumulate(np.where(run_end, cols + 1, n_cols)[:, ::-1], axis=1)[:, ::-1]

    pos_cum = np.cumsum(sl, axis=1)
    neg_cum = np.cumsum(~sl, axis=1)
    row = np.arange(n_rows)[:, None]
    # Non-neighbours strictly before this element's run.
    neg_before = np.where(start > 0, neg_cum[row, start - 1], 0)
    rank_sum = float(((neg_before + 1) * sl).sum())
    n_pairs = int(sl.sum())
    # Precision at the element's threshold counts every node of its run.
    precision = pos_cum[row, end - 1] / end
    n_pos = sl.sum(axis=1)
    ap = (precision * sl).sum(axis=1) / np.maximum(n_pos, 1)
    return rank_sum, n_pairs, ap[n_pos > 0]


def reconstruction_metrics(
    edges: Iterable[tuple[Hashable, Hashable]],
    embedding: Mapping[Hashable, ArrayLike],
    *,
    distance: Literal["poincare", "euclidean"] = "poincare",
) -> tuple[float, float]:
    """Mean rank and mean average precision of a hierarchy's reconstruction.

    Args:
        edges: ``(child, ancestor)`` pairs of the transitive closure; direction
            is ignored.
        embedding: A vector for every node named in ``edges`` (for example the
            output of :func:`~engramdb.hyperbolic.fit_poincare`). Nodes without an
            edge still take part in the ranking as non-neighbours.
        distance: ``"poincare"`` for the unit ball (``c = 1``) or ``"euclidean"``.

    Returns:
        ``(mean_rank, mean_average_precision)``; perfect is ``(1.0, 1.0)``.

    Raises:
        ValidationError: if an edge names a node without an embedding, there are
            no edges, or ``distance`` is unknown.

    Example:
        >>> emb = {"a": [0.0, 0.0], "b": [0.5, 0.0], "c": [-0.5, 0.1]}
        >>> reconstruction_metrics([("b", "a"), ("c", "a")], emb)
        (1.0, 1.0)
    """
    if distance not in ("poincare", "euclidean"):
        raise ValidationError(
            f"distance={distance!r} is not supported; use 'poincare' or 'euclidean'"
        )
    _nodes, points, u_arr, v_arr = _index_edges(edges, embedding)
    n = points.shape[0]
    adjacency_keys = np.unique(u_arr * n + v_arr)
    rows_per_block = max(1, _BLOCK_CELLS // n)
    rank_sum, n_pairs = 0.0, 0
    aps: list[NDArray[np.float64]] = []
    for lo in range(0, n, rows_per_block):
        hi = min(n, lo + rows_per_block)
        dist = _distances(points, slice(lo, hi), distance)
        dist[np.arange(hi - lo), np.arange(lo, hi)] = np.inf
        keys = adjacency_keys[(adjacency_keys >= lo * n) & (adjacency_keys < hi * n)]
        labels = np.zeros((hi - lo, n), dtype=bool)
        labels[keys // n - lo, keys % n] = True
        block_rank, block_pairs, block_ap = _block_metrics(dist, labels)
        rank_sum += block_rank
        n_pairs += block_pairs
        aps.append(block_ap)
    return rank_sum / n_pairs, float(np.concatenate(aps).mean())
