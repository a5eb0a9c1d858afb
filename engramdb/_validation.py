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
from pydantic._internal._model_construction import ModelMetaclass
from pydantic_settings import BaseSettings, SettingsError

from engramdb.errors import ValidationError

__all__ = ["CheckedModel", "CheckedSettings", "problems"]


_SECRET_FIELDS = frozenset({"storage_options"})
"""Fields whose values may be credentials: an error names the key, never the value."""


def problems(exc: pydantic.ValidationError) -> str:
    """pydantic's errors as one line: ``field: rule (got value)`` for each."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "value"
        given = err.get("input")
        secret = bool(_SECRET_FIELDS & {str(p) for p in err["loc"]})
        got = "" if isinstance(given, dict) or secret else f" (got {given!r:.60})"
        parts.append(f"{where}: {err['msg']}{got}")
    return "; ".join(parts)


class _Checked(ModelMetaclass):
    """Converts pydantic's error at the call a user makes, and only there.

    Overriding ``__init__`` would not do: pydantic calls a custom ``__init__``
    for nested models too, and would wrap our error inside its own. The
    metaclass's ``__call__`` runs only when a class is called directly.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except SettingsError as exc:
            # A structured variable that is not JSON; the value is not echoed (it may
            # hold credentials, as ENGRAMDB_STORAGE_OPTIONS does).
            raise ValidationError(
                f"{cls.__name__}: {exc}; a structured ENGRAMDB_* variable must be JSON, e.g. "
                """ENGRAMDB_STORAGE_OPTIONS='{"aws_region": "us-east-1"}'"""
            ) from None
        except pydantic.ValidationError as exc:
            hint = (
                "; fix the argument or its ENGRAMDB_* environment variable"
                if issubclass(cls, BaseSettings)
                else ""
            )
            raise ValidationError(f"{cls.__name__}: {problems(exc)}{hint}") from None


class CheckedModel(BaseModel, metaclass=_Checked):
    """A pydantic model that raises :class:`~engramdb.errors.ValidationError`."""


class CheckedSettings(BaseSettings, metaclass=_Checked):
    """A pydantic-settings model that raises :class:`~engramdb.errors.ValidationError`.

    Values from ``ENGRAMDB_*`` variables are checked the same way; the message
    names the field, so a bad variable is easy to find.
    """
