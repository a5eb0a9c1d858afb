"""The registry of agent views: each agent's memory in RAM, built from the store on demand."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyarrow as pa

from engramdb.config import Settings
from engramdb.errors import NotFoundError
from engramdb.index.columns import release_free_memory
from engramdb.index.view import AgentView, normalize_rows, to_micros
from engramdb.records import Memory, check_id, check_name
from engramdb.store.schema import arrow_to_memories, arrow_vectors
from engramdb.store.table import Changes, MemoryTable

__all__ = ["ViewRegistry"]


class ViewRegistry:
    """One :class:`AgentView` per agent, kept in step with the store of record.

    Not locked: the engine holds its lock around every call.

    Args:
        store: The store of record.
        dim: The embedder's dimension.
        index_kind: The vector index every view builds.
        settings: Engine settings (the exact-search threshold).
        read_only: A reader never purges expired rows (it cannot write); it
            follows the writer by dropping its views when the store's version moves.
    """

    def __init__(
        self,
        store: MemoryTable,
        *,
        dim: int,
        index_kind: str,
        settings: Settings,
        read_only: bool,
    ) -> None:
        self.store = store
        self.dim = dim
        self.index_kind = index_kind
        self.settings = settings
        self.read_only = read_only
        self._views: dict[str, AgentView] = {}
        self._seen_version = store.version

    def __iter__(self) -> Iterator[AgentView]:
        return iter(list(self._views.values()))

    def loaded(self, agent: str) -> AgentView | None:
        """The agent's view if it is in memory (nothing is built)."""
        return self._views.get(agent)

    def get(self, agent: str) -> AgentView:
        """The agent's view, built from the store if it is not in memory."""
        view = self._views.get(agent)
        if view is None:
            if not self.read_only:
                self._purge_expired(agent)
            rows = self.store.scan_agent(agent)
            view = AgentView.build(
                agent,
                arrow_to_memories(rows),
                arrow_vectors(rows, self.dim),
                dim=self.dim,
                index_kind=self.index_kind,
                exact_threshold=self.settings.exact_threshold,
            )
            del rows
            release_free_memory()  # the rows and the values made from them
            self._views[agent] = view
        return view

    def follow(self) -> None:
        """A reader: move to the store's newest version and apply what changed to the views.

        Only the rows written since the version the views hold are read (with
        their vectors), and only the agents they belong to change; an access-count
        flush updates records in place. When the store cannot say what changed
        (the old version was cleaned up), the views are dropped and rebuilt.
        """
        self.store.refresh()
        version = self.store.version
        if version == self._seen_version:
            return
        changes = self.store.changes_since(self._seen_version) if self._views else None
        self._seen_version = version
        if changes is None:
            self._views.clear()
            return
        self._apply(changes)

    def _apply(self, changes: Changes) -> None:
        rows = changes.rows
        agents = rows.column("agent").to_pylist() if rows.num_rows else []
        for agent, view in list(self._views.items()):
            picked = [i for i, a in enumerate(agents) if a == agent]
            if not picked:
                continue
            part = rows.take(picked)
            memories = arrow_to_memories(part.take(pa.array(_changed_rows(view, part), pa.int64())))
            moved = []
            for m in memories:
                old = view.records.get(m.id)
                if old is None or not _same_content(old, m):
                    moved.append(m)
                elif old != m:
                    view.set_record(m)  # access counts, importance, status: in place
            if moved:
                # Only memories whose text changed (or that are new) need their vector.
                fetched = changes.vectors([m.id for m in moved])
                order = {mid: i for i, mid in enumerate(fetched.column("id").to_pylist())}
                vectors = normalize_rows(arrow_vectors(fetched, self.dim))
                view.add(moved, vectors[[order[m.id] for m in moved]])
        if changes.deletes:
            alive = self.store.scan(columns=["id", "agent"])
            kept: dict[str, set[str]] = {}
            for mid, agent in zip(
                alive.column("id").to_pylist(), alive.column("agent").to_pylist(), strict=True
            ):
                kept.setdefault(agent, set()).add(mid)
            for agent, view in self._views.items():
                gone = [mid for mid in view.records if mid not in kept.get(agent, set())]
                view.remove(gone)

    def invalidate(self, agent: str | None = None) -> None:
        """Drop one agent's view (every view if None); it is rebuilt on next use."""
        if agent is None:
            self._views.clear()
        else:
            self._views.pop(agent, None)

    def find(self, memory_id: str, agent: str | None) -> Memory:
        """The memory with this id (expired ones count as absent)."""
        check_id(memory_id)
        if agent is not None:
            check_name(agent, what="agent")
        views = [self._views[agent]] if agent in self._views else list(self._views.values())
        for view in views:
            if memory_id in view.records:
                found = view.current(memory_id)
                break
        else:
            memories = arrow_to_memories(self.store.fetch([memory_id]))
            if not memories or (agent is not None and memories[0].agent != agent):
                where = f" for agent {agent!r}" if agent else ""
                raise NotFoundError(f"no memory with id {memory_id!r}{where}")
            found = memories[0]
        if agent is not None and found.agent != agent:
            raise NotFoundError(f"no memory with id {memory_id!r} for agent {agent!r}")
        if found.is_expired:
            raise NotFoundError(f"memory {memory_id!r} has expired")
        return found

    def _purge_expired(self, agent: str) -> None:
        now = time.time()
        rows = self.store.scan_agent(agent, columns=["id", "expires_at"])
        expires = rows.column("expires_at").to_pylist()
        dead = [
            mid
            for mid, exp in zip(rows.column("id").to_pylist(), expires, strict=True)
            if exp is not None and exp.timestamp() <= now
        ]
        self.store.purge(dead)  # best effort: a read never fails on a failed purge


def _same_content(old: Memory, new: Memory) -> bool:
    """Whether a stored change left the memory's text, and so its vector and context, alone."""
    return old.text == new.text and old.session == new.session and old.created_at == new.created_at


def _changed_rows(view: AgentView, rows: pa.Table) -> list[int]:
    """Rows that differ from the view's records (a compaction rewrites unchanged ones)."""
    ids = rows.column("id").to_pylist()
    updated = rows.column("updated_at").cast(pa.int64()).to_pylist()
    access = rows.column("access_count").to_pylist()
    status = rows.column("status").to_pylist()
    importance = rows.column("importance").to_pylist()
    out = []
    for i, mid in enumerate(ids):
        old = view.records.get(mid)
        if (
            old is None
            or to_micros(old.updated_at) != updated[i]
            or old.access_count != access[i]
            or old.status.value != status[i]
            or old.importance != importance[i]
        ):
            out.append(i)
    return out
