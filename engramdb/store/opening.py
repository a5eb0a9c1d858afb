"""Opening a store: its metadata file checked against the caller's embedder and space."""

from __future__ import annotations

from pathlib import Path

from engramdb.embeddings import EmbedderInfo
from engramdb.errors import EmbedderMismatchError, NotFoundError, ValidationError
from engramdb.records import utcnow
from engramdb.store.meta import STORE_FORMAT, read_meta, write_meta
from engramdb.store.table import MemoryTable

__all__ = ["open_table"]


def open_table(
    root: Path,
    info: EmbedderInfo,
    *,
    space: str,
    read_only: bool,
    compact_every: int,
) -> MemoryTable:
    """The store's table, after checking (or, for a new store, writing) its metadata.

    Raises:
        NotFoundError: a reader asked for a store that does not exist.
        EmbedderMismatchError: the store was built by another embedder.
        ValidationError: the store was built in the other space.
    """
    meta = read_meta(root)
    if meta is None:
        if read_only:
            raise NotFoundError(f"no store at {root}; open it once to create it")
        meta = {
            "format": STORE_FORMAT,
            "embedder": {"name": info[0], "dim": info[1], "normalized": info[2]},
            "space": space,
            "created_at": utcnow().isoformat(),
        }
        write_meta(root, meta)
    stored = EmbedderInfo(**meta["embedder"])
    if stored != info:
        raise EmbedderMismatchError(
            f"store {root} was built with embedder {stored}, not {info}; open it "
            f"with embedder={stored[0]!r}, or export a snapshot and import it with "
            "reembed=True into a store built with the new embedder"
        )
    if meta.get("space", "euclidean") != space:
        raise ValidationError(
            f"store {root} was built in the {meta.get('space')!r} space, not {space!r}; "
            f"open it with space={meta.get('space')!r}"
        )
    return MemoryTable(root, info[1], compact_every=compact_every)
