"""The memory engine: the Python API every other face of engramdb calls."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pydantic
from tqdm.auto import tqdm

from engramdb._types import FloatMatrix
from engramdb.config import Settings, default_store_path
from engramdb.embeddings import CachedEmbedder, Embedder, EmbedderInfo, resolve_embedder
from engramdb.engine.filters import compile_filter
from engramdb.engine.index import INDEX_KINDS
from engramdb.engine.lock import WriterLock
from engramdb.engine.records import (
    Hit,
    Memory,
    MemoryKind,
    as_utc,
    check_id,
    check_metadata,
    check_name,
    check_text,
    new_id,
    utcnow,
)
from engramdb.engine.store import (
    STORE_FORMAT,
    MemoryTable,
    arrow_to_memories,
    arrow_vectors,
    read_meta,
    write_meta,
)
from engramdb.engine.view import AgentView, from_micros, normalize_rows, to_micros
from engramdb.errors import (
    EmbedderMismatchError,
    NotFoundError,
    ReadOnlyError,
    StoreClosedError,
    ValidationError,
)

__all__ = ["SPACES", "MemoryEngine"]

SPACES = ("euclidean", "poincare")
_ADD_FIELDS = frozenset(
    {"text", "kind", "session", "metadata", "importance", "created_at", "ttl", "parent", "vector"}
)
_MAX_K = 10_000
_EMBED_BLOCK = 1024
"""Texts embedded between two progress-bar updates in ``add_many``."""


def _kind(value: object) -> MemoryKind:
    try:
        return MemoryKind(value)
    except ValueError:
        raise ValidationError(
            f"kind {value!r} is not a memory kind; use one of "
            f"{', '.join(k.value for k in MemoryKind)}"
        ) from None


def _ttl_seconds(ttl: object) -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValidationError(f"ttl {ttl!r} must be a positive number of seconds or a timedelta")
    return float(seconds)


class MemoryEngine:
    """A store of agent memories with similarity recall.

    Open one with :meth:`open`; use it as a context manager or call :meth:`close`.

    Example:
        >>> with MemoryEngine.open("./mem", embedder="hashing") as engine:
        ...     engine.add("The user prefers window seats", agent="travel-bot", kind="semantic")
        ...     hits = engine.recall("seat preference", agent="travel-bot", k=3)
        ...     hits[0].memory.text
        'The user prefers window seats'
    """

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

    # -- opening and closing -----------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        embedder: str | Path | Embedder = "minilm",
        space: str = "euclidean",
        index: str = "auto",
        read_only: bool = False,
        settings: Settings | None = None,
    ) -> MemoryEngine:
        """Open (or create) the store at ``path``.

        Args:
            path: Store directory; None uses ``$ENGRAMDB_HOME/default`` or the
                platform's user data directory.
            embedder: ``"minilm"`` (bundled all-MiniLM-L6-v2, offline),
                ``"hashing"``, a sentence-transformers model name or path, or an
                :class:`~engramdb.embeddings.Embedder`. A store remembers the
                embedder that built it and refuses another.
            space: ``"euclidean"`` (cosine) or ``"poincare"``; fixed at creation.
            index: ``"auto"`` (exact below ``settings.exact_threshold`` memories per
                agent, HNSW above), ``"flat"``, ``"hnsw"``, ``"ivf"``, or ``"lance"``
                (LanceDB's own vector search, for stores larger than memory).
            read_only: Open without the writer lock; sees what writers commit.
            settings: Engine settings; default: from ``ENGRAMDB_*`` variables.

        Raises:
            StoreLockedError: another process has the store open for writing.
            EmbedderMismatchError: the store was built by another embedder.
        """
        settings = settings or Settings()
        if space not in SPACES:
            raise ValidationError(f"space {space!r} is not known; use one of {SPACES}")
        if index not in INDEX_KINDS:
            raise ValidationError(f"index {index!r} is not known; use one of {INDEX_KINDS}")
        root = Path(path) if path is not None else default_store_path(settings)
        if root.exists() and not root.is_dir():
            raise ValidationError(f"store path {str(root)!r} is a file; give a directory")
        if read_only and not root.exists():
            raise NotFoundError(f"no store at {root}; open it once without read_only to create")
        root.mkdir(parents=True, exist_ok=True)
        lock = None if read_only else WriterLock(root)
        try:
            emb = resolve_embedder(embedder, threads=max(settings.threads, 2))
            info = EmbedderInfo.of(emb)
            meta = read_meta(root)
            if meta is None:
                if read_only:
                    raise NotFoundError(f"no store at {root}; open it once to create it")
                meta = {
                    "format": STORE_FORMAT,
                    "embedder": {"name": info[0], "dim": info[1], "normalized": info[2]},
                    "space": space,
                    "created_at": utcnow().isoformat(),
                }
                write_meta(root, meta)
            stored = EmbedderInfo(**meta["embedder"])
            if stored != info:
                raise EmbedderMismatchError(
                    f"store {root} was built with embedder {stored}, not {info}; open it "
                    f"with embedder={stored[0]!r}, or export a snapshot and import it with "
                    "reembed=True into a store built with the new embedder"
                )
            if meta.get("space", "euclidean") != space:
                raise ValidationError(
                    f"store {root} was built in the {meta.get('space')!r} space, not {space!r}; "
                    f"open it with space={meta.get('space')!r}"
                )
            table = MemoryTable(root, info[1], compact_every=settings.compact_every)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        faiss.omp_set_num_threads(settings.threads)
        cached = CachedEmbedder(emb, capacity=settings.embed_cache_size)
        return cls(
            root,
            embedder=cached,
            table=table,
            space=space,
            index=index,
            read_only=read_only,
            settings=settings,
            lock=lock,
        )

    def close(self) -> None:
        """Flush buffered access counts, release the writer lock. Safe to call twice."""
        with self._mutex:
            if self._closed:
                return
            try:
                if not self.read_only:
                    self._flush_access()
            finally:
                self._closed = True
                self._views.clear()
                if self._lock is not None:
                    self._lock.release()

    def __enter__(self) -> MemoryEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self.read_only else "open")
        return f"MemoryEngine({str(self.path)!r}, embedder={self.embedder.name!r}, {state})"

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

    # -- writing -------------------------------------------------------------------------

    def _prepare(
        self,
        item: Mapping[str, Any],
        *,
        agent: str,
        default_kind: object,
        default_session: str | None,
        now: datetime,
        existing_ids: set[str],
    ) -> tuple[Memory, FloatMatrix | None]:
        unknown = set(item) - _ADD_FIELDS
        if unknown:
            raise ValidationError(
                f"unknown field(s) {sorted(unknown)} in memory; allowed: {sorted(_ADD_FIELDS)}"
            )
        text = check_text(item.get("text"), max_bytes=self.settings.max_text_bytes)
        kind = _kind(item.get("kind", default_kind))
        session = item.get("session", default_session)
        if session is not None:
            check_name(session, what="session")
        metadata = check_metadata(item.get("metadata"), max_bytes=self.settings.max_metadata_bytes)
        importance = item.get("importance")
        if importance is None:
            importance = 0.5
        if isinstance(importance, bool) or not isinstance(importance, int | float):
            raise ValidationError(f"importance {importance!r} must be a number from 0 to 1")
        if not 0.0 <= importance <= 1.0:
            raise ValidationError(f"importance {importance!r} is outside 0 to 1")
        created = item.get("created_at")
        created = as_utc(created, field="created_at") if created is not None else now
        ttl = _ttl_seconds(item.get("ttl"))
        if ttl is None and kind is MemoryKind.WORKING:
            ttl = self.settings.working_ttl_seconds
        expires = now + timedelta(seconds=ttl) if ttl is not None else None
        parent = item.get("parent")
        if parent is not None:
            parent = parent.id if isinstance(parent, Memory) else parent
            check_id(parent)
            if parent not in existing_ids:
                self._find(parent, agent)
        vector = item.get("vector")
        vec = self._check_vector(vector) if vector is not None else None
        try:
            memory = Memory(
                id=new_id(created if item.get("created_at") is not None else None),
                agent=agent,
                kind=kind,
                text=text,
                session=session,
                metadata=metadata,
                importance=float(importance),
                created_at=created,
                updated_at=now,
                expires_at=expires,
                parent_id=parent,
            )
        except pydantic.ValidationError as exc:
            raise ValidationError(str(exc)) from None
        return memory, vec

    def add(
        self,
        text: str,
        *,
        agent: str,
        kind: MemoryKind | str = MemoryKind.EPISODIC,
        session: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        created_at: datetime | None = None,
        ttl: float | timedelta | None = None,
        parent: str | Memory | None = None,
        vector: Sequence[float] | np.ndarray | None = None,
    ) -> Memory:
        """Store one memory and return it.

        Args:
            text: What to remember (not empty; at most ``max_text_bytes``).
            agent: Whose memory it is.
            kind: episodic, semantic, procedural or working.
            session: A conversation or run the memory belongs to.
            metadata: JSON values, filterable in recall with ``where``.
            importance: 0 to 1 (default 0.5); 1.0 pins it against forgetting.
            created_at: When it happened (default: now).
            ttl: Seconds (or a timedelta) until it expires; working memory
                defaults to ``settings.working_ttl_seconds``.
            parent: Id of a more general memory this one sits under.
            vector: Bring your own embedding instead of embedding ``text``.
        """
        item: dict[str, Any] = {
            "text": text,
            "kind": kind,
            "session": session,
            "metadata": metadata,
            "importance": importance,
            "created_at": created_at,
            "ttl": ttl,
            "parent": parent,
            "vector": vector,
        }
        return self.add_many([item], agent=agent)[0]

    def add_many(
        self,
        items: Iterable[str | Mapping[str, Any]],
        *,
        agent: str,
        kind: MemoryKind | str = MemoryKind.EPISODIC,
        session: str | None = None,
        progress: bool = False,
    ) -> list[Memory]:
        """Store many memories in one write; all are validated before any is stored.

        Args:
            items: Texts, or dicts with the fields of :meth:`add`.
            agent: Whose memories they are.
            kind: Kind for items that do not say.
            session: Session for items that do not say.
            progress: Show a progress bar while embedding.
        """
        with self._mutex:
            self._check_open(write=True)
            check_name(agent, what="agent")
            default_kind = _kind(kind)
            if session is not None:
                check_name(session, what="session")
            now = utcnow()
            prepared: list[tuple[Memory, FloatMatrix | None]] = []
            ids: set[str] = set()
            for i, raw in enumerate(items):
                item = {"text": raw} if isinstance(raw, str) else raw
                if not isinstance(item, Mapping):
                    raise ValidationError(
                        f"item {i} is {type(raw).__name__} {raw!r:.60}; pass a str or a dict"
                    )
                try:
                    memory, vec = self._prepare(
                        item,
                        agent=agent,
                        default_kind=default_kind,
                        default_session=session,
                        now=now,
                        existing_ids=ids,
                    )
                except ValidationError as exc:
                    raise ValidationError(f"item {i}: {exc}") from None
                prepared.append((memory, vec))
                ids.add(memory.id)
            if not prepared:
                return []
            todo = [i for i, (_, vec) in enumerate(prepared) if vec is None]
            texts = [prepared[i][0].text for i in todo]
            vectors = np.empty((len(prepared), self.embedder.dim), dtype=np.float32)
            embedded = self._embed(texts, progress=progress)
            chunks = self._chunk_counts(texts)
            memories = [m for m, _ in prepared]
            for j, i in enumerate(todo):
                vectors[i] = embedded[j]
                if chunks[j] > 1:
                    memories[i] = memories[i].model_copy(update={"chunks": chunks[j]})
            for i, (_, vec) in enumerate(prepared):
                if vec is not None:
                    vectors[i] = vec
            vectors = normalize_rows(vectors)
            self._table.append(memories, vectors)
            view = self._views.get(agent)
            if view is not None:
                view.add(memories, vectors)
            if any(m.kind is MemoryKind.WORKING for m in memories):
                self._evict_working(agent)
            return memories

    def _evict_working(self, agent: str) -> None:
        """Keep at most ``working_capacity`` working memories per (agent, session)."""
        view = self._view(agent)
        by_session: dict[str | None, list[Memory]] = {}
        for m in view.records.values():
            if m.kind is MemoryKind.WORKING:
                by_session.setdefault(m.session, []).append(m)
        evict: list[str] = []
        cap = self.settings.working_capacity
        for group in by_session.values():
            if len(group) > cap:
                group.sort(key=lambda m: (m.created_at, m.id))
                evict.extend(m.id for m in group[: len(group) - cap])
        if evict:
            self._table.delete(evict)
            view.remove(evict)

    def update(
        self,
        memory_id: str,
        *,
        agent: str | None = None,
        text: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
    ) -> Memory:
        """Change a memory's text (re-embedded), metadata (replaced) or importance."""
        with self._mutex:
            self._check_open(write=True)
            old = self._find(memory_id, agent)
            changes: dict[str, Any] = {"updated_at": max(utcnow(), old.updated_at)}
            if text is not None:
                changes["text"] = check_text(text, max_bytes=self.settings.max_text_bytes)
            if metadata is not None:
                changes["metadata"] = check_metadata(
                    metadata, max_bytes=self.settings.max_metadata_bytes
                )
            if importance is not None:
                if isinstance(importance, bool) or not isinstance(importance, int | float):
                    raise ValidationError(f"importance {importance!r} must be a number 0 to 1")
                if not 0.0 <= importance <= 1.0:
                    raise ValidationError(f"importance {importance!r} is outside 0 to 1")
                changes["importance"] = float(importance)
            view = self._views.get(old.agent)
            if view is not None and old.id in view.records:
                old = view.current(old.id)
            if text is not None:
                changes["chunks"] = self._chunk_counts([text])[0]
                new = old.model_copy(update=changes)
                vector = self._embed([new.text])
                self._table.upsert([new], vector)
                if view is not None:
                    view.add([new], vector)
            else:
                new = old.model_copy(update=changes)
                self.replace_records([new])
            return new

    def replace_records(self, memories: Sequence[Memory]) -> None:
        """Store new values of existing memories whose text (so vector) is unchanged.

        One commit; for engine extensions (consolidation, snapshots) as much as users.
        """
        if not memories:
            return
        data = pa.table(
            {
                "id": [m.id for m in memories],
                "metadata": [json.dumps(m.metadata, sort_keys=True) for m in memories],
                "importance": pa.array([m.importance for m in memories], pa.float64()),
                "updated_at": pa.array([m.updated_at for m in memories], pa.timestamp("us", "UTC")),
                "last_accessed_at": pa.array(
                    [m.last_accessed_at for m in memories], pa.timestamp("us", "UTC")
                ),
                "access_count": pa.array([m.access_count for m in memories], pa.int64()),
                "expires_at": pa.array([m.expires_at for m in memories], pa.timestamp("us", "UTC")),
                "parent_id": pa.array([m.parent_id for m in memories], pa.string()),
                "source_ids": pa.array(
                    [list(m.source_ids) for m in memories], pa.list_(pa.string())
                ),
                "status": [m.status.value for m in memories],
            }
        )
        self._table.update_columns(data)
        for m in memories:
            view = self._views.get(m.agent)
            if view is not None and m.id in view.records:
                view.set_record(m)

    def delete(self, memory_id: str, *, agent: str | None = None) -> None:
        """Delete a memory for good (archive it with consolidation to keep it findable)."""
        with self._mutex:
            self._check_open(write=True)
            found = self._find(memory_id, agent)
            self._table.delete([found.id])
            self._pending_access.pop(found.id, None)
            view = self._views.get(found.agent)
            if view is not None:
                view.remove([found.id])

    def delete_agent(self, agent: str) -> int:
        """Delete every memory of an agent in one commit; returns how many were deleted."""
        with self._mutex:
            self._check_open(write=True)
            check_name(agent, what="agent")
            n = self._table.count(f"agent = '{agent}'")
            if n:
                self._table.replace_agent(agent, [], np.zeros((0, self.embedder.dim), np.float32))
            self._views.pop(agent, None)
            self._pending_access = {k: v for k, v in self._pending_access.items() if v != agent}
            return n

    # -- reading -------------------------------------------------------------------------

    def get(self, memory_id: str, *, agent: str | None = None) -> Memory:
        """The memory with this id, whatever its status.

        Raises:
            NotFoundError: no such memory (or it belongs to another agent, or expired).
        """
        with self._mutex:
            self._check_open()
            return self._find(memory_id, agent)

    def list(
        self,
        *,
        agent: str,
        kind: MemoryKind | str | None = None,
        session: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
        include_archived: bool = False,
    ) -> list[Memory]:
        """An agent's memories, oldest first (by ``created_at``, then id)."""
        with self._mutex:
            self._check_open()
            check_name(agent, what="agent")
            if session is not None:
                check_name(session, what="session")
            if limit is not None and (not isinstance(limit, int) or limit < 0):
                raise ValidationError(f"limit {limit!r} must be a non-negative int or None")
            if not isinstance(offset, int) or offset < 0:
                raise ValidationError(f"offset {offset!r} must be a non-negative int")
            kinds = None if kind is None else [_kind(kind)]
            view = self._view(agent)
            mask = view.mask(
                now=time.time(), kinds=kinds, session=session, include_archived=include_archived
            )
            found = [view.ids[i] for i in np.flatnonzero(mask)]
            found.sort(key=lambda mid: (view.records[mid].created_at, mid))  # type: ignore[index]
            stop = None if limit is None else offset + limit
            return [view.current(mid) for mid in found[offset:stop] if mid is not None]

    def count(self, *, agent: str | None = None, include_archived: bool = True) -> int:
        """How many (unexpired) memories an agent, or the whole store, holds."""
        with self._mutex:
            self._check_open()
            agents = [check_name(agent, what="agent")] if agent is not None else self.agents()
            total = 0
            for name in agents:
                view = self._view(name)
                mask = view.mask(now=time.time(), include_archived=include_archived)
                total += int(mask.sum())
            return total

    def agents(self) -> list[str]:
        """Names of the agents that have memories in the store, sorted."""
        with self._mutex:
            self._check_open()
            return self._table.agents()

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
            where: Metadata filter (see :mod:`engramdb.engine.filters`).
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
                parts) or, in the Poincaré space, ``"distance"``: exact k-NN by
                Poincaré distance between points; ``score`` is then minus the distance.
        """
        with self._mutex:
            self._check_open()
            check_name(agent, what="agent")
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_K:
                raise ValidationError(f"k {k!r} must be an int from 1 to {_MAX_K}")
            if session is not None:
                check_name(session, what="session")
            kind_list = None if kinds is None else [_kind(x) for x in kinds]
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
            return self._embed([query])[0]
        return normalize_rows(self._check_vector(query)[None, :])[0]

    def _lance_search(
        self, view: AgentView, qvec: FloatMatrix, pool: int, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = [view.ids[i] for i in np.flatnonzero(mask)]
        rows = (
            self._table.table.search(qvec, vector_column_name="vector")
            .metric("cosine")
            .where(f"agent = '{view.agent}'", prefilter=True)
            .select(["id"])
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
        w = self.settings.weights
        half_life = w.half_life_days * 86400.0
        age = np.maximum(ref - view.created.data[labels], 0.0)
        recency = np.power(0.5, age / half_life)
        importance = view.importance.data[labels].astype(np.float64)
        access = 1.0 - np.exp(-view.access.data[labels] / w.access_scale)
        score = (
            w.similarity * sims.astype(np.float64)
            + w.recency * recency
            + w.importance * importance
            + w.access * access
        )
        ids = [view.ids[i] for i in labels]
        order = sorted(range(len(ids)), key=lambda i: (-round(float(score[i]), 9), ids[i]))[:k]
        depths = view.depths()[labels] if self.space == "poincare" else None
        hits = [
            Hit(
                memory=view.current(ids[i]),  # type: ignore[arg-type]
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

    def _record_access(self, view: AgentView, labels: Sequence[int]) -> None:
        stamp = to_micros(utcnow())
        for label in labels:
            view.access.data[label] += 1
            view.last_access.data[label] = stamp
            self._pending_access[view.ids[label]] = view.agent  # type: ignore[index]
        if len(self._pending_access) >= self.settings.access_flush_every:
            self._flush_access()

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
        from engramdb.engine.hierarchy import norm_of, points
        from engramdb.hyperbolic.index import PoincareFlatIndex

        if view.ball_index is None:
            labels = np.flatnonzero(view.alive.view).astype(np.int64)
            index = PoincareFlatIndex(self.embedder.dim)
            index.add(labels, points(view.vectors(labels), view.depths()[labels]))
            view.ball_index = index
        # A query has no place in the hierarchy: put it where a typical leaf sits.
        query = points(qvec[None, :], norm_of(np.array([1.5])))
        found = view.ball_index.search(query, k, allowed=mask)  # type: ignore[attr-defined]
        labels = [int(x) for x in found.ids[0] if x >= 0]
        dists = found.distances[0][: len(labels)]
        vecs = view.vectors(np.asarray(labels, dtype=np.int64)) if labels else qvec[None, :0]
        depths = view.depths()
        hits = [
            Hit(
                memory=view.current(view.ids[label]),  # type: ignore[arg-type]
                score=-float(dist),
                similarity=float(vec @ qvec),
                importance=float(view.importance.data[label]),
                depth=float(depths[label]),
            )
            for label, dist, vec in zip(labels, dists, vecs, strict=True)
        ]
        if record:
            self._record_access(view, labels)
        return hits

    def ancestors(self, memory_id: str, *, agent: str | None = None) -> list[Memory]:
        """The memory's parent, its parent's parent, and so on up to a root."""
        with self._mutex:
            self._check_open()
            found = self._find(memory_id, agent)
            view = self._view(found.agent)
            from engramdb.engine.hierarchy import ancestors

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
        (see :func:`engramdb.engine.hierarchy.refine_depths`) and uses the learned
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
            from engramdb.engine.hierarchy import refine_depths

            view = self._view(check_name(agent, what="agent"))
            view.refined = refine_depths(view.records, dim=dim, epochs=epochs, seed=seed)
            view._changed()
            return dict(view.refined)

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

    # -- extension points ------------------------------------------------------------------
    # Consolidation, snapshots and checkpoints live in modules of their own; these
    # methods are their public face. They import lazily to keep start-up light.

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

    def consolidate(
        self,
        *,
        agent: str | None = None,
        policy: Any = None,
        dry_run: bool = False,
        progress: bool = False,
    ) -> Any:
        """Compress memories: expire, deduplicate, cluster into gists, forget by policy.

        See :mod:`engramdb.engine.consolidate`. Returns a ``ConsolidationReport``.
        """
        from engramdb.engine.consolidate import run_consolidation

        return run_consolidation(
            self, agent=agent, policy=policy, dry_run=dry_run, progress=progress
        )

    def export_snapshot(
        self,
        path: str | Path,
        *,
        agent: str,
        key: bytes | str | None = None,
        vectors: str = "float32",
        include_archived: bool = True,
    ) -> Any:
        """Write an agent's whole memory to one verifiable file (see ``engine/snapshots.py``)."""
        from engramdb.engine.snapshots import export_snapshot

        return export_snapshot(
            self, path, agent=agent, key=key, vectors=vectors, include_archived=include_archived
        )

    def import_snapshot(
        self,
        path: str | Path,
        *,
        agent: str | None = None,
        mode: str = "fail",
        key: bytes | str | None = None,
        reembed: bool = False,
    ) -> Any:
        """Restore an agent (or a copy under another name) from a snapshot file."""
        from engramdb.engine.snapshots import import_snapshot

        return import_snapshot(self, path, agent=agent, mode=mode, key=key, reembed=reembed)

    def checkpoint(self, *, agent: str, name: str) -> Any:
        """Name the current state of an agent's memory, to roll back to later."""
        from engramdb.engine.checkpoints import create_checkpoint

        return create_checkpoint(self, agent=agent, name=name)

    def rollback(self, *, agent: str, name: str) -> Any:
        """Restore an agent's memory to a named checkpoint (other agents untouched)."""
        from engramdb.engine.checkpoints import rollback_checkpoint

        return rollback_checkpoint(self, agent=agent, name=name)

    def checkpoints(self, *, agent: str) -> Any:
        """The agent's checkpoints, oldest first."""
        from engramdb.engine.checkpoints import list_checkpoints

        return list_checkpoints(self, agent=agent)
