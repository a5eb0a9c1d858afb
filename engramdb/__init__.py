"""engramdb: a vector-memory engine for AI agents.

Agents write what they see, learn and know how to do; recall it by similarity;
compress it by consolidation; and carry it between machines as snapshots.

Example:
    >>> from engramdb import MemoryEngine
    >>> with MemoryEngine.open("./memory") as engine:
    ...     _ = engine.add("Alice moved to Lisbon in May", agent="assistant")
    ...     [h.memory.text for h in engine.recall("Where does Alice live?", agent="assistant")]
    ['Alice moved to Lisbon in May']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engramdb._lazy import lazy_names
from engramdb._version import __version__

if TYPE_CHECKING:
    from engramdb.allocator import limit_malloc_arenas
    from engramdb.config import ScoringWeights, Settings
    from engramdb.consolidation import ConsolidationPolicy, ConsolidationReport
    from engramdb.embeddings import Embedder, HashingEmbedder, SentenceTransformerEmbedder
    from engramdb.engine import Hit, Memory, MemoryEngine, MemoryKind, MemoryStatus
    from engramdb.errors import (
        EmbedderMismatchError,
        EngramError,
        NotFoundError,
        StoreLockedError,
        ValidationError,
    )
    from engramdb.snapshots.io import read_snapshot_manifest

__all__ = [
    "ConsolidationPolicy",
    "ConsolidationReport",
    "Embedder",
    "EmbedderMismatchError",
    "EngramError",
    "HashingEmbedder",
    "Hit",
    "Memory",
    "MemoryEngine",
    "MemoryKind",
    "MemoryStatus",
    "NotFoundError",
    "ScoringWeights",
    "SentenceTransformerEmbedder",
    "Settings",
    "StoreLockedError",
    "ValidationError",
    "__version__",
    "limit_malloc_arenas",
    "read_snapshot_manifest",
]

# Where each public name lives. The package imports none of them up front, so
# ``import engramdb.errors`` (or the CLI's ``--help``) does not pay for LanceDB,
# FAISS and pydantic; the first use of a name imports its module (PEP 562).
_HOMES = {
    "ConsolidationPolicy": "engramdb.consolidation",
    "ConsolidationReport": "engramdb.consolidation",
    "Embedder": "engramdb.embeddings",
    "EmbedderMismatchError": "engramdb.errors",
    "EngramError": "engramdb.errors",
    "HashingEmbedder": "engramdb.embeddings",
    "Hit": "engramdb.engine",
    "Memory": "engramdb.engine",
    "MemoryEngine": "engramdb.engine",
    "MemoryKind": "engramdb.engine",
    "MemoryStatus": "engramdb.engine",
    "NotFoundError": "engramdb.errors",
    "ScoringWeights": "engramdb.config",
    "SentenceTransformerEmbedder": "engramdb.embeddings",
    "Settings": "engramdb.config",
    "StoreLockedError": "engramdb.errors",
    "ValidationError": "engramdb.errors",
    "limit_malloc_arenas": "engramdb.allocator",
    "read_snapshot_manifest": "engramdb.snapshots.io",
}


__getattr__, __dir__ = lazy_names("engramdb", _HOMES, globals(), __all__)
