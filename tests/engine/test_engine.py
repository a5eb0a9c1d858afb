"""The Python API contract of section 5, on real LanceDB and FAISS in a temporary directory."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from engramdb import (
    EmbedderMismatchError,
    Hit,
    Memory,
    MemoryEngine,
    MemoryKind,
    NotFoundError,
    StoreLockedError,
    ValidationError,
)
from engramdb.config import Settings
from engramdb.errors import ReadOnlyError, StoreClosedError

FACTS = [
    "Alice moved to Lisbon in May",
    "Bob is allergic to peanuts",
    "The quarterly report is due on Friday",
    "Carol plays the cello in an orchestra",
    "The office wifi password changed last week",
    "Dave prefers window seats on long flights",
]


@pytest.mark.s3
def test_add_recall_get_update_delete(engine: MemoryEngine) -> None:
    mems = engine.add_many(FACTS, agent="assistant", kind="semantic")
    assert [m.text for m in mems] == FACTS
    hits = engine.recall("Which seat does Dave prefer on flights?", agent="assistant", k=3)
    assert isinstance(hits[0], Hit)
    assert hits[0].memory.text == FACTS[5]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].similarity > hits[1].similarity

    target = mems[1]
    got = engine.get(target.id)
    assert got.text == target.text and got.kind is MemoryKind.SEMANTIC

    updated = engine.update(target.id, text="Bob is allergic to shellfish", importance=0.9)
    assert updated.text == "Bob is allergic to shellfish" and updated.importance == 0.9
    assert updated.updated_at >= target.updated_at
    assert engine.recall("shellfish allergy", agent="assistant", k=1)[0].memory.id == target.id

    engine.delete(target.id)
    with pytest.raises(NotFoundError):
        engine.get(target.id)
    assert target.id not in {h.memory.id for h in engine.recall("allergy", agent="assistant")}
    assert engine.count(agent="assistant") == len(FACTS) - 1


@pytest.mark.s3
def test_everything_survives_reopen(store_path: Path) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as eng:
        for agent in ("a1", "a2", "a3"):
            eng.add_many(FACTS, agent=agent, session="s1")
        eng.add("remember the milk", agent="a1", kind="procedural", metadata={"n": 3})
        before = {a: eng.list(agent=a, limit=None) for a in eng.agents()}
        q = {
            a: [h.memory.id for h in eng.recall("milk", agent=a, record_access=False)]
            for a in eng.agents()
        }
    with MemoryEngine.open(store_path, embedder="hashing") as eng:
        assert eng.agents() == ["a1", "a2", "a3"]
        assert {a: eng.list(agent=a, limit=None) for a in eng.agents()} == before
        assert {
            a: [h.memory.id for h in eng.recall("milk", agent=a, record_access=False)]
            for a in eng.agents()
        } == q


@pytest.mark.s3
def test_agents_are_isolated(engine: MemoryEngine) -> None:
    engine.add("secret of agent one", agent="one")
    engine.add("note of agent two", agent="two")
    assert all(h.memory.agent == "two" for h in engine.recall("secret", agent="two"))
    m = engine.add("another secret", agent="one")
    with pytest.raises(NotFoundError):
        engine.get(m.id, agent="two")
    assert engine.recall("anything", agent="nobody") == []


def test_filters_apply_before_top_k(engine: MemoryEngine) -> None:
    items = [
        {
            "text": f"weather report number {i}",
            "metadata": {"i": i, "tag": "rare" if i % 50 == 0 else "common"},
            "session": f"s{i % 5}",
            "kind": "episodic" if i % 2 else "semantic",
        }
        for i in range(500)
    ]
    engine.add_many(items, agent="w")
    hits = engine.recall("weather report", agent="w", k=10, where={"tag": "rare"})
    assert len(hits) == 10 and all(h.memory.metadata["tag"] == "rare" for h in hits)
    hits = engine.recall("weather report", agent="w", k=7, session="s3", kinds=["semantic"])
    assert len(hits) == 7
    assert all(h.memory.session == "s3" and h.memory.kind is MemoryKind.SEMANTIC for h in hits)
    hits = engine.recall("weather", agent="w", k=20, where={"i": {"$gte": 10, "$lt": 15}})
    assert sorted(h.memory.metadata["i"] for h in hits) == [10, 11, 12, 13, 14]
    hits = engine.recall("weather", agent="w", k=5, where={"i": {"$in": [1, 2, 999]}})
    assert sorted(h.memory.metadata["i"] for h in hits) == [1, 2]
    hits = engine.recall("weather", agent="w", k=5, where={"$or": [{"i": 3}, {"i": 4}]})
    assert sorted(h.memory.metadata["i"] for h in hits) == [3, 4]
    assert engine.recall("weather", agent="w", where={"missing": {"$exists": True}}) == []
    with pytest.raises(ValidationError, match=r"\$near"):
        engine.recall("weather", agent="w", where={"i": {"$near": 3}})


def test_time_filters(engine: MemoryEngine) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    engine.add_many(
        [{"text": f"diary entry {d}", "created_at": base + timedelta(days=d)} for d in range(10)],
        agent="diary",
    )
    hits = engine.recall(
        "diary entry",
        agent="diary",
        k=10,
        since=base + timedelta(days=3),
        until=base + timedelta(days=6),
    )
    assert sorted(h.memory.created_at.day for h in hits) == [4, 5, 6]


def test_working_memory_is_bounded_and_expires(store_path: Path) -> None:
    settings = Settings(working_capacity=4)
    with MemoryEngine.open(store_path, embedder="hashing", settings=settings) as eng:
        for i in range(7):
            eng.add(f"scratch {i}", agent="w", kind="working", session="s")
        eng.add("other session scratch", agent="w", kind="working", session="t")
        kept = eng.list(agent="w", kind="working", session="s")
        assert [m.text for m in kept] == ["scratch 3", "scratch 4", "scratch 5", "scratch 6"]
        assert all(m.expires_at is not None for m in kept)
        short = eng.add("fleeting thought", agent="w", kind="working", session="u", ttl=0.3)
        assert eng.get(short.id).text == "fleeting thought"
        time.sleep(0.4)
        with pytest.raises(NotFoundError, match="expired"):
            eng.get(short.id)
        assert "fleeting thought" not in [h.memory.text for h in eng.recall("fleeting", agent="w")]
    with MemoryEngine.open(store_path, embedder="hashing", settings=settings) as eng:
        eng.list(agent="w")  # loading the agent purges what expired
        assert eng.table.count("agent = 'w' AND session = 'u'") == 0
        assert eng.count(agent="w") == 5


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_score_parts_and_reproducibility(engine: MemoryEngine, mode: str) -> None:
    engine.add("the cat sat on the mat", agent="a", importance=0.1)
    engine.add("the cat sat on the mat today", agent="a", importance=1.0)
    hits = engine.recall("cat on mat", agent="a", k=2, record_access=False, mode=mode)
    assert len(hits) == 2
    for h in hits:
        w = engine.settings.weights
        expected = (
            w.similarity * h.relevance
            + w.recency * h.recency
            + w.importance * h.importance
            + w.access * h.access
        )
        assert h.score == pytest.approx(expected)
        if mode == "dense":
            assert h.relevance == h.similarity
    again = engine.recall("cat on mat", agent="a", k=2, record_access=False, mode=mode)
    assert [h.memory.id for h in again] == [h.memory.id for h in hits]
    assert [h.score for h in again] == [h.score for h in hits]


@pytest.mark.s3
def test_access_is_recorded_in_batches(engine: MemoryEngine) -> None:
    m = engine.add("frequently needed fact", agent="a")
    version = engine.table.version
    for _ in range(3):
        engine.recall("frequently needed fact", agent="a", k=1)
    assert engine.table.version == version  # no write per query
    assert engine.get(m.id).access_count == 3
    logged = engine.table.access.version
    engine.flush()
    assert engine.table.version == version  # one commit, to the access log
    assert engine.table.access.version > logged
    stored = engine.table.fetch([m.id]).column("access_count").to_pylist()
    assert stored == [3]


@pytest.mark.slow
def test_recall_is_reproducible_across_processes(store_path: Path) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as eng:
        eng.add_many([f"note {i} about topic {i % 7}" for i in range(200)], agent="a")
        mine = [h.memory.id for h in eng.recall("topic 3", agent="a", k=15, record_access=False)]
    code = (
        "from engramdb import MemoryEngine\n"
        f"e = MemoryEngine.open({str(store_path)!r}, embedder='hashing', read_only=True)\n"
        "hits = e.recall('topic 3', agent='a', k=15, record_access=False)\n"
        "print(','.join(h.memory.id for h in hits))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().split(",") == mine


def test_bring_your_own_vector(engine: MemoryEngine) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(20, 256)).astype(np.float32)
    mems = engine.add_many([{"text": f"item {i}", "vector": vecs[i]} for i in range(20)], agent="v")
    hits = engine.recall(vecs[7], agent="v", k=1)
    assert hits[0].memory.id == mems[7].id
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValidationError, match="dim 3"):
        engine.recall([0.1, 0.2, 0.3], agent="v")


@pytest.mark.slow
def test_second_writer_is_refused(store_path: Path) -> None:
    with MemoryEngine.open(store_path, embedder="hashing") as eng:
        eng.add("x", agent="a")
        with pytest.raises(StoreLockedError, match="read_only"):
            MemoryEngine.open(store_path, embedder="hashing")
        code = (
            "import sys\nfrom engramdb import MemoryEngine, StoreLockedError\n"
            "try:\n"
            f"    MemoryEngine.open({str(store_path)!r}, embedder='hashing')\n"
            "except StoreLockedError:\n    sys.exit(7)\n"
        )
        assert subprocess.run([sys.executable, "-c", code]).returncode == 7
        reader = MemoryEngine.open(store_path, embedder="hashing", read_only=True)
        assert reader.count() == 1
        eng.add("y", agent="a")
        assert reader.count() == 2  # readers see committed data
        with pytest.raises(ReadOnlyError):
            reader.add("z", agent="a")
        reader.close()
    MemoryEngine.open(store_path, embedder="hashing").close()  # released on close


@pytest.mark.s3
def test_embedder_mismatch(store_path: Path) -> None:
    MemoryEngine.open(store_path, embedder="hashing").close()
    with pytest.raises(EmbedderMismatchError, match=r"hashing-256.*hashing-64"):
        MemoryEngine.open(store_path, embedder="hashing-64")
    MemoryEngine.open(store_path, embedder="hashing").close()  # lock was released


def test_closed_engine_refuses_work(store_path: Path) -> None:
    eng = MemoryEngine.open(store_path, embedder="hashing")
    eng.close()
    eng.close()
    with pytest.raises(StoreClosedError):
        eng.recall("x", agent="a")


def test_default_path_and_context_manager(tmp_path: Path) -> None:
    with MemoryEngine.open(embedder="hashing") as eng:
        eng.add("stored in the default place", agent="a")
        assert eng.path == tmp_path / "home" / "default"


def test_not_found_errors_are_key_errors(engine: MemoryEngine) -> None:
    with pytest.raises(KeyError):
        engine.get("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    with pytest.raises(NotFoundError, match="01ARZ3NDEKTSV4RRFFQ69G5FAV"):
        engine.delete("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    with pytest.raises(ValidationError):
        engine.get("../../etc/passwd")


def test_list_pages_in_creation_order(engine: MemoryEngine) -> None:
    mems = engine.add_many([f"line {i}" for i in range(25)], agent="a")
    page1 = engine.list(agent="a", limit=10)
    page3 = engine.list(agent="a", limit=10, offset=20)
    assert [m.id for m in page1] == [m.id for m in mems[:10]]
    assert [m.id for m in page3] == [m.id for m in mems[20:]]


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf", "lance"])
def test_every_index_choice_answers_and_forgets(store_path: Path, index: str) -> None:
    with MemoryEngine.open(store_path, embedder="hashing", index=index) as eng:
        mems = eng.add_many([f"fact {i}: {FACTS[i % 6]}" for i in range(300)], agent="a")
        top = eng.recall(FACTS[2], agent="a", k=5)
        assert len(top) == 5 and all("report" in h.memory.text for h in top)
        gone = top[0].memory.id
        eng.delete(gone)
        assert gone not in [h.memory.id for h in eng.recall(FACTS[2], agent="a", k=50)]
        hits = eng.recall(FACTS[2], agent="a", k=3, where={"$not": {"x": 1}})
        assert len(hits) == 3
        assert len(eng.list(agent="a", limit=None)) == len(mems) - 1


@pytest.mark.s3
def test_memory_round_trips_through_storage(engine: MemoryEngine) -> None:
    parent = engine.add("topic: travel", agent="a", kind="semantic")
    m = engine.add(
        "booked a flight",
        agent="a",
        session="trip-1",
        metadata={"nested": {"k": [1, 2.5, None]}},
        importance=0.75,
        created_at=datetime(2023, 5, 8, 13, 56, 1, 123456),
        parent=parent.id,
        ttl=timedelta(days=3650),
    )
    engine.invalidate()
    stored = engine.get(m.id)
    assert stored == m
    assert isinstance(stored, Memory) and stored.created_at.tzinfo is not None


def test_lance_mode_uses_a_lance_vector_index(store_path: Path) -> None:
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(2000, 256)).astype(np.float32)
    with MemoryEngine.open(store_path, embedder="hashing", index="lance") as eng:
        mems = eng.add_many([{"text": f"v{i}", "vector": vecs[i]} for i in range(2000)], agent="a")
        assert eng.table.ensure_vector_index(min_rows=1000)
        assert any(cfg.columns == ["vector"] for cfg in eng.table.table.list_indices())
        hits = eng.recall(vecs[17], agent="a", k=5)
        assert hits[0].memory.id == mems[17].id
        eng.delete(mems[17].id)
        assert mems[17].id not in [h.memory.id for h in eng.recall(vecs[17], agent="a", k=5)]
