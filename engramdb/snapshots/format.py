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

This module writes and reads the layout; the manifest's models are in
:mod:`~engramdb.snapshots.manifest`, the vector codecs in
:mod:`~engramdb.snapshots.codecs` and the sealing in
:mod:`~engramdb.snapshots.crypto`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.ipc as ipc
import pydantic

from engramdb.errors import SnapshotError, SnapshotIntegrityError
from engramdb.snapshots.codecs import VECTOR_CODECS, VectorCodec, vector_codec
from engramdb.snapshots.crypto import Key, new_sealer, open_sealed, opener, seal
from engramdb.snapshots.manifest import (
    FORMAT_VERSION,
    MAGIC,
    Body,
    EmbedderSpec,
    Encryption,
    Envelope,
    PartEntry,
    PartInfo,
    Segment,
    SnapshotCounts,
    SnapshotManifest,
    VectorEncoding,
    counts_of,
    manifest_json,
)

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
    "manifest_json",
    "read_manifest",
    "read_snapshot",
    "vector_codec",
    "write_snapshot",
]

_PREFIX = struct.Struct(">8sHI")
_ROOT_BYTES = 32
_MAX_ENVELOPE = 1 << 20
KNOWN_PARTS = frozenset({"records", "provenance", "vectors", "points"})
REQUIRED_PARTS = ("records", "provenance", "vectors")

_ALIGN = 8
_PROBE_BYTES = 1 << 20
_MIN_SAVING = 0.10
"""A part is stored zstd-compressed when that makes a 1 MiB probe at least 10% smaller."""

T = TypeVar("T")


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
        enc, aes = new_sealer(key)
    encoded = [_encode_part(p.table) for p in parts]
    body = Body(
        engine_version=engine_version,
        agent=agent,
        created_at=created_at,
        embedder=embedder,
        space=space,
        counts=counts,
        vectors=vectors,
        parts=tuple(
            PartEntry(name=p.name, rows=p.table.num_rows, required=p.required, codec=codec)
            for p, (_, codec) in zip(parts, encoded, strict=True)
        ),
    )
    clear = [_pad(body.model_dump_json().encode(), 0), *(data for data, _ in encoded)]
    stored = clear if enc is None else [seal(d, aes, enc, i) for i, d in enumerate(clear)]
    segments = tuple(_segment_of(d) for d in stored)
    envelope = Envelope(encryption=enc, segments=segments).model_dump_json().encode()
    envelope = _pad(envelope, _PREFIX.size)
    head = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(envelope)) + envelope
    root = hashlib.sha256(head).digest()
    _atomic_write(path, [head, *stored, root])
    return _manifest(
        body,
        Envelope(encryption=enc, segments=segments),
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


def _manifest(body: Body | None, envelope: Envelope, *, size: int, root: str) -> SnapshotManifest:
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


def _head(path: Path, fh: Any, size: int) -> tuple[Envelope, bytes, int]:
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
        envelope = Envelope.model_validate_json(envelope_bytes)
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
    _check_blocks(path, seg, seg.blocks, index)
    for piece, want in zip(_pieces(data), seg.blocks, strict=True):
        _check_piece(path, piece, want, index)


def _check_blocks(path: Path, seg: Segment, blocks: Sequence[str], index: int) -> None:
    """The block list itself: as many as the length needs, and what ``sha256`` commits to."""
    joined = b"".join(bytes.fromhex(d) for d in blocks)
    if len(blocks) != -(-seg.bytes // HASH_BLOCK) or (
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
        _check_blocks(path, seg, seg.blocks, i)
        futures = [
            pool.submit(_check_piece, path, piece, want, i)
            for piece, want in zip(_pieces(view), seg.blocks, strict=True)
        ]
        checks.append(_SegmentCheck(futures))
    return checks


def _body(path: Path, data: bytes) -> Body:
    try:
        body = Body.model_validate_json(data)
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
        aes = opener(envelope.encryption, key, path)
        data = memoryview(open_sealed(data, aes, envelope.encryption, 0, path))
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
        envelope: Envelope,
        views: list[pa.Buffer],
        hashes: list[_SegmentCheck],
        key: Key | None,
    ) -> None:
        self._path, self._views, self._hashes = path, views, hashes
        self._enc = envelope.encryption
        self._aes = None if self._enc is None else opener(self._enc, key, path)
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
        return open_sealed(self._views[index], self._aes, self._enc, index, self._path)

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


def _check_shape(path: Path, body: Body, envelope: Envelope) -> None:
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
