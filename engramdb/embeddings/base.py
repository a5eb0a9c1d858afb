"""The embedder protocol and the cache every embedder can sit behind."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from engramdb._types import FloatMatrix

__all__ = ["CachedEmbedder", "Embedder", "EmbedderInfo"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors.

    Attributes:
        name: Identifies the model; a store remembers it and refuses another.
        dim: Vector dimension.
        normalized: Whether ``embed`` returns unit-length rows.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def normalized(self) -> bool: ...

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed ``texts`` into a float32 array of shape ``(len(texts), dim)``."""
        ...


class EmbedderInfo(tuple[str, int, bool]):
    """(name, dim, normalized): what a store or snapshot records of its embedder."""

    __slots__ = ()

    def __new__(cls, name: str, dim: int, normalized: bool) -> EmbedderInfo:
        return super().__new__(cls, (name, int(dim), bool(normalized)))

    @classmethod
    def of(cls, embedder: Embedder) -> EmbedderInfo:
        return cls(embedder.name, embedder.dim, embedder.normalized)

    def __str__(self) -> str:
        norm = "normalized" if self[2] else "unnormalized"
        return f"{self[0]} (dim {self[1]}, {norm})"


class CachedEmbedder:
    """An LRU cache in front of an embedder, keyed by (embedder name, SHA-256 of the text).

    The same text is embedded once while it stays in the cache; a batch embeds
    only its missing, distinct texts.
    """

    def __init__(self, inner: Embedder, *, capacity: int = 50_000) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.normalized = inner.normalized
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.name}\0{text}".encode()).digest()

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        keys = [self._key(t) for t in texts]
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                row = self._cache.get(key)
                if row is None:
                    missing.setdefault(key, []).append(i)
                else:
                    self._cache.move_to_end(key)
                    out[i] = row
        self.hits += len(texts) - len(missing)  # rows served without running the model
        if missing:
            todo = list(missing)
            vectors = self.inner.embed([texts[missing[k][0]] for k in todo])
            self.misses += len(todo)
            with self._lock:
                for key, vec in zip(todo, vectors, strict=True):
                    for i in missing[key]:
                        out[i] = vec
                    if self.capacity:
                        self._cache[key] = vec.copy()
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        return out

    def __getattr__(self, item: str) -> object:
        # Model-specific extras (chunk counts, the loaded model) stay reachable.
        return getattr(self.inner, item)
