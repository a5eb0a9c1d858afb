"""The hierarchy among an agent's memories, and where it puts them in the Poincaré ball.

Hierarchy comes from ``parent_id`` links (a topic above its notes, a
consolidated gist above the episodes it came from). In the Poincaré space a
memory's point takes its *direction* from its text embedding and its *depth*
(distance from the centre) from its place in the hierarchy:

    rho = RHO_ROOT + RHO_STEP * level + (RHO_LEAF if it has no children)
    point = tanh(sqrt(c) * rho / 2) / sqrt(c) * unit_embedding

so general memories (roots with children) sit near the centre and specific ones
(leaves, deep levels) near the boundary. Ranking stays with direction (cosine),
because raw hyperbolic distance between text embeddings favours whatever sits
nearest the centre; depth is an explicit signal: ``Hit.depth`` and the
``depth=(lo, hi)`` band of recall, both as the point's Euclidean norm in [0, 1).

When an agent has enough structure, :func:`refine_depths` trains Poincaré
embeddings (Nickel & Kiela) on the transitive closure of its parent links and
takes each memory's depth from the trained norm, so generality reflects the
whole shape of the hierarchy (how many descendants, how deep) and not only the
level count.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from engramdb._types import FloatMatrix
from engramdb.errors import ValidationError
from engramdb.records import Memory

__all__ = [
    "CURVATURE",
    "MIN_REFINE_EDGES",
    "Hierarchy",
    "ancestors",
    "build_hierarchy",
    "closure_edges",
    "extend_hierarchy",
    "norm_of",
    "points",
    "prune_hierarchy",
    "refine_depths",
]

CURVATURE = 1.0
RHO_ROOT = 0.5
"""Hyperbolic radius of a root that has children: the most general place."""
RHO_STEP = 1.0
"""Added per level below a root."""
RHO_LEAF = 0.5
"""Added for a memory with no children: leaves are the most specific."""
MIN_REFINE_EDGES = 8
"""Closure edges needed before training a hierarchy is worth it."""
_MARGIN = 1e-5  # float64 points keep this far inside the boundary (geoopt's float64 margin)


def norm_of(rho: float | np.ndarray, c: float = CURVATURE) -> np.ndarray:
    """Euclidean norm in the ball of a point at hyperbolic distance ``rho`` from the centre."""
    r = np.tanh(math.sqrt(c) * np.asarray(rho, dtype=np.float64) / 2) / math.sqrt(c)
    return np.minimum(r, 1 / math.sqrt(c) - _MARGIN)


@dataclass(frozen=True)
class Hierarchy:
    """Parent links of one agent, resolved.

    The engine keeps one per agent and updates its maps in place as memories
    come and go (:func:`extend_hierarchy`, :func:`prune_hierarchy`).

    Attributes:
        children: Parent id to the ids of its children (present memories only).
        level: Number of ancestors of each memory (0 for roots).
        norm: Each memory's depth: its point's norm in the ball (0 = centre).
        unresolved: Ids named as ``parent_id`` by some memory but not present (a
            superset after :func:`prune_hierarchy`): adding a memory with one of
            these ids would re-link existing memories.
    """

    children: dict[str, list[str]]
    level: dict[str, int]
    norm: dict[str, float]
    unresolved: set[str] = field(default_factory=set)

    def subtree(self, root: str) -> set[str]:
        """``root`` and everything below it."""
        seen = {root}
        stack = [root]
        while stack:
            for child in self.children.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen


def _parent(records: Mapping[str, Memory], mid: str) -> str | None:
    parent = records[mid].parent_id
    return parent if parent in records and parent != mid else None


def ancestors(records: Mapping[str, Memory], memory_id: str) -> list[str]:
    """Ids from the parent of ``memory_id`` up to its root (a cycle stops the walk)."""
    out: list[str] = []
    seen = {memory_id}
    node = _parent(records, memory_id)
    while node is not None and node not in seen:
        out.append(node)
        seen.add(node)
        node = _parent(records, node)
    return out


def build_hierarchy(
    records: Mapping[str, Memory], refined: Mapping[str, float] | None = None
) -> Hierarchy:
    """Resolve parent links into children, levels and depths (refined depths win)."""
    children: dict[str, list[str]] = {}
    for mid in records:
        parent = _parent(records, mid)
        if parent is not None:
            children.setdefault(parent, []).append(mid)
    level = {mid: len(ancestors(records, mid)) for mid in records}
    norm = {mid: _norm_at(lvl, mid not in children) for mid, lvl in level.items()}
    if refined:
        norm.update({mid: r for mid, r in refined.items() if mid in norm})
    unresolved = {
        m.parent_id
        for m in records.values()
        if m.parent_id is not None and m.parent_id not in records
    }
    return Hierarchy(children=children, level=level, norm=norm, unresolved=unresolved)


@functools.lru_cache(maxsize=1024)
def _norm_at(level: int, leaf: bool) -> float:
    # One computation per (level, leaf), shared by the full and incremental paths,
    # so that both give bit-identical depths.
    rho = RHO_ROOT + RHO_STEP * level + (RHO_LEAF if leaf else 0.0)
    return float(norm_of(np.array([rho]))[0])


def _norm(mid: str, level: int, leaf: bool, refined: Mapping[str, float] | None) -> float:
    if refined and mid in refined:
        return refined[mid]
    return _norm_at(level, leaf)


def extend_hierarchy(
    hierarchy: Hierarchy,
    records: Mapping[str, Memory],
    added: Sequence[str],
    refined: Mapping[str, float] | None = None,
) -> set[str] | None:
    """Update ``hierarchy`` in place for memories ``added`` (already in ``records``).

    Afterwards it equals ``build_hierarchy(records, refined)``, at a cost in
    proportion to the new memories. A new memory sits one level below its
    parent and is a leaf; its parent stops being one. That holds when no
    present memory names a new id as its parent, which ``unresolved`` tells.

    Returns:
        The ids whose depth may have changed (the new memories and their
        parents); None, leaving ``hierarchy`` as it was, when the shortcut does
        not apply (a new id re-links existing memories, or names as parent a
        memory added after it): call :func:`build_hierarchy` then.
    """
    level = hierarchy.level
    earlier: set[str] = set()
    for mid in added:
        if mid in hierarchy.unresolved or mid in level:
            return None
        parent = _parent(records, mid)
        if parent is not None and parent not in level and parent not in earlier:
            return None
        earlier.add(mid)
    touched: set[str] = set()
    for mid in added:
        parent = _parent(records, mid)
        if parent is None:
            level[mid] = 0
            named = records[mid].parent_id
            if named is not None and named != mid:
                hierarchy.unresolved.add(named)
        else:
            level[mid] = level[parent] + 1
            hierarchy.children.setdefault(parent, []).append(mid)
            touched.add(parent)
        touched.add(mid)
    for mid in touched:
        hierarchy.norm[mid] = _norm(mid, level[mid], mid not in hierarchy.children, refined)
    return touched


def prune_hierarchy(
    hierarchy: Hierarchy,
    removed: Sequence[Memory],
    refined: Mapping[str, float] | None = None,
) -> set[str] | None:
    """Update ``hierarchy`` in place for leaf memories ``removed`` (gone from the records).

    Removing a leaf changes no level; its parent becomes a leaf when it was the
    last child. Removing a memory with children moves its whole subtree, which
    this shortcut does not follow.

    Returns:
        The ids still present whose depth may have changed; None, leaving
        ``hierarchy`` as it was, when a removed memory has children (call
        :func:`build_hierarchy` then).
    """
    children, level = hierarchy.children, hierarchy.level
    if any(m.id in children for m in removed):
        return None
    touched: set[str] = set()
    for m in removed:
        if level.pop(m.id, None) is None:
            continue
        del hierarchy.norm[m.id]
        parent = m.parent_id
        if parent is not None and parent != m.id and parent in level:
            children[parent].remove(m.id)
            if not children[parent]:
                del children[parent]
                touched.add(parent)
    for mid in touched:
        hierarchy.norm[mid] = _norm(mid, level[mid], True, refined)
    # A removed leaf's dangling parent id may stay in ``unresolved``: a superset
    # only makes extend_hierarchy fall back to a full build more often.
    return touched


def points(unit_vectors: FloatMatrix, norms: np.ndarray) -> np.ndarray:
    """Points of the ball: each unit direction scaled to its depth (float64)."""
    out: np.ndarray = np.asarray(unit_vectors, dtype=np.float64) * np.asarray(norms)[:, None]
    return out


def closure_edges(records: Mapping[str, Memory]) -> list[tuple[str, str]]:
    """(descendant, ancestor) pairs of the transitive closure of the parent links."""
    return [(mid, anc) for mid in records for anc in ancestors(records, mid)]


def refine_depths(
    records: Mapping[str, Memory],
    *,
    dim: int = 5,
    epochs: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Train Poincaré embeddings on the hierarchy and return each linked memory's depth.

    The trained norms are mapped monotonically onto the same range as the
    level-based depths (most general trained point at the root depth, most
    specific at the deepest leaf depth), so refined and unrefined memories stay
    comparable. Memories outside any parent link keep their level-based depth.

    Raises:
        ValidationError: when there are fewer than :data:`MIN_REFINE_EDGES` edges.
    """
    edges = closure_edges(records)
    if len(edges) < MIN_REFINE_EDGES:
        raise ValidationError(
            f"the hierarchy has {len(edges)} ancestor links, fewer than {MIN_REFINE_EDGES}; "
            "add parent links (or consolidate) before refining"
        )
    from engramdb.hyperbolic import fit_poincare

    emb = fit_poincare(edges, dim, epochs=epochs, seed=seed)
    trained = {mid: float(np.linalg.norm(x)) for mid, x in emb.items()}
    base = build_hierarchy(records).norm
    lo, hi = min(base[m] for m in trained), max(base[m] for m in trained)
    t_lo, t_hi = min(trained.values()), max(trained.values())
    span = max(t_hi - t_lo, 1e-12)
    return {mid: lo + (r - t_lo) / span * (hi - lo) for mid, r in trained.items()}
