"""Agent views: the recall target, the persisted index cache, and the memory budget.

Every check is on behaviour: which memories recall returns, what stats() counts,
what the store holds. The cache is exercised on small agents made HNSW by a low
``exact_threshold``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engramdb import MemoryEngine, Settings, ValidationError
from engramdb.config import ScoringWeights
from engramdb.embeddings import HashingEmbedder
from engramdb.engine.views import CACHE_DIR

DIM = 64
SIMILARITY_ONLY = ScoringWeights(recency=0.0, importance=0.0, access=0.0)


def gaussian_clusters(
    n: int, *, dim: int, clusters: int = 200, noise: float = 0.35, seed: int = 0
) -> np.ndarray:
    """Unit vectors around random centres with isotropic noise: high intrinsic dimension."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(clusters, size=n)] + noise * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def open_engine(path: Path, **settings: object) -> MemoryEngine:
    base: dict[str, object] = {"exact_threshold": 200, "weights": SIMILARITY_ONLY}
    return MemoryEngine.open(
        path, embedder=HashingEmbedder(dim=DIM), settings=Settings(**(base | settings))
    )


def fill(engine: MemoryEngine, agent: str, vectors: np.ndarray, start: int = 0) -> list[str]:
    items = [{"text": f"memory {start + i}", "vector": v} for i, v in enumerate(vectors)]
    return [m.id for m in engine.add_many(items, agent=agent)]


def answers(engine: MemoryEngine, agent: str, queries: np.ndarray) -> list[list[str]]:
    out = []
    for q in queries:
        hits = engine.recall(q, agent=agent, k=10, mode="dense", record_access=False)
        out.append([h.memory.id for h in hits])
    return out


def test_recall_target_is_met_on_high_intrinsic_dimension(tmp_path: Path) -> None:
    dim, n = 384, 3000
    data = gaussian_clusters(n + 100, dim=dim)
    base, queries = data[:n], data[n:]
    settings = Settings(exact_threshold=1000, weights=SIMILARITY_ONLY, recall_target=0.95)
    with MemoryEngine.open(
        tmp_path / "s", embedder=HashingEmbedder(dim=dim), settings=settings
    ) as engine:
        items = [{"text": f"m{i}", "vector": v} for i, v in enumerate(base)]
        ids = np.array([m.id for m in engine.add_many(items, agent="a")])
        got = answers(engine, "a", queries)
        stats = engine.stats(agent="a").views["a"]
    truth = np.argsort(-(queries @ base.T), axis=1)[:, :10]
    recall = np.mean([len(set(g) & set(ids[t])) / 10 for g, t in zip(got, truth, strict=True)])
    assert recall >= 0.95
    assert stats.index == "hnsw"
    assert stats.recall_target == 0.95
    assert stats.recall_estimate is not None and stats.recall_estimate >= 0.95
    # On data this hard at this size no beam beats a scan: breadth None, estimate 1.0.
    assert stats.breadth is None or stats.breadth >= 16


@pytest.mark.parametrize("value", [0.0, -0.1, 1.5])
def test_recall_target_outside_zero_one_is_refused(value: float) -> None:
    with pytest.raises(ValidationError, match="recall_target"):
        Settings(recall_target=value)


def test_fresh_cache_is_read_not_rebuilt(tmp_path: Path) -> None:
    vectors = gaussian_clusters(600, dim=DIM, clusters=20, seed=1)
    queries = gaussian_clusters(20, dim=DIM, clusters=20, seed=2)
    with open_engine(tmp_path / "s") as engine:
        fill(engine, "a", vectors)
        engine.invalidate()  # the next recall builds the view from the store
        first = answers(engine, "a", queries)
        built = engine.stats()
    assert (built.builds, built.cache_writes) == (1, 1)
    with open_engine(tmp_path / "s") as engine:
        again = answers(engine, "a", queries)
        loaded = engine.stats()
    assert (loaded.builds, loaded.cache_loads, loaded.catch_ups) == (0, 1, 0)
    assert loaded.views["a"].source == "cache"
    assert again == first


def test_stale_cache_is_caught_up_to_the_same_answers(tmp_path: Path) -> None:
    vectors = gaussian_clusters(700, dim=DIM, clusters=20, seed=3)
    queries = np.concatenate([vectors[600:620], gaussian_clusters(10, dim=DIM, seed=4)])
    with open_engine(tmp_path / "s") as engine:
        ids = fill(engine, "a", vectors[:600])
        engine.invalidate()
        answers(engine, "a", queries)  # builds and caches the graph
    with open_engine(tmp_path / "s", index_cache=False) as engine:
        # Written while no cache is kept: new memories, a moved one, a deleted one.
        fill(engine, "a", vectors[600:], start=600)
        engine.update(ids[0], agent="a", text="now about something else entirely")
        engine.delete(ids[1], agent="a")
        engine.compact()
        truth = answers(engine, "a", queries)
    with open_engine(tmp_path / "s") as engine:
        caught_up = answers(engine, "a", queries)
        stats = engine.stats()
    assert (stats.builds, stats.catch_ups) == (0, 1)
    assert stats.views["a"].memories == 699
    assert caught_up == truth
    with open_engine(tmp_path / "s") as engine:
        assert answers(engine, "a", queries) == truth
        assert engine.stats().cache_loads == 1  # the catch-up rewrote the cache


def test_a_commit_that_moves_no_vector_only_restamps_the_cache(tmp_path: Path) -> None:
    vectors = gaussian_clusters(400, dim=DIM, clusters=20, seed=7)
    with open_engine(tmp_path / "s") as engine:
        ids = fill(engine, "a", vectors)
        engine.invalidate()
        first = answers(engine, "a", vectors[:5])
    (blob,) = (tmp_path / "s" / CACHE_DIR).glob("*.faiss")
    with open_engine(tmp_path / "s", index_cache=False) as engine:
        engine.recall(vectors[0], agent="a", k=3)  # access counts, written on close
        engine.delete(ids[399], agent="a")
    with open_engine(tmp_path / "s") as engine:
        assert answers(engine, "a", vectors[:5]) == first
        stats = engine.stats()
        assert (stats.catch_ups, stats.cache_writes) == (1, 1)
    assert list((tmp_path / "s" / CACHE_DIR).glob("*.faiss")) == [blob]
    with open_engine(tmp_path / "s") as engine:
        assert answers(engine, "a", vectors[:5]) == first
        assert engine.stats().cache_loads == 1


@pytest.mark.parametrize("damage", ["index", "header", "delete"])
def test_damaged_or_missing_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    vectors = gaussian_clusters(500, dim=DIM, clusters=20, seed=5)
    queries = gaussian_clusters(10, dim=DIM, clusters=20, seed=6)
    with open_engine(tmp_path / "s") as engine:
        fill(engine, "a", vectors)
        engine.invalidate()
        first = answers(engine, "a", queries)
    cache = tmp_path / "s" / CACHE_DIR
    if damage == "index":
        (blob,) = cache.glob("*.faiss")
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
    elif damage == "header":
        (header,) = cache.glob("*.json")
        header.write_text(header.read_text()[:100])
    else:
        for path in cache.iterdir():
            path.unlink()
    with open_engine(tmp_path / "s") as engine:
        assert answers(engine, "a", queries) == first
        stats = engine.stats()
    assert (stats.builds, stats.cache_loads) == (1, 0)


def test_tiny_budget_evicts_and_reloads_with_identical_recall(tmp_path: Path) -> None:
    agents = ["a", "b", "c"]
    data = {a: gaussian_clusters(300, dim=DIM, clusters=10, seed=i) for i, a in enumerate(agents)}
    queries = gaussian_clusters(5, dim=DIM, clusters=10, seed=9)
    with open_engine(tmp_path / "s") as engine:
        for agent in agents:
            fill(engine, agent, data[agent])
        roomy = {a: answers(engine, a, queries) for a in agents}
    with open_engine(tmp_path / "s", view_cache_bytes=1) as engine:
        for _ in range(2):
            for agent in agents:
                assert answers(engine, agent, queries) == roomy[agent]
                assert list(engine.stats().views) == [agent]  # only the view in use stays
        stats = engine.stats()
    assert stats.evictions == 5
    assert (stats.builds, stats.cache_loads) == (0, 6)  # every reload read a graph back


def test_eviction_keeps_access_counts_and_working_memory(tmp_path: Path) -> None:
    vectors = gaussian_clusters(250, dim=DIM, clusters=10, seed=11)
    with open_engine(tmp_path / "s", view_cache_bytes=1) as engine:
        fill(engine, "a", vectors[:200])
        fill(engine, "b", vectors[200:])
        note = engine.add("the user is booking a flight", agent="a", kind="working", session="s1")
        hits = engine.recall(vectors[0], agent="a", k=3, mode="dense")
        engine.recall(vectors[200], agent="b", k=3)  # evicts a before any flush
        assert engine.stats().evictions >= 1
        for hit in hits:
            assert engine.get(hit.memory.id, agent="a").access_count == 1
        brief = engine.brief(agent="a", session="s1")
        assert note.id in {m.id for m in brief.memories}
    with open_engine(tmp_path / "s") as engine:
        assert engine.get(hits[0].memory.id, agent="a").access_count == 1


def test_eviction_keeps_learned_depths(tmp_path: Path) -> None:
    settings = Settings(view_cache_bytes=1)
    with MemoryEngine.open(
        tmp_path / "s", embedder="hashing", space="poincare", settings=settings
    ) as engine:
        root = engine.add("animals", agent="a", kind="semantic")
        for group in ("mammals", "birds", "fish"):
            mid = engine.add(group, agent="a", kind="semantic", parent=root.id)
            for n in range(2):
                engine.add(f"{group} kind {n}", agent="a", kind="semantic", parent=mid.id)
        engine.add("unrelated", agent="b")
        learned = engine.refine_hierarchy(agent="a", epochs=20)
        before = {h.memory.id: h.depth for h in engine.recall("mammals", agent="a", k=10)}
        engine.recall("unrelated", agent="b")  # evicts a
        assert "a" not in engine.stats().views
        after = {h.memory.id: h.depth for h in engine.recall("mammals", agent="a", k=10)}
    assert after == before
    assert learned[root.id] == pytest.approx(before[root.id])


def test_the_index_cache_lives_in_a_local_store_or_under_the_data_directory(
    tmp_path: Path,
) -> None:
    from engramdb.config import default_store_path
    from engramdb.engine.views import cache_dir
    from engramdb.store.location import StoreLocation

    settings = Settings()
    local = StoreLocation.of(tmp_path / "store")
    assert cache_dir(settings, local) == tmp_path / "store" / CACHE_DIR
    a = cache_dir(settings, StoreLocation.of("s3://bucket/a", {"aws_region": "us-east-1"}))
    b = cache_dir(settings, StoreLocation.of("s3://bucket/b", {"aws_region": "us-east-1"}))
    home = default_store_path(settings).parent / CACHE_DIR
    assert a.parent == home and b.parent == home and a != b  # one folder per store URI
    chosen = Settings(index_cache_dir=tmp_path / "mine")
    assert cache_dir(chosen, local) == tmp_path / "mine"
