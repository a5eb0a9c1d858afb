"""One agent's consolidation, planned in memory: expire, deduplicate, cluster, forget.

:func:`plan_agent` takes an agent's records and vectors and returns its complete
state after the pass; it reads and writes nothing. The pass over a store
(:mod:`engramdb.consolidation.run`) loads each agent, plans it here, and writes
the result back in one commit.

What each stage does to the records (the algorithms are in
:mod:`engramdb.consolidation`):

1. **expire** deletes memories past ``expires_at`` and working memory beyond
   ``settings.working_capacity`` per session (the oldest go first).
2. **dedup** merges each duplicate group into a new memory with the most
   informative text (and that text's vector), the members' metadata merged
   (the representative's values win), the highest importance, summed access
   counts, the earliest ``created_at`` and ``source_ids`` naming every member;
   the members are archived, with the merge as their parent (it takes over the
   parent they had). A member that was itself a merge hands over its sources
   and is removed: provenance stays one level deep.
3. **cluster** gathers episodes older than the window into topic clusters; each
   cluster of at least ``min_size`` gets a semantic gist that is the parent of
   its members and names them in ``source_ids``; the members are archived
   unless ``archive_members`` is off. The gist's vector is its medoid's (the
   text it leads with), or the embedding of a user summary.
4. **forget** archives active memories whose retention fell below the archive
   line and deletes those below the delete line, with the archived sources of a
   deleted consolidated memory. Pinned memories are never forgotten.

Merges and gists carry ``metadata["consolidated"]`` (``"merge"`` or ``"gist"``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

import numpy as np

from engramdb._types import FloatMatrix
from engramdb.consolidation import (
    ConsolidationPolicy,
    duplicate_groups,
    extractive_gist,
    merge_metadata,
    retention,
    text_features,
    topic_clusters,
)
from engramdb.errors import ValidationError
from engramdb.index.view import normalize_rows
from engramdb.records import Memory, MemoryKind, MemoryStatus, new_id, utcnow

__all__ = ["CONSOLIDATED_KEY", "count_memories", "plan_agent"]

CONSOLIDATED_KEY = "consolidated"
"""Metadata key marking memories a pass wrote: ``"merge"`` or ``"gist"``."""
_DAY = 86400.0
_ID = attrgetter("id")


def count_memories(memories: Iterable[Memory]) -> dict[str, dict[str, int]]:
    tally = Counter((m.kind, m.status) for m in memories)  # members: no .value per memory
    out: dict[str, dict[str, int]] = {}
    for (kind, status), n in sorted(tally.items()):
        out.setdefault(kind.value, {})[status.value] = n
    return out


def _is(memory: Memory, what: str) -> bool:
    return memory.metadata.get(CONSOLIDATED_KEY) == what


class _Plan:
    """An agent's memory being consolidated: records and vectors by id, and what changed."""

    def __init__(self, memories: Sequence[Memory], vectors: FloatMatrix, now: datetime) -> None:
        self.now = now
        self.records: dict[str, Memory] = {m.id: m for m in memories}
        self.vectors: dict[str, np.ndarray] = {m.id: vectors[i] for i, m in enumerate(memories)}
        self.changed = False
        self.stats: Counter[str] = Counter()
        self.reinforced: dict[str, float] = {}
        """Latest creation or recall of a memory or its sources (times never change in a pass)."""

    def alive(self) -> list[Memory]:
        return sorted(self.records.values(), key=_ID)

    def put(self, memory: Memory, vector: np.ndarray | None = None) -> None:
        self.records[memory.id] = memory
        if vector is not None:
            self.vectors[memory.id] = vector
        self.changed = True

    def update(self, memory: Memory, **changes: Any) -> Memory:
        new = memory.model_copy(update={**changes, "updated_at": max(self.now, memory.updated_at)})
        self.put(new)
        return new

    def delete(self, ids: Iterable[str]) -> int:
        n = 0
        for mid in ids:
            if self.records.pop(mid, None) is not None:
                self.vectors.pop(mid, None)
                n += 1
        self.changed = self.changed or n > 0
        return n

    def result(self) -> tuple[list[Memory], FloatMatrix]:
        memories = self.alive()
        if not memories:
            return [], np.zeros((0, 0), np.float32)
        return memories, np.stack([self.vectors[m.id] for m in memories]).astype(np.float32)


# -- stages -------------------------------------------------------------------------------


def _expire(plan: _Plan, *, capacity: int) -> None:
    dead = [
        m.id for m in plan.records.values() if m.expires_at is not None and m.expires_at <= plan.now
    ]
    by_session: dict[str | None, list[Memory]] = {}
    for m in plan.records.values():
        if m.kind is MemoryKind.WORKING and m.id not in dead:
            by_session.setdefault(m.session, []).append(m)
    for group in by_session.values():
        if len(group) > capacity:
            group.sort(key=lambda m: (m.created_at, m.id))
            dead.extend(m.id for m in group[: len(group) - capacity])
    plan.stats["expired"] += plan.delete(dead)


def _dedup(plan: _Plan, policy: ConsolidationPolicy) -> None:
    stage = policy.dedup
    kinds = {MemoryKind(k) for k in stage.kinds}
    candidates = [
        m
        for m in plan.alive()
        if m.status is MemoryStatus.ACTIVE and m.kind in kinds and not _is(m, "gist")
    ]
    partitions: dict[MemoryKind | None, list[Memory]] = {}
    for m in candidates:
        partitions.setdefault(None if stage.cross_kind else m.kind, []).append(m)
    replaced: dict[str, str] = {}
    for members in partitions.values():
        features = [text_features(m.text) for m in members]
        # Most informative first; then the earliest, then by id: a total, stable order.
        ranked = sorted(
            range(len(members)),
            key=lambda i: (
                tuple(-x for x in features[i][1]),
                members[i].created_at,
                members[i].id,
            ),
        )
        groups = duplicate_groups(
            [key for key, _ in features],
            np.stack([plan.vectors[m.id] for m in members]),
            ranked,
            exact=stage.exact,
            near=stage.near,
            threshold=stage.threshold,
            neighbors=stage.neighbors,
        )
        for group in groups:
            _merge(plan, [members[i] for i in group], replaced)
    if replaced:  # children of a merge that was folded into a new one follow it
        for m in plan.alive():
            if m.parent_id in replaced:
                plan.update(m, parent_id=replaced[m.parent_id])


def _merge(plan: _Plan, group: Sequence[Memory], replaced: dict[str, str]) -> None:
    rep = group[0]
    sources: list[str] = []
    for m in group:
        if _is(m, "merge"):
            sources.extend(s for s in m.source_ids if s not in sources)
        elif m.id not in sources:
            sources.append(m.id)
    created = min(m.created_at for m in group)
    accessed = [m.last_accessed_at for m in group if m.last_accessed_at is not None]
    expiries = [m.expires_at for m in group]
    metadata = merge_metadata([m.metadata for m in group])
    metadata[CONSOLIDATED_KEY] = "merge"
    merged = Memory.model_construct(
        id=new_id(created),
        agent=rep.agent,
        kind=rep.kind,
        text=rep.text,
        session=rep.session,
        metadata=metadata,
        importance=max(m.importance for m in group),
        created_at=created,
        updated_at=plan.now,
        last_accessed_at=max(accessed) if accessed else None,
        access_count=sum(m.access_count for m in group),
        expires_at=None if any(e is None for e in expiries) else max(expiries),  # type: ignore[type-var]
        parent_id=next((m.parent_id for m in group if m.parent_id is not None), None),
        source_ids=tuple(sources),
        status=MemoryStatus.ACTIVE,
        chunks=rep.chunks,
    )
    plan.put(merged, plan.vectors[rep.id])
    for m in group:
        if _is(m, "merge"):
            plan.delete([m.id])
            replaced[m.id] = merged.id
        else:
            # The merge stands above its sources, as a gist does above its members.
            plan.update(m, status=MemoryStatus.ARCHIVED, parent_id=merged.id)
            plan.stats["duplicates_archived"] += 1
    plan.stats["groups_merged"] += 1


def _touched(memory: Memory) -> float:
    last = memory.last_accessed_at
    return max(memory.created_at.timestamp(), last.timestamp() if last else 0.0)


def _retention(
    plan: _Plan, memories: Sequence[Memory], policy: ConsolidationPolicy, ref: float
) -> np.ndarray:
    """Retention of each memory; a consolidated one counts from its latest source's use.

    A restatement is a rehearsal: a merge dated at its earliest member must not be
    forgotten while a member written yesterday would be kept. So a consolidated
    memory's retention is at least each of its sources' (sources of sources too).
    """
    if not memories:
        return np.zeros(0)
    memo = plan.reinforced

    def reinforced(m: Memory) -> float:
        t = memo.get(m.id)
        if t is None:
            t = memo[m.id] = _touched(m)  # first, so a cycle in user data cannot loop
            for src in m.source_ids:
                source = plan.records.get(src)
                if source is not None:
                    t = max(t, reinforced(source))
            memo[m.id] = t
        return t

    return retention(
        (ref - np.array([reinforced(m) for m in memories])) / _DAY,
        [m.importance for m in memories],
        [m.access_count for m in memories],
        base_days=policy.forget.half_life_days,
    )


def _cluster(
    plan: _Plan,
    policy: ConsolidationPolicy,
    ref: float,
    *,
    max_bytes: int,
    embed: Callable[[Sequence[str]], FloatMatrix] | None,
) -> None:
    stage = policy.cluster
    cutoff = ref - stage.window_days * _DAY
    gists = {m.id for m in plan.records.values() if _is(m, "gist")}
    nodes = [
        m
        for m in plan.alive()
        if m.kind is MemoryKind.EPISODIC
        and m.created_at.timestamp() < cutoff
        and (m.status is MemoryStatus.ACTIVE or m.parent_id in gists)
    ]
    if policy.forget.enabled:  # what forgetting will archive is not worth a gist
        keep = _retention(plan, nodes, policy, ref) >= policy.forget.archive_below
        nodes = [m for m, ok in zip(nodes, keep, strict=True) if ok or m.pinned]
    if len(nodes) < stage.min_size:
        return
    placed = np.array(
        [m.parent_id is not None or m.status is not MemoryStatus.ACTIVE for m in nodes]
    )
    clusters = topic_clusters(
        np.stack([plan.vectors[m.id] for m in nodes]),
        placed=placed,
        threshold=stage.threshold,
        min_size=stage.min_size,
        max_size=stage.max_size,
    )
    members_of = [
        sorted((nodes[i] for i in c), key=lambda m: (m.created_at, m.id)) for c in clusters
    ]
    texts: list[str] = []
    vectors: list[np.ndarray | None] = []
    for members in members_of:
        texts_in = [m.text for m in members]
        if policy.summarize is not None:
            summary = policy.summarize(list(texts_in))
            if not isinstance(summary, str) or not summary.strip():
                raise ValidationError(
                    f"summarize returned {summary!r:.80} for a cluster of {len(members)}; "
                    "it must return a non-empty string"
                )
            if len(summary.encode("utf-8")) > max_bytes:
                raise ValidationError(
                    f"summarize returned {len(summary.encode())} bytes, over the text limit of "
                    f"{max_bytes}; return a shorter summary"
                )
            texts.append(summary)
            vectors.append(None)
        else:
            vecs = np.stack([plan.vectors[m.id] for m in members])
            gist = extractive_gist(
                texts_in,
                vecs,
                max_sentences=stage.max_sentences,
                cover=stage.cover,
                max_bytes=max_bytes,
            )
            texts.append(gist.text)
            vectors.append(vecs[gist.medoid])
    todo = [i for i, v in enumerate(vectors) if v is None]
    if todo:
        if embed is None:
            raise ValidationError("a summarize callable needs an embedder for its gists")
        embedded = normalize_rows(np.asarray(embed([texts[i] for i in todo]), np.float32))
        for j, i in enumerate(todo):
            vectors[i] = embedded[j]
    for members, text, vector in zip(members_of, texts, vectors, strict=True):
        sessions = {m.session for m in members}
        accessed = [m.last_accessed_at for m in members if m.last_accessed_at is not None]
        created = max(m.created_at for m in members)
        pinned = any(m.pinned for m in members)
        gist_memory = Memory.model_construct(
            id=new_id(created),
            agent=members[0].agent,
            kind=MemoryKind.SEMANTIC,
            text=text,
            session=sessions.pop() if len(sessions) == 1 else None,
            # A gist of a pinned memory is pinned too: forgetting it would only
            # have the next pass write it again.
            metadata={CONSOLIDATED_KEY: "gist"} | ({"pinned": True} if pinned else {}),
            importance=max(m.importance for m in members),
            created_at=created,
            updated_at=plan.now,
            last_accessed_at=max(accessed) if accessed else None,
            access_count=sum(m.access_count for m in members),
            expires_at=None,
            parent_id=None,
            source_ids=tuple(m.id for m in members),
            status=MemoryStatus.ACTIVE,
            chunks=1,
        )
        plan.put(gist_memory, vector)
        status = MemoryStatus.ARCHIVED if stage.archive_members else MemoryStatus.ACTIVE
        for m in members:
            plan.update(m, parent_id=gist_memory.id, status=status)
        plan.stats["gists"] += 1
        plan.stats["clustered"] += len(members)


def _forget(plan: _Plan, policy: ConsolidationPolicy, ref: float) -> None:
    stage = policy.forget
    memories = [m for m in plan.alive() if m.kind is not MemoryKind.WORKING and not m.pinned]
    named = {s for m in plan.records.values() for s in m.source_ids}
    # Archived sources live and die with the memory that names them.
    scored = [m for m in memories if m.status is MemoryStatus.ACTIVE or m.id not in named]
    score = _retention(plan, scored, policy, ref)
    doomed: list[str] = []
    for m, r in zip(scored, score, strict=True):
        if r < stage.delete_below:
            doomed.append(m.id)
        elif r < stage.archive_below and m.status is MemoryStatus.ACTIVE:
            plan.update(m, status=MemoryStatus.ARCHIVED)
            plan.stats["forgotten"] += 1
    gone: set[str] = set()
    while doomed:
        mid = doomed.pop()
        if mid in gone or mid not in plan.records:
            continue
        gone.add(mid)
        for src in plan.records[mid].source_ids:
            source = plan.records.get(src)
            if source is not None and source.status is MemoryStatus.ARCHIVED and not source.pinned:
                doomed.append(src)
    for m in plan.alive():
        if m.parent_id in gone and m.id not in gone:
            plan.update(m, parent_id=None)
    plan.stats["deleted"] += plan.delete(sorted(gone))


def plan_agent(
    memories: Sequence[Memory],
    vectors: FloatMatrix,
    *,
    policy: ConsolidationPolicy,
    working_capacity: int,
    max_text_bytes: int,
    embed: Callable[[Sequence[str]], FloatMatrix] | None = None,
    now: datetime | None = None,
    on_step: Callable[[str], None] | None = None,
) -> tuple[list[Memory], FloatMatrix, dict[str, int], bool]:
    """Consolidate one agent's memories in memory.

    Returns:
        ``(memories, vectors, stats, changed)``: the agent's complete state after the
        pass (to be written in one commit), counters by stage, and whether anything changed.
    """
    now = now or utcnow()
    plan = _Plan(memories, vectors, now)
    step = on_step or (lambda _: None)
    if policy.expire.enabled:
        _expire(plan, capacity=working_capacity)
    step("expire")
    times = [m.created_at for m in plan.records.values()]
    # The agent's clock is its newest memory, but never past the wall clock: one
    # memory dated in the future must not make every other one look old.
    ref = (now if policy.clock == "wall" or not times else min(max(times), now)).timestamp()
    if policy.dedup.enabled:
        _dedup(plan, policy)
    step("dedup")
    if policy.cluster.enabled:
        _cluster(plan, policy, ref, max_bytes=max_text_bytes, embed=embed)
    step("cluster")
    if policy.forget.enabled:
        _forget(plan, policy, ref)
    step("forget")
    out, vecs = plan.result()
    return out, vecs, dict(plan.stats), plan.changed
