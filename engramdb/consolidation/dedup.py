"""Duplicate groups: exact (same normalized text), then near (cosine at or above a threshold).

Near-duplicates are grouped as stars, not as connected components: memories are
visited most informative first, and each one not yet taken becomes the centre
of a group and takes every free neighbour at or above the threshold. So a group
never chains A ~ B ~ C into one when A and C are not duplicates, the centre is
the group's most informative text, and any two centres that remain are below the
threshold: a second pass finds nothing more to merge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engramdb._types import FloatMatrix
from engramdb.consolidation.graph import similarity_graph

__all__ = ["duplicate_groups", "merge_metadata"]


def duplicate_groups(
    keys: Sequence[str],
    vectors: FloatMatrix,
    order: Sequence[int],
    *,
    exact: bool = True,
    near: bool = True,
    threshold: float,
    neighbors: int = 32,
) -> list[list[int]]:
    """Groups of duplicates among n items, each of at least two.

    Args:
        keys: Exact-duplicate key of each item (see :func:`~.text.text_key`).
        vectors: Unit vectors, shape (n, dim).
        order: Item indices, most informative first (a permutation of ``range(n)``).
        exact: Group items with equal keys.
        near: Group items at or above ``threshold`` cosine of a group's centre.
        threshold: Near-duplicate cosine.
        neighbors: k of the k-NN graph.

    Returns:
        Lists of item indices, the group's representative (its most informative
        item) first, the others in ``order``.
    """
    n = len(keys)
    if n < 2:
        return []
    rank = np.empty(n, np.int64)
    rank[np.asarray(order, np.int64)] = np.arange(n)
    # Exact: every item joins the most informative item with its key.
    rep_of = np.arange(n)
    if exact:
        first: dict[str, int] = {}
        for i in order:
            rep_of[i] = first.setdefault(keys[i], i)
    reps = np.array([i for i in order if rep_of[i] == i], np.int64)
    centre_of = np.arange(n)
    if near and len(reps) > 1:
        # Near-duplicates are close enough to share a k-means cell or the next one.
        graph = similarity_graph(vectors[reps], k=neighbors, threshold=threshold, probe=2, spill=1)
        taken = np.zeros(len(reps), bool)
        for pos in range(len(reps)):  # reps are already in informativeness order
            if taken[pos]:
                continue
            taken[pos] = True
            nbrs, _ = graph.neighbours(pos)
            free = nbrs[~taken[nbrs]]
            taken[free] = True
            centre_of[reps[free]] = reps[pos]
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(int(centre_of[rep_of[i]]), []).append(int(i))
    return [g for g in groups.values() if len(g) > 1]


def merge_metadata(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merged metadata of a group: the first item's, then keys only later items have.

    The first item is the group's representative, so on a conflict its value wins;
    the members keep their own metadata (they are archived, not changed).
    """
    merged: dict[str, Any] = {}
    for meta in items:
        for key, value in meta.items():
            merged.setdefault(key, value)
    return merged
