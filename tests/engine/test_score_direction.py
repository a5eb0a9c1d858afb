"""Score direction is a contract: higher is better, in every index and every space."""

from __future__ import annotations

from pathlib import Path

import pytest

from engramdb import MemoryEngine

TEXTS = [
    f"note {i} about {w}"
    for i, w in enumerate(
        ["apples", "pears", "rivers", "mountains", "violins", "cellos", "rockets", "planets"] * 40
    )
]


@pytest.mark.parametrize(
    ("space", "index", "rank"),
    [
        ("euclidean", "flat", "similarity"),
        ("euclidean", "hnsw", "similarity"),
        ("euclidean", "ivf", "similarity"),
        ("euclidean", "lance", "similarity"),
        ("poincare", "flat", "similarity"),
        ("poincare", "flat", "distance"),
    ],
)
def test_best_match_has_the_highest_score(
    store_path: Path, space: str, index: str, rank: str
) -> None:
    with MemoryEngine.open(store_path, embedder="hashing", space=space, index=index) as eng:
        eng.add_many(TEXTS, agent="a")
        target = TEXTS[42]
        hits = eng.recall(target, agent="a", k=10, rank=rank, record_access=False)
        assert hits[0].memory.text == target
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert all(h.similarity <= hits[0].similarity + 1e-6 for h in hits)
