"""The registry of agent views: each agent's memory in RAM, built from the store on demand.

The views of one engine share a memory budget (``Settings.view_cache_bytes``):
past it, the least recently used views are dropped, after what only they held
(buffered access counts, learned depths) is saved, and are rebuilt on next use.
A view's HNSW graph is kept in the index cache (:mod:`engramdb.index.cache`) when
it is built, so a rebuild (after an eviction, or in a new process) reads the
graph instead of building it again; the cache is checked against the store and
caught up with what changed since it was written.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engramdb.allocator import release_free_memory
from engramdb.config import Settings, machine_dir
from engramdb.errors import NotFoundError
from engramdb.index.cache import CachedGraph, CacheStamp, IndexCache
from engramdb.index.records import NO_TIME
from engramdb.index.vector import HNSWIndex
from engramdb.index.view import AgentView, normalize_rows, to_micros
from engramdb.records import Memory, check_id, check_name
from engramdb.store.access import ACCESS_TABLE
from engramdb.store.location import StoreLocation
from engramdb.store.schema import arrow_to_memories, arrow_vectors
from engramdb.store.table import Changes, MemoryTable, agent_filter, table_dir
from engramdb.store.watch import VersionsWatch

__all__ = ["CACHE_DIR", "RegistryStats", "ViewRegistry", "ViewStats"]

log = logging.getLogger(__name__)

faiss: Any = _faiss

CACHE_DIR = "index-cache"
"""The index cache's directory inside a store, unless ``Settings.index_cache_dir`` says."""
_CACHE_USEFUL = 0.5
"""A cached graph holding fewer of the agent's memories than this share is rebuilt."""
_FETCH_BY_ID = 2_000
"""Above this many vectors to read back after a cache load, scan the agent's instead."""


@dataclasses.dataclass(frozen=True, slots=True)
class ViewStats:
    """One agent's view as it is in memory.

    Attributes:
        agent: Whose view.
        memories: Live memories in it.
        index: The vector index kind in use (``flat``, ``hnsw``, ``ivf``, ``lance``).
        nbytes: About how many bytes the view holds (see :meth:`AgentView.nbytes`).
        source: How it was made: ``"store"`` (built from the store), ``"cache"``
            (its graph read from a fresh index cache) or ``"cache+catch-up"``
            (read from a stale one and caught up with the store).
        recall_target: Recall@10 its approximate index keeps (None for exact).
        recall_estimate: The index's last measured recall@10 (1.0 for exact search).
        breadth: The search breadth in use: ``efSearch`` for HNSW, ``nprobe``
            for IVF, None for exact search (also an HNSW index that found no beam
            cheaper than a scan that kept the target, and scans).
    """

    agent: str
    memories: int
    index: str
    nbytes: int
    source: str
    recall_target: float | None
    recall_estimate: float | None
    breadth: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class RegistryStats:
    """The views an engine holds and what building them cost.

    Attributes:
        views: The views in memory, least recently used first.
        nbytes: Their total estimated bytes.
        budget: ``Settings.view_cache_bytes``.
        builds: Views built from the store (every vector read, every index built).
        cache_loads: Views whose graph came from a fresh index cache.
        catch_ups: Views whose graph came from a stale cache, caught up.
        cache_writes: Index cache files written.
        cache_misses: Loads that found no usable cache (absent, damaged, mismatched).
        evictions: Views dropped to stay within the budget.
        access_log_rows: Rows in the store's access log not yet folded into the
            memories table (see :mod:`engramdb.store.access`).
    """

    views: Mapping[str, ViewStats]
    nbytes: int
    budget: int
    builds: int
    cache_loads: int
    catch_ups: int
    cache_writes: int
    cache_misses: int
    evictions: int
    access_log_rows: int = 0


BUILD_BATCH = 8192
"""Rows made into :class:`Memory` values at a time while a view is built (see
:meth:`AgentView.build`)."""


def _batches(rows: pa.Table) -> Iterator[list[Memory]]:
    """The memories of ``rows``, :data:`BUILD_BATCH` at a time, in order."""
    for start in range(0, rows.num_rows, BUILD_BATCH):
        yield arrow_to_memories(rows.slice(start, BUILD_BATCH))


class ViewRegistry:
    """One :class:`AgentView` per agent, kept in step with the store of record.

    Not locked: the engine holds its lock around every call.

    Args:
        store: The store of record.
        dim: The embedder's dimension.
        index_kind: The vector index every view builds.
        settings: Engine settings (the exact-search threshold, recall target,
            memory budget and index cache).
        read_only: A reader never purges expired rows (it cannot write); it
            follows the writer by dropping its views when the store's version moves.
        embedder: The store's embedder name (stamped on index cache files).
        before_evict: Called with a view about to be dropped for the budget,
            while it is still registered (the engine writes its access counts).
    """

    def __init__(
        self,
        store: MemoryTable,
        *,
        dim: int,
        index_kind: str,
        settings: Settings,
        read_only: bool,
        embedder: str = "",
        before_evict: Callable[[AgentView], object] | None = None,
    ) -> None:
        self.store = store
        self.dim = dim
        self.index_kind = index_kind
        self.settings = settings
        self.read_only = read_only
        self.embedder = embedder
        self.before_evict = before_evict
        self._views: OrderedDict[str, AgentView] = OrderedDict()
        self._sizes: dict[str, tuple[int, int]] = {}
        """Agent -> (view generation, bytes) when last measured."""
        self._total = 0
        self._source: dict[str, str] = {}
        self._refined: dict[str, dict[str, float]] = {}
        """Learned depths of evicted views (they live nowhere else)."""
        self.counts: Counter[str] = Counter()
        self._seen_version = store.version
        self._seen_log = store.access.version
        self.cache = IndexCache(cache_dir(settings, store.root)) if settings.index_cache else None
        self._watch: VersionsWatch | None = None
        """A local reader's look at the tables before it asks LanceDB (see :meth:`follow`)."""
        if read_only and store.root.is_local and settings.follow_interval is None:
            memories = Path(table_dir(store.root))
            self._watch = VersionsWatch([memories, memories.with_name(f"{ACCESS_TABLE}.lance")])

    def __iter__(self) -> Iterator[AgentView]:
        return iter(list(self._views.values()))

    def loaded(self, agent: str) -> AgentView | None:
        """The agent's view if it is in memory (nothing is built)."""
        return self._views.get(agent)

    def get(self, agent: str) -> AgentView:
        """The agent's view, built if it is not in memory; it becomes the most recent."""
        view = self._views.get(agent)
        if view is None:
            if not self.read_only:
                self._purge_expired(agent)
            view = self._load(agent)
            release_free_memory()  # the rows read and the values made from them
            refined = self._refined.pop(agent, None)
            if refined:
                view.refined = refined
            self._views[agent] = view
        else:
            self._views.move_to_end(agent)
        self._measure(agent, view)
        self._fit(keep=agent)
        return view

    # -- the memory budget -------------------------------------------------------------

    def _measure(self, agent: str, view: AgentView) -> None:
        generation, size = self._sizes.get(agent, (-1, 0))
        if generation != view.generation:
            new = view.nbytes()
            self._total += new - size
            self._sizes[agent] = (view.generation, new)

    def _fit(self, *, keep: str) -> None:
        """Drop the least recently used views until the rest fit the budget."""
        while self._total > self.settings.view_cache_bytes and len(self._views) > 1:
            agent = next(iter(self._views))
            if agent == keep:  # pragma: no cover - keep is always the most recent
                break
            view = self._views[agent]
            if self.before_evict is not None:
                self.before_evict(view)
            if view.refined:
                self._refined[agent] = view.refined
            self._drop(agent)
            self.counts["evictions"] += 1

    def _drop(self, agent: str) -> None:
        self._views.pop(agent, None)
        self._total -= self._sizes.pop(agent, (0, 0))[1]
        self._source.pop(agent, None)

    @property
    def nbytes(self) -> int:
        """The views' total estimated bytes (as last measured)."""
        return self._total

    def stats(self) -> RegistryStats:
        """The views in memory and the registry's counters."""
        views = {}
        for agent, view in self._views.items():
            self._measure(agent, view)
            index = view.index
            tuning = index.tuning
            estimate = tuning.estimate if tuning else None
            if index.exact or (tuning is not None and tuning.exhaustive):
                estimate = 1.0
            views[agent] = ViewStats(
                agent=agent,
                memories=len(view),
                index=index.kind,
                nbytes=self._sizes[agent][1],
                source=self._source.get(agent, "store"),
                recall_target=None if index.exact else getattr(index, "recall_target", None),
                recall_estimate=estimate,
                breadth=index.breadth,
            )
        c = self.counts
        return RegistryStats(
            views=views,
            nbytes=self._total,
            budget=self.settings.view_cache_bytes,
            builds=c["builds"],
            cache_loads=c["cache_loads"],
            catch_ups=c["catch_ups"],
            cache_writes=c["cache_writes"],
            cache_misses=c["cache_misses"],
            evictions=c["evictions"],
            access_log_rows=self.store.access.rows,
        )

    # -- building a view ---------------------------------------------------------------

    def _load(self, agent: str) -> AgentView:
        """The agent's view from the index cache if it can be trusted, else from the store."""
        if self.cache is not None and self.index_kind in ("auto", "hnsw"):
            cached = self.cache.read(agent, embedder=self.embedder, dim=self.dim)
            view = self._from_cache(agent, cached) if cached is not None else None
            if view is not None:
                return view
            self.counts["cache_misses"] += 1
        version = self.store.version
        rows = self.store.scan_agent(agent)
        view = AgentView.build(
            agent,
            _batches(rows.drop_columns(["vector"])),
            arrow_vectors(rows, self.dim),
            dim=self.dim,
            index_kind=self.index_kind,
            exact_threshold=self.settings.exact_threshold,
            recall_target=self.settings.recall_target,
        )
        self.counts["builds"] += 1
        self._source[agent] = "store"
        self._save(view, version)
        return view

    def _from_cache(self, agent: str, cached: CachedGraph) -> AgentView | None:
        """A view whose graph is the cached one, caught up with the store; None to rebuild.

        The records come from the store (without vectors). The graph is used as
        it is when the cache's stamp names the store's current version and its
        nodes are exactly the agent's memories; otherwise the vectors of the
        memories written since are read back (of all the agent's memories when
        the store no longer keeps the cache's version), a node whose vector
        changed is retired, and new or changed memories are added.
        """
        version = self.store.version
        columns = [name for name in self.store.schema.names if name != "vector"]
        rows = self.store.scan_agent(agent, columns=columns)
        ids: list[str] = rows.column("id").to_pylist()
        if self.index_kind == "auto" and len(ids) < self.settings.exact_threshold:
            return None  # shrunk below the threshold: the view is exact now
        label_of = {mid: i for i, mid in enumerate(ids)}
        node_labels = np.array(
            [-1 if mid is None else label_of.get(mid, -1) for mid in cached.ids], dtype=np.int64
        )
        pos_of = {int(label): pos for pos, label in enumerate(node_labels.tolist()) if label >= 0}
        if len(pos_of) != int((node_labels >= 0).sum()):
            log.warning("index cache of agent %r ignored: a memory has two nodes", agent)
            return None
        if len(pos_of) < _CACHE_USEFUL * len(ids):
            return None  # mostly new memories (an agent deleted and written again): rebuild
        missing = [mid for mid in ids if label_of[mid] not in pos_of]
        fresh = (
            cached.stamp.version == version
            and cached.stamp.version_time == self._version_time(version)
            and not missing
            and len(pos_of) == sum(mid is not None for mid in cached.ids)
        )
        readd: list[str] = missing
        changes = None
        if not fresh:
            changes = (
                self.store.changes_since(cached.stamp.version)
                if cached.stamp.version <= version
                else None
            )
            changed = self._changed_vectors(agent, cached, ids, pos_of, label_of, changes)
            readd = missing + changed
            for mid in readd:
                pos = pos_of.get(label_of[mid])
                if pos is not None:
                    node_labels[pos] = -1
        index = HNSWIndex.restore(
            cached.index,
            node_labels,
            ef_search=cached.ef_search,
            tuning=cached.tuning,
            recall_target=self.settings.recall_target,
        )
        if readd:
            vectors = self._vectors(agent, readd, changes)
            index.add(np.array([label_of[mid] for mid in readd], dtype=np.int64), vectors)
        view = AgentView.build(
            agent,
            _batches(rows),
            np.zeros((0, self.dim), np.float32),
            dim=self.dim,
            index_kind=self.index_kind,
            exact_threshold=self.settings.exact_threshold,
            recall_target=self.settings.recall_target,
            index=index,
        )
        if fresh:
            self.counts["cache_loads"] += 1
            self._source[agent] = "cache"
        else:
            self.counts["catch_ups"] += 1
            self._source[agent] = "cache+catch-up"
            # Same graph (nodes only retired): a new stamp will do.
            self._save(view, version, restamp=not readd and index.index is cached.index)
        return view

    def _changed_vectors(
        self,
        agent: str,
        cached: CachedGraph,
        ids: Sequence[str],
        pos_of: dict[int, int],
        label_of: dict[str, int],
        changes: Changes | None,
    ) -> list[str]:
        """Ids of cached memories whose stored vector is no longer the node's.

        Only memories written since the cache's version are compared (all of the
        agent's when the store cannot say what changed since).
        """
        if changes is not None and changes.rows.num_rows:
            rows = changes.rows
            mine = pc.equal(rows.column("agent"), agent)
            written = set(rows.filter(mine).column("id").to_pylist())
        elif changes is not None:
            written = set()
        else:
            written = set(ids)
        suspects = [mid for mid in ids if mid in written and label_of[mid] in pos_of]
        if not suspects:
            return []
        stored = self._vectors(agent, suspects, changes)
        graph = cached.index
        nodes = np.array([pos_of[label_of[mid]] for mid in suspects], dtype=np.int64)
        storage = _storage(graph)
        held = np.asarray(storage.reconstruct_batch(nodes), dtype=np.float32)
        differ = ~np.isclose(held, stored, rtol=0.0, atol=1e-6).all(axis=1)
        return [mid for mid, d in zip(suspects, differ.tolist(), strict=True) if d]

    def _vectors(self, agent: str, ids: Sequence[str], changes: Changes | None) -> np.ndarray:
        """Unit vectors of these memories, in the order given."""
        if changes is not None and len(ids) <= _FETCH_BY_ID:
            fetched = changes.vectors(list(ids))
        elif len(ids) <= _FETCH_BY_ID:
            fetched = self.store.fetch(list(ids))
        else:
            fetched = self.store.scan_agent(agent, columns=["id", "vector"])
        row = {mid: i for i, mid in enumerate(fetched.column("id").to_pylist())}
        vectors = normalize_rows(arrow_vectors(fetched, self.dim))
        return vectors[[row[mid] for mid in ids]]

    def _version_time(self, version: int) -> str | None:
        stamp = self.store.version_times().get(version)
        return None if stamp is None else stamp.isoformat()

    def _save(self, view: AgentView, version: int, *, restamp: bool = False) -> None:
        """Write the view's graph to the index cache (HNSW only), stamped with ``version``.

        With ``restamp`` the graph is the cached one with no node added: only the
        stamp and node ids are written. Best effort: a cache that cannot be
        written is logged and skipped.
        """
        index = view.index
        if self.cache is None or not isinstance(index, HNSWIndex):
            return
        ids = [None if label < 0 else view.ids[label] for label in index.node_labels().tolist()]
        stamp = CacheStamp(
            agent=view.agent,
            embedder=self.embedder,
            dim=self.dim,
            version=version,
            version_time=self._version_time(version),
        )
        try:
            if restamp:
                self.cache.restamp(stamp, ids)
            else:
                self.cache.write(stamp, index, ids)
        except (OSError, ValueError) as exc:
            log.warning("could not write the index cache of agent %r: %s", view.agent, exc)
            return
        self.counts["cache_writes"] += 1

    def follow(self) -> None:
        """A reader: move to the store's newest version and apply what changed to the views.

        Only the rows written since the version the views hold are read (with
        their vectors), and only the agents they belong to change; an access-count
        flush updates records in place. When the store cannot say what changed
        (the old version was cleaned up), the views are dropped and rebuilt. Counts
        appended to the access log since are laid over the views' (never lower).
        On a local store, LanceDB is asked only when a table's ``_versions``
        directory changed since the last follow (or too recently to tell: see
        :mod:`engramdb.store.watch`).
        """
        if self._watch is None:
            self._follow()
            return
        stamp = self._watch.look()
        if not self._watch.unchanged(stamp):
            self._follow()
            self._watch.followed(stamp)

    def _follow(self) -> None:
        self.store.refresh()
        self.store.access.refresh()
        version = self.store.version
        logged = self.store.access.version
        if logged != self._seen_log:
            seen, self._seen_log = self._seen_log, logged
            if self._views:  # views built later read the log as they are built
                counts = self.store.access.since(seen)
                self._count(self.store.access.latest() if counts is None else counts)
        if version == self._seen_version:
            return
        changes = self.store.changes_since(self._seen_version) if self._views else None
        self._seen_version = version
        if changes is None:
            self.invalidate()
            return
        self._apply(changes)

    def _count(self, counts: pa.Table) -> None:
        """Raise the views' access counts to the logged ones (same id and creation time)."""
        if not counts.num_rows:
            return
        ids = counts.column("id").to_pylist()
        agents = counts.column("agent").to_pylist()
        created = counts.column("created_at").cast(pa.int64()).to_pylist()
        access = counts.column("access_count").to_pylist()
        lasts = counts.column("last_accessed_at").cast(pa.int64()).to_pylist()
        for i, mid in enumerate(ids):
            view = self._views.get(agents[i])
            label = None if view is None else view.label_of.get(mid)
            if view is None or label is None or view.created_micros(label) != created[i]:
                continue
            view.raise_access(label, access[i], NO_TIME if lasts[i] is None else lasts[i])

    def _apply(self, changes: Changes) -> None:
        rows = changes.rows
        agents = rows.column("agent").to_pylist() if rows.num_rows else []
        for agent, view in list(self._views.items()):
            picked = [i for i, a in enumerate(agents) if a == agent]
            if not picked:
                continue
            part = self.store.access.overlay(rows.take(picked), agent_filter(agent))
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
        """Drop one agent's view (every view if None); it is rebuilt on next use.

        The learned depths of an evicted view go too (the store changed in bulk).
        """
        if agent is None:
            self._views.clear()
            self._sizes.clear()
            self._source.clear()
            self._refined.clear()
            self._total = 0
        else:
            self._drop(agent)
            self._refined.pop(agent, None)

    def find(self, memory_id: str, agent: str | None) -> Memory:
        """The memory with this id (expired ones count as absent)."""
        check_id(memory_id)
        if agent is not None:
            check_name(agent, what="agent")
        views = (
            [self._views[agent]]
            if agent is not None and agent in self._views
            else list(self._views.values())
        )
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


def _storage(graph: object) -> Any:
    return faiss.downcast_index(faiss.downcast_index(graph).storage)


def cache_dir(settings: Settings, where: StoreLocation) -> Path:
    """Where a store's index cache lives: ``Settings.index_cache_dir``, else inside a local
    store, else (object storage) under this machine's data directory, one folder per URI."""
    if settings.index_cache_dir is not None:
        return Path(settings.index_cache_dir)
    if where.is_local:
        return where.path / CACHE_DIR
    return machine_dir(CACHE_DIR, where.uri, settings)


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
