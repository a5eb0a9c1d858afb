"""The store's metadata file: format version, embedder and space, written atomically.

A local store keeps it as ``<store>/engramdb.json``; a store on object storage as
the object of that name under its prefix (read and written through
:mod:`engramdb.store.objects`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from engramdb.errors import StoreCorruptError, StoreFormatError
from engramdb.store.guard import store_errors
from engramdb.store.location import StoreLocation

__all__ = ["META_FILE", "STORE_FORMAT", "read_meta", "write_meta"]

STORE_FORMAT = 1
META_FILE = "engramdb.json"


class _Embedder(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    dim: int = Field(gt=0)
    normalized: bool


class _Meta(BaseModel):
    """What a metadata file must hold; unknown keys are kept (newer minor additions)."""

    model_config = ConfigDict(extra="allow")

    format: int = Field(ge=0)
    embedder: _Embedder
    space: Literal["euclidean", "poincare"] = "euclidean"


def read_meta(root: Path | StoreLocation) -> dict[str, Any] | None:
    """The store's metadata file, or None for a new store.

    Raises:
        StoreFormatError: written by a newer engramdb.
        StoreCorruptError: not JSON, or without the fields a store needs.
    """
    where = StoreLocation.of(root)
    path = where.child(META_FILE)
    with store_errors(where, "read the metadata file"):
        if where.is_local:
            if not where.path.joinpath(META_FILE).exists():
                return None
            raw = where.path.joinpath(META_FILE).read_bytes()
        else:
            from engramdb.store.objects import object_files

            stored = object_files(where).get(META_FILE)
            if stored is None:
                return None
            raw = stored.data
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreCorruptError(
            f"store metadata {path} is not JSON ({exc}); the file is damaged: put back a copy "
            "from a backup (it names the embedder and space the store was built with)"
        ) from exc
    if isinstance(meta, dict) and isinstance(meta.get("format"), int):
        if meta["format"] > STORE_FORMAT:
            raise StoreFormatError(
                f"store {root} has format {meta['format']}, newer than this engramdb "
                f"understands ({STORE_FORMAT}); upgrade engramdb"
            )
    try:
        return _Meta.model_validate(meta).model_dump()
    except pydantic.ValidationError as exc:
        raise StoreCorruptError(
            f"store metadata {path} is damaged ({exc.error_count()} problem(s), first: "
            f"{'.'.join(map(str, exc.errors()[0]['loc'])) or 'value'}: {exc.errors()[0]['msg']}); "
            "put back a copy from a backup (it names the embedder and space the store was "
            "built with)"
        ) from None


def write_meta(root: Path | StoreLocation, meta: dict[str, Any]) -> None:
    """Write the metadata file atomically: a temporary file, fsync, then rename.

    On object storage one PUT writes it whole (an object is never seen half-written).
    """
    where = StoreLocation.of(root)
    with store_errors(where, "write the metadata file"):
        if where.is_local:
            _write(where.path, meta)
        else:
            from engramdb.store.objects import object_files

            data = json.dumps(meta, indent=2, sort_keys=True).encode()
            object_files(where).put(META_FILE, data)


def _write(root: Path, meta: dict[str, Any]) -> None:
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
