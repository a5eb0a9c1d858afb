"""The public API is what ``engramdb.__all__`` lists; this test fails when it drifts."""

from __future__ import annotations

import inspect

import engramdb
from engramdb import MemoryEngine

PUBLIC = {
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
}


def test_all_is_sorted_and_complete() -> None:
    assert engramdb.__all__ == sorted(engramdb.__all__)
    assert PUBLIC <= set(engramdb.__all__)
    for name in engramdb.__all__:
        assert hasattr(engramdb, name), name


def test_engine_contract_names() -> None:
    """The names and keywords of section 5 of the core contract."""
    expected = {
        "open": ["path", "embedder"],
        "add": [
            "text",
            "agent",
            "kind",
            "session",
            "metadata",
            "importance",
            "created_at",
            "ttl",
            "parent",
            "vector",
        ],
        "add_many": ["items", "agent", "kind", "session"],
        "recall": ["query", "agent", "k", "kinds", "session", "where", "since", "until"],
        "get": ["memory_id", "agent"],
        "update": ["memory_id", "agent", "text", "metadata", "importance"],
        "delete": ["memory_id", "agent"],
        "list": ["agent", "kind", "session", "limit", "offset"],
        "count": ["agent"],
        "agents": [],
        "close": [],
    }
    for method, params in expected.items():
        sig = inspect.signature(getattr(MemoryEngine, method))
        names = [p for p in sig.parameters if p not in ("self", "cls")]
        assert names[: len(params)] == params, method


def test_errors_share_builtin_meaning() -> None:
    from engramdb import errors

    assert issubclass(errors.NotFoundError, KeyError)
    assert issubclass(errors.ValidationError, ValueError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.EngramError)
