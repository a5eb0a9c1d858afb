"""Vector indexes: approximate search agrees with exact search; removals and filters are exact."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.index.vector import FlatIndex, HNSWIndex, IVFIndex, VectorIndex


def clustered(n: int, dim: int, *, seed: int, clusters: int = 64) -> np.ndarray:
    """Unit vectors around random centres on a low-dimensional subspace, like text embeddings."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(24, dim))
    centres = rng.normal(size=(clusters, 24))
    x = centres[rng.integers(clusters, size=n)] + 0.6 * rng.normal(size=(n, 24))
    x = x @ basis + 0.05 * rng.normal(size=(n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall_at_10(
    index: VectorIndex, exact: FlatIndex, queries: np.ndarray, allowed: np.ndarray | None = None
) -> float:
    _, got = index.search(queries, 10, allowed)
    _, want = exact.search(queries, 10, allowed)
    return float(np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want, strict=True)]))


@pytest.fixture(scope="module")
def data20k() -> tuple[np.ndarray, np.ndarray, FlatIndex]:
    x = clustered(20_000, 128, seed=1)
    queries = clustered(200, 128, seed=2)
    exact = FlatIndex(128)
    exact.add(np.arange(len(x), dtype=np.int64), x)
    return x, queries, exact


@pytest.mark.slow
@pytest.mark.parametrize(
    "make", [lambda x: HNSWIndex(128), lambda x: IVFIndex(128, x)], ids=["hnsw", "ivf"]
)
def test_approximate_recall_on_20k(
    data20k: tuple[np.ndarray, np.ndarray, FlatIndex], make: object
) -> None:
    x, queries, exact = data20k
    index = make(x)  # type: ignore[operator]
    index.add(np.arange(len(x), dtype=np.int64), x)
    assert recall_at_10(index, exact, queries) >= 0.95
    allowed = np.zeros(len(x), dtype=bool)
    allowed[::3] = True  # a filter that keeps a third
    assert recall_at_10(index, exact, queries, allowed) >= 0.95
    _, labels = index.search(queries, 10, allowed)
    assert allowed[labels[labels >= 0]].all()


@pytest.mark.parametrize("kind", ["flat", pytest.param("hnsw", marks=pytest.mark.slow), "ivf"])
def test_removed_vectors_never_come_back(kind: str) -> None:
    x = clustered(3000, 32, seed=3)
    labels = np.arange(len(x), dtype=np.int64)
    index: VectorIndex = {"flat": FlatIndex(32), "hnsw": HNSWIndex(32), "ivf": IVFIndex(32, x)}[
        kind
    ]
    index.add(labels, x)
    gone = labels[::2]
    index.remove(gone)  # crosses the HNSW rebuild threshold too
    assert len(index) == len(x) - len(gone)
    _, found = index.search(x[:100], 10)
    assert not np.isin(found, gone).any()
    _, self_hit = index.search(x[1:200:2], 1)
    assert (self_hit[:, 0] == labels[1:200:2]).mean() > 0.95


def test_hnsw_tombstones_stay_out_of_an_unfiltered_search() -> None:
    """A few removals (below the rebuild threshold) leave tombstones in the graph: a
    search with no filter must still skip them, whatever k."""
    x = clustered(400, 16, seed=6)
    index = HNSWIndex(16)
    index.add(np.arange(len(x), dtype=np.int64), x)
    gone = np.array([0, 7, 99, 250, 399], dtype=np.int64)
    index.remove(gone)
    assert index.tombstones == len(gone)
    for k in (1, 10, 64):
        _, found = index.search(x[gone], k)
        assert not np.isin(found, gone).any()
        assert (found >= 0).all()


def test_sparse_filter_returns_k_when_k_match() -> None:
    x = clustered(5000, 32, seed=4)
    index = HNSWIndex(32)
    index.add(np.arange(len(x), dtype=np.int64), x)
    allowed = np.zeros(len(x), dtype=bool)
    allowed[[5, 900, 1800, 2700, 3600, 4500, 4999]] = True
    _, found = index.search(x[:3], 7, allowed)
    assert all(sorted(row) == [5, 900, 1800, 2700, 3600, 4500, 4999] for row in found.tolist())


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_flat_matches_brute_force(seed: int, k: int) -> None:
    x = clustered(300, 16, seed=seed, clusters=8)
    index = FlatIndex(16)
    index.add(np.arange(300, dtype=np.int64), x)
    scores, labels = index.search(x[:5], k)
    brute = x[:5] @ x.T
    want = np.sort(brute, axis=1)[:, ::-1][:, :k]
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # higher is better, best first
    np.testing.assert_allclose(np.take_along_axis(brute, labels, 1), scores, atol=1e-5)


def gaussian_clusters(
    n: int, dim: int, *, seed: int, clusters: int = 200, noise: float = 0.35
) -> np.ndarray:
    """Unit vectors around random centres with isotropic noise: high intrinsic dimension."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(clusters, size=n)] + noise * rng.normal(size=(n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("kind", "noise"), [("hnsw", 0.15), ("hnsw", 0.35), ("ivf", 0.35)], ids=str
)
def test_recall_target_holds_on_held_out_queries(kind: str, noise: float) -> None:
    data = gaussian_clusters(5000, 128, seed=3, noise=noise)
    x, queries = data[:4000], data[4000:]
    exact = FlatIndex(128)
    exact.add(np.arange(len(x), dtype=np.int64), x)
    index: HNSWIndex | IVFIndex = (
        HNSWIndex(128, recall_target=0.95)
        if kind == "hnsw"
        else IVFIndex(128, x, recall_target=0.95)
    )
    index.add(np.arange(len(x), dtype=np.int64), x)
    tuning = index.tuning
    assert tuning is not None and tuning.held_out
    # Both the tuning's estimate and this measurement are samples (800 queries here).
    assert recall_at_10(index, exact, queries) >= 0.95 - 0.01
    # The data needs the tuning: the narrowest breadth tried falls short.
    assert tuning.tried[0][1] < 0.95
    if kind == "hnsw" and noise > 0.3:
        # No beam cheaper than a scan (ef * 2m < n) gets there: the index scans, exactly.
        assert tuning.exhaustive and not tuning.met and index.breadth is None
        assert recall_at_10(index, exact, queries) == 1.0
    else:
        assert tuning.met and tuning.estimate >= 0.95 and index.breadth == tuning.breadth


def test_tuning_follows_growth_and_is_seeded() -> None:
    x = gaussian_clusters(1200, 32, seed=4)
    a, b = HNSWIndex(32, recall_target=0.9), HNSWIndex(32, recall_target=0.9)
    for index in (a, b):
        index.add(np.arange(300, dtype=np.int64), x[:300])
        for i in range(300, 700):  # one at a time: tuned again at 600, on probes
            index.add(np.array([i], dtype=np.int64), x[i : i + 1])
    assert a.tunings == 2 and a.tuning is not None and a.tuning.size == 600
    assert not a.tuning.held_out
    assert a.tuning == b.tuning


def test_hnsw_label_positions_follow_add_remove_rebuild_and_restore() -> None:
    rng = np.random.default_rng(3)
    vecs = _unit(rng.normal(size=(300, 16)).astype(np.float32))
    ix = HNSWIndex(16)
    labels = rng.permutation(1000)[:300].astype(np.int64)
    truth = dict(zip(labels.tolist(), vecs, strict=True))

    def check(index: HNSWIndex) -> None:
        live = np.array(sorted(truth), dtype=np.int64)
        assert len(index) == len(live)
        np.testing.assert_allclose(index.vectors(live), np.stack([truth[x] for x in live]))
        nodes = index.node_labels()
        assert sorted(nodes[nodes >= 0].tolist()) == live.tolist()

    ix.add(labels[:200], vecs[:200])
    ix.add(labels[200:], vecs[200:])
    check(ix)
    # Re-adding a label moves it to a new node; the old one is a tombstone.
    again = labels[:10]
    fresh = _unit(rng.normal(size=(10, 16)).astype(np.float32))
    ix.add(again, fresh)
    truth.update(zip(again.tolist(), fresh, strict=True))
    check(ix)
    assert ix.tombstones == 10
    gone = labels[50:60]
    ix.remove(np.concatenate([gone, gone[:3], [5000]]))  # repeats and unknown labels
    for x in gone.tolist():
        del truth[x]
    check(ix)
    with pytest.raises(KeyError):
        ix.vectors(gone[:1])
    restored = HNSWIndex.restore(
        faiss.deserialize_index(faiss.serialize_index(ix.index)),
        ix.node_labels(),
        ef_search=ix.ef_search,
        tuning=None,
        recall_target=None,
    )
    check(restored)
    ix.rebuild()
    assert ix.tombstones == 0
    check(ix)
    for index in (ix, restored):
        _, found = index.search(vecs[100:101], 1)
        assert int(found[0, 0]) == int(labels[100])
