"""The Poincaré space in the engine: depth from hierarchy, structural recall, exact distance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engramdb import MemoryEngine, ValidationError
from engramdb.hyperbolic import pairwise_distance

TOPICS = {
    "travel plans and trips": [
        "flight to lisbon in may",
        "hotel booking near the river",
        "train pass for the coast",
    ],
    "health and fitness": [
        "knee pain after running",
        "marathon training plan",
        "doctor appointment on friday",
    ],
}


@pytest.fixture
def tree(store_path: Path):
    eng = MemoryEngine.open(store_path, embedder="hashing", space="poincare")
    ids: dict[str, str] = {}
    for topic, notes in TOPICS.items():
        root = eng.add(topic, agent="a", kind="semantic")
        ids[topic] = root.id
        for note in notes:
            child = eng.add(note, agent="a", parent=root.id)
            ids[note] = child.id
            ids[note + " detail"] = eng.add(f"detail about {note}", agent="a", parent=child.id).id
    eng.add("a standalone thought about music", agent="a")
    yield eng, ids
    eng.close()


def test_structure_queries(tree) -> None:
    eng, ids = tree
    leaf = ids["knee pain after running detail"]
    assert [m.id for m in eng.ancestors(leaf)] == [
        ids["knee pain after running"],
        ids["health and fitness"],
    ]
    kids = eng.children(ids["travel plans and trips"])
    assert [m.text for m in kids] == TOPICS["travel plans and trips"]
    assert eng.children(leaf) == []


def test_subtree_scope_returns_exactly_the_subtree(tree) -> None:
    eng, ids = tree
    root = ids["health and fitness"]
    hits = eng.recall("anything at all", agent="a", k=100, scope="subtree", root=root)
    expected = (
        {root}
        | {ids[n] for n in TOPICS["health and fitness"]}
        | {ids[n + " detail"] for n in TOPICS["health and fitness"]}
    )
    assert {h.memory.id for h in hits} == expected
    with pytest.raises(ValidationError, match="root"):
        eng.recall("x", agent="a", scope="subtree")


def test_depth_encodes_generality(tree) -> None:
    eng, ids = tree
    hits = {h.memory.id: h.depth for h in eng.recall("trips", agent="a", k=100)}
    root, mid, leaf = (
        ids["travel plans and trips"],
        ids["hotel booking near the river"],
        ids["hotel booking near the river detail"],
    )
    assert 0 <= hits[root] < hits[mid] < hits[leaf] < 1
    general = eng.recall("anything", agent="a", k=100, depth=(0.0, hits[root]))
    assert {h.memory.id for h in general} == {ids[t] for t in TOPICS}
    specific = eng.recall("anything", agent="a", k=100, depth=(hits[leaf], 1.0))
    assert {h.memory.id for h in specific} == {
        ids[n + " detail"] for ns in TOPICS.values() for n in ns
    }


def test_similarity_ranking_ignores_depth(tree) -> None:
    eng, ids = tree
    top = eng.recall("marathon training plan", agent="a", k=1, record_access=False)[0]
    assert top.memory.id == ids["marathon training plan"]


def test_distance_rank_is_exact_poincare_knn(tree) -> None:
    eng, _ = tree
    hits = eng.recall("knee pain", agent="a", k=30, rank="distance", record_access=False)
    dists = [-h.score for h in hits]
    assert dists == sorted(dists)
    view = eng._views.get("a")
    labels = np.flatnonzero(view.alive.view)
    pts = view.vectors(labels).astype(np.float64) * view.depths()[labels][:, None]
    from engramdb.index.hierarchy import norm_of

    q = eng._vectors.query("knee pain").astype(np.float64)[None, :] * norm_of(np.array([1.5]))
    brute = pairwise_distance(q, pts, c=1.0)[0]
    np.testing.assert_allclose(sorted(brute)[: len(dists)], dists, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_refine_learns_depths_from_structure(tree) -> None:
    eng, ids = tree
    depths = eng.refine_hierarchy(agent="a", dim=3)
    root = ids["health and fitness"]
    leaf = ids["marathon training plan detail"]
    assert depths[root] < depths[leaf]
    hit = {h.memory.id: h.depth for h in eng.recall("marathon", agent="a", k=100)}
    assert hit[root] == pytest.approx(depths[root])


def test_euclidean_space_refuses_ball_only_options(engine: MemoryEngine, store_path: Path) -> None:
    engine.add("x", agent="a")
    with pytest.raises(ValidationError, match="poincare"):
        engine.recall("x", agent="a", depth=(0, 0.5))
    with pytest.raises(ValidationError, match="poincare"):
        engine.recall("x", agent="a", rank="distance")
    engine.close()
    with pytest.raises(ValidationError, match="euclidean"):
        MemoryEngine.open(store_path, embedder="hashing", space="poincare")


@pytest.mark.slow
def test_distance_rank_follows_refined_depths(tree) -> None:
    eng, ids = tree
    eng.recall("knee pain", agent="a", k=5, rank="distance", record_access=False)
    view = eng._views.get("a")
    ball = view.ball_index
    depths = eng.refine_hierarchy(agent="a", dim=3, epochs=30)
    eng.recall("knee pain", agent="a", k=5, rank="distance", record_access=False)
    assert view.ball_index is ball
    from engramdb.index.hierarchy import points

    for mid in (ids["health and fitness"], ids["marathon training plan detail"]):
        label = view.label_of[mid]
        point = points(view.vectors(np.array([label])), np.array([depths[mid]]))
        found = ball.index.search(point, 1)
        assert found.ids[0, 0] == label
        assert found.distances[0, 0] == pytest.approx(0.0, abs=1e-6)
