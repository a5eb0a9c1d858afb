"""The store of record: every memory and its vector in one LanceDB table.

LanceDB commits are atomic (data files first, then a new manifest), so a write
that returned is durable and a killed writer leaves the previous version.
Every write here is one commit; batches stay batches.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
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
from engramdb.records import Memory, MemoryKind, MemoryStatus
from engramdb.errors import StoreFormatError

__all__ = ["STORE_FORMAT", "MemoryTable", "memories_to_arrow", "read_meta", "write_meta"]

log = logging.getLogger(__name__)

STORE_FORMAT = 1
TABLE = "memories"
META_FILE = "engramdb.json"
_IN_CHUNK = 2_000
"""Ids per ``id IN (...)`` predicate: keeps predicates a size the planner handles well."""

_TS = pa.timestamp("us", tz="UTC")


def schema(dim: int) -> pa.Schema:
    """The memories table: one row per memory, its vector last."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("agent", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("session", pa.string()),
            pa.field("metadata", pa.string(), nullable=False),
            pa.field("importance", pa.float64(), nullable=False),
            pa.field("created_at", _TS, nullable=False),
            pa.field("updated_at", _TS, nullable=False),
            pa.field("last_accessed_at", _TS),
            pa.field("access_count", pa.int64(), nullable=False),
            pa.field("expires_at", _TS),
            pa.field("parent_id", pa.string()),
            pa.field("source_ids", pa.list_(pa.string()), nullable=False),
            pa.field("status", pa.string(), nullable=False),
            pa.field("chunks", pa.int32(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
        ]
    )


RECORD_COLUMNS = [f.name for f in schema(1) if f.name != "vector"]


def memories_to_arrow(memories: Sequence[Memory], vectors: FloatMatrix, dim: int) -> pa.Table:
    """Memories and their vectors as one Arrow table in the store's schema."""
    vec = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(memories), dim)
    columns: dict[str, Any] = {
        "id": [m.id for m in memories],
        "agent": [m.agent for m in memories],
        "kind": [m.kind.value for m in memories],
        "text": [m.text for m in memories],
        "session": [m.session for m in memories],
        "metadata": [json.dumps(m.metadata, sort_keys=True) for m in memories],
        "importance": [m.importance for m in memories],
        "created_at": [m.created_at for m in memories],
        "updated_at": [m.updated_at for m in memories],
        "last_accessed_at": [m.last_accessed_at for m in memories],
        "access_count": [m.access_count for m in memories],
        "expires_at": [m.expires_at for m in memories],
        "parent_id": [m.parent_id for m in memories],
        "source_ids": [list(m.source_ids) for m in memories],
        "status": [m.status.value for m in memories],
        "chunks": [m.chunks for m in memories],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), dim),
    }
    return pa.table(columns, schema=schema(dim))


_TIME_COLUMNS = frozenset({"created_at", "updated_at", "last_accessed_at", "expires_at"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _times(column: pa.ChunkedArray) -> list[datetime | None]:
    # Exact microseconds, and the same tzinfo (datetime.UTC) as freshly made records.
    micros = column.cast(pa.int64()).to_pylist()
    return [None if us is None else _EPOCH + timedelta(microseconds=us) for us in micros]


def _plain(column: pa.ChunkedArray) -> list[Any]:
    return column.to_pylist()  # type: ignore[no-any-return]


def arrow_to_memories(table: pa.Table) -> list[Memory]:
    """Rows of the memories table back to :class:`Memory` values (trusted: no re-validation)."""
    cols: dict[str, list[Any]] = {
        name: _times(table.column(name)) if name in _TIME_COLUMNS else _plain(table.column(name))
        for name in RECORD_COLUMNS
    }
    kinds = {k.value: k for k in MemoryKind}
    statuses = {s.value: s for s in MemoryStatus}
    return [
        Memory.model_construct(
            id=cols["id"][i],
            agent=cols["agent"][i],
            kind=kinds[cols["kind"][i]],
            text=cols["text"][i],
            session=cols["session"][i],
            metadata=json.loads(cols["metadata"][i]),
            importance=cols["importance"][i],
            created_at=cols["created_at"][i],
            updated_at=cols["updated_at"][i],
            last_accessed_at=cols["last_accessed_at"][i],
            access_count=cols["access_count"][i],
            expires_at=cols["expires_at"][i],
            parent_id=cols["parent_id"][i],
            source_ids=tuple(cols["source_ids"][i]),
            status=statuses[cols["status"][i]],
            chunks=cols["chunks"][i],
        )
        for i in range(table.num_rows)
    ]


def arrow_vectors(table: pa.Table, dim: int) -> FloatMatrix:
    """The vector column as a contiguous float32 matrix."""
    col = table.column("vector").combine_chunks()
    flat = col.values.to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat, dtype=np.float32).reshape(-1, dim)


def _quote_list(ids: Iterable[str]) -> str:
    # Ids and names are validated to a quote-free alphabet before they get here.
    return ", ".join(f"'{i}'" for i in ids)


def read_meta(root: Path) -> dict[str, Any] | None:
    """The store's metadata file, or None for a new store."""
    path = root / META_FILE
    if not path.exists():
        return None
    try:
        meta: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreFormatError(f"cannot read {path}: {exc}; the store is damaged") from exc
    if meta.get("format", 0) > STORE_FORMAT:
        raise StoreFormatError(
            f"store {root} has format {meta.get('format')}, newer than this engramdb "
            f"understands ({STORE_FORMAT}); upgrade engramdb"
        )
    return meta


def write_meta(root: Path, meta: dict[str, Any]) -> None:
    """Write the metadata file atomically: a temporary file, fsync, then rename."""
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".meta-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, root / META_FILE)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class MemoryTable:
    """The LanceDB table that holds every memory of a store.

    Args:
        root: The store directory.
        dim: Vector dimension.
        compact_every: Commits between two automatic compactions.
        retention: How long superseded versions are kept before cleanup
            (readers in other processes may still be reading them).
    """

    def __init__(
        self,
        root: Path,
        dim: int,
        *,
        compact_every: int = 64,
        retention: timedelta = timedelta(minutes=10),
    ) -> None:
        self.root = root
        self.dim = dim
        self.compact_every = compact_every
        self.retention = retention
        self._db = lancedb.connect(str(root / "lance"))
        self._commits = 0
        if TABLE in self._db.list_tables().tables:
            self.table = self._db.open_table(TABLE)
            found = self.table.schema.field("vector").type.list_size
            if found != dim:
                raise StoreFormatError(
                    f"store {root} holds vectors of dim {found}, not {dim}; the metadata file "
                    "and the table disagree: the store is damaged"
                )
        else:
            self.table = self._db.create_table(TABLE, schema=schema(dim))

    # -- reads ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Move to the newest committed version (for readers in other processes)."""
        self.table.checkout_latest()  # type: ignore[no-untyped-call]

    @property
    def version(self) -> int:
        return int(self.table.version)

    def scan(self, where: str | None = None, *, columns: Sequence[str] | None = None) -> pa.Table:
        """Rows matching a SQL predicate (all rows if None), in storage order."""
        query = self.table.search()
        if where:
            query = query.where(where)
        if columns is not None:
            query = query.select(list(columns))
        return query.limit(None).to_arrow()

    def scan_agent(self, agent: str, *, columns: Sequence[str] | None = None) -> pa.Table:
        return self.scan(f"agent = '{agent}'", columns=columns)

    def fetch(self, ids: Sequence[str]) -> pa.Table:
        """Rows for the given ids (any order; missing ids are absent)."""
        parts = [
            self.scan(f"id IN ({_quote_list(ids[i : i + _IN_CHUNK])})")
            for i in range(0, len(ids), _IN_CHUNK)
        ]
        return pa.concat_tables(parts) if parts else schema(self.dim).empty_table()

    def agents(self) -> list[str]:
        col = self.scan(columns=["agent"]).column("agent")
        return sorted(set(col.to_pylist()))

    def count(self, where: str | None = None) -> int:
        return int(self.table.count_rows(where))

    # -- writes (each is one commit) -----------------------------------------------------

    def append(self, memories: Sequence[Memory], vectors: FloatMatrix) -> None:
        if memories:
            self.table.add(memories_to_arrow(memories, vectors, self.dim))
            self._committed()

    def upsert(self, memories: Sequence[Memory], vectors: FloatMatrix) -> None:
        """Insert or replace whole rows by id."""
        if memories:
            data = memories_to_arrow(memories, vectors, self.dim)
            (
                self.table.merge_insert("id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data)
            )
            self._committed()

    def update_columns(self, data: pa.Table) -> None:
        """Update some columns of existing rows, matched by the ``id`` column of ``data``."""
        if data.num_rows:
            self.table.merge_insert("id").when_matched_update_all().execute(data)
            self._committed()

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        # One predicate, one commit: a deletion is all or nothing.
        self.table.delete(f"id IN ({_quote_list(ids)})")
        self._committed()

    def replace_agent(self, agent: str, memories: Sequence[Memory], vectors: FloatMatrix) -> None:
        """Make ``memories`` the agent's whole memory, in one atomic commit."""
        data = memories_to_arrow(memories, vectors, self.dim)
        (
            self.table.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(f"agent = '{agent}'")
            .execute(data)
        )
        self._committed()

    def _committed(self) -> None:
        self._commits += 1
        if self._commits % self.compact_every == 0:
            self.compact()

    def compact(self) -> None:
        """Merge small fragments and drop superseded versions older than the retention.

        LanceDB refuses a cleanup that would reach a tagged version (a
        checkpoint), so while checkpoints exist, cleanup stops short of the oldest
        one: versions older than it are dropped when it is deleted.
        """
        self.table.optimize(cleanup_older_than=self._cleanup_horizon())

    def _cleanup_horizon(self) -> timedelta:
        tagged = {int(t["version"]) for t in self.table.tags.list().values()}
        if not tagged:
            return self.retention
        stamps = {int(v["version"]): v["timestamp"] for v in self.table.list_versions()}
        oldest: datetime = min(stamps[v] for v in tagged if v in stamps)
        if oldest.tzinfo is None:  # LanceDB reports local naive times
            oldest = oldest.astimezone(UTC)
        age = datetime.now(UTC) - oldest + timedelta(minutes=1)
        return max(self.retention, age)

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

    # -- versions ------------------------------------------------------------------------

    def versions(self) -> list[dict[str, Any]]:
        return list(self.table.list_versions())

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)
