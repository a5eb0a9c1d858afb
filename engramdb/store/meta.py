"""The store's metadata file: format version, embedder and space, written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from engramdb.errors import StoreFormatError

__all__ = ["META_FILE", "STORE_FORMAT", "read_meta", "write_meta"]

STORE_FORMAT = 1
META_FILE = "engramdb.json"


def read_meta(root: Path) -> dict[str, Any] | None:
    """The store's metadata file, or None for a new store."""
    path = root / META_FILE
    if not path.exists():
        return None
    try:
        meta: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreFormatError(f"cannot read {path}: {exc}; the store is damaged") from exc
    if meta.get("format", 0) > STORE_FORMAT:
        raise StoreFormatError(
            f"store {root} has format {meta.get('format')}, newer than this engramdb "
            f"understands ({STORE_FORMAT}); upgrade engramdb"
        )
    return meta


def write_meta(root: Path, meta: dict[str, Any]) -> None:
    """Write the metadata file atomically: a temporary file, fsync, then rename."""
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
