"""pydantic at the edges, engramdb errors out: models whose bad input raises ours.

Configuration and policies validate with pydantic; a user who passes a bad value
gets :class:`~engramdb.errors.ValidationError` (as pydantic-settings raises its
own ``SettingsError``), naming the field, the value and the rule, never
pydantic's own error class.
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from engramdb.errors import ValidationError

__all__ = ["CheckedModel", "CheckedSettings", "problems"]


def problems(exc: pydantic.ValidationError) -> str:
    """pydantic's errors as one line: ``field: rule (got value)`` for each."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "value"
        given = err.get("input")
        got = "" if isinstance(given, dict) else f" (got {given!r:.60})"
        parts.append(f"{where}: {err['msg']}{got}")
    return "; ".join(parts)


class CheckedModel(BaseModel):
    """A pydantic model that raises :class:`~engramdb.errors.ValidationError`."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise ValidationError(f"{type(self).__name__}: {problems(exc)}") from None


class CheckedSettings(BaseSettings):
    """A pydantic-settings model that raises :class:`~engramdb.errors.ValidationError`.

    Values from ``ENGRAMDB_*`` variables are checked the same way; the message
    names the field, so a bad variable is easy to find.
    """

    def __init__(self, /, **values: Any) -> None:
        try:
            super().__init__(**values)
        except pydantic.ValidationError as exc:
            raise ValidationError(
                f"{type(self).__name__}: {problems(exc)}; fix the argument or its "
                "ENGRAMDB_* environment variable"
            ) from None
