"""Validating what a user asks to store, before anything is written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from engramdb._types import FloatMatrix
from engramdb.config import Settings
from engramdb.errors import ValidationError
from engramdb.records import (
    Memory,
    MemoryKind,
    as_utc,
    check_id,
    check_metadata,
    check_name,
    check_text,
    new_id,
)

__all__ = ["ADD_FIELDS", "check_importance", "kind_of", "prepare", "ttl_seconds"]

ADD_FIELDS = frozenset(
    {"text", "kind", "session", "metadata", "importance", "created_at", "ttl", "parent", "vector"}
)
"""The fields a memory to add may have (the keyword arguments of ``add``)."""


def kind_of(value: object) -> MemoryKind:
    """A memory kind from its name, or a ValidationError listing the kinds."""
    try:
        return MemoryKind(str(value))
    except ValueError:
        raise ValidationError(
            f"kind {value!r} is not a memory kind; use one of "
            f"{', '.join(k.value for k in MemoryKind)}"
        ) from None


def ttl_seconds(ttl: object) -> float | None:
    """A time to live in seconds (None: no expiry)."""
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValidationError(f"ttl {ttl!r} must be a positive number of seconds or a timedelta")
    return float(seconds)


def check_importance(value: object) -> float:
    """An importance from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"importance {value!r} must be a number from 0 to 1")
    if not 0.0 <= value <= 1.0:
        raise ValidationError(f"importance {value!r} is outside 0 to 1")
    return float(value)


def prepare(
    item: Mapping[str, Any],
    *,
    agent: str,
    default_kind: MemoryKind,
    default_session: str | None,
    now: datetime,
    settings: Settings,
    check_vector: Callable[[object], FloatMatrix],
    check_parent: Callable[[str], None],
) -> tuple[Memory, FloatMatrix | None]:
    """One item of ``add_many`` as a validated memory and its vector, if it brought one.

    Args:
        item: The item's fields (see :data:`ADD_FIELDS`).
        agent: Whose memory it is.
        default_kind: Kind when the item does not say.
        default_session: Session when the item does not say.
        now: The write's time.
        settings: Size limits and the working memory's time to live.
        check_vector: Validates a vector the item brought.
        check_parent: Raises unless the parent id names a memory of the agent.
    """
    unknown = set(item) - ADD_FIELDS
    if unknown:
        raise ValidationError(
            f"unknown field(s) {sorted(unknown)} in memory; allowed: {sorted(ADD_FIELDS)}"
        )
    text = check_text(item.get("text"), max_bytes=settings.max_text_bytes)
    kind = kind_of(item.get("kind", default_kind))
    session = item.get("session", default_session)
    if session is not None:
        check_name(session, what="session")
    metadata = check_metadata(item.get("metadata"), max_bytes=settings.max_metadata_bytes)
    importance = item.get("importance")
    importance = 0.5 if importance is None else check_importance(importance)
    created = item.get("created_at")
    created = as_utc(created, field="created_at") if created is not None else now
    ttl = ttl_seconds(item.get("ttl"))
    if ttl is None and kind is MemoryKind.WORKING:
        ttl = settings.working_ttl_seconds
    expires = now + timedelta(seconds=ttl) if ttl is not None else None
    parent = item.get("parent")
    if parent is not None:
        parent = check_id(parent.id if isinstance(parent, Memory) else parent)
        check_parent(parent)
    vector = item.get("vector")
    vec = check_vector(vector) if vector is not None else None
    memory = Memory(
        id=new_id(created if item.get("created_at") is not None else None),
        agent=agent,
        kind=kind,
        text=text,
        session=session,
        metadata=metadata,
        importance=float(importance),
        created_at=created,
        updated_at=now,
        expires_at=expires,
        parent_id=parent,
    )
    return memory, vec
