"""Hierarchy-aware recall: subtree scope, depth bands, Poincaré distance, structure queries."""

from __future__ import annotations

import numpy as np

from engramdb._types import FloatMatrix
from engramdb.engine.base import EngineBase
from engramdb.records import (
    Hit,
    Memory,
    check_id,
    check_name,
)
from engramdb.index.view import AgentView
from engramdb.errors import (
    NotFoundError,
    ValidationError,
)


class StructureMixin(EngineBase):
    """Parent links as structure: what sits above and below a memory, and where."""

    # -- hierarchy -----------------------------------------------------------------------

    def _structure_mask(
        self,
        view: AgentView,
        *,
        scope: str,
        root: str | Memory | None,
        depth: tuple[float, float] | None,
        rank: str,
    ) -> np.ndarray | None:
        if rank not in ("similarity", "distance"):
            raise ValidationError(f"rank {rank!r} is not known; use 'similarity' or 'distance'")
        if rank == "distance" and self.space != "poincare":
            raise ValidationError(
                "rank='distance' ranks by Poincaré distance; open the store with space='poincare'"
            )
        mask: np.ndarray | None = None
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
            if self.space != "poincare":
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

    def _rank_by_distance(
        self, view: AgentView, qvec: FloatMatrix, k: int, mask: np.ndarray, record: bool
    ) -> list[Hit]:
        from engramdb.index.hierarchy import norm_of, points

        if view.index.kind == "lance":
            raise ValidationError(
                "rank='distance' needs the points in memory; open the store with index='auto'"
            )
        ball = view.ball()
        # A query has no place in the hierarchy: put it where a typical leaf sits.
        query = points(qvec[None, :], norm_of(np.array([1.5])))
        # The ball index holds exactly the live labels: a mask passing all of them
        # filters nothing.
        allowed = None if int(mask.sum()) == len(view) else mask
        found = ball.search(query, k, allowed)
        hit_labels = [int(x) for x in found.ids[0] if x >= 0]
        dists = found.distances[0][: len(hit_labels)]
        vecs = (
            view.vectors(np.asarray(hit_labels, dtype=np.int64)) if hit_labels else qvec[None, :0]
        )
        depths = view.depths()
        hits = [
            Hit(
                memory=view.current(view.ids[label]),  # type: ignore[arg-type]
                score=-float(dist),
                similarity=float(vec @ qvec),
                importance=float(view.importance.data[label]),
                depth=float(depths[label]),
            )
            for label, dist, vec in zip(hit_labels, dists, vecs, strict=True)
        ]
        if record:
            self._record_access(view, hit_labels)
        return hits

    def ancestors(self, memory_id: str, *, agent: str | None = None) -> list[Memory]:
        """The memory's parent, its parent's parent, and so on up to a root."""
        with self._mutex:
            self._check_open()
            found = self._find(memory_id, agent)
            view = self._view(found.agent)
            from engramdb.index.hierarchy import ancestors

            return [view.current(mid) for mid in ancestors(view.records, found.id)]

    def children(self, memory_id: str, *, agent: str | None = None) -> list[Memory]:
        """The memories whose ``parent_id`` is this one, oldest first."""
        with self._mutex:
            self._check_open()
            found = self._find(memory_id, agent)
            view = self._view(found.agent)
            kids = view.hierarchy().children.get(found.id, [])
            return sorted((view.current(m) for m in kids), key=lambda m: (m.created_at, m.id))

    def refine_hierarchy(
        self, *, agent: str, dim: int = 5, epochs: int | None = None, seed: int = 0
    ) -> dict[str, float]:
        """Learn depths for an agent's linked memories by training Poincaré embeddings.

        Trains on the transitive closure of the agent's ``parent_id`` links
        (see :func:`engramdb.index.hierarchy.refine_depths`) and uses the learned
        generality as ``Hit.depth`` and for ``depth=`` bands until the agent's
        memories change. Returns the learned depth of each linked memory.
        """
        with self._mutex:
            self._check_open()
            if self.space != "poincare":
                raise ValidationError(
                    "refine_hierarchy shapes the Poincaré space; open the store with "
                    "space='poincare'"
                )
            from engramdb.index.hierarchy import refine_depths

            view = self._view(check_name(agent, what="agent"))
            view.refined = refine_depths(view.records, dim=dim, epochs=epochs, seed=seed)
            view._changed()
            return dict(view.refined)
