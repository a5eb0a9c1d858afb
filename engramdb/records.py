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
from datetime import UTC, datetime, timedelta
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
    "check_created_at",
    "check_metadata",
    "check_name",
    "check_text",
    "check_where",
    "new_id",
    "utcnow",
]

_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_MAX_MS = (1 << 48) - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest ``created_at`` a memory may have (ids count milliseconds from it)."""


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


def check_created_at(value: object, *, now: datetime, skew: timedelta) -> datetime:
    """A memory's ``created_at``: from 1970 on, and at most ``skew`` past ``now``.

    A far-future time would make every other memory of the agent look old
    (recall's recency, consolidation's forgetting), so it is refused.
    """
    when = as_utc(value, field="created_at")  # type: ignore[arg-type]
    if when < EARLIEST:
        raise ValidationError(
            f"created_at {when.isoformat()} is before {EARLIEST.date()}; engramdb dates "
            "memories from 1970 on: store an older date in metadata"
        )
    latest = now + skew
    if when > latest:
        raise ValidationError(
            f"created_at {when.isoformat()} is {when - now} in the future (the limit is "
            f"{skew}, Settings.max_clock_skew); pass the time it happened, or fix this "
            "machine's clock"
        )
    return when


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
    size = len(utf8(value, what="text"))
    if size > max_bytes:
        raise ValidationError(
            f"text of {size} bytes exceeds the limit of {max_bytes}; split it into several "
            "memories or raise ENGRAMDB_MAX_TEXT_BYTES"
        )
    return value


def utf8(value: str, *, what: str) -> bytes:
    """``value`` as UTF-8; a lone surrogate (not text, cannot be stored) is refused."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end]
        raise ValidationError(
            f"{what} has a lone surrogate {bad!r} at position {exc.start}, which is not "
            "text and cannot be stored; decode the source with errors='replace'"
        ) from None


MAX_NESTING = 32
"""How deep metadata and ``where`` filters may nest (dicts and lists)."""


def nesting_depth(value: object, *, limit: int = MAX_NESTING) -> int:
    """How deeply dicts and lists nest in ``value``; stops counting past ``limit``."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                break
            stack.extend((v, depth) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def _check_keys(value: object) -> None:
    """Metadata keys are strings that a ``where`` filter can reach: no ``.``, no leading ``$``."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str):
                    raise ValidationError(f"metadata keys must be strings, got {key!r:.60}")
                if "." in key or key.startswith("$"):
                    raise ValidationError(
                        f"metadata key {key!r:.60} cannot be filtered on: in a where filter "
                        "'.' separates nested keys and '$' starts an operator; use another "
                        f"key, e.g. {key.replace('.', '_').lstrip('$')!r:.60}"
                    )
                stack.append(child)
        elif isinstance(node, list | tuple):
            stack.extend(node)


def check_metadata(value: object, *, max_bytes: int = DEFAULT_MAX_METADATA_BYTES) -> dict[str, Any]:
    """Validate metadata: a JSON-serializable dict with string keys, at most ``max_bytes``.

    Keys may not contain ``.`` or start with ``$`` (a ``where`` filter could not
    name them), and values nest at most :data:`MAX_NESTING` deep.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"metadata must be a dict, got {type(value).__name__} {value!r:.80}")
    depth = nesting_depth(value)
    if depth > MAX_NESTING:
        raise ValidationError(f"metadata nests more than {MAX_NESTING} levels deep; flatten it")
    _check_keys(value)
    try:
        encoded = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"metadata {value!r:.120} is not JSON-serializable ({exc}); use str, int, float, "
            "bool, None, lists and dicts with string keys"
        ) from None
    if len(encoded.encode("utf-8")) > max_bytes:
        raise ValidationError(
            f"metadata of {len(encoded)} bytes exceeds the limit of {max_bytes}; store large "
            "payloads elsewhere and keep a reference"
        )
    # A round trip gives a plain-JSON copy the caller can no longer mutate under us.
    result: dict[str, Any] = json.loads(encoded)
    return result


def check_where(value: object) -> None:
    """The shape of a ``where`` filter: string keys, nesting at most :data:`MAX_NESTING`.

    Operators and values are checked when the filter is compiled.
    """
    if nesting_depth(value) > MAX_NESTING:
        raise ValidationError(f"where filter nests more than {MAX_NESTING} levels deep")
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str):
                    raise ValidationError(
                        f"where filter key {key!r:.60} is not a string; keys are metadata "
                        "keys or operators such as '$and'"
                    )
                stack.append(child)
        elif isinstance(node, list | tuple):
            stack.extend(node)


class _IdGenerator:
    """Monotonic ULIDs: 48 bits of milliseconds, then 80 bits that increase within a millisecond.

    Ids sort by creation time as strings, and two ids made in the same
    millisecond by one process (or dated to the same millisecond one after the
    other, as a batch of turns given one ``created_at``) sort in creation order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0
        self._dated_ms = -1
        self._dated_rand = 0

    def __call__(self, at: datetime | None = None) -> str:
        with self._lock:
            ms = int((at.timestamp() if at else time.time()) * 1000)
            # 48 bits of milliseconds from 1970 (to year 10889). A time outside
            # (refused on input, possible in old stores) takes the nearest end, so
            # ids still sort by time instead of wrapping round.
            ms = min(max(ms, 0), _MAX_MS)
            if at is None:
                if ms <= self._last_ms:  # same millisecond, or a clock that went back
                    ms, rand = self._last_ms, self._last_rand + 1
                else:
                    rand = _random_tail()
                self._last_ms, self._last_rand = ms, rand
            else:
                # Dated ids count up within a millisecond too, whatever the date, so
                # a batch of memories dated alike keeps the order it was given in.
                rand = self._dated_rand + 1 if ms == self._dated_ms else _random_tail()
                self._dated_ms, self._dated_rand = ms, rand
            value = (ms << 80) | (rand & ((1 << 80) - 1))
        chars = []
        for _ in range(26):
            chars.append(_CROCKFORD[value & 31])
            value >>= 5
        return "".join(reversed(chars))


def _random_tail() -> int:
    # 79 random bits: room to count up within a millisecond without overflowing 80.
    return int.from_bytes(os.urandom(10), "big") >> 1


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
        lexical: The memory's BM25 score for the query (with its context; 0 when
            it matched no query word, and in ``mode="dense"``).
        relevance: What the score blends with the other parts: the cosine
            similarity in ``mode="dense"``, the fused lexical and dense evidence
            (with the session prior) in ``"hybrid"``, normalised BM25 in ``"lexical"``.
        group: With ``group_by="session"``, the session this hit stands for.
        group_score: With ``group_by="session"``, the session's score (hits are
            ordered by it).
    """

    memory: Memory
    score: float
    similarity: float
    recency: float = 0.0
    importance: float = 0.0
    access: float = 0.0
    depth: float | None = None
    lexical: float = 0.0
    relevance: float = 0.0
    group: str | None = None
    group_score: float | None = None

    def __repr__(self) -> str:
        return (
            f"Hit(score={self.score:.3f}, similarity={self.similarity:.3f}, memory={self.memory!r})"
        )

    @property
    def covers(self) -> tuple[str, ...]:
        """The source memories a consolidated memory stands for (empty for originals)."""
        return self.memory.source_ids
