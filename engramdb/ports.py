"""The narrow port through which the parts below the engine use it.

Consolidation, snapshots and checkpoints run against :class:`EngineCore`, not
against :class:`~engramdb.MemoryEngine`: they need the store of record, the
embedder, the settings and the engine's lock, and a way to tell the engine
that an agent changed under it. :class:`~engramdb.MemoryEngine` satisfies this
protocol; so can a test double or another front end. Because the port lives
below ``engine/``, nothing it serves has to import the engine (no cycle).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

from engramdb.config import Settings
from engramdb.embeddings import Embedder
from engramdb.store.location import StoreLocation
from engramdb.store.table import MemoryTable

__all__ = ["EngineCore"]


class EngineCore(Protocol):
    """What a bulk operation needs from an open engine."""

    @property
    def path(self) -> Path | str:
        """The store's directory, or its URI on object storage."""
        ...

    @property
    def location(self) -> StoreLocation:
        """Where the store lives, with its storage options."""
        ...

    @property
    def embedder(self) -> Embedder:
        """The store's embedder."""
        ...

    @property
    def settings(self) -> Settings:
        """The engine's settings."""
        ...

    @property
    def space(self) -> str:
        """``"euclidean"`` or ``"poincare"``."""
        ...

    @property
    def read_only(self) -> bool:
        """Whether the engine was opened without the writer lock."""
        ...

    @property
    def store(self) -> MemoryTable:
        """The store of record."""
        ...

    @property
    def mutex(self) -> threading.RLock:
        """The engine's lock; a bulk operation holds it while it reads state and writes."""
        ...

    def check_open(self) -> None:
        """Raise unless the engine is open (readers also follow the writer here)."""
        ...

    def check_writable(self) -> None:
        """Raise unless the engine is open for writing."""
        ...

    def flush(self) -> None:
        """Write buffered access counts."""
        ...

    def invalidate(self, agent: str | None = None) -> None:
        """Forget the in-memory view of ``agent`` (every agent if None) after a bulk write."""
        ...

    def agents(self) -> list[str]:
        """The agents with memories in the store."""
        ...
