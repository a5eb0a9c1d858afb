"""The snapshot file: one file that proves its own integrity and can be sealed with a key.

Layout, format 1 (integers big-endian)::

    offset    size  field
    0         8     magic b"\\x89EGM\\r\\n\\x1a\\n" (PNG-style: 7-bit and newline mangling show)
    8         2     format version, uint16 (1)
    10        4     envelope length E, uint32
    14        E     envelope: UTF-8 JSON, never encrypted
    14 + E    ...   segments, back to back, with the lengths the envelope gives
    end - 32  32    root: SHA-256 of bytes [0, 14 + E), the prefix and the envelope

The envelope is ``{"encryption": null | {...}, "segments": [{"bytes": n, "sha256": hex}]}``.
It lists each segment's length and SHA-256 (of the bytes as stored, ciphertext when
sealed), so the root commits to every byte of the file while each byte is hashed
once (a hash tree). A segment over 16 MiB also lists ``"blocks"``: the SHA-256 of
each 16 MiB piece, its ``sha256`` then being the SHA-256 of those digests
concatenated, so that readers hash a large part on several cores.

Segment 0 is the manifest (JSON: engine version,
agent, creation time, embedder name, dimension and normalization, geometry, counts
by kind and status, vector encoding, and the list of parts); segments 1.. are the
parts, in the manifest's order, each an Arrow IPC stream, zstd-compressed where that
saves at least 10% (a 1 MiB probe decides; float vectors are close to incompressible):

    records     (required) one row per memory: the store's columns except agent,
                vector and provenance
    provenance  (required) parent_id and source_ids, row-aligned with records
    vectors     (required) ``vector``: fixed-size lists of float32, float16 or int8,
                plus ``scale`` (float32, one per vector) for int8
    points      (optional) ``point``: Poincaré-ball coordinates, when the store has them

A reader refuses a part it does not know that is marked required (written by a newer
engramdb) and skips an unknown optional one; incompatible layouts get a new format
version, and readers refuse versions newer than they know.

int8 vectors are ``offset + scale * q``: ``offset`` is the per-dimension mean over
the snapshot (kept in the manifest, float32), ``scale`` the per-vector max-abs of the
centred vector over 127. Centring matters for sentence embeddings, which share a
common direction. float16 and int8 vectors are re-normalized on restore; float32
ones are restored bit for bit.

Sealed files (AES-256-GCM): the key is 32 given bytes, or scrypt(passphrase, salt,
n, r, p). Every segment, the manifest included, is sealed in blocks of at most
``block`` bytes, each stored as nonce (12) || ciphertext || tag (16), authenticated
with the magic, version, a random file id, the segment and block numbers and a
last-block flag, so blocks cannot be reordered, dropped or moved between files.
The clear envelope then says only: format, scheme, KDF parameters, file id, and
the sizes and hashes of the sealed segments (the sizes hint at how big the agent
is; nothing else leaks). Hashes are checked before decryption, so a damaged file
is told apart from a wrong key.

Reading checks, in order: magic, format version, root, length, then each
segment's hash before that segment is decrypted or decoded (two worker threads
hash ahead, so checking the records overlaps hashing the vectors), the key,
the manifest, and each part's Arrow structure (fully validated: a hash shows
the bytes are the writer's, not that the writer was engramdb) and row count.
The envelope and the manifest are padded with JSON whitespace to keep every
part 8-byte aligned, so parts are read in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from engramdb._types import FloatMatrix
from engramdb.errors import SnapshotError, SnapshotIntegrityError, SnapshotKeyError, ValidationError

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "VECTOR_CODECS",
    "EmbedderSpec",
    "Encryption",
    "Part",
    "PartInfo",
    "Segment",
    "SnapshotCounts",
    "SnapshotManifest",
    "VectorCodec",
    "VectorEncoding",
    "counts_of",
    "read_manifest",
    "read_snapshot",
    "vector_codec",
    "write_snapshot",
]

MAGIC = b"\x89EGM\r\n\x1a\n"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">8sHI")
_ROOT_BYTES = 32
_MAX_ENVELOPE = 1 << 20
_MAX_SEGMENTS = 64
KNOWN_PARTS = frozenset({"records", "provenance", "vectors", "points"})
REQUIRED_PARTS = ("records", "provenance", "vectors")

_ALIGN = 8
_PROBE_BYTES = 1 << 20
_MIN_SAVING = 0.10
"""A part is stored zstd-compressed when that makes a 1 MiB probe at least 10% smaller."""

SCHEME = "aes-256-gcm"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 16, 8, 1
"""scrypt cost for passphrases: 64 MiB and a fraction of a second per derivation."""
_SCRYPT_MAX_BYTES = 1 << 30
BLOCK_BYTES = 4 << 20
_NONCE = 12
_TAG = 16

Key = bytes | str
T = TypeVar("T")


# -- manifest models ----------------------------------------------------------------------


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


class _Envelope(_Model):
    encryption: Encryption | None = None
    segments: tuple[Segment, ...] = Field(min_length=1, max_length=_MAX_SEGMENTS)


class _PartEntry(_Model):
    name: str
    rows: int = Field(ge=0)
    required: bool = True
    codec: Literal["zstd", "none"]


class _Body(_Model):
    engine_version: str
    agent: str
    created_at: datetime
    embedder: EmbedderSpec
    space: str
    counts: SnapshotCounts
    vectors: VectorEncoding
    parts: tuple[_PartEntry, ...]


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


# -- vector codecs -------------------------------------------------------------------------


class VectorCodec(Protocol):
    """Turns a float32 matrix into the ``vectors`` part and back."""

    name: str

    def encode(self, vectors: FloatMatrix) -> tuple[pa.Table, VectorEncoding]:
        """The part's table and the encoding record for the manifest."""
        ...

    def decode(self, table: pa.Table, encoding: VectorEncoding, dim: int) -> FloatMatrix:
        """A float32 ``(rows, dim)`` matrix, ready for the store."""
        ...


def _fixed(values: np.ndarray, dim: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values).ravel()), dim)


def _flat(table: pa.Table, column: str, dtype: pa.DataType, dim: int) -> np.ndarray:
    if column not in table.column_names:
        raise SnapshotError(f"vectors part has no {column!r} column; the file is damaged")
    col = table.column(column)
    want = pa.list_(dtype, dim)
    if col.type != want:
        raise SnapshotError(
            f"vectors part column {column!r} has type {col.type}, not {want}; the file is damaged"
        )
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if arr.null_count:
        raise SnapshotError("vectors part has missing vectors; the file is damaged")
    flat = arr.flatten()  # honours a slice offset, unlike .values
    if flat.null_count:
        raise SnapshotError("vectors part has missing values; the file is damaged")
    values: np.ndarray = flat.to_numpy(zero_copy_only=False)
    return values.reshape(len(arr), dim)


def _unit_rows(n: int, dim: int, fill: Any) -> FloatMatrix:
    """Dequantize and normalize in blocks of rows: one cache-friendly pass, not four."""
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, _BLOCK_ROWS):
        block = out[start : start + _BLOCK_ROWS]
        fill(block, slice(start, start + _BLOCK_ROWS))
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        block /= np.maximum(norms, 1e-12)[:, None]
    return out


_BLOCK_ROWS = 2048


class Float32Codec:
    """Vectors as stored: exact."""

    name = "float32"

    def encode(self, vectors: FloatMatrix) -> tuple[pa.Table, VectorEncoding]:
        dim = vectors.shape[1]
        return pa.table({"vector": _fixed(vectors.astype(np.float32, copy=False), dim)}), (
            VectorEncoding(encoding="float32")
        )

    def decode(self, table: pa.Table, encoding: VectorEncoding, dim: int) -> FloatMatrix:
        return _flat(table, "vector", pa.float32(), dim)


class Float16Codec:
    """Half precision: half the size, cosine error around 1e-5."""

    name = "float16"

    def encode(self, vectors: FloatMatrix) -> tuple[pa.Table, VectorEncoding]:
        dim = vectors.shape[1]
        return pa.table({"vector": _fixed(vectors.astype(np.float16), dim)}), VectorEncoding(
            encoding="float16"
        )

    def decode(self, table: pa.Table, encoding: VectorEncoding, dim: int) -> FloatMatrix:
        half = _flat(table, "vector", pa.float16(), dim)
        return _unit_rows(len(half), dim, lambda out, rows: np.copyto(out, half[rows]))


class Int8Codec:
    """Scalar quantization: a per-dimension offset and a per-vector scale, a quarter the size."""

    name = "int8"

    def encode(self, vectors: FloatMatrix) -> tuple[pa.Table, VectorEncoding]:
        n, dim = vectors.shape
        offset = vectors.mean(axis=0, dtype=np.float64).astype(np.float32) if n else None
        if offset is None:
            offset = np.zeros(dim, np.float32)
        centred = vectors - offset
        scale = (np.abs(centred).max(axis=1) / 127.0).astype(np.float32) if n else np.zeros(0)
        scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
        q = np.clip(np.rint(centred / scale[:, None]), -127, 127).astype(np.int8)
        table = pa.table({"vector": _fixed(q, dim), "scale": pa.array(scale, pa.float32())})
        return table, VectorEncoding(encoding="int8", offset=tuple(offset.tolist()))

    def decode(self, table: pa.Table, encoding: VectorEncoding, dim: int) -> FloatMatrix:
        q = _flat(table, "vector", pa.int8(), dim)
        if "scale" not in table.column_names or table.schema.field("scale").type != pa.float32():
            raise SnapshotError("vectors part column 'scale' is not float32; the file is damaged")
        scale = table.column("scale").to_numpy()
        if encoding.offset is None or len(encoding.offset) != dim:
            raise SnapshotError(f"int8 vectors need {dim} offsets in the manifest; it is damaged")
        offset = np.asarray(encoding.offset, dtype=np.float32)

        def fill(out: FloatMatrix, rows: slice) -> None:
            np.copyto(out, q[rows])
            out *= scale[rows, None]
            out += offset

        return _unit_rows(len(q), dim, fill)


VECTOR_CODECS: dict[str, VectorCodec] = {
    c.name: c for c in (Float32Codec(), Float16Codec(), Int8Codec())
}


def vector_codec(name: object) -> VectorCodec:
    """The codec for ``vectors=`` (``float32``, ``float16`` or ``int8``)."""
    if not isinstance(name, str) or name not in VECTOR_CODECS:
        raise ValidationError(
            f"vectors {name!r} is not a vector encoding; use one of {', '.join(VECTOR_CODECS)}"
        )
    return VECTOR_CODECS[name]


# -- keys and sealing ----------------------------------------------------------------------


def _check_key_arg(key: object) -> None:
    if key is None or isinstance(key, str):
        if isinstance(key, str) and not key:
            raise ValidationError("key '' is an empty passphrase; pass a real one")
        return
    if not isinstance(key, bytes):
        raise ValidationError(f"key must be 32 bytes or a passphrase str, got {type(key).__name__}")


def _new_encryption(key: Key) -> tuple[Encryption, bytes]:
    _check_key_arg(key)
    file_id = os.urandom(16).hex()
    if isinstance(key, str):
        salt = os.urandom(16)
        enc = Encryption(
            scheme=SCHEME,
            kdf="scrypt",
            salt=salt.hex(),
            n=SCRYPT_N,
            r=SCRYPT_R,
            p=SCRYPT_P,
            file_id=file_id,
            block=BLOCK_BYTES,
        )
        return enc, _scrypt(key.encode("utf-8"), enc)
    if len(key) != 32:
        raise ValidationError(
            f"key of {len(key)} bytes is not an AES-256 key; pass 32 random bytes "
            "(os.urandom(32)) or a passphrase str"
        )
    return Encryption(scheme=SCHEME, kdf="none", file_id=file_id, block=BLOCK_BYTES), key


def _scrypt(secret: bytes, enc: Encryption) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    n, r, p = enc.n or 0, enc.r or 0, enc.p or 0
    if not (n > 1 and n & (n - 1) == 0 and 1 <= r <= 64 and 1 <= p <= 16) or (
        128 * n * r * p > _SCRYPT_MAX_BYTES
    ):
        raise SnapshotError(
            f"scrypt parameters n={n} r={r} p={p} are out of bounds; the file is damaged "
            "or was not made by engramdb"
        )
    try:
        salt = bytes.fromhex(enc.salt or "")
    except ValueError:
        raise SnapshotError("scrypt salt is not hex; the file is damaged") from None
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)


def _key_for(enc: Encryption, key: object, path: Path) -> bytes:
    how = "a passphrase" if enc.kdf == "scrypt" else "a 32-byte key"
    if key is None:
        raise SnapshotKeyError(
            f"snapshot {path} is encrypted ({enc.scheme}, sealed with {how}); pass key= "
            "(CLI: --passphrase or --key-file)"
        )
    _check_key_arg(key)
    if enc.kdf == "scrypt":
        secret = key.encode("utf-8") if isinstance(key, str) else bytes(key)  # type: ignore[call-overload]
        return _scrypt(secret, enc)
    if not isinstance(key, bytes) or len(key) != 32:
        raise SnapshotKeyError(
            f"snapshot {path} was sealed with a 32-byte key, not a passphrase; pass the "
            "key's 32 bytes (CLI: --key-file)"
        )
    return key


def _aad(enc: Encryption, segment: int, block: int, last: bool) -> bytes:
    return (
        MAGIC
        + struct.pack(">H", FORMAT_VERSION)
        + bytes.fromhex(enc.file_id)
        + struct.pack(">IIB", segment, block, last)
    )


def _seal(data: bytes, aes: Any, enc: Encryption, segment: int) -> bytes:
    out = io.BytesIO()
    starts = range(0, max(len(data), 1), enc.block)
    for i, start in enumerate(starts):
        nonce = os.urandom(_NONCE)
        last = i == len(starts) - 1
        block = data[start : start + enc.block]
        out.write(nonce)
        out.write(aes.encrypt(nonce, block, _aad(enc, segment, i, last)))
    return out.getvalue()


def _open_sealed(sealed: Any, aes: Any, enc: Encryption, segment: int, path: Path) -> bytes:
    from cryptography.exceptions import InvalidTag

    data = memoryview(sealed)
    step = enc.block + _NONCE + _TAG
    starts = range(0, max(len(data), 1), step)
    out = bytearray()
    for i, start in enumerate(starts):
        chunk = data[start : start + step]
        if len(chunk) < _NONCE + _TAG:
            raise SnapshotIntegrityError(f"snapshot {path}: a sealed block is cut short")
        try:
            out += aes.decrypt(
                bytes(chunk[:_NONCE]),
                bytes(chunk[_NONCE:]),
                _aad(enc, segment, i, i == len(starts) - 1),
            )
        except InvalidTag:
            raise SnapshotKeyError(
                f"cannot decrypt snapshot {path}: wrong key or passphrase (or the file was "
                "altered after it was sealed); check the key"
            ) from None
    return bytes(out)


# -- writing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A part to write: a name, its Arrow table, and whether readers must understand it."""

    name: str
    table: pa.Table
    required: bool = True


def _ipc(table: pa.Table, compression: str | None) -> bytes:
    sink = pa.BufferOutputStream()
    opts = ipc.IpcWriteOptions(compression=compression)
    with ipc.new_stream(sink, table.schema, options=opts) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _encode_part(table: pa.Table) -> tuple[bytes, str]:
    plain = _ipc(table, None)
    probe = plain[-_PROBE_BYTES:]  # the tail is data; the head is mostly schema
    saved = 1.0 - len(pa.compress(probe, codec="zstd", asbytes=True)) / max(len(probe), 1)
    if saved < _MIN_SAVING:
        return plain, "none"
    return _ipc(table, "zstd"), "zstd"


def write_snapshot(
    path: Path,
    *,
    agent: str,
    created_at: datetime,
    engine_version: str,
    embedder: EmbedderSpec,
    space: str,
    counts: SnapshotCounts,
    vectors: VectorEncoding,
    parts: Sequence[Part],
    key: Key | None = None,
) -> SnapshotManifest:
    """Write a snapshot to ``path`` atomically (a temporary file, fsync, then rename)."""
    enc, aes = None, None
    if key is not None:
        enc, raw = _new_encryption(key)
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        aes = AESGCM(raw)
    encoded = [_encode_part(p.table) for p in parts]
    body = _Body(
        engine_version=engine_version,
        agent=agent,
        created_at=created_at,
        embedder=embedder,
        space=space,
        counts=counts,
        vectors=vectors,
        parts=tuple(
            _PartEntry(name=p.name, rows=p.table.num_rows, required=p.required, codec=codec)
            for p, (_, codec) in zip(parts, encoded, strict=True)
        ),
    )
    clear = [_pad(body.model_dump_json().encode(), 0), *(data for data, _ in encoded)]
    stored = clear if enc is None else [_seal(d, aes, enc, i) for i, d in enumerate(clear)]
    segments = tuple(_segment_of(d) for d in stored)
    envelope = _Envelope(encryption=enc, segments=segments).model_dump_json().encode()
    envelope = _pad(envelope, _PREFIX.size)
    head = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(envelope)) + envelope
    root = hashlib.sha256(head).digest()
    _atomic_write(path, [head, *stored, root])
    return _manifest(
        body,
        _Envelope(encryption=enc, segments=segments),
        size=len(head) + sum(s.bytes for s in segments) + _ROOT_BYTES,
        root=root.hex(),
    )


def _pad(json_bytes: bytes, start: int) -> bytes:
    """JSON followed by spaces up to a multiple of 8 bytes from ``start``.

    With the envelope and the manifest padded, and Arrow IPC streams being
    multiples of 8 bytes, every part of a clear file starts 8-byte aligned, and a
    reader maps its Arrow buffers in place (LanceDB refuses misaligned buffers).
    """
    return json_bytes + b" " * (-(start + len(json_bytes)) % _ALIGN)


def _atomic_write(path: Path, chunks: Sequence[bytes]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _manifest(body: _Body | None, envelope: _Envelope, *, size: int, root: str) -> SnapshotManifest:
    common: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "bytes": size,
        "sha256": root,
        "encryption": envelope.encryption,
        "segments": envelope.segments,
    }
    if body is None:
        return SnapshotManifest(sealed=True, **common)
    parts = tuple(
        PartInfo(
            name=p.name,
            rows=p.rows,
            required=p.required,
            codec=p.codec,
            bytes=seg.bytes,
            sha256=seg.sha256,
        )
        for p, seg in zip(body.parts, envelope.segments[1:], strict=True)
    )
    fields = body.model_dump(exclude={"parts"})
    return SnapshotManifest(sealed=False, parts=parts, **common, **fields)


# -- reading -------------------------------------------------------------------------------


def _head(path: Path, fh: Any, size: int) -> tuple[_Envelope, bytes, int]:
    """Check magic, version, length and root; return the envelope, root and data offset."""
    prefix = fh.read(_PREFIX.size)
    if len(prefix) < len(MAGIC) or prefix[: len(MAGIC)] != MAGIC:
        raise SnapshotError(
            f"{path} is not an engramdb snapshot (its first bytes are not the snapshot "
            "magic); check the path, or the file is damaged"
        )
    if len(prefix) < _PREFIX.size:
        raise SnapshotIntegrityError(f"snapshot {path} is truncated ({size} bytes); copy it again")
    _, version, env_len = _PREFIX.unpack(prefix)
    if version > FORMAT_VERSION:
        raise SnapshotError(
            f"snapshot {path} has format {version}, newer than this engramdb reads "
            f"({FORMAT_VERSION}); upgrade engramdb to import it"
        )
    if version < 1:
        raise SnapshotError(f"snapshot {path} has unknown format {version}; the file is damaged")
    start = _PREFIX.size + env_len
    if env_len > _MAX_ENVELOPE or start + _ROOT_BYTES > size:
        raise SnapshotIntegrityError(
            f"snapshot {path} is truncated or damaged: its header claims {env_len} bytes "
            f"and the file has {size}; copy it again"
        )
    envelope_bytes = fh.read(env_len)
    fh.seek(size - _ROOT_BYTES)
    root = fh.read(_ROOT_BYTES)
    if hashlib.sha256(prefix + envelope_bytes).digest() != root:
        raise SnapshotIntegrityError(
            f"snapshot {path} is corrupted, truncated or tampered with: its root hash does "
            "not match its header; copy it again from the source"
        )
    try:
        envelope = _Envelope.model_validate_json(envelope_bytes)
    except pydantic.ValidationError as exc:
        raise SnapshotError(f"snapshot {path} has an unreadable header ({exc})") from None
    expected = start + sum(s.bytes for s in envelope.segments) + _ROOT_BYTES
    if expected != size:
        raise SnapshotIntegrityError(
            f"snapshot {path} has {size} bytes but its header describes {expected}; "
            "it is truncated or has extra bytes; copy it again"
        )
    return envelope, root, start


HASH_BLOCK = 16 << 20
"""Segments longer than this are hashed in pieces of this size (see :class:`Segment`)."""


def _pieces(data: Any) -> list[memoryview]:
    view = memoryview(data).cast("B")
    return [view[i : i + HASH_BLOCK] for i in range(0, len(view), HASH_BLOCK)]


def _segment_of(data: bytes) -> Segment:
    """The envelope entry of a segment about to be written."""
    if len(data) <= HASH_BLOCK:
        return Segment(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    digests = [hashlib.sha256(piece).digest() for piece in _pieces(data)]
    return Segment(
        bytes=len(data),
        sha256=hashlib.sha256(b"".join(digests)).hexdigest(),
        blocks=tuple(d.hex() for d in digests),
    )


def _corrupt(path: Path, index: int) -> SnapshotIntegrityError:
    what = "manifest" if index == 0 else f"segment {index}"
    return SnapshotIntegrityError(
        f"snapshot {path} is corrupted or tampered with: the SHA-256 of its {what} does "
        "not match; copy it again from the source"
    )


def _check_piece(path: Path, piece: memoryview, want: str, index: int) -> None:
    if hashlib.sha256(piece).hexdigest() != want:
        raise _corrupt(path, index)


def _check_segment(path: Path, data: memoryview, seg: Segment, index: int) -> None:
    if seg.blocks is None:
        _check_piece(path, data, seg.sha256, index)
        return
    _check_blocks(path, seg, index)
    for piece, want in zip(_pieces(data), seg.blocks, strict=True):
        _check_piece(path, piece, want, index)


def _check_blocks(path: Path, seg: Segment, index: int) -> None:
    """The block list itself: as many as the length needs, and what ``sha256`` commits to."""
    assert seg.blocks is not None
    joined = b"".join(bytes.fromhex(d) for d in seg.blocks)
    if len(seg.blocks) != -(-seg.bytes // HASH_BLOCK) or (
        hashlib.sha256(joined).hexdigest() != seg.sha256
    ):
        raise _corrupt(path, index)


class _SegmentCheck:
    """The pending hash check of one segment: done when all its pieces matched."""

    def __init__(self, futures: list[Future[None]]) -> None:
        self._futures = futures

    def result(self) -> None:
        for done in self._futures:
            done.result()


def _submit_checks(
    pool: Any, path: Path, views: list[Any], segments: tuple[Segment, ...]
) -> list[_SegmentCheck]:
    """Queue every segment's pieces for hashing, in file order."""
    checks = []
    for i, (view, seg) in enumerate(zip(views, segments, strict=True)):
        if seg.blocks is None:
            checks.append(_SegmentCheck([pool.submit(_check_piece, path, view, seg.sha256, i)]))
            continue
        _check_blocks(path, seg, i)
        futures = [
            pool.submit(_check_piece, path, piece, want, i)
            for piece, want in zip(_pieces(view), seg.blocks, strict=True)
        ]
        checks.append(_SegmentCheck(futures))
    return checks


def _body(path: Path, data: bytes) -> _Body:
    try:
        body = _Body.model_validate_json(data)
    except pydantic.ValidationError as exc:
        raise SnapshotError(f"snapshot {path} has an unreadable manifest ({exc})") from None
    names = [p.name for p in body.parts]
    for name in REQUIRED_PARTS:
        if names.count(name) != 1:
            raise SnapshotError(f"snapshot {path} lacks its {name!r} part; the file is damaged")
    for part in body.parts:
        if part.name not in KNOWN_PARTS and part.required:
            raise SnapshotError(
                f"snapshot {path} needs part {part.name!r}, which this engramdb does not "
                "know; upgrade engramdb to import it"
            )
    return body


def read_manifest(path: str | Path, *, key: Key | None = None) -> SnapshotManifest:
    """The manifest, reading only the header, the manifest segment and the root.

    The root and the manifest's hash are checked; the parts are not read (see
    :func:`read_snapshot`). Without ``key``, a sealed file's manifest is sealed.
    """
    path = Path(path)
    with _open(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        envelope, root, start = _head(path, fh, size)
        seg = envelope.segments[0]
        fh.seek(start)
        data = memoryview(fh.read(seg.bytes))
    _check_segment(path, data, seg, 0)
    if envelope.encryption is not None:
        if key is None:
            return _manifest(None, envelope, size=size, root=root.hex())
        aes = _aes(envelope.encryption, key, path)
        data = memoryview(_open_sealed(data, aes, envelope.encryption, 0, path))
    body = _body(path, bytes(data))
    _check_shape(path, body, envelope)
    return _manifest(body, envelope, size=size, root=root.hex())


def read_snapshot(
    path: str | Path,
    *,
    key: Key | None = None,
    then: Callable[[SnapshotManifest, Mapping[str, pa.Table]], T],
) -> T:
    """Read and verify a whole snapshot: every hash, the key, and every part's rows.

    The file is read into memory once and checked there, so what is verified is
    what is used. A worker thread hashes the segments in file order; a part is
    decrypted and decoded only once its hash matched (Arrow is not fed bytes
    nobody vouched for), so checking the records overlaps hashing the vectors.

    Args:
        then: Called with the manifest and the known parts by name (unknown
            optional parts skipped; each decoded on first access); what it
            returns is returned once every segment's hash has matched.

    Raises:
        SnapshotError: not a snapshot, a newer format, or unreadable content.
        SnapshotIntegrityError: a hash does not match (corrupted, truncated, tampered).
        SnapshotKeyError: a sealed file and no key, or the wrong one.
    """
    path = Path(path)
    with _open(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        envelope, root, start = _head(path, fh, size)
        fh.seek(0)
        buffer = pa.allocate_buffer(size)  # 64-byte aligned, so the parts are aligned too
        if fh.readinto(memoryview(buffer)) != size or fh.read(1):
            raise SnapshotIntegrityError(f"snapshot {path} changed while it was read; try again")
    views, at = [], start
    for seg in envelope.segments:
        views.append(buffer.slice(at, seg.bytes))
        at += seg.bytes
    # Threads pay off only when there is a lot to hash; small files hash inline.
    # Two workers hash pieces in file order (hashlib releases the GIL), while
    # this thread decodes and checks each part as soon as its pieces matched.
    pool = ThreadPoolExecutor(2) if size > _THREADED_BYTES else _InlineExecutor()
    try:
        hashes = _submit_checks(pool, path, [memoryview(v) for v in views], envelope.segments)
        parts = _Parts(path, envelope, views, hashes, key)
        manifest = _manifest(parts.body, envelope, size=size, root=root.hex())
        result = then(manifest, parts)
        for done in hashes:  # also the parts ``then`` did not read
            done.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return result


_THREADED_BYTES = 8 << 20


class _InlineExecutor:
    """An executor that runs each call at once (futures come back already done)."""

    def submit(self, fn: Callable[..., None], *args: Any) -> Future[None]:
        done: Future[None] = Future()
        try:
            fn(*args)
            done.set_result(None)
        except SnapshotError as exc:
            done.set_exception(exc)
        return done

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


class _Parts(Mapping[str, pa.Table]):
    """A snapshot's known parts, each verified, decrypted and decoded on first access."""

    def __init__(
        self,
        path: Path,
        envelope: _Envelope,
        views: list[pa.Buffer],
        hashes: list[_SegmentCheck],
        key: Key | None,
    ) -> None:
        self._path, self._views, self._hashes = path, views, hashes
        self._enc = envelope.encryption
        self._aes = None if self._enc is None else _aes(self._enc, key, path)
        self.body = _body(path, bytes(self._segment(0)))
        _check_shape(path, self.body, envelope)
        self._index = {
            p.name: i + 1 for i, p in enumerate(self.body.parts) if p.name in KNOWN_PARTS
        }
        self._tables: dict[str, pa.Table] = {}

    def _segment(self, index: int) -> Any:
        self._hashes[index].result()  # raises SnapshotIntegrityError
        if self._enc is None:
            return self._views[index]
        return _open_sealed(self._views[index], self._aes, self._enc, index, self._path)

    def __getitem__(self, name: str) -> pa.Table:
        if name not in self._tables:
            index = self._index[name]
            entry = self.body.parts[index - 1]
            table = _read_ipc(self._path, name, self._segment(index))
            if table.num_rows != entry.rows or table.num_rows != self.body.counts.total:
                raise SnapshotError(
                    f"snapshot {self._path}: part {name!r} has {table.num_rows} rows, the "
                    f"manifest says {entry.rows} of {self.body.counts.total} memories; the "
                    "file is damaged"
                )
            self._tables[name] = table
        return self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def _open(path: Path) -> Any:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise SnapshotError(f"no snapshot file at {path}; check the path") from None
    except IsADirectoryError:
        raise SnapshotError(f"{path} is a directory, not a snapshot file") from None


def _aes(enc: Encryption, key: object, path: Path) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(_key_for(enc, key, path))


def _check_shape(path: Path, body: _Body, envelope: _Envelope) -> None:
    if len(envelope.segments) != len(body.parts) + 1:
        raise SnapshotError(
            f"snapshot {path} lists {len(body.parts)} parts in {len(envelope.segments) - 1} "
            "segments; the file is damaged"
        )
    if sum(body.counts.kinds.values()) != body.counts.total or (
        sum(body.counts.statuses.values()) != body.counts.total
    ):
        raise SnapshotError(f"snapshot {path} has inconsistent counts; the file is damaged")


_READ_OPTIONS = ipc.IpcReadOptions(ensure_alignment=ipc.Alignment.DataTypeSpecific)
"""Copy a buffer only if it is misaligned (sealed parts decrypt to fresh memory)."""


def _read_ipc(path: Path, name: str, data: Any) -> pa.Table:
    try:
        source = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
        table = ipc.open_stream(source, options=_READ_OPTIONS).read_all()
        # A hash proves the bytes are the writer's, not that the writer was engramdb:
        # full validation keeps a forged offset or length away from any kernel.
        table.validate(full=True)
        return table
    except (pa.ArrowInvalid, pa.ArrowIOError, pa.ArrowNotImplementedError) as exc:
        raise SnapshotError(
            f"snapshot {path}: part {name!r} is not readable Arrow ({exc})"
        ) from None


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
