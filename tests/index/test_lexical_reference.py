"""The lexical index returns what BM25 by its definition gives, document by document."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engramdb.index import bm25
from engramdb.index.lexical import LexicalIndex, query_terms, stem, tokens

WORDS = "ana bo cat dog park run book club lake tea jazz wine city sea".split()


@pytest.fixture(params=["compiled", "numpy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on both scoring paths: numba's loop (the fast extra) and numpy."""
    if request.param == "compiled" and not bm25.available():
        pytest.skip("numba is not installed (the fast extra)")
    if request.param == "numpy":
        monkeypatch.setattr(bm25, "available", lambda: False)
    else:  # however small the index
        monkeypatch.setattr(bm25, "MIN_POSTINGS", 0)
    return str(request.param)


def _reference(
    docs: dict[int, tuple[str, str]],
    query: str,
    k: int,
    allowed: np.ndarray | None,
    weights: tuple[float, float],
) -> tuple[list[float], list[int]]:
    """BM25 by the definition, document by document, ties broken by label."""
    n = len(docs)
    own = {label: tokens(text) for label, (text, _) in docs.items()}
    ctx = {label: tokens(text) for label, (_, text) in docs.items()}
    avg = sum(len(own[x]) + len(ctx[x]) for x in docs) / n
    terms = {stem(w) for w in query_terms(query)}
    df = {t: sum(1 for x in docs if t in own[x] or t in ctx[x]) for t in terms}
    terms = {t for t in terms if df[t]}

    def scored(use: set[str]) -> dict[int, float]:
        out: dict[int, float] = {}
        for x in docs:
            if allowed is not None and (x >= len(allowed) or not allowed[x]):
                continue
            length = len(own[x]) + len(ctx[x])
            for t in use:
                tf = weights[0] * own[x].count(t) + weights[1] * ctx[x].count(t)
                if t not in own[x] and t not in ctx[x]:
                    continue
                idf = max(math.log((n - df[t] + 0.5) / (df[t] + 0.5)), 1e-6)
                norm = 1.2 * (0.25 + 0.75 * length / avg)
                out[x] = out.get(x, 0.0) + idf * tf * 2.2 / (tf + norm)
        return out

    rare = {t for t in terms if 2 * df[t] <= n}
    found = scored(rare)
    if len(found) < k:
        found = scored(terms)
    best = sorted(found.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [s for _, s in best], [x for x, _ in best]


def _check(ix: LexicalIndex, docs: dict[int, tuple[str, str]], rng: np.random.Generator) -> None:
    for _ in range(12):
        query = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 6))))
        k = int(rng.choice([1, 3, 10, 40]))
        allowed = None if rng.random() < 0.5 else rng.random(int(rng.integers(50, 400))) < 0.6
        weights = (1.0, float(rng.choice([0.0, 0.5, 1.0])))
        scores, labels = ix.search(query, k, allowed, weights=weights)
        want_scores, want_labels = _reference(docs, query, k, allowed, weights)
        assert scores.tolist() == pytest.approx(want_scores, rel=1e-6)
        # Ties in exact arithmetic may differ in the last float32 bits: compare the
        # labels where the reference's scores are apart.
        apart = [
            i
            for i, s in enumerate(want_scores)
            if all(
                abs(s - t) > 1e-6 * max(abs(s), 1.0) for j, t in enumerate(want_scores) if j != i
            )
        ]
        assert [labels[i] for i in apart] == [want_labels[i] for i in apart]
        assert len(labels) == len(want_labels)


def _check_scores(
    ix: LexicalIndex, docs: dict[int, tuple[str, str]], rng: np.random.Generator
) -> None:
    """``scores`` gives each asked label the float ``search`` gives it, 0 for no match."""
    for _ in range(12):
        query = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 6))))
        weights = (1.0, float(rng.choice([0.0, 0.5, 1.0])))
        # Asked labels: documents, removed ones and labels never seen, in any order.
        asked = rng.permutation(500)[: int(rng.integers(1, 120))]
        got = ix.scores(query, asked, weights=weights)
        allowed = np.zeros(500, np.bool_)
        allowed[asked] = True
        values, found = ix.search(query, len(asked) + 1, allowed, weights=weights)
        want = dict(zip(found.tolist(), values.tolist(), strict=True))
        assert got.dtype == np.float32
        assert got.tolist() == [want.get(x, 0.0) for x in asked.tolist()]
        ref = _reference(docs, query, 10**6, allowed, weights)
        by_label = dict(zip(ref[1], ref[0], strict=True))
        assert got.tolist() == pytest.approx([by_label.get(x, 0.0) for x in asked.tolist()])


@pytest.mark.parametrize("seed", range(6))
def test_top_k_and_scores_are_bm25_by_the_definition(seed: int, path: str) -> None:
    rng = np.random.default_rng(seed)
    ix = LexicalIndex()
    docs: dict[int, tuple[str, str]] = {}

    def text(n: int) -> str:
        # A small vocabulary, skewed: long postings and many equal scores.
        return " ".join(rng.choice(WORDS, size=n, p=np.linspace(2, 1, len(WORDS)) / 21))

    labels = rng.choice(400, size=300, replace=False)
    for label in labels.tolist():
        docs[label] = (text(int(rng.integers(1, 8))), text(int(rng.integers(0, 6))))
    ix.upsert([(x, *docs[x]) for x in docs])
    _check(ix, docs, rng)
    _check_scores(ix, docs, rng)
    # Rewrites and removals leave stale postings (and new average lengths).
    for label in rng.choice(labels, size=80, replace=False).tolist():
        docs[label] = (text(int(rng.integers(1, 12))), text(int(rng.integers(0, 6))))
        ix.upsert([(label, *docs[label])])
    gone = rng.choice(list(docs), size=40, replace=False).tolist()
    ix.remove(gone)
    for label in gone:
        del docs[label]
    assert ix._stale > 0
    _check(ix, docs, rng)
    _check_scores(ix, docs, rng)


def test_ties_at_the_kth_place_break_by_label(path: str) -> None:
    ix = LexicalIndex()
    ix.upsert([(x, "same words here", "") for x in (9, 4, 7, 1, 8)])
    ix.upsert([(x, "other text", "") for x in range(10, 30)])
    scores, labels = ix.search("same words", k=3)
    assert labels.tolist() == [1, 4, 7]
    assert len(set(scores.tolist())) == 1
