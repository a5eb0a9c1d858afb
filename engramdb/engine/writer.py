"""Writing memories: validate, embed, store in one commit, and keep the agent's view in step.

Not locked: the :class:`~engramdb.MemoryEngine` facade holds its lock and checks
that it is writable around every call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from engramdb._types import FloatMatrix
from engramdb.config import Settings
from engramdb.engine.access import AccessLog
from engramdb.engine.vectors import Vectorizer
from engramdb.engine.views import ViewRegistry
from engramdb.engine.writes import check_importance, kind_of, prepare
from engramdb.errors import ValidationError
from engramdb.index.view import normalize_rows
from engramdb.records import Memory, MemoryKind, check_metadata, check_name, check_text, utcnow
from engramdb.store.table import MemoryTable, agent_filter, empty_vectors

__all__ = ["Writer"]

_TS = pa.timestamp("us", "UTC")


class Writer:
    """The engine's write paths, composed of the store, the views, the vectorizer and access log."""

    def __init__(
        self,
        store: MemoryTable,
        views: ViewRegistry,
        vectors: Vectorizer,
        access: AccessLog,
        *,
        settings: Settings,
    ) -> None:
        self.store = store
        self.views = views
        self.vectors = vectors
        self.access = access
        self.settings = settings

    def add_many(
        self,
        items: Iterable[str | Mapping[str, Any]],
        *,
        agent: str,
        kind: MemoryKind | str,
        session: str | None,
        progress: bool,
    ) -> list[Memory]:
        """Validate every item, then embed and store them all in one commit."""
        check_name(agent, what="agent")
        default_kind = kind_of(kind)
        if session is not None:
            check_name(session, what="session")
        now = utcnow()
        prepared: list[tuple[Memory, FloatMatrix | None]] = []
        ids: set[str] = set()

        def check_parent(parent: str) -> None:
            if parent not in ids:
                self.views.find(parent, agent)

        for i, raw in enumerate(items):
            item = {"text": raw} if isinstance(raw, str) else raw
            if not isinstance(item, Mapping):
                raise ValidationError(
                    f"item {i} is {type(raw).__name__} {raw!r:.60}; pass a str or a dict"
                )
            try:
                memory, vec = prepare(
                    item,
                    agent=agent,
                    default_kind=default_kind,
                    default_session=session,
                    now=now,
                    settings=self.settings,
                    check_vector=self.vectors.check,
                    check_parent=check_parent,
                )
            except ValidationError as exc:
                raise ValidationError(f"item {i}: {exc}") from None
            prepared.append((memory, vec))
            ids.add(memory.id)
        if not prepared:
            return []
        memories, vectors = self._embed_prepared(prepared, progress=progress)
        self.store.append(memories, vectors)
        view = self.views.loaded(agent)
        if view is not None:
            view.add(memories, vectors)
        if any(m.kind is MemoryKind.WORKING for m in memories):
            self._evict_working(agent)
        return memories

    def _embed_prepared(
        self, prepared: Sequence[tuple[Memory, FloatMatrix | None]], *, progress: bool
    ) -> tuple[list[Memory], FloatMatrix]:
        """Embed the memories that brought no vector; every vector as a unit row."""
        todo = [i for i, (_, vec) in enumerate(prepared) if vec is None]
        texts = [prepared[i][0].text for i in todo]
        vectors = np.empty((len(prepared), self.vectors.dim), dtype=np.float32)
        embedded = self.vectors.embed(texts, progress=progress)
        chunks = self.vectors.chunk_counts(texts)
        memories = [m for m, _ in prepared]
        for j, i in enumerate(todo):
            vectors[i] = embedded[j]
            if chunks[j] > 1:
                memories[i] = memories[i].model_copy(update={"chunks": chunks[j]})
        for i, (_, vec) in enumerate(prepared):
            if vec is not None:
                vectors[i] = vec
        return memories, normalize_rows(vectors)

    def _evict_working(self, agent: str) -> None:
        """Keep at most ``working_capacity`` working memories per (agent, session)."""
        view = self.views.get(agent)
        by_session: dict[str | None, list[Memory]] = {}
        for label in view.labels_of_kind(MemoryKind.WORKING).tolist():
            m = view.memory(label)
            by_session.setdefault(m.session, []).append(m)
        evict: list[str] = []
        cap = self.settings.working_capacity
        for group in by_session.values():
            if len(group) > cap:
                group.sort(key=lambda m: (m.created_at, m.id))
                evict.extend(m.id for m in group[: len(group) - cap])
        if evict:
            self.store.delete(evict)
            view.remove(evict)

    def update(
        self,
        memory_id: str,
        *,
        agent: str | None,
        text: str | None,
        metadata: Mapping[str, Any] | None,
        importance: float | None,
    ) -> Memory:
        """Change a memory's text (re-embedded), metadata (replaced) or importance."""
        old = self.views.find(memory_id, agent)
        changes: dict[str, Any] = {"updated_at": max(utcnow(), old.updated_at)}
        if text is not None:
            changes["text"] = check_text(text, max_bytes=self.settings.max_text_bytes)
        if metadata is not None:
            changes["metadata"] = check_metadata(
                metadata, max_bytes=self.settings.max_metadata_bytes
            )
        if importance is not None:
            changes["importance"] = check_importance(importance)
        view = self.views.loaded(old.agent)
        if view is not None and old.id in view.records:
            old = view.current(old.id)
        if text is None:
            new = old.model_copy(update=changes)
            self.replace_records([new])
            return new
        changes["chunks"] = self.vectors.chunk_counts([text])[0]
        new = old.model_copy(update=changes)
        vector = self.vectors.embed([new.text])
        self.store.upsert([new], vector)
        if view is not None:
            view.add([new], vector)
        return new

    def replace_records(self, memories: Sequence[Memory]) -> None:
        """Store new values of existing memories whose text (so vector) is unchanged."""
        if not memories:
            return
        seen: set[str] = set()
        for m in memories:
            if m.id in seen:
                raise ValidationError(
                    f"memory {m.id!r} is given twice; pass each memory once, with its final values"
                )
            seen.add(m.id)
        data = pa.table(
            {
                "id": [m.id for m in memories],
                "metadata": [json.dumps(m.metadata, sort_keys=True) for m in memories],
                "importance": pa.array([m.importance for m in memories], pa.float64()),
                "updated_at": pa.array([m.updated_at for m in memories], _TS),
                "last_accessed_at": pa.array([m.last_accessed_at for m in memories], _TS),
                "access_count": pa.array([m.access_count for m in memories], pa.int64()),
                "expires_at": pa.array([m.expires_at for m in memories], _TS),
                "parent_id": pa.array([m.parent_id for m in memories], pa.string()),
                "source_ids": pa.array(
                    [list(m.source_ids) for m in memories], pa.list_(pa.string())
                ),
                "status": [m.status.value for m in memories],
            }
        )
        self.store.update_columns(data)
        for m in memories:
            view = self.views.loaded(m.agent)
            if view is not None and m.id in view.records:
                view.set_record(m)

    def delete(self, memory_id: str, *, agent: str | None) -> None:
        """Delete a memory for good."""
        found = self.views.find(memory_id, agent)
        self.store.delete([found.id])
        self.access.forget(found.id)
        view = self.views.loaded(found.agent)
        if view is not None:
            view.remove([found.id])

    def delete_agent(self, agent: str) -> int:
        """Delete every memory of an agent in one commit; how many were deleted."""
        check_name(agent, what="agent")
        n = self.store.count(agent_filter(agent))
        if n:
            self.store.replace_agent(agent, [], empty_vectors(self.vectors.dim))
        self.views.invalidate(agent)
        self.access.forget(agent=agent)
        return n
