"""The store of record: every memory and its vector in one LanceDB table.

LanceDB commits are atomic (data files first, then a new manifest), so a write
that returned is durable and a killed writer leaves the previous version.
Every write here is one commit, counted for automatic compaction, and returns
what it did (:class:`Commit`); batches stay batches. Nothing outside
:mod:`engramdb.store` calls LanceDB.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Lance logs from Rust at WARN by default ("no existing dataset ... will be created").
os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("LANCEDB_LOG", "error")

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import IvfPq

from engramdb._types import FloatMatrix
from engramdb.config import DEFAULT_COMPACT_EVERY, DEFAULT_VERSION_RETENTION_SECONDS
from engramdb.errors import NotFoundError, ReadOnlyError, StoreCorruptError, StoreIOError
from engramdb.records import Memory
from engramdb.store.access import COUNTED, AccessTable
from engramdb.store.guard import guarded, store_errors
from engramdb.store.location import StoreLocation
from engramdb.store.schema import memories_to_arrow, schema

__all__ = ["LANCE_DIR", "TABLE", "Commit", "MemoryTable", "table_dir", "table_exists"]

log = logging.getLogger(__name__)

TABLE = "memories"
LANCE_DIR = "lance"
_TIERS = (1_024, 8_192, 65_536)
"""Fragment sizes (rows) of the compaction tiers; the last is the largest fragment written.

A pass merges fragments below one tier's size only, so it rewrites at most about
one top-tier fragment whatever the table's size. LanceDB's own ``optimize``
targets 1M-row fragments, which below a million rows rewrites the whole table
every time (``benchmarks/single_writes.py`` measures the difference).
"""
_FANOUT = 8
"""Full fragments of one tier that make the next pass merge them into the tier above."""
_CACHE_BYTES = 64 * 2**20
"""Cap on each of LanceDB's index and metadata caches (unbounded by default)."""
_IN_CHUNK = 2_000
"""Ids per ``id IN (...)`` predicate: keeps predicates a size the planner handles well."""


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in the table after some version, read from its transaction log.

    Attributes:
        rows: Every row added or rewritten since, without its vector (current
            values; a superset is harmless: applying a row twice changes nothing,
            and a compaction rewrites rows that did not change).
        deletes: Whether rows may have been deleted since (ids must be compared).
    """

    rows: pa.Table
    deletes: bool
    vectors: Callable[[Sequence[str]], pa.Table]
    """``vectors(ids)``: the ``id`` and ``vector`` columns of those rows (read from
    the new fragments only, never a scan of the table)."""


@dataclass(frozen=True, slots=True)
class Commit:
    """What one write did: the table version it made and the rows it was given."""

    version: int
    rows: int


def quote_list(ids: Iterable[str]) -> str:
    """Ids or names as a SQL list; they are validated to a quote-free alphabet upstream."""
    return ", ".join(f"'{i}'" for i in ids)


def agent_filter(agent: str) -> str:
    """The SQL predicate selecting one agent's rows (names are quote-free)."""
    return f"agent = '{agent}'"


def table_dir(root: Path | StoreLocation) -> Path | str:
    """Where the store's LanceDB table lives: a directory, or a URI on object storage."""
    where = StoreLocation.of(root)
    if where.is_local:
        return where.path / LANCE_DIR / f"{TABLE}.lance"
    return where.child(f"{LANCE_DIR}/{TABLE}.lance")


def table_exists(root: Path | StoreLocation) -> bool:
    """Whether the store's table is there (looked at, nothing created).

    On object storage a table exists once it has a committed version (a manifest
    under ``_versions/``): data files alone are an interrupted creation.
    """
    where = StoreLocation.of(root)
    if where.is_local:
        return where.path.joinpath(LANCE_DIR, f"{TABLE}.lance").is_dir()
    from engramdb.store.objects import object_files

    with store_errors(where, "look for the table"):
        return object_files(where).any_under(f"{LANCE_DIR}/{TABLE}.lance/_versions")


class MemoryTable:
    """The LanceDB table that holds every memory of a store.

    Opening never creates anything: :meth:`create` makes a new table (a writer,
    under the store's lock), and a ``read_only`` table refuses every write,
    compaction included.

    Args:
        root: The store: a directory, or a location on object storage.
        dim: Vector dimension.
        read_only: Refuse writes (a reader in another process than the writer).
        compact_every: Commits between two automatic compactions.
        retention: How long superseded versions are kept before cleanup. Readers
            in other processes hold a version for one operation; one that takes
            longer than this can find its files gone, and reads again at the
            newest version (see :func:`~engramdb.store.guard.guarded`).
        create: Make the table (empty); the caller holds the writer lock.

    Raises:
        NotFoundError: the store has no table and ``create`` is False.
        StoreCorruptError: the table's files are there but cannot be opened.
    """

    def __init__(
        self,
        root: Path | StoreLocation,
        dim: int,
        *,
        read_only: bool = False,
        compact_every: int = DEFAULT_COMPACT_EVERY,
        retention: timedelta = timedelta(seconds=DEFAULT_VERSION_RETENTION_SECONDS),
        create: bool = False,
    ) -> None:
        self.root = StoreLocation.of(root)
        self._fence: Callable[[], None] | None = None
        self.dim = dim
        self.read_only = read_only
        self.compact_every = compact_every
        self.retention = retention
        self._commits = 0
        self.write_lock = threading.RLock()
        """Held by every write (see :func:`~engramdb.store.guard.guarded`); hold it
        around a read-then-write that must not interleave with another thread's write."""
        if read_only and create:
            raise ReadOnlyError(f"cannot create a table in store {self.root} opened read-only")
        if not create and not table_exists(self.root):
            raise NotFoundError(f"store {self.root} has no table at {table_dir(self.root)}")
        with store_errors(self.root, "open the table"):
            # LanceDB's caches grow with every version a handle sees unless capped.
            session = lancedb.Session(
                index_cache_size_bytes=_CACHE_BYTES, metadata_cache_size_bytes=_CACHE_BYTES
            )
            self._db = lancedb.connect(
                self.root.child(LANCE_DIR),
                storage_options=self.root.options or None,
                session=session,
            )
            if create:
                self.table = self._db.create_table(TABLE, schema=schema(dim))
            else:
                self.table = self._db.open_table(TABLE)
            found = self.table.schema.field("vector").type.list_size
            self.access = AccessTable(
                self._db,
                self.root,
                write_lock=self.write_lock,
                read_only=read_only,
                retention=retention,
            )
            """The access log beside the table (see :mod:`engramdb.store.access`)."""
        if found != dim:
            raise StoreCorruptError(
                f"store {self.root} holds vectors of dim {found}, not {dim}; the metadata file "
                "and the table disagree: the store is damaged; restore it from a snapshot"
            )

    @property
    def fence(self) -> Callable[[], None] | None:
        """Called before every write (the writer lease's check on object storage)."""
        return self._fence

    @fence.setter
    def fence(self, check: Callable[[], None] | None) -> None:
        self._fence = check
        self.access.fence = check

    # -- reads ---------------------------------------------------------------------------

    @guarded("read the newest version")
    def refresh(self) -> None:
        """Move to the newest committed version (for readers in other processes).

        The access log has its own :meth:`AccessTable.refresh`.
        """
        self.table.checkout_latest()  # type: ignore[no-untyped-call]

    @property
    def version(self) -> int:
        with store_errors(self.root, "read the version"):
            return int(self.table.version)

    @property
    def schema(self) -> pa.Schema:
        """The table's Arrow schema (the store's columns, the vector last)."""
        return self.table.schema

    @guarded("read rows")
    def scan(self, where: str | None = None, *, columns: Sequence[str] | None = None) -> pa.Table:
        """Rows matching a SQL predicate (all rows if None), in storage order.

        The predicate names ``id`` or ``agent`` only. Access counts are the larger
        of the table's and the access log's (when the counts' columns are read).
        """
        query = self.table.search()
        if where:
            query = query.where(where)
        wanted = None if columns is None else list(columns)
        if wanted is not None:
            counted = not {"access_count", "last_accessed_at"}.isdisjoint(wanted)
            extra = [c for c in COUNTED if c not in wanted] if counted else []
            query = query.select(wanted + extra)
        rows = self.access.overlay(query.limit(None).to_arrow(), where)
        return rows if wanted is None or rows.column_names == wanted else rows.select(wanted)

    def scan_agent(self, agent: str, *, columns: Sequence[str] | None = None) -> pa.Table:
        return self.scan(agent_filter(agent), columns=columns)

    def fetch(self, ids: Sequence[str]) -> pa.Table:
        """Rows for the given ids (any order; missing ids are absent)."""
        parts = [
            self.scan(f"id IN ({quote_list(ids[i : i + _IN_CHUNK])})")
            for i in range(0, len(ids), _IN_CHUNK)
        ]
        return pa.concat_tables(parts) if parts else schema(self.dim).empty_table()

    @guarded("list agents")
    def agents(self) -> list[str]:
        col = self.scan(columns=["agent"]).column("agent")
        return sorted(set(col.to_pylist()))

    @guarded("count rows")
    def count(self, where: str | None = None) -> int:
        return int(self.table.count_rows(where))

    @guarded("search vectors")
    def vector_search(
        self, vector: FloatMatrix, *, agent: str, limit: int
    ) -> tuple[list[str], list[float]]:
        """LanceDB's own cosine search over one agent: ids and cosine distances, nearest first."""
        rows = (
            self.table.search(vector, vector_column_name="vector")
            .distance_type("cosine")
            .refine_factor(4)  # re-rank PQ candidates with full vectors when indexed
            .where(agent_filter(agent), prefilter=True)
            .select(["id", "_distance"])
            .limit(limit)
            .to_arrow()
        )
        return rows.column("id").to_pylist(), rows.column("_distance").to_pylist()

    # -- writes (each is one commit) -----------------------------------------------------

    def append(self, memories: Sequence[Memory], vectors: FloatMatrix) -> Commit:
        """Add new memories."""
        return self.add_rows(memories_to_arrow(memories, vectors, self.dim))

    @guarded("add rows", write=True)
    def add_rows(self, rows: pa.Table) -> Commit:
        """Add rows already in the table's schema."""
        if not rows.num_rows:
            return Commit(self.version, 0)
        self.table.add(rows)
        return self._committed(rows.num_rows)

    def upsert(self, memories: Sequence[Memory], vectors: FloatMatrix) -> Commit:
        """Insert or replace whole rows by id."""
        return self.merge(memories_to_arrow(memories, vectors, self.dim))

    def update_columns(self, data: pa.Table) -> Commit:
        """Update some columns of existing rows, matched by the ``id`` column of ``data``."""
        return self.merge(data, insert=False)

    def replace_agent(self, agent: str, memories: Sequence[Memory], vectors: FloatMatrix) -> Commit:
        """Make ``memories`` the agent's whole memory, in one atomic commit."""
        return self.replace_agent_rows(agent, memories_to_arrow(memories, vectors, self.dim))

    def replace_agent_rows(self, agent: str, rows: pa.Table) -> Commit:
        """Make ``rows`` (in the table's schema) the agent's whole memory, in one commit.

        What :meth:`replace_agent` does from Arrow rows rather than :class:`Memory`
        values: a 100k-memory restore skips two conversions of every row.
        """
        with self.write_lock:
            # Logged counts of the agent's old memories must not land on the new ones
            # (a rollback restores the same ids and creation times): fold, then replace.
            self.fold_access()
            return self.merge(rows, delete_others_of=agent, always=True)

    @guarded("write rows", write=True)
    def merge(
        self,
        data: pa.Table,
        *,
        insert: bool = True,
        delete_others_of: str | None = None,
        always: bool = False,
    ) -> Commit:
        """The one ``merge_insert`` chain every keyed write goes through.

        Rows of ``data`` update the stored rows with the same id; with ``insert``
        new ids are added; with ``delete_others_of`` that agent's rows missing
        from ``data`` are deleted. Empty ``data`` writes nothing unless ``always``
        (an agent replaced by nothing is emptied).
        """
        if not data.num_rows and not always:
            return Commit(self.version, 0)
        builder = self.table.merge_insert("id").when_matched_update_all()
        if insert:
            builder = builder.when_not_matched_insert_all()
        if delete_others_of is not None:
            builder = builder.when_not_matched_by_source_delete(agent_filter(delete_others_of))
        builder.execute(data)
        return self._committed(data.num_rows)

    @guarded("fold the access log", write=True)
    def fold_access(self) -> Commit | None:
        """Write the access log's counts into the table, then empty the log.

        One ``merge_insert`` of the newest counts per memory, applied only to the
        row with the same id and creation time and only where the log's count is
        larger; then the log is emptied. A kill between the two steps leaves the
        same counts in both (reads take the larger). None when the log was empty.
        """
        if self.access.table is None:
            return None
        latest = self.access.latest()
        if not latest.num_rows:
            if self.access.rows:
                self.access.clear()
            return None
        data = latest.select(["id", "created_at", "access_count", "last_accessed_at"])
        self.table.merge_insert("id").when_matched_update_all(
            where="target.created_at = source.created_at "
            "AND source.access_count > target.access_count"
        ).execute(data)
        commit = self._committed(data.num_rows)
        self.access.clear()
        return commit

    @guarded("delete rows", write=True)
    def delete(self, ids: Sequence[str]) -> Commit:
        if not ids:
            return Commit(self.version, 0)
        # One predicate, one commit: a deletion is all or nothing.
        self.table.delete(f"id IN ({quote_list(ids)})")
        return self._committed(len(ids))

    def purge(self, ids: Sequence[str]) -> Commit | None:
        """Delete rows that no reader should see anyway (expired), if the store lets us.

        Best effort: on a full disk or a read-only mount the rows stay (every read
        filters them out) and the failure is logged, so a read never fails
        because a purge could not write. None when nothing was written.
        """
        try:
            return self.delete(ids)
        except (StoreIOError, ReadOnlyError) as exc:
            log.warning("could not purge %d expired memories from %s: %s", len(ids), self.root, exc)
            return None

    def _committed(self, rows: int) -> Commit:
        self._commits += 1
        if self._commits % self.compact_every == 0:
            self.compact()
        return Commit(self.version, rows)

    @guarded("compact", write=True)
    def compact(self) -> None:
        """Merge small fragments in size tiers, then drop superseded untagged versions.

        A pass merges fragments below one tier's size (:data:`_TIERS`): below 1,024
        rows usually, the next tier up once :data:`_FANOUT` fragments fill a tier,
        so its cost does not grow with the table. Cleanup then drops versions
        older than :attr:`retention`, except tagged ones (checkpoints) and the latest.
        """
        ds = self.table.to_lance()
        rows = [f.metadata.physical_rows for f in ds.get_fragments()]
        target = _TIERS[0]
        for lower, upper in zip(_TIERS[-2::-1], _TIERS[:0:-1], strict=True):
            if sum(lower <= r < upper for r in rows) >= _FANOUT:
                target = upper
                break
        ds.optimize.compact_files(target_rows_per_fragment=target, num_threads=1)
        if self.table.list_indices():
            ds = self.table.to_lance()
            ds.optimize.optimize_indices()  # fold new rows into the vector index
        ds.cleanup_old_versions(older_than=self.retention, error_if_tagged_old_versions=False)
        self.table.checkout_latest()  # type: ignore[no-untyped-call]

    @guarded("build the vector index", write=True)
    def ensure_vector_index(self, *, min_rows: int = 50_000) -> bool:
        """Give the table a LanceDB vector index (IVF_PQ, cosine) once it is large.

        Below ``min_rows`` a brute-force scan is fast and exact, so nothing is
        built. Rows added later are searched by a scan until the next call,
        which ``optimize`` folds into the index. Returns whether an index exists.
        """
        indexed = any(cfg.columns == ["vector"] for cfg in self.table.list_indices())
        if indexed:
            return True
        n = self.count()
        if n < min_rows:
            return False
        config = IvfPq(
            distance_type="cosine",
            num_partitions=max(1, int(n**0.5)),
            num_sub_vectors=max(1, self.dim // 16),
        )
        self.table.create_index("vector", config=config)
        return True

    # -- versions and tags ---------------------------------------------------------------

    @guarded("list versions")
    def versions(self) -> list[dict[str, Any]]:
        return list(self.table.list_versions())

    @guarded("list versions")
    def version_times(self) -> dict[int, datetime]:
        """Commit time of each retained version, in UTC."""
        out = {}
        for v in self.table.list_versions():
            stamp = v.get("timestamp")
            if isinstance(stamp, datetime):
                # LanceDB reports local naive times.
                out[int(v["version"])] = stamp.astimezone(UTC) if stamp.tzinfo is None else stamp
        return out

    @guarded("list tags")
    def tags(self) -> dict[str, int]:
        """Every tag of the table and the version it names."""
        return {tag: int(meta["version"]) for tag, meta in self.table.tags.list().items()}

    @guarded("create a tag", write=True)
    def create_tag(self, tag: str, version: int) -> None:
        self.table.tags.create(tag, version)

    @guarded("delete a tag", write=True)
    def delete_tag(self, tag: str) -> None:
        self.table.tags.delete(tag)

    @guarded("read an old version")
    def scan_at(self, version: int, where: str | None = None) -> pa.Table:
        """Rows matching ``where`` as they were at ``version`` (this handle stays latest)."""
        handle = self._db.open_table(TABLE)
        handle.checkout(version)
        query = handle.search()
        if where:
            query = query.where(where)
        return query.limit(None).to_arrow()

    @guarded("read what changed")
    def changes_since(self, version: int) -> Changes | None:
        """The rows written and whether rows were deleted after ``version``.

        Compares the table's fragments then and now: a fragment that is new holds
        rows added or rewritten since (an update or a compaction writes new
        fragments), and a fragment gone or with a new deletion file lost rows.
        None when ``version`` is no longer kept: the caller rebuilds.
        """
        try:
            dataset = self.table.to_lance()
            then = dataset.checkout_version(version)
        except (ValueError, OSError, RuntimeError):
            return None
        before = {f.fragment_id: str(f.metadata.deletion_file) for f in then.get_fragments()}
        now = {f.fragment_id: f for f in dataset.get_fragments()}
        deletes = any(
            fid not in now or str(now[fid].metadata.deletion_file) != deletion
            for fid, deletion in before.items()
        )
        columns = [name for name in self.schema.names if name != "vector"]
        fresh = [now[fid] for fid in sorted(now) if fid not in before]
        parts = [fragment.to_table(columns=columns) for fragment in fresh]
        rows = pa.concat_tables(parts) if parts else self.schema.empty_table().select(columns)

        def vectors(ids: Sequence[str]) -> pa.Table:
            wanted = f"id IN ({quote_list(ids)})"
            found = [f.to_table(columns=["id", "vector"], filter=wanted) for f in fresh]
            return pa.concat_tables(found) if found else self.schema.empty_table()

        return Changes(rows=rows, deletes=deletes, vectors=vectors)

    @guarded("read an old version")
    def count_at(self, version: int, where: str | None = None) -> int:
        handle = self._db.open_table(TABLE)
        handle.checkout(version)
        return int(handle.count_rows(where))

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)


def empty_vectors(dim: int) -> FloatMatrix:
    """A 0 x dim float32 matrix, for writes that replace an agent by nothing."""
    return np.zeros((0, dim), np.float32)
