"""Trainer and reconstruction metrics on small synthetic hierarchies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engramdb.errors import ValidationError
from engramdb.hyperbolic import (
    fit_euclidean,
    fit_poincare,
    pairwise_distance,
    reconstruction_metrics,
)
from engramdb.hyperbolic.train import _Closure, _pair_weights, default_temperature


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def tree_closure(branching: int, depth: int) -> list[tuple[str, str]]:
    """(descendant, ancestor) pairs of the transitive closure of a full tree."""
    edges: list[tuple[str, str]] = []
    level = [("r", ["r"])]
    for _ in range(depth):
        nxt = []
        for name, path in level:
            for b in range(branching):
                child = f"{name}.{b}"
                edges.extend((child, ancestor) for ancestor in path)
                nxt.append((child, [*path, child]))
        level = nxt
    return edges


def naive_metrics(edges: list[tuple[str, str]], emb: dict[str, np.ndarray]) -> tuple[float, float]:
    nodes = list(emb)
    pos = {n: i for i, n in enumerate(nodes)}
    d = np.asarray(pairwise_distance(np.stack([emb[n] for n in nodes]), c=1.0))
    neigh: dict[int, set[int]] = {i: set() for i in range(len(nodes))}
    for u, v in edges:
        neigh[pos[u]].add(pos[v])
        neigh[pos[v]].add(pos[u])
    ranks, aps = [], []
    for u, nb in neigh.items():
        if not nb:
            continue
        others = [w for w in range(len(nodes)) if w != u]
        non = [w for w in others if w not in nb]
        ranks.extend(1 + sum(d[u, w] < d[u, v] for w in non) for v in nb)
        precisions = []
        for v in nb:
            at_or_before = [w for w in others if d[u, w] <= d[u, v]]
            precisions.append(sum(w in nb for w in at_or_before) / len(at_or_before))
        aps.append(np.mean(precisions))
    return float(np.mean(ranks)), float(np.mean(aps))


def test_metrics_match_a_naive_implementation() -> None:
    edges = tree_closure(2, 3)
    rng = np.random.default_rng(0)
    nodes = sorted({n for e in edges for n in e})
    emb = {n: rng.uniform(-0.5, 0.5, size=3) for n in nodes}
    # A few exact ties exercise the tie rule.
    emb[nodes[3]] = emb[nodes[4]].copy()
    got = reconstruction_metrics(edges, emb)
    assert got == pytest.approx(naive_metrics(edges, emb), rel=1e-12)
    euclid = reconstruction_metrics(edges, emb, distance="euclidean")
    assert 1.0 <= euclid[0] and 0.0 < euclid[1] <= 1.0


def test_metrics_of_a_perfect_and_a_collapsed_embedding() -> None:
    edges = [("b", "a"), ("c", "a"), ("d", "b"), ("d", "a")]
    emb = {
        "a": np.zeros(2),
        "b": np.array([0.5, 0.0]),
        "d": np.array([0.7, 0.0]),
        "c": np.array([-0.6, 0.0]),
    }
    assert reconstruction_metrics(edges, emb) == (1.0, 1.0)
    # All points equal: every node ties with every other, which must not score
    # as perfect.
    flat = {n: np.zeros(2) for n in emb}
    _, mean_ap = reconstruction_metrics(edges, flat)
    assert mean_ap < 1.0


def test_metrics_reject_bad_input() -> None:
    with pytest.raises(ValidationError, match="no embedding"):
        reconstruction_metrics([("a", "b")], {"a": np.zeros(2)})
    with pytest.raises(ValidationError, match="distance"):
        reconstruction_metrics(
            [("a", "b")], {"a": np.zeros(2), "b": np.ones(2) / 4}, distance="cosine"
        )  # type: ignore[arg-type]


@pytest.mark.slow
def test_fit_poincare_reconstructs_a_tree() -> None:
    # About 5 s of CPU; marked slow because it takes longer on a busy machine.
    edges = tree_closure(3, 4)  # 121 nodes, 426 closure edges
    emb = fit_poincare(edges, 5, epochs=100, seed=1)
    assert len(emb) == 121
    points = np.stack(list(emb.values()))
    assert points.dtype == np.float64
    assert (np.linalg.norm(points, axis=1) < 1.0).all()
    mean_rank, mean_ap = reconstruction_metrics(edges, emb)
    assert mean_ap >= 0.9, (mean_rank, mean_ap)
    # The root ends nearer the origin than the leaves.
    norms = {n: np.linalg.norm(v) for n, v in emb.items()}
    leaves = [n for n in emb if n.count(".") == 4]
    assert norms["r"] < np.median([norms[n] for n in leaves])


def test_fit_is_reproducible_and_euclidean_twin_runs() -> None:
    edges = tree_closure(2, 3)
    a = fit_poincare(edges, 2, epochs=3, seed=7)
    b = fit_poincare(edges, 2, epochs=3, seed=7)
    assert all(np.array_equal(a[n], b[n]) for n in a)
    e = fit_euclidean(edges, 2, epochs=3, seed=7)
    assert set(e) == set(a)
    assert all(np.isfinite(v).all() for v in e.values())


def test_fit_rejects_bad_parameters() -> None:
    edges = tree_closure(2, 2)
    with pytest.raises(ValidationError, match="dim"):
        fit_poincare(edges, 0)
    with pytest.raises(ValidationError, match="lr"):
        fit_poincare(edges, 2, lr=-1.0)
    with pytest.raises(ValidationError, match="no edge"):
        fit_poincare([("a", "a")], 2)
    with pytest.raises(ValidationError, match="temperature"):
        fit_poincare(edges, 2, temperature=0.0)
    for balance in (-0.5, 1.5):
        with pytest.raises(ValidationError, match="balance"):
            fit_poincare(edges, 2, balance=balance)


def test_balance_shares_the_pairs_between_nodes() -> None:
    closure = _Closure(tree_closure(3, 3), symmetric=True)
    anchors = closure.pairs[:, 0]
    assert _pair_weights(closure, 0.0) is None  # every pair once per epoch
    for balance in (0.5, 1.0):
        weights = _pair_weights(closure, balance)
        assert weights is not None
        share = torch.zeros(len(closure.nodes), dtype=weights.dtype).index_add_(0, anchors, weights)
        # A node anchors `degree` pairs of weight degree ** -balance each; at
        # balance 1 every share is 1: the root weighs what a leaf does.
        torch.testing.assert_close(share, closure.degree.pow(1.0 - balance))


def test_default_temperature_follows_the_dimension() -> None:
    assert default_temperature(1) == 1.0
    assert default_temperature(2) == 1.0
    assert default_temperature(5) == 0.25
    assert default_temperature(11) == pytest.approx(0.1)


@pytest.mark.slow
def test_temperature_keeps_points_nearer_the_origin() -> None:
    # The plain loss (T = 1) keeps pushing points outwards, in 5-d onto the
    # projection margin on larger hierarchies; the default temperature (1/4 at
    # dim 5) is satisfied at a smaller radius and ranks at least as well.
    edges = tree_closure(3, 4)

    def max_radius(emb: dict[str, np.ndarray]) -> float:
        return max(2.0 * np.arctanh(np.linalg.norm(v)) for v in emb.values())

    plain = fit_poincare(edges, 5, epochs=40, seed=0, temperature=1.0)
    tempered = fit_poincare(edges, 5, epochs=40, seed=0)
    assert max_radius(tempered) < 0.8 * max_radius(plain)
    assert reconstruction_metrics(edges, tempered)[1] >= reconstruction_metrics(edges, plain)[1]
