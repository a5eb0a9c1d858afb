"""Hyperbolic k-NN indexes against brute force."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.errors import ValidationError
from engramdb.hyperbolic import pairwise_distance, project
from engramdb.hyperbolic.index import PoincareFlatIndex, PoincareHNSWIndex


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    faiss.omp_set_num_threads(1)


def hierarchy_points(n: int, dim: int, seed: int, max_depth: float = 10.0) -> np.ndarray:
    """Points clustered by direction at spread-out depths, some near the boundary."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, n // 100), dim))
    dirs = centres[rng.integers(len(centres), size=n)] + 0.3 * rng.normal(size=(n, dim))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    radius = np.tanh(rng.uniform(0.2, max_depth, size=n) / 2)
    # Deep points round onto the float64 margin, as the indexes place them.
    return project(dirs * radius[:, None], c=1.0)


def brute_force(queries: np.ndarray, points: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    d = pairwise_distance(queries, points, c=1.0)
    return ids[np.argsort(d, axis=1, kind="stable")[:, :k]]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth, strict=True)]
    return float(np.sum(hits) / truth.size)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 300),
    dim=st.integers(2, 8),
    k=st.integers(1, 12),
    depth=st.sampled_from([3.0, 10.0, 20.0]),
)
def test_flat_index_matches_brute_force(seed: int, n: int, dim: int, k: int, depth: float) -> None:
    points = hierarchy_points(n, dim, seed, max_depth=depth)
    ids = np.random.default_rng(seed).permutation(10 * n)[:n].astype(np.int64)
    queries = hierarchy_points(7, dim, seed + 1, max_depth=depth)
    index = PoincareFlatIndex(dim)
    index.add(ids, points)
    res = index.search(queries, k)
    kk = min(k, n)
    d = pairwise_distance(queries, points, c=1.0)
    expected = np.sort(d, axis=1)[:, :kk]
    np.testing.assert_allclose(res.distances[:, :kk], expected, rtol=1e-9, atol=1e-9)
    # The ids returned are at the distances reported (ties may swap ids).
    position = {int(i): j for j, i in enumerate(ids)}
    cols = np.vectorize(position.__getitem__)(res.ids[:, :kk])
    np.testing.assert_allclose(np.take_along_axis(d, cols, axis=1), expected, rtol=1e-9, atol=1e-9)
    assert (res.ids[:, kk:] == -1).all()
    assert np.isinf(res.distances[:, kk:]).all()
    assert (np.diff(res.scores[:, :kk], axis=1) <= 0).all()


def test_flat_index_remove_and_filter() -> None:
    points = hierarchy_points(500, 4, seed=1)
    ids = np.arange(1000, 1500, dtype=np.int64)
    index = PoincareFlatIndex(4)
    index.add(ids, points)
    queries = points[:5]
    first = index.search(queries, 1)
    assert (first.ids[:, 0] == ids[:5]).all()
    assert index.remove(np.array([1000, 1001, 99])) == 2
    assert len(index) == 498
    after = index.search(queries, 3)
    assert not np.isin(after.ids, [1000, 1001]).any()
    allowed = {1100, 1200, 1300}
    filtered = index.search(queries, 5, allowed=allowed)
    assert set(filtered.ids[:, :3].ravel().tolist()) <= allowed
    assert (filtered.ids[:, 3:] == -1).all()
    mask = np.zeros(1500, dtype=bool)
    mask[1400:] = True
    by_mask = index.search(queries, 4, allowed=mask)
    assert (by_mask.ids >= 1400).all()
    truth = brute_force(queries, points[400:], ids[400:], 4)
    assert (by_mask.ids == truth).all()


def test_hnsw_recall_against_exact() -> None:
    dim, n = 16, 4000
    points = hierarchy_points(n, dim, seed=3)
    ids = np.arange(n, dtype=np.int64) * 7
    queries = hierarchy_points(200, dim, seed=4)
    exact = PoincareFlatIndex(dim)
    exact.add(ids, points)
    approx = PoincareHNSWIndex(dim)
    approx.add(ids, points)
    truth = exact.search(queries, 10)
    found = approx.search(queries, 10)
    assert recall(found.ids, truth.ids) >= 0.95
    # Returned distances are exact distances of the returned points.
    np.testing.assert_allclose(
        found.distances[:, 0],
        pairwise_distance(queries, points, c=1.0)[np.arange(200), found.ids[:, 0] // 7],
        rtol=1e-9,
    )


def queries_at_one_depth(n: int, dim: int, seed: int, depth: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n, dim))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return dirs * np.tanh(depth / 2)


def test_hnsw_learns_where_to_look_first_without_changing_answers() -> None:
    dim, n = 8, 4000
    points = hierarchy_points(n, dim, seed=5)
    ids = np.arange(n, dtype=np.int64)
    queries = queries_at_one_depth(300, dim, seed=6, depth=3.0)
    exact = PoincareFlatIndex(dim)
    exact.add(ids, points)
    truth = exact.search(queries, 10).ids
    approx = PoincareHNSWIndex(dim)
    approx.add(ids, points)

    found = [approx.search(queries[:1], 10).ids]
    assert approx.graph_searches >= 2  # from q itself the k-th ball is not yet covered
    found += [approx.search(q[None, :], 10).ids for q in queries[1:100]]
    before = approx.graph_searches
    found += [approx.search(q[None, :], 10).ids for q in queries[100:]]
    # A stream of queries of one kind mostly needs one pass once the estimate is set.
    assert (approx.graph_searches - before) / 200 < 1.3
    assert recall(np.concatenate(found), truth) >= 0.97

    # clear() starts a new graph but keeps the estimate: a rebuilt index need not relearn it.
    approx.clear()
    assert len(approx) == 0
    approx.add(ids, points)
    before = approx.graph_searches
    again = [approx.search(queries[100:101], 10).ids]
    assert approx.graph_searches - before == 1  # a fresh index took 2 or more (above)
    again += [approx.search(q[None, :], 10).ids for q in queries[101:]]
    assert (approx.graph_searches - before) / 200 < 1.3
    assert recall(np.concatenate(again), truth[100:]) >= 0.97

    # A wrong estimate costs passes, not answers: the stopping test is unchanged.
    for wrong in (1e-3, 30.0):
        approx._hints[10][:] = wrong
        misled = approx.search(queries, 10)
        assert recall(misled.ids, truth) >= 0.97


def test_hnsw_tombstones_filters_and_rebuild() -> None:
    dim, n = 8, 3000
    points = hierarchy_points(n, dim, seed=5)
    ids = np.arange(n, dtype=np.int64)
    index = PoincareHNSWIndex(dim)
    index.add(ids, points)
    queries = points[:20]
    assert (index.search(queries, 1).ids[:, 0] == ids[:20]).all()
    assert index.remove(ids[:10]) == 10
    assert len(index) == n - 10
    res = index.search(queries, 5)
    assert not np.isin(res.ids, ids[:10]).any()
    allowed = np.zeros(n, dtype=bool)
    allowed[::3] = True
    res = index.search(queries, 5, allowed=allowed)
    assert (res.ids % 3 == 0).all()
    index.rebuild()
    assert len(index) == n - 10
    res2 = index.search(queries[10:], 1)
    assert (res2.ids[:, 0] == ids[10:20]).all()
    # Removing over half the points compacts the graph by itself.
    index.remove(ids[10:2000])
    assert len(index) == n - 2000
    assert index.search(points[2500:2510], 1).ids[:, 0].tolist() == list(range(2500, 2510))


def test_mips_method_returns_valid_neighbours() -> None:
    dim, n = 8, 3000
    points = hierarchy_points(n, dim, seed=6, max_depth=4.0)
    index = PoincareHNSWIndex(dim, method="mips")
    index.add(np.arange(n), points)
    res = index.search(points[:10], 5)
    assert (res.ids >= 0).all()
    assert (np.diff(res.distances, axis=1) >= 0).all()


@pytest.mark.parametrize("cls", [PoincareFlatIndex, PoincareHNSWIndex])
def test_bad_input_is_rejected_before_writing(cls: type) -> None:
    index = cls(3)
    index.add(np.array([1, 2]), np.full((2, 3), 0.1))
    with pytest.raises(ValidationError, match="outside"):
        index.add(np.array([3]), np.array([[0.9, 0.9, 0.9]]))
    with pytest.raises(ValidationError, match="already"):
        index.add(np.array([2, 4]), np.full((2, 3), 0.2))
    with pytest.raises(ValidationError, match="shape"):
        index.add(np.array([5]), np.zeros((1, 4)))
    with pytest.raises(ValidationError, match="k="):
        index.search(np.zeros((1, 3)), 0)
    assert len(index) == 2


@pytest.mark.parametrize("cls", [PoincareFlatIndex, PoincareHNSWIndex])
def test_removed_ids_can_come_back_with_new_points(cls: type) -> None:
    dim, n = 6, 3000
    points = hierarchy_points(n, dim, seed=7)
    moved = hierarchy_points(n, dim, seed=8)
    ids = np.arange(n, dtype=np.int64) * 3
    index = cls(dim)
    index.add(ids, points)
    current = points.copy()
    rng = np.random.default_rng(9)
    # Many small remove-and-re-add rounds, as an engine moves points one write at a time.
    for _ in range(40):
        rows = rng.choice(n, size=100, replace=False)
        assert index.remove(ids[rows]) == 100
        index.add(ids[rows], moved[rows])
        current[rows], moved[rows] = moved[rows], current[rows]
    assert len(index) == n
    queries = hierarchy_points(50, dim, seed=10)
    truth = brute_force(queries, current, ids, 10)
    found = index.search(queries, 10)
    if cls is PoincareFlatIndex:
        assert (found.ids == truth).all()
    else:
        assert recall(found.ids, truth) >= 0.95
    # Each id is returned at its newest point, never at one it left.
    position = {int(i): j for j, i in enumerate(ids)}
    cols = np.vectorize(position.__getitem__)(found.ids)
    np.testing.assert_allclose(
        found.distances,
        np.take_along_axis(pairwise_distance(queries, current, c=1.0), cols, axis=1),
        rtol=1e-9,
    )
    # Filters see the new points only: an id allowed by mask is found at its new place.
    allowed = np.zeros(3 * n, dtype=bool)
    allowed[ids[rows]] = True
    res = index.search(current[rows[:5]], 1, allowed=allowed)
    assert res.ids[:, 0].tolist() == ids[rows[:5]].tolist()
    # Dead rows are reclaimed: 4000 replacements of 3000 points leave fewer dead rows.
    assert index._store.dead <= len(index)


@pytest.mark.parametrize("cls", [PoincareFlatIndex, PoincareHNSWIndex])
def test_adding_a_point_does_not_copy_the_stored_points(cls: type) -> None:
    index = cls(4)
    index.add(np.arange(100), hierarchy_points(100, 4, seed=11))
    index.add(np.array([100]), hierarchy_points(1, 4, seed=12))
    buffer = index._store._points
    index.add(np.array([101]), hierarchy_points(1, 4, seed=13))
    assert index._store._points is buffer
    assert len(index) == 102
    assert index.search(hierarchy_points(1, 4, seed=13), 1).ids[0, 0] == 101


def test_hnsw_fills_k_slots_with_fewer_candidates_than_k() -> None:
    points = hierarchy_points(3000, 4, seed=14)
    index = PoincareHNSWIndex(4, candidates=20)
    index.add(np.arange(3000), points)
    res = index.search(points[:3], 300)
    assert (res.ids >= 0).all()
    assert all(len(set(row.tolist())) == 300 for row in res.ids)
