"""Where a store lives: a local directory, or a URI on object storage and its options.

A :class:`StoreLocation` is what every part of :mod:`engramdb.store` is given
instead of a bare path. A local store is a directory, exactly as before; a
remote one is a URI LanceDB understands (``s3://bucket/prefix``; ``gs://`` and
``az://`` are passed through to LanceDB) with LanceDB's own ``storage_options``
(``aws_endpoint``, ``aws_region``, ``aws_access_key_id``,
``aws_secret_access_key``, ``allow_http``, ...).

Credentials never leave this object in text: ``str`` is the bare URI, ``repr``
masks every option that is not known to be public, and :meth:`redact` takes
their values out of any message (a library error quoting its request, say).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from engramdb.errors import ValidationError

__all__ = ["PUBLIC_OPTIONS", "StoreLocation"]

PUBLIC_OPTIONS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "aws_endpoint",
        "aws_endpoint_url",
        "aws_region",
        "aws_virtual_hosted_style_request",
        "connect_timeout",
        "endpoint",
        "endpoint_url",
        "region",
        "timeout",
        "virtual_hosted_style_request",
    }
)
"""Option keys whose values are not secrets; every other value is masked in text."""

_MASK = "***"


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """A store's place: a local directory (``scheme == ""``) or an object-store URI.

    Build one with :meth:`of`. Two locations are equal when they name the same
    place, whatever their options.

    Attributes:
        uri: The directory (local) or the URI without a trailing slash (remote).
        scheme: ``""`` for a local directory, else the URI's scheme (``"s3"``, ...).
    """

    uri: str
    scheme: str = ""
    _options: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def of(
        cls,
        target: str | Path | StoreLocation,
        storage_options: Mapping[str, str] | None = None,
    ) -> StoreLocation:
        """The location ``target`` names: a path, a ``file://`` URI or an object-store URI.

        Args:
            target: A directory, ``s3://bucket/prefix`` (or another scheme LanceDB
                reads), or a location (its options, overridden key by key by
                ``storage_options``).
            storage_options: LanceDB's ``storage_options`` for a remote store
                (string keys and values); ignored for a local directory.

        Raises:
            ValidationError: the URI has no bucket, carries credentials or a query,
                or an option is not a string pair.
        """
        options = _check_options(storage_options or {})
        if isinstance(target, StoreLocation):
            if not options:
                return target
            merged = {**target.options, **options}
            return cls(target.uri, target.scheme, tuple(sorted(merged.items())))
        text = str(target)
        if isinstance(target, Path) or "://" not in text:
            return cls(text)
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return cls(parts.path)
        if parts.username or parts.password or "@" in parts.netloc:
            raise ValidationError(
                f"store URI {scheme}://{parts.hostname or ''}/... carries credentials; put them "
                "in storage options (--storage-option aws_secret_access_key=... or "
                "ENGRAMDB_STORAGE_OPTIONS), never in the URI"
            )
        if not parts.netloc:
            raise ValidationError(
                f"store URI {text!r} has no bucket; write it as {scheme}://BUCKET/PREFIX"
            )
        if parts.query or parts.fragment:
            extra = f"?{parts.query}" if parts.query else f"#{parts.fragment}"
            raise ValidationError(
                f"store URI {scheme}://{parts.netloc}{parts.path} has a query or fragment "
                f"({extra}); pass settings as storage options instead"
            )
        bad = sorted({c for c in text if ord(c) < 32 or ord(c) == 127})
        if bad:
            raise ValidationError(
                f"store URI {text!r} contains control characters {bad!r}; remove them"
            )
        prefix = parts.path.strip("/")
        uri = f"{scheme}://{parts.netloc}" + (f"/{prefix}" if prefix else "")
        return cls(uri, scheme, tuple(sorted(options.items())))

    # -- what it is ------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        """Whether the store is a directory on this machine."""
        return not self.scheme

    @property
    def path(self) -> Path:
        """The local directory.

        Raises:
            ValidationError: the store is on object storage.
        """
        if self.scheme:
            raise ValidationError(f"store {self.uri} is on object storage, not a local directory")
        return Path(self.uri)

    @property
    def bucket(self) -> str:
        """The bucket (or container) of a remote store."""
        return urlsplit(self.uri).netloc

    @property
    def prefix(self) -> str:
        """The key prefix of a remote store inside its bucket (no slashes at either end)."""
        return urlsplit(self.uri).path.strip("/")

    @property
    def options(self) -> dict[str, str]:
        """LanceDB's ``storage_options`` for this store (a copy; secrets in clear: pass on only)."""
        return dict(self._options)

    def child(self, name: str) -> str:
        """The path or URI of ``name`` inside the store (``name`` may hold slashes)."""
        if self.scheme:
            return f"{self.uri}/{name}"
        return str(Path(self.uri) / name)

    def key(self, name: str) -> str:
        """The object key of ``name`` inside a remote store's bucket."""
        return f"{self.prefix}/{name}" if self.prefix else name

    # -- text that never holds a secret ----------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with the value of every non-public option replaced by ``***``."""
        for key, value in self._options:
            if key.lower() not in PUBLIC_OPTIONS and len(value) >= 3:
                text = text.replace(value, _MASK)
        return text

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        if not self._options:
            return f"StoreLocation({self.uri!r})"
        shown = {
            key: (value if key.lower() in PUBLIC_OPTIONS else _MASK) for key, value in self._options
        }
        return f"StoreLocation({self.uri!r}, storage_options={shown!r})"


def _check_options(options: Mapping[str, object]) -> dict[str, str]:
    out = {}
    for key, value in options.items():
        if hasattr(value, "get_secret_value"):  # a pydantic SecretStr from the settings
            value = value.get_secret_value()
        if not isinstance(key, str) or not key or not isinstance(value, str):
            shown = key if isinstance(key, str) else type(key).__name__
            raise ValidationError(
                f"storage option {shown!r} must be a non-empty string key with a string value "
                f"(got a {type(value).__name__}); LanceDB takes strings only, e.g. "
                'allow_http="true"'
            )
        out[key] = value
    return out
