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

from engramdb._version import __version__
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
    "read_snapshot_manifest",
]
