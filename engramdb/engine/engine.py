"""The memory engine: the Python API every other face of engramdb calls.

:class:`MemoryEngine` is a thin, locked facade composed of parts that each do
one thing: the store of record (:class:`~engramdb.store.table.MemoryTable`),
the registry of agent views (:class:`~engramdb.engine.views.ViewRegistry`),
buffered access counts (:class:`~engramdb.engine.access.AccessLog`), the
embedder's front (:class:`~engramdb.engine.vectors.Vectorizer`) and recall
(:class:`~engramdb.engine.recall.Recall`). Every public method takes the
engine's lock and checks that the engine is open (and writable, for writes)
before it touches any part. Consolidation, snapshots and checkpoints run
against the engine through the :class:`~engramdb.ports.EngineCore` port.
"""

from __future__ import annotations

import builtins
import logging
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

from engramdb.config import DEFAULT_REMOTE_FOLLOW_SECONDS, Settings, default_store_path
from engramdb.consolidation.policy import ConsolidationPolicy
from engramdb.consolidation.report import ConsolidationReport, ProgressCallback
from engramdb.consolidation.run import run_consolidation
from engramdb.embeddings import CachedEmbedder, Embedder, EmbedderInfo, resolve_embedder
from engramdb.engine.access import FOLD_ON_CLOSE, AccessLog
from engramdb.engine.brief import DEFAULT_BUDGET_TOKENS, Brief, build_brief
from engramdb.engine.checkpoints import (
    Checkpoint,
    RollbackReport,
    create_checkpoint,
    list_checkpoints,
    rollback_checkpoint,
)
from engramdb.engine.recall import Recall, RecallQuery
from engramdb.engine.vectors import Vectorizer
from engramdb.engine.views import RegistryStats, ViewRegistry
from engramdb.engine.writer import Writer
from engramdb.engine.writes import kind_of
from engramdb.errors import (
    EngramError,
    NotFoundError,
    ReadOnlyError,
    StoreClosedError,
    ValidationError,
)
from engramdb.index.hierarchy import ancestors
from engramdb.index.vector import INDEX_KINDS
from engramdb.records import (
    Hit,
    Memory,
    MemoryKind,
    check_name,
    check_where,
)
from engramdb.snapshots.info import ImportReport, SnapshotInfo
from engramdb.store.guard import check_store_path, store_errors
from engramdb.store.lease import WriterLease, lease_holder
from engramdb.store.location import StoreLocation
from engramdb.store.lock import WriterLock
from engramdb.store.objects import object_files
from engramdb.store.opening import open_table
from engramdb.store.table import MemoryTable

__all__ = ["SPACES", "MemoryEngine"]

SPACES = ("euclidean", "poincare")

log = logging.getLogger(__name__)

_TS = pa.timestamp("us", "UTC")


class MemoryEngine:
    """A store of agent memories with similarity recall.

    Open one with :meth:`open`; use it as a context manager or call :meth:`close`.

    Example:
        >>> with MemoryEngine.open("./mem", embedder="hashing") as engine:
        ...     _ = engine.add("The user prefers window seats", agent="travel-bot", kind="semantic")
        ...     hits = engine.recall("seat preference", agent="travel-bot", k=3)
        ...     hits[0].memory.text
        'The user prefers window seats'
    """

    def __init__(
        self,
        root: Path | StoreLocation,
        *,
        embedder: Embedder,
        store: MemoryTable,
        space: str,
        index: str,
        read_only: bool,
        settings: Settings,
        lock: WriterLock | WriterLease | None,
    ) -> None:
        """Compose an engine from opened parts; users call :meth:`open` instead."""
        self._location = StoreLocation.of(root)
        self._path: Path | str = (
            self._location.path if self._location.is_local else self._location.uri
        )
        self._embedder = embedder
        self._space = space
        self._index_kind = index
        self._read_only = read_only
        self._settings = settings
        self._store = store
        self._lock = lock
        self._mutex = threading.RLock()
        self._closed = False
        interval = settings.follow_interval
        if interval is None:
            seconds = 0.0 if self._location.is_local else DEFAULT_REMOTE_FOLLOW_SECONDS
        else:
            seconds = interval.total_seconds()
        self._follow_every = seconds
        self._followed = -float("inf")
        self._vectors = Vectorizer(embedder)
        self._views = ViewRegistry(
            store,
            dim=embedder.dim,
            index_kind=index,
            settings=settings,
            read_only=read_only,
            embedder=embedder.name,
        )
        self._access = AccessLog(
            store,
            self._views,
            flush_every=settings.access_flush_every,
            min_interval=settings.access_flush_interval,
            idle=settings.access_flush_idle,
            max_wait=settings.access_flush_max_wait,
            read_only=read_only,
        )
        if not read_only:
            # A view dropped for the memory budget takes its unwritten access counts along.
            self._views.before_evict = lambda _view: self._access.flush()
        self._writer = Writer(store, self._views, self._vectors, self._access, settings=settings)
        self._recall = Recall(
            self._views,
            self._vectors,
            self._access,
            settings=settings,
            space=space,
            index_kind=index,
            read_only=read_only,
        )

    # -- opening and closing -----------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path | StoreLocation | None = None,
        *,
        embedder: str | Path | Embedder = "minilm",
        storage_options: Mapping[str, str] | None = None,
        space: str = "euclidean",
        index: str = "auto",
        read_only: bool = False,
        settings: Settings | None = None,
    ) -> MemoryEngine:
        """Open (or create) the store at ``path``.

        Args:
            path: Store directory, or a URI on object storage
                (``s3://bucket/prefix``; other schemes LanceDB reads are passed
                through untested); None uses ``$ENGRAMDB_HOME/default`` or the
                platform's user data directory.
            embedder: ``"minilm"`` (bundled all-MiniLM-L6-v2, offline),
                ``"hashing"``, a sentence-transformers model name or path, or an
                :class:`~engramdb.embeddings.Embedder`. A store remembers the
                embedder that built it and refuses another.
            storage_options: LanceDB's ``storage_options`` for a store on object
                storage (``aws_endpoint``, ``aws_region``, ``aws_access_key_id``,
                ``aws_secret_access_key``, ``allow_http="true"`` for an http
                endpoint, ...), over ``settings.storage_options``. Never printed.
            space: ``"euclidean"`` (cosine) or ``"poincare"``; fixed at creation.
            index: ``"auto"`` (exact below ``settings.exact_threshold`` memories per
                agent, HNSW above), ``"flat"``, ``"hnsw"``, ``"ivf"``, or ``"lance"``
                (LanceDB's own vector search, for stores larger than memory).
            read_only: Open without the writer lock (the lease, on object storage);
                sees what the writer commits (within ``settings.follow_interval``).
            settings: Engine settings; default: from ``ENGRAMDB_*`` variables.

        Raises:
            StoreLockedError: another process has the store open for writing (on
                object storage: holds its unexpired lease, named in the message).
            EmbedderMismatchError: the store was built by another embedder.
        """
        settings = settings or Settings()
        if space not in SPACES:
            raise ValidationError(f"space {space!r} is not known; use one of {SPACES}")
        if index not in INDEX_KINDS:
            raise ValidationError(f"index {index!r} is not known; use one of {INDEX_KINDS}")
        options = {k: v.get_secret_value() for k, v in settings.storage_options.items()}
        where = StoreLocation.of(
            path if path is not None else default_store_path(settings),
            {**options, **(storage_options or {})},
        )
        if where.is_local:
            root = check_store_path(where.path)
            if read_only and not root.exists():
                raise NotFoundError(f"no store at {root}; open it once without read_only to create")
        # Everything that can fail on the caller's arguments runs before the first
        # file is created: a bad embedder leaves no empty store behind.
        emb = resolve_embedder(embedder, threads=max(settings.threads, 2))
        info = EmbedderInfo.of(emb)  # loads a lazy model: fails here, not after mkdir
        lock: WriterLock | WriterLease | None = None
        if not read_only and where.is_local:
            with store_errors(where, "create the store directory and its writer lock"):
                where.path.mkdir(parents=True, exist_ok=True)
                lock = WriterLock(where.path)
        elif not read_only:
            with store_errors(where, "take the writer lease"):
                lock = WriterLease(where, ttl=settings.lease_ttl, owner=settings.writer_name)
        try:
            store = open_table(
                where,
                info,
                space=space,
                read_only=read_only,
                compact_every=settings.compact_every,
                retention=settings.version_retention,
            )
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if isinstance(lock, WriterLease):
            store.fence = lock.check
        faiss.omp_set_num_threads(settings.threads)
        return cls(
            where,
            embedder=CachedEmbedder(emb, capacity=settings.embed_cache_size),
            store=store,
            space=space,
            index=index,
            read_only=read_only,
            settings=settings,
            lock=lock,
        )

    def close(self) -> None:
        """Flush buffered access counts, release the writer lock. Safe to call twice.

        Waits for the background access-count writer to finish the write it is
        in, then writes what is left; folds the access log into the table when it
        holds ``FOLD_ON_CLOSE`` rows or more. The engine is closed (and the lock
        released) even when the flush fails; the flush's error is raised after that.
        """
        with self._mutex:
            if self._closed:
                return
            try:
                self._access.close()
                if not self._read_only and self._store.access.rows >= FOLD_ON_CLOSE:
                    self._store.fold_access()
            finally:
                self._closed = True
                self._views.invalidate()
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
        if exc is None:
            self.close()
            return
        # An error is already on its way out: closing must not replace it.
        try:
            self.close()
        except EngramError as close_error:
            exc.add_note(f"closing the engine also failed: {close_error}")
            log.warning("closing %s after an error failed: %s", self._path, close_error)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self._read_only else "open")
        return f"MemoryEngine({str(self._path)!r}, embedder={self._embedder.name!r}, {state})"

    # -- what the engine is (the EngineCore port) -----------------------------------------

    @property
    def path(self) -> Path | str:
        """The store's directory, or its URI on object storage (never with credentials)."""
        return self._path

    @property
    def location(self) -> StoreLocation:
        """Where the store lives (its ``repr`` masks the storage options' secrets)."""
        return self._location

    @property
    def embedder(self) -> Embedder:
        """The embedder the store was built with."""
        return self._embedder

    @property
    def settings(self) -> Settings:
        """The engine's settings."""
        return self._settings

    @property
    def space(self) -> str:
        """``"euclidean"`` or ``"poincare"``."""
        return self._space

    @property
    def index_kind(self) -> str:
        """The vector index the agent views use (``"auto"``, ``"flat"``, ...)."""
        return self._index_kind

    @property
    def read_only(self) -> bool:
        """Whether the engine was opened with ``read_only=True``."""
        return self._read_only

    @property
    def store(self) -> MemoryTable:
        """The LanceDB store of record (for consolidation, snapshots and tools)."""
        return self._store

    @property
    def table(self) -> MemoryTable:
        """The store of record; the same object as :attr:`store`."""
        return self._store

    @property
    def mutex(self) -> threading.RLock:
        """The engine's lock; bulk operations hold it for their whole run."""
        return self._mutex

    def check_open(self) -> None:
        """Raise unless the engine is open; a reader moves to the writer's newest commit."""
        with self._mutex:
            self._check_open()

    def check_writable(self) -> None:
        """Raise unless the engine is open for writing."""
        with self._mutex:
            self._check_open(write=True)

    def _check_open(self, *, write: bool = False) -> None:
        if self._closed:
            raise StoreClosedError(f"engine for {self._path} is closed; open it again")
        if write and self._read_only:
            raise ReadOnlyError(
                f"engine for {self._path} is read-only; {self._writer_hint()}open it without "
                "read_only=True to write"
            )
        if self._read_only:
            now = time.monotonic()
            if now - self._followed >= self._follow_every:
                self._views.follow()
                self._followed = now

    def _writer_hint(self) -> str:
        """Who writes to a remote store now (from its lease), for a refused write."""
        if self._location.is_local:
            return ""
        try:
            holder = lease_holder(
                object_files(self._location), default_ttl=self._settings.lease_ttl
            )
        except EngramError:
            return ""
        if holder is None or holder.expired:
            return "no writer holds the store's lease now; "
        return f"send writes to the store's writer, {holder.owner}, or "

    def flush(self) -> None:
        """Write buffered access counts now (``close`` does this too)."""
        with self._mutex:
            self._check_open(write=True)
            self._access.flush()

    def compact(self) -> None:
        """Compact the store now: fold the access log into the table, merge fragments,
        drop old versions past retention."""
        with self._mutex:
            self._check_open(write=True)
            self._access.flush()
            self._store.fold_access()
            self._store.compact()
            if self._index_kind == "lance":
                self._store.ensure_vector_index()

    def invalidate(self, agent: str | None = None) -> None:
        """Drop the in-memory view of an agent (all agents if None); it reloads on next use.

        For code that changes the store of record in bulk (consolidation, import, rollback).
        """
        with self._mutex:
            self._views.invalidate(agent)

    # -- writing -------------------------------------------------------------------------

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
            created_at: When it happened (default: now); from 1970 to at most
                ``settings.max_clock_skew`` (5 minutes) past now.
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
    ) -> builtins.list[Memory]:
        """Store many memories in one write; all are validated before any is stored.

        Args:
            items: Texts, or dicts with the fields of :meth:`add`.
            agent: Whose memories they are.
            kind: Kind for items that do not say.
            session: Session for items that do not say.
            progress: Show a progress bar while embedding.
        """
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
            raise ValidationError(
                f"items {items!r:.60} must be a list of texts or dicts; for one memory "
                "call add(), or pass [item]"
            )
        with self._mutex:
            self._check_open(write=True)
            return self._writer.add_many(
                items, agent=agent, kind=kind, session=session, progress=progress
            )

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
            return self._writer.update(
                memory_id, agent=agent, text=text, metadata=metadata, importance=importance
            )

    def replace_records(self, memories: Sequence[Memory]) -> None:
        """Store new values of existing memories whose text (so vector) is unchanged.

        One commit; for engine extensions (consolidation, snapshots) as much as users.
        """
        with self._mutex:
            self._check_open(write=True)
            self._writer.replace_records(memories)

    def delete(self, memory_id: str, *, agent: str | None = None) -> None:
        """Delete a memory for good (archive it with consolidation to keep it findable)."""
        with self._mutex:
            self._check_open(write=True)
            self._writer.delete(memory_id, agent=agent)

    def delete_agent(self, agent: str) -> int:
        """Delete every memory of an agent in one commit; returns how many were deleted."""
        with self._mutex:
            self._check_open(write=True)
            return self._writer.delete_agent(agent)

    # -- reading -------------------------------------------------------------------------

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
        mode: str = "hybrid",
        group_by: str | None = None,
    ) -> builtins.list[Hit]:
        """The memories most relevant to ``query``, best first.

        Filters apply before top-k: when k memories match, k come back. Each hit's
        ``score`` blends relevance with recency, importance and use (see
        :class:`~engramdb.config.ScoringWeights`), ties broken by id.

        Relevance depends on ``mode``. ``"hybrid"`` (the default) fuses BM25 over
        each memory and its context (the previous turns of its session) with
        cosine similarity, plus a session prior (see
        :class:`~engramdb.config.HybridWeights`); ``"dense"`` is cosine similarity
        alone, and returns the exact top k by the blended score; ``"lexical"`` is
        BM25 alone. A vector query has no words: it is always dense.

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
                which makes recall a function of the stored state alone, capped at
                the current time so a memory dated ahead cannot age the others).
            record_access: Count this recall as an access of each hit (buffered,
                written in batches by a background thread, never on the query's).
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
            mode: ``"hybrid"``, ``"dense"`` or ``"lexical"`` (see above).
            group_by: None, or ``"session"``: one hit per session, the best
                memory of each of the k best sessions, with ``Hit.group`` and
                ``Hit.group_score`` set.
        """
        query_args = RecallQuery(
            query=query,
            agent=agent,
            k=k,
            kinds=kinds,
            session=session,
            where=where,
            since=since,
            until=until,
            include_archived=include_archived,
            now=now,
            record_access=record_access,
            scope=scope,
            root=root,
            depth=depth,
            rank=rank,
            mode=mode,
            group_by=group_by,
        )
        check_where(where)
        if kinds is not None and (isinstance(kinds, str) or not isinstance(kinds, Iterable)):
            raise ValidationError(f"kinds {kinds!r:.60} must be a list of kinds, e.g. ['semantic']")
        with self._mutex, self._access.busy():
            self._check_open()
            return self._recall(query_args)

    def get(self, memory_id: str, *, agent: str | None = None) -> Memory:
        """The memory with this id, whatever its status.

        Raises:
            NotFoundError: no such memory (or it belongs to another agent, or expired).
        """
        with self._mutex:
            self._check_open()
            return self._views.find(memory_id, agent)

    def list(
        self,
        *,
        agent: str,
        kind: MemoryKind | str | None = None,
        session: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
        include_archived: bool = False,
    ) -> builtins.list[Memory]:
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
            view = self._views.get(agent)
            mask = view.mask(
                now=time.time(), kinds=kinds, session=session, include_archived=include_archived
            )
            labels = [i for i in np.flatnonzero(mask).tolist() if view.ids[i] is not None]
            labels.sort(key=lambda i: (view.created_micros(i), view.ids[i]))
            stop = None if limit is None else offset + limit
            return view.records.memories(labels[offset:stop])

    def count(self, *, agent: str | None = None, include_archived: bool = True) -> int:
        """How many (unexpired) memories an agent, or the whole store, holds."""
        with self._mutex:
            self._check_open()
            agents = [check_name(agent, what="agent")] if agent is not None else self.agents()
            total = 0
            for name in agents:
                view = self._views.get(name)
                mask = view.mask(now=time.time(), include_archived=include_archived)
                total += int(mask.sum())
            return total

    def stats(self, *, agent: str | None = None) -> RegistryStats:
        """What the engine holds in memory: each agent view, its index and its recall.

        For each view in memory: its memories, estimated bytes, index kind, how it
        was made (from the store, or from the index cache), and for an approximate
        index the recall target, the recall@10 it last measured on the agent's own
        vectors, and the search breadth (``efSearch`` or ``nprobe``) it chose. Also
        the memory budget and counters of builds, cache loads and evictions.

        Args:
            agent: Load this agent's view first (its stats are then included).

        Example:
            >>> with MemoryEngine.open("./mem", embedder="hashing") as engine:
            ...     _ = engine.add("The user prefers window seats", agent="travel-bot")
            ...     engine.stats(agent="travel-bot").views["travel-bot"].index
            'flat'
        """
        with self._mutex:
            self._check_open()
            if agent is not None:
                self._views.get(check_name(agent, what="agent"))
            return self._views.stats()

    def agents(self) -> builtins.list[str]:
        """Names of the agents that have memories in the store, sorted."""
        with self._mutex:
            self._check_open()
            return self._store.agents()

    def brief(
        self,
        *,
        agent: str,
        session: str | None = None,
        query: str | None = None,
        budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    ) -> Brief:
        """What an agent should know at the start of a session, within a token budget.

        The session's working memory, the most important instructions (procedural),
        the knowledge (semantic) most relevant to ``query`` (most important and
        used without one) and the latest episodes, in that order, each memory once,
        counted with the embedder's tokenizer where it has one. Deterministic for a
        given store state (it records no access). See :mod:`engramdb.engine.brief`.
        """
        with self._mutex:
            self._check_open()
            return build_brief(
                self, agent=agent, session=session, query=query, budget_tokens=budget_tokens
            )

    # -- structure -----------------------------------------------------------------------

    def ancestors(self, memory_id: str, *, agent: str | None = None) -> builtins.list[Memory]:
        """The memory's parent, its parent's parent, and so on up to a root."""
        with self._mutex:
            self._check_open()
            found = self._views.find(memory_id, agent)
            view = self._views.get(found.agent)
            return [view.current(mid) for mid in ancestors(view.records, found.id)]

    def children(self, memory_id: str, *, agent: str | None = None) -> builtins.list[Memory]:
        """The memories whose ``parent_id`` is this one, oldest first."""
        with self._mutex:
            self._check_open()
            found = self._views.find(memory_id, agent)
            view = self._views.get(found.agent)
            kids = view.hierarchy().children.get(found.id, [])
            return sorted((view.current(m) for m in kids), key=lambda m: (m.created_at, m.id))

    def refine_hierarchy(
        self, *, agent: str, dim: int = 5, epochs: int | None = None, seed: int = 0
    ) -> dict[str, float]:
        """Learn depths for an agent's linked memories by training Poincaré embeddings.

        Trains on the transitive closure of the agent's ``parent_id`` links
        (see :func:`engramdb.index.hierarchy.refine_depths`) and uses the learned
        generality as ``Hit.depth`` and for ``depth=`` bands until the agent's
        memories change. Returns the learned depth of each linked memory.
        """
        with self._mutex:
            self._check_open()
            if self._space != "poincare":
                raise ValidationError(
                    "refine_hierarchy shapes the Poincaré space; open the store with "
                    "space='poincare'"
                )
            view = self._views.get(check_name(agent, what="agent"))
            return view.refine(dim=dim, epochs=epochs, seed=seed)

    # -- bulk operations (through the EngineCore port) ------------------------------------

    def consolidate(
        self,
        *,
        agent: str | None = None,
        policy: ConsolidationPolicy | Mapping[str, Any] | None = None,
        dry_run: bool = False,
        progress: bool | ProgressCallback = False,
    ) -> ConsolidationReport:
        """Compress memories: expire, deduplicate, cluster into gists, forget by policy.

        See :mod:`engramdb.consolidation.run`.
        """
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
    ) -> SnapshotInfo:
        """Write an agent's whole memory to one verifiable file (see :mod:`engramdb.snapshots`)."""
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
    ) -> ImportReport:
        """Restore an agent (or a copy under another name) from a snapshot file."""
        from engramdb.snapshots.io import import_snapshot

        return import_snapshot(self, path, agent=agent, mode=mode, key=key, reembed=reembed)

    def checkpoint(self, *, agent: str, name: str) -> Checkpoint:
        """Name the current state of an agent's memory, to roll back to later."""
        return create_checkpoint(self, agent=agent, name=name)

    def rollback(self, *, agent: str, name: str) -> RollbackReport:
        """Restore an agent's memory to a named checkpoint (other agents untouched)."""
        return rollback_checkpoint(self, agent=agent, name=name)

    def checkpoints(self, *, agent: str) -> builtins.list[Checkpoint]:
        """The agent's checkpoints, oldest first."""
        return list_checkpoints(self, agent=agent)
