"""Recall: filtered hybrid (lexical + dense) search and the blended score.

Three modes share the filters and the score's recency, importance and access
parts: ``"dense"`` ranks by cosine similarity, ``"lexical"`` by BM25 over each
memory with its context, ``"hybrid"`` (the default) by the fusion of both with
a session prior (:mod:`engramdb.engine.fusion`). ``group_by="session"`` returns
the best memory of each of the best sessions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from engramdb._types import BoolArray, FloatMatrix
from engramdb.config import Settings
from engramdb.engine.access import AccessLog
from engramdb.engine.fusion import minmax, session_prior
from engramdb.engine.structure import rank_by_distance, structure_mask
from engramdb.engine.vectors import Vectorizer
from engramdb.engine.views import ViewRegistry
from engramdb.engine.when import date_preference, query_dates
from engramdb.engine.writes import kind_of
from engramdb.errors import ValidationError
from engramdb.index.filters import compile_filter
from engramdb.index.view import AgentView
from engramdb.records import Hit, Memory, MemoryKind, as_utc, check_name

__all__ = ["GROUPS", "MAX_K", "MODES", "Recall", "RecallQuery"]

MAX_K = 10_000
MODES = ("hybrid", "dense", "lexical")
GROUPS = (None, "session")
_DECIMALS = 6
"""Relevance is rounded to this many decimals, so ties in exact arithmetic break by id."""
_SLACK = 1e-9
"""A score must beat the bound on the memories outside the pool by this much (scores are O(1))."""
_USED_OUTSIDE = 256
"""The most memories outside the dense pool scored exactly for their use, before the
pool widens instead (see ``Recall._used_outside``)."""


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
    mode: str = "hybrid"
    group_by: str | None = None


_NONE = np.zeros(0)
_NONE.flags.writeable = False
"""The empty array a candidate set's unused evidence holds (shared: never written)."""


@dataclass
class _Candidates:
    """Candidate labels with their evidence; ``relevance`` is what the score builds on."""

    labels: np.ndarray
    sims: np.ndarray
    lexical: np.ndarray = field(default_factory=lambda: _NONE)
    relevance: np.ndarray = field(default_factory=lambda: _NONE)
    prior: np.ndarray = field(default_factory=lambda: _NONE)
    """Each candidate's session prior (hybrid only; 0 for a memory with no session)."""
    fused: np.ndarray = field(default_factory=lambda: _NONE)


class Recall:
    """Answers recall queries over the agent views. Not locked: the engine holds its lock.

    Args:
        views: The agent views.
        vectors: Embeds text queries, checks vector ones.
        access: Where hits are counted.
        settings: The scoring and fusion weights.
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
        if q.mode not in MODES:
            raise ValidationError(f"mode {q.mode!r} is not known; use one of {MODES}")
        if q.group_by not in GROUPS:
            raise ValidationError(f"group_by {q.group_by!r} is not known; use None or 'session'")
        if q.session is not None:
            check_name(q.session, what="session")
        kind_list = None if q.kinds is None else [kind_of(x) for x in q.kinds]
        predicate = compile_filter(q.where)
        t_since = as_utc(q.since, field="since").timestamp() if q.since is not None else None
        t_until = as_utc(q.until, field="until").timestamp() if q.until is not None else None
        ref_now = as_utc(q.now, field="now").timestamp() if q.now is not None else None
        text = q.query if isinstance(q.query, str) else None
        if q.mode == "lexical" and text is None:
            raise ValidationError("mode='lexical' needs a text query; pass text, or mode='dense'")
        qvec = self.vectors.query(q.query)
        view = self.views.get(q.agent)
        if not len(view):
            return []
        structure = structure_mask(
            view, space=self.space, scope=q.scope, root=q.root, depth=q.depth, rank=q.rank
        )
        now = time.time()
        filtered = (
            structure is not None
            or kind_list is not None
            or q.session is not None
            or predicate is not None
            or t_since is not None
            or t_until is not None
            or not view.all_pass(now=now, include_archived=q.include_archived)
        )
        # With no filter (the common case) no mask is built: every live memory passes.
        mask: BoolArray | None = None
        n_ok = len(view)
        if filtered:
            mask = view.mask(
                now=now,
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
            hits, labels = rank_by_distance(
                view, qvec, k, view.alive.view if mask is None else mask
            )
            if record:
                self.access.record(view, labels)
            return hits
        # The recency clock: the newest memory, but never past the wall clock (one
        # memory dated ahead must not age all the others).
        ref = ref_now if ref_now is not None else min(view.newest_time(), time.time())
        mode = q.mode if text is not None else "dense"  # a vector query has no words
        allowed = None if mask is None or n_ok == len(view) else mask
        if mode == "dense" and q.group_by is None:
            return self._exact_dense(view, qvec, k, allowed, n_ok, ref, record)
        need = k
        floor = self.settings.hybrid.pool
        if q.group_by is not None:
            floor = max(floor, self.settings.hybrid.group_pool)
        while True:
            depth = max(floor, 4 * need, need + 32)
            cands = self._candidates(view, text, qvec, mode, depth, allowed, n_ok)
            if q.group_by is None or len(cands.labels) >= n_ok:
                break
            groups = len({int(c) for c in view.session.data[cands.labels]})
            if groups >= k or depth >= n_ok:
                break
            need = 4 * need
        if q.group_by == "session":
            return self._grouped(view, cands, k, ref, record, mode)
        return self._rank(view, cands, k, ref, record)

    # -- candidates ------------------------------------------------------------------------

    def _dense_search(
        self, view: AgentView, qvec: FloatMatrix, depth: int, allowed: BoolArray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``depth`` nearest allowed memories: (similarities, labels), nearest first."""
        if self.index_kind == "lance":
            mask = allowed if allowed is not None else view.alive.view
            return self._lance_search(view, qvec, depth, mask)
        scores, found = view.index.search(qvec[None, :], depth, allowed)
        if found[0, -1] >= 0:  # every slot filled (slots fill best first)
            return scores[0], found[0]
        keep = found[0] >= 0
        return scores[0][keep], found[0][keep]

    def _candidates(
        self,
        view: AgentView,
        text: str | None,
        qvec: FloatMatrix,
        mode: str,
        depth: int,
        allowed: BoolArray | None,
        n_ok: int,
    ) -> _Candidates:
        """Each side's best ``depth`` candidates, their union, and the fused relevance."""
        depth = min(depth, n_ok)
        hybrid = self.settings.hybrid
        lex_scores, lex_labels = np.zeros(0, np.float32), np.zeros(0, np.int64)
        if text is not None and mode != "dense":
            lex_scores, lex_labels = view.lexicon.memories.search(
                text, depth, allowed, weights=(1.0, hybrid.context)
            )
        if mode == "lexical":
            labels = lex_labels
            dense_sims = np.zeros(0, np.float32)
            dense_labels = np.zeros(0, np.int64)
        else:
            dense_sims, dense_labels = self._dense_search(view, qvec, depth, allowed)
            labels = np.union1d(dense_labels, lex_labels).astype(np.int64)
        sims = self._similarities(view, qvec, labels, dense_labels, dense_sims)
        lexical = np.zeros(len(labels))
        if len(lex_labels):
            where = np.searchsorted(labels, lex_labels) if mode != "lexical" else None
            if where is None:
                lexical = lex_scores.astype(np.float64)
            else:
                lexical[where] = lex_scores
        cands = _Candidates(labels=labels, sims=sims, lexical=lexical)
        if mode == "dense":
            cands.relevance = sims
            cands.fused = sims
            return cands
        lex_norm = minmax(lexical, lex_scores) * (lexical > 0)
        if mode == "lexical":
            cands.relevance = np.round(lex_norm, _DECIMALS)
            cands.fused = cands.relevance
            return cands
        # The dense pool's range from the exact, rounded similarities (not the
        # index's float32 ones), so a rebuilt index scales the same way.
        dense_norm = minmax(sims, sims[np.searchsorted(labels, dense_labels)])
        fused = hybrid.dense * dense_norm + hybrid.lexical * lex_norm
        spans = query_dates(text) if text is not None and hybrid.date > 0 else []
        if spans:
            created = view.created.data[labels]
            fused = fused + hybrid.date * date_preference(created, spans, hybrid.date_scale_days)
        codes = view.session.data[labels]
        # Each session's best similarity among the candidates (one sort by code,
        # then similarity), its session document's BM25, and so its prior.
        inside = np.flatnonzero(codes >= 0)
        by_code = inside[np.lexsort((-sims[inside], codes[inside]))]
        c_sorted = codes[by_code]
        first = np.r_[True, c_sorted[1:] != c_sorted[:-1]] if len(c_sorted) else c_sorted > 0
        sessions = c_sorted[first]
        lex_sessions = view.lexicon.session_scores(text or "", sessions)
        prior_of = session_prior(sims[by_code][first], lex_sessions, hybrid)
        prior = np.zeros(len(labels))
        prior[inside] = prior_of[np.searchsorted(sessions, codes[inside])]
        cands.prior = prior
        cands.fused = np.round(fused, _DECIMALS)
        cands.relevance = np.round(fused + hybrid.session_prior * prior, _DECIMALS)
        return cands

    def _similarities(
        self,
        view: AgentView,
        qvec: FloatMatrix,
        labels: np.ndarray,
        dense_labels: np.ndarray,
        dense_sims: np.ndarray,
    ) -> np.ndarray:
        """Exact cosine similarity of each label to the query, rounded."""
        if not len(labels):
            return np.zeros(0)
        if self.index_kind == "lance":
            # No vectors in memory: what LanceDB found, and below it for the others.
            known = dict(zip(dense_labels.tolist(), dense_sims.tolist(), strict=True))
            floor = float(np.min(dense_sims)) if len(dense_sims) else 0.0
            sims = np.array([known.get(int(x), floor) for x in labels])
        else:
            # In float64: a float32 product rounds by the row's place in the batch, so two
            # equal vectors could differ in the sixth decimal, which min-max scaling
            # of a narrow pool then magnifies.
            sims = view.vectors(labels).astype(np.float64) @ qvec.astype(np.float64)
        return np.round(sims.astype(np.float64, copy=False), _DECIMALS)

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

    # -- ranking -----------------------------------------------------------------------------

    def _scores(
        self, view: AgentView, cands: _Candidates, ref: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each candidate's blended score, and its (recency, importance, access) parts.

        The parts are the score's terms before weighting: recency halves every
        ``half_life_days`` of age before ``ref``, importance as stored, access
        ``1 - exp(-count / access_scale)``. Written into one array in place: this
        runs on every recall.
        """
        w = self.settings.weights
        labels = cands.labels
        parts = np.empty((3, len(labels)))
        recency, importance, access = parts
        np.subtract(ref, view.created.data[labels], out=recency)
        np.maximum(recency, 0.0, out=recency)
        np.divide(recency, w.half_life_days * 86400.0, out=recency)
        np.power(0.5, recency, out=recency)
        importance[:] = view.importance.data[labels]
        score: np.ndarray = (
            w.similarity * cands.relevance + w.recency * recency + w.importance * importance
        )
        if view.max_access():
            np.divide(-view.access.data[labels], w.access_scale, out=access)
            np.exp(access, out=access)
            np.subtract(1.0, access, out=access)
            score += w.access * access
        else:  # no memory was ever accessed: every access part is 0
            access.fill(0.0)
        return score, parts

    def _headroom(self, view: AgentView, ref: float, *, count: int | None = None) -> float:
        """The most the non-similarity parts can add to the score of a memory used at
        most ``count`` times (default: the agent's most used memory's count).

        No memory is more recent than the newest, more important than the most
        important or more used than the most used (aggregates kept on write).
        """
        w = self.settings.weights
        age = max(ref - view.newest_time(), 0.0)
        recency = 0.5 ** (age / (w.half_life_days * 86400.0))
        used = view.max_access() if count is None else count
        access = 1.0 - math.exp(-used / w.access_scale)
        top: float = w.recency * recency + w.importance * view.max_importance() + w.access * access
        return top

    def _used_outside(
        self,
        view: AgentView,
        qvec: FloatMatrix,
        labels: np.ndarray,
        allowed: BoolArray | None,
        margin: float,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The memories outside the pool that only their use could lift past the k-th.

        ``margin`` is what the access part must add, beyond the bound on every other
        part, for a memory no more similar than the pool's least to beat the k-th:
        only memories used more than the count whose access part is ``margin`` can.
        Their labels and exact similarities, when there are at most
        :data:`_USED_OUTSIDE` of them (else None: the pool widens instead). Most
        memories are never or rarely recalled, so a few heavily used ones no longer
        widen the pool for every query near them.
        """
        w = self.settings.weights
        if w.access <= 0.0:
            return None
        need = margin / w.access
        if need >= 1.0:  # no count lifts the access part that far
            return np.zeros(0, np.int64), np.zeros(0)
        # access part 1 - exp(-c / scale) > need  <=>  c > -scale * log(1 - need); the
        # tolerance keeps a count at the boundary in (an extra candidate is harmless).
        above = -w.access_scale * math.log1p(-need) - 1e-6
        found = np.flatnonzero(view.access.view > above)
        found = found[view.alive.view[found]]
        if allowed is not None:
            found = found[found < len(allowed)]
            found = found[allowed[found]]
        found = np.setdiff1d(found, labels, assume_unique=True)
        if len(found) > _USED_OUTSIDE:
            return None
        sims = view.vectors(found) @ qvec if len(found) else np.zeros(0)
        return found.astype(np.int64), np.round(sims.astype(np.float64), _DECIMALS)

    def _exact_dense(
        self,
        view: AgentView,
        qvec: FloatMatrix,
        k: int,
        allowed: BoolArray | None,
        n_ok: int,
        ref: float,
        record: bool,
    ) -> list[Hit]:
        """The k best memories by the blended score, exactly, ties broken by id.

        The score's non-similarity parts are bounded, so a memory outside the
        pool (its similarity at most the pool's lowest) can beat the k-th only
        if the k-th scores at most that bound: the pool widens until it cannot.
        The bound is the agent's own: no memory is more recent than the newest,
        more important than the most important or more used than the most used
        (aggregates kept on write), so on memories alike in those the pool
        rarely widens, where a bound of 1 for each part widened it to the whole
        agent whenever similarities were close. When only the access part breaks
        the bound, the few memories used enough to matter are scored exactly
        instead (:meth:`_used_outside`).
        """
        w = self.settings.weights
        headroom = self._headroom(view, ref)
        unused = self._headroom(view, ref, count=0)
        depth = min(n_ok, max(4 * k, k + 32))
        while True:
            sims, labels = self._dense_search(view, qvec, depth, allowed)
            sims = np.round(sims.astype(np.float64), _DECIMALS)
            cands = _Candidates(labels=labels, sims=sims, relevance=sims)
            scored = self._scores(view, cands, ref)
            if len(labels) < depth or depth >= n_ok or self.index_kind == "lance":
                break
            scores = scored[0]
            kth = np.partition(scores, len(scores) - min(k, len(scores)))[
                len(scores) - min(k, len(scores))
            ]
            # The slack keeps rounding (sums in another order) from passing a tie.
            floor = w.similarity * float(sims.min())
            if kth > floor + headroom + _SLACK:
                break
            if kth > floor + unused + _SLACK:
                used = self._used_outside(
                    view, qvec, labels, allowed, kth - floor - unused - _SLACK
                )
                if used is not None:
                    if len(used[0]):
                        labels = np.concatenate([labels, used[0]])
                        sims = np.concatenate([sims, used[1]])
                        cands = _Candidates(labels=labels, sims=sims, relevance=sims)
                        scored = self._scores(view, cands, ref)
                    break
            depth = min(n_ok, 4 * depth)
        return self._rank(view, cands, k, ref, record, scored)

    def _order(
        self, view: AgentView, labels: np.ndarray, score: np.ndarray, k: int | None = None
    ) -> list[int]:
        """Candidate positions by score, best first, ties broken by id (the best ``k``)."""
        picked = np.arange(len(labels))
        if k is not None and len(labels) > k:
            # Only candidates at or above the k-th score can be returned: sort those
            # (all of the k-th's ties too, so the id tie-break is the same).
            kth = np.partition(score, len(score) - k)[len(score) - k]
            picked = np.flatnonzero(score >= kth)
        ranked = picked[np.argsort(-score[picked], kind="stable")]
        values = score[ranked]
        if not len(values) or bool((values[1:] < values[:-1]).all()):
            top: list[int] = ranked[:k].tolist()  # no two scores tie: ids cannot reorder them
            return top
        ids = [view.ids[x] or "" for x in labels[picked].tolist()]
        order = sorted(range(len(ids)), key=lambda j: (-float(score[picked[j]]), ids[j]))
        return [int(picked[j]) for j in order[:k]]

    def _hits(
        self,
        view: AgentView,
        cands: _Candidates,
        picked: Sequence[int],
        score: np.ndarray,
        parts: np.ndarray,
    ) -> tuple[list[Hit], list[int]]:
        """Hits for the candidates at positions ``picked`` (records built in one batch)."""
        at = np.asarray(picked, dtype=np.intp)
        labels: list[int] = cands.labels[at].tolist()
        # Indexes return live labels only; the check keeps a dead one out all the same.
        live = [j for j, label in enumerate(labels) if view.ids[label] is not None]
        if len(live) < len(labels):
            at, labels = at[live], [labels[j] for j in live]
        n = len(labels)
        memories = view.records.memories(labels)
        recency, importance, access = parts[:, at].tolist()
        lexical = cands.lexical[at].tolist() if len(cands.lexical) else [0.0] * n
        depths = view.depths()[labels].tolist() if self.space == "poincare" else [None] * n
        hits = [
            Hit(m, sc, sim, rec, imp, acc, dep, lex, rel)
            for m, sc, sim, rec, imp, acc, dep, lex, rel in zip(
                memories,
                score[at].tolist(),
                cands.sims[at].tolist(),
                recency,
                importance,
                access,
                depths,
                lexical,
                cands.relevance[at].tolist(),
                strict=True,
            )
        ]
        return hits, labels

    def _rank(
        self,
        view: AgentView,
        cands: _Candidates,
        k: int,
        ref: float,
        record: bool,
        scored: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[Hit]:
        score, parts = scored if scored is not None else self._scores(view, cands, ref)
        hits, labels = self._hits(
            view, cands, self._order(view, cands.labels, score, k), score, parts
        )
        if record:
            self.access.record(view, labels)
        return hits

    def _grouped(
        self, view: AgentView, cands: _Candidates, k: int, ref: float, record: bool, mode: str
    ) -> list[Hit]:
        """The best memory of each of the k best sessions (a memory with no session alone)."""
        hybrid = self.settings.hybrid
        score, parts = self._scores(view, cands, ref)
        order = self._order(view, cands.labels, score)
        codes = view.session.data[cands.labels].tolist()
        cand_labels = cands.labels.tolist()
        members: dict[tuple[int, int], list[int]] = {}
        for i in order:
            code = codes[i]
            key = (code, -1) if code >= 0 else (-1, cand_labels[i])
            members.setdefault(key, []).append(i)
        groups = []
        for key, idx in members.items():
            top = np.sort(cands.fused[idx])[::-1][: hybrid.group_top]
            value = _soft_max(top, hybrid.group_temperature)
            if mode == "hybrid" and key[0] >= 0:
                value += hybrid.group_prior * float(cands.prior[idx[0]])
            name = view.session_name(key[0])
            groups.append((round(value, _DECIMALS), name or "", key, idx[0]))
        groups.sort(key=lambda g: (-g[0], g[1], g[2]))
        best = groups[:k]
        found, labels = self._hits(view, cands, [g[3] for g in best], score, parts)
        by_label = dict(zip(labels, found, strict=True))
        hits = []
        for value, _, key, i in best:
            hit = by_label.get(int(cands.labels[i]))
            if hit is not None:
                hits.append(_with_group(hit, view.session_name(key[0]), value))
        if record:
            self.access.record(view, labels)
        return hits


def _soft_max(values: np.ndarray, temperature: float) -> float:
    """``t * log(sum(exp(v / t)))``: the largest value plus a little for each close one."""
    return temperature * float(np.logaddexp.reduce(values / temperature))


def _with_group(hit: Hit, group: str | None, score: float) -> Hit:
    return Hit(
        memory=hit.memory,
        score=hit.score,
        similarity=hit.similarity,
        recency=hit.recency,
        importance=hit.importance,
        access=hit.access,
        depth=hit.depth,
        lexical=hit.lexical,
        relevance=hit.relevance,
        group=group,
        group_score=score,
    )
