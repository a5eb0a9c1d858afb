"""An agent's memory records held as columns by label, read as :class:`Memory` values on demand.

A pydantic :class:`~engramdb.records.Memory` per memory costs about 1.8 KB of
RAM (its field dict, four datetimes, strings, a set of field names): more than
the vector. The view keeps instead what a record is made of in columns (times
as integer microseconds, importance as float64, text and metadata by label,
rare fields in a sparse dict) and builds the :class:`Memory` when one is read:
for recall's k hits, not for every memory. Reading a record gives a value equal
to the one that was stored; the access fields come from the view's columns, so
they are always the current counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from engramdb.index.columns import Column
from engramdb.records import Memory, MemoryKind, MemoryStatus

__all__ = ["KINDS", "NO_TIME", "RecordColumns", "from_micros", "to_micros"]

KINDS = list(MemoryKind)
NO_TIME = -1
"""Microseconds standing for "no time" (every stored time is from 1970 on)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS = (MemoryStatus.ACTIVE, MemoryStatus.ARCHIVED)
_MICRO = timedelta(microseconds=1)
_COMMON: tuple[str | None, tuple[str, ...], int] = (None, (), 1)
"""(parent_id, source_ids, chunks) of most memories."""


def to_micros(value: datetime | None) -> int:
    """Exact integer microseconds since the epoch (floats would lose the last digits)."""
    return NO_TIME if value is None else (value - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime | None:
    return None if value == NO_TIME else _EPOCH + timedelta(microseconds=int(value))


class RecordColumns(Mapping[str, Memory]):
    """Records by id, stored as columns by label; a read builds the :class:`Memory`.

    The view owns the columns recall filters and scores on (kind, archived,
    session, access counts) and passes them in; this class keeps the rest.

    Args:
        agent: Whose records they are.
        ids: The view's label -> id list (shared, not copied).
        label_of: The view's id -> label map (shared, not copied).
        columns: The view's ``kind``, ``archived``, ``session``, ``access`` and
            ``last_access`` columns.
        session_name: Session code -> name.
    """

    def __init__(
        self,
        agent: str,
        ids: list[str | None],
        label_of: dict[str, int],
        columns: Mapping[str, Column],
        session_name: Callable[[int], str | None],
    ) -> None:
        self.agent = agent
        self._ids = ids
        self._label_of = label_of
        self._view = columns
        self._session_name = session_name
        self.text: list[str | None] = []
        self._metadata: dict[int, dict[str, Any]] = {}
        """By label, only where it is not empty (most memories have none)."""
        self.created = Column(np.int64)
        self.updated = Column(np.int64)
        self._expires: dict[int, int] = {}
        """Expiry by label, only where there is one (most memories have none)."""
        self.importance = Column(np.float64)
        self._rare: dict[int, tuple[str | None, tuple[str, ...], int]] = {}
        """Label -> (parent_id, source_ids, chunks), only where one differs from its default."""

    # -- the Mapping -----------------------------------------------------------------------

    def __getitem__(self, memory_id: str) -> Memory:
        return self.memory(self._label_of[memory_id])

    def __contains__(self, memory_id: object) -> bool:
        return memory_id in self._label_of

    def __iter__(self) -> Iterator[str]:
        return iter(self._label_of)

    def __len__(self) -> int:
        return len(self._label_of)

    # -- reading ---------------------------------------------------------------------------

    def memory(self, label: int) -> Memory:
        """The record at a live label, with its current access count."""
        return self.memories([label])[0]

    def memories(self, labels: Sequence[int]) -> list[Memory]:
        """The records at live labels, in order (one read per column for all of them)."""
        at = np.asarray(labels, dtype=np.int64)
        view = self._view
        kinds = view["kind"].data[at].tolist()
        sessions = view["session"].data[at].tolist()
        archived = view["archived"].data[at].tolist()
        access = view["access"].data[at].tolist()
        last = view["last_access"].data[at].tolist()
        created = self.created.data[at].tolist()
        updated = self.updated.data[at].tolist()
        expiring = self._expires
        importance = self.importance.data[at].tolist()
        out = []
        for i, label in enumerate(at.tolist()):
            mid, text = self._ids[label], self.text[label]
            if mid is None or text is None:
                raise KeyError(f"label {label} holds no memory of agent {self.agent!r}")
            parent, sources, chunks = self._rare.get(label, _COMMON)
            meta = self._metadata.get(label)
            out.append(
                _construct(
                    id=mid,
                    agent=self.agent,
                    kind=KINDS[kinds[i]],
                    text=text,
                    session=self._session_name(sessions[i]),
                    metadata={} if meta is None else meta,
                    importance=importance[i],
                    created_at=_EPOCH + _MICRO * created[i],
                    updated_at=_EPOCH + _MICRO * updated[i],
                    last_accessed_at=None if last[i] == NO_TIME else _EPOCH + _MICRO * last[i],
                    access_count=access[i],
                    expires_at=(
                        None if label not in expiring else _EPOCH + _MICRO * expiring[label]
                    ),
                    parent_id=parent,
                    source_ids=sources,
                    status=_STATUS[archived[i]],
                    chunks=chunks,
                )
            )
        return out

    def metadata(self, label: int) -> Mapping[str, Any]:
        """A label's metadata, without building its record (for ``where`` filters)."""
        return self._metadata.get(label, _EMPTY)

    def parent_id(self, label: int) -> str | None:
        return self._rare.get(label, _COMMON)[0]

    # -- writing (the view keeps its own columns) -------------------------------------------

    def trim(self) -> None:
        """Drop the columns' spare capacity (after a bulk build)."""
        for column in (self.created, self.updated, self.importance):
            column.trim()

    def append(self, memories: Sequence[Memory]) -> None:
        """Keep the records of memories given the next labels, in order."""
        start = len(self.text)
        self.text.extend(m.text for m in memories)
        self.created.extend(np.array([to_micros(m.created_at) for m in memories], np.int64))
        self.updated.extend(np.array([to_micros(m.updated_at) for m in memories], np.int64))
        self.importance.extend(np.array([m.importance for m in memories], np.float64))
        for i, m in enumerate(memories):
            self._keep_sparse(start + i, m)

    def replace(self, label: int, memory: Memory) -> None:
        """New values for a live label's record (same text, session and creation time)."""
        self.updated.data[label] = to_micros(memory.updated_at)
        self.importance.data[label] = memory.importance
        self._keep_sparse(label, memory)

    def drop(self, label: int) -> None:
        """Forget a label's record (the label is dead for good)."""
        self.text[label] = None
        self._metadata.pop(label, None)
        self._expires.pop(label, None)
        self._rare.pop(label, None)

    def _keep_sparse(self, label: int, m: Memory) -> None:
        """Keep the fields most memories leave at their default only where they do not."""
        if m.metadata:
            self._metadata[label] = m.metadata
        else:
            self._metadata.pop(label, None)
        if m.expires_at is not None:
            self._expires[label] = to_micros(m.expires_at)
        else:
            self._expires.pop(label, None)
        if m.parent_id is None and not m.source_ids and m.chunks == 1:
            self._rare.pop(label, None)
        else:
            self._rare[label] = (m.parent_id, tuple(m.source_ids), m.chunks)


_EMPTY: Mapping[str, Any] = {}
_FIELDS = frozenset(Memory.model_fields)
_SET = object.__setattr__
_PLAIN = Memory.__pydantic_post_init__ is None and not Memory.__private_attributes__
"""Whether a Memory is nothing but its field values (no post-init, no private state)."""


def _construct(**values: Any) -> Memory:
    """A :class:`Memory` from trusted values of every field, as ``model_construct`` makes it.

    ``model_construct`` walks every field's aliases and defaults (about 10 µs a
    record); with every field given, the result is its field dict and the set of
    fields, which this sets directly (a third of the time: recall builds its k hits).
    """
    if not _PLAIN:  # pragma: no cover - a Memory with private state: the general path
        return Memory.model_construct(**values)
    m = Memory.__new__(Memory)
    _SET(m, "__dict__", values)
    _SET(m, "__pydantic_fields_set__", set(_FIELDS))
    _SET(m, "__pydantic_extra__", None)
    _SET(m, "__pydantic_private__", None)
    return m
