"""An agent's HNSW graph kept in a file, so a cold start reads it instead of rebuilding it.

Building the graph of a 100k-memory agent takes tens of seconds; reading it back
takes well under one. A cache is two files in the cache directory, named after
the agent (hex-encoded, so any agent name makes a safe file name):

- ``<agent>.<token>.faiss``: the FAISS index as :func:`faiss.serialize_index` wrote it;
- ``<agent>.json``: the *stamp* (format, agent, embedder, dimension, the store's
  version and that version's commit time), the memory id of every graph node
  in insertion order (null for a tombstone), the search beam and its tuning,
  and the size and CRC-32 of the index file.

The JSON file is written last, through a temporary file and a rename, so it is
the commit point: a crash leaves the previous cache or an orphan index file
(removed by the next write), never a JSON file naming a half-written index. A
reader checks the size and checksum before FAISS parses a byte, so a damaged
cache is refused and rebuilt, never trusted. The cache never decides what is
true: the engine checks it against the store (see
:class:`~engramdb.engine.views.ViewRegistry`), and deleting it costs one rebuild.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import zlib
from pathlib import Path
from typing import Any

import faiss as _faiss

from engramdb.index.vector import HNSWIndex, Tuning

faiss: Any = _faiss

__all__ = ["CACHE_FORMAT", "CacheStamp", "CachedGraph", "IndexCache"]

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


@dataclasses.dataclass(frozen=True, slots=True)
class CacheStamp:
    """What a cached graph was built from; a cache is used only for the same one.

    Attributes:
        agent: Whose memories.
        embedder: The store's embedder name.
        dim: Vector dimension.
        version: The store's table version the graph reflects.
        version_time: That version's commit time (ISO), which tells two stores
            at the same version number apart.
    """

    agent: str
    embedder: str
    dim: int
    version: int
    version_time: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class CachedGraph:
    """A graph read back from the cache, before it is matched to a view's labels.

    Attributes:
        stamp: What it was built from.
        ids: The memory id of each graph node in insertion order (None: tombstone).
        index: The FAISS ``IndexHNSWFlat``.
        ef_search: The search beam it was saved with.
        tuning: Its recall-target tuning, if any.
    """

    stamp: CacheStamp
    ids: list[str | None]
    index: Any
    ef_search: int
    tuning: Tuning | None


class IndexCache:
    """The cache directory of one store.

    Args:
        root: The directory (made on first write).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _json(self, agent: str) -> Path:
        return self.root / f"{agent.encode().hex()}.json"

    def write(self, stamp: CacheStamp, index: HNSWIndex, ids: list[str | None]) -> Path:
        """Save a graph and the ids of its nodes; returns the JSON file's path.

        Raises:
            OSError: the directory or a file could not be written (the previous
                cache, if any, is left as it was).
        """
        if len(ids) != int(index.index.ntotal):
            raise ValueError(f"{len(ids)} ids for {int(index.index.ntotal)} graph nodes")
        self.root.mkdir(parents=True, exist_ok=True)
        stem = stamp.agent.encode().hex()
        name = f"{stem}.{secrets.token_hex(6)}.faiss"
        blob = self.root / name
        # Straight to the file: a serialized copy in memory would be as large as the
        # graph, and the heap it leaves behind stays with the process.
        try:
            faiss.write_index(index.index, str(blob))
        except RuntimeError as exc:  # FAISS reports I/O failures so
            blob.unlink(missing_ok=True)
            raise OSError(f"could not write the index cache file {blob}: {exc}") from exc
        size, crc = _file_crc(blob)
        header = {
            "format": CACHE_FORMAT,
            "stamp": dataclasses.asdict(stamp),
            "faiss": str(faiss.__version__),
            "index_file": name,
            "index_bytes": size,
            "index_crc32": crc,
            "ef_search": int(index.ef_search),
            "tuning": None if index.tuning is None else dataclasses.asdict(index.tuning),
            "ids": ids,
        }
        try:
            target = self._commit(stamp.agent, header)
        except BaseException:
            blob.unlink(missing_ok=True)
            raise
        for old in self.root.glob(f"{stem}.*.faiss"):
            if old.name != name:
                with contextlib.suppress(OSError):
                    old.unlink()
        return target

    def restamp(self, stamp: CacheStamp, ids: list[str | None]) -> Path:
        """Give the agent's cache a new stamp and node ids, keeping its index file.

        For a graph that gained no node since it was written (memories deleted,
        or rows rewritten with the same vectors, only retire nodes): writing the
        small JSON file is enough.

        Raises:
            OSError: the cache is gone or could not be written.
            ValueError: the ids do not match the cached graph's nodes.
        """
        path = self._json(stamp.agent)
        header = json.loads(path.read_text())
        if len(ids) != len(header["ids"]):
            raise ValueError(f"{len(ids)} ids for {len(header['ids'])} cached graph nodes")
        header["stamp"] = dataclasses.asdict(stamp)
        header["ids"] = ids
        return self._commit(stamp.agent, header)

    def _commit(self, agent: str, header: dict[str, Any]) -> Path:
        """Write the JSON file through a temporary file and a rename (the commit point)."""
        target = self._json(agent)
        temp = target.with_name(f"{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            temp.write_text(json.dumps(header, separators=(",", ":")))
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return target

    def read(self, agent: str, *, embedder: str, dim: int) -> CachedGraph | None:
        """The agent's cached graph, or None when there is none or it cannot be trusted.

        A file that is damaged, of another format, FAISS version, embedder or
        dimension is ignored (and logged): the caller rebuilds from the store.
        """
        path = self._json(agent)
        try:
            header = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("index cache %s ignored: unreadable (%s)", path, exc)
            return None
        try:
            return self._parse(header, agent=agent, embedder=embedder, dim=dim)
        except (KeyError, TypeError, ValueError, OSError, RuntimeError) as exc:
            log.warning("index cache %s ignored: %s", path, exc)
            return None

    def _parse(
        self, header: dict[str, Any], *, agent: str, embedder: str, dim: int
    ) -> CachedGraph | None:
        if header.get("format") != CACHE_FORMAT or header.get("faiss") != str(faiss.__version__):
            raise ValueError(f"format {header.get('format')}, faiss {header.get('faiss')}")
        stamp = CacheStamp(**header["stamp"])
        if (stamp.agent, stamp.embedder, stamp.dim) != (agent, embedder, dim):
            raise ValueError(f"built for {stamp.agent!r}, {stamp.embedder!r}, dim {stamp.dim}")
        name = str(header["index_file"])
        if Path(name).name != name:
            raise ValueError(f"index file {name!r} is not a plain file name")
        size, crc = _file_crc(self.root / name)
        if (size, crc) != (header["index_bytes"], header["index_crc32"]):
            raise ValueError(f"index file {name} does not match its size and checksum")
        ids = header["ids"]
        if not isinstance(ids, list) or not all(x is None or isinstance(x, str) for x in ids):
            raise ValueError("the node ids are not a list of strings")
        index = faiss.read_index(str(self.root / name))
        if int(index.ntotal) != len(ids) or int(index.d) != dim:
            raise ValueError(f"{int(index.ntotal)} nodes of dim {int(index.d)}, {len(ids)} ids")
        raw = header["tuning"]
        tuning = None
        if raw is not None:
            raw["tried"] = tuple(tuple(pair) for pair in raw["tried"])
            tuning = Tuning(**raw)
        return CachedGraph(stamp, ids, index, int(header["ef_search"]), tuning)

    def drop(self, agent: str) -> None:
        """Remove the agent's cache files (a missing cache is fine)."""
        stem = agent.encode().hex()
        for path in [self._json(agent), *self.root.glob(f"{stem}.*.faiss")]:
            with contextlib.suppress(OSError):
                path.unlink()


_CRC_BLOCK = 1 << 20


def _file_crc(path: Path) -> tuple[int, int]:
    """A file's size and CRC-32, read a block at a time."""
    size, crc = 0, 0
    with path.open("rb") as f:
        while block := f.read(_CRC_BLOCK):
            size += len(block)
            crc = zlib.crc32(block, crc)
    return size, crc
