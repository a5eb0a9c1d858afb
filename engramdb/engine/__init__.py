"""The engine: the :class:`MemoryEngine` facade and the parts it is composed of."""

from engramdb.engine.engine import SPACES, MemoryEngine
from engramdb.records import Hit, Memory, MemoryKind, MemoryStatus

__all__ = ["SPACES", "Hit", "Memory", "MemoryEngine", "MemoryKind", "MemoryStatus"]
