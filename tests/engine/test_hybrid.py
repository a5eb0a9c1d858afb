"""Hybrid recall: modes, filters before top-k in every mode, session grouping, exact top-k."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from engramdb import MemoryEngine, MemoryStatus, ValidationError

MODES = ["hybrid", "dense", "lexical"]
FILLER = "garden flowers watering schedule notes"
TARGET = "I read a book about zymurgy, the chemistry of brewing beer at home on weekends"
QUERY = "garden flowers watering schedule zymurgy"


@pytest.fixture
def garden(tmp_path: Path) -> MemoryEngine:
    eng = MemoryEngine.open(tmp_path / "store", embedder="hashing")
    eng.add_many([f"{FILLER} {i}" for i in range(40)], agent="a")
    eng.add(TARGET, agent="a")
    yield eng
    eng.close()


def test_lexical_finds_a_rare_word_that_dense_misses_and_hybrid_finds_both(
    garden: MemoryEngine,
) -> None:
    def top(mode: str) -> list[str]:
        return [h.memory.text for h in garden.recall(QUERY, agent="a", k=5, mode=mode)]

    assert TARGET not in top("dense")
    assert top("lexical")[0] == TARGET
    hybrid = top("hybrid")
    assert TARGET in hybrid
    assert any(text.startswith(FILLER) for text in hybrid)


def test_a_vector_query_is_dense_and_lexical_mode_needs_text(garden: MemoryEngine) -> None:
    vector = garden.embedder.embed([QUERY])[0]
    by_vector = garden.recall(vector, agent="a", k=5, record_access=False)
    dense = garden.recall(QUERY, agent="a", k=5, mode="dense", record_access=False)
    assert [h.memory.id for h in by_vector] == [h.memory.id for h in dense]
    with pytest.raises(ValidationError, match="lexical"):
        garden.recall(vector, agent="a", mode="lexical")
    with pytest.raises(ValidationError, match="mode"):
        garden.recall(QUERY, agent="a", mode="fuzzy")
    with pytest.raises(ValidationError, match="group_by"):
        garden.recall(QUERY, agent="a", group_by="day")


@pytest.fixture
def mixed(tmp_path: Path) -> MemoryEngine:
    eng = MemoryEngine.open(tmp_path / "store", embedder="hashing")
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    root = eng.add("trip planning topic", agent="a", kind="semantic", created_at=t0)
    for i in range(60):
        eng.add(
            f"trip note {i} about trains and {'hotels' if i % 2 else 'museums'}",
            agent="a",
            kind=["episodic", "semantic", "procedural"][i % 3],
            session=f"s{i % 4}",
            metadata={"n": i, "tag": "even" if i % 2 == 0 else "odd"},
            created_at=t0 + timedelta(days=i),
            parent=root.id if i % 5 == 0 else None,
        )
    archived = eng.list(agent="a", limit=5, offset=10)
    eng.replace_records([m.model_copy(update={"status": MemoryStatus.ARCHIVED}) for m in archived])
    yield eng
    eng.close()


FILTERS = [
    ({"kinds": ["procedural"]}, lambda m: m.kind.value == "procedural"),
    ({"session": "s2"}, lambda m: m.session == "s2"),
    ({"where": {"tag": "odd"}}, lambda m: m.metadata.get("tag") == "odd"),
    ({"where": {"n": {"$gte": 50}}}, lambda m: m.metadata.get("n", -1) >= 50),
    (
        {"since": datetime(2024, 6, 1, tzinfo=UTC)},
        lambda m: m.created_at >= datetime(2024, 6, 1, tzinfo=UTC),
    ),
    (
        {"until": datetime(2024, 5, 10, tzinfo=UTC)},
        lambda m: m.created_at < datetime(2024, 5, 10, tzinfo=UTC),
    ),
    ({"include_archived": True}, lambda m: True),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("args", "keep"), FILTERS)
def test_filters_apply_before_top_k_in_every_mode(
    mixed: MemoryEngine, mode: str, args: dict, keep
) -> None:
    everything = mixed.list(agent="a", limit=None, include_archived=True)
    archived_ok = args.get("include_archived", False)
    allowed = {
        m.id
        for m in everything
        if keep(m) and (archived_ok or m.status is not MemoryStatus.ARCHIVED)
    }
    hits = mixed.recall("trip trains hotels", agent="a", k=8, mode=mode, **args)
    found = {h.memory.id for h in hits}
    assert found <= allowed
    matching = (
        len(allowed)
        if mode != "lexical"
        else len([m for m in everything if m.id in allowed and "trip" in m.text])
    )
    assert len(hits) == min(8, matching)


@pytest.mark.parametrize("mode", MODES)
def test_subtree_scope_applies_in_every_mode(mixed: MemoryEngine, mode: str) -> None:
    root = mixed.list(agent="a", limit=1)[0]
    below = {m.id for m in mixed.children(root.id)} | {root.id}
    hits = mixed.recall("trip trains", agent="a", k=30, mode=mode, scope="subtree", root=root.id)
    assert hits and {h.memory.id for h in hits} <= below


@pytest.mark.parametrize("mode", MODES)
def test_group_by_session_returns_distinct_sessions_best_first(
    mixed: MemoryEngine, mode: str
) -> None:
    hits = mixed.recall("trip trains museums", agent="a", k=3, mode=mode, group_by="session")
    groups = [h.group for h in hits]
    assert len(hits) == 3
    assert len(set(groups)) == 3
    assert all(h.memory.session == h.group for h in hits)
    scores = [h.group_score for h in hits]
    assert scores == sorted(scores, reverse=True)
    all_sessions = mixed.recall("trip", agent="a", k=10, mode=mode, group_by="session")
    assert {h.group for h in all_sessions} == {"s0", "s1", "s2", "s3", None}


def _documented_score(engine: MemoryEngine, sim: float, memory, ref: float) -> float:
    w = engine.settings.weights
    age = max(ref - memory.created_at.timestamp(), 0.0)
    recency = 0.5 ** (age / (w.half_life_days * 86400.0))
    access = 1.0 - math.exp(-memory.access_count / w.access_scale)
    return (
        w.similarity * round(sim, 6)
        + w.recency * recency
        + w.importance * memory.importance
        + w.access * access
    )


def test_dense_recall_is_the_exact_top_k_by_the_blended_score(tmp_path: Path) -> None:
    """Many memories tie in similarity; importance and access decide, whatever the order."""
    rng = np.random.default_rng(7)
    dim = 256
    direction = rng.normal(size=dim)
    other = rng.normal(size=dim)
    path = tmp_path / "store"
    with MemoryEngine.open(path, embedder="hashing") as eng:
        items = []
        for i in range(200):
            vec = direction if i % 4 else direction + 0.05 * other  # most tie exactly
            items.append(
                {"text": f"memory {i}", "vector": vec, "importance": float(rng.uniform(0, 1))}
            )
        memories = eng.add_many(items, agent="a")
        used = [m.model_copy(update={"access_count": int(rng.integers(0, 20))}) for m in memories]
        eng.replace_records(used[::3])
        expected_ids = _brute_force(eng, direction, k=10)
        first = eng.recall(direction, agent="a", k=10, mode="dense", record_access=False)
        assert [h.memory.id for h in first] == expected_ids
    with MemoryEngine.open(path, embedder="hashing") as eng:
        again = eng.recall(direction, agent="a", k=10, mode="dense", record_access=False)
        assert [h.memory.id for h in again] == expected_ids


def _brute_force(engine: MemoryEngine, query: np.ndarray, k: int) -> list[str]:
    memories = engine.list(agent="a", limit=None)
    vectors = {m.id: v for m, v in zip(memories, _vectors(engine, memories), strict=True)}
    unit = query / np.linalg.norm(query)
    ref = max(m.created_at.timestamp() for m in memories)
    scored = [
        (-_documented_score(engine, float(vectors[m.id] @ unit), m, ref), m.id) for m in memories
    ]
    return [mid for _, mid in sorted(scored)[:k]]


def _vectors(engine: MemoryEngine, memories) -> list[np.ndarray]:
    rows = engine.store.fetch([m.id for m in memories])
    by_id = dict(zip(rows.column("id").to_pylist(), rows.column("vector").to_pylist(), strict=True))
    return [np.asarray(by_id[m.id], dtype=np.float64) for m in memories]
