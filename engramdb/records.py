"""Memory records, their kinds, names and identifiers.

A :class:`Memory` is an immutable value. Changing one (``engine.update``) stores
a new value under the same id; nothing hands out mutable state.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from engramdb._validation import CheckedModel
from engramdb.config import DEFAULT_MAX_METADATA_BYTES, DEFAULT_MAX_TEXT_BYTES
from engramdb.errors import ValidationError

__all__ = [
    "Hit",
    "Memory",
    "MemoryKind",
    "MemoryStatus",
    "check_metadata",
    "check_name",
    "check_text",
    "new_id",
    "utcnow",
]

_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class MemoryKind(StrEnum):
    """What a memory is about."""

    EPISODIC = "episodic"
    """A time-stamped event or conversation turn."""
    SEMANTIC = "semantic"
    """A fact; what consolidation produces."""
    PROCEDURAL = "procedural"
    """How to do something: a skill or an instruction."""
    WORKING = "working"
    """A short-lived scratchpad entry, bounded per (agent, session)."""


class MemoryStatus(StrEnum):
    """Whether recall returns a memory by default."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    """Covered by a consolidated memory or forgotten by policy; ``get`` still finds it."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, at microsecond precision (what storage keeps)."""
    return datetime.now(UTC)


def as_utc(value: datetime, *, field: str = "time") -> datetime:
    """A timezone-aware UTC datetime; a naive one is taken to be UTC already."""
    if not isinstance(value, datetime):
        raise ValidationError(f"{field} {value!r} is not a datetime; pass a datetime.datetime")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def check_name(value: object, *, what: str) -> str:
    """Validate an agent or session name: 1 to 128 of letters, digits and ``-_.:@``.

    The rule keeps names safe as path parts and inside storage filters: ``..``,
    slashes and quotes can never reach the file system or a query.
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value) or set(value) == {"."}:
        raise ValidationError(
            f"{what} name {value!r} is not allowed; use 1 to 128 letters, digits or "
            "'-_.:@' (not only dots), e.g. 'assistant-1'"
        )
    return value


def check_text(value: object, *, max_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> str:
    """Validate memory text: a non-blank string of at most ``max_bytes`` UTF-8 bytes."""
    if not isinstance(value, str):
        raise ValidationError(f"text must be a string, got {type(value).__name__} {value!r:.80}")
    if not value.strip():
        raise ValidationError(f"text {value!r} is empty; a memory needs some text")
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise ValidationError(
            f"text of {size} bytes exceeds the limit of {max_bytes}; split it into several "
            "memories or raise ENGRAMDB_MAX_TEXT_BYTES"
        )
    return value


def check_metadata(value: object, *, max_bytes: int = DEFAULT_MAX_METADATA_BYTES) -> dict[str, Any]:
    """Validate metadata: a JSON-serializable dict with string keys, at most ``max_bytes``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"metadata must be a dict, got {type(value).__name__} {value!r:.80}")
    try:
        encoded = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"metadata {value!r:.120} is not JSON-serializable ({exc}); use str, int, float, "
            "bool, None, lists and dicts with string keys"
        ) from None
    if any(not isinstance(k, str) for k in value):
        raise ValidationError(f"metadata keys must be strings, got {list(value)!r:.120}")
    if len(encoded.encode("utf-8")) > max_bytes:
        raise ValidationError(
            f"metadata of {len(encoded)} bytes exceeds the limit of {max_bytes}; store large "
            "payloads elsewhere and keep a reference"
        )
    # A round trip gives a plain-JSON copy the caller can no longer mutate under us.
    result: dict[str, Any] = json.loads(encoded)
    return result


class _IdGenerator:
    """Monotonic ULIDs: 48 bits of milliseconds, then 80 bits that increase within a millisecond.

    Ids sort by creation time as strings, and two ids made in the same
    millisecond by one process still sort in creation order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def __call__(self, at: datetime | None = None) -> str:
        with self._lock:
            ms = int((at.timestamp() if at else time.time()) * 1000)
            if at is None and ms <= self._last_ms:
                ms = self._last_ms
                rand = self._last_rand + 1
            else:
                rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
            if at is None:
                self._last_ms, self._last_rand = ms, rand
            value = (ms << 80) | (rand & ((1 << 80) - 1))
        chars = []
        for _ in range(26):
            chars.append(_CROCKFORD[value & 31])
            value >>= 5
        return "".join(reversed(chars))


new_id = _IdGenerator()
"""Make a new unique, time-sortable id (a ULID). ``new_id(at)`` dates it at ``at``."""


def check_id(value: object) -> str:
    """Validate a memory id (a 26-character ULID)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValidationError(f"memory id {value!r} is not a valid id (26-character ULID)")
    return value


def _shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class Memory(CheckedModel):
    """One memory: immutable, validated, JSON-serializable.

    Example:
        >>> m = engine.add("Paris is the capital of France", agent="bot", kind="semantic")
        >>> m.kind, m.status
        (<MemoryKind.SEMANTIC: 'semantic'>, <MemoryStatus.ACTIVE: 'active'>)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    id: str = Field(default_factory=new_id)
    agent: str
    kind: MemoryKind = MemoryKind.EPISODIC
    text: str
    session: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    importance: float = Field(0.5, ge=0.0, le=1.0)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_accessed_at: datetime | None = None
    access_count: int = Field(0, ge=0)
    expires_at: datetime | None = None
    """When the memory stops being returned; None: never."""
    parent_id: str | None = None
    """The more general memory this one sits under (a topic, or a consolidated gist)."""
    source_ids: tuple[str, ...] = ()
    """Provenance: the memories this one was consolidated from."""
    status: MemoryStatus = MemoryStatus.ACTIVE
    chunks: int = Field(1, ge=1)
    """How many model windows the text was embedded in (long texts are chunked and pooled)."""

    @field_validator("agent")
    @classmethod
    def _agent(cls, value: str) -> str:
        return check_name(value, what="agent")

    @field_validator("session")
    @classmethod
    def _session(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, what="session")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        # The byte limit is configurable and enforced by the engine; here only non-blank.
        if not value.strip():
            raise ValueError(f"text {value!r} is empty; a memory needs some text")
        return value

    @field_validator("created_at", "updated_at", "last_accessed_at", "expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @property
    def is_expired(self) -> bool:
        """Whether ``expires_at`` has passed."""
        return self.expires_at is not None and self.expires_at <= utcnow()

    @property
    def pinned(self) -> bool:
        """Pinned memories (importance 1.0 or ``metadata['pinned']``) are never forgotten."""
        return self.importance >= 1.0 or bool(self.metadata.get("pinned"))

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # One line: who and what, the text shortened; model_dump() has every field.
        yield "id", self.id
        yield "agent", self.agent
        yield "kind", self.kind.value
        if self.status is not MemoryStatus.ACTIVE:
            yield "status", self.status.value
        yield "text", _shorten(self.text)


@dataclass(frozen=True, slots=True)
class Hit:
    """One recall result. ``score`` is higher for a better match, whatever the space.

    Attributes:
        memory: The memory found.
        score: The blended ranking score (similarity plus the weighted parts below).
        similarity: Cosine similarity in the Euclidean space; in the Poincaré space
            the same direction similarity (see ``engramdb.hyperbolic``).
        recency: The recency part before weighting, in [0, 1].
        importance: The memory's importance, in [0, 1].
        access: The access part before weighting, in [0, 1).
        depth: Generality signal in the Poincaré space (0 = most general); None otherwise.
    """

    memory: Memory
    score: float
    similarity: float
    recency: float = 0.0
    importance: float = 0.0
    access: float = 0.0
    depth: float | None = None

    def __repr__(self) -> str:
        return (
            f"Hit(score={self.score:.3f}, similarity={self.similarity:.3f}, memory={self.memory!r})"
        )

    @property
    def covers(self) -> tuple[str, ...]:
        """The source memories a consolidated memory stands for (empty for originals)."""
        return self.memory.source_ids
