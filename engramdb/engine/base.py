"""State and plumbing shared by the engine's parts: views, embedding, lookups, flushing."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from engramdb._types import FloatMatrix
from engramdb.config import Settings
from engramdb.embeddings import Embedder
from engramdb.store.lock import WriterLock
from engramdb.records import (
    Memory,
    MemoryKind,
    check_id,
    check_name,
    utcnow,
)
from engramdb.store.table import (
    MemoryTable,
    arrow_to_memories,
    arrow_vectors,
)
from engramdb.index.view import AgentView, from_micros, normalize_rows, to_micros
from engramdb.errors import (
    NotFoundError,
    ReadOnlyError,
    StoreClosedError,
    ValidationError,
)

SPACES = ("euclidean", "poincare")
_EMBED_BLOCK = 1024
"""Texts embedded between two progress-bar updates in ``add_many``."""


def kind_of(value: object) -> MemoryKind:
    try:
        return MemoryKind(str(value))
    except ValueError:
        raise ValidationError(
            f"kind {value!r} is not a memory kind; use one of "
            f"{', '.join(k.value for k in MemoryKind)}"
        ) from None


def ttl_seconds(ttl: object) -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValidationError(f"ttl {ttl!r} must be a positive number of seconds or a timedelta")
    return float(seconds)


class EngineBase:
    """The engine's state and the internals every part of the API uses."""

    def __init__(
        self,
        root: Path,
        *,
        embedder: Embedder,
        table: MemoryTable,
        space: str,
        index: str,
        read_only: bool,
        settings: Settings,
        lock: WriterLock | None,
    ) -> None:
        self.path = root
        self.embedder = embedder
        self.space = space
        self.index_kind = index
        self.read_only = read_only
        self.settings = settings
        self._table = table
        self._lock = lock
        self._mutex = threading.RLock()
        self._views: dict[str, AgentView] = {}
        self._seen_version = table.version
        self._pending_access: dict[str, str] = {}
        self._closed = False

    # -- internals -----------------------------------------------------------------------

    def _check_open(self, *, write: bool = False) -> None:
        if self._closed:
            raise StoreClosedError(f"engine for {self.path} is closed; open it again")
        if write and self.read_only:
            raise ReadOnlyError(
                f"engine for {self.path} is read-only; open it without read_only=True to write"
            )
        if self.read_only:
            self._table.refresh()
            if self._table.version != self._seen_version:
                self._seen_version = self._table.version
                self._views.clear()

    @property
    def table(self) -> MemoryTable:
        """The LanceDB store of record (for consolidation, snapshots and tools)."""
        return self._table

    def _view(self, agent: str) -> AgentView:
        view = self._views.get(agent)
        if view is None:
            if not self.read_only:
                self._purge_expired(agent)
            rows = self._table.scan_agent(agent)
            view = AgentView.build(
                agent,
                arrow_to_memories(rows),
                arrow_vectors(rows, self.embedder.dim),
                dim=self.embedder.dim,
                index_kind=self.index_kind,
                exact_threshold=self.settings.exact_threshold,
            )
            self._views[agent] = view
        return view

    def _purge_expired(self, agent: str) -> None:
        now = time.time()
        rows = self._table.scan_agent(agent, columns=["id", "expires_at"])
        expires = rows.column("expires_at").to_pylist()
        dead = [
            mid
            for mid, exp in zip(rows.column("id").to_pylist(), expires, strict=True)
            if exp is not None and exp.timestamp() <= now
        ]
        self._table.delete(dead)

    def _embed(self, texts: Sequence[str], *, progress: bool = False) -> FloatMatrix:
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        if not progress or len(texts) <= _EMBED_BLOCK:
            return normalize_rows(self.embedder.embed(texts))
        out = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        with tqdm(total=len(texts), desc="embedding", unit="text") as bar:
            for i in range(0, len(texts), _EMBED_BLOCK):
                block = texts[i : i + _EMBED_BLOCK]
                out[i : i + len(block)] = self.embedder.embed(block)
                bar.update(len(block))
        return normalize_rows(out)

    def _chunk_counts(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []  # nothing to tokenize (and no reason to load a model)
        counter = getattr(self.embedder, "chunk_counts", None)
        return list(counter(texts)) if callable(counter) else [1] * len(texts)

    def _check_vector(self, vector: object) -> FloatMatrix:
        try:
            arr = np.asarray(vector, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            raise ValidationError(f"vector {vector!r:.60} is not a list of numbers") from None
        if arr.shape != (self.embedder.dim,):
            raise ValidationError(
                f"vector of dim {arr.size} does not match the store's {self.embedder.dim} "
                f"(embedder {self.embedder.name}); pass a vector of that size"
            )
        if not np.isfinite(arr).all() or not np.any(arr):
            raise ValidationError("vector has NaN, infinite or all-zero values; pass a real one")
        return arr

    def _find(self, memory_id: str, agent: str | None) -> Memory:
        """The memory with this id (expired ones count as absent)."""
        check_id(memory_id)
        if agent is not None:
            check_name(agent, what="agent")
        for view in [self._views[agent]] if agent in self._views else self._views.values():
            if memory_id in view.records:
                found = view.current(memory_id)
                break
        else:
            rows = self._table.fetch([memory_id])
            memories = arrow_to_memories(rows)
            if not memories or (agent is not None and memories[0].agent != agent):
                where = f" for agent {agent!r}" if agent else ""
                raise NotFoundError(f"no memory with id {memory_id!r}{where}")
            found = memories[0]
        if agent is not None and found.agent != agent:
            raise NotFoundError(f"no memory with id {memory_id!r} for agent {agent!r}")
        if found.is_expired:
            raise NotFoundError(f"memory {memory_id!r} has expired")
        return found

    def _flush_access(self) -> None:
        """Write buffered access counts in one commit."""
        if not self._pending_access:
            return
        ids, counts, lasts = [], [], []
        for mid, agent in self._pending_access.items():
            view = self._views.get(agent)
            if view is None or mid not in view.label_of:
                continue
            label = view.label_of[mid]
            ids.append(mid)
            counts.append(int(view.access.data[label]))
            lasts.append(from_micros(int(view.last_access.data[label])))
        self._pending_access.clear()
        if ids:
            self._table.update_columns(
                pa.table(
                    {
                        "id": ids,
                        "access_count": pa.array(counts, pa.int64()),
                        "last_accessed_at": pa.array(lasts, pa.timestamp("us", "UTC")),
                    }
                )
            )

    def flush(self) -> None:
        """Write buffered access counts now (``close`` does this too)."""
        with self._mutex:
            self._check_open(write=True)
            self._flush_access()

    def compact(self) -> None:
        """Compact the store now: merge fragments, drop old versions past retention."""
        with self._mutex:
            self._check_open(write=True)
            self._flush_access()
            self._table.compact()
            if self.index_kind == "lance":
                self._table.ensure_vector_index()

    def invalidate(self, agent: str | None = None) -> None:
        """Drop the in-memory view of an agent (all agents if None); it reloads on next use.

        For code that changes the store of record in bulk (consolidation, import, rollback).
        """
        with self._mutex:
            if agent is None:
                self._views.clear()
            else:
                self._views.pop(agent, None)

    @property
    def mutex(self) -> threading.RLock:
        """The engine's lock; bulk operations hold it for their whole run."""
        return self._mutex

    def check_writable(self) -> None:
        """Raise unless the engine is open for writing."""
        self._check_open(write=True)

    def _record_access(self, view: AgentView, labels: Sequence[int]) -> None:
        stamp = to_micros(utcnow())
        for label in labels:
            view.access.data[label] += 1
            view.last_access.data[label] = stamp
            self._pending_access[view.ids[label]] = view.agent  # type: ignore[index]
        if len(self._pending_access) >= self.settings.access_flush_every:
            self._flush_access()
