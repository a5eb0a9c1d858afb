"""The engine: records, the LanceDB store of record, FAISS indexes and recall."""

from engramdb.engine.engine import SPACES, MemoryEngine
from engramdb.records import Hit, Memory, MemoryKind, MemoryStatus

__all__ = ["SPACES", "Hit", "Memory", "MemoryEngine", "MemoryKind", "MemoryStatus"]
