"""Recall by Poincaré distance stays right, and cheap, while memories change.

The ball index is updated point by point after writes; these tests hold it to a
freshly built one (the same store reopened) and check that it is not rebuilt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engramdb import MemoryEngine
from engramdb.config import Settings
from engramdb.hyperbolic import pairwise_distance
from engramdb.hyperbolic.index import PoincareFlatIndex
from engramdb.index.hierarchy import build_hierarchy, norm_of, points

DIM = 32


def unit(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    """Clustered unit vectors: directions near ``centres``, like related texts."""
    v = centres[rng.integers(len(centres), size=n)] + 0.4 * rng.normal(size=(n, DIM))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def grow_tree(
    eng: MemoryEngine, rng: np.random.Generator, vectors: np.ndarray, roots: int
) -> list[str]:
    """A random recursive tree: ``roots`` roots, then each memory under a random earlier one.

    Added in batches that at most double the store, each under parents already stored.
    """
    eng.count(agent="a")  # load the agent's view: parents are then found in memory
    ids: list[str] = []
    while len(ids) < len(vectors):
        start = len(ids)
        batch = vectors[start : start + max(roots, len(ids))]
        items = [
            {"text": f"memory {start + j}", "vector": v}
            | ({"parent": ids[rng.integers(len(ids))]} if ids else {})
            for j, v in enumerate(batch)
        ]
        ids += [m.id for m in eng.add_many(items, agent="a")]
    return ids


def churn(
    eng: MemoryEngine, rng: np.random.Generator, ids: list[str], centres: np.ndarray, steps: int
) -> list[np.ndarray]:
    """Adds (under random parents), text updates and deletes, with recall between them.

    Returns the query vectors used along the way.
    """
    queries = []
    for step in range(steps):
        op = step % 4
        if op in (0, 1):  # a child under a random memory, often a leaf
            parent = ids[rng.integers(len(ids))]
            vec = unit(rng, 1, centres)[0]
            ids.append(eng.add(f"new {step}", agent="a", parent=parent, vector=vec).id)
        elif op == 2:  # a new text: a new vector, the same place in the tree
            eng.update(ids[rng.integers(len(ids))], text=f"changed {step}")
        else:  # delete a leaf or a parent: its children become roots
            eng.delete(ids.pop(int(rng.integers(len(ids)))))
        q = unit(rng, 1, centres)[0]
        queries.append(q)
        eng.recall(q, agent="a", k=10, rank="distance", record_access=False)
    return queries


def answers(eng: MemoryEngine, queries: list[np.ndarray], **kw: object) -> list[list[tuple]]:
    return [
        [
            (h.memory.id, -h.score)
            for h in eng.recall(q, agent="a", k=10, rank="distance", record_access=False, **kw)
        ]
        for q in queries
    ]


def fresh_exact(eng: MemoryEngine, queries: list[np.ndarray], session: str | None = None) -> list:
    """Answers of an exact index built from scratch over the agent's current memories."""
    view = eng._views.get("a")
    labels = np.flatnonzero(view.alive.view)
    norm = build_hierarchy(view.records).norm
    index = PoincareFlatIndex(DIM)
    index.add(labels, points(view.vectors(labels), np.array([norm[view.ids[x]] for x in labels])))
    allowed = None
    if session is not None:
        allowed = [x for x in labels if view.records[view.ids[x]].session == session]
    out = []
    for q in queries:
        query = points(eng._vectors.query(q)[None, :], norm_of(np.array([1.5])))
        res = index.search(query, 10, allowed=allowed)
        out.append([(view.ids[x], d) for x, d in zip(res.ids[0], res.distances[0], strict=True)])
    return out


def test_updated_flat_index_equals_a_fresh_one(store_path: Path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, DIM))
    eng = MemoryEngine.open(store_path, embedder=f"hashing-{DIM}", space="poincare")
    ids = grow_tree(eng, rng, unit(rng, 300, centres), roots=10)
    eng.add_many(
        [
            {"text": f"s{i}", "session": "s", "vector": v}
            for i, v in enumerate(unit(rng, 20, centres))
        ],
        agent="a",
    )
    queries = [unit(rng, 1, centres)[0] for _ in range(20)]
    eng.recall(queries[0], agent="a", rank="distance", record_access=False)
    ball = eng._views.get("a").ball_index
    assert ball is not None and not ball.approximate
    queries += churn(eng, rng, ids, centres, steps=40)
    assert eng._views.get("a").ball_index is ball
    assert ball.builds == 1  # forty writes, not one rebuild
    assert ball.moved > 0
    before = answers(eng, queries)
    filtered = answers(eng, queries[:5], session="s")
    assert all(len(a) == 10 for a in before + filtered)
    # Bit for bit what an index built now from the same memories answers.
    assert before == fresh_exact(eng, queries)
    assert filtered == fresh_exact(eng, queries[:5], session="s")
    eng.close()
    # And what the store answers when opened afresh; the reloaded vectors are
    # normalized again, which may change their last float32 bit.
    with MemoryEngine.open(store_path, embedder=f"hashing-{DIM}", space="poincare") as fresh:
        for got, want in (
            (answers(fresh, queries), before),
            (answers(fresh, queries[:5], session="s"), filtered),
        ):
            assert [[m for m, _ in row] for row in got] == [[m for m, _ in row] for row in want]
            np.testing.assert_allclose(
                [[d for _, d in row] for row in got],
                [[d for _, d in row] for row in want],
                rtol=1e-5,
            )


def test_a_single_add_moves_points_in_place(store_path: Path) -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, DIM))
    with MemoryEngine.open(store_path, embedder=f"hashing-{DIM}", space="poincare") as eng:
        ids = grow_tree(eng, rng, unit(rng, 100, centres), roots=5)
        view = eng._views.get("a")
        leaf = next(mid for mid in ids if not eng.children(mid))
        q = unit(rng, 1, centres)[0]
        eng.recall(q, agent="a", rank="distance", record_access=False)
        ball = view.ball_index
        assert ball is not None
        index = ball.index
        old_depth = float(view.depths()[view.label_of[leaf]])
        child = eng.add("a child of a leaf", agent="a", parent=leaf, vector=centres[0])
        hits = eng.recall(centres[0], agent="a", k=3, rank="distance", record_access=False)
        assert len(hits) == 3
        # The same index, updated: the new point in, the parent out and back at its new depth.
        assert view.ball_index is ball and ball.index is index
        assert ball.builds == 1
        assert ball.moved == 3
        assert len(index) == len(view)
        child_label = view.label_of[child.id]
        child_point = points(view.vectors(np.array([child_label])), view.depths()[[child_label]])
        assert index.search(child_point, 1).ids[0, 0] == child_label
        # The parent is no longer a leaf: its point moved towards the centre.
        label = view.label_of[leaf]
        new_depth = float(view.depths()[label])
        assert new_depth < old_depth
        direction = view.vectors(np.array([label]))
        found = index.search(points(direction, np.array([new_depth])), 1)
        assert found.ids[0, 0] == label
        assert found.distances[0, 0] == pytest.approx(0.0, abs=1e-6)
        gone = index.search(points(direction, np.array([old_depth])), 1, allowed=[label])
        expected = pairwise_distance(
            points(direction, np.array([old_depth])),
            points(direction, np.array([new_depth])),
            c=1.0,
        )[0, 0]
        assert gone.distances[0, 0] == pytest.approx(expected, rel=1e-9)
        # Deleting the child makes the parent a leaf again, back where it was.
        eng.delete(child.id)
        eng.recall(q, agent="a", rank="distance", record_access=False)
        assert ball.builds == 1
        assert float(view.depths()[label]) == old_depth
        back = index.search(points(direction, np.array([old_depth])), 1)
        assert back.ids[0, 0] == label
        assert back.distances[0, 0] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_hnsw_index_after_churn_keeps_recall(store_path: Path) -> None:
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(30, DIM))
    eng = MemoryEngine.open(store_path, embedder=f"hashing-{DIM}", space="poincare", index="hnsw")
    ids = grow_tree(eng, rng, unit(rng, 4000, centres), roots=20)
    in_session = unit(rng, 100, centres)
    eng.add_many(
        [{"text": f"s{i}", "session": "s", "vector": v} for i, v in enumerate(in_session)],
        agent="a",
    )
    queries = [unit(rng, 1, centres)[0] for _ in range(100)]
    eng.recall(queries[0], agent="a", rank="distance", record_access=False)
    ball = eng._views.get("a").ball_index
    assert ball is not None and ball.approximate
    queries += churn(eng, rng, ids, centres, steps=60)
    assert eng._views.get("a").ball_index is ball
    assert ball.builds == 1
    approx = answers(eng, queries)
    # A filter applies before top-k: ten hits from the session, as exact search finds.
    filtered = answers(eng, queries[:10], session="s")
    eng.close()
    with MemoryEngine.open(
        store_path, embedder=f"hashing-{DIM}", space="poincare", index="flat"
    ) as exact_engine:
        exact = answers(exact_engine, queries)
        exact_filtered = answers(exact_engine, queries[:10], session="s")
        assert not exact_engine._views.get("a").ball_index.approximate  # type: ignore[union-attr]
    assert [[m for m, _ in row] for row in filtered] == [
        [m for m, _ in row] for row in exact_filtered
    ]
    assert all(len(row) == 10 for row in filtered)
    found = sum(
        len({a for a, _ in x} & {e for e, _ in y}) for x, y in zip(approx, exact, strict=True)
    )
    assert found / (10 * len(queries)) >= 0.95
    # Distances reported are exact distances of the memories returned.
    shared = [
        (d, dict(want)[mid])
        for got, want in zip(approx, exact, strict=True)
        for mid, d in got
        if mid in dict(want)
    ]
    assert len(shared) >= 0.95 * 10 * len(queries)
    np.testing.assert_allclose(*zip(*shared, strict=True), rtol=1e-5)  # reloaded: see above


def test_ball_index_follows_the_engine_to_hnsw(store_path: Path) -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, DIM))
    settings = Settings(exact_threshold=200)
    with MemoryEngine.open(
        store_path, embedder=f"hashing-{DIM}", space="poincare", settings=settings
    ) as eng:
        grow_tree(eng, rng, unit(rng, 150, centres), roots=10)
        eng.recall(centres[0], agent="a", rank="distance", record_access=False)
        view = eng._views.get("a")
        assert view.ball_index is not None and not view.ball_index.approximate
        eng.add_many(
            [{"text": f"x{i}", "vector": v} for i, v in enumerate(unit(rng, 60, centres))],
            agent="a",
        )
        hits = eng.recall(centres[0], agent="a", k=5, rank="distance", record_access=False)
        assert view.index.kind == "hnsw"
        assert view.ball_index.approximate
        assert len(view.ball_index) == len(view) == 210
        assert len(hits) == 5
