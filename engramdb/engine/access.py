"""Access counting: recall counts hits in memory and writes the counts in batches."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from engramdb.engine.views import ViewRegistry
from engramdb.index.view import AgentView, from_micros, to_micros
from engramdb.records import utcnow
from engramdb.store.table import Commit, MemoryTable

__all__ = ["AccessLog"]


class AccessLog:
    """Buffered access counts: never one write per query.

    A killed process may lose the counts buffered since the last flush, never
    a memory. Not locked: the engine holds its lock around every call.

    Args:
        store: Where counts are written.
        views: Where the current counts live (the view columns are the truth).
        flush_every: Buffered accesses that trigger a write.
    """

    def __init__(self, store: MemoryTable, views: ViewRegistry, *, flush_every: int) -> None:
        self.store = store
        self.views = views
        self.flush_every = flush_every
        self._pending: dict[str, str] = {}
        """Memory id -> agent, for every memory accessed since the last flush."""

    def __len__(self) -> int:
        return len(self._pending)

    def record(self, view: AgentView, labels: Sequence[int]) -> None:
        """Count one access of each label's memory; flush when the buffer is full."""
        stamp = to_micros(utcnow())
        for label in labels:
            view.access.data[label] += 1
            view.last_access.data[label] = stamp
            mid = view.ids[label]
            if mid is not None:
                self._pending[mid] = view.agent
        if len(self._pending) >= self.flush_every:
            self.flush()

    def forget(self, memory_id: str | None = None, *, agent: str | None = None) -> None:
        """Drop buffered counts of a deleted memory, or of every memory of ``agent``."""
        if memory_id is not None:
            self._pending.pop(memory_id, None)
        if agent is not None:
            self._pending = {k: v for k, v in self._pending.items() if v != agent}

    def flush(self) -> Commit | None:
        """Write buffered access counts in one commit (None when there was nothing)."""
        if not self._pending:
            return None
        ids, counts, lasts = [], [], []
        for mid, agent in self._pending.items():
            view = self.views.loaded(agent)
            if view is None or mid not in view.label_of:
                continue
            label = view.label_of[mid]
            ids.append(mid)
            counts.append(int(view.access.data[label]))
            lasts.append(from_micros(int(view.last_access.data[label])))
        self._pending.clear()
        if not ids:
            return None
        return self.store.update_columns(
            pa.table(
                {
                    "id": ids,
                    "access_count": pa.array(counts, pa.int64()),
                    "last_accessed_at": pa.array(lasts, pa.timestamp("us", "UTC")),
                }
            )
        )
