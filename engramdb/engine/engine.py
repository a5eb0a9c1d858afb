"""The memory engine: the Python API every other face of engramdb calls."""

from __future__ import annotations

import builtins
import json
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

from engramdb._types import FloatMatrix
from engramdb.config import Settings, default_store_path
from engramdb.embeddings import CachedEmbedder, Embedder, EmbedderInfo, resolve_embedder
from engramdb.engine.base import SPACES, kind_of, ttl_seconds
from engramdb.index.vector import INDEX_KINDS
from engramdb.store.lock import WriterLock
from engramdb.engine.recall import RecallMixin
from engramdb.records import (
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
from engramdb.store.table import (
    STORE_FORMAT,
    MemoryTable,
    read_meta,
    write_meta,
)
from engramdb.index.view import normalize_rows
from engramdb.errors import (
    EmbedderMismatchError,
    NotFoundError,
    ValidationError,
)

_ADD_FIELDS = frozenset(
    {"text", "kind", "session", "metadata", "importance", "created_at", "ttl", "parent", "vector"}
)


__all__ = ["SPACES", "MemoryEngine"]


class MemoryEngine(RecallMixin):
    """A store of agent memories with similarity recall.

    Open one with :meth:`open`; use it as a context manager or call :meth:`close`.

    Example:
        >>> with MemoryEngine.open("./mem", embedder="hashing") as engine:
        ...     engine.add("The user prefers window seats", agent="travel-bot", kind="semantic")
        ...     hits = engine.recall("seat preference", agent="travel-bot", k=3)
        ...     hits[0].memory.text
        'The user prefers window seats'
    """

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
        kind = kind_of(item.get("kind", default_kind))
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
        ttl = ttl_seconds(item.get("ttl"))
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
            default_kind = kind_of(kind)
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
            kinds = None if kind is None else [kind_of(kind)]
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

    def agents(self) -> builtins.list[str]:
        """Names of the agents that have memories in the store, sorted."""
        with self._mutex:
            self._check_open()
            return self._table.agents()

    # -- extension points ------------------------------------------------------------------
    # Consolidation, snapshots and checkpoints live in modules of their own; these
    # methods are their public face. They import lazily to keep start-up light.

    def consolidate(
        self,
        *,
        agent: str | None = None,
        policy: Any = None,
        dry_run: bool = False,
        progress: bool = False,
    ) -> Any:
        """Compress memories: expire, deduplicate, cluster into gists, forget by policy.

        See :mod:`engramdb.consolidation.run`. Returns a ``ConsolidationReport``.
        """
        from engramdb.consolidation.run import run_consolidation

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
        """Write an agent's whole memory to one verifiable file (see :mod:`engramdb.snapshots.io`)."""
        from engramdb.snapshots.io import export_snapshot

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
        from engramdb.snapshots.io import import_snapshot

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
