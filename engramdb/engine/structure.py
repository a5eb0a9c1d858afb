"""Hierarchy-aware recall: subtree scope, depth bands and Poincaré distance ranking."""

from __future__ import annotations

import numpy as np

from engramdb._types import BoolArray, FloatMatrix
from engramdb.errors import NotFoundError, ValidationError
from engramdb.index.hierarchy import norm_of, points
from engramdb.index.view import AgentView
from engramdb.records import Hit, Memory, check_id

__all__ = ["RANKS", "SCOPES", "rank_by_distance", "structure_mask"]

RANKS = ("similarity", "distance")
SCOPES = ("all", "subtree")
_QUERY_RHO = 1.5
"""Where a query sits in the ball: a query has no place in the hierarchy, so a typical leaf's."""


def structure_mask(
    view: AgentView,
    *,
    space: str,
    scope: str,
    root: str | Memory | None,
    depth: tuple[float, float] | None,
    rank: str,
) -> BoolArray | None:
    """The labels a structural filter allows (None: no structural filter).

    Raises:
        ValidationError: an unknown scope or rank, or a Poincaré-only option in
            the Euclidean space.
        NotFoundError: the subtree's root is not one of the agent's memories.
    """
    if rank not in RANKS:
        raise ValidationError(f"rank {rank!r} is not known; use 'similarity' or 'distance'")
    if rank == "distance" and space != "poincare":
        raise ValidationError(
            "rank='distance' ranks by Poincaré distance; open the store with space='poincare'"
        )
    mask: BoolArray | None = None
    if scope == "subtree":
        if root is None:
            raise ValidationError("scope='subtree' needs root=<memory id>")
        root_id = check_id(root.id if isinstance(root, Memory) else root)
        if root_id not in view.records:
            raise NotFoundError(f"no memory with id {root_id!r} for agent {view.agent!r}")
        mask = np.zeros(len(view.ids), dtype=bool)
        mask[[view.label_of[m] for m in view.hierarchy().subtree(root_id)]] = True
    elif scope != "all":
        raise ValidationError(f"scope {scope!r} is not known; use 'all' or 'subtree'")
    elif root is not None:
        raise ValidationError("root= is only used with scope='subtree'")
    if depth is not None:
        if space != "poincare":
            raise ValidationError(
                "depth=(lo, hi) filters by depth in the Poincaré ball; open the store "
                "with space='poincare'"
            )
        try:
            lo, hi = (float(x) for x in depth)
        except (TypeError, ValueError):
            raise ValidationError(f"depth {depth!r} must be a pair (lo, hi)") from None
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValidationError(f"depth {depth!r} must satisfy 0 <= lo <= hi <= 1")
        depths = view.depths()
        band = (depths >= lo) & (depths <= hi)
        mask = band if mask is None else mask & band
    return mask


def rank_by_distance(
    view: AgentView, qvec: FloatMatrix, k: int, mask: BoolArray
) -> tuple[list[Hit], list[int]]:
    """The k nearest memories by Poincaré distance, and their labels.

    Raises:
        ValidationError: the agent's index is LanceDB's (no points in memory).
    """
    if view.index.kind == "lance":
        raise ValidationError(
            "rank='distance' needs the points in memory; open the store with index='auto'"
        )
    ball = view.ball()
    query = points(qvec[None, :], norm_of(np.array([_QUERY_RHO])))
    # The ball index holds exactly the live labels: a mask passing all of them
    # filters nothing.
    allowed = None if int(mask.sum()) == len(view) else mask
    found = ball.search(query, k, allowed)
    labels = [int(x) for x in found.ids[0] if x >= 0]
    dists = found.distances[0][: len(labels)]
    vecs = view.vectors(np.asarray(labels, dtype=np.int64)) if labels else qvec[None, :0]
    depths = view.depths()
    hits = []
    for label, dist, vec in zip(labels, dists, vecs, strict=True):
        mid = view.ids[label]
        if mid is None:  # the ball index holds live labels only
            continue
        hits.append(
            Hit(
                memory=view.current(mid),
                score=-float(dist),
                similarity=float(vec @ qvec),
                relevance=-float(dist),
                importance=float(view.importance.data[label]),
                depth=float(depths[label]),
            )
        )
    return hits, labels
