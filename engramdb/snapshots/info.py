"""What an export wrote and what an import did (values, light to import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engramdb.snapshots.manifest import SnapshotManifest

__all__ = ["ImportReport", "SnapshotInfo"]


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What :func:`export_snapshot` wrote.

    Attributes:
        path: The snapshot file.
        agent: Whose memory it holds.
        memories: How many memories.
        bytes: File size.
        sha256: The file's root hash (see :mod:`engramdb.snapshots.format`).
        vectors: The vector encoding.
        encrypted: Whether it is sealed with a key or passphrase.
        manifest: The full manifest (left out of the repr: an int8 file's
            manifest holds a float per dimension).
    """

    path: Path
    agent: str
    memories: int
    bytes: int
    sha256: str
    vectors: str
    encrypted: bool
    manifest: SnapshotManifest = field(repr=False)


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What :func:`import_snapshot` did.

    Attributes:
        agent: The agent written to.
        source_agent: The agent the snapshot was taken from.
        mode: ``fail``, ``replace`` or ``merge``.
        copied: Whether ids were rewritten (imported under another name).
        added: Memories that were not in the store.
        updated: Memories whose stored row was replaced by the snapshot's.
        unchanged: Snapshot memories skipped by a merge (the store's were as new).
        removed: Memories of the agent dropped by ``replace``.
        reembedded: Whether texts were embedded again with this store's embedder.
        vectors: The snapshot's vector encoding.
        version: The table version after the import (unchanged if nothing was written).
    """

    agent: str
    source_agent: str
    mode: str
    copied: bool
    added: int
    updated: int
    unchanged: int
    removed: int
    reembedded: bool
    vectors: str
    version: int
