"""The memories table's schema, and conversions between its rows and records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from engramdb._types import FloatMatrix
from engramdb.records import Memory, MemoryKind, MemoryStatus

__all__ = [
    "RECORD_COLUMNS",
    "arrow_to_memories",
    "arrow_vectors",
    "memories_to_arrow",
    "schema",
]

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
