"""The pure consolidation algorithms: graphs, duplicate stars, topic stars, gists, retention."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.consolidation import (
    duplicate_groups,
    extractive_gist,
    informativeness,
    merge_metadata,
    normalize_text,
    retention,
    similarity_graph,
    text_key,
    topic_clusters,
)
from engramdb.consolidation import graph as graph_module
from engramdb.consolidation.text import distinct_texts


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def blobs(
    n: int, dim: int = 32, centres: int = 5, noise: float = 0.15, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim))
    return unit(c[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, dim)))


def brute_edges(x: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    s = x @ x.T
    np.fill_diagonal(s, -1)
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(s >= threshold), strict=True)}


# -- text --------------------------------------------------------------------------------


def test_normalized_text_ignores_case_punctuation_and_spacing() -> None:
    assert normalize_text("  Hello,   WORLD!! ") == "hello world"
    assert text_key("I'm here.") == text_key("i m   HERE")
    assert text_key("I am here") != text_key("I was here")


def test_informativeness_prefers_content_over_fillers_and_echoes() -> None:
    original = "Caroline said she adopted a puppy named Max."
    echo = "Well, honestly, caroline said she adopted a puppy named max!!"
    assert informativeness(original) == informativeness(echo)  # a tie: the earlier one wins
    assert informativeness(original) > informativeness(original.lower())
    assert informativeness("We went to Lisbon and Porto") > informativeness("We went to Lisbon")
    assert distinct_texts(["A b.", "a B", "c"]) == ["A b.", "c"]


# -- the similarity graph ----------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 60), st.floats(0.3, 0.95), st.integers(0, 10_000))
def test_exact_graph_is_every_pair_above_the_threshold(n: int, threshold: float, seed: int) -> None:
    x = blobs(n, seed=seed)
    g = similarity_graph(x, k=n, threshold=threshold)
    got = {(i, int(j)) for i in range(n) for j in g.neighbours(i)[0]}
    assert got == brute_edges(x, threshold)
    for i in range(n):  # most similar first
        sims = g.neighbours(i)[1]
        assert np.all(np.diff(sims) <= 1e-6)


def test_graph_caps_neighbours_but_stays_symmetric() -> None:
    x = blobs(80, centres=1, noise=0.05)
    g = similarity_graph(x, k=3, threshold=0.5)
    edges = {(i, int(j)) for i in range(80) for j in g.neighbours(i)[0]}
    assert edges == {(j, i) for i, j in edges}
    assert g.degree().min() >= 3


def test_approximate_graph_finds_close_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_module, "EXACT_LIMIT", 100)
    monkeypatch.setattr(graph_module, "CELL_SIZE", 50)
    x = blobs(1200, centres=40, noise=0.1, seed=3)
    g = similarity_graph(x, k=50, threshold=0.9)
    found = {(i, int(j)) for i in range(len(x)) for j in g.neighbours(i)[0]}
    truth = brute_edges(x, 0.9)
    assert found <= truth
    assert len(found) >= 0.95 * len(truth)
    again = similarity_graph(x, k=50, threshold=0.9)  # seeded: the same graph every time
    assert np.array_equal(again.indices, g.indices)


# -- duplicates ----------------------------------------------------------------------------


def test_exact_duplicates_group_under_the_most_informative() -> None:
    texts = ["the cat sat", "The cat sat!", "a dog ran", "THE CAT SAT"]
    x = unit(np.eye(4))
    order = [1, 0, 3, 2]
    groups = duplicate_groups([text_key(t) for t in texts], x, order, near=False, threshold=0.9)
    assert groups == [[1, 0, 3]]


def test_near_duplicates_are_stars_not_chains() -> None:
    # a ~ b and b ~ c above the threshold, a ~ c below it: b is most informative.
    a, b, c = unit(np.array([[1.0, 0.0], [np.cos(0.4), np.sin(0.4)], [np.cos(0.8), np.sin(0.8)]]))
    x = np.stack([a, b, c])
    keys = ["a", "b", "c"]
    assert duplicate_groups(keys, x, [1, 0, 2], threshold=0.9) == [[1, 0, 2]]
    # a first: it takes b, and c (below the threshold of a) stays alone.
    assert duplicate_groups(keys, x, [0, 1, 2], threshold=0.9) == [[0, 1]]


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 50), st.floats(0.5, 0.99), st.integers(0, 10_000))
def test_duplicate_centres_are_pairwise_below_the_threshold(
    n: int, threshold: float, seed: int
) -> None:
    x = blobs(n, noise=0.1, seed=seed)
    order = list(np.random.default_rng(seed).permutation(n))
    groups = duplicate_groups([str(i) for i in range(n)], x, order, threshold=threshold)
    members = [i for g in groups for i in g]
    assert len(members) == len(set(members))
    for g in groups:
        assert g[0] == min(g, key=order.index)  # the representative comes first in order
        assert np.all(x[g[1:]] @ x[g[0]] >= threshold - 1e-6)
    grouped = set(members)
    centres = [g[0] for g in groups] + [i for i in range(n) if i not in grouped]
    s = x[centres] @ x[centres].T
    np.fill_diagonal(s, -1)
    assert s.max(initial=-1) < threshold + 1e-6  # nothing left to merge: idempotent


def test_merged_metadata_keeps_the_representatives_values() -> None:
    merged = merge_metadata([{"a": 1, "b": 2}, {"b": 3, "c": 4}, {"d": 5}])
    assert merged == {"a": 1, "b": 2, "c": 4, "d": 5}


# -- topic clusters ----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 4), st.integers(4, 9))
def test_clusters_are_stars_within_size_bounds(seed: int, min_size: int, max_size: int) -> None:
    x = blobs(60, centres=4, noise=0.3, seed=seed)
    clusters = topic_clusters(x, threshold=0.6, min_size=min_size, max_size=max_size)
    seen: set[int] = set()
    for c in clusters:
        assert min_size <= len(c) <= max_size
        assert not seen & set(c)
        seen |= set(c)
        assert np.all(x[c[1:]] @ x[c[0]] >= 0.6 - 1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_clustering_again_with_the_clusters_placed_finds_nothing(seed: int) -> None:
    x = blobs(70, centres=6, noise=0.35, seed=seed)
    first = topic_clusters(x, threshold=0.55, min_size=3, max_size=6)
    placed = np.zeros(len(x), bool)
    for c in first:
        placed[c] = True
    assert topic_clusters(x, placed=placed, threshold=0.55, min_size=3, max_size=6) == []


# -- gists -------------------------------------------------------------------------------


def test_extractive_gist_leads_with_the_medoid_and_covers_the_rest() -> None:
    x = unit(np.array([[1, 0.1, 0], [1, 0, 0.1], [1, 0.05, 0.05], [0.2, 1, 0], [0.1, 1, 0.1]]))
    texts = ["cats purr", "cats nap", "Cats purr.", "dogs bark", "dogs fetch"]
    gist = extractive_gist(texts, x, max_sentences=3, cover=0.95)
    assert gist.text.splitlines()[0] == texts[gist.medoid]
    assert any(t.startswith("dogs") for t in gist.text.splitlines())
    assert len(gist.text.splitlines()) <= 3
    short = extractive_gist(texts, x, max_sentences=5, cover=0.99, max_bytes=20)
    assert len(short.text.encode()) <= 20


# -- retention ---------------------------------------------------------------------------


def test_retention_halves_every_half_life_and_grows_with_importance_and_use() -> None:
    r = retention([0, 180, 360], [0.5] * 3, [0] * 3, base_days=180)
    assert np.allclose(r, [1.0, 0.5, 0.25])
    assert retention([100], [0.9], [0], base_days=180) > retention([100], [0.1], [0], base_days=180)
    assert retention([100], [0.5], [10], base_days=180) > retention(
        [100], [0.5], [0], base_days=180
    )
    assert retention([-5], [0.5], [0], base_days=180)[0] == 1.0
