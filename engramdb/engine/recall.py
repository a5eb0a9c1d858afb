"""Recall: filtered similarity search and the blended score."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from engramdb._types import BoolArray, FloatMatrix
from engramdb.config import Settings
from engramdb.engine.access import AccessLog
from engramdb.engine.structure import rank_by_distance, structure_mask
from engramdb.engine.vectors import Vectorizer
from engramdb.engine.views import ViewRegistry
from engramdb.engine.writes import kind_of
from engramdb.errors import ValidationError
from engramdb.index.filters import compile_filter
from engramdb.index.view import AgentView
from engramdb.records import Hit, Memory, MemoryKind, as_utc, check_name

__all__ = ["MAX_K", "Recall", "RecallQuery"]

MAX_K = 10_000


@dataclass(frozen=True, slots=True)
class RecallQuery:
    """The arguments of one :meth:`~engramdb.MemoryEngine.recall` call, as given."""

    query: str | Sequence[float] | np.ndarray
    agent: str
    k: int = 10
    kinds: Sequence[MemoryKind | str] | None = None
    session: str | None = None
    where: Mapping[str, Any] | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_archived: bool = False
    now: datetime | None = None
    record_access: bool = True
    scope: str = "all"
    root: str | Memory | None = None
    depth: tuple[float, float] | None = None
    rank: str = "similarity"


class Recall:
    """Answers recall queries over the agent views. Not locked: the engine holds its lock.

    Args:
        views: The agent views.
        vectors: Embeds text queries, checks vector ones.
        access: Where hits are counted.
        settings: The scoring weights.
        space: The store's geometry.
        index_kind: ``"lance"`` searches LanceDB instead of the view's index.
        read_only: A reader never counts accesses (it cannot write them).
    """

    def __init__(
        self,
        views: ViewRegistry,
        vectors: Vectorizer,
        access: AccessLog,
        *,
        settings: Settings,
        space: str,
        index_kind: str,
        read_only: bool,
    ) -> None:
        self.views = views
        self.vectors = vectors
        self.access = access
        self.settings = settings
        self.space = space
        self.index_kind = index_kind
        self.read_only = read_only

    def __call__(self, q: RecallQuery) -> list[Hit]:
        """The hits for one query, best first (see :meth:`~engramdb.MemoryEngine.recall`)."""
        check_name(q.agent, what="agent")
        k = q.k
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValidationError(f"k {k!r} must be an int from 1 to {MAX_K}")
        if q.session is not None:
            check_name(q.session, what="session")
        kind_list = None if q.kinds is None else [kind_of(x) for x in q.kinds]
        predicate = compile_filter(q.where)
        t_since = as_utc(q.since, field="since").timestamp() if q.since is not None else None
        t_until = as_utc(q.until, field="until").timestamp() if q.until is not None else None
        ref_now = as_utc(q.now, field="now").timestamp() if q.now is not None else None
        qvec = self.vectors.query(q.query)
        view = self.views.get(q.agent)
        if not len(view):
            return []
        structure = structure_mask(
            view, space=self.space, scope=q.scope, root=q.root, depth=q.depth, rank=q.rank
        )
        mask = view.mask(
            now=time.time(),
            kinds=kind_list,
            session=q.session,
            since=t_since,
            until=t_until,
            include_archived=q.include_archived,
            where=predicate,
        )
        if structure is not None:
            mask &= structure
        n_ok = int(mask.sum())
        if n_ok == 0:
            return []
        record = q.record_access and not self.read_only
        if q.rank == "distance":
            hits, labels = rank_by_distance(view, qvec, k, mask)
            if record:
                self.access.record(view, labels)
            return hits
        allowed = None if n_ok == len(view) else mask
        pool = min(n_ok, max(4 * k, k + 32))
        if self.index_kind == "lance":
            sims, found = self._lance_search(view, qvec, pool, mask)
        else:
            scores, candidates = view.index.search(qvec[None, :], pool, allowed)
            keep = candidates[0] >= 0
            sims, found = scores[0][keep], candidates[0][keep]
        ref = ref_now if ref_now is not None else min(view.newest_time(), time.time())
        return self._rank(view, sims, found, k, ref, record)

    def _lance_search(
        self, view: AgentView, qvec: FloatMatrix, pool: int, mask: BoolArray
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = [view.ids[i] for i in np.flatnonzero(mask)]
        limit = pool if len(ids) == len(view) else 4 * pool
        found, dists = self.views.store.vector_search(qvec, agent=view.agent, limit=limit)
        allowed = set(ids)
        sims, labels = [], []
        for mid, dist in zip(found, dists, strict=True):
            if mid in allowed:
                sims.append(1.0 - dist)
                labels.append(view.label_of[mid])
        return np.asarray(sims[:pool], np.float32), np.asarray(labels[:pool], np.int64)

    def _rank(
        self,
        view: AgentView,
        sims: np.ndarray,
        labels: np.ndarray,
        k: int,
        ref: float,
        record: bool,
    ) -> list[Hit]:
        # Similarities equal in exact arithmetic can come out of FAISS one
        # float32 ulp (6e-8) apart, and the other way round once the index is
        # rebuilt on reopen. Rounded to 6 decimals they are equal, so the tie
        # breaks by id, the same way every time; the score is built from the
        # rounded similarity, so hits stay sorted by the score they report.
        sims = np.round(sims.astype(np.float64), 6)
        w = self.settings.weights
        half_life = w.half_life_days * 86400.0
        age = np.maximum(ref - view.created.data[labels], 0.0)
        recency = np.power(0.5, age / half_life)
        importance = view.importance.data[labels].astype(np.float64)
        access = 1.0 - np.exp(-view.access.data[labels] / w.access_scale)
        score = (
            w.similarity * sims
            + w.recency * recency
            + w.importance * importance
            + w.access * access
        )
        ids = [view.ids[i] for i in labels]
        order = sorted(range(len(ids)), key=lambda i: (-float(score[i]), ids[i] or ""))[:k]
        depths = view.depths()[labels] if self.space == "poincare" else None
        hits = []
        for i in order:
            mid = ids[i]
            if mid is None:  # the index returns live labels only
                continue
            hits.append(
                Hit(
                    memory=view.current(mid),
                    score=float(score[i]),
                    similarity=float(sims[i]),
                    recency=float(recency[i]),
                    importance=float(importance[i]),
                    access=float(access[i]),
                    depth=None if depths is None else float(depths[i]),
                )
            )
        if record:
            self.access.record(view, [int(labels[i]) for i in order])
        return hits
