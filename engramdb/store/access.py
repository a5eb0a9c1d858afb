"""The access log: a small append-only table of access counts beside the memories table.

Writing counts into the memories table is a ``merge_insert`` that joins against
every row: hundreds of milliseconds at 100k memories, whatever the batch. So the
engine appends the current absolute counts of the memories it saw accessed to a
second table, ``access``, in the same LanceDB database: one small fragment per
write, its cost proportional to the batch. Every read that loads memories from
the store lays the log's newest counts over the table's (:meth:`AccessTable.overlay`).

Rows are ``(id, agent, created_at, access_count, last_accessed_at)``. A log row
applies to the memory with the same id *and* creation time, so a memory deleted
and added again under its id does not inherit the old counts. Counts are
absolute and only grow, so a memory's newest row is its largest, a row older
than the table's value changes nothing (the larger wins), and applying a row
twice is harmless.

Folding (:meth:`~engramdb.store.table.MemoryTable.fold_access`) writes the log's
counts into the memories table (one ``merge_insert`` of one row per memory, under
the same rule) and then empties the log. A process killed between the two steps
leaves both holding the same counts, and the larger of the two is still right.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engramdb.store.guard import guarded
from engramdb.store.location import StoreLocation

__all__ = ["ACCESS_TABLE", "COUNTED", "AccessTable", "access_schema"]

ACCESS_TABLE = "access"
COUNTED = ("id", "created_at", "access_count", "last_accessed_at")
"""The columns a read must hold for the log's counts to be laid over it."""
_TS = pa.timestamp("us", "UTC")
_COMPACT_EVERY = 64
"""Appends between two compactions of the log's own files (each append is a fragment)."""


def access_schema() -> pa.Schema:
    """The access log: the absolute counts of one memory as of one write."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("agent", pa.string(), nullable=False),
            pa.field("created_at", _TS, nullable=False),
            pa.field("access_count", pa.int64(), nullable=False),
            pa.field("last_accessed_at", _TS),
        ]
    )


class AccessTable:
    """The store's access log (created on its first append; absent reads as empty).

    Shares the memories table's connection, ``write_lock`` and ``fence``, so an
    append is a guarded write like any other (refused on a reader, fenced by the
    writer lease on object storage).

    Args:
        db: The store's LanceDB connection.
        root: The store.
        write_lock: The memories table's write lock.
        read_only: Refuse writes.
        retention: How long superseded versions of the log are kept.
    """

    fence: Callable[[], None] | None

    def __init__(
        self,
        db: Any,
        root: StoreLocation,
        *,
        write_lock: threading.RLock,
        read_only: bool,
        retention: timedelta,
    ) -> None:
        self.root = root
        self.read_only = read_only
        self.write_lock = write_lock
        self.retention = retention
        self.fence = None
        self._db = db
        self._appends = 0
        self.table: Any = self._open()
        self.rows = 0 if self.table is None else int(self.table.count_rows())
        """Rows in the log (as this handle last saw them): the fold's trigger."""
        self._version = 0 if self.table is None else int(self.table.version)

    def _open(self) -> Any:
        try:
            return self._db.open_table(ACCESS_TABLE)
        except ValueError:  # "Table 'access' was not found": nothing logged yet
            return None

    # -- reads ---------------------------------------------------------------------------

    @guarded("read the access log's newest version")
    def refresh(self) -> None:
        """Move to the newest committed version of the log (for readers in other processes)."""
        if self.table is None:
            self.table = self._open()
        else:
            self.table.checkout_latest()
        self._seen()

    def _seen(self) -> None:
        """Note the handle's version (and its rows, when the version moved)."""
        version = 0 if self.table is None else int(self.table.version)
        if version != self._version:
            self._version = version
            self.rows = 0 if self.table is None else int(self.table.count_rows())

    @property
    def version(self) -> int:
        """The log's version as this handle last saw it (0 before its first append)."""
        return self._version

    @guarded("read the access log")
    def latest(self, where: str | None = None) -> pa.Table:
        """The newest counts of each memory in the log (matching ``where``, on id or agent).

        One row per (id, agent, created_at): the largest count and the latest
        access time logged for it.
        """
        if self.table is None:
            return access_schema().empty_table()
        query = self.table.search()
        if where:
            query = query.where(where)
        return newest(query.limit(None).to_arrow())

    @guarded("read the access log")
    def since(self, version: int) -> pa.Table | None:
        """The newest counts among rows appended after ``version`` (None: read it all).

        Compares the log's fragments then and now (each append is a new fragment);
        None when that version is no longer kept or the log was compacted since.
        """
        if self.table is None:
            return access_schema().empty_table()
        if version == 0:
            return None
        try:
            dataset = self.table.to_lance()
            then = {f.fragment_id for f in dataset.checkout_version(version).get_fragments()}
        except (ValueError, OSError, RuntimeError):
            return None
        fresh = [f for f in dataset.get_fragments() if f.fragment_id not in then]
        parts = [f.to_table() for f in fresh]
        return newest(pa.concat_tables(parts)) if parts else access_schema().empty_table()

    def overlay(self, rows: pa.Table, where: str | None = None) -> pa.Table:
        """``rows`` of the memories table with the log's newer counts laid over them.

        ``where`` is the predicate the rows were read with (on ``id`` or ``agent``,
        which the log also has), so only the matching part of the log is read.
        Rows without the :data:`COUNTED` columns come back as they are.
        """
        if self.table is None or not rows.num_rows:
            return rows
        if any(name not in rows.column_names for name in COUNTED):
            return rows
        return lay_over(rows, self.latest(where))

    # -- writes --------------------------------------------------------------------------

    @guarded("append access counts", write=True)
    def append(self, rows: pa.Table) -> int:
        """Append counts (rows in :func:`access_schema`); the log's version after it.

        Every :data:`_COMPACT_EVERY` appends the log's own fragments are merged and
        its old versions cleaned up: the log stays a few files whatever the rate.
        """
        if self.table is None:
            self.table = self._db.create_table(ACCESS_TABLE, schema=access_schema(), exist_ok=True)
        if rows.num_rows:
            self.table.add(rows.select(access_schema().names).cast(access_schema()))
            self.rows += rows.num_rows
            self._appends += 1
            if self._appends % _COMPACT_EVERY == 0:
                self._compact()
        self._version = int(self.table.version)
        return self._version

    @guarded("empty the access log", write=True)
    def clear(self, where: str | None = None) -> None:
        """Delete the log's rows (matching ``where``), then drop its superseded files."""
        if self.table is None:
            return
        self.table.delete(where or "true")
        self._compact()
        self._version = int(self.table.version)
        self.rows = 0 if where is None else int(self.table.count_rows())

    def _compact(self) -> None:
        dataset = self.table.to_lance()
        dataset.optimize.compact_files(num_threads=1)
        dataset.cleanup_old_versions(older_than=self.retention, error_if_tagged_old_versions=False)
        self.table.checkout_latest()


def newest(rows: pa.Table) -> pa.Table:
    """One row per (id, agent, created_at): the largest count and the latest access."""
    if not rows.num_rows:
        return access_schema().empty_table()
    grouped = rows.group_by(["id", "agent", "created_at"], use_threads=False).aggregate(
        [("access_count", "max"), ("last_accessed_at", "max")]
    )
    return pa.table(
        {
            "id": grouped.column("id"),
            "agent": grouped.column("agent"),
            "created_at": grouped.column("created_at"),
            "access_count": grouped.column("access_count_max"),
            "last_accessed_at": grouped.column("last_accessed_at_max"),
        },
        schema=access_schema(),
    )


def _keys(rows: pa.Table) -> pa.ChunkedArray:
    """``id@created_at`` (microseconds): the key a log row and a memory share."""
    micros = pc.cast(pc.cast(rows.column("created_at"), pa.int64()), pa.string())
    return pc.binary_join_element_wise(rows.column("id"), micros, "@")


def lay_over(rows: pa.Table, log: pa.Table) -> pa.Table:
    """``rows`` whose counts are the larger of their own and the log's (same id and creation)."""
    if not log.num_rows or not rows.num_rows:
        return rows
    at = pc.index_in(_keys(rows), value_set=_keys(log).combine_chunks())
    found = pc.is_valid(at).to_numpy(zero_copy_only=False)
    if not found.any():
        return rows
    pos = pc.fill_null(at, 0).to_numpy(zero_copy_only=False)
    mine = rows.column("access_count").to_numpy()
    theirs = log.column("access_count").to_numpy()[pos]
    counts = np.where(found, np.maximum(mine, theirs), mine)
    own = rows.column("last_accessed_at").cast(pa.int64()).to_numpy(zero_copy_only=False)
    logged = log.column("last_accessed_at").cast(pa.int64()).to_numpy(zero_copy_only=False)[pos]
    # Nulls (never accessed) come out of to_numpy as floats NaN: compare as floats.
    own_f = np.asarray(own, dtype=np.float64)
    logged_f = np.where(found, np.asarray(logged, dtype=np.float64), np.nan)
    last = np.fmax(own_f, logged_f)
    last_col = pa.array(
        np.nan_to_num(last, nan=0).astype(np.int64), pa.int64(), mask=np.isnan(last)
    ).cast(_TS)
    out = rows.set_column(
        rows.column_names.index("access_count"),
        rows.schema.field("access_count"),
        pa.array(counts, pa.int64()),
    )
    return out.set_column(
        out.column_names.index("last_accessed_at"), out.schema.field("last_accessed_at"), last_col
    )
