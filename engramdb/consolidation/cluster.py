"""Topic clusters as stars in the k-NN graph: scales to 100k memories in O(n k).

Memories are visited densest first (most neighbours above the threshold, then
the largest sum of similarities, then position). A visited memory that is still
free becomes a centre if it has at least ``min_size - 1`` free neighbours within
the threshold; it takes the ``max_size - 1`` most similar of them. Every member
is therefore within the threshold of its centre, so a cluster is about one
topic rather than a chain drifting from one topic to the next.

Memories already placed (under an earlier gist, or given a parent by the user)
stay in the graph, so the graph is the same from one pass to the next, but they
are never taken again. That makes clustering idempotent: a memory that could not
gather enough free neighbours in one pass has no more of them in the next.
"""

from __future__ import annotations

import numpy as np

from engramdb._types import BoolArray, FloatMatrix
from engramdb.consolidation.graph import similarity_graph

__all__ = ["topic_clusters"]


def topic_clusters(
    vectors: FloatMatrix,
    *,
    placed: BoolArray | None = None,
    threshold: float,
    min_size: int,
    max_size: int,
    neighbors: int | None = None,
) -> list[list[int]]:
    """Clusters of free rows, each a list of row indices with its centre first.

    Args:
        vectors: Unit vectors, shape (n, dim), in a stable order (e.g. by id).
        placed: Rows that may not join a cluster (they still shape the graph).
        threshold: Cosine to the centre a member needs.
        min_size: Smallest cluster returned.
        max_size: Largest cluster.
        neighbors: k of the k-NN graph (default ``max(2 * max_size, 16)``).
    """
    n = len(vectors)
    if n < min_size:
        return []
    k = neighbors or max(2 * max_size, 16)
    graph = similarity_graph(vectors, k=k, threshold=threshold)
    taken = np.zeros(n, bool) if placed is None else np.asarray(placed, bool).copy()
    degree = graph.degree()
    order = np.lexsort((np.arange(n), -graph.strength(), -degree))
    clusters: list[list[int]] = []
    for centre in order:
        if taken[centre] or degree[centre] < min_size - 1:
            continue
        nbrs, _ = graph.neighbours(int(centre))
        free = nbrs[~taken[nbrs]][: max_size - 1]
        if len(free) + 1 < min_size:
            continue
        members = [int(centre), *(int(j) for j in free)]
        taken[members] = True
        clusters.append(members)
    return clusters
