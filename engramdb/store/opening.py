"""Opening a store: its metadata file checked against the caller's embedder and space.

A new store is made in this order, under the writer lock (the lease, on object
storage): the table, then the
metadata file. The metadata file is therefore the mark of a complete store: a
reader that finds none (or no table) gets :class:`~engramdb.errors.NotFoundError`
and creates nothing, and a writer that finds one without its table, or a table
with data and no metadata file, gets :class:`~engramdb.errors.StoreCorruptError`
instead of quietly starting over.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from engramdb.embeddings import EmbedderInfo
from engramdb.errors import (
    EmbedderMismatchError,
    NotFoundError,
    StoreCorruptError,
    ValidationError,
)
from engramdb.records import utcnow
from engramdb.store.location import StoreLocation
from engramdb.store.meta import META_FILE, STORE_FORMAT, read_meta, write_meta
from engramdb.store.table import MemoryTable, table_dir, table_exists

__all__ = ["open_table"]

_RESTORE = (
    "restore the agents from snapshots into a new store (engramdb import), or put the "
    "missing files back from a backup"
)


def open_table(
    where: Path | StoreLocation,
    info: EmbedderInfo,
    *,
    space: str,
    read_only: bool,
    compact_every: int,
    retention: timedelta,
) -> MemoryTable:
    """The store's table, after checking (or, for a new store, writing) its metadata.

    Raises:
        NotFoundError: a reader asked for a store that does not exist (or is
            still being created).
        StoreCorruptError: the metadata file or the table is missing while the
            other is there, or either is damaged.
        EmbedderMismatchError: the store was built by another embedder.
        ValidationError: the store was built in the other space.
    """
    root = StoreLocation.of(where)
    meta = read_meta(root)
    has_table = table_exists(root)

    def table(*, create: bool = False) -> MemoryTable:
        return MemoryTable(
            root,
            info[1],
            read_only=read_only,
            compact_every=compact_every,
            retention=retention,
            create=create,
        )

    if read_only and (meta is None or not has_table):
        raise NotFoundError(
            f"no store at {root} (metadata file: {'yes' if meta else 'no'}, table: "
            f"{'yes' if has_table else 'no'}); a writer may still be creating it: retry, or "
            "open it once without read_only to create it"
        )
    if meta is None:
        if has_table:
            found = table()
            if found.count() or found.tags() or found.version > 1:
                raise StoreCorruptError(
                    f"store {root} has a table of {found.count()} memories but no metadata file "
                    f"{root.child(META_FILE)}, which names the embedder and space it was built "
                    f"with; put the file back from a backup, or {_RESTORE}"
                )
            # An empty table and no metadata: a creation that stopped in between.
        else:
            found = table(create=True)
        meta = {
            "format": STORE_FORMAT,
            "embedder": {"name": info[0], "dim": info[1], "normalized": info[2]},
            "space": space,
            "created_at": utcnow().isoformat(),
        }
        write_meta(root, meta)
        return found
    if not has_table:
        raise StoreCorruptError(
            f"store {root} has a metadata file but its table {table_dir(root)} is missing: "
            f"its memories are gone from this directory; {_RESTORE}"
        )
    stored = EmbedderInfo(**meta["embedder"])
    if stored != info:
        raise EmbedderMismatchError(
            f"store {root} was built with embedder {stored}, not {info}; open it "
            f"with embedder={stored[0]!r}, or export a snapshot and import it with "
            "reembed=True into a store built with the new embedder"
        )
    if meta["space"] != space:
        raise ValidationError(
            f"store {root} was built in the {meta['space']!r} space, not {space!r}; "
            f"open it with space={meta['space']!r}"
        )
    return table()
