"""Dense recall stays the exact top k by the blended score with the agent's own bound.

The pool stops widening once no memory outside it can beat the k-th: the bound
on a memory's recency, importance and access is the agent's newest, most
important and most used memory. These tests make those parts large, so that a
wrong bound (too tight, or stale after a delete or an access) would change the
top k against a brute-force ranking.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from engramdb import MemoryEngine
from engramdb.config import ScoringWeights, Settings

WEIGHTS = ScoringWeights(recency=0.4, importance=0.3, access=0.3, half_life_days=20.0)
START = datetime(2024, 1, 1, tzinfo=UTC)


def _brute_force(engine: MemoryEngine, query: np.ndarray, k: int) -> list[str]:
    memories = engine.list(agent="a", limit=None)
    rows = engine.store.fetch([m.id for m in memories])
    vectors = dict(
        zip(rows.column("id").to_pylist(), rows.column("vector").to_pylist(), strict=True)
    )
    unit = query / np.linalg.norm(query)
    ref = max(m.created_at.timestamp() for m in memories)
    w = engine.settings.weights
    scored = []
    for m in memories:
        vec = np.asarray(vectors[m.id], dtype=np.float64)
        sim = round(float(vec @ unit / np.linalg.norm(vec)), 6)
        age = max(ref - m.created_at.timestamp(), 0.0)
        score = (
            w.similarity * sim
            + w.recency * 0.5 ** (age / (w.half_life_days * 86400.0))
            + w.importance * m.importance
            + w.access * (1.0 - math.exp(-m.access_count / w.access_scale))
        )
        scored.append((-score, m.id))
    return [mid for _, mid in sorted(scored)[:k]]


def test_recall_matches_brute_force_when_the_other_parts_outweigh_similarity(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    dim = 32
    settings = Settings(weights=WEIGHTS)
    with MemoryEngine.open(
        tmp_path / "store", embedder="hashing", index="flat", settings=settings
    ) as eng:
        eng_dim = eng.embedder.dim
        base = rng.normal(size=(300, dim))
        items = [
            {
                "text": f"memory {i}",
                "vector": np.pad(base[i], (0, eng_dim - dim)),
                "importance": float(rng.uniform(0, 1)),
                "created_at": START + timedelta(days=float(rng.uniform(0, 300))),
            }
            for i in range(300)
        ]
        memories = eng.add_many(items, agent="a")
        used = [m.model_copy(update={"access_count": int(rng.integers(0, 30))}) for m in memories]
        eng.replace_records(used[::2])
        queries = [np.pad(rng.normal(size=dim), (0, eng_dim - dim)) for _ in range(8)]

        def check() -> None:
            for q in queries:
                hits = eng.recall(q, agent="a", k=10, mode="dense", record_access=False)
                assert [h.memory.id for h in hits] == _brute_force(eng, q, 10)

        check()
        # The newest memory leaves: the recency bound follows the new newest.
        newest = max(eng.list(agent="a", limit=None), key=lambda m: m.created_at)
        eng.delete(newest.id)
        check()
        # Accesses raise the most-used count: the access bound follows.
        for q in queries[:3]:
            for _ in range(12):
                eng.recall(q, agent="a", k=3, mode="dense")
        check()


def test_heavily_used_memories_outside_the_pool_are_scored_not_lost(tmp_path: Path) -> None:
    """Tightly packed similarities and a few much-used memories just below them: only
    their use can lift them into the top k, which must match brute force (with and
    without a filter) however the engine finds them."""
    rng = np.random.default_rng(5)
    dim = 32
    weights = ScoringWeights(recency=0.0, importance=0.0, access=0.05)
    with MemoryEngine.open(
        tmp_path / "store", embedder="hashing", index="flat", settings=Settings(weights=weights)
    ) as eng:
        eng_dim = eng.embedder.dim
        centre = rng.normal(size=dim)
        base = centre + 0.05 * rng.normal(size=(1500, dim))  # similarities within ~0.01
        items = [
            {"text": f"memory {i}", "vector": np.pad(base[i], (0, eng_dim - dim))}
            for i in range(1500)
        ]
        memories = eng.add_many(items, agent="a")
        query = np.pad(centre, (0, eng_dim - dim))
        sims = base @ centre / (np.linalg.norm(base, axis=1) * np.linalg.norm(centre))
        # Much used: some far below the first pool (rank 200 on), a few widely used.
        order = np.argsort(-sims)
        heavy = [memories[int(i)] for i in order[200:1500:100]]
        used = [m.model_copy(update={"access_count": 60}) for m in heavy]
        heavy_ids = {m.id for m in heavy}
        light = [memories[int(i)] for i in order[50:1500:3]]
        used += [m.model_copy(update={"access_count": 1}) for m in light if m.id not in heavy_ids]
        eng.replace_records(used)
        hits = eng.recall(query, agent="a", k=10, mode="dense", record_access=False)
        expected = _brute_force(eng, query, 10)
        assert [h.memory.id for h in hits] == expected
        assert {m.id for m in heavy} & set(expected)  # the case is the one meant
        hits = eng.recall(query, agent="a", k=5, mode="dense", record_access=False)
        assert [h.memory.id for h in hits] == expected[:5]
