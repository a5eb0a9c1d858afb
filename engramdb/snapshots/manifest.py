"""The snapshot manifest: what a snapshot file says about itself.

These pydantic models are the JSON of a snapshot's clear envelope and of its
manifest segment (see :mod:`engramdb.snapshots.format` for the layout).
Unknown fields are ignored, so a newer writer may add optional ones within a
format version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from engramdb.errors import SnapshotKeyError

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_SEGMENTS",
    "Body",
    "EmbedderSpec",
    "Encryption",
    "Envelope",
    "PartEntry",
    "PartInfo",
    "Segment",
    "SnapshotCounts",
    "SnapshotManifest",
    "VectorEncoding",
    "counts_of",
    "manifest_json",
]

MAGIC = b"\x89EGM\r\n\x1a\n"
FORMAT_VERSION = 1
MAX_SEGMENTS = 64


class _Model(BaseModel):
    # Unknown fields are ignored: a newer writer may add optional ones within a format.
    model_config = ConfigDict(frozen=True, extra="ignore")


class EmbedderSpec(_Model):
    """The embedder that made the snapshot's vectors."""

    name: str
    dim: int = Field(ge=1, le=65_536)
    normalized: bool


class SnapshotCounts(_Model):
    """How many memories the snapshot holds, in all and by kind and status."""

    total: int = Field(ge=0)
    kinds: dict[str, int]
    statuses: dict[str, int]


class VectorEncoding(_Model):
    """How vectors are stored: ``float32`` (exact), ``float16`` or ``int8``."""

    encoding: Literal["float32", "float16", "int8"]
    offset: tuple[float, ...] | None = None
    """int8 only: the per-dimension offset added back on restore."""


class Encryption(_Model):
    """How a sealed snapshot is encrypted (all of it is in the clear envelope)."""

    scheme: Literal["aes-256-gcm"]
    kdf: Literal["scrypt", "none"]
    """``scrypt``: the key comes from a passphrase; ``none``: a 32-byte key was given."""
    salt: str | None = None
    n: int | None = None
    r: int | None = None
    p: int | None = None
    file_id: str
    block: int = Field(ge=1024, le=1 << 30)


class Segment(_Model):
    """One stored segment: its length and hash (see the module docstring).

    Without ``blocks``, ``sha256`` is the SHA-256 of the bytes as stored. With
    ``blocks`` (segments over ``HASH_BLOCK`` bytes), ``blocks`` lists the SHA-256
    of each ``HASH_BLOCK``-byte piece and ``sha256`` is the SHA-256 of those
    digests concatenated, so a reader hashes the pieces in parallel.
    """

    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    blocks: tuple[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")], ...] | None = None


class Envelope(_Model):
    encryption: Encryption | None = None
    segments: tuple[Segment, ...] = Field(min_length=1, max_length=MAX_SEGMENTS)


class PartEntry(_Model):
    name: str
    rows: int = Field(ge=0)
    required: bool = True
    codec: Literal["zstd", "none"]


class SnapshotContent(_Model):
    """The content fields of an open (unsealed, or unsealed with its key) manifest."""

    engine_version: str
    agent: str
    created_at: datetime
    embedder: EmbedderSpec
    space: str
    counts: SnapshotCounts
    vectors: VectorEncoding


class Body(SnapshotContent):
    """The sealed part of the manifest: the content and the parts' entries."""

    parts: tuple[PartEntry, ...]


class PartInfo(_Model):
    """A part of the snapshot: what it holds and how it is stored."""

    name: str
    rows: int
    required: bool
    codec: str
    bytes: int
    sha256: str


class SnapshotManifest(_Model):
    """What a snapshot file says about itself.

    For a sealed (encrypted) file read without its key, ``sealed`` is True and only
    ``format``, ``encryption``, ``bytes``, ``sha256`` and ``segments`` are known:
    the fields describing the content (agent, counts, embedder...) are None and
    ``parts`` is empty. Read it with the key to see them.

    Attributes:
        sha256: The root hash (see the module docstring): it commits to every byte.
    """

    format: int
    bytes: int
    sha256: str
    encryption: Encryption | None
    sealed: bool
    segments: tuple[Segment, ...]
    engine_version: str | None = None
    agent: str | None = None
    created_at: datetime | None = None
    embedder: EmbedderSpec | None = None
    space: str | None = None
    counts: SnapshotCounts | None = None
    vectors: VectorEncoding | None = None
    parts: tuple[PartInfo, ...] = ()

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    @property
    def content(self) -> SnapshotContent:
        """What the snapshot holds, every field known (an open manifest's typed view).

        Raises:
            SnapshotKeyError: the manifest is sealed (read without its key).
        """
        if (
            self.sealed
            or self.engine_version is None
            or self.agent is None
            or self.created_at is None
            or self.embedder is None
            or self.space is None
            or self.counts is None
            or self.vectors is None
        ):
            raise SnapshotKeyError(
                "the snapshot's content is sealed; read it with its key or passphrase"
            )
        return SnapshotContent(
            engine_version=self.engine_version,
            agent=self.agent,
            created_at=self.created_at,
            embedder=self.embedder,
            space=self.space,
            counts=self.counts,
            vectors=self.vectors,
        )


def counts_of(kinds: pa.ChunkedArray, statuses: pa.ChunkedArray) -> SnapshotCounts:
    """Counts by kind and status of the per-row values in two string columns."""

    def tally(column: pa.ChunkedArray) -> dict[str, int]:
        pairs = column.value_counts().to_pylist()
        return dict(sorted((p["values"], p["counts"]) for p in pairs))

    return SnapshotCounts(total=len(kinds), kinds=tally(kinds), statuses=tally(statuses))


def manifest_json(manifest: SnapshotManifest) -> Mapping[str, Any]:
    """The manifest as plain JSON values (for the CLI)."""
    out: dict[str, Any] = json.loads(manifest.model_dump_json())
    return out
