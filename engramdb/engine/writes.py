"""Validating what a user asks to store, before anything is written."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from engramdb._types import FloatMatrix
from engramdb.config import Settings
from engramdb.errors import ValidationError
from engramdb.records import (
    Memory,
    MemoryKind,
    check_created_at,
    check_id,
    check_metadata,
    check_name,
    check_text,
    new_id,
)

__all__ = [
    "ADD_FIELDS",
    "MAX_TTL_SECONDS",
    "check_importance",
    "kind_of",
    "prepare",
    "ttl_seconds",
]

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


MAX_TTL_SECONDS = 100 * 365.25 * 86400
"""The longest time to live (100 years); a memory that should never expire has ``ttl=None``."""


def ttl_seconds(ttl: object) -> float | None:
    """A time to live in seconds (None: no expiry)."""
    if ttl is None:
        return None
    raw = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if not _is_real(raw) or not float(raw) > 0:  # type: ignore[arg-type]
        raise ValidationError(f"ttl {ttl!r} must be a positive number of seconds or a timedelta")
    seconds = float(raw)  # type: ignore[arg-type]
    if not seconds <= MAX_TTL_SECONDS:  # also inf
        raise ValidationError(
            f"ttl {ttl!r} is longer than 100 years ({MAX_TTL_SECONDS:.0f} s); pass ttl=None "
            "for a memory that never expires"
        )
    return seconds


def _is_real(value: object) -> bool:
    """A real number, numpy scalars included; not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def check_importance(value: object) -> float:
    """An importance from 0 to 1 (a Python or numpy number)."""
    if not _is_real(value):
        raise ValidationError(f"importance {value!r} must be a number from 0 to 1")
    number = float(value)  # type: ignore[arg-type]
    if not 0.0 <= number <= 1.0:
        raise ValidationError(f"importance {value!r} is outside 0 to 1")
    return number


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
            f"unknown field(s) {sorted(map(repr, unknown))} in memory; allowed: "
            f"{sorted(ADD_FIELDS)}"
        )
    text = check_text(item.get("text"), max_bytes=settings.max_text_bytes)
    kind = kind_of(item.get("kind", default_kind))
    session = item.get("session", default_session)
    if session is not None:
        check_name(session, what="session")
    metadata = check_metadata(item.get("metadata"), max_bytes=settings.max_metadata_bytes)
    importance = item.get("importance")
    importance = 0.5 if importance is None else check_importance(importance)
    given = item.get("created_at")
    created = (
        now if given is None else check_created_at(given, now=now, skew=settings.max_clock_skew)
    )
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
        id=new_id(created if given is not None else None),
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
