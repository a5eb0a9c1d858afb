"""Recall: filtered similarity search and the blended score."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from engramdb._types import FloatMatrix
from engramdb.engine.base import kind_of
from engramdb.index.filters import compile_filter
from engramdb.records import (
    Hit,
    Memory,
    MemoryKind,
    as_utc,
    check_name,
)
from engramdb.engine.structure import StructureMixin
from engramdb.index.view import AgentView, normalize_rows
from engramdb.errors import (
    ValidationError,
)

_MAX_K = 10_000


class RecallMixin(StructureMixin):
    """Similarity recall with filters before top-k and a blended, reproducible score."""

    def recall(
        self,
        query: str | Sequence[float] | np.ndarray,
        *,
        agent: str,
        k: int = 10,
        kinds: Sequence[MemoryKind | str] | None = None,
        session: str | None = None,
        where: Mapping[str, Any] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_archived: bool = False,
        now: datetime | None = None,
        record_access: bool = True,
        scope: str = "all",
        root: str | Memory | None = None,
        depth: tuple[float, float] | None = None,
        rank: str = "similarity",
    ) -> list[Hit]:
        """The memories most relevant to ``query``, best first.

        Filters apply before top-k: when k memories match, k come back. Each hit's
        ``score`` blends similarity with recency, importance and use (see
        :class:`~engramdb.config.ScoringWeights`); candidates are the nearest
        ``max(4k, k + 32)`` by similarity, re-ranked by score, ties broken by id.

        Args:
            query: Text, or a vector of the store's dimension.
            agent: Whose memories to search.
            k: How many hits at most (1 to 10,000).
            kinds: Only these kinds.
            session: Only this session.
            where: Metadata filter (see :mod:`engramdb.index.filters`).
            since: Only memories created at or after this time.
            until: Only memories created before this time.
            include_archived: Also return memories archived by consolidation.
            now: Reference time for recency (default: the agent's newest memory,
                which makes recall a function of the stored state alone).
            record_access: Count this recall as an access of each hit (buffered,
                written in batches, never one write per query).
            scope: ``"all"``, or ``"subtree"`` to search only ``root`` and the
                memories below it (through ``parent_id`` links).
            root: The memory (or its id) at the top of a ``"subtree"`` scope.
            depth: Poincaré space only: a generality band ``(lo, hi)`` on
                ``Hit.depth`` (the point's norm in the ball, 0 = most general).
            rank: ``"similarity"`` (default: direction, blended with the other
                parts) or, in the Poincaré space, ``"distance"``: k-NN by Poincaré
                distance between points; ``score`` is then minus the distance. The
                search is exact while the agent's index is (``index="flat"``, or
                ``"auto"`` below ``exact_threshold``), else an HNSW graph re-ranked
                by exact distance (recall@10 0.995 at 10k memories, 1.0 at 100k,
                against exact, in ``benchmarks/hierarchy.py``).
        """
        with self._mutex:
            self._check_open()
            check_name(agent, what="agent")
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_K:
                raise ValidationError(f"k {k!r} must be an int from 1 to {_MAX_K}")
            if session is not None:
                check_name(session, what="session")
            kind_list = None if kinds is None else [kind_of(x) for x in kinds]
            predicate = compile_filter(where)
            t_since = as_utc(since, field="since").timestamp() if since is not None else None
            t_until = as_utc(until, field="until").timestamp() if until is not None else None
            qvec = self._query_vector(query)
            view = self._view(agent)
            if not len(view):
                return []
            structure = self._structure_mask(view, scope=scope, root=root, depth=depth, rank=rank)
            mask = view.mask(
                now=time.time(),
                kinds=kind_list,
                session=session,
                since=t_since,
                until=t_until,
                include_archived=include_archived,
                where=predicate,
            )
            if structure is not None:
                mask &= structure
            n_ok = int(mask.sum())
            if n_ok == 0:
                return []
            if rank == "distance":
                return self._rank_by_distance(view, qvec, k, mask, record_access)
            allowed = None if n_ok == len(view) else mask
            pool = min(n_ok, max(4 * k, k + 32))
            if self.index_kind == "lance":
                sims, labels = self._lance_search(view, qvec, pool, mask)
            else:
                scores, found = view.index.search(qvec[None, :], pool, allowed)
                keep = found[0] >= 0
                sims, labels = scores[0][keep], found[0][keep]
            ref = as_utc(now, field="now").timestamp() if now is not None else view.newest_time()
            return self._rank(view, sims, labels, k, ref, record_access and not self.read_only)

    def _query_vector(self, query: object) -> FloatMatrix:
        if isinstance(query, str):
            if not query.strip():
                raise ValidationError("query '' is empty; pass some text or a vector")
            vec: FloatMatrix = self._embed([query])[0]
        else:
            vec = normalize_rows(self._check_vector(query)[None, :])[0]
        return vec

    def _lance_search(
        self, view: AgentView, qvec: FloatMatrix, pool: int, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = [view.ids[i] for i in np.flatnonzero(mask)]
        rows = (
            self._table.table.search(qvec, vector_column_name="vector")
            .distance_type("cosine")
            .refine_factor(4)  # re-rank PQ candidates with full vectors when indexed
            .where(f"agent = '{view.agent}'", prefilter=True)
            .select(["id", "_distance"])
            .limit(pool if len(ids) == len(view) else 4 * pool)
            .to_arrow()
        )
        allowed = set(ids)
        sims, labels = [], []
        for mid, dist in zip(
            rows.column("id").to_pylist(), rows.column("_distance").to_pylist(), strict=True
        ):
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
        order = sorted(range(len(ids)), key=lambda i: (-float(score[i]), ids[i]))[:k]
        depths = view.depths()[labels] if self.space == "poincare" else None
        hits = [
            Hit(
                memory=view.current(ids[i]),
                score=float(score[i]),
                similarity=float(sims[i]),
                recency=float(recency[i]),
                importance=float(importance[i]),
                access=float(access[i]),
                depth=None if depths is None else float(depths[i]),
            )
            for i in order
        ]
        if record:
            self._record_access(view, [int(labels[i]) for i in order])
        return hits
